"""Export from the window: folder safety, emptying, writing, cancelling, closing mid-export."""

from __future__ import annotations

import json
import os
import time

import cv2
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import Qt, QTimer

from tilesapp.core.geometry import TileGrid
from helpers import find
from person import click

PARTIAL = ".partial"


def partial_files(folder):
    return [name for name in os.listdir(folder) if name.endswith(PARTIAL)]


def choose_preset(window, label):
    preset = find(window, "presetCombo")
    preset.setCurrentIndex(preset.findText(label))
    preset.activated.emit(preset.currentIndex())


def test_export_writes_the_tiles_of_every_image(window, make_folder, load, tmp_path, qtbot):
    folder = make_folder("input", [((100, 120), 0.65), ((90, 90), 0.65)])
    load(window, folder)
    choose_preset(window, "YOLO")
    find(window, "patchSizeSpin").setValue(64)
    find(window, "overlapSpin").setValue(16)
    out = tmp_path / "tiles"
    assert window.exporter.select_folder(out)
    assert find(window, "exportButton").isEnabled()
    total = len(TileGrid.for_shape((200, 240), 64, 16)) + len(TileGrid.for_shape((180, 180), 64, 16))
    assert find(window, "exportHintLabel").text() == f"Ready: {total} tiles from 2 images."
    with qtbot.waitSignal(window.exportEnded, timeout=20_000) as blocker:
        qtbot.mouseClick(find(window, "exportButton"), Qt.MouseButton.LeftButton)
    summary = blocker.args[0]
    # Recalibrated 0.65 → 0.325 µm: (200, 240) and (180, 180).
    grids = {"cell_01": TileGrid.for_shape((200, 240), 64, 16), "cell_02": TileGrid.for_shape((180, 180), 64, 16)}
    expected = sorted(f"{stem}_{i:03d}.png" for stem, grid in grids.items() for i in range(len(grid)))
    written = sorted(p.name for p in out.glob("*.png"))
    assert written == expected
    assert summary.tiles_written == len(expected) and not summary.failed and not summary.cancelled
    tile = cv2.imread(str(out / expected[0]), cv2.IMREAD_UNCHANGED)
    assert tile.dtype == np.uint8 and tile.shape == (64, 64)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["tiles"]) == len(expected)
    assert f"{len(expected)} tiles" in find(window, "summaryLabel").text()
    assert find(window, "progressBar").value() == 1000
    assert find(window, "openFolderButton").isEnabled()
    assert not partial_files(out)


def test_float32_tif_tiles_for_unet(window, make_folder, load, tmp_path, qtbot):
    folder = make_folder("unet", [((64, 64), 0.325)])
    load(window, folder)
    choose_preset(window, "UNet")
    find(window, "patchSizeSpin").setValue(32)
    find(window, "overlapSpin").setValue(0)
    out = tmp_path / "out"
    window.exporter.select_folder(out)
    with qtbot.waitSignal(window.exportEnded, timeout=20_000):
        window.exporter.export()
    tiles = sorted(out.glob("cell_01_*.tif"))
    assert len(tiles) == 4
    data = tifffile.imread(tiles[0])
    assert data.dtype == np.float32 and data.shape == (32, 32)
    assert 0.0 <= data.min() and data.max() <= 1.0


def test_export_folder_inside_the_input_is_refused(window, make_folder, load, dialogs):
    folder = make_folder("in", [((64, 64), 0.325)])
    load(window, folder)
    assert not window.exporter.select_folder(folder)
    assert not window.exporter.select_folder(folder / "tiles")
    assert window.export_folder is None
    assert len(dialogs.shown) == 2 and "input folder" in dialogs.texts[0]
    assert not find(window, "exportButton").isEnabled()


def test_non_empty_export_folder_asks_first(window, make_folder, load, tmp_path, qtbot, dialogs):
    folder = make_folder("in", [((64, 64), 0.325)])
    load(window, folder)
    out = tmp_path / "busy"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    window.exporter.select_folder(out)
    # A file no export wrote is never mixed with tiles: said before anything starts.
    click(qtbot, window, "exportButton")
    assert not dialogs.asked and "no earlier export wrote" in dialogs.texts[-1]
    assert not window.jobs.busy("export") and sorted(p.name for p in out.iterdir()) == ["old.txt"]
    # An earlier export is replaced, after asking.
    (out / "old.txt").unlink()
    with qtbot.waitSignal(window.exportEnded, timeout=20_000):
        click(qtbot, window, "exportButton")
    before = sorted(p.name for p in out.iterdir())
    dialogs.answer = False
    click(qtbot, window, "exportButton")
    assert "already holds 2 files of an earlier export" in dialogs.asked[-1][1]
    assert not window.jobs.busy("export")
    dialogs.answer = True
    with qtbot.waitSignal(window.exportEnded, timeout=20_000) as blocker:
        click(qtbot, window, "exportButton")
    assert blocker.args[0].tiles_written == 1 and sorted(p.name for p in out.iterdir()) == before


def test_empty_export_folder_asks_separately_about_files_no_export_wrote(window, tmp_path, qtbot, dialogs):
    out = tmp_path / "out"
    (out / "keep").mkdir(parents=True)
    for name in ("a.tif", "b.tif", "manifest.json"):
        (out / name).write_text("x")
    (out / "keep" / "inner.tif").write_text("x")
    window.exporter.select_folder(out)
    dialogs.answer = False
    click(qtbot, window, "emptyFolderButton")
    # "manifest.json" is no manifest: nothing here was written by an export.
    assert len(dialogs.asked) == 1 and "holds 4 files that no export wrote" in dialogs.asked[-1][1]
    assert len(list(out.rglob("*"))) == 5
    dialogs.answer = True
    click(qtbot, window, "emptyFolderButton")
    qtbot.waitUntil(lambda: not window.jobs.busy("empty"), timeout=10_000)
    assert [p.name for p in out.iterdir()] == ["keep"]  # files only: a folder no export made stays
    assert "Deleted 4 files" in window.statusBar().currentMessage()


N_LONG, SIDE_LONG = 12, 1024


def start_long_export(window, tmp_path, load, qtbot):
    """An export of ~49 000 tiles: long enough to be interrupted on any machine."""
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_LONG):
        tifffile.imwrite(folder / f"noise_{i:02d}.tif", rng.integers(0, 4000, (SIDE_LONG, SIDE_LONG), dtype=np.uint16))
    load(window, folder)
    find(window, "calibrationCheck").setChecked(False)
    choose_preset(window, "YOLO")
    find(window, "patchSizeSpin").setValue(16)
    find(window, "overlapSpin").setValue(0)
    out = tmp_path / "out"
    window.exporter.select_folder(out)
    seen = []
    window.exporter.export()
    job = window.jobs.job("export")
    job.signals.progressed.connect(lambda p: seen.append(p))
    qtbot.waitUntil(lambda: any(p.done > 0 for p in seen), timeout=20_000)
    return out, seen


def test_cancel_stops_the_export_and_leaves_a_consistent_folder(window, load, tmp_path, qtbot):
    out, seen = start_long_export(window, tmp_path, load, qtbot)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    qtbot.wait(600)  # tiles are being written meanwhile; the timer must keep ticking
    assert find(window, "cancelButton").isEnabled()
    assert not find(window, "exportButton").isEnabled()
    with qtbot.waitSignal(window.exportEnded, timeout=20_000) as blocker:
        qtbot.mouseClick(find(window, "cancelButton"), Qt.MouseButton.LeftButton)
    timer.stop()
    summary = blocker.args[0]
    assert summary.cancelled
    total = N_LONG * (SIDE_LONG // 16) ** 2
    assert 0 < summary.tiles_written < total
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["tiles"]) == summary.tiles_written
    assert all((out / t["file"]).exists() for t in manifest["tiles"])
    assert not partial_files(out)
    assert "Cancelled" in find(window, "summaryLabel").text()
    assert find(window, "exportButton").isEnabled()
    # The event loop kept running while tiles were written.
    gaps = np.diff(ticks)
    assert len(ticks) > 10 and gaps.max() < 0.5


def test_another_folder_loaded_after_a_cancel_does_not_show_that_export_s_result(window, load, make_folder, tmp_path,
                                                                                 qtbot):
    many = tmp_path / "many"
    out, _ = start_long_export(window, tmp_path, load, qtbot)
    with qtbot.waitSignal(window.exportEnded, timeout=20_000):
        qtbot.mouseClick(find(window, "cancelButton"), Qt.MouseButton.LeftButton)
    summary, bar = find(window, "summaryLabel"), find(window, "progressBar")
    assert "Cancelled" in summary.text() and bar.format() == "Cancelled"
    load(window, many)  # the same images again: their export's result stays in view
    assert summary.isVisible() and "Cancelled" in summary.text()
    load(window, make_folder("other", [((100, 120), 0.65)]))
    assert not summary.isVisible() and summary.text() == ""
    assert bar.value() == 0 and bar.format() == ""
    assert find(window, "exportButton").isEnabled()


def test_closing_the_window_cancels_the_export(window, load, tmp_path, qtbot):
    out, _ = start_long_export(window, tmp_path, load, qtbot)
    job = window.jobs.job("export")
    window.close()
    assert job.done.is_set() and job.is_cancelled
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "cancelled"
    assert all((out / t["file"]).exists() for t in manifest["tiles"])
    assert not partial_files(out)


def test_images_that_fail_are_listed(window, make_folder, load, tmp_path, qtbot, dialogs):
    folder = make_folder("partly", [((64, 64), 0.325), ((64, 64), None)])
    load(window, folder)
    assert "1 of 2 images will fail" in find(window, "exportWarningLabel").text()
    out = tmp_path / "out"
    window.exporter.select_folder(out)
    with qtbot.waitSignal(window.exportEnded, timeout=20_000) as blocker:
        window.exporter.export()
    summary = blocker.args[0]
    assert summary.images_ok == 1 and [name for name, _ in summary.failed] == ["cell_02.tif"]
    assert dialogs.shown and "could not be exported" in dialogs.texts[-1] and "cell_02.tif" in dialogs.texts[-1]
    assert "cell_02.tif" in find(window, "summaryLabel").text()


@pytest.mark.parametrize("drop_input", [False, True])
def test_loading_a_folder_that_holds_the_export_folder_clears_it(window, make_folder, load, tmp_path, drop_input):
    folder = make_folder("data", [((64, 64), 0.325)])
    out = folder / "tiles" if drop_input else tmp_path / "elsewhere"
    window.exporter.select_folder(out)
    load(window, folder)
    assert (window.export_folder is None) == drop_input


def test_merge_dialog_rebuilds_the_exported_images(window, make_folder, load, tmp_path, qtbot):
    folder = make_folder("merge-in", [((100, 130), 0.65)])
    load(window, folder)
    find(window, "normNone").setChecked(True)
    find(window, "patchSizeSpin").setValue(64)
    find(window, "overlapSpin").setValue(16)
    window.exporter.select_folder(tmp_path / "tiles")
    with qtbot.waitSignal(window.exportEnded, timeout=20_000):
        window.exporter.export()
    dialog = window.show_merge_dialog()
    assert dialog.tilesEdit.text() == str(tmp_path / "tiles")
    dialog.blendCombo.setCurrentIndex(dialog.blendCombo.findData("gradient"))
    with qtbot.waitSignal(dialog.mergeEnded, timeout=20_000) as blocker:
        qtbot.mouseClick(dialog.mergeButton, Qt.MouseButton.LeftButton)
    summary = blocker.args[0]
    assert [p.name for p in summary.written] == ["cell_01.tif"]
    merged = tifffile.imread(summary.written[0])
    assert merged.shape == (200, 260)  # recalibrated 0.65 → 0.325 µm
    assert "1 image written" in dialog.resultLabel.text()
