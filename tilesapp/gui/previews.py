"""What the image view shows: the sample mosaic, an image under its tile grid (its source values
or the values its tiles will hold), and the current tile of a big image at full resolution."""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer, Signal

from tilesapp.core.calibration import format_pixel_size
from tilesapp.core.errors import ImageError
from tilesapp.core.normalize import joint_stretch
from tilesapp.core.plan import CalibrationMissing, plan_image
from tilesapp.gui import dialogs
from tilesapp.gui.tasks import (
    Output,
    Preview,
    Sample,
    TileDetail,
    make_output,
    make_preview,
    make_sample,
    make_tile_detail,
    preview_settings,
)
from tilesapp.gui.viewer import LABEL_COLORS, DisplayImage
from tilesapp.gui.wording import GIVE_PIXEL_SIZE, plural
from tilesapp.gui.workers import Controller, Job, from_current_job, one_step

SAMPLE_IMAGES, SAMPLE_CELL = 25, 512
#: Settings that decide which tiles the empty-tile filter keeps.
FILTER_FIELDS = ("min_foreground", "keep_empty", "seed")
#: Where the window says to choose what a stack or a channel list needs.
CHOOSE = {"z": "Choose what to cut of Z stacks in Planes (Media panel).",
          "t": "Choose what to cut of time series in Planes (Media panel).",
          "channels": "Change the channels to keep (Normalization panel).",
          "annotations": "Check the annotations (Training set panel)."}
#: Settings that decide which image of a file is shown and its values.
SOURCE_FIELDS = ("scenes", "z", "t", "channels", "layout", "annotation_masks")
#: Settings that decide the output values.
OUTPUT_FIELDS = ("norm", "percentiles", "bounds", "dtype", "channel_stretch")


class PreviewController(Controller):
    """Sample, tile preview (of the image chosen in the sources table), output values, tile detail.

    Signals
    -------
    previewShown(Preview), tileDetailShown(TileDetail), sampleShown(), outputShown(Output)
    """

    previewShown = Signal(object)
    tileDetailShown = Signal(object)
    sampleShown = Signal()
    outputShown = Signal(object)

    def __init__(self, window):
        super().__init__(window)
        self.preview: Preview | None = None
        self.output: Output | None = None
        self._request: tuple[Path, bool, str] | None = None  # (path, asked by the user, image name)
        self._waiting: tuple[Path, bool, str] | None = None  # an image that needed a setting to be previewed
        self.viewer, self.tiles = window.viewer, window.tiles
        self._refresh_timer = QTimer(self, singleShot=True, interval=350)  # the user may still be editing
        self._refresh_timer.timeout.connect(self._refresh)
        self._detail_timer = QTimer(self, singleShot=True, interval=150)  # the slider rests, not each tile it passes
        self._detail_timer.timeout.connect(self._read_detail)
        t = self.tiles
        t.previewRequested.connect(self.preview_chosen)
        t.anotherRequested.connect(self.next_image)
        t.currentTileChanged.connect(self.viewer.set_current_tile)
        t.currentTileChanged.connect(self._request_detail)
        t.showAllToggled.connect(self.viewer.set_show_all)
        t.showAnnotationsToggled.connect(self.viewer.set_show_annotations)
        t.outputValuesToggled.connect(self._show_values)

    def forget(self, placeholder: str = "") -> None:
        """Nothing on screen any more (a new folder is being read)."""
        self.preview = self.output = self._request = self._waiting = None
        self.viewer.clear()
        if placeholder:
            self.viewer.show_placeholder(placeholder)
        self.tiles.set_tiles(None)

    # --- sample -----------------------------------------------------------------------------
    def show_sample(self) -> None:
        """Show a mosaic of up to 25 random readable images of the sources."""
        sources = self.window.loader.sources
        if not sources or not sources.infos:
            dialogs.inform(self.window, "Show sample", "Load a folder of images first.")
            return
        paths = sources.paths
        job = Job(lambda cancel: make_sample(paths, SAMPLE_IMAGES, SAMPLE_CELL, cancel), name="making the sample")
        job.signals.progressed.connect(self.window.show_progress)
        job.signals.finished.connect(self._on_sample)
        job.signals.errored.connect(self._on_failed)
        self._request = None
        self.jobs.start("view", job)

    @from_current_job
    def _on_sample(self, sample: Sample) -> None:
        counts = self.window.loader.assessment
        readable = len(counts.rows) - len(counts.unreadable)
        what = "readable image"
        if counts.files and counts.files != len(counts.rows):  # files of several images: the sample shows files
            readable, what = counts.files - len(counts.unreadable), "readable file"
        self.preview = self.output = None
        self.viewer.set_grid(None)
        self.viewer.set_annotations(None, None)
        self.viewer.set_objects(None)
        self.tiles.set_tiles(None)
        unreadable = f", {len(counts.unreadable)} unreadable not shown" if counts.unreadable else ""
        self.viewer.show_image(
            DisplayImage(sample.image, (0.0, 255.0)),
            title=f"<b>Sample</b> · {sample.shown} of {plural(readable, what)}{unreadable}, "
                  f"each scaled to fit {SAMPLE_CELL} px",
        )
        self.viewer.set_labels(sample.labels)
        self.status("Sample ready: click an image in the sources table to see its tiles.")
        self.sampleShown.emit()

    # --- preview ----------------------------------------------------------------------------
    def preview_chosen(self) -> None:
        """Preview the image chosen in the sources table (the first ready one when none is)."""
        table = self.window.loader.table
        ready = [r.name for r in self.window.loader.assessment.ready]
        name = table.chosen() or (self.preview.name if self.preview else None) or (ready or table.names() or [None])[0]
        if name is None:
            dialogs.inform(self.window, "Preview tiles", "Load a folder of images first.")
            return
        self.preview_image(name)

    def next_image(self) -> None:
        """Preview the next image of the sources table (after the one on screen)."""
        names = self.window.loader.table.names()
        if not names:
            return
        current = self.preview.name if self.preview else self.window.loader.table.chosen()
        self.preview_image(names[(names.index(current) + 1) % len(names)] if current in names else names[0])

    def preview_image(self, image: str | Path) -> None:
        """Preview the tiles of one image of the sources: a row's name (a scene or plane of a
        file: ``a.czi [s1]``), or a file (its first image); its row becomes the chosen one."""
        row = self._row(image)
        if row is not None:
            self.window.loader.table.select(row.name, quiet=True)
            self._start(row.path, row.number, row.name, interactive=True)
        else:
            self._start(Path(image), 0, Path(image).name, interactive=True)

    def _row(self, image: str | Path, number: int | None = None):
        """The sources table's row of an image name, or of a file (its ``number``-th image, else
        its first); None when the sources hold no such image."""
        rows = self.window.loader.assessment.rows
        if isinstance(image, str):
            return next((r for r in rows if r.name == image), None)
        of_file = [r for r in rows if r.path == Path(image)]
        same = [r for r in of_file if r.number == number]
        return (same or of_file or [None])[0]

    def _start(self, path: Path, number: int, name: str, interactive: bool) -> None:
        w = self.window
        settings, masks, labels = w.editor.settings, w.exporter.masks, w.exporter.labels
        annotations = w.exporter.annotations
        file_name = w.loader.sources.names().get(path) if w.loader.sources else None
        job = Job(one_step(make_preview, path, settings, masks, labels, file_name, number, annotations),
                  name=f"previewing {name}")
        job.signals.finished.connect(self._on_preview)
        job.signals.errored.connect(self._on_failed)
        self._request = (path, interactive, name)
        w.show_busy(f"Preparing the preview of {name}…")
        self.jobs.start("view", job)

    def _again(self, interactive: bool) -> None:
        """Preview again the image on screen (its row may have changed: a plane choice, scenes)."""
        preview = self.preview
        row = self._row(preview.name) or self._row(preview.path, preview.number)
        if row is None:
            return
        self.window.loader.table.select(row.name, quiet=True)
        self._start(row.path, row.number, row.name, interactive)

    def _refresh(self) -> None:
        if self.window.closing:
            return
        if self.preview is not None:
            self._again(interactive=False)
        elif self._waiting is not None:  # it needed a setting (a plane choice, a pixel size): try again
            path, _, name = self._waiting
            row = self._row(name) or self._row(path)
            if row is not None:
                self.window.loader.table.select(row.name, quiet=True)
                self._start(row.path, row.number, row.name, interactive=False)

    def refresh(self, interactive: bool = False) -> None:
        """Compute the preview on screen again (annotation folders changed)."""
        if self.preview is not None:
            self._again(interactive)

    @from_current_job
    def _on_preview(self, preview: Preview) -> None:
        self._waiting = None
        old = self.preview
        same = old is not None and old.name == preview.name
        self.preview, self.output = preview, None
        self._show_source(keep_view=same)
        self.viewer.set_annotations(preview.overlay, preview.boxes, preview.mask)
        self.viewer.set_objects(preview.objects.objects if preview.objects is not None else None)
        self._show_grid(keep_tile=same)
        message = f"{preview.name}: {plural(len(preview.plan.grid), 'tile')}"
        if preview.boxes is not None:
            message += f", {len(preview.boxes)} box{'' if len(preview.boxes) == 1 else 'es'}"
        if preview.objects is not None:
            message += f", {plural(len(preview.objects.objects), 'object')} from {preview.objects.file.name}"
            if preview.objects.warnings:
                message += f" (⚠ {preview.objects.warnings[0]})"
        self.status(f"{message}. Move the slider to step through them.")
        self.previewShown.emit(preview)
        if self.tiles.outputValuesCheck.isChecked():
            self._start_output()

    def _show_source(self, keep_view: bool = True) -> None:
        preview = self.preview
        size_out = preview.plan.output_pixel_size_um
        self.viewer.show_image(preview.display, title=self.title(preview), values=preview.values,
                               pixel_size_um=size_out[1] if size_out else None, keep_view=keep_view)

    def title(self, preview: Preview, output: Output | None = None) -> str:
        plan = preview.plan
        (r0, c0), (r1, c1) = plan.info.shape_yx, plan.scaled_shape
        size_in = format_pixel_size(plan.input_pixel_size_um) if plan.input_pixel_size_um else "no pixel size"
        text = f"<b>{html.escape(preview.name or preview.path.name)}</b> · {r0} × {c0} px, {size_in}"
        if plan.rescaled:
            text += f" → {r1} × {c1} px, {format_pixel_size(plan.output_pixel_size_um)}"
        scene = plan.info
        if scene.n_scenes > 1:
            text += f" · scene {scene.scene + 1} of {scene.n_scenes}"
            text += f" ({html.escape(scene.scene_name)})" if scene.scene_name else ""
        if preview.display.note:
            text += f" · {preview.display.note}"
        side = self.window.loader.split.get(preview.path)
        if side:
            text += f" · goes to <i>{side}/</i>"
        if preview.objects is not None:
            text += "<br>" + self._objects_text(preview.objects)
        if output is not None:
            text += "<br>" + self._output_text(output)
        return text

    @staticmethod
    def _objects_text(objects) -> str:
        """The imported objects' classes, in their colours on screen."""
        found = objects.objects
        counts = np.bincount(found.classes, minlength=len(found.names)) if len(found) else np.zeros(len(found.names), int)
        parts = [f"<span style='color:{LABEL_COLORS[k % len(LABEL_COLORS)]}'>■</span> {html.escape(name)} {counts[k]}"
                 for k, name in enumerate(found.names) if k < len(counts) and counts[k]]
        drawn = {"none": "boxes", "classes": "class masks", "instances": "instance masks"}.get(objects.masks, objects.masks)
        return (f"{plural(len(found), 'object')} from {html.escape(objects.file.name)} ({drawn}): "
                + (" · ".join(parts) or "none"))

    def _output_text(self, output: Output) -> str:
        s = self.window.editor.settings
        view = output.view
        if view.problem:
            return f"<span style='color:#ff8a80'>Output values: ⚠ {view.problem}</span>"
        levels = min(view.levels) if view.levels else None
        text = f"<b>Output values</b> ({s.dtype}"
        text += f", {s.output_bounds[0]:g}–{s.output_bounds[1]:g})" if s.norm != "none" else ", values kept)"
        if levels is not None:
            few = levels < 64 and s.dtype != "float32"
            word = "grey level" if len(view.levels) == 1 else "level"
            text += f" · {plural(levels, word)}" + (" per channel" if len(view.levels) > 1 else "") + \
                (" ⚠ too few: widen the bounds" if few else "")
        channels = self.preview.plan.info.channels
        if s.norm != "none" and channels > 1:
            joint = joint_stretch(s, self.preview.plan.info)
            text += (" · colours stretched jointly (one low/high: stain colours keep their balance)" if joint
                     else " · each channel stretched on its own")
        if view.approximate:
            text += " · approximate (reduced view)"
        return text

    def _show_grid(self, keep_tile: bool) -> None:
        preview = self.preview
        grid = preview.plan.grid
        n = len(grid)
        current = min(self.tiles.current_tile(), n - 1) if keep_tile else 0
        text = f"{plural(n, 'tile')} ({grid.n_rows} × {grid.n_cols})"
        keep = preview.keep if preview.keep is not None and len(preview.keep) == n else None
        if keep is not None:
            kept = int(keep.sum())
            text += f", {kept} kept, {n - kept} dropped"
        else:
            text += " in this image"
        pad_y, pad_x = grid.padding
        if pad_y or pad_x:
            text += f", padded by {pad_y} × {pad_x} px"
        self.viewer.set_grid(grid, current, keep, preview.foreground if keep is not None else None)
        self.tiles.set_tiles(n, text, current, annotated=preview.annotated)
        self._request_detail()

    @from_current_job
    def _on_failed(self, exc: BaseException) -> None:
        request, self._request = self._request, None
        message = dialogs.error_text(exc, getattr(self.sender(), "name", "") or "preparing the view")
        self.window.clear_busy()
        if request is not None and (isinstance(exc, CalibrationMissing) or getattr(exc, "setting", None) in CHOOSE):
            # Not a dialog: the chosen image needs a setting first; say where to give it.
            name = request[2]
            self._waiting = request  # previewed again when the settings change
            self.preview = self.output = None
            self.viewer.clear()
            self.tiles.set_tiles(None)
            if isinstance(exc, CalibrationMissing):
                why = f" ({html.escape(exc.hint)})" if exc.hint else ""
                head, todo = f"<b>{html.escape(name)}</b> carries no pixel size{why}.", f"To see its tiles, {GIVE_PIXEL_SIZE}."
            else:
                head, todo = html.escape(message), CHOOSE[exc.setting]
            self.viewer.show_placeholder(f"<p>{head}</p><p style='font-size:11pt'>{todo}</p>")
            self.status(f"{name}: {todo}" if isinstance(exc, CalibrationMissing) else f"{message} {todo}", 15)
            return
        if request is not None and not request[1]:
            self.status(f"Preview not updated: {message}", 10)  # a refresh after an edit: no dialog
            return
        if not self.viewer.has_image:
            self.viewer.show_placeholder(f"<p>Nothing to show.</p><p style='font-size:11pt'>{message}</p>")
        dialogs.inform(self.window, "Preview tiles" if request else "Show sample", message, kind="warning")

    # --- settings changed ---------------------------------------------------------------------
    def settings_changed(self, old, new) -> None:
        """Redraw the grid for new tile settings; compute again what the settings change."""
        preview = self.preview
        if preview is None:
            if self._waiting is not None:
                self._refresh_timer.start()
            return
        if any(getattr(old, f) != getattr(new, f) for f in SOURCE_FIELDS):
            self._refresh_timer.start()  # another image of the file, other channels or another stretch
            return
        filter_on = old.min_foreground > 0 or new.min_foreground > 0
        if filter_on and any(getattr(old, f) != getattr(new, f) for f in FILTER_FIELDS):
            self._refresh_timer.start()  # the kept tiles are the engine's to recompute
            return
        try:
            plan = plan_image(preview.plan.info, preview_settings(new), preview.plan.name or None)
        except ImageError:
            self._refresh_timer.start()  # the refresh will say what is wrong
            return
        if (plan.scaled_shape != preview.plan.scaled_shape or plan.output_pixel_size_um != preview.plan.output_pixel_size_um
                or (preview.keep is not None and plan.grid != preview.plan.grid)):
            self._refresh_timer.start()
            return
        self.preview = dataclasses.replace(preview, plan=plan)
        self._show_grid(keep_tile=True)
        if self.tiles.outputValuesCheck.isChecked() and any(getattr(old, f) != getattr(new, f) for f in OUTPUT_FIELDS):
            self._start_output()
        elif self.split_changed(old, new):
            self.viewer.set_title(self.title(self.preview, self.output))

    @staticmethod
    def split_changed(old, new) -> bool:
        return (old.val_fraction, old.seed) != (new.val_fraction, new.seed)

    # --- output values ------------------------------------------------------------------------
    def _show_values(self, output_values: bool) -> None:
        if self.preview is None:
            return
        if output_values:
            self._start_output()
        else:
            self.output = None
            self._show_source()

    def _start_output(self) -> None:
        preview, settings = self.preview, self.window.editor.settings
        if self.window.editor.error_in(self.window.normalization):
            self.viewer.set_title(self.title(preview) + "<br>Output values: fix the setting marked in red first.")
            return
        job = Job(one_step(make_output, preview, settings), name="computing the output values")
        job.signals.finished.connect(self._on_output)
        job.signals.errored.connect(self._on_failed)
        self.jobs.start("output", job)

    @from_current_job
    def _on_output(self, output: Output) -> None:
        if self.preview is None or not self.tiles.outputValuesCheck.isChecked():
            return
        self.output = output
        self.viewer.show_image(output.display, title=self.title(self.preview, output), values=output.values,
                               pixel_size_um=self.viewer.pixel_size_um, keep_view=True)
        self._request_detail()
        self.outputShown.emit(output)

    # --- the current tile of a big image --------------------------------------------------------
    def _request_detail(self, *args) -> None:
        if self.preview is not None and self.preview.reduced and self.output is None:
            self._detail_timer.start()

    def _read_detail(self) -> None:
        preview = self.preview
        if preview is None or not preview.reduced or self.window.closing:
            return
        index = self.tiles.current_tile()
        if not 0 <= index < len(preview.plan.grid):
            return
        tile = preview.plan.grid.tile(index)
        if self.viewer.detail_box == (tile.y0, tile.y1, tile.x0, tile.x1):
            return  # already on screen (same tile of a redrawn grid)
        job = Job(one_step(make_tile_detail, preview, index), name=f"reading tile {index + 1} of {preview.name}")
        job.signals.finished.connect(self._on_detail)
        job.signals.errored.connect(self._on_detail_failed)
        self.jobs.start("tile", job)

    @from_current_job
    def _on_detail(self, detail: TileDetail) -> None:
        preview = self.preview
        if preview is None or detail.name != preview.name or detail.scaled_shape != tuple(preview.plan.scaled_shape):
            return  # read for an image no longer on screen
        self.viewer.set_detail(detail.display, detail.box, detail.values)
        self.tileDetailShown.emit(detail)

    @from_current_job
    def _on_detail_failed(self, exc: BaseException) -> None:
        self.status(f"Tile not shown at full resolution: {dialogs.error_text(exc, 'reading the tile')}", 10)

    def step_tile(self, step: int) -> None:
        slider = self.tiles.tileSlider
        if slider.isEnabled():
            slider.setValue(max(0, min(slider.maximum(), slider.value() + step)))

    def stop(self) -> None:
        self._refresh_timer.stop()
        self._detail_timer.stop()
