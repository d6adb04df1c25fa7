"""What a person does to the window, for the tests: type and press Enter, click, pick, use a menu."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QAbstractSpinBox, QCheckBox, QRadioButton, QTableWidget

from helpers import find


def type_into(qtbot, widget, text: str, enter: bool = True) -> None:
    """Click into a field, select what it holds, type ``text`` and press Enter."""
    widget.setFocus()
    target = widget.lineEdit() if isinstance(widget, QAbstractSpinBox) else widget
    target.selectAll()
    qtbot.keyClick(target, Qt.Key.Key_Backspace)
    qtbot.keyClicks(target, text)
    if enter:
        qtbot.keyClick(target, Qt.Key.Key_Return)


def type_in(qtbot, window, name: str, text: str, enter: bool = True) -> None:
    type_into(qtbot, find(window, name), text, enter)


def click(qtbot, window, name: str) -> None:
    """Click a button; a check box or radio button on its box (a click beyond its text does nothing)."""
    widget = find(window, name)
    pos = QPoint(8, widget.height() // 2) if isinstance(widget, (QCheckBox, QRadioButton)) else widget.rect().center()
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=pos)


def pick(qtbot, window, name: str, text: str) -> None:
    """Choose an item of a combo box by typing its first letters, as the keyboard does."""
    combo = find(window, name)
    combo.setFocus()
    qtbot.keyClicks(combo, text)
    assert text in combo.currentText(), (name, text, combo.currentText())


def menu(window, name: str) -> None:
    """Trigger a menu entry (as a click on it, or its shortcut, does)."""
    action = window.findChild(QAction, name)
    assert action is not None, name
    assert action.isEnabled(), name
    action.trigger()


def table_rows(window) -> list[list[str]]:
    table: QTableWidget = find(window, "sourcesTable")
    return [[table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount())]
            for r in range(table.rowCount())]


def column(window, title: str) -> int:
    table: QTableWidget = find(window, "sourcesTable")
    return [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())].index(title)


def click_row(qtbot, window, name: str) -> None:
    """Click the row of image ``name`` in the sources table."""
    table: QTableWidget = find(window, "sourcesTable")
    row = [r[0] for r in table_rows(window)].index(name)
    rect = table.visualRect(table.model().index(row, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def type_in_row(qtbot, window, name: str, title: str, text: str) -> None:
    """Double-click a cell of image ``name``'s row, type ``text`` and press Enter."""
    table: QTableWidget = find(window, "sourcesTable")
    row = [r[0] for r in table_rows(window)].index(name)
    index = table.model().index(row, column(window, title))
    table.scrollTo(index)
    rect = table.visualRect(index)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: table.state() == QTableWidget.State.EditingState, timeout=2000)
    edit = table.focusWidget()
    edit.selectAll()
    qtbot.keyClicks(edit, text)
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: table.state() != QTableWidget.State.EditingState, timeout=2000)  # committed, queued
