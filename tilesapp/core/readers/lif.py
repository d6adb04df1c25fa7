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

import threading
from itertools import product
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import Closing, SceneInfo, SliceScene, closed_on_error, not_format, reason

_INSTALL = 'reading LIF files needs the package liffile (pip install "tilesapp[formats]").'
_UNIT_UM = {"m": 1e6, "mm": 1e3, "um": 1.0, "µm": 1.0, "\u03bcm": 1.0, "nm": 1e-3}
_PLANE_DIMS = ("Z", "T")
_FRAME_DIMS = ("Y", "X", "C", "S")
_DIM_NAMES = {"M": "tile", "λ": "emission λ", "Λ": "excitation Λ", "A": "rotation", "N": "slice", "Q": "slice", "L": "loop"}


class LifScene(SliceScene):
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
        self._check_plane(z, t)
        info = self.info
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
            raise ImageError(f"{info.name}: cannot read the LIF pixels ({reason(exc)}).") from exc
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


class LifFileHandle(Closing):
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


class _Plan(NamedTuple):
    """One scene to be, before the whole file is listed (its index and the file's warnings come last)."""

    image: object
    data: np.ndarray | None
    dims: tuple[str, ...]
    row_axis: str
    fixed: dict[str, int]
    fields: dict  # SceneInfo fields but scene, n_scenes, warnings and reader
    warnings: list[str]


def _plan_image(path: Path, image, size_on_disk: int) -> list[_Plan]:
    """The scenes of one image element: one per index of its extra dimensions (tiles, λ, ...)."""
    sizes = dict(image.sizes)
    dims = tuple(image.dims)
    row_axis, warnings = _row_axis(sizes)
    h = int(sizes.get(row_axis, 1)) if row_axis in sizes else 1
    w = int(sizes["X"])
    n_z = int(sizes.get("Z", 1)) if row_axis != "Z" else 1
    n_t = int(sizes.get("T", 1)) if row_axis != "T" else 1
    n_c = int(sizes.get("C", 1))
    n_s = int(sizes.get("S", 1))
    scene_dims = [d for d in dims if d not in _FRAME_DIMS + _PLANE_DIMS and d != row_axis]

    dtype = _dtype(path, image)
    _check_not_truncated(path, image, size_on_disk)
    data = _memory_map(path, image, row_axis)
    px = _pixel_size(image, row_axis)
    shape, axes = _plane_shape(n_c, n_s, h, w)
    fields = dict(
        path=path, shape=shape, axes=axes, dtype=dtype.name,
        pixel_size_um=px, calibration="LIF" if px else None,
        channel_names=(), n_z=n_z, n_t=n_t,
    )
    if "M" in scene_dims:
        warnings.append(f"tile scan of {sizes['M']} tiles: each tile is its own scene (tiles are not stitched)")
    return [
        _Plan(image, data, dims, row_axis, fixed, dict(fields, scene_name=label), warnings)
        for fixed, label in _scene_labels(image, sizes, scene_dims)
    ]


def _row_axis(sizes: dict[str, int]) -> tuple[str, list[str]]:
    """The dimension shown as rows: Y, or Z / T for an x-z / x-t scan, which has no Y."""
    if "Y" in sizes:
        return "Y", []
    if "Z" in sizes or "T" in sizes:
        row_axis = "Z" if "Z" in sizes else "T"
        what = "Z (an x-z scan)" if row_axis == "Z" else "time (an x-t scan)"
        lines = f"{sizes[row_axis]} lines of {sizes['X']} px"
        return row_axis, [f"line scan: {lines} stacked as rows; rows are {what}, not Y"]
    return "Y", ["line scan: the image is 1 row high"]


def _dtype(path: Path, image) -> np.dtype:
    """The pixel type of every channel; a scene is one array, so channels must agree."""
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
    return dtype


def _check_not_truncated(path: Path, image, size_on_disk: int) -> None:
    """Raise ImageError when the image's pixels would run past the end of the file."""
    block = image.memory_block
    if block.offset >= 0 and block.offset + block.size > size_on_disk:
        raise ImageError(
            f"{path.name}: the LIF file is truncated (image {image.path!r} needs bytes up to "
            f"{block.offset + block.size}, the file has {size_on_disk})."
        )


def _memory_map(path: Path, image, row_axis: str) -> np.memmap | None:
    """The whole image memory-mapped in its dims order, or None to read it frame by frame."""
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
    return data


def _pixel_size(image, row_axis: str) -> tuple[float, float] | None:
    """(rows, x) in µm; rows fall back to x when the row dimension has no length."""
    um = _dimension_sizes_um(image)
    row_um = um.get(row_axis)
    if um.get("X"):
        return (row_um if row_um else um["X"], um["X"])
    return None


def _plane_shape(n_c: int, n_s: int, h: int, w: int) -> tuple[tuple[int, ...], str]:
    if n_s in (3, 4) and n_c == 1:
        return (h, w, n_s), "YXS"
    if n_c * n_s > 1:
        return (n_c * n_s, h, w), "CYX"
    return (h, w), "YX"


def _scene_labels(image, sizes: dict[str, int], scene_dims: list[str]) -> list[tuple[dict[str, int], str]]:
    """(index along each scene dimension, scene name) for every scene of an image.

    A tile's name carries its field (row, column) so that a user can find it in LAS X.
    """
    tiles = None
    if "M" in scene_dims:
        try:
            tiles = image.tilescan.tiles
        except Exception:
            tiles = None
    labels = []
    for combo in list(product(*(range(sizes[d]) for d in scene_dims))) or [()]:
        fixed = dict(zip(scene_dims, combo))
        parts = []
        for d, v in fixed.items():
            text = f"{_DIM_NAMES.get(d, d)} {v + 1}/{sizes[d]}"
            if d == "M" and tiles is not None and len(tiles) == sizes["M"]:
                text += f" (row {int(tiles[v]['field_y'])}, column {int(tiles[v]['field_x'])})"
            parts.append(text)
        labels.append((fixed, f"{image.path} {', '.join(parts)}" if parts else image.path))
    return labels


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
            not_lif = not_format(path, self.sniff, "a Leica LIF file", "a LIF header")
            if not_lif is not None:
                raise not_lif from exc
            raise ImageError(f"{path.name}: cannot open this LIF file, it may be damaged or truncated ({reason(exc)}).") from exc
        handle = LifFileHandle(path, lif)
        with closed_on_error(handle, path, "cannot read this LIF file, it may be damaged or truncated"):
            handle.scenes = self._scenes(path, handle, lif, liffile)
        if not handle.scenes:
            handle.close()
            raise ImageError(f"{path.name}: the LIF file holds no image that can be read.")
        return handle

    def _scenes(self, path: Path, handle: LifFileHandle, lif, liffile) -> list[LifScene]:
        """Every scene of every readable image element; what was skipped is said in every scene."""
        file_warnings: list[str] = []
        size_on_disk = path.stat().st_size
        images = []
        for image in lif.images:
            if getattr(image, "is_flim", False) or not isinstance(image, liffile.LifImage):
                file_warnings.append(f"FLIM element {image.path!r} skipped")
                continue
            images.append(image)

        planned: list[_Plan] = []
        for image in images:
            if "X" not in image.sizes:
                file_warnings.append(f"element {image.path!r} skipped (no X dimension)")
                continue
            planned += _plan_image(path, image, size_on_disk)

        scenes = []
        for index, plan in enumerate(planned):
            info = SceneInfo(
                **plan.fields, scene=index, n_scenes=len(planned),
                warnings=tuple(plan.warnings + file_warnings), reader=self.name,
            )
            scenes.append(LifScene(handle, info, plan.image, plan.data, plan.dims, plan.row_axis, plan.fixed))
        return scenes

READER = LifReader()
