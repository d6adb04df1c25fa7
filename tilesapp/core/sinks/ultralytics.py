"""The "ultralytics" layout: ``images/{train,val}/`` + ``labels/{train,val}/`` + ``data.yaml``.

Ultralytics finds each image's labels by replacing ``/images/`` with ``/labels/`` in its path
and the suffix with ``.txt``; ``data.yaml`` names the two folders (relative: ultralytics takes
the folder of ``data.yaml`` as the dataset root when it has no ``path``, so the dataset can be
moved), the classes, and ``channels`` when tiles are not RGB. Without a split every tile is in
``train`` and ``val`` names the same folder. Tiles are uint8 (the settings refuse others).
"""

from __future__ import annotations

import json

from tilesapp import __version__
from tilesapp.core.manifest import Manifest
from tilesapp.core.sinks.base import TileFiles, join
from tilesapp.core.sinks.dataset import TrainingLayout


class UltralyticsSink(TrainingLayout):
    layout = "ultralytics"

    def _side(self, split: str) -> str:
        return split if self.run.split else "train"

    def prepare(self) -> list[str]:
        for split in self.run.splits:
            for kind in ("images", "labels"):
                (self.folder / kind / self._side(split)).mkdir(parents=True, exist_ok=True)
        return []

    def names(self, stem: str, index: int, width: int, split: str, mask_format: str | None) -> TileFiles:
        name, side = self.tile_name(stem, index, width), self._side(split)
        return TileFiles(file=join("images", side, f"{name}.{self.run.settings.format}"),
                         label=join("labels", side, f"{name}.txt") if self.run.labels else None)

    def write(self, name, array, axes, pixel_size_um) -> None:
        if name is not None:  # masks (boxes were taken from them) are not part of the layout
            super().write(name, array, axes, pixel_size_um)

    def finish(self, manifest: Manifest) -> list[str]:
        names = list(self.class_names)
        top = self._largest_class(manifest)
        names += [f"class_{k}" for k in range(len(names), top + 1)]
        sides = self.splits_written(manifest)
        val = "images/val" if self.run.split and "val" in self.run.splits else "images/train"
        lines = [f"# Ultralytics YOLO dataset written by Tiles Creator {__version__}.",
                 "# Train: yolo detect train data=data.yaml (ultralytics takes this file's folder as the dataset root).",
                 "train: images/train", f"val: {val}", f"nc: {len(names)}", "names:"]
        lines += [f"  {k}: {json.dumps(name)}" for k, name in enumerate(names)]
        channels = self._channels(manifest)
        if channels not in (None, 3):
            lines.append(f"channels: {channels}")
        if not sides.get("val") and self.run.split:
            lines.append("# no image went to val: validation uses an empty folder")
        self.write_text("data.yaml", "\n".join(lines) + "\n")
        return ["data.yaml"]

    def _largest_class(self, manifest: Manifest) -> int:
        """The largest class id in the label files written (-1 when none)."""
        top = -1
        for tile in manifest.tiles:
            if not tile.label or not tile.boxes:
                continue
            try:
                text = (self.folder / tile.label).read_text(encoding="utf-8")
            except OSError:
                continue
            for line in text.splitlines():
                if line.strip():
                    top = max(top, int(line.split()[0]))
        return top

    @staticmethod
    def _channels(manifest: Manifest) -> int | None:
        for source in manifest.sources:
            if source.status == "ok" and source.shape:
                return source.channels
        return None


SINK = UltralyticsSink
