"""The "cellpose" layout: ``train/<name>.<ext>`` beside ``train/<name>_masks.<ext>`` (instance
labels: one id per object), the validation share in ``test/`` — what ``cellpose --train --dir
train --test_dir test`` (mask filter ``_masks``, its default) reads.
"""

from __future__ import annotations

from tilesapp.core.sinks.base import TileFiles, join
from tilesapp.core.sinks.dataset import TrainingLayout


class CellposeSink(TrainingLayout):
    layout = "cellpose"
    sides = {"train": "train", "val": "test"}

    def prepare(self) -> list[str]:
        for split in self.run.splits:
            (self.folder / self.side(split)).mkdir(parents=True, exist_ok=True)
        return []

    def names(self, stem: str, index: int, width: int, split: str, mask_format: str | None) -> TileFiles:
        name, side = self.tile_name(stem, index, width), self.side(split)
        return TileFiles(file=join(side, f"{name}.{self.run.settings.format}"),
                         mask=join(side, f"{name}_masks.{mask_format}") if self.run.masks else None)


SINK = CellposeSink
