"""Regenerate the screenshots of the documentation from the real window.

    python -m tilesapp.gui._screenshots [OUTPUT_FOLDER] [NAME.png ...]   (default: docs/screenshots, all)
    TILESAPP_SHOT_SIZE=1366x768 python -m tilesapp.gui._screenshots /tmp/laptop   (another window size)

Works offscreen (``QT_QPA_PLATFORM=offscreen``) or on a display (``xvfb-run -a``). Uses the demo
images (and, for the sources table, a folder of mixed files made from them) and a throw-away
settings file, never the user's settings.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZE = (1440, 960)  # the default window
PREVIEW_IMAGE = "microglia_03.tif"
NAMES = ("sample.png", "preview.png", "training.png", "sources.png", "output.png", "export.png")


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
        grab("training.png")
        window.exporter.set_annotations("masks", None)
        window.training.minForegroundSpin.setValue(0)
        window.training.valFractionSpin.setValue(0)
        window.training.set_expanded(False)

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
    window.close()
    window.deleteLater()
    app.processEvents()
    shutil.rmtree(tmp, ignore_errors=True)
    return paths


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    chosen = tuple(sys.argv[2:]) or NAMES
    width, height = (int(v) for v in os.environ.get("TILESAPP_SHOT_SIZE", "x".join(map(str, SIZE))).split("x"))
    for written in take_screenshots(target, chosen, (width, height)):
        print(written)
