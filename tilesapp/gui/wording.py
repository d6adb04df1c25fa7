"""The window's words: how settings are named, what to do about an image, counts. No Qt here."""

from __future__ import annotations

#: How the window names each setting in a message (the engine's ``{name}``).
FIELD_LABELS = {
    "tile_size": "Tile size",
    "overlap": "Overlap",
    "pad_mode": "Padding",
    "calibrate": "Use calibration",
    "pixel_size": "Pixel size",
    "pixel_size_scope": "Apply to all images",
    "file_pixel_sizes": "Pixel size typed for an image",
    "unit": "Unit",
    "target_pixel_size": "Target pixel size",
    "target_unit": "Target unit",
    "norm": "Stretch",
    "percentiles": "Percentiles",
    "bounds": "Bounds",
    "dtype": "Type",
    "format": "Format",
    "recursive": "Include sub-folders",
    "min_foreground": "Min. foreground",
    "keep_empty": "Keep empty",
    "min_box_visibility": "Box visibility",
    "val_fraction": "Validation share",
    "seed": "Seed",
    "memory_limit": "Memory limit",
    "workers": "Workers",
}

#: What the window says to do about an image without a pixel size.
GIVE_PIXEL_SIZE = (
    "type its pixel size in the Pixel size column of the sources table, or one for all images "
    "without calibration in Calibration (or untick Use calibration)"
)


def plural(n: int, word: str) -> str:
    """``plural(1, "tile")`` → ``1 tile``; ``plural(3, "tile")`` → ``3 tiles``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def about_image(name: str, reason: str) -> str:
    """``name: reason`` without saying the name twice (the engine's reasons often start with it).

    >>> about_image("04.tif", "04.tif: cannot be read."), about_image("a.tif", "too small.")
    ('04.tif: cannot be read.', 'a.tif: too small.')
    >>> about_image("04.tif", "04.tif carries no pixel size.")
    '04.tif carries no pixel size.'
    """
    return reason if reason.startswith(name) else f"{name}: {reason}"


def without_name(name: str, reason: str) -> str:
    """The reason alone, for a place that already shows the name (a table row).

    >>> without_name("04.tif", "04.tif: cannot be read."), without_name("04.tif", "04.tif carries no pixel size.")
    ('cannot be read.', 'carries no pixel size.')
    """
    if reason.startswith(name):
        reason = reason[len(name):].lstrip(":").strip()
    return reason
