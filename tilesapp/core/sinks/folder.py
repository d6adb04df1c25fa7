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

    def _prefixes(self, split: str) -> tuple[str, str, str]:
        """Folders of a split's images, masks and labels, each ending in '/' (or empty)."""
        cache = self.__dict__.setdefault("_prefix_cache", {})  # names() is called for every tile
        if split not in cache:
            cache[split] = tuple(f"{folder}/" if folder else "" for folder in
                                 (self._folder(split, kind) for kind in ("images", "masks", "labels")))
        return cache[split]

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
        images, masks, labels = self._prefixes(split)
        run = self.run
        return TileFiles(
            file=f"{images}{name}.{run.settings.format}",
            mask=f"{masks}{name}.{mask_format}" if run.masks else None,
            label=f"{labels}{name}.txt" if run.labels else None,
        )


SINK = FolderSink
