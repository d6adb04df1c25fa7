"""The window driven as a user would: load (button, drop), sample, preview, settings."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QPushButton, QRadioButton, QSlider, QSpinBox

from tilesapp.core.geometry import TileGrid
from tilesapp.core.settings import Settings, load_settings
from tilesapp.gui import MainWindow
from helpers import find, refuse_folders
from person import click, column, pick, table_rows, type_in

OBJECT_NAMES = {
    "sourcesLabel": QLabel,
    "shapeLabel": QLabel,
    "loadButton": QPushButton,
    "sampleButton": QPushButton,
    "calibrationCheck": QCheckBox,
    "pixelSizeEdit": QLineEdit,
    "unitCombo": QComboBox,
    "targetPixelSizeEdit": QLineEdit,
    "normNone": QRadioButton,
    "normLocal": QRadioButton,
    "normGlobal": QRadioButton,
    "lowerBoundEdit": QLineEdit,
    "upperBoundEdit": QLineEdit,
    "dtypeCombo": QComboBox,
    "formatCombo": QComboBox,
    "presetCombo": QComboBox,
    "patchSizeSpin": QSpinBox,
    "overlapSpin": QSpinBox,
    "previewButton": QPushButton,
    "tileSlider": QSlider,
    "showAllCheck": QCheckBox,
    "tileCountLabel": QLabel,
    "exportFolderButton": QPushButton,
    "emptyFolderButton": QPushButton,
    "exportButton": QPushButton,
    "cancelButton": QPushButton,
}


def combo_items(combo):
    return [combo.itemText(i) for i in range(combo.count())]


def test_widgets_have_the_documented_names(window):
    for name, kind in OBJECT_NAMES.items():
        assert isinstance(find(window, name), kind), name
    assert combo_items(find(window, "dtypeCombo")) == ["float32", "uint8", "uint16"]
    assert [any(f in text for text in combo_items(find(window, "formatCombo"))) for f in ("tif", "png", "jpg")] == [True] * 3
    assert find(window, "progressBar") is not None
    assert not find(window, "exportButton").isEnabled()
    assert not find(window, "sampleButton").isEnabled()


def test_load_folder_shows_sources_shape_and_pixel_size(window, make_folder, load, qtbot):
    folder = make_folder("images", [((200, 300), 0.65)] * 3, extra_files=["notes.txt"])
    sources = load(window, folder)
    assert len(sources.infos) == 3
    assert find(window, "sourcesLabel").text().startswith("3 images")
    assert "1 other file skipped" in find(window, "sourcesLabel").text()
    assert find(window, "shapeLabel").text().startswith("200 × 300")
    # Each image's pixel size is its metadata's, shown in the table; the field is for images without one.
    px = column(window, "Pixel size")
    assert [row[px:px + 2] for row in table_rows(window)] == [["0.65 µm", "ImageJ"]] * 3
    assert find(window, "pixelSizeEdit").text() == "" and window.settings.pixel_size is None
    assert "3 of 3 images calibrated (0.65 µm, ImageJ)" in window.calibration.metadataLabel.text()
    # Loading shows the sample mosaic by itself.
    qtbot.waitUntil(lambda: window.viewer.has_image, timeout=10_000)
    assert window.store.recent_folders() == [folder]


def test_include_sub_folders_says_which_folder_could_not_be_read(window, make_folder, load, qtbot, monkeypatch):
    folder = make_folder("images", [((200, 300), 0.65)])
    make_folder("images/deeper", [((100, 120), 0.65)])
    (folder / "locked").mkdir()
    refuse_folders(monkeypatch, "locked")
    load(window, folder)
    with qtbot.waitSignal(window.sourcesLoaded, timeout=10_000):
        click(qtbot, window, "recursiveCheck")  # the person ticks Include sub-folders
    label = find(window, "sourcesLabel")
    assert label.text().startswith("2 images") and "1 folder not readable" in label.text(), label.text()
    assert ("locked: this folder cannot be read (Permission denied); the images in it were not searched."
            in label.toolTip()), label.toolTip()


def test_different_images_give_auto_pixel_size_and_different_shapes(window, make_folder, load):
    folder = make_folder("mixed", [((200, 300), 0.65), ((150, 150), 0.5)])
    load(window, folder)
    assert find(window, "shapeLabel").text() == "different shapes"
    assert find(window, "pixelSizeEdit").text() == ""
    assert window.settings.pixel_size is None
    assert "2 of 2 images calibrated (0.5–0.65 µm, ImageJ)" in window.calibration.metadataLabel.text()
    assert [row[column(window, "Scale")] for row in table_rows(window)] == ["×2", "×1.538"]


def drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(event)
    return event


def test_dropping_a_folder_loads_it(window, make_folder, qtbot):
    from PySide6.QtGui import QDragEnterEvent

    folder = make_folder("dropped", [((100, 120), 0.65)] * 2)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    enter = QDragEnterEvent(
        QPoint(300, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    # Anywhere on the window: no text field or view keeps the drop for itself.
    assert not any(edit.acceptDrops() for edit in window.findChildren(QLineEdit))
    assert not window.viewer.graphics.viewport().acceptDrops()
    with qtbot.waitSignal(window.sourcesLoaded, timeout=10_000):
        event = drop(window, [folder])
    assert event.isAccepted()
    assert window.sources.sources == folder
    assert find(window, "sourcesLabel").text().startswith("2 images")


def test_dropping_image_files_loads_those_files(window, make_folder, qtbot):
    folder = make_folder("files", [((100, 120), 0.65)] * 3, extra_files=["readme.txt"])
    files = [folder / "cell_01.tif", folder / "cell_03.tif", folder / "readme.txt"]
    with qtbot.waitSignal(window.sourcesLoaded, timeout=10_000):
        drop(window, files)
    assert [p.name for p in window.sources.paths] == ["cell_01.tif", "cell_03.tif"]
    assert find(window, "sourcesLabel").text().startswith("2 images")


def test_preview_draws_the_tile_grid_of_the_recalibrated_image(window, make_folder, load, qtbot):
    folder = make_folder("preview", [((200, 300), 0.65)])
    load(window, folder)
    type_in(qtbot, window, "patchSizeSpin", "128")
    type_in(qtbot, window, "overlapSpin", "32")
    with qtbot.waitSignal(window.previewShown, timeout=10_000) as blocker:
        qtbot.mouseClick(find(window, "previewButton"), Qt.MouseButton.LeftButton)
    preview = blocker.args[0]
    # 0.65 µm → 0.325 µm: twice as many pixels on each axis.
    assert preview.plan.scaled_shape == (400, 600)
    assert preview.values.shape[:2] == (400, 600)
    grid = TileGrid.for_shape((400, 600), 128, 32)
    assert len(preview.plan.grid) == len(grid) == 24
    assert find(window, "tileCountLabel").text().startswith(f"{len(grid)} tiles")
    slider = find(window, "tileSlider")
    assert slider.isEnabled() and slider.maximum() == len(grid) - 1
    slider.setValue(7)
    tile = grid.tile(7)
    rect = window.viewer.highlight.rect()
    assert (rect.x(), rect.y(), rect.width(), rect.height()) == (tile.x0, tile.y0, 128, 128)
    assert window.viewer.highlight.isVisible()
    assert not window.viewer.grid_item.isVisible()
    qtbot.mouseClick(find(window, "showAllCheck"), Qt.MouseButton.LeftButton)
    assert window.viewer.grid_item.isVisible()
    assert window.viewer.grid_item.boundingRect().width() == 600
    # Calibrated: the scale bar shows a round physical length.
    assert window.viewer.scale_bar.isVisible()
    assert window.viewer.scale_bar.text.toPlainText().endswith("µm")


def test_the_current_tile_s_label_never_hides_the_tile(window, make_folder, load, qtbot):
    """The "tile n · row, col" label sits beside the highlighted tile (above it; below it on the
    first row), never over it: on a whole slide a tile is a few dozen pixels high on screen and
    the label hid a third of it."""
    from PySide6.QtCore import QRectF

    folder = make_folder("label", [((2000, 1500), 0.325)])  # many tiles: small on screen, as on a slide
    load(window, folder)
    type_in(qtbot, window, "patchSizeSpin", "200")
    type_in(qtbot, window, "overlapSpin", "50")
    with qtbot.waitSignal(window.previewShown, timeout=10_000) as blocker:
        qtbot.mouseClick(find(window, "previewButton"), Qt.MouseButton.LeftButton)
    grid = blocker.args[0].plan.grid
    slider = find(window, "tileSlider")
    slider.setFocus()
    columns = max(grid.tile(i).col for i in range(len(grid))) + 1
    for _ in range(columns + 2):  # the arrow keys to the third tile of the second row
        qtbot.keyClick(slider, Qt.Key.Key_Right)
    viewer = window.viewer

    def on_screen():
        qtbot.wait(50)  # the label is placed when the view paints
        index = slider.value()
        tile = grid.tile(index)
        box = viewer.view.mapViewToScene(QRectF(tile.x0, tile.y0, grid.tile_size, grid.tile_size)).boundingRect()
        return tile, box, viewer.highlight_label.sceneBoundingRect()

    tile, box, label = on_screen()
    assert (tile.row, tile.col) == (1, 2)
    assert viewer.highlight_label.isVisible() and viewer.highlight_label.toPlainText().strip().startswith(
        f"tile {columns + 3} · row 2, col 3")
    assert box.height() < 120 and label.height() > 10  # a small tile on screen, a readable label
    assert label.intersected(box).height() <= 1, (label, box)
    assert label.bottom() == pytest.approx(box.top(), abs=2)  # above it, touching it
    assert label.left() == pytest.approx(box.left(), abs=2)
    qtbot.keyClick(slider, Qt.Key.Key_Home)  # the first tile: nothing above it but the view's edge
    tile, box, label = on_screen()
    assert (tile.row, tile.col) == (0, 0)
    assert label.intersected(box).height() <= 1, (label, box)
    assert label.top() == pytest.approx(box.bottom(), abs=2)  # below it
    assert viewer.view.sceneBoundingRect().contains(label)


def test_tile_settings_redraw_the_grid_without_reading_again(window, make_folder, load, qtbot):
    folder = make_folder("regrid", [((256, 256), 0.325)])
    load(window, folder)
    with qtbot.waitSignal(window.previewShown, timeout=10_000):
        window.previews.preview_chosen()
    type_in(qtbot, window, "patchSizeSpin", "64")
    type_in(qtbot, window, "overlapSpin", "0")
    assert len(window.preview.plan.grid) == len(TileGrid.for_shape((256, 256), 64, 0)) == 16
    assert find(window, "tileCountLabel").text().startswith("16 tiles")
    assert find(window, "tileSlider").maximum() == 15


def test_calibration_change_recomputes_the_preview(window, make_folder, load, qtbot):
    folder = make_folder("recal", [((100, 100), 0.65)])
    load(window, folder)
    with qtbot.waitSignal(window.previewShown, timeout=10_000):
        window.previews.preview_chosen()
    assert window.preview.plan.scaled_shape == (200, 200)
    with qtbot.waitSignal(window.previewShown, timeout=10_000):
        qtbot.mouseClick(find(window, "calibrationCheck"), Qt.MouseButton.LeftButton)
    assert window.preview.plan.scaled_shape == (100, 100)
    assert "factor ×1" in window.calibration.resultLabel.text()


def test_another_image_previews_a_different_one(window, make_folder, load, qtbot):
    folder = make_folder("two", [((100, 100), 0.65), ((120, 80), 0.65)])
    load(window, folder)
    with qtbot.waitSignal(window.previewShown, timeout=10_000):
        window.previews.preview_chosen()
    first = window.preview.path
    with qtbot.waitSignal(window.previewShown, timeout=10_000):
        qtbot.mouseClick(window.tiles.anotherButton, Qt.MouseButton.LeftButton)
    assert window.preview.path != first


def test_show_sample_puts_the_mosaic_in_the_view(window, make_folder, load, qtbot):
    folder = make_folder("sample", [((100, 100), 0.65)] * 4)
    load(window, folder)
    with qtbot.waitSignal(window.sampleShown, timeout=10_000):
        qtbot.mouseClick(find(window, "sampleButton"), Qt.MouseButton.LeftButton)
    assert window.preview is None
    assert window.viewer.image.image.ndim == 3 and window.viewer.image.image.shape[2] == 3
    assert not find(window, "tileSlider").isEnabled()
    assert not window.viewer.scale_bar.isVisible()


def test_invalid_dtype_for_format_disables_export_with_the_reason(window, make_folder, load, tmp_path, qtbot):
    folder = make_folder("valid", [((64, 64), 0.325)])
    load(window, folder)
    assert window.exporter.select_folder(tmp_path / "out")
    export = find(window, "exportButton")
    assert export.isEnabled()
    pick(qtbot, window, "dtypeCombo", "float32")
    pick(qtbot, window, "formatCombo", ".jpg")
    assert not export.isEnabled()
    label = window.normalization.findChild(QLabel, "outputError")
    assert label.isVisible() and ".jpg" in label.text() and "float32" in label.text()
    assert window.settings_errors and window.settings_errors[0].field == "format"
    # The YOLO preset sets all four fields and the choice is valid again.
    preset = find(window, "presetCombo")
    assert preset.currentText() == "Custom"  # .jpg is no preset's format
    pick(qtbot, window, "presetCombo", "YOLO")
    assert (window.settings.norm, window.settings.bounds, window.settings.dtype, window.settings.format) == (
        "global", (0.0, 255.0), "uint8", "png",
    )
    assert find(window, "normGlobal").isChecked()
    assert find(window, "upperBoundEdit").text() == "255"
    assert not label.isVisible()
    assert export.isEnabled()


def test_bounds_outside_the_type_are_shown_next_to_the_bounds(window, qtbot):
    upper = find(window, "upperBoundEdit")
    pick(qtbot, window, "formatCombo", ".tif")
    type_in(qtbot, window, "upperBoundEdit", "1")  # typed: the bounds no longer follow the type
    pick(qtbot, window, "dtypeCombo", "uint8")
    bounds_error = window.normalization.findChild(QLabel, "boundsError")
    # 0–1 in uint8 would give near-black tiles of 0 and 1: refused
    assert bounds_error.isVisible() and "float32" in bounds_error.text()
    assert not find(window, "exportButton").isEnabled()
    type_in(qtbot, window, "upperBoundEdit", "300")
    assert bounds_error.isVisible() and "0–255" in bounds_error.text()
    assert not find(window, "exportButton").isEnabled()
    # With "none" the bounds play no part: the same text is no longer an error.
    click(qtbot, window, "normNone")
    assert not bounds_error.isVisible()
    assert not upper.isEnabled()


def test_unet_preset_and_a_broken_bound(window, qtbot):
    preset = find(window, "presetCombo")
    pick(qtbot, window, "presetCombo", "UNet")
    assert window.settings.preset == "unet"
    type_in(qtbot, window, "upperBoundEdit", "abc")
    label = window.normalization.findChild(QLabel, "boundsError")
    assert label.isVisible() and "Bounds must be a number" in label.text()  # named as on screen
    assert preset.currentText() == "Custom"  # the fields no longer show the preset
    # Other panels keep working while the bound is broken.
    type_in(qtbot, window, "patchSizeSpin", "256")
    assert window.settings.tile_size == 256
    type_in(qtbot, window, "upperBoundEdit", "1")
    assert not label.isVisible()
    assert not window.settings_errors


def test_bad_pixel_size_is_shown_and_blocks_preview(window, make_folder, load, qtbot):
    folder = make_folder("pix", [((64, 64), 0.65)])
    load(window, folder)
    type_in(qtbot, window, "pixelSizeEdit", "-3")
    label = window.calibration.findChild(QLabel, "pixelSizeError")
    assert label.isVisible() and "Pixel size must be greater than 0" in label.text()
    assert not find(window, "previewButton").isEnabled()
    type_in(qtbot, window, "pixelSizeEdit", "0,5")  # a decimal comma is fine
    assert window.settings.pixel_size == (0.5, 0.5)
    assert find(window, "previewButton").isEnabled()


def test_settings_are_remembered_between_runs(qtbot, window):
    type_in(qtbot, window, "patchSizeSpin", "256")
    click(qtbot, window, "normLocal")
    window.close()
    second = MainWindow()
    qtbot.addWidget(second)
    assert second.settings.tile_size == 256 and second.settings.norm == "local"
    assert find(second, "patchSizeSpin").value() == 256
    assert find(second, "normLocal").isChecked()


def test_bad_stored_values_are_ignored(qtbot, tmp_path):
    from tilesapp.gui.settings_store import SettingsStore

    store = SettingsStore()
    store.qsettings.setValue("settings/json", json.dumps({"tile_size": "huge", "overlap": 64, "dtype": "int128"}))
    store.qsettings.setValue("recent/folders", "{not json")
    store.sync()
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.settings.tile_size == Settings().tile_size
    assert win.settings.overlap == 64
    assert win.settings.dtype == Settings().dtype
    assert win.store.recent_folders() == []


def test_save_and_load_settings_file(window, tmp_path, dialogs, qtbot):
    type_in(qtbot, window, "patchSizeSpin", "384")
    path = tmp_path / "my-settings.json"
    assert window.files.save(path)
    saved, unknown = load_settings(path)
    assert saved == window.settings and unknown == []
    data = json.loads(path.read_text())
    data.update(tile_size=128, overlap=16, colour="blue")
    path.write_text(json.dumps(data))
    assert window.files.load(path)
    assert find(window, "patchSizeSpin").value() == 128 and find(window, "overlapSpin").value() == 16
    assert "colour" in window.statusBar().currentMessage()
    path.write_text("{broken")
    assert not window.files.load(path)
    assert dialogs.shown and "not valid JSON" in dialogs.texts[-1]


def test_worker_errors_reach_the_user(window, make_folder, load, qtbot, dialogs, monkeypatch):
    folder = make_folder("errors", [((64, 64), None)])
    load(window, folder)
    # An error the user can fix: one sentence from the engine, no traceback.
    (window.sources.paths[0]).write_bytes(b"II*\x00 gone")
    qtbot.waitUntil(lambda: not window.jobs.busy("view"), timeout=10_000)
    dialogs.shown.clear()
    window.previews.preview_chosen()
    qtbot.waitUntil(lambda: bool(dialogs.shown), timeout=10_000)
    kind, title, text = dialogs.shown[-1]
    assert "cell_01.tif" in text and "Traceback" not in text
    # A bug in a worker: a readable message too, and the window goes on.
    import tilesapp.gui.previews as previews

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")
        yield

    monkeypatch.setattr(previews, "make_sample", broken)
    dialogs.shown.clear()
    qtbot.mouseClick(find(window, "sampleButton"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(dialogs.shown), timeout=10_000)
    assert "Unexpected error while making the sample" in dialogs.texts[-1]
    assert "disk on fire" in dialogs.texts[-1]
    assert find(window, "sampleButton").isEnabled()


def test_missing_folder_is_a_message(window, tmp_path, dialogs):
    window.open_folder(tmp_path / "nowhere")
    assert "does not exist" in dialogs.texts[-1]


def test_folder_without_images_is_a_message(window, tmp_path, dialogs, qtbot):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    window.open_folder(empty)
    qtbot.waitUntil(lambda: bool(dialogs.shown), timeout=10_000)
    assert "holds no images" in dialogs.texts[-1]
    assert not find(window, "exportButton").isEnabled()


def test_metadata_pixel_size_is_not_remembered_nor_carried_over(window, make_folder, load, qtbot):
    load(window, make_folder("calibrated", [((64, 64), 0.65)]))
    assert window.settings.pixel_size is None  # metadata never fills the typed value
    assert window.store.load_settings().pixel_size is None
    load(window, make_folder("bare", [((64, 64), None)]))
    assert window.settings.pixel_size is None
    assert "1 without calibration need a pixel size" in window.calibration.metadataLabel.text()
    # A value the user typed stays for images without metadata.
    type_in(qtbot, window, "pixelSizeEdit", "0.4")
    load(window, make_folder("bare2", [((64, 64), None)]))
    assert window.settings.pixel_size == (0.4, 0.4)
    assert window.store.load_settings().pixel_size == (0.4, 0.4)


def test_colour_and_multichannel_images_preview_in_colour(window, tmp_path, load, qtbot):
    import cv2
    import numpy as np
    import tifffile

    folder = tmp_path / "colour"
    folder.mkdir()
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[:, :, 2] = 200  # blue in RGB order
    cv2.imwrite(str(folder / "photo.png"), rgb[:, :, ::-1])  # OpenCV writes BGR
    channels = np.stack([np.full((50, 70), 100, np.uint16), np.arange(50 * 70, dtype=np.uint16).reshape(50, 70)])
    tifffile.imwrite(folder / "stack.tif", channels, imagej=True, resolution=(1 / 0.325, 1 / 0.325),
                     metadata={"unit": "um", "axes": "CYX"})
    load(window, folder)
    click(qtbot, window, "calibrationCheck")
    for name, note in (("photo.png", ""), ("stack.tif", "magenta")):
        with qtbot.waitSignal(window.previewShown, timeout=10_000) as blocker:
            window.preview_image(folder / name)
        preview = blocker.args[0]
        assert preview.display.data.ndim == 3 and preview.display.data.shape[2] == 3
        assert note in preview.display.note
    assert window.preview.values.shape == (50, 70, 2)


def test_unreadable_images_are_counted_and_named(window, make_folder, load):
    folder = make_folder("mixed", [((64, 64), 0.325)] * 2, extra_files=["notes.txt"])
    (folder / "broken.tif").write_bytes(b"II*\x00junk")
    load(window, folder)
    label = find(window, "sourcesLabel")
    # three images, as the export will count them; the broken one is named in the tooltip
    assert label.text() == "3 images (1 unreadable, 1 other file skipped)"
    assert "broken.tif" in label.toolTip() and "notes.txt" in label.toolTip()
