"""Training sets from the window: masks and labels folders, the empty-tile filter, the split."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import tifffile
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QLabel, QPushButton, QSpinBox, QToolButton

from tilesapp.core.geometry import TileGrid
from tilesapp.core.selection import keep_tiles, split_sources, tile_fractions
from tilesapp.core.settings import load_settings
from tilesapp.gui import MainWindow
from helpers import find

#: 128 × 192 px at the target pixel size (no resampling), tiles of 64 without overlap: 2 × 3.
SHAPE, TILE = (128, 192), 64

OBJECT_NAMES = {
    "masksFolderButton": QPushButton,
    "labelsFolderButton": QPushButton,
    "clearMasksButton": QToolButton,
    "clearLabelsButton": QToolButton,
    "masksFolderLabel": QLabel,
    "labelsFolderLabel": QLabel,
    "minForegroundSpin": QDoubleSpinBox,
    "keepEmptySpin": QDoubleSpinBox,
    "boxVisibilitySpin": QDoubleSpinBox,
    "valFractionSpin": QDoubleSpinBox,
    "seedSpin": QSpinBox,
    "showAnnotationsCheck": QCheckBox,
    "splitLabel": QLabel,
}


def label_mask() -> np.ndarray:
    """Labels 1 (39 % of tile 0) and 2 (2.4 % of tile 5); tiles 1–4 hold nothing."""
    mask = np.zeros(SHAPE, np.uint8)
    mask[0:40, 0:40] = 1
    mask[70:80, 140:150] = 2
    return mask


@pytest.fixture
def project(make_folder, tmp_path):
    """``project(n)``: n images of SHAPE and a masks folder with a PNG mask for each."""

    def make(n: int = 1, name: str = "images"):
        images = make_folder(name, [(SHAPE, 0.325)] * n)
        masks = tmp_path / f"{name}-masks"
        masks.mkdir()
        for i in range(n):
            cv2.imwrite(str(masks / f"cell_{i + 1:02d}.png"), label_mask())
        return images, masks

    return make


def small_tiles(window) -> None:
    find(window, "patchSizeSpin").setValue(TILE)
    find(window, "overlapSpin").setValue(0)


def preview(window, qtbot, path):
    with qtbot.waitSignal(window.previewShown, timeout=10_000) as blocker:
        window.preview_image(path)
    return blocker.args[0]


def test_training_widgets_have_the_documented_names(window):
    for name, kind in OBJECT_NAMES.items():
        assert isinstance(find(window, name), kind), name
    # Box visibility only matters with labels; nothing to clear yet.
    assert not find(window, "boxVisibilitySpin").isEnabled()
    assert not find(window, "clearMasksButton").isEnabled()
    assert not find(window, "keepEmptySpin").isEnabled()  # the filter is off


def test_masks_and_labels_folders_are_chosen_and_cleared(window, project, tmp_path, qtbot, dialogs):
    images, masks = project()
    labels = tmp_path / "labels"
    labels.mkdir()
    dialogs.folder = masks
    qtbot.mouseClick(find(window, "masksFolderButton"), Qt.MouseButton.LeftButton)
    assert window.masks_folder == masks
    assert find(window, "masksFolderLabel").toolTip() == str(masks)
    assert find(window, "masksFolderLabel").text().endswith("masks")
    assert find(window, "clearMasksButton").isEnabled()
    dialogs.folder = labels
    qtbot.mouseClick(find(window, "labelsFolderButton"), Qt.MouseButton.LeftButton)
    assert window.labels_folder == labels
    assert find(window, "boxVisibilitySpin").isEnabled()
    qtbot.mouseClick(find(window, "clearLabelsButton"), Qt.MouseButton.LeftButton)
    assert window.labels_folder is None and not find(window, "boxVisibilitySpin").isEnabled()
    qtbot.mouseClick(find(window, "clearMasksButton"), Qt.MouseButton.LeftButton)
    assert window.masks_folder is None and find(window, "masksFolderLabel").text() == "No masks"
    assert not dialogs.shown
    # A cancelled dialog changes nothing.
    dialogs.folder = None
    assert not window.exporter.select_annotations("masks")


def test_export_folder_inside_the_masks_folder_is_refused(window, project, load, dialogs):
    images, masks = project()
    load(window, images)
    assert window.exporter.select_annotations("masks", masks)
    assert not window.exporter.select_folder(masks / "tiles")
    assert not window.exporter.select_folder(masks)
    assert window.export_folder is None
    assert "inside the masks folder" in dialogs.texts[0] and "is the masks folder" in dialogs.texts[1]


def test_masks_folder_inside_the_export_folder_is_refused(window, project, load, tmp_path, dialogs):
    images, _ = project()
    load(window, images)
    out = tmp_path / "out"
    inner = out / "old-masks"
    inner.mkdir(parents=True)
    assert window.exporter.select_folder(out)
    assert not window.exporter.select_annotations("labels", inner)
    assert not window.exporter.select_annotations("masks", out)
    assert window.masks_folder is None and window.labels_folder is None
    assert "inside the export folder" in dialogs.texts[0]
    assert all("Choose another export folder" in text or "outside it" in text for text in dialogs.texts)


def test_masks_folder_that_is_missing_or_the_input_folder_is_refused(window, project, load, tmp_path, dialogs):
    images, _ = project()
    load(window, images)
    assert not window.exporter.select_annotations("masks", tmp_path / "nowhere")
    assert not window.exporter.select_annotations("masks", images)
    assert "does not exist" in dialogs.texts[0]
    assert "every image would be its own mask" in dialogs.texts[1]


def test_preview_draws_the_mask_and_the_tiles_the_filter_drops(window, project, load, qtbot):
    images, masks = project()
    load(window, images)
    small_tiles(window)
    window.exporter.select_annotations("masks", masks)
    find(window, "minForegroundSpin").setValue(5.0)
    shown = preview(window, qtbot, images / "cell_01.tif")
    mask = label_mask()
    # The overlay: one RGBA image item over the whole image, transparent where the mask is 0.
    overlay = window.viewer.mask_item.image
    assert window.viewer.mask_item.isVisible()
    assert overlay.shape == (*SHAPE, 4)
    assert np.array_equal(overlay[:, :, 3] > 0, mask > 0)
    assert not np.array_equal(overlay[0, 0, :3], overlay[75, 145, :3])  # labels 1 and 2 differ
    rect = window.viewer.mask_item.mapRectToParent(window.viewer.mask_item.boundingRect())
    assert (rect.width(), rect.height()) == (SHAPE[1], SHAPE[0])
    # Kept and dropped tiles: what the engine's selection says for the same mask.
    grid = TileGrid.for_shape(SHAPE, TILE, 0)
    expected = keep_tiles(tile_fractions(mask > 0, grid), 0.05, 0.0, 0, "cell_01.tif")
    assert shown.keep.tolist() == expected.tolist() == [True, False, False, False, False, False]
    assert find(window, "tileCountLabel").text() == "6 tiles (2 × 3), 1 kept, 5 dropped"
    assert len(window.viewer.dropped_item) == 5 and window.viewer.dropped_item.isVisible()
    find(window, "tileSlider").setValue(1)
    assert "dropped" in window.viewer.highlight_label.toPlainText()
    # The checkbox hides and shows the overlay.
    check = find(window, "showAnnotationsCheck")
    assert check.isEnabled()
    qtbot.mouseClick(check, Qt.MouseButton.LeftButton)
    assert not window.viewer.mask_item.isVisible()
    qtbot.mouseClick(check, Qt.MouseButton.LeftButton)
    assert window.viewer.mask_item.isVisible()


def test_filter_settings_recompute_the_kept_tiles(window, project, load, qtbot):
    images, masks = project()
    load(window, images)
    small_tiles(window)
    window.exporter.select_annotations("masks", masks)
    preview(window, qtbot, images / "cell_01.tif")
    assert window.preview.keep is None  # filter off: every tile is kept
    assert find(window, "tileCountLabel").text().startswith("6 tiles (2 × 3) in this image")
    with qtbot.waitSignal(window.previewShown, timeout=10_000):
        find(window, "minForegroundSpin").setValue(2.0)  # tile 5 holds 2.4 %
    assert window.preview.keep.tolist() == [True, False, False, False, False, True]
    assert find(window, "tileCountLabel").text() == "6 tiles (2 × 3), 2 kept, 4 dropped"
    with qtbot.waitSignal(window.previewShown, timeout=10_000):
        find(window, "keepEmptySpin").setValue(50.0)  # half of the 4 empty tiles, at random
    assert int(window.preview.keep.sum()) == 4


def test_boxes_are_one_item_with_a_rectangle_each(window, make_folder, load, tmp_path, qtbot):
    images = make_folder("boxes", [(SHAPE, 0.325)])
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "cell_01.txt").write_text("0 0.25 0.25 0.1 0.1\n1 0.5 0.5 0.2 0.2\n2 0.9 0.9 0.05 0.05\n")
    load(window, images)
    window.exporter.select_annotations("labels", labels)
    shown = preview(window, qtbot, images / "cell_01.tif")
    assert len(shown.boxes) == 3
    items = [item for item in window.viewer.view.childGroup.childItems() if type(item).__name__ == "BoxesItem"]
    assert items == [window.viewer.boxes_item]
    assert len(window.viewer.boxes_item) == 3 and window.viewer.boxes_item.isVisible()
    rect = window.viewer.boxes_item.boundingRect()
    # From the first box's corner (0.2 × 192, 0.2 × 128) to the last one's (0.925 × 192, 0.925 × 128).
    assert (rect.left(), rect.top()) == pytest.approx((38.4, 25.6))
    assert (rect.right(), rect.bottom()) == pytest.approx((177.6, 118.4))
    assert window.viewer.mask_item.image is None


def test_preview_errors_of_masks_and_labels_are_sentences(window, project, load, tmp_path, qtbot, dialogs):
    images, masks = project(2)
    (masks / "cell_02.png").unlink()
    load(window, images)
    preview(window, qtbot, images / "cell_02.tif")
    dialogs.shown.clear()
    window.exporter.select_annotations("masks", masks)  # the preview follows, and says what is missing
    qtbot.waitUntil(lambda: bool(dialogs.shown), timeout=10_000)
    assert "cell_02.tif has no mask in" in dialogs.texts[-1] and "Traceback" not in dialogs.texts[-1]
    window.exporter.set_annotations("masks", None)
    qtbot.waitUntil(lambda: not window.jobs.busy("view"), timeout=10_000)
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "cell_01.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n")
    dialogs.shown.clear()
    window.exporter.select_annotations("labels", labels)
    window.preview_image(images / "cell_01.tif")
    qtbot.waitUntil(lambda: bool(dialogs.shown), timeout=10_000)
    assert "cell_01.txt: line 2: expected 5 values" in dialogs.texts[-1]


def test_export_with_masks_writes_images_and_masks_and_lists_dropped_tiles(window, project, load, tmp_path, qtbot):
    images, masks = project(2)
    load(window, images)
    small_tiles(window)
    window.exporter.select_annotations("masks", masks)
    find(window, "minForegroundSpin").setValue(5.0)
    out = tmp_path / "set"
    window.exporter.select_folder(out)
    assert "up to 12 tiles" in find(window, "exportHintLabel").text()
    with qtbot.waitSignal(window.exportEnded, timeout=20_000) as blocker:
        window.exporter.export()
    summary = blocker.args[0]
    assert not summary.failed and summary.tiles_written == 2 and summary.tiles_dropped == 10
    tiles = sorted(p.stem for p in (out / "images").iterdir())
    assert tiles == ["cell_01_000", "cell_02_000"]
    assert sorted(p.stem for p in (out / "masks").iterdir()) == tiles
    (first_mask,) = (out / "masks").glob("cell_01_000.*")  # beside .tif images, masks are .tif too
    assert np.array_equal(tifffile.imread(first_mask), label_mask()[:64, :64])
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["dropped"]) == 10
    assert {(d["source"], d["index"]) for d in manifest["dropped"]} == {
        (f"cell_0{n}.tif", i) for n in (1, 2) for i in range(1, 6)
    }
    text = find(window, "summaryLabel").text()
    assert "2 tiles from 2 images" in text and "10 tiles dropped: below 5 % foreground" in text


def test_split_settings_write_train_and_val(window, project, load, tmp_path, qtbot):
    images, masks = project(5)
    load(window, images)
    small_tiles(window)
    window.exporter.select_annotations("masks", masks)
    find(window, "valFractionSpin").setValue(40.0)
    find(window, "seedSpin").setValue(3)
    names = [f"cell_{i:02d}.tif" for i in range(1, 6)]
    sides = split_sources(names, 0.4, 3)
    val = sorted(n for n in names if sides[n] == "val")
    assert find(window, "splitLabel").text() == "2 of 5 images to val/"
    shown = preview(window, qtbot, images / val[0])
    assert "goes to <i>val/</i>" in window.viewer.title.text and shown.path.name == val[0]
    out = tmp_path / "split"
    window.exporter.select_folder(out)
    with qtbot.waitSignal(window.exportEnded, timeout=20_000) as blocker:
        window.exporter.export()
    assert blocker.args[0].split == {"train": 3, "val": 2}
    for side in ("train", "val"):
        stems = {p.name.rsplit("_", 1)[0] + ".tif" for p in (out / side / "images").iterdir()}
        assert stems == {n for n in names if sides[n] == side}
        assert sorted(p.stem for p in (out / side / "masks").iterdir()) == sorted(
            p.stem for p in (out / side / "images").iterdir()
        )
    assert "Split by image: 3 in train/, 2 in val/" in find(window, "summaryLabel").text()


def test_a_missing_mask_fails_that_image_alone_by_name(window, project, load, tmp_path, qtbot, dialogs):
    images, masks = project(2)
    (masks / "cell_02.png").unlink()
    load(window, images)
    small_tiles(window)
    window.exporter.select_annotations("masks", masks)
    window.exporter.select_folder(tmp_path / "out")
    with qtbot.waitSignal(window.exportEnded, timeout=20_000) as blocker:
        window.exporter.export()
    summary = blocker.args[0]
    assert summary.images_ok == 1 and [name for name, _ in summary.failed] == ["cell_02.tif"]
    assert "cell_02.tif" in dialogs.texts[-1] and "has no mask" in dialogs.texts[-1]
    assert "cell_02.tif" in find(window, "summaryLabel").text()


def test_training_settings_are_saved_loaded_and_remembered(window, tmp_path, qtbot):
    find(window, "minForegroundSpin").setValue(12.5)
    find(window, "keepEmptySpin").setValue(10.0)
    find(window, "boxVisibilitySpin").setValue(30.0)
    find(window, "valFractionSpin").setValue(20.0)
    find(window, "seedSpin").setValue(42)
    s = window.settings
    assert (s.min_foreground, s.keep_empty, s.min_box_visibility, s.val_fraction, s.seed) == (0.125, 0.1, 0.3, 0.2, 42)
    path = tmp_path / "training.json"
    assert window.files.save(path)
    saved, _ = load_settings(path)
    assert saved == window.settings
    data = json.loads(path.read_text())
    data.update(min_foreground=0.05, val_fraction=0.3, seed=7)
    path.write_text(json.dumps(data))
    assert window.files.load(path)
    assert find(window, "minForegroundSpin").value() == 5.0
    assert find(window, "valFractionSpin").value() == 30.0 and find(window, "seedSpin").value() == 7
    assert window.settings.keep_empty == 0.1
    window.close()
    second = MainWindow()
    qtbot.addWidget(second)
    assert second.settings.min_foreground == 0.05 and second.settings.seed == 7
    assert find(second, "keepEmptySpin").value() == 10.0


def test_a_validation_share_of_100_percent_cannot_be_entered(window):
    spin = find(window, "valFractionSpin")
    spin.setValue(100.0)
    assert spin.value() < 100.0 and window.settings.val_fraction < 1.0
    assert not window.settings_errors


def test_filter_without_masks_uses_the_image_and_shows_no_overlay(window, project, load, qtbot):
    images, _ = project()
    load(window, images)
    small_tiles(window)
    find(window, "minForegroundSpin").setValue(1.0)
    shown = preview(window, qtbot, images / "cell_01.tif")
    assert shown.mask is None and shown.boxes is None and shown.keep is not None
    assert len(shown.foreground) == 6
    assert " kept, " in find(window, "tileCountLabel").text()
    assert not find(window, "showAnnotationsCheck").isEnabled()
    assert not window.viewer.mask_item.isVisible()


def test_a_masks_folder_removed_before_export_is_a_message(window, project, load, tmp_path, qtbot, dialogs):
    import shutil

    images, masks = project()
    load(window, images)
    window.exporter.select_annotations("masks", masks)
    window.exporter.select_folder(tmp_path / "out")
    shutil.rmtree(masks)
    with qtbot.waitSignal(window.exportEnded, timeout=20_000) as blocker:
        window.exporter.export()
    assert blocker.args[0] is None
    assert "masks folder" in dialogs.texts[-1] and "does not exist" in dialogs.texts[-1]
