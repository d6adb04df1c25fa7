"""The "plain" layout: ``OUTPUT[/train|/val][/images|/masks|/labels]/<stem>_<index>.<ext>``.

Without masks or labels the tiles lie in the export folder itself (or in ``train/`` and
``val/`` when sources are split); with them, images, masks and labels each get a folder, and
the labels' ``classes.txt`` is copied beside them.
"""

from __future__ import annotations

from tilesapp.core.sinks.base import Layout, TileFiles, join


class FolderSink(Layout):
    layout = "plain"

    def _folder(self, split: str, kind: str) -> str:
        run = self.run
        return join(split if run.split else "", kind if (run.masks or run.labels) else "")

    def prepare(self) -> list[str]:
        run = self.run
        kinds = ["images"] + ["masks"] * run.masks + ["labels"] * run.labels
        written = []
        for split in run.splits:
            for kind in kinds:
                (self.folder / self._folder(split, kind)).mkdir(parents=True, exist_ok=True)
            if run.classes is not None and run.classes.is_file():
                written.append(self.copy_in(run.classes, join(split if run.split else "", "classes.txt")))
        return written

    def names(self, stem: str, index: int, width: int, split: str, mask_format: str | None) -> TileFiles:
        name = f"{stem}_{index:0{width}d}"
        return TileFiles(
            file=join(self._folder(split, "images"), f"{name}.{self.run.settings.format}"),
            mask=join(self._folder(split, "masks"), f"{name}.{mask_format}") if self.run.masks else None,
            label=join(self._folder(split, "labels"), f"{name}.txt") if self.run.labels else None,
        )


SINK = FolderSink
