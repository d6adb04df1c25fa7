"""Leica LAS X / LAS AF (``.lif``) through ``liffile`` (BSD-3, Christoph Gohlke).

What a file becomes:

- Every image element of the project (also those nested in folders) is a source; FLIM/TCSPC
  elements are skipped with a warning. An image with a tile scan (``M``, "TileScan" of LAS X)
  gives **one scene per tile**: liffile does not stitch, and LAS X tiles overlap by a
  user-chosen margin, so a naive mosaic would be wrong. Each tile's scene name says which
  field (row, column) it is, and a warning says the tiles are not stitched. Other extra
  dimensions (wavelength sweeps λ/Λ, rotation A, loops L, ...) also give one scene per index.
- Z and T are planes (``n_z``, ``n_t``). An x-z or x-t scan (no Y dimension) is shown with Z or T
  as rows, with a warning.
- Channels: ``"CYX"`` (``"YX"`` for one); RGB images (3 samples) give ``"YXS"`` in RGB order.
  LIF stores no channel names (only LUT colours), so ``channel_names`` stays empty.
- Pixel size = Length / (NumberOfElements − 1) of the X and Y dimension descriptions (Leica's
  convention, as Bio-Formats and LAS X), in µm; origin ``"LIF"``.
- LIF pixels are stored uncompressed: the image is memory-mapped, so region reads and
  overviews touch only what they need and are thread-safe without a lock.
"""

from __future__ import annotations

import math
import threading
from itertools import product
from pathlib import Path

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import SceneInfo

_INSTALL = 'reading LIF files needs the package liffile (pip install "tilesapp[formats]").'
_UNIT_UM = {"m": 1e6, "mm": 1e3, "um": 1.0, "µm": 1.0, "\u03bcm": 1.0, "nm": 1e-3}
_PLANE_DIMS = ("Z", "T")
_FRAME_DIMS = ("Y", "X", "C", "S")
_DIM_NAMES = {"M": "tile", "λ": "emission λ", "Λ": "excitation Λ", "A": "rotation", "N": "slice", "Q": "slice", "L": "loop"}


def _short(exc: Exception) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(exc) or type(exc).__name__)
    return text if len(text) <= 160 else text[:157] + "..."


class LifScene:
    """One image (or one tile / extra index of an image) of a LIF file."""

    def __init__(self, owner: "LifFileHandle", info: SceneInfo, image, data, dims: tuple[str, ...],
                 row_axis: str, fixed: dict[str, int]):
        self.info = info
        self._owner = owner
        self._image = image
        self._data = data  # memory map of the whole image (dims order) or None → frame reads
        self._dims = dims
        self._row_axis = row_axis  # "Y", or "Z"/"T" for x-z / x-t scans
        self._fixed = fixed  # index along the scene dimensions (M, λ, ...)

    def _take(self, z: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        info = self.info
        if not (0 <= z < info.n_z and 0 <= t < info.n_t):
            raise ImageError(
                f"{info.name}: plane z={z}, t={t} does not exist (the image has {info.n_z} Z and {info.n_t} T planes)."
            )
        planes = {"Z": z, "T": t}
        try:
            if self._data is not None:
                index, kept = [], []
                for d in self._dims:
                    if d == self._row_axis:
                        index.append(rows)
                        kept.append("Y")
                    elif d == "X":
                        index.append(cols)
                        kept.append("X")
                    elif d in ("C", "S"):
                        index.append(slice(None))
                        kept.append(d)
                    elif d in planes:
                        index.append(planes[d])
                    else:
                        index.append(self._fixed.get(d, 0))
                part = self._data[tuple(index)]
                order = [kept.index(a) for a in ("Y", "X", "C", "S") if a in kept]
                part = part.transpose(order)
                if "Y" not in kept:  # a single line: the image is 1 row high
                    part = part[np.newaxis][rows]
            else:
                part = self._frames(z, t, rows, cols)
            h, w = part.shape[0], part.shape[1]
            out = np.array(part.reshape(h, w, -1), order="C", copy=True)
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"{info.name}: cannot read the LIF pixels ({_short(exc)}).") from exc
        return out

    def _frames(self, z: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        """Fallback without a memory map: liffile frame reads (whole frames, then cropped)."""
        if self._row_axis != "Y":
            raise ImageError(f"{self.info.name}: this x-z / x-t LIF image cannot be read without a memory map.")
        n_c = self._image.sizes.get("C", 1)
        parts = []
        with self._owner._lock:
            for c in range(n_c):
                idx = dict(self._fixed)
                for d, v in (("Z", z), ("T", t), ("C", c)):
                    if d in self._image.sizes:
                        idx[d] = v
                frame = self._image.frame(**idx)
                frame = frame[rows, cols]
                parts.append(frame if frame.ndim == 3 else frame[..., None])
        return np.concatenate(parts, axis=2)

    def read(self, y0: int, y1: int, x0: int, x1: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        h, w = self.info.shape_yx
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ValueError(f"region [{y0}:{y1}, {x0}:{x1}] is outside the {h}×{w} image")
        return self._take(z, t, slice(y0, y1), slice(x0, x1))

    def overview(self, max_side: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        h, w = self.info.shape_yx
        step = max(1, math.ceil(max(h, w) / max(1, max_side)))
        return self._take(z, t, slice(None, None, step), slice(None, None, step))

    def chunk_rows(self) -> int:
        return 1  # uncompressed and memory-mapped: any row is addressable


class LifFileHandle:
    """An open LIF file: ``scenes`` plus the liffile handle (kept for frame reads)."""

    def __init__(self, path: Path, lif):
        self.path = path
        self._lif = lif
        self._lock = threading.Lock()
        self.scenes: list[LifScene] = []

    def close(self) -> None:
        with self._lock:
            lif, self._lif = self._lif, None
            for scene in self.scenes:
                scene._data = None
        if lif is not None:
            try:
                lif.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _dimension_sizes_um(image) -> dict[str, float]:
    """µm per pixel along each spatial dimension, from the DimensionDescription elements."""
    ids = {"1": "X", "2": "Y", "3": "Z"}
    out: dict[str, float] = {}
    for dim in image.xml_element.findall("./Data/Image/ImageDescription/Dimensions/DimensionDescription"):
        label = ids.get(dim.attrib.get("DimID", ""))
        if label is None:
            continue
        try:
            n = int(dim.attrib["NumberOfElements"])
            length = abs(float(dim.attrib["Length"]))
            factor = _UNIT_UM.get(dim.attrib.get("Unit", "m").strip(), None)
        except (KeyError, ValueError):
            continue
        if factor is None or n < 2 or length <= 0:
            continue
        out[label] = length / (n - 1) * factor
    return out


class LifReader:
    name = "lif"
    suffixes = (".lif",)

    def sniff(self, head: bytes) -> bool:
        # LIF: int32 0x70 test value, int32 length, then 0x2A and the UTF-16 XML header
        return len(head) >= 9 and head[:4] == b"\x70\x00\x00\x00" and head[8:9] == b"\x2a"

    def open(self, path: Path) -> LifFileHandle:
        path = Path(path)
        try:
            import liffile
        except ImportError as exc:
            raise ImageError(f"{path.name}: {_INSTALL}") from exc
        try:
            lif = liffile.LifFile(str(path))
        except Exception as exc:
            raise ImageError(f"{path.name}: cannot open this LIF file, it may be damaged or truncated ({_short(exc)}).") from exc
        handle = LifFileHandle(path, lif)
        try:
            handle.scenes = self._scenes(path, handle, lif, liffile)
        except ImageError:
            handle.close()
            raise
        except Exception as exc:
            handle.close()
            raise ImageError(f"{path.name}: cannot read this LIF file, it may be damaged or truncated ({_short(exc)}).") from exc
        if not handle.scenes:
            handle.close()
            raise ImageError(f"{path.name}: the LIF file holds no image that can be read.")
        return handle

    def _scenes(self, path: Path, handle: LifFileHandle, lif, liffile) -> list[LifScene]:
        file_warnings: list[str] = []
        size_on_disk = path.stat().st_size
        images = []
        for image in lif.images:
            if getattr(image, "is_flim", False) or not isinstance(image, liffile.LifImage):
                file_warnings.append(f"FLIM element {image.path!r} skipped")
                continue
            images.append(image)

        planned = []
        for image in images:
            sizes = dict(image.sizes)
            dims = tuple(image.dims)
            if "X" not in sizes:
                file_warnings.append(f"element {image.path!r} skipped (no X dimension)")
                continue
            warnings: list[str] = []
            if "Y" in sizes:
                row_axis = "Y"
            elif "Z" in sizes or "T" in sizes:
                row_axis = "Z" if "Z" in sizes else "T"
                what = "Z (an x-z scan)" if row_axis == "Z" else "time (an x-t scan)"
                warnings.append(
                    f"line scan: {sizes[row_axis]} lines of {sizes['X']} px stacked as rows; rows are {what}, not Y"
                )
            else:
                row_axis = "Y"
                warnings.append("line scan: the image is 1 row high")
            h = int(sizes.get(row_axis, 1)) if row_axis in sizes else 1
            w = int(sizes["X"])
            n_z = int(sizes.get("Z", 1)) if row_axis != "Z" else 1
            n_t = int(sizes.get("T", 1)) if row_axis != "T" else 1
            n_c = int(sizes.get("C", 1))
            n_s = int(sizes.get("S", 1))
            scene_dims = [d for d in dims if d not in _FRAME_DIMS + _PLANE_DIMS and d != row_axis]

            try:
                dtypes = {c.dtype for c in image._channels}  # private: per-channel storage types
            except Exception:
                dtypes = set()
            if len(dtypes) > 1:
                raise ImageError(
                    f"{path.name}: image {image.path!r} mixes channel types ({', '.join(sorted(map(str, dtypes)))}), "
                    "which is not supported."
                )
            dtype = np.dtype(image.dtype)
            if dtype.kind not in "uif":
                raise ImageError(f"{path.name}: LIF pixels of type {dtype} are not supported.")
            block = image.memory_block
            if block.offset >= 0 and block.offset + block.size > size_on_disk:
                raise ImageError(
                    f"{path.name}: the LIF file is truncated (image {image.path!r} needs bytes up to "
                    f"{block.offset + block.size}, the file has {size_on_disk})."
                )
            # BGR images (liffile flips them to RGB in its frame reads) and layouts that cannot be
            # mapped are read frame by frame
            data = None
            if not getattr(image, "_is_bgr", False):
                try:
                    mm = image.asarray(out="memmap")
                    data = mm if isinstance(mm, np.memmap) else None
                except Exception:
                    data = None
            if data is not None and tuple(data.shape) != tuple(image.shape):
                data = None  # unexpected layout: frame reads
            if data is None and row_axis != "Y":
                raise ImageError(f"{path.name}: image {image.path!r} (an x-z / x-t scan) cannot be memory-mapped.")

            um = _dimension_sizes_um(image)
            row_um = um.get(row_axis)
            px = None
            if um.get("X"):
                px = (row_um if row_um else um["X"], um["X"])
            if n_s in (3, 4) and n_c == 1:
                shape, axes = (h, w, n_s), "YXS"
            elif n_c * n_s > 1:
                shape, axes = (n_c * n_s, h, w), "CYX"
            else:
                shape, axes = (h, w), "YX"

            combos = list(product(*(range(sizes[d]) for d in scene_dims))) or [()]
            tiles = None
            if "M" in scene_dims:
                n_m = sizes["M"]
                warnings.append(
                    f"tile scan of {n_m} tiles: each tile is its own scene (tiles are not stitched)"
                )
                try:
                    tiles = image.tilescan.tiles
                except Exception:
                    tiles = None
            for combo in combos:
                fixed = dict(zip(scene_dims, combo))
                label = image.path
                parts = []
                for d, v in fixed.items():
                    text = f"{_DIM_NAMES.get(d, d)} {v + 1}/{sizes[d]}"
                    if d == "M" and tiles is not None and len(tiles) == sizes["M"]:
                        text += f" (row {int(tiles[v]['field_y'])}, column {int(tiles[v]['field_x'])})"
                    parts.append(text)
                if parts:
                    label = f"{label} {', '.join(parts)}"
                planned.append((image, data, dims, row_axis, fixed, shape, axes, dtype, px, n_z, n_t, label, warnings))

        scenes = []
        for index, (image, data, dims, row_axis, fixed, shape, axes, dtype, px, n_z, n_t, label, warnings) in enumerate(planned):
            info = SceneInfo(
                path=path, shape=shape, axes=axes, dtype=dtype.name,
                pixel_size_um=px, calibration="LIF" if px else None,
                scene=index, n_scenes=len(planned), scene_name=label,
                channel_names=(), n_z=n_z, n_t=n_t,
                warnings=tuple(warnings + file_warnings), reader=self.name,
            )
            scenes.append(LifScene(handle, info, image, data, dims, row_axis, fixed))
        return scenes


READER = LifReader()
