"""Starting the application: run_app, --demo, --quit-after, the icon, the settings store."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from tilesapp.gui.icon import draw_icon, icon_svg

ROOT = Path(__file__).resolve().parents[2]


def run_gui(tmp_path, *args, timeout=60):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "tilesapp.gui", *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp_path
    )


def test_demo_window_opens_and_quits_cleanly(tmp_path):
    result = run_gui(tmp_path, "--demo", "--quit-after", "4")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    log = (tmp_path / "logs" / "tilesapp.log").read_text()
    assert "started" in log and "ERROR" not in log
    # The demo folder lived in a temporary folder, removed at exit.
    assert "tilesapp-demo-" not in " ".join(os.listdir(tmp_path))


def test_run_app_in_process_returns_zero(qapp, tmp_path, make_folder):
    from tilesapp.gui.app import run_app

    folder = make_folder("imgs", [((64, 64), 0.325)])
    try:
        assert run_app(folder, demo=False, quit_after=0.5) == 0
    finally:  # run_app set up logging for the whole process: undo it for the next tests
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_tilesapp", False)]:
            root.removeHandler(handler)
            handler.close()
        logging.captureWarnings(False)
    assert qapp.organizationName() and qapp.applicationName() == "tilesapp"


def test_icon_is_a_tile_grid(qapp):
    image = draw_icon(64)
    assert image.width() == 64 and not image.isNull()
    assert icon_svg().count("<rect") == 11  # background, 9 tiles, the highlighted one


def test_void_qt_calls_cannot_exhaust_references_to_none(qapp):
    """Some PySide6 builds drop a reference to None per void call on Python < 3.12 (see _compat)."""
    import tilesapp.gui  # importing the window's package applies the guard (tilesapp.gui._compat)
    from PySide6.QtGui import QPen

    before = sys.getrefcount(None)
    pen = QPen()
    for _ in range(50_000):
        pen.setCosmetic(True)
    assert sys.getrefcount(None) > 1_000_000 or sys.getrefcount(None) >= before - 10, \
        f"references to None lost; guard applied: {tilesapp.gui._compat.PROTECTED}"


def test_a_closed_window_is_freed_without_the_garbage_collector(qapp, make_folder):
    """No reference cycle holds the window: Python's garbage collector may run in a worker thread,
    and a Qt widget tree collected there deadlocks the application (seen in an export's thread)."""
    import gc
    import weakref

    from PySide6.QtCore import QCoreApplication, QEvent

    from tilesapp.gui import MainWindow

    gc.collect()
    gc.disable()
    try:
        window = MainWindow()
        window.show()
        window.loader.open_folder(make_folder("freed", [((64, 64), 0.325)]))
        while window.jobs.busy("scan") or window.jobs.busy("view"):
            qapp.processEvents()
        ref = weakref.ref(window)
        window.close()
        window.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        del window
        assert ref() is None
    finally:
        gc.enable()
