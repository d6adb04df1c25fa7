"""Start the application: QApplication, logging, excepthook, the main window."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from tilesapp import APP_NAME, __version__

log = logging.getLogger(__name__)



def configure_application(app: QApplication) -> None:
    """Names (where QSettings keeps things), style and icon of the application."""
    from tilesapp.gui.icon import app_icon
    from tilesapp.gui.settings_store import APPLICATION, ORGANIZATION

    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setStyle("Fusion")  # the same look on Windows, macOS and Linux
    app.setWindowIcon(app_icon())


def _install_excepthook(log_file: Path | None):
    """Report unexpected errors in a dialog and the log instead of leaving the app."""
    from tilesapp.gui.dialogs import error_text

    previous = sys.excepthook
    showing = False

    def excepthook(exc_type, exc, tb):
        nonlocal showing
        if issubclass(exc_type, KeyboardInterrupt):
            QApplication.quit()
            return
        log.error("Unexpected error", exc_info=(exc_type, exc, tb))
        if showing or QApplication.instance() is None:
            return
        showing = True
        try:
            where = f"\n\nDetails are in the log file:\n{log_file}" if log_file else ""
            QMessageBox.critical(None, "Unexpected error", error_text(exc, "running") + where)
        finally:
            showing = False

    sys.excepthook = excepthook
    return previous


def run_app(folder: Path | None = None, demo: bool = False, quit_after: float | None = None) -> int:
    """Open the window (on ``folder``, or on demo images); return the exit code.

    Parameters
    ----------
    folder : Path, optional
        A folder of images (or one image) to load at once.
    demo : bool
        Load synthetic demo images written to a temporary folder (removed at exit).
    quit_after : float, optional
        Close the window after that many seconds (smoke tests of installed builds).
    """
    try:
        from tilesapp.logs import setup_logging

        log_file = setup_logging()
    except Exception:  # a broken log folder must not keep the window from opening
        log_file = None
    app = QApplication.instance() or QApplication(sys.argv[:1])
    configure_application(app)
    previous_hook = _install_excepthook(log_file)
    try:
        from tilesapp.gui.main_window import MainWindow

        window = MainWindow()
        window.show()
        if demo:
            window.loader.open_demo()
        elif folder is not None:
            window.open_folder(Path(folder))
        if quit_after is not None:

            def quit_now() -> None:
                window.close()  # cancels background work like a user closing the window
                # A dialog left open (e.g. an error message) would keep the application alive.
                # Closing the last window quits through the event queue: never call exit()
                # here, it would leave a quit event behind for the next event loop.
                QApplication.closeAllWindows()

            QTimer.singleShot(max(0, int(quit_after * 1000)), quit_now)
        # Let Ctrl+C in the terminal close the window: Python only sees signals between Qt events.
        previous_sigint = signal.signal(signal.SIGINT, lambda *args: window.close())
        ticker = QTimer()
        ticker.timeout.connect(lambda: None)
        ticker.start(250)
        log.info("%s %s started", APP_NAME, __version__)
        code = app.exec()
        ticker.stop()
        signal.signal(signal.SIGINT, previous_sigint)
        window.deleteLater()  # graphics widgets alive at interpreter exit can crash it
        app.processEvents()
        return int(code)
    finally:
        sys.excepthook = previous_hook
