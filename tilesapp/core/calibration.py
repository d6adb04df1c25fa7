"""Physical units, pixel sizes and the scale factors of recalibration.

Pixel sizes are handled internally in micrometres, as ``(y, x)`` pairs so that anisotropic
pixels keep one size per axis.
"""

from __future__ import annotations

import math

#: Micrometres per unit, for every spelling a user or a file may give.
_UM_PER_UNIT = {
    "nm": 1e-3,
    "um": 1.0,
    "m": 1e6,
    "mm": 1e3,
    "cm": 1e4,
    "dm": 1e5,
    "angstrom": 1e-4,  # in files only (electron microscopy's OME-TIFFs), not offered to type
}
_ALIASES = {
    "µm": "um",  # micro sign U+00B5
    "μm": "um",  # Greek mu U+03BC
    "\\u00b5m": "um",  # ImageJ writes the micro sign escaped
    "micron": "um",
    "microns": "um",
    "micrometer": "um",
    "micrometre": "um",
    "micrometers": "um",
    "micrometres": "um",
    "nanometer": "nm",
    "nanometre": "nm",
    "nanometers": "nm",
    "millimeter": "mm",
    "millimetre": "mm",
    "centimeter": "cm",
    "centimetre": "cm",
    "meter": "m",
    "metre": "m",
    "Å": "angstrom",  # U+00C5, as OME writes it
    "Å": "angstrom",  # the angstrom sign U+212B
    "å": "angstrom",
    "ångström": "angstrom",
    "angstroms": "angstrom",
}

#: Units offered to users, canonical spelling first.
UNITS = ("nm", "um", "mm", "cm", "dm", "m")
#: How units are displayed.
UNIT_LABELS = {"nm": "nm", "um": "µm", "mm": "mm", "cm": "cm", "dm": "dm", "m": "m"}


def canonical_unit(unit: str) -> str | None:
    """Return the canonical spelling of ``unit`` ("um" for "µm", "micron", ...) or None.

    >>> canonical_unit("µm"), canonical_unit("Micron"), canonical_unit("pixel")
    ('um', 'um', None)
    """
    key = unit.strip()
    if key in _ALIASES:  # case matters for the escaped ImageJ form only
        return _ALIASES[key]
    key = key.lower()
    key = _ALIASES.get(key, key)
    return key if key in _UM_PER_UNIT else None


def to_um(value: float, unit: str) -> float:
    """Convert a length in ``unit`` to micrometres.

    >>> to_um(650, "nm")
    0.65
    """
    canon = canonical_unit(unit)
    if canon is None:
        raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")
    return value * _UM_PER_UNIT[canon]


def scale_factors(input_um: tuple[float, float], target_um: float) -> tuple[float, float]:
    """Scale factor per axis, ``f = input / target``, as ``(fy, fx)``.

    >>> scale_factors((0.65, 0.65), 0.325)
    (2.0, 2.0)
    """
    return (input_um[0] / target_um, input_um[1] / target_um)


def scaled_length(length: int, factor: float) -> int:
    """New length of an axis, ``round(f × length)`` (halves up), at least 1 pixel."""
    return max(1, math.floor(length * factor + 0.5))


def scaled_shape(shape_yx: tuple[int, int], factors: tuple[float, float]) -> tuple[int, int]:
    """New ``(rows, cols)`` of an image scaled by ``(fy, fx)``.

    >>> scaled_shape((1000, 300), (2.0, 0.5))
    (2000, 150)
    """
    return (scaled_length(shape_yx[0], factors[0]), scaled_length(shape_yx[1], factors[1]))


def format_pixel_size(size_um: tuple[float, float] | None) -> str:
    """Human-readable pixel size, e.g. ``0.325 µm`` or ``0.5 × 0.6 µm`` (y × x)."""
    if size_um is None:
        return "not calibrated"
    y, x = size_um
    if math.isclose(y, x, rel_tol=1e-9):
        return f"{x:.6g} µm"
    return f"{y:.6g} × {x:.6g} µm (y × x)"
