"""Images in bands: the recalibrated image computed a group of tile rows at a time.

Every image is cut in *bands*, groups of whole tile rows; an image whose processing fits its
share of the memory limit is a single band, the whole image, recalibrated by one
``cv2.resize``. A band of a bigger image is computed from just the source rows it needs
(:func:`tilesapp.core.resample.resample_band`, equal to the whole-image result within float
rounding), so memory depends on the band, not the image. Bands overlap where their tiles do.

Statistics of several bands are streamed: min and max are exact; percentiles come from a
65 536-bin histogram over the source's value range (widened by a quarter on each side for the
cubic kernel's overshoot), within 1/43 690 of that range of ``numpy.percentile`` of the whole
image. Statistics of a single band are exact. Non-finite values (NaN, ±Inf) never enter
statistics; they are counted. The empty-tile filter's automatic threshold is taken from the
same regular subsample of rows and columns whatever the bands.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import cv2
import numpy as np

from tilesapp.core.annotations import nearest_index
from tilesapp.core.geometry import TileGrid
from tilesapp.core.normalize import channel_range, joint_range
from tilesapp.core.readers import SceneInfo
from tilesapp.core.resample import axis_weights, resample, resample_band, source_rows

HISTOGRAM_BINS = 65536


class Pixels(Protocol):
    """What bands are read from: a scene's chosen plane (or a projection of its planes)."""

    info: SceneInfo

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray: ...

    def chunk_rows(self) -> int: ...


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
    """The recalibrated rows of one image, computed from its pixels on demand.

    The whole image is resampled by one ``cv2.resize``. A band is resampled by ``cv2.resize`` too
    when the rows' scale is a fraction whose denominator is a power of two (×2, ×4, ½, ⅔ …):
    OpenCV's positions and weights are then exact binary numbers, so a window that starts on a
    whole period, with a margin, gives bit for bit the rows of the whole image. Other scales go
    through :func:`~tilesapp.core.resample.resample_band`, equal within float rounding.
    """

    #: Source rows of margin around a band resampled by OpenCV (its cubic kernel reaches 2).
    MARGIN = 4

    def __init__(self, pixels: Pixels, scaled_shape: tuple[int, int]):
        self.pixels = pixels
        self.shape = tuple(scaled_shape)
        rows, cols = pixels.info.shape_yx
        self.source_shape = (rows, cols)
        self.dtype = np.dtype(pixels.info.dtype)
        self.rescaled = self.shape != (rows, cols)
        ratio = Fraction(rows, self.shape[0])  # source rows per output row
        exact = ratio.denominator & (ratio.denominator - 1) == 0 and ratio.denominator <= 64
        self.period = (ratio.numerator, ratio.denominator) if exact else None
        self.weights = axis_weights(rows, self.shape[0]) if self.rescaled and self.shape[0] != rows \
            and self.period is None else None

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Recalibrated rows ``[y0, y1)``, full width: float (the source's dtype when the image
        is not rescaled), as the whole-image recalibration gives them."""
        rows_in, cols = self.source_shape
        if not self.rescaled:
            return self.pixels.read(y0, y1, 0, cols)
        if (y0, y1) == (0, self.shape[0]):
            return resample(self.pixels.read(0, rows_in, 0, cols), self.shape)
        if self.weights is None:
            return self._window(y0, y1)
        s0, s1 = source_rows(self.weights, y0, y1)
        return resample_band(self.pixels.read(s0, s1, 0, cols), s0, self.weights, y0, y1, self.shape[1], self.dtype)

    def _window(self, y0: int, y1: int) -> np.ndarray:
        """Rows of a band through OpenCV on a window of whole periods with a margin."""
        rows_in, cols = self.source_shape
        a, b = self.period  # b output rows come from a source rows
        periods = -(-self.MARGIN // a)  # whole periods of margin
        start = max(0, y0 // b - periods)
        stop = min(-(-y1 // b) + periods, -(-self.shape[0] // b))
        ys, ye = start * b, min(self.shape[0], stop * b)
        ss, se = start * a, min(rows_in, stop * a)
        band = resample(self.pixels.read(ss, se, 0, cols), (ye - ys, self.shape[1]), self.dtype)
        return band[y0 - ys : y1 - ys]


class MaskRows:
    """Rows of a mask on its image's recalibrated grid (nearest neighbour, centre-aligned, as
    :func:`tilesapp.core.annotations.resize_nearest`)."""

    def __init__(self, pixels: Pixels, scaled_shape: tuple[int, int]):
        self.pixels = pixels
        self.info = pixels.info
        self._r = nearest_index(self.info.shape_yx[0], scaled_shape[0])
        self._c = nearest_index(self.info.shape_yx[1], scaled_shape[1])
        self.axes = self.info.axes

    def rows(self, y0: int, y1: int) -> np.ndarray:
        r = self._r[y0:y1]
        source = self.pixels.read(int(r[0]), int(r[-1]) + 1, 0, self.info.shape_yx[1])
        return source[(r - r[0])[:, np.newaxis], self._c[np.newaxis, :]]


# --- statistics ---------------------------------------------------------------------------------
class ChannelStats:
    """Min, max and (optionally) a histogram of each channel, accumulated band by band.

    ``value_range`` is the histogram's range; values outside it are counted in its end bins.
    With ``exact``, the one band added is kept and percentiles are ``numpy.percentile``'s.
    Non-finite values are left out and counted in ``nonfinite``.
    """

    def __init__(self, channels: int, value_range: tuple[float, float] | None = None,
                 sample_step: int | None = None, exact: bool = False):
        self.low = np.full(channels, np.inf)
        self.high = np.full(channels, -np.inf)
        self.count = np.zeros(channels, np.int64)
        self.nonfinite = 0
        self.range = value_range
        self.hist = np.zeros((channels, HISTOGRAM_BINS), np.int64) if value_range is not None and not exact else None
        self.step = sample_step
        self.exact = exact
        self._whole: np.ndarray | None = None
        self._samples: list[np.ndarray] = []
        self._lock = threading.Lock()

    def add(self, band: np.ndarray, first_row: int = 0) -> None:
        """Add a (rows, cols, channels) block whose first row is image row ``first_row``; with
        ``sample_step``, also keep every step-th row and column of the image, as
        :func:`tilesapp.core.selection.auto_threshold` takes them from a whole image."""
        # float64 values (float64 sources, 32-bit integers) are measured as they are: in float32,
        # 1e300 would count as infinite and 1000.0001 as 1000
        dtype = np.float64 if band.dtype.itemsize > 4 else np.float32
        if self.step is not None:
            start = -first_row % self.step
            sample = np.array(band[start :: self.step, :: self.step], dtype=dtype)
            with self._lock:
                self._samples.append(sample)
        if self.exact:
            self._whole = band
            if band.dtype.kind not in "fc":
                return  # its percentiles come from the band itself, and integers are all finite
        for c in range(band.shape[2]):
            values = np.ascontiguousarray(band[..., c], dtype=dtype)
            if values.size == 0:
                continue
            finite = values
            lo, hi = float(values.min()), float(values.max())
            if not np.isfinite(lo + hi):
                mask = np.isfinite(values)
                finite = values[mask]
                with self._lock:
                    self.nonfinite += int(values.size - finite.size)
                if finite.size == 0:
                    continue
                lo, hi = float(finite.min()), float(finite.max())
            hist = _histogram(finite, self.range) if self.hist is not None else None
            with self._lock:
                self.low[c] = min(self.low[c], lo)
                self.high[c] = max(self.high[c], hi)
                self.count[c] += finite.size
                if hist is not None:
                    self.hist[c] += hist

    def merge(self, other: ChannelStats) -> None:
        """Add the statistics of other bands (gathered elsewhere, e.g. in another process)."""
        with self._lock:
            self.low = np.minimum(self.low, other.low)
            self.high = np.maximum(self.high, other.high)
            self.count += other.count
            self.nonfinite += other.nonfinite
            if self.hist is not None and other.hist is not None:
                self.hist += other.hist
            self._samples.extend(other._samples)
            if other._whole is not None:
                self._whole = other._whole

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def value_range_of(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact per-channel (min, max); 0 for a channel with no finite value."""
        low = np.where(np.isfinite(self.low), self.low, 0.0)
        high = np.where(np.isfinite(self.high), self.high, 0.0)
        return low, high

    def percentiles(self, low_p: float, high_p: float, joint: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel percentiles as ``numpy.percentile`` (linear) gives them — exactly for a
        single band, within one histogram bin otherwise; (0, 100) gives the exact min and max.
        ``joint``: over all channels at once, repeated for each."""
        channels = len(self.low)
        # float32 values were measured as they are: their min and max are the image's (no second
        # pass over a whole image); other types' are recomputed in their own precision
        whole = self._whole if self.exact else None
        if whole is not None and not ((low_p, high_p) == (0.0, 100.0) and whole.dtype == np.float32):
            return (joint_range if joint else channel_range)(whole, (low_p, high_p))
        vmin, vmax = self.value_range_of()
        if joint:
            finite = np.isfinite(self.low)
            lo_all = float(self.low[finite].min()) if finite.any() else 0.0
            hi_all = float(self.high[finite].max()) if finite.any() else 0.0
            if (low_p, high_p) == (0.0, 100.0) or self.hist is None:
                return np.full(channels, lo_all), np.full(channels, hi_all)
            hist, count = self.hist.sum(axis=0), int(self.count.sum())
            low = _percentile(hist, count, lo_all, hi_all, self.range, low_p)
            high = _percentile(hist, count, lo_all, hi_all, self.range, high_p)
            return np.full(channels, min(max(low, lo_all), hi_all)), np.full(channels, min(max(high, lo_all), hi_all))
        if (low_p, high_p) == (0.0, 100.0) or self.hist is None:
            return vmin, vmax
        low = np.array([_percentile(self.hist[c], int(self.count[c]), self.low[c], self.high[c], self.range, low_p)
                        for c in range(channels)])
        high = np.array([_percentile(self.hist[c], int(self.count[c]), self.low[c], self.high[c], self.range, high_p)
                         for c in range(channels)])
        return np.clip(low, vmin, vmax), np.clip(high, vmin, vmax)

    def sample(self) -> np.ndarray:
        """The kept rows and columns, (rows, cols, channels): the image's threshold subsample."""
        return np.concatenate(self._samples, axis=0)


def _percentile(hist: np.ndarray, n: int, vmin: float, vmax: float, value_range: tuple[float, float], p: float) -> float:
    """The ``p``-th percentile of ``n`` values counted in ``hist`` over ``value_range``."""
    if n == 0:
        return 0.0
    if p <= 0:
        return float(vmin)
    if p >= 100:
        return float(vmax)
    lo, hi = value_range
    width = (hi - lo) / HISTOGRAM_BINS
    rank = p / 100.0 * (n - 1)  # 0-based position among the sorted values
    cumulative = np.cumsum(hist)
    b = int(np.searchsorted(cumulative, rank, side="right"))
    before = int(cumulative[b - 1]) if b > 0 else 0
    inside = int(hist[b])
    # values spread evenly inside their bin
    return lo + width * (b + (rank - before + 0.5) / max(inside, 1))


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


def source_range(pixels: Pixels, band_rows: int) -> tuple[float, float]:
    """Exact (min, max) over all channels of an image, read band by band (non-finite ignored)."""
    rows, cols = pixels.info.shape_yx
    lo, hi = np.inf, -np.inf
    for y in range(0, rows, band_rows):
        block = pixels.read(y, min(rows, y + band_rows), 0, cols)
        if block.dtype.kind == "f":
            block = block[np.isfinite(block)]
            if block.size == 0:
                continue
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return (lo, hi) if np.isfinite(lo) else (0.0, 1.0)
