"""The main window: the panel column on the left (its export bar always on screen), the image
view and the sources table in the centre, menus, a status bar.

The window builds the widgets and wires them to the controllers that do one job each:
:class:`~tilesapp.gui.settings_edit.SettingsEditor` (the settings), :class:`SourcesController`
(loading, the sources table), :class:`PreviewController` (sample, preview, output values),
:class:`ExportController` (folders, export), :class:`SettingsFiles` (settings files, recent).
Every decision about images, tiles and files is the engine's (``tilesapp.core``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QLabel,
    QLineEdit,
    QMainWindow,
    QProgressBar,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from tilesapp import APP_NAME
from tilesapp.core.progress import Progress
from tilesapp.gui import dialogs
from tilesapp.gui.exporter import ExportController
from tilesapp.gui.icon import app_icon
from tilesapp.gui.panels import (
    CalibrationPanel,
    ExportBar,
    ExportPanel,
    MediaPanel,
    NormalizationPanel,
    TilesPanel,
    TrainingPanel,
)
from tilesapp.gui.panels.normalization import PRESET_LABELS
from tilesapp.gui.previews import PreviewController
from tilesapp.gui.settings_edit import SettingsEditor
from tilesapp.gui.settings_files import SettingsFiles
from tilesapp.gui.settings_store import SettingsStore
from tilesapp.gui.sources import SourcesController
from tilesapp.gui.viewer import ImageViewer
from tilesapp.gui.workers import JobRunner

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Tiles Creator's window.

    Signals (of its controllers, for scripts and tests)
    ---------------------------------------------------
    sourcesLoaded(Sources), previewShown(Preview), tileDetailShown(TileDetail), sampleShown(),
    outputShown(Output), exportEnded(ExportSummary or None)
    """

    def __init__(self, store: SettingsStore | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.store = store or SettingsStore()
        self.jobs = JobRunner(self)
        self.closing = False
        self._busy_text = ""
        self._merge_dialog = self._predict_dialog = None
        self._build_panels()
        self.editor = SettingsEditor(self.panels, self.store, self)
        self.loader = SourcesController(self)
        self.previews = PreviewController(self)
        self.exporter = ExportController(self)
        self.files = SettingsFiles(self)
        self._build_layout()
        self._build_menus()
        self._connect()
        self._restore_layout()
        self.loader.refresh()
        self.editor.recheck()

    # --- construction ----------------------------------------------------------------------------
    def _build_panels(self) -> None:
        self.media, self.calibration = MediaPanel(), CalibrationPanel()
        self.normalization, self.tiles = NormalizationPanel(), TilesPanel()
        self.training, self.export_panel = TrainingPanel(), ExportPanel()
        self.panels = (self.media, self.calibration, self.normalization, self.tiles, self.training, self.export_panel)
        self.export_bar = ExportBar()
        self.viewer = ImageViewer()

    def _build_layout(self) -> None:
        column = QWidget()
        column.setObjectName("controlColumn")
        layout = QVBoxLayout(column)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(5)
        for panel in self.panels:
            panel.compact()
            layout.addWidget(panel)
        layout.addStretch(1)
        # An advanced section starts folded unless it is in use: the column fits a laptop screen.
        s = self.editor.settings
        self.training.set_expanded(s.min_foreground > 0 or s.val_fraction > 0)
        self.scroll = QScrollArea()
        self.scroll.setObjectName("controlScroll")
        self.scroll.setWidget(column)
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left = QWidget()
        left.setObjectName("leftColumn")
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(4)
        left_layout.addWidget(self.scroll, 1)
        left_layout.addWidget(self.export_bar)  # outside the scroll area: always on screen
        left.setMinimumWidth(column.sizeHint().width() + 24)

        self.centre = QSplitter(Qt.Orientation.Vertical)
        self.centre.setObjectName("centreSplitter")
        self.centre.addWidget(self.viewer)
        self.centre.addWidget(self.loader.table)
        self.centre.setStretchFactor(0, 3)
        self.centre.setStretchFactor(1, 1)
        self.centre.setCollapsible(0, False)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.centre)
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
        self.show_status("Drop a folder of images on the window, or File ▸ Open folder.", 30)
        # Typed-in text fields must not swallow a dropped folder: drops belong to the window.
        for edit in self.findChildren(QLineEdit):
            edit.setAcceptDrops(False)

    def _menu_table(self) -> dict:
        """Every menu entry: (objectName, text, shortcut, slot called without arguments)."""
        return {
            "&File": [
                ("openFolderAction", "&Open folder…", QKeySequence.StandardKey.Open, self.loader.choose_folder),
                ("recentMenu", "Open &recent", None, None),
                ("demoAction", "Open &demo images", None, self.loader.open_demo), None,
                ("mergeAction", "&Merge tiles…", "Ctrl+M", self.show_merge_dialog),
                ("predictAction", "&Apply a model…", "Ctrl+P", self.show_predict_dialog), None,
                ("loadSettingsAction", "&Load settings…", "Ctrl+L", self.files.load),
                ("saveSettingsAction", "&Save settings…", QKeySequence.StandardKey.Save, self.files.save),
                ("resetSettingsAction", "Reset settings to &defaults", None, self.files.reset), None,
                ("quitAction", "&Quit", QKeySequence.StandardKey.Quit, self.close),
            ],
            "&View": [
                ("fitAction", "&Fit image", "Ctrl+0", self.viewer.reset_view),
                ("nextTileAction", "&Next tile", "Ctrl+Right", lambda: self.previews.step_tile(1)),
                ("previousTileAction", "&Previous tile", "Ctrl+Left", lambda: self.previews.step_tile(-1)),
                ("nextImageAction", "Next &image", "Ctrl+Down", self.previews.next_image),
            ],
            "&Help": [
                ("logFolderAction", "Open &log folder", None, lambda: dialogs.show_log_folder(self)),
                ("aboutAction", f"&About {APP_NAME}", None, lambda: dialogs.about_app(self)),
            ],
        }

    def _build_menus(self) -> None:
        self.actions_by_name: dict[str, QAction] = {}
        for title, entries in self._menu_table().items():
            menu = self.menuBar().addMenu(title)
            for entry in entries:
                if entry is None:
                    menu.addSeparator()
                    continue
                name, text, shortcut, slot = entry
                if slot is None:  # the recent folders and settings files, filled when shown
                    self.recentMenu = menu.addMenu(text)
                    self.recentMenu.setObjectName(name)
                    self.recentMenu.aboutToShow.connect(lambda: self.files.fill_recent(self.recentMenu))
                    continue
                action = QAction(text, self)
                action.setObjectName(name)
                if shortcut is not None:
                    action.setShortcut(QKeySequence(shortcut))
                # triggered(bool) carries "checked": never pass it on as an argument.
                action.triggered.connect(lambda checked=False, slot=slot: slot())
                menu.addAction(action)
                self.actions_by_name[name] = action

    def _connect(self) -> None:
        self.sourcesLoaded, self.assessed = self.loader.loaded, self.loader.assessed
        p = self.previews
        self.previewShown, self.tileDetailShown, self.sampleShown = p.previewShown, p.tileDetailShown, p.sampleShown
        self.outputShown, self.exportEnded = p.outputShown, self.exporter.exportEnded
        self.loader.loaded.connect(self.exporter.sources_loaded)
        self.media.loadRequested.connect(self.loader.choose_folder)
        self.media.sampleRequested.connect(self.previews.show_sample)
        self.normalization.presetChosen.connect(self.apply_preset)
        self.loader.table.imageChosen.connect(self.previews.preview_image)
        self.viewer.hovered.connect(self.hoverLabel.setText)
        self.editor.changed.connect(self._on_settings_changed)
        self.editor.checked.connect(self._on_checked)
        self.editor.message.connect(lambda text: self.show_status(text, 10))
        self.editor.checks.append(self.loader.memory_check)
        self.editor.checks.append(self.exporter.training_check)
        self.jobs.ended.connect(self._on_job_ended)

    def _restore_layout(self) -> None:
        width, height = 1440, 960  # as large as the column needs, where the screen allows it
        screen = self.screen() or QApplication.primaryScreen()
        if screen is not None:
            available = screen.availableGeometry()
            width, height = min(width, available.width() - 40), min(height, available.height() - 40)
        self.resize(max(width, 900), max(height, 600))
        self.splitter.setSizes([420, max(500, width - 420)])
        self.centre.setSizes([max(300, height - 330), 200])
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

    # --- what scripts and tests use ------------------------------------------------------------------
    settings = property(lambda self: self.editor.settings, doc="The current valid settings.")
    settings_errors = property(lambda self: list(self.editor.errors), doc="Errors shown next to the fields.")
    sources = property(lambda self: self.loader.sources)
    preview = property(lambda self: self.previews.preview, doc="The image shown with its tiles, or None.")
    export_folder = property(lambda self: self.exporter.folder)
    masks_folder = property(lambda self: self.exporter.masks)
    labels_folder = property(lambda self: self.exporter.labels)

    def open_folder(self, path: str | Path) -> None:
        """Load a folder of images (as the Load button or a drop does); a file loads alone."""
        self.loader.open_folder(path)

    def preview_image(self, path: str | Path) -> None:
        """Preview the tiles of one image of the sources."""
        self.previews.preview_image(path)

    def set_settings(self, settings) -> None:
        self.editor.set_settings(settings)

    def apply_preset(self, name: str) -> None:
        """Set the four normalization/output fields of preset ``name`` ("unet" or "yolo")."""
        self.normalization.set_settings(self.editor.settings.with_preset(name))
        self.editor.collect()
        s = self.editor.settings
        bounds = f"{s.output_bounds[0]:g}–{s.output_bounds[1]:g}, " if s.norm != "none" else ""
        self.show_status(f"Preset {PRESET_LABELS.get(name, name)}: {s.norm} normalization, {bounds}{s.dtype}, .{s.format}")

    def show_merge_dialog(self):
        """Open the Merge tiles dialog (tiles folder preset to the export folder)."""
        from tilesapp.gui.merge_dialog import MergeDialog

        dialog = self._merge_dialog = self._merge_dialog or MergeDialog(self.jobs, self)
        folder = self.exporter.folder
        if not dialog.tilesEdit.text() and folder is not None:
            dialog.tilesEdit.setText(str(folder))
            dialog.outputEdit.setText(str(folder.with_name(folder.name + "-merged")))
        return dialogs.bring_up(dialog)

    def show_predict_dialog(self):
        """Open the Apply a model dialog (the images preset to the loaded folder)."""
        from tilesapp.gui.predict_dialog import PredictDialog

        dialog = self._predict_dialog = self._predict_dialog or PredictDialog(self.jobs, self)
        sources = self.loader.sources
        dialog.use_window(self.editor.settings, sources.folders[0] if sources and sources.folders else None)
        return dialogs.bring_up(dialog)

    # --- settings --------------------------------------------------------------------------------------
    def _on_settings_changed(self, old, new) -> None:
        folder = self.loader.sources_folder()
        if new.recursive != old.recursive and folder is not None:
            self.loader.load(folder)
            return
        self.loader.refresh()
        self.previews.settings_changed(old, new)

    def _on_checked(self) -> None:
        broken = self.editor.error_in(self.normalization)  # the preset names what the fields show
        self.normalization.show_preset(None if broken else self.editor.settings.preset)
        self.update_actions()

    # --- status bar and the state of the controls ----------------------------------------------------
    def show_status(self, text: str, seconds: float = 8.0) -> None:
        """A passing message: every message goes away by itself, none stays to mislead."""
        self._busy_text = ""
        self.statusBar().showMessage(text, int(seconds * 1000))

    def show_busy(self, text: str) -> None:
        """What a job is doing; it goes when the job ends."""
        self.statusProgress.setVisible(True)
        self.statusProgress.setRange(0, 0)
        self._busy_text = text
        self.statusBar().showMessage(text)

    def clear_busy(self) -> None:
        if self._busy_text and self.statusBar().currentMessage() == self._busy_text:
            self.statusBar().clearMessage()
        self._busy_text = ""

    def show_progress(self, progress, prefix: str = "") -> None:
        if self.closing or not isinstance(progress, Progress):
            return
        text = (progress.message or prefix) + (f": {progress.current}" if progress.current else "")
        text += f" ({progress.images_done}/{progress.images_total})" if progress.images_total else ""
        self.show_busy(text)
        if progress.total:
            self.statusProgress.setRange(0, 1000)
            self.statusProgress.setValue(int(1000 * progress.fraction))

    def _on_job_ended(self, slot: str) -> None:
        if self.closing:
            return
        if not any(self.jobs.busy(s) for s in ("scan", "view", "export", "empty", "merge", "predict", "output", "tile")):
            self.statusProgress.setVisible(False)
            self.clear_busy()
        self.update_actions()

    def update_actions(self) -> None:
        exporting = self.exporter.running
        has_images = bool(self.loader.sources and self.loader.sources.infos)
        preview_ok = has_images and not self.editor.error_in(self.calibration)
        for panel in self.panels[:-1]:  # settings stay as they are while an export runs
            panel.set_locked(exporting)
        for name in ("openFolderAction", "demoAction", "loadSettingsAction", "resetSettingsAction"):
            self.actions_by_name[name].setEnabled(not exporting)
        self.recentMenu.setEnabled(not exporting)
        table = self.loader.table
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers if exporting else
                              QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
                              | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.media.sampleButton.setEnabled(has_images)
        self.media.recursiveCheck.setEnabled(not self.jobs.busy("scan"))
        self.tiles.previewButton.setEnabled(preview_ok)
        self.tiles.anotherButton.setEnabled(preview_ok and len(table.names()) > 1)
        self.training.clearMasksButton.setEnabled(self.exporter.masks is not None)
        self.training.clearLabelsButton.setEnabled(self.exporter.labels is not None)
        self.exporter.update()

    # --- drag and drop -----------------------------------------------------------------------------------
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
            self.loader.open_folder(folders[0])
        else:
            self.loader.open_files(paths)

    # --- closing ---------------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        """During an export, ask first; then cancel background work, remember the layout, close."""
        if not self.closing and not self.exporter.confirm_close():
            event.ignore()
            self.show_status("The export goes on.")
            return
        self.closing = True
        self.previews.stop()
        if self.exporter.running:
            log.info("Window closed during an export: cancelling it")
        self.jobs.shutdown()
        try:
            self.store.save_window_state(self.saveGeometry(), self.splitter.saveState())
            self.store.sync()
        except Exception:  # remembering is a convenience, never a reason not to close
            log.warning("Could not save the window state", exc_info=True)
        self.loader.close()
        super().closeEvent(event)
