"""Regenerate the screenshots of the documentation from the real window.

    python -m tilesapp.gui._screenshots [OUTPUT_FOLDER] [NAME.png ...]   (default: docs/screenshots, all)
    TILESAPP_SHOT_SIZE=1366x768 python -m tilesapp.gui._screenshots /tmp/laptop   (another window size)

Works offscreen (``QT_QPA_PLATFORM=offscreen``) or on a display (``xvfb-run -a``). Uses the demo
images (and, for the sources table, a folder of mixed files made from them; for the imported
annotations, QuPath GeoJSON outlines traced from masks made of them) and a throw-away settings
file, never the user's settings. The microscope-file screenshots (scenes.png, slide.png) copy
files of the shared real-data folder (``TILESAPP_REALDATA``, default ``../shared/realdata`` beside
the repository) into a temporary folder; without it they are skipped, said on the output.
merge.png and predict.png show the two dialogs after a real run: the demo exported and merged
back, and an identity model (run by onnxruntime; skipped without it) applied
to the demo folder with the settings saved beside it.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZE = (1440, 960)  # the default window
PREVIEW_IMAGE = "microglia_03.tif"
NAMES = ("sample.png", "preview.png", "training.png", "annotations.png", "sources.png", "output.png", "export.png",
         "scenes.png", "slide.png", "merge.png", "predict.png")
REALDATA = Path(os.environ.get("TILESAPP_REALDATA", ROOT.parent / "shared" / "realdata"))
#: The microscope files of scenes.png: a CZI of two scenes with Z, an ND2 Z stack, an ND2 of four
#: channels and an ND2 time series (left waiting for a frame choice, as a person sees it first).
SCENE_FILES = ("czi_2scenes_z2_neubias_xyz__multiple_images.czi", "nd2_z11_arcadia_example-zstack.nd2",
               "nd2_2d_4ch_arcadia_example-multichannel.nd2", "nd2_t53_arcadia_example-timelapse.nd2")
SLIDE_FILE = "svs_CMU-1-Small-Region.svs"
#: predict.png's model: an ONNX model that gives back its input, float (N, 1, H, W), opset 13 — the
#: bytes of onnx.helper.make_model(make_graph([make_node("Identity", ["x"], ["y"])], …)), ir_version 8,
#: kept here because only core/predict.py may import onnx or onnxruntime (tests/core/test_predict.py).
IDENTITY_MODEL = ("CAg6XAoQCgF4EgF5IghJZGVudGl0eRIIaWRlbnRpdHlaHgoBeBIZChcIARITCgMSAU4KAggBCgMSAUgKAxIBV2IeCgF5EhkK"
                  "FwgBEhMKAxIBTgoCCAEKAxIBSAoDEgFXQgQKABAN")


def _wait(app, condition, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def make_masks(images: Path, masks: Path) -> Path:
    """Synthetic label masks for the demo images, made by thresholding them: 1 = cell (the
    smoothed image well above its background, specks removed), 2 = cell body (the brightest
    part), written as 8-bit PNGs named like the images."""
    import cv2
    import numpy as np
    import tifffile

    from tilesapp.core.selection import otsu_threshold

    masks.mkdir(parents=True, exist_ok=True)
    for path in sorted(images.glob("*.tif")):
        smooth = cv2.GaussianBlur(tifffile.imread(path).astype(np.float32), (0, 0), 2)
        background = float(np.median(smooth))
        cell = (smooth > background + 0.3 * (otsu_threshold(smooth) - background)).astype(np.uint8)
        n, parts, stats, _ = cv2.connectedComponentsWithStats(cell)
        large = stats[:, cv2.CC_STAT_AREA] >= 30
        large[0] = False
        cell = large[parts]
        body = cell & (smooth > otsu_threshold(smooth[cell]))
        cv2.imwrite(str(masks / f"{path.stem}.png"), np.where(body, 2, np.where(cell, 1, 0)).astype(np.uint8))
    return masks


def make_geojson(masks: Path, folder: Path) -> Path:
    """QuPath GeoJSON exports traced from the masks of :func:`make_masks`: each cell's outline
    (class "microglia", holes kept) and each cell body's ("soma"), one file per image."""
    import json

    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(masks.glob("*.png")):
        labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        features = []
        for name, region in (("microglia", labels >= 1), ("soma", labels == 2)):
            contours, hierarchy = cv2.findContours(region.astype("uint8"), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
            for k, contour in enumerate(contours):
                if hierarchy[0][k][3] != -1 or len(contour) < 3:
                    continue  # a hole: added to its outline below
                rings = [contour]
                child = hierarchy[0][k][2]
                while child != -1:
                    if len(contours[child]) >= 3:
                        rings.append(contours[child])
                    child = hierarchy[0][child][0]
                coordinates = [[[float(x) + 0.5, float(y) + 0.5] for x, y in ring[:, 0]] for ring in rings]
                for ring in coordinates:
                    ring.append(ring[0])
                features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": coordinates},
                                 "properties": {"objectType": "annotation", "classification": {"name": name}}})
        (folder / f"{path.stem}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return folder


def make_mixed(demo: Path, folder: Path) -> Path:
    """A folder as real ones are: calibrated images, two without calibration, a truncated TIFF,
    a name in another script, a text file."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    images = sorted(demo.glob("*.tif"))
    for path in images[:4]:
        shutil.copy(path, folder / path.name)
    for i, path in enumerate(images[4:6]):  # the same pixels, no calibration
        tifffile.imwrite(folder / f"confocal_{i + 1:02d}.tif", tifffile.imread(path))
    shutil.copy(images[0], folder / "cellule_épithéliale_01.tif")
    data = images[1].read_bytes()
    (folder / "scan_interrupted.tif").write_bytes(data[: len(data) // 3])
    (folder / "notes.txt").write_text("acquisition notes")
    return folder


def take_screenshots(out_dir: Path, names: tuple[str, ...] = NAMES, size: tuple[int, int] = SIZE) -> list[Path]:
    """Write the screenshots of ``names`` into ``out_dir`` at window ``size``; return their paths."""
    tmp = Path(tempfile.mkdtemp(prefix="tilesapp-shots-"))
    os.environ["TILESAPP_SETTINGS_FILE"] = str(tmp / "settings.ini")
    from PySide6.QtWidgets import QApplication

    from tilesapp.core.demo import make_demo_folder
    from tilesapp.gui import MainWindow, dialogs
    from tilesapp.gui.app import configure_application

    dialogs.ask = lambda *args, **kwargs: True  # the screenshots' folders are throw-away
    dialogs.inform = lambda *args, **kwargs: None
    app = QApplication.instance() or QApplication(sys.argv[:1])
    configure_application(app)
    # Nested like a real project, so the elided paths on screen read naturally.
    project = tmp / "lab" / "microglia-2024"
    folder = make_demo_folder(project / "images")
    window = MainWindow()
    window.resize(*size)
    window.show()
    samples, previews, outputs, ends = [], [], [], []
    window.sampleShown.connect(lambda: samples.append(1))
    window.previewShown.connect(previews.append)
    window.outputShown.connect(outputs.append)
    window.exportEnded.connect(ends.append)
    window.open_folder(folder)
    _wait(app, lambda: samples)
    window.exporter.select_folder(project / "tiles-unet")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    def settle() -> None:
        for _ in range(30):  # let pending paints and layouts settle
            app.processEvents()
            time.sleep(0.01)

    def grab(name: str) -> None:
        settle()
        if name in names:
            path = out_dir / name
            window.grab().save(str(path))
            paths.append(path)

    def show_preview(path: Path) -> None:
        previews.clear()
        window.preview_image(path)
        _wait(app, lambda: previews)

    grab("sample.png")
    show_preview(folder / PREVIEW_IMAGE)
    window.tiles.showAllCheck.setChecked(True)
    window.tiles.tileSlider.setValue(7)
    grab("preview.png")

    if "output.png" in names:
        # YOLO tiles with the upper bound typed too low: the output values show it.
        window.apply_preset("yolo")
        window.normalization.upperBoundEdit.setText("40")
        window.normalization._on_bound_edited()
        outputs.clear()
        window.tiles.outputValuesCheck.setChecked(True)
        _wait(app, lambda: outputs)
        grab("output.png")
        window.tiles.outputValuesCheck.setChecked(False)
        window.apply_preset("unet")

    if "training.png" in names:
        # A training set: masks made by thresholding the demo images, the empty-tile filter
        # set so that the sparser tiles of the previewed image are dropped, a validation split.
        window.training.set_expanded(True)
        window.exporter.select_folder(project / "training-set")
        window.exporter.select_annotations("masks", make_masks(folder, project / "masks"))
        _wait(app, lambda: previews and previews[-1].mask is not None)
        window.training.minForegroundSpin.setValue(0.1)
        _wait(app, lambda: previews[-1].keep is not None)
        share = sorted(previews[-1].foreground)[len(previews[-1].foreground) * 2 // 5]
        settle()
        previews.clear()
        window.training.minForegroundSpin.setValue(round(100 * share, 1))
        window.training.keepEmptySpin.setValue(10)
        window.training.valFractionSpin.setValue(20)
        _wait(app, lambda: previews and previews[-1].keep is not None)
        dropped = [i for i, kept in enumerate(previews[-1].keep) if not kept]
        window.tiles.tileSlider.setValue(dropped[len(dropped) // 2] if dropped else 0)
        for panel in (window.calibration, window.normalization):
            panel.set_expanded(False)  # the Training set panel in view
        settle()
        window.scroll.ensureWidgetVisible(window.training)
        grab("training.png")
        for panel in (window.calibration, window.normalization):
            panel.set_expanded(True)
        window.scroll.verticalScrollBar().setValue(0)
        window.exporter.set_annotations("masks", None)
        window.training.minForegroundSpin.setValue(0)
        window.training.valFractionSpin.setValue(0)
        window.training.set_expanded(False)

    if "annotations.png" in names:
        # Objects drawn in QuPath (here: outlines traced from the masks), an nnU-Net layout, the
        # filter dropping the tiles with few objects: polygons over the grid, crosses.
        masks = project / "masks" if (project / "masks").is_dir() else make_masks(folder, project / "masks")
        qupath = make_geojson(masks, project / "qupath")
        for panel in (window.media, window.calibration, window.normalization):
            panel.set_expanded(False)
        window.training.set_expanded(True)
        window.training.layoutCombo.setCurrentIndex(window.training.layoutCombo.findData("nnunet"))
        window.exporter.select_folder(project / "Dataset501_Microglia")
        previews.clear()
        window.exporter.select_imported("folder", qupath)
        _wait(app, lambda: previews and previews[-1].objects is not None)
        previews.clear()
        window.training.minForegroundSpin.setValue(8)
        _wait(app, lambda: previews and previews[-1].keep is not None)
        window.tiles.showAllCheck.setChecked(False)
        dropped = [i for i, kept in enumerate(previews[-1].keep) if not kept]
        window.tiles.tileSlider.setValue(dropped[len(dropped) // 2] if dropped else 0)
        settle()
        window.scroll.ensureWidgetVisible(window.training)
        grab("annotations.png")
        window.exporter.set_annotations("annotations", None)
        window.training.minForegroundSpin.setValue(0)
        window.training.layoutCombo.setCurrentIndex(window.training.layoutCombo.findData("plain"))
        window.training.set_expanded(False)
        for panel in (window.media, window.calibration, window.normalization):
            panel.set_expanded(True)
        window.scroll.verticalScrollBar().setValue(0)

    if "sources.png" in names or "export.png" in names:
        samples.clear()
        mixed = make_mixed(folder, project / "mixed")
        window.open_folder(mixed)
        _wait(app, lambda: samples)
        window.loader.type_pixel_size("confocal_01.tif", (0.5, 0.5))
        show_preview(mixed / "microglia_02.tif")
        window.exporter.select_folder(project / "tiles-mixed")
        grab("sources.png")
        if "export.png" in names:
            window.tiles.showAllCheck.setChecked(False)
            window.tiles.patchSizeSpin.setValue(64)  # many small tiles: an export long enough to catch
            window.tiles.overlapSpin.setValue(16)
            settle()
            window.exporter.export()
            bar = window.export_bar.progressBar
            _wait(app, lambda: "left" in bar.format() or ends, timeout=120)
            grab("export.png")
            window.exporter.cancel()
            _wait(app, lambda: ends, timeout=120)
            grab("export-cancelled.png")
    if {"scenes.png", "slide.png"} & set(names):
        _microscope_files(window, project, names, app, previews, samples, grab)
    if {"merge.png", "predict.png"} & set(names):
        samples.clear()
        window.open_folder(folder)
        _wait(app, lambda: samples)
        _way_back(window, project, names, app, ends, settle, out_dir, paths)
    window.close()
    window.deleteLater()
    app.processEvents()
    shutil.rmtree(tmp, ignore_errors=True)
    return paths


def _microscope_files(window, project: Path, names, app, previews, samples, grab) -> None:
    """scenes.png: a CZI of two scenes in the sources table, one scene previewed; slide.png: an H&E
    slide's output values, its colours stretched jointly. Files copied from the real-data folder."""
    missing = [n for n in (*SCENE_FILES, SLIDE_FILE) if not (REALDATA / n).is_file()]
    if missing:
        print(f"skipped scenes.png and slide.png: {', '.join(missing)} not in {REALDATA}", file=sys.stderr)
        return
    window.tiles.showAllCheck.setChecked(True)
    if "scenes.png" in names:
        folder = project / "confocal"
        folder.mkdir(parents=True, exist_ok=True)
        for name in SCENE_FILES:
            shutil.copy(REALDATA / name, folder / name)
        samples.clear()
        window.open_folder(folder)
        _wait(app, lambda: samples)
        window.tiles.patchSizeSpin.setValue(128)  # the scenes are small: a few tiles each
        window.tiles.overlapSpin.setValue(32)
        window.media.zCombo.setCurrentIndex(window.media.zCombo.findData("max"))
        previews.clear()
        window.preview_image(f"{SCENE_FILES[0]} [s1]")
        _wait(app, lambda: previews)
        window.tiles.tileSlider.setValue(3)
        grab("scenes.png")
        window.tiles.patchSizeSpin.setValue(512)
        window.tiles.overlapSpin.setValue(128)
    if "slide.png" in names:
        folder = project / "pathology"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(REALDATA / SLIDE_FILE, folder / SLIDE_FILE)
        samples.clear()
        window.open_folder(folder)
        _wait(app, lambda: samples)
        window.apply_preset("yolo")
        window.tiles.showAllCheck.setChecked(False)
        previews.clear()
        window.preview_image(folder / SLIDE_FILE)
        _wait(app, lambda: previews)
        outputs = []
        window.outputShown.connect(outputs.append)
        window.tiles.outputValuesCheck.setChecked(True)
        _wait(app, lambda: outputs)
        window.tiles.tileSlider.setValue(41)
        grab("slide.png")
        window.tiles.outputValuesCheck.setChecked(False)
        window.apply_preset("unet")


def _way_back(window, project: Path, names, app, ends, settle, out_dir: Path, paths: list) -> None:
    """merge.png: the demo's tiles merged back (gradient blend, original pixel size) in the Merge
    dialog; predict.png: a model applied to the demo folder in the Apply a model dialog (an identity
    model, its settings saved beside it; skipped, said, without onnxruntime)."""
    from tilesapp.core.settings import save_settings

    def run_and_grab(dialog, ended, start, name: str) -> None:
        """Start the dialog's work, wait for ``ended``, take the dialog's picture, close it."""
        results: list = []
        ended.connect(results.append)
        start()
        _wait(app, lambda: results, timeout=300)
        settle()
        path = out_dir / name
        dialog.grab().save(str(path))
        paths.append(path)
        dialog.close()

    if "merge.png" in names:
        ends.clear()
        window.exporter.select_folder(project / "tiles-unet")
        window.exporter.export()
        _wait(app, lambda: ends, timeout=300)
        dialog = window.show_merge_dialog()
        dialog.combineCombo.setCurrentIndex(dialog.combineCombo.findData("blend"))
        dialog.blendCombo.setCurrentIndex(dialog.blendCombo.findData("gradient"))
        dialog.restoreCheck.setChecked(True)
        run_and_grab(dialog, dialog.mergeEnded, dialog.merge, "merge.png")
    if "predict.png" in names:
        from importlib.util import find_spec

        if find_spec("onnxruntime") is None:
            print("skipped predict.png: onnxruntime is needed to run the model", file=sys.stderr)
            return
        models = project / "models"
        models.mkdir(parents=True, exist_ok=True)
        model = models / "microglia-unet.onnx"
        model.write_bytes(base64.b64decode(IDENTITY_MODEL))
        from tilesapp.core.predict import settings_beside

        save_settings(window.editor.settings, settings_beside(model))
        dialog = window.show_predict_dialog()
        dialog.modelEdit.setText(str(model))
        run_and_grab(dialog, dialog.predictEnded, dialog.predict, "predict.png")


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    chosen = tuple(sys.argv[2:]) or NAMES
    width, height = (int(v) for v in os.environ.get("TILESAPP_SHOT_SIZE", "x".join(map(str, SIZE))).split("x"))
    for written in take_screenshots(target, chosen, (width, height)):
        print(written)
