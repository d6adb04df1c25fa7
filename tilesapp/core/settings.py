"""The one settings object shared by the window, the command line and settings files.

A :class:`Settings` is frozen and validated on construction: every broken rule is collected
into one :class:`~tilesapp.core.errors.SettingsError` whose ``errors`` name each field and its
rule, so a window can mark all of them at once. Edit with :func:`dataclasses.replace`; save
and load with :func:`save_settings` / :func:`load_settings` (the JSON that
``tilesapp cut --config`` reads).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tilesapp.core.calibration import UNITS, canonical_unit, to_um
from tilesapp.core.errors import SettingsError
from tilesapp.core.textfiles import read_text

NORMS = ("none", "local", "global")
DTYPES = ("float32", "uint8", "uint16")
FORMATS = ("tif", "png", "jpg")
PAD_MODES = ("zero", "reflect", "edge")
#: Which images a typed pixel size is given to.
PIXEL_SIZE_SCOPES = ("all", "uncalibrated")
#: What is cut of a Z stack: a projection, every plane as its own image, or one plane (a number).
Z_CHOICES = ("max", "mean", "each")
#: What is cut of a time series: every frame as its own image, or one frame (a number).
T_CHOICES = ("each",)
#: How colour channels are stretched: "auto" stretches RGB(A) jointly (stain colours keep their
#: balance) and fluorescence channels each on its own.
CHANNEL_STRETCHES = ("auto", "joint", "each")
#: Where tiles go: plain folders, or the layout a training framework reads as it is.
LAYOUTS = ("plain", "ultralytics", "nnunet", "cellpose", "stardist", "coco")
#: Layouts whose frameworks take whole images (they sample their own patches).
WHOLE_IMAGE_LAYOUTS = ("nnunet", "cellpose", "stardist")
#: What imported annotations are drawn as: the layout's choice, class ids, or one id per object.
ANNOTATION_MASKS = ("auto", "classes", "instances")

#: Value range of each integer output type.
DTYPE_RANGES = {"uint8": (0, 255), "uint16": (0, 65535)}
#: Bounds an output type gets when none are given.
DEFAULT_BOUNDS = {"float32": (0.0, 1.0), "uint8": (0.0, 255.0), "uint16": (0.0, 65535.0)}
#: Output types each format can store.
FORMAT_DTYPES = {"tif": DTYPES, "png": ("uint8", "uint16"), "jpg": ("uint8",)}
#: Fewer output levels than this between the bounds of an integer type is worth a warning.
FEW_LEVELS = 64
#: Pixel sizes (µm) outside this range are typing mistakes, not microscopes (0.01 nm – 10 cm).
PIXEL_SIZE_RANGE_UM = (1e-5, 1e5)
#: Smallest memory limit accepted: a band of a few tile rows must fit.
MIN_MEMORY_LIMIT = 64 << 20
_FLOAT32_MAX = 3.4028234663852886e38

#: Presets set the four normalization/output fields at once.
PRESETS: dict[str, dict[str, Any]] = {
    "unet": {"norm": "global", "bounds": (0.0, 1.0), "dtype": "float32", "format": "tif"},
    "yolo": {"norm": "global", "bounds": (0.0, 255.0), "dtype": "uint8", "format": "png"},
}

_FORMAT_ALIASES = {"tiff": "tif", "jpeg": "jpg"}
# Older names accepted in settings files.
_KEY_ALIASES = {"patch_size": "tile_size"}


@dataclass(frozen=True)
class Settings:
    """Everything that decides how images are turned into tiles.

    Attributes
    ----------
    tile_size, overlap : int
        Tile side ``P`` and overlap ``O`` in (recalibrated) pixels, ``0 <= O < P``.
    calibrate : bool
        Rescale images to ``target_pixel_size``; when False images keep their pixels.
    pixel_size : tuple of float or None
        A typed input pixel size ``(y, x)`` in ``unit``; None means "auto": each file's metadata.
    pixel_size_scope : {"all", "uncalibrated"}
        Whom ``pixel_size`` is given to: every image (it replaces their metadata), or only the
        images whose files carry no calibration.
    file_pixel_sizes : tuple of (name, y, x)
        Pixel sizes in µm typed for single images (their names as in the manifest); they win
        over the metadata and over ``pixel_size``.
    unit, target_unit : str
        Units of ``pixel_size`` and ``target_pixel_size`` (nm, um, mm, cm, dm, m).
    target_pixel_size : float
        Pixel size the tiles get, in ``target_unit``.
    norm : {"none", "local", "global"}
        Histogram stretching: none, per tile, or per image (per channel in each case).
    percentiles : (float, float)
        Low/high percentiles used instead of min/max (0 and 100 mean min and max).
    bounds : (float, float) or None
        Target bounds ``t_low < t_high`` of the normalized values; None: the output type's
        (0–1 for float32, 0–255 for uint8, 0–65535 for uint16), see :attr:`output_bounds`.
    dtype : {"float32", "uint8", "uint16"}
    format : {"tif", "png", "jpg"}
    pad_mode : {"zero", "reflect", "edge"}
        How an axis shorter than a tile is padded at its end.
    recursive : bool
        Also scan sub-folders of the input folder.
    min_foreground : float
        Drop tiles whose foreground share (mask > 0, boxes, or pixels above an automatic
        threshold) is below this (0 keeps every tile).
    keep_empty : float
        Share of the dropped tiles kept anyway, chosen at random (seeded).
    min_box_visibility : float
        A YOLO box enters a tile when at least this share of its area lies inside it.
    val_fraction : float
        Share of the sources (never of one source's tiles) put in ``val/``; 0: no split.
    seed : int
        Seed of the random choices (kept empty tiles, the split): same seed, same result.
    memory_limit : int or None
        Bytes of pixels a run may hold at once; None: :func:`tilesapp.core.memory.default_memory_limit`.
    workers : int or None
        Images (and bands) processed at once; None: one per core.
    scenes : tuple of int or None
        Scenes (series, positions) of each file to cut, 0-based; None: all of them.
    z : {"max", "mean", "each"}, int or None
        What a Z stack gives: a projection, every plane as its own image, or plane ``z``
        (0-based). None: a stack fails alone with a message asking for a choice.
    t : "each", int or None
        What a time series gives: every frame as its own image, or frame ``t`` (0-based).
    channels : tuple of int or str, or None
        Channels to keep, in this order: 0-based indices or names from the metadata; None: all.
    channel_stretch : {"auto", "joint", "each"}
        Normalize channels each on its own or jointly (one low/high over all channels);
        "auto": jointly for RGB(A) colour, each for fluorescence channels.
    layout : {"plain", "ultralytics", "nnunet", "cellpose", "stardist", "coco"}
        Where tiles go: folders of images/masks/labels, or the layout a framework reads as it
        is (see :mod:`tilesapp.core.sinks`).
    boxes_from_masks : bool
        Derive boxes (YOLO labels, COCO objects) from instance masks, one per object.
    whole_images : bool
        Write each image whole, recalibrated and normalized, instead of cutting it (nnunet,
        cellpose and stardist, whose frameworks sample their own patches).
    annotation_masks : {"auto", "classes", "instances"}
        What imported annotations are drawn as in masks: class ids, or one id per object;
        "auto": instances for cellpose, stardist and coco, classes otherwise.
    """

    tile_size: int = 512
    overlap: int = 128
    calibrate: bool = True
    pixel_size: tuple[float, float] | None = None
    pixel_size_scope: str = "all"
    file_pixel_sizes: tuple[tuple[str, float, float], ...] = ()
    unit: str = "um"
    target_pixel_size: float = 0.325
    target_unit: str = "um"
    norm: str = "global"
    percentiles: tuple[float, float] = (0.0, 100.0)
    bounds: tuple[float, float] | None = None
    dtype: str = "float32"
    format: str = "tif"
    pad_mode: str = "zero"
    recursive: bool = False
    min_foreground: float = 0.0
    keep_empty: float = 0.0
    min_box_visibility: float = 0.5
    val_fraction: float = 0.0
    seed: int = 0
    memory_limit: int | None = None
    workers: int | None = None
    scenes: tuple[int, ...] | None = None
    z: str | int | None = None
    t: str | int | None = None
    channels: tuple[int | str, ...] | None = None
    channel_stretch: str = "auto"
    layout: str = "plain"
    boxes_from_masks: bool = False
    whole_images: bool = False
    annotation_masks: str = "auto"

    def __post_init__(self) -> None:
        check = _Checker(self)
        check("tile_size", _integer, 1, 65536)
        check("overlap", _integer, 0, 65535)
        check("calibrate", _boolean)
        check("recursive", _boolean)
        check("pixel_size", _pixel_size)
        check("pixel_size_scope", _choice, PIXEL_SIZE_SCOPES)
        check("file_pixel_sizes", _file_pixel_sizes)
        check("unit", _unit)
        check("target_unit", _unit)
        check("target_pixel_size", _positive)
        check("norm", _choice, NORMS)
        check("dtype", _choice, DTYPES)
        check("format", _format)
        check("pad_mode", _choice, PAD_MODES)
        check("min_foreground", _share)
        check("keep_empty", _share)
        check("min_box_visibility", _share)
        check("val_fraction", _share)
        check("seed", _integer, 0, 2**63 - 1)
        check("percentiles", _pair)
        check("bounds", _bounds)
        check("memory_limit", _memory_limit)
        check("workers", _optional_integer, 1, 1024)
        check("scenes", _scenes)
        check("z", _plane_choice, Z_CHOICES)
        check("t", _plane_choice, T_CHOICES)
        check("channels", _channels)
        check("channel_stretch", _choice, CHANNEL_STRETCHES)
        if check.valid("tile_size", "overlap") and self.overlap >= self.tile_size:
            check.fail("overlap", f"{{name}} must be smaller than the tile size ({self.tile_size}); got {self.overlap}.")
        if check.valid("val_fraction") and self.val_fraction >= 1:
            check.fail("val_fraction", "{name} must be below 1: some sources must stay for training.")
        if check.valid("pixel_size", "unit") and self.pixel_size is not None:
            _check_size_range(check, "pixel_size", self.pixel_size, self.unit)
        if check.valid("target_pixel_size", "target_unit"):
            _check_size_range(check, "target_pixel_size", (self.target_pixel_size,) * 2, self.target_unit)
        if check.valid("dtype", "format", "norm", "percentiles", "bounds"):
            self._check_output_rules(check)
        check("layout", _choice, LAYOUTS)
        check("boxes_from_masks", _boolean)
        check("whole_images", _boolean)
        check("annotation_masks", _choice, ANNOTATION_MASKS)
        if check.valid("layout", "dtype", "format", "whole_images", "annotation_masks"):
            self._check_layout_rules(check)
        check.raise_errors()

    def _check_layout_rules(self, check: _Checker) -> None:
        """What each framework's layout can take (README "Training a model")."""
        if self.layout == "ultralytics" and self.dtype != "uint8":
            check.fail("dtype", f"ultralytics reads images as 8-bit (a {self.dtype} tile would be cut down silently); "
                                f"choose uint8 (the YOLO preset) for --layout ultralytics.")
        if self.layout == "nnunet" and self.format == "jpg":
            check.fail("format", "nnU-Net takes lossless files only; choose .png or .tif for --layout nnunet.")
        if self.whole_images and self.layout not in WHOLE_IMAGE_LAYOUTS:
            check.fail("whole_images", f"{{name}} is for layouts whose frameworks sample their own patches "
                                       f"({', '.join(WHOLE_IMAGE_LAYOUTS)}); --layout {self.layout} takes tiles.")
        fixed = {"cellpose": "instances", "stardist": "instances", "nnunet": "classes"}.get(self.layout)
        if fixed and self.annotation_masks not in ("auto", fixed):
            check.fail("annotation_masks", f"--layout {self.layout} takes {fixed} masks; "
                                           f"{{name}} {self.annotation_masks} does not fit it.")

    def _check_output_rules(self, check: _Checker) -> None:
        """The output rules that can be checked before any image is read: what a format stores,
        and bounds the output type can hold (README "What it does to every image")."""
        if self.dtype not in FORMAT_DTYPES[self.format]:
            allowed = " or ".join(FORMAT_DTYPES[self.format])
            check.fail("format", f".{self.format} files can only store {allowed}, not {self.dtype}; "
                                 f"choose .tif or another output type.")
        if self.norm == "none":
            return  # values are kept: bounds and percentiles play no part
        low, high = self.percentiles
        if not (0.0 <= low < high <= 100.0):
            check.fail("percentiles", f"{{name}} must satisfy 0 <= low < high <= 100; got {low:g} and {high:g}.")
        t_low, t_high = self.output_bounds
        if not t_low < t_high:
            check.fail("bounds", f"the lower bound must be smaller than the upper bound; got {t_low:g} and {t_high:g}.")
            return
        if self.dtype == "float32":
            if max(abs(t_low), abs(t_high)) > _FLOAT32_MAX:
                check.fail("bounds", f"float32 holds values up to ±3.4e38: bounds {t_low:g}–{t_high:g} do not fit; "
                                     f"choose smaller bounds.")
            return
        lo, hi = DTYPE_RANGES[self.dtype]
        if not (float(t_low).is_integer() and float(t_high).is_integer()):
            check.fail("bounds", f"{self.dtype} stores whole numbers: bounds {t_low:g}–{t_high:g} must be integers "
                                 f"(e.g. {lo}–{hi}), or choose float32.")
        elif t_low < lo or t_high > hi:
            check.fail("bounds", f"{self.dtype} holds {lo}–{hi}: bounds {t_low:g}–{t_high:g} are outside it; "
                                 f"change the bounds or choose {'uint16 or ' if self.dtype == 'uint8' else ''}float32.")
        elif t_high - t_low < 2:
            check.fail("bounds", f"{self.dtype} with bounds {t_low:g}–{t_high:g} gives tiles of only two values "
                                 f"(near-black); values between 0 and 1 need float32, or use bounds {lo}–{hi}.")

    # --- derived values ------------------------------------------------------------------
    @property
    def output_bounds(self) -> tuple[float, float]:
        """The bounds normalized values are stretched to: ``bounds``, or the output type's."""
        return self.bounds if self.bounds is not None else DEFAULT_BOUNDS[self.dtype]

    @property
    def warnings(self) -> list[tuple[str, str]]:
        """(field, message) of choices that are allowed but probably not meant."""
        out = []
        if self.norm != "none" and self.dtype in DTYPE_RANGES:
            t_low, t_high = self.output_bounds
            if t_high - t_low + 1 < FEW_LEVELS:
                out.append(("bounds", f"bounds {t_low:g}–{t_high:g} leave only {int(t_high - t_low + 1)} grey levels "
                                      f"in {self.dtype} tiles; widen them (e.g. 0–{DTYPE_RANGES[self.dtype][1]}) "
                                      f"unless that is meant."))
        return out

    @property
    def pixel_size_um(self) -> tuple[float, float] | None:
        """Typed input pixel size in µm as ``(y, x)``, or None for "auto"."""
        if self.pixel_size is None:
            return None
        return (to_um(self.pixel_size[0], self.unit), to_um(self.pixel_size[1], self.unit))

    @property
    def target_pixel_size_um(self) -> float:
        return to_um(self.target_pixel_size, self.target_unit)

    def pixel_size_for(self, name: str) -> tuple[float, float] | None:
        """The pixel size (µm) typed for image ``name`` alone, or None."""
        for file, y, x in self.file_pixel_sizes:
            if file == name:
                return (y, x)
        return None

    def with_file_pixel_size(self, name: str, size_um: tuple[float, float] | None) -> Settings:
        """A copy where image ``name`` has its own typed pixel size (None removes it)."""
        kept = tuple(entry for entry in self.file_pixel_sizes if entry[0] != name)
        if size_um is not None:
            kept += ((name, float(size_um[0]), float(size_um[1])),)
        return dataclasses.replace(self, file_pixel_sizes=kept)

    @property
    def preset(self) -> str | None:
        """Name of the preset these settings match, or None."""
        for name, values in PRESETS.items():
            if all((self.output_bounds if key == "bounds" else getattr(self, key)) == value
                   for key, value in values.items()):
                return name
        return None

    def with_preset(self, name: str) -> Settings:
        """A copy with the four fields of preset ``name`` ("unet" or "yolo")."""
        name = name.lower()
        if name not in PRESETS:
            raise SettingsError("preset", f"unknown preset {name!r}; use one of {', '.join(PRESETS)}.")
        return dataclasses.replace(self, **PRESETS[name])

    # --- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; ``pixel_size`` is "auto" or ``[y, x]``, ``bounds`` "auto" or a pair."""
        data = dataclasses.asdict(self)
        data["pixel_size"] = "auto" if self.pixel_size is None else list(self.pixel_size)
        data["percentiles"] = list(self.percentiles)
        data["bounds"] = "auto" if self.bounds is None else list(self.bounds)
        data["file_pixel_sizes"] = {name: [y, x] for name, y, x in self.file_pixel_sizes}
        data["scenes"] = "all" if self.scenes is None else list(self.scenes)
        data["channels"] = "all" if self.channels is None else list(self.channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Settings | None = None) -> tuple[Settings, list[str]]:
        """Build settings from ``data`` over ``base`` (defaults when None).

        Returns the settings and the keys of ``data`` that are not settings (reported by the
        caller, never fatal).
        """
        if not isinstance(data, dict):
            raise SettingsError("config", "a settings file must hold a JSON object ({...}).")
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        unknown: list[str] = []
        for key, value in data.items():
            key = _KEY_ALIASES.get(key, key)
            if key in names:
                values[key] = value
            elif key == "preset":
                continue  # informative only: the four fields it stands for are saved too
            else:
                unknown.append(key)
        return dataclasses.replace(base or cls(), **values), unknown


def save_settings(settings: Settings, path: str | Path) -> None:
    """Write ``settings`` as JSON to ``path``."""
    data = {"tilesapp_settings": 1, **settings.to_dict()}
    Path(path).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


#: A settings file is a few hundred bytes; anything much larger is not one.
MAX_SETTINGS_BYTES = 1 << 20


def load_settings(path: str | Path, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Read a settings JSON file; returns the settings and the unknown keys it held."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SETTINGS_BYTES:
            raise SettingsError("config", f"{path} is {path.stat().st_size >> 20} MB, too large to be a settings file; "
                                          f"check the path.")
        data = json.loads(read_text(path))
    except FileNotFoundError:
        raise SettingsError("config", f"settings file {path} does not exist; check the path.") from None
    except IsADirectoryError:
        raise SettingsError("config", f"{path} is a folder, not a settings file; check the path.") from None
    except UnicodeDecodeError:
        raise SettingsError("config", f"{path} is not a text file, so not a settings file; choose the .json file the "
                                      f"window saved (File > Save settings) or one written by hand.") from None
    except OSError as exc:
        raise SettingsError("config", f"cannot read settings file {path}: {exc.strerror or exc}.") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(
            "config", f"settings file {path} is not valid JSON (line {exc.lineno}: {exc.msg}); fix or re-save it."
        ) from None
    except RecursionError:
        raise SettingsError("config", f"settings file {path} is nested too deeply to be a settings file; "
                                      f"fix or re-save it.") from None
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "tilesapp_settings"}
    try:
        return Settings.from_dict(data, base)
    except SettingsError as exc:
        # named as in the file (not as a command-line option or a window's field), and where
        keys = {canonical: alias for alias, canonical in _KEY_ALIASES.items() if isinstance(data, dict) and alias in data}
        raise SettingsError.collect([SettingsError(e.field, (f"{path.name}: " if n == 0 else "") + e.describe(keys))
                                     for n, e in enumerate(exc.errors)]) from None


_SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_memory_size(text: str | int | None) -> int | None:
    """Bytes from '2GB', '512M', '1.5GiB' or '800' (MB); None for 'auto' or None.

    >>> parse_memory_size("2GB"), parse_memory_size("512m"), parse_memory_size("auto")
    (2147483648, 536870912, None)
    """
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    clean = str(text).strip().upper().replace(" ", "")
    if clean == "AUTO":
        return None
    match = re.fullmatch(r"(\d+(?:\.\d*)?)(?:([KMGT])I?B?)?", clean)
    if match is None or float(match.group(1)) <= 0:
        raise SettingsError("memory_limit", f"{{name}} must be a size such as 2GB or 512MB, or 'auto'; got {text!r}.")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2) or "M"])


# --- validators: each returns the cleaned value or raises SettingsError naming the field -----
class _Checker:
    """Runs the validators of a frozen Settings, storing cleaned values and collecting errors."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.errors: list[SettingsError] = []
        self.failed: set[str] = set()

    def __call__(self, name: str, validator, *args) -> None:
        try:
            value = validator(name, getattr(self.settings, name), *args)
        except SettingsError as exc:
            self.errors.append(exc)
            self.failed.add(name)
        else:
            object.__setattr__(self.settings, name, value)

    def valid(self, *names: str) -> bool:
        return not self.failed.intersection(names)

    def fail(self, name: str, message: str) -> None:
        self.errors.append(SettingsError(name, message))
        self.failed.add(name)

    def raise_errors(self) -> None:
        if self.errors:
            raise SettingsError.collect(self.errors)


def _integer(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (isinstance(value, float) and not value.is_integer()):
        raise SettingsError(name, f"{{name}} must be a whole number; got {value!r}.")
    value = int(value)
    if not lo <= value <= hi:
        raise SettingsError(name, f"{{name}} must be between {lo} and {hi}; got {value}.")
    return value


def _optional_integer(name: str, value: Any, lo: int, hi: int) -> int | None:
    return None if value is None or value == "auto" else _integer(name, value, lo, hi)


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(name, f"{{name}} must be true or false; got {value!r}.")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise SettingsError(name, f"{{name}} must be a number; got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise SettingsError(name, f"{{name}} must be a number; got {value!r}.") from None
    if not math.isfinite(number):
        raise SettingsError(name, f"{{name}} must be a finite number; got {value!r}.")
    return number


def _positive(name: str, value: Any) -> float:
    number = _number(name, value)
    if number <= 0:
        raise SettingsError(name, f"{{name}} must be greater than 0; got {number:g}.")
    return number


def _share(name: str, value: Any) -> float:
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise SettingsError(name, f"{{name}} is a share between 0 and 1; got {number:g}.")
    return number


def _pixel_size(name: str, value: Any) -> tuple[float, float] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SettingsError(name, f"{{name}} takes one value or two (y, x); got {list(value)}.")
        return (_positive(name, value[0]), _positive(name, value[1]))
    size = _positive(name, value)
    return (size, size)


def _check_size_range(check: _Checker, name: str, size: tuple[float, float], unit: str) -> None:
    lo, hi = PIXEL_SIZE_RANGE_UM
    for value in size:
        um = to_um(value, unit)
        if not lo <= um <= hi:
            check.fail(name, f"{{name}} {value:g} {unit} is not a microscope's pixel size "
                             f"(between 0.01 nm and 10 cm expected); check the value and its unit.")
            return


def _file_pixel_sizes(name: str, value: Any) -> tuple[tuple[str, float, float], ...]:
    """``{file: size or [y, x]}`` or ``((file, y, x), ...)`` → sorted ``((file, y, x), ...)`` in µm."""
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    out = {}
    try:
        for entry in items:
            file, *size = entry
            size = size[0] if len(size) == 1 else size
            y, x = _pixel_size(name, size) or (None, None)
            if y is None or not isinstance(file, str) or not file:
                raise ValueError
            lo, hi = PIXEL_SIZE_RANGE_UM
            if not (lo <= y <= hi and lo <= x <= hi):
                raise SettingsError(name, f"the pixel size typed for {file} ({y:g} × {x:g} µm) is not a microscope's "
                                          f"(between 0.01 nm and 10 cm expected); check it.")
            out[file] = (file, y, x)
    except SettingsError:
        raise
    except (TypeError, ValueError):
        raise SettingsError(name, "{name} must map image names to pixel sizes in µm, e.g. {\"a.tif\": [0.5, 0.5]}.") from None
    return tuple(out[k] for k in sorted(out))


def _unit(name: str, value: Any) -> str:
    canon = canonical_unit(str(value))
    if canon not in UNITS:  # ångström is read from files, not offered to type
        raise SettingsError(name, f"{{name}} {value!r} is not a length unit; use one of {', '.join(UNITS)} (or µm).")
    return canon


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise SettingsError(name, f"{{name}} must be one of {', '.join(choices)}; got {value!r}.")
    return text


def _format(name: str, value: Any) -> str:
    fmt = str(value).strip().lower().lstrip(".")
    return _choice(name, _FORMAT_ALIASES.get(fmt, fmt), FORMATS)


def _pair(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SettingsError(name, f"{{name}} takes two numbers (low, high); got {value!r}.")
    return (_number(name, value[0]), _number(name, value[1]))


def _bounds(name: str, value: Any) -> tuple[float, float] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    return _pair(name, value)


def _index_list(name: str, value: Any, names_allowed: bool) -> tuple | None:
    """``all``/None, one value, "0,2" or a list → a tuple of 0-based indices (or names)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    items = [p.strip() for p in value.split(",")] if isinstance(value, str) else \
        list(value) if isinstance(value, (list, tuple)) else [value]
    out: list[int | str] = []
    for item in items:
        if isinstance(item, str) and item.strip().lstrip("-").isdigit():
            item = int(item)
        if isinstance(item, bool) or isinstance(item, float) and not item.is_integer():
            raise SettingsError(name, f"{{name}} takes 0-based numbers{' or names' if names_allowed else ''}; got {item!r}.")
        if isinstance(item, (int, float)):
            if item < 0:
                raise SettingsError(name, f"{{name}} counts from 0; got {int(item)}.")
            out.append(int(item))
        elif isinstance(item, str) and item and names_allowed:
            out.append(item)
        else:
            raise SettingsError(name, f"{{name}} takes 0-based numbers{' or names' if names_allowed else ''}; got {item!r}.")
    if not out:
        raise SettingsError(name, "{name} lists nothing; give numbers such as 0,2 or 'all'.")
    if len(set(map(str, out))) != len(out):
        raise SettingsError(name, f"{{name}} lists a value twice: {', '.join(map(str, out))}.")
    return tuple(out)


def _scenes(name: str, value: Any) -> tuple[int, ...] | None:
    return _index_list(name, value, names_allowed=False)


def _channels(name: str, value: Any) -> tuple[int | str, ...] | None:
    return _index_list(name, value, names_allowed=True)


def _plane_choice(name: str, value: Any, choices: tuple[str, ...]) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in choices:
            return text
        if text.isdigit():
            return int(text)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer() and value >= 0:
        return int(value)
    raise SettingsError(name, f"{{name}} must be {', '.join(choices)} or a plane number from 0; got {value!r}.")


def _memory_limit(name: str, value: Any) -> int | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str, type(None))):
        raise SettingsError(name, f"{{name}} must be a size such as 2GB or 512MB, or 'auto'; got {value!r}.")
    limit = parse_memory_size(value)
    if limit is not None and limit < MIN_MEMORY_LIMIT:
        raise SettingsError(name, f"the memory limit must be at least {MIN_MEMORY_LIMIT >> 20} MB "
                                  f"(got {limit / 2**20:.0f} MB): a band of a few tile rows must fit; raise {{name}}.")
    return limit


def cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


__all__ = [
    "ANNOTATION_MASKS",
    "CHANNEL_STRETCHES",
    "DEFAULT_BOUNDS",
    "DTYPES",
    "DTYPE_RANGES",
    "FORMATS",
    "FORMAT_DTYPES",
    "LAYOUTS",
    "MIN_MEMORY_LIMIT",
    "NORMS",
    "PAD_MODES",
    "PIXEL_SIZE_SCOPES",
    "PRESETS",
    "Settings",
    "T_CHOICES",
    "WHOLE_IMAGE_LAYOUTS",
    "Z_CHOICES",
    "load_settings",
    "parse_memory_size",
    "save_settings",
]
