"""Histogram stretching per channel, casting to the output type, and the normalization modes.

``out = t_low + (v - low) / (high - low) * (t_high - t_low)``, clipped to ``[t_low, t_high]``;
a constant channel (``high == low``) maps to ``t_low``, never NaN or inf. Non-finite values
never enter ``low``/``high``: NaN maps to ``t_low``, +Inf to ``t_high``, -Inf to ``t_low``.

A mode (:data:`NORMALIZATIONS`) is a small object: whether it needs the image's statistics,
how it applies to a band of the image and to one tile, and what the manifest records.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.settings import DTYPE_RANGES, NORMS, Settings


def channel_range(image: np.ndarray, percentiles: tuple[float, float] = (0.0, 100.0)) -> tuple[np.ndarray, np.ndarray]:
    """Low and high value of each channel of a (rows, cols, channels) image.

    Min/max for percentiles (0, 100), the given percentiles otherwise; NaN pixels are ignored.

    >>> img = np.array([[[0, 5], [10, 5]]], dtype=float)
    >>> channel_range(img)
    (array([0., 5.]), array([10.,  5.]))
    """
    low_p, high_p = percentiles
    flat = image.reshape(-1, image.shape[-1])
    if flat.dtype.kind in "iub" and (low_p, high_p) == (0.0, 100.0) and flat.size:
        # integers: no NaN or Inf to look for (a folder of small images pays this per image)
        return flat.min(axis=0).astype(np.float64), flat.max(axis=0).astype(np.float64)
    if flat.dtype.kind == "f" and flat.size and not np.isfinite(flat.min() + flat.max()):
        flat = np.where(np.isfinite(flat), flat, np.nan)  # ±Inf never sets a bound
    # NaN propagates through min/max/percentile: the NaN-aware (slower) versions are needed
    # only when a result says so.
    if (low_p, high_p) == (0.0, 100.0):
        low, high = flat.min(axis=0), flat.max(axis=0)
        if np.isnan(low).any() or np.isnan(high).any():
            low, high = np.nanmin(flat, axis=0), np.nanmax(flat, axis=0)
    else:
        low, high = np.percentile(flat, [low_p, high_p], axis=0)
        if np.isnan(low).any() or np.isnan(high).any():
            low, high = np.nanpercentile(flat, [low_p, high_p], axis=0)
    low = np.nan_to_num(np.asarray(low, dtype=np.float64), nan=0.0)
    high = np.nan_to_num(np.asarray(high, dtype=np.float64), nan=0.0)
    return low, high


def stretch(
    image: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    bounds: tuple[float, float],
    *,
    in_place: bool = False,
    may_have_nan: bool = True,
) -> np.ndarray:
    """Map ``[low, high]`` of each channel onto ``bounds``; float32 result, clipped.

    ``in_place`` reuses a float32 ``image`` as the result; ``may_have_nan=False`` (integer
    sources) skips the pass that turns NaN pixels into ``t_low``.

    >>> stretch(np.array([[[0.], [5.], [10.]]]), np.array([0.]), np.array([10.]), (0, 1))[..., 0]
    array([[0. , 0.5, 1. ]], dtype=float32)
    """
    t_low, t_high = float(bounds[0]), float(bounds[1])
    low = np.asarray(low, dtype=np.float64)
    span = np.asarray(high, dtype=np.float64) - low
    # Division (not multiplication by 1/span) so that v == high gives exactly 1, and the
    # upper bound is reached exactly; an infinite span sends a constant channel to t_low.
    span = np.where(span > 0, span, np.inf)
    if image.dtype.itemsize > 4:
        # float64 values are shifted and scaled as they are, then stored as float32: cast first,
        # 1e300 would be infinite and 1000.0001–1000.0002 two grey levels
        out = ((image - low) / span).astype(np.float32)
    else:
        # float32: exact enough for every output type, half the memory traffic of float64
        out = image if (in_place and image.dtype == np.float32) else image.astype(np.float32)
        out -= low.astype(np.float32)
        out /= span.astype(np.float32)
    if t_low == 0.0:
        out *= np.float32(t_high)
    else:
        out *= np.float32(t_high - t_low)
        out += np.float32(t_low)
    np.clip(out, t_low, t_high, out=out)
    if may_have_nan:
        np.nan_to_num(out, copy=False, nan=t_low)
    return out


#: Bytes of float32 stretched at a time by :func:`stretch_cast`: a block of rows small enough to
#: stay in a core's cache through the stretch's passes, big enough that two threads do not spend
#: their time handing the GIL to each other (4096² uint16 to uint8, two images on two threads:
#: 52 ms whole, 37 ms in 1 MB blocks, 81 ms in 128 KB blocks).
BLOCK_BYTES = 1 << 20


def stretch_cast(
    image: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    bounds: tuple[float, float],
    dtype: str,
    *,
    in_place: bool = False,
    may_have_nan: bool = True,
) -> np.ndarray:
    """``cast(stretch(image, ...), dtype, in_range=True)``, a block of rows at a time.

    The same operations on every value, so the same bytes; but the stretch's passes run in the
    processor's cache instead of memory, and an integer result never needs a float32 copy of the
    whole image. ``in_place``: a float32 ``image`` is the caller's scratch (and the result, for
    float32).

    >>> image = np.array([[[0], [5], [10]]], np.uint16)
    >>> stretch_cast(image, np.array([0.]), np.array([10.]), (0, 255), "uint8")[..., 0]
    array([[  0, 128, 255]], dtype=uint8)
    """
    rows = max(1, BLOCK_BYTES // max(1, image[:1].size * 4))
    if len(image) <= rows:  # one block (a tile, a small image): two buffers fewer the direct way
        return cast(stretch(image, low, high, bounds, in_place=in_place, may_have_nan=may_have_nan), dtype,
                    in_range=True)
    target = np.dtype(dtype)
    scratch_given = in_place and image.dtype == np.float32
    into_out = target == np.float32  # the float32 values are the result: stretched where they lie
    out = image if scratch_given and into_out else np.empty(image.shape, target)
    scratch = None if scratch_given or into_out else np.empty((rows,) + image.shape[1:], np.float32)
    for y0 in range(0, len(image), rows):
        block = image[y0 : y0 + rows]
        if scratch_given:
            values = block
            stretch(values, low, high, bounds, in_place=True, may_have_nan=may_have_nan)
        elif block.dtype.itemsize > 4:  # float64: stretched from its own values (see stretch)
            values = stretch(block, low, high, bounds, may_have_nan=may_have_nan)
            if into_out:
                out[y0 : y0 + rows] = values
        else:
            values = out[y0 : y0 + rows] if into_out else scratch[: len(block)]
            np.copyto(values, block, casting="unsafe")  # as astype(float32)
            stretch(values, low, high, bounds, in_place=True, may_have_nan=may_have_nan)
        if not into_out:
            if target.kind in "iu":
                np.rint(values, out=values)
            np.copyto(out[y0 : y0 + rows], values, casting="unsafe")  # as astype(target)
    return out


def check_fits(image: np.ndarray, dtype: str, name: str) -> None:
    """Raise ImageError when ``image`` holds values that ``dtype`` cannot store (norm "none")."""
    if image.size == 0:
        return
    if dtype in DTYPE_RANGES:
        lo, hi = DTYPE_RANGES[dtype]
    else:
        lo, hi = float(np.finfo(np.float32).min), float(np.finfo(np.float32).max)
    vmin, vmax = float(np.nanmin(image)), float(np.nanmax(image))
    if vmin < lo or vmax > hi:
        raise ImageError(
            f"{name}: values range from {vmin:g} to {vmax:g}, which {dtype} ({lo:g}–{hi:g}) cannot hold "
            f"without normalization; choose a normalization or a wider output type."
        )


def cast(image: np.ndarray, dtype: str, *, in_range: bool = False) -> np.ndarray:
    """Convert to the output type, rounding to the nearest integer for integer types.

    ``in_range``: the values are known to lie within the type's range (stretched to its bounds,
    or checked by :func:`check_fits`), and ``image`` is the caller's scratch: it is rounded in
    place and not clipped — the same bytes, one pass and one buffer less.
    """
    target = np.dtype(dtype)
    if image.dtype == target:
        return image
    if target.kind in "iu" and image.dtype.kind == "f":
        if in_range:
            return np.rint(image, out=image).astype(target)
        lo, hi = DTYPE_RANGES[dtype]
        return np.clip(np.rint(image), lo, hi).astype(target)
    return image.astype(target)


# --- modes ---------------------------------------------------------------------------------------
def joint_range(image: np.ndarray, percentiles: tuple[float, float] = (0.0, 100.0)) -> tuple[np.ndarray, np.ndarray]:
    """:func:`channel_range` over all channels at once, repeated for each channel (a joint stretch
    keeps the balance of colours)."""
    low, high = channel_range(image.reshape(image.shape[0], -1, 1), percentiles)
    channels = image.shape[-1]
    return np.repeat(low, channels), np.repeat(high, channels)


def joint_stretch(settings: Settings, info) -> bool:
    """Whether an image's channels are stretched jointly: RGB(A) colour under "auto"."""
    if settings.channel_stretch != "auto":
        return settings.channel_stretch == "joint"
    return info.axes == "YXS"


class NoNormalization:
    """"none": values are kept; an image whose values the output type cannot hold fails."""

    name = "none"
    needs_stats = False

    def __init__(self, settings: Settings, low: np.ndarray | None = None, high: np.ndarray | None = None,
                 joint: bool = False):
        self.settings, self.low, self.high, self.joint = settings, low, high, joint

    def with_stats(self, low: np.ndarray, high: np.ndarray):
        """The mode with the image's statistics (per channel, or already joint)."""
        return type(self)(self.settings, np.asarray(low, np.float64), np.asarray(high, np.float64), self.joint)

    def apply_band(self, values: np.ndarray, *, may_have_nan: bool, name: str) -> np.ndarray:
        """Values of a band of the recalibrated image as written (``values`` may be reused)."""
        check_fits(values, self.settings.dtype, name)
        return cast(values, self.settings.dtype, in_range=values.dtype.kind == "f")

    def apply_tile(self, piece: np.ndarray, *, may_have_nan: bool) -> tuple[np.ndarray, dict[str, Any]]:
        """A tile of values given by :meth:`apply_band`, as written, and what its record adds."""
        return piece, {}

    def record(self) -> dict[str, Any]:
        return {"mode": self.name}


class GlobalNormalization(NoNormalization):
    """"global": one low/high per channel over the whole (recalibrated) image."""

    name = "global"
    needs_stats = True

    def apply_band(self, values: np.ndarray, *, may_have_nan: bool, name: str) -> np.ndarray:
        s = self.settings
        # in place: a band is its thread's own copy (freshly read or resampled)
        return stretch_cast(values, self.low, self.high, s.output_bounds, s.dtype, in_place=True,
                            may_have_nan=may_have_nan)

    def record(self) -> dict[str, Any]:
        record = {"mode": self.name, "low": self.low.tolist(), "high": self.high.tolist()}
        return record | ({"joint": True} if self.joint else {})


class LocalNormalization(NoNormalization):
    """"local": each tile stretched by its own low/high per channel."""

    name = "local"

    def apply_band(self, values: np.ndarray, *, may_have_nan: bool, name: str) -> np.ndarray:
        return values

    def apply_tile(self, piece: np.ndarray, *, may_have_nan: bool) -> tuple[np.ndarray, dict[str, Any]]:
        s = self.settings
        low, high = (joint_range if self.joint else channel_range)(piece, s.percentiles)
        out = stretch_cast(piece, low, high, s.output_bounds, s.dtype, may_have_nan=may_have_nan)
        return out, {"low": low.tolist(), "high": high.tolist()}


#: Normalization modes by name (the settings' ``norm``).
NORMALIZATIONS = {mode.name: mode for mode in (NoNormalization, LocalNormalization, GlobalNormalization)}
assert set(NORMALIZATIONS) == set(NORMS)


def normalization(settings: Settings, joint: bool = False) -> NoNormalization:
    """The normalization mode of ``settings``, before any statistics (``joint``: one low/high
    over all channels)."""
    return NORMALIZATIONS[settings.norm](settings, joint=joint)
