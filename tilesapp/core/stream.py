"""Big images in bounded memory: the recalibrated image computed band by band.

An image whose whole-image processing would not fit the memory limit is cut in *bands*:
groups of whole tile rows. Each band's recalibrated rows are computed from just the source
rows they need (:func:`tilesapp.core.resample.resample_band`, equal to the whole-image result
within float rounding), so memory depends on the band, not the image. Bands overlap by the
tiles' overlap, which is recomputed rather than kept.

Global statistics take a streaming pass over the bands: min and max are exact; percentiles
come from a 65 536-bin histogram over the source's value range (widened by a quarter on
each side for the cubic kernel's overshoot), so they are within 1/43 690 of that range of
``numpy.percentile`` of the whole image. The empty-tile filter's automatic threshold is taken
from the same regular subsample of rows and columns as for a whole image.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from tilesapp.core.annotations import nearest_index
from tilesapp.core.geometry import TileGrid
from tilesapp.core.regions import RegionReader
from tilesapp.core.resample import axis_weights, resample_band, source_rows

HISTOGRAM_BINS = 65536


def default_memory_limit() -> int:
    """Bytes of pixels an export or a merge may hold at once: a quarter of the computer's
    memory, at most 512 MiB. Bands are as fast as whole images (measured: faster, as they
    stay in cache), so a larger default would only take memory from other programs."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        return 512 << 20
    return max(64 << 20, min(512 << 20, total // 4))


# --- memory --------------------------------------------------------------------------------------
class MemoryGate:
    """Bytes shared by the threads of an export: a worker waits until its share is free.

    A request larger than the whole capacity is served alone (capped at the capacity), so a
    single oversized image still runs, with nothing else beside it.
    """

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self._free = self.capacity
        self._cond = threading.Condition()

    def acquire(self, nbytes: int, cancel: threading.Event | None = None) -> int:
        """Wait for ``nbytes`` (capped); returns what to :meth:`release`, 0 when cancelled."""
        want = min(max(1, int(nbytes)), self.capacity)
        with self._cond:
            while self._free < want:
                if cancel is not None and cancel.is_set():
                    return 0
                self._cond.wait(0.1)
            self._free -= want
        return want

    def release(self, nbytes: int) -> None:
        if nbytes:
            with self._cond:
                self._free += nbytes
                self._cond.notify_all()


def whole_image_bytes(shape_yx, scaled_shape, channels: int, source_itemsize: int, out_itemsize: int) -> int:
    """Peak bytes of cutting an image whole: the source, its float copy, the recalibrated
    image and its cast to the output type."""
    source = shape_yx[0] * shape_yx[1] * channels
    scaled = scaled_shape[0] * scaled_shape[1] * channels
    return source * (source_itemsize + 4) + scaled * (4 + out_itemsize)


def band_bytes(rows_out: int, plan_shape_yx, scaled_shape, channels: int, source_itemsize: int, out_itemsize: int) -> int:
    """Peak bytes of one band of ``rows_out`` recalibrated rows (source rows, two float
    passes, a scratch copy, the cast)."""
    rows_in = math.ceil(rows_out * plan_shape_yx[0] / scaled_shape[0]) + 4
    source = rows_in * plan_shape_yx[1] * channels * (source_itemsize + 8)
    return source + rows_out * scaled_shape[1] * channels * (12 + out_itemsize)


# --- bands -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Band:
    """Tile rows ``[row0, row1)`` of a grid: recalibrated image rows ``[y0, y1)``, of which
    ``[y0, own_y1)`` belong to no earlier band (bands overlap where tiles do)."""

    row0: int
    row1: int
    y0: int
    y1: int
    own_y1: int

    def tiles(self, grid: TileGrid) -> range:
        """Indices of the band's tiles (row-major)."""
        return range(self.row0 * grid.n_cols, self.row1 * grid.n_cols)


def plan_bands(grid: TileGrid, tile_rows: int) -> list[Band]:
    """Group a grid's tile rows ``tile_rows`` at a time.

    >>> grid = TileGrid.for_shape((1000, 300), 512, 128)  # tile rows start at 0, 384, 488
    >>> [(b.row0, b.row1, b.y0, b.y1, b.own_y1) for b in plan_bands(grid, 2)]
    [(0, 2, 0, 896, 488), (2, 3, 488, 1000, 1000)]
    """
    tile_rows = max(1, int(tile_rows))
    starts = list(range(0, grid.n_rows, tile_rows))
    bands = []
    for i, row0 in enumerate(starts):
        row1 = min(grid.n_rows, row0 + tile_rows)
        y0 = grid.row_starts[row0]
        y1 = min(grid.shape[0], grid.row_starts[row1 - 1] + grid.tile_size)
        own_y1 = grid.row_starts[starts[i + 1]] if i + 1 < len(starts) else y1
        bands.append(Band(row0, row1, y0, y1, own_y1))
    return bands


def tile_rows_per_band(grid: TileGrid, budget: int, bytes_for_rows, workers: int) -> int:
    """Most tile rows per band whose bytes fit ``budget``, leaving a band per worker."""
    most = max(1, math.ceil(grid.n_rows / max(1, workers)))
    step = grid.tile_size - grid.overlap
    k = 1
    while k < most and bytes_for_rows(min(grid.shape[0], k * step + grid.tile_size)) <= budget:
        k += 1
    return k


class ScaledRows:
    """The recalibrated rows of one image, computed from its source on demand."""

    def __init__(self, reader: RegionReader, scaled_shape: tuple[int, int]):
        self.reader = reader
        self.shape = tuple(scaled_shape)
        rows, cols = reader.shape_yx
        self.rescaled = self.shape != (rows, cols)
        self.weights = axis_weights(rows, self.shape[0]) if self.rescaled else None

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Recalibrated rows ``[y0, y1)``, full width: float (the source's dtype when the image
        is not rescaled), as the whole-image recalibration gives them."""
        if not self.rescaled:
            return self.reader.read_rows(y0, y1)
        s0, s1 = source_rows(self.weights, y0, y1)
        source = self.reader.read_rows(s0, s1)
        return resample_band(source, s0, self.weights, y0, y1, self.shape[1], self.reader.dtype)


class MaskRows:
    """Rows of a mask on its image's recalibrated grid (nearest neighbour, centre-aligned, as
    :func:`tilesapp.core.annotations.resize_nearest`)."""

    def __init__(self, reader: RegionReader, scaled_shape: tuple[int, int]):
        self.reader = reader
        self._r = nearest_index(reader.shape_yx[0], scaled_shape[0])
        self._c = nearest_index(reader.shape_yx[1], scaled_shape[1])
        self.axes = reader.info.axes

    def rows(self, y0: int, y1: int) -> np.ndarray:
        r = self._r[y0:y1]
        source = self.reader.read_rows(int(r[0]), int(r[-1]) + 1)
        return source[(r - r[0])[:, np.newaxis], self._c[np.newaxis, :]]


# --- statistics ---------------------------------------------------------------------------------
class ChannelStats:
    """Min, max and (optionally) a histogram of each channel, accumulated band by band.

    ``value_range`` is the histogram's range; values outside it are counted in its end bins.
    """

    def __init__(self, channels: int, value_range: tuple[float, float] | None = None, sample_step: int | None = None):
        self.low = np.full(channels, np.inf)
        self.high = np.full(channels, -np.inf)
        self.count = np.zeros(channels, np.int64)
        self.range = value_range
        self.hist = np.zeros((channels, HISTOGRAM_BINS), np.int64) if value_range is not None else None
        self.step = sample_step
        self._samples: list[np.ndarray] = []
        self._lock = threading.Lock()

    def add(self, band: np.ndarray, first_row: int = 0) -> None:
        """Add a (rows, cols, channels) block of values (NaN ignored) whose first row is image
        row ``first_row``; with ``sample_step``, also keep every step-th row and column of the
        image, as :func:`tilesapp.core.selection.auto_threshold` takes them from a whole image."""
        if self.step is not None:
            start = -first_row % self.step
            sample = np.array(band[start :: self.step, :: self.step], dtype=np.float32)
            with self._lock:
                self._samples.append(sample)
        for c in range(band.shape[2]):
            values = np.ascontiguousarray(band[..., c], dtype=np.float32)
            finite = values
            if np.isnan(values).any():
                finite = values[~np.isnan(values)]
            if finite.size == 0:
                continue
            lo, hi = float(finite.min()), float(finite.max())
            hist = None
            if self.hist is not None:
                hist = _histogram(finite, self.range)
            with self._lock:
                self.low[c] = min(self.low[c], lo)
                self.high[c] = max(self.high[c], hi)
                self.count[c] += finite.size
                if hist is not None:
                    self.hist[c] += hist

    def value_range_of(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact per-channel (min, max); 0 for a channel with no finite value."""
        low = np.where(np.isfinite(self.low), self.low, 0.0)
        high = np.where(np.isfinite(self.high), self.high, 0.0)
        return low, high

    def percentiles(self, low_p: float, high_p: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel percentiles as ``numpy.percentile`` (linear) would give, within one bin;
        (0, 100) gives the exact min and max."""
        vmin, vmax = self.value_range_of()
        if (low_p, high_p) == (0.0, 100.0) or self.hist is None:
            return vmin, vmax
        low = np.array([self._percentile(c, low_p) for c in range(len(vmin))])
        high = np.array([self._percentile(c, high_p) for c in range(len(vmin))])
        return np.clip(low, vmin, vmax), np.clip(high, vmin, vmax)

    def _percentile(self, c: int, p: float) -> float:
        n = int(self.count[c])
        if n == 0:
            return 0.0
        if p <= 0:
            return float(self.low[c])
        if p >= 100:
            return float(self.high[c])
        lo, hi = self.range
        width = (hi - lo) / HISTOGRAM_BINS
        rank = p / 100.0 * (n - 1)  # 0-based position among the sorted values
        cumulative = np.cumsum(self.hist[c])
        b = int(np.searchsorted(cumulative, rank, side="right"))
        before = int(cumulative[b - 1]) if b > 0 else 0
        inside = int(self.hist[c, b])
        # values spread evenly inside their bin
        return lo + width * (b + (rank - before + 0.5) / max(inside, 1))

    def sample(self) -> np.ndarray:
        """The kept rows and columns, (rows, cols, channels): the image's threshold subsample."""
        return np.concatenate(self._samples, axis=0)


def _histogram(values: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    lo, hi = value_range
    # cv2.calcHist excludes the upper edge and drops values outside: clip into the range
    clipped = np.clip(values, lo, hi) if (values.min() < lo or values.max() > hi) else values
    top = np.nextafter(np.float32(hi), np.float32(np.inf))
    flat = np.ascontiguousarray(clipped, dtype=np.float32).reshape(-1, 1)
    counts = np.zeros(HISTOGRAM_BINS, np.int64)
    # float32 counts are exact below 2**24: histogram at most that many values at a time
    for start in range(0, flat.shape[0], 1 << 24):
        part = flat[start : start + (1 << 24)]
        counts += cv2.calcHist([part], [0], None, [HISTOGRAM_BINS], [float(lo), float(top)]).ravel().astype(np.int64)
    return counts


def histogram_range(dtype: np.dtype, source_range: tuple[float, float]) -> tuple[float, float]:
    """Range of the statistics histogram: the source's value range widened by the cubic
    kernel's overshoot, within what the type can hold (recalibrated integers are clipped)."""
    lo, hi = source_range
    if hi <= lo:
        return lo, lo + 1.0
    pad = 0.25 * (hi - lo)  # OpenCV's cubic kernel overshoots by less than 0.2 of a step
    lo, hi = lo - pad, hi + pad
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(lo, float(info.min)), min(hi, float(info.max))
    return lo, hi


def source_range(reader: RegionReader, band_rows: int) -> tuple[float, float]:
    """Exact (min, max) over all channels of an image, read band by band (NaN ignored)."""
    rows = reader.shape_yx[0]
    lo, hi = np.inf, -np.inf
    for y in range(0, rows, band_rows):
        block = reader.read_rows(y, min(rows, y + band_rows))
        if block.dtype.kind == "f":
            if np.isnan(block).all():
                continue
            lo, hi = min(lo, float(np.nanmin(block))), max(hi, float(np.nanmax(block)))
        else:
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return (lo, hi) if np.isfinite(lo) else (0.0, 1.0)
