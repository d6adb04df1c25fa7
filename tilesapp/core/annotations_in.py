"""Annotations drawn in other programs: QuPath GeoJSON, ImageJ/Fiji ROI sets, COCO JSON.

Each file is read into :class:`Shape` objects — a class name and polygons in the pixel
coordinates of the image it was drawn on (``x`` right, ``y`` down, ``0, 0`` the top-left corner of
the first pixel, as QuPath, ImageJ and COCO all count) — or only a box. Shapes are then scaled
with the image (:func:`scale_shapes`), rasterized band by band into class or instance masks
(:func:`rasterize`: a pixel belongs to an object when its centre lies inside, rings combined
even-odd, so holes and self-intersections are well defined, later objects over earlier ones),
turned into boxes, and cut into tiles (:func:`objects_in_tile`: the box-visibility rule of
:func:`tilesapp.core.annotations.boxes_in_tile`, polygons clipped to the tile).

Instance masks given as files are checked (:func:`scan_instances`): every label must be one
connected region, so a binary or class mask is never passed off as instances, and each
object's box is measured.

Everything a file can get wrong raises :class:`~tilesapp.core.errors.ImageError` naming the
file and the feature, ROI or annotation; the image it belongs to fails alone.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tilesapp.core.annotations import Boxes, visible
from tilesapp.core.errors import ImageError
from tilesapp.core.geometry import Tile
from tilesapp.core.textfiles import read_text

#: Largest annotation file read (a whole-slide QuPath export of every cell is a few hundred MB).
MAX_FILE_BYTES = 1 << 30
#: Coordinates beyond this are not pixel positions of any image.
MAX_COORDINATE = 1e9
#: Most polygon crossings a band may produce (bounds the work of absurdly complex shapes).
MAX_CROSSINGS = 200_000_000
#: Suffixes of annotation files, by kind.
GEOJSON_SUFFIXES = (".geojson",)
ROI_SUFFIXES = (".roi", ".zip")
JSON_SUFFIXES = (".json",)
#: The class of an object drawn without one.
UNCLASSIFIED = "object"
_MAX_NAME = 200


# --- shapes ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """One object: a class name, rings ``(n, 2)`` of ``x, y`` (combined even-odd; ``outer``
    lists the rings that are outlines, the others are holes), its box ``x0, y0, x1, y1``, and
    where it came from (for messages). ``rings`` is empty for an object that has only a box."""

    name: str
    rings: tuple[np.ndarray, ...]
    box: tuple[float, float, float, float]
    where: str
    outer: tuple[int, ...] = ()

    @property
    def box_only(self) -> bool:
        return not self.rings


def _shape(name: str, rings: list[np.ndarray], where: str, outer: list[int], box=None) -> Shape:
    if box is None:
        points = np.concatenate(rings)
        box = (float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 0].max()), float(points[:, 1].max()))
    return Shape(name, tuple(rings), tuple(float(v) for v in box), where, tuple(outer))


def class_name(value: Any) -> str:
    """A class name as the export writes it: text, trimmed, at most 200 characters; empty or
    missing is :data:`UNCLASSIFIED`. Never used as a file name.

    >>> class_name("  Tumor "), class_name(None), class_name({"name": "../x"})
    ('Tumor', 'object', '../x')
    """
    if isinstance(value, dict):  # QuPath: {"name": ..., "color": [...]}
        value = value.get("name")
    if isinstance(value, (list, tuple)):  # QuPath derived classes may come as a list of parts
        value = ": ".join(str(v) for v in value)
    text = "" if value is None else "".join(ch for ch in str(value) if ch.isprintable()).strip()
    return text[:_MAX_NAME] or UNCLASSIFIED


def _ring(points: Any, where: str, file: str) -> np.ndarray | None:
    """A ring from a list of points; None when it has no area (skipped); ImageError when malformed."""
    try:
        array = np.array(points, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ImageError(f"{file}: {where}: coordinates must be lists of numbers [x, y].") from None
    if array.ndim != 2 or array.shape[1] < 2 or array.shape[0] == 0:
        raise ImageError(f"{file}: {where}: coordinates must be lists of points [x, y].")
    array = np.ascontiguousarray(array[:, :2])
    if not np.isfinite(array).all():
        raise ImageError(f"{file}: {where}: a coordinate is NaN or infinite.")
    if np.abs(array).max() > MAX_COORDINATE:
        raise ImageError(f"{file}: {where}: coordinate {np.abs(array).max():g} is no pixel position of any image.")
    if len(array) > 1 and np.array_equal(array[0], array[-1]):
        array = array[:-1]  # a closed ring repeats its first point
    if len(array) < 3 or collinear(array):
        return None
    return array


def collinear(ring: np.ndarray) -> bool:
    """True when a ring's points lie on one line (no area; a self-intersecting ring whose lobes
    cancel in the shoelace sum still has area).

    >>> collinear(np.array([[0, 0], [1, 1], [3, 3]], float)), collinear(np.array([[0, 0], [2, 2], [2, 0], [0, 2]], float))
    (True, False)
    """
    centred = ring - ring.mean(axis=0)
    scale = np.abs(centred).max()
    if scale == 0:
        return True
    singular = np.linalg.svd(centred / scale, compute_uv=False)
    return bool(singular[1] <= 1e-12 * singular[0])


def ring_area(ring: np.ndarray) -> float:
    """Absolute area of a ring (shoelace).

    >>> ring_area(np.array([[0, 0], [4, 0], [4, 3], [0, 3]], float))
    12.0
    """
    x, y = ring[:, 0], ring[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


# --- reading files -----------------------------------------------------------------------------------
def load_json(path: Path) -> Any:
    """Parsed JSON of an annotation file, or ImageError saying why it cannot be."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{path.name} is {size >> 20} MB, more than the {MAX_FILE_BYTES >> 20} MB an annotation "
                             f"file may have.")
        return json.loads(read_text(path))
    except ImageError:
        raise
    except json.JSONDecodeError as exc:
        raise ImageError(f"{path.name} is not valid JSON (line {exc.lineno}: {exc.msg}).") from None
    except UnicodeDecodeError:
        raise ImageError(f"{path.name} is not UTF-8 or UTF-16 text, so not a JSON annotation file.") from None
    except RecursionError:
        raise ImageError(f"{path.name} is nested too deeply to be an annotation file.") from None
    except OSError as exc:
        raise ImageError(f"{path.name} cannot be read ({exc.strerror or exc}).") from None


@dataclass
class Read:
    """Shapes read from a file, and what was left out of them."""

    shapes: list[Shape] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # why → how many

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def warnings(self, file: str) -> list[str]:
        return [f"{file}: {n} {why} left out." for why, n in self.skipped.items()]


def read_geojson(path: Path, data: Any = None) -> Read:
    """Shapes of a GeoJSON file as QuPath exports it: a FeatureCollection (or a list of
    Features, QuPath 0.2) of Polygons and MultiPolygons, each with a ``classification``."""
    data = load_json(path) if data is None else data
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, dict) and "coordinates" in data:
        features = [{"type": "Feature", "geometry": data}]
    else:
        features = data
    if not isinstance(features, list):
        raise ImageError(f"{path.name} is not GeoJSON: expected a FeatureCollection of polygons.")
    out = Read()
    for i, feature in enumerate(features):
        where = f"feature {i}"
        if not isinstance(feature, dict):
            raise ImageError(f"{path.name}: {where} is not a GeoJSON Feature.")
        if isinstance(feature.get("id"), (str, int)):
            where += f" (id {str(feature['id'])[:60]})"
        props = feature.get("properties") if isinstance(feature.get("properties"), dict) else {}
        name = class_name(props.get("classification", props.get("class")))
        polygons = _geometry_polygons(feature.get("geometry"), path.name, where, out)
        rings, outer = [], []
        for polygon in polygons:
            for k, points in enumerate(polygon):
                ring = _ring(points, where, path.name)
                if ring is None:
                    continue
                if k == 0:
                    outer.append(len(rings))
                elif not outer:
                    continue  # a hole of an outline that had no area
                rings.append(ring)
        if polygons and not outer:
            out.skip("polygons without area")
        elif outer:
            out.shapes.append(_shape(name, rings, where, outer))
    return out


def _geometry_polygons(geometry: Any, file: str, where: str, out: Read, depth: int = 0) -> list:
    """Polygons (lists of rings) of a GeoJSON geometry; other geometries are counted as skipped."""
    if geometry is None:
        out.skip("features without geometry")
        return []
    if not isinstance(geometry, dict) or not isinstance(geometry.get("type"), str):
        raise ImageError(f"{file}: {where}: its geometry is not a GeoJSON geometry.")
    kind = geometry["type"]
    coordinates = geometry.get("coordinates")
    if kind == "GeometryCollection" and depth < 8:
        members = geometry.get("geometries")
        if not isinstance(members, list):
            raise ImageError(f"{file}: {where}: a GeometryCollection needs 'geometries'.")
        return [p for g in members for p in _geometry_polygons(g, file, where, out, depth + 1)]
    if kind in ("Polygon", "MultiPolygon"):
        polygons = [coordinates] if kind == "Polygon" else coordinates
        if not isinstance(polygons, list) or not all(isinstance(p, list) for p in polygons):
            raise ImageError(f"{file}: {where}: a {kind} needs lists of rings of [x, y] points.")
        return polygons
    out.skip(f"{kind} geometries (only areas are annotations here)")
    return []


#: ImageJ ROI types that enclose an area.
_AREA_ROIS = {"RECT", "OVAL", "POLYGON", "FREEHAND", "TRACED"}


def read_rois(path: Path) -> Read:
    """Shapes of an ImageJ/Fiji ROI file (``.roi``) or set (``RoiSet.zip``), read with
    ``roifile``. Area ROIs (rectangle, oval, polygon, freehand, traced, composite) become
    shapes named after their group (``group 3``; :data:`UNCLASSIFIED` when in none); lines
    and points are left out."""
    try:
        import roifile
    except ImportError:  # pragma: no cover - a dependency
        raise ImageError(f"{path.name}: reading ImageJ ROIs needs the roifile package (pip install roifile).") from None
    try:
        try:
            rois = roifile.ImagejRoi.fromfile(path, maxsize=MAX_FILE_BYTES)
        except TypeError:  # an older roifile without maxsize
            rois = roifile.ImagejRoi.fromfile(path)
    except Exception as exc:  # noqa: BLE001 - roifile raises many kinds on a damaged file
        raise ImageError(f"{path.name} cannot be read as ImageJ ROIs ({str(exc)[:120] or type(exc).__name__}).") from None
    rois = rois if isinstance(rois, list) else [rois]
    out = Read()
    for i, roi in enumerate(rois):
        label = "".join(ch for ch in str(getattr(roi, "name", "") or "") if ch.isprintable())[:80]
        where = f"ROI {i + 1}" + (f" '{label}'" if label else "")
        kind = getattr(getattr(roi, "roitype", None), "name", "")
        composite = bool(getattr(roi, "composite", False))
        if kind not in _AREA_ROIS and not composite:
            out.skip(f"{kind.lower() or 'unknown'} ROIs (only areas are annotations here)")
            continue
        try:
            parts = roi.coordinates(multi=True) if composite else [roi.coordinates()]
        except Exception as exc:  # noqa: BLE001
            raise ImageError(f"{path.name}: {where} cannot be read ({str(exc)[:120] or type(exc).__name__}).") from None
        rings = [r for r in (_ring(p, where, path.name) for p in parts) if r is not None]
        if not rings:
            out.skip("ROIs without area")
            continue
        group = int(getattr(roi, "group", 0) or 0)
        name = f"group {group}" if group else UNCLASSIFIED
        # composite ROIs are filled even-odd by ImageJ too: every ring counts as an outline for COCO
        out.shapes.append(_shape(name, rings, where, list(range(len(rings)))))
    return out


@dataclass
class CocoFile:
    """A COCO JSON file: its images by name, their annotations and the categories."""

    path: Path
    images: dict[str, dict] = field(default_factory=dict)  # basename (casefolded) → image entry
    stems: dict[str, dict] = field(default_factory=dict)  # stem (casefolded) → image entry
    annotations: dict[Any, list[tuple[int, dict]]] = field(default_factory=dict)  # image id → (index, entry)
    categories: dict[Any, str] = field(default_factory=dict)

    def entry(self, image_name: str) -> dict | None:
        """The image entry whose file name is ``image_name``'s (or whose stem is its stem)."""
        base = image_name.replace("\\", "/").rsplit("/", 1)[-1].casefold()
        return self.images.get(base) or self.stems.get(base.rsplit(".", 1)[0])

    def class_names(self) -> set[str]:
        return set(self.categories.values())


def is_coco(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("images"), list) and isinstance(data.get("annotations"), list)


def parse_coco(path: Path, data: Any) -> CocoFile:
    """Index a COCO JSON file; ImageError naming the entry that is malformed."""
    coco = CocoFile(path)
    for i, cat in enumerate(data.get("categories") or []):
        if not isinstance(cat, dict) or "id" not in cat:
            raise ImageError(f"{path.name}: categories[{i}] needs an 'id' and a 'name'.")
        coco.categories[_key(cat["id"])] = class_name(cat.get("name"))
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            raise ImageError(f"{path.name}: images[{i}] needs an 'id' and a 'file_name'.")
        base = image["file_name"].replace("\\", "/").rsplit("/", 1)[-1].casefold()
        coco.images.setdefault(base, image)
        coco.stems.setdefault(base.rsplit(".", 1)[0], image)
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise ImageError(f"{path.name}: annotations[{i}] needs an 'image_id'.")
        coco.annotations.setdefault(_key(ann["image_id"]), []).append((i, ann))
    return coco


def _key(value: Any) -> Any:
    """An id as a dictionary key (ids are numbers in COCO; text ids are kept as text)."""
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else repr(value)


def coco_shapes(coco: CocoFile, image: dict) -> Read:
    """Shapes of one image of a COCO file: polygons (``segmentation`` lists), or boxes only
    (``bbox`` without polygons; RLE masks are taken as their box); crowd regions left out."""
    out = Read()
    name = coco.path.name
    for i, ann in coco.annotations.get(_key(image["id"]), []):
        where = f"annotation {str(ann['id'])[:40]}" if "id" in ann else f"annotations[{i}]"
        if ann.get("iscrowd"):
            out.skip("crowd regions (iscrowd)")
            continue
        cat = _key(ann.get("category_id"))
        if cat not in coco.categories:
            raise ImageError(f"{name}: {where}: category_id {str(ann.get('category_id'))[:40]} is not in 'categories'.")
        segmentation = ann.get("segmentation")
        rings = []
        if isinstance(segmentation, list):
            for part in segmentation:
                if not isinstance(part, list) or len(part) % 2 or len(part) < 6:
                    raise ImageError(f"{name}: {where}: a polygon must be a list of x, y numbers (3 points or more).")
                ring = _ring(np.array(part, dtype=object).reshape(-1, 2).tolist(), where, name)
                if ring is not None:
                    rings.append(ring)
        elif segmentation is not None:
            out.skip("RLE masks (taken as their box)")
        box = _bbox(ann["bbox"], where, name) if ann.get("bbox") is not None else None
        if rings:  # the box of the polygons: a COCO bbox may be rounded
            out.shapes.append(_shape(coco.categories[cat], rings, where, list(range(len(rings)))))
        elif box is not None and box[2] > box[0] and box[3] > box[1]:
            out.shapes.append(Shape(coco.categories[cat], (), box, where))
        else:
            out.skip("annotations without polygon or box")
    return out


def _bbox(value: Any, where: str, file: str) -> tuple[float, float, float, float]:
    """A COCO ``bbox`` [x, y, width, height] as x0, y0, x1, y1."""
    if not (isinstance(value, list) and len(value) == 4):
        raise ImageError(f"{file}: {where}: bbox must be [x, y, width, height].")
    try:
        x, y, w, h = (float(v) for v in value)
    except (TypeError, ValueError, OverflowError):
        raise ImageError(f"{file}: {where}: bbox must hold numbers.") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in (x, y, w, h)) or w < 0 or h < 0:
        raise ImageError(f"{file}: {where}: bbox {value!r:.80} is not a box in pixels.")
    return (x, y, x + w, y + h)


_coco_cache: dict[tuple, CocoFile] = {}
_coco_lock = threading.Lock()


def read_coco(path: Path) -> CocoFile:
    """A COCO file, parsed once per process while it is unchanged (images share it)."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _coco_lock:
        if key in _coco_cache:
            return _coco_cache[key]
    data = load_json(path)
    if not is_coco(data):
        raise ImageError(f"{path.name} is not a COCO file: it needs 'images' and 'annotations' lists.")
    coco = parse_coco(path, data)
    with _coco_lock:
        while len(_coco_cache) >= 4:  # a run uses one or a few COCO files
            _coco_cache.pop(next(iter(_coco_cache)))
        _coco_cache[key] = coco
    return coco


def read_shapes(path: Path, image_name: str | None = None) -> Read:
    """The shapes drawn on one image in an annotation file (``image_name`` picks the image of a
    COCO file; ImageError when it is not there)."""
    suffix = path.suffix.lower()
    if suffix in ROI_SUFFIXES:
        return read_rois(path)
    data = load_json(path)
    if is_coco(data):
        coco = read_coco(path)
        entry = coco.entry(image_name or path.stem)
        if entry is None:
            raise ImageError(f"{path.name} lists no image named {image_name}.")
        return coco_shapes(coco, entry)
    return read_geojson(path, data)


# --- scaling, rasterizing ---------------------------------------------------------------------------
def scale_shapes(shapes: list[Shape], factors: tuple[float, float]) -> list[Shape]:
    """Shapes in the pixels of the image scaled by ``factors`` (rows, cols)."""
    fy, fx = factors
    scale = np.array([fx, fy])
    out = []
    for s in shapes:
        x0, y0, x1, y1 = s.box
        out.append(Shape(s.name, tuple(r * scale for r in s.rings), (x0 * fx, y0 * fy, x1 * fx, y1 * fy), s.where, s.outer))
    return out


class Raster:
    """Shapes painted into rows of a ``shape`` (rows, cols) image: object ``k`` gets ``values[k]``;
    a pixel belongs to an object when its centre lies inside its rings (even-odd); where objects
    overlap the later one wins. Edges are prepared once; :meth:`rows` paints any band."""

    def __init__(self, shapes: list[Shape], values: np.ndarray, shape: tuple[int, int], dtype):
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.lut = np.concatenate([[0], np.asarray(values)]).astype(self.dtype)  # paint order → value
        parts = []
        for order, s in enumerate(shapes, start=1):
            for ring in s.rings:
                parts.append(np.column_stack([ring, np.roll(ring, -1, axis=0), np.full(len(ring), order)]))
        edges = np.concatenate(parts) if parts else np.empty((0, 5))
        edges = edges[edges[:, 1] != edges[:, 3]]  # horizontal edges cross no row centre
        self.x0, self.y0, self.x1, self.y1, order = edges.T
        self.order = order.astype(np.int64)
        # rows whose centre y + 0.5 lies in [min y, max y): each crossing counted once
        self.lo = np.ceil(np.minimum(self.y0, self.y1) - 0.5).astype(np.int64)
        self.hi = np.ceil(np.maximum(self.y0, self.y1) - 0.5).astype(np.int64)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Painted rows ``[y0, y1)``, full width."""
        cols = self.shape[1]
        out = np.zeros((y1 - y0, cols), np.int64 if len(self.lut) > 2**31 - 1 else np.int32)
        lo, hi = np.maximum(self.lo, y0), np.minimum(self.hi, y1)
        take = np.flatnonzero(hi > lo)
        if take.size:
            counts = (hi - lo)[take]
            total = int(counts.sum())
            if total > MAX_CROSSINGS:
                raise ImageError(f"its annotations are too complex to draw ({total} polygon crossings in {y1 - y0} rows).")
            starts = np.repeat(np.cumsum(counts) - counts, counts)
            row = np.repeat(lo[take], counts) + (np.arange(total) - starts)
            e = np.repeat(take, counts)
            xa, ya, xb, yb = self.x0[e], self.y0[e], self.x1[e], self.y1[e]
            x = xa + (row + 0.5 - ya) * (xb - xa) / (yb - ya)
            order = self.order[e]
            sort = np.lexsort((x, row, order))  # pairs of crossings on a row of an object: spans inside
            x, row, order = x[sort], row[sort], order[sort]
            begin = np.clip(np.ceil(x[0::2] - 0.5), 0, cols).astype(np.int64)
            end = np.clip(np.ceil(x[1::2] - 0.5), 0, cols).astype(np.int64)
            _paint(out, row[0::2] - y0, begin, end, order[0::2])
        return self.lut[out]


def _paint(out: np.ndarray, rows: np.ndarray, begin: np.ndarray, end: np.ndarray, order: np.ndarray) -> None:
    """Paint spans ``[begin, end)`` of ``rows`` with ``order``, the highest order winning."""
    keep = end > begin
    rows, begin, end, order = rows[keep], begin[keep], end[keep], order[keep]
    lengths = end - begin
    flat = out.reshape(-1)
    cols = out.shape[1]
    chunk = 1 << 23  # pixels expanded at a time
    first = 0
    cumulative = np.cumsum(lengths)
    while first < len(lengths):
        base = cumulative[first] - lengths[first]
        last = int(np.searchsorted(cumulative, base + chunk, side="right"))
        last = max(last, first + 1)
        n = lengths[first:last]
        offsets = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        index = np.repeat(rows[first:last] * cols + begin[first:last], n) + offsets
        np.maximum.at(flat, index, np.repeat(order[first:last], n).astype(flat.dtype))
        first = last


def rasterize(shapes: list[Shape], values, shape: tuple[int, int], dtype=np.int32) -> np.ndarray:
    """Paint ``shapes`` into an image of ``shape``, object ``k`` with ``values[k]`` (see :class:`Raster`).

    >>> square = Shape("cell", (np.array([[1, 1], [4, 1], [4, 3], [1, 3]], float),), (1, 1, 4, 3), "")
    >>> rasterize([square], [7], (4, 6))
    array([[0, 0, 0, 0, 0, 0],
           [0, 7, 7, 7, 0, 0],
           [0, 7, 7, 7, 0, 0],
           [0, 0, 0, 0, 0, 0]], dtype=int32)
    """
    return Raster([s for s in shapes if not s.box_only], np.asarray(values)[[not s.box_only for s in shapes]],
                  shape, dtype).rows(0, int(shape[0]))


# --- objects in tiles ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Objects(Boxes):
    """Boxes with what else is known of each object: its polygons (rings in the image's
    recalibrated pixels, and which are outlines), or its instance id in the mask.

    A :class:`~tilesapp.core.annotations.Boxes` (``classes`` 0-based, ``xyxy``) everywhere
    boxes go: the empty-tile filter, YOLO labels, the preview.
    """

    rings: tuple[tuple[np.ndarray, ...], ...] = ()  # per object (empty: box only)
    outer: tuple[tuple[int, ...], ...] = ()
    ids: np.ndarray | None = None  # instance ids in the mask, per object
    names: tuple[str, ...] = ()  # class names, per class id


@dataclass(frozen=True)
class TileObject:
    """One object in one tile, in the tile's pixels: class (0-based), box ``x0, y0, x1, y1``
    clipped to the tile, polygons clipped to it (outlines only, flat ``x, y, …`` lists), the
    instance id in the mask tile (objects from masks), and its area inside the tile."""

    cls: int
    box: tuple[float, float, float, float]
    polygons: tuple[tuple[float, ...], ...] = ()
    instance: int | None = None
    area: float = 0.0


def objects_in_tile(boxes: Boxes, tile: Tile, min_visibility: float) -> list[TileObject]:
    """The objects of ``boxes`` that enter ``tile``, in the tile's pixels; polygons of
    :class:`Objects` clipped to the tile (holes are not kept: COCO polygons have none)."""
    keep, clipped = visible(boxes, tile, min_visibility)
    shift = np.array([tile.x0, tile.y0, tile.x0, tile.y0], float)
    out = []
    for i, box in zip(keep, clipped):
        local = tuple(float(v) for v in box - shift)
        polygons: tuple = ()
        area = (local[2] - local[0]) * (local[3] - local[1])
        instance = None
        if isinstance(boxes, Objects):
            if boxes.rings and boxes.rings[i]:
                parts = [clip_ring(boxes.rings[i][k], tile) for k in boxes.outer[i]]
                parts = [p - [tile.x0, tile.y0] for p in parts if len(p) >= 3 and not collinear(p)]
                polygons = tuple(tuple(float(v) for v in p.reshape(-1)) for p in parts)
                area = float(sum(ring_area(p) for p in parts))
                if not parts:
                    continue  # the box entered, the outline did not
            if boxes.ids is not None:
                instance = int(boxes.ids[i])
        out.append(TileObject(int(boxes.classes[i]), local, polygons, instance, area))
    return out


def clip_ring(ring: np.ndarray, tile: Tile) -> np.ndarray:
    """A ring clipped to the tile's box (Sutherland–Hodgman: exact for the tile, a convex window).

    >>> clip_ring(np.array([[-1, 1], [3, 1], [1, 3]], float), Tile(0, 0, 0, 0, 0, 2, 2)).tolist()
    [[0.0, 1.0], [2.0, 1.0], [2.0, 2.0], [0.0, 2.0]]
    """
    points = ring
    for axis, bound, keep_above in ((0, tile.x0, True), (0, tile.x1, False), (1, tile.y0, True), (1, tile.y1, False)):
        if len(points) == 0:
            break
        inside = points[:, axis] >= bound if keep_above else points[:, axis] <= bound
        following = np.roll(points, -1, axis=0)
        inside_next = np.roll(inside, -1)
        out = []
        for p, q, pin, qin in zip(points, following, inside, inside_next):
            if pin:
                out.append(p)
            if pin != qin:
                t = (bound - p[axis]) / (q[axis] - p[axis])
                out.append(p + t * (q - p))
        points = np.array(out).reshape(-1, 2)
    if len(points) > 1:  # a vertex on the tile's edge is met twice
        points = points[np.any(points != np.roll(points, 1, axis=0), axis=1)]
    return points


# --- instance masks ------------------------------------------------------------------------------------
@dataclass
class Instances:
    """Instance ids of a mask and each one's box ``x0, y0, x1, y1`` (pixel corners)."""

    ids: np.ndarray
    xyxy: np.ndarray


def scan_instances(read: Callable[[int, int], np.ndarray], shape: tuple[int, int], describe: str,
                   check: str | None) -> Instances:
    """Ids and boxes of the labels of a mask read by ``read(y0, y1)`` (rows, cols, channels).

    With ``check`` (what needs instances), every label must be one connected region (8
    neighbours): a label covering separate regions means a binary or class mask, refused with
    :class:`ImageError` (``describe`` names the mask).
    """
    rows, cols = shape
    step = max(1, min(rows, (64 << 20) // max(1, cols)))  # about 64 M pixels at a time
    found: dict[int, list[int]] = {}
    for y in range(0, rows, step):
        block = read(y, min(rows, y + step))
        if block.shape[2] != 1 or block.dtype.kind not in "ui":
            raise ImageError(f"{describe} is not a label image (one channel of whole numbers): an instance mask "
                             f"gives each object its own number.")
        labels = block[..., 0]
        ys, xs = np.nonzero(labels)
        if ys.size == 0:
            continue
        values = labels[ys, xs]
        ids, inverse = np.unique(values, return_inverse=True)
        if check is not None:
            _check_connected(labels, ys, xs, ids, inverse, describe, check)
        for name, agg, data in (("x0", np.minimum, xs), ("y0", np.minimum, ys + y), ("x1", np.maximum, xs + 1),
                                ("y1", np.maximum, ys + y + 1)):
            reduced = np.full(len(ids), np.iinfo(np.int64).max if agg is np.minimum else -1, np.int64)
            agg.at(reduced, inverse, data)
            for k, v in zip(ids.tolist(), reduced.tolist()):
                slot = found.setdefault(k, [cols, rows, 0, 0])
                index = ("x0", "y0", "x1", "y1").index(name)
                slot[index] = min(slot[index], v) if agg is np.minimum else max(slot[index], v)
    ids = np.array(sorted(found), dtype=np.int64)
    return Instances(ids, np.array([found[k] for k in ids.tolist()], dtype=np.float64).reshape(-1, 4))


def _check_connected(labels, ys, xs, ids, inverse, describe: str, check: str) -> None:
    count, components = cv2.connectedComponents((labels != 0).astype(np.uint8), connectivity=8)
    pairs = np.unique(inverse.astype(np.int64) * count + components[ys, xs])
    per_id = np.bincount(pairs // count, minlength=len(ids))
    if (per_id > 1).any():
        k = int(np.argmax(per_id > 1))
        kind = "a binary mask" if len(ids) == 1 else "a class mask"
        # the way out without labelling: what asked for instances is the layout, or the boxes
        other = ("cut class masks as they are, without --boxes-from-masks" if check == "--boxes-from-masks"
                 else "use --layout plain or --layout nnunet for class masks")
        raise ImageError(f"{describe} is not an instance mask: label {int(ids[k])} covers {int(per_id[k])} separate "
                         f"regions, so it is {kind}. {check} needs every object labelled with its own number — label "
                         f"the objects first (e.g. Fiji: Analyze Particles › Count Masks), or {other}.")
