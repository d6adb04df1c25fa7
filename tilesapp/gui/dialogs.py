"""Every modal question and message of the window, in one place.

The main window calls these through the module (``dialogs.ask(...)``) so that tests can
replace them and answer without a blocking dialog.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

_ICONS = {
    "information": QMessageBox.Icon.Information,
    "warning": QMessageBox.Icon.Warning,
    "error": QMessageBox.Icon.Critical,
}


def inform(parent: QWidget | None, title: str, text: str, details: str = "", kind: str = "information") -> None:
    """Show a message; ``details`` (e.g. the list of failed images) go in the expandable part."""
    box = QMessageBox(_ICONS.get(kind, QMessageBox.Icon.Information), title, text, QMessageBox.StandardButton.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.exec()


def ask(parent: QWidget | None, title: str, text: str, confirm: str = "OK", details: str = "") -> bool:
    """Ask to confirm an action; True when the user confirms (Cancel is the default)."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.NoButton, parent)
    yes = box.addButton(confirm, QMessageBox.ButtonRole.AcceptRole)
    no = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(no)
    if details:
        box.setDetailedText(details)
    box.exec()
    return box.clickedButton() is yes


def choose_folder(parent: QWidget | None, title: str, start: Path | None = None) -> Path | None:
    path = QFileDialog.getExistingDirectory(parent, title, str(start or Path.home()))
    return Path(path) if path else None


def choose_open_file(parent: QWidget | None, title: str, start: Path | None, filters: str) -> Path | None:
    path, _ = QFileDialog.getOpenFileName(parent, title, str(start or Path.home()), filters)
    return Path(path) if path else None


def choose_save_file(parent: QWidget | None, title: str, start: Path | None, filters: str) -> Path | None:
    path, _ = QFileDialog.getSaveFileName(parent, title, str(start or Path.home()), filters)
    return Path(path) if path else None
