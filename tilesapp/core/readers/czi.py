"""Zeiss CZI (``.czi``) through ``pylibCZIrw``, Zeiss's own reader (LGPL-3, a separate library).

What a file becomes:

- Every scene (``S``) is one :class:`CziScene`; a file without scenes is one scene. Mosaic tiles
  (``M``) are **stitched** into one scene by libCZI, which composes the tiles of the scene's
  bounding box at their stage positions (no blending: where tiles overlap the later one wins;
  gaps read as 0). A mosaic says so in ``SceneInfo.warnings``.
- Channels: grey pixel types (Gray8/16/32Float) give ``"CYX"`` (``"YX"`` for one channel);
  a colour pixel type (Bgr24/48/96Float, e.g. brightfield or a slide scanner) gives ``"YXS"`` in
  RGB order (libCZI stores BGR; it is flipped here).
- Z and T are planes (``n_z``, ``n_t``), read one at a time.
- A line scan (an image 1 row high with T or Z > 1, e.g. an LSM 980 x-t scan) is shown as the
  image a user expects, a kymograph: the scan lines stacked as rows (top = first line), with a
  warning that rows are time (or Z), not space.
- Pixel size from the CZI ``Scaling`` metadata (metres → µm), origin ``"CZI"``.
- Overviews come from libCZI's zoomed reads, which use the file's pyramid when it has one.

libCZI reads are serialised with a lock: the handle is shared by all scenes and threads.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import SceneInfo, closed_on_error, reason, thin_overview

_INSTALL = 'reading CZI files needs the package pylibCZIrw (pip install "tilesapp[formats]").'

# libCZI pixel type → (numpy dtype, samples per pixel)
_PIXEL_TYPES = {
    "Gray8": ("uint8", 1),
    "Gray16": ("uint16", 1),
    "Gray32Float": ("float32", 1),
    "Bgr24": ("uint8", 3),
    "Bgr48": ("uint16", 3),
    "Bgr96Float": ("float32", 3),
}
_GREY_ORDER = ("Gray8", "Gray16", "Gray32Float")  # widening order when channels differ
_COLOUR_OF = {"uint8": "Bgr24", "uint16": "Bgr48", "float32": "Bgr96Float"}
_MAX_CHANNELS = 4096  # a damaged directory can claim billions; spectral (λ) stacks have tens
_OTHER_DIMS = {"H": "phase (H)", "V": "view (V)", "I": "illumination (I)", "R": "rotation (R)", "B": "block (B)"}


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _get(tree, *keys):
    """tree[k1][k2]... or None when any level is missing (xmltodict gives dicts, lists or str)."""
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _check_layout(path: Path) -> None:
    """Raise ImageError when the file is not a CZI or its segments run past its end (truncated).

    libCZI opens a truncated file and only fails when a missing sub-block is read; this checks the
    file header, the sub-block directory and the last sub-block, metadata and attachment segments.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(112)
        if head[:10] != b"ZISRAWFILE":
            raise ImageError(f"{path.name}: this is not a CZI file (no ZISRAWFILE header).")
        if len(head) < 112:
            raise ImageError(f"{path.name}: the file is truncated ({size} bytes, less than a CZI file's header); copy it "
                             f"again.")
        file_part = struct.unpack_from("<i", head, 80)[0]
        dir_pos, meta_pos = struct.unpack_from("<qq", head, 84)
        att_pos = struct.unpack_from("<q", head, 104)[0]

        def segment(pos: int, kind: bytes) -> tuple[int, int]:
            """Check the segment at pos fits in the file; return where its data starts and its length."""
            if pos < 0 or pos + 32 > size:
                raise ImageError(
                    f"{path.name}: the CZI file is truncated or damaged ({kind.decode()} segment at byte "
                    f"{pos} lies past the end of the {size}-byte file)."
                )
            fh.seek(pos)
            seg = fh.read(32)
            if not seg.startswith(kind):
                raise ImageError(f"{path.name}: the CZI file is damaged (no {kind.decode()} segment at byte {pos}).")
            allocated, used = struct.unpack_from("<qq", seg, 16)
            end = pos + 32 + (used or allocated)
            if end > size:
                raise ImageError(
                    f"{path.name}: the CZI file is truncated ({kind.decode()} segment ends at byte {end}, "
                    f"the file has {size} bytes)."
                )
            return pos + 32, used or allocated

        if file_part != 0:  # one part of a multi-file CZI: leave the checks to libCZI
            return
        if meta_pos:
            segment(meta_pos, b"ZISRAWMETADATA")
        if att_pos:
            segment(att_pos, b"ZISRAWATTDIR")
        if not dir_pos:
            raise ImageError(f"{path.name}: the CZI file has no sub-block directory (damaged or still being written).")
        start, length = segment(dir_pos, b"ZISRAWDIRECTORY")
        fh.seek(start)
        directory = fh.read(length)
        count = struct.unpack_from("<i", directory, 0)[0] if len(directory) >= 4 else -1
        last, offset = -1, 128
        for _ in range(max(0, count)):
            # entry "DV": schema, pixel type, file position (int64 at +6), ..., dimension count at +28,
            # then 20 bytes per dimension
            if offset + 32 > len(directory) or directory[offset:offset + 2] != b"DV":
                raise ImageError(f"{path.name}: the CZI file's sub-block directory is damaged.")
            last = max(last, struct.unpack_from("<q", directory, offset + 6)[0])
            n_dims = struct.unpack_from("<i", directory, offset + 28)[0]
            if not 0 <= n_dims <= 64:
                raise ImageError(f"{path.name}: the CZI file's sub-block directory is damaged.")
            offset += 32 + 20 * n_dims
        if last >= 0:
            segment(last, b"ZISRAWSUBBLOCK")


def _plane_counts(path: Path, box: dict) -> tuple[int, int, int, list[str]]:
    """Channels, Z and T planes of the file's bounding box, and a warning per extra dimension.

    Only the first index of H, V, I, R and B is read: the engine has no axis for them.
    """
    n_c, n_z, n_t = (box.get(dim, (0, 1))[1] - box.get(dim, (0, 1))[0] for dim in "CZT")
    warnings: list[str] = []
    for dim, label in _OTHER_DIMS.items():
        lo, hi = box.get(dim, (0, 1))
        if hi - lo > 1:
            warnings.append(f"the file has {hi - lo} indices along {label}; only the first is read")
    if not (1 <= n_c <= _MAX_CHANNELS and n_z >= 1 and n_t >= 1):
        raise ImageError(
            f"{path.name}: the CZI file is damaged (it claims {n_c} channels, {n_z} Z and {n_t} T planes)."
        )
    return n_c, n_z, n_t, warnings


def _pixel_type(path: Path, reader, n_c: int) -> str:
    """The one libCZI pixel type every channel is read as.

    A scene is one array, so grey channels of different depths are widened to the deepest;
    colour channels cannot be mixed with grey ones or stacked (YXS has room for one).
    """
    types = {reader.get_channel_pixel_type(c) for c in range(n_c)}
    unknown = sorted(t for t in types if t not in _PIXEL_TYPES)
    if unknown:
        raise ImageError(f"{path.name}: the CZI pixel type {unknown[0]} is not supported.")
    colour = {t for t in types if _PIXEL_TYPES[t][1] == 3}
    if colour and len(types) > 1:
        raise ImageError(f"{path.name}: the CZI file mixes colour and grey channels, which is not supported.")
    if not colour:
        return max(types, key=_GREY_ORDER.index)
    if n_c > 1:
        raise ImageError(f"{path.name}: the CZI file has {n_c} colour (RGB) channels; only one is supported.")
    return colour.pop()


def _pixel_size(meta: dict) -> tuple[float, float] | None:
    """(y, x) in µm from the Scaling metadata; y falls back to x (square pixels) when absent."""
    scaling = {}
    for item in _as_list(_get(meta, "Scaling", "Items", "Distance")):
        try:
            scaling[item["@Id"]] = float(item["Value"]) * 1e6  # metres → µm
        except (KeyError, TypeError, ValueError):
            pass
    if scaling.get("X", 0) > 0:
        return (scaling["Y"] if scaling.get("Y", 0) > 0 else scaling["X"], scaling["X"])
    return None


def _channel_names(image: dict, n_c: int, samples: int) -> tuple[str, ...]:
    """Channel names, only when every channel has one (a colour image's samples are not channels)."""
    names = []
    for ch in _as_list(_get(image, "Dimensions", "Channels", "Channel")):
        if isinstance(ch, dict):
            names.append(str(ch.get("@Name") or ch.get("Name") or ""))
    return tuple(names) if len(names) == n_c and all(names) and samples == 1 else ()


def _scene_names(image: dict) -> dict[int, str]:
    """Scene index → name; a scene without an index takes its position in the list."""
    names: dict[int, str] = {}
    for sc in _as_list(_get(image, "Dimensions", "S", "Scenes", "Scene")):
        if isinstance(sc, dict) and sc.get("@Name"):
            try:
                names[int(sc.get("@Index", len(names)))] = str(sc["@Name"])
            except ValueError:
                pass
    return names


def _mosaic_warnings(image: dict) -> list[str]:
    """libCZI stitches mosaic tiles without blending: a user must know the seams are not averaged."""
    try:
        size_m = int(image.get("SizeM", 1) or 1)
    except (TypeError, ValueError):
        size_m = 1
    if size_m <= 1:
        return []
    return [
        f"mosaic of {size_m} tiles stitched at their stage positions (overlaps: the last tile wins, gaps read as 0)"
    ]


class _Rows(NamedTuple):
    """How a scene's rows map to the file: image rows, or scan lines along T or Z (a kymograph)."""

    height: int
    n_z: int
    n_t: int
    line_axis: str | None
    warnings: list[str]


def _rows(rect, n_z: int, n_t: int) -> _Rows:
    """A 1-row scene with T or Z planes is a line scan: its lines become the rows (see the module docstring)."""
    if rect.h != 1:
        return _Rows(rect.h, n_z, n_t, None, [])
    if not (n_t > 1 or n_z > 1):
        return _Rows(rect.h, n_z, n_t, None, ["line scan: the image is 1 row high"])
    line_axis = "T" if n_t > 1 else "Z"
    count = n_t if line_axis == "T" else n_z
    what = "time" if line_axis == "T" else "Z (an x-z scan)"
    warning = (
        f"line scan: {count} lines of {rect.w} px stacked as rows (a kymograph); rows are {what}, "
        "not space, and the pixel size given is the one along the line"
    )
    if line_axis == "T":
        return _Rows(count, n_z, 1, line_axis, [warning])
    return _Rows(count, 1, n_t, line_axis, [warning])


def _plane_shape(samples: int, n_c: int, h: int, w: int) -> tuple[tuple[int, ...], str]:
    if samples == 3:
        return (h, w, 3), "YXS"
    if n_c > 1:
        return (n_c, h, w), "CYX"
    return (h, w), "YX"


class CziScene:
    """One scene of a CZI file (see the module docstring for how the file is mapped)."""

    def __init__(self, owner: "CziFile", info: SceneInfo, rect, scene_id, pixel_type: str,
                 samples: int, n_c: int, line_axis: str | None):
        self.info = info
        self._owner = owner
        self._rect = rect  # libCZI Rectangle(x, y, w, h) of the scene, absolute coordinates
        self._scene_id = scene_id  # CZI scene index for libCZI, None when the file has no scenes
        self._pixel_type = pixel_type
        self._samples = samples
        self._n_c = n_c
        self._line_axis = line_axis  # "T" or "Z" for a line scan shown as a kymograph
        self._chunk = None

    # -- helpers --------------------------------------------------------------------------
    def _plane(self, c: int, z: int, t: int) -> dict:
        self._owner._check_plane(self.info, z, t)
        return {"C": c, "Z": z, "T": t}

    def _fetch(self, roi, plane, zoom=None) -> np.ndarray:
        """All channels of one ROI of one plane as (h, w, channels)."""
        parts = []
        for c in range(self._n_c):
            plane = dict(plane, C=c)
            a = self._owner._call(
                lambda rdr, plane=plane: rdr.read(roi=roi, plane=plane, scene=self._scene_id, zoom=zoom,
                                                  pixel_type=self._pixel_type)
            )
            parts.append(a[..., ::-1] if self._samples == 3 else a)  # BGR → RGB
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
        return np.ascontiguousarray(out)

    # -- contract -------------------------------------------------------------------------
    def read(self, y0: int, y1: int, x0: int, x1: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        h, w = self.info.shape_yx
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ValueError(f"region [{y0}:{y1}, {x0}:{x1}] is outside the {h}×{w} image")
        r = self._rect
        if self._line_axis is None:
            return self._fetch((r.x + x0, r.y + y0, x1 - x0, y1 - y0), self._plane(0, z, t))
        # kymograph: row k is scan line k along T (or Z)
        self._owner._check_plane(self.info, z, t)
        rows = []
        for k in range(y0, y1):
            plane = {"C": 0, "Z": z, "T": t, self._line_axis: k}
            rows.append(self._fetch((r.x + x0, r.y, x1 - x0, 1), plane))
        return np.ascontiguousarray(np.concatenate(rows, axis=0))

    def overview(self, max_side: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        if self._line_axis is not None:
            return thin_overview(self, max_side, z=z, t=t)
        h, w = self.info.shape_yx
        r = self._rect
        zoom = min(1.0, max(1, max_side) / max(h, w))
        out = self._fetch((r.x, r.y, r.w, r.h), self._plane(0, z, t), zoom=None if zoom >= 1.0 else zoom)
        if max(out.shape[:2]) > max(max_side, 1):  # libCZI rounding: never exceed max_side
            out = np.ascontiguousarray(out[:max_side, :max_side])
        return out

    def chunk_rows(self) -> int:
        if self._chunk is None:
            if self._line_axis is not None:
                self._chunk = 1
            else:
                self._chunk = self._owner._subblock_rows(self.info.shape_yx[0])
        return self._chunk


class CziFile:
    """An open CZI file: ``scenes`` plus the shared libCZI handle."""

    def __init__(self, path: Path, reader):
        self.path = path
        self._reader = reader
        self._lock = threading.Lock()
        self.scenes: list[CziScene] = []

    def _call(self, fn):
        with self._lock:
            if self._reader is None:
                raise ImageError(f"{self.path.name}: the file was closed.")
            try:
                return fn(self._reader)
            except ImageError:
                raise
            except Exception as exc:  # libCZI raises RuntimeError, ValueError, ...
                raise ImageError(f"{self.path.name}: cannot read the CZI pixels ({reason(exc)}).") from exc

    def _check_plane(self, info: SceneInfo, z: int, t: int) -> None:
        if not (0 <= z < info.n_z and 0 <= t < info.n_t):
            raise ImageError(
                f"{self.path.name}: plane z={z}, t={t} does not exist (the image has {info.n_z} Z and {info.n_t} T planes)."
            )

    def _subblock_rows(self, height: int) -> int:
        """Height of the first full-resolution sub-block: the file's storage tile height."""
        found = []

        def first(_index, info) -> bool:
            if info.get_zoom() == 1.0:
                found.append(int(info.logicalRect.h))
                return False  # stop enumerating
            return True

        try:
            self._call(lambda rdr: rdr.enumerate_subblocks(first))
        except ImageError:
            return 1
        return max(1, min(height, found[0])) if found else 1

    def close(self) -> None:
        with self._lock:
            reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.close()
            except Exception:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class CziReader:
    name = "czi"
    suffixes = (".czi",)

    def sniff(self, head: bytes) -> bool:
        return head[:10] == b"ZISRAWFILE"

    def open(self, path: Path) -> CziFile:
        path = Path(path)
        try:
            from pylibCZIrw import czi as pyczi
        except ImportError as exc:
            raise ImageError(f"{path.name}: {_INSTALL}") from exc
        try:
            _check_layout(path)
            reader = pyczi.CziReader(str(path))
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"{path.name}: cannot open this CZI file, it may be damaged ({reason(exc)}).") from exc
        czi = CziFile(path, reader)
        with closed_on_error(czi, path, "cannot read the CZI metadata, the file may be damaged"):
            czi.scenes = self._scenes(path, czi, reader)
        return czi

    def _scenes(self, path: Path, czi: CziFile, reader) -> list[CziScene]:
        """One CziScene per scene of the file (the whole bounding box when it has no scenes)."""
        n_c, n_z, n_t, warnings = _plane_counts(path, reader.total_bounding_box)
        pixel_type = _pixel_type(path, reader, n_c)
        dtype, samples = _PIXEL_TYPES[pixel_type]
        meta = _get(reader.metadata, "ImageDocument", "Metadata") or {}
        image = _get(meta, "Information", "Image") or {}
        px = _pixel_size(meta)
        channel_names = _channel_names(image, n_c, samples)
        scene_names = _scene_names(image)
        warnings += _mosaic_warnings(image)

        rects = reader.scenes_bounding_rectangle
        ids = sorted(rects) if rects else [None]
        scenes = []
        for index, sid in enumerate(ids):
            rect = rects[sid] if sid is not None else reader.total_bounding_rectangle
            if rect.w <= 0 or rect.h <= 0:
                raise ImageError(f"{path.name}: the CZI file holds no image (empty bounding box).")
            rows = _rows(rect, n_z, n_t)
            shape, axes = _plane_shape(samples, n_c, rows.height, rect.w)
            info = SceneInfo(
                path=path, shape=shape, axes=axes, dtype=dtype,
                pixel_size_um=px, calibration="CZI" if px else None,
                scene=index, n_scenes=len(ids),
                scene_name=scene_names.get(sid) if sid is not None else None,
                channel_names=channel_names, n_z=rows.n_z, n_t=rows.n_t,
                warnings=tuple(warnings + rows.warnings), reader=self.name,
            )
            scenes.append(CziScene(czi, info, rect, sid, pixel_type, samples, max(1, n_c), rows.line_axis))
        return scenes

READER = CziReader()
