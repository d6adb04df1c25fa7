"""DeltaVision / Priism (``.dv``, ``.r3d``) through ``mrc`` (BSD-3, pure Python).

What a file becomes: one scene. The sections of the file are split into channels (the header's
wavelength count), Z and T planes in the order the header gives (``ImgSequence``). Channels are
``"CYX"`` (``"YX"`` for one), named after their emission wavelengths in nm ("525", "632") as
Bio-Formats does. Pixel size from the header's dx/dy (µm), origin ``"DV"``.

The pixels are uncompressed and memory-mapped (``mrc.DVFile``), so region reads touch only the
region and need no lock. Big-endian files are returned in native byte order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import Closing, SceneInfo, SliceScene, closed_on_error, reason

_INSTALL = 'reading DeltaVision files needs the package mrc (pip install "tilesapp[formats]").'
_MODES = {0, 1, 2, 3, 4, 5, 6, 7}


class DvScene(SliceScene):
    def __init__(self, owner: "DvFile", info: SceneInfo, axes: str):
        self.info = info
        self._owner = owner
        self._axes = axes  # memmap axes, e.g. "CTZYX"

    def _take(self, z: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        self._check_plane(z, t)
        info = self.info
        data = self._owner._data
        if data is None:
            raise ImageError(f"{info.name}: the file was closed.")
        index = tuple({"C": slice(None), "Z": z, "T": t, "Y": rows, "X": cols}[a] for a in self._axes)
        try:
            part = data[index]  # remaining axes: C, Y, X in memmap order
            kept = [a for a in self._axes if a in "CYX"]
            part = part.transpose([kept.index(a) for a in "YXC"])
            out = np.array(part, dtype=part.dtype.newbyteorder("="), order="C", copy=True)
        except Exception as exc:
            raise ImageError(f"{info.name}: cannot read the DeltaVision pixels ({reason(exc)}).") from exc
        return out


class DvFile(Closing):
    def __init__(self, path: Path, handle, data):
        self.path = path
        self._handle = handle
        self._data = data
        self.scenes: list[DvScene] = []

    def close(self) -> None:
        handle, self._handle, self._data = self._handle, None, None
        if handle is not None:
            try:
                handle.close()
            except Exception:
                pass  # a region copy still referencing the map: it closes when released


class DvReader:
    name = "dv"
    suffixes = (".dv", ".r3d")

    def sniff(self, head: bytes) -> bool:
        """The DV magic (0xC0A0 at byte 96) when the head is long enough, else the MRC header's shape."""
        if len(head) >= 98:
            return head[96:98] in (b"\xa0\xc0", b"\xc0\xa0")
        if len(head) < 64:
            return False
        for order in "<>":
            nx, ny, ns, mode = np.frombuffer(head[:16], dtype=f"{order}i4")
            dx, dy, dz, alpha, beta, gamma = np.frombuffer(head[40:64], dtype=f"{order}f4")
            if not (0 < nx < 1 << 20 and 0 < ny < 1 << 20 and 0 < ns < 1 << 24 and int(mode) in _MODES):
                continue
            angles = (alpha, beta, gamma)
            if all(np.isfinite(v) and 0 <= v < 1e6 for v in (dx, dy, dz)) and all(a in (0.0, 90.0) for a in angles):
                return True
        return False

    def open(self, path: Path) -> DvFile:
        path = Path(path)
        try:
            import mrc
        except ImportError as exc:
            raise ImageError(f"{path.name}: {_INSTALL}") from exc
        try:
            with open(path, "rb") as fh:
                head = fh.read(1024)
            if len(head) < 1024 or head[96:98] not in (b"\xa0\xc0", b"\xc0\xa0"):
                raise ImageError(f"{path.name}: this is not a DeltaVision file (no DV header).")
            handle = mrc.DVFile(str(path))
        except ImageError:
            raise
        except ValueError as exc:  # numpy: "mmap length is greater than file size"
            raise ImageError(f"{path.name}: the DeltaVision file is truncated ({reason(exc)}).") from exc
        except Exception as exc:
            raise ImageError(f"{path.name}: cannot open this DeltaVision file ({reason(exc)}).") from exc
        with closed_on_error(handle, path, "cannot read the DeltaVision header"):
            return self._describe(path, handle)

    def _describe(self, path: Path, handle) -> DvFile:
        hdr = handle.hdr
        if hdr.pixel_type not in (0, 1, 2, 5, 6, 7):
            raise ImageError(f"{path.name}: DeltaVision pixel mode {hdr.pixel_type} (complex) is not supported.")
        n_c, n_t = int(hdr.nc or 1), int(hdr.nt or 1)
        n_sections = int(hdr.n_sections)
        n_z = n_sections // (n_c * n_t)
        if n_z < 1 or n_z * n_c * n_t != n_sections:
            raise ImageError(
                f"{path.name}: the DeltaVision header is inconsistent ({n_sections} sections for {n_c} channels "
                f"× {n_t} time points)."
            )
        h, w = int(hdr.height), int(hdr.width)
        if hdr.nc and hdr.nt:
            data, axes = handle.data, handle.axes
        else:  # an old header with 0 channels or time points: map the sections ourselves
            data = np.memmap(str(path), handle.dtype, mode="r", offset=1024 + int(hdr.ext_hdr_len),
                             shape=(n_c, n_t, n_z, h, w))
            axes = "CTZYX"
        if tuple(data.shape) != tuple({"C": n_c, "T": n_t, "Z": n_z, "Y": h, "X": w}[a] for a in axes):
            raise ImageError(f"{path.name}: the DeltaVision header is inconsistent (shape {tuple(data.shape)}).")
        dtype = np.dtype(handle.dtype).newbyteorder("=")
        waves = [hdr.wave1, hdr.wave2, hdr.wave3, hdr.wave4, hdr.wave5][:n_c]
        # 0 = no wavelength; 999 is what writers put when they know none
        known = len(waves) == n_c and all(0 < v < 999 for v in waves)
        names = tuple(str(int(v)) for v in waves) if known else ()
        px = (float(hdr.dy), float(hdr.dx)) if hdr.dx > 0 and hdr.dy > 0 else None
        shape, s_axes = ((n_c, h, w), "CYX") if n_c > 1 else ((h, w), "YX")
        f = DvFile(path, handle, data)
        info = SceneInfo(
            path=path, shape=shape, axes=s_axes, dtype=dtype.name,
            pixel_size_um=px, calibration="DV" if px else None,
            channel_names=names, n_z=n_z, n_t=n_t, reader=self.name,
        )
        f.scenes = [DvScene(f, info, axes)]
        return f


READER = DvReader()
