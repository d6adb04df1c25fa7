"""Per-image planning and recalibration shared by the export, the preview and the merge.

A plan is computed from metadata alone (no pixels): the scale factors, the recalibrated shape
and the tile grid of one image under the current settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilesapp.core.annotations import (
    AnnotationFolders,
    Boxes,
    check_mask_shape,
    load_annotations,
    read_yolo,
    resize_nearest,
    scale_boxes,
)
from tilesapp.core.calibration import format_pixel_size, scale_factors, scaled_shape
from tilesapp.core.errors import ImageError
from tilesapp.core.geometry import TileGrid
from tilesapp.core.resample import resample
from tilesapp.core.regions import RegionReader
from tilesapp.core.selection import auto_threshold, foreground_map, keep_tiles, reduced_fractions, tile_foreground
from tilesapp.core.settings import Settings
from tilesapp.core.sources import TIFF_SUFFIXES, SourceInfo, read_image

#: Enlargement beyond which a recalibrated image bigger than memory is taken for a wrong
#: calibration rather than streamed.
MAX_STREAMED_ENLARGEMENT = 8.0
#: Channels each format can store (1 = grey, 3 = RGB, 4 = RGBA).
FORMAT_CHANNELS = {"tif": None, "png": (1, 3, 4), "jpg": (1, 3)}


def memory_budget() -> int | None:
    """Bytes one recalibrated image may take: half the computer's memory (None: unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        return None


@dataclass(frozen=True)
class ImagePlan:
    """How one image will be recalibrated and cut."""

    info: SourceInfo
    factors: tuple[float, float]
    input_pixel_size_um: tuple[float, float] | None
    output_pixel_size_um: tuple[float, float] | None
    calibration: str | None
    scaled_shape: tuple[int, int]
    grid: TileGrid

    @property
    def rescaled(self) -> bool:
        return self.scaled_shape != self.info.shape_yx


def plan_image(info: SourceInfo, settings: Settings) -> ImagePlan:
    """Plan the recalibration and the tiles of one image.

    Raises :class:`ImageError` when calibration is on, the pixel size is "auto" and the file
    carries none, or when the output format cannot store the image's channels.
    """
    allowed = FORMAT_CHANNELS[settings.format]
    if allowed is not None and info.channels not in allowed:
        raise ImageError(
            f"{info.name}: .{settings.format} files cannot store {info.channels} channels "
            f"({'/'.join(map(str, allowed))} only); choose .tif."
        )
    if not settings.calibrate:
        factors = (1.0, 1.0)
        size_in = info.pixel_size_um
        size_out, origin = size_in, info.calibration
    else:
        if settings.pixel_size_um is not None:
            size_in, origin = settings.pixel_size_um, "manual"
        elif info.pixel_size_um is not None:
            size_in, origin = info.pixel_size_um, info.calibration
        else:
            raise ImageError(
                f"{info.name} carries no pixel size in its metadata; give one "
                f"(--pixel-size VALUE --unit UNIT, or the Calibration panel) or turn calibration off "
                f"(--no-calibration)."
            )
        target = settings.target_pixel_size_um
        factors = scale_factors(size_in, target)
        size_out = (target, target)
    shape = scaled_shape(info.shape_yx, factors)
    budget = memory_budget()
    whole = shape[0] * shape[1] * info.channels * 4
    # Big TIFFs are cut band by band, so only a large enlargement that no memory could hold
    # is refused: it is usually a wrong calibration (a print resolution read as a pixel size).
    streamable = info.path.suffix.lower() in TIFF_SUFFIXES
    if budget is not None and whole > budget and (not streamable or max(factors) > MAX_STREAMED_ENLARGEMENT):
        raise ImageError(
            f"{info.name} would be {shape[1]} × {shape[0]} px after recalibration (×{max(factors):.3g} from "
            f"{format_pixel_size(size_in)}{f' read from {origin}' if origin and origin != 'manual' else ''}), more than this "
            f"computer's memory can hold; check the pixel size or choose a larger target pixel size."
        )
    grid = TileGrid.for_shape(shape, settings.tile_size, settings.overlap)
    return ImagePlan(info, factors, size_in, size_out, origin, shape, grid)


def scale(image: np.ndarray, plan: ImagePlan) -> np.ndarray:
    """Recalibrate a (rows, cols, channels) image read from ``plan.info.path``."""
    if image.shape[:2] != plan.info.shape_yx:
        raise ImageError(f"{plan.info.name} changed on disk while it was being processed; try again.")
    if not plan.rescaled:
        return image
    return resample(image, plan.scaled_shape)


def load_scaled(plan: ImagePlan) -> np.ndarray:
    """Read and recalibrate the image of ``plan``: (rows, cols, channels)."""
    image, _ = read_image(plan.info.path)
    return scale(image, plan)


def preview(path: str | Path, settings: Settings) -> tuple[ImagePlan, np.ndarray]:
    """Read one image, plan it and recalibrate it: what the window shows under the tile grid."""
    image, info = read_image(path)
    plan = plan_image(info, settings)
    return plan, scale(image, plan)


#: Recalibrated pixels beyond which the window previews an image through a reduced overview.
OVERVIEW_PIXELS = 40_000_000
#: Longer side of an overview, in pixels.
OVERVIEW_SIDE = 4096


def needs_overview(plan: ImagePlan) -> bool:
    """Whether an image is big enough to be previewed through a reduced overview."""
    rows, cols = plan.scaled_shape
    return rows * cols > OVERVIEW_PIXELS and plan.info.path.suffix.lower() in TIFF_SUFFIXES


def overview(path: str | Path, settings: Settings, max_side: int | None = None) -> tuple[ImagePlan, np.ndarray]:
    """Plan one image and read a reduced view of its recalibrated image, without ever
    holding the image whole: a pyramid level when the file has one, else every n-th pixel.

    Returns the plan and a (rows, cols, channels) float image whose longer side is
    ``max_side`` (default :data:`OVERVIEW_SIDE`) at most and which stands for the whole
    ``plan.scaled_shape``. The source is thinned to about ``max_side`` too, so the view holds
    as much detail as its size allows whether recalibration enlarges or shrinks.
    """
    max_side = max_side or OVERVIEW_SIDE
    with RegionReader(path) as reader:
        plan = plan_image(reader.info, settings)
        rows, cols = plan.scaled_shape
        factor = max(1.0, max(rows, cols) / max_side)
        small, _ = reader.overview(max_side)
    shape = (max(1, round(rows / factor)), max(1, round(cols / factor)))
    return plan, resample(small, shape)


@dataclass(frozen=True)
class AnnotatedPreview:
    """What the window shows for a training set: the image, its mask or boxes, kept tiles.

    ``mask`` is (rows, cols, channels) on the recalibrated grid, ``mask_axes`` the axes of its
    file (YX, YXS for a colour mask, CYX); ``boxes`` in the image's pixels;
    ``foreground`` and ``keep`` are per tile (None when the filter is off).
    """

    plan: ImagePlan
    image: np.ndarray
    mask: np.ndarray | None = None
    boxes: Boxes | None = None
    foreground: np.ndarray | None = None
    keep: np.ndarray | None = None
    mask_axes: str | None = None


def preview_annotated(
    path: str | Path, settings: Settings, masks: str | Path | None = None, labels: str | Path | None = None
) -> AnnotatedPreview:
    """:func:`preview` plus the image's mask/boxes and the tiles the filter would keep.

    Raises :class:`ImageError` when the mask or label file is missing, malformed or of another
    shape — as the export would for this image.
    """
    plan, image = preview(path, settings)
    path = Path(path)
    mask_path, labels_path = AnnotationFolders(masks, labels).find(path, path.name)
    mask, mask_axes, boxes = load_annotations(mask_path, labels_path, path.name, plan.info.shape_yx, plan.scaled_shape)
    foreground = keep = None
    if settings.min_foreground > 0:
        foreground = tile_foreground(plan.grid, image, mask, boxes)
        keep = keep_tiles(foreground, settings.min_foreground, settings.keep_empty, settings.seed, path.name)
    return AnnotatedPreview(plan, image, mask, boxes, foreground, keep, mask_axes)


def overview_annotated(
    path: str | Path, settings: Settings, masks: str | Path | None = None, labels: str | Path | None = None,
    max_side: int = OVERVIEW_SIDE,
) -> AnnotatedPreview:
    """:func:`preview_annotated` for a big image: ``image`` and ``mask`` are reduced views
    (see :func:`overview`) standing for ``plan.scaled_shape``; boxes are in recalibrated
    pixels; the filter's shares are measured on the reduced view, so they are approximate.
    """
    plan, image = overview(path, settings, max_side)
    path = Path(path)
    mask_path, labels_path = AnnotationFolders(masks, labels).find(path, path.name)
    mask = mask_axes = boxes = None
    if mask_path is not None:
        with RegionReader(mask_path) as reader:
            check_mask_shape(reader.info, path.name, plan.info.shape_yx)
            small, _ = reader.overview(max(image.shape[:2]))
            mask, mask_axes = resize_nearest(small, image.shape[:2]), reader.info.axes
    if labels_path is not None:
        boxes = scale_boxes(*read_yolo(labels_path), plan.scaled_shape)
    foreground = keep = None
    if settings.min_foreground > 0:
        if mask is None and boxes is not None:
            foreground = tile_foreground(plan.grid, image, None, boxes)
        else:
            fg = np.any(mask != 0, axis=2) if mask is not None else foreground_map(image, auto_threshold(image))
            foreground = reduced_fractions(fg, plan.grid)
        keep = keep_tiles(foreground, settings.min_foreground, settings.keep_empty, settings.seed, path.name)
    return AnnotatedPreview(plan, image, mask, boxes, foreground, keep, mask_axes)
