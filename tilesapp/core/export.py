"""The export: every image of a folder turned into tiles, plus ``manifest.json``.

:func:`run_export` is a generator: it yields :class:`Progress` records and returns an
:class:`ExportSummary`. Images are processed by a pool of threads (reading, OpenCV resampling,
numpy arithmetic and file writes all release the GIL); tiles and manifest keep the order of
the sources whatever order the threads finish in. Setting ``cancel`` (a ``threading.Event``)
stops the run between two tiles; closing the generator does the same.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tilesapp import __version__
from tilesapp.core.annotations import (
    AnnotationFolders,
    box_coverage,
    boxes_in_tile,
    check_mask_shape,
    format_yolo,
    load_annotations,
    read_yolo,
    scale_boxes,
)
from tilesapp.core.errors import ImageError, OutputError, SettingsError, TilesError
from tilesapp.core.geometry import Tile, index_width
from tilesapp.core.normalize import cast, channel_range, check_fits, stretch
from tilesapp.core.pipeline import ImagePlan, plan_image, scale
from tilesapp.core.progress import Progress
from tilesapp.core.regions import RegionReader
from tilesapp.core.selection import (
    auto_threshold,
    foreground_map,
    keep_tiles,
    sample_step,
    split_sources,
    tile_foreground,
    tile_fractions,
)
from tilesapp.core.settings import Settings
from tilesapp.core.sources import IMAGE_SUFFIXES, TIFF_SUFFIXES, from_yxc, inspect_image, read_image, scan_folder
from tilesapp.core.stream import (
    Band,
    ChannelStats,
    MaskRows,
    MemoryGate,
    ScaledRows,
    band_bytes,
    default_memory_limit,
    histogram_range,
    plan_bands,
    source_range,
    tile_rows_per_band,
    whole_image_bytes,
)
from tilesapp.core.writers import PARTIAL_SUFFIX, TileWriter, write_text

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
# Errors after which no further write can succeed: stop the whole run.
_FATAL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
_PAD_MODES = {"zero": "constant", "reflect": "reflect", "edge": "edge"}
_MANIFEST_INTERVAL = 5.0  # seconds between two progressive manifest writes
_PROGRESS_INTERVAL = 0.05
#: Smallest memory limit accepted: a band of a few tile rows must fit.
MIN_MEMORY_LIMIT = 64 << 20


@dataclass
class ExportSummary:
    """What an export did."""

    output: Path
    manifest_path: Path
    tiles_written: int = 0
    images_ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cancelled: bool = False
    stopped_by: str | None = None  # a full disk or a lost permission ended the run
    tiles_dropped: int = 0  # by the empty-tile filter
    split: dict[str, int] | None = None  # images exported per side, when sources are split

    @property
    def exit_code(self) -> int:
        """0 when every image was exported, 1 otherwise."""
        return 0 if not (self.failed or self.cancelled or self.stopped_by) else 1


# --- the export folder -----------------------------------------------------------------------
def is_inside(path: str | Path, folder: str | Path) -> bool:
    """True when ``path`` is ``folder`` or lies below it (symlinks resolved)."""
    path, folder = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    return path == folder or folder in path.parents


def count_files(folder: str | Path) -> int:
    """Number of files directly in ``folder`` (0 when it does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.is_file() or p.is_symlink())


def empty_folder(folder: str | Path) -> int:
    """Delete the files directly in ``folder`` (never sub-folders); return how many."""
    removed = 0
    for path in Path(folder).iterdir():
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed += 1
    return removed


def check_output_folder(output: str | Path, inputs: Sequence[str | Path], overwrite: bool = False) -> None:
    """Refuse an export folder that breaks a safety rule; raises :class:`OutputError`.

    The export folder may not be an input folder nor lie inside one, may not be a file, and
    must be empty unless ``overwrite`` is set.
    """
    out = Path(output).expanduser()
    for folder in inputs:
        if is_inside(out, folder):
            where = "is the input folder" if out.resolve() == Path(folder).resolve() else f"is inside the input folder {folder}"
            raise OutputError(f"The export folder {out} {where}; choose a folder outside it so the source images are never touched.")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file, not a folder; choose a folder for the tiles.")
    if out.is_dir() and not overwrite:
        entries = sum(1 for _ in out.iterdir())
        if entries:
            raise OutputError(
                f"The export folder {out} is not empty ({entries} item{'s' * (entries != 1)}); "
                f"empty it, choose another folder, or allow overwriting (--overwrite)."
            )


def _prepare_output(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".tilesapp-write-test{PARTIAL_SUFFIX}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"Cannot write to the export folder {out} ({exc.strerror or exc}); choose a folder you can write to.") from exc


def check_memory_limit(memory_limit: int | None) -> None:
    """Refuse a memory limit too small for a band of tiles (:class:`SettingsError`)."""
    if memory_limit is not None and memory_limit < MIN_MEMORY_LIMIT:
        raise SettingsError("memory_limit", f"The memory limit must be at least {MIN_MEMORY_LIMIT >> 20} MB "
                                            f"(got {memory_limit / 2**20:.0f} MB); give a larger --memory-limit.")


# --- inputs ------------------------------------------------------------------------------------
@dataclass
class Inputs:
    """The images of an export: their common folder, the folders they lie in, what was skipped."""

    root: Path
    folders: list[Path]
    images: list[Path]
    skipped: list[Path]


def collect_inputs(sources: str | Path | Sequence[str | Path], recursive: bool = False) -> Inputs:
    """Images to export from a folder, or from a list of image files (as dropped on the window)."""
    if isinstance(sources, (str, os.PathLike)):
        folder = Path(sources).expanduser().absolute()  # relative names are made against it
        if not folder.exists():
            raise SettingsError("input", f"The input folder {folder} does not exist; check the path.")
        if folder.is_file():
            sources = [folder]
        else:
            scan = scan_folder(folder, recursive)
            if not scan.images:
                raise SettingsError(
                    "input", f"The folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)}); choose the folder that holds them."
                )
            return Inputs(folder, [folder], list(scan.images), list(scan.skipped))
    files = [Path(p).expanduser().absolute() for p in sources]
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise SettingsError("input", f"{missing[0]} does not exist or is not a file; check the path.")
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise SettingsError("input", f"None of the {len(files)} files is an image ({', '.join(IMAGE_SUFFIXES)}).")
    folders = sorted({p.parent for p in images})
    root = Path(os.path.commonpath([str(f) for f in folders]))
    return Inputs(root, folders, images, [p for p in files if p not in images])


def tile_stems(paths: Sequence[Path]) -> list[str]:
    """A file-name stem per source such that no two sources share one (case-insensitively).

    >>> tile_stems([Path("a.tif"), Path("a.png"), Path("A.tif"), Path("b.tif")])
    ['a', 'a-png', 'A-tif', 'b']
    """
    taken: set[str] = set()
    stems = []
    for path in paths:
        suffix = path.suffix.lower().lstrip(".")
        candidates = [path.stem, f"{path.stem}-{suffix}"]
        candidates += (f"{path.stem}-{suffix}-{k}" for k in range(2, len(paths) + 2))
        stem = next(c for c in candidates if c.casefold() not in taken)
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


# --- the run -------------------------------------------------------------------------------------
@dataclass
class _Job:
    number: int
    path: Path
    name: str  # path relative to the input root, as written in the manifest
    stem: str
    plan: ImagePlan | None = None
    status: str = "pending"
    error: str | None = None
    normalization: dict[str, Any] | None = None
    tiles: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    split: str = "train"
    mask: Path | None = None
    labels: Path | None = None


class _Stop(Exception):
    """A write failed in a way that will fail again for every tile (disk full, no permission)."""


def run_export(
    sources: str | Path | Sequence[str | Path],
    output: str | Path,
    settings: Settings,
    *,
    overwrite: bool = False,
    cancel: threading.Event | None = None,
    workers: int | None = None,
    masks: str | Path | None = None,
    labels: str | Path | None = None,
    memory_limit: int | None = None,
) -> Generator[Progress, None, ExportSummary]:
    """Cut every image of ``sources`` into tiles in ``output``; a generator of progress.

    Parameters
    ----------
    sources : path or sequence of paths
        An input folder, or image files.
    output : path
        Export folder; created when missing. Checked before anything is written
        (:func:`check_output_folder`): raises :class:`OutputError` or :class:`SettingsError`.
    settings : Settings
    overwrite : bool
        Allow a non-empty export folder (files of the same names are replaced).
    cancel : threading.Event, optional
        Set it to stop between two tiles; the summary then says ``cancelled``.
    workers : int, optional
        Threads processing images at once (default: one per core).
    masks, labels : path, optional
        Folders of label masks / YOLO label files named like the images (same stem). Masks are
        cut on the image's grid into ``masks/``, boxes into ``labels/``; tiles go to ``images/``.
    memory_limit : int, optional
        Bytes of pixels the export may hold at once (default: :func:`default_memory_limit`).
        An image whose whole-image processing needs more than its workers' share is read
        region by region and cut band by band (see :mod:`tilesapp.core.stream`).

    Returns
    -------
    ExportSummary
        As the generator's return value (``StopIteration.value``).
    """
    check_memory_limit(memory_limit)
    inputs = collect_inputs(sources, settings.recursive)
    annotations = {"masks": masks, "labels": labels}
    for kind, folder in annotations.items():
        if folder is not None:
            folder = annotations[kind] = Path(folder).expanduser().absolute()
            if not folder.is_dir():
                raise SettingsError(kind, f"The {kind} folder {folder} does not exist; check the path.")
    out = Path(output).expanduser().absolute()
    for kind, folder in annotations.items():
        if folder is None:
            continue
        if any(folder.resolve() == f.resolve() for f in inputs.folders):
            raise SettingsError(kind, f"The {kind} folder is the input folder, so every image would be its own "
                                      f"{kind[:-1]}; choose the folder that holds the {kind}.")
        if is_inside(folder, out):
            raise OutputError(f"The {kind} folder {folder} is inside the export folder {out}; choose an export folder elsewhere.")
    check_output_folder(out, inputs.folders + [f for f in annotations.values() if f is not None], overwrite)
    _prepare_output(out)
    export = _Export(inputs, out, settings, cancel or threading.Event(), workers, annotations["masks"], annotations["labels"],
                     memory_limit or default_memory_limit())
    return (yield from export.run())


class _Export:
    def __init__(self, inputs: Inputs, out: Path, settings: Settings, cancel: threading.Event, workers: int | None,
                 masks: Path | None = None, labels: Path | None = None, memory_limit: int | None = None):
        self.inputs, self.out, self.settings, self.cancel = inputs, out, settings, cancel
        self.masks, self.labels = masks, labels
        self.annotations = AnnotationFolders(masks, labels)
        self.workers = workers or os.cpu_count() or 1
        self.gate = MemoryGate(memory_limit or default_memory_limit())
        self.events: queue.Queue[int] = queue.Queue()
        self.stop_reason: str | None = None
        self.status = "running"
        self.created = _now()
        names = [p.relative_to(inputs.root).as_posix() for p in inputs.images]
        stems = tile_stems(inputs.images)
        self.jobs = [_Job(i, p, n, s) for i, (p, n, s) in enumerate(zip(inputs.images, names, stems))]
        self.splits = split_sources(names, settings.val_fraction, settings.seed)
        for job in self.jobs:
            job.split = self.splits[job.name]
        self.summary = ExportSummary(out, out / MANIFEST_NAME, skipped=[p.name for p in inputs.skipped])
        self._make_folders()

    # --- layout: OUTPUT[/train|/val][/images|/masks|/labels] --------------------------------
    def folder(self, split: str, kind: str) -> str:
        """Folder (relative to the output) of one kind of file: "images", "masks" or "labels"."""
        parts = [split] if self.settings.val_fraction > 0 else []
        if self.masks is not None or self.labels is not None:
            parts.append(kind)
        return "/".join(parts)

    def _make_folders(self) -> None:
        kinds = ["images"] + ["masks"] * (self.masks is not None) + ["labels"] * (self.labels is not None)
        classes = self.labels / "classes.txt" if self.labels is not None else None
        for split in sorted(set(self.splits.values())):
            for kind in kinds:
                (self.out / self.folder(split, kind)).mkdir(parents=True, exist_ok=True)
            if classes is not None and classes.is_file():
                base = self.out / (split if self.settings.val_fraction > 0 else "")
                shutil.copyfile(classes, base / "classes.txt")

    def run(self) -> Generator[Progress, None, ExportSummary]:
        n_images = len(self.jobs)
        try:
            last = 0.0
            for job in self.jobs:
                if self.cancel.is_set():
                    break
                try:
                    job.plan = plan_image(inspect_image(job.path), self.settings)
                    job.mask, job.labels = self.annotations.find(job.path, job.name)
                except ImageError as exc:
                    job.status, job.error = "failed", str(exc)
                if time.monotonic() - last > _PROGRESS_INTERVAL:
                    last = time.monotonic()
                    yield Progress(0, 0, job.number, n_images, job.name, "Reading image metadata")
            total = sum(len(j.plan.grid) for j in self.jobs if j.plan is not None and j.status == "pending")
            yield from self._cut(total)
        except BaseException:
            # The consumer closed the generator, or an interrupt arrived: what is not done is
            # cancelled (the worker threads have stopped by now).
            self.cancel.set()
            raise
        finally:
            self._finish()  # the manifest describes exactly what is on disk
        return self.summary

    def _cut(self, total: int) -> Generator[Progress, None, None]:
        pending = [j for j in self.jobs if j.status == "pending" and j.plan is not None]
        n_images, done, finished = len(self.jobs), 0, sum(j.status == "failed" for j in self.jobs)
        last_yield = last_manifest = time.monotonic()
        current = pending[0].name if pending else ""
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(pending) or 1)), thread_name_prefix="tilesapp-export") as pool:
            try:
                futures = {pool.submit(self._process, job): job for job in pending}
                while futures:
                    try:
                        done += self.events.get(timeout=0.1)
                    except queue.Empty:
                        pass
                    for future in [f for f in futures if f.done()]:
                        job = futures.pop(future)
                        future.result()  # _process catches everything it expects
                        finished += 1
                        current = job.name
                    now = time.monotonic()
                    if now - last_yield >= _PROGRESS_INTERVAL or not futures:
                        last_yield = now
                        while not self.events.empty():
                            done += self.events.get_nowait()
                        yield Progress(done, total, finished, n_images, current, "Writing tiles")
                    if now - last_manifest >= _MANIFEST_INTERVAL:
                        last_manifest = now
                        self._write_manifest()
            except BaseException:
                self.cancel.set()  # let the threads stop at their next tile before the pool joins
                raise

    def _process(self, job: _Job) -> None:
        """Cut one image (runs in a worker thread)."""
        if self.cancel.is_set():
            job.status = "cancelled"
            return
        try:
            self._cut_image(job)
        except _Stop as exc:
            job.status, job.error = "stopped", str(exc)
        except ImageError as exc:
            job.status, job.error = "failed", str(exc)
        except MemoryError:
            job.status = "failed"
            job.error = (f"{job.name}: not enough memory for {job.plan.scaled_shape[1]}×{job.plan.scaled_shape[0]} "
                         f"pixels after recalibration; close other programs or use a larger target pixel size.")
        except Exception as exc:  # an unforeseen bug must not take the other images down
            log.exception("unexpected error while exporting %s", job.path)
            job.status, job.error = "failed", f"{job.name}: unexpected error ({exc}); see the log file for details."
        if job.status in ("failed", "stopped"):
            # the progress bar still reaches its end: count the tiles this image will not write
            self.events.put(len(job.plan.grid) - len(job.tiles) - len(job.dropped))
            # Half an image is worse than none in a training set: take its tiles back.
            for record in job.tiles:
                for key in ("file", "mask", "label"):
                    if key in record:
                        (self.out / record[key]).unlink(missing_ok=True)
            job.tiles.clear()
            job.dropped.clear()

    def _cut_image(self, job: _Job) -> None:
        plan, settings = job.plan, self.settings
        info = plan.info
        need = whole_image_bytes(info.shape_yx, plan.scaled_shape, info.channels, np.dtype(info.dtype).itemsize,
                                 np.dtype(settings.dtype).itemsize)
        if need > self.gate.capacity // self.workers and info.path.suffix.lower() in TIFF_SUFFIXES:
            self._cut_streamed(job)
            return
        held = self.gate.acquire(need, self.cancel)
        try:
            if held or not self.cancel.is_set():
                self._cut_whole(job)
            else:
                job.status = "cancelled"
        finally:
            self.gate.release(held)

    def _cut_whole(self, job: _Job) -> None:
        """Cut an image that fits the memory limit: read and recalibrate it whole."""
        settings, plan = self.settings, job.plan
        image, _ = read_image(job.path)
        may_have_nan = image.dtype.kind == "f"
        scaled = scale(image, plan)
        del image
        mask, mask_axes, boxes = load_annotations(job.mask, job.labels, job.name, plan.info.shape_yx, plan.scaled_shape)
        fractions = keep = None
        if settings.min_foreground > 0:
            fractions = tile_foreground(plan.grid, scaled, mask, boxes)
            keep = keep_tiles(fractions, settings.min_foreground, settings.keep_empty, settings.seed, job.name)
        norm = settings.norm
        # Global and none are done once on the whole image, not per tile: overlapping tiles
        # would repeat the work on up to twice the pixels. Local needs each tile's own range.
        job.normalization = _normalization(norm, *(channel_range(scaled, settings.percentiles) if norm == "global" else ()))
        # in place: `scaled` is this thread's own copy (freshly read or resampled)
        scaled = self._normalize_band(job, scaled, may_have_nan)
        cut = _Cut(mask_axes, _mask_format(settings.format, None if mask is None else mask.dtype,
                                           None if mask is None else mask.shape[2]), boxes, fractions, keep, may_have_nan)
        self._write_tiles(job, cut, range(len(plan.grid)), scaled, mask, 0)
        if job.status == "pending":
            job.status = "ok"

    def _normalize_band(self, job: _Job, values: np.ndarray, may_have_nan: bool) -> np.ndarray:
        """Apply global or no normalization to recalibrated rows (local is done per tile)."""
        settings = self.settings
        mode = job.normalization["mode"]
        if mode == "none":
            check_fits(values, settings.dtype, job.name)
            return cast(values, settings.dtype)
        if mode == "global":
            low, high = np.array(job.normalization["low"]), np.array(job.normalization["high"])
            return cast(stretch(values, low, high, settings.bounds, in_place=True, may_have_nan=may_have_nan), settings.dtype)
        return values

    def _cut_streamed(self, job: _Job) -> None:
        """Cut an image too big for the memory limit: band by band, bands in parallel."""
        settings, plan = self.settings, job.plan
        info, grid = plan.info, plan.grid
        with contextlib.ExitStack() as stack:
            reader = stack.enter_context(RegionReader(job.path))
            rows = ScaledRows(reader, plan.scaled_shape)
            mask_rows = boxes = None
            if job.mask is not None:
                mask_reader = stack.enter_context(RegionReader(job.mask))
                check_mask_shape(mask_reader.info, job.name, info.shape_yx)
                mask_rows = MaskRows(mask_reader, plan.scaled_shape)
            if job.labels is not None:
                boxes = scale_boxes(*read_yolo(job.labels), plan.scaled_shape)
            may_have_nan = reader.dtype.kind == "f"
            out_itemsize = np.dtype(settings.dtype).itemsize

            def nbytes(rows_out: int) -> int:
                return band_bytes(rows_out, info.shape_yx, plan.scaled_shape, info.channels, reader.dtype.itemsize, out_itemsize)

            k = tile_rows_per_band(grid, self.gate.capacity // self.workers, nbytes, self.workers)
            bands = plan_bands(grid, k)
            log.info("%s: %d × %d px after recalibration, cut in %d bands of %d tile rows",
                     job.name, plan.scaled_shape[1], plan.scaled_shape[0], len(bands), k)

            # Statistics first, when the normalization or the filter needs the whole image's.
            norm, need_otsu = settings.norm, settings.min_foreground > 0 and mask_rows is None and boxes is None
            stats = None
            if norm == "global" or need_otsu:
                hist = norm == "global" and settings.percentiles != (0.0, 100.0)
                value_range = None
                if hist:  # a cheap read-only pass first: the histogram spans the values there are
                    value_range = histogram_range(reader.dtype, source_range(reader, max(256, reader.chunk_rows())))
                stats = ChannelStats(info.channels, value_range, sample_step(plan.scaled_shape) if need_otsu else None)
                # each row counted once: only the rows no earlier band holds
                if not self._map_bands(job, bands, lambda band: stats.add(rows.rows(band.y0, band.own_y1), band.y0), nbytes):
                    return
            job.normalization = _normalization(norm, *(stats.percentiles(*settings.percentiles) if norm == "global" else ()))

            fractions = keep = None
            if settings.min_foreground > 0:
                fractions = np.zeros(len(grid))
                if boxes is not None and mask_rows is None:
                    fractions[:] = [box_coverage(boxes, t) for t in grid]
                else:
                    thresholds = None if mask_rows is not None else auto_threshold(stats.sample(), step=1)

                    def measure(band: Band) -> None:
                        if mask_rows is not None:
                            foreground = np.any(mask_rows.rows(band.y0, band.y1) != 0, axis=2)
                        else:
                            foreground = foreground_map(rows.rows(band.y0, band.y1), thresholds)
                        tiles = band.tiles(grid)
                        fractions[tiles.start : tiles.stop] = tile_fractions(foreground, grid, tiles, band.y0)

                    if not self._map_bands(job, bands, measure, nbytes):
                        return
                keep = keep_tiles(fractions, settings.min_foreground, settings.keep_empty, settings.seed, job.name)

            cut = _Cut(None if mask_rows is None else mask_rows.axes,
                       None if mask_rows is None else _mask_format(settings.format, mask_rows.reader.dtype, mask_rows.reader.channels),
                       boxes, fractions, keep, may_have_nan)

            def write(band: Band) -> None:
                values = self._normalize_band(job, rows.rows(band.y0, band.y1), may_have_nan)
                mask = None if mask_rows is None else mask_rows.rows(band.y0, band.y1)
                self._write_tiles(job, cut, band.tiles(grid), values, mask, band.y0)

            if not self._map_bands(job, bands, write, nbytes):
                return
        job.tiles.sort(key=lambda record: record["index"])
        job.dropped.sort(key=lambda record: record["index"])
        if job.status == "pending":
            job.status = "ok"

    def _map_bands(self, job: _Job, bands: list[Band], work, nbytes) -> bool:
        """Run ``work(band)`` for every band on all cores, each band holding its bytes of the
        memory limit; the first error stops the other bands and is raised. False when the
        run was cancelled."""
        stop = threading.Event()
        errors: list[BaseException] = []

        def one(band: Band) -> None:
            if stop.is_set() or self.cancel.is_set():
                return
            held = self.gate.acquire(nbytes(band.y1 - band.y0), self.cancel)
            try:
                if held and not stop.is_set() and not self.cancel.is_set():
                    work(band)
            except BaseException as exc:
                stop.set()
                errors.append(exc)
            finally:
                self.gate.release(held)

        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(bands))), thread_name_prefix="tilesapp-band") as pool:
            list(pool.map(one, bands))
        if errors:
            raise errors[0]
        if self.cancel.is_set():
            job.status = "cancelled"
            return False
        return True

    def _write_tiles(self, job: _Job, cut: _Cut, tiles, values: np.ndarray, mask: np.ndarray | None, y_offset: int) -> None:
        """Write the tiles ``tiles`` (indices) of rows starting at image row ``y_offset``."""
        settings, plan = self.settings, job.plan
        axes = plan.info.axes
        width = index_width(len(plan.grid))
        pad_y, pad_x = plan.grid.padding
        writer = TileWriter()
        for index in tiles:
            if self.cancel.is_set() or job.status != "pending":
                if self.cancel.is_set():
                    job.status = "cancelled"
                return
            tile = plan.grid.tile(index)
            record = self._tile_record(job, tile, width, cut.mask_format)
            if cut.fractions is not None:
                record["foreground"] = round(float(cut.fractions[tile.index]), 6)
                if not cut.keep[tile.index]:
                    job.dropped.append({k: v for k, v in record.items() if k not in ("file", "mask", "label")})
                    self.events.put(1)
                    continue
            y0, y1 = tile.y0 - y_offset, tile.y1 - y_offset
            piece = values[y0:y1, tile.x0 : tile.x1]
            if settings.norm == "local":
                low, high = channel_range(piece, settings.percentiles)
                record["low"], record["high"] = low.tolist(), high.tolist()
                piece = cast(stretch(piece, low, high, settings.bounds, may_have_nan=cut.may_have_nan), settings.dtype)
            if pad_y or pad_x:
                piece = _pad(piece, pad_y, pad_x, settings.pad_mode)
            try:
                writer.write(self.out / record["file"], from_yxc(piece, axes), axes, plan.output_pixel_size_um)
                if mask is not None:
                    part = mask[y0:y1, tile.x0 : tile.x1]
                    if pad_y or pad_x:
                        part = _pad(part, pad_y, pad_x, settings.pad_mode)
                    writer.write(self.out / record["mask"], from_yxc(part, cut.mask_axes), cut.mask_axes, plan.output_pixel_size_um)
                if cut.boxes is not None:
                    lines = boxes_in_tile(cut.boxes, tile, settings.tile_size, settings.min_box_visibility)
                    write_text(self.out / record["label"], format_yolo(lines))
                    record["boxes"] = len(lines)
            except OSError as exc:
                if exc.errno in _FATAL_ERRNOS:
                    self.stop_reason = self.stop_reason or _stop_message(exc, self.out)
                    self.cancel.set()
                    raise _Stop(self.stop_reason) from exc
                raise ImageError(f"{job.name}: writing {record['file']} failed ({exc.strerror or exc}).") from exc
            job.tiles.append(record)
            self.events.put(1)

    def _tile_record(self, job: _Job, tile: Tile, width: int, mask_format: str | None) -> dict[str, Any]:
        name = f"{job.stem}_{tile.index:0{width}d}"
        record: dict[str, Any] = {
            "file": _join(self.folder(job.split, "images"), f"{name}.{self.settings.format}"),
            "source": job.name,
            "index": tile.index,
            "row": tile.row,
            "col": tile.col,
            "y0": tile.y0,
            "x0": tile.x0,
            "y1": tile.y1,
            "x1": tile.x1,
            "pad_y": tile.pad_y,
            "pad_x": tile.pad_x,
        }
        if job.mask is not None:
            record["mask"] = _join(self.folder(job.split, "masks"), f"{name}.{mask_format}")
        if job.labels is not None:
            record["label"] = _join(self.folder(job.split, "labels"), f"{name}.txt")
        if self.settings.val_fraction > 0:
            record["split"] = job.split
        return record

    def _finish(self) -> None:
        summary = self.summary
        cancelled = self.cancel.is_set() and not self.stop_reason
        for job in self.jobs:
            if job.status == "pending":
                job.status = "cancelled" if (cancelled or self.stop_reason) else "failed"
        summary.tiles_written = sum(len(j.tiles) for j in self.jobs)
        summary.tiles_dropped = sum(len(j.dropped) for j in self.jobs)
        if self.settings.val_fraction > 0:
            summary.split = {side: sum(j.status == "ok" and j.split == side for j in self.jobs) for side in ("train", "val")}
        summary.images_ok = sum(j.status == "ok" for j in self.jobs)
        summary.failed = [(j.name, j.error or "") for j in self.jobs if j.status == "failed"]
        summary.cancelled = cancelled and any(j.status == "cancelled" for j in self.jobs)
        summary.stopped_by = self.stop_reason
        self.status = "stopped" if self.stop_reason else ("cancelled" if summary.cancelled else "complete")
        try:
            self._write_manifest()
        except OSError as exc:
            summary.stopped_by = summary.stopped_by or _stop_message(exc, self.out)

    def _write_manifest(self) -> None:
        write_manifest(self.out / MANIFEST_NAME, self._manifest())

    def _manifest(self) -> dict[str, Any]:
        s = self.settings
        return {
            "tilesapp_manifest": MANIFEST_VERSION,
            "version": __version__,
            "created": self.created,
            "updated": _now(),
            "status": self.status,
            "input": str(self.inputs.root),
            "settings": s.to_dict(),
            "tile_size": s.tile_size,
            "overlap": s.overlap,
            "dtype": s.dtype,
            "format": s.format,
            "masks": None if self.masks is None else str(self.masks),
            "labels": None if self.labels is None else str(self.labels),
            "split": None if s.val_fraction <= 0 else {
                "val_fraction": s.val_fraction,
                "seed": s.seed,
                "train": sorted(n for n, side in self.splits.items() if side == "train"),
                "val": sorted(n for n, side in self.splits.items() if side == "val"),
            },
            "sources": [_source_record(j) | ({"split": j.split} if s.val_fraction > 0 else {}) for j in self.jobs],
            "tiles": [t for j in self.jobs for t in list(j.tiles)],
            "dropped": [t for j in self.jobs for t in list(j.dropped)],
            "skipped": [p.relative_to(self.inputs.root).as_posix() if p.is_relative_to(self.inputs.root) else str(p)
                        for p in self.inputs.skipped],
            "stopped_by": self.stop_reason,
        }


def _normalization(mode: str, low: np.ndarray | None = None, high: np.ndarray | None = None) -> dict[str, Any]:
    """A source's normalization as the manifest records it (low/high per channel for global)."""
    if mode == "global":
        return {"mode": mode, "low": low.tolist(), "high": high.tolist()}
    return {"mode": mode}


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _mask_format(image_format: str, dtype, channels: int | None) -> str | None:
    """Masks go to .tif beside .tif images, else to lossless .png when it can hold them."""
    if dtype is None:
        return None
    if image_format != "tif" and np.dtype(dtype) in (np.uint8, np.uint16) and channels in (1, 3, 4):
        return "png"
    return "tif"


@dataclass(frozen=True)
class _Cut:
    """What the tiles of one image share while they are written."""

    mask_axes: str | None
    mask_format: str | None
    boxes: Any
    fractions: np.ndarray | None
    keep: np.ndarray | None
    may_have_nan: bool


def _source_record(job: _Job) -> dict[str, Any]:
    record: dict[str, Any] = {"file": job.name, "tile_stem": job.stem, "status": job.status, "error": job.error}
    if job.mask is not None:
        record["mask"] = job.mask.name
    if job.labels is not None:
        record["labels"] = job.labels.name
    plan = job.plan
    if plan is not None:
        info = plan.info
        record.update(
            shape=list(info.shape),
            axes=info.axes,
            dtype=info.dtype,
            pixel_size_um=_pair(plan.input_pixel_size_um),
            calibration=plan.calibration,
            scale_factor=list(plan.factors),
            scaled_shape=list(plan.scaled_shape),
            output_pixel_size_um=_pair(plan.output_pixel_size_um),
            grid=[plan.grid.n_rows, plan.grid.n_cols],
            padding=list(plan.grid.padding),
            normalization=job.normalization,
            tiles=len(job.tiles),
            tiles_dropped=len(job.dropped),
        )
    return record


def _pair(value) -> list[float] | None:
    return None if value is None else [float(value[0]), float(value[1])]


def _pad(values: np.ndarray, pad_y: int, pad_x: int, mode: str) -> np.ndarray:
    np_mode = _PAD_MODES[mode]
    if np_mode == "reflect" and min(values.shape[:2]) < 2:
        np_mode = "edge"  # nothing to reflect in a single row or column
    return np.pad(values, ((0, pad_y), (0, pad_x), (0, 0)), mode=np_mode)


def _stop_message(exc: OSError, out: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"The disk holding {out} is full; free some space (or choose another folder) and export again."
    if exc.errno == errno.EROFS:
        return f"The export folder {out} is on a read-only disk; choose another folder."
    return f"Permission to write in {out} was refused; choose a folder you can write to."


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` as JSON, atomically (temporary name, then rename)."""
    write_text(path, json.dumps(manifest, indent=1, ensure_ascii=False))


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Load ``manifest.json`` of a tile folder; raises :class:`TilesError` with a readable reason."""
    path = Path(folder) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TilesError(f"{Path(folder)} has no {MANIFEST_NAME}; merge needs the folder written by 'tilesapp cut'.") from None
    except (OSError, ValueError) as exc:
        raise TilesError(f"{path} cannot be read ({exc}); it may be damaged.") from None
    if not isinstance(manifest, dict) or "tiles" not in manifest or "sources" not in manifest:
        raise TilesError(f"{path} is not a Tiles Creator manifest.")
    return manifest


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")
