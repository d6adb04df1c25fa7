"""What the image view shows: the sample mosaic, an image under its tile grid (its source values
or the values its tiles will hold), and the current tile of a big image at full resolution."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QTimer, Signal

from tilesapp.core.calibration import format_pixel_size
from tilesapp.core.errors import ImageError
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
from tilesapp.gui.viewer import DisplayImage
from tilesapp.gui.wording import GIVE_PIXEL_SIZE, plural
from tilesapp.gui.workers import Controller, Job, from_current_job, one_step

SAMPLE_IMAGES, SAMPLE_CELL = 25, 512
#: Settings that decide which tiles the empty-tile filter keeps.
FILTER_FIELDS = ("min_foreground", "keep_empty", "seed")
#: Settings that decide the output values.
OUTPUT_FIELDS = ("norm", "percentiles", "bounds", "dtype")


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
        self._request: tuple[Path, bool] | None = None  # (path, asked by the user)
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
        self.preview = self.output = self._request = None
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
        self.preview = self.output = None
        self.viewer.set_grid(None)
        self.viewer.set_annotations(None, None)
        self.tiles.set_tiles(None)
        unreadable = f", {len(counts.unreadable)} unreadable not shown" if counts.unreadable else ""
        self.viewer.show_image(
            DisplayImage(sample.image, (0.0, 255.0)),
            title=f"<b>Sample</b> · {sample.shown} of {plural(readable, 'readable image')}{unreadable}, "
                  f"each scaled to fit {SAMPLE_CELL} px",
        )
        self.viewer.set_labels(sample.labels)
        self.status("Sample ready: click an image in the sources table to see its tiles.")
        self.sampleShown.emit()

    # --- preview ----------------------------------------------------------------------------
    def preview_chosen(self) -> None:
        """Preview the image chosen in the sources table (the first ready one when none is)."""
        table = self.window.loader.table
        ready = [r.path for r in self.window.loader.assessment.ready]
        path = table.chosen() or (self.preview.path if self.preview else None) or (ready or table.paths() or [None])[0]
        if path is None:
            dialogs.inform(self.window, "Preview tiles", "Load a folder of images first.")
            return
        self.preview_image(path)

    def next_image(self) -> None:
        """Preview the next image of the sources table (after the one on screen)."""
        paths = self.window.loader.table.paths()
        if not paths:
            return
        current = self.preview.path if self.preview else self.window.loader.table.chosen()
        self.preview_image(paths[(paths.index(current) + 1) % len(paths)] if current in paths else paths[0])

    def preview_image(self, path: str | Path) -> None:
        """Preview the tiles of one image of the sources (its row becomes the chosen one)."""
        self.window.loader.table.select(Path(path), quiet=True)
        self._start(Path(path), interactive=True)

    def _start(self, path: Path, interactive: bool) -> None:
        w = self.window
        settings, masks, labels = w.editor.settings, w.exporter.masks, w.exporter.labels
        name = w.loader.sources.names().get(path) if w.loader.sources else None
        job = Job(one_step(make_preview, path, settings, masks, labels, name), name=f"previewing {path.name}")
        job.signals.finished.connect(self._on_preview)
        job.signals.errored.connect(self._on_failed)
        self._request = (path, interactive)
        w.show_busy(f"Preparing the preview of {path.name}…")
        self.jobs.start("view", job)

    def _refresh(self) -> None:
        if self.preview is not None and not self.window.closing:
            self._start(self.preview.path, interactive=False)

    def refresh(self, interactive: bool = False) -> None:
        """Compute the preview on screen again (annotation folders changed)."""
        if self.preview is not None:
            self._start(self.preview.path, interactive)

    @from_current_job
    def _on_preview(self, preview: Preview) -> None:
        old = self.preview
        same = old is not None and old.path == preview.path
        self.preview, self.output = preview, None
        self._show_source(keep_view=same)
        self.viewer.set_annotations(preview.overlay, preview.boxes, preview.mask)
        self._show_grid(keep_tile=same)
        message = f"{preview.path.name}: {plural(len(preview.plan.grid), 'tile')}"
        if preview.boxes is not None:
            message += f", {len(preview.boxes)} box{'' if len(preview.boxes) == 1 else 'es'}"
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
        text = f"<b>{preview.path.name}</b> · {r0} × {c0} px, {size_in}"
        if plan.rescaled:
            text += f" → {r1} × {c1} px, {format_pixel_size(plan.output_pixel_size_um)}"
        if preview.display.note:
            text += f" · {preview.display.note}"
        side = self.window.loader.split.get(preview.path)
        if side:
            text += f" · goes to <i>{side}/</i>"
        if output is not None:
            text += "<br>" + self._output_text(output)
        return text

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
            text += f" · {plural(levels, 'grey level')}" + (" ⚠ too few: widen the bounds" if few else "")
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
        if request is not None and isinstance(exc, CalibrationMissing):
            # Not a dialog: the user chose an image that needs a pixel size; say how to give one.
            self.preview = self.output = None
            self.viewer.clear()
            self.tiles.set_tiles(None)
            self.viewer.show_placeholder(f"<p><b>{request[0].name}</b> carries no pixel size.</p>"
                                         f"<p style='font-size:11pt'>To see its tiles, {GIVE_PIXEL_SIZE}.</p>")
            self.status(f"{request[0].name} needs a pixel size: {GIVE_PIXEL_SIZE}.", 15)
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
        job = Job(one_step(make_tile_detail, preview, index), name=f"reading tile {index + 1} of {preview.path.name}")
        job.signals.finished.connect(self._on_detail)
        job.signals.errored.connect(self._on_detail_failed)
        self.jobs.start("tile", job)

    @from_current_job
    def _on_detail(self, detail: TileDetail) -> None:
        preview = self.preview
        if preview is None or detail.path != preview.path or detail.scaled_shape != tuple(preview.plan.scaled_shape):
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
