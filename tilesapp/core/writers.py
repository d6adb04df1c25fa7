"""Writing images: a temporary name first, then an atomic rename to the final name.

A crash or a cancel can therefore leave only ``.<name>.<pid>-<n>.partial`` files (and
``.tilesapp-<pid>-<n>.partial`` folders of tiles) behind, never a half-written file under a
final name. Temporary files are created exclusively, so a file or link someone planted in the
folder is never written through.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import shutil
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import tifffile

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
_counter = itertools.count()
_pid = os.getpid()  # a system call per tile otherwise; a forked child takes its own


def _forked() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _create_free(folder: str, prefix: str, create):
    """``create(path)`` at the first free ``<folder>/<prefix><pid>-<n>.partial`` (a name taken,
    by a planted file or link too, makes the next one be tried): the path and what it gave."""
    for _ in range(100):
        path = os.path.join(folder, f"{prefix}{_pid}-{next(_counter)}{PARTIAL_SUFFIX}")
        try:
            return path, create(path)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")  # pragma: no cover - a hundred planted names


class Staged:
    """A temporary file beside ``path``, created exclusively (``O_EXCL``: a file or link planted
    at its name makes another name be tried, never written through); :meth:`commit` renames it
    to ``path``, :meth:`discard` removes it. Bytes go straight to the descriptor
    (:meth:`write`); :attr:`file` opens a Python file object on it for writers that need one."""

    def __init__(self, path: str | Path):
        self.path = os.fspath(path)
        folder, name = os.path.split(self.path)
        self.tmp, self.fd = _create_free(folder, f".{name}.", lambda tmp: os.open(tmp, _CREATE, 0o666))
        self._file: BinaryIO | None = None

    @property
    def file(self) -> BinaryIO:
        if self._file is None:
            self._file = os.fdopen(self.fd, "wb")
            self._file.raw.name = self.tmp  # writers such as tifffile look at the file's name
        return self._file

    def write(self, data) -> None:
        if self._file is not None:
            self._file.write(data)
            return
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(self.fd, view):]

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        else:
            os.close(self.fd)

    def commit(self) -> None:
        self._close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        try:
            self._close()
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


@contextmanager
def staged(path: str | Path) -> Iterator[Staged]:
    """A :class:`Staged` file for ``path``: renamed to ``path`` when the block ends, removed when
    it fails, so no half-written file ever stands under a final name."""
    file = Staged(path)
    try:
        yield file
    except BaseException:
        file.discard()
        raise
    file.commit()


@contextmanager
def atomic(path: str | Path) -> Iterator[BinaryIO]:
    """Like :func:`staged`, yielding an open binary file object."""
    with staged(path) as file:
        yield file.file


def write_image(
    path: str | Path,
    array: np.ndarray,
    axes: str,
    pixel_size_um: tuple[float, float] | None = None,
    compression: str | None = None,
) -> None:
    """Write ``array`` (in ``axes`` order: YX, YXS or CYX) to ``path``, atomically.

    The format follows the suffix (.tif/.tiff, .png, .jpg/.jpeg). TIFFs carry the pixel size
    (ImageJ metadata in µm when ImageJ can read the layout, resolution tags in cm otherwise).
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".tif", ".tiff"):
        with atomic(path) as fh:
            _write_tiff(fh, array, axes, pixel_size_um, compression)
    else:
        data = encode(array, axes, suffix)  # before the temporary file: a failed encode leaves none
        with staged(path) as file:
            file.write(data)


def write_text(path: str | Path, text: str) -> None:
    """Write a small text file atomically (temporary name, then rename)."""
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write a small file atomically (temporary name, then rename)."""
    with staged(path) as file:
        file.write(data)


class TileWriter:
    """Writes many tiles of one layout fast: the TIFF header is built once, not per tile.

    tifffile's per-file Python work (building tags, ImageJ metadata) costs about as much as
    writing a 1 MB tile and holds the GIL. An uncompressed TIFF of a given shape, dtype, axes
    and pixel size is the same bytes around a contiguous block of pixels, so the first tile of
    a layout is written by tifffile twice in memory (two different arrays) to find that frame,
    and later tiles are written as frame + pixels. Layouts whose frame cannot be verified
    go through :func:`write_image`.

    A PNG/JPEG tile is written whole by OpenCV in one call (encode, create, write, close: one
    release of the GIL instead of five, which on a folder of small images kept the threads
    waiting on each other) into a private folder made beside it, then renamed to its final
    name. The private folder is created exclusively and only this process writes in it, so
    nothing planted can be written through; :meth:`close` removes it. When OpenCV cannot write
    there (a full disk, a name it cannot open), the tile is written the careful way, which
    raises the real error.
    """

    def __init__(self) -> None:
        self._frames: dict[tuple, tuple[bytes, bytes] | None] = {}
        self._staging: dict[str, str | None] = {}  # folder of final files -> its private folder
        self._lock = threading.Lock()
        # a writer dropped without close() (a task of a cluster) still takes its folders away
        self._finalizer = weakref.finalize(self, _remove_folders, self._staging)

    def __getstate__(self) -> dict:
        return {"_frames": self._frames}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
        self._frames.update(state["_frames"])

    def close(self) -> None:
        """Remove the private folders tiles were staged in (and anything a failed write left)."""
        with self._lock:
            _remove_folders(self._staging)

    def write(self, path: str | Path, array: np.ndarray, axes: str, pixel_size_um: tuple[float, float] | None = None) -> None:
        path = os.fspath(path)
        if not path.lower().endswith((".tif", ".tiff")):
            if not self._write_whole(path, array, axes):
                write_image(path, array, axes, pixel_size_um)
            return
        key = (array.shape, array.dtype.str, axes, pixel_size_um)
        if key not in self._frames:
            self._frames[key] = _tiff_frame(array.shape, array.dtype, axes, pixel_size_um)
        frame = self._frames[key]
        if frame is None:
            write_image(path, array, axes, pixel_size_um)
            return
        head, tail = frame
        with staged(path) as file:
            file.write(head)
            file.write(np.ascontiguousarray(array))
            file.write(tail)

    def _write_whole(self, path: str, array: np.ndarray, axes: str) -> bool:
        """Write a PNG/JPEG tile in one OpenCV call, then rename it; False when that could not be
        done (nothing is left then)."""
        folder, name = os.path.split(path)
        staging = self._staging[folder] if folder in self._staging else self._make_staging(folder)
        if staging is None:
            return False
        suffix = os.path.splitext(name)[1].lower()
        tmp = f"{staging}{os.sep}{next(_counter)}{suffix}"
        try:
            if cv2.imwrite(tmp, _for_opencv(array, axes), _params(suffix)):
                os.replace(tmp, path)
                return True
        except (cv2.error, OSError):
            pass
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False

    def _make_staging(self, folder: str) -> str | None:
        with self._lock:
            if folder not in self._staging:
                staging = None
                # OpenCV opens names as bytes of the system's code page on Windows: ASCII only there
                if os.name != "nt" or folder.isascii():
                    try:
                        staging, _ = _create_free(folder, ".tilesapp-", lambda path: os.mkdir(path, 0o700))
                    except OSError:  # cannot make it (permission, full disk): the careful path says why
                        pass
                self._staging[folder] = staging
            return self._staging[folder]


def _remove_folders(staging: dict[str, str | None]) -> None:
    """Remove private folders of staged tiles (what is in them is not under a final name)."""
    for folder in [f for f in staging.values() if f]:
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not remove the temporary folder %s", folder, exc_info=True)
    staging.clear()


def _tiff_frame(shape, dtype, axes, pixel_size_um) -> tuple[bytes, bytes] | None:
    """(bytes before, bytes after) the pixels of an uncompressed TIFF of this layout, or None."""
    # a repeating 1..251 pattern made in the tile's own type: no int64 ramp of the tile's size
    samples = [np.zeros(shape, dtype), np.resize(np.arange(1, 252).astype(dtype), int(np.prod(shape))).reshape(shape)]
    files = []
    for sample in samples:
        buffer = io.BytesIO()
        _write_tiff(buffer, sample, axes, pixel_size_um, None)
        files.append(buffer.getvalue())
    with tifffile.TiffFile(io.BytesIO(files[0])) as tif:
        offset = tif.series[0].dataoffset
    if offset is None:
        return None
    n = samples[0].nbytes
    head, tail = files[0][:offset], files[0][offset + n :]
    for sample, data in zip(samples, files):
        if data[:offset] != head or data[offset + n :] != tail or data[offset : offset + n] != sample.tobytes():
            return None
    return head, tail


def encode(array: np.ndarray, axes: str, suffix: str) -> memoryview:
    """PNG/JPEG bytes of an array (OpenCV's encoder; colours reordered to its BGR)."""
    array = _for_opencv(array, axes)
    ok, buffer = cv2.imencode(suffix, array, _params(suffix))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {array.dtype} {array.shape} image as {suffix}")
    return buffer.data  # the encoder's buffer, not a copy


def _for_opencv(array: np.ndarray, axes: str) -> np.ndarray:
    """The array as OpenCV's encoders take it: (rows, cols[, channels]), colours in BGR(A)."""
    if axes == "CYX":
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3:
        if array.shape[2] == 1:
            array = array[:, :, 0]
        elif array.shape[2] in (3, 4):
            code = cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
            array = cv2.cvtColor(np.ascontiguousarray(array), code)
    # rows with contiguous pixels (a tile cut from a band) are taken by OpenCV as they are
    return array if array.ndim == 2 and array.strides[1] == array.itemsize else np.ascontiguousarray(array)


def _params(suffix: str) -> list[int]:
    # OpenCV's default PNG settings: faster than any explicit compression level (benchmarks/png_levels.py)
    return [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in (".jpg", ".jpeg") else []


def _imagej_compatible(array: np.ndarray, axes: str) -> bool:
    if array.dtype not in (np.uint8, np.uint16, np.float32):
        return False
    if axes == "YXS":
        return array.dtype == np.uint8 and array.shape[2] == 3
    return True


def _write_tiff(path, array, axes, pixel_size_um, compression) -> None:
    kwargs: dict = {"compression": compression}
    if axes == "YXS":
        kwargs["photometric"] = "rgb" if array.shape[2] in (3, 4) else "minisblack"
        if array.shape[2] == 4:
            kwargs["extrasamples"] = ("unassalpha",)
        kwargs["planarconfig"] = "contig"
    else:
        kwargs["photometric"] = "minisblack"
    if _imagej_compatible(array, axes):
        metadata = {"axes": axes}
        if pixel_size_um is not None:
            metadata["unit"] = "um"
            kwargs["resolution"] = (1.0 / pixel_size_um[1], 1.0 / pixel_size_um[0])
        tifffile.imwrite(path, array, imagej=True, metadata=metadata, **kwargs)
        return
    if pixel_size_um is not None:
        kwargs["resolution"] = (1e4 / pixel_size_um[1], 1e4 / pixel_size_um[0])
        kwargs["resolutionunit"] = "CENTIMETER"
    tifffile.imwrite(path, array, metadata={"axes": axes}, **kwargs)
