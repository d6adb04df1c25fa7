"""The window's slow work, as generators of engine calls for :class:`~tilesapp.gui.workers.Job`.

Nothing here re-implements the engine: these functions only chain its calls and shape the
results for display, in a worker thread.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tilesapp.core.annotations import Boxes
from tilesapp.core.errors import Cancelled, ImageError
from tilesapp.core.folders import collect_inputs
from tilesapp.core.plan import ImagePlan
from tilesapp.core.preview import preview_image, tile_pixels
from tilesapp.core.progress import Progress
from tilesapp.core.readers import SceneInfo, inspect_image
from tilesapp.core.settings import Settings
from tilesapp.gui.viewer import DisplayImage, display_image, mask_overlay


@dataclass
class Sources:
    """What was loaded: a folder (or dropped files), its images and what their metadata says."""

    sources: Path | list[Path]  # as given to the engine's export
    folders: list[Path]  # input folders, never to be written to
    infos: list[SceneInfo] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    skipped: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)  # every image found, readable or not
    root: Path | None = None  # common folder of the images; names are relative to it

    @property
    def paths(self) -> list[Path]:
        return [info.path for info in self.infos]

    def names(self) -> dict[Path, str]:
        """Each image's name as the export's manifest (and its train/val split) knows it."""
        if self.root is None:
            return {p: p.name for p in self.images}
        return {p: p.relative_to(self.root).as_posix() for p in self.images}

    @property
    def label(self) -> str:
        """The folder, or how many files were dropped."""
        if isinstance(self.sources, Path):
            return str(self.sources)
        folder = self.folders[0] if len(self.folders) == 1 else None
        return f"{len(self.sources)} files" + (f" in {folder}" if folder else "")


def inspect_sources(
    sources: Path | Sequence[Path], recursive: bool, cancel: threading.Event
) -> Generator[Progress, None, Sources]:
    """List the images of a folder (or files) and read their metadata, one progress per image."""
    inputs = collect_inputs(sources, recursive)
    given = Path(sources) if isinstance(sources, (str, Path)) else [Path(p) for p in sources]
    result = Sources(
        given, list(inputs.folders), skipped=list(inputs.skipped), images=list(inputs.images), root=inputs.root
    )
    n = len(inputs.images)
    for i, path in enumerate(inputs.images):
        if cancel.is_set():
            raise Cancelled("Loading was cancelled.")
        yield Progress(i, n, i, n, path.name, "Reading metadata")
        try:
            result.infos.append(inspect_image(path))
        except ImageError as exc:
            result.unreadable.append((path.name, str(exc)))
    yield Progress(n, n, n, n, "", "Metadata read")
    return result


@dataclass(frozen=True)
class Preview:
    """One recalibrated image of the folder, ready to be shown under its tile grid.

    With a masks or labels folder, or the empty-tile filter on, it also carries the image's
    mask and boxes on the same grid and which tiles the filter keeps.

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

    @property
    def annotated(self) -> bool:
        """There is a mask or boxes to draw."""
        return self.mask is not None or self.boxes is not None

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


def needs_annotations(settings: Settings, masks: Path | None, labels: Path | None) -> bool:
    """Whether a preview must show annotations or the filter (the engine's annotated preview)."""
    return masks is not None or labels is not None or settings.min_foreground > 0


def make_preview(path: Path, settings: Settings, masks: Path | None = None, labels: Path | None = None) -> Preview:
    """Read, plan and recalibrate one image (engine), and prepare it for the screen.

    With ``masks`` / ``labels`` folders or the empty-tile filter on, also its mask, boxes and
    kept tiles (raises the engine's ``ImageError`` when its mask or label file is missing or bad).
    A big image is read as a reduced view, never whole.
    """
    path = Path(path)
    settings = preview_settings(settings)
    result = preview_image(path, settings, masks, labels)
    plan, image = result.plan, result.image
    values = image[:, :, 0] if image.shape[2] == 1 else image
    display = _display(image, plan)
    overlay = None
    if result.mask is not None:
        axes = "YXS" if result.mask_axes == "YXS" else "YX"  # a colour mask keeps its colours
        overlay = mask_overlay(result.mask, axes, display.data.shape[:2])
    return Preview(
        path, plan, values, display,
        mask=result.mask, overlay=overlay, boxes=result.boxes, foreground=result.foreground, keep=result.keep,
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


def make_tile_detail(preview: Preview, index: int) -> TileDetail:
    """Read tile ``index`` of a previewed image at full resolution, shown with the preview's levels."""
    pixels = tile_pixels(preview.path, preview.plan, index)
    tile = preview.plan.grid.tile(index)
    values = pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
    display = display_image(pixels, preview.plan.info.axes, like=preview.display)
    box = (tile.y0, tile.y1, tile.x0, tile.x1)
    return TileDetail(preview.path, tuple(preview.plan.scaled_shape), index, box, values, display)
