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
    "scenes": "Scenes",
    "z": "Z stacks",
    "t": "Time series",
    "channels": "Channels",
    "channel_stretch": "Colour stretch",
    "layout": "Layout",
    "annotations": "Annotations",
    "boxes_from_masks": "Boxes from masks",
    "whole_images": "Whole images",
    "annotation_masks": "Masks drawn as",
    "masks": "Masks folder",
    "labels": "Labels folder",
    "combine": "Combine",
    "blend": "Window",
    "iou": "IoU",
    "box_fusion": "Duplicates",
    "model": "Model",
    "model_output": "Model output",
    "restore_scale": "Restore the pixel size",
    "min_confidence": "Min. confidence",
    "batch_size": "Batch size",
    "input_scale": "Input scale",
    "device": "Device",
}

#: How the sources table names a projection of a stack.
PLANE_CHOICES = {"max": "max", "mean": "mean"}

#: How the window names the layouts.
LAYOUT_LABELS = {"plain": "plain folders", "ultralytics": "ultralytics (YOLO)", "nnunet": "nnU-Net v2",
                 "cellpose": "Cellpose", "stardist": "StarDist", "coco": "COCO"}
_LAYOUT_NAMES = {"plain": "plain", "ultralytics": "ultralytics", "nnunet": "nnU-Net", "cellpose": "Cellpose",
                 "stardist": "StarDist", "coco": "COCO"}
#: Command-line flags the engine's sentences may name, as the window names them.
_FLAGS = (
    (r"--layout (\w+)", lambda m: f"the {_LAYOUT_NAMES.get(m.group(1), m.group(1))} layout"),
    (r"--annotations(?: PATH)?", lambda m: "Annotations (Training set)"),
    (r"--masks(?: DIR)?", lambda m: "a Masks folder"),
    (r"--labels(?: DIR)?", lambda m: "a Labels folder"),
    (r"--boxes-from-masks", lambda m: "Boxes from masks"),
    (r"--whole-images", lambda m: "Whole images"),
    (r"--annotation-masks", lambda m: "Masks drawn as"),
    (r"--channels", lambda m: "Channels (Normalization)"),
    (r"--combine (\w+)", lambda m: f"Combine: {m.group(1)}"),
    (r"--z\b", lambda m: "Z stacks (Media panel)"),
    (r"--t\b", lambda m: "Time series (Media panel)"),
)

#: What the window says to do about an image without a pixel size.
GIVE_PIXEL_SIZE = (
    "type its pixel size in the Pixel size column of the sources table, or one for all images "
    "without calibration in Calibration (or untick Use calibration)"
)


def window_words(text: str) -> str:
    """The engine's sentence with any command-line flag named as the window names it.

    >>> window_words("nnU-Net takes lossless files only; choose .png or .tif for --layout nnunet.")
    'nnU-Net takes lossless files only; choose .png or .tif for the nnU-Net layout.'
    """
    import re

    for pattern, word in _FLAGS:
        text = re.sub(pattern, word, text)
    return text[:1].upper() + text[1:] if text.startswith("the ") else text


def capitalized(text: str) -> str:
    """A sentence with its first letter upper case, unless its first word is a name written
    with capitals inside (nnU-Net).

    >>> capitalized("tile size must be…"), capitalized("nnU-Net takes lossless files")
    ('Tile size must be…', 'nnU-Net takes lossless files')
    """
    first = text.split(" ", 1)[0]
    return text if any(c.isupper() for c in first[1:]) else text[:1].upper() + text[1:]


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "tile")`` → ``1 tile``; ``plural(3, "tile")`` → ``3 tiles``; ``many``: the
    plural when it is not the word and an s (``plural(2, "box", "boxes")``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


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
