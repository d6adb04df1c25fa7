"""Training sets for a framework: what a layout needs, where each image's objects come from,
one class table for the run, and whole images for frameworks that cut their own patches.

The export asks this module, at a few points:

- :meth:`TrainingRun.check` before anything is written: the layout gets what it needs
  (boxes for ultralytics, masks for nnU-Net, instance masks for Cellpose and StarDist, ...),
  the annotations path is usable; :class:`SettingsError` / :class:`OutputError` otherwise;
- :meth:`TrainingRun.run_info`: the sink's run description with the class table
  (``classes.txt`` beside the annotations, else every class name the annotations use, sorted);
- :meth:`TrainingRun.objects_for` per image: an :class:`ObjectPlan` (picklable) that the cut
  turns into mask rows and boxes (:meth:`ObjectPlan.prepare`), and :func:`write_labels` per tile;
- :meth:`TrainingRun.whole_grids` with ``whole_images``: every image one tile, unpadded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilesapp.core.annotations import Boxes, boxes_in_tile, format_yolo
from tilesapp.core.annotations_in import (
    GEOJSON_SUFFIXES,
    JSON_SUFFIXES,
    ROI_SUFFIXES,
    UNCLASSIFIED,
    CocoFile,
    Objects,
    Raster,
    Read,
    coco_shapes,
    is_coco,
    load_json,
    objects_in_tile,
    read_coco,
    read_shapes,
    scale_shapes,
    scan_instances,
)
from tilesapp.core.bands import MaskRows
from tilesapp.core.errors import ImageError, OutputError, SettingsError
from tilesapp.core.folders import folder_conflict
from tilesapp.core.geometry import Tile, TileGrid
from tilesapp.core.manifest import MAX_TILE_SIZE
from tilesapp.core.readers import SceneInfo, image_suffixes
from tilesapp.core.settings import Settings
from tilesapp.core.sinks.dataset import TrainingInfo, class_table, read_class_names

log = logging.getLogger(__name__)

#: The file whose lines fix the class table's order (beside the annotations).
CLASSES_TXT = "classes.txt"
#: The class table every run with classes writes at the top of its export folder.
CLASSES_JSON = "classes.json"
#: Layouts whose masks hold one id per object.
INSTANCE_LAYOUTS = ("cellpose", "stardist")
_FRAMEWORKS = {"ultralytics": "ultralytics", "nnunet": "nnU-Net", "cellpose": "Cellpose", "stardist": "StarDist",
               "coco": "COCO"}


# --- where annotations are -------------------------------------------------------------------------
class AnnotationIndex:
    """The annotation files of a run — one file, or a folder of them — and which belongs to an
    image: a GeoJSON (``.geojson``/``.json``) or ROI file (``.roi``/``.zip``) named like the image
    (``a.geojson`` or ``a.tif.geojson`` for ``a.tif``), else a COCO file listing it."""

    def __init__(self, path: Path):
        self.path = path
        self.per_image: dict[str, Path] = {}
        self.coco: list[Path] = []
        self.unreadable: list[str] = []
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        suffixes = tuple(image_suffixes())
        for file in files:
            suffix = file.suffix.lower()
            if suffix not in GEOJSON_SUFFIXES + ROI_SUFFIXES + JSON_SUFFIXES:
                continue
            if suffix in JSON_SUFFIXES and self._is_coco(file):
                self.coco.append(file)
                continue
            key = file.stem
            if key.lower().endswith(suffixes):  # "a.tif.geojson": named after the image file
                self.per_image.setdefault(key.casefold(), file)
                key = key.rsplit(".", 1)[0]
            self.per_image.setdefault(key.casefold(), file)

    def _is_coco(self, file: Path) -> bool:
        try:
            head = file.open("rb").read(1 << 20)
        except OSError:
            return False
        if b'"images"' not in head and b'"annotations"' not in head:
            return False
        try:
            return is_coco(load_json(file))
        except ImageError as exc:
            self.unreadable.append(str(exc))
            return False

    @property
    def classes_file(self) -> Path | None:
        folder = self.path if self.path.is_dir() else self.path.parent
        found = folder / CLASSES_TXT
        return found if found.is_file() else None

    def find(self, image: Path, name: str) -> tuple[Path, str | None]:
        """(annotation file, the image's name in it when it is a COCO file) of ``image``."""
        for key in (image.name.casefold(), image.stem.casefold()):
            if key in self.per_image:
                return self.per_image[key], None
        for file in self.coco:
            try:
                if read_coco(file).entry(image.name) is not None:
                    return file, image.name
            except ImageError:
                continue
        looked = f"{image.stem}.geojson, {image.stem}.json, {image.stem}.roi, {image.stem}.zip"
        if self.coco:
            looked += " or an entry in " + ", ".join(f.name for f in self.coco)
        raise ImageError(f"{name} has no annotations in {self.path} (looked for {looked}); an image without "
                         f"objects needs an empty file.")

    def names_of(self, file: Path, key: str | None) -> set[str]:
        """Class names used in one file (for the class table); a file that cannot be read adds
        none (its image fails when it is cut, with the reason)."""
        try:
            if key is not None:
                coco = read_coco(file)
                entry = coco.entry(key)
                return {s.name for s in coco_shapes(coco, entry).shapes} if entry is not None else set()
            return {s.name for s in read_shapes(file).shapes}
        except (ImageError, OSError):
            return set()


def check_annotations_path(path: str | Path, inputs_folders: list[Path], out: Path) -> Path:
    """The annotations path, absolute; SettingsError when missing, OutputError when it conflicts
    with the export folder (it may lie beside the images: QuPath writes its exports there)."""
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise SettingsError("annotations", f"The annotations {path} do not exist; give a GeoJSON, ROI or COCO file, "
                                           f"or the folder holding them.")
    if path.is_file() and path.suffix.lower() not in GEOJSON_SUFFIXES + ROI_SUFFIXES + JSON_SUFFIXES:
        raise SettingsError("annotations", f"{path.name} is not an annotation file: give QuPath GeoJSON (.geojson), "
                                           f"ImageJ ROIs (.roi, RoiSet.zip) or COCO (.json), or their folder.")
    problem = folder_conflict("annotations", path, out)
    if problem:
        raise OutputError(problem)
    return path


# --- one image's objects ---------------------------------------------------------------------------
class ShapePixels:
    """Imported shapes as the pixels of a mask on the recalibrated grid (what :class:`MaskRows`
    reads): painted band by band, never held whole."""

    def __init__(self, raster: Raster, path: Path):
        self.raster = raster
        rows, cols = raster.shape
        self.info = SceneInfo(path, (rows, cols), "YX", raster.dtype.name, reader="annotations")

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.raster.rows(y0, y1)[:, x0:x1, np.newaxis]

    def chunk_rows(self) -> int:
        return 1


@dataclass(frozen=True)
class ObjectPlan:
    """Where one image's objects come from and what is made of them (picklable).

    ``file``/``key``: its annotation file (and its entry in a COCO file); ``masks``: what the
    annotations are drawn as ("none", "classes", "instances"); ``boxes``: boxes are made (from
    the annotations, or from an instance mask); ``polygons``: kept for COCO; ``instances``:
    the layout that needs an instance mask (a given mask is checked); ``classes``: the run's
    class table; ``strict``: an unknown class fails the image (the table came from a file).
    """

    file: Path | None = None
    key: str | None = None
    masks: str = "none"
    boxes: bool = False
    polygons: bool = False
    from_masks: bool = False
    instances: str | None = None
    classes: tuple[str, ...] = ()
    strict: bool = False

    def prepare(self, name: str, plan, mask_rows: MaskRows | None, boxes: Boxes | None,
                warnings: list[str]) -> tuple[MaskRows | None, Boxes | None]:
        """The mask rows and boxes the cut uses for this image (ImageError naming the file)."""
        if self.file is not None:
            return self._from_annotations(name, plan, warnings)
        if mask_rows is not None and (self.from_masks or self.instances):
            rows, cols = mask_rows.info.shape_yx
            pixels = mask_rows.pixels
            found = scan_instances(lambda y0, y1: pixels.read(y0, y1, 0, cols), (rows, cols),
                                   f"{name}: its mask {mask_rows.info.path.name}", self.instances)
            if self.from_masks:
                fy, fx = plan.scaled_shape[0] / rows, plan.scaled_shape[1] / cols
                boxes = Objects(np.zeros(len(found.ids), np.int64), found.xyxy * [fx, fy, fx, fy], ids=found.ids,
                                names=(UNCLASSIFIED,))
        return mask_rows, boxes

    def read(self, name: str, info: SceneInfo) -> Read:
        """The shapes of this image, as drawn (ImageError naming the file and the object)."""
        try:
            if self.key is None:
                return read_shapes(self.file)
            coco: CocoFile = read_coco(self.file)
            entry = coco.entry(self.key)
            if entry is None:
                raise ImageError(f"{self.file.name} lists no image named {self.key}.")
            size = (entry.get("height"), entry.get("width"))
            if all(isinstance(v, int) for v in size) and size != tuple(info.shape_yx):
                raise ImageError(f"{self.file.name} gives {self.key} a size of {size[0]} × {size[1]} px but the image "
                                 f"is {info.shape_yx[0]} × {info.shape_yx[1]} px; the annotations belong to another image.")
            return coco_shapes(coco, entry)
        except ImageError as exc:
            raise ImageError(f"{name}: {exc}") from None

    def _from_annotations(self, name: str, plan, warnings: list[str]) -> tuple[MaskRows | None, Boxes | None]:
        read = self.read(name, plan.info)
        warnings += read.warnings(self.file.name)
        index = {n: k for k, n in enumerate(self.classes)}
        classes = []
        for shape in read.shapes:
            if shape.name not in index:
                if self.strict:
                    raise ImageError(f"{name}: {self.file.name}: {shape.where}: class {shape.name!r} is not in "
                                     f"{CLASSES_TXT}; add it there.")
                index[shape.name] = len(index)  # not in the run's table (its file was unreadable then)
            classes.append(index[shape.name])
        rows, cols = plan.info.shape_yx
        shapes = scale_shapes(read.shapes, (plan.scaled_shape[0] / rows, plan.scaled_shape[1] / cols))
        height, width = plan.scaled_shape
        xyxy = np.array([s.box for s in shapes], float).reshape(-1, 4)
        xyxy = np.clip(xyxy, 0, [width, height, width, height])
        inside = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        if (~inside).any():
            warnings.append(f"{self.file.name}: {int((~inside).sum())} objects lie outside the image; left out.")
        keep = np.flatnonzero(inside)
        shapes = [shapes[k] for k in keep]
        classes = np.array(classes, np.int64)[keep] if len(keep) else np.empty(0, np.int64)
        xyxy = xyxy[keep]
        mask_rows = None
        if self.masks != "none":
            drawn = [s for s in shapes if not s.box_only]
            if len(drawn) < len(shapes):
                warnings.append(f"{self.file.name}: {len(shapes) - len(drawn)} objects have only a box; they are not "
                                f"in the masks.")
            values = (np.arange(1, len(drawn) + 1) if self.masks == "instances" else
                      np.array([c + 1 for c, s in zip(classes, shapes) if not s.box_only], np.int64))
            top = int(values.max()) if len(values) else 0
            dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
            mask_rows = MaskRows(ShapePixels(Raster(drawn, values, plan.scaled_shape, dtype), self.file),
                                 plan.scaled_shape)
        boxes = None
        if self.boxes:
            boxes = Objects(classes, xyxy, rings=tuple(s.rings for s in shapes) if self.polygons else (),
                            outer=tuple(s.outer for s in shapes) if self.polygons else (), names=self.classes)
        return mask_rows, boxes


def write_labels(sink, name: str, boxes: Boxes, tile: Tile, settings: Settings) -> int:
    """Hand the objects of one tile to the sink — as objects to a sink that takes them
    (``write_objects``: COCO), as YOLO text otherwise; returns how many entered the tile."""
    write_objects = getattr(sink, "write_objects", None)
    if write_objects is not None:
        objects = objects_in_tile(boxes, tile, settings.min_box_visibility)
        write_objects(name, objects)
        return len(objects)
    lines = boxes_in_tile(boxes, tile, settings.tile_size, settings.min_box_visibility)
    sink.write_text(name, format_yolo(lines))
    return len(lines)


# --- the run ---------------------------------------------------------------------------------------------
@dataclass
class TrainingRun:
    """What a run's layout needs and where its objects come from (see the module docstring)."""

    settings: Settings
    layout: str
    masks: bool = False
    labels: bool = False
    index: AnnotationIndex | None = None
    classes: tuple[str, ...] = ()
    strict: bool = False
    channels: int | None = None  # nnU-Net: every case has the first image's channels

    @classmethod
    def check(cls, settings: Settings, layout: str, masks, labels, annotations, inputs_folders: list[Path],
              out: Path) -> TrainingRun:
        """Refuse, before anything is written, a layout without what it needs."""
        run = cls(settings, layout, masks is not None, labels is not None)
        if annotations is not None:
            if masks is not None or labels is not None:
                raise SettingsError("annotations", "--annotations replaces --masks and --labels: the masks and boxes "
                                                   "are drawn from the annotations; give one or the other.")
            run.index = AnnotationIndex(check_annotations_path(annotations, inputs_folders, out))
        if settings.boxes_from_masks and masks is None:
            raise SettingsError("boxes_from_masks", "{name} needs instance masks (--masks DIR) to take boxes from.")
        need = run.missing()
        if need:
            raise SettingsError("layout", need)
        return run

    def missing(self) -> str:
        """What the layout lacks ("" when it has what it needs)."""
        framework = _FRAMEWORKS.get(self.layout, self.layout)
        objects = self.index is not None
        if self.layout == "ultralytics" and not (self.labels or objects or (self.masks and self.settings.boxes_from_masks)):
            return ("--layout ultralytics trains on boxes: give --labels DIR, --annotations PATH, or instance masks "
                    "with --masks DIR --boxes-from-masks.")
        if self.layout in ("nnunet", *INSTANCE_LAYOUTS) and not (self.masks or objects):
            kind = "class masks" if self.layout == "nnunet" else "instance masks"
            return f"--layout {self.layout}: {framework} trains on {kind}; give --masks DIR or --annotations PATH."
        if self.layout == "coco" and not (self.labels or self.masks or objects):
            return "--layout coco describes objects: give --annotations PATH, instance masks (--masks DIR) or --labels DIR."
        return ""

    # --- what is made ---------------------------------------------------------------------------
    @property
    def mask_kind(self) -> str:
        """What annotations are drawn as: none, classes or instances."""
        if self.layout in ("ultralytics", "coco"):
            return "none"
        if self.layout in INSTANCE_LAYOUTS:
            return "instances"
        if self.layout == "nnunet":
            return "classes"
        return "classes" if self.settings.annotation_masks == "auto" else self.settings.annotation_masks

    @property
    def makes_boxes(self) -> bool:
        if self.index is not None:
            return self.layout in ("plain", "ultralytics", "coco")
        return self.labels or (self.masks and (self.settings.boxes_from_masks or self.layout == "coco"))

    @property
    def makes_masks(self) -> bool:
        return self.masks if self.index is None else self.mask_kind != "none"

    def class_names(self, labels_classes: Path | None, images: list[tuple[Path, str]]) -> tuple[str, ...]:
        """The class table (YOLO order), fixed before any image is cut."""
        if self.index is not None:
            fixed = read_class_names(self.index.classes_file)
            if fixed:
                self.strict = True
                self.classes = fixed
                return fixed
            names: set[str] = set()
            for path, name in images:
                try:
                    names |= self.index.names_of(*self.index.find(path, name))
                except ImageError:
                    continue
            self.classes = tuple(sorted(names))
        elif self.labels:
            self.classes = read_class_names(labels_classes)
        elif self.masks and self.makes_boxes:
            self.classes = (UNCLASSIFIED,)
        return self.classes

    def run_info(self, out: Path, classes_file: Path | None, splits: tuple[str, ...]) -> TrainingInfo:
        return TrainingInfo(out, self.settings, self.makes_masks, self.makes_boxes, classes_file, splits, self.classes)

    def objects_for(self, path: Path, name: str) -> tuple[ObjectPlan | None, Path | None]:
        """The object plan of one image, and its annotation file (ImageError when it has none)."""
        if self.index is None:
            needs = self.layout in (*INSTANCE_LAYOUTS, "coco") or self.settings.boxes_from_masks
            if not (self.masks and needs):
                return None, None
            what = f"--layout {self.layout}" if self.layout in (*INSTANCE_LAYOUTS, "coco") else "--boxes-from-masks"
            return ObjectPlan(instances=what, boxes=self.makes_boxes, from_masks=self.makes_boxes), None
        file, key = self.index.find(path, name)
        return ObjectPlan(file, key, self.mask_kind, self.makes_boxes, self.layout == "coco", classes=self.classes,
                          strict=self.strict), file

    def check_plan(self, plan, name: str) -> None:
        """nnU-Net: every case needs the same channels (the first image's)."""
        if self.layout != "nnunet":
            return
        channels = plan.info.channels
        if self.channels is None:
            self.channels = channels
        elif channels != self.channels:
            raise ImageError(f"{name} has {channels} channel{'s' * (channels > 1)} but the first image has "
                             f"{self.channels}; nnU-Net needs the same channels in every case (--channels picks them).")

    def whole_grids(self, jobs: list, records: list, manifest) -> list[tuple[int, str]]:
        """With ``whole_images``: every image one tile as large as the largest image (the manifest
        keeps one tile size), written unpadded. Returns (job number, error) of images too large."""
        if not self.settings.whole_images:
            return []
        sides = [max(j.plan.scaled_shape) for j in jobs if j is not None]
        fitting = [s for s in sides if s <= MAX_TILE_SIZE]
        size = max(fitting, default=self.settings.tile_size)
        failed = []
        for number, job in enumerate(jobs):
            if job is None:
                continue
            if max(job.plan.scaled_shape) > MAX_TILE_SIZE:
                failed.append((number, f"{job.name} is {max(job.plan.scaled_shape)} px across after recalibration, "
                                       f"more than {MAX_TILE_SIZE} px: too large to be written whole; cut it into tiles."))
                continue
            grid = TileGrid.for_shape(job.plan.scaled_shape, size, 0)
            jobs[number] = dataclasses.replace(job, plan=dataclasses.replace(job.plan, grid=grid))
            records[number].grid = [1, 1]
            records[number].padding = list(grid.padding)
        manifest.tile_size, manifest.overlap = size, 0
        return failed

    def prepare(self, out: Path) -> list[str]:
        """Write the class table (``classes.json``; ``classes.txt`` too for YOLO labels in the
        plain layout); returns the files written."""
        if not self.classes:
            return []
        from tilesapp.core.writers import write_text

        written = [CLASSES_JSON]
        write_text(out / CLASSES_JSON, json.dumps(class_table(self.classes), indent=1, ensure_ascii=False) + "\n")
        if self.layout == "plain" and self.makes_boxes and not self.labels:
            write_text(out / CLASSES_TXT, "".join(f"{name}\n" for name in self.classes))
            written.append(CLASSES_TXT)
        return written


def preview_objects(annotations: str | Path, image: str | Path, plan, name: str | None = None) -> tuple[Objects, list[str]]:
    """The annotations of one image as the preview draws them: :class:`Objects` in the pixels
    of the recalibrated image (``rings`` per object, ``xyxy`` boxes, ``classes`` indices into
    ``names``), and warnings. Raises :class:`ImageError` as the export would for this image."""
    image = Path(image)
    objects = image_objects(annotations, image, name or image.name)
    warnings: list[str] = []
    _, boxes = objects.prepare(name or image.name, plan, None, None, warnings)
    return boxes, warnings


def image_objects(annotations: str | Path, image: Path, name: str, settings: Settings | None = None) -> ObjectPlan:
    """The plan of one image's objects as the export makes it: its file (and COCO entry) in
    ``annotations``, its classes (the class file's, else the names it uses), drawn as the
    layout of ``settings`` draws masks ("none" without settings)."""
    index = AnnotationIndex(Path(annotations).expanduser().absolute())
    file, key = index.find(image, name)
    fixed = read_class_names(index.classes_file)
    classes = fixed or tuple(sorted(index.names_of(file, key)))
    masks = "none" if settings is None else TrainingRun(settings, settings.layout, index=index).mask_kind
    return ObjectPlan(file, key, masks, True, True, classes=classes, strict=bool(fixed))


__all__ = ["AnnotationIndex", "ObjectPlan", "TrainingRun", "check_annotations_path", "image_objects", "preview_objects",
           "write_labels"]
