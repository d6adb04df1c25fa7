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
