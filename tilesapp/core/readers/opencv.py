"""PNG, JPEG and BMP through OpenCV, in RGB order; 16-bit PNG included.

These formats cannot be read in parts, so a scene decodes its file whole at its first read
and serves regions from memory. What a file holds (size, channels, type) is read from its
header, without decoding: inspecting a folder of thousands of small images stays cheap, and
an image whose decoded pixels would not fit in memory (a decompression bomb, a mistaken file)
is refused before it is decoded.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import cv2
import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import BaseFile, SceneInfo, check_region, read_upto, reason, thin_overview

#: Pixels OpenCV itself refuses to decode beyond (its CV_IO_MAX_IMAGE_PIXELS default).
MAX_PIXELS = 1 << 30

#: Bytes read from a file when it is opened: its header (all of a smaller file)...
HEAD = 1 << 12
#: ...or up to this many when the header goes on (metadata before a JPEG's frame or a PNG's pixels).
LONG_HEAD = 1 << 16


class OpenCVReader:
    """Reader of .png, .jpg/.jpeg and .bmp files."""

    name = "opencv"
    suffixes = (".png", ".jpg", ".jpeg", ".bmp")

    def sniff(self, head: bytes) -> bool:
        return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM"))

    def open(self, path: Path) -> BaseFile:
        path = Path(path)
        # Only the header is read: inspecting a folder touches one page of each file, and the
        # pixels are read where they are decoded (a worker thread, in parallel).
        try:
            with open(path, "rb", buffering=0) as fh:
                asked = HEAD
                head = read_upto(fh, asked)
                header = header_info(head, path)
                if len(head) == asked and (header is None or header[2] is None):  # the header goes on
                    asked = LONG_HEAD
                    head += read_upto(fh, asked - len(head))
                    header = header_info(head, path)
        except OSError as exc:
            raise ImageError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from exc
        # a read short of what was asked is the whole file: a tiny image is decoded from these bytes
        scene = OpenCVScene(path, header, head if len(head) < asked else None)
        return BaseFile([scene], scene.forget)


class OpenCVScene:
    """The one image of a PNG/JPEG/BMP file."""

    #: Regions cost a decode of the whole file: the engine checks the whole plane fits memory.
    whole_only = True

    def __init__(self, path: Path, header: tuple[int, int, int | None, str] | None, data: bytes | None = None):
        self._path = path
        self._data = data  # the whole file when it was read at open, until it is decoded
        self._pixels: np.ndarray | None = None
        self._lock = threading.Lock()
        if header is None or header[2] is None:  # the header does not say it all: decode to know
            image = self._decode()
            rows, cols = image.shape[:2]
            channels = 1 if image.ndim == 2 else image.shape[2]
            dtype = image.dtype.name
            self._pixels = image
        else:
            rows, cols, channels, dtype = header
        axes = "YX" if channels == 1 else "YXS"
        shape = (rows, cols) if channels == 1 else (rows, cols, channels)
        self.info = SceneInfo(path, shape, axes, dtype, reader="opencv")

    def _decode(self) -> np.ndarray:
        # the bytes + imdecode: cv2.imread cannot open non-ASCII paths on Windows. Read unbuffered
        # to the end: np.fromfile makes about 8 more system calls (a buffered open, a dup, seeks),
        # each a handover of the GIL between the threads (W3 on tmpfs: 4.65 → 4.56 s).
        if self._data is not None:
            data, self._data = np.frombuffer(self._data, dtype=np.uint8), None
        else:
            try:
                with open(self._path, "rb", buffering=0) as fh:
                    data = np.frombuffer(fh.read(), dtype=np.uint8)
            except OSError as exc:
                raise ImageError(f"{self._path.name}: cannot be read ({exc.strerror or exc}).") from exc
        try:
            array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error as exc:
            raise ImageError(f"{self._path.name}: cannot be decoded ({reason(exc)}); the file is damaged.") from exc
        if array is None or array.size == 0:
            raise ImageError(f"{self._path.name}: cannot be decoded; the file is damaged or not an image.")
        if array.ndim == 3:  # OpenCV orders colours BGR(A)
            code = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}.get(array.shape[2])
            if code is not None:
                array = cv2.cvtColor(array, code)
        return array

    def pixels(self) -> np.ndarray:
        """The decoded image (rows, cols[, channels]), decoded once."""
        with self._lock:
            if self._pixels is None:
                image = self._decode()
                expected = self.info.shape
                if image.shape != expected or image.dtype.name != self.info.dtype:
                    raise ImageError(f"{self._path.name}: the pixels ({image.shape}, {image.dtype}) do not match the "
                                     f"file's header ({expected}, {self.info.dtype}); the file is damaged.")
                self._pixels = image
            return self._pixels

    def forget(self) -> None:
        """Drop the file's bytes and pixels (the file is closed)."""
        with self._lock:
            self._data = self._pixels = None

    def read(self, y0: int, y1: int, x0: int, x1: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        check_region(self.info, y0, y1, x0, x1, z, t)
        image = self.pixels()
        region = image[y0:y1, x0:x1]
        region = region[:, :, np.newaxis] if region.ndim == 2 else region
        return np.array(region, order="C")  # a copy: callers may normalize it in place

    def overview(self, max_side: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        return thin_overview(self, max_side, z=z, t=t)

    def chunk_rows(self) -> int:
        return 1


def header_info(head: bytes, path: Path) -> tuple[int, int, int | None, str] | None:
    """(rows, cols, channels, dtype) as OpenCV will decode the file, read from its header;
    channels None when only decoding tells (some BMPs), None when the header is not understood.

    Raises :class:`ImageError` for a header that declares an empty or impossibly large image.
    """
    found = _png(head) if head.startswith(b"\x89PNG") else _jpeg(head) if head.startswith(b"\xff\xd8") else \
        _bmp(head) if head.startswith(b"BM") else None
    if found is None:
        if not head:
            raise ImageError(f"{path.name}: the file is empty.")
        return None
    rows, cols = found[0], found[1]
    if rows <= 0 or cols <= 0:
        raise ImageError(f"{path.name}: the header declares an empty image ({rows} × {cols} px); the file is damaged.")
    if rows * cols > MAX_PIXELS:
        raise ImageError(f"{path.name}: the header declares {rows} × {cols} px, more than can be decoded at once "
                         f"(1 gigapixel); save such images as tiled TIFF.")
    return found


def _png(head: bytes):
    if len(head) < 33 or head[12:16] != b"IHDR":
        return None
    cols, rows, depth, colour = struct.unpack(">IIBB", head[16:26])
    pixels = head.find(b"IDAT")
    trns = b"tRNS" in head[33: pixels if pixels >= 0 else len(head)]
    channels = {0: 1, 2: 4 if trns else 3, 3: 4 if trns else 3, 4: 4, 6: 4}.get(colour)
    if colour in (2, 3) and pixels < 0 and not trns:
        channels = None  # transparency may still be declared further on: decoding will tell
    return rows, cols, channels, "uint16" if depth == 16 else "uint8"


def _jpeg(head: bytes):
    i = 2
    while i + 9 < len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", head[i + 2: i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            precision, rows, cols, components = struct.unpack(">BHHB", head[i + 4: i + 10])
            channels = {1: 1, 3: 3, 4: 3}.get(components) if precision == 8 else None
            return rows, cols, channels, "uint8"
        i += 2 + length
    return None


def _bmp(head: bytes):
    if len(head) < 30:
        return None
    cols, rows, _, bits = struct.unpack("<iiHH", head[18:30])
    return abs(rows), cols, 3 if bits == 24 else None, "uint8"


READER = OpenCVReader()
