"""The sources: loading a folder (or dropped files) in the background, and the sources table.

The table shows every image an export would cut — a file, or each scene and plane of a
microscope file — with its scene, planes, channels, shape, type, pixel size and where it came
from, scale factor, tiles and status (unreadable images, found when the folder is loaded, and
stacks waiting for a plane choice are marked). A pixel size typed in a row is that image's
alone, marked as typed; clicking a row previews it.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QStyledItemDelegate,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from tilesapp import APP_NAME
from tilesapp.core.calibration import canonical_unit, format_pixel_size, to_um
from tilesapp.core.selection import split_sources
from tilesapp.gui import dialogs
from tilesapp.gui.panels.calibration import parse_pixel_size
from tilesapp.gui.sources_model import Assessment, Row, Sources, assess, inspect_sources, tile_memory_problem
from tilesapp.gui.wording import plural
from tilesapp.gui.workers import Controller, Job, from_current_job, one_step

COLUMNS = ("Image", "Scene", "Planes", "Channels", "Shape", "Type", "Pixel size", "From", "Scale", "Tiles", "Status")
PIXEL_COLUMN = COLUMNS.index("Pixel size")
SCENE_COLUMN, PLANES_COLUMN = COLUMNS.index("Scene"), COLUMNS.index("Planes")
#: Widest a column grows by itself (px); longer texts are elided in the middle, whole in the tooltip.
MAX_WIDTHS = {"Image": 300, "Scene": 160, "Planes": 130, "Channels": 170, "From": 120}
#: Room kept for the status (px), at most.
STATUS_WIDTH = 170
#: When the columns do not fit, these give way in turn, down to these widths (px).
YIELDING = (("Channels", 90), ("Image", 200), ("From", 70), ("Scene", 90), ("Image", 140), ("Channels", 70),
            ("Planes", 100), ("Image", 100))
FAIL_COLOR, TYPED_COLOR, WARN_COLOR = QColor("#c62828"), QColor("#1565c0"), QColor("#b26a00")


def parse_typed_size(text: str) -> tuple[float, float] | None:
    """A pixel size typed in the table, in µm: ``0.5``, ``0,5 µm``, ``650 nm``, ``0.5 × 0.6``
    (y × x); empty (or ``–``) removes it. Raises ValueError with a sentence.

    >>> parse_typed_size("650 nm"), parse_typed_size("0,5 x 0.6"), parse_typed_size("")
    ((0.65, 0.65), (0.5, 0.6), None)
    """
    text = text.strip()
    match = re.fullmatch(r"(.*?)\s*([a-zA-Zµμ]+)?", text)
    number, unit = match.group(1), match.group(2) or "um"
    if not number or number in "–-":
        return None
    canon = canonical_unit(unit)
    parts = parse_pixel_size(number)
    try:
        y, x = (parts, parts) if isinstance(parts, str) else parts
        size = (to_um(float(y), canon), to_um(float(x), canon))
    except (TypeError, ValueError):
        raise ValueError(f"'{text}' is not a pixel size; type a number such as 0.5, 650 nm or 0.5 × 0.6.") from None
    if not all(math.isfinite(v) and v > 0 for v in size):
        raise ValueError(f"'{text}' is not a pixel size: it must be greater than 0.")
    return size


class _MiddleElided(QStyledItemDelegate):
    """Image names elided in the middle (``czi_2scenes…images.czi [s1]`` keeps its scene); the
    other texts at their end, so their first words stay."""

    def initStyleOption(self, option, index) -> None:
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideMiddle if index.column() == 0 else Qt.TextElideMode.ElideRight


class SourcesTable(QTableWidget):
    """One row per image of the sources (a file, or a scene or plane of one).

    Signals
    -------
    imageChosen(str)
        The user chose a row: preview that image (its name, as the manifest names it).
    pixelSizeTyped(str, object)
        A pixel size was typed for image ``name``: (y, x) in µm, or None to remove it.
    """

    imageChosen = Signal(object)
    pixelSizeTyped = Signal(str, object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(0, len(COLUMNS), parent)
        self.setObjectName("sourcesTable")
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
                             | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        header = self.horizontalHeader()
        # Columns fit their contents up to a width (long names are elided in the middle, whole in
        # the tooltip), so the status stays on screen; the user may widen any of them.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        header.setHighlightSections(False)
        self.setItemDelegate(_MiddleElided(self))
        self.setWordWrap(False)
        self.setToolTip("Click a row to preview that image (a scene or plane of a microscope file is its own row);\n"
                        "double-click its pixel size to type one for it alone.")
        self._rows: list[Row] = []
        self._filling = False
        self.itemChanged.connect(self._on_item_changed)
        self.currentCellChanged.connect(self._on_current)

    def show_rows(self, assessment: Assessment) -> None:
        """Fill the table (the chosen row stays chosen)."""
        chosen = self.chosen()
        self._filling = True
        self.setRowCount(len(assessment.rows))
        for r, row in enumerate(assessment.rows):
            for c, text in enumerate(self._texts(row)):
                item = QTableWidgetItem(text)
                flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                if c == PIXEL_COLUMN and row.info is not None and not row.whole_file:
                    flags |= Qt.ItemFlag.ItemIsEditable
                    item.setToolTip("Double-click to type this image's pixel size (empty: its metadata).")
                elif c == PIXEL_COLUMN and row.whole_file:  # its images are named once the planes are chosen
                    item.setToolTip("Choose what to cut of this file first; then type a pixel size in its images' rows.")
                item.setFlags(flags)
                if c == len(COLUMNS) - 1:
                    item.setToolTip("\n".join([row.status, *row.warnings[1:]]))
                elif c in (0, SCENE_COLUMN, PLANES_COLUMN, COLUMNS.index("Channels")) and text:
                    item.setToolTip(text)
                if not row.ok and c in (0, len(COLUMNS) - 1):
                    item.setForeground(QBrush(FAIL_COLOR))
                elif row.warnings and c == len(COLUMNS) - 1:
                    item.setForeground(QBrush(WARN_COLOR))
                if row.typed and c in (PIXEL_COLUMN, PIXEL_COLUMN + 1):
                    item.setForeground(QBrush(TYPED_COLOR))
                    font = QFont(item.font())
                    font.setItalic(True)
                    item.setFont(font)
                self.setItem(r, c, item)
        self._rows = list(assessment.rows)
        # Scenes and planes have columns only when some file has them.
        self.setColumnHidden(SCENE_COLUMN, not any(r.scenes > 1 for r in self._rows))
        self.setColumnHidden(PLANES_COLUMN, not any(r.scene is not None and r.scene.n_z * r.scene.n_t > 1
                                                    for r in self._rows))
        self._fit_columns()
        if chosen is not None:
            self.select(chosen, quiet=True)
        self._filling = False

    def _fit_columns(self) -> None:
        """Each column as wide as its texts, up to a width; when they do not all fit, the names
        give way first (elided in the middle, whole in their tooltips) so the status stays seen."""
        metrics = self.fontMetrics()
        widths = {}
        for c, title in enumerate(COLUMNS[:-1]):
            if self.isColumnHidden(c):
                continue
            texts = [title] + [self.item(r, c).text() for r in range(min(self.rowCount(), 500)) if self.item(r, c)]
            widths[c] = min(max(metrics.horizontalAdvance(t) for t in texts) + 16, MAX_WIDTHS.get(COLUMNS[c], 10_000))
        statuses = [self.item(r, len(COLUMNS) - 1).text() for r in range(min(self.rowCount(), 500))
                    if self.item(r, len(COLUMNS) - 1)]
        status = min(STATUS_WIDTH, max((metrics.horizontalAdvance(t) for t in statuses), default=0) + 16)
        excess = sum(widths.values()) - (self.viewport().width() - status)
        for title, floor in YIELDING:
            c = COLUMNS.index(title)
            if excess <= 0:
                break
            if c in widths and widths[c] > floor:
                cut = min(widths[c] - floor, excess)
                widths[c] -= cut
                excess -= cut
        for c, width in widths.items():
            self.setColumnWidth(c, width)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_columns()

    @staticmethod
    def _texts(row: Row) -> tuple[str, ...]:
        info, plan = row.info, row.plan
        if info is None:
            return (row.name, *[""] * (len(COLUMNS) - 2), row.status)
        rows, cols = info.shape_yx
        shape = f"{rows} × {cols}"
        scale = tiles = ""
        if plan is not None:
            fy, fx = plan.factors
            scale = f"×{fx:.4g}" if math.isclose(fy, fx) else f"×{fy:.4g} × {fx:.4g}"
            tiles = str(len(plan.grid))
        size = row.pixel_size + (" (typed)" if row.typed else "")
        return (row.name, row.scene_text, row.planes_text, row.channels_text, shape, info.dtype, size, row.origin,
                scale, tiles, row.status)

    def chosen(self) -> str | None:
        """The name of the chosen row's image, or None."""
        r = self.currentRow()
        return self._rows[r].name if 0 <= r < len(self._rows) else None

    def select(self, name: str, quiet: bool = False) -> None:
        """Make the row of image ``name`` the current one (``quiet``: without asking for a preview)."""
        for r, row in enumerate(self._rows):
            if row.name == name:
                old, self._filling = self._filling, self._filling or quiet
                self.setCurrentCell(r, 0)
                self._filling = old
                return

    def names(self) -> list[str]:
        """Every row's image, in table order."""
        return [row.name for row in self._rows]

    def paths(self) -> list[Path]:
        return list(dict.fromkeys(row.path for row in self._rows))

    def _on_current(self, row: int, col: int, previous_row: int, previous_col: int) -> None:
        if not self._filling and row != previous_row and 0 <= row < len(self._rows):
            self.imageChosen.emit(self._rows[row].name)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != PIXEL_COLUMN:
            return
        row = self._rows[item.row()]
        text = item.text().replace("(typed)", "").strip()
        try:
            size = parse_typed_size(text)
        except ValueError as exc:
            dialogs.inform(self, "Pixel size", f"{row.name}: {exc}", kind="warning")
            size = row.plan.input_pixel_size_um if row.typed else None
        self.pixelSizeTyped.emit(row.name, size)


class SourcesController(Controller):
    """Loads folders and files in the background (metadata, and a check that each image can be
    read), and shows what the sources are under the current settings.

    Signals
    -------
    loaded(Sources)
        A folder (or dropped files) was read.
    assessed(Assessment)
        The sources were planned under the current settings (after loading and every change).
    """

    loaded = Signal(object)
    assessed = Signal(object)

    def __init__(self, window):
        super().__init__(window)
        self.sources: Sources | None = None
        self.assessment = Assessment()
        self.split: dict[Path, str] = {}  # image → "train" / "val" (empty: no split)
        self._folder: Path | None = None  # the folder last loaded (kept while another loads)
        self._demo_dir: Path | None = None
        self.table = SourcesTable()
        self.table.pixelSizeTyped.connect(self.type_pixel_size)

    # --- loading ---------------------------------------------------------------------------
    def choose_folder(self) -> None:
        """Ask for a folder of images and load it."""
        start = self.sources.folders[0] if self.sources else self.window.store.path("input")
        folder = dialogs.choose_folder(self.window, "Open a folder of images", start)
        if folder is not None:
            self.open_folder(folder)

    def open_folder(self, path: str | Path) -> None:
        """Load a folder of images (as the Load button or a drop does); a file loads alone."""
        path = Path(path).expanduser()
        if self.jobs.busy("export"):
            dialogs.inform(self.window, "Open folder", "An export is running; wait for it to end or cancel it first.")
            return
        if not path.exists():
            dialogs.inform(self.window, "Open folder", f"{path} does not exist; check the path.", kind="warning")
            return
        self.load([path.absolute()] if path.is_file() else path.absolute())

    def open_files(self, paths: list[str | Path]) -> None:
        """Load image files (dropped on the window) as the sources."""
        if self.jobs.busy("export"):
            dialogs.inform(self.window, "Open files", "An export is running; wait for it to end or cancel it first.")
            return
        self.load([Path(p).expanduser().absolute() for p in paths])

    def open_demo(self) -> None:
        """Write the synthetic demo images to a temporary folder (in the background) and load it."""
        from tilesapp.core.demo import make_demo_folder

        if self._demo_dir is None:
            self._demo_dir = Path(tempfile.mkdtemp(prefix="tilesapp-demo-"))
        job = Job(one_step(make_demo_folder, self._demo_dir / "demo images"), name="making the demo images")
        job.signals.finished.connect(self._on_demo_ready)
        job.signals.errored.connect(self._on_load_failed)
        self.window.show_busy("Making the demo images…")
        self.jobs.start("scan", job)

    @from_current_job
    def _on_demo_ready(self, folder: Path) -> None:
        self.open_folder(folder)

    def load(self, sources: Path | list[Path]) -> None:
        w = self.window
        self.jobs.cancel("view")
        self.sources, self.assessment = None, Assessment()
        self.table.show_rows(self.assessment)
        w.previews.forget("<p>Reading the folder…</p>")
        label = str(sources) if isinstance(sources, Path) else f"{plural(len(sources), 'file')} dropped"
        w.media.set_folder(label)
        w.media.set_sources("reading…")
        w.media.set_shape("–")
        recursive = w.editor.settings.recursive
        job = Job(lambda cancel: inspect_sources(sources, recursive, cancel), name="reading the folder")
        job.signals.progressed.connect(w.show_progress)
        job.signals.finished.connect(self._on_loaded)
        job.signals.errored.connect(self._on_load_failed)
        self.jobs.start("scan", job)
        w.update_actions()

    @from_current_job
    def _on_loaded(self, sources: Sources) -> None:
        w = self.window
        previous, self.sources = self._folder, sources
        self._folder = self.sources_folder()
        if isinstance(sources.sources, Path):
            w.store.add_recent_folder(sources.sources)
            w.store.set_path("input", sources.sources)
            w.setWindowTitle(f"{sources.sources.name} — {APP_NAME}")
        w.media.set_folder(sources.label)
        notes = []
        if previous is not None and previous != self.sources_folder():
            # Chosen for the images of another folder: their pixel sizes, channels and scenes.
            s = w.editor.settings
            cleared = {k: v for k, v in (("file_pixel_sizes", ()), ("channels", None), ("scenes", None))
                       if getattr(s, k) != v}
            if cleared:
                w.editor.replace(**cleared)
                for panel in (w.media, w.normalization):  # the fields show them
                    panel.set_settings(w.editor.settings)
                what = [f"the pixel sizes typed for {plural(len(s.file_pixel_sizes), 'image')}"] if s.file_pixel_sizes else []
                what += [f"the {k} chosen" for k in ("channels", "scenes") if k in cleared]
                notes.append(f"{', '.join(what)} of the previous folder cleared")
        w.exporter.check_folders_against_sources()
        self.refresh()
        w.editor.recheck()
        n = len(self.assessment.rows)
        self.status(f"Loaded {self.assessment.count_text()} from {sources.label}"
                    + "".join(f"; {note}" for note in notes) + ".", 12 if notes else 8)
        self.loaded.emit(sources)
        if sources.infos:
            w.previews.show_sample()
        else:
            w.viewer.show_placeholder(f"<p>No readable image among the {plural(n, 'image')} of this folder.</p>")

    def sources_folder(self) -> Path | None:
        return self.sources.sources if self.sources is not None and isinstance(self.sources.sources, Path) else None

    @from_current_job
    def _on_load_failed(self, exc: BaseException) -> None:
        self.window.media.set_sources("no images")
        self.window.viewer.show_placeholder("<p>Nothing loaded.</p><p>Drop a folder of images here.</p>")
        self.window.update_actions()
        dialogs.inform(self.window, "Load", dialogs.error_text(exc, "reading the folder"), kind="warning")

    # --- what the sources are under the settings ---------------------------------------------------
    def refresh(self) -> None:
        """Plan every image under the current settings and show it everywhere it is counted."""
        w = self.window
        settings = w.editor.settings
        self.assessment = assess(self.sources, settings)
        self.table.show_rows(self.assessment)
        if self.sources is not None:
            w.media.set_sources(self.assessment.count_text(), self._sources_tooltip())
            w.media.set_shape(*self._shape_text())
        w.media.set_stacks(*self._stacks())
        w.normalization.set_channel_names(self.sources.channel_names() if self.sources else [])
        w.calibration.set_metadata(self.assessment.calibration_text(settings))
        w.calibration.set_result(self._calibration_result(settings))
        self._show_split(settings)
        self.assessed.emit(self.assessment)

    def memory_check(self, settings) -> list[tuple[str, str]]:
        """The export's memory rule for the tile size, said next to the field before exporting."""
        problem = tile_memory_problem(settings, self.assessment.max_channels)
        return [("tile_size", problem)] if problem else []

    def type_pixel_size(self, name: str, size_um: tuple[float, float] | None) -> None:
        """Give image ``name`` its own pixel size (None: back to its metadata)."""
        self.window.editor.replace(file_pixel_sizes=self.window.editor.settings.with_file_pixel_size(name, size_um)
                                   .file_pixel_sizes)
        if size_um is not None:
            self.status(f"{name}: pixel size {format_pixel_size(size_um)} typed for this image.")

    def _stacks(self) -> tuple[int, int, int, str]:
        """(Z planes, T frames, scenes at most in a file, what waits for a choice) of the loaded files."""
        if self.sources is None:
            return 1, 1, 1, ""
        n_z, n_t = self.sources.stacks
        waiting = []
        for setting, what in (("z", "a Z choice"), ("t", "a frame choice")):
            rows = self.assessment.needing(setting)
            if rows:
                waiting.append(f"{plural(len(rows), 'file')} {'needs' if len(rows) == 1 else 'need'} {what}")
        return n_z, n_t, self.sources.max_scenes, "; ".join(waiting)

    def _sources_tooltip(self) -> str:
        lines = [f"{r.name}: {r.problem}" for r in self.assessment.unreadable] + self.sources.unsearched
        return "\n".join(lines + [f"skipped: {p.name}" for p in self.sources.skipped[:20]])

    def _shape_text(self) -> tuple[str, str]:
        infos = [r.info for r in self.assessment.rows if r.info is not None]
        shapes = {info.shape_yx for info in infos}
        if not infos:
            return "–", ""
        if len(shapes) == 1:
            rows, cols = next(iter(shapes))
            channels = {info.channels for info in infos}
            extra = f", {plural(next(iter(channels)), 'channel')}" if channels != {1} and len(channels) == 1 else ""
            dtypes = "/".join(sorted({info.dtype for info in infos}))
            return f"{rows} × {cols} px{extra} ({dtypes})", "rows × columns"
        rows, cols = sorted(s[0] for s in shapes), sorted(s[1] for s in shapes)
        return "different shapes", f"{len(shapes)} shapes, rows {rows[0]}–{rows[-1]}, columns {cols[0]}–{cols[-1]}"

    def _calibration_result(self, settings) -> str:
        if not settings.calibrate:
            return "Off: images keep their pixels (factor ×1)."
        target = format_pixel_size((settings.target_pixel_size_um,) * 2)
        plans = [r.plan for r in self.assessment.ready]
        factors = sorted({(round(p.factors[0], 6), round(p.factors[1], 6)) for p in plans})
        if not factors:
            return f"→ {target} per pixel"
        if len(factors) > 1:
            xs = sorted(f[1] for f in factors)
            return f"×{xs[0]:.4g} to ×{xs[-1]:.4g} (per image, see the table) → {target} per pixel"
        fy, fx = factors[0]
        text = f"×{fx:.4g}" if math.isclose(fy, fx) else f"×{fy:.4g} (y) ×{fx:.4g} (x)"
        shapes = {(p.info.shape_yx, p.scaled_shape) for p in plans}
        text += f" → {target} per pixel"
        if len(shapes) == 1:
            (r0, c0), (r1, c1) = next(iter(shapes))
            text += f"<br>{r0} × {c0} → {r1} × {c1} px"
        return text

    def _show_split(self, settings) -> None:
        """Which images go to val/ (the engine's split of the same names and seed)."""
        self.split = {}
        training = self.window.training
        if settings.val_fraction <= 0 or self.sources is None or not self.sources.images:
            training.set_split("")
            return
        names = self.sources.names()
        sides = split_sources(list(names.values()), settings.val_fraction, settings.seed)
        self.split = {path: sides[name] for path, name in names.items()}
        val = sorted(name for name in names.values() if sides[name] == "val")
        tip = "Images in val/:\n" + "\n".join(val[:40]) + ("\n…" if len(val) > 40 else "")
        training.set_split(f"{len(val)} of {plural(len(names), 'image')} to val/", tip)

    def close(self) -> None:
        if self._demo_dir is not None:
            shutil.rmtree(self._demo_dir, ignore_errors=True)
