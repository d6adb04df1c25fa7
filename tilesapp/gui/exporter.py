"""The export: its folder (and the masks and labels folders or annotations that must stay apart
from it), emptying it, the run with progress and time left, Cancel, and the summary."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from PySide6.QtCore import Signal

from tilesapp.core.errors import OutputError, TilesError
from tilesapp.core.export import run_export
from tilesapp.core.folders import (
    annotation_folder_problem,
    check_output_place,
    clear_export,
    export_contents,
    folder_conflict,
)
from tilesapp.core.progress import Progress
from tilesapp.gui import dialogs
from tilesapp.core.training import TrainingRun, check_annotations_path
from tilesapp.gui.wording import GIVE_PIXEL_SIZE, about_image, plural

#: What the window says a layout lacks, when the engine finds it lacks something.
NEEDS = {
    "ultralytics": "The ultralytics layout trains on boxes: choose a labels folder or annotations, or a masks "
                   "folder of instance masks with Boxes from masks ticked.",
    "nnunet": "nnU-Net trains on class masks: choose a masks folder or annotations.",
    "cellpose": "Cellpose trains on instance masks: choose a masks folder or annotations.",
    "stardist": "StarDist trains on instance masks: choose a masks folder or annotations.",
    "coco": "COCO describes objects: choose annotations, a masks folder of instance masks, or a labels folder.",
}
#: Where the window says to give what a failed image needed.
SETTING_HINTS = {"z": "choose what to cut of Z stacks in Planes (Media panel)",
                 "t": "choose what to cut of time series in Planes (Media panel)",
                 "channels": "change the channels to keep (Normalization panel)"}
from tilesapp.gui.workers import Controller, Job, from_current_job, one_step

MAX_LISTED = 5


def percent(share: float) -> str:
    """``0.05`` → ``5 %``, ``0.125`` → ``12.5 %``."""
    return f"{100 * share:.4g} %"


def time_left(elapsed: float, fraction: float) -> str:
    """``about 2 min left`` from the time so far and the share done ("" too early to say).

    >>> time_left(10, 0.5), time_left(60, 0.25), time_left(0.2, 0.01)
    ('about 10 s left', 'about 3 min left', '')
    """
    if fraction <= 0.01 or elapsed < 0.5 or fraction >= 1:
        return ""
    left = elapsed * (1 - fraction) / fraction
    if left < 60:
        return f"about {max(1, round(left / 5) * 5 if left > 10 else round(left))} s left"
    if left < 3600:
        return f"about {round(left / 60)} min left"
    return f"about {left / 3600:.1f} h left"


class ExportController(Controller):
    """Export folder, masks and labels folders, Empty export folder, Export, Cancel, summary.

    Signals
    -------
    exportEnded(object)
        An export finished or was cancelled (its ``ExportSummary``), or failed (None).
    """

    exportEnded = Signal(object)

    def __init__(self, window):
        super().__init__(window)
        self.folder: Path | None = None
        self.masks: Path | None = None  # folders of annotations named like the images
        self.labels: Path | None = None
        self.annotations: Path | None = None  # GeoJSON, ROI or COCO files (a file or a folder)
        self.bar, self.panel = window.export_bar, window.export_panel
        self._started = 0.0
        self._settings = None  # those of the running (or last) export, for its summary
        self._last: Progress | None = None
        self._exported_from = None  # the sources of the last export, whose result the bar shows
        self.panel.selectFolderRequested.connect(self.select_folder)
        self.panel.emptyFolderRequested.connect(self.empty_folder)
        self.bar.exportRequested.connect(self.export)
        self.bar.cancelRequested.connect(self.cancel)
        self.bar.openFolderRequested.connect(lambda: self.folder is not None and dialogs.open_folder(self.folder))
        t = window.training
        t.masksFolderRequested.connect(lambda: self.select_annotations("masks"))
        t.labelsFolderRequested.connect(lambda: self.select_annotations("labels"))
        t.clearMasksRequested.connect(lambda: self.set_annotations("masks", None))
        t.clearLabelsRequested.connect(lambda: self.set_annotations("labels", None))
        t.annotationsRequested.connect(lambda kind: self.select_imported(kind))
        t.clearAnnotationsRequested.connect(lambda: self.set_annotations("annotations", None))

    @property
    def running(self) -> bool:
        return self.jobs.busy("export")

    def sources_loaded(self, sources) -> None:
        """Other images loaded: the bar no longer shows how the last export of other ones ended
        (its "1 of 8 images" would read as this folder's)."""
        if self.running or self._exported_from is None or sources.sources == self._exported_from:
            return
        self._exported_from = None
        self.bar.set_progress(0.0, "")
        self.bar.set_summary("")

    # --- folders ---------------------------------------------------------------------------------
    def select_folder(self, path: str | Path | None = None) -> bool:
        """Choose the export folder (asks when ``path`` is None); refuses the input folder or inside it."""
        if path is None:
            path = dialogs.choose_folder(self.window, "Select an empty export folder",
                                         self.folder or self.window.store.path("export"))
            if path is None:
                return False
        path = Path(path).expanduser().absolute()
        if not self._safe(path):
            return False
        self._set_folder(path)
        contents = export_contents(path) if path.is_dir() else None
        if contents is not None and (contents.written or contents.other):
            self.status(f"The export folder holds {plural(len(contents.written) + len(contents.other), 'file')}: "
                        "Export will ask first; Empty export folder deletes what an earlier export wrote.")
        return True

    def _safe(self, path: Path, quiet: bool = False, title: str = "Export folder") -> bool:
        """The engine's refusals: not an input, masks or labels folder, nor inside one, nor
        holding the masks or labels folder (said in a dialog unless ``quiet``)."""
        problem = ""
        for kind, folder in (("masks", self.masks), ("labels", self.labels), ("annotations", self.annotations)):
            if folder is not None and not problem:
                problem = folder_conflict(kind, folder, path)
        if not problem:
            sources = self.window.loader.sources
            try:
                check_output_place(path, (list(sources.folders) if sources else []) +
                                   [f for f in (self.masks, self.labels, self.annotations) if f is not None and f.is_dir()])
            except OutputError as exc:
                problem = str(exc)
        if problem and not quiet:
            dialogs.inform(self.window, title, problem, kind="warning")
        return not problem

    def _set_folder(self, path: Path | None) -> None:
        self.folder = path
        if path is None:
            self.panel.set_folder("No export folder selected.")
        else:
            self.window.store.set_path("export", path)
            self.panel.set_folder(str(path))
        self.window.update_actions()

    def check_folders_against_sources(self) -> None:
        """A new input folder may hold the export folder or be the masks folder: clear them."""
        if self.folder is not None and not self._safe(self.folder, quiet=True):
            self._set_folder(None)
            self.status("The export folder was cleared: it lies inside the new input folder.")
        inputs = self.window.loader.sources.folders if self.window.loader.sources else []
        if self.masks is not None and annotation_folder_problem("masks", self.masks, inputs):
            self.set_annotations("masks", None)
            self.status("The masks folder was cleared: it is the new input folder.")

    def select_annotations(self, kind: str, path: str | Path | None = None) -> bool:
        """Choose the folder of masks or labels (asks when ``path`` is None); False when refused."""
        if path is None:
            sources = self.window.loader.sources
            start = getattr(self, kind) or self.window.store.path(kind) or (sources.folders[0] if sources else None)
            what = "label masks" if kind == "masks" else "YOLO label files (.txt)"
            path = dialogs.choose_folder(self.window, f"Select the folder of {what}", start)
            if path is None:
                return False
        path = Path(path).expanduser().absolute()
        sources = self.window.loader.sources
        problem = annotation_folder_problem(kind, path, sources.folders if sources else [], self.folder)
        if problem:
            dialogs.inform(self.window, f"{kind.capitalize()} folder", problem, kind="warning")
            return False
        self.window.store.set_path(kind, path)
        self.set_annotations(kind, path)
        return True

    def select_imported(self, kind: str, path: str | Path | None = None) -> bool:
        """Choose imported annotations: a ``kind`` "file" (GeoJSON, ROI, COCO) or "folder" of them
        (asks when ``path`` is None); they replace masks and labels folders. False when refused."""
        if path is None:
            sources = self.window.loader.sources
            start = self.annotations or self.window.store.path("annotations") or (sources.folders[0] if sources else None)
            if kind == "folder":
                path = dialogs.choose_folder(self.window, "Select the folder of annotation files", start)
            else:
                path = dialogs.choose_open_file(
                    self.window, "Select an annotation file", start,
                    "Annotations (*.geojson *.json *.roi *.zip);;QuPath GeoJSON (*.geojson *.json);;"
                    "ImageJ ROIs (*.roi *.zip);;COCO (*.json);;All files (*)")
            if path is None:
                return False
        try:
            path = check_annotations_path(path, self.window.loader.sources.folders if self.window.loader.sources else [],
                                          self.folder or Path(path).expanduser().absolute().parent / ".tilesapp-no-export")
        except TilesError as exc:
            dialogs.inform(self.window, "Annotations", dialogs.error_text(exc, "choosing annotations"), kind="warning")
            return False
        if self.folder is not None:
            problem = folder_conflict("annotations", path, self.folder)
            if problem:
                dialogs.inform(self.window, "Annotations", problem, kind="warning")
                return False
        self.window.store.set_path("annotations", path if path.is_dir() else path.parent)
        self.set_annotations("annotations", path)
        return True

    def set_annotations(self, kind: str, path: Path | None) -> None:
        """Use ``path`` as the masks / labels folder or the annotations (None: none); the preview
        follows. Annotations replace masks and labels (the engine draws those from them), and
        the other way round: choosing one clears the other, said in the status bar."""
        if self.running:
            dialogs.inform(self.window, kind.capitalize() if kind == "annotations" else f"{kind.capitalize()} folder",
                           "An export is running; wait for it to end or cancel it first.")
            return
        setattr(self, kind, path)
        cleared = []
        if path is not None:
            others = ("masks", "labels") if kind == "annotations" else ("annotations",)
            for other in others:
                if getattr(self, other) is not None:
                    setattr(self, other, None)
                    cleared.append(other if other == "annotations" else f"{other} folder")
        if cleared:
            self.status(f"{' and '.join(c.capitalize() if i == 0 else c for i, c in enumerate(cleared))} cleared: "
                        f"{'annotations replace masks and labels' if kind == 'annotations' else f'a {kind} folder replaces the annotations'}.",
                        12)
        self.window.training.set_folders(self.masks, self.labels, self.annotations)
        self.window.editor.recheck()
        self.window.update_actions()
        # Asked by the user: a missing mask for this image deserves a message, not a status line.
        self.window.previews.refresh(interactive=path is not None)

    # --- emptying ---------------------------------------------------------------------------------
    def empty_folder(self) -> None:
        """Delete what an earlier export wrote in the export folder (listed in its manifest, and
        the folders it made), after showing how many; other files only when asked separately."""
        out = self.folder
        if out is None or self.running or not self._safe(out):
            return
        contents = export_contents(out) if out.is_dir() else None
        if contents is None or not (contents.written or contents.other):
            dialogs.inform(self.window, "Empty export folder", f"The export folder {out} holds no files.")
            return
        written, other = contents.written, contents.other
        if written and not dialogs.ask(
            self.window, "Empty export folder",
            f"Delete the {plural(len(written), 'file')} that an earlier export wrote in {out}"
            f"{' (and the folders it made)' if contents.folders else ''}?\n\nDeleted files cannot be recovered.",
            confirm=f"Delete {plural(len(written), 'file')}",
        ):
            written = []
        if other:
            shown = "\n".join(p.relative_to(out).as_posix() for p in other[:MAX_LISTED])
            more = f"\n… and {len(other) - MAX_LISTED} more" if len(other) > MAX_LISTED else ""
            if not dialogs.ask(
                self.window, "Files no export wrote",
                f"{out} also holds {plural(len(other), 'file')} that no export wrote:\n\n{shown}{more}\n\n"
                "Delete them too? Deleted files cannot be recovered.",
                confirm=f"Delete {plural(len(other), 'other file')}", cancel="Keep them",
            ):
                other = []
        if not written and not other:
            return
        chosen = dataclasses.replace(contents, written=list(written), other=list(other),
                                     folders=contents.folders if written else [])
        job = Job(one_step(clear_export, chosen, include_other=bool(other)), name="emptying the export folder")
        job.signals.finished.connect(self._on_emptied)
        job.signals.errored.connect(lambda exc: dialogs.inform(
            self.window, "Empty export folder", dialogs.error_text(exc, "emptying the export folder"), kind="error"))
        self.jobs.start("empty", job)
        self.window.update_actions()

    @from_current_job
    def _on_emptied(self, removed: int) -> None:
        self.status(f"Deleted {plural(removed, 'file')} from the export folder.")
        self.bar.set_summary("")

    # --- export -------------------------------------------------------------------------------------
    def blocked(self) -> str:
        """Why Export cannot start now ("" when it can)."""
        w = self.window
        if self.running:
            return "An export is running."
        if self.jobs.busy("scan"):
            return "Reading the folder…"
        if w.loader.sources is None:
            return "Load a folder of images first."
        if not w.loader.sources.infos:
            return "The folder holds no readable image."
        if w.editor.errors:
            return "Fix the setting marked in red first."
        if self.folder is None:
            return "Select an export folder."
        if self.jobs.busy("empty"):
            return "Emptying the export folder…"
        return ""

    def plan_text(self) -> str:
        a = self.window.loader.assessment
        if not a.rows:
            return ""
        up_to = "up to " if self.window.editor.settings.min_foreground > 0 else ""  # the filter drops some
        return f"Ready: {up_to}{plural(a.tiles, 'tile')} from {plural(len(a.ready), 'image')}." if a.ready \
            else "No image can be exported."

    def export(self) -> None:
        """Export the tiles of every image in the background (asks first for a non-empty folder)."""
        w = self.window
        reason = self.blocked()
        if reason:
            dialogs.inform(w, "Export tiles", reason, kind="warning")
            return
        sources, out, settings, masks, labels = w.loader.sources, self.folder, w.editor.settings, self.masks, self.labels
        if not self._safe(out, title="Export tiles"):
            return
        overwrite = False
        contents = export_contents(out) if out.is_dir() else None
        if contents is not None and contents.other:
            dialogs.inform(w, "Export tiles",
                           f"The export folder {out} holds {plural(len(contents.other), 'file')} that no earlier "
                           "export wrote; choose an empty folder, or Empty export folder first.", kind="warning")
            return
        if contents is not None and contents.written:
            if not dialogs.ask(w, "Export folder not empty",
                               f"The export folder {out} already holds {plural(len(contents.written), 'file')} of an "
                               "earlier export.\n\nThey will be deleted and replaced by this export. Export anyway?",
                               confirm="Replace and export"):
                return
            overwrite = True
        annotations = self.annotations
        job = Job(lambda cancel: run_export(sources.sources, out, settings, overwrite=overwrite, cancel=cancel,
                                            masks=masks, labels=labels, annotations=annotations),
                  name="exporting tiles")
        job.signals.progressed.connect(self._on_progress)
        job.signals.finished.connect(self._on_finished)
        job.signals.cancelled.connect(self._on_cancelled)
        job.signals.errored.connect(self._on_failed)
        self.bar.set_summary("")
        self.bar.set_progress(None, "Starting…")
        self._started, self._settings, self._last = time.monotonic(), settings, None
        self._exported_from = sources.sources
        self.jobs.start("export", job)
        w.update_actions()

    def cancel(self) -> None:
        """Stop the export after the current tile; what was written stays, listed in the manifest."""
        if self.running:
            self.jobs.cancel("export")
            self.bar.set_progress(self.bar.progressBar.value() / 1000, "Cancelling…")
            self.window.update_actions()

    @from_current_job
    def _on_progress(self, progress: Progress) -> None:
        self._last = progress
        if progress.total:
            left = time_left(time.monotonic() - self._started, progress.fraction)
            text = (f"{progress.done} / {plural(progress.total, 'tile')} · {progress.images_done} of "
                    f"{plural(progress.images_total, 'image')} done" + (f" · {left}" if left else ""))
            self.bar.set_progress(progress.fraction, text)
        else:
            self.bar.set_progress(None, progress.message or "Preparing…")
        self.window.show_progress(progress, "Exporting")

    def _reason(self, summary, name: str, reason: str) -> str:
        needs = summary.settings_failures.get(name, ())
        if "pixel_size" in needs:
            return f"{name} carries no pixel size: {GIVE_PIXEL_SIZE}."
        hint = next((SETTING_HINTS[n] for n in needs if n in SETTING_HINTS), "")
        return dialogs.window_words(about_image(name, reason)) + (f" ({hint}.)" if hint else "")

    def training_check(self, settings) -> list[tuple[str, str]]:
        """What the layout lacks, said next to the field before exporting (the engine's rule,
        in the window's words)."""
        out = []
        if settings.boxes_from_masks and self.masks is None:
            out.append(("boxes_from_masks", "Boxes from masks needs a masks folder of instance masks (one id per "
                                            "object) to take the boxes from."))
        run = TrainingRun(settings, settings.layout, self.masks is not None, self.labels is not None)
        run.index = self.annotations  # only whether there are annotations counts here
        if run.missing():
            out.append(("layout", NEEDS.get(settings.layout, dialogs.window_words(run.missing()))))
        return out

    def _summary_text(self, summary) -> str:
        seconds = time.monotonic() - self._started
        of = "" if summary.images_ok == summary.images_total else f" of {summary.images_total}"
        text = f"{plural(summary.tiles_written, 'tile')} from {summary.images_ok}{of} " \
               f"image{'s' * (summary.images_total != 1)} in {seconds:.1f} s."
        s = self._settings or self.window.editor.settings
        if summary.tiles_dropped:
            kept = f" ({percent(s.keep_empty)} of such tiles kept at random)" if s.keep_empty > 0 else ""
            text += f"<br>{plural(summary.tiles_dropped, 'tile')} dropped: below {percent(s.min_foreground)} foreground{kept}."
        if summary.split:
            text += f"<br>Split by image: {summary.split.get('train', 0)} in train/, {summary.split.get('val', 0)} in val/."
        if summary.failed:
            text += f"<br><b>{plural(len(summary.failed), 'image')} failed:</b>"
            text += "".join(f"<br>• {self._reason(summary, n, r)}" for n, r in summary.failed[:3])
            if len(summary.failed) > 3:
                text += f"<br>… and {len(summary.failed) - 3} more (see manifest.json)."
        return text

    def _details(self, summary) -> str:
        return "\n".join(self._reason(summary, name, reason) for name, reason in summary.failed)

    @from_current_job
    def _on_finished(self, summary) -> None:
        if summary.stopped_by:
            self.bar.set_progress(self.bar.progressBar.value() / 1000, "Stopped")
            self.bar.set_summary(f"Stopped: {summary.stopped_by}<br>{self._summary_text(summary)}", error=True)
            dialogs.inform(self.window, "Export stopped", summary.stopped_by, details=self._details(summary), kind="error")
        else:
            self.bar.set_progress(1.0, f"Done: {plural(summary.tiles_written, 'tile')}")
            self.bar.set_summary(("Done: " if not summary.failed else "") + self._summary_text(summary),
                                 tooltip=self._details(summary))
            if summary.failed:
                dialogs.inform(self.window, "Export finished with errors",
                               f"{plural(summary.tiles_written, 'tile')} written; "
                               f"{plural(len(summary.failed), 'image')} could not be exported "
                               "(details below, also in manifest.json).",
                               details=self._details(summary), kind="warning")
        self.status(f"Export finished: {plural(summary.tiles_written, 'tile')} in {summary.output}.", 10)
        self.window.update_actions()
        self.exportEnded.emit(summary)

    @from_current_job
    def _on_cancelled(self, summary) -> None:
        self.bar.set_progress(self.bar.progressBar.value() / 1000, "Cancelled")
        if summary is not None:
            seconds = time.monotonic() - self._started
            self.bar.set_summary(
                f"Cancelled after {seconds:.1f} s: {plural(summary.tiles_written, 'tile')} written, "
                f"{summary.images_ok} of {plural(summary.images_total, 'image')} complete."
                "<br>manifest.json lists what was written.")
        else:
            self.bar.set_summary("Cancelled before any tile was written.")
        self.status("Export cancelled.")
        self.window.update_actions()
        self.exportEnded.emit(summary)

    @from_current_job
    def _on_failed(self, exc: BaseException) -> None:
        message = dialogs.error_text(exc, "exporting tiles")
        self.bar.set_progress(0.0, "Failed")
        self.bar.set_summary(message, error=True)
        self.status("Export failed.")
        self.window.update_actions()
        self.exportEnded.emit(None)
        dialogs.inform(self.window, "Export tiles", message, kind="error")

    def confirm_close(self) -> bool:
        """Closing during an export asks: True to cancel it and close, False to keep exporting."""
        if not self.running:
            return True
        done = f" ({self._last.done} of {plural(self._last.total, 'tile')} written)" if self._last and self._last.total else ""
        return dialogs.ask(self.window, "Export running",
                           f"An export is running{done}. Closing the window cancels it; the tiles written so far "
                           "stay, listed in manifest.json.", confirm="Cancel export and close", cancel="Keep exporting")

    def update(self) -> None:
        """Export's state: enabled, why not, what it would do, which images will fail."""
        reason = self.blocked()
        running = self.running
        self.bar.exportButton.setEnabled(not reason)
        self.bar.exportButton.setToolTip(reason or "Cut every image of the folder into tiles in the export folder.")
        self.bar.cancelButton.setEnabled(running and not self.jobs.job("export").is_cancelled)
        self.bar.openFolderButton.setEnabled(self.folder is not None and self.folder.is_dir())
        self.bar.set_hint("" if running else (reason or self.plan_text()))
        self.bar.set_warning(*self.window.loader.assessment.failure_text())
        self.panel.exportFolderButton.setEnabled(not running)
        self.panel.emptyFolderButton.setEnabled(self.folder is not None and not running and not self.jobs.busy("empty"))
