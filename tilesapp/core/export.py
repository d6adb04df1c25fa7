"""The export: every image of a folder turned into tiles, plus ``manifest.json``.

:func:`run_export` is a generator: it yields :class:`Progress` records and returns an
:class:`ExportSummary`. It checks the folders (:mod:`tilesapp.core.folders`), locks the export
folder, plans every image from its metadata (:mod:`tilesapp.core.planning`), hands each image to an
executor (:mod:`tilesapp.core.executors`) that cuts it (:mod:`tilesapp.core.cut`) into the run's
sink (:mod:`tilesapp.core.sinks`), and keeps the manifest (:mod:`tilesapp.core.manifest`) in the
order of the sources whatever order images finish in. Setting ``cancel`` (a
``threading.Event``) stops the run between two tiles; closing the generator does the same.
On a cluster (:mod:`tilesapp.core.executors_dask`) every worker must see the run's files, tasks
get a cancel flag and a tile count that cross processes, and what lost work left is removed;
``resume`` takes over what an interrupted export completed (:mod:`tilesapp.core.resume`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import itertools
import logging
import queue
import shutil
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path

from tilesapp.core.cut import CutRun, ImageResult, cut_image, stop_message
from tilesapp.core.errors import ImageError, SettingsError
from tilesapp.core.executors import Executor, make_executor
from tilesapp.core.folders import (
    ExportLock,
    Inputs,
    check_annotation_folders,
    check_output_contents,
    check_output_place,
    clear_export,
    collect_inputs,
    prepare_output,
)
from tilesapp.core.manifest import MANIFEST_NAME, Manifest, manifest_json, now, undecodable_names
from tilesapp.core.memory import default_memory_limit
from tilesapp.core.planning import ExportPlan, ExportSummary
from tilesapp.core.annotations import AnnotationFolders
from tilesapp.core.progress import Progress, Throttle, TileCounter
from tilesapp.core.resume import Resumption, remove_strays, resumable
from tilesapp.core.selection import split_sources
from tilesapp.core.settings import Settings
from tilesapp.core.sinks import sink_class
from tilesapp.core.training import TrainingRun
from tilesapp.core.writers import write_bytes

log = logging.getLogger(__name__)

_MANIFEST_INTERVAL = 10.0  # seconds between two progressive manifest writes


def run_export(
    sources: str | Path | Sequence[str | Path],
    output: str | Path,
    settings: Settings,
    *,
    overwrite: bool = False,
    cancel: threading.Event | None = None,
    masks: str | Path | None = None,
    labels: str | Path | None = None,
    executor: Executor | str | None = None,
    layout: str | None = None,
    annotations: str | Path | None = None,
    resume: bool = False,
) -> Generator[Progress, None, ExportSummary]:
    """Cut every image of ``sources`` into tiles in ``output``; a generator of progress.

    Parameters
    ----------
    sources : path or sequence of paths
        An input folder, or image files.
    output : path
        Export folder; created when missing. Checked before anything is written: raises
        :class:`OutputError` or :class:`SettingsError`.
    settings : Settings
        Everything about the cut, including ``memory_limit`` and ``workers``.
    overwrite : bool
        Allow a folder holding an earlier export: what its manifest lists is removed first.
    cancel : threading.Event, optional
        Set it to stop between two tiles; the summary then says ``cancelled``.
    masks, labels : path, optional
        Folders of label masks / YOLO label files named like the images (same stem). Masks are
        cut on the image's grid into ``masks/``, boxes into ``labels/``; tiles go to ``images/``.
    executor : Executor or str, optional
        Where images and bands run (default: threads of this process, ``settings.workers``);
        a string is a Dask scheduler's address or ``local:N`` (:func:`make_executor`).
    layout : str, optional
        The sink the tiles go to (default ``settings.layout``: "plain", files in folders, or a
        framework's layout).
    annotations : path, optional
        QuPath GeoJSON, ImageJ ROI or COCO files (a file, or a folder of them) matched to the
        images by name; drawn into masks and boxes as the layout needs (instead of masks and
        labels).
    resume : bool
        Rerun into the folder of an export that did not end: the sources it completed with the
        same settings are kept, the others cut again (:mod:`tilesapp.core.resume`).

    Returns
    -------
    ExportSummary
        As the generator's return value (``StopIteration.value``).
    """
    inputs = collect_inputs(sources, settings.recursive)
    out = Path(output).expanduser().absolute()
    folders = check_annotation_folders({"masks": masks, "labels": labels}, inputs, out)
    check_output_place(out, inputs.folders + [f for f in folders.values() if f is not None])
    sink_type = sink_class(layout or settings.layout)
    training = TrainingRun.check(settings, sink_type.layout, masks, labels, annotations, inputs.folders, out)
    owned = not hasattr(executor, "submit")
    executor = make_executor(executor, settings.workers)  # a cluster is reached before anything is written
    created = not out.exists()
    lock = ExportLock(out)
    try:
        prepare_output(out)
        lock.acquire()
        previous = resumable(out, settings, inputs.root, folders, sink_type.layout) if resume else \
            check_output_contents(out, overwrite)
        check_shared = getattr(executor, "check_shared", None)  # a cluster: every worker sees the run's files
        if check_shared is not None:
            check_shared(inputs.folders + [inputs.images[0], inputs.images[-1]] + [f for f in folders.values() if f], out)
        export = _Export(inputs, out, settings, cancel or threading.Event(), executor, folders, sink_type, training)
    except BaseException:
        lock.release()
        if created:
            shutil.rmtree(out, ignore_errors=True)
        if owned:
            executor.close()
        raise
    try:
        return (yield from export.run(previous, created))
    finally:
        if owned:
            executor.close()
        lock.release()


class _Export:
    def __init__(self, inputs: Inputs, out: Path, settings: Settings, cancel: threading.Event, executor: Executor,
                 folders: dict[str, Path | None], sink_type: type, training: TrainingRun):
        self.inputs, self.out, self.settings, self.cancel, self.executor = inputs, out, settings, cancel, executor
        self.masks, self.labels = folders["masks"], folders["labels"]
        self.memory_limit = settings.memory_limit or default_memory_limit()
        self.stop_reason: str | None = None
        self.refused = False  # settings refused before anything was written: no manifest
        names = [inputs.name(p) for p in inputs.images]
        # the split is by file: scenes and planes of one file never end up on both sides
        self.splits = split_sources(names, settings.val_fraction, settings.seed)
        self.files = list(zip(inputs.images, names))
        classes = self.labels / "classes.txt" if self.labels is not None else None
        self.training = training
        training.class_names(classes, self.files)
        self.sink = sink_type(training.run_info(out, classes, tuple(sorted(set(self.splits.values())))))
        self.manifest = Manifest(
            settings=settings.to_dict(), tile_size=settings.tile_size, overlap=settings.overlap, dtype=settings.dtype,
            format=settings.format, input=str(inputs.root), layout=sink_type.layout, created=now(),
            masks=None if self.masks is None else str(self.masks),
            labels=str(training.index.path) if training.index is not None else None if self.labels is None else str(self.labels),
            split=None if settings.val_fraction <= 0 else {
                "val_fraction": settings.val_fraction, "seed": settings.seed,
                "train": sorted(n for n, side in self.splits.items() if side == "train"),
                "val": sorted(n for n, side in self.splits.items() if side == "val"),
            },
            sources=[], skipped=[inputs.name(p) for p in inputs.skipped],
        )
        self.summary = ExportSummary(out, out / MANIFEST_NAME, skipped=[p.name for p in inputs.skipped])
        self.plan = ExportPlan(settings, self.splits, training, self.summary, self.warn)
        self.records, self.jobs, self.results = self.plan.records, self.plan.jobs, self.plan.results
        self.manifest.sources = self.records  # filled while planning
        for warning in inputs.unsearched_warnings():
            self.warn("", warning)
        odd = undecodable_names(names + self.manifest.skipped)
        for name in odd:
            self.warn("", f"the name {name.encode('utf-8', 'backslashreplace').decode()} is not valid UTF-8; "
                          f"the manifest keeps it with \\udcXX escapes.")

    def warn(self, name: str, message: str) -> None:
        self.summary.warnings.append((name, message))
        (self.manifest.warnings if not name else self.plan.record(name).warnings).append(message)

    # --- the run ------------------------------------------------------------------------------
    def run(self, previous, created: bool) -> Generator[Progress, None, ExportSummary]:
        try:
            throttle = Throttle()
            annotations = AnnotationFolders(self.masks, self.labels)
            for number, (path, name) in enumerate(self.files):
                if self.cancel.is_set():
                    break
                self.plan.add_file(path, name, annotations)
                if throttle.due():
                    yield Progress(0, 0, number, len(self.files), name, "Reading image metadata")
            self.summary.images_total = len(self.records)
            for number, error in self.training.whole_grids(self.jobs, self.records, self.manifest):
                self.jobs[number] = None
                self.plan.fail(self.records[number], ImageError(error), appended=True)
            self._check_tile_memory(created)
            if isinstance(previous, Resumption):  # the sources it completed are kept, its other files removed
                previous.take_over(self.records, self.jobs, self.results)
                self.summary.resumed = len(previous.kept)
            elif previous is not None:
                clear_export(previous)  # the earlier export's files: none may stay beside the new ones
            self.manifest.files = self.sink.prepare() + self.training.prepare(self.out)
            self._write_manifest()  # from the start, a manifest describes the folder (status "running")
            yield from self._cut()
        except SettingsError:
            raise
        except BaseException:
            # The consumer closed the generator, or an interrupt arrived: what is not done is
            # cancelled (the worker threads stop at their next tile).
            self.cancel.set()
            raise
        finally:
            if not self.refused:
                self._finish()  # the manifest describes exactly what is on disk
        return self.summary

    def _check_tile_memory(self, created: bool) -> None:
        """Refuse a tile size whose tiles alone would not fit the memory limit (nothing is written)."""
        try:
            self.plan.check_tile_memory(self.memory_limit)
        except SettingsError:
            self.refused = True
            if created:
                shutil.rmtree(self.out, ignore_errors=True)
            raise

    def _cut(self) -> Generator[Progress, None, None]:
        jobs = [j for j in self.jobs if j is not None]
        total = sum(len(j.plan.grid) for j in jobs)
        n_images = len(self.records)
        finished = sum(r.status != "pending" for r in self.records)  # failed when planned, or taken over
        done = 0
        events: queue.SimpleQueue = queue.SimpleQueue()  # images finished
        local = getattr(self.executor, "local", True)
        counter = TileCounter()  # tiles written, counted by the threads writing them
        run = CutRun(self.settings, self.sink, self.memory_limit, self.executor.workers, self.cancel,
                     counter if local else None)
        if hasattr(self.executor, "shared_cancel"):  # a cluster: a cancel flag and a tile count that cross processes
            run = dataclasses.replace(run, cancel=self.executor.shared_cancel(), report=self.executor.tile_counter())
        in_flight = getattr(self.executor, "in_flight", lambda: 0)
        throttle, last_manifest = Throttle(), time.monotonic()
        current = jobs[0].name if jobs else ""
        pending, stopping = {}, False
        # Finished images are taken in at each progress tick, not as each ends: a wake-up per image
        # handed the GIL to this thread thousands of times on a folder of small images. The
        # last one wakes it at once, so a run does not wait out the tick at its end.
        ended, all_ended = itertools.count(1), threading.Event()

        def on_done(_future, number: int) -> None:
            events.put(number)
            if next(ended) == len(jobs):
                all_ended.set()

        try:
            for job in jobs:
                future = self.executor.submit(cut_image, job, run, self.executor)
                future.add_done_callback(functools.partial(on_done, number=job.number))
                pending[job.number] = future
            while pending:
                if self.cancel.is_set() and not stopping:  # work not started is dropped; the rest stops at a tile
                    stopping = True
                    for future in list(pending.values()):
                        future.cancel()
                all_ended.wait(throttle.interval)
                try:
                    number = events.get_nowait()
                except queue.Empty:
                    number = None
                while number is not None:
                    self._finished(number, pending.pop(number))
                    finished += 1
                    current = self.records[number].name
                    if not local:
                        done += len(self.jobs[number].plan.grid)
                    try:
                        number = events.get_nowait()
                    except queue.Empty:
                        number = None
                if local:
                    done = counter.count
                if throttle.due(force=not pending):
                    yield Progress(min(total, done + in_flight()), total, finished, n_images, current, "Writing tiles")
                if time.monotonic() - last_manifest >= _MANIFEST_INTERVAL:
                    last_manifest = time.monotonic()
                    try:
                        self._write_manifest()
                    except OSError:  # said at the end, when the last write is tried
                        log.exception("progressive manifest write failed")
        except BaseException:
            self.cancel.set()  # images stop at their next tile; what they wrote is recorded
            for number, future in pending.items():
                if not future.cancel():
                    concurrent.futures.wait([future])
                    self._finished(number, future)
            raise

    def _finished(self, number: int, future) -> None:
        record = self.records[number]
        lost = False
        try:
            result: ImageResult = future.result()
        except BaseException as exc:  # the executor lost the work (a cancelled future, a dead worker)
            lost = not future.cancelled()
            result = ImageResult(status="cancelled" if self.cancel.is_set() else "failed",
                                 error=None if self.cancel.is_set() else f"{record.name}: {exc or type(exc).__name__}.")
        retries = getattr(future, "retries", 0)
        if retries or (lost and not getattr(self.executor, "local", True)):
            remove_strays(self.sink, self.jobs[number], result.tiles)  # what a lost worker left on disk
        if retries:
            self.summary.retried.append(record.name)
            self.summary.warnings.append((record.name, f"{record.name}: a worker was lost while cutting it; it was cut "
                                                       f"again ({retries} time{'s' * (retries > 1)})."))
        self.results[number] = result
        record.status = result.status
        record.error = result.error
        record.normalization = result.normalization
        record.tiles, record.tiles_dropped = len(result.tiles), len(result.dropped)
        for warning in result.warnings:
            self.warn(record.name, f"{record.name}: {warning}")
        if result.status == "stopped":
            self.stop_reason = self.stop_reason or result.error
            self.cancel.set()

    # --- the end ----------------------------------------------------------------------------
    def _finish(self) -> None:
        summary, manifest = self.summary, self.manifest
        self.plan.close(self.cancel.is_set() and not self.stop_reason, self.stop_reason)
        manifest.stopped_by = self.stop_reason
        manifest.status = "stopped" if self.stop_reason else ("cancelled" if summary.cancelled else "complete")
        close = getattr(self.sink, "close", None)
        if close is not None:
            close()
        try:
            manifest.files += self.sink.finish(self._manifest_now())
        except OSError as exc:
            summary.stopped_by = summary.stopped_by or stop_message(exc, self.out, exc.filename)
        try:
            self._write_manifest()
            summary.manifest_written = True
        except OSError as exc:
            problem = (f"The manifest could not be written ({exc.strerror or exc}): {self.out / MANIFEST_NAME} does not "
                       f"list the tiles on disk; free space or permission, then export again.")
            summary.stopped_by = f"{summary.stopped_by} {problem}" if summary.stopped_by else problem

    def _manifest_now(self) -> Manifest:
        manifest = self.manifest
        manifest.updated = now()
        manifest.tiles = [t for r in self.results if r is not None for t in list(r.tiles)]
        manifest.dropped = [t for r in self.results if r is not None for t in list(r.dropped)]
        return manifest

    def _write_manifest(self) -> None:
        write_bytes(self.out / MANIFEST_NAME, manifest_json(self._manifest_now()))
