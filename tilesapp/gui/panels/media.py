"""Media panel: load a folder, show a sample mosaic, what was found."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from tilesapp.core.settings import Settings
from tilesapp.gui.panels._base import Panel, elide_path, note_label


class MediaPanel(Panel):
    """Load (button or drop), Show sample, sources count and common shape.

    Signals
    -------
    loadRequested(), sampleRequested()
    """

    FIELDS = ("recursive",)
    loadRequested = Signal()
    sampleRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Media", parent)
        self.setObjectName("mediaPanel")
        self.folderLabel = note_label("No folder loaded — drop one on the window.", "folderLabel")
        self.loadButton = QPushButton("Load…")
        self.loadButton.setObjectName("loadButton")
        self.loadButton.setToolTip("Choose the folder that holds the images (Ctrl+O).")
        self.sampleButton = QPushButton("Show sample")
        self.sampleButton.setObjectName("sampleButton")
        self.sampleButton.setToolTip("A mosaic of up to 25 random images of the folder.")
        self.recursiveCheck = QCheckBox("Include sub-folders")
        self.recursiveCheck.setObjectName("recursiveCheck")
        self.sourcesLabel = QLabel("–")
        self.sourcesLabel.setObjectName("sourcesLabel")
        self.sourcesLabel.setWordWrap(True)
        self.shapeLabel = QLabel("–")
        self.shapeLabel.setObjectName("shapeLabel")
        self.shapeLabel.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.loadButton)
        buttons.addWidget(self.sampleButton)
        form = QFormLayout()
        form.addRow("Sources:", self.sourcesLabel)
        form.addRow("Shape:", self.shapeLabel)
        folder_line = QHBoxLayout()  # one line: the column must fit a laptop screen
        folder_line.addWidget(self.folderLabel, 1)
        folder_line.addWidget(self.recursiveCheck)
        layout = QVBoxLayout(self.body)
        layout.addLayout(buttons)
        layout.addLayout(folder_line)
        layout.addLayout(form)

        self.loadButton.clicked.connect(self.loadRequested)
        self.sampleButton.clicked.connect(self.sampleRequested)
        self.recursiveCheck.toggled.connect(self._emit_edited)

    def values(self) -> dict[str, Any]:
        return {"recursive": self.recursiveCheck.isChecked()}

    def _apply(self, settings: Settings) -> None:
        self.recursiveCheck.setChecked(settings.recursive)

    def set_folder(self, text: str, tooltip: str = "") -> None:
        """Name the loaded folder (or files)."""
        self.folderLabel.setText(elide_path(text, 30))
        self.folderLabel.setToolTip(tooltip or text)

    def set_sources(self, text: str, tooltip: str = "") -> None:
        self.sourcesLabel.setText(text)
        self.sourcesLabel.setToolTip(tooltip)

    def set_shape(self, text: str, tooltip: str = "") -> None:
        self.shapeLabel.setText(text)
        self.shapeLabel.setToolTip(tooltip)
