"""Reading a folder of tiles fast: TIFF tiles that share a frame are read as frame + pixels.

tifffile parses every file's tags in Python: 0.3–0.7 ms a tile, more than reading a 1 MB tile,
and it holds the GIL while a merge's threads sum. Tiles of one export are the same bytes around
their pixels (:class:`tilesapp.core.writers.TileWriter` writes them so), and so are most model
outputs written tile by tile. When a second TIFF of a file size comes, it is read by
:func:`~tilesapp.core.readers.read_array` and its frame — every byte but its pixels — kept if
its pixels are one raw block that nothing describing them overlaps. A later file of that size
whose frame is the same bytes has the same tags, hence the same image type, shape and place of
its pixels: they are read from its block. Any other file is read by ``read_array`` (a size met
once costs nothing more: whole images of many sizes are read as before).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from tilesapp.core.readers import read_array

#: Tags that point to more image file directories (sub-IFDs, EXIF, GPS, interoperability):
#: what they describe is not in the frame checked, so such files are always parsed.
_IFD_TAGS = (330, 34665, 34853, 40965)
#: File sizes whose frame is kept (a folder of tiles has one or a few), and the largest file.
_MAX_SIZES = 64
_MAX_BYTES = 1 << 28
_UNKNOWN = object()


@dataclass(frozen=True)
class TileFrame:
    """The bytes of a TIFF around its pixels, and what tifffile reads them as."""

    head: bytes
    tail: bytes
    shape: tuple[int, ...]
    dtype: np.dtype

    def pixels(self, data: np.ndarray) -> np.ndarray | None:
        """The image in a file's bytes ``data`` (uint8) when its frame is this one, else None."""
        head, tail = len(self.head), len(self.tail)
        if (len(data) != head + int(np.prod(self.shape)) * self.dtype.itemsize + tail
                or data[:head].tobytes() != self.head or data[len(data) - tail :].tobytes() != self.tail):
            return None
        return data[head : len(data) - tail].view(self.dtype).reshape(self.shape)


def tile_frame(data: np.ndarray, array: np.ndarray) -> TileFrame | None:
    """The frame of a TIFF file's bytes ``data`` that ``read_array`` read as ``array``: None
    unless tifffile reads those bytes as ``array`` from one raw block (uncompressed, no
    predictor, native byte order; the pages of a stack one after the other) that no header,
    tag or tag value overlaps."""
    if not (array.flags.c_contiguous and array.dtype.isnative and array.dtype.kind in "uif"):
        return None
    nbytes = array.nbytes
    try:
        with tifffile.TiffFile(io.BytesIO(memoryview(data))) as tif:
            # a series' data offset is only given for pixels stored as read (uncompressed, no
            # predictor, bits in order, pages one after the other)
            if len(tif.series) != 1 or tif.series[0].dataoffset is None:
                return None
            offset, fmt = tif.series[0].dataoffset, tif.tiff
            order = "little" if tif.byteorder == "<" else "big"
            spans = [(0, 2 * fmt.offsetsize)]  # the header
            for number in range(len(tif.pages)):
                page = tif.pages.get(number, aspage=True)
                if any(code in page.tags for code in _IFD_TAGS):
                    return None
                count = int.from_bytes(data[page.offset : page.offset + fmt.tagnosize].tobytes(), order)
                spans.append((page.offset, page.offset + fmt.tagnosize + count * fmt.tagsize + fmt.offsetsize))
                spans += [(tag.valueoffset, tag.valueoffset + tag.valuebytecount) for tag in page.tags.values()]
            parsed = tif.asarray()
    except Exception:  # noqa: BLE001 - anything tifffile cannot parse from memory is read the usual way
        return None
    parsed = np.squeeze(parsed) if parsed.ndim > 3 else parsed  # as read_array gives it
    if (offset + nbytes > len(data) or any(start < offset + nbytes and end > offset for start, end in spans)
            or parsed.shape != array.shape or parsed.dtype != array.dtype or not np.array_equal(parsed, array)
            or not np.array_equal(data[offset : offset + nbytes], array.reshape(-1).view(np.uint8))):
        return None
    return TileFrame(data[:offset].tobytes(), data[offset + nbytes :].tobytes(), array.shape, array.dtype)


class TileFrames:
    """Reads the tiles of one folder (see the module docstring); safe to share between threads."""

    def __init__(self) -> None:
        self._frames: dict[int, TileFrame | None] = {}
        self._seen: set[int] = set()  # sizes of files read once

    def read(self, path: Path) -> np.ndarray:
        """The pixels of an image file as :func:`~tilesapp.core.readers.read_array` gives them."""
        if Path(path).suffix.lower() not in (".tif", ".tiff"):
            return read_array(path)
        try:
            size = os.stat(path).st_size
        except OSError:
            return read_array(path)  # says what is wrong
        frame = self._frames.get(size, _UNKNOWN)
        if frame is None or size > _MAX_BYTES:
            return read_array(path)
        if frame is _UNKNOWN and (size not in self._seen or len(self._frames) >= _MAX_SIZES):
            self._seen.add(size)
            return read_array(path)
        data = np.empty(size, np.uint8)
        try:
            with open(path, "rb") as fh:
                got = fh.readinto(data)
        except OSError:
            return read_array(path)
        if got == size and frame is not _UNKNOWN:
            pixels = frame.pixels(data)
            if pixels is not None:
                return pixels
        array = read_array(path)
        if frame is _UNKNOWN and got == size:
            self._frames[size] = tile_frame(data, array)
        return array
