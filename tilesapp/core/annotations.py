"""Annotations cut on the image's grid: label masks and YOLO boxes.

Masks are resampled with nearest neighbour only (label values kept exactly, none invented) and
never normalized. YOLO boxes (``class cx cy w h``, normalized to the source image) are scaled
with the image and cut into each tile: a box enters a tile with its clipped part when at least
``min_visibility`` of its area lies inside the tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.geometry import Tile
from tilesapp.core.readers import SceneInfo, image_suffixes, is_image
from tilesapp.core.textfiles import read_text


#: Largest class id a label file may hold (YOLO class ids index a list of names).
MAX_CLASS = 999_999


class AnnotationFolders:
    """The masks and labels folders of a training set, each listed once, and how an image's
    mask and label file are found in them (the export and the preview share this)."""

    def __init__(self, masks: Path | None = None, labels: Path | None = None):
        self.masks = None if masks is None else Path(masks)
        self.labels = None if labels is None else Path(labels)
        self._masks: dict[str, Path] = {}
        self._labels: dict[str, Path] = {}
        if self.masks is not None:
            rank = {s: i for i, s in enumerate(image_suffixes())}
            images = sorted((p for p in self.masks.iterdir() if is_image(p)), key=lambda p: rank[p.suffix.lower()])
            for path in images:  # lossless formats first: .tif before .png before .jpg
                self._masks.setdefault(path.stem.casefold(), path)
        if self.labels is not None:
            for path in self.labels.iterdir():
                if path.is_file() and path.suffix.lower() == ".txt":
                    self._labels.setdefault(path.stem.casefold(), path)

    def find(self, image: Path, name: str) -> tuple[Path | None, Path | None]:
        """(mask file, label file) of ``image`` (None where no folder is set).

        Raises :class:`ImageError` naming the image and the folder when one is missing.
        """
        stem = Path(image).stem
        mask = labels = None
        if self.masks is not None:
            mask = self._masks.get(stem.casefold())
            if mask is None:
                raise ImageError(f"{name} has no mask in {self.masks} (looked for {stem}.tif, {stem}.png, …).")
        if self.labels is not None:
            labels = self._labels.get(stem.casefold())
            if labels is None:
                raise ImageError(
                    f"{name} has no label file {stem}.txt in {self.labels}; an image without objects needs an empty one."
                )
        return mask, labels


def resize_nearest(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of a (rows, cols, ...) array to ``shape``, any dtype.

    Output pixel ``i`` takes source pixel ``floor((i + 0.5) * n_in / n_out)``: pixel centres
    are aligned, so values are only ever copied, never mixed.

    >>> resize_nearest(np.array([[1, 2], [3, 4]]), (4, 4))
    array([[1, 1, 2, 2],
           [1, 1, 2, 2],
           [3, 3, 4, 4],
           [3, 3, 4, 4]])
    """
    rows_in, cols_in = array.shape[:2]
    rows, cols = shape
    if (rows, cols) == (rows_in, cols_in):
        return array
    return array[nearest_index(rows_in, rows)[:, np.newaxis], nearest_index(cols_in, cols)[np.newaxis, :]]


def nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output position along one axis: ``floor((i + 0.5) * n_in / n_out)``.

    >>> nearest_index(2, 5).tolist()
    [0, 0, 1, 1, 1]
    """
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.intp), n_in - 1)


def check_mask_shape(info: SceneInfo, image_name: str, image_shape_yx: tuple[int, int]) -> None:
    """Raise :class:`ImageError` unless the mask described by ``info`` has the image's shape."""
    if info.shape_yx != tuple(image_shape_yx):
        raise ImageError(
            f"{image_name}: its mask {info.path.name} is {info.shape_yx[0]} × {info.shape_yx[1]} px but the image is "
            f"{image_shape_yx[0]} × {image_shape_yx[1]} px; masks must have the image's shape."
        )


@dataclass(frozen=True)
class Boxes:
    """YOLO boxes of one image in pixels of the (recalibrated) image.

    ``classes`` (n,) int; ``xyxy`` (n, 4) float: x0, y0, x1, y1, clipped to the image.
    """

    classes: np.ndarray
    xyxy: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)


def read_yolo(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse a YOLO label file: (classes (n,), boxes (n, 4) as normalized cx, cy, w, h).

    Raises :class:`ImageError` naming the file and the line of the first malformed line.
    """
    classes, boxes = [], []
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageError(f"{path.name}: cannot be read ({exc}).") from exc
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        problem = None
        if len(parts) != 5:
            problem = f"expected 5 values 'class cx cy w h', found {len(parts)}"
        else:
            try:
                cls = float(parts[0])
                cx, cy, w, h = (float(p) for p in parts[1:])
            except ValueError:
                problem = "values must be numbers"
            else:
                if not cls.is_integer() or not 0 <= cls <= MAX_CLASS:
                    problem = f"class must be a whole number from 0 to {MAX_CLASS}, got {parts[0]}"
                elif not all(np.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in (cx, cy, w, h)):
                    problem = "cx, cy, w and h must lie between 0 and 1 (normalized to the image)"
                elif w <= 0 or h <= 0:
                    problem = "w and h must be greater than 0"
        if problem:
            raise ImageError(f"{path.name}: line {number}: {problem}: {line.strip()!r}.")
        classes.append(int(cls))
        boxes.append((cx, cy, w, h))
    return np.array(classes, dtype=np.int64), np.array(boxes, dtype=np.float64).reshape(-1, 4)


def scale_boxes(classes: np.ndarray, cxcywh: np.ndarray, shape: tuple[int, int]) -> Boxes:
    """Normalized YOLO boxes → pixel boxes of an image of ``shape`` (rows, cols), clipped."""
    rows, cols = shape
    cx, cy, w, h = cxcywh.T if len(cxcywh) else (np.empty(0),) * 4
    xyxy = np.stack([(cx - w / 2) * cols, (cy - h / 2) * rows, (cx + w / 2) * cols, (cy + h / 2) * rows], axis=-1)
    xyxy = np.clip(xyxy.reshape(-1, 4), 0, [cols, rows, cols, rows])
    return Boxes(classes, xyxy)


def visible(boxes: Boxes, tile: Tile, min_visibility: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, boxes clipped to the tile as x0, y0, x1, y1) of the boxes that enter ``tile``:
    the part of their area inside it is at least ``min_visibility`` (and not zero)."""
    if not len(boxes):
        return np.empty(0, np.int64), np.empty((0, 4))
    x0, y0, x1, y1 = boxes.xyxy.T
    ix0, iy0 = np.maximum(x0, tile.x0), np.maximum(y0, tile.y0)
    ix1, iy1 = np.minimum(x1, tile.x1), np.minimum(y1, tile.y1)
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area = (x1 - x0) * (y1 - y0)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.flatnonzero((inter > 0) & (inter >= min_visibility * area - 1e-9))
    return keep, np.column_stack([ix0, iy0, ix1, iy1])[keep]


def boxes_in_tile(boxes: Boxes, tile: Tile, tile_size: int, min_visibility: float) -> list[tuple[int, float, float, float, float]]:
    """YOLO lines ``(class, cx, cy, w, h)`` of the boxes visible in ``tile`` (:func:`visible`),
    clipped and normalized to it."""
    keep, clipped = visible(boxes, tile, min_visibility)
    lines = []
    for i, (x0, y0, x1, y1) in zip(keep, clipped):
        cx = ((x0 + x1) / 2 - tile.x0) / tile_size
        cy = ((y0 + y1) / 2 - tile.y0) / tile_size
        lines.append((int(boxes.classes[i]), cx, cy, (x1 - x0) / tile_size, (y1 - y0) / tile_size))
    return lines


def format_yolo(lines: list[tuple[int, float, float, float, float]]) -> str:
    """Text of a YOLO label file (empty string for a tile without boxes)."""
    return "".join(f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n" for c, cx, cy, w, h in lines)


def box_coverage(boxes: Boxes, tile: Tile) -> float:
    """Share of the tile's image area covered by the union of the boxes."""
    rows, cols = tile.y1 - tile.y0, tile.x1 - tile.x0
    covered = np.zeros((rows, cols), bool)
    for x0, y0, x1, y1 in boxes.xyxy:
        r0, r1 = int(np.floor(max(y0, tile.y0))) - tile.y0, int(np.ceil(min(y1, tile.y1))) - tile.y0
        c0, c1 = int(np.floor(max(x0, tile.x0))) - tile.x0, int(np.ceil(min(x1, tile.x1))) - tile.x0
        if r1 > r0 and c1 > c0:
            covered[r0:r1, c0:c1] = True
    return float(covered.mean())
