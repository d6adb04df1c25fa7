"""The one settings object shared by the window, the command line and settings files.

A :class:`Settings` is frozen and validated on construction: an invalid value raises
:class:`~tilesapp.core.errors.SettingsError` whose ``field`` names the setting and whose message
says the rule. Edit with :func:`dataclasses.replace`; save and load with :func:`save_settings` /
:func:`load_settings` (the JSON that ``tilesapp cut --config`` reads).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tilesapp.core.calibration import UNITS, canonical_unit, to_um
from tilesapp.core.errors import SettingsError

NORMS = ("none", "local", "global")
DTYPES = ("float32", "uint8", "uint16")
FORMATS = ("tif", "png", "jpg")
PAD_MODES = ("zero", "reflect", "edge")

#: Value range of each integer output type.
DTYPE_RANGES = {"uint8": (0, 255), "uint16": (0, 65535)}
#: Output types each format can store.
FORMAT_DTYPES = {"tif": DTYPES, "png": ("uint8", "uint16"), "jpg": ("uint8",)}

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
        Input pixel size ``(y, x)`` in ``unit``; None means "auto": each file's metadata.
    unit, target_unit : str
        Units of ``pixel_size`` and ``target_pixel_size`` (nm, um, mm, cm, dm, m).
    target_pixel_size : float
        Pixel size the tiles get, in ``target_unit``.
    norm : {"none", "local", "global"}
        Histogram stretching: none, per tile, or per image (per channel in each case).
    percentiles : (float, float)
        Low/high percentiles used instead of min/max (0 and 100 mean min and max).
    bounds : (float, float)
        Target bounds ``t_low < t_high`` of the normalized values.
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
    """

    tile_size: int = 512
    overlap: int = 128
    calibrate: bool = True
    pixel_size: tuple[float, float] | None = None
    unit: str = "um"
    target_pixel_size: float = 0.325
    target_unit: str = "um"
    norm: str = "global"
    percentiles: tuple[float, float] = (0.0, 100.0)
    bounds: tuple[float, float] = (0.0, 1.0)
    dtype: str = "float32"
    format: str = "tif"
    pad_mode: str = "zero"
    recursive: bool = False
    min_foreground: float = 0.0
    keep_empty: float = 0.0
    min_box_visibility: float = 0.5
    val_fraction: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__.__get__(self)
        set_("tile_size", _integer("tile_size", self.tile_size, 1, 65536))
        set_("overlap", _integer("overlap", self.overlap, 0, 65535))
        if self.overlap >= self.tile_size:
            raise SettingsError(
                "overlap",
                f"overlap must be smaller than the tile size ({self.tile_size}); got {self.overlap}.",
            )
        set_("calibrate", _boolean("calibrate", self.calibrate))
        set_("recursive", _boolean("recursive", self.recursive))
        set_("pixel_size", _pixel_size(self.pixel_size))
        set_("unit", _unit("unit", self.unit))
        set_("target_unit", _unit("target_unit", self.target_unit))
        set_("target_pixel_size", _positive("target_pixel_size", self.target_pixel_size))
        set_("norm", _choice("norm", self.norm, NORMS))
        set_("dtype", _choice("dtype", self.dtype, DTYPES))
        fmt = str(self.format).strip().lower().lstrip(".")
        set_("format", _choice("format", _FORMAT_ALIASES.get(fmt, fmt), FORMATS))
        set_("pad_mode", _choice("pad_mode", self.pad_mode, PAD_MODES))
        set_("min_foreground", _share("min_foreground", self.min_foreground))
        set_("keep_empty", _share("keep_empty", self.keep_empty))
        set_("min_box_visibility", _share("min_box_visibility", self.min_box_visibility))
        set_("val_fraction", _share("val_fraction", self.val_fraction))
        if self.val_fraction >= 1:
            raise SettingsError("val_fraction", "val_fraction must be below 1: some sources must stay for training.")
        set_("seed", _integer("seed", self.seed, 0, 2**63 - 1))
        set_("percentiles", _pair("percentiles", self.percentiles))
        set_("bounds", _pair("bounds", self.bounds))
        self._check_output_rules()

    def _check_output_rules(self) -> None:
        """The rules of DESIGN.md §4 that can be checked before any image is read."""
        if self.dtype not in FORMAT_DTYPES[self.format]:
            allowed = " or ".join(FORMAT_DTYPES[self.format])
            raise SettingsError(
                "format",
                f".{self.format} files can only store {allowed}, not {self.dtype}; "
                f"choose .tif or another output type.",
            )
        if self.norm == "none":
            return  # values are kept: bounds and percentiles play no part
        low, high = self.percentiles
        if not (0.0 <= low < high <= 100.0):
            raise SettingsError(
                "percentiles",
                f"percentiles must satisfy 0 <= low < high <= 100; got {low:g} and {high:g}.",
            )
        t_low, t_high = self.bounds
        if not t_low < t_high:
            raise SettingsError(
                "bounds",
                f"the lower bound must be smaller than the upper bound; got {t_low:g} and {t_high:g}.",
            )
        if self.dtype in DTYPE_RANGES:
            lo, hi = DTYPE_RANGES[self.dtype]
            if not (float(t_low).is_integer() and float(t_high).is_integer()):
                raise SettingsError(
                    "bounds",
                    f"{self.dtype} stores whole numbers: bounds {t_low:g}–{t_high:g} must be integers "
                    f"(e.g. {lo}–{hi}), or choose float32.",
                )
            if t_low < lo or t_high > hi:
                raise SettingsError(
                    "bounds",
                    f"{self.dtype} holds {lo}–{hi}: bounds {t_low:g}–{t_high:g} are outside it; "
                    f"change the bounds or choose {'uint16 or ' if self.dtype == 'uint8' else ''}float32.",
                )

    # --- derived values ------------------------------------------------------------------
    @property
    def step(self) -> int:
        """Distance between the starts of neighbouring tiles, ``P - O``."""
        return self.tile_size - self.overlap

    @property
    def pixel_size_um(self) -> tuple[float, float] | None:
        """Manual input pixel size in µm as ``(y, x)``, or None for "auto"."""
        if self.pixel_size is None:
            return None
        return (to_um(self.pixel_size[0], self.unit), to_um(self.pixel_size[1], self.unit))

    @property
    def target_pixel_size_um(self) -> float:
        return to_um(self.target_pixel_size, self.target_unit)

    @property
    def preset(self) -> str | None:
        """Name of the preset these settings match, or None."""
        for name, values in PRESETS.items():
            if all(getattr(self, key) == value for key, value in values.items()):
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
        """Plain JSON-ready dict; ``pixel_size`` is "auto" or ``[y, x]``."""
        data = dataclasses.asdict(self)
        data["pixel_size"] = "auto" if self.pixel_size is None else list(self.pixel_size)
        data["percentiles"] = list(self.percentiles)
        data["bounds"] = list(self.bounds)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Settings | None = None) -> tuple[Settings, list[str]]:
        """Build settings from ``data`` over ``base`` (defaults when None).

        Returns the settings and the keys of ``data`` that are not settings (reported by the
        caller, never fatal).
        """
        if not isinstance(data, dict):
            raise SettingsError("settings", "a settings file must hold a JSON object ({...}).")
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


def load_settings(path: str | Path, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Read a settings JSON file; returns the settings and the unknown keys it held."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError("config", f"settings file {path} does not exist; check the path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError("config", f"cannot read settings file {path}: {exc}.") from None
    except json.JSONDecodeError as exc:
        raise SettingsError(
            "config", f"settings file {path} is not valid JSON (line {exc.lineno}: {exc.msg}); fix or re-save it."
        ) from None
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "tilesapp_settings"}
    return Settings.from_dict(data, base)


# --- validators: each returns the cleaned value or raises SettingsError naming the field -----
def _integer(name: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise SettingsError(name, f"{name} must be a whole number; got {value!r}.")
    value = int(value)
    if not lo <= value <= hi:
        raise SettingsError(name, f"{name} must be between {lo} and {hi}; got {value}.")
    return value


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(name, f"{name} must be true or false; got {value!r}.")
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise SettingsError(name, f"{name} must be a number; got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(name, f"{name} must be a number; got {value!r}.") from None
    if not math.isfinite(number):
        raise SettingsError(name, f"{name} must be a finite number; got {value!r}.")
    return number


def _positive(name: str, value: Any) -> float:
    number = _number(name, value)
    if number <= 0:
        raise SettingsError(name, f"{name} must be greater than 0; got {number:g}.")
    return number


def _share(name: str, value: Any) -> float:
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise SettingsError(name, f"{name} is a share between 0 and 1; got {number:g}.")
    return number


def _pixel_size(value: Any) -> tuple[float, float] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SettingsError("pixel_size", f"pixel_size takes one value or two (y, x); got {list(value)}.")
        return (_positive("pixel_size", value[0]), _positive("pixel_size", value[1]))
    size = _positive("pixel_size", value)
    return (size, size)


def _unit(name: str, value: Any) -> str:
    canon = canonical_unit(str(value))
    if canon is None:
        raise SettingsError(name, f"{name} {value!r} is not a length unit; use one of {', '.join(UNITS)} (or µm).")
    return canon


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise SettingsError(name, f"{name} must be one of {', '.join(choices)}; got {value!r}.")
    return text


def _pair(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SettingsError(name, f"{name} takes two numbers (low, high); got {value!r}.")
    return (_number(name, value[0]), _number(name, value[1]))


__all__ = [
    "DTYPES",
    "DTYPE_RANGES",
    "FORMATS",
    "FORMAT_DTYPES",
    "NORMS",
    "PAD_MODES",
    "PRESETS",
    "Settings",
    "load_settings",
    "save_settings",
]
