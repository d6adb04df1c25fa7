"""Recalibration: resampling an image to a new pixel size with OpenCV.

Downscaling uses area averaging (``INTER_AREA``, anti-aliased); upscaling uses cubic
interpolation. Results are floating point; an integer source is clipped to its type's range so
that cubic overshoot never invents values the source type could not hold.
"""

from __future__ import annotations


import cv2
import numpy as np


def working_dtype(dtype: np.dtype) -> np.dtype:
    """Float type that holds every value of ``dtype`` exactly (float32 up to 16-bit integers)."""
    dtype = np.dtype(dtype)
    if dtype == np.float64 or (dtype.kind in "iu" and dtype.itemsize >= 4):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def value_range(dtype: np.dtype) -> tuple[float, float] | None:
    """(min, max) an integer type can hold; None for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return (float(info.min), float(info.max))
    return None


def _interpolation(source: int, target: int) -> int:
    return cv2.INTER_AREA if target < source else cv2.INTER_CUBIC


def resample(image: np.ndarray, shape: tuple[int, int], source_dtype: np.dtype | None = None) -> np.ndarray:
    """Resample a (rows, cols, channels) image to ``shape`` = (rows, cols).

    Parameters
    ----------
    image : ndarray
        (rows, cols, channels) array of any real dtype.
    shape : (int, int)
        Output (rows, cols).
    source_dtype : dtype, optional
        Type whose range bounds the result (defaults to ``image.dtype``).

    Returns
    -------
    ndarray
        (rows, cols, channels) float32 (float64 for 32/64-bit sources).

    Examples
    --------
    >>> img = np.arange(16, dtype=np.uint16).reshape(4, 4, 1)
    >>> resample(img, (2, 2))[..., 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]], dtype=float32)
    """
    source_dtype = np.dtype(source_dtype or image.dtype)
    work = np.ascontiguousarray(image, dtype=working_dtype(source_dtype))
    rows, cols = image.shape[:2]
    out_rows, out_cols = int(shape[0]), int(shape[1])
    if (rows, cols) == (out_rows, out_cols):
        return work
    channels = image.shape[2]
    up_rows, up_cols = out_rows > rows, out_cols > cols
    if (up_rows == up_cols) or rows == out_rows or cols == out_cols:
        interp = cv2.INTER_CUBIC if (up_rows or up_cols) else cv2.INTER_AREA
        out = _resize(work, out_rows, out_cols, interp)
    else:  # one axis up, the other down: one pass per axis, each with its right filter
        out = _resize(work, rows, out_cols, _interpolation(cols, out_cols))
        out = _resize(out, out_rows, out_cols, _interpolation(rows, out_rows))
    out = out.reshape(out_rows, out_cols, channels)
    limits = value_range(source_dtype)
    if limits is not None and (up_rows or up_cols):  # only cubic can overshoot
        np.clip(out, limits[0], limits[1], out=out)
    return out


def _resize(image: np.ndarray, rows: int, cols: int, interp: int) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] > 512:  # OpenCV's channel limit: resize in groups
        parts = [_resize(np.ascontiguousarray(image[..., i : i + 512]), rows, cols, interp)
                 for i in range(0, image.shape[2], 512)]
        return np.concatenate([p.reshape(rows, cols, -1) for p in parts], axis=2)
    return cv2.resize(image, (cols, rows), interpolation=interp)


# --- windowed recalibration ------------------------------------------------------------------
# A big image is recalibrated band by band. cv2.resize cannot do that exactly: it maps a
# window's pixels relative to the window's own origin, and a band's origin falls between
# source pixels unless the scale is a simple ratio. So one axis (rows) is resampled with the
# weights OpenCV itself uses, computed at the band's true source positions; the other axis is
# whole in every band, so cv2.resize does it exactly as for the whole image.
def axis_weights(n_in: int, n_out: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights of every output position along one axis, as OpenCV's
    ``resize`` applies them to ``dtype`` images: area averaging when shrinking, cubic when
    enlarging.

    Returns ``(index, weight)``, both ``(n_out, taps)``; indices are clamped to the axis
    (OpenCV replicates the border), unused taps have weight 0.

    >>> index, weight = axis_weights(4, 2)  # halving: the mean of two pixels
    >>> index.tolist(), weight.tolist()
    ([[0, 1], [2, 3]], [[0.5, 0.5], [0.5, 0.5]])
    """
    if n_out == n_in:
        return np.arange(n_out)[:, np.newaxis], np.ones((n_out, 1), dtype)
    scale = n_in / n_out
    if n_out < n_in:
        index = _area_index(n_in, n_out, scale)
    else:
        fx = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32)
        index = np.clip(np.floor(fx).astype(np.intp)[:, np.newaxis] + np.arange(-1, 3), 0, n_in - 1)
    # The weights themselves are read from OpenCV rather than recomputed: it rounds positions
    # and coefficients its own way. Source row i is put in column i mod m of an indicator
    # image; the taps of one output row have distinct residues, so each column of the
    # resized indicator holds one tap's weight.
    m = index.shape[1] + 1
    indicator = np.zeros((n_in, m), dtype)
    indicator[np.arange(n_in), np.arange(n_in) % m] = 1
    interp = cv2.INTER_AREA if n_out < n_in else cv2.INTER_CUBIC
    probe = cv2.resize(indicator, (m, n_out), interpolation=interp)
    weight = np.take_along_axis(probe, index % m, axis=1)
    # a clamped border index appears in several taps: its weight belongs to the first only
    repeated = np.zeros(index.shape, bool)
    repeated[:, 1:] = index[:, 1:] == index[:, :-1]
    weight[repeated] = 0
    return index, weight


def _area_index(n_in: int, n_out: int, scale: float) -> np.ndarray:
    # The cells of OpenCV's computeResizeAreaTab: output pixel d averages [d·s, (d+1)·s).
    d = np.arange(n_out)
    first = np.floor(d * scale + 1e-3).astype(np.intp)
    last = np.minimum(np.ceil((d + 1) * scale - 1e-3).astype(np.intp), n_in) - 1
    taps = int((last - first).max()) + 1
    return np.minimum(first[:, np.newaxis] + np.arange(taps), last[:, np.newaxis])


def source_rows(weights: tuple[np.ndarray, np.ndarray], y0: int, y1: int) -> tuple[int, int]:
    """Source rows ``[s0, s1)`` that output rows ``[y0, y1)`` are made from."""
    index = weights[0][y0:y1]
    return int(index.min()), int(index.max()) + 1


def resample_band(
    rows: np.ndarray,
    first_row: int,
    weights: tuple[np.ndarray, np.ndarray],
    y0: int,
    y1: int,
    out_cols: int,
    source_dtype: np.dtype | None = None,
) -> np.ndarray:
    """Output rows ``[y0, y1)`` of a recalibration, from the source rows it needs.

    Parameters
    ----------
    rows : ndarray
        (rows, cols, channels) full-width source rows, starting at source row ``first_row``
        and covering :func:`source_rows` of ``[y0, y1)``.
    weights : (index, weight)
        :func:`axis_weights` of the rows axis (whole image).
    out_cols : int
        Columns of the whole recalibrated image.

    Returns
    -------
    ndarray
        (y1 - y0, out_cols, channels), as :func:`resample` of the whole image gives for those
        rows, within float rounding.
    """
    source_dtype = np.dtype(source_dtype or rows.dtype)
    work = np.ascontiguousarray(rows, dtype=working_dtype(source_dtype))
    channels, cols = work.shape[2], work.shape[1]
    index, weight = weights[0][y0:y1] - first_row, weights[1][y0:y1]
    if index.min() < 0 or index.max() >= work.shape[0]:
        raise ValueError("the source rows given do not cover the band")
    enlarge_cols = out_cols > cols

    def columns(array: np.ndarray) -> np.ndarray:
        if out_cols == cols:
            return array
        interp = cv2.INTER_CUBIC if enlarge_cols else cv2.INTER_AREA
        return _resize(array, array.shape[0], out_cols, interp).reshape(array.shape[0], out_cols, channels)

    def rows_pass(array: np.ndarray) -> np.ndarray:
        if index.shape[1] == 1 and weight[:, 0].min() == 1.0:  # rows unchanged
            return array[index[:, 0]]
        out = None
        tmp = np.empty((len(index),) + array.shape[1:], array.dtype)
        for k in range(index.shape[1]):
            column = weight[:, k]
            if not column.any():
                continue
            np.take(array, index[:, k], axis=0, out=tmp)
            tmp *= column.astype(array.dtype)[:, np.newaxis, np.newaxis]
            if out is None:
                out, tmp = tmp, np.empty_like(tmp)
            else:
                out += tmp
        return out

    # The cheaper order: shrink first, enlarge last (the passes commute up to float rounding).
    out = rows_pass(columns(work)) if not enlarge_cols else columns(rows_pass(work))
    limits = value_range(source_dtype)
    if limits is not None and (enlarge_cols or weights[0].shape[1] == 4):  # only cubic overshoots
        np.clip(out, limits[0], limits[1], out=out)
    return out
