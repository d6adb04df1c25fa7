"""Issue 17: a window a biologist can trust. Each defect found in the real window, replayed as a
person does it (menus, typing and Enter, clicks), asserting what the person sees and what
lands on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QLabel

from helpers import find
from person import click, click_row, column, menu, pick, table_rows, type_in, type_in_row
from conftest import fluorescence, write_calibrated


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def mixed(tmp_path):
    """Four calibrated images (0.325, 0.5, 0.65, 0.65 µm), two without calibration, a truncated
    TIFF and a text file — the folder of the issue, small."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, size in (("01.tif", 0.325), ("02.tif", 0.5), ("03.tif", 0.65), ("04.tif", None), ("05.tif", None),
                       ("06.tif", 0.65)):
        write_calibrated(folder / name, fluorescence((64, 80), seed=len(name) + int(name[1])), size)
    write_calibrated(folder / "07.tif", fluorescence((64, 80), seed=7), 0.65)
    truncate(folder / "07.tif")
    (folder / "notes.txt").write_text("not an image")
    return folder


def small_tiles(qtbot, window):
    type_in(qtbot, window, "overlapSpin", "0")
    type_in(qtbot, window, "patchSizeSpin", "32")


def choose_export_folder(qtbot, window, dialogs, out):
    dialogs.folder = out  # what the folder dialog answers
    click(qtbot, window, "exportFolderButton")
    assert window.export_folder == out


def export(window, qtbot, dialogs, out, timeout=30_000):
    choose_export_folder(qtbot, window, dialogs, out)
    with qtbot.waitSignal(window.exportEnded, timeout=timeout) as blocker:
        click(qtbot, window, "exportButton")
    return blocker.args[0]


def sources(manifest_path):
    return {s["file"]: s for s in json.loads(manifest_path.read_text())["sources"]}


# --- 1. File ▸ Save / Load settings ------------------------------------------------------------------
def test_settings_round_trip_through_the_file_menu(window, qtbot, tmp_path, dialogs):
    type_in(qtbot, window, "patchSizeSpin", "384")
    dialogs.file = tmp_path / "lab settings"
    menu(window, "saveSettingsAction")
    saved = tmp_path / "lab settings.json"
    assert saved.is_file() and json.loads(saved.read_text())["tile_size"] == 384
    assert "Settings saved" in window.statusBar().currentMessage()
    menu(window, "resetSettingsAction")
    assert find(window, "patchSizeSpin").value() == 512 and window.settings.tile_size == 512
    dialogs.file = saved
    menu(window, "loadSettingsAction")
    assert find(window, "patchSizeSpin").value() == 384
    assert not [text for text in dialogs.texts if "Unexpected" in text]
    # The file is in File ▸ Open recent.
    window.recentMenu.aboutToShow.emit()
    entries = [a.text() for a in window.recentMenu.actions()]
    assert f"Settings: {saved}" in entries
    menu(window, "resetSettingsAction")
    next(a for a in window.recentMenu.actions() if a.text() == f"Settings: {saved}").trigger()
    assert window.settings.tile_size == 384



def test_loading_a_bad_settings_file_says_where_and_changes_nothing(window, qtbot, tmp_path, dialogs):
    """File ▸ Load settings with an image, or a file whose values break a rule: one sentence
    naming the file and the setting as written in it; every field keeps its value."""
    type_in(qtbot, window, "patchSizeSpin", "384")
    picture = tmp_path / "cells.tif"
    tifffile.imwrite(picture, np.arange(4096, dtype=np.uint16).reshape(64, 64))
    dialogs.file = picture
    menu(window, "loadSettingsAction")
    assert dialogs.texts[-1] == (f"{picture} is not a text file, so not a settings file; choose the .json file the "
                                 f"window saved (File > Save settings) or one written by hand.")
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"patch_size": "big", "dtype": "int7"}))
    dialogs.file = old
    menu(window, "loadSettingsAction")
    text = dialogs.texts[-1]
    assert text.startswith("old.json: patch_size must be a whole number; got 'big'.") and "int7" in text
    assert "--" not in text and "Unexpected" not in text
    assert find(window, "patchSizeSpin").value() == 384 and window.settings.tile_size == 384

def test_every_menu_entry_runs_without_an_unexpected_error(window, qtbot, make_folder, load, dialogs):
    load(window, make_folder("menus", [((64, 64), 0.325)] * 2))
    for action in window.actions_by_name.values():
        if action.objectName() in ("quitAction", "demoAction"):
            continue
        action.trigger()  # the file dialogs answer "cancelled"
    qtbot.wait(200)
    assert not [text for text in dialogs.texts if "Unexpected" in text or "Traceback" in text]
    assert ("about", "About Tiles Creator") in [(k, t) for k, t, _ in dialogs.shown]
    window._merge_dialog.close()


# --- 2. A typed pixel size is for images without calibration ----------------------------------------------
def test_typed_pixel_size_goes_to_uncalibrated_images_only(window, qtbot, load, mixed, tmp_path, dialogs):
    load(window, mixed)
    small_tiles(qtbot, window)
    type_in(qtbot, window, "pixelSizeEdit", "0.5")
    rows = {row[0]: row for row in table_rows(window)}
    px, origin, scale = column(window, "Pixel size"), column(window, "From"), column(window, "Scale")
    assert rows["03.tif"][px:scale + 1] == ["0.65 µm", "ImageJ", "×2"]  # its metadata, not the typed value
    assert rows["04.tif"][px:scale + 1] == ["0.5 µm (typed)", "typed for images without calibration", "×1.538"]
    assert "2 images without calibration get the pixel size above" in find(window, "metadataLabel").text()
    # One image's own pixel size, typed in its row.
    type_in_row(qtbot, window, "05.tif", "Pixel size", "650 nm")
    rows = {row[0]: row for row in table_rows(window)}
    assert rows["05.tif"][px:scale + 1] == ["0.65 µm (typed)", "typed for this image", "×2"]
    summary = export(window, qtbot, dialogs, tmp_path / "out")
    records = sources(summary.manifest_path)
    assert records["03.tif"]["scale_factor"] == [2.0, 2.0] and records["03.tif"]["calibration"] == "ImageJ"
    assert records["02.tif"]["calibration"] == "ImageJ"
    assert records["04.tif"]["calibration"] == "manual (no metadata)"
    assert records["04.tif"]["scale_factor"] == pytest.approx([0.5 / 0.325] * 2)
    assert records["05.tif"]["calibration"] == "manual (this image)"
    # Replacing every image's metadata is an explicit choice.
    click(qtbot, window, "pixelSizeAllCheck")
    rows = {row[0]: row for row in table_rows(window)}
    assert rows["03.tif"][px:origin + 1] == ["0.5 µm (typed)", "typed for all images"]
    assert rows["05.tif"][origin] == "typed for this image"  # one image's own value still wins


# --- 3. Size and overlap: no field changes another, nothing is clamped silently ---------------------------
def test_typing_size_and_overlap_never_changes_the_other_field(window, qtbot):
    size, overlap = find(window, "patchSizeSpin"), find(window, "overlapSpin")
    error = window.tiles.findChild(QLabel, "tilesError")
    type_in(qtbot, window, "patchSizeSpin", "256")
    assert (size.value(), overlap.value()) == (256, 128)
    assert (window.settings.tile_size, window.settings.overlap) == (256, 128)
    type_in(qtbot, window, "patchSizeSpin", "100000")
    assert size.value() == 100000 and overlap.value() == 128  # shown as typed, never clamped
    assert error.isVisible() and "Tile size must be between 1 and 65536; got 100000" in error.text()
    assert window.settings.tile_size == 256 and not find(window, "exportButton").isEnabled()
    type_in(qtbot, window, "patchSizeSpin", "512")
    type_in(qtbot, window, "overlapSpin", "600")
    assert overlap.value() == 600 and size.value() == 512
    assert "Overlap must be smaller than the tile size (512); got 600" in error.text()
    type_in(qtbot, window, "overlapSpin", "64")
    assert not error.isVisible() and (window.settings.tile_size, window.settings.overlap) == (512, 64)


def test_typing_is_applied_on_enter_not_at_each_key(window, qtbot):
    type_in(qtbot, window, "patchSizeSpin", "25", enter=False)
    assert window.settings.tile_size == 512
    qtbot.keyClick(find(window, "patchSizeSpin").lineEdit(), Qt.Key.Key_6)
    qtbot.keyClick(find(window, "patchSizeSpin").lineEdit(), Qt.Key.Key_Return)
    assert window.settings.tile_size == 256


def test_a_tile_size_beyond_the_memory_limit_is_said_next_to_the_field(window, qtbot):
    type_in(qtbot, window, "patchSizeSpin", "8192")
    error = window.tiles.findChild(QLabel, "tilesError")
    assert error.isVisible() and "MB each" in error.text() and "px or less" in error.text()
    assert not find(window, "exportButton").isEnabled()


# --- 4. Integer output types: bounds follow the type; near-black refused or warned, and seen ---------------
def test_integer_type_bounds_follow_the_type_and_near_black_is_refused_or_warned(window, qtbot, make_folder, load,
                                                                               tmp_path, dialogs):
    load(window, make_folder("bounds", [((64, 64), 0.325)]))
    choose_export_folder(qtbot, window, dialogs, tmp_path / "out")
    pick(qtbot, window, "formatCombo", ".tif")
    pick(qtbot, window, "dtypeCombo", "uint8")
    assert (find(window, "lowerBoundEdit").text(), find(window, "upperBoundEdit").text()) == ("0", "255")
    assert window.settings.output_bounds == (0, 255) and find(window, "exportButton").isEnabled()
    bounds_error = window.normalization.findChild(QLabel, "boundsError")
    type_in(qtbot, window, "upperBoundEdit", "1")
    assert bounds_error.isVisible() and "float32" in bounds_error.text()
    assert not find(window, "exportButton").isEnabled()
    type_in(qtbot, window, "upperBoundEdit", "10")
    assert bounds_error.isVisible() and "11 grey levels" in bounds_error.text()  # a warning: allowed
    assert find(window, "exportButton").isEnabled()
    # The output values are seen before exporting: dark on the type's whole range.
    with qtbot.waitSignal(window.previewShown, timeout=10_000):
        click(qtbot, window, "previewButton")
    with qtbot.waitSignal(window.outputShown, timeout=10_000) as blocker:
        click(qtbot, window, "outputValuesCheck")
    output = blocker.args[0]
    assert output.values.dtype == np.uint8 and output.values.max() == 10
    assert tuple(window.viewer.image.levels) == (0, 255)
    assert "Output values" in window.viewer.title.text and "too few" in window.viewer.title.text
    click(qtbot, window, "outputValuesCheck")
    assert window.viewer.image.image.dtype != np.uint8  # the source values again


# --- 5. The export bar is on screen on a laptop ---------------------------------------------------------------
def test_export_bar_is_visible_at_1366x768(window, qtbot, load, mixed, tmp_path, dialogs):
    window.resize(1366, 768)
    qtbot.waitExposed(window)
    load(window, mixed)
    small_tiles(qtbot, window)
    choose_export_folder(qtbot, window, dialogs, tmp_path / "out")
    qtbot.wait(50)
    for name in ("exportButton", "cancelButton", "exportWarningLabel", "progressBar"):
        assert not find(window, name).visibleRegion().isEmpty(), name
    assert "3 of 7 images will fail" in find(window, "exportWarningLabel").text()
    with qtbot.waitSignal(window.exportEnded, timeout=30_000):
        click(qtbot, window, "exportButton")
    qtbot.wait(50)
    summary = find(window, "summaryLabel")
    assert "3 images failed" in summary.text() and not summary.visibleRegion().isEmpty()
    assert not find(window, "exportButton").visibleRegion().isEmpty()


# --- 6. Empty export folder empties what an export wrote ----------------------------------------------------------
def test_empty_export_folder_removes_everything_an_export_wrote(window, qtbot, make_folder, load, tmp_path, dialogs):
    load(window, make_folder("split", [((64, 64), 0.325)] * 4))
    small_tiles(qtbot, window)
    type_in(qtbot, window, "valFractionSpin", "50")
    out = tmp_path / "out"
    export(window, qtbot, dialogs, out)
    written = sum(1 for p in out.rglob("*") if p.is_file())
    assert written > 10 and (out / "train").is_dir() and (out / "val").is_dir()
    (out / "my notes.txt").write_text("mine")
    dialogs.answers = [True, False]  # delete what the export wrote; keep my file
    click(qtbot, window, "emptyFolderButton")
    assert f"Delete the {written} files that an earlier export wrote" in dialogs.asked[0][1]
    assert "1 file that no export wrote" in dialogs.asked[1][1] and "my notes.txt" in dialogs.asked[1][1]
    qtbot.waitUntil(lambda: not window.jobs.busy("empty"), timeout=10_000)
    assert [p.name for p in out.iterdir()] == ["my notes.txt"]


# --- 7. Unreadable files are found at load; every count agrees --------------------------------------------------
def test_truncated_tiff_is_found_at_load_and_every_count_agrees(window, qtbot, make_folder, load, tmp_path, dialogs):
    folder = make_folder("truncated", [((64, 80), 0.325)] * 3)
    write_calibrated(folder / "cell_04.tif", fluorescence((64, 80)), 0.325)
    truncate(folder / "cell_04.tif")
    with qtbot.waitSignal(window.sampleShown, timeout=10_000):
        load(window, folder)
    small_tiles(qtbot, window)
    assert find(window, "sourcesLabel").text() == "4 images (1 unreadable)"
    rows = {row[0]: row for row in table_rows(window)}
    assert rows["cell_04.tif"][-1].startswith("unreadable:")
    assert "3 of 3 readable images, 1 unreadable not shown" in window.viewer.title.text
    hint = find(window, "exportHintLabel")
    choose_export_folder(qtbot, window, dialogs, tmp_path / "out")
    total = 3 * int(rows["cell_01.tif"][column(window, "Tiles")])
    assert hint.text() == f"Ready: {total} tiles from 3 images."
    assert "1 of 4 images will fail" in find(window, "exportWarningLabel").text()
    summary = export(window, qtbot, dialogs, tmp_path / "out")
    assert summary.tiles_written == total and summary.images_ok == 3 and len(summary.failed) == 1


# --- 8. The window's words ------------------------------------------------------------------------------------------
def test_messages_use_the_window_words_and_name_each_file_once(window, qtbot, make_folder, load, tmp_path, dialogs):
    load(window, make_folder("words", [((64, 64), 0.325), ((64, 64), None)]))
    small_tiles(qtbot, window)
    type_in(qtbot, window, "targetPixelSizeEdit", "abc")
    error = window.calibration.findChild(QLabel, "targetError")
    assert "Target pixel size must be a number" in error.text()
    type_in(qtbot, window, "targetPixelSizeEdit", "0.325")
    status = table_rows(window)[1][-1]
    summary = export(window, qtbot, dialogs, tmp_path / "out")
    shown = [status, find(window, "exportWarningLabel").text(), find(window, "summaryLabel").text(), *dialogs.texts,
             find(window, "summaryLabel").toolTip()]
    for text in shown:
        assert "--" not in text and "pixel_size" not in text and "tilesapp cut" not in text, text
        assert text.count("cell_02.tif") <= 1 or "\n" in text, text
    assert "Pixel size column of the sources table" in find(window, "summaryLabel").text()
    assert summary.failed


# --- 9. Closing during an export asks; settings are locked while it runs ---------------------------------------------
def test_closing_during_an_export_asks_and_settings_are_locked(window, qtbot, load, tmp_path, dialogs):
    from test_export import start_long_export

    out, _ = start_long_export(window, tmp_path, load, qtbot)
    for name in ("patchSizeSpin", "overlapSpin", "pixelSizeEdit", "normGlobal", "dtypeCombo", "minForegroundSpin",
                 "loadButton"):
        assert not find(window, name).isEnabled(), name
    assert find(window, "sourcesTable").editTriggers() == QAbstractItemView.EditTrigger.NoEditTriggers
    assert not window.actions_by_name["loadSettingsAction"].isEnabled()
    dialogs.answer = False  # keep exporting
    menu(window, "quitAction")
    assert window.isVisible() and window.jobs.busy("export")
    assert "Export running" in dialogs.asked[-1][0] and "Closing the window cancels it" in dialogs.asked[-1][1]
    job = window.jobs.job("export")
    dialogs.answer = True
    menu(window, "quitAction")
    assert not window.isVisible() and job.done.is_set() and job.is_cancelled
    assert json.loads((out / "manifest.json").read_text())["status"] == "cancelled"


def test_cancelled_export_says_what_was_written_and_time_left_was_shown(window, qtbot, load, tmp_path):
    from test_export import start_long_export

    start_long_export(window, tmp_path, load, qtbot)
    bar = find(window, "progressBar")
    qtbot.waitUntil(lambda: "left" in bar.format(), timeout=20_000)
    assert " tiles · " in bar.format() and "images done" in bar.format()
    with qtbot.waitSignal(window.exportEnded, timeout=20_000):
        click(qtbot, window, "cancelButton")
    text = find(window, "summaryLabel").text()
    assert "tiles written" in text and "of 12 images complete" in text and "from 0 images" not in text
    assert find(window, "exportButton").isEnabled() and find(window, "patchSizeSpin").isEnabled()


# --- 10. The previewed image is chosen in the table ---------------------------------------------------------------------
def test_rows_of_the_sources_table_choose_the_previewed_image(window, qtbot, make_folder, load, dialogs):
    load(window, make_folder("rows", [((64, 64), 0.325), ((64, 64), None), ((48, 64), 0.325)]))
    qtbot.waitUntil(lambda: not window.jobs.busy("view"), timeout=10_000)
    with qtbot.waitSignal(window.previewShown, timeout=10_000) as blocker:
        click_row(qtbot, window, "cell_03.tif")
    assert blocker.args[0].path.name == "cell_03.tif"
    shown = len(dialogs.shown)
    click_row(qtbot, window, "cell_02.tif")  # no pixel size: said in the view, no dialog
    qtbot.waitUntil(lambda: "carries no pixel size" in window.viewer.placeholder.text(), timeout=10_000)
    assert "Pixel size column" in window.viewer.placeholder.text() and len(dialogs.shown) == shown
    assert "Preparing" not in window.statusBar().currentMessage()  # no stale message
    with qtbot.waitSignal(window.previewShown, timeout=10_000) as blocker:
        click(qtbot, window, "anotherImageButton")  # the next row, in order
    assert blocker.args[0].path.name == "cell_03.tif"
    with qtbot.waitSignal(window.previewShown, timeout=10_000) as blocker:
        click(qtbot, window, "anotherImageButton")
    assert blocker.args[0].path.name == "cell_01.tif"


# --- smaller ----------------------------------------------------------------------------------------------------------
def test_tiles_are_counted_from_one(window, qtbot, make_folder, load):
    load(window, make_folder("one", [((64, 64), 0.325)]))
    small_tiles(qtbot, window)
    with qtbot.waitSignal(window.previewShown, timeout=10_000):
        click(qtbot, window, "previewButton")
    assert find(window, "tileIndexLabel").text() == "tile 1 of 4"
    assert window.viewer.highlight_label.toPlainText().strip().startswith("tile 1 · row 1, col 1")
    find(window, "tileSlider").setValue(3)
    assert find(window, "tileIndexLabel").text() == "tile 4 of 4"


def test_non_ascii_names_are_written_right_on_the_sample(window, qtbot, tmp_path, load):
    folder = tmp_path / "noms"
    folder.mkdir()
    for name in ("épithélium.tif", "細胞.tif"):
        write_calibrated(folder / name, fluorescence((64, 64)), 0.325)
    with qtbot.waitSignal(window.sampleShown, timeout=10_000):
        load(window, folder)
    assert sorted(window.viewer.labels) == ["épithélium.tif", "細胞.tif"]
    assert [row[0] for row in table_rows(window)] == ["épithélium.tif", "細胞.tif"]


def test_status_messages_do_not_stay_after_their_job(window, qtbot, make_folder, load, tmp_path, dialogs):
    load(window, make_folder("stale", [((64, 64), 0.325)]))
    qtbot.waitUntil(lambda: not any(window.jobs.busy(s) for s in ("scan", "view")), timeout=10_000)
    assert not window.statusBar().currentMessage().startswith(("Checking", "Reading"))
    window.sources.paths[0].write_bytes(b"II*\x00 gone")
    click(qtbot, window, "previewButton")
    qtbot.waitUntil(lambda: bool(dialogs.shown), timeout=10_000)
    assert "Preparing" not in window.statusBar().currentMessage()


def test_merge_dialog_result_is_readable_and_opens_the_output(window, qtbot, make_folder, load, tmp_path, dialogs):
    load(window, make_folder("merge", [((64, 64), 0.325)] * 2))
    small_tiles(qtbot, window)
    export(window, qtbot, dialogs, tmp_path / "tiles")
    (tmp_path / "tiles" / "cell_02_000.tif").unlink()  # one image cannot be merged: a longer result
    dialog = window.show_merge_dialog()
    assert not dialog.openButton.isEnabled()
    with qtbot.waitSignal(dialog.mergeEnded, timeout=20_000):
        qtbot.mouseClick(dialog.mergeButton, Qt.MouseButton.LeftButton)
    qtbot.wait(50)
    label, scroll = dialog.resultLabel, dialog.resultScroll
    assert "written to" in label.text()
    # Every line can be read: the label has the height its text needs (the area scrolls if it must).
    assert label.height() >= label.heightForWidth(label.width())
    assert scroll.viewport().height() >= label.height() or scroll.verticalScrollBar().maximum() > 0
    qtbot.mouseClick(dialog.openButton, Qt.MouseButton.LeftButton)
    assert dialogs.opened == [tmp_path / "tiles-merged"]
    dialog.close()
