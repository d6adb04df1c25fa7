"""Tile geometry: where each tile lies, computed from shapes alone (no pixel data).

Along an axis of length ``L`` with tile size ``P`` and overlap ``O`` (step ``S = P - O``):
``n = ceil((L - O) / S)`` tiles when ``L >= P``; tile ``i`` ends at ``min(i*S + P, L)`` and starts
``P`` before its end, so only the last tile is shifted back inside the image. An axis shorter
than ``P`` holds one tile, padded at its end up to ``P``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def axis_starts(length: int, tile_size: int, overlap: int) -> list[int]:
    """Start of every tile along one axis.

    >>> axis_starts(1024, 512, 128)
    [0, 384, 512]
    >>> axis_starts(128, 64, 32)
    [0, 32, 64]
    >>> axis_starts(300, 512, 128)  # shorter than a tile: one tile, padded
    [0]
    """
    if tile_size < 1:
        raise ValueError(f"tile_size must be at least 1; got {tile_size}")
    if not 0 <= overlap < tile_size:
        raise ValueError(f"overlap must be in [0, {tile_size - 1}]; got {overlap}")
    if length < 1:
        raise ValueError(f"length must be at least 1; got {length}")
    if length <= tile_size:
        return [0]
    step = tile_size - overlap
    count = math.ceil((length - overlap) / step)
    return [min(i * step + tile_size, length) - tile_size for i in range(count)]


@dataclass(frozen=True)
class Tile:
    """One tile: its number, grid position and box ``[y0:y1, x0:x1]`` in the image.

    ``pad_y``/``pad_x`` are the rows/columns added at the end when the image is shorter than
    a tile, so that ``(y1 - y0) + pad_y == tile_size``.
    """

    index: int
    row: int
    col: int
    y0: int
    x0: int
    y1: int
    x1: int
    pad_y: int = 0
    pad_x: int = 0


@dataclass(frozen=True)
class TileGrid:
    """All tiles of an image of ``shape`` (rows, cols), numbered row-major from 0."""

    shape: tuple[int, int]
    tile_size: int
    overlap: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @classmethod
    def for_shape(cls, shape: tuple[int, int], tile_size: int, overlap: int) -> TileGrid:
        rows, cols = int(shape[0]), int(shape[1])
        return cls(
            (rows, cols),
            tile_size,
            overlap,
            tuple(axis_starts(rows, tile_size, overlap)),
            tuple(axis_starts(cols, tile_size, overlap)),
        )

    @property
    def n_rows(self) -> int:
        return len(self.row_starts)

    @property
    def n_cols(self) -> int:
        return len(self.col_starts)

    def __len__(self) -> int:
        return self.n_rows * self.n_cols

    @property
    def padding(self) -> tuple[int, int]:
        """Rows and columns of padding every tile needs, ``(pad_y, pad_x)``."""
        return (max(0, self.tile_size - self.shape[0]), max(0, self.tile_size - self.shape[1]))

    def tile(self, index: int) -> Tile:
        """The tile numbered ``index`` (row-major)."""
        # called for every tile written: plain arithmetic, no properties
        n_cols, size, (rows, cols) = len(self.col_starts), self.tile_size, self.shape
        if not 0 <= index < len(self.row_starts) * n_cols:
            raise IndexError(f"tile index {index} out of range [0, {len(self) - 1}]")
        row, col = divmod(index, n_cols)
        y0, x0 = self.row_starts[row], self.col_starts[col]
        return Tile(index, row, col, y0, x0, min(y0 + size, rows), min(x0 + size, cols), *self.padding)

    def __iter__(self):
        return (self.tile(i) for i in range(len(self)))


def count_tiles(shape: tuple[int, int], tile_size: int, overlap: int) -> int:
    """Number of tiles of an image of ``shape``.

    >>> count_tiles((2048, 2048), 512, 128)
    25
    """
    return len(axis_starts(shape[0], tile_size, overlap)) * len(axis_starts(shape[1], tile_size, overlap))


def index_width(n_tiles: int) -> int:
    """Digits of a tile index in file names: at least 3, more when there are more tiles.

    >>> index_width(10), index_width(1000), index_width(1001)
    (3, 3, 4)
    """
    return max(3, len(str(max(0, n_tiles - 1))))
