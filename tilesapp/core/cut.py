"""Cutting one image: the one path every image takes, whole or in bands.

An image is read, recalibrated, measured, normalized, cut and written band by band; an image
whose work fits its share of the memory limit is a single band (the whole image, read and
resampled once). Three passes over the bands, each only when needed:

1. statistics — the image's low/high per channel for global normalization, and the sample the
   empty-tile filter's automatic threshold is taken from;
2. the filter — the foreground share of every tile (mask, boxes or threshold);
3. writing — normalize, cut, cast, and hand each tile to the run's sink.

A single band is read once and kept for all three. Work is given to an executor per band
(:meth:`tilesapp.core.executors.Executor.map`): each pass maps a module-level function over the
bands with the image (:class:`_Image`) bound to it, and all of it pickles — the image's pixels
and its mask reopen lazily in whatever process reads them — so bands may run on other machines.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tilesapp.core.annotations import Boxes, box_coverage, check_mask_shape, read_yolo, scale_boxes
from tilesapp.core.bands import (
    Band,
    ChannelStats,
    MaskRows,
    ScaledRows,
    histogram_range,
    plan_bands,
    source_range,
    tile_rows_per_band,
)
from tilesapp.core.errors import ImageError
from tilesapp.core.executors import Executor
from tilesapp.core.geometry import index_width
from tilesapp.core.manifest import TileRecord
from tilesapp.core.memory import band_bytes, process_gate, whole_image_bytes
from tilesapp.core.normalize import NoNormalization, joint_stretch, normalization
from tilesapp.core.plan import ImagePlan
from tilesapp.core.readers import from_yxc
from tilesapp.core.sources import SourcePixels, SourceRef, view_info
from tilesapp.core.selection import auto_threshold, foreground_map, keep_tiles, sample_step, tile_fractions
from tilesapp.core.settings import Settings
from tilesapp.core.sinks import TileSink
from tilesapp.core.training import write_labels

log = logging.getLogger(__name__)

#: Errors after which no further write can succeed: stop the whole run.
FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_PAD_MODES = {"zero": "constant", "reflect": "reflect", "edge": "edge"}


class Stop(Exception):
    """A write failed in a way that will fail again for every tile (disk full, no permission)."""


class Cancelled(Exception):
    """The run was cancelled while this image was being cut."""


# --- what an image's cut is given and gives back ---------------------------------------------------
@dataclass(frozen=True)
class ImageJob:
    """One source image of a run, planned (picklable)."""

    number: int
    ref: SourceRef  # the file, and which scene, plane and channels of it
    name: str  # as the manifest records it
    stem: str  # its tiles' names start with it
    plan: ImagePlan
    split: str = "train"
    mask: Path | None = None
    labels: Path | None = None
    objects: Any = None  # tilesapp.core.training.ObjectPlan: objects imported, or taken from instance masks

    @property
    def path(self) -> Path:
        return self.ref.path


@dataclass
class CutRun:
    """What every image of a run shares: settings, sink, memory, and (in this process) the
    cancel flag and a callback counting tiles done."""

    settings: Settings
    sink: TileSink
    memory_limit: int
    workers: int
    cancel: Any = None  # has is_set(); None: never cancelled
    report: Callable[[int], None] | None = None

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def done(self, n: int) -> None:
        if self.report is not None and n:
            self.report(n)


@dataclass
class ImageResult:
    """How an image's cut ended."""

    status: str = "ok"  # ok, failed, cancelled, stopped
    error: str | None = None
    normalization: dict[str, Any] | None = None
    tiles: list[TileRecord] = field(default_factory=list)
    dropped: list[TileRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- the cut ---------------------------------------------------------------------------------------
def cut_image(job: ImageJob, run: CutRun, executor: Executor) -> ImageResult:
    """Cut one image into tiles through ``run.sink``; never raises for what one image can cause.

    An image that fails has its tiles taken back (half an image is worse than none in a
    training set); a write that cannot succeed again (full disk) ends as "stopped".
    """
    result = ImageResult()
    if run.cancelled():
        result.status = "cancelled"
        return result
    pixels = SourcePixels(job.ref, job.plan.info)
    try:
        _cut(job, run, executor, pixels, result)
    except Cancelled:
        result.status = "cancelled"
    except Stop as exc:
        result.status, result.error = "stopped", str(exc)
    except ImageError as exc:
        result.status, result.error = "failed", str(exc)
    except MemoryError:
        rows, cols = job.plan.scaled_shape
        result.status = "failed"
        result.error = (f"{job.name}: not enough memory for {rows} × {cols} px after recalibration; close other "
                        f"programs or set a lower memory limit so it is cut in bands.")
    except Exception as exc:  # an unforeseen bug must not take the other images down
        log.exception("unexpected error while exporting %s", job.path)
        result.status, result.error = "failed", f"{job.name}: unexpected error ({exc}); see the log file for details."
    finally:
        pixels.close()
    if result.status in ("failed", "stopped"):
        run.done(len(job.plan.grid) - len(result.tiles) - len(result.dropped))  # the bar still reaches its end
        try:
            run.sink.discard([name for record in result.tiles for name in record.files()])
        except OSError:
            log.exception("could not take back the tiles of %s", job.name)
        result.tiles.clear()
        result.dropped.clear()
    return result


@dataclass
class _Image:
    """An image while it is cut: its rows, annotations and what the passes found. It travels
    with its bands to other processes (without the single band it may hold, and with a
    ``failed`` flag of its own there)."""

    job: ImageJob
    run: CutRun
    rows: ScaledRows
    mask_rows: MaskRows | None
    boxes: Boxes | None
    norm: NoNormalization
    may_have_nan: bool
    band_nbytes: Callable[[int], int]
    whole: np.ndarray | None = None  # the single band, kept between passes
    fractions: np.ndarray | None = None
    keep: np.ndarray | None = None
    mask_format: str | None = None
    nonfinite: int = 0
    flat: str | None = None  # why the stretch leaves every tile at the lower bound, when it does
    thresholds: np.ndarray | None = None
    single: bool = False  # one band: the whole image, held for all passes
    failed: threading.Event = field(default_factory=threading.Event)

    def values(self, band: Band) -> np.ndarray:
        if self.whole is not None:
            return self.whole
        return self.rows.rows(band.y0, band.y1)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["whole"], state["failed"] = None, None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, failed=threading.Event())


def _cut(job: ImageJob, run: CutRun, executor: Executor, pixels: SourcePixels, result: ImageResult) -> None:
    settings, plan = run.settings, job.plan
    info, grid = plan.info, plan.grid
    opened = view_info(pixels.scene_info(), job.ref)
    if opened.shape_yx != info.shape_yx or opened.channels != info.channels:
        raise ImageError(f"{job.name} changed on disk while it was being processed; try again.")
    source_itemsize = np.dtype(info.dtype).itemsize
    out_itemsize = np.dtype(settings.dtype).itemsize
    whole_only = pixels.whole_only
    if whole_only and info.nbytes > run.memory_limit:
        raise ImageError(f"{job.name}: its {info.shape_yx[0]} × {info.shape_yx[1]} px need {info.nbytes >> 20} MB once "
                         f"decoded, more than the memory limit ({run.memory_limit >> 20} MB); this format cannot be read "
                         f"in parts — save it as a tiled TIFF or raise the memory limit.")

    # bytes of a band of n recalibrated rows (a partial, so that it pickles with the image)
    nbytes = functools.partial(band_bytes, shape_yx=info.shape_yx, scaled_shape=plan.scaled_shape,
                               channels=info.channels, source_itemsize=source_itemsize, out_itemsize=out_itemsize)
    share = run.memory_limit // max(1, run.workers)
    whole_bytes = whole_image_bytes(info.shape_yx, plan.scaled_shape, info.channels, source_itemsize, out_itemsize)
    if whole_bytes <= share:
        bands = plan_bands(grid, grid.n_rows)  # one band: held by the image for all passes
    else:
        bands = plan_bands(grid, tile_rows_per_band(grid, share, nbytes, run.workers))
        log.info("%s: %d × %d px after recalibration, cut in %d bands", job.name, plan.scaled_shape[0],
                 plan.scaled_shape[1], len(bands))

    mask_rows = boxes = None
    mask_pixels = None
    stack = contextlib.ExitStack()
    try:
        if job.mask is not None:
            mask_pixels = SourcePixels(SourceRef(job.mask))
            try:
                mask_info = mask_pixels.info
            except ImageError as exc:
                raise ImageError(f"{job.name}: its mask {job.mask.name} cannot be read "
                                 f"({str(exc).split(': ', 1)[-1].rstrip('.')}).") from exc
            check_mask_shape(mask_info, job.name, info.shape_yx)
            mask_rows = MaskRows(_MaskPixels(mask_pixels, job.name), plan.scaled_shape)
        if job.labels is not None:
            boxes = scale_boxes(*read_yolo(job.labels), plan.scaled_shape)
        if job.objects is not None:
            mask_rows, boxes = job.objects.prepare(job.name, plan, mask_rows, boxes, result.warnings)
        image = _Image(job, run, ScaledRows(pixels, plan.scaled_shape), mask_rows, boxes,
                       normalization(settings, joint_stretch(settings, info)), info.dtype.startswith("float"), nbytes)
        if mask_rows is not None:
            image.mask_format = _mask_format(settings.format, mask_rows.info.dtype, mask_rows.info.channels)
        image.single = len(bands) == 1
        stack.enter_context(_Held(process_gate(run.memory_limit), whole_bytes, run) if image.single
                            else contextlib.nullcontext())
        _statistics(image, bands, executor)
        _filter(image, bands, executor)
        bands_written = executor.map(functools.partial(_write_band, image), bands)
    finally:
        stack.close()
        if mask_pixels is not None:
            mask_pixels.close()
    for part in bands_written:
        result.tiles.extend(part.written)
        result.dropped.extend(part.dropped)
        image.nonfinite += part.nonfinite
    result.tiles.sort(key=lambda r: r.index)
    result.dropped.sort(key=lambda r: r.index)
    result.normalization = image.norm.record()
    error = next((part.error for part in bands_written if part.error is not None), None)
    if error is not None:
        raise error
    if any(part.cancelled for part in bands_written):
        raise Cancelled()
    if image.flat is not None:
        result.warnings.append(image.flat)
    if image.nonfinite:
        result.warnings.append(f"{image.nonfinite} pixels are NaN or infinite: they were left out of the statistics "
                               f"and written as the bounds (NaN and -Inf as the lower, +Inf as the upper).")


class _MaskPixels:
    """A mask's pixels, whose read errors name the mask, not the image."""

    def __init__(self, pixels: SourcePixels, image_name: str):
        self._pixels, self._image = pixels, image_name
        self.info = pixels.info

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        try:
            return self._pixels.read(y0, y1, x0, x1)
        except ImageError as exc:
            raise ImageError(f"{self._image}: its mask {self._pixels.path.name} cannot be read "
                             f"({str(exc).split(': ', 1)[-1].rstrip('.')}).") from exc

    def chunk_rows(self) -> int:
        return self._pixels.chunk_rows()


def _hold(image: _Image, band: Band):
    """Hold a band's bytes of the memory limit (a context manager); Cancelled when cancelled.
    A single band is held by the image for all its passes."""
    if image.single:
        return contextlib.nullcontext()
    return _Held(process_gate(image.run.memory_limit), image.band_nbytes(band.y1 - band.y0), image.run)


class _Held:
    def __init__(self, gate, nbytes: int, run: CutRun):
        self.gate, self.nbytes, self.run, self.held = gate, nbytes, run, 0

    def __enter__(self):
        self.held = self.gate.acquire(self.nbytes, self.run.cancel)
        if not self.held or self.run.cancelled():
            self.gate.release(self.held)
            self.held = 0
            raise Cancelled()
        return self

    def __exit__(self, *exc) -> None:
        self.gate.release(self.held)


def _statistics(image: _Image, bands: list[Band], executor: Executor) -> None:
    """Pass 1: the image's statistics, when the normalization or the filter needs them."""
    settings, plan = image.run.settings, image.job.plan
    need_otsu = settings.min_foreground > 0 and image.mask_rows is None and image.boxes is None
    if not (image.norm.needs_stats or need_otsu):
        return
    single = len(bands) == 1
    percentiles = image.norm.needs_stats and settings.percentiles != (0.0, 100.0)
    value_range = None
    if percentiles and not single:  # a cheap read-only pass first: the histogram spans the values there are
        pixels = image.rows.pixels
        value_range = histogram_range(image.rows.dtype, source_range(pixels, max(256, pixels.chunk_rows())))
    step = sample_step(plan.scaled_shape) if need_otsu else None
    parts = executor.map(functools.partial(_measure_band, image, value_range, step, single), bands)
    stats = parts[0]
    for part in parts[1:]:
        stats.merge(part)
    if image.norm.needs_stats:
        image.nonfinite = stats.nonfinite
        low, high = stats.percentiles(*settings.percentiles, joint=image.norm.joint)
        image.norm = image.norm.with_stats(low, high)
        if (low == high).any():
            image.flat = _flat_stretch(image, stats, low, high)
    if need_otsu:
        image.thresholds = auto_threshold(stats.sample(), step=1)


def _flat_stretch(image: _Image, stats: ChannelStats, low: np.ndarray, high: np.ndarray) -> str | None:
    """The warning for channels whose low and high are one value: the stretch sends every pixel
    of them to the lower bound — a blank channel, or percentiles that a sparse image's background
    fills (its bright pixels are then lost)."""
    if image.nonfinite and not np.isfinite(stats.low).any():
        return None  # no finite value at all: the NaN warning tells it
    channels = [0] if image.norm.joint else range(len(low))
    flat = [c for c in channels if low[c] == high[c]]
    if not flat:
        return None
    settings = image.run.settings
    vmin, vmax = stats.percentiles(0.0, 100.0, joint=image.norm.joint)
    bound = f"{settings.output_bounds[0]:g}"
    which = "" if len(low) == 1 or image.norm.joint else f"channel {', '.join(str(c + 1) for c in flat)}: "
    lost = [c for c in flat if vmax[c] > vmin[c]]
    if not lost:
        return (f"{which}every pixel holds {float(low[flat[0]]):g}, so its tiles hold the lower bound ({bound}).")
    p_low, p_high = settings.percentiles
    return (f"{which}its {p_low:g} % and {p_high:g} % percentiles are both {float(low[lost[0]]):g} (most pixels hold "
            f"that value), so every tile holds the lower bound ({bound}) and the pixels above it "
            f"(up to {float(vmax[lost[0]]):g}) are lost; widen the percentiles (0–100 keeps every value).")


def _measure_band(image: _Image, value_range: tuple[float, float] | None, step: int | None, single: bool,
                  band: Band) -> ChannelStats:
    """A band's statistics (pass 1); a single band is kept by the image for the next passes."""
    stats = ChannelStats(image.job.plan.info.channels, value_range, step, exact=single)
    with _hold(image, band):
        values = image.rows.rows(band.y0, band.y1)
        if single:
            image.whole = values
        # each row counted once: only the rows no earlier band holds
        stats.add(values[: band.own_y1 - band.y0], band.y0)
    return stats


def _filter(image: _Image, bands: list[Band], executor: Executor) -> None:
    """Pass 2: the foreground share of every tile, and which tiles are kept."""
    settings, job = image.run.settings, image.job
    grid = job.plan.grid
    if settings.min_foreground <= 0:
        return
    fractions = np.zeros(len(grid))
    if image.boxes is not None and image.mask_rows is None:
        fractions[:] = [box_coverage(image.boxes, t) for t in grid]
    else:
        for tiles, shares in executor.map(functools.partial(_foreground_band, image, len(bands) == 1), bands):
            fractions[tiles.start : tiles.stop] = shares
    image.fractions = fractions
    image.keep = keep_tiles(fractions, settings.min_foreground, settings.keep_empty, settings.seed, job.name)


def _foreground_band(image: _Image, single: bool, band: Band) -> tuple[range, np.ndarray]:
    """The foreground share of a band's tiles (pass 2)."""
    grid = image.job.plan.grid
    with _hold(image, band):
        if image.mask_rows is not None:
            foreground = np.any(image.mask_rows.rows(band.y0, band.y1) != 0, axis=2)
        else:
            if image.whole is None and single:
                image.whole = image.rows.rows(band.y0, band.y1)
            foreground = foreground_map(image.values(band), image.thresholds)
        tiles = band.tiles(grid)
        return tiles, tile_fractions(foreground, grid, tiles, band.y0)


@dataclass
class _BandResult:
    """What writing one band did; errors and cancels are carried, not raised, so the tiles a
    band wrote before them are known wherever the band ran."""

    written: list[TileRecord] = field(default_factory=list)
    dropped: list[TileRecord] = field(default_factory=list)
    nonfinite: int = 0
    cancelled: bool = False
    error: BaseException | None = None


def _write_band(image: _Image, band: Band) -> _BandResult:
    """Pass 3: normalize a band, cut it and write its tiles."""
    result = _BandResult()
    if image.failed.is_set():
        return result  # another band failed: the image fails, nothing more to write
    job = image.job
    try:
        with _hold(image, band):
            values = image.values(band)
            image.whole = None  # written once; the band is this thread's now
            if values.dtype.kind == "f" and not image.norm.needs_stats:
                result.nonfinite = int(values.size - np.count_nonzero(np.isfinite(values)))
            values = image.norm.apply_band(values, may_have_nan=image.may_have_nan, name=job.name)
            mask = None if image.mask_rows is None else image.mask_rows.rows(band.y0, band.y1)
            _write_tiles(image, band.tiles(job.plan.grid), values, mask, band.y0, result)
    except Cancelled:
        result.cancelled = True
    except BaseException as exc:  # noqa: BLE001 - carried to the image, which fails with it
        image.failed.set()
        result.error = exc
    return result


def _write_tiles(image: _Image, tiles: range, values: np.ndarray, mask: np.ndarray | None, y_offset: int,
                 result: _BandResult) -> None:
    run, job = image.run, image.job
    settings, plan, sink = run.settings, job.plan, run.sink
    axes = plan.info.axes
    mask_axes = image.mask_rows.axes if image.mask_rows is not None else None
    width = index_width(len(plan.grid))
    pad_y, pad_x = plan.grid.padding if not settings.whole_images else (0, 0)  # a whole image: unpadded
    split = job.split if settings.val_fraction > 0 else None
    written, dropped = result.written, result.dropped
    for index in tiles:
        if run.cancelled():
            raise Cancelled()
        tile = plan.grid.tile(index)
        files = sink.names(job.stem, index, width, job.split, image.mask_format)
        record = TileRecord(files.file, job.name, tile.index, tile.row, tile.col, tile.y0, tile.x0, tile.y1, tile.x1,
                            tile.pad_y, tile.pad_x, files.mask, files.label, split)
        if image.fractions is not None:
            record.foreground = round(float(image.fractions[index]), 6)
            if not image.keep[index]:
                record.file = record.mask = record.label = None
                dropped.append(record)
                run.done(1)
                continue
        y0, y1 = tile.y0 - y_offset, tile.y1 - y_offset
        piece, extra = image.norm.apply_tile(values[y0:y1, tile.x0 : tile.x1], may_have_nan=image.may_have_nan)
        if extra:
            record.low, record.high = extra["low"], extra["high"]
        if pad_y or pad_x:
            piece = pad(piece, pad_y, pad_x, settings.pad_mode)
        try:
            sink.write(files.file, from_yxc(piece, axes), axes, plan.output_pixel_size_um)
            if mask is not None:
                part = mask[y0:y1, tile.x0 : tile.x1]
                if pad_y or pad_x:
                    part = pad(part, pad_y, pad_x, settings.pad_mode)
                sink.write(files.mask, from_yxc(part, mask_axes), mask_axes, plan.output_pixel_size_um)
            if image.boxes is not None:
                record.boxes = write_labels(sink, files.label, image.boxes, tile, settings)
        except OSError as exc:
            if exc.errno in FATAL_ERRNOS:
                raise Stop(stop_message(exc, sink.folder, files.file)) from exc
            if exc.errno == errno.ENAMETOOLONG:
                raise ImageError(f"{job.name}: its tiles' names ({job.stem} and the tile's number) are longer than the "
                                 f"file system allows; give the image a shorter name.") from exc
            raise ImageError(f"{job.name}: writing {files.file} failed ({exc.strerror or exc}).") from exc
        written.append(record)
        run.done(1)


def pad(values: np.ndarray, pad_y: int, pad_x: int, mode: str) -> np.ndarray:
    """Pad (rows, cols, channels) values at their end up to a tile."""
    np_mode = _PAD_MODES[mode]
    if np_mode == "reflect" and min(values.shape[:2]) < 2:
        np_mode = "edge"  # nothing to reflect in a single row or column
    return np.pad(values, ((0, pad_y), (0, pad_x), (0, 0)), mode=np_mode)


def _mask_format(image_format: str, dtype, channels: int | None) -> str:
    """Masks go to .tif beside .tif images, else to lossless .png when it can hold them."""
    if image_format != "tif" and np.dtype(dtype) in (np.uint8, np.uint16) and channels in (1, 3, 4):
        return "png"
    return "tif"


def stop_message(exc: OSError, out: Path, filename: str | None = None) -> str:
    """The sentence a run stops with after a write that cannot succeed again."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"The disk holding {out} is full; free some space (or choose another folder) and export again."
    if exc.errno == errno.EROFS:
        return f"The export folder {out} is on a read-only disk; choose another folder."
    where = f" (writing {filename})" if filename else ""
    return f"Permission to write in {out} was refused{where}; choose a folder you can write to."
