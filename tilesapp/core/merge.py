"""Merging tiles (for example a model's predictions) back into whole images.

Each source of the manifest is rebuilt on its recalibrated grid (the manifest's
:class:`~tilesapp.core.geometry.TileGrid`) as a weighted average of its tiles: "flat" gives every
pixel of a tile the same weight, "gradient" lets weights fall off linearly across the overlap so
that seams between tiles fade. There is one path whatever the size: tiles are added tile row by
tile row and rows are divided as soon as no later tile reaches them. When the canvas fits its
share of the memory limit it is held whole and written as one TIFF; otherwise it is a band of
one tile row, and finished rows go straight to a tiled BigTIFF. ``restore_scale`` resamples the
result back to the source's pixel size, band by band from that file when it is big.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
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

from tilesapp.core.bands import MaskRows, ScaledRows
from tilesapp.core.errors import ImageError, SettingsError, TilesError
from tilesapp.core.executors import Executor, make_executor
from tilesapp.core.folders import check_output_contents, check_output_place, prepare_output
from tilesapp.core.manifest import Manifest, SourceRecord, TileRecord, read_manifest
from tilesapp.core.memory import default_memory_limit, merge_bytes, process_gate
from tilesapp.core.progress import Progress, Throttle
from tilesapp.core.readers import SceneInfo, from_yxc, open_image
from tilesapp.core.resample import working_dtype
from tilesapp.core.settings import MIN_MEMORY_LIMIT
from tilesapp.core.sinks import sink_class
from tilesapp.core.writers import Staged, write_image

log = logging.getLogger(__name__)

BLENDS = ("flat", "gradient")


@dataclass
class MergeSummary:
    """What a merge did."""

    output: Path
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    not_cut: list[tuple[str, str]] = field(default_factory=list)  # sources the cut did not finish
    cancelled: bool = False

    @property
    def exit_code(self) -> int:
        return 0 if not (self.failed or self.cancelled) else 1


def blend_window(tile_size: int, overlap: int, blend: str) -> np.ndarray:
    """(rows, cols) weights of one tile: ones ("flat"), or linear ramps over the overlap.

    Every weight is positive, so a pixel covered by one tile only keeps that tile's value.

    >>> blend_window(6, 2, "gradient")[2]  # a middle row: the ramp itself
    array([0.33333333, 0.66666667, 1.        , 1.        , 0.66666667, 0.33333333])
    """
    if blend not in BLENDS:
        raise SettingsError("blend", f"{{name}} must be one of {', '.join(BLENDS)}; got {blend!r}.")
    if blend == "flat" or overlap == 0:
        return np.ones((tile_size, tile_size))
    i = np.arange(tile_size)
    ramp = np.minimum(1.0, np.minimum(i + 1, tile_size - i) / (overlap + 1))
    return np.outer(ramp, ramp)


def as_tile(array: np.ndarray, tile_size: int, name: str) -> np.ndarray:
    """A tile as (rows, cols, channels), whatever its layout and size.

    Tiles replaced by a model's output may be YX, YXC or CYX, of any dtype; a tile of another
    size than ``tile_size`` (a model working at another resolution) is resized to it.
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
        interp = cv2.INTER_AREA if array.shape[0] > tile_size else cv2.INTER_LINEAR
        channels = array.shape[2]
        array = cv2.resize(np.ascontiguousarray(array, dtype=working_dtype(array.dtype)), (tile_size, tile_size),
                           interpolation=interp).reshape(tile_size, tile_size, channels)
    return array


def read_tile(path: Path, tile_size: int) -> np.ndarray:
    """Read a tile file as (rows, cols, channels), whatever its layout and size (see :func:`as_tile`)."""
    from tilesapp.core.readers import read_array

    return as_tile(read_array(path), tile_size, path.name)


def run_merge(
    tiles_folder: str | Path,
    output: str | Path,
    *,
    blend: str = "flat",
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
        Folder for the merged images, ``<stem>.tif``; checked like an export folder, and never
        the folder the tiles were cut from.
    blend : {"flat", "gradient"}
    restore_scale : bool
        Resample each merged image back to its source's original size (nearest neighbour for
        integer tiles such as label masks, smooth otherwise).
    cancel : threading.Event, optional
        Set it to stop between two tiles.
    memory_limit : int, optional
        Bytes the merge may hold (default: :func:`tilesapp.core.memory.default_memory_limit`).
        A source whose canvas would need more is merged tile row by tile row into a tiled BigTIFF.
    executor : Executor or str, optional
        Merge each source as a task of it (a Dask scheduler's address or ``local:N``): :func:`_merge_on`.
    """
    if memory_limit is not None and memory_limit < MIN_MEMORY_LIMIT:
        raise SettingsError("memory_limit", f"{{name}} must be at least {MIN_MEMORY_LIMIT >> 20} MB "
                                            f"(got {memory_limit / 2**20:.0f} MB).")
    limit = memory_limit or default_memory_limit()
    tiles_folder = Path(tiles_folder).expanduser()
    blend_window(2, 1, blend)  # the blend's name is checked before anything is read
    manifest = read_manifest(tiles_folder)
    out = Path(output).expanduser().absolute()
    cut_from = [Path(manifest.input)] if manifest.input and Path(manifest.input).is_dir() else []
    check_output_place(out, [tiles_folder] + cut_from)
    sources, summary = _mergeable(manifest, out)
    _check_memory(tiles_folder, manifest, sources, limit)
    window = blend_window(manifest.tile_size, manifest.overlap, blend)
    check_output_contents(out, overwrite)
    if executor is not None:
        return (yield from _merge_on(executor, tiles_folder, manifest, sources, summary, blend, restore_scale, cancel, limit))
    prepare_output(out)
    sink = sink_class(manifest.layout).for_reading(tiles_folder, manifest)
    cancel = cancel or threading.Event()
    by_source = manifest.tiles_by_source()
    # Tiles dropped by the empty-tile filter leave holes, filled with zeros.
    with_holes = {tile.source for tile in manifest.dropped}
    total = sum(len(by_source[s.name]) for s in sources)
    done, throttle = 0, Throttle()
    gate = process_gate(limit)
    for number, source in enumerate(sources):
        tiles = by_source[source.name]
        job = _SourceMerge(sink, manifest, source, tiles, window, out, restore_scale, source.name in with_holes,
                           cancel, limit)
        held = gate.acquire(job.bytes_needed(), cancel)
        try:
            for step in job.run():  # the number of tiles merged so far for this source
                if throttle.due():
                    yield Progress(done + step, total, number, len(sources), source.name, "Merging tiles")
            if cancel.is_set():
                summary.cancelled = True
                return summary
            summary.written.append(job.final)
        except ImageError as exc:
            summary.failed.append((source.name, str(exc)))
        except MemoryError:
            summary.failed.append((source.name, f"{source.name}: not enough memory to merge it."))
        except OSError as exc:
            summary.failed.append((source.name, f"{source.name}: writing failed ({exc.strerror or exc})."))
        except Exception as exc:
            log.exception("unexpected error while merging %s", source.name)
            summary.failed.append((source.name, f"{source.name}: unexpected error ({exc}); see the log file."))
        finally:
            gate.release(held)
        done += len(tiles)
        yield Progress(done, total, number + 1, len(sources), source.name, "Merging tiles")
    return summary


def _merge_on(executor: Executor | str, folder: Path, manifest: Manifest, sources: list[SourceRecord],
              summary: MergeSummary, blend: str, restore_scale: bool, cancel: threading.Event | None,
              limit: int) -> Generator[Progress, None, MergeSummary]:
    """Each source's merge as one task of ``executor`` (a cluster: the worker that runs it
    streams a big source band by band into its file, as here); progress per finished source.
    On a cluster, every worker must see the tile folder and the output folder's place first."""
    owned = isinstance(executor, str)
    executor = make_executor(executor)
    cancel = cancel or threading.Event()
    pending: dict[int, Any] = {}
    try:
        check_shared = getattr(executor, "check_shared", None)
        if check_shared is not None:
            check_shared([folder], summary.output)
        prepare_output(summary.output)
        by_source = manifest.tiles_by_source()
        holes = {tile.source for tile in manifest.dropped}  # tiles dropped by the empty-tile filter
        flag = executor.shared_cancel() if hasattr(executor, "shared_cancel") else cancel
        report = executor.tile_counter() if hasattr(executor, "tile_counter") else None
        jobs = [_SourceMerge(sink_class(manifest.layout).for_reading(folder, _of_source(manifest, s, by_source)),
                             manifest, s, by_source[s.name], None, summary.output, restore_scale, s.name in holes,
                             flag, limit) for s in sources]  # the blend window is made where the task runs
        pending = {n: executor.submit(merge_source, job, blend, limit, report) for n, job in enumerate(jobs)}
        in_flight = getattr(executor, "in_flight", lambda: 0)
        total, done, failed = sum(len(j.tiles) for j in jobs), 0, {}
        while pending:
            if cancel.is_set() and not summary.cancelled:  # tasks not started are dropped, the others stop
                summary.cancelled = True
                for future in pending.values():
                    future.cancel()
            ended, _ = concurrent.futures.wait(list(pending.values()), timeout=0.1,
                                               return_when=concurrent.futures.FIRST_COMPLETED)
            for number in [n for n, f in pending.items() if f in ended]:
                future, job = pending.pop(number), jobs[number]
                done += len(job.tiles)
                try:
                    error = future.result()
                except BaseException as exc:  # the executor lost the work (a cancelled future, a dead worker)
                    error = None if future.cancelled() else f"{job.source.name}: {exc or type(exc).__name__}."
                if error is not None:
                    failed[number] = error
            yield Progress(min(total, done + in_flight()), total, len(jobs) - len(pending), len(jobs), "", "Merging tiles")
        if not summary.cancelled:
            summary.written += [j.final for n, j in enumerate(jobs) if n not in failed]
        summary.failed += [(jobs[n].source.name, failed[n]) for n in sorted(failed)]
        return summary
    except BaseException:  # closed (Ctrl-C): the tasks stop at their next tile, before we leave
        for future in pending.values():
            future.cancel()
        concurrent.futures.wait(list(pending.values()))
        raise
    finally:
        if owned:
            executor.close()


def merge_source(job: _SourceMerge, blend: str, limit: int, report=None) -> str | None:
    """Merge one source, wherever it runs: None when its image is written (or the merge was
    cancelled), else why it failed. ``report(n)`` is told of the tiles merged."""
    job.window = blend_window(job.tile_size, job.grid.overlap, blend)  # not shipped: made here
    job.flat = bool(np.all(job.window == 1.0))
    gate = process_gate(limit)
    held = gate.acquire(job.bytes_needed(), job.cancel)
    name, merged = job.source.name, 0
    try:
        for step in job.run():
            if report is not None:
                report(step - merged)
            merged = step
        return None
    except ImageError as exc:
        return str(exc)
    except MemoryError:
        return f"{name}: not enough memory to merge it."
    except OSError as exc:
        return f"{name}: writing failed ({exc.strerror or exc})."
    except Exception as exc:
        log.exception("unexpected error while merging %s", name)
        return f"{name}: unexpected error ({exc}); see the log file."
    finally:
        gate.release(held)


def _of_source(manifest: Manifest, source: SourceRecord, by_source: dict[str, list[TileRecord]]) -> Manifest:
    """The manifest as far as one source's merge needs it (a task carries no other source's tiles)."""
    return dataclasses.replace(manifest, sources=[source], tiles=by_source[source.name],
                               dropped=[t for t in manifest.dropped if t.source == source.name])


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


def _check_memory(folder: Path, manifest: Manifest, sources: list[SourceRecord], limit: int) -> None:
    """Refuse (before anything is allocated) a manifest whose tiles cannot be merged in the limit:
    the blend window and one band of two tile rows per source must fit."""
    window = manifest.tile_size * manifest.tile_size * 8
    for source in sources:
        cols = source.scaled_shape[1]
        need = window + merge_bytes(2 * manifest.tile_size, cols, max(1, source.channels))
        if need > limit:
            raise TilesError(
                f"{folder / 'manifest.json'}: tile_size {manifest.tile_size} means merging one row of "
                f"{source.name}'s tiles ({cols} px wide) needs {need >> 20} MB, more than the memory limit "
                f"({limit >> 20} MB); if the manifest is right, raise the memory limit.")


class _SourceMerge:
    """The merge of one source: tiles added row by row, finished rows divided and emitted."""

    def __init__(self, sink, manifest: Manifest, source: SourceRecord, tiles: list[TileRecord], window: np.ndarray,
                 out: Path, restore_scale: bool, holes: bool, cancel: threading.Event, limit: int):
        self.sink, self.source, self.window = sink, source, window
        self.tile_size = manifest.tile_size
        self.grid = source.grid_of(manifest.tile_size, manifest.overlap)  # the cut's grid, rebuilt
        self.tiles = sorted(tiles, key=lambda t: t.index)  # row-major: the order tiles are added in
        self.by_row: dict[int, list[TileRecord]] = {}
        for tile in self.tiles:
            self.by_row.setdefault(tile.row, []).append(tile)
        self.flat = bool(np.all(window == 1.0))
        self.holes, self.cancel = holes, cancel
        self.rows, self.cols = source.scaled_shape
        self.restore = restore_scale and list(source.scaled_shape) != list(source.shape_yx)
        self.final = out / f"{source.tile_stem}.tif"
        # whole when the canvas fits this source's share, else a band of one tile row
        self.whole = merge_bytes(self.rows, self.cols, max(1, source.channels)) <= limit

    def bytes_needed(self) -> int:
        channels = max(1, self.source.channels)
        if not self.whole:
            return merge_bytes(min(self.rows, 2 * self.tile_size), self.cols, channels)
        restored = self.source.shape_yx[0] * self.source.shape_yx[1] * channels * 8 if self.restore else 0
        return merge_bytes(self.rows, self.cols, channels) + restored

    def run(self) -> Generator[int, None, None]:
        """Merge; yields the number of tiles added so far (stops early when cancelled)."""
        reads = _read_ahead(self._read, self.tiles)
        writer = None
        try:
            first = next(reads)
            channels, dtype = first.shape[2], first.dtype
            out_dtype = _output_dtype(dtype)
            if not self.whole:
                writer = _TiledWriter(self.final.with_name(f".{self.final.stem}.merged.tif") if self.restore else self.final,
                                      (self.rows, self.cols, channels), out_dtype, self.source.output_pixel_size_um)
            height = self.rows if self.whole else self.tile_size
            canvas = np.zeros((height, self.cols, channels))
            weights = np.zeros((height, self.cols))
            band_y0 = 0  # first row not yet emitted
            added = 0
            for row, y0 in enumerate(self.grid.row_starts):  # tile rows of the grid, holes included
                if not self.whole and y0 > band_y0:  # rows above this tile row are final: emit them
                    self._emit(writer, canvas, weights, y0 - band_y0, out_dtype)
                    canvas, weights = _shift(canvas, weights, y0 - band_y0)
                    band_y0 = y0
                for tile in self.by_row.get(row, ()):
                    if self.cancel.is_set():
                        return
                    self._add(canvas, weights, first if added == 0 else next(reads), tile, band_y0, channels)
                    added += 1
                    yield added
            if self.whole:
                self._write_whole(self._divide(canvas, weights, self.rows), out_dtype)
                return
            self._emit(writer, canvas, weights, self.rows - band_y0, out_dtype)
            writer.close()
            writer = None
        finally:
            reads.close()
            if writer is not None:
                writer.close(ok=False)
        if self.restore:
            merged = self.final.with_name(f".{self.final.stem}.merged.tif")
            try:
                with open_image(merged) as image:
                    self._restore(_ScenePixels(image.scenes[0]), out_dtype, _STRIP)
            finally:
                merged.unlink(missing_ok=True)

    def _read(self, tile: TileRecord) -> np.ndarray:
        try:
            array = self.sink.read(tile.file)
        except FileNotFoundError:
            raise ImageError(f"{self.source.name}: tile {tile.file} is missing from {self.sink.folder}.") from None
        except ImageError as exc:
            raise ImageError(f"{self.source.name}: tile {exc}") from exc
        return as_tile(array, self.tile_size, tile.file)

    def _add(self, canvas, weights, values, tile: TileRecord, y_offset: int, channels: int) -> None:
        """Add a tile's values, weighted by the blend window, to a canvas whose first row is image
        row ``y_offset``."""
        if values.shape[2] != channels:
            raise ImageError(f"{self.source.name}: tile {tile.file} has {values.shape[2]} channels, other tiles {channels}.")
        y0, x0, y1, x1 = tile.y0 - y_offset, tile.x0, tile.y1 - y_offset, tile.x1
        part = values[: y1 - y0, : x1 - x0]
        if self.flat:  # weights of 1: the same sums without a product per pixel
            canvas[y0:y1, x0:x1] += part
            weights[y0:y1, x0:x1] += 1.0
        else:
            w = self.window[: y1 - y0, : x1 - x0]
            canvas[y0:y1, x0:x1] += part * w[..., np.newaxis]
            weights[y0:y1, x0:x1] += w

    def _divide(self, canvas: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
        """The first ``n`` rows of the canvas divided by their weights, in place (float64)."""
        part, w = canvas[:n], weights[:n]
        if not self.holes and np.any(w == 0):
            raise _not_covered(self.source)
        # a hole's sums are 0 and stay 0
        np.divide(part, w[..., np.newaxis], out=part, where=w[..., np.newaxis] > 0)
        return part

    def _emit(self, writer: _TiledWriter, canvas, weights, n: int, dtype: np.dtype) -> None:
        """Divide and write the first ``n`` rows of a band canvas (they are cleared next)."""
        if n > 0:
            writer.add(_to_dtype(self._divide(canvas, weights, n), dtype, in_place=True))

    def _write_whole(self, merged: np.ndarray, dtype: np.dtype) -> None:
        """Write a canvas held whole (float64), back at the source's size first when asked."""
        pixel_size = self.source.output_pixel_size_um
        if self.restore:
            restored: list[np.ndarray] = []
            self._restore(_MemoryPixels(merged), dtype, None, restored.append)
            merged, pixel_size = restored[0], self.source.pixel_size_um
        else:
            merged = _to_dtype(merged, dtype, in_place=True)
        write_image(self.final, from_yxc(merged, _axes(merged.shape[2], self.source.axes)),
                    _axes(merged.shape[2], self.source.axes), None if pixel_size is None else tuple(pixel_size))

    def _restore(self, pixels, dtype: np.dtype, step: int | None, emit=None) -> None:
        """Resample merged pixels back to the source's size in bands of ``step`` rows (None: one
        band), nearest neighbour for integers; to ``emit`` or else to the final tiled BigTIFF."""
        rows, cols = self.source.shape_yx
        resampled = MaskRows(pixels, (rows, cols)) if dtype.kind in "iub" else ScaledRows(pixels, (rows, cols))
        writer = None
        if emit is None:
            writer = _TiledWriter(self.final, (rows, cols, pixels.info.channels), dtype, self.source.pixel_size_um)
            emit = writer.add
        try:
            for y in range(0, rows, step or rows):
                if self.cancel.is_set():
                    return
                emit(_to_dtype(resampled.rows(y, min(rows, y + (step or rows))), dtype, in_place=True))
            if writer is not None:
                writer.close()
                writer = None
        finally:
            if writer is not None:
                writer.close(ok=False)


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


def _shift(canvas: np.ndarray, weights: np.ndarray, n: int):
    """Drop the first ``n`` rows (written) and clear ``n`` rows at the bottom, in place."""
    keep = max(0, len(canvas) - n)
    canvas[:keep] = canvas[len(canvas) - keep :]
    weights[:keep] = weights[len(weights) - keep :]
    canvas[keep:] = 0
    weights[keep:] = 0
    return canvas, weights


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


def _not_covered(source: SourceRecord) -> ImageError:
    return ImageError(f"{source.name}: the tiles do not cover the whole image; the manifest does not match the tiles.")


def _output_dtype(tile_dtype: np.dtype) -> np.dtype:
    """Merged images keep integer tiles' type; float tiles give float32 (float64 for float64)."""
    if tile_dtype.kind in "iu":
        return tile_dtype
    return np.dtype(np.float32 if tile_dtype.itemsize <= 4 else np.float64)


def _to_dtype(values: np.ndarray, dtype: np.dtype, in_place: bool = False) -> np.ndarray:
    """Round and clip to an integer type, or convert to a float one (``in_place``: ``values``
    may be used as scratch)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if values.dtype.kind == "f":
            out = values if in_place else None
            values = np.clip(np.rint(values, out=out), info.min, info.max, out=out)
        elif values.dtype != dtype:
            values = np.clip(values, info.min, info.max)
    return values.astype(dtype, copy=False)


__all__ = ["BLENDS", "MergeSummary", "SceneInfo", "as_tile", "blend_window", "read_tile", "run_merge"]
