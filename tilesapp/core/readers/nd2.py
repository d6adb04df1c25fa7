"""Nikon NIS-Elements ND2 (``.nd2``) through the ``nd2`` package (BSD-3).

What a file becomes:

- Every XY position (the ``P`` loop of a multipoint experiment) is one scene, named after the
  position when NIS-Elements named it. Z and T loops are planes (``n_z``, ``n_t``).
- Channels: ``"CYX"`` for several channels (``"YX"`` for one) with the names from the metadata;
  an RGB camera (3 components per channel, e.g. brightfield colour) gives ``"YXS"``.
- Pixel size from the ND2 volume calibration (µm), origin ``"ND2"``; ``None`` when NIS-Elements
  marks the axes as not calibrated.
- A custom (``U``) loop is read as T when there is no time loop, else the file is refused.
- Frames that the file's chunk map lacks (an acquisition stopped early) read as 0: a warning says
  how many.
- ND2 has no pyramid: the overview subsamples one frame. Uncompressed frames are memory-mapped by
  ``nd2``, so a region read touches only that region.

Frame reads share one file handle and are serialised with a lock.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import Closing, SceneInfo, SliceScene, closed_on_error, not_format, reason

_INSTALL = 'reading ND2 files needs the package nd2 (pip install "tilesapp[formats]").'
_MAGIC = (b"\xda\xce\xbe\x0a", b"\x00\x00\x00\x0c\x6a\x50\x20\x20")  # modern chunk header / legacy JPEG 2000


class Nd2Scene(SliceScene):
    """One XY position of an ND2 file."""

    def __init__(self, owner: "Nd2File", info: SceneInfo, position: int):
        self.info = info
        self._owner = owner
        self._position = position

    def _take(self, z: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        self._check_plane(z, t)
        return self._owner._read_frame(self._position, z, t, rows, cols)

    def chunk_rows(self) -> int:
        return self._owner._chunk_rows


class Nd2File(Closing):
    """An open ND2 file: ``scenes`` plus the shared ``nd2.ND2File`` handle."""

    def __init__(self, path: Path, handle):
        self.path = path
        self._nd2 = handle
        self._lock = threading.Lock()
        self.scenes: list[Nd2Scene] = []
        self._loop_axes: tuple[str, ...] = ()
        self._loop_shape: tuple[int, ...] = ()
        self._frame_layout = (1, 1, 1, 1)  # channelCount, Y, X, components per channel
        self._chunk_rows = 1

    def _read_frame(self, position: int, z: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        """A copy of frame (position, z, t)[rows, cols] as (rows, cols, channels)."""
        coords = [{"P": position, "Z": z, "T": t, "U": t}[axis] for axis in self._loop_axes]
        index = int(np.ravel_multi_index(coords, self._loop_shape)) if coords else 0
        n_c, h, w, cpc = self._frame_layout
        with self._lock:  # the frame may be a view of the file's memory map: copy before unlocking
            if self._nd2 is None:
                raise ImageError(f"{self.path.name}: the file was closed.")
            try:
                frame = np.asarray(self._nd2.read_frame(index))
                # read_frame gives (C, Y, X, S) with axes of size 1 squeezed: restore, then (Y, X, C·S)
                frame = frame.reshape(n_c, h, w, cpc)[:, rows, cols, :]
                out = frame.transpose(1, 2, 0, 3).reshape(frame.shape[1], frame.shape[2], n_c * cpc)
                return np.array(out, order="C", copy=True)
            except Exception as exc:
                raise ImageError(f"{self.path.name}: cannot read the ND2 pixels ({reason(exc)}).") from exc

    def close(self) -> None:
        with self._lock:
            handle, self._nd2 = self._nd2, None
        if handle is not None:
            try:
                handle.close()
            except Exception:
                pass


def _position_names(handle, count: int) -> list[str | None]:
    try:
        for loop in handle.experiment or ():
            if getattr(loop, "type", "") == "XYPosLoop":
                points = loop.parameters.points
                names = [getattr(p, "name", None) or None for p in points]
                if len(names) == count:
                    return names
    except Exception:
        pass
    return [None] * count


def _pixel_size(handle) -> tuple[float, float] | None:
    try:
        channels = handle.metadata.channels or []
    except Exception:
        channels = []
    if channels:
        volume = channels[0].volume
        calibrated = tuple(volume.axesCalibrated or ())
        cal = tuple(volume.axesCalibration or ())
        if len(calibrated) >= 2 and calibrated[0] and calibrated[1] and len(cal) >= 2 and cal[0] > 0 and cal[1] > 0:
            return (float(cal[1]), float(cal[0]))
        return None
    try:  # legacy files: no per-channel volume, only the reader's voxel size
        vs = handle.voxel_size()
    except Exception:
        return None
    if vs.x > 0 and vs.y > 0 and not (vs.x == 1.0 and vs.y == 1.0):
        return (float(vs.y), float(vs.x))
    return None


class Nd2Reader:
    name = "nd2"
    suffixes = (".nd2",)

    def sniff(self, head: bytes) -> bool:
        return head[:4] == _MAGIC[0] or head[:8] == _MAGIC[1]

    def open(self, path: Path) -> Nd2File:
        path = Path(path)
        try:
            import nd2
        except ImportError as exc:
            raise ImageError(f"{path.name}: {_INSTALL}") from exc
        try:
            handle = nd2.ND2File(str(path))
        except Exception as exc:
            not_nd2 = not_format(path, self.sniff, "an ND2 file", "an ND2 header")
            if not_nd2 is not None:  # the library says so with the file's path and the bytes it found
                raise not_nd2 from exc
            raise ImageError(f"{path.name}: cannot open this ND2 file, it may be damaged or truncated ({reason(exc)}).") from exc
        f = Nd2File(path, handle)
        with closed_on_error(f, path, "cannot read this ND2 file, it may be damaged or truncated"):
            self._describe(path, f, handle)
        return f

    def _describe(self, path: Path, f: Nd2File, handle) -> None:
        sizes = dict(handle.sizes)
        attrs = handle.attributes
        n_ch = int(attrs.channelCount or 1)
        cpc = int(attrs.componentCount) // n_ch
        h, w = int(attrs.heightPx), int(attrs.widthPx or 0)
        if h <= 0 or w <= 0:
            raise ImageError(f"{path.name}: the ND2 file holds no image (frame of {h}×{w} px).")
        dtype = np.dtype(handle.dtype)
        if dtype.kind not in "uif":
            raise ImageError(f"{path.name}: ND2 pixels of type {dtype} are not supported.")
        warnings: list[str] = []

        loop_axes = tuple(k for k in sizes if k not in ("C", "Y", "X", "S"))
        if "U" in loop_axes:
            if "T" in loop_axes:
                raise ImageError(f"{path.name}: the ND2 file has a custom loop besides a time loop, which is not supported.")
            warnings.append(f"a custom loop of {sizes['U']} frames is read as time (T)")
        # sizes drops axes of size 1, so every loop axis here has size > 1
        f._loop_axes = loop_axes
        f._loop_shape = tuple(int(sizes[k]) for k in loop_axes)
        f._frame_layout = (n_ch, h, w, cpc)
        f._chunk_rows = int(attrs.tileHeightPx or h)
        n_p = int(sizes.get("P", 1))
        n_z = int(sizes.get("Z", 1))
        n_t = int(sizes.get("T", sizes.get("U", 1)))

        expected = int(np.prod(f._loop_shape)) if f._loop_shape else 1
        try:
            present = len(handle._rdr._frame_offsets)  # private: the frames the chunk map lists
        except Exception:
            present = expected
        if present < expected:
            warnings.append(f"{expected - present} of {expected} frames are missing from the file and read as 0")

        if cpc in (3, 4) and n_ch == 1:
            shape, axes = (h, w, cpc), "YXS"
            names: tuple[str, ...] = ()
        else:
            c = n_ch * cpc
            shape, axes = ((c, h, w), "CYX") if c > 1 else ((h, w), "YX")
            try:
                names = tuple(str(ch.channel.name) for ch in (handle.metadata.channels or []))
            except Exception:
                names = ()
            if len(names) != c or not all(names):
                names = ()
        px = _pixel_size(handle)
        position_names = _position_names(handle, n_p)
        f.scenes = [
            Nd2Scene(f, SceneInfo(
                path=path, shape=shape, axes=axes, dtype=dtype.name,
                pixel_size_um=px, calibration="ND2" if px else None,
                scene=p, n_scenes=n_p, scene_name=position_names[p],
                channel_names=names, n_z=n_z, n_t=n_t, warnings=tuple(warnings), reader=self.name,
            ), p)
            for p in range(n_p)
        ]


READER = Nd2Reader()
