"""Export panel: export folder, empty it, export with progress and cancel, the summary."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from tilesapp.gui.panels._base import ERROR_STYLE, Panel, elide_path, note_label


class ExportPanel(Panel):
    """Select / empty the export folder, Export tiles, Cancel, progress and summary.

    Signals
    -------
    selectFolderRequested(), emptyFolderRequested(), exportRequested(), cancelRequested(),
    openFolderRequested()
    """

    selectFolderRequested = Signal()
    emptyFolderRequested = Signal()
    exportRequested = Signal()
    cancelRequested = Signal()
    openFolderRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Export", parent)
        self.setObjectName("exportPanel")
        self.exportFolderButton = QPushButton("Select export folder…")
        self.exportFolderButton.setObjectName("exportFolderButton")
        self.exportFolderButton.setToolTip("An empty folder outside the input folder.")
        self.emptyFolderButton = QPushButton("Empty export folder")
        self.emptyFolderButton.setObjectName("emptyFolderButton")
        self.emptyFolderButton.setToolTip("Delete the files of the export folder (sub-folders are kept). Asks first.")
        self.exportFolderLabel = note_label("No export folder selected.", "exportFolderLabel")
        self.exportButton = QPushButton("Export tiles")
        self.exportButton.setObjectName("exportButton")
        self.exportButton.setStyleSheet("QPushButton { font-weight: bold; }")
        self.exportButton.setDefault(True)
        self.cancelButton = QPushButton("Cancel")
        self.cancelButton.setObjectName("cancelButton")
        self.cancelButton.setToolTip("Stop after the current tile; the tiles written so far are kept and listed.")
        self.progressBar = QProgressBar()
        self.progressBar.setObjectName("progressBar")
        self.progressBar.setRange(0, 1000)
        self.progressBar.setValue(0)
        self.progressBar.setTextVisible(True)
        self.progressBar.setFormat("")
        self.progressBar.setVisible(False)  # from the first export on: the column must fit a laptop screen
        self.hintLabel = note_label("", "exportHintLabel")
        self.warningLabel = QLabel()
        self.warningLabel.setObjectName("exportWarningLabel")
        self.warningLabel.setWordWrap(True)
        self.warningLabel.setStyleSheet("QLabel { color: #b26a00; }")
        self.warningLabel.setVisible(False)
        self.summaryLabel = QLabel()
        self.summaryLabel.setObjectName("summaryLabel")
        self.summaryLabel.setWordWrap(True)
        self.summaryLabel.setVisible(False)
        self.openFolderButton = QPushButton("Open folder")
        self.openFolderButton.setObjectName("openFolderButton")
        self.openFolderButton.setToolTip("Show the export folder in the file manager.")

        # The folder's name and "Open folder" share a line: the column must fit a laptop screen.
        folder_line = QHBoxLayout()
        folder_line.addWidget(self.exportFolderLabel, 1)
        folder_line.addWidget(self.openFolderButton)
        grid = QGridLayout(self)
        grid.addWidget(self.exportFolderButton, 0, 0)
        grid.addWidget(self.emptyFolderButton, 0, 1)
        grid.addLayout(folder_line, 1, 0, 1, 2)
        grid.addWidget(self.warningLabel, 2, 0, 1, 2)
        grid.addWidget(self.exportButton, 3, 0)
        grid.addWidget(self.cancelButton, 3, 1)
        grid.addWidget(self.progressBar, 4, 0, 1, 2)
        grid.addWidget(self.hintLabel, 5, 0, 1, 2)
        grid.addWidget(self.summaryLabel, 6, 0, 1, 2)

        self.exportFolderButton.clicked.connect(self.selectFolderRequested)
        self.emptyFolderButton.clicked.connect(self.emptyFolderRequested)
        self.exportButton.clicked.connect(self.exportRequested)
        self.cancelButton.clicked.connect(self.cancelRequested)
        self.openFolderButton.clicked.connect(self.openFolderRequested)

    def set_folder(self, text: str, tooltip: str = "") -> None:
        self.exportFolderLabel.setText(elide_path(text, 34))
        self.exportFolderLabel.setToolTip(tooltip or text)

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
        self.progressBar.setVisible(True)
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
