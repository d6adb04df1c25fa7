"""The image view: tile overlay, highlight, scale bar, display conversion, mask and box overlays."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest

from tilesapp.core.annotations import Boxes
from tilesapp.core.geometry import TileGrid
from tilesapp.gui.viewer import (
    LABEL_COLORS,
    MASK_ALPHA,
    DisplayImage,
    ImageViewer,
    display_image,
    format_length,
    mask_overlay,
    nice_length,
)


@pytest.fixture
def viewer(qtbot):
    view = ImageViewer()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    return view


@pytest.mark.parametrize(
    ("limit", "expected"), [(37.0, 20.0), (0.7, 0.5), (1000.0, 1000.0), (9.99, 5.0), (1.2e-3, 1e-3), (0.0, 0.0)]
)
def test_nice_length_is_one_two_or_five_times_a_power_of_ten(limit, expected):
    assert nice_length(limit) == pytest.approx(expected)


def test_format_length_picks_a_readable_unit():
    assert [format_length(v) for v in (0.2, 5, 50, 1500)] == ["200 nm", "5 µm", "50 µm", "1.5 mm"]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_display_image_keeps_grey_values_and_gives_levels(dtype):
    image = (np.arange(100 * 80).reshape(100, 80, 1) % 200).astype(dtype)
    shown = display_image(image)
    assert shown.data.shape == (100, 80)
    low, high = shown.levels
    assert 0 <= low < high <= 199


def test_two_channels_become_a_green_magenta_composite():
    image = np.zeros((10, 10, 2), np.float32)
    image[:, :5, 0] = 1  # channel 1 on the left
    image[:, 5:, 1] = 1
    shown = display_image(image, "CYX")
    assert shown.data.shape == (10, 10, 3)
    assert shown.data[0, 0].tolist() == [0, 1, 0] and shown.data[0, 9].tolist() == [1, 0, 1]


def test_all_tiles_are_one_item_and_the_current_one_is_highlighted(viewer):
    image = np.random.default_rng(0).random((300, 500), dtype=np.float32)
    viewer.show_image(DisplayImage(image, (0, 1)), title="test", pixel_size_um=0.325)
    grid = TileGrid.for_shape((300, 500), 128, 32)
    viewer.set_grid(grid, current=4)
    items = [item for item in viewer.view.childGroup.childItems() if type(item).__name__ == "TileGridItem"]
    assert len(items) == 1
    rect = viewer.grid_item.boundingRect()
    assert (rect.left(), rect.top(), rect.right(), rect.bottom()) == (0, 0, 500, 300)
    tile = grid.tile(4)
    box = viewer.highlight.rect()
    assert (box.x(), box.y(), box.width()) == (tile.x0, tile.y0, 128)
    assert "tile 5 · row 1, col 5" in viewer.highlight_label.toPlainText()  # counted from 1 on screen
    viewer.set_show_all(True)
    assert viewer.grid_item.isVisible()


def test_padding_extends_the_tile_beyond_a_small_image(viewer):
    viewer.show_image(DisplayImage(np.zeros((50, 70), np.float32), (0, 1)))
    grid = TileGrid.for_shape((50, 70), 64, 16)
    viewer.set_grid(grid, current=0)
    assert viewer.highlight.rect().width() == 64
    assert viewer.grid_item.boundingRect().height() == 64


def test_scale_bar_is_a_round_physical_length(viewer):
    viewer.show_image(DisplayImage(np.zeros((400, 1000), np.float32), (0, 1)), pixel_size_um=0.325)
    text = viewer.scale_bar.text.toPlainText()
    number = float(text.split()[0])
    assert text.endswith("µm") and str(number)[0] in "125"
    assert viewer.scale_bar.size == pytest.approx(number / 0.325)
    viewer.show_image(DisplayImage(np.zeros((10, 10), np.float32), (0, 1)))
    assert not viewer.scale_bar.isVisible()


def test_row_zero_is_at_the_top(viewer):
    assert viewer.view.yInverted()
    assert viewer.view.state["aspectLocked"]


def test_large_images_are_reduced_for_display_but_keep_their_coordinates(viewer):
    image = np.random.default_rng(1).random((300, 9000, 1), dtype=np.float32)
    shown = display_image(image)
    assert max(shown.data.shape) <= 4096 and shown.extent == (300, 9000)
    assert "resolution" in shown.note
    viewer.show_image(shown, values=image[:, :, 0])
    rect = viewer.image.mapRectToParent(viewer.image.boundingRect())
    assert (rect.width(), rect.height()) == pytest.approx((9000, 300))


def test_mask_overlay_colours_labels_and_leaves_zero_transparent():
    mask = np.zeros((20, 30), np.uint16)
    mask[2:5, 2:5] = 1
    mask[10:12, 20:25] = 2
    mask[15, 15] = 1 + len(LABEL_COLORS)  # labels cycle through the colours
    rgba = mask_overlay(mask)
    assert rgba.shape == (20, 30, 4) and rgba.dtype == np.uint8
    assert np.array_equal(rgba[:, :, 3] > 0, mask > 0)
    assert rgba[3, 3, :3].tolist() == list(pg.mkColor(LABEL_COLORS[0]).getRgb()[:3])
    assert rgba[11, 22, :3].tolist() == list(pg.mkColor(LABEL_COLORS[1]).getRgb()[:3])
    assert rgba[15, 15, :3].tolist() == rgba[3, 3, :3].tolist()
    # A probability mask (non-integer values) shows where it is above zero, as label 1.
    soft = np.where(mask > 0, 0.4, 0.0).astype(np.float32)
    assert np.array_equal(mask_overlay(soft)[:, :, 3] > 0, mask > 0)
    # Reduced for display like a large image: nearest neighbour, never mixed colours.
    small = mask_overlay(mask, shape=(10, 15))
    assert small.shape == (10, 15, 4) and set(np.unique(small[:, :, 3])) <= {0, MASK_ALPHA}


def test_colour_masks_keep_their_colours():
    mask = np.zeros((8, 8, 3), np.uint8)
    mask[:4, :4] = (255, 0, 0)
    rgba = mask_overlay(mask, "YXS")
    assert rgba[0, 0].tolist() == [255, 0, 0, MASK_ALPHA] and rgba[7, 7, 3] == 0


def test_dropped_tiles_and_boxes_are_one_item_each(viewer):
    viewer.show_image(DisplayImage(np.zeros((128, 192), np.float32), (0, 1)))
    grid = TileGrid.for_shape((128, 192), 64, 0)
    keep = np.array([True, False, True, False, False, True])
    viewer.set_grid(grid, current=1, keep=keep, foreground=np.array([0.5, 0.01, 0.3, 0, 0, 0.2]))
    assert len(viewer.dropped_item) == 3 and viewer.dropped_item.isVisible()
    assert "1.0 % foreground · dropped" in viewer.highlight_label.toPlainText()
    viewer.set_current_tile(0)
    assert "dropped" not in viewer.highlight_label.toPlainText()
    boxes = Boxes(np.array([0, 3]), np.array([[10.0, 10.0, 20.0, 30.0], [50.0, 60.0, 100.0, 90.0]]))
    viewer.set_annotations(None, boxes)
    assert len(viewer.boxes_item) == 2 and viewer.boxes_item.isVisible()
    viewer.set_show_annotations(False)
    assert not viewer.boxes_item.isVisible()
    viewer.set_grid(grid)  # the filter off: no marks
    assert len(viewer.dropped_item) == 0 and not viewer.dropped_item.isVisible()
    viewer.clear()
    assert len(viewer.boxes_item) == 0 and viewer.mask_item.image is None


def test_hovering_reports_the_mask_label(viewer, qtbot):
    values = np.zeros((40, 60), np.float32)
    mask = np.zeros((40, 60, 1), np.uint8)
    mask[10:20, 10:20] = 7
    viewer.show_image(DisplayImage(values, (0, 1)), values=values)
    viewer.set_annotations(mask_overlay(mask), None, mask)
    seen = []
    viewer.hovered.connect(seen.append)
    pos = viewer.view.mapViewToScene(pg.Point(15.5, 12.5))
    viewer._on_mouse_moved(pos)
    assert seen[-1].startswith("row 12, col 15") and seen[-1].endswith("mask 7")
