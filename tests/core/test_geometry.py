import math

import pytest

from tilesapp.core.geometry import TileGrid, axis_starts, count_tiles, index_width


@pytest.mark.parametrize(
    "length, size, overlap, starts",
    [
        (1024, 512, 128, [0, 384, 512]),
        (64, 64, 32, [0]),
        (128, 64, 32, [0, 32, 64]),
        (512, 512, 0, [0]),
        (1000, 512, 0, [0, 488]),
        (300, 512, 128, [0]),  # shorter than a tile: one padded tile
        (10, 4, 3, [0, 1, 2, 3, 4, 5, 6]),
    ],
)
def test_axis_starts_examples(length, size, overlap, starts):
    assert axis_starts(length, size, overlap) == starts


def test_2048_pixels_give_five_tiles():
    assert axis_starts(2048, 512, 128) == [0, 384, 768, 1152, 1536]
    assert count_tiles((2048, 2048), 512, 128) == 25


@pytest.mark.parametrize("size", [16, 64, 100, 512])
@pytest.mark.parametrize("overlap_share", [0, 0.25, 0.5, 0.75, 0.95])
@pytest.mark.parametrize("length", [1, 15, 64, 100, 511, 512, 513, 1024, 2047, 3001])
def test_axis_contract(length, size, overlap_share, size_overlap=None):
    """The tiling rule (README "Tiles") for many lengths: count, exact size, overlaps, coverage, shift-back."""
    overlap = min(size - 1, int(size * overlap_share))
    step = size - overlap
    starts = axis_starts(length, size, overlap)
    if length <= size:
        assert starts == [0]
        return
    assert len(starts) == math.ceil((length - overlap) / step)
    ends = [s + size for s in starts]
    assert starts[0] == 0 and ends[-1] == length  # covers the axis exactly
    assert all(0 <= s and e <= length for s, e in zip(starts, ends))
    assert all(b - a == step for a, b in zip(starts[:-2], starts[1:-1]))  # regular step ...
    assert 0 < starts[-1] - starts[-2] <= step  # ... but the last tile is shifted back


def test_grid_tiles_row_major_with_boxes():
    grid = TileGrid.for_shape((1024, 700), 512, 128)
    assert (grid.n_rows, grid.n_cols, len(grid)) == (3, 2, 6)
    tiles = list(grid)
    assert [t.index for t in tiles] == list(range(6))
    assert [(t.row, t.col) for t in tiles] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert (tiles[1].y0, tiles[1].x0, tiles[1].y1, tiles[1].x1) == (0, 188, 512, 700)
    assert (tiles[5].y0, tiles[5].y1) == (512, 1024)
    assert all(t.y1 - t.y0 == 512 and t.x1 - t.x0 == 512 for t in tiles)
    assert all(t.pad_y == 0 and t.pad_x == 0 for t in tiles)


def test_short_axes_are_padded_and_recorded():
    grid = TileGrid.for_shape((100, 600), 256, 64)
    assert grid.padding == (156, 0)
    tile = grid.tile(0)
    assert (tile.y0, tile.y1, tile.pad_y) == (0, 100, 156)
    assert tile.y1 - tile.y0 + tile.pad_y == 256


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="overlap must be in"):
        axis_starts(100, 64, 64)
    with pytest.raises(IndexError):
        TileGrid.for_shape((64, 64), 64, 0).tile(1)


@pytest.mark.parametrize("n, width", [(1, 3), (1000, 3), (1001, 4), (123456, 6)])
def test_index_width(n, width):
    assert index_width(n) == width
