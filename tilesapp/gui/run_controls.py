"""The run area of a dialog that starts a long job (Merge tiles, Apply a model): a progress bar,
a result that scrolls when long, and the start, Cancel, Open output folder and Close buttons."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea

from tilesapp.core.progress import Progress
from tilesapp.gui.panels._base import ERROR_STYLE


class RunControls:
    """The widgets of a run area, named ``<name>Button``, ``<name>CancelButton``,
    ``<name>OpenButton``, ``<name>ProgressBar``, ``<name>ResultLabel`` and ``<name>ResultScroll``."""

    def __init__(self, name: str, start: str, open_tip: str):
        self.startButton = QPushButton(start)
        self.startButton.setObjectName(f"{name}Button")
        self.startButton.setDefault(True)
        self.cancelButton = QPushButton("Cancel")
        self.cancelButton.setObjectName(f"{name}CancelButton")
        self.openButton = QPushButton("Open output folder")
        self.openButton.setObjectName(f"{name}OpenButton")
        self.openButton.setToolTip(open_tip)
        self.closeButton = QPushButton("Close")
        self.progressBar = QProgressBar()
        self.progressBar.setObjectName(f"{name}ProgressBar")
        self.progressBar.setRange(0, 1000)
        self.progressBar.setValue(0)
        self.resultLabel = QLabel()
        self.resultLabel.setObjectName(f"{name}ResultLabel")
        self.resultLabel.setWordWrap(True)
        self.resultLabel.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.resultLabel.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        # A long result (many failed images) scrolls instead of being cut off.
        self.resultScroll = QScrollArea()
        self.resultScroll.setObjectName(f"{name}ResultScroll")
        self.resultScroll.setWidget(self.resultLabel)
        self.resultScroll.setWidgetResizable(True)
        self.resultScroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.resultScroll.setMinimumHeight(90)

    def add_to(self, grid: QGridLayout, row: int, columns: int = 3) -> None:
        """Progress, result (which takes the spare height) and the buttons, from ``row`` down."""
        grid.addWidget(self.progressBar, row, 0, 1, columns)
        grid.addWidget(self.resultScroll, row + 1, 0, 1, columns)
        grid.setRowStretch(row + 1, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.startButton, self.cancelButton, self.openButton, self.closeButton):
            buttons.addWidget(button)
        grid.addLayout(buttons, row + 2, 0, 1, columns)

    def started(self, text: str, busy: bool = False) -> None:
        """A run starts: ``text`` in the result; the bar empty, or moving when ``busy``."""
        self.resultLabel.setStyleSheet("")
        self.resultLabel.setText(text)
        self.progressBar.setRange(0, 0 if busy else 1000)
        self.progressBar.setValue(0)

    def progressed(self, progress: Progress, text: str | None = None) -> None:
        """Show a job's progress: the bar (moving while the total is unknown) and ``text`` (by
        default the progress message and the current item)."""
        if progress.total:
            self.progressBar.setRange(0, 1000)
            self.progressBar.setValue(int(1000 * progress.fraction))
        else:
            self.progressBar.setRange(0, 0)
        if text is None:
            text = f"{progress.message}: {progress.current}" if progress.current else progress.message
        self.resultLabel.setText(text)

    def ended(self, text: str, complete: bool) -> None:
        """A run ended: its result; the bar full when it ran to its end."""
        self.progressBar.setRange(0, 1000)
        if complete:
            self.progressBar.setValue(1000)
        self.resultLabel.setText(text)

    def failed(self, message: str) -> None:
        self.resultLabel.setStyleSheet(ERROR_STYLE)
        self.resultLabel.setText(message)
        self.progressBar.setRange(0, 1000)
        self.progressBar.setValue(0)

    def set_busy(self, busy: bool, output: Path | None, can_start: bool = True) -> None:
        """Buttons for a run going on (Cancel) or not (start, Open output folder when it exists)."""
        self.startButton.setEnabled(not busy and can_start)
        self.cancelButton.setEnabled(busy)
        self.openButton.setEnabled(not busy and output is not None and output.is_dir())
