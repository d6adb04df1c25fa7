"""The window's slow work, as generators of engine calls for :class:`~tilesapp.gui.workers.Job`.

Nothing here re-implements the engine: these functions only chain its calls and shape the
results for display, in a worker thread.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilesapp.core import preview as core_preview
from tilesapp.core.annotations import Boxes
from tilesapp.core.errors import Cancelled, ImageError
from tilesapp.core.preview_annotations import AnnotationPreview, annotation_preview
from tilesapp.core.mosaic import thumbnail
from tilesapp.core.plan import ImagePlan
from tilesapp.core.preview import OutputView, output_view, preview_image, tile_pixels
from tilesapp.core.progress import Progress
from tilesapp.core.settings import DTYPE_RANGES, Settings
from tilesapp.gui.viewer import DisplayImage, display_image, mask_overlay, robust_levels


@dataclass(frozen=True)
class Preview:
    """One recalibrated image of the folder, ready to be shown under its tile grid.

    With a masks or labels folder, or the empty-tile filter on, it also carries the image's
    mask and boxes on the same grid and which tiles the filter keeps; with imported
    annotations, their objects (``objects``: polygons and boxes, drawn over the grid).
    ``name`` is the image's name (a scene or plane of a file is named for it: ``a.czi [s1]``),
    ``number`` which image of its file it is.

    A big image is previewed through a reduced view (:attr:`reduced`): ``values``, ``mask``
    and the display are smaller than ``plan.scaled_shape`` and stand for all of it, while the
    tiles and boxes stay in recalibrated pixels (``display.extent``).
    """

    path: Path
    plan: ImagePlan
    values: np.ndarray  # (rows, cols[, channels]) float32, what hovering reads
    display: DisplayImage
    mask: np.ndarray | None = None  # (rows, cols, channels) labels on the grid of ``values``
    overlay: np.ndarray | None = None  # the mask as RGBA for the screen (maybe reduced)
    boxes: Boxes | None = None  # in pixels of the recalibrated image
    foreground: np.ndarray | None = None  # (n_tiles,) share; None when the filter is off
    keep: np.ndarray | None = None  # (n_tiles,) bool; None when the filter is off
    source: core_preview.Preview | None = None  # the engine's preview, for the output values
    name: str = ""
    number: int = 0
    objects: AnnotationPreview | None = None  # imported annotations, as the export draws them

    @property
    def annotated(self) -> bool:
        """There is a mask, boxes or objects to draw."""
        return self.mask is not None or self.boxes is not None or self.objects is not None

    @property
    def ref(self):
        """Which part of its file the image is (scene, plane, channels), for reading a tile."""
        return self.source.source.ref if self.source is not None and self.source.source is not None else None

    @property
    def reduced(self) -> bool:
        """``values`` is a reduced view of a big image, not its recalibrated pixels."""
        return tuple(self.values.shape[:2]) != tuple(self.plan.scaled_shape)


def preview_settings(settings: Settings) -> Settings:
    """Settings for a preview: the geometry of the export, whatever the output format.

    The format decides which images can be written, not where tiles lie; .tif takes every
    type and channel count, so a format choice does not block looking at the tiles.
    """
    return dataclasses.replace(settings, format="tif")


def make_preview(path: Path, settings: Settings, masks: Path | None = None, labels: Path | None = None,
                 name: str | None = None, number: int = 0, annotations: Path | None = None) -> Preview:
    """Read, plan and recalibrate one image (engine), and prepare it for the screen.

    ``number`` picks one of the images a file gives (its scenes and planes); ``name`` is the
    file's name as the manifest knows it. With ``masks`` / ``labels`` folders or the
    empty-tile filter on, also its mask, boxes and kept tiles; with ``annotations``, their
    objects and the tiles the filter keeps by them (raises the engine's ``ImageError`` when an
    annotation file is missing or bad). A big image is read as a reduced view, never whole.
    """
    path = Path(path)
    settings = preview_settings(settings)
    filtered = settings if annotations is None else dataclasses.replace(settings, min_foreground=0.0)
    result = preview_image(path, filtered, masks, labels, name=name, source=number)
    plan, image = result.plan, result.image
    source_name = result.source.name if result.source is not None else (name or path.name)
    objects = None
    if annotations is not None:
        objects = annotation_preview(annotations, path, plan, settings, name, source_name)
        result = dataclasses.replace(result, foreground=objects.foreground, keep=objects.keep)
    values = image[:, :, 0] if image.shape[2] == 1 else image
    display = _display(image, plan)
    overlay = None
    if result.mask is not None:
        axes = "YXS" if result.mask_axes == "YXS" else "YX"  # a colour mask keeps its colours
        overlay = mask_overlay(result.mask, axes, display.data.shape[:2])
    return Preview(
        path, plan, values, display,
        mask=result.mask, overlay=overlay, boxes=result.boxes, foreground=result.foreground, keep=result.keep,
        source=result, name=source_name, number=number, objects=objects,
    )


def _display(image: np.ndarray, plan: ImagePlan) -> DisplayImage:
    """The screen's copy of a preview's image, stretched over the whole recalibrated image
    (a reduced view of a big image stands for all of it)."""
    return display_image(image, plan.info.axes, extent=tuple(plan.scaled_shape))


@dataclass(frozen=True)
class TileDetail:
    """One tile of a previewed image at full resolution, to lay over a reduced view."""

    path: Path
    scaled_shape: tuple[int, int]  # of the image it was read from, to recognise a stale one
    index: int
    box: tuple[int, int, int, int]  # (y0, y1, x0, x1) in recalibrated pixels, padding excluded
    values: np.ndarray  # (rows, cols[, channels]) float32, the exact recalibrated pixels
    display: DisplayImage
    name: str = ""  # of the image (a scene or plane of the file)


def make_tile_detail(preview: Preview, index: int) -> TileDetail:
    """Read tile ``index`` of a previewed image at full resolution, shown with the preview's levels."""
    pixels = tile_pixels(preview.path, preview.plan, index, preview.ref)
    tile = preview.plan.grid.tile(index)
    values = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    display = display_image(pixels, preview.plan.info.axes, like=preview.display)
    box = (tile.y0, tile.y1, tile.x0, tile.x1)
    return TileDetail(preview.path, tuple(preview.plan.scaled_shape), index, box, values, display, preview.name)


@dataclass(frozen=True)
class Output:
    """The values a previewed image's tiles will hold, ready for the screen."""

    view: OutputView
    display: DisplayImage
    values: np.ndarray  # (rows, cols[, channels]) what hovering reads


def make_output(preview: Preview, settings: Settings) -> Output:
    """The engine's output values of a preview (after normalization and the cast), shown on the
    output type's whole range, so that a near-black output looks near-black."""
    view = output_view(preview.source, preview_settings(settings))
    values = view.values[:, :, 0] if view.values.shape[2] == 1 else view.values
    display = display_image(view.values.astype(np.float32), preview.plan.info.axes, extent=preview.display.extent)
    if display.data.ndim == 2:
        if settings.dtype in DTYPE_RANGES:
            levels = (0.0, float(DTYPE_RANGES[settings.dtype][1]))
        elif settings.norm != "none":
            levels = settings.output_bounds
        else:
            levels = robust_levels(display.data)
        display = dataclasses.replace(display, levels=levels)
    return Output(view, display, values)


@dataclass(frozen=True)
class Sample:
    """The sample mosaic: RGB pixels, and the names to write over its cells (drawn by Qt, so
    any script reads right)."""

    image: np.ndarray
    labels: list[tuple[float, float, str]]  # (x, y, text) of each cell's top-left corner
    shown: int


def make_sample(paths: Sequence[Path], count: int, cell: int, cancel: threading.Event,
                seed: int | None = None) -> Generator[Progress, None, Sample]:
    """Up to ``count`` random images of ``paths``, each scaled to fit ``cell`` px (the engine's
    thumbnails), in a square-ish grid, in name order."""
    chosen = sorted(random.Random(seed).sample(list(paths), min(count, len(paths))), key=lambda p: p.name.lower())
    columns = math.ceil(math.sqrt(len(chosen)))
    pitch = cell + max(2, cell // 64)
    image = np.full((math.ceil(len(chosen) / columns) * pitch + pitch - cell, columns * pitch + pitch - cell, 3),
                    32, np.uint8)
    labels = []
    for i, path in enumerate(chosen):
        if cancel.is_set():
            raise Cancelled("The sample was cancelled.")
        yield Progress(i, len(chosen), i, len(chosen), path.name, "Reading images for the sample")
        try:
            thumb, label = thumbnail(path, cell), path.name
        except ImageError as exc:
            thumb, label = np.full((cell // 4, cell, 3), 64, np.uint8), str(exc)
        top, left = pitch - cell + (i // columns) * pitch, pitch - cell + (i % columns) * pitch
        y, x = top + (cell - thumb.shape[0]) // 2, left + (cell - thumb.shape[1]) // 2
        image[y:y + thumb.shape[0], x:x + thumb.shape[1]] = thumb
        labels.append((float(left), float(top), label))
    return Sample(image, labels, len(chosen))
