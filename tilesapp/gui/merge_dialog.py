"""Merge tiles back into whole images (e.g. a model's predictions), in the background."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QWidget,
)

from tilesapp.core.merge import BLENDS, run_merge
from tilesapp.core.progress import Progress
from tilesapp.gui import dialogs
from tilesapp.gui.panels._base import ERROR_STYLE, note_label
from tilesapp.gui.workers import Job, JobRunner

BLEND_TIPS = {
    "flat": "Overlapping pixels are averaged with equal weights.",
    "gradient": "Weights fall smoothly towards tile edges: no visible seams.",
}


class MergeDialog(QDialog):
    """Pick a folder of tiles (with its manifest.json) and an output folder, then merge.

    Signals
    -------
    mergeEnded(object)
        The ``MergeSummary`` (also when cancelled), or None when the merge failed.
    """

    mergeEnded = Signal(object)

    def __init__(self, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("mergeDialog")
        self.setWindowTitle("Merge tiles")
        self.setMinimumWidth(560)
        self.jobs = jobs
        self.tilesEdit = QLineEdit()
        self.tilesEdit.setObjectName("mergeTilesEdit")
        self.tilesEdit.setPlaceholderText("folder written by an export (holds manifest.json)")
        self.outputEdit = QLineEdit()
        self.outputEdit.setObjectName("mergeOutputEdit")
        self.outputEdit.setPlaceholderText("empty folder for the merged images")
        self.blendCombo = QComboBox()
        self.blendCombo.setObjectName("blendCombo")
        for blend in BLENDS:
            self.blendCombo.addItem(blend, blend)
            self.blendCombo.setItemData(self.blendCombo.count() - 1, BLEND_TIPS.get(blend, ""), Qt.ItemDataRole.ToolTipRole)
        self.restoreCheck = QCheckBox("Restore the original pixel size")
        self.restoreCheck.setObjectName("restoreScaleCheck")
        self.mergeButton = QPushButton("Merge")
        self.mergeButton.setObjectName("mergeButton")
        self.mergeButton.setDefault(True)
        self.cancelButton = QPushButton("Cancel")
        self.cancelButton.setObjectName("mergeCancelButton")
        self.openButton = QPushButton("Open output folder")
        self.openButton.setObjectName("mergeOpenButton")
        self.openButton.setToolTip("Show the merged images in the file manager.")
        self.closeButton = QPushButton("Close")
        self.progressBar = QProgressBar()
        self.progressBar.setObjectName("mergeProgressBar")
        self.progressBar.setRange(0, 1000)
        self.progressBar.setValue(0)
        self.resultLabel = QLabel()
        self.resultLabel.setObjectName("mergeResultLabel")
        self.resultLabel.setWordWrap(True)
        self.resultLabel.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # A long result (many failed images) scrolls instead of being cut off.
        self.resultScroll = QScrollArea()
        self.resultScroll.setObjectName("mergeResultScroll")
        self.resultScroll.setWidget(self.resultLabel)
        self.resultScroll.setWidgetResizable(True)
        self.resultScroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.resultScroll.setMinimumHeight(90)
        self._output: Path | None = None

        grid = QGridLayout(self)
        grid.setColumnStretch(1, 1)
        grid.addWidget(note_label("Tiles may have been replaced by a model's outputs of the same names."), 0, 0, 1, 3)
        grid.addWidget(QLabel("Tiles:"), 1, 0)
        grid.addWidget(self.tilesEdit, 1, 1)
        grid.addWidget(self._browse(self.tilesEdit, "Folder of tiles"), 1, 2)
        grid.addWidget(QLabel("Output:"), 2, 0)
        grid.addWidget(self.outputEdit, 2, 1)
        grid.addWidget(self._browse(self.outputEdit, "Folder for the merged images"), 2, 2)
        grid.addWidget(QLabel("Blending:"), 3, 0)
        grid.addWidget(self.blendCombo, 3, 1)
        grid.addWidget(self.restoreCheck, 4, 1, 1, 2)
        grid.addWidget(self.progressBar, 5, 0, 1, 3)
        grid.addWidget(self.resultScroll, 6, 0, 1, 3)
        grid.setRowStretch(6, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.mergeButton, self.cancelButton, self.openButton, self.closeButton):
            buttons.addWidget(button)
        grid.addLayout(buttons, 7, 0, 1, 3)

        self.mergeButton.clicked.connect(self.merge)
        self.cancelButton.clicked.connect(lambda: self.jobs.cancel("merge"))
        self.closeButton.clicked.connect(self.close)
        self.openButton.clicked.connect(lambda: self._output is not None and dialogs.open_folder(self._output))
        self.jobs.ended.connect(self._update_buttons)
        self._update_buttons()
        self.resize(640, 380)

    def _browse(self, edit: QLineEdit, title: str) -> QPushButton:
        button = QPushButton("Browse…")

        def choose() -> None:
            folder = dialogs.choose_folder(self, title, Path(edit.text()) if edit.text() else None)
            if folder is not None:
                edit.setText(str(folder))

        button.clicked.connect(choose)
        return button

    def merge(self) -> None:
        """Start the merge with the values of the dialog."""
        tiles, output = self.tilesEdit.text().strip(), self.outputEdit.text().strip()
        if not tiles or not output:
            dialogs.inform(self, "Merge tiles", "Choose the folder of tiles and an output folder first.", kind="warning")
            return
        tiles, output = Path(tiles).expanduser(), Path(output).expanduser()
        overwrite = False
        if output.is_dir() and any(output.iterdir()):
            if not dialogs.ask(
                self,
                "Output folder not empty",
                f"{output} is not empty. Merged images with the same names will be replaced. Merge anyway?",
                confirm="Merge anyway",
            ):
                return
            overwrite = True
        blend, restore = self.blendCombo.currentData(), self.restoreCheck.isChecked()
        job = Job(
            lambda cancel: run_merge(tiles, output, blend=blend, restore_scale=restore, overwrite=overwrite, cancel=cancel),
            name="merging tiles",
        )
        job.signals.progressed.connect(self._on_progress)
        job.signals.finished.connect(self._on_ended)
        job.signals.cancelled.connect(self._on_ended)
        job.signals.errored.connect(self._on_failed)
        self.resultLabel.setStyleSheet("")
        self.resultLabel.setText("Merging…")
        self.progressBar.setValue(0)
        self.jobs.start("merge", job)
        self._update_buttons()

    def _on_progress(self, progress: Progress) -> None:
        if progress.total:
            self.progressBar.setRange(0, 1000)
            self.progressBar.setValue(int(1000 * progress.fraction))
        else:
            self.progressBar.setRange(0, 0)
        self.resultLabel.setText(f"{progress.message}: {progress.current}" if progress.current else progress.message)

    def _on_ended(self, summary) -> None:
        self.progressBar.setRange(0, 1000)
        self._output = Path(summary.output)
        text = f"{len(summary.written)} image{'s' * (len(summary.written) != 1)} written to {summary.output}."
        if summary.cancelled:
            text = "Cancelled: " + text
        else:
            self.progressBar.setValue(1000)
        problems = list(summary.failed) + list(getattr(summary, "not_cut", []))
        if problems:
            text += "".join(f"<br>• {dialogs.about_image(name, reason)}" for name, reason in problems[:8])
            if len(problems) > 8:
                text += f"<br>… and {len(problems) - 8} more."
        self.resultLabel.setText(text)
        self._update_buttons()
        self.mergeEnded.emit(summary)

    def _on_failed(self, exc: BaseException) -> None:
        message = dialogs.error_text(exc, "merging tiles")
        self.resultLabel.setStyleSheet(ERROR_STYLE)
        self.resultLabel.setText(message)
        self.progressBar.setRange(0, 1000)
        self.progressBar.setValue(0)
        self._update_buttons()
        self.mergeEnded.emit(None)
        dialogs.inform(self, "Merge tiles", message, kind="warning")

    def _update_buttons(self, *args) -> None:
        busy = self.jobs.busy("merge")
        self.mergeButton.setEnabled(not busy)
        self.cancelButton.setEnabled(busy)
        self.openButton.setEnabled(not busy and self._output is not None and self._output.is_dir())
