"""Apply a trained model (ONNX) to a folder of images, in the background: every image cut as an
export would cut it (in memory), its tiles run through the model, the outputs merged back."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from tilesapp.core.errors import TilesError
from tilesapp.core.predict import MODEL_OUTPUTS, PredictOptions, predict_options, run_predict, settings_beside
from tilesapp.core.progress import Progress
from tilesapp.core.settings import Settings, load_settings
from tilesapp.gui import dialogs
from tilesapp.gui.merge_dialog import merge_result
from tilesapp.gui.panels._base import ERROR_STYLE, note_label
from tilesapp.gui.run_controls import RunControls
from tilesapp.gui.wording import about_image, plural
from tilesapp.gui.workers import Job, JobRunner, untangle

#: What each kind of model output is, and how it is merged.
OUTPUT_TIPS = {
    "auto": "Found by running the model once: integer maps are labels, float maps probabilities,\n"
            "(N, boxes, 6) or a YOLO head are boxes.",
    "probabilities": "Float maps (a sigmoid or softmax): blended in the overlaps; one channel per output.",
    "logits": "Per-class scores: blended, then the class of the largest — a class map.",
    "labels": "Class ids (e.g. an ArgMax head): voted — never a class no tile predicted.",
    "instances": "Instance labels: objects stitched across tiles, one id each.",
    "mask": "Binary masks: any tile's detection wins (max).",
    "boxes": "Boxes (x0 y0 x1 y1 score class, or a raw YOLO head): merged as a box merge — a .txt per image\n"
             "and coco.json.",
}
SLOT = "predict"
#: How the outputs of each kind were merged, for the summary.
MERGED_BY = {"probabilities": "blended", "logits": "blended, then the class of the largest",
             "labels": "voted", "instances": "stitched into objects", "mask": "merged by max",
             "boxes": "duplicates merged"}


def onnxruntime_missing() -> str:
    """Why models cannot run here ("" when onnxruntime is installed)."""
    if importlib.util.find_spec("onnxruntime") is not None:
        return ""
    return ("Applying a model needs onnxruntime, which this installation lacks: install it with "
            "pip install \"tilesapp[predict]\", or use a desktop build that includes it.")


def settings_text(settings: Settings) -> str:
    """The settings that decide what the model sees, in one line."""
    size = (f"{settings.target_pixel_size:g} {settings.target_unit.replace('um', 'µm')}" if settings.calibrate
            else "pixels kept")
    norm = f"{settings.norm} {settings.output_bounds[0]:g}–{settings.output_bounds[1]:g}" if settings.norm != "none" \
        else "values kept"
    return f"tiles of {settings.tile_size} px, overlap {settings.overlap}, {size}, {norm}, {settings.dtype}"


class PredictDialog(QDialog):
    """Input folder, output folder, model, its settings and output kind; Predict, Cancel,
    progress, summary, Open output folder.

    Signals
    -------
    predictEnded(object)
        The ``PredictSummary`` (also when cancelled), or None when the run failed.
    """

    predictEnded = Signal(object)

    def __init__(self, jobs: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("predictDialog")
        self.setWindowTitle("Apply a model")
        self.setMinimumWidth(600)
        self.jobs = jobs
        self._window_settings = Settings()
        self._output: Path | None = None
        self._browsers: list[QPushButton] = []
        self.missing = onnxruntime_missing()
        self.inputEdit = self._edit("predictInputEdit", "folder of images (or one image)")
        self.outputEdit = self._edit("predictOutputEdit", "empty folder for the results")
        self.modelEdit = self._edit("predictModelEdit", "the trained model, an .onnx file")
        self.settingsLabel = note_label("", "predictSettingsLabel")
        self.outputCombo = QComboBox()
        self.outputCombo.setObjectName("modelOutputCombo")
        for kind in MODEL_OUTPUTS:
            self.outputCombo.addItem(kind, kind)
            self.outputCombo.setItemData(self.outputCombo.count() - 1, OUTPUT_TIPS[kind], Qt.ItemDataRole.ToolTipRole)
        self.outputCombo.setToolTip("What the model gives, which decides how its outputs are merged:\n"
                                    + "\n".join(f"{k}: {v}" for k, v in OUTPUT_TIPS.items()))
        self.restoreCheck = QCheckBox("Results at the images' own pixel size")
        self.restoreCheck.setObjectName("predictRestoreCheck")
        self.restoreCheck.setChecked(True)
        self.restoreCheck.setToolTip("Resample each result back to its image's pixel size (labels by nearest neighbour);\n"
                                     "unticked: at the tiles' pixel size.")
        self.missingLabel = QLabel(f"⚠ {self.missing}")
        self.missingLabel.setObjectName("onnxMissingLabel")
        self.missingLabel.setWordWrap(True)
        self.missingLabel.setStyleSheet(ERROR_STYLE)
        self.missingLabel.setVisible(bool(self.missing))
        run = self.run = RunControls("predict", "Predict", "Show the results in the file manager.")
        self.predictButton, self.cancelButton, self.openButton, self.closeButton = (
            run.startButton, run.cancelButton, run.openButton, run.closeButton)
        self.progressBar, self.resultLabel, self.resultScroll = run.progressBar, run.resultLabel, run.resultScroll

        grid = QGridLayout(self)
        grid.setColumnStretch(1, 1)
        grid.addWidget(note_label("Every image is cut as an export would cut it (in memory), its tiles go through the "
                                  "model, and the outputs are merged back: only the results are written."), 0, 0, 1, 3)
        grid.addWidget(self.missingLabel, 1, 0, 1, 3)
        for row, (label, edit, title, kind) in enumerate(
            (("Images:", self.inputEdit, "Folder of images", "folder"),
             ("Results:", self.outputEdit, "Folder for the results", "folder"),
             ("Model:", self.modelEdit, "The trained model (.onnx)", "model")), start=2
        ):
            grid.addWidget(QLabel(label), row, 0)
            grid.addWidget(edit, row, 1)
            filters = "ONNX models (*.onnx);;All files (*)" if kind == "model" else None
            browse = dialogs.browse_button(self, edit, title, filters)
            self._browsers.append(browse)
            grid.addWidget(browse, row, 2)
        grid.addWidget(self.settingsLabel, 5, 1, 1, 2)
        grid.addWidget(QLabel("Model gives:"), 6, 0)
        grid.addWidget(self.outputCombo, 6, 1)
        grid.addWidget(self.restoreCheck, 7, 1, 1, 2)
        run.add_to(grid, 8)

        self.predictButton.clicked.connect(self.predict)
        self.cancelButton.clicked.connect(lambda: self.jobs.cancel(SLOT))
        self.closeButton.clicked.connect(self.close)
        self.openButton.clicked.connect(lambda: self._output is not None and dialogs.open_folder(self._output))
        self.modelEdit.textChanged.connect(self._on_model)  # where the settings come from, said as it is typed
        self.inputEdit.editingFinished.connect(self._suggest_output)
        self.jobs.ended.connect(self._update_buttons)
        self._update_buttons()
        self._show_settings()
        self.resize(700, 470)

    @staticmethod
    def _edit(name: str, placeholder: str) -> QLineEdit:
        edit = QLineEdit()
        edit.setObjectName(name)
        edit.setPlaceholderText(placeholder)
        return edit

    # --- what the model will be given ---------------------------------------------------------------
    def use_window(self, settings: Settings, folder: Path | None) -> None:
        """The window's settings (used when no settings file lies beside the model), and its
        folder as the input when none was typed."""
        self._window_settings = settings
        if not self.inputEdit.text() and folder is not None:
            self.inputEdit.setText(str(folder))
            self._suggest_output()
        self._show_settings()

    def _suggest_output(self) -> None:
        text = self.inputEdit.text().strip()
        if text and not self.outputEdit.text().strip():
            folder = Path(text).expanduser()
            self.outputEdit.setText(str(folder.with_name(folder.name + "-predictions")))

    def _model(self) -> Path | None:
        text = self.modelEdit.text().strip()
        return Path(text).expanduser() if text else None

    def _beside(self) -> Path | None:
        """The settings file a model may carry (None while no model file is named)."""
        model = self._model()
        return settings_beside(model) if model is not None and model.name else None

    def resolve(self) -> tuple[Settings, PredictOptions, Path | None]:
        """(settings, options, settings file) the run uses: the file saved beside the model when
        there is one, else the window's settings; the dialog's output kind and pixel size win.
        Raises :class:`SettingsError` for a settings file that cannot be used."""
        beside = self._beside()
        if beside is not None and beside.is_file():
            settings, _ = load_settings(beside)
            options, _ = PredictOptions.from_dict(predict_options(beside))
        else:
            beside, settings, options = None, self._window_settings, PredictOptions()
        options = dataclasses.replace(options, model_output=self.outputCombo.currentData(),
                                      restore_scale=self.restoreCheck.isChecked())
        return settings, options, beside

    def _on_model(self) -> None:
        """A model was chosen: its settings file's output kind and pixel size choice, if any."""
        beside = self._beside()
        if beside is not None and beside.is_file():
            try:
                options, _ = PredictOptions.from_dict(predict_options(beside))
            except TilesError as exc:
                untangle(exc)
                options = None  # said by _show_settings
            if options is not None:
                self.outputCombo.setCurrentIndex(max(0, self.outputCombo.findData(options.model_output)))
                self.restoreCheck.setChecked(options.restore_scale)
        self._show_settings()

    def _show_settings(self) -> None:
        """Say where the settings come from: the file beside the model, or the window."""
        beside = self._beside()
        style = ""
        try:
            settings, _, used = self.resolve()
            if used is not None:
                text = f"Settings from <b>{used.name}</b>, saved beside the model: {settings_text(settings)}."
            elif beside is not None:
                text = f"Settings of this window (no {beside.name} beside the model): {settings_text(settings)}."
            else:
                text = (f"Settings of this window: {settings_text(settings)} — unless the model has its own, "
                        f"saved beside it as MODEL.tilesapp.json.")
        except TilesError as exc:
            text, style = f"⚠ {beside.name if beside else 'The settings file'}: {dialogs.error_text(exc, 'reading it')}", \
                ERROR_STYLE
        self.settingsLabel.setStyleSheet(style)
        self.settingsLabel.setText(text)

    # --- the run -----------------------------------------------------------------------------------------
    def predict(self) -> None:
        """Apply the model with the values of the dialog, in the background."""
        if self.missing:
            return
        images, output, model = self.inputEdit.text().strip(), self.outputEdit.text().strip(), self._model()
        if not images or not output or model is None:
            dialogs.inform(self, "Apply a model", "Choose the images, a folder for the results and the model first.",
                           kind="warning")
            return
        images, output = Path(images).expanduser(), Path(output).expanduser()
        try:
            settings, options, beside = self.resolve()
        except TilesError as exc:
            dialogs.inform(self, "Apply a model", dialogs.error_text(exc, "reading the model's settings"), kind="warning")
            return
        overwrite = False
        if output.is_dir() and any(output.iterdir()):
            if not dialogs.ask(self, "Results folder not empty",
                               f"{output} is not empty. Results with the same names will be replaced. Predict anyway?",
                               confirm="Predict anyway"):
                return
            overwrite = True
        job = Job(lambda cancel: run_predict(images, output, model, settings, options, settings_file=beside,
                                             overwrite=overwrite, cancel=cancel), name="applying the model")
        job.signals.progressed.connect(self._on_progress)
        job.signals.finished.connect(self._on_ended)
        job.signals.cancelled.connect(self._on_ended)
        job.signals.errored.connect(self._on_failed)
        self.run.started("Loading the model…", busy=True)
        self._output = None
        self.jobs.start(SLOT, job)
        self._update_buttons()

    def _on_progress(self, progress: Progress) -> None:
        text = None
        if progress.total:
            text = f"{progress.done} / {plural(progress.total, 'tile')}"
            if progress.images_total:
                text += f" · {progress.images_done} of {plural(progress.images_total, 'image')} done"
            text += f" · {progress.current}" if progress.current else ""
        self.run.progressed(progress, text)

    def _on_ended(self, summary) -> None:
        if summary is None:
            self.run.ended("Cancelled before any result was written.", complete=False)
            self._update_buttons()
            self.predictEnded.emit(None)
            return
        self._output = Path(summary.output)
        boxes = summary.kind == "boxes"
        text = merge_result(summary, "box file" if boxes else "result")
        model = self._model()
        how = f", {MERGED_BY[summary.kind]}" if summary.kind in MERGED_BY else ""
        text = (f"{model.name if model else 'The model'} gives {summary.kind}{how} "
                f"(on {', '.join(p.replace('ExecutionProvider', '') for p in summary.providers)}).<br>") + text
        if summary.cancelled:
            text = "Cancelled: " + text + "<br>The images not listed were not written."
        problems = list(summary.failed)
        if problems:
            text += f"<br><b>{plural(len(problems), 'image')} failed:</b>"
            text += "".join(f"<br>• {dialogs.window_words(about_image(n, r))}" for n, r in problems[:8])
            if len(problems) > 8:
                text += f"<br>… and {len(problems) - 8} more."
        for _name, warning in summary.warnings[:3]:
            text += f"<br>⚠ {dialogs.window_words(warning)}"
        self.run.ended(text, complete=not summary.cancelled)
        self._update_buttons()
        self.predictEnded.emit(summary)

    def _on_failed(self, exc: BaseException) -> None:
        message = dialogs.error_text(exc, "applying the model")
        self.run.failed(message)
        self._update_buttons()
        self.predictEnded.emit(None)

    def _update_buttons(self, *args) -> None:
        busy = self.jobs.busy(SLOT)
        self.run.set_busy(busy, self._output, can_start=not self.missing)
        self.predictButton.setToolTip(self.missing or "Apply the model to every image.")
        for widget in (self.inputEdit, self.outputEdit, self.modelEdit, self.outputCombo, self.restoreCheck,
                       *self._browsers):
            widget.setEnabled(not busy)

    def closeEvent(self, event) -> None:
        """Closing the dialog while a model runs cancels the run."""
        if self.jobs.busy(SLOT):
            self.jobs.cancel(SLOT)
        super().closeEvent(event)
