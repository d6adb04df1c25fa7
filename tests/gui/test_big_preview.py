"""The window's preview of a big image: a reduced view under the exact tile grid.

The limits of the engine's overview are lowered, so that a small tiled TIFF counts as big.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QPointF, QRectF

import tilesapp.core.cut as cut_module
import tilesapp.core.memory as memory
import tilesapp.gui.tasks as tasks
from tilesapp.core.geometry import TileGrid
from tilesapp.core.preview import preview_image
from tilesapp.gui.tasks import preview_settings
from helpers import find, microscopy

#: 700 × 900 px at 0.65 µm → 1400 × 1800 at the default 0.325 µm; tiles of 256 overlapping by 64.
SOURCE, SCALED, TILE, OVERLAP = (700, 900), (1400, 1800), 256, 64
#: The overview's longer side: 1800 / 400 → shown at 1/5 resolution (311 × 400).
SIDE, REDUCED = 400, (311, 400)


def write_tiled(path, image, pixel_size_um=0.65):
    """A tiled ImageJ TIFF (as a slide scanner's export is tiled), with its pixel size."""
    tifffile.imwrite(path, image, imagej=True, tile=(256, 256), resolution=(1 / pixel_size_um, 1 / pixel_size_um),
                     metadata={"unit": "um", "axes": "YX"})
    return path


@pytest.fixture
def big(monkeypatch):
    """Make an image of more than 1 M recalibrated pixels "big"; count the engine's previews."""
    monkeypatch.setattr(memory, "OVERVIEW_PIXELS", 1_000_000)
    monkeypatch.setattr(memory, "OVERVIEW_SIDE", SIDE)
    calls = {"overview": 0, "overview_annotated": 0}
    real = tasks.preview_image

    def counted(path, settings, masks=None, labels=None, **kwargs):
        result = real(path, settings, masks, labels, **kwargs)
        assert result.reduced, "a big image was read whole for its preview"
        annotated = masks is not None or labels is not None or settings.min_foreground > 0
        calls["overview_annotated" if annotated else "overview"] += 1
        return result

    monkeypatch.setattr(tasks, "preview_image", counted)
    return calls


@pytest.fixture
def slide(tmp_path):
    folder = tmp_path / "slides"
    folder.mkdir()
    return write_tiled(folder / "slide.tif", microscopy(SOURCE, seed=3))


def show(window, qtbot, load, path, **settings):
    load(window, path.parent)
    find(window, "patchSizeSpin").setValue(settings.get("tile", TILE))
    find(window, "overlapSpin").setValue(settings.get("overlap", OVERLAP))
    with qtbot.waitSignal(window.tileDetailShown, timeout=20_000) as detail:
        with qtbot.waitSignal(window.previewShown, timeout=20_000) as shown:
            window.preview_image(path)
    return shown.args[0], detail.args[0]


def whole_image(window, path):
    """The engine's whole-image preview: what the reduced view stands for."""
    return preview_image(path, preview_settings(window.settings), overview=False).image


def box(rect: QRectF) -> tuple[float, float, float, float]:
    return (rect.x(), rect.y(), rect.width(), rect.height())


def in_view(item, rect: QRectF | None = None) -> tuple[float, float, float, float]:
    """Where an item (or a rectangle of it) lies in the view's data pixels."""
    return box(item.mapRectToParent(rect if rect is not None else item.boundingRect()))


def hover(viewer, row: float, col: float) -> str:
    """The readout when the mouse is over data pixel (row, col)."""
    texts = []
    viewer.hovered.connect(texts.append)
    viewer._on_mouse_moved(viewer.view.mapViewToScene(QPointF(col + 0.5, row + 0.5)))
    viewer.hovered.disconnect(texts.append)
    return texts[-1]


def test_big_image_is_previewed_through_a_reduced_view_under_the_exact_grid(window, big, slide, load, qtbot):
    preview, _ = show(window, qtbot, load, slide)
    plan = preview.plan
    assert big["overview"] == 1  # and the engine's whole-image preview never ran (fixture)
    assert preview.reduced and preview.values.shape == REDUCED and plan.scaled_shape == SCALED
    assert preview.display.extent == SCALED
    assert "shown at 1/5 resolution (big image)" in window.viewer.title.text
    # The reduced image is stretched over the whole recalibrated image...
    viewer = window.viewer
    assert viewer.image.image.shape[:2] == REDUCED
    assert in_view(viewer.image) == (0, 0, SCALED[1], SCALED[0])
    # ...and every tile of the plan is drawn where the export cuts it, in the same pixels.
    grid = TileGrid.for_shape(SCALED, TILE, OVERLAP)
    assert plan.grid == grid
    drawn = sorted(in_view(viewer.grid_item, r) for r in viewer.grid_item.rects())
    assert drawn == sorted((t.x0, t.y0, TILE, TILE) for t in grid)
    find(window, "tileSlider").setValue(len(grid) - 1)
    last = grid.tile(len(grid) - 1)
    assert in_view(viewer.highlight, viewer.highlight.rect()) == (last.x0, last.y0, TILE, TILE)
    # One reduced pixel covers 4.5 × 4.5 recalibrated ones: the last tile's corner lands on it.
    corner_row, corner_col = last.y0 * REDUCED[0] / SCALED[0], last.x0 * REDUCED[1] / SCALED[1]
    assert viewer.image.mapToParent(QPointF(corner_col, corner_row)) == QPointF(last.x0, last.y0)


def test_hovering_a_reduced_view_reads_the_reduced_value_at_the_same_place(window, big, slide, load, qtbot):
    preview, detail = show(window, qtbot, load, slide)
    assert detail.index == 0  # the current tile, at full resolution
    row, col = 1000, 1500  # outside tile 0
    r, c = row * REDUCED[0] // SCALED[0], col * REDUCED[1] // SCALED[1]
    assert (r, c) == (222, 333)
    text = hover(window.viewer, row, col)
    assert text == f"row {row}, col {col}   value {float(preview.values[r, c]):.6g}   (reduced view)"
    assert window.hoverLabel.text() == text
    # Inside the current tile the value is the exact recalibrated one.
    whole = whole_image(window, slide)
    assert hover(window.viewer, 10, 20) == f"row 10, col 20   value {float(whole[10, 20, 0]):.6g}"
    assert hover(window.viewer, SCALED[0], 0) == ""  # below the image


@pytest.mark.parametrize("index", [0, 7, "last"])
def test_the_current_tile_is_read_from_the_file_at_full_resolution(window, big, slide, load, qtbot, index):
    preview, detail = show(window, qtbot, load, slide)
    grid = preview.plan.grid
    index = len(grid) - 1 if index == "last" else index  # the last one is padded
    if index != 0:
        with qtbot.waitSignal(window.tileDetailShown, timeout=20_000) as blocker:
            find(window, "tileSlider").setValue(index)
        detail = blocker.args[0]
    tile = grid.tile(index)
    assert detail.index == index and detail.box == (tile.y0, tile.y1, tile.x0, tile.x1)
    whole = whole_image(window, slide)
    expected = whole[tile.y0:tile.y1, tile.x0:tile.x1, 0]
    assert detail.values.shape == expected.shape
    np.testing.assert_allclose(detail.values, expected, rtol=1e-5, atol=1e-3)
    viewer = window.viewer
    assert viewer.detail_item.isVisible() and viewer.detail_box == detail.box
    assert in_view(viewer.detail_item) == (tile.x0, tile.y0, tile.x1 - tile.x0, tile.y1 - tile.y0)
    # Shown with the image's levels, and it follows them when the user changes them.
    assert tuple(viewer.detail_item.levels) == pytest.approx(tuple(viewer.image.levels))
    viewer.histogram.setLevels(100, 900)
    assert tuple(viewer.detail_item.levels) == pytest.approx((100, 900))


def test_masks_boxes_and_dropped_tiles_land_on_the_reduced_view(window, big, slide, load, tmp_path, qtbot):
    masks, labels = tmp_path / "masks", tmp_path / "labels"
    masks.mkdir()
    labels.mkdir()
    mask = np.zeros(SOURCE, np.uint8)
    mask[0:300, 0:300] = 1  # the top-left 600 × 600 recalibrated pixels
    tifffile.imwrite(masks / "slide.tif", mask)
    (labels / "slide.txt").write_text("0 0.25 0.25 0.1 0.1\n1 0.75 0.5 0.2 0.3\n")
    load(window, slide.parent)
    window.exporter.select_annotations("masks", masks)
    window.exporter.select_annotations("labels", labels)
    find(window, "minForegroundSpin").setValue(5.0)
    preview, _ = show(window, qtbot, load, slide)
    assert big["overview_annotated"] == 1
    viewer, grid = window.viewer, preview.plan.grid
    # The mask: reduced like the image, stretched over the same recalibrated pixels.
    assert preview.mask.shape[:2] == REDUCED and viewer.mask_item.isVisible()
    assert in_view(viewer.mask_item) == (0, 0, SCALED[1], SCALED[0])
    alpha = viewer.mask_item.image[:, :, 3] > 0
    inside = np.zeros(REDUCED, bool)
    inside[: round(600 * REDUCED[0] / SCALED[0]), : round(600 * REDUCED[1] / SCALED[1])] = True
    assert np.array_equal(alpha, inside)
    # Boxes in recalibrated pixels: (cx ± w/2) × 1800, (cy ± h/2) × 1400.
    drawn = [v for r in viewer.boxes_item.rects() for v in in_view(viewer.boxes_item, r)]
    assert drawn == pytest.approx([0.2 * 1800, 0.2 * 1400, 0.1 * 1800, 0.1 * 1400,
                                   0.65 * 1800, 0.35 * 1400, 0.2 * 1800, 0.3 * 1400])
    # Dropped tiles: a cross on each tile the (approximate) filter drops, none on the kept ones.
    expected = preview_image(slide, preview_settings(window.settings), masks, labels, max_side=SIDE, overview=True)
    assert preview.keep.tolist() == expected.keep.tolist()
    assert preview.keep[0] and not preview.keep[-1]  # in the mask / far from it
    crosses = sorted(in_view(viewer.dropped_item, r) for r in viewer.dropped_item.rects())
    assert crosses == sorted((t.x0, t.y0, TILE, TILE) for t in grid if not preview.keep[t.index])
    assert viewer.dropped_item.isVisible()
    # Hovering reads the reduced mask at the same place as the reduced value.
    assert "mask 1" in hover(viewer, 400, 400) and "mask 0" in hover(viewer, 1000, 1500)


def test_small_image_preview_is_unchanged(window, make_folder, load, qtbot, monkeypatch):
    real = tasks.preview_image

    def whole(*args, **kwargs):
        result = real(*args, **kwargs)
        assert not result.reduced, "a small image was previewed through an overview"
        return result

    monkeypatch.setattr(tasks, "preview_image", whole)
    folder = make_folder("small", [((200, 300), 0.65)])
    load(window, folder)
    find(window, "patchSizeSpin").setValue(128)
    find(window, "overlapSpin").setValue(32)
    details = []
    window.tileDetailShown.connect(details.append)
    with qtbot.waitSignal(window.previewShown, timeout=10_000) as blocker:
        window.previews.preview_chosen()
    preview = blocker.args[0]
    assert not preview.reduced
    assert preview.values.shape == preview.plan.scaled_shape == preview.display.extent == (400, 600)
    assert "resolution" not in preview.display.note
    viewer = window.viewer
    assert in_view(viewer.image) == (0, 0, 600, 400)
    find(window, "tileSlider").setValue(3)
    qtbot.wait(400)  # longer than the tile-detail delay: nothing is read for a full view
    assert not details and window.jobs.job("tile") is None and viewer.detail_box is None
    assert hover(viewer, 150, 250) == f"row 150, col 250   value {float(preview.values[150, 250]):.6g}"


def test_big_image_exports_through_the_engine_with_progress_and_cancel(window, big, slide, load, tmp_path, qtbot,
                                                                        monkeypatch):
    # Band by band, as a slide too big for memory would be cut.
    streamed = []
    real = cut_module.plan_bands

    def spy(grid, tile_rows):
        bands = real(grid, tile_rows)
        streamed.append(len(bands))
        return bands

    monkeypatch.setattr(cut_module, "whole_image_bytes", lambda *args: 1 << 50)
    monkeypatch.setattr(cut_module, "plan_bands", spy)
    show(window, qtbot, load, slide)
    out = tmp_path / "tiles"
    assert window.exporter.select_folder(out)
    seen = []
    with qtbot.waitSignal(window.exportEnded, timeout=60_000) as blocker:
        window.exporter.export()
        window.jobs.job("export").signals.progressed.connect(seen.append)
    summary = blocker.args[0]
    n = len(TileGrid.for_shape(SCALED, TILE, OVERLAP))
    assert len(streamed) == 1 and streamed[0] > 1  # one image, cut in several bands
    assert summary.tiles_written == n and not summary.failed and not summary.cancelled
    assert len(json.loads((out / "manifest.json").read_text())["tiles"]) == n
    assert seen and find(window, "progressBar").value() == 1000
    # Cancelled midway: small tiles, so that there are thousands to write.
    streamed.clear()
    find(window, "overlapSpin").setValue(0)  # first: the overlap follows a smaller tile size
    find(window, "patchSizeSpin").setValue(16)
    qtbot.wait(500)  # the preview's refresh, if any, settles
    seen.clear()
    window.exporter.export()
    window.jobs.job("export").signals.progressed.connect(seen.append)
    qtbot.waitUntil(lambda: any(p.done > 0 for p in seen), timeout=30_000)
    with qtbot.waitSignal(window.exportEnded, timeout=30_000) as blocker:
        window.exporter.cancel()
    summary = blocker.args[0]
    assert len(streamed) == 1 and streamed[0] > 1
    assert summary.cancelled and 0 < summary.tiles_written < len(TileGrid.for_shape(SCALED, 16, 0))
    assert json.loads((out / "manifest.json").read_text())["status"] == "cancelled"


def test_a_grid_of_too_many_tiles_is_not_drawn(qtbot):
    from tilesapp.core.geometry import TileGrid
    from tilesapp.gui.viewer import MAX_DRAWN_TILES, TileGridItem

    item = TileGridItem()
    item.set_grid(TileGrid.for_shape((4000, 4000), 16, 15))  # 15 985 009 tiles: seconds of drawing
    assert item.rects() == []
    small = TileGrid.for_shape((1000, 1000), 256, 64)
    item.set_grid(small)
    assert len(item.rects()) == len(small) < MAX_DRAWN_TILES
