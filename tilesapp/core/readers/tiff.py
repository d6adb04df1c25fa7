"""The TIFF family through tifffile: plain, ImageJ, OME (pyramids too), memory-mapped or tiled.

Pixel size comes from OME-XML, ImageJ metadata (unit + resolution) or the resolution tags
(inch or cm; 72 and 96 dpi are software defaults and count as not calibrated). A whole plane
is read with tifffile's own (multi-threaded) decoder; a region of a big file through
tifffile's zarr store, which decodes only the chunks the region touches, or a memory map of an
uncompressed contiguous file.
"""

from __future__ import annotations

import math
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import tifffile

from tilesapp.core.calibration import canonical_unit, to_um
from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import BaseFile, SceneInfo, check_region, pixel_type_error, reason, thin_overview, to_yxc

_UM_PER_INCH = 25400.0
# Resolutions that software writes by default (screen/print dpi): not a calibration.
_DEFAULT_DPI = (72.0, 96.0)


class TiffReader:
    """Reader of .tif/.tiff files."""

    name = "tiff"
    suffixes = (".tif", ".tiff")

    def sniff(self, head: bytes) -> bool:
        return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

    def read_array(self, path: Path) -> np.ndarray:
        """The first series as stored (axes of length 1 dropped)."""
        array = tifffile.imread(path)
        return np.squeeze(array) if array.ndim > 3 else array

    def open(self, path: Path) -> BaseFile:
        path = Path(path)
        try:
            tif = tifffile.TiffFile(path)
        except Exception as exc:
            raise ImageError(f"{path.name}: cannot be read as an image ({reason(exc)}).") from exc
        try:
            scene = TiffScene(tif, path)
        except ImageError:
            tif.close()
            raise
        except Exception as exc:
            tif.close()
            raise ImageError(f"{path.name}: cannot be read as an image ({reason(exc)}).") from exc
        return BaseFile([scene], close=scene.close)


class TiffScene:
    """The first series of a TIFF file, at full resolution."""

    def __init__(self, tif: tifffile.TiffFile, path: Path, series: int = 0):
        self._tif = tif
        if not tif.series:
            raise ImageError(f"{path.name}: the TIFF file holds no image.")
        self._series = tif.series[series]
        axes, shape = _supported_axes(self._series.axes, tuple(self._series.shape), tif, path)
        dtype = np.dtype(self._series.dtype)
        if dtype.kind not in "uifb":
            raise pixel_type_error(path.name, dtype)
        pixel_size, origin = _tiff_pixel_size(tif)
        warnings = []
        others = len(image_series(tif)) - 1
        if others > 0:
            warnings.append(f"the file holds {others + 1} image series; only the first is read, the other "
                            f"{others} {'is' if others == 1 else 'are'} skipped.")
        self.info = SceneInfo(path, shape, axes, "uint8" if dtype == bool else dtype.name, pixel_size, origin,
                              warnings=tuple(warnings), reader="tiff")
        self._array = None  # zarr array or memory map, in the file's axes, opened for regions
        self._lock = threading.Lock()

    # --- regions ----------------------------------------------------------------------------
    def read(self, y0: int, y1: int, x0: int, x1: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        check_region(self.info, y0, y1, x0, x1, z, t)
        name = self.info.name
        rows, cols = self.info.shape_yx
        try:
            if (y0, y1, x0, x1) == (0, rows, 0, cols):
                # the whole plane: tifffile's decoder, threads over the file's chunks
                region = self._series.asarray(level=0)
                axes = self._series.axes
            else:
                array = self._region_array()
                index = tuple(slice(y0, y1) if a == "Y" else slice(x0, x1) if a == "X" else slice(None)
                              for a in self._series.axes)
                # zarr decodes into a new array; a memory map's region is copied out of the file
                # so it stays valid after close and can be modified in place
                region = np.array(array[index], copy=isinstance(array, np.memmap))
                axes = self._series.axes
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"{name}: reading rows {y0}–{y1} failed ({reason(exc)}); the file may be damaged.") from exc
        region = _arrange(region, axes, self.info.axes)
        if region.dtype == bool:
            region = region.astype(np.uint8)
        region = to_yxc(region, self.info.axes)
        if region.shape != (y1 - y0, x1 - x0, self.info.channels):
            raise ImageError(f"{name}: the pixels do not match the file's header; the file may be damaged.")
        return np.ascontiguousarray(region)

    def _region_array(self):
        with self._lock:
            if self._array is None:
                level = self._series.levels[0]  # an OME pyramid's full resolution
                page = level.pages[0] if level.pages else None
                if page is not None and page.is_memmappable and len(level.pages) == 1:
                    # uncompressed and contiguous: the operating system pages in what a region needs
                    self._array = tifffile.memmap(self.info.path, series=0, level=0, mode="r")
                else:
                    import zarr  # imported here: only regions of tiled/strip images need it

                    self._array = zarr.open(self._series.aszarr(level=0), mode="r")
            return self._array

    def chunk_rows(self) -> int:
        array = self._region_array()
        chunks = getattr(array, "chunks", None)
        if not chunks:  # a memory map
            return 1
        return int(chunks[self._series.axes.index("Y")])

    def overview(self, max_side: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        rows, cols = self.info.shape_yx
        step = max(1, math.ceil(max(rows, cols) / max_side))
        if step > 1:
            level = self._pyramid_level(step)
            if level is not None:
                return level
        return thin_overview(self, max_side, z=z, t=t)

    def _pyramid_level(self, step: int) -> np.ndarray | None:
        """The smallest pyramid level at least as fine as ``step``, in YXC (None: no pyramid)."""
        rows, _ = self.info.shape_yx
        best = None
        for level in self._series.levels[1:]:
            level_rows = dict(zip(level.axes, level.shape)).get("Y", rows)
            if rows / level_rows <= step and (best is None or level_rows < best[0]):
                best = (level_rows, level)
        if best is None:
            return None
        level = best[1]
        try:
            array = level.asarray()
        except Exception:  # a damaged lower level: fall back to thinning the full resolution
            return None
        return np.ascontiguousarray(to_yxc(_arrange(array, level.axes, self.info.axes), self.info.axes))

    def close(self) -> None:
        # A memory map is not closed explicitly: numpy closes it when no array uses it.
        self._array = None
        self._tif.close()


#: Series of slide scanners' files that are pictures of the slide, not images to cut.
ASSOCIATED = ("thumbnail", "label", "macro", "map", "overview")


def image_series(tif: tifffile.TiffFile) -> list[int]:
    """Indices of a file's series that are images: not associated pictures (thumbnail, slide
    label, macro photo) nor reduced-resolution copies (a pyramid's levels are not series)."""
    found = []
    for i, series in enumerate(tif.series):
        name = (series.name or "").strip().lower()
        if any(name.startswith(word) for word in ASSOCIATED):
            continue
        page = series.pages[0] if series.pages else None
        if i > 0 and page is not None and getattr(page, "is_reduced", False):
            continue
        found.append(i)
    return found or [0]


# --- axes -----------------------------------------------------------------------------------------
def _supported_axes(axes: str, shape: tuple[int, ...], tif, path: Path) -> tuple[str, tuple[int, ...]]:
    """Map tifffile's axes to YX / YXS / CYX, dropping axes of length 1."""
    kept = [(a, n) for a, n in zip(axes, shape) if n > 1 or a in "YX"]
    axes_k = "".join(a for a, _ in kept)
    shape_k = tuple(n for _, n in kept)
    if 0 in shape_k:
        raise ImageError(f"{path.name}: the image is empty ({' × '.join(map(str, shape))} pixels).")
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
    """Squeeze and reorder a TIFF series' array to the ``target`` axes of its scene."""
    keep = tuple(i for i, (a, n) in enumerate(zip(axes, array.shape)) if n > 1 or a in "YX")
    array = array.reshape(tuple(array.shape[i] for i in keep))
    if "".join(axes[i] for i in keep) == "SYX" and target == "YXS":  # planar RGB
        return np.moveaxis(array, 0, -1)
    return array


# --- pixel size -------------------------------------------------------------------------------------
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
    except (ZeroDivisionError, TypeError, ValueError, IndexError):
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


READER = TiffReader()
