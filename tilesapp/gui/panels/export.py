"""Export: the folder section of the column, and the export bar that is always on screen."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from tilesapp.gui.panels._base import ERROR_STYLE, WARNING_STYLE, Panel, elide_path, note_label


class ExportPanel(Panel):
    """Select / empty the export folder.

    Signals
    -------
    selectFolderRequested(), emptyFolderRequested()
    """

    selectFolderRequested = Signal()
    emptyFolderRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Export folder", parent)
        self.setObjectName("exportPanel")
        self.exportFolderButton = QPushButton("Select export folder…")
        self.exportFolderButton.setObjectName("exportFolderButton")
        self.exportFolderButton.setToolTip("An empty folder outside the input folder.")
        self.emptyFolderButton = QPushButton("Empty export folder")
        self.emptyFolderButton.setObjectName("emptyFolderButton")
        self.emptyFolderButton.setToolTip(
            "Delete what an earlier export wrote there (its files and folders), after showing how many.\n"
            "Files no export wrote are deleted only if you say so separately."
        )
        self.exportFolderLabel = note_label("No export folder selected.", "exportFolderLabel")
        grid = QGridLayout(self.body)
        grid.addWidget(self.exportFolderButton, 0, 0)
        grid.addWidget(self.emptyFolderButton, 0, 1)
        grid.addWidget(self.exportFolderLabel, 1, 0, 1, 2)
        self.exportFolderButton.clicked.connect(self.selectFolderRequested)
        self.emptyFolderButton.clicked.connect(self.emptyFolderRequested)

    def set_folder(self, text: str, tooltip: str = "") -> None:
        self.exportFolderLabel.setText(elide_path(text, 44))
        self.exportFolderLabel.setToolTip(tooltip or text)


class ExportBar(QFrame):
    """Export tiles, Cancel, progress (tiles, images, time left), why Export waits, the images
    that will fail, and the last export's summary. It sits below the column's scroll area, so
    it is on screen whatever the window's height.

    Signals
    -------
    exportRequested(), cancelRequested(), openFolderRequested()
    """

    exportRequested = Signal()
    cancelRequested = Signal()
    openFolderRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("exportBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.exportButton = QPushButton("Export tiles")
        self.exportButton.setObjectName("exportButton")
        self.exportButton.setStyleSheet("QPushButton { font-weight: bold; }")
        self.exportButton.setDefault(True)
        self.cancelButton = QPushButton("Cancel")
        self.cancelButton.setObjectName("cancelButton")
        self.cancelButton.setToolTip("Stop after the current tile; the tiles written so far are kept and listed.")
        self.openFolderButton = QPushButton("Open folder")
        self.openFolderButton.setObjectName("openFolderButton")
        self.openFolderButton.setToolTip("Show the export folder in the file manager.")
        self.progressBar = QProgressBar()
        self.progressBar.setObjectName("progressBar")
        self.progressBar.setRange(0, 1000)
        self.progressBar.setValue(0)
        self.progressBar.setTextVisible(True)
        self.progressBar.setFormat("")
        self.hintLabel = note_label("", "exportHintLabel")
        self.warningLabel = QLabel()
        self.warningLabel.setObjectName("exportWarningLabel")
        self.warningLabel.setWordWrap(True)
        self.warningLabel.setStyleSheet(WARNING_STYLE)
        self.warningLabel.setVisible(False)
        self.summaryLabel = QLabel()
        self.summaryLabel.setObjectName("summaryLabel")
        self.summaryLabel.setWordWrap(True)
        self.summaryLabel.setVisible(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.exportButton, 2)
        buttons.addWidget(self.cancelButton, 1)
        buttons.addWidget(self.openFolderButton, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(buttons)
        layout.addWidget(self.progressBar)
        for label in (self.hintLabel, self.warningLabel, self.summaryLabel):
            layout.addWidget(label)

        self.exportButton.clicked.connect(self.exportRequested)
        self.cancelButton.clicked.connect(self.cancelRequested)
        self.openFolderButton.clicked.connect(self.openFolderRequested)

    def set_hint(self, text: str) -> None:
        """Why Export is disabled (or what it will do)."""
        self.hintLabel.setText(text)
        self.hintLabel.setVisible(bool(text))

    def set_warning(self, text: str, tooltip: str = "") -> None:
        """Images that will fail with the current settings."""
        self.warningLabel.setText(text)
        self.warningLabel.setToolTip(tooltip)
        self.warningLabel.setVisible(bool(text))

    def set_progress(self, fraction: float | None, text: str = "") -> None:
        """Progress between 0 and 1; None for "busy, amount unknown"."""
        if fraction is None:
            self.progressBar.setRange(0, 0)
        else:
            self.progressBar.setRange(0, 1000)
            self.progressBar.setValue(int(round(1000 * max(0.0, min(1.0, fraction)))))
        self.progressBar.setFormat(text)

    def set_summary(self, text: str, error: bool = False, tooltip: str = "") -> None:
        self.summaryLabel.setText(text)
        self.summaryLabel.setToolTip(tooltip)
        self.summaryLabel.setStyleSheet(ERROR_STYLE if error else "")
        self.summaryLabel.setVisible(bool(text))
