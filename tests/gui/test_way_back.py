"""Issue 14 in the window: File ▸ Merge tiles… merges by what the tiles hold (blend, vote,
instances, max) or merges per-tile boxes; File ▸ Apply a model… runs an ONNX model over a folder
in a worker, with progress, cancel and a summary. Driven as a person does; what lands on disk
is checked against the images the tiles were cut from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PySide6.QtWidgets import QApplication, QPushButton

from PySide6.QtCore import Qt

from helpers import find
from person import click, menu, pick, type_in, type_into
from conftest import fluorescence, write_calibrated

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from tilesapp.core.predict import settings_beside  # noqa: E402
from tilesapp.core.settings import Settings, save_settings  # noqa: E402

SHAPE = (150, 170)


def identity_model(path, size="H"):
    """An ONNX model that gives back its input: tiles (N, 1, rows, cols) float."""
    spec = ["N", 1, size, size]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, spec)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, spec)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def fill(qtbot, edit, text):
    """Type into a field of a dialog and leave it with Tab (Enter would press the dialog's default button)."""
    type_into(qtbot, edit, text, enter=False)
    qtbot.keyClick(edit, Qt.Key.Key_Tab)


def choose(qtbot, widget_owner, name, text):
    qtbot.wait(QApplication.keyboardInputInterval() + 50)
    pick(qtbot, widget_owner, name, text)


def cut(window, qtbot, dialogs, folder, out, dtype):
    """Export ``folder`` from the window: tiles of 64 px overlapping by 16, values kept."""
    type_in(qtbot, window, "overlapSpin", "16")
    type_in(qtbot, window, "patchSizeSpin", "64")
    click(qtbot, window, "normNone")
    pick(qtbot, window, "dtypeCombo", dtype)
    dialogs.folder = out
    click(qtbot, window, "exportFolderButton")
    with qtbot.waitSignal(window.exportEnded, timeout=30_000) as blocker:
        click(qtbot, window, "exportButton")
    assert blocker.args[0].images_ok == 1


def open_merge_dialog(window):
    """File ▸ Merge tiles… as a person chooses it; the dialog it opens."""
    menu(window, "mergeAction")
    return window._merge_dialog


def merge(qtbot, dialog, timeout=30_000):
    with qtbot.waitSignal(dialog.mergeEnded, timeout=timeout) as blocker:
        click(qtbot, dialog, "mergeButton")
    return blocker.args[0]


@pytest.fixture
def classes(tmp_path):
    """A class map (ids 0–3 in vertical bands, boundaries inside the overlaps) at the target pixel size."""
    folder = tmp_path / "classes"
    folder.mkdir()
    ids = np.zeros(SHAPE, np.uint8)
    for k, x in enumerate((40, 55, 100)):
        ids[:, x:] = k + 1
    write_calibrated(folder / "map.tif", ids, 0.325)
    return folder, ids


@pytest.fixture
def discs(tmp_path):
    """Instance labels: 6 discs, several across tile seams."""
    folder = tmp_path / "discs"
    folder.mkdir()
    yy, xx = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    labels = np.zeros(SHAPE, np.uint16)
    for k, (cy, cx) in enumerate(((48, 48), (50, 100), (100, 45), (105, 110), (20, 150), (130, 150)), start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 12 ** 2] = k
    write_calibrated(folder / "cells.tif", labels, 0.325)
    return folder, labels


def test_merge_modes_from_the_merge_dialog(window, load, qtbot, classes, tmp_path, dialogs):
    folder, ids = classes
    load(window, folder)
    cut(window, qtbot, dialogs, folder, tmp_path / "tiles", "uint8")
    dialog = open_merge_dialog(window)
    assert find(dialog, "mergeTilesEdit").text() == str(tmp_path / "tiles")
    # Only the options of the mode are shown.
    assert find(dialog, "blendCombo").isVisible() and not find(dialog, "iouSpin").isVisible()
    assert not find(dialog, "mergePredictionsEdit").isVisible()
    choose(qtbot, dialog, "combineCombo", "vote")
    assert find(dialog, "blendCombo").currentText() == "gradient"  # no ties between two tiles
    fill(qtbot, find(dialog, "mergeOutputEdit"), str(tmp_path / "voted"))
    summary = merge(qtbot, dialog)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "voted" / "map.tif"), ids)  # never an invented class
    assert find(dialog, "mergeResultLabel").text().startswith("1 image written to")
    click(qtbot, dialog, "mergeOpenButton")
    assert dialogs.opened == [summary.output]
    # A blend of the same tiles averages ids: the hann window is offered.
    choose(qtbot, dialog, "combineCombo", "blend")
    choose(qtbot, dialog, "blendCombo", "hann")
    fill(qtbot, find(dialog, "mergeOutputEdit"), str(tmp_path / "blended"))
    merge(qtbot, dialog)
    assert tifffile.imread(tmp_path / "blended" / "map.tif").shape == SHAPE
    dialog.close()


def test_instances_merge_says_how_many_objects(window, load, qtbot, discs, tmp_path, dialogs):
    folder, labels = discs
    load(window, folder)
    cut(window, qtbot, dialogs, folder, tmp_path / "tiles", "uint16")
    dialog = open_merge_dialog(window)
    choose(qtbot, dialog, "combineCombo", "inst")
    assert find(dialog, "iouSpin").isVisible() and not find(dialog, "blendCombo").isVisible()
    fill(qtbot, find(dialog, "iouSpin").lineEdit(), "0.4")
    fill(qtbot, find(dialog, "mergeOutputEdit"), str(tmp_path / "objects"))
    summary = merge(qtbot, dialog)
    merged = tifffile.imread(tmp_path / "objects" / "cells.tif")
    assert summary.total("objects") == 6 and len(np.unique(merged)) == 7
    assert (merged > 0).sum() == (labels > 0).sum()
    text = find(dialog, "mergeResultLabel").text()
    assert "6 objects;" in text and f"{summary.total('merged')} found in several tiles were given one id" in text
    dialog.close()


def test_boxes_from_a_predictions_folder(window, load, qtbot, classes, tmp_path, dialogs):
    folder, _ = classes
    load(window, folder)
    cut(window, qtbot, dialogs, folder, tmp_path / "tiles", "uint8")
    # A detector found one object (x 50–62, y 50–60: where four tiles overlap) in every tile.
    manifest = json.loads((tmp_path / "tiles" / "manifest.json").read_text())
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    x0, y0, x1, y1 = 50, 50, 62, 60
    seen = 0
    for tile in manifest["tiles"]:
        stem = tile["file"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if tile["x0"] <= x0 and x1 <= tile["x0"] + 64 and tile["y0"] <= y0 and y1 <= tile["y0"] + 64:
            cx, cy = ((x0 + x1) / 2 - tile["x0"]) / 64, ((y0 + y1) / 2 - tile["y0"]) / 64
            (predictions / f"{stem}.txt").write_text(f"0 {cx} {cy} {(x1 - x0) / 64} {(y1 - y0) / 64} 0.9\n")
            seen += 1
    assert seen >= 2  # duplicates to merge
    dialog = open_merge_dialog(window)
    choose(qtbot, dialog, "combineCombo", "boxes")
    assert find(dialog, "mergePredictionsEdit").isVisible() and find(dialog, "boxFusionCombo").isVisible()
    fill(qtbot, find(dialog, "mergePredictionsEdit"), str(predictions))
    choose(qtbot, dialog, "boxFusionCombo", "average")
    fill(qtbot, find(dialog, "mergeOutputEdit"), str(tmp_path / "boxes"))
    summary = merge(qtbot, dialog)
    assert summary.total("boxes_in") == seen and summary.total("boxes") == 1
    line = (tmp_path / "boxes" / "map.txt").read_text().split()
    assert line[0] == "0" and float(line[1]) * SHAPE[1] == pytest.approx(56, abs=1)
    assert (tmp_path / "boxes" / "coco.json").is_file()
    text = find(dialog, "mergeResultLabel").text()
    assert text.startswith("1 box file written to") and "coco.json" in text
    assert f"{seen} boxes found in the tiles, 1 after merging" in text
    dialog.close()


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    image = fluorescence(SHAPE, seed=3)
    write_calibrated(folder / "cell.tif", image, 0.325)
    return folder, image


def predict_dialog(window, qtbot):
    menu(window, "predictAction")
    return window._predict_dialog


def run(qtbot, dialog, timeout=60_000):
    with qtbot.waitSignal(dialog.predictEnded, timeout=timeout) as blocker:
        click(qtbot, dialog, "predictButton")
    return blocker.args[0]


def test_apply_a_model_with_the_window_settings(window, load, qtbot, images, tmp_path, dialogs):
    folder, image = images
    load(window, folder)
    type_in(qtbot, window, "overlapSpin", "16")
    type_in(qtbot, window, "patchSizeSpin", "64")
    model = identity_model(tmp_path / "unet.onnx")
    dialog = predict_dialog(window, qtbot)
    assert find(dialog, "predictInputEdit").text() == str(folder)  # the window's folder
    assert find(dialog, "predictOutputEdit").text() == str(folder.with_name("images-predictions"))
    fill(qtbot, find(dialog, "predictModelEdit"), str(model))
    label = find(dialog, "predictSettingsLabel").text()
    assert "Settings of this window (no unet.tilesapp.json beside the model)" in label and "tiles of 64 px" in label
    summary = run(qtbot, dialog)
    result = tifffile.imread(folder.with_name("images-predictions") / "cell.tif")
    expected = (image.astype(np.float64) - image.min()) / (image.max() - image.min())  # the UNet normalization
    np.testing.assert_allclose(np.squeeze(result), expected, atol=1e-5)
    text = find(dialog, "predictResultLabel").text()
    assert text.startswith("unet.onnx gives probabilities, blended (on CPU).") and "1 result written to" in text
    assert summary.kind == "probabilities" and find(dialog, "predictOpenButton").isEnabled()
    click(qtbot, dialog, "predictOpenButton")
    assert dialogs.opened == [summary.output]
    # Results present: asked before replacing them.
    dialogs.answer = False
    click(qtbot, dialog, "predictButton")
    assert dialogs.asked[-1][0] == "Results folder not empty" and not window.jobs.busy("predict")
    dialog.close()


def test_the_settings_beside_the_model_are_used_and_said(window, load, qtbot, images, tmp_path, dialogs):
    folder, image = images
    load(window, folder)
    model = identity_model(tmp_path / "mask.onnx", size=32)
    beside = settings_beside(model)
    save_settings(Settings(tile_size=32, overlap=8), beside)
    data = json.loads(beside.read_text())
    data["predict"] = {"model_output": "mask", "restore_scale": False}
    beside.write_text(json.dumps(data))
    dialog = predict_dialog(window, qtbot)
    fill(qtbot, find(dialog, "predictModelEdit"), str(model))
    assert "Settings from <b>mask.tilesapp.json</b>, saved beside the model: tiles of 32 px, overlap 8" in \
        find(dialog, "predictSettingsLabel").text()
    assert find(dialog, "modelOutputCombo").currentText() == "mask"
    assert not find(dialog, "predictRestoreCheck").isChecked()
    fill(qtbot, find(dialog, "predictOutputEdit"), str(tmp_path / "masks"))
    summary = run(qtbot, dialog)
    assert summary.kind == "mask" and tifffile.imread(tmp_path / "masks" / "cell.tif").shape[-2:] == SHAPE
    # A model of 32 px tiles with the window's 512 px tiles: said in the window's words.
    beside.unlink()
    fill(qtbot, find(dialog, "predictModelEdit"), str(model))
    fill(qtbot, find(dialog, "predictOutputEdit"), str(tmp_path / "again"))
    assert run(qtbot, dialog) is None
    text = find(dialog, "predictResultLabel").text()
    assert "mask.onnx takes 32 × 32 px tiles but the settings cut 512 px tiles; set Tile size 32" in text
    assert not (tmp_path / "again").exists()
    dialog.close()


def test_a_prediction_can_be_cancelled(window, load, qtbot, tmp_path, dialogs):
    folder = tmp_path / "big"
    folder.mkdir()
    for k in range(3):
        write_calibrated(folder / f"slide_{k}.tif", fluorescence((1200, 1200), seed=k), 0.325)
    load(window, folder)
    type_in(qtbot, window, "overlapSpin", "8")
    type_in(qtbot, window, "patchSizeSpin", "32")
    dialog = predict_dialog(window, qtbot)
    fill(qtbot, find(dialog, "predictModelEdit"), str(identity_model(tmp_path / "m.onnx")))
    with qtbot.waitSignal(dialog.predictEnded, timeout=60_000) as blocker:
        click(qtbot, dialog, "predictButton")
        assert find(dialog, "predictCancelButton").isEnabled() and not find(dialog, "predictModelEdit").isEnabled()
        qtbot.waitUntil(lambda: "tiles" in find(dialog, "predictResultLabel").text(), timeout=30_000)
        click(qtbot, dialog, "predictCancelButton")
    summary = blocker.args[0]
    assert summary is None or summary.cancelled
    assert find(dialog, "predictResultLabel").text().startswith("Cancelled")
    assert find(dialog, "predictButton").isEnabled()
    dialog.close()


def test_without_onnxruntime_the_dialog_says_so(qtbot, monkeypatch):
    from tilesapp.gui import MainWindow, predict_dialog as module

    monkeypatch.setattr(module, "onnxruntime_missing", lambda: "Applying a model needs onnxruntime, which this "
                                                                 "installation lacks.")
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    dialog = predict_dialog(window, qtbot)
    qtbot.waitExposed(dialog)
    assert not find(dialog, "predictButton").isEnabled()
    note = find(dialog, "onnxMissingLabel")
    assert note.isVisible() and "needs onnxruntime" in note.text()
    dialog.close()
    window.close()


def test_browse_buttons_fill_the_fields_as_if_typed(window, qtbot, tmp_path, dialogs):
    images, model = tmp_path / "images", identity_model(tmp_path / "seg.onnx")
    images.mkdir()
    dialog = predict_dialog(window, qtbot)
    browse = [b for b in dialog.findChildren(QPushButton) if b.text() == "Browse…"]
    assert len(browse) == 3  # images, results, model, in that order
    dialogs.folder, dialogs.file = images, model
    qtbot.mouseClick(browse[0], Qt.MouseButton.LeftButton)
    assert find(dialog, "predictInputEdit").text() == str(images)
    # chosen is confirmed, as Enter would: the results folder is suggested beside it
    assert find(dialog, "predictOutputEdit").text() == str(tmp_path / "images-predictions")
    qtbot.mouseClick(browse[2], Qt.MouseButton.LeftButton)
    assert find(dialog, "predictModelEdit").text() == str(model)
    dialog.close()
    merge_dialog = open_merge_dialog(window)
    dialogs.folder = tmp_path / "tiles"
    qtbot.mouseClick(next(b for b in merge_dialog.findChildren(QPushButton) if b.text() == "Browse…"),
                     Qt.MouseButton.LeftButton)
    assert find(merge_dialog, "mergeTilesEdit").text() == str(tmp_path / "tiles")
