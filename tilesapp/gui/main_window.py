"""The main window: panels on the left, the image view in the centre, jobs in the background.

The window wires panels, view and workers together; every decision about images, tiles and
files is the engine's (``tilesapp.core``). Settings flow one way: panels hand their raw values
to :meth:`MainWindow._on_edited`, which builds a :class:`Settings` and sends any
``SettingsError`` back to the panel owning the field.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import random
import shutil
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from tilesapp import APP_NAME, __version__
from tilesapp.core.calibration import format_pixel_size, scale_factors
from tilesapp.core.errors import ImageError, OutputError, SettingsError, TilesError
from tilesapp.core.export import run_export
from tilesapp.core.folders import check_output_place, folder_conflict
from tilesapp.core.mosaic import make_mosaic
from tilesapp.core.plan import plan_image
from tilesapp.core.progress import Progress
from tilesapp.core.selection import split_sources
from tilesapp.core.settings import Settings, load_settings, save_settings
from tilesapp.gui import dialogs
from tilesapp.gui.icon import app_icon
from tilesapp.gui.panels import (
    CalibrationPanel,
    ExportPanel,
    MediaPanel,
    NormalizationPanel,
    TilesPanel,
    TrainingPanel,
)
from tilesapp.gui.panels.normalization import PRESET_LABELS
from tilesapp.gui.settings_store import SettingsStore
from tilesapp.gui.tasks import (
    Preview,
    Sources,
    TileDetail,
    inspect_sources,
    make_preview,
    make_tile_detail,
    preview_settings,
)
from tilesapp.gui.viewer import DisplayImage, ImageViewer
from tilesapp.gui.workers import Job, JobRunner, JobSignals, one_step

log = logging.getLogger(__name__)

MOSAIC_IMAGES, MOSAIC_CELL = 25, 512
#: Settings that decide which tiles the empty-tile filter keeps.
FILTER_FIELDS = ("min_foreground", "keep_empty", "seed")
SETTINGS_FILTER = "Settings (*.json);;All files (*)"


def error_text(exc: BaseException, doing: str) -> str:
    """One readable sentence for ``exc``; the traceback is in the log, never in a dialog."""
    if isinstance(exc, TilesError):
        return str(exc)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"Error while {doing}: {exc.strerror or exc}{where}."
    if isinstance(exc, MemoryError):
        return f"Not enough memory while {doing}; close other programs or use smaller images."
    return f"Unexpected error while {doing} ({type(exc).__name__}: {exc}). The log file has the details."


def _from_current_job(method):
    """Ignore a job's signal that arrives after the job was superseded, or while closing."""

    @functools.wraps(method)
    def slot(self, *args, **kwargs):
        sender = self.sender()
        if self._closing or (isinstance(sender, JobSignals) and not self.jobs.is_current(sender)):
            return None
        return method(self, *args, **kwargs)

    return slot


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _percent(share: float) -> str:
    """``0.05`` → ``5 %``, ``0.125`` → ``12.5 %``."""
    return f"{100 * share:.4g} %"


def count_files(folder: Path) -> int:
    """Number of files directly in ``folder`` (0 when it does not exist)."""
    folder = Path(folder)
    return sum(1 for p in folder.iterdir() if p.is_file() or p.is_symlink()) if folder.is_dir() else 0


def empty_folder(folder: Path) -> int:
    """Delete the files directly in ``folder`` (never sub-folders); return how many."""
    removed = 0
    for path in Path(folder).iterdir():
        if path.is_file() or path.is_symlink():
            path.unlink()
            removed += 1
    return removed


class MainWindow(QMainWindow):
    """Tiles Creator's window.

    Signals (for scripts and tests)
    -------------------------------
    sourcesLoaded(Sources)
        A folder (or dropped files) was read.
    previewShown(Preview)
        A tile preview is on screen.
    tileDetailShown(TileDetail)
        The current tile of a big image's reduced preview is on screen at full resolution.
    sampleShown()
        The sample mosaic is on screen.
    exportEnded(object)
        An export finished or was cancelled (its ``ExportSummary``), or failed (None).
    """

    sourcesLoaded = Signal(object)
    previewShown = Signal(object)
    tileDetailShown = Signal(object)
    sampleShown = Signal()
    exportEnded = Signal(object)

    def __init__(self, store: SettingsStore | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.store = store or SettingsStore()
        self.jobs = JobRunner(self)
        self._settings: Settings = self.store.load_settings()
        self._errors: list[SettingsError] = []
        self._sources: Sources | None = None
        self._preview: Preview | None = None
        self._preview_request: tuple[Path, bool] | None = None  # (path, asked by the user)
        self._export_folder: Path | None = None
        self._masks: Path | None = None  # folders of annotations named like the images
        self._labels: Path | None = None
        self._split: dict[Path, str] = {}  # image → "train" / "val" (empty: no split)
        self._export_started = 0.0
        self._export_settings: Settings | None = None  # those of the last export, for its summary
        self._demo_dir: Path | None = None
        self._rng = random.Random()
        self._closing = False
        self._export_plan_text = ""
        self._merge_dialog = None

        self._build_ui()
        self._build_menus()
        for panel in self.panels:
            panel.set_settings(self._settings)
            panel.edited.connect(self._on_edited)
        self._connect()
        self._restore_layout()
        self._update_derived()
        self._update_actions()

    # --- construction -----------------------------------------------------------------------------
    def _build_ui(self) -> None:
        self.media = MediaPanel()
        self.calibration = CalibrationPanel()
        self.normalization = NormalizationPanel()
        self.tiles = TilesPanel()
        self.training = TrainingPanel()
        self.export_panel = ExportPanel()
        self.panels = (self.media, self.calibration, self.normalization, self.tiles, self.training, self.export_panel)

        column = QWidget()
        column.setObjectName("controlColumn")
        layout = QVBoxLayout(column)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(5)
        for panel in self.panels:
            panel.compact()
            layout.addWidget(panel)
        layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setObjectName("controlScroll")
        self.scroll.setWidget(column)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setMinimumWidth(column.sizeHint().width() + 24)

        self.viewer = ImageViewer()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.scroll)
        self.splitter.addWidget(self.viewer)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.setCentralWidget(self.splitter)

        self.hoverLabel = QLabel()
        self.hoverLabel.setObjectName("hoverLabel")
        self.hoverLabel.setMinimumWidth(280)  # no jumping status bar while the mouse moves
        self.statusProgress = QProgressBar()
        self.statusProgress.setObjectName("statusProgressBar")
        self.statusProgress.setRange(0, 1000)
        self.statusProgress.setMaximumWidth(220)
        self.statusProgress.setTextVisible(False)
        self.statusProgress.setVisible(False)
        self.statusBar().addPermanentWidget(self.hoverLabel)
        self.statusBar().addPermanentWidget(self.statusProgress)
        self.statusBar().showMessage("Drop a folder of images on the window, or File ▸ Open folder.")
        # Typed-in text fields must not swallow a dropped folder: drops belong to the window.
        for edit in self.findChildren(QLineEdit):
            edit.setAcceptDrops(False)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.openAction = self._action("&Open folder…", self.choose_folder, QKeySequence.StandardKey.Open)
        file_menu.addAction(self.openAction)
        self.recentMenu = file_menu.addMenu("Open &recent")
        self.recentMenu.setObjectName("recentMenu")
        self.recentMenu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addAction(self._action("Open &demo images", self.open_demo))
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Merge tiles…", self.show_merge_dialog, "Ctrl+M"))
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Load settings…", self.load_settings_file, "Ctrl+L"))
        file_menu.addAction(self._action("&Save settings…", self.save_settings_file, QKeySequence.StandardKey.Save))
        file_menu.addSeparator()
        file_menu.addAction(self._action("&Quit", self.close, QKeySequence.StandardKey.Quit))
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self._action("&Fit image", self.viewer.reset_view, "Ctrl+0"))
        view_menu.addAction(self._action("&Next tile", lambda: self._step_tile(1), "Ctrl+Right"))
        view_menu.addAction(self._action("&Previous tile", lambda: self._step_tile(-1), "Ctrl+Left"))
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("Open &log folder", self._open_log_folder))
        help_menu.addAction(self._action(f"&About {APP_NAME}", self._about))

    def _action(self, text: str, slot, shortcut=None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        return action

    def _connect(self) -> None:
        self.media.loadRequested.connect(self.choose_folder)
        self.media.sampleRequested.connect(self.show_sample)
        self.normalization.presetChosen.connect(self.apply_preset)
        self.tiles.previewRequested.connect(self.preview_tiles)
        self.tiles.anotherRequested.connect(lambda: self.preview_tiles(another=True))
        self.tiles.currentTileChanged.connect(self.viewer.set_current_tile)
        self.tiles.currentTileChanged.connect(self._request_tile_detail)
        self.tiles.showAllToggled.connect(self.viewer.set_show_all)
        self.tiles.showAnnotationsToggled.connect(self.viewer.set_show_annotations)
        self.training.masksFolderRequested.connect(self.select_masks_folder)
        self.training.labelsFolderRequested.connect(self.select_labels_folder)
        self.training.clearMasksRequested.connect(lambda: self.set_annotation_folder("masks", None))
        self.training.clearLabelsRequested.connect(lambda: self.set_annotation_folder("labels", None))
        self.export_panel.selectFolderRequested.connect(self.select_export_folder)
        self.export_panel.emptyFolderRequested.connect(self.empty_export_folder)
        self.export_panel.exportRequested.connect(self.export)
        self.export_panel.cancelRequested.connect(self.cancel_export)
        self.export_panel.openFolderRequested.connect(self.open_export_folder)
        self.viewer.hovered.connect(self.hoverLabel.setText)
        self.jobs.ended.connect(self._on_job_ended)
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(350)  # wait for the user to stop typing
        self._preview_timer.timeout.connect(self._refresh_preview)
        self._detail_timer = QTimer(self)
        self._detail_timer.setSingleShot(True)
        self._detail_timer.setInterval(150)  # read one tile when the slider rests, not each one it passes
        self._detail_timer.timeout.connect(self._read_tile_detail)

    def _restore_layout(self) -> None:
        # As large as the panel column needs (no scrolling) where the screen allows it.
        width, height = 1440, 960
        screen = self.screen() or QApplication.primaryScreen()
        if screen is not None:
            available = screen.availableGeometry()
            width, height = min(width, available.width() - 40), min(height, available.height() - 40)
        self.resize(max(width, 900), max(height, 600))
        self.splitter.setSizes([400, max(500, width - 400)])
        geometry, state = self.store.window_state()
        try:
            if geometry is not None:
                self.restoreGeometry(geometry)
            if state is not None:
                self.splitter.restoreState(state)
        except Exception:  # a layout from another version must not stop the window
            log.warning("Ignoring the stored window layout", exc_info=True)

    def sizeHint(self) -> QSize:
        return QSize(1440, 960)

    # --- public state ------------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The current valid settings (what an export would use)."""
        return self._settings

    @property
    def settings_errors(self) -> list[SettingsError]:
        """The settings errors shown next to the fields (empty when all is valid)."""
        return list(self._errors)

    @property
    def sources(self) -> Sources | None:
        return self._sources

    @property
    def preview(self) -> Preview | None:
        """The image shown with its tiles, or None (nothing, or the sample)."""
        return self._preview

    @property
    def export_folder(self) -> Path | None:
        return self._export_folder

    @property
    def masks_folder(self) -> Path | None:
        """Folder of label masks named like the images (None: no masks)."""
        return self._masks

    @property
    def labels_folder(self) -> Path | None:
        """Folder of YOLO label files named like the images (None: no labels)."""
        return self._labels

    def set_settings(self, settings: Settings) -> None:
        """Show ``settings`` in every panel and use them."""
        old = self._settings
        self._settings = settings
        self._errors = []
        for panel in self.panels:
            panel.set_settings(settings)
            panel.clear_errors()
        self._on_settings_changed(old, settings)
        self._update_actions()

    # --- loading ------------------------------------------------------------------------------------
    def choose_folder(self) -> None:
        """Ask for a folder of images and load it."""
        start = self._sources.folders[0] if self._sources else self.store.path("input")
        folder = dialogs.choose_folder(self, "Open a folder of images", start)
        if folder is not None:
            self.open_folder(folder)

    def open_folder(self, path: str | Path) -> None:
        """Load a folder of images (as the Load button or a drop does); a file loads alone."""
        path = Path(path).expanduser()
        if self.jobs.busy("export"):
            dialogs.inform(self, "Open folder", "An export is running; wait for it to end or cancel it first.")
            return
        if not path.exists():
            dialogs.inform(self, "Open folder", f"{path} does not exist; check the path.", kind="warning")
            return
        if path.is_file():
            self.open_files([path])
            return
        self._load(path.absolute())

    def open_files(self, paths: list[str | Path]) -> None:
        """Load image files (dropped on the window) as the sources."""
        if self.jobs.busy("export"):
            dialogs.inform(self, "Open files", "An export is running; wait for it to end or cancel it first.")
            return
        self._load([Path(p).expanduser().absolute() for p in paths])

    def open_demo(self) -> None:
        """Write the synthetic demo images to a temporary folder (in the background) and load it."""
        from tilesapp.core.demo import make_demo_folder

        if self._demo_dir is None:
            self._demo_dir = Path(tempfile.mkdtemp(prefix="tilesapp-demo-"))
        folder = self._demo_dir / "demo images"
        job = Job(one_step(make_demo_folder, folder), name="making the demo images")
        job.signals.finished.connect(self._on_demo_ready)
        job.signals.errored.connect(self._on_demo_failed)
        self._busy_message("Making the demo images…")
        self.jobs.start("scan", job)

    @_from_current_job
    def _on_demo_ready(self, folder: Path) -> None:
        self.open_folder(folder)

    @_from_current_job
    def _on_demo_failed(self, exc: BaseException) -> None:
        dialogs.inform(self, "Demo images", error_text(exc, "making the demo images"), kind="error")

    def _load(self, sources: Path | list[Path]) -> None:
        self.jobs.cancel("view")
        self._sources = None
        self._preview = None
        self._preview_request = None
        self.viewer.clear()
        self.viewer.show_placeholder("<p>Reading the folder…</p>")
        self.tiles.set_tiles(None)
        label = str(sources) if isinstance(sources, Path) else f"{_plural(len(sources), 'file')} dropped"
        self.media.set_folder(label)
        self.media.set_sources("reading…")
        self.media.set_shape("–")
        recursive = self._settings.recursive
        job = Job(lambda cancel: inspect_sources(sources, recursive, cancel), name="reading the folder")
        job.signals.progressed.connect(self._on_progress)
        job.signals.finished.connect(self._on_sources_loaded)
        job.signals.errored.connect(self._on_load_failed)
        self.jobs.start("scan", job)
        self._update_actions()

    @_from_current_job
    def _on_sources_loaded(self, sources: Sources) -> None:
        self._sources = sources
        if isinstance(sources.sources, Path):
            self.store.add_recent_folder(sources.sources)
            self.store.set_path("input", sources.sources)
            self.setWindowTitle(f"{sources.sources.name} — {APP_NAME}")
        self.media.set_folder(sources.label)
        self._show_sources(sources)
        self._prefill_pixel_size(sources)
        if self._export_folder is not None and not self._export_folder_safe(self._export_folder, quiet=True):
            self._set_export_folder(None)
            self.statusBar().showMessage("The export folder was cleared: it lies inside the new input folder.", 8000)
        if self._masks is not None and self._is_input_folder(self._masks):
            self.set_annotation_folder("masks", None)
            self.statusBar().showMessage("The masks folder was cleared: it is the new input folder.", 8000)
        self._update_derived()
        self._update_actions()
        n = len(sources.infos)
        self.statusBar().showMessage(f"Loaded {_plural(n, 'image')} from {sources.label}.", 6000)
        self.sourcesLoaded.emit(sources)
        if n:
            self.show_sample()
        else:
            self.viewer.show_placeholder("<p>No readable image in this folder.</p>")

    @_from_current_job
    def _on_load_failed(self, exc: BaseException) -> None:
        self.media.set_sources("no images")
        self.viewer.show_placeholder("<p>Nothing loaded.</p><p>Drop a folder of images here.</p>")
        self._update_actions()
        dialogs.inform(self, "Load", error_text(exc, "reading the folder"), kind="warning")

    def _show_sources(self, sources: Sources) -> None:
        infos = sources.infos
        # Unreadable images are images of the folder too: the count matches the export's.
        text = _plural(len(infos) + len(sources.unreadable), "image")
        notes = []
        if sources.unreadable:
            notes.append(f"{len(sources.unreadable)} unreadable")
        if sources.skipped:
            notes.append(f"{_plural(len(sources.skipped), 'other file')} skipped")
        if notes:
            text += f" ({', '.join(notes)})"
        lines = [f"{name}: {reason}" for name, reason in sources.unreadable]
        lines += [f"skipped: {p.name}" for p in sources.skipped[:20]]
        tooltip = "\n".join(lines)
        self.media.set_sources(text, tooltip)
        shapes = {info.shape_yx for info in infos}
        channels = {info.channels for info in infos}
        dtypes = {info.dtype for info in infos}
        if not infos:
            self.media.set_shape("–")
        elif len(shapes) == 1:
            rows, cols = next(iter(shapes))
            extra = f", {_plural(next(iter(channels)), 'channel')}" if channels != {1} and len(channels) == 1 else ""
            self.media.set_shape(f"{rows} × {cols} px{extra} ({'/'.join(sorted(dtypes))})", "rows × columns")
        else:
            rows = sorted(s[0] for s in shapes)
            cols = sorted(s[1] for s in shapes)
            self.media.set_shape(
                "different shapes",
                f"{len(shapes)} shapes, rows {rows[0]}–{rows[-1]}, columns {cols[0]}–{cols[-1]}",
            )

    def _prefill_pixel_size(self, sources: Sources) -> None:
        """Fill the pixel size from the metadata when the images agree; auto otherwise."""
        sizes = [info.pixel_size_um for info in sources.infos]
        known = [s for s in sizes if s is not None]
        if not sizes:
            return
        distinct: list[tuple[float, float]] = []
        for size in known:
            if not any(all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(size, d)) for d in distinct):
                distinct.append(size)
        origins = sorted({info.calibration for info in sources.infos if info.calibration})
        origin = f" ({', '.join(origins)})" if origins else ""
        if len(known) == len(sizes) and len(distinct) == 1:
            self.calibration.set_pixel_size(distinct[0], "um")
            every = "the image" if len(sizes) == 1 else f"all {len(sizes)} images"
            self.calibration.set_metadata(f"From the metadata of {every}{origin}.")
        elif known:
            self.calibration.set_pixel_size(None)
            missing = len(sizes) - len(known)
            if missing:
                text = (
                    f"{missing} of {len(sizes)} images have no pixel size in their metadata; "
                    "they fail unless you enter one (or untick calibration)."
                )
            else:
                xs = sorted(s[1] for s in distinct)
                text = f"Pixel sizes differ ({xs[0]:.4g}–{xs[-1]:.4g} µm): each file's own metadata is used."
            tooltip = "\n".join(f"{i.name}: {format_pixel_size(i.pixel_size_um)}" for i in sources.infos[:40])
            self.calibration.set_metadata(text, tooltip)
        elif self.calibration.prefilled or self._settings.pixel_size is None:
            # Never carry a previous folder's metadata over to images without any.
            self.calibration.set_pixel_size(None)
            self.calibration.set_metadata("No pixel size in the metadata: enter one, or untick calibration.")
        else:
            self.calibration.set_metadata("No pixel size in the metadata: the value entered above is used.")

    # --- settings ------------------------------------------------------------------------------------
    def _panel_of(self, field: str):
        return next((p for p in self.panels if p.owns(field)), None)

    def _on_edited(self) -> None:
        """A panel changed: build the settings; errors go back next to their field."""
        values: dict = {}
        for panel in self.panels:
            values.update(panel.values())
        errors: list[SettingsError] = []
        new = self._settings
        # A broken field keeps its last valid value, so that the other edits still apply and
        # every broken field gets its message (the settings report one error at a time).
        for _ in range(len(values) + 1):
            try:
                new = dataclasses.replace(self._settings, **values)
                break
            except SettingsError as exc:
                errors.append(exc)
                if exc.field not in values:
                    new = self._settings
                    break
                del values[exc.field]
        self._errors = errors
        for panel in self.panels:
            panel.clear_errors()
        for exc in errors:
            panel = self._panel_of(exc.field)
            if panel is None or not panel.show_error(exc.field, str(exc)):
                self.statusBar().showMessage(str(exc), 8000)
        old, self._settings = self._settings, new
        if new != old:
            self._on_settings_changed(old, new)
        else:
            self._update_derived()
        self._update_actions()

    def apply_preset(self, name: str) -> None:
        """Set the four normalization/output fields of preset ``name`` ("unet" or "yolo")."""
        self.normalization.set_settings(self._settings.with_preset(name))
        self._on_edited()
        label = PRESET_LABELS.get(name, name)
        self.statusBar().showMessage(f"Preset {label}: " + self._output_summary(), 5000)

    def _output_summary(self) -> str:
        s = self._settings
        bounds = f"{s.output_bounds[0]:g}–{s.output_bounds[1]:g}, " if s.norm != "none" else ""
        return f"{s.norm} normalization, {bounds}{s.dtype}, .{s.format}"

    def _remembered(self) -> Settings:
        """The settings to remember: a pixel size read from a folder's metadata is not the user's."""
        if self.calibration.prefilled:
            return dataclasses.replace(self._settings, pixel_size=None)
        return self._settings

    def _on_settings_changed(self, old: Settings, new: Settings) -> None:
        self.store.save_settings(self._remembered())
        if new.recursive != old.recursive and self._sources is not None and isinstance(self._sources.sources, Path):
            self._load(self._sources.sources)
            return
        self._update_derived()
        if self._preview is None:
            return
        filter_on = old.min_foreground > 0 or new.min_foreground > 0
        if filter_on and any(getattr(old, f) != getattr(new, f) for f in FILTER_FIELDS):
            self._preview_timer.start()  # the kept tiles are the engine's to recompute
        else:
            self._update_preview_geometry(new)

    def _update_preview_geometry(self, new: Settings) -> None:
        """Redraw the grid for new tile settings; recompute the image when calibration changed
        (or when the empty-tile filter must judge the new tiles)."""
        preview = self._preview
        try:
            plan = plan_image(preview.plan.info, preview_settings(new))
        except ImageError:
            self._preview_timer.start()  # the refresh will say what is wrong
            return
        if plan.scaled_shape != preview.plan.scaled_shape or plan.output_pixel_size_um != preview.plan.output_pixel_size_um:
            self._preview_timer.start()
            return
        if preview.keep is not None and plan.grid != preview.plan.grid:
            self._preview_timer.start()
            return
        self._preview = dataclasses.replace(preview, plan=plan)
        self._show_grid(keep_tile=True)

    def _update_derived(self) -> None:
        """Everything computed from the settings and the sources: preset, scale, tile counts."""
        s = self._settings
        # The preset names what the fields show: none while one of them is broken.
        broken = any(self._panel_of(e.field) is self.normalization for e in self._errors)
        self.normalization.show_preset(None if broken else s.preset)
        plans, failures = [], []
        if self._sources is not None:
            for info in self._sources.infos:
                try:
                    plans.append(plan_image(info, s))
                except ImageError as exc:
                    failures.append(str(exc))
        self._show_calibration_result(plans)
        self._show_split()
        if self._sources is None:
            self._export_plan_text = ""
            self.export_panel.set_warning("")
            return
        total = sum(len(p.grid) for p in plans)
        n_ok = len(plans)
        up_to = "up to " if s.min_foreground > 0 else ""  # the filter drops some of them
        ready = f"Ready: {up_to}{_plural(total, 'tile')} from {_plural(n_ok, 'image')}."
        self._export_plan_text = ready if n_ok else "No image can be exported."
        failures += [reason for _, reason in self._sources.unreadable]
        n_images = len(self._sources.infos) + len(self._sources.unreadable)
        if failures:
            self.export_panel.set_warning(
                f"⚠ {len(failures)} of {n_images} images will fail: {failures[0]}",
                "\n".join(failures[:40]),
            )
        else:
            self.export_panel.set_warning("")

    def _show_split(self) -> None:
        """Which images go to val/ (the engine's split of the same names and seed)."""
        s = self._settings
        self._split = {}
        if s.val_fraction <= 0:
            self.training.set_split("")
        elif self._sources is None or not self._sources.images:
            self.training.set_split("")
        else:
            names = self._sources.names()
            sides = split_sources(list(names.values()), s.val_fraction, s.seed)
            self._split = {path: sides[name] for path, name in names.items()}
            val = sorted(name for name in names.values() if sides[name] == "val")
            n = len(names)
            tip = "Images in val/:\n" + "\n".join(val[:40]) + ("\n…" if len(val) > 40 else "")
            self.training.set_split(f"{len(val)} of {_plural(n, 'image')} to val/", tip)
        if self._preview is not None:
            self.viewer.set_title(self._preview_title(self._preview))

    def _show_calibration_result(self, plans: list) -> None:
        s = self._settings
        if not s.calibrate:
            self.calibration.set_result("Off: images keep their pixels (factor ×1).")
            return
        target = format_pixel_size((s.target_pixel_size_um, s.target_pixel_size_um))
        factors = sorted({(round(p.factors[0], 6), round(p.factors[1], 6)) for p in plans})
        if not factors and s.pixel_size_um is not None:
            factors = [scale_factors(s.pixel_size_um, s.target_pixel_size_um)]
        if not factors:
            self.calibration.set_result(f"→ {target} per pixel; factor from each file's metadata.")
            return

        def fmt(f: tuple[float, float]) -> str:
            return f"×{f[1]:.4g}" if math.isclose(f[0], f[1]) else f"×{f[0]:.4g} (y) ×{f[1]:.4g} (x)"

        if len(factors) == 1:
            text = f"{fmt(factors[0])} → {target} per pixel"
            shapes = {(p.info.shape_yx, p.scaled_shape) for p in plans}
            if len(shapes) == 1:
                (r0, c0), (r1, c1) = next(iter(shapes))
                text += f"<br>{r0} × {c0} → {r1} × {c1} px"
        else:
            xs = sorted(f[1] for f in factors)
            text = f"×{xs[0]:.4g} to ×{xs[-1]:.4g} (per image) → {target} per pixel"
        self.calibration.set_result(text)

    # --- view: sample and preview --------------------------------------------------------------------
    def show_sample(self) -> None:
        """Show a mosaic of up to 25 random images of the folder."""
        if not self._sources or not self._sources.infos:
            dialogs.inform(self, "Show sample", "Load a folder of images first.")
            return
        paths = self._sources.paths
        job = Job(lambda cancel: make_mosaic(paths, MOSAIC_IMAGES, MOSAIC_CELL, None, cancel), name="making the sample")
        job.signals.progressed.connect(self._on_progress)
        job.signals.finished.connect(self._on_sample_ready)
        job.signals.errored.connect(self._on_view_failed)
        self._preview_request = None
        self.jobs.start("view", job)
        self._update_actions()

    @_from_current_job
    def _on_sample_ready(self, mosaic) -> None:
        n_total = len(self._sources.infos) if self._sources else 0
        shown = min(MOSAIC_IMAGES, n_total)
        self._preview = None
        self.viewer.set_grid(None)
        self.viewer.set_annotations(None, None)
        self.tiles.set_tiles(None)
        self.viewer.show_image(
            DisplayImage(mosaic, (0.0, 255.0)),
            title=f"<b>Sample</b> · {shown} of {_plural(n_total, 'image')}, each scaled to fit {MOSAIC_CELL} px",
        )
        self.statusBar().showMessage("Sample ready: Preview tiles to see how an image is cut.", 5000)
        self._update_actions()
        self.sampleShown.emit()

    def preview_tiles(self, another: bool = False) -> None:
        """Recalibrate a random image of the folder and draw its tiles (``another``: a different one)."""
        if not self._sources or not self._sources.infos:
            dialogs.inform(self, "Preview tiles", "Load a folder of images first.")
            return
        paths = self._sources.paths
        current = self._preview.path if self._preview else None
        if another and len(paths) > 1 and current in paths:
            paths = [p for p in paths if p != current]
        self._start_preview(self._rng.choice(paths), interactive=True)

    def preview_image(self, path: str | Path) -> None:
        """Preview the tiles of one given image of the folder."""
        self._start_preview(Path(path), interactive=True)

    def _start_preview(self, path: Path, interactive: bool) -> None:
        settings, masks, labels = self._settings, self._masks, self._labels
        job = Job(one_step(make_preview, path, settings, masks, labels), name=f"previewing {path.name}")
        job.signals.finished.connect(self._on_preview_ready)
        job.signals.errored.connect(self._on_view_failed)
        self._preview_request = (path, interactive)
        self._busy_message(f"Preparing the preview of {path.name}…")
        self.jobs.start("view", job)
        self._update_actions()

    def _refresh_preview(self) -> None:
        if self._preview is not None and not self._closing:
            self._start_preview(self._preview.path, interactive=False)

    @_from_current_job
    def _on_preview_ready(self, preview: Preview) -> None:
        old = self._preview
        same = old is not None and old.path == preview.path
        self._preview = preview
        plan = preview.plan
        size_out = plan.output_pixel_size_um
        self.viewer.show_image(
            preview.display,
            title=self._preview_title(preview),
            values=preview.values,
            pixel_size_um=size_out[1] if size_out else None,
            keep_view=same,
        )
        self.viewer.set_annotations(preview.overlay, preview.boxes, preview.mask)
        self._show_grid(keep_tile=same)
        message = f"{preview.path.name}: {_plural(len(plan.grid), 'tile')}"
        if preview.boxes is not None:
            n_boxes = len(preview.boxes)
            message += f", {n_boxes} box{'' if n_boxes == 1 else 'es'}"
        self.statusBar().showMessage(f"{message}. Move the slider to step through them.", 6000)
        self._update_actions()
        self.previewShown.emit(preview)

    def _preview_title(self, preview: Preview) -> str:
        plan = preview.plan
        (r0, c0), (r1, c1) = plan.info.shape_yx, plan.scaled_shape
        size_in = format_pixel_size(plan.input_pixel_size_um) if plan.input_pixel_size_um else "no pixel size"
        text = f"<b>{preview.path.name}</b> · {r0} × {c0} px, {size_in}"
        if plan.rescaled:
            text += f" → {r1} × {c1} px, {format_pixel_size(plan.output_pixel_size_um)}"
        if preview.display.note:
            text += f" · {preview.display.note}"
        side = self._split.get(preview.path)
        if side:
            text += f" · goes to <i>{side}/</i>"
        return text

    def _show_grid(self, keep_tile: bool) -> None:
        preview = self._preview
        grid = preview.plan.grid
        n = len(grid)
        current = min(self.tiles.current_tile(), n - 1) if keep_tile else 0
        text = f"{_plural(n, 'tile')} ({grid.n_rows} × {grid.n_cols})"
        # The filter's verdict belongs to the grid it was computed on.
        keep = preview.keep if preview.keep is not None and len(preview.keep) == n else None
        if keep is not None:
            kept = int(keep.sum())
            text += f", {kept} kept, {n - kept} dropped"
        else:
            text += " in this image"
        pad_y, pad_x = grid.padding
        if pad_y or pad_x:
            text += f", padded by {pad_y} × {pad_x} px"
        foreground = preview.foreground if keep is not None else None
        self.viewer.set_grid(grid, current, keep, foreground)
        self.tiles.set_tiles(n, text, current, annotated=preview.annotated)
        self._request_tile_detail()

    def _request_tile_detail(self, *args) -> None:
        """A reduced preview shows its current tile at full resolution, read from the file."""
        if self._preview is not None and self._preview.reduced:
            self._detail_timer.start()

    def _read_tile_detail(self) -> None:
        preview = self._preview
        if preview is None or not preview.reduced or self._closing:
            return
        index = self.tiles.current_tile()
        if not 0 <= index < len(preview.plan.grid):
            return
        tile = preview.plan.grid.tile(index)
        if self.viewer.detail_box == (tile.y0, tile.y1, tile.x0, tile.x1):
            return  # already on screen (same tile of a redrawn grid)
        job = Job(one_step(make_tile_detail, preview, index), name=f"reading tile {index} of {preview.path.name}")
        job.signals.finished.connect(self._on_tile_detail_ready)
        job.signals.errored.connect(self._on_tile_detail_failed)
        self.jobs.start("tile", job)

    @_from_current_job
    def _on_tile_detail_ready(self, detail: TileDetail) -> None:
        preview = self._preview
        if preview is None or detail.path != preview.path or detail.scaled_shape != tuple(preview.plan.scaled_shape):
            return  # read for an image no longer on screen
        self.viewer.set_detail(detail.display, detail.box, detail.values)
        self.tileDetailShown.emit(detail)

    @_from_current_job
    def _on_tile_detail_failed(self, exc: BaseException) -> None:
        # The reduced view is still there: a note, not a dialog.
        self.statusBar().showMessage(f"Tile not shown at full resolution: {error_text(exc, 'reading the tile')}", 10000)

    @_from_current_job
    def _on_view_failed(self, exc: BaseException) -> None:
        request, self._preview_request = self._preview_request, None
        message = error_text(exc, getattr(self.sender(), "name", "") or "preparing the view")
        if request is not None and not request[1]:
            # A refresh after an edit: do not interrupt typing with a dialog.
            self.statusBar().showMessage(f"Preview not updated: {message}", 10000)
            return
        if not self.viewer.has_image:
            self.viewer.show_placeholder(f"<p>Nothing to show.</p><p style='font-size:11pt'>{message}</p>")
        dialogs.inform(self, "Preview tiles" if request else "Show sample", message, kind="warning")

    def _step_tile(self, step: int) -> None:
        slider = self.tiles.tileSlider
        if slider.isEnabled():
            slider.setValue(max(0, min(slider.maximum(), slider.value() + step)))

    # --- export ---------------------------------------------------------------------------------------
    def select_export_folder(self, path: str | Path | None = None) -> bool:
        """Choose the export folder (asks when ``path`` is None); refuses the input folder or inside it."""
        if path is None:
            start = self._export_folder or self.store.path("export")
            path = dialogs.choose_folder(self, "Select an empty export folder", start)
            if path is None:
                return False
        path = Path(path).expanduser().absolute()
        if not self._export_folder_safe(path):
            return False
        self._set_export_folder(path)
        n = count_files(path)
        if n:
            self.statusBar().showMessage(
                f"The export folder holds {_plural(n, 'file')}: Export will ask first; "
                "Empty export folder deletes them.",
                8000,
            )
        return True

    def _export_folder_safe(self, path: Path, quiet: bool = False, title: str = "Export folder") -> bool:
        """The engine's refusals: not an input, masks or labels folder, nor inside one, nor
        holding the masks or labels folder (said in a dialog unless ``quiet``)."""
        problem = ""
        for kind, folder in (("masks", self._masks), ("labels", self._labels)):
            if folder is not None and not problem:
                problem = folder_conflict(kind, folder, path)
        if not problem:
            folders = list(self._sources.folders) if self._sources else []
            try:
                check_output_place(path, folders + self._annotation_folders())
            except OutputError as exc:
                problem = str(exc)
        if problem and not quiet:
            dialogs.inform(self, title, problem, kind="warning")
        return not problem

    def _annotation_folders(self) -> list[Path]:
        return [f for f in (self._masks, self._labels) if f is not None]

    # --- masks and labels -------------------------------------------------------------------------
    def select_masks_folder(self, path: str | Path | None = None) -> bool:
        """Choose the folder of label masks (asks when ``path`` is None); False when refused."""
        return self._select_annotation_folder("masks", path)

    def select_labels_folder(self, path: str | Path | None = None) -> bool:
        """Choose the folder of YOLO label files (asks when ``path`` is None); False when refused."""
        return self._select_annotation_folder("labels", path)

    def _select_annotation_folder(self, kind: str, path: str | Path | None) -> bool:
        if path is None:
            current = self._masks if kind == "masks" else self._labels
            start = current or self.store.path(kind) or (self._sources.folders[0] if self._sources else None)
            what = "label masks" if kind == "masks" else "YOLO label files (.txt)"
            path = dialogs.choose_folder(self, f"Select the folder of {what}", start)
            if path is None:
                return False
        path = Path(path).expanduser().absolute()
        problem = self._annotation_folder_problem(kind, path)
        if problem:
            dialogs.inform(self, f"{kind.capitalize()} folder", problem, kind="warning")
            return False
        self.store.set_path(kind, path)
        self.set_annotation_folder(kind, path)
        return True

    def _annotation_folder_problem(self, kind: str, path: Path) -> str:
        """Why ``path`` cannot be the masks / labels folder ("" when it can)."""
        if not path.is_dir():
            return (
                f"The {kind} folder {path} does not exist or is not a folder; choose the folder that holds the {kind}."
            )
        if kind == "masks" and self._is_input_folder(path):
            return (
                f"The masks folder {path} is the input folder: every image would be taken as its own mask; "
                "choose the folder that holds the masks."
            )
        if self._export_folder is not None:
            return folder_conflict(kind, path, self._export_folder)
        return ""

    def _is_input_folder(self, path: Path) -> bool:
        folders = self._sources.folders if self._sources else []
        return any(Path(path).resolve() == Path(folder).resolve() for folder in folders)

    def set_annotation_folder(self, kind: str, path: Path | None) -> None:
        """Use ``path`` as the masks / labels folder (None: none); the preview follows."""
        if self.jobs.busy("export"):
            busy = "An export is running; wait for it to end or cancel it first."
            dialogs.inform(self, f"{kind.capitalize()} folder", busy)
            return
        if kind == "masks":
            self._masks = path
        else:
            self._labels = path
        self.training.set_folders(self._masks, self._labels)
        self._update_derived()
        self._update_actions()
        if self._preview is not None:
            # Asked by the user: a missing mask for this image deserves a message, not a status line.
            self._start_preview(self._preview.path, interactive=path is not None)

    def _set_export_folder(self, path: Path | None) -> None:
        self._export_folder = path
        if path is None:
            self.export_panel.set_folder("No export folder selected.")
        else:
            self.store.set_path("export", path)
            self.export_panel.set_folder(str(path))
        self._update_actions()

    def empty_export_folder(self) -> None:
        """Delete the files of the export folder (never sub-folders), after confirmation."""
        out = self._export_folder
        if out is None or self.jobs.busy("export"):
            return
        if not self._export_folder_safe(out):
            return
        n = count_files(out)
        if n == 0:
            dialogs.inform(self, "Empty export folder", f"The export folder {out} holds no files.")
            return
        if not dialogs.ask(
            self,
            "Empty export folder",
            f"Delete the {_plural(n, 'file')} in {out}?\n\nSub-folders and their contents are kept. "
            "Deleted files cannot be recovered.",
            confirm=f"Delete {_plural(n, 'file')}",
        ):
            return
        job = Job(one_step(empty_folder, out), name="emptying the export folder")
        job.signals.finished.connect(self._on_emptied)
        job.signals.errored.connect(self._on_empty_failed)
        self.jobs.start("empty", job)
        self._update_actions()

    @_from_current_job
    def _on_emptied(self, removed: int) -> None:
        self.statusBar().showMessage(f"Deleted {_plural(removed, 'file')} from the export folder.", 6000)
        self.export_panel.set_summary("")
        self._update_actions()

    @_from_current_job
    def _on_empty_failed(self, exc: BaseException) -> None:
        dialogs.inform(self, "Empty export folder", error_text(exc, "emptying the export folder"), kind="error")

    def export(self) -> None:
        """Export the tiles of every image in the background (asks first for a non-empty folder)."""
        reason = self._export_blocked()
        if reason:
            dialogs.inform(self, "Export tiles", reason, kind="warning")
            return
        sources, out, settings = self._sources, self._export_folder, self._settings
        masks, labels = self._masks, self._labels
        overwrite = False
        if not self._export_folder_safe(out, title="Export tiles"):
            return
        if out.is_dir() and any(out.iterdir()):
            n = count_files(out)
            what = _plural(n, "file") if n else "sub-folders"
            if not dialogs.ask(
                self,
                "Export folder not empty",
                f"The export folder {out} already holds {what}.\n\nTiles with the same names will be replaced; "
                "other files stay. Export anyway?",
                confirm="Export anyway",
            ):
                return
            overwrite = True
        job = Job(
            lambda cancel: run_export(
                sources.sources, out, settings, overwrite=overwrite, cancel=cancel, masks=masks, labels=labels
            ),
            name="exporting tiles",
        )
        job.signals.progressed.connect(self._on_export_progress)
        job.signals.finished.connect(self._on_export_finished)
        job.signals.cancelled.connect(self._on_export_cancelled)
        job.signals.errored.connect(self._on_export_failed)
        self.export_panel.set_summary("")
        self.export_panel.set_progress(None, "Starting…")
        self._export_started = time.monotonic()
        self._export_settings = settings
        self.jobs.start("export", job)
        self._update_actions()

    def cancel_export(self) -> None:
        """Stop the export after the current tile; what was written stays, listed in the manifest."""
        if self.jobs.busy("export"):
            self.jobs.cancel("export")
            self.export_panel.set_progress(self.export_panel.progressBar.value() / 1000, "Cancelling…")
            self.export_panel.cancelButton.setEnabled(False)

    @_from_current_job
    def _on_export_progress(self, progress: Progress) -> None:
        if progress.total:
            text = f"{progress.done} / {progress.total} tiles · image {progress.images_done} of {progress.images_total}"
            self.export_panel.set_progress(progress.fraction, text)
        else:
            self.export_panel.set_progress(None, progress.message or "Preparing…")
        self._on_progress(progress, prefix="Exporting")

    def _summary_text(self, summary) -> str:
        seconds = time.monotonic() - self._export_started
        text = f"{_plural(summary.tiles_written, 'tile')} from {_plural(summary.images_ok, 'image')} in {seconds:.1f} s."
        dropped = getattr(summary, "tiles_dropped", 0)
        if dropped:
            s = self._export_settings or self._settings
            kept = f" ({_percent(s.keep_empty)} of such tiles kept at random)" if s.keep_empty > 0 else ""
            text += f"<br>{_plural(dropped, 'tile')} dropped: below {_percent(s.min_foreground)} foreground{kept}."
        split = getattr(summary, "split", None)
        if split:
            text += f"<br>Split by image: {split.get('train', 0)} in train/, {split.get('val', 0)} in val/."
        if summary.failed:
            text += f"<br><b>{_plural(len(summary.failed), 'image')} failed:</b>"
            text += "".join(f"<br>• {name}: {reason}" for name, reason in summary.failed[:5])
            if len(summary.failed) > 5:
                text += f"<br>… and {len(summary.failed) - 5} more (see manifest.json)."
        return text

    @_from_current_job
    def _on_export_finished(self, summary) -> None:
        stopped = getattr(summary, "stopped_by", None)
        if stopped:
            self.export_panel.set_progress(self.export_panel.progressBar.value() / 1000, "Stopped")
            self.export_panel.set_summary(f"Stopped: {stopped}<br>{self._summary_text(summary)}", error=True)
            dialogs.inform(self, "Export stopped", stopped, details=self._failure_details(summary), kind="error")
        else:
            self.export_panel.set_progress(1.0, f"Done: {_plural(summary.tiles_written, 'tile')}")
            self.export_panel.set_summary(("Done: " if not summary.failed else "") + self._summary_text(summary))
            if summary.failed:
                dialogs.inform(
                    self,
                    "Export finished with errors",
                    f"{_plural(summary.tiles_written, 'tile')} written; {_plural(len(summary.failed), 'image')} "
                    "could not be exported (details below, also in manifest.json).",
                    details=self._failure_details(summary),
                    kind="warning",
                )
        written = _plural(summary.tiles_written, "tile")
        self.statusBar().showMessage(f"Export finished: {written} in {summary.output}.", 10000)
        self._update_actions()
        self.exportEnded.emit(summary)

    @staticmethod
    def _failure_details(summary) -> str:
        return "\n".join(f"{name}: {reason}" for name, reason in summary.failed)

    @_from_current_job
    def _on_export_cancelled(self, summary) -> None:
        self.export_panel.set_progress(self.export_panel.progressBar.value() / 1000, "Cancelled")
        if summary is not None:
            self.export_panel.set_summary(
                f"Cancelled: {self._summary_text(summary)}<br>manifest.json lists what was written."
            )
        else:
            self.export_panel.set_summary("Cancelled.")
        self.statusBar().showMessage("Export cancelled.", 6000)
        self._update_actions()
        self.exportEnded.emit(summary)

    @_from_current_job
    def _on_export_failed(self, exc: BaseException) -> None:
        message = error_text(exc, "exporting tiles")
        self.export_panel.set_progress(0.0, "Failed")
        self.export_panel.set_summary(message, error=True)
        self._update_actions()
        self.exportEnded.emit(None)
        dialogs.inform(self, "Export tiles", message, kind="error")

    def open_export_folder(self) -> None:
        """Show the export folder in the system's file manager."""
        if self._export_folder is not None and self._export_folder.is_dir():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self._export_folder)))

    def show_merge_dialog(self):
        """Open the Merge tiles dialog (tiles folder preset to the export folder)."""
        from tilesapp.gui.merge_dialog import MergeDialog

        if self._merge_dialog is None:
            self._merge_dialog = MergeDialog(self.jobs, self)
        dialog = self._merge_dialog
        if not dialog.tilesEdit.text() and self._export_folder is not None:
            dialog.tilesEdit.setText(str(self._export_folder))
            dialog.outputEdit.setText(str(self._export_folder.with_name(self._export_folder.name + "-merged")))
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def _export_blocked(self) -> str:
        """Why Export cannot start now ("" when it can)."""
        if self.jobs.busy("export"):
            return "An export is running."
        if self.jobs.busy("scan"):
            return "Reading the folder…"
        if self._sources is None:
            return "Load a folder of images first."
        if not self._sources.infos:
            return "The folder holds no readable image."
        if self._errors:
            return "Fix the setting marked in red first."
        if self._export_folder is None:
            return "Select an export folder."
        if self.jobs.busy("empty"):
            return "Emptying the export folder…"
        return ""

    # --- state of the controls ---------------------------------------------------------------------
    def _update_actions(self) -> None:
        exporting = self.jobs.busy("export")
        scanning = self.jobs.busy("scan")
        has_images = bool(self._sources and self._sources.infos)
        calibration_ok = not any(self._panel_of(e.field) is self.calibration for e in self._errors)
        self.media.loadButton.setEnabled(not exporting)
        self.openAction.setEnabled(not exporting)
        self.media.recursiveCheck.setEnabled(not exporting and not scanning)
        self.media.sampleButton.setEnabled(has_images)
        self.tiles.previewButton.setEnabled(has_images and calibration_ok)
        self.tiles.anotherButton.setEnabled(has_images and calibration_ok and len(self._sources.infos) > 1)
        self.export_panel.exportFolderButton.setEnabled(not exporting)
        self.training.masksFolderButton.setEnabled(not exporting)
        self.training.labelsFolderButton.setEnabled(not exporting)
        self.training.clearMasksButton.setEnabled(self._masks is not None and not exporting)
        self.training.clearLabelsButton.setEnabled(self._labels is not None and not exporting)
        self.export_panel.emptyFolderButton.setEnabled(
            self._export_folder is not None and not exporting and not self.jobs.busy("empty")
        )
        reason = self._export_blocked()
        self.export_panel.exportButton.setEnabled(not reason)
        self.export_panel.cancelButton.setEnabled(exporting and not self.jobs.job("export").is_cancelled)
        self.export_panel.openFolderButton.setEnabled(self._export_folder is not None and self._export_folder.is_dir())
        self.export_panel.set_hint("" if exporting else (reason or self._export_plan_text))
        tip = "Cut every image of the folder into tiles in the export folder."
        self.export_panel.exportButton.setToolTip(reason or tip)

    def _on_job_ended(self, slot: str) -> None:
        if self._closing:
            return
        if not any(self.jobs.busy(s) for s in ("scan", "view", "export", "empty", "merge")):
            self.statusProgress.setVisible(False)
        self._update_actions()

    @_from_current_job
    def _on_progress(self, progress, prefix: str = "") -> None:
        if not isinstance(progress, Progress):
            return
        self.statusProgress.setVisible(True)
        if progress.total:
            self.statusProgress.setRange(0, 1000)
            self.statusProgress.setValue(int(1000 * progress.fraction))
        else:
            self.statusProgress.setRange(0, 0)
        text = progress.message or prefix  # the engine's words say what is happening
        if progress.current:
            text += f": {progress.current}"
        if progress.images_total:
            text += f" ({progress.images_done}/{progress.images_total})"
        self.statusBar().showMessage(text)

    def _busy_message(self, text: str) -> None:
        self.statusProgress.setVisible(True)
        self.statusProgress.setRange(0, 0)
        self.statusBar().showMessage(text)

    # --- settings files and menus -------------------------------------------------------------------
    def save_settings_file(self, path: str | Path | None = None) -> bool:
        """Save the settings as JSON (the file ``tilesapp cut --config`` reads)."""
        if self._errors:
            dialogs.inform(self, "Save settings", f"Fix the invalid setting first: {self._errors[0]}", kind="warning")
            return False
        if path is None:
            start = self.store.path("settings_file") or Path.home() / "tilesapp-settings.json"
            path = dialogs.choose_save_file(self, "Save settings", start, SETTINGS_FILTER)
            if path is None:
                return False
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".json")
        try:
            save_settings(self._settings, path)
        except OSError as exc:
            dialogs.inform(self, "Save settings", error_text(exc, "saving the settings"), kind="error")
            return False
        self.store.set_path("settings_file", path)
        self.statusBar().showMessage(f"Settings saved to {path}.", 6000)
        return True

    def load_settings_file(self, path: str | Path | None = None) -> bool:
        """Load settings from a JSON file; unknown keys are reported, not fatal."""
        if path is None:
            path = dialogs.choose_open_file(self, "Load settings", self.store.path("settings_file"), SETTINGS_FILTER)
            if path is None:
                return False
        try:
            settings, unknown = load_settings(path, base=self._settings)
        except SettingsError as exc:
            dialogs.inform(self, "Load settings", str(exc), kind="warning")
            return False
        self.store.set_path("settings_file", Path(path))
        self.set_settings(settings)
        message = f"Settings loaded from {path}."
        if unknown:
            message += f" Ignored unknown keys: {', '.join(unknown)}."
        self.statusBar().showMessage(message, 10000)
        return True

    def _fill_recent_menu(self) -> None:
        self.recentMenu.clear()
        folders = self.store.recent_folders()
        for folder in folders:
            action = self.recentMenu.addAction(str(folder))
            action.triggered.connect(lambda checked=False, f=folder: self.open_folder(f))
        if not folders:
            self.recentMenu.addAction("No recent folders").setEnabled(False)
        else:
            self.recentMenu.addSeparator()
            self.recentMenu.addAction("Clear the list", self.store.clear_recent_folders)

    def _open_log_folder(self) -> None:
        try:
            from tilesapp.logs import log_dir

            folder = log_dir()
        except Exception:  # the log module is optional for the window
            folder = None
        if folder is None or not folder.is_dir():
            dialogs.inform(self, "Log folder", "No log file has been written yet.")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _about(self) -> None:
        """Name, version and the application icon (the same picture the installers carry)."""
        box = QMessageBox(self)
        box.setObjectName("aboutBox")
        box.setWindowTitle(f"About {APP_NAME}")
        box.setTextFormat(Qt.TextFormat.RichText)
        box.setText(
            f"<h3>{APP_NAME} {__version__}</h3>"
            "<p>Cuts folders of calibrated microscopy images into overlapping, normalized tiles "
            "for training deep-learning models (UNet, YOLO), and merges tiles back.</p>"
            "<p>The same engine runs from the command line: <code>tilesapp cut --help</code>.</p>"
        )
        box.setIconPixmap(app_icon().pixmap(QSize(96, 96)))
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        box.exec()

    # --- drag and drop ---------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        """A dropped folder is loaded; dropped image files are loaded as the sources."""
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        folders = [p for p in paths if p.is_dir()]
        if folders:
            self.open_folder(folders[0])
        else:
            self.open_files(paths)

    # --- closing ---------------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        """Cancel background work (an export stops cleanly), remember the layout, close."""
        self._closing = True
        self._preview_timer.stop()
        self._detail_timer.stop()
        if self.jobs.busy("export"):
            log.info("Window closed during an export: cancelling it")
        self.jobs.shutdown()
        try:
            self.store.save_window_state(self.saveGeometry(), self.splitter.saveState())
            self.store.save_settings(self._remembered())
            self.store.sync()
        except Exception:  # remembering is a convenience, never a reason not to close
            log.warning("Could not save the window state", exc_info=True)
        if self._demo_dir is not None:
            shutil.rmtree(self._demo_dir, ignore_errors=True)
        super().closeEvent(event)
