"""Finding images in a folder, reading their metadata (axes, pixel size) and their pixels.

Images are handed to the rest of the engine in one layout, ``(rows, cols, channels)``
("YXC"); :func:`from_yxc` puts tiles back into the axes of their source (YX, YXS or CYX).
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from tilesapp.core.calibration import canonical_unit, to_um
from tilesapp.core.errors import ImageError

TIFF_SUFFIXES = (".tif", ".tiff")
OTHER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_SUFFIXES = TIFF_SUFFIXES + OTHER_SUFFIXES
AXES = ("YX", "YXS", "CYX")

_UM_PER_INCH = 25400.0
# Resolutions that software writes by default (screen/print dpi): not a calibration.
_DEFAULT_DPI = (72.0, 96.0)


@dataclass(frozen=True)
class Scan:
    """What a folder holds: the images to process and the files passed over."""

    folder: Path
    images: tuple[Path, ...]
    skipped: tuple[Path, ...]


@dataclass(frozen=True)
class SourceInfo:
    """What the metadata of one image says, without its pixels.

    ``shape`` is in the order of ``axes`` (one of YX, YXS, CYX); ``pixel_size_um`` is
    ``(y, x)`` in µm, or None when the file carries no calibration; ``calibration`` says where
    the pixel size came from ("OME", "ImageJ", "TIFF tags").
    """

    path: Path
    shape: tuple[int, ...]
    axes: str
    dtype: str
    pixel_size_um: tuple[float, float] | None = None
    calibration: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def shape_yx(self) -> tuple[int, int]:
        return (self.shape[self.axes.index("Y")], self.shape[self.axes.index("X")])

    @property
    def channels(self) -> int:
        return 1 if self.axes == "YX" else self.shape[0 if self.axes == "CYX" else 2]


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def scan_folder(folder: str | Path, recursive: bool = False) -> Scan:
    """List the images of ``folder``: TIFFs first, then PNG/JPEG/BMP, in natural name order.

    Any other file is listed in ``skipped``. Raises FileNotFoundError / NotADirectoryError
    for a missing folder.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"folder {folder} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    files = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted((p for p in files if p.is_file()), key=lambda p: (_natural_key(p.relative_to(folder)), str(p)))
    tiffs = [p for p in files if p.suffix.lower() in TIFF_SUFFIXES]
    others = [p for p in files if p.suffix.lower() in OTHER_SUFFIXES]
    skipped = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    return Scan(folder, tuple(tiffs + others), tuple(skipped))


def inspect_image(path: str | Path) -> SourceInfo:
    """Read the metadata of one image. Raises :class:`ImageError` with a readable reason."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                return _inspect_tiff(path, tif)
        array = _read_other(path)
        axes = "YX" if array.ndim == 2 else "YXS"
        return SourceInfo(path, tuple(array.shape), axes, array.dtype.name)
    except ImageError:
        raise
    except Exception as exc:  # every reader error means the same to a user: unreadable file
        raise ImageError(f"{path.name}: cannot be read as an image ({_reason(exc)}).") from exc


def read_image(path: str | Path) -> tuple[np.ndarray, SourceInfo]:
    """Read one image: its pixels in YXC layout and its :class:`SourceInfo`."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                info = _inspect_tiff(path, tif)
                array = tif.series[0].asarray(level=0)
                array = _arrange(array, tif.series[0].axes, info.axes)
        else:
            array = _read_other(path)
            info = SourceInfo(path, tuple(array.shape), "YX" if array.ndim == 2 else "YXS", array.dtype.name)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path.name}: cannot be read as an image ({_reason(exc)}).") from exc
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind not in "uif":
        raise ImageError(f"{path.name}: pixel type {array.dtype} is not supported; use integer or float pixels.")
    return to_yxc(array, info.axes), info


def to_yxc(array: np.ndarray, axes: str) -> np.ndarray:
    """View an image with ``axes`` (YX, YXS, CYX) as (rows, cols, channels)."""
    if axes == "YX":
        return array[:, :, np.newaxis]
    if axes == "YXS":
        return array
    if axes == "CYX":
        return np.moveaxis(array, 0, -1)
    raise ValueError(f"unsupported axes {axes!r}")


def from_yxc(array: np.ndarray, axes: str) -> np.ndarray:
    """Put a (rows, cols, channels) array back into ``axes`` (contiguous, ready to write)."""
    if axes == "YX":
        return array[:, :, 0]
    if axes == "YXS":
        return np.ascontiguousarray(array)
    if axes == "CYX":
        return np.ascontiguousarray(np.moveaxis(array, -1, 0))
    raise ValueError(f"unsupported axes {axes!r}")


# --- TIFF ---------------------------------------------------------------------------------
def _inspect_tiff(path: Path, tif: tifffile.TiffFile) -> SourceInfo:
    if not tif.series:
        raise ImageError(f"{path.name}: the TIFF file holds no image.")
    series = tif.series[0]
    axes, shape = _supported_axes(series.axes, tuple(series.shape), tif, path)
    dtype = np.dtype(series.dtype)
    pixel_size, origin = _tiff_pixel_size(tif)
    return SourceInfo(path, shape, axes, "uint8" if dtype == bool else dtype.name, pixel_size, origin)


def _supported_axes(axes: str, shape: tuple[int, ...], tif, path: Path) -> tuple[str, tuple[int, ...]]:
    """Map tifffile's axes to YX / YXS / CYX, dropping axes of length 1."""
    kept = [(a, n) for a, n in zip(axes, shape) if n > 1 or a in "YX"]
    axes_k = "".join(a for a, _ in kept)
    shape_k = tuple(n for _, n in kept)
    if axes_k in ("YX", "YXS", "CYX"):
        return axes_k, shape_k
    if axes_k == "SYX":  # planar samples: colour when photometric says so, channels otherwise
        if tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB:
            return "YXS", (shape_k[1], shape_k[2], shape_k[0])
        return "CYX", shape_k
    if axes_k == "YXC":
        return "YXS", shape_k
    details = " × ".join(f"{a}={n}" for a, n in kept)
    raise ImageError(
        f"{path.name}: axes {axes_k} ({details}) are not supported; save 2D images as YX, "
        f"YXS (RGB) or CYX (channels), one plane of a Z/T stack per file."
    )


def _arrange(array: np.ndarray, axes: str, target: str) -> np.ndarray:
    """Squeeze and reorder a TIFF series' array to the ``target`` axes of its SourceInfo."""
    keep = tuple(i for i, (a, n) in enumerate(zip(axes, array.shape)) if n > 1 or a in "YX")
    array = array.reshape(tuple(array.shape[i] for i in keep))
    if "".join(axes[i] for i in keep) == "SYX" and target == "YXS":  # planar RGB
        return np.moveaxis(array, 0, -1)
    return array


def _tiff_pixel_size(tif: tifffile.TiffFile) -> tuple[tuple[float, float] | None, str | None]:
    """Pixel size ``(y, x)`` in µm from OME-XML, ImageJ metadata or resolution tags."""
    if tif.is_ome and tif.ome_metadata:
        size = _ome_pixel_size(tif.ome_metadata)
        if size is not None:
            return size, "OME"
    page = tif.pages[0]
    xres = _resolution(page, "XResolution")
    yres = _resolution(page, "YResolution") or xres
    if xres is None:
        return None, None
    if tif.is_imagej and tif.imagej_metadata:
        unit = str(tif.imagej_metadata.get("unit", "")).strip()
        if unit:
            um = 1e4 * 2.54 if unit.lower() in ("inch", "in") else _um_per(unit)
            if um is None:
                return None, None  # "pixel" or an unknown unit: not calibrated
            return (_clean(um / yres), _clean(um / xres)), "ImageJ"
    unit_tag = page.tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2  # TIFF default: inch
    if unit == 2:
        if xres in _DEFAULT_DPI and yres in _DEFAULT_DPI:
            return None, None
        return (_clean(_UM_PER_INCH / yres), _clean(_UM_PER_INCH / xres)), "TIFF tags"
    if unit == 3:
        return (_clean(1e4 / yres), _clean(1e4 / xres)), "TIFF tags"
    return None, None  # unit NONE: resolution without a physical meaning


def _clean(value: float) -> float:
    # Resolutions are stored as rationals: 1/0.65 comes back as 0.6499999999999999.
    return float(f"{value:.10g}")


def _resolution(page, name: str) -> float | None:
    tag = page.tags.get(name)
    if tag is None:
        return None
    value = tag.value
    try:
        number = value[0] / value[1] if isinstance(value, tuple) else float(value)
    except ZeroDivisionError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _um_per(unit: str) -> float | None:
    canon = canonical_unit(unit)
    return None if canon is None else to_um(1.0, canon)


def _ome_pixel_size(xml: str) -> tuple[float, float] | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    try:
        x = float(pixels.attrib["PhysicalSizeX"]) * (_um_per(pixels.attrib.get("PhysicalSizeXUnit", "µm")) or math.nan)
        if "PhysicalSizeY" in pixels.attrib:
            y_unit = pixels.attrib.get("PhysicalSizeYUnit", "µm")
            y = float(pixels.attrib["PhysicalSizeY"]) * (_um_per(y_unit) or math.nan)
        else:
            y = x
    except ValueError:
        return None
    if not (math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0):
        return None
    return (y, x)


# --- PNG / JPEG / BMP -----------------------------------------------------------------------
def _read_other(path: Path) -> np.ndarray:
    # np.fromfile + imdecode: cv2.imread cannot open non-ASCII paths on Windows.
    data = np.fromfile(path, dtype=np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageError(f"{path.name}: cannot be decoded; the file is damaged or not an image.")
    if array.ndim == 3:  # OpenCV orders colours BGR(A)
        code = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}.get(array.shape[2])
        if code is not None:
            array = cv2.cvtColor(array, code)
    return array


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text.splitlines()[0][:200]
