"""Issue 13 in the window: the layout a framework trains on, annotations drawn in QuPath, Fiji or
COCO, boxes from masks, whole images; what does not fit is said next to its field in the
window's words, and the preview draws the imported polygons over the tile grid, with the
filter's crosses — the same tiles the export then drops."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import tifffile
from PySide6.QtWidgets import QApplication, QLabel

from helpers import find
from person import click, click_row, menu, pick, type_in
from conftest import fluorescence, write_calibrated

#: 128 × 192 px at the target pixel size, tiles of 64 without overlap: 2 × 3 tiles.
SHAPE = (128, 192)
CELL = [[10, 10], [60, 10], [60, 50], [10, 50], [10, 10]]  # tile 0, with a hole
HOLE = [[25, 20], [45, 20], [45, 40], [25, 40], [25, 20]]
NUCLEUS = [[140, 80], [180, 80], [180, 120], [140, 120], [140, 80]]  # tile 5


def feature(rings, name):
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": rings},
            "properties": {"objectType": "annotation", "classification": {"name": name}}}


@pytest.fixture
def annotated(tmp_path):
    """One image and its QuPath GeoJSON export beside a masks folder (of instance masks)."""
    images = tmp_path / "images"
    images.mkdir()
    write_calibrated(images / "cell_01.tif", fluorescence(SHAPE), 0.325)
    qupath = tmp_path / "qupath"
    qupath.mkdir()
    geojson = qupath / "cell_01.geojson"
    geojson.write_text(json.dumps({"type": "FeatureCollection",
                                   "features": [feature([CELL, HOLE], "cell"), feature([NUCLEUS], "nucleus")]}))
    masks = tmp_path / "masks"
    masks.mkdir()
    mask = np.zeros(SHAPE, np.uint16)
    mask[10:50, 10:60], mask[80:120, 140:180] = 1, 2
    cv2.imwrite(str(masks / "cell_01.png"), mask)
    return images, geojson, masks


def small_tiles(qtbot, window):
    type_in(qtbot, window, "overlapSpin", "0")
    type_in(qtbot, window, "patchSizeSpin", "64")


def choose(qtbot, window, name, text):
    qtbot.wait(QApplication.keyboardInputInterval() + 50)  # a new keyboard search
    pick(qtbot, window, name, text)


def error(window, name) -> str:
    label = window.findChild(QLabel, name)
    return label.text() if label.isVisible() else ""


def test_layout_needs_annotations_and_the_preview_draws_their_polygons(window, load, qtbot, annotated, tmp_path,
                                                                       dialogs):
    images, geojson, masks = annotated
    load(window, images)
    small_tiles(qtbot, window)
    window.training.set_expanded(True)
    choose(qtbot, window, "layoutCombo", "nnU")
    assert window.settings.layout == "nnunet"
    assert error(window, "layoutError") == "⚠ nnU-Net trains on class masks: choose a masks folder or annotations."
    dialogs.folder = tmp_path / "Dataset501_Cells"
    click(qtbot, window, "exportFolderButton")
    assert not find(window, "exportButton").isEnabled()
    # A masks folder first; annotations then replace it (said in the status bar).
    dialogs.folder = masks
    click(qtbot, window, "masksFolderButton")
    assert error(window, "layoutError") == "" and find(window, "exportButton").isEnabled()
    dialogs.file = geojson
    menu(window, "annotationsFileAction")  # Annotations… ▸ A file
    assert window.exporter.annotations == geojson and window.masks_folder is None
    assert find(window, "annotationsLabel").toolTip() == str(geojson)
    assert "Masks folder cleared: annotations replace masks and labels" in window.statusBar().currentMessage()
    assert find(window, "clearAnnotationsButton").isEnabled() and find(window, "exportButton").isEnabled()
    # The preview draws both objects (the cell with its hole) as one item over the grid.
    type_in(qtbot, window, "minForegroundSpin", "5")
    with qtbot.waitSignal(window.previewShown, timeout=10_000) as blocker:
        click_row(qtbot, window, "cell_01.tif")
    preview = blocker.args[0]
    objects = preview.objects.objects
    assert objects.names == ("cell", "nucleus") and objects.classes.tolist() == [0, 1]
    assert len(objects.rings[0]) == 2  # outline and hole
    item = window.viewer.objects_item
    assert item.isVisible() and len(item) == 2
    assert [r.getRect() for r in item.rects()] == [(10, 10, 50, 40), (140, 80, 40, 40)]
    assert sum(isinstance(i, type(item)) for i in window.viewer.view.scene().items()) == 1  # one item for all
    assert "2 objects from cell_01.geojson (class masks)" in window.viewer.title.text
    # The filter keeps the tiles the polygons cover (the hole excluded), as the export will.
    assert preview.keep.tolist() == [True, False, False, False, False, True]
    assert window.viewer.dropped_item.isVisible() and len(window.viewer.dropped_item) == 4
    area = 50 * 40 - 20 * 20
    assert preview.foreground[0] == pytest.approx(area / 64 ** 2)
    # Hiding annotations hides the polygons.
    click(qtbot, window, "showAnnotationsCheck")
    assert not item.isVisible()
    click(qtbot, window, "showAnnotationsCheck")
    with qtbot.waitSignal(window.exportEnded, timeout=30_000) as blocker:
        click(qtbot, window, "exportButton")
    summary = blocker.args[0]
    out = tmp_path / "Dataset501_Cells"
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "cell": 1, "nucleus": 2} and dataset["numTraining"] == 2
    manifest = json.loads(summary.manifest_path.read_text())
    assert sorted(t["index"] for t in manifest["tiles"]) == [0, 5]  # the tiles the preview kept
    label = tifffile.imread(out / "labelsTr" / "cell_01_000.tif")
    assert label[30, 30] == 0 and label[15, 15] == 1  # the hole is no cell
    # Clearing the annotations: the layout says what it lacks again.
    click(qtbot, window, "clearAnnotationsButton")
    assert window.exporter.annotations is None and "nnU-Net trains on class masks" in error(window, "layoutError")


def test_what_a_layout_cannot_take_is_said_next_to_its_field(window, load, qtbot, annotated, tmp_path, dialogs):
    images, geojson, masks = annotated
    load(window, images)
    window.training.set_expanded(True)
    whole = find(window, "wholeImagesCheck")
    assert not whole.isEnabled()  # the plain layout takes tiles
    choose(qtbot, window, "layoutCombo", "Cellpose")
    assert whole.isEnabled()
    click(qtbot, window, "wholeImagesCheck")
    assert window.settings.whole_images
    # Back to a layout of tiles: the box stays available to be unticked, and says why.
    choose(qtbot, window, "layoutCombo", "plain")
    assert error(window, "trainingKindError") == ("⚠ Whole images is for layouts whose frameworks sample their own "
                                                  "patches (nnunet, cellpose, stardist); the plain layout takes tiles.")
    assert whole.isEnabled() and not find(window, "exportButton").isEnabled()
    click(qtbot, window, "wholeImagesCheck")
    assert error(window, "trainingKindError") == ""
    # Boxes from masks need masks.
    click(qtbot, window, "boxesFromMasksCheck")
    assert "Boxes from masks needs a masks folder of instance masks" in error(window, "trainingKindError")
    dialogs.folder = masks
    click(qtbot, window, "masksFolderButton")
    assert error(window, "trainingKindError") == ""
    # ultralytics reads 8-bit images: said next to the type, in the window's words.
    choose(qtbot, window, "layoutCombo", "ultra")
    assert "choose uint8 (the YOLO preset) for the ultralytics layout" in error(window, "outputError")
    assert "--" not in error(window, "outputError")
    pick(qtbot, window, "presetCombo", "YOLO")
    assert error(window, "outputError") == "" and error(window, "layoutError") == ""
    # Class masks do not fit Cellpose.
    assert not find(window, "annotationMasksCombo").isEnabled()  # the plain layout's choice
    choose(qtbot, window, "layoutCombo", "plain")
    choose(qtbot, window, "annotationMasksCombo", "classes")
    choose(qtbot, window, "layoutCombo", "Cellpose")
    assert error(window, "trainingKindError") == ("⚠ The Cellpose layout takes instances masks; Masks drawn as classes "
                                                  "does not fit it.")
    # A file that is no annotation is refused, in a sentence, and nothing changes.
    notes = tmp_path / "notes.txt"
    notes.write_text("not annotations")
    dialogs.file = notes
    menu(window, "annotationsFileAction")
    assert "notes.txt is not an annotation file" in dialogs.texts[-1] and window.exporter.annotations is None
    # A folder of annotations (QuPath writes them beside the images: allowed).
    dialogs.folder = geojson.parent
    menu(window, "annotationsFolderAction")
    assert window.exporter.annotations == geojson.parent and window.masks_folder is None


def test_an_image_without_annotations_says_so_in_its_preview(window, load, qtbot, annotated, tmp_path, dialogs):
    images, geojson, _ = annotated
    write_calibrated(images / "cell_02.tif", fluorescence(SHAPE, seed=2), 0.325)
    load(window, images)
    dialogs.folder = geojson.parent
    menu(window, "annotationsFolderAction")
    click_row(qtbot, window, "cell_02.tif")
    qtbot.waitUntil(lambda: bool(dialogs.shown), timeout=10_000)
    assert "cell_02.tif has no annotations in" in dialogs.texts[-1] and "empty file" in dialogs.texts[-1]
