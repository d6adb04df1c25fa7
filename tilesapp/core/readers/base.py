"""The reader contract: a file (or an ``X.zarr`` folder) opens into scenes; a scene knows its
axes, shape, dtype, channel names and pixel size from metadata, and reads regions of one plane.

Everything downstream sees pixels as ``(rows, cols, channels)`` ("YXC"); :func:`to_yxc` and
:func:`from_yxc` convert from and to a scene's own axes (YX, YXS for colour samples, CYX for
channels). Z and T planes are read one at a time; the engine projects or selects them.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from tilesapp.core.errors import ImageError

#: Axes a scene's planes may have: grey, colour samples, channels.
PLANE_AXES = ("YX", "YXS", "CYX")


@dataclass(frozen=True)
class SceneInfo:
    """What one scene of a file holds, from metadata alone (no pixels).

    ``shape`` is in the order of ``axes`` (one of YX, YXS, CYX); ``pixel_size_um`` is
    ``(y, x)`` in µm, or None when the file carries no calibration; ``calibration`` says where
    the pixel size came from ("OME", "ImageJ", "TIFF tags", "CZI", ...). ``calibration_hint``: for
    a file that carries none, where to find it (a clause: said while the image has no pixel
    size, never once one is given or calibration is off).
    """

    path: Path
    shape: tuple[int, ...]
    axes: str
    dtype: str
    pixel_size_um: tuple[float, float] | None = None
    calibration: str | None = None
    scene: int = 0
    n_scenes: int = 1
    scene_name: str | None = None
    channel_names: tuple[str, ...] = ()
    n_z: int = 1
    n_t: int = 1
    warnings: tuple[str, ...] = field(default=())
    reader: str = ""
    calibration_hint: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def shape_yx(self) -> tuple[int, int]:
        return (self.shape[self.axes.index("Y")], self.shape[self.axes.index("X")])

    @property
    def channels(self) -> int:
        return 1 if self.axes == "YX" else self.shape[0 if self.axes == "CYX" else 2]

    @property
    def nbytes(self) -> int:
        """Bytes of one plane's pixels in memory."""
        rows, cols = self.shape_yx
        return rows * cols * self.channels * np.dtype(self.dtype).itemsize


@runtime_checkable
class Scene(Protocol):
    """One image of a file: regions of a chosen plane, and a reduced overview."""

    info: SceneInfo

    def read(self, y0: int, y1: int, x0: int, x1: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of plane ``(z, t)``: (rows, cols, channels) in the file's dtype,
        C-contiguous, a copy the caller may modify. Raises :class:`ImageError` naming the file."""

    def overview(self, max_side: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        """A reduced (rows', cols', channels) view, longer side about ``max_side`` at most,
        standing for the whole plane (a pyramid level when there is one, else :func:`thin_overview`)."""

    def chunk_rows(self) -> int:
        """Rows per storage chunk: reads aligned on them decode each chunk once (1: unknown)."""


class ImageFile(Protocol):
    """An opened file: its scenes (never thumbnails, labels, macro photos or pyramid levels)."""

    scenes: list[Scene]

    def close(self) -> None: ...

    def __enter__(self) -> ImageFile: ...

    def __exit__(self, *exc) -> None: ...


class Reader(Protocol):
    """A format: which names it claims, how to recognise its bytes, how to open a file. A
    format whose images are folders (X.zarr) says so with a true ``folders`` attribute; for
    the others, a folder with one of their suffixes is a folder."""

    name: str
    suffixes: tuple[str, ...]

    def sniff(self, head: bytes) -> bool:
        """True when the first bytes of a file are this format's magic."""

    def open(self, path: Path) -> ImageFile:
        """Open ``path``; :class:`ImageError` with one readable sentence when it cannot be read."""


class BaseFile:
    """An :class:`ImageFile` holding a list of scenes and a close callback."""

    def __init__(self, scenes: list[Scene], close=None):
        self.scenes = scenes
        self._close = close

    def close(self) -> None:
        if self._close is not None:
            close, self._close = self._close, None
            close()

    def __enter__(self) -> BaseFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_region(info: SceneInfo, y0: int, y1: int, x0: int, x1: int, z: int = 0, t: int = 0) -> None:
    """Raise ValueError for a region or plane outside the scene (a bug of the caller)."""
    rows, cols = info.shape_yx
    if not (0 <= y0 <= y1 <= rows and 0 <= x0 <= x1 <= cols):
        raise ValueError(f"region [{y0}:{y1}, {x0}:{x1}] outside an image of {rows} × {cols}")
    if not (0 <= z < info.n_z and 0 <= t < info.n_t):
        raise ValueError(f"plane z={z}, t={t} outside a scene of {info.n_z} × {info.n_t} planes")


def thin_overview(scene: Scene, max_side: int, *, z: int = 0, t: int = 0) -> np.ndarray:
    """Every n-th pixel of a plane, read band by band so memory stays bounded."""
    rows, cols = scene.info.shape_yx
    step = max(1, math.ceil(max(rows, cols) / max_side))
    if step == 1:
        return scene.read(0, rows, 0, cols, z=z, t=t)
    band = step * max(1, math.ceil(max(scene.chunk_rows(), 256) / step))
    parts = [np.ascontiguousarray(scene.read(y, min(rows, y + band), 0, cols, z=z, t=t)[::step, ::step])
             for y in range(0, rows, band)]
    return np.concatenate(parts, axis=0)


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


def pixel_type_error(info_name: str, dtype: np.dtype) -> ImageError:
    return ImageError(f"{info_name}: pixel type {dtype} is not supported; use integer or float pixels.")


def reason(exc: BaseException) -> str:
    """The first line of an exception's message, for a sentence shown to a user: printable
    (vendor libraries' messages can hold binary junk from a damaged file), at most 200
    characters, without a final full stop."""
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    text = "".join(ch if ch.isprintable() else "?" for ch in text.splitlines()[0])
    return text if len(text) <= 200 else text[:197] + "..."


def not_format(path: Path, sniff, what: str, header: str) -> ImageError | None:
    """The error for a file that ``sniff`` says is not of its format (a damaged file, or another
    format under this name), or None when its first bytes are the format's or cannot be read
    (the reader's own error then says more)."""
    try:
        with open(path, "rb", buffering=0) as fh:
            head = read_upto(fh, 64)
    except OSError:
        return None
    if sniff(head):
        return None
    suffix = "".join(path.suffixes[-2:]) if path.name.lower().endswith(".ome.tif") else path.suffix
    return ImageError(f"{path.name}: this is not {what} (its first bytes are not {header}); it is damaged, or another "
                      f"format named {suffix}.")


def read_upto(fh, n: int) -> bytes:
    """Up to ``n`` bytes from a binary file opened unbuffered (``buffering=0``): fewer only at its
    end. An unbuffered open saves a buffered one's terminal check and seek (system calls a folder
    of small images pays per file, each a handover of the GIL), but its reads may come short."""
    parts, got = [], 0
    while got < n:
        part = fh.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


@contextlib.contextmanager
def closed_on_error(handle, path: Path, problem: str):
    """Describe an opened file in the block; on any failure close ``handle`` and raise
    :class:`ImageError` — as it is, or as "<file>: <problem> (<why>)." for a library's error."""
    try:
        yield handle
    except ImageError:
        handle.close()
        raise
    except Exception as exc:
        handle.close()
        raise ImageError(f"{path.name}: {problem} ({reason(exc)}).") from exc


class SliceScene:
    """Regions and overviews of a scene that reads a plane with slices: subclasses implement
    ``_take(z, t, rows, cols)`` (slices of rows and columns of plane ``(z, t)``, as
    (rows, cols, channels), a copy)."""

    info: SceneInfo

    def _take(self, z: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        raise NotImplementedError

    def _check_plane(self, z: int, t: int) -> None:
        info = self.info
        if not (0 <= z < info.n_z and 0 <= t < info.n_t):
            raise ImageError(
                f"{info.name}: plane z={z}, t={t} does not exist (the image has {info.n_z} Z and {info.n_t} T planes)."
            )

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
        return 1  # any row is addressable


class Closing:
    """A context manager that calls ``close()`` when the block ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
