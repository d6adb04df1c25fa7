"""The reader seam: which files are images, and which reader opens each.

A reader is a module of this package ending with ``READER = SomeReader()`` (see
:mod:`tilesapp.core.readers.base`), listed in :data:`BUILTIN`, or any object passed to
:func:`register`. A file is given to the readers claiming its suffix; when its first bytes say
it is another format, the format wins over the name. Nothing outside this package looks at
file suffixes.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import (
    PLANE_AXES,
    BaseFile,
    ImageFile,
    Reader,
    Scene,
    SceneInfo,
    from_yxc,
    read_upto,
    reason,
    thin_overview,
    to_yxc,
)

#: Reader modules of this package, in the order a folder lists their files (TIFFs first).
BUILTIN = ("tiff", "opencv", "czi", "nd2", "lif", "omezarr", "dv", "sif")
_HEAD = 64

_registry: list[Reader] | None = None


def readers() -> list[Reader]:
    """Every registered reader (the built-in ones first)."""
    global _registry
    if _registry is None:
        found = []
        for name in BUILTIN:
            try:
                module = importlib.import_module(f"{__name__}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{__name__}.{name}":
                    raise
                continue
            found.append(module.READER)
        _registry = found
    return _registry


def register(reader: Reader) -> None:
    """Add a reader: its suffixes become images, and it is asked first for them."""
    readers().insert(0, reader)


def unregister(reader: Reader) -> None:
    readers().remove(reader)


def image_suffixes() -> tuple[str, ...]:
    """Suffixes of image files (and image folders such as ``.zarr``), in listing order."""
    seen: dict[str, None] = {}
    for reader in sorted(readers(), key=_listing_rank):
        for suffix in reader.suffixes:
            seen.setdefault(suffix, None)
    return tuple(seen)


def image_folder_suffixes() -> tuple[str, ...]:
    """Suffixes of images that are folders (X.zarr): a folder named with another image suffix
    (``scans.tif/``) is a folder of images."""
    return tuple(dict.fromkeys(s for r in readers() if getattr(r, "folders", False) for s in r.suffixes))


def _listing_rank(reader: Reader) -> int:
    return BUILTIN.index(reader.name) if reader.name in BUILTIN else len(BUILTIN)


def is_image(path: str | Path) -> bool:
    """Whether ``path`` has the name of an image a reader opens (files, or folders like X.zarr)."""
    path = Path(path)
    return path.suffix.lower() in (image_folder_suffixes() if path.is_dir() else image_suffixes())


def reader_for(path: str | Path) -> Reader:
    """The reader of ``path``: by its first bytes among the readers of its suffix, else by its
    first bytes among all, else the first reader of its suffix (which explains what is wrong)."""
    path = Path(path)
    suffix = path.suffix.lower()
    claiming = [r for r in readers() if suffix in r.suffixes]
    head = b""
    if path.is_file():
        try:
            with open(path, "rb", buffering=0) as fh:
                head = read_upto(fh, _HEAD)
        except OSError as exc:
            raise ImageError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from exc
    if head:
        for reader in claiming + [r for r in readers() if r not in claiming]:
            if reader.sniff(head):
                return reader
    if claiming:
        return claiming[0]
    raise ImageError(f"{path.name}: not an image this program reads ({', '.join(image_suffixes())}).")


def open_image(path: str | Path, reader: str | None = None) -> ImageFile:
    """Open an image file (or image folder); use as a context manager. :class:`ImageError`
    with a readable sentence when it cannot be read. ``reader``: the name of the reader that
    opened it before (its bytes are not looked at again)."""
    path = Path(path)
    try:
        empty = path.stat().st_size == 0 and not path.is_dir()
    except OSError:
        empty = False  # the reader says what is wrong
    if empty:  # no reader can tell more, and each would word it in its own jargon
        raise ImageError(f"{path.name}: the file is empty (0 bytes); it was not copied or saved completely.")
    reader = next((r for r in readers() if r.name == reader), None) if reader else None
    reader = reader or reader_for(path)
    try:
        return reader.open(path)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{path.name}: not enough memory to open it.") from None
    except Exception as exc:  # every reader error means the same to a user: unreadable file
        raise ImageError(f"{path.name}: cannot be read as an image ({reason(exc)}).") from exc


def inspect_image(path: str | Path) -> SceneInfo:
    """The metadata of the first scene of an image."""
    with open_image(path) as image:
        if not image.scenes:
            raise ImageError(f"{Path(path).name}: the file holds no image.")
        return image.scenes[0].info


def read_image(path: str | Path) -> tuple[np.ndarray, SceneInfo]:
    """The first scene of an image, whole: its pixels as (rows, cols, channels) and its info."""
    with open_image(path) as image:
        if not image.scenes:
            raise ImageError(f"{Path(path).name}: the file holds no image.")
        scene = image.scenes[0]
        rows, cols = scene.info.shape_yx
        return scene.read(0, rows, 0, cols), scene.info


def verify(path: str | Path, max_bytes: int = 64 << 20) -> list[SceneInfo]:
    """Open an image and read a little of every scene (its first and last rows), so that a
    truncated or damaged file is found now rather than half-way through an export. A file
    that cannot be read in parts is decoded whole when it holds at most ``max_bytes``.
    Returns the scenes' infos; raises :class:`ImageError` naming the file."""
    path = Path(path)
    with open_image(path) as image:
        if not image.scenes:
            raise ImageError(f"{path.name}: the file holds no image.")
        for scene in image.scenes:
            rows, cols = scene.info.shape_yx
            if getattr(scene, "whole_only", False) and scene.info.nbytes > max_bytes:
                continue  # its header was read; decoding it whole is for the export
            for y0 in {0, max(0, rows - 1)}:
                scene.read(y0, min(rows, y0 + 1), 0, cols)
        return [scene.info for scene in image.scenes]


def read_array(path: str | Path) -> np.ndarray:
    """The pixels of an image file as stored, with no axes interpreted (a model's output may
    be laid out in any order): a reader's ``read_array`` when it has one, else the first scene
    as (rows, cols[, channels])."""
    path = Path(path)
    reader = reader_for(path)
    direct = getattr(reader, "read_array", None)
    try:
        if direct is not None:
            return direct(path)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path.name}: cannot be read as an image ({reason(exc)}).") from exc
    pixels, _ = read_image(path)
    return pixels[..., 0] if pixels.shape[2] == 1 else pixels


@dataclass(frozen=True)
class Scan:
    """What a folder holds: the images to process, the files passed over, and the sub-folders
    that could not be searched (with why)."""

    folder: Path
    images: tuple[Path, ...]
    skipped: tuple[Path, ...]
    unsearched: tuple[tuple[Path, str], ...] = ()


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def scan_folder(folder: str | Path, recursive: bool = False) -> Scan:
    """List the images of ``folder`` in natural name order, grouped by reader (TIFFs first).

    Any other file is listed in ``skipped``; an image that is a folder (``X.zarr``) is one
    image, never searched inside. ``recursive`` follows links to folders, but searches each
    folder once: a link back up the tree (a loop) or to a folder already searched adds nothing.
    A sub-folder that cannot be read is listed in ``unsearched``; the folder itself raises
    (FileNotFoundError, NotADirectoryError, PermissionError).
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    suffixes, folder_images = image_suffixes(), image_folder_suffixes()
    entries: list[Path] = []
    pending = [folder]
    searched: set[tuple[int, int]] = set()  # (device, inode) of the folders searched
    unsearched: list[tuple[Path, str]] = []
    while pending:
        current = pending.pop()
        try:
            stat = current.stat()
        except OSError:  # a broken or unreadable link: nothing to search
            continue
        if (stat.st_dev, stat.st_ino) in searched:
            continue
        searched.add((stat.st_dev, stat.st_ino))
        try:
            # in name order, so that of two ways to one folder, the same one is kept every time
            found = sorted(current.iterdir(), key=_natural_key, reverse=True)
        except OSError as exc:
            if current == folder:
                raise
            unsearched.append((current, exc.strerror or str(exc)))
            continue
        for entry in found:
            if entry.is_dir() and entry.suffix.lower() not in folder_images:
                if recursive:
                    pending.append(entry)
            elif entry.is_file() or entry.is_dir():
                entries.append(entry)
    entries.sort(key=lambda p: (_natural_key(p.relative_to(folder)), str(p)))
    rank = {s: i for i, s in enumerate(suffixes)}
    order = {s: i for i, s in enumerate(dict.fromkeys(r.name for r in sorted(readers(), key=_listing_rank)))}
    by_suffix = {s: order[r.name] for r in readers() for s in r.suffixes if s in rank}
    images = sorted((p for p in entries if p.suffix.lower() in rank), key=lambda p: by_suffix[p.suffix.lower()])
    skipped = [p for p in entries if p.suffix.lower() not in rank]
    return Scan(folder, tuple(images), tuple(skipped), tuple(sorted(unsearched)))


__all__ = [
    "PLANE_AXES",
    "BaseFile",
    "ImageFile",
    "Reader",
    "Scan",
    "Scene",
    "SceneInfo",
    "from_yxc",
    "image_folder_suffixes",
    "image_suffixes",
    "inspect_image",
    "is_image",
    "open_image",
    "read_array",
    "read_image",
    "reader_for",
    "readers",
    "register",
    "scan_folder",
    "thin_overview",
    "to_yxc",
    "unregister",
    "verify",
]
