"""What every panel of the control column shares: settings in and out, and error labels."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QLayout, QToolButton, QVBoxLayout, QWidget

from tilesapp.core.settings import Settings

ERROR_STYLE = "QLabel { color: #c62828; }"
WARNING_STYLE = "QLabel { color: #b26a00; }"
NOTE_STYLE = "QLabel { color: #858585; }"


class Panel(QFrame):
    """A collapsible section of the control column that edits some fields of the one
    :class:`Settings` object.

    A panel never validates: it hands the raw values of its widgets to the settings editor
    (:meth:`values`), which builds the settings and sends back any ``SettingsError`` to the
    panel that owns the field (:meth:`show_error`). Subclasses lay their widgets out in
    :attr:`body`; the title bar folds it away.

    Signals
    -------
    edited()
        The user changed a value of this panel.
    """

    edited = Signal()
    #: Settings fields this panel edits (and whose errors it shows).
    FIELDS: tuple[str, ...] = ()

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self._updating = False
        self._error_labels: dict[str, QLabel] = {}
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.toggle = QToolButton()
        self.toggle.setText(title)
        self.toggle.setCheckable(True)
        self.toggle.setChecked(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow)
        self.toggle.setAutoRaise(True)
        self.toggle.setStyleSheet("QToolButton { font-weight: bold; border: none; }")
        self.toggle.setToolTip(f"Show or hide {title}")
        self.body = QWidget()
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 2, 4, 4)
        outer.setSpacing(0)
        outer.addWidget(self.toggle)
        outer.addWidget(self.body)
        self.toggle.toggled.connect(self.set_expanded)

    @property
    def title(self) -> str:
        return self.toggle.text()

    def set_expanded(self, expanded: bool) -> None:
        """Unfold (True) or fold (False) the section."""
        self.toggle.setChecked(expanded)
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        self.body.setVisible(expanded)

    @property
    def expanded(self) -> bool:
        return self.toggle.isChecked()

    def compact(self) -> None:
        """Tighter spacing than the style's default, so the whole column fits on a laptop screen."""
        for layout in [self.body.layout(), *self.body.findChildren(QLayout)]:
            if layout is None:
                continue
            layout.setSpacing(4)
            if layout is self.body.layout():
                layout.setContentsMargins(6, 2, 6, 4)

    def set_locked(self, locked: bool) -> None:
        """Settings cannot change while an export runs: the fields are disabled."""
        self.body.setEnabled(not locked)

    # --- settings in and out -------------------------------------------------------------------
    def values(self) -> dict[str, Any]:
        """Raw values of this panel's fields, as the widgets hold them."""
        return {}

    def set_settings(self, settings: Settings) -> None:
        """Show ``settings`` in the widgets without emitting :attr:`edited`."""
        with self.updating():
            self._apply(settings)

    def _apply(self, settings: Settings) -> None:
        pass

    @contextmanager
    def updating(self):
        """Changes made inside do not count as user edits."""
        previous, self._updating = self._updating, True
        try:
            yield
        finally:
            self._updating = previous

    def _emit_edited(self, *args) -> None:
        if not self._updating:
            self.edited.emit()

    # --- errors ----------------------------------------------------------------------------------
    def make_error_label(self, *fields: str, name: str = "") -> QLabel:
        """A red label, hidden until an error of one of ``fields`` is shown."""
        label = QLabel()
        label.setObjectName(name or f"{fields[0]}Error")
        label.setWordWrap(True)
        label.setStyleSheet(ERROR_STYLE)
        label.setVisible(False)
        for field in fields:
            self._error_labels[field] = label
        return label

    def owns(self, field: str) -> bool:
        return field in self.FIELDS or field in self._error_labels

    def show_error(self, field: str, message: str, warning: bool = False) -> bool:
        """Show ``message`` next to ``field`` (in orange when it is a ``warning``: allowed but
        probably not meant); False when this panel does not own it. An error wins over a warning."""
        label = self._error_labels.get(field)
        if label is None:
            return False
        if warning and label.isVisible() and label.property("kind") == "error":
            return True
        label.setProperty("kind", "warning" if warning else "error")
        label.setStyleSheet(WARNING_STYLE if warning else ERROR_STYLE)
        label.setText(f"⚠ {message}")
        label.setToolTip(message)
        label.setVisible(True)
        return True

    def clear_errors(self) -> None:
        for label in set(self._error_labels.values()):
            label.clear()
            label.setVisible(False)

    def error_text(self) -> str:
        """The error shown, if any (for tests and tooltips)."""
        return " ".join(label.text() for label in set(self._error_labels.values()) if label.isVisible())


def note_label(text: str = "", name: str = "") -> QLabel:
    """A small grey label for explanations."""
    label = QLabel(text)
    if name:
        label.setObjectName(name)
    label.setWordWrap(True)
    label.setStyleSheet(NOTE_STYLE)
    return label


def elide_path(path: str, width: int = 42) -> str:
    """Shorten a long path from the left, keeping its end (the folder's name).

    >>> elide_path("/a/very/long/path/to/images", 12)
    '…/to/images'
    """
    if len(path) <= width:
        return path
    tail = path[-(width - 1):]
    cut = tail.find("/") if "/" in tail else tail.find("\\")
    return "…" + (tail[cut:] if cut > 0 else tail)
