"""The TIFF family through tifffile: plain, ImageJ hyperstacks, OME (every series, pyramids),
Zeiss LSM, Aperio SVS, Hamamatsu NDPI, Leica SCN, MetaMorph STK/MetaSeries, Micro-Manager.

Every image series of a file is a scene; associated pictures (thumbnail, slide label, macro
photo) and reduced-resolution copies are not. Z and T are planes, read one at a time; C (or
planar samples) are channels; RGB samples stay colour (YXS).

Pixel size, first found: OME-XML (the scene's own Image), ImageJ metadata (unit + resolution),
LSM voxel size, SVS ``MPP``, MetaMorph spatial calibration (wins over 72-dpi resolution tags),
Micro-Manager ``PixelSize_um``, then resolution tags (inch or cm; 72 and 96 dpi are software
defaults and count as not calibrated). A whole plane of a single-plane scene is read with
tifffile's own (multi-threaded) decoder; regions and planes of stacks through tifffile's zarr
store, which decodes only the chunks a region touches, or a memory map of an uncompressed
contiguous file.
"""

from __future__ import annotations

import math
import re
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import tifffile

from tilesapp.core.calibration import canonical_unit, to_um
from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import (BaseFile, SceneInfo, check_region, closed_on_error, not_format, pixel_type_error,
                                         reason, thin_overview, to_yxc)

_UM_PER_INCH = 25400.0
# Resolutions that software writes by default (screen/print dpi): not a calibration.
_DEFAULT_DPI = (72.0, 96.0)
#: Series of slide scanners' files that are pictures of the slide, not images to cut.
ASSOCIATED = ("thumbnail", "label", "macro", "map", "overview")
#: tifffile's axes for an unnamed sequence of planes: read as time points when there is no T.
_SEQUENCE = "IQ"


class TiffReader:
    """Reader of .tif/.tiff files and the formats built on TIFF."""

    name = "tiff"
    suffixes = (".tif", ".tiff", ".svs", ".ndpi", ".scn", ".lsm", ".stk", ".btf", ".tf8")

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
            not_tiff = not_format(path, self.sniff, "a TIFF file", "a TIFF header")
            if not_tiff is not None:
                raise not_tiff from exc
            raise ImageError(f"{path.name}: cannot be read as an image ({reason(exc)}).") from exc
        with closed_on_error(tif, path, "cannot be read as an image"):
            tif.filehandle.set_lock(True)  # scenes and bands read through one file handle from many threads
            if not tif.series:
                raise ImageError(f"{path.name}: the TIFF file holds no image.")
            indices = image_series(tif)
            metadata = _FileMetadata(tif)
            if len(indices) > 1:
                metadata.warnings.append(f"the file holds {len(indices)} image series: each is its own image "
                                         f"(scenes 0–{len(indices) - 1}).")
            scenes = [TiffScene(tif, path, index, number, len(indices), metadata) for number, index in enumerate(indices)]
        return BaseFile(scenes, close=tif.close)


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


class TiffScene:
    """One image series of a TIFF file, at full resolution."""

    def __init__(self, tif: tifffile.TiffFile, path: Path, series: int, number: int, n_scenes: int,
                 metadata: _FileMetadata):
        self._tif = tif
        self._index = series
        self._series = tif.series[series]
        self.layout = _Layout(self._series, tif, path)
        dtype = np.dtype(self._series.dtype)
        if dtype.kind not in "uifb":
            raise pixel_type_error(path.name, dtype)
        pixel_size, origin = metadata.pixel_size(number)
        warnings = list(metadata.warnings)
        if max(self.layout.n_z, self.layout.n_t) > 1 and self.layout.sequence:
            warnings.append(f"its {self.layout.n_t} planes carry no Z or T label; they are read as time points.")
        self.info = SceneInfo(
            path, self.layout.shape, self.layout.axes, "uint8" if dtype == bool else dtype.name, pixel_size, origin,
            scene=number, n_scenes=n_scenes, scene_name=metadata.scene_name(number, self._series),
            channel_names=metadata.channel_names(number, self.layout.channels), n_z=self.layout.n_z,
            n_t=self.layout.n_t, warnings=tuple(warnings), reader="tiff",
            calibration_hint="" if pixel_size is not None else metadata.calibration_hint(number),
        )
        self._array = None  # zarr array or memory map, in the series' axes, opened for regions
        self._lock = threading.Lock()
        self._segments = _Segments.of(tif, self._series) if self.layout.single_plane else None

    # --- regions ----------------------------------------------------------------------------
    def read(self, y0: int, y1: int, x0: int, x1: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        check_region(self.info, y0, y1, x0, x1, z, t)
        name = self.info.name
        rows, cols = self.info.shape_yx
        try:
            if (y0, y1, x0, x1) == (0, rows, 0, cols) and self.layout.single_plane:
                # the whole plane: tifffile's decoder, threads over the file's chunks
                region = self._series.asarray(level=0)
            elif self._segments is not None:
                region = self._segments.read(y0, y1, x0, x1)
            else:
                array = self._region_array()
                index = self.layout.index(y0, y1, x0, x1, z, t)
                # zarr decodes into a new array; a memory map's region is copied out of the file
                # so it stays valid after close and can be modified in place
                region = np.array(array[index], copy=isinstance(array, np.memmap))
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"{name}: reading rows {y0}–{y1} failed ({reason(exc)}); the file may be damaged.") from exc
        region = self.layout.arrange(region)
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
                if page is not None and page.is_memmappable and self._contiguous(level):
                    # uncompressed and contiguous: the operating system pages in what a region needs
                    self._array = tifffile.memmap(self.info.path, series=self._index, level=0, mode="r")
                else:
                    import zarr  # imported here: only regions of tiled/strip images and stacks need it

                    self._array = zarr.open(self._series.aszarr(level=0), mode="r")
            return self._array

    @staticmethod
    def _contiguous(level) -> bool:
        try:
            return len(level.pages) == 1 or level.dataoffset is not None
        except Exception:
            return False

    def chunk_rows(self) -> int:
        if self._segments is not None:
            return self._segments.height
        array = self._region_array()
        chunks = getattr(array, "chunks", None)
        if not chunks:  # a memory map
            return 1
        return int(chunks[self._series.axes.index("Y")])

    def overview(self, max_side: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        rows, cols = self.info.shape_yx
        step = max(1, math.ceil(max(rows, cols) / max_side))
        if step > 1 and self.layout.single_plane:
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
            array = _Layout(level, self._tif, self.info.path).arrange(level.asarray())
        except Exception:  # a damaged lower level: fall back to thinning the full resolution
            return None
        return np.ascontiguousarray(to_yxc(array, self.info.axes))

    def close(self) -> None:
        # A memory map is not closed explicitly: numpy closes it when no array uses it.
        self._array = None


class _Segments:
    """Regions of a single-page tiled or strip image, decoded by the calling thread.

    tifffile's zarr store decodes every chunk on zarr's one event-loop thread, so bands read in
    parallel wait in line; here each band's thread reads the bytes of the chunks its region
    touches (under the file handle's lock, shared with every read of the file) and decodes
    them itself (the codecs release the GIL).
    """

    def __init__(self, tif: tifffile.TiffFile, page):
        self.tif, self.page = tif, page
        self.height, self.width = int(page.chunks[0]), int(page.chunks[1])
        self.per_row = -(-page.imagewidth // self.width)
        self.samples = page.samplesperpixel
        self.decodeargs = {}
        if page.compression in (6, 7, 34892, 33007):  # JPEG: shared tables, NDPI headers
            self.decodeargs = {"jpegtables": page.jpegtables, "jpegheader": page.keyframe.jpegheader}

    @classmethod
    def of(cls, tif: tifffile.TiffFile, series) -> _Segments | None:
        """For a series stored as one chunked page with interleaved samples; None otherwise."""
        level = series.levels[0]
        if len(level.pages) != 1:
            return None
        page = level.pages[0]
        if not hasattr(page, "dataoffsets") or page.is_memmappable or page.planarconfig != 1 \
                or page.imagedepth != 1 or len(page.chunks) < 2 or page.dtype is None:
            return None
        if len(page.dataoffsets) != -(-page.imagelength // int(page.chunks[0])) * -(-page.imagewidth // int(page.chunks[1])):
            return None
        return cls(tif, page)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` as (rows, cols, samples) in the page's dtype."""
        page = self.page
        rows = range(y0 // self.height, -(-y1 // self.height))
        cols = range(x0 // self.width, -(-x1 // self.width))
        indices = [r * self.per_row + c for r in rows for c in cols]
        fh = self.tif.filehandle
        chunks = list(fh.read_segments([page.dataoffsets[i] for i in indices],
                                       [page.databytecounts[i] for i in indices], indices, lock=fh.lock))
        out = np.zeros((y1 - y0, x1 - x0, self.samples), page.dtype)
        for data, index in chunks:
            segment, _, _ = page.keyframe.decode(data, index, **self.decodeargs)
            r, c = divmod(index, self.per_row)
            top, left = r * self.height, c * self.width
            ya, yb = max(y0, top), min(y1, top + self.height, page.imagelength)
            xa, xb = max(x0, left), min(x1, left + self.width, page.imagewidth)
            if segment is None:  # an empty chunk: zeros
                continue
            out[ya - y0 : yb - y0, xa - x0 : xb - x0] = segment.reshape(
                segment.shape[-3], segment.shape[-2], -1)[ya - top : yb - top, xa - left : xb - left]
        return out


# --- axes ------------------------------------------------------------------------------------------
class _Layout:
    """How a series' axes map onto a scene: planes (Z, T), channels (C or samples), Y and X."""

    def __init__(self, series, tif, path: Path):
        axes, shape = series.axes, tuple(series.shape)
        sizes = dict(zip(axes, shape))
        self.series_axes = axes
        if 0 in shape:
            raise ImageError(f"{path.name}: the image is empty ({' × '.join(map(str, shape))} pixels).")
        plain = [(a, n) for a, n in zip(axes, shape) if n > 1 or a in "YX"]
        extra = [a for a, _ in plain if a not in "YXCSZT" + _SEQUENCE]
        sequences = [a for a, _ in plain if a in _SEQUENCE]
        if extra or len(sequences) > 1 or (sequences and "T" in dict(plain)):
            details = " × ".join(f"{a}={n}" for a, n in plain)
            raise ImageError(f"{path.name}: axes {''.join(a for a, _ in plain)} ({details}) are not supported; "
                             f"save images as planes of YX, YXS (RGB) or CYX (channels), with Z and T stacks.")
        self.sequence = sequences[0] if sequences else None
        self.t_axis = "T" if "T" in dict(plain) else self.sequence
        self.n_z = sizes.get("Z", 1) if "Z" in dict(plain) else 1
        self.n_t = sizes.get(self.t_axis, 1) if self.t_axis else 1
        c_axes = [a for a, _ in plain if a in "CS"]
        if len(c_axes) > 1:
            raise ImageError(f"{path.name}: both channels and colour samples ({'/'.join(c_axes)}) are not supported.")
        self.c_axis = c_axes[0] if c_axes else None
        channels = sizes[self.c_axis] if self.c_axis else 1
        rows, cols = sizes["Y"], sizes["X"]
        rgb = tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
        # colour samples: RGB, or samples stored with each pixel (after X); planar ones are channels
        colour = self.c_axis == "S" and (rgb or axes.index("S") > axes.index("X"))
        if self.c_axis is None:
            self.axes, self.shape = "YX", (rows, cols)
        elif colour:
            self.axes, self.shape = "YXS", (rows, cols, channels)
        else:
            self.axes, self.shape = "CYX", (channels, rows, cols)
        self.channels = channels
        self.single_plane = self.n_z == 1 and self.n_t == 1

    def index(self, y0: int, y1: int, x0: int, x1: int, z: int, t: int) -> tuple:
        """Index of a region of plane (z, t) into the series' array."""
        out = []
        for a in self.series_axes:
            if a == "Y":
                out.append(slice(y0, y1))
            elif a == "X":
                out.append(slice(x0, x1))
            elif a == "Z" and self.n_z > 1:
                out.append(z)
            elif a == self.t_axis and self.n_t > 1:
                out.append(t)
            else:
                out.append(slice(None))
        return tuple(out)

    def arrange(self, array: np.ndarray) -> np.ndarray:
        """An array read from the series (planes already indexed away, or of length 1) in the
        scene's axes (YX, YXS or CYX)."""
        axes = [a for a in self.series_axes
                if not ((a == "Z" and self.n_z > 1) or (a == self.t_axis and self.n_t > 1))]
        if array.ndim != len(axes):  # a whole series read at once: the planes are still there
            axes = list(self.series_axes)
        keep = [i for i, (a, n) in enumerate(zip(axes, array.shape)) if n > 1 or a in "YX" or a == self.c_axis]
        array = array.reshape(tuple(array.shape[i] for i in keep))
        kept = "".join(axes[i] for i in keep)
        order = [kept.index(a) for a in (("Y", "X", self.c_axis) if self.axes == "YXS" else
                                         ((self.c_axis, "Y", "X") if self.axes == "CYX" else ("Y", "X")))]
        return np.transpose(array, order) if order != list(range(len(order))) else array


# --- metadata ----------------------------------------------------------------------------------------
class _FileMetadata:
    """What a TIFF file's metadata says of its scenes: pixel size, names, channels."""

    def __init__(self, tif: tifffile.TiffFile):
        self.tif = tif
        self.warnings: list[str] = []
        self._ome = None
        if tif.is_ome and tif.ome_metadata:
            try:
                self._ome = ET.fromstring(tif.ome_metadata)
            except ET.ParseError:
                self.warnings.append("its OME-XML metadata cannot be parsed; it is ignored.")

    def _ome_images(self) -> list:
        if self._ome is None:
            return []
        return [el for el in self._ome if el.tag.rsplit("}", 1)[-1] == "Image"]

    def _ome_pixels(self, number: int):
        images = self._ome_images()
        if number >= len(images):
            return None
        return next((el for el in images[number] if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)

    def scene_name(self, number: int, series) -> str | None:
        images = self._ome_images()
        if number < len(images) and images[number].get("Name"):
            return images[number].get("Name")
        name = (series.name or "").strip()
        return name if name and name.lower() not in ("baseline", "series 0") else None

    def channel_names(self, number: int, channels: int) -> tuple[str, ...]:
        names: list[str] = []
        pixels = self._ome_pixels(number)
        if pixels is not None:
            names = [el.get("Name") or "" for el in pixels if el.tag.rsplit("}", 1)[-1] == "Channel"]
        elif self.tif.is_lsm:
            names = list((self.tif.lsm_metadata or {}).get("ChannelColors", {}).get("ColorNames") or [])
        elif self.tif.is_micromanager:
            summary = (self.tif.micromanager_metadata or {}).get("Summary", {})
            names = list(summary.get("ChNames") or [])
        names = [str(n) for n in names]
        return tuple(names) if len(names) == channels and any(names) else ()

    def calibration_hint(self, number: int) -> str:
        """Why scene ``number`` has no pixel size when its OME metadata holds an unusable one."""
        pixels = self._ome_pixels(number)
        if pixels is None or "PhysicalSizeX" not in pixels.attrib:
            return ""
        keys = [key for key in ("PhysicalSizeX", "PhysicalSizeY") if key in pixels.attrib]
        units = {pixels.attrib.get(key + "Unit", "µm") for key in keys}
        unknown = sorted(u for u in units if _um_per(u) is None)
        if unknown:
            return f"its OME metadata gives it in {', '.join(map(repr, unknown))}, a unit this program does not know"
        given = ", ".join(f"{key} {pixels.attrib[key]!r}" + (f" {pixels.attrib[key + 'Unit']}" if key + "Unit" in
                                                                  pixels.attrib else "") for key in keys)
        return f"its OME metadata gives {given}, which is not a pixel size"

    def pixel_size(self, number: int) -> tuple[tuple[float, float] | None, str | None]:
        """Pixel size ``(y, x)`` in µm of scene ``number``, and where it came from."""
        tif = self.tif
        pixels = self._ome_pixels(number)
        if pixels is not None:
            size = _ome_pixel_size(pixels)
            if size is not None:
                return size, "OME"
        page = tif.pages[0]
        xres = _resolution(page, "XResolution")
        yres = _resolution(page, "YResolution") or xres
        if tif.is_imagej and tif.imagej_metadata and xres is not None:
            unit = str(tif.imagej_metadata.get("unit", "")).strip()
            if unit:
                um = 1e4 * 2.54 if unit.lower() in ("inch", "in") else _um_per(unit)
                if um is None:
                    return None, None  # "pixel" or an unknown unit: not calibrated
                return (_clean(um / yres), _clean(um / xres)), "ImageJ"
        for source in (_lsm_pixel_size, _svs_pixel_size, _metamorph_pixel_size, _micromanager_pixel_size):
            found = source(tif)
            if found is not None:
                return found
        if xres is None:
            return None, None
        unit_tag = page.tags.get("ResolutionUnit")
        unit = int(unit_tag.value) if unit_tag is not None else 2  # TIFF default: inch
        if unit == 2:
            if xres in _DEFAULT_DPI and yres in _DEFAULT_DPI:
                return None, None
            return (_clean(_UM_PER_INCH / yres), _clean(_UM_PER_INCH / xres)), "TIFF tags (dpi)"
        if unit == 3:
            return (_clean(1e4 / yres), _clean(1e4 / xres)), "TIFF tags"
        return None, None  # unit NONE: resolution without a physical meaning


def _lsm_pixel_size(tif):
    if not tif.is_lsm or not tif.lsm_metadata:
        return None
    x, y = tif.lsm_metadata.get("VoxelSizeX"), tif.lsm_metadata.get("VoxelSizeY")
    if not (x and y and x > 0 and y > 0):
        return None
    return (_clean(y * 1e6), _clean(x * 1e6)), "LSM"


def _svs_pixel_size(tif):
    if not tif.is_svs:
        return None
    match = re.search(r"MPP\s*=\s*([0-9.eE+-]+)", tif.pages[0].description or "")
    if match is None:
        return None
    try:
        mpp = float(match.group(1))
    except ValueError:
        return None
    return ((mpp, mpp), "SVS MPP") if math.isfinite(mpp) and mpp > 0 else None


def _metamorph_pixel_size(tif):
    """MetaMorph STK (UIC tags) or MetaSeries (MetaXpress) spatial calibration."""
    if tif.is_stk and tif.stk_metadata:
        meta = tif.stk_metadata
        x, y = meta.get("XCalibration"), meta.get("YCalibration")
        unit = str(meta.get("CalibrationUnits") or "")
        um = _um_per(unit.replace("micron", "um").strip()) if unit else None
        if x and y and um and x > 0 and y > 0:
            return (_clean(float(y) * um), _clean(float(x) * um)), "MetaMorph"
    if tif.is_metaseries and tif.metaseries_metadata:
        plane = tif.metaseries_metadata.get("PlaneInfo", {})
        x, y = plane.get("spatial-calibration-x"), plane.get("spatial-calibration-y")
        unit = str(plane.get("spatial-calibration-units") or "")
        um = _um_per(unit) if unit else None
        if x and y and um and float(x) > 0 and float(y) > 0:
            return (_clean(float(y) * um), _clean(float(x) * um)), "MetaMorph"
    return None


def _micromanager_pixel_size(tif):
    if not tif.is_micromanager or not tif.micromanager_metadata:
        return None
    summary = tif.micromanager_metadata.get("Summary", {}) or {}
    size = summary.get("PixelSize_um")
    try:
        size = float(size)
    except (TypeError, ValueError):
        return None
    return ((size, size), "Micro-Manager") if math.isfinite(size) and size > 0 else None


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


def _ome_pixel_size(pixels) -> tuple[float, float] | None:
    if "PhysicalSizeX" not in pixels.attrib:
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
