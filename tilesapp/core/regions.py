"""Reading an image region by region, so a big image is never held whole in memory.

Tiled and strip TIFF/BigTIFF files are read through tifffile's zarr store (only the chunks a
region touches are decoded); uncompressed contiguous TIFFs are memory-mapped; an OME-TIFF
pyramid is read at its full-resolution level. Other formats (PNG, JPEG, BMP) cannot be read
in parts: :class:`RegionReader` then reads them whole once and serves regions from memory.

Regions come back in the engine's layout, (rows, cols, channels), in the file's dtype.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tifffile

from tilesapp.core.errors import ImageError
from tilesapp.core.sources import TIFF_SUFFIXES, SourceInfo, _arrange, _inspect_tiff, _reason, read_image, to_yxc


class RegionReader:
    """Random access to regions of one image; use as a context manager.

    Safe to share between threads: every read opens nothing and only decodes the chunks of
    its region (tifffile serializes the file reads themselves).

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "a.tif")
    >>> tifffile.imwrite(path, np.arange(64, dtype=np.uint16).reshape(8, 8), tile=(16, 16))
    >>> with RegionReader(path) as reader:
    ...     reader.read(2, 4, 5, 7)[..., 0]
    array([[21, 22],
           [29, 30]], dtype=uint16)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._tif: tifffile.TiffFile | None = None
        self._array = None  # zarr array, memory map or in-memory ndarray, in the file's axes
        try:
            if self.path.suffix.lower() in TIFF_SUFFIXES:
                self._open_tiff()
            else:
                image, self.info = read_image(self.path)
                self._array, self._axes = image, "YXS"  # read_image gives (rows, cols, channels)
        except ImageError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise ImageError(f"{self.path.name}: cannot be read as an image ({_reason(exc)}).") from exc

    def _open_tiff(self) -> None:
        tif = self._tif = tifffile.TiffFile(self.path)
        self.info = _inspect_tiff(self.path, tif)
        series = tif.series[0]
        level = series.levels[0]  # an OME pyramid's full resolution
        page = level.pages[0] if level.pages else None
        if page is not None and page.is_memmappable and len(level.pages) == 1:
            # uncompressed and contiguous: the operating system pages in what a region needs
            self._array = tifffile.memmap(self.path, series=0, level=0, mode="r")
        else:
            import zarr  # imported here: only big tiled/strip images need it

            self._array = zarr.open(series.aszarr(level=0), mode="r")
        self._axes = series.axes  # tifffile's, reduced to the engine's by sources._arrange

    # --- what the image is ----------------------------------------------------------------
    @property
    def shape_yx(self) -> tuple[int, int]:
        return self.info.shape_yx

    @property
    def channels(self) -> int:
        return self.info.channels

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.info.dtype)

    # --- regions ------------------------------------------------------------------------------
    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` as (rows, cols, channels) in the file's dtype."""
        rows, cols = self.shape_yx
        if not (0 <= y0 <= y1 <= rows and 0 <= x0 <= x1 <= cols):
            raise ValueError(f"region [{y0}:{y1}, {x0}:{x1}] outside an image of {rows} × {cols}")
        if self._tif is None:  # held in memory; a copy: callers may normalize a region in place
            return self._array[y0:y1, x0:x1].copy()
        index = tuple(slice(y0, y1) if a == "Y" else slice(x0, x1) if a == "X" else slice(None) for a in self._axes)
        try:
            # zarr decodes into a new array; a memory map's region is copied out of the file
            # so it stays valid after close and can be modified in place
            region = np.array(self._array[index], copy=isinstance(self._array, np.memmap))
        except Exception as exc:
            raise ImageError(f"{self.path.name}: reading rows {y0}–{y1} failed ({_reason(exc)}); the file may be damaged.") from exc
        region = _arrange(region, self._axes, self.info.axes)
        if region.dtype == bool:
            region = region.astype(np.uint8)
        return to_yxc(region, self.info.axes)

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        """Full-width rows ``[y0:y1]``."""
        return self.read(y0, y1, 0, self.shape_yx[1])

    def chunk_rows(self) -> int:
        """Rows of the file's storage chunks (tiles or strips): reads aligned on them decode
        each chunk once."""
        chunks = getattr(self._array, "chunks", None)
        if not chunks:  # a memory map or an image held in memory
            return 1
        return int(chunks[self._axes.index("Y")])

    def overview(self, max_side: int) -> tuple[np.ndarray, tuple[float, float]]:
        """A downsampled copy whose longer side is about ``max_side`` at most, and the
        source pixels (rows, cols) one of its pixels spans.

        Uses a pyramid's lower level when the file has one; otherwise takes every ``step``-th
        pixel, band by band, so memory stays bounded.
        """
        rows, cols = self.shape_yx
        step = max(1, math.ceil(max(rows, cols) / max_side))
        if step == 1:
            return self.read(0, rows, 0, cols), (1.0, 1.0)
        level = self._pyramid_level(step)
        if level is not None:
            return level, (rows / level.shape[0], cols / level.shape[1])
        band = step * max(1, math.ceil(max(self.chunk_rows(), 256) / step))
        parts = [np.ascontiguousarray(self.read(y, min(rows, y + band), 0, cols)[::step, ::step])
                 for y in range(0, rows, band)]
        return np.concatenate(parts, axis=0), (float(step), float(step))

    def _pyramid_level(self, step: int) -> np.ndarray | None:
        """The smallest pyramid level at least as fine as ``step``, in YXC (None: no pyramid)."""
        if self._tif is None:
            return None
        rows, _ = self.shape_yx
        best = None
        for level in self._tif.series[0].levels[1:]:
            level_rows = dict(zip(level.axes, level.shape)).get("Y", rows)
            if rows / level_rows <= step and (best is None or level_rows < best[0]):
                best = (level_rows, level)
        if best is None:
            return None
        level = best[1]
        try:
            array = level.asarray()
        except Exception:  # a damaged lower level: fall back to thinning the full resolution
            return None
        return to_yxc(_arrange(array, level.axes, self.info.axes), self.info.axes)

    # --- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        # A memory map is not closed explicitly: numpy closes it when no array uses it.
        self._array = None
        if self._tif is not None:
            self._tif.close()
            self._tif = None

    def __enter__(self) -> RegionReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def source_bytes(info: SourceInfo) -> int:
    """Bytes of an image's pixels in memory."""
    rows, cols = info.shape_yx
    return rows * cols * info.channels * np.dtype(info.dtype).itemsize
