"""Merge tiles back into whole images (e.g. a model's predictions), in the background: the mode
that fits what the tiles hold (blend, vote, instances, max), or per-tile boxes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QWidget,
)

from tilesapp.core.boxes import FUSIONS
from tilesapp.core.combine import BLENDS, COMBINES, DEFAULT_IOU
from tilesapp.core.merge import COCO_NAME, run_merge
from tilesapp.core.progress import Progress
from tilesapp.gui import dialogs
from tilesapp.gui.panels._base import note_label
from tilesapp.gui.run_controls import RunControls
from tilesapp.gui.wording import about_image, plural
from tilesapp.gui.workers import Job, JobRunner

BOXES = "boxes"
#: What each mode is for, as the combo box says it.
COMBINE_LABELS = {
    "blend": "blend — probabilities, intensities",
    "vote": "vote — class ids",
    "instances": "instances — instance labels",
    "max": "max — binary masks",
    BOXES: "boxes — YOLO box files (.txt)",
}
COMBINE_TIPS = {
    "blend": "Weighted average of the tiles covering a pixel: probability maps, intensities.",
    "vote": "Per pixel the class most tiles (weighted by the window) predict: class-id maps.\n"
            "Never a class no tile predicted (averaging class ids would invent some).",
    "instances": "Instance label maps: objects cut by tile edges or found in two tiles become one object\n"
                 "with one id (matched by their overlap, IoU); ids 1, 2, 3, …",
    "max": "The largest value of the tiles covering a pixel: a detection anywhere wins (binary masks).",
    BOXES: "Per-tile YOLO prediction files (class cx cy w h [confidence], named like the tiles), merged into one\n"
           "box file per image and a COCO file; duplicates in overlaps merged class by class.",
}
BLEND_TIPS = {
    "flat": "Overlapping pixels are averaged with equal weights.",
    "gradient": "Weights fall linearly towards tile edges: no visible seams.",
    "hann": "Weights fall as a cosine towards tile edges: the smoothest seams.",
}
FUSION_LABELS = {"nms": "keep the best (NMS)", "wbf": "average them (WBF)"}
#: Modes whose tiles are weighted by the window.
WEIGHTED = ("blend", "vote")


def merge_result(summary, what: str | None = None) -> str:
    """What a merge (or a prediction) wrote and counted, in a sentence or two.

    >>> from tilesapp.core.merge import MergeSummary
    >>> merge_result(MergeSummary(Path("out"), [Path("a.tif")], counts={"a": {"objects": 5, "merged": 2, "split": 0}}))
    '1 image written to out.<br>5 objects; 2 found in several tiles were given one id.'
    """
    counts = {key for c in summary.counts.values() for key in c}
    n = len(summary.written)
    boxes = "boxes" in counts
    what = what or ("box file" if boxes else "image")
    text = f"{plural(n, what)} written to {summary.output}" + (f" and {COCO_NAME}." if boxes and n else ".")
    if "objects" in counts:
        text += (f"<br>{plural(summary.total('objects'), 'object')}; {summary.total('merged')} found in several tiles "
                 f"were given one id")
        split = summary.total("split")
        text += (f"; {split} kept two ids (their parts met after they were written: raise the memory limit to merge "
                 f"them whole)." if split else ".")
    if boxes:
        text += (f"<br>{plural(summary.total('boxes_in'), 'box', 'boxes')} found in the tiles, "
                 f"{summary.total('boxes')} after merging the duplicates of overlapping tiles.")
    return text


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
        self.combineCombo = QComboBox()
        self.combineCombo.setObjectName("combineCombo")
        for mode in (*COMBINES, BOXES):
            self.combineCombo.addItem(COMBINE_LABELS.get(mode, mode), mode)
            self.combineCombo.setItemData(self.combineCombo.count() - 1, COMBINE_TIPS.get(mode, ""),
                                          Qt.ItemDataRole.ToolTipRole)
        self.combineCombo.setToolTip("How the tiles covering a pixel become one value: choose what the tiles hold.")
        self.blendCombo = QComboBox()
        self.blendCombo.setObjectName("blendCombo")
        for blend in BLENDS:
            self.blendCombo.addItem(blend, blend)
            self.blendCombo.setItemData(self.blendCombo.count() - 1, BLEND_TIPS.get(blend, ""), Qt.ItemDataRole.ToolTipRole)
        self.blendCombo.setToolTip("Weights of the tiles in their overlaps.\n" + "\n".join(
            f"{k}: {v}" for k, v in BLEND_TIPS.items()))
        self.iouSpin = QDoubleSpinBox()
        self.iouSpin.setObjectName("iouSpin")
        self.iouSpin.setRange(0.01, 1.0)
        self.iouSpin.setSingleStep(0.05)
        self.iouSpin.setDecimals(2)
        self.iouSpin.setValue(DEFAULT_IOU)
        self.iouSpin.setKeyboardTracking(False)
        self.iouSpin.setToolTip("Two objects (or boxes) whose overlap, where both tiles see, reaches this share of\n"
                                "their union (IoU) are one object.")
        self.predictionsEdit = QLineEdit()
        self.predictionsEdit.setObjectName("mergePredictionsEdit")
        self.predictionsEdit.setPlaceholderText("folder of per-tile .txt files, named like the tiles")
        self.fusionCombo = QComboBox()
        self.fusionCombo.setObjectName("boxFusionCombo")
        for fusion in FUSIONS:
            self.fusionCombo.addItem(FUSION_LABELS.get(fusion, fusion), fusion)
        self.fusionCombo.setToolTip("Duplicates of one object in overlapping tiles: keep the best-ranked box (NMS),\n"
                                    "or average their sides weighted by confidence (weighted box fusion).")
        self.restoreCheck = QCheckBox("Restore the original pixel size")
        self.restoreCheck.setObjectName("restoreScaleCheck")
        run = self.run = RunControls("merge", "Merge", "Show the merged images in the file manager.")
        self.mergeButton, self.cancelButton, self.openButton, self.closeButton = (
            run.startButton, run.cancelButton, run.openButton, run.closeButton)
        self.progressBar, self.resultLabel, self.resultScroll = run.progressBar, run.resultLabel, run.resultScroll
        self._output: Path | None = None
        self._window_chosen = False
        self.blendCombo.activated.connect(lambda *args: setattr(self, "_window_chosen", True))

        grid = QGridLayout(self)
        grid.setColumnStretch(1, 1)
        grid.addWidget(note_label("Tiles may have been replaced by a model's outputs of the same names."), 0, 0, 1, 3)
        grid.addWidget(QLabel("Tiles:"), 1, 0)
        grid.addWidget(self.tilesEdit, 1, 1)
        grid.addWidget(dialogs.browse_button(self, self.tilesEdit, "Folder of tiles"), 1, 2)
        grid.addWidget(QLabel("Output:"), 2, 0)
        grid.addWidget(self.outputEdit, 2, 1)
        grid.addWidget(dialogs.browse_button(self, self.outputEdit, "Folder for the merged images"), 2, 2)
        grid.addWidget(QLabel("Tiles hold:"), 3, 0)
        grid.addWidget(self.combineCombo, 3, 1, 1, 2)
        self.predictionsLabel = QLabel("Predictions:")
        self.predictionsBrowse = dialogs.browse_button(self, self.predictionsEdit, "Folder of per-tile prediction files")
        grid.addWidget(self.predictionsLabel, 4, 0)
        grid.addWidget(self.predictionsEdit, 4, 1)
        grid.addWidget(self.predictionsBrowse, 4, 2)
        self.blendLabel, self.iouLabel, self.fusionLabel = QLabel("Window:"), QLabel("IoU:"), QLabel("Duplicates:")
        options = QHBoxLayout()
        for label, widget in ((self.blendLabel, self.blendCombo), (self.iouLabel, self.iouSpin),
                              (self.fusionLabel, self.fusionCombo)):
            options.addWidget(label)
            options.addWidget(widget)
        options.addStretch(1)
        grid.addLayout(options, 5, 1, 1, 2)
        grid.addWidget(self.restoreCheck, 6, 1, 1, 2)
        run.add_to(grid, 7)
        self.combineCombo.currentIndexChanged.connect(self._show_options)
        self._show_options()

        self.mergeButton.clicked.connect(self.merge)
        self.cancelButton.clicked.connect(lambda: self.jobs.cancel("merge"))
        self.closeButton.clicked.connect(self.close)
        self.openButton.clicked.connect(lambda: self._output is not None and dialogs.open_folder(self._output))
        self.jobs.ended.connect(self._update_buttons)
        self._update_buttons()
        self.resize(680, 430)

    def _show_options(self, *args) -> None:
        """Only the options of the chosen mode: the window for blend and vote, IoU for instances
        and boxes, the predictions folder and the duplicates rule for boxes."""
        mode = self.combineCombo.currentData()
        for widget, shown in ((self.blendLabel, mode in WEIGHTED), (self.blendCombo, mode in WEIGHTED),
                              (self.iouLabel, mode in ("instances", BOXES)), (self.iouSpin, mode in ("instances", BOXES)),
                              (self.fusionLabel, mode == BOXES), (self.fusionCombo, mode == BOXES),
                              (self.predictionsLabel, mode == BOXES), (self.predictionsEdit, mode == BOXES),
                              (self.predictionsBrowse, mode == BOXES)):
            widget.setVisible(shown)
        if mode == "vote" and not self._window_chosen:
            self.blendCombo.setCurrentIndex(self.blendCombo.findData("gradient"))  # no ties between two tiles
        self.restoreCheck.setText("Restore the original pixel size" + (" (box coordinates)" if mode == BOXES else ""))

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
        mode, restore = self.combineCombo.currentData(), self.restoreCheck.isChecked()
        boxes = None
        if mode == BOXES:
            boxes = self.predictionsEdit.text().strip()
            if not boxes:
                dialogs.inform(self, "Merge tiles", "Choose the folder of the per-tile prediction files (.txt) first.",
                               kind="warning")
                return
            boxes = Path(boxes).expanduser()
        options = dict(combine="blend" if mode == BOXES else mode, blend=self.blendCombo.currentData() if mode in WEIGHTED
                       else None, iou=self.iouSpin.value(), boxes=boxes, box_fusion=self.fusionCombo.currentData(),
                       restore_scale=restore, overwrite=overwrite)
        job = Job(lambda cancel: run_merge(tiles, output, cancel=cancel, **options), name="merging tiles")
        job.signals.progressed.connect(self._on_progress)
        job.signals.finished.connect(self._on_ended)
        job.signals.cancelled.connect(self._on_ended)
        job.signals.errored.connect(self._on_failed)
        self.run.started("Merging…")
        self.jobs.start("merge", job)
        self._update_buttons()

    def _on_progress(self, progress: Progress) -> None:
        self.run.progressed(progress)

    def _on_ended(self, summary) -> None:
        self._output = Path(summary.output)
        text = merge_result(summary)
        if summary.cancelled:
            text = "Cancelled: " + text
        problems = list(summary.failed) + list(getattr(summary, "not_cut", []))
        if problems:
            text += "".join(f"<br>• {about_image(name, reason)}" for name, reason in problems[:8])
            if len(problems) > 8:
                text += f"<br>… and {len(problems) - 8} more."
        self.run.ended(text, complete=not summary.cancelled)
        self._update_buttons()
        self.mergeEnded.emit(summary)

    def _on_failed(self, exc: BaseException) -> None:
        message = dialogs.error_text(exc, "merging tiles")
        self.run.failed(message)
        self._update_buttons()
        self.mergeEnded.emit(None)
        dialogs.inform(self, "Merge tiles", message, kind="warning")

    def _update_buttons(self, *args) -> None:
        busy = self.jobs.busy("merge")
        self.run.set_busy(busy, self._output)
