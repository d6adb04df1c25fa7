"""Merging tiles (for example a model's predictions) back into whole images.

Each source of the manifest is rebuilt on its recalibrated canvas as a weighted average of
its tiles: "flat" gives every pixel of a tile the same weight, "gradient" lets weights fall
off linearly across the overlap so that seams between tiles fade.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import defaultdict, deque
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from tilesapp.core.annotations import resize_nearest
from tilesapp.core.errors import ImageError, SettingsError
from tilesapp.core.export import _prepare_output, check_memory_limit, check_output_folder, read_manifest
from tilesapp.core.progress import Progress
from tilesapp.core.resample import resample, working_dtype
from tilesapp.core.sources import TIFF_SUFFIXES, _read_other, from_yxc
from tilesapp.core.regions import RegionReader
from tilesapp.core.stream import MaskRows, ScaledRows, default_memory_limit
from tilesapp.core.writers import atomic, write_image

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
        raise SettingsError("blend", f"blend must be one of {', '.join(BLENDS)}; got {blend!r}.")
    if blend == "flat" or overlap == 0:
        return np.ones((tile_size, tile_size))
    i = np.arange(tile_size)
    ramp = np.minimum(1.0, np.minimum(i + 1, tile_size - i) / (overlap + 1))
    return np.outer(ramp, ramp)


def read_tile(path: Path, tile_size: int) -> np.ndarray:
    """Read a tile as (rows, cols, channels), whatever its layout and size.

    Tiles replaced by a model's output may be YX, YXC or CYX, of any dtype; a tile of another
    size than ``tile_size`` (a model working at another resolution) is resized to it.
    """
    if path.suffix.lower() in TIFF_SUFFIXES:
        array = tifffile.imread(path)
    else:
        array = _read_other(path)
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
        raise ImageError(f"{path.name}: a tile of shape {array.shape} cannot be merged; tiles must be 2D with optional channels.")
    if array.shape[:2] != (tile_size, tile_size):
        interp = cv2.INTER_AREA if array.shape[0] > tile_size else cv2.INTER_LINEAR
        channels = array.shape[2]
        array = cv2.resize(np.ascontiguousarray(array, dtype=working_dtype(array.dtype)), (tile_size, tile_size),
                           interpolation=interp).reshape(tile_size, tile_size, channels)
    return array


def run_merge(
    tiles_folder: str | Path,
    output: str | Path,
    *,
    blend: str = "flat",
    restore_scale: bool = False,
    overwrite: bool = False,
    cancel: threading.Event | None = None,
    memory_limit: int | None = None,
) -> Generator[Progress, None, MergeSummary]:
    """Rebuild every source of a tile folder's manifest into ``output`` (one TIFF per source).

    Parameters
    ----------
    tiles_folder : path
        A folder written by the export (its ``manifest.json``); tile files may have been
        replaced by files of the same names holding a model's output.
    output : path
        Folder for the merged images, ``<stem>.tif``; checked like an export folder.
    blend : {"flat", "gradient"}
    restore_scale : bool
        Resample each merged image back to its source's original size (nearest neighbour for
        integer tiles such as label masks, smooth otherwise).
    cancel : threading.Event, optional
        Set it to stop between two tiles.
    memory_limit : int, optional
        Bytes the merge may hold (default: :func:`tilesapp.core.stream.default_memory_limit`).
        A source whose canvas would need more is merged row band by row band and written
        progressively to a tiled BigTIFF.
    """
    check_memory_limit(memory_limit)
    tiles_folder = Path(tiles_folder).expanduser()
    manifest = read_manifest(tiles_folder)
    tile_size, overlap = int(manifest["tile_size"]), int(manifest["overlap"])
    window = blend_window(tile_size, overlap, blend)
    flat = _is_flat(window)
    out = Path(output).expanduser().absolute()
    check_output_folder(out, [tiles_folder], overwrite)
    _prepare_output(out)
    cancel = cancel or threading.Event()
    summary = MergeSummary(out)

    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tile in manifest["tiles"]:
        by_source[tile["source"]].append(tile)
    # Tiles dropped by the empty-tile filter leave holes, filled with zeros.
    with_holes = {tile["source"] for tile in manifest.get("dropped", [])}
    sources = []
    for source in manifest["sources"]:
        if source.get("status") == "ok" and by_source.get(source["file"]):
            sources.append(source)
        else:
            reason = source.get("error") or f"its cut ended as '{source.get('status')}'"
            summary.not_cut.append((source["file"], reason))
    total = sum(len(by_source[s["file"]]) for s in sources)
    limit = memory_limit or default_memory_limit()
    done, last = 0, 0.0
    for number, source in enumerate(sources):
        tiles = by_source[source["file"]]
        try:
            rows, cols = source["scaled_shape"]
            if rows * cols * (8 * _channels(source) + 8) > limit:
                progress = _merge_streamed(tiles_folder, tiles, source, window, tile_size, out, restore_scale,
                                           source["file"] in with_holes, cancel)
                for step in progress:  # the number of tiles merged so far for this source
                    if time.monotonic() - last > 0.05:
                        last = time.monotonic()
                        yield Progress(done + step, total, number, len(sources), source["file"], "Merging tiles")
                if cancel.is_set():
                    summary.cancelled = True
                    return summary
                done += len(tiles)
                summary.written.append(out / f"{source['tile_stem']}.tif")
                yield Progress(done, total, number + 1, len(sources), source["file"], "Merging tiles")
                continue
            canvas = weights = None
            for tile in tiles:
                if cancel.is_set():
                    summary.cancelled = True
                    return summary
                values = _read_existing(tiles_folder, tile, source, tile_size)
                if canvas is None:
                    rows, cols = source["scaled_shape"]
                    dtype, channels = values.dtype, values.shape[2]
                    # float64 sums: with large overlaps a pixel sums dozens of tiles
                    canvas = np.zeros((rows, cols, channels), np.float64)
                    weights = np.zeros((rows, cols), canvas.dtype)
                _add_tile(canvas, weights, values, window, flat, tile, 0, source, channels)
                done += 1
                if time.monotonic() - last > 0.05:
                    last = time.monotonic()
                    yield Progress(done, total, number, len(sources), source["file"], "Merging tiles")
            if source["file"] not in with_holes and np.any(weights == 0):
                raise _not_covered(source)
            np.divide(canvas, weights[..., np.newaxis], out=canvas, where=weights[..., np.newaxis] > 0)
            path = _write_merged(out, source, canvas, dtype, restore_scale)
            summary.written.append(path)
        except ImageError as exc:
            summary.failed.append((source["file"], str(exc)))
        except MemoryError:
            summary.failed.append((source["file"], f"{source['file']}: not enough memory to merge it."))
        except OSError as exc:
            summary.failed.append((source["file"], f"{source['file']}: writing failed ({exc.strerror or exc})."))
        except Exception as exc:
            log.exception("unexpected error while merging %s", source["file"])
            summary.failed.append((source["file"], f"{source['file']}: unexpected error ({exc}); see the log file."))
        yield Progress(done, total, number + 1, len(sources), source["file"], "Merging tiles")
    return summary


def _write_merged(out: Path, source: dict[str, Any], canvas: np.ndarray, dtype: np.dtype, restore_scale: bool) -> Path:
    pixel_size = source.get("output_pixel_size_um")
    if restore_scale and list(source["scaled_shape"]) != _shape_yx(source):
        rows, cols = _shape_yx(source)
        if dtype.kind in "iub":  # labels must stay labels: no interpolated values
            canvas = resize_nearest(canvas, (rows, cols))
        else:
            canvas = resample(canvas, (rows, cols))
        pixel_size = source.get("pixel_size_um")
    canvas = _to_dtype(canvas, _output_dtype(dtype))
    channels = canvas.shape[2]
    if channels == 1:
        axes = "YX"
    elif source.get("axes") == "YXS" and channels in (3, 4):
        axes = "YXS"
    else:
        axes = "CYX"
    path = out / f"{source['tile_stem']}.tif"
    write_image(path, from_yxc(canvas, axes), axes, tuple(pixel_size) if pixel_size else None)
    return path


def _shape_yx(source: dict[str, Any]) -> list[int]:
    shape, axes = source["shape"], source["axes"]
    return [shape[axes.index("Y")], shape[axes.index("X")]]


def _channels(source: dict[str, Any]) -> int:
    """Channels of a source as the manifest describes it (model outputs may have others)."""
    shape, axes = source.get("shape") or [], source.get("axes") or "YX"
    if axes == "YX" or len(shape) != len(axes):
        return 1
    return int(shape[0] if axes == "CYX" else shape[2])


# --- big images: row bands, written as they are finished ----------------------------------------
STRIP_TILE = 256  # tile size of the progressive BigTIFF


class _TiledWriter:
    """Writes a tiled BigTIFF from rows given top to bottom, holding one strip of tiles.

    tifffile writes from an iterator of tiles; it runs in a thread fed through a small queue,
    so the merge keeps its own loop (progress, cancel) and memory stays at a few strips.
    """

    def __init__(self, path: Path, shape: tuple[int, int, int], dtype: np.dtype, pixel_size_um):
        self.shape, self.dtype = shape, np.dtype(dtype)
        self._strip = np.zeros((STRIP_TILE, shape[1], shape[2]), self.dtype)
        self._filled = 0
        self._rows_done = 0
        self._queue: queue.Queue = queue.Queue(maxsize=2 * math.ceil(shape[1] / STRIP_TILE))
        self._error: BaseException | None = None
        self._ended = False  # the writer thread has taken the end marker
        kwargs: dict[str, Any] = {"photometric": "minisblack", "planarconfig": "contig"}
        if pixel_size_um is not None:
            kwargs.update(resolution=(1e4 / pixel_size_um[1], 1e4 / pixel_size_um[0]), resolutionunit="CENTIMETER")
        data_shape = shape if shape[2] > 1 else shape[:2]
        self._atomic = atomic(path)
        tmp = self._atomic.__enter__()
        self._thread = threading.Thread(target=self._write, args=(tmp, data_shape, kwargs), daemon=True,
                                        name="tilesapp-merge-writer")
        self._thread.start()

    def _tiles(self):
        while True:
            item = self._queue.get()
            if item is None:
                self._ended = True
                return
            yield item

    def _write(self, tmp: Path, data_shape, kwargs) -> None:
        try:
            tifffile.imwrite(tmp, self._tiles(), shape=data_shape, dtype=self.dtype, tile=(STRIP_TILE, STRIP_TILE),
                             bigtiff=True, **kwargs)
        except BaseException as exc:  # reported by close(); drain so put() never blocks
            self._error = exc
            while not self._ended and self._queue.get() is not None:
                pass

    def add(self, rows: np.ndarray) -> None:
        """Append finished rows (rows, cols, channels), already of the output dtype."""
        start = 0
        while start < rows.shape[0]:
            take = min(STRIP_TILE - self._filled, rows.shape[0] - start)
            self._strip[self._filled : self._filled + take] = rows[start : start + take]
            self._filled += take
            start += take
            if self._filled == STRIP_TILE:
                self._flush()

    def _flush(self) -> None:
        if self._error is not None:
            raise self._error
        self._strip[self._filled :] = 0  # the padding of the last strip
        cols, channels = self.shape[1], self.shape[2]
        for x in range(0, cols, STRIP_TILE):
            tile = np.zeros((STRIP_TILE, STRIP_TILE, channels), self.dtype)
            part = self._strip[:, x : x + STRIP_TILE]
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
            self._atomic.__exit__(None, None, None)
        else:
            self._atomic.__exit__(type(error or KeyboardInterrupt), error, None)  # removes the partial file
            if ok and error is not None:
                raise error


def _merge_streamed(tiles_folder: Path, tiles: list[dict[str, Any]], source: dict[str, Any], window: np.ndarray,
                    tile_size: int, out: Path, restore_scale: bool, holes: bool, cancel: threading.Event):
    """Merge one big source row band by row band into ``<stem>.tif``; yields tiles merged.

    Rows are divided and written as soon as no later tile row reaches them, so memory holds
    one tile row of canvas. With ``restore_scale`` the merged image is first written whole to
    a temporary file, then resampled band by band from it.
    """
    rows, cols = source["scaled_shape"]
    tiles = sorted(tiles, key=lambda t: (t["y0"], t["x0"]))
    reads = _read_ahead(lambda tile: _read_existing(tiles_folder, tile, source, tile_size), tiles)
    first = next(reads)
    channels, dtype = first.shape[2], first.dtype
    flat = _is_flat(window)
    out_dtype = _output_dtype(dtype)
    restore = restore_scale and list(source["scaled_shape"]) != _shape_yx(source)
    final = out / f"{source['tile_stem']}.tif"
    target = final.with_name(f".{final.stem}.merged.partial.tif") if restore else final
    writer = _TiledWriter(target, (rows, cols, channels), out_dtype,
                          None if source.get("output_pixel_size_um") is None else tuple(source["output_pixel_size_um"]))
    ok = False
    try:
        band_y0 = 0  # first row not yet written
        canvas = np.zeros((tile_size, cols, channels))
        weights = np.zeros((tile_size, cols))
        merged = 0
        i = 0
        while i < len(tiles):
            y0 = tiles[i]["y0"]
            if y0 > band_y0:  # rows above this tile row are final: write them
                _emit(writer, canvas, weights, y0 - band_y0, out_dtype, holes, source)
                canvas, weights = _shift(canvas, weights, y0 - band_y0)
                band_y0 = y0
            while i < len(tiles) and tiles[i]["y0"] == y0:
                if cancel.is_set():
                    return
                values = first if i == 0 else next(reads)
                _add_tile(canvas, weights, values, window, flat, tiles[i], band_y0, source, channels)
                merged += 1
                i += 1
                yield merged
        _emit(writer, canvas, weights, rows - band_y0, out_dtype, holes, source)
        writer.close()
        ok = True
    finally:
        reads.close()
        if not ok:
            writer.close(ok=False)
    if restore:
        try:
            _restore_streamed(target, final, source, out_dtype, cancel)
        finally:
            target.unlink(missing_ok=True)


def _is_flat(window: np.ndarray) -> bool:
    return bool(np.all(window == 1.0))


def _add_tile(canvas, weights, values, window, flat: bool, tile: dict[str, Any], y_offset: int, source, channels: int) -> None:
    """Add a tile's values, weighted by the blend window, to a canvas whose first row is image
    row ``y_offset``."""
    if values.shape[2] != channels:
        raise ImageError(f"{source['file']}: tile {tile['file']} has {values.shape[2]} channels, other tiles {channels}.")
    y0, x0, y1, x1 = tile["y0"] - y_offset, tile["x0"], tile["y1"] - y_offset, tile["x1"]
    part = values[: y1 - y0, : x1 - x0]
    if flat:  # weights of 1: the same sums without a product per pixel
        canvas[y0:y1, x0:x1] += part
        weights[y0:y1, x0:x1] += 1.0
    else:
        w = window[: y1 - y0, : x1 - x0]
        canvas[y0:y1, x0:x1] += part * w[..., np.newaxis]
        weights[y0:y1, x0:x1] += w


def _read_existing(tiles_folder: Path, tile: dict[str, Any], source: dict[str, Any], tile_size: int) -> np.ndarray:
    path = tiles_folder / tile["file"]
    if not path.is_file():
        raise ImageError(f"{source['file']}: tile {tile['file']} is missing from {tiles_folder}.")
    return read_tile(path, tile_size)


def _emit(writer: _TiledWriter, canvas, weights, n: int, dtype: np.dtype, holes: bool, source) -> None:
    """Divide and write the first ``n`` rows of the canvas."""
    if n <= 0:
        return
    if n > len(canvas):  # a whole tile row was dropped by the filter: a hole of zeros
        _emit(writer, canvas, weights, len(canvas), dtype, holes, source)
        if not holes:
            raise _not_covered(source)
        writer.add(np.zeros((n - len(canvas),) + canvas.shape[1:], dtype))
        return
    part, w = canvas[:n], weights[:n]
    if not holes and np.any(w == 0):
        raise _not_covered(source)
    # in place: these rows are cleared by _shift next; a hole's sums are 0 and stay 0
    np.divide(part, w[..., np.newaxis], out=part, where=w[..., np.newaxis] > 0)
    writer.add(_to_dtype(part, dtype, in_place=True))


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


def _not_covered(source: dict[str, Any]) -> ImageError:
    return ImageError(f"{source['file']}: the tiles do not cover the whole image; the manifest does not match the tiles.")


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
        out = values if in_place else None
        values = np.clip(np.rint(values, out=out), info.min, info.max, out=out)
    return values.astype(dtype)


def _restore_streamed(merged: Path, final: Path, source: dict[str, Any], dtype: np.dtype, cancel: threading.Event) -> None:
    """Resample a merged image back to its source's size, band by band."""
    rows, cols = _shape_yx(source)
    with RegionReader(merged) as reader:
        resampled = MaskRows(reader, (rows, cols)) if dtype.kind in "iub" else ScaledRows(reader, (rows, cols))
        pixel_size = source.get("pixel_size_um")
        writer = _TiledWriter(final, (rows, cols, reader.channels), dtype, None if pixel_size is None else tuple(pixel_size))
        ok = False
        try:
            for y in range(0, rows, STRIP_TILE):
                if cancel.is_set():
                    return
                writer.add(_to_dtype(resampled.rows(y, min(rows, y + STRIP_TILE)), dtype))
            writer.close()
            ok = True
        finally:
            if not ok:
                writer.close(ok=False)
