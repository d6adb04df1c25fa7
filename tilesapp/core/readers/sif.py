"""Andor Solis SIF (``.sif``, "Andor Technology Multi-Channel File") through ``sif_parser`` (BSD-3).

What a file becomes: one scene, ``"YX"`` float32 (Solis stores counts as 32-bit floats), the
frames of a kinetic series as T planes (``n_t``). A SIF file records the camera, binning and
exposure but **no spatial calibration** (there is no magnification in it), so ``pixel_size_um`` is
``None`` and a warning says to enter it. A spectrum (1 row after full vertical binning) is shown as
a 1-row image, with a warning.

The header is parsed by ``sif_parser`` through a file object that raises at the end of the file
(sif_parser's own word reader would loop forever on a file cut inside its header); the frames are
memory-mapped, so reads touch only the region and need no lock.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import Closing, SceneInfo, SliceScene, reason

_INSTALL = 'reading Andor SIF files needs the package sif_parser (pip install "tilesapp[formats]").'
_MAGIC = b"Andor Technology Multi-Channel File"


class _Bounded(io.BufferedReader):
    """A file whose read()/readline() raise EOFError instead of returning nothing at the end."""

    def read(self, size=-1):
        data = super().read(size)
        if size != 0 and not data:
            raise EOFError("the file ends inside the SIF header")
        return data

    def readline(self, size=-1):
        data = super().readline(size)
        if size != 0 and not data:
            raise EOFError("the file ends inside the SIF header")
        return data


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    return str(value).strip()


class SifScene(SliceScene):
    def __init__(self, owner: "SifFile", info: SceneInfo):
        self.info = info
        self._owner = owner

    def _take(self, z: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        self._check_plane(z, t)
        info = self.info
        data = self._owner._data
        if data is None:
            raise ImageError(f"{info.name}: the file was closed.")
        try:
            part = data[t, rows, cols]
            return np.array(part[..., None], dtype=np.float32, order="C", copy=True)
        except Exception as exc:
            raise ImageError(f"{info.name}: cannot read the SIF pixels ({reason(exc)}).") from exc


class SifFile(Closing):
    def __init__(self, path: Path, data: np.ndarray):
        self.path = path
        self._data = data
        self.scenes: list[SifScene] = []

    def close(self) -> None:
        self._data = None  # the memory map closes when the last region copy is released


class SifReader:
    name = "sif"
    suffixes = (".sif",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(_MAGIC)

    def open(self, path: Path) -> SifFile:
        path = Path(path)
        try:
            import sif_parser
        except ImportError as exc:
            raise ImageError(f"{path.name}: {_INSTALL}") from exc
        try:
            with open(path, "rb") as fh:
                if not fh.read(len(_MAGIC)) == _MAGIC:
                    raise ImageError(f"{path.name}: this is not an Andor SIF file (no SIF header).")
            with _Bounded(io.FileIO(str(path), "rb")) as fp:
                try:
                    data, meta = sif_parser.np_open(fp, lazy="memmap")
                except ValueError as exc:
                    if "contiguous" not in str(exc):
                        raise
                    fp.seek(0)
                    data, meta = sif_parser.np_open(fp)  # frames not back to back: load them
        except ImageError:
            raise
        except (ValueError, EOFError, OSError) as exc:
            raise ImageError(f"{path.name}: the SIF file is truncated or damaged ({reason(exc)}).") from exc
        except Exception as exc:  # sif_parser raises SyntaxError, IndexError, UnicodeDecodeError, ...
            raise ImageError(f"{path.name}: cannot read this SIF file ({reason(exc)}).") from exc

        if data.ndim != 3 or min(data.shape) < 1:
            raise ImageError(f"{path.name}: the SIF file holds no image (frames of shape {tuple(data.shape)}).")
        n_t, h, w = (int(v) for v in data.shape)
        detector = _text(meta.get("DetectorType", "")) or "camera"
        xbin, ybin = meta.get("xbin", 1), meta.get("ybin", 1)
        warnings = []
        hint = (f"Andor SIF files never do: it is the camera's pixel size × binning ÷ magnification, here a "
                f"{detector} at binning {xbin}×{ybin}")
        if h == 1:
            axis = _text(meta.get("FrameAxis", "")) or "pixel number"
            warnings.append(f"line data: the image is 1 row high (a spectrum? X axis: {axis})")
        f = SifFile(path, data)
        info = SceneInfo(
            path=path, shape=(h, w), axes="YX", dtype="float32", pixel_size_um=None, calibration=None,
            n_t=n_t, warnings=tuple(warnings), reader=self.name, calibration_hint=hint,
        )
        f.scenes = [SifScene(f, info)]
        return f


READER = SifReader()
