"""Boxes predicted on tiles, merged into the boxes of whole images (YOLO and COCO).

A detector's output for a tile is a YOLO file named like the tile (``<tile stem>.txt``): one
line ``class cx cy w h [confidence]`` per box, normalized to the tile (a missing file is a tile
without detections, as YOLO writes none). Boxes are placed in the image (recalibrated pixels)
and clipped to it; the duplicates that overlapping tiles give are merged class by class:

- two boxes are compared where both of their tiles see: each is clipped to the intersection of
  the two tiles before their IoU is taken, so a box cut by one tile's edge matches the whole
  box its neighbour found (boxes of one tile: the plain IoU);
- a box touching an inner edge of its tile (probably cut) ranks as if its confidence were
  halved, so the neighbour's whole box is kept;
- "nms" keeps the best-ranked box of each group, extended on the sides where its tile cut it
  by the boxes it replaces; "wbf" (weighted box fusion) averages each side over the group,
  weighted by confidence, leaving out the sides a tile cut. The confidence reported is the
  kept box's (nms) or the group's mean (wbf), never the halved one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilesapp.core.annotations import MAX_CLASS
from tilesapp.core.errors import ImageError, SettingsError
from tilesapp.core.textfiles import read_text

FUSIONS = ("nms", "wbf")
#: Tile pixels from an inner edge within which a box counts as cut by it.
EDGE_MARGIN = 2.0
#: Rank of a cut box relative to its confidence.
EDGE_WEIGHT = 0.5
#: Normalized coordinates may overshoot [0, 1] by this much (rounding in writers).
TOLERANCE = 1e-3
#: A prediction file larger than this is not one.
MAX_FILE_BYTES = 64 << 20
#: Where a class names file is looked for.
CLASSES_NAME = "classes.txt"


@dataclass(frozen=True)
class PlacedBoxes:
    """Boxes in image pixels: ``classes`` (n,), ``xyxy`` (n, 4) x0 y0 x1 y1, ``conf`` (n,),
    ``tiles`` (n, 4) the box of the tile each came from (its part in the image), and ``cut``
    (n, 4) whether the box touches that tile's left, top, right, bottom inner edge."""

    classes: np.ndarray
    xyxy: np.ndarray
    conf: np.ndarray
    tiles: np.ndarray
    cut: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)

    @classmethod
    def empty(cls) -> PlacedBoxes:
        return cls(np.empty(0, np.int64), np.empty((0, 4)), np.empty(0), np.empty((0, 4)), np.empty((0, 4), bool))

    def take(self, index) -> PlacedBoxes:
        return PlacedBoxes(self.classes[index], self.xyxy[index], self.conf[index], self.tiles[index], self.cut[index])

    def scaled(self, shape: tuple[int, int], size: tuple[int, int]) -> PlacedBoxes:
        """The boxes of an image of ``shape`` (rows, cols) in pixels of the same image at ``size``."""
        if tuple(shape) == tuple(size):
            return self
        factor = np.array([size[1] / shape[1], size[0] / shape[0]] * 2)
        return PlacedBoxes(self.classes, self.xyxy * factor, self.conf, self.tiles * factor, self.cut)


def check_predictions(folder: str | Path, fusion: str) -> Path:
    """The folder of prediction files, checked (SettingsError naming the option)."""
    if fusion not in FUSIONS:
        raise SettingsError("box_fusion", f"{{name}} must be one of {', '.join(FUSIONS)}; got {fusion!r}.")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise SettingsError("boxes", f"{{name}} {path} is not a folder; give the folder of the per-tile prediction files.")
    return path.absolute()


def prediction_files(folder: Path) -> dict[str, Path]:
    """The ``.txt`` files below ``folder`` by stem (a stem found twice is refused)."""
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.txt")):
        if path.name == CLASSES_NAME or not path.is_file():
            continue
        if path.stem in files:
            raise SettingsError("boxes", f"two prediction files are named {path.name} in {folder} "
                                         f"({files[path.stem].relative_to(folder)} and {path.relative_to(folder)}); "
                                         f"keep one per tile.")
        files[path.stem] = path
    return files


def read_predictions(path: Path) -> np.ndarray:
    """Parse a per-tile prediction file: (n, 6) class, cx, cy, w, h, confidence (1 when absent).

    Raises :class:`ImageError` naming the file and line of the first line that is not a box
    inside the tile.
    """
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ImageError(f"{path.name}: {path.stat().st_size >> 20} MB is too large for a prediction file.")
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageError(f"{path.name}: cannot be read ({exc}).") from exc
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        values, problem = _parse_line(parts)
        if problem:
            raise ImageError(f"{path.name}: line {number}: {problem}: {line.strip()[:120]!r}.")
        rows.append(values)
    return np.array(rows, np.float64).reshape(-1, 6)


def _parse_line(parts: list[str]) -> tuple[list[float], str | None]:
    if len(parts) not in (5, 6):
        return [], f"expected 'class cx cy w h [confidence]', found {len(parts)} values"
    try:
        values = [float(p) for p in parts] + ([] if len(parts) == 6 else [1.0])
    except ValueError:
        return [], "values must be numbers"
    cls, cx, cy, w, h, conf = values
    if not all(np.isfinite(values)):
        return [], "values must be finite numbers (not NaN or infinity)"
    if not cls.is_integer() or not 0 <= cls <= MAX_CLASS:
        return [], f"class must be a whole number from 0 to {MAX_CLASS}"
    if w <= 0 or h <= 0:
        return [], "w and h must be greater than 0"
    if not (-TOLERANCE <= cx <= 1 + TOLERANCE and -TOLERANCE <= cy <= 1 + TOLERANCE) or w > 1 + TOLERANCE \
            or h > 1 + TOLERANCE:
        return [], "the box lies outside the tile (cx, cy between 0 and 1, w and h at most 1, normalized to the tile)"
    if not 0 <= conf <= 1:
        return [], "confidence must lie between 0 and 1"
    return values, None


def place_boxes(rows: np.ndarray, tile, tile_size: int, shape: tuple[int, int]) -> PlacedBoxes:
    """Tile-normalized boxes (:func:`read_predictions`) of ``tile`` (``y0, x0, y1, x1`` in the
    image) as boxes of an image of ``shape`` (rows, cols), clipped to the tile's part inside
    the image; boxes lying wholly in a tile's padding are left out."""
    if not len(rows):
        return PlacedBoxes.empty()
    cls, cx, cy, w, h, conf = rows.T
    x0, x1 = (cx - w / 2) * tile_size, (cx + w / 2) * tile_size  # tile pixels
    y0, y1 = (cy - h / 2) * tile_size, (cy + h / 2) * tile_size
    inner_left, inner_top = tile.x0 > 0, tile.y0 > 0
    inner_right, inner_bottom = tile.x1 < shape[1], tile.y1 < shape[0]
    cut = np.stack([inner_left & (x0 <= EDGE_MARGIN), inner_top & (y0 <= EDGE_MARGIN),
                    inner_right & (x1 >= tile_size - EDGE_MARGIN), inner_bottom & (y1 >= tile_size - EDGE_MARGIN)], axis=1)
    region = np.array([tile.x0, tile.y0, tile.x1, tile.y1], np.float64)
    xyxy = np.stack([x0 + tile.x0, y0 + tile.y0, x1 + tile.x0, y1 + tile.y0], axis=1)
    xyxy = np.clip(xyxy, region[[0, 1, 0, 1]], region[[2, 3, 2, 3]])
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    n = int(keep.sum())
    return PlacedBoxes(cls[keep].astype(np.int64), xyxy[keep], conf[keep], np.tile(region, (n, 1)), cut[keep])


def concat(parts: list[PlacedBoxes]) -> PlacedBoxes:
    if not parts:
        return PlacedBoxes.empty()
    return PlacedBoxes(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("classes", "xyxy", "conf", "tiles", "cut")))


def shared_iou(boxes: PlacedBoxes, i: int, others: np.ndarray) -> np.ndarray:
    """IoU of box ``i`` with each box of ``others``, both clipped to where their two tiles overlap.

    >>> tiles = np.array([[0, 0, 100, 100], [60, 0, 160, 100]], float)
    >>> cut = np.array([[False, False, True, False], [False] * 4])
    >>> b = PlacedBoxes(np.zeros(2, int), np.array([[80, 10, 100, 30], [80, 10, 130, 30]], float), np.ones(2), tiles, cut)
    >>> shared_iou(b, 0, np.array([1]))  # cut by the first tile's right edge, whole in the second
    array([1.])
    """
    t_i, t_j = boxes.tiles[i], boxes.tiles[others]
    region = np.concatenate([np.maximum(t_i[:2], t_j[:, :2]), np.minimum(t_i[2:], t_j[:, 2:])], axis=1)
    a = np.clip(boxes.xyxy[i], region[:, [0, 1, 0, 1]], region[:, [2, 3, 2, 3]])
    b = np.clip(boxes.xyxy[others], region[:, [0, 1, 0, 1]], region[:, [2, 3, 2, 3]])
    inter = _area(np.concatenate([np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])], axis=1))
    union = _area(a) + _area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _area(xyxy: np.ndarray) -> np.ndarray:
    return np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None) * np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)


def merge_boxes(boxes: PlacedBoxes, iou: float = 0.5, fusion: str = "nms") -> PlacedBoxes:
    """One box per object: the best-ranked box of a class, with every box whose shared IoU
    (:func:`shared_iou`) with it — or with a box so found — reaches ``iou``, fused (see the
    module docstring). Deterministic: equal ranks are taken in the order the boxes came."""
    if fusion not in FUSIONS:
        raise SettingsError("box_fusion", f"{{name}} must be one of {', '.join(FUSIONS)}; got {fusion!r}.")
    rank = boxes.conf * np.where(boxes.cut.any(axis=1), EDGE_WEIGHT, 1.0)
    kept: list[tuple[int, np.ndarray, float, int]] = []
    for cls in np.unique(boxes.classes):
        index = np.flatnonzero(boxes.classes == cls)
        order = index[np.lexsort((index, -rank[index]))]
        alive = np.ones(len(order), bool)
        for a in range(len(order)):
            if not alive[a]:
                continue
            alive[a] = False
            same, new = [], [a]
            while new:  # an object cut by several tiles: its parts match one after the other
                found = []
                for member in new:
                    rest = np.flatnonzero(alive)
                    if len(rest):
                        hit = rest[shared_iou(boxes, order[member], order[rest]) >= iou]
                        alive[hit] = False
                        found.extend(hit.tolist())
                same += found
                new = found
            box, conf = _fuse(boxes, order[a], order[np.array(same, np.intp)], fusion)
            kept.append((int(cls), box, conf, int(order[a])))
    if not kept:
        return PlacedBoxes.empty()
    kept.sort(key=lambda k: (k[1][1], k[1][0], k[0]))  # top to bottom, left to right
    keepers = np.array([k[3] for k in kept], np.intp)  # each box keeps its best-ranked box's tile
    return PlacedBoxes(np.array([k[0] for k in kept], np.int64), np.array([k[1] for k in kept]),
                       np.array([k[2] for k in kept]), boxes.tiles[keepers], boxes.cut[keepers])


def _fuse(boxes: PlacedBoxes, keeper: int, others: np.ndarray, fusion: str) -> tuple[np.ndarray, float]:
    """The box and confidence standing for a group (``keeper`` ranked first)."""
    group = np.concatenate([[keeper], others]).astype(np.intp)
    xyxy, cut, conf = boxes.xyxy[group], boxes.cut[group], boxes.conf[group]
    outermost = np.array([xyxy[:, 0].min(), xyxy[:, 1].min(), xyxy[:, 2].max(), xyxy[:, 3].max()])
    if fusion == "nms":
        box = np.where(cut[0], outermost, xyxy[0])  # a side its tile cut is taken from the others
        return box, float(conf[0])
    box = outermost.copy()
    for side in range(4):
        real = ~cut[:, side]
        if real.any():
            weights = np.maximum(conf[real], 1e-12)
            box[side] = float(np.average(xyxy[real, side], weights=weights))
    return box, float(conf.mean())


# --- output ---------------------------------------------------------------------------------------
def yolo_text(boxes: PlacedBoxes, shape: tuple[int, int]) -> str:
    """YOLO lines ``class cx cy w h confidence`` normalized to an image of ``shape`` (rows, cols)."""
    rows, cols = shape
    lines = []
    for cls, (x0, y0, x1, y1), conf in zip(boxes.classes, boxes.xyxy, boxes.conf):
        lines.append(f"{cls} {(x0 + x1) / 2 / cols:.6f} {(y0 + y1) / 2 / rows:.6f} {(x1 - x0) / cols:.6f} "
                     f"{(y1 - y0) / rows:.6f} {conf:.5f}\n")
    return "".join(lines)


def class_names(*places) -> list[str] | None:
    """Class names from the first ``classes.txt`` found in the given folders (or a manifest's
    folder and labels), or None."""
    for place in places:
        folders = [place] if isinstance(place, Path) else [Path(p) for p in (getattr(place, "labels", None),) if p]
        for folder in folders:
            for path in [folder / CLASSES_NAME, *sorted(folder.glob(f"*/{CLASSES_NAME}"))]:
                if path.is_file() and path.stat().st_size < MAX_FILE_BYTES:
                    try:
                        return [line.strip() for line in read_text(path).splitlines() if line.strip()]
                    except (OSError, UnicodeDecodeError):
                        continue
    return None


class CocoFile:
    """A COCO detection file built image by image: ``bbox`` is ``[x, y, w, h]`` in the image's
    pixels, ``category_id`` is the YOLO class + 1 (COCO ids start at 1), ``score`` the confidence."""

    def __init__(self, names: list[str] | None = None):
        self.names_file = names
        self.names = list(names or [])
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self.classes: set[int] = set()

    def add_image(self, file: str, shape: tuple[int, int], boxes: PlacedBoxes) -> None:
        image_id = len(self.images) + 1
        self.images.append({"id": image_id, "file_name": file, "height": int(shape[0]), "width": int(shape[1])})
        for cls, (x0, y0, x1, y1), conf in zip(boxes.classes, boxes.xyxy, boxes.conf):
            w, h = x1 - x0, y1 - y0
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                "bbox": [round(float(x0), 2), round(float(y0), 2), round(float(w), 2), round(float(h), 2)],
                "area": round(float(w * h), 2), "score": round(float(conf), 5), "iscrowd": 0,
            })
            self.classes.add(int(cls))

    def document(self) -> dict:
        top = max(self.classes | {len(self.names) - 1}) if (self.classes or self.names) else -1
        categories = [{"id": k + 1, "name": self.names[k] if k < len(self.names) else f"class{k}"} for k in range(top + 1)]
        return {"images": self.images, "annotations": self.annotations, "categories": categories}


__all__ = [
    "CLASSES_NAME", "EDGE_MARGIN", "EDGE_WEIGHT", "FUSIONS", "CocoFile", "PlacedBoxes", "check_predictions",
    "class_names", "concat", "merge_boxes", "place_boxes", "prediction_files", "read_predictions", "shared_iou",
    "yolo_text",
]
