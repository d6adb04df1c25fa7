"""What the framework layouts share: the run's class table, names of tiles (or of whole
images), and reading back whole images for merge.

A framework layout is a :class:`~tilesapp.core.sinks.base.Layout` given a :class:`TrainingInfo`:
the run's :class:`~tilesapp.core.sinks.base.RunInfo` plus the class names (YOLO order: class
``k`` is ``class_names[k]``; in masks and COCO it is ``k + 1``, 0 being the background).
Layouts keep no state between tiles but what they can rebuild from the files they wrote, so
tiles written in other processes are described at :meth:`finish` as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilesapp.core.manifest import Manifest, TileRecord
from tilesapp.core.sinks.base import Layout, RunInfo
from tilesapp.core.textfiles import read_text


@dataclass(frozen=True)
class TrainingInfo(RunInfo):
    """A run's :class:`RunInfo` with its class names (empty: unknown, read from the files)."""

    class_names: tuple[str, ...] = ()


def class_table(names: tuple[str, ...] | list[str]) -> dict[str, int]:
    """The class table written with an export: background 0, then each class from 1.

    >>> class_table(["cell", "nucleus"])
    {'background': 0, 'cell': 1, 'nucleus': 2}
    """
    table = {"background": 0}
    for k, name in enumerate(names, start=1):
        table[name if name not in table else f"{name} ({k})"] = k
    return table


def read_class_names(path: Path | None) -> tuple[str, ...]:
    """Names of a YOLO ``classes.txt`` (one per line), or () when there is none."""
    if path is None or not Path(path).is_file():
        return ()
    try:
        lines = read_text(path).splitlines()
    except (OSError, UnicodeDecodeError):
        return ()
    return tuple(line.strip() for line in lines if line.strip())


class TrainingLayout(Layout):
    """Base of the framework layouts."""

    #: Folder names of the two sides of a split (train and validation share).
    sides = {"train": "train", "val": "val"}

    @property
    def class_names(self) -> tuple[str, ...]:
        names = getattr(self.run, "class_names", ())
        return tuple(names) or read_class_names(self.run.classes)

    def tile_name(self, stem: str, index: int, width: int) -> str:
        """A tile's file stem; a whole image (nothing cut) keeps the image's stem."""
        if self.run is not None and self.run.settings.whole_images:
            return stem
        return f"{stem}_{index:0{width}d}"

    def side(self, split: str) -> str:
        return self.sides.get(split, split)

    def splits_written(self, manifest: Manifest) -> dict[str, list[TileRecord]]:
        """The tiles of each side, in the manifest's order."""
        out: dict[str, list[TileRecord]] = {}
        for tile in manifest.tiles:
            out.setdefault(tile.split or "train", []).append(tile)
        return out

    def read(self, name: str) -> np.ndarray:
        """A tile as stored; a whole image is padded at its end to the manifest's tile size, as
        merge expects tiles of the grid it rebuilds."""
        array = super().read(name)
        manifest = self.manifest
        if manifest is None or not manifest.settings.get("whole_images"):
            return array
        if array.ndim == 3 and array.shape[0] < min(array.shape[1:]) and array.shape[2] >= min(array.shape[:2]):
            array = np.moveaxis(array, 0, -1)  # channels first (a multi-channel TIFF) → last
        size = manifest.tile_size
        rows, cols = array.shape[:2]
        if (rows, cols) == (size, size) or rows > size or cols > size:
            return array
        pad = [(0, size - rows), (0, size - cols)] + [(0, 0)] * (array.ndim - 2)
        return np.pad(array, pad)

    def write_json(self, name: str, data) -> str:
        self.write_text(name, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
        return name
