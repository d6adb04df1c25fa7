"""The tile sink protocol, and :class:`Layout`, the base of layouts that write files in folders."""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from tilesapp.core.manifest import Manifest
from tilesapp.core.settings import Settings
from tilesapp.core.writers import TileWriter, write_image, write_text


@dataclass(frozen=True)
class RunInfo:
    """What a sink knows of the run it writes, fixed before the first tile."""

    folder: Path
    settings: Settings
    masks: bool = False
    labels: bool = False
    classes: Path | None = None  # a classes.txt to ship with the labels
    splits: tuple[str, ...] = ("train",)  # the sides sources go to ("train", "val")

    @property
    def split(self) -> bool:
        return self.settings.val_fraction > 0


@dataclass(frozen=True)
class TileFiles:
    """The files of one tile, relative to the sink's folder (None: not written)."""

    file: str
    mask: str | None = None
    label: str | None = None


class TileSink(Protocol):
    """Where the tiles of a run go (one object per run, shared by its threads, picklable)."""

    layout: ClassVar[str]

    def prepare(self) -> list[str]:
        """Make what the layout needs before the first tile; returns the files written."""

    def names(self, stem: str, index: int, width: int, split: str, mask_format: str | None) -> TileFiles:
        """The files of tile ``index`` of the source whose tiles are named ``stem``."""

    def write(self, name: str, array: np.ndarray, axes: str, pixel_size_um: tuple[float, float] | None) -> None:
        """Write an image or mask tile (``array`` in ``axes`` order); OSError on failure."""

    def write_text(self, name: str, text: str) -> None:
        """Write a text file of a tile (YOLO labels)."""

    def discard(self, names: list[str]) -> None:
        """Take back files of a failed image."""

    def finish(self, manifest: Manifest) -> list[str]:
        """Complete the layout after the last tile (descriptions, archives); returns files written."""

    def close(self) -> None:
        """Remove what writing tiles needed for a while (private folders of staged tiles)."""

    def read(self, name: str) -> np.ndarray:
        """A tile as stored (merge reads tiles back through this)."""


class StemNames:
    """Stems of tile names, given out so that no two sources share one (case-insensitively)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def take(self, name: str, suffix: str = "") -> str:
        """A free stem for a source of file ``name`` (with its suffix, e.g. ``_s1``): the file's
        stem, then the stem with the file's suffix, then with a number."""
        path = Path(name)
        ext = path.suffix.lower().lstrip(".")
        stem = (path.stem if ext else path.name) + suffix
        candidate = stem
        if candidate.casefold() in self._taken:
            candidate = f"{stem}-{ext}" if ext else f"{stem}-2"
            k = 2
            while candidate.casefold() in self._taken:
                candidate = f"{stem}-{ext}-{k}" if ext else f"{stem}-{k + 1}"
                k += 1
        self._taken.add(candidate.casefold())
        return candidate


def tile_stems(names: list[str]) -> list[str]:
    """A file-name stem per source such that no two sources share one (case-insensitively).

    >>> tile_stems(["a.tif", "a.png", "A.tif", "b.tif"])
    ['a', 'a-png', 'A-tif', 'b']
    """
    stems = StemNames()
    return [stems.take(name) for name in names]


class Layout:
    """A layout of files in folders under the export folder: writes through a fast TIFF frame
    writer or OpenCV, reads back with the engine's readers. Subclasses say where each file goes."""

    layout: ClassVar[str] = ""

    def __init__(self, run: RunInfo | None, folder: Path | None = None, manifest: Manifest | None = None):
        self.run = run
        self.folder = Path(folder if folder is not None else run.folder)
        self._root = os.fspath(self.folder)  # joined as text: pathlib costs more than a tile's write
        self.manifest = manifest
        self._writer = TileWriter()
        self._frames = None  # tilesapp.core.readers.frames.TileFrames, made at the first read

    @classmethod
    def for_reading(cls, folder: Path, manifest: Manifest) -> Layout:
        """The sink of a written tile folder, to read its tiles back."""
        return cls(None, folder, manifest)

    # --- writing ---------------------------------------------------------------------------
    def prepare(self) -> list[str]:
        return []

    def names(self, stem: str, index: int, width: int, split: str, mask_format: str | None) -> TileFiles:
        raise NotImplementedError

    def write(self, name: str, array: np.ndarray, axes: str, pixel_size_um: tuple[float, float] | None) -> None:
        self._writer.write(os.path.join(self._root, name), array, axes, pixel_size_um)

    def write_text(self, name: str, text: str) -> None:
        write_text(self.folder / name, text)

    def discard(self, names: list[str]) -> None:
        for name in names:
            (self.folder / name).unlink(missing_ok=True)

    def finish(self, manifest: Manifest) -> list[str]:
        return []

    def close(self) -> None:
        self._writer.close()

    # --- reading -----------------------------------------------------------------------------
    def read(self, name: str) -> np.ndarray:
        from tilesapp.core.readers.frames import TileFrames  # readers are not needed to write

        path = self.folder / name
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, "missing", str(path))
        if self._frames is None:
            self._frames = TileFrames()  # a tile folder's TIFFs share their frame: read without parsing
        return self._frames.read(path)

    # --- helpers -----------------------------------------------------------------------------
    def copy_in(self, source: Path, name: str) -> str:
        """Copy a file into the layout (classes.txt, ...); returns its name."""
        target = self.folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return name

    def write_image_file(self, name: str, array: np.ndarray, axes: str, pixel_size_um=None) -> None:
        write_image(self.folder / name, array, axes, pixel_size_um)


def join(*parts: str) -> str:
    """A relative name from folder parts (empty parts skipped), always with '/'."""
    return "/".join(p for p in parts if p)
