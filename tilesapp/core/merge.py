"""Merging tiles (for example a model's predictions) back into whole images.

Each source of the manifest is rebuilt on its recalibrated grid (the manifest's
:class:`~tilesapp.core.geometry.TileGrid`) by a merge mode (:mod:`tilesapp.core.combine`):
``blend`` (weighted average: "flat", "gradient" or "hann" weights), ``vote`` (class ids),
``instances`` (instance labels stitched across tiles) or ``max``. There is one path whatever
the mode and the size (:class:`ImageMerge`): tiles are added tile row by tile row and rows are
finished as soon as no later tile reaches them. When the mode's state for the whole image fits
its share of the memory limit it is held whole and written as one TIFF; otherwise it is a band
of one tile row, and finished rows go to memory (when the image fits) or straight to a tiled
BigTIFF. ``restore_scale`` resamples the result back to the source's pixel size, band by band
from that file when it is big (nearest neighbour for labels and integers).

With ``boxes``, per-tile YOLO prediction files are merged instead (:mod:`tilesapp.core.boxes`):
one ``<stem>.txt`` per source and one COCO file, ``coco.json``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import math
import queue
import threading
from collections import deque
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from tilesapp.core import boxes as box_merge
from tilesapp.core.bands import MaskRows, ScaledRows
from tilesapp.core.combine import (
    BLENDS,
    COMBINES,
    DEFAULT_IOU,
    Blend,
    Combiner,
    Instances,
    Maximum,
    Placement,
    Vote,
    Weights,
    blend_window,
    check_combine,
)
from tilesapp.core.errors import ImageError, SettingsError, TilesError
from tilesapp.core.executors import Executor, ThreadExecutor, make_executor
from tilesapp.core.folders import check_output_place, lock_output
from tilesapp.core.geometry import TileGrid
from tilesapp.core.manifest import Manifest, SourceRecord, TileRecord, read_manifest
from tilesapp.core.memory import default_memory_limit, process_gate
from tilesapp.core.progress import Progress, Throttle, TileCounter
from tilesapp.core.readers import SceneInfo, from_yxc, open_image
from tilesapp.core.resample import working_dtype
from tilesapp.core.settings import MIN_MEMORY_LIMIT
from tilesapp.core.sinks import sink_class
from tilesapp.core.writers import Staged, write_bytes, write_image, write_text

log = logging.getLogger(__name__)

#: The COCO file a box merge writes beside the per-source YOLO files.
COCO_NAME = "coco.json"


@dataclass
class MergeSummary:
    """What a merge did. ``counts`` holds, per source, what its mode counted: ``objects``,
    ``merged`` (found in several tiles, given one id) and ``split`` (instances); ``boxes_in``
    (per-tile boxes) and ``boxes`` (after merging) for boxes."""

    output: Path
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    not_cut: list[tuple[str, str]] = field(default_factory=list)  # sources the cut did not finish
    cancelled: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 0 if not (self.failed or self.cancelled) else 1

    def total(self, key: str) -> int:
        """A count summed over the sources (0 when no source has it)."""
        return sum(c.get(key, 0) for c in self.counts.values())


def as_tile(array: np.ndarray, tile_size: int, name: str, nearest: bool = False) -> np.ndarray:
    """A tile as (rows, cols, channels), whatever its layout and size.

    Tiles replaced by a model's output may be YX, YXC or CYX, of any dtype; a tile of another
    size than ``tile_size`` (a model working at another resolution) is resized to it — with
    nearest neighbour when it holds labels (``nearest``), so no value is invented.
    """
    array = np.squeeze(array) if array.ndim > 3 else array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    elif array.ndim == 3:
        # channels last unless the first axis is clearly the short one (CYX)
        if array.shape[0] < min(array.shape[1:]) and array.shape[2] >= min(array.shape[:2]):
            array = np.moveaxis(array, 0, -1)
    else:
        raise ImageError(f"{name}: a tile of shape {array.shape} cannot be merged; tiles must be 2D with optional channels.")
    if array.shape[:2] != (tile_size, tile_size):
        channels = array.shape[2]
        if nearest:
            rows = np.minimum(((np.arange(tile_size) + 0.5) * array.shape[0] / tile_size).astype(np.intp), array.shape[0] - 1)
            cols = np.minimum(((np.arange(tile_size) + 0.5) * array.shape[1] / tile_size).astype(np.intp), array.shape[1] - 1)
            return array[rows[:, np.newaxis], cols[np.newaxis, :]]
        interp = cv2.INTER_AREA if array.shape[0] > tile_size else cv2.INTER_LINEAR
        array = cv2.resize(np.ascontiguousarray(array, dtype=working_dtype(array.dtype)), (tile_size, tile_size),
                           interpolation=interp).reshape(tile_size, tile_size, channels)
    return array


def read_tile(path: Path, tile_size: int) -> np.ndarray:
    """Read a tile file as (rows, cols, channels), whatever its layout and size (see :func:`as_tile`)."""
    from tilesapp.core.readers import read_array

    return as_tile(read_array(path), tile_size, path.name)


def make_combiner(combine: str, window: Weights, holes: bool, source: str, iou: float = DEFAULT_IOU,
                  argmax: bool = False) -> Combiner:
    """The combiner of a merge mode for one image (see :mod:`tilesapp.core.combine`)."""
    if combine == "blend":
        return Blend(window, holes, source, argmax)
    if combine == "vote":
        return Vote(window, holes, source)  # its reserve is set by ImageMerge
    if combine == "instances":
        return Instances(window, holes, source, iou)
    if combine == "max":
        return Maximum(window, holes, source)
    raise SettingsError("combine", f"{{name}} must be one of {', '.join(COMBINES)}; got {combine!r}.")


def run_merge(
    tiles_folder: str | Path,
    output: str | Path,
    *,
    combine: str = "blend",
    blend: str | None = None,
    iou: float = DEFAULT_IOU,
    boxes: str | Path | None = None,
    box_fusion: str = "nms",
    restore_scale: bool = False,
    overwrite: bool = False,
    cancel: threading.Event | None = None,
    memory_limit: int | None = None,
    executor: Executor | str | None = None,
) -> Generator[Progress, None, MergeSummary]:
    """Rebuild every source of a tile folder's manifest into ``output`` (one TIFF per source).

    Parameters
    ----------
    tiles_folder : path
        A folder written by the export (its ``manifest.json``); tile files may have been
        replaced by files of the same names holding a model's output.
    output : path
        Folder for the merged images, ``<stem>.tif``; never the folder of the tiles, nor the
        folder they were cut from. A folder that is not empty needs ``overwrite`` (files of the
        same names are replaced).
    combine : {"blend", "vote", "instances", "max"}
        How the tiles covering a pixel are combined (see :mod:`tilesapp.core.combine`).
    blend : {"flat", "gradient", "hann"}, optional
        Weights of a blend and of a vote's tiles (default "flat" for a blend, "gradient" for a vote).
    iou : float
        Objects (instances, boxes) whose IoU where their tiles overlap reaches this are one.
    boxes : path, optional
        A folder of per-tile YOLO prediction files (``<tile stem>.txt``): merge those boxes
        into ``<stem>.txt`` per source and ``coco.json`` instead of merging images.
    box_fusion : {"nms", "wbf"}
    restore_scale : bool
        Resample each merged image (or boxes) back to its source's original size.
    cancel : threading.Event, optional
        Set it to stop between two tiles.
    memory_limit : int, optional
        Bytes the merge may hold (default: :func:`tilesapp.core.memory.default_memory_limit`).
        A source whose merge state would need more is merged tile row by tile row.
    executor : Executor or str, optional
        Merge each source's image as one task of it (a Dask scheduler's address or ``local:N``):
        :func:`_merge_on`. Boxes are merged here.
    """
    if memory_limit is not None and memory_limit < MIN_MEMORY_LIMIT:
        raise SettingsError("memory_limit", f"{{name}} must be at least {MIN_MEMORY_LIMIT >> 20} MB "
                                            f"(got {memory_limit / 2**20:.0f} MB).")
    limit = memory_limit or default_memory_limit()
    tiles_folder = Path(tiles_folder).expanduser()
    blend = check_combine(combine, blend, iou)  # checked before anything is read
    predictions = None if boxes is None else box_merge.check_predictions(boxes, box_fusion)
    if predictions is not None and combine != "blend":
        raise SettingsError("combine", f"{{name}} {combine} merges images; boxes are merged on their own (give one or "
                                       f"the other).")
    manifest = read_manifest(tiles_folder)
    out = Path(output).expanduser().absolute()
    cut_from = [Path(manifest.input)] if manifest.input and Path(manifest.input).is_dir() else []
    check_output_place(out, [tiles_folder] + cut_from + ([predictions] if predictions else []), "the merged images")
    sources, summary = _mergeable(manifest, out)
    if predictions is None:
        _check_memory(tiles_folder, manifest, sources, limit, combine)
    else:
        predictions = _prediction_files(predictions, manifest, sources)
    cancel = cancel or threading.Event()
    jobs = _SourceJobs(tiles_folder, manifest, out, combine, blend, iou, restore_scale, limit)
    lock = lock_output(out, overwrite)  # two runs writing into one folder at once would mix their images
    try:
        if predictions is None:
            # sources merged side by side on this computer's cores (numpy and the codecs release
            # the GIL; the memory gate holds them to the limit), or as tasks of a cluster
            return (yield from _merge_on(executor or ThreadExecutor(), jobs, sources, summary, cancel))
        return (yield from _merge_boxes(manifest, tiles_folder, sources, predictions, out, summary, restore_scale,
                                        iou, box_fusion, cancel))
    finally:
        lock.release()


@dataclass
class SourceJob:
    """One source's merge with all it needs, picklable: a cluster runs it as one task (the
    weights and the merge state are made where it runs)."""

    sink: Any  # the layout, reading the tiles back
    source: SourceRecord
    tiles: list[TileRecord]  # row-major: the order they are added in
    tile_size: int
    overlap: int
    combine: str
    blend: str
    iou: float
    holes: bool  # tiles dropped by the empty-tile filter leave zeros
    output: Path
    restore: bool
    limit: int
    cancel: Any  # has is_set()

    def image(self) -> ImageMerge:
        combiner = make_combiner(self.combine, Weights(self.tile_size, self.overlap, self.blend), self.holes,
                                 self.source.name, self.iou)
        return ImageMerge(self.source.grid_of(self.tile_size, self.overlap), combiner,
                          MergeTarget.of(self.source, self.output, self.restore), self.limit,
                          max(1, self.source.channels), self.cancel)


class _SourceJobs:
    """Makes the :class:`SourceJob` of each source of a manifest."""

    def __init__(self, folder: Path, manifest: Manifest, out: Path, combine: str, blend: str, iou: float,
                 restore: bool, limit: int):
        self.folder, self.manifest, self.out = folder, manifest, out
        self.combine, self.blend, self.iou, self.restore, self.limit = combine, blend, iou, restore, limit
        self.by_source = manifest.tiles_by_source()
        self.holes = {tile.source for tile in manifest.dropped}

    def job(self, source: SourceRecord, cancel, alone: bool = False) -> SourceJob:
        """The job of ``source``; ``alone``: its sink carries this source's manifest only (a task)."""
        manifest = _of_source(self.manifest, source, self.by_source) if alone else self.manifest
        return SourceJob(sink_class(manifest.layout).for_reading(self.folder, manifest), source,
                         sorted(self.by_source[source.name], key=lambda t: t.index), self.manifest.tile_size,
                         self.manifest.overlap, self.combine, self.blend, self.iou, source.name in self.holes, self.out,
                         self.restore, self.limit, cancel)


def _merge_on(executor: Executor | str, jobs: _SourceJobs, sources: list[SourceRecord], summary: MergeSummary,
              cancel: threading.Event) -> Generator[Progress, None, MergeSummary]:
    """Each source's merge as one task of ``executor`` (a cluster: the worker that runs it
    streams a big source band by band into its file, as here); progress per finished source.
    On a cluster, every worker must see the tile folder and the output folder's place first."""
    owned = isinstance(executor, (str, ThreadExecutor))
    executor = make_executor(executor)
    pending: dict[int, Any] = {}
    try:
        check_shared = getattr(executor, "check_shared", None)
        if check_shared is not None:
            check_shared([jobs.folder], summary.output)
        flag = executor.shared_cancel() if hasattr(executor, "shared_cancel") else cancel
        local = getattr(executor, "local", True)
        counter = TileCounter()
        report = executor.tile_counter() if hasattr(executor, "tile_counter") else (counter if local else None)
        tasks = [jobs.job(s, flag, alone=True) for s in sources]
        pending = {n: executor.submit(merge_source, job, report) for n, job in enumerate(tasks)}
        in_flight = getattr(executor, "in_flight", lambda: 0)
        total, done, failed, written = sum(len(j.tiles) for j in tasks), 0, {}, set()
        while pending:
            if cancel.is_set() and not summary.cancelled:  # tasks not started are dropped, the others stop
                summary.cancelled = True
                for future in pending.values():
                    future.cancel()
            ended, _ = concurrent.futures.wait(list(pending.values()), timeout=0.1,
                                               return_when=concurrent.futures.FIRST_COMPLETED)
            for number in [n for n, f in pending.items() if f in ended]:
                future, job = pending.pop(number), tasks[number]
                done += 0 if local else len(job.tiles)
                try:
                    error, counts, landed = future.result()
                except BaseException as exc:  # the executor lost the work (a cancelled future, a dead worker)
                    error, counts, landed = (None if future.cancelled() else f"{job.source.name}: {exc or type(exc).__name__}."), {}, False
                if error is not None:
                    failed[number] = error
                elif landed:  # reported even when a cancel came after it landed: it is on disk
                    written.add(number)
                    if counts:
                        summary.counts[job.source.name] = counts
            done = counter.count if local else done
            yield Progress(min(total, done + in_flight()), total, len(tasks) - len(pending), len(tasks), "", "Merging tiles")
        summary.written += [MergeTarget.of(tasks[n].source, tasks[n].output, tasks[n].restore).path
                            for n in sorted(written)]
        # a cancel that came as the last tasks ended: those it stopped were not written
        summary.cancelled = summary.cancelled or (cancel.is_set() and len(written) + len(failed) < len(tasks))
        summary.failed += [(tasks[n].source.name, failed[n]) for n in sorted(failed)]
        return summary
    except BaseException:  # closed (Ctrl-C): the tasks stop at their next tile, before we leave
        for future in pending.values():
            future.cancel()
        concurrent.futures.wait(list(pending.values()))
        raise
    finally:
        if owned:
            executor.close()


def merge_source(job: SourceJob, report=None) -> tuple[str | None, dict[str, int], bool]:
    """Merge one source, wherever it runs: (None, its counts, whether its image was written —
    not when cancelled before), else (why it failed, {}, False). ``report(n)`` is told of the
    tiles merged."""
    image = job.image()
    gate = process_gate(job.limit)
    held = gate.acquire(image.bytes_needed(), job.cancel)
    name, merged = job.source.name, 0
    try:
        tiles = _merge_tiles(image, job)
        for step in tiles:
            if report is not None:
                report(step - merged)
            merged = step
        return None, image.combiner.counts(), image.written
    except (ImageError, MemoryError, OSError) as exc:
        return _failure(name, exc), {}, False
    except Exception as exc:
        log.exception("unexpected error while merging %s", name)
        return f"{name}: unexpected error ({exc}); see the log file.", {}, False
    finally:
        gate.release(held)


def _of_source(manifest: Manifest, source: SourceRecord, by_source: dict[str, list[TileRecord]]) -> Manifest:
    """The manifest as far as one source's merge needs it (a task carries no other source's tiles)."""
    return dataclasses.replace(manifest, sources=[source], tiles=by_source[source.name],
                               dropped=[t for t in manifest.dropped if t.source == source.name])


def _failure(name: str, exc: BaseException) -> str:
    """The sentence a source fails with."""
    if isinstance(exc, MemoryError):
        return f"{name}: not enough memory to merge it."
    if isinstance(exc, OSError):
        return f"{name}: writing failed ({exc.strerror or exc})."
    return str(exc)


def _merge_tiles(image: ImageMerge, job: SourceJob):
    """Add a source's tiles to its merge, read a few ahead; yields the number added so far
    (stops early when cancelled), then finishes the image."""
    sink, source, tiles, nearest = job.sink, job.source, job.tiles, image.combiner.labels

    def read(tile: TileRecord) -> np.ndarray:
        try:
            array = sink.read(tile.file)
        except FileNotFoundError:
            raise ImageError(f"{source.name}: tile {tile.file} is missing from {sink.folder}; every tile its manifest "
                             f"lists is needed to merge the image: put it back (or write that prediction again).") from None
        except ImageError as exc:
            raise ImageError(f"{source.name}: tile {exc}") from exc
        return as_tile(array, job.tile_size, tile.file, nearest)

    reads = _read_ahead(read, tiles)
    try:
        for added, tile in enumerate(tiles, start=1):
            if image.cancel.is_set():
                return
            image.add(tile, next(reads), tile.file)
            yield added
        image.written = image.close() is not None
    finally:
        reads.close()
        image.abort()


def _mergeable(manifest: Manifest, out: Path) -> tuple[list[SourceRecord], MergeSummary]:
    """The sources a merge rebuilds (cut complete, tiles listed), and a summary naming the others."""
    summary = MergeSummary(out)
    by_source = manifest.tiles_by_source()
    sources = []
    for source in manifest.sources:
        if source.status == "ok" and by_source.get(source.name):
            sources.append(source)
        else:
            reason = source.error or f"its cut ended as '{source.status}'"
            summary.not_cut.append((source.name, reason))
    return sources, summary


def _check_memory(folder: Path, manifest: Manifest, sources: list[SourceRecord], limit: int, combine: str) -> None:
    """Refuse (before anything is allocated) a manifest whose tiles cannot be merged in the limit:
    the blend window and the band of one tile row an image merged in bands holds must fit (a
    vote's band with the sums of two classes)."""
    window = manifest.tile_size * manifest.tile_size * 8
    probe = make_combiner(combine, Weights(1, 0, "flat"), False, "")
    rows = manifest.tile_size
    for source in sources:
        cols = source.scaled_shape[1]
        need = window + probe.state_bytes(rows, cols, max(1, source.channels))
        if need > limit:
            raise TilesError(
                f"{folder / 'manifest.json'}: tile_size {manifest.tile_size} means merging one row of "
                f"{source.name}'s tiles ({cols} px wide) needs {need >> 20} MB, more than the memory limit "
                f"({limit >> 20} MB); if the manifest is right, raise the memory limit.")


# --- one image ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MergeTarget:
    """Where a merged image goes: its file, its source's axes, sizes and pixel sizes, and
    whether it is resampled back to the source's size."""

    path: Path
    shape_yx: tuple[int, int]
    axes: str | None = None
    pixel_size_um: tuple[float, float] | None = None
    output_pixel_size_um: tuple[float, float] | None = None
    restore: bool = False

    @classmethod
    def of(cls, source: SourceRecord, out: Path, restore_scale: bool) -> MergeTarget:
        def pair(value):
            return None if value is None else (float(value[0]), float(value[1]))

        return cls(out / f"{source.tile_stem}.tif", tuple(source.shape_yx), source.axes, pair(source.pixel_size_um),
                   pair(source.output_pixel_size_um), restore_scale and list(source.scaled_shape) != list(source.shape_yx))


class ImageMerge:
    """One image rebuilt from its tiles, given in row-major order (:meth:`add`), by a combiner.

    The combiner holds the whole image when its state fits ``limit`` (and its mode allows it),
    else a band of one tile row whose finished rows are taken out as soon as the next tile row
    starts: into memory when the output fits, else into a tiled BigTIFF. :meth:`close` writes
    the result (resampled back to the source's size when the target says so).
    """

    def __init__(self, grid: TileGrid, combiner: Combiner, target: MergeTarget, limit: int, channels: int = 1,
                 cancel: threading.Event | None = None):
        self.grid, self.combiner, self.target = grid, combiner, target
        self.cancel = cancel or threading.Event()
        self.written = False  # set once close() has put the image under its final name
        self.rows, self.cols = grid.shape
        self.channels = channels
        # A blend's sums are float64, three times its output: in bands (of one tile row, reused)
        # two images are merged at once in the memory one whole image takes, with a fraction of
        # the fresh pages to fault in. Resampling back wants the sums whole (rounded after).
        banded = combiner.same_in_bands and not target.restore
        held_whole = combiner.whole_ok and not banded
        self.whole = held_whole and combiner.state_bytes(self.rows, self.cols, channels) <= limit
        self.height = self.rows if self.whole else min(self.rows, grid.tile_size)
        restored = target.shape_yx[0] * target.shape_yx[1] * channels * 8 if target.restore else 0
        self.output_bytes = self.rows * self.cols * channels * 8 + restored  # as float64 at most
        # a mode held whole when it fits writes a band's rows to a BigTIFF otherwise; a merge in
        # bands keeps its output in memory when it fits half the limit, its state the rest
        self.in_memory = self.whole if held_whole else self.output_bytes <= limit // 2
        if isinstance(combiner, Vote):
            combiner.reserve = max(Vote.class_bytes(2, self.height, self.cols),
                                   limit - (self.output_bytes if self.in_memory else 0))
        self.band_y0 = 0  # image row of the band's first row
        self.row = 0  # tile row being added
        self.out_dtype: np.dtype | None = None
        self._writer: _TiledWriter | None = None
        self._memory: np.ndarray | None = None  # the output, when it is kept in memory
        self._filled = 0

    def bytes_needed(self) -> int:
        """Bytes this merge holds at most (what it asks the memory gate for)."""
        state = self.combiner.state_bytes(self.height, self.cols, self.channels)
        if self.whole:
            return state + (self.output_bytes - self.rows * self.cols * self.channels * 8)
        return state + (self.output_bytes if self.in_memory else 0)

    def add(self, tile, values: np.ndarray, name: str = "") -> None:
        """Add a tile's (rows, cols, channels) values; ``tile`` has ``row, y0, x0, y1, x1`` (a
        :class:`~tilesapp.core.geometry.Tile` or a manifest's tile record)."""
        if self.out_dtype is None:
            self.combiner.start(self.height, self.cols, values.shape[2], values.dtype)
            self.out_dtype = self.combiner.out_dtype
        if tile.row < self.row:
            raise ValueError(f"tiles must be added row by row; tile row {tile.row} came after {self.row}")
        self._advance(tile.row)
        inner = (tile.y0 > 0, tile.x0 > 0, tile.y1 < self.rows, tile.x1 < self.cols)
        place = Placement(tile.y0 - self.band_y0, tile.x0, tile.y1 - self.band_y0, tile.x1, inner, name)
        self.combiner.add(values, place)

    def _advance(self, row: int) -> None:
        """Move the band down to tile row ``row``: the rows above it are done (tile rows with no
        tile, dropped by the empty-tile filter, are passed one by one)."""
        while not self.whole and self.row < row:
            self.row += 1
            y0 = self.grid.row_starts[self.row]
            if y0 > self.band_y0:
                self._emit(y0 - self.band_y0)
                self.combiner.drop(y0 - self.band_y0)
                self.band_y0 = y0
        self.row = max(self.row, row)

    def close(self) -> Path | None:
        """Finish the image and write it; the path written (None when cancelled before it was:
        a file that landed is always reported, whenever the cancel came)."""
        if self.out_dtype is None:
            raise self.combiner.not_covered()
        self._advance(self.grid.n_rows - 1)
        self._emit(self.rows - self.band_y0)
        if self._writer is None:
            merged, self._memory = self._memory, None
            return self.target.path if self._write_whole(merged) else None
        writer, self._writer = self._writer, None
        writer.close()
        if self.target.restore:
            merged = _merged_file(self.target.path)
            try:
                with open_image(merged) as image:
                    if not self._restore(_ScenePixels(image.scenes[0]), _STRIP):
                        return None
            finally:
                merged.unlink(missing_ok=True)
        return self.target.path

    def abort(self) -> None:
        """Give up (cancelled or failed): nothing is left under a final name."""
        if self._writer is not None:
            self._writer.close(ok=False)
            self._writer = None
        self._memory = None

    def _emit(self, n: int) -> None:
        """Take the first ``n`` rows of the band out: to memory or to the BigTIFF."""
        if n <= 0:
            return
        if self.in_memory and not self.whole:
            if self._memory is None:
                self._memory = np.empty((self.rows, self.cols, self.combiner.out_channels), self.out_dtype)
            target = self._memory[self._filled : self._filled + n]
            block = self.combiner.rows(n, out=target)
            if block is not target:
                _into(target, block)
            self._filled += n
            return
        block = self.combiner.rows(n)
        if self.whole:  # the whole image, as the combiner gives it (float64 for a blend) until written
            self._memory = block
            return
        if self._writer is None:
            path = _merged_file(self.target.path) if self.target.restore else self.target.path
            self._writer = _TiledWriter(path, (self.rows, self.cols, block.shape[2]), self.out_dtype,
                                        self.target.output_pixel_size_um)
        self._writer.add(_to_dtype(block, self.out_dtype))

    def _write_whole(self, merged: np.ndarray) -> bool:
        """Write an image held in memory, back at the source's size first when asked; whether
        it was written (not when cancelled before)."""
        target, dtype = self.target, self.out_dtype
        pixel_size = target.output_pixel_size_um
        if target.restore:
            restored: list[np.ndarray] = []
            if not self._restore(_MemoryPixels(merged), None, restored.append):
                return False
            merged, pixel_size = restored[0], target.pixel_size_um
        else:
            merged = _to_dtype(merged, dtype)
        axes = _axes(merged.shape[2], target.axes)
        write_image(target.path, from_yxc(merged, axes), axes, pixel_size)
        return True

    def _restore(self, pixels, step: int | None, emit=None) -> bool:
        """Resample merged pixels back to the source's size in bands of ``step`` rows (None: one
        band), nearest neighbour for labels and integers; to ``emit`` or else to the final tiled
        BigTIFF. Whether it ended (not when cancelled)."""
        rows, cols = self.target.shape_yx
        dtype = self.out_dtype
        resampled = MaskRows(pixels, (rows, cols)) if self.combiner.nearest else ScaledRows(pixels, (rows, cols))
        writer = None
        if emit is None:
            writer = _TiledWriter(self.target.path, (rows, cols, pixels.info.channels), dtype, self.target.pixel_size_um)
            emit = writer.add
        try:
            for y in range(0, rows, step or rows):
                if self.cancel.is_set():
                    return False
                emit(_to_dtype(resampled.rows(y, min(rows, y + (step or rows))), dtype))
            if writer is not None:
                writer.close()
                writer = None
            return True
        finally:
            if writer is not None:
                writer.close(ok=False)


def _merged_file(final: Path) -> Path:
    """The hidden file a big image is merged into before it is resampled to ``final``."""
    return final.with_name(f".{final.stem}.merged.tif")


# --- boxes ----------------------------------------------------------------------------------------
def _prediction_files(folder: Path, manifest: Manifest, sources: list[SourceRecord]) -> tuple[Path, dict[str, Path]]:
    """The prediction files of a folder by stem; a folder whose files name no tile is refused."""
    files = box_merge.prediction_files(folder)
    stems = {Path(t.file).stem for t in manifest.tiles if t.source in {s.name for s in sources}}
    if files and not stems & set(files):
        example = min(stems, default="tile")
        raise SettingsError("boxes", f"no prediction file in {folder} is named like a tile (such as {example}.txt); "
                                     f"give the folder of the model's per-tile .txt files.")
    return folder, files


def _merge_boxes(manifest: Manifest, folder: Path, sources: list[SourceRecord], predictions, out: Path,
                 summary: MergeSummary, restore: bool, iou: float, fusion: str, cancel: threading.Event) -> Generator[Progress, None, MergeSummary]:
    """Merge per-tile prediction files into one YOLO file per source and one COCO file."""
    predictions, files = predictions
    by_source = manifest.tiles_by_source()
    tiles = {s.name: sorted(by_source[s.name], key=lambda t: t.index) for s in sources}
    coco = box_merge.CocoFile(box_merge.class_names(predictions, folder, manifest))
    total, done, throttle = sum(len(t) for t in tiles.values()), 0, Throttle()
    for number, source in enumerate(sources):
        if cancel.is_set():
            summary.cancelled = True
            break
        shape = tuple(source.scaled_shape)
        size = tuple(source.shape_yx) if restore else shape
        try:
            parts = []
            for tile in tiles[source.name]:
                path = files.get(Path(tile.file).stem)
                if path is not None:  # a tile without a file has no detection (YOLO writes none)
                    try:
                        rows = box_merge.read_predictions(path)
                    except ImageError as exc:
                        raise ImageError(f"{source.name}: {exc}") from exc
                    parts.append(box_merge.place_boxes(rows, tile, manifest.tile_size, shape))
            placed = box_merge.concat(parts)
            merged = box_merge.merge_boxes(placed, iou, fusion).scaled(shape, size)
            target = out / f"{source.tile_stem}.txt"
            write_text(target, box_merge.yolo_text(merged, size))
            coco.add_image(source.name, size, merged)
            summary.written.append(target)
            summary.counts[source.name] = {"boxes_in": len(placed), "boxes": len(merged)}
        except (ImageError, OSError) as exc:
            summary.failed.append((source.name, _failure(source.name, exc)))
        done += len(tiles[source.name])
        if throttle.due(force=True):
            yield Progress(done, total, number + 1, len(sources), source.name, "Merging boxes")
    if coco.images:
        write_bytes(out / COCO_NAME, json.dumps(coco.document(), indent=1).encode("utf-8"))
        if coco.names_file is not None:
            write_text(out / "classes.txt", "".join(f"{name}\n" for name in coco.names))
    return summary


def _axes(channels: int, source_axes: str | None) -> str:
    """Axes a merged image is written with: grey, colour like its source, or channels."""
    if channels == 1:
        return "YX"
    if source_axes == "YXS" and channels in (3, 4):
        return "YXS"
    return "CYX"


class _MemoryPixels:
    """A merged image held in memory, read as a scene."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.info = SceneInfo(Path("merged"), array.shape, "YXS", array.dtype.name)

    def read(self, y0, y1, x0, x1):
        return self.array[y0:y1, x0:x1]

    def chunk_rows(self):
        return 1


class _ScenePixels:
    """A merged image written to a file, read back band by band."""

    def __init__(self, scene):
        self.scene, self.info = scene, scene.info

    def read(self, y0, y1, x0, x1):
        return self.scene.read(y0, y1, x0, x1)

    def chunk_rows(self):
        return self.scene.chunk_rows()


# --- where merged rows go -------------------------------------------------------------------------
_STRIP = 256  # tile size of the progressive BigTIFF


class _TiledWriter:
    """Writes a tiled BigTIFF from rows given top to bottom, holding one strip of tiles.

    tifffile writes from an iterator of tiles; it runs in a thread fed through a small queue,
    so the merge keeps its own loop (progress, cancel) and memory stays at a few strips.
    """

    def __init__(self, path: Path, shape: tuple[int, int, int], dtype: np.dtype, pixel_size_um):
        self.path, self.shape, self.dtype = path, shape, np.dtype(dtype)
        self._strip = np.zeros((_STRIP, shape[1], shape[2]), self.dtype)
        self._filled = 0
        self._rows_done = 0
        self._queue: queue.Queue = queue.Queue(maxsize=2 * math.ceil(shape[1] / _STRIP))
        self._error: BaseException | None = None
        self._ended = False  # the writer thread has taken the end marker
        kwargs: dict[str, Any] = {"photometric": "minisblack", "planarconfig": "contig"}
        if pixel_size_um is not None:
            kwargs.update(resolution=(1e4 / pixel_size_um[1], 1e4 / pixel_size_um[0]), resolutionunit="CENTIMETER")
        data_shape = shape if shape[2] > 1 else shape[:2]
        self._staged = Staged(path)
        self._thread = threading.Thread(target=self._write, args=(data_shape, kwargs), daemon=True,
                                        name="tilesapp-merge-writer")
        self._thread.start()

    def _tiles(self):
        while True:
            item = self._queue.get()
            if item is None:
                self._ended = True
                return
            yield item

    def _write(self, data_shape, kwargs) -> None:
        try:
            tifffile.imwrite(self._staged.file, self._tiles(), shape=data_shape, dtype=self.dtype,
                             tile=(_STRIP, _STRIP), bigtiff=True, **kwargs)
        except BaseException as exc:  # reported by close(); drain so put() never blocks
            self._error = exc
            while not self._ended and self._queue.get() is not None:
                pass

    def add(self, rows: np.ndarray) -> None:
        """Append finished rows (rows, cols, channels), already of the output dtype."""
        start = 0
        while start < rows.shape[0]:
            take = min(_STRIP - self._filled, rows.shape[0] - start)
            self._strip[self._filled : self._filled + take] = rows[start : start + take]
            self._filled += take
            start += take
            if self._filled == _STRIP:
                self._flush()

    def _flush(self) -> None:
        if self._error is not None:
            raise self._error
        self._strip[self._filled :] = 0  # the padding of the last strip
        cols, channels = self.shape[1], self.shape[2]
        for x in range(0, cols, _STRIP):
            tile = np.zeros((_STRIP, _STRIP, channels), self.dtype)
            part = self._strip[:, x : x + _STRIP]
            tile[:, : part.shape[1]] = part
            self._queue.put(tile if channels > 1 else tile[..., 0])
        self._rows_done += self._filled
        self._filled = 0

    def close(self, ok: bool = True) -> None:
        """Finish the file (``ok``) or abandon it; raises what the writer thread met."""
        if ok and self._filled:
            self._flush()
        self._queue.put(None)
        self._thread.join()
        error = self._error or (None if not ok or self._rows_done == self.shape[0] else
                                RuntimeError(f"{self._rows_done} rows written of {self.shape[0]}"))
        if ok and error is None:
            self._staged.commit()
        else:
            self._staged.discard()
            if ok and error is not None:
                raise error


def _read_ahead(read, items: list, depth: int = 32):
    """``read(item)`` for every item, in order, a few reads ahead in background threads (tile
    files are decoded while the canvas is summed); closing the generator stops them."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tilesapp-merge-read") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(read, item))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _into(out: np.ndarray, values: np.ndarray) -> None:
    """``out[...] = _to_dtype(values, out.dtype)`` without the converted copy in between."""
    np.copyto(out, _rounded(values, out.dtype), casting="unsafe")


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` in ``dtype``: rounded and clipped for an integer type (``values`` is scratch)."""
    return _rounded(values, dtype).astype(dtype, copy=False)


def _rounded(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float ``values`` rounded and clipped to an integer ``dtype``'s range in place (other
    integers clipped into a new array); unchanged for a float ``dtype``."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values.dtype.kind == "f":
            values = np.clip(np.rint(values, out=values), info.min, info.max, out=values)
        elif values.dtype != dtype:
            values = np.clip(values, info.min, info.max)
    return values


__all__ = ["BLENDS", "COMBINES", "COCO_NAME", "ImageMerge", "MergeSummary", "MergeTarget", "SceneInfo", "as_tile", "blend_window",
           "make_combiner", "read_tile", "run_merge"]
