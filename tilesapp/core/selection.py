"""Which tiles a training set keeps, and which sources go to validation.

Both are reproducible: random choices come from generators seeded with the settings' ``seed``
and, for tiles, the source's name, so neither the order of the threads nor the other images
change what one image gets.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import cv2
import numpy as np

from tilesapp.core.annotations import Boxes, box_coverage
from tilesapp.core.geometry import TileGrid


#: Pixels an automatic threshold looks at, at most: a regular subsample gives the same
#: histogram, faster.
THRESHOLD_SAMPLE = 4_000_000


def sample_step(shape: tuple[int, int]) -> int:
    """Step of the regular subsample (every n-th row and column) the threshold is taken from."""
    return max(1, math.ceil(math.sqrt(shape[0] * shape[1] / THRESHOLD_SAMPLE)))


def auto_threshold(image: np.ndarray, step: int | None = None) -> np.ndarray:
    """Otsu threshold of each channel of a (rows, cols, channels) image (foreground above it),
    from every ``step``-th row and column (default :func:`sample_step`; 1 for a subsample
    already taken)."""
    step = step or sample_step(image.shape[:2])
    return np.array([otsu_threshold(image[::step, ::step, c]) for c in range(image.shape[2])])


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of ``values`` (NaN ignored): OpenCV's, on 65 536 levels between their
    min and max; values above it are foreground. A constant input gives its value.

    >>> t = otsu_threshold(np.array([10.0, 11, 12, 50, 51, 52]))
    >>> 12 < t < 50  # the two groups fall on either side
    True
    """
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values.ravel()
    if finite.size == 0:
        return 0.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return hi
    scale = 65535.0 / (hi - lo)
    levels = np.rint((finite.astype(np.float64) - lo) * scale).astype(np.uint16).reshape(1, -1)
    level, _ = cv2.threshold(levels, 0, 65535, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    # OpenCV keeps levels above `level`: half a level up, so that "value > threshold" agrees
    return lo + (level + 0.5) / scale


def foreground_map(image: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(rows, cols) bool: pixels above their channel's threshold in any channel."""
    return np.any(image > thresholds.astype(image.dtype, copy=False), axis=2)


def tile_fractions(foreground: np.ndarray, grid: TileGrid, tiles=None, y_offset: int = 0) -> np.ndarray:
    """Share of foreground pixels in each tile's image region, (n_tiles,) float.

    ``tiles`` (indices, default all) may be a band of the grid whose ``foreground`` map starts
    at image row ``y_offset``. Uses an integral image, so the cost does not grow with the overlap.
    """
    tiles = [grid.tile(i) for i in (range(len(grid)) if tiles is None else tiles)]
    return _box_shares(foreground, [(t.y0 - y_offset, t.x0, t.y1 - y_offset, t.x1) for t in tiles])


def reduced_fractions(foreground: np.ndarray, grid: TileGrid) -> np.ndarray:
    """:func:`tile_fractions` measured on a reduced ``foreground`` map that stands for the
    grid's whole image (each tile's box is scaled onto it, at least one pixel)."""
    fy, fx = foreground.shape[0] / grid.shape[0], foreground.shape[1] / grid.shape[1]
    boxes = []
    for t in grid:
        y0, x0 = int(t.y0 * fy), int(t.x0 * fx)
        boxes.append((y0, x0, max(y0 + 1, round(t.y1 * fy)), max(x0 + 1, round(t.x1 * fx))))
    return _box_shares(foreground, boxes)


def _box_shares(foreground: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Share of true pixels of a (rows, cols) map in each (y0, x0, y1, x1) box."""
    integral = np.zeros((foreground.shape[0] + 1, foreground.shape[1] + 1), np.int64)
    np.cumsum(np.cumsum(foreground, axis=0, dtype=np.int64), axis=1, out=integral[1:, 1:])
    out = np.empty(len(boxes))
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        out[i] = total / ((y1 - y0) * (x1 - x0))
    return out


def tile_foreground(grid: TileGrid, image: np.ndarray, mask: np.ndarray | None = None, boxes: Boxes | None = None) -> np.ndarray:
    """Foreground share of every tile: mask > 0 when a mask is given, else the boxes' cover,
    else pixels of ``image`` (before normalization) above an automatic threshold."""
    if mask is not None:
        return tile_fractions(np.any(mask != 0, axis=2), grid)
    if boxes is not None:
        return np.array([box_coverage(boxes, t) for t in grid])
    return tile_fractions(foreground_map(image, auto_threshold(image)), grid)


def keep_tiles(fractions: np.ndarray, min_foreground: float, keep_empty: float, seed: int, name: str) -> np.ndarray:
    """Which tiles to keep: (n,) bool.

    Tiles whose foreground share reaches ``min_foreground`` are kept; of the others, ``keep_empty``
    (a share, rounded) are kept at random — the same ones for the same seed and source name.

    >>> keep_tiles(np.array([0.0, 0.5, 0.01, 0.2]), 0.1, 0.0, 0, "a.tif").tolist()
    [False, True, False, True]
    """
    keep = fractions >= min_foreground
    if min_foreground <= 0:
        return np.ones(len(fractions), bool)
    empty = np.flatnonzero(~keep)
    count = int(math.floor(keep_empty * len(empty) + 0.5))
    if count:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        keep[rng.choice(empty, size=count, replace=False)] = True
    return keep


def split_sources(names: Sequence[str], val_fraction: float, seed: int) -> dict[str, str]:
    """Assign each source to "train" or "val": ``round(fraction × n)`` sources go to validation.

    At least one source goes to each side when the fraction is above 0 and there are two
    sources or more. The choice depends on the names and the seed only.

    >>> split_sources(["a", "b", "c", "d"], 0.25, seed=1)
    {'a': 'val', 'b': 'train', 'c': 'train', 'd': 'train'}
    """
    if val_fraction <= 0 or not names:
        return {name: "train" for name in names}
    ordered = sorted(names)
    n_val = int(math.floor(val_fraction * len(ordered) + 0.5))
    if len(ordered) >= 2:
        n_val = min(max(n_val, 1), len(ordered) - 1)
    chosen = set(np.random.default_rng(seed).permutation(len(ordered))[:n_val].tolist())
    return {name: ("val" if i in chosen else "train") for i, name in enumerate(ordered)}
