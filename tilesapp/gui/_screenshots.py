"""Regenerate the screenshots of the documentation from the real window.

    python -m tilesapp.gui._screenshots [OUTPUT_FOLDER]     (default: docs/screenshots)

Works offscreen (``QT_QPA_PLATFORM=offscreen``) or on a display (``xvfb-run -a``). Uses the demo
images and a throw-away settings file, never the user's settings.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZE = (1440, 900)
PREVIEW_IMAGE = "microglia_03.tif"


def _wait(app, condition, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not get there in time")
        app.processEvents()
        time.sleep(0.01)


def take_screenshots(out_dir: Path) -> list[Path]:
    """Write ``sample.png`` and ``preview.png`` into ``out_dir``; return their paths."""
    tmp = Path(tempfile.mkdtemp(prefix="tilesapp-shots-"))
    os.environ["TILESAPP_SETTINGS_FILE"] = str(tmp / "settings.ini")
    from PySide6.QtWidgets import QApplication

    from tilesapp.core.demo import make_demo_folder
    from tilesapp.gui import MainWindow
    from tilesapp.gui.app import configure_application

    app = QApplication.instance() or QApplication(sys.argv[:1])
    configure_application(app)
    # Nested like a real project, so the elided paths on screen read naturally.
    project = tmp / "lab" / "microglia-2024"
    folder = make_demo_folder(project / "images")
    window = MainWindow()
    window.resize(*SIZE)
    window.show()
    samples = []
    window.sampleShown.connect(lambda: samples.append(1))
    window.open_folder(folder)
    _wait(app, lambda: samples)
    window.select_export_folder(project / "tiles-unet")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    def grab(name: str) -> None:
        for _ in range(20):  # let pending paints and layouts settle
            app.processEvents()
            time.sleep(0.01)
        path = out_dir / name
        window.grab().save(str(path))
        paths.append(path)

    grab("sample.png")
    previews = []
    window.previewShown.connect(previews.append)
    window.preview_image(folder / PREVIEW_IMAGE)
    _wait(app, lambda: previews)
    window.tiles.showAllCheck.setChecked(True)
    window.tiles.tileSlider.setValue(7)
    grab("preview.png")
    window.close()
    window.deleteLater()
    app.processEvents()
    shutil.rmtree(tmp, ignore_errors=True)
    return paths


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    for written in take_screenshots(target):
        print(written)
