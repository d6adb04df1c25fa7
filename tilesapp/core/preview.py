"""What the window shows of one image before exporting: the recalibrated image under its tile
grid, its mask or boxes, the tiles the filter keeps, and the values the tiles will hold.

:func:`preview_image` reads an image whole when it is small and through a reduced overview
when it is big (a pyramid level, or every n-th pixel read band by band), never holding a big
image whole; the tiles and boxes stay in recalibrated pixels either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilesapp.core.annotations import AnnotationFolders, Boxes, check_mask_shape, read_yolo, resize_nearest, scale_boxes
from tilesapp.core.bands import ScaledRows
from tilesapp.core.errors import ImageError
from tilesapp.core import memory
from tilesapp.core.normalize import cast, channel_range, check_fits, joint_range, joint_stretch, stretch
from tilesapp.core.plan import ImagePlan, plan_image
from tilesapp.core.readers import open_image
from tilesapp.core.resample import resample
from tilesapp.core.selection import auto_threshold, foreground_map, keep_tiles, reduced_fractions, tile_foreground
from tilesapp.core.settings import Settings
from tilesapp.core.sources import Source, SourcePixels, SourceRef, sources_of, view_info


@dataclass(frozen=True)
class Preview:
    """One image as it will be cut.

    ``image`` is (rows, cols, channels): the recalibrated pixels, or a reduced view standing
    for the whole ``plan.scaled_shape`` (:attr:`reduced`). ``mask`` is on the grid of ``image``
    (``mask_axes``: the axes of its file); ``boxes`` are in recalibrated pixels;
    ``foreground`` and ``keep`` are per tile (None when the filter is off; approximate on a
    reduced view).
    """

    path: Path
    plan: ImagePlan
    image: np.ndarray
    mask: np.ndarray | None = None
    mask_axes: str | None = None
    boxes: Boxes | None = None
    foreground: np.ndarray | None = None
    keep: np.ndarray | None = None
    source: Source | None = None  # which part of the file (scene, plane, channels)
    sources: int = 1  # how many images the file gives

    @property
    def reduced(self) -> bool:
        return tuple(self.image.shape[:2]) != tuple(self.plan.scaled_shape)


def needs_overview(plan: ImagePlan, regions: bool = True) -> bool:
    """Whether an image is big enough to be previewed through a reduced overview."""
    rows, cols = plan.scaled_shape
    return regions and rows * cols > memory.OVERVIEW_PIXELS


def preview_image(path: str | Path, settings: Settings, masks: str | Path | None = None,
                  labels: str | Path | None = None, *, max_side: int | None = None, name: str | None = None,
                  overview: bool | None = None, source: int = 0) -> Preview:
    """Plan one image and read it as the export will cut it (whole, or reduced when big).

    ``overview`` forces (True) or forbids (False) the reduced view; by default it is used for
    images of more than :data:`tilesapp.core.memory.OVERVIEW_PIXELS` recalibrated pixels.
    ``source`` picks one of the images the file gives (its scenes and planes, see
    :func:`tilesapp.core.sources.sources_of`), 0 by default.
    Raises :class:`ImageError` when the image, its mask or its label file cannot be used — as
    the export would for this image.
    """
    path = Path(path)
    name = name or path.name
    max_side = max_side or memory.OVERVIEW_SIDE
    with open_image(path) as file:
        scenes = [(scene.info, not getattr(scene, "whole_only", False)) for scene in file.scenes]
    sources, _ = sources_of(path, name, [info for info, _ in scenes], settings)
    if not 0 <= source < len(sources):
        raise ImageError(f"{name} gives {len(sources)} image{'s' * (len(sources) != 1)}; there is no number {source}.")
    chosen = sources[source]
    regions = scenes[chosen.ref.scene][1]
    plan = plan_image(chosen.info, settings, chosen.name, regions)
    reduced = needs_overview(plan, regions) if overview is None else overview
    pixels = SourcePixels(chosen.ref, chosen.info)
    try:
        if reduced:
            rows, cols = plan.scaled_shape
            factor = max(1.0, max(rows, cols) / max_side)
            shape = (max(1, round(rows / factor)), max(1, round(cols / factor)))
            image = resample(pixels.overview(max_side), shape)
        else:
            image = ScaledRows(pixels, plan.scaled_shape).rows(0, plan.scaled_shape[0])
    finally:
        pixels.close()
    mask_path, labels_path = AnnotationFolders(masks, labels).find(path, name)
    mask = mask_axes = boxes = None
    if mask_path is not None:
        with open_image(mask_path) as file:
            mask_scene = file.scenes[0]
            check_mask_shape(mask_scene.info, name, plan.info.shape_yx)
            mask_axes = mask_scene.info.axes
            if reduced:
                small = mask_scene.overview(max(image.shape[:2]))
            else:
                rows, cols = mask_scene.info.shape_yx
                small = mask_scene.read(0, rows, 0, cols)
            mask = resize_nearest(small, image.shape[:2])
    if labels_path is not None:
        boxes = scale_boxes(*read_yolo(labels_path), plan.scaled_shape)
    foreground = keep = None
    if settings.min_foreground > 0:
        if not reduced:
            foreground = tile_foreground(plan.grid, image, mask, boxes)
        elif mask is None and boxes is not None:
            foreground = tile_foreground(plan.grid, image, None, boxes)
        else:
            fg = np.any(mask != 0, axis=2) if mask is not None else foreground_map(image, auto_threshold(image))
            foreground = reduced_fractions(fg, plan.grid)
        keep = keep_tiles(foreground, settings.min_foreground, settings.keep_empty, settings.seed, name)
    return Preview(path, plan, image, mask, mask_axes, boxes, foreground, keep, chosen, len(sources))


def tile_pixels(path: str | Path, plan: ImagePlan, index: int, ref: SourceRef | None = None) -> np.ndarray:
    """The recalibrated pixels of tile ``index`` of ``plan`` (rows, cols, channels) float32, as
    the export computes them; reads only the source rows the tile needs. ``ref``: which part of
    the file (default: its first scene)."""
    tile = plan.grid.tile(index)
    pixels = SourcePixels(ref or SourceRef(Path(path)))
    try:
        if view_info(pixels.scene_info(), pixels.ref).shape_yx != plan.info.shape_yx:
            raise ImageError(f"{plan.info.name} changed on disk while it was being previewed; preview it again.")
        values = ScaledRows(pixels, plan.scaled_shape).rows(tile.y0, tile.y1)
    finally:
        pixels.close()
    return np.ascontiguousarray(values[:, tile.x0 : tile.x1], dtype=np.float32)


@dataclass(frozen=True)
class OutputView:
    """The values tiles will hold (after normalization and the cast), for the preview's image.

    ``values`` is (rows, cols, channels) of the output type; ``levels`` is how many distinct
    values it holds per channel (a near-black uint8 output with bounds 0–1 shows 2);
    ``approximate`` says the statistics were taken on a reduced view; ``problem`` is the
    sentence an export would fail this image with (None when it would not).
    """

    values: np.ndarray
    levels: list[int]
    approximate: bool
    problem: str | None = None


def output_view(preview: Preview, settings: Settings) -> OutputView:
    """What the tiles of ``preview``'s image will hold under ``settings`` (global statistics of
    the previewed image, local ones per tile, none: the values cast as they are)."""
    image = np.asarray(preview.image)
    bounds = settings.output_bounds
    may_have_nan = image.dtype.kind == "f"
    problem = None
    ranges = joint_range if joint_stretch(settings, preview.plan.info) else channel_range
    if settings.norm == "global":
        low, high = ranges(image, settings.percentiles)
        out = cast(stretch(image, low, high, bounds, may_have_nan=may_have_nan), settings.dtype)
    elif settings.norm == "local":
        out = np.empty(image.shape, np.dtype(settings.dtype))
        fy, fx = image.shape[0] / preview.plan.scaled_shape[0], image.shape[1] / preview.plan.scaled_shape[1]
        for tile in preview.plan.grid:
            y0, y1 = int(tile.y0 * fy), max(int(tile.y0 * fy) + 1, math.ceil(tile.y1 * fy))
            x0, x1 = int(tile.x0 * fx), max(int(tile.x0 * fx) + 1, math.ceil(tile.x1 * fx))
            piece = image[y0:y1, x0:x1]
            low, high = ranges(piece, settings.percentiles)
            out[y0:y1, x0:x1] = cast(stretch(piece, low, high, bounds, may_have_nan=may_have_nan), settings.dtype)
    else:
        try:
            check_fits(image, settings.dtype, preview.plan.name or preview.path.name)
        except ImageError as exc:
            problem = str(exc)
        out = cast(image, settings.dtype) if problem is None else image.astype(np.float32)
    levels = [int(np.unique(out[..., c]).size) for c in range(out.shape[2])] if out.size <= 50_000_000 else []
    return OutputView(out, levels, preview.reduced, problem)
