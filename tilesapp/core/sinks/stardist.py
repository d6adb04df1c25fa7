"""The "stardist" layout: ``images/`` + ``masks/`` (instance labels: one id per object) with the
same file names, in ``train/`` and ``val/`` when the sources are split — the folders StarDist's
example notebooks read (``sorted(glob('train/images/*.tif'))`` and the same for masks).
"""

from __future__ import annotations

from tilesapp.core.sinks.base import TileFiles, join
from tilesapp.core.sinks.dataset import TrainingLayout


class StardistSink(TrainingLayout):
    layout = "stardist"

    def _folder(self, split: str, kind: str) -> str:
        return join(split if self.run.split else "", kind)

    def prepare(self) -> list[str]:
        for split in self.run.splits:
            for kind in ("images", "masks"):
                (self.folder / self._folder(split, kind)).mkdir(parents=True, exist_ok=True)
        return []

    def names(self, stem: str, index: int, width: int, split: str, mask_format: str | None) -> TileFiles:
        name = self.tile_name(stem, index, width)
        return TileFiles(file=join(self._folder(split, "images"), f"{name}.{self.run.settings.format}"),
                         mask=join(self._folder(split, "masks"), f"{name}.{mask_format}") if self.run.masks else None)


SINK = StardistSink
