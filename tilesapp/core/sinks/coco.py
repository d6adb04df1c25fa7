"""The "coco" layout: tiles in ``images/`` and one ``annotations.json`` beside them (in
``train/`` and ``val/`` when the sources are split) — a COCO detection/instance dataset:
``images`` (every tile, with its size), ``categories`` (the class table, ids from 1),
``annotations`` (a box each; polygons clipped to the tile for imported annotations, traced
from the instance mask for objects of masks; boxes alone for YOLO labels).

Each tile's objects are written beside it in a hidden ``.objects/`` folder as the tile is cut
(so tiles cut in other processes count too) and gathered into ``annotations.json`` at the end.
"""

from __future__ import annotations

import json
import threading

import cv2
import numpy as np

from tilesapp import __version__
from tilesapp.core.manifest import Manifest
from tilesapp.core.sinks.base import TileFiles, join
from tilesapp.core.sinks.dataset import TrainingLayout

OBJECTS = ".objects"


class CocoSink(TrainingLayout):
    layout = "coco"

    def __init__(self, run, folder=None, manifest=None):
        super().__init__(run, folder, manifest)
        self._masks: dict[int, np.ndarray] = {}  # the mask tile of the tile each thread is writing
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_masks"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _base(self, split: str) -> str:
        return split if self.run.split else ""

    def prepare(self) -> list[str]:
        for split in self.run.splits:
            for kind in ("images", OBJECTS):
                (self.folder / join(self._base(split), kind)).mkdir(parents=True, exist_ok=True)
        return []

    def names(self, stem: str, index: int, width: int, split: str, mask_format: str | None) -> TileFiles:
        name, base = self.tile_name(stem, index, width), self._base(split)
        return TileFiles(file=join(base, "images", f"{name}.{self.run.settings.format}"),
                         label=join(base, OBJECTS, f"{name}.json") if self.run.labels else None)

    def write(self, name, array, axes, pixel_size_um) -> None:
        if name is None:  # the instance mask of the tile: kept for tracing its objects
            with self._lock:
                self._masks[threading.get_ident()] = np.asarray(array)
            return
        super().write(name, array, axes, pixel_size_um)

    def write_objects(self, name: str, objects: list) -> None:
        """Write one tile's objects (:class:`tilesapp.core.annotations_in.TileObject`)."""
        with self._lock:
            mask = self._masks.pop(threading.get_ident(), None)
        entries = []
        for obj in objects:
            entry = {"category_id": obj.cls + 1, "bbox": _xywh(obj.box), "area": round(obj.area, 3), "iscrowd": 0}
            if obj.polygons:
                entry["segmentation"] = [[round(v, 2) for v in p] for p in obj.polygons]
            elif obj.instance is not None and mask is not None:
                traced = trace(mask, obj.instance)
                if traced is None:
                    continue  # its box entered the tile, none of its pixels did
                entry.update(traced)
            entries.append(entry)
        self.write_text(name, json.dumps(entries))

    def finish(self, manifest: Manifest) -> list[str]:
        written = []
        by_side = self.splits_written(manifest)
        for split in self.run.splits:
            base = self._base(split)
            images, annotations = [], []
            for number, tile in enumerate(by_side.get(split, []), start=1):
                images.append({"id": number, "file_name": tile.file.rsplit("/", 1)[-1],
                               "width": manifest.tile_size, "height": manifest.tile_size})
                for entry in self._objects(tile):
                    annotations.append({"id": len(annotations) + 1, "image_id": number, **entry})
            top = max((a["category_id"] for a in annotations), default=0)
            names = list(self.class_names) + [f"class_{k}" for k in range(len(self.class_names) + 1, top + 1)]
            data = {"info": {"description": f"Tiles written by Tiles Creator {__version__}", "version": __version__},
                    "licenses": [], "images": images, "annotations": annotations,
                    "categories": [{"id": k, "name": n, "supercategory": "object"} for k, n in enumerate(names, 1)]}
            written.append(self.write_json(join(base, "annotations.json"), data))
            try:
                (self.folder / join(base, OBJECTS)).rmdir()
            except OSError:
                pass
        return written

    def _objects(self, tile) -> list[dict]:
        """A tile's objects, read from (and removed with) its file in ``.objects/``."""
        if not tile.label:
            return []
        path = self.folder / tile.label
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            path.unlink()
        except (OSError, ValueError):
            return []
        tile.label = None  # gathered into annotations.json: the manifest no longer lists it
        return entries


def _xywh(box) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]


def trace(mask: np.ndarray, instance: int) -> dict | None:
    """Polygons (outlines through the centres of the object's border pixels), box and area of
    instance ``instance`` in a mask tile; None when it has no pixel there."""
    labels = mask[..., 0] if mask.ndim == 3 else mask
    inside = (labels == instance).astype(np.uint8)
    area = int(inside.sum())
    if not area:
        return None
    x, y, w, h = cv2.boundingRect(inside)
    contours, _ = cv2.findContours(inside, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = [(c.reshape(-1, 2) + 0.5).reshape(-1).tolist() for c in contours if len(c) >= 3]
    if not polygons:  # a line or a point of pixels: its box as the outline
        polygons = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    return {"segmentation": [[float(v) for v in p] for p in polygons], "bbox": [x, y, w, h], "area": area}


SINK = CocoSink
