"""Every modal question and message of the window, and the words it says them with.

The window calls these through the module (``dialogs.ask(...)``) so that tests can replace
them and answer without a blocking dialog.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices, QPixmap
from PySide6.QtWidgets import QFileDialog, QLineEdit, QMessageBox, QPushButton, QWidget

from tilesapp.core.errors import SettingsError, TilesError
from tilesapp.gui.workers import untangle
from tilesapp.gui.wording import FIELD_LABELS, window_words

_ICONS = {
    "information": QMessageBox.Icon.Information,
    "warning": QMessageBox.Icon.Warning,
    "error": QMessageBox.Icon.Critical,
}

def error_text(exc: BaseException, doing: str) -> str:
    """One readable sentence for ``exc``; the traceback is in the log, never in a dialog (and
    forgotten here: see :func:`~tilesapp.gui.workers.untangle`)."""
    untangle(exc)
    if isinstance(exc, SettingsError):
        return window_words(exc.describe(FIELD_LABELS))
    if isinstance(exc, TilesError):
        return window_words(str(exc))
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"Error while {doing}: {exc.strerror or exc}{where}."
    if isinstance(exc, MemoryError):
        return f"Not enough memory while {doing}; close other programs or use smaller images."
    return f"Unexpected error while {doing} ({type(exc).__name__}: {exc}). The log file has the details."


def inform(parent: QWidget | None, title: str, text: str, details: str = "", kind: str = "information") -> None:
    """Show a message; ``details`` (e.g. the list of failed images) go in the expandable part."""
    box = QMessageBox(_ICONS.get(kind, QMessageBox.Icon.Information), title, text, QMessageBox.StandardButton.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.exec()


def ask(parent: QWidget | None, title: str, text: str, confirm: str = "OK", details: str = "",
        cancel: str = "Cancel") -> bool:
    """Ask to confirm an action; True when the user confirms (``cancel`` is the default)."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, parent)
    yes = box.addButton(confirm, QMessageBox.ButtonRole.AcceptRole)
    no = box.addButton(cancel, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(no)
    box.setEscapeButton(no)
    if details:
        box.setDetailedText(details)
    box.exec()
    return box.clickedButton() is yes


def bring_up(dialog):
    """Show a modeless dialog in front, active; returns it."""
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


def about(parent: QWidget | None, title: str, html: str, pixmap: QPixmap) -> None:
    """The About box: rich text beside the application's picture."""
    box = QMessageBox(parent)
    box.setObjectName("aboutBox")
    box.setWindowTitle(title)
    box.setText(html)
    box.setIconPixmap(pixmap)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.exec()


def about_app(parent: QWidget | None) -> None:
    """Name, version and the application icon (the same picture the installers carry)."""
    from tilesapp import APP_NAME, __version__
    from tilesapp.gui.icon import app_icon

    about(parent, f"About {APP_NAME}",
          f"<h3>{APP_NAME} {__version__}</h3>"
          "<p>Cuts folders of calibrated microscopy images into overlapping, normalized tiles "
          "for training deep-learning models (UNet, YOLO), and merges tiles back.</p>"
          "<p>The same engine also runs without the window, for scripts (see the README).</p>",
          app_icon().pixmap(96, 96))


def show_log_folder(parent: QWidget | None) -> None:
    """Open the folder of the log file (where tracebacks go, never to the screen)."""
    try:
        from tilesapp.logs import log_dir

        folder = log_dir()
    except Exception:  # the log module is optional for the window
        folder = None
    if folder is None or not folder.is_dir():
        inform(parent, "Log folder", "No log file has been written yet.")
        return
    open_folder(folder)


def open_folder(path: Path) -> None:
    """Show a folder in the system's file manager."""
    QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def choose_folder(parent: QWidget | None, title: str, start: Path | None = None) -> Path | None:
    path = QFileDialog.getExistingDirectory(parent, title, str(start or Path.home()))
    return Path(path) if path else None


def choose_open_file(parent: QWidget | None, title: str, start: Path | None, filters: str) -> Path | None:
    path, _ = QFileDialog.getOpenFileName(parent, title, str(start or Path.home()), filters)
    return Path(path) if path else None


def choose_save_file(parent: QWidget | None, title: str, start: Path | None, filters: str) -> Path | None:
    path, _ = QFileDialog.getSaveFileName(parent, title, str(start or Path.home()), filters)
    return Path(path) if path else None


def browse_button(parent: QWidget, edit: QLineEdit, title: str, filters: str | None = None) -> QPushButton:
    """A "Browse…" button that puts in ``edit`` the folder (with ``filters``, the file) the user
    picks, as if typed and confirmed (``editingFinished`` is emitted)."""
    button = QPushButton("Browse…")

    def choose() -> None:
        start = Path(edit.text()) if edit.text() else None
        path = choose_folder(parent, title, start) if filters is None else choose_open_file(parent, title, start, filters)
        if path is not None:
            edit.setText(str(path))
            edit.editingFinished.emit()

    button.clicked.connect(choose)
    return button
