"""Media panel: load a folder, show a sample mosaic, what was found, and — where stacks or
multi-scene files are loaded — what to cut of them (Planes)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from tilesapp.core.settings import Settings
from tilesapp.gui.panels._base import WARNING_STYLE, Panel, elide_path, note_label

#: What a Z stack gives, as the combo box offers it: (text, value); "plane" takes the spin box's number.
Z_ITEMS = (("— choose —", None), ("maximum projection", "max"), ("mean projection", "mean"),
           ("every plane", "each"), ("one plane:", "plane"))
T_ITEMS = (("— choose —", None), ("every frame", "each"), ("one frame:", "plane"))
#: Plane numbers are typed as the image names count them (z00, z01, …); the settings say which exist.
MAX_PLANE = 99_999


class MediaPanel(Panel):
    """Load (button or drop), Show sample, sources count and common shape; Planes (Z stacks,
    time series, scenes) when the loaded files have them.

    Signals
    -------
    loadRequested(), sampleRequested()
    """

    FIELDS = ("recursive", "z", "t", "scenes")
    loadRequested = Signal()
    sampleRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Media", parent)
        self.setObjectName("mediaPanel")
        self.folderLabel = note_label("No folder loaded — drop one on the window.", "folderLabel")
        self.loadButton = QPushButton("Load…")
        self.loadButton.setObjectName("loadButton")
        self.loadButton.setToolTip("Choose the folder that holds the images (Ctrl+O).")
        self.sampleButton = QPushButton("Show sample")
        self.sampleButton.setObjectName("sampleButton")
        self.sampleButton.setToolTip("A mosaic of up to 25 random images of the folder.")
        self.recursiveCheck = QCheckBox("Include sub-folders")
        self.recursiveCheck.setObjectName("recursiveCheck")
        self.sourcesLabel = QLabel("–")
        self.sourcesLabel.setObjectName("sourcesLabel")
        self.sourcesLabel.setWordWrap(True)
        self.shapeLabel = QLabel("–")
        self.shapeLabel.setObjectName("shapeLabel")
        self.shapeLabel.setWordWrap(True)
        self._build_planes()

        buttons = QHBoxLayout()
        buttons.addWidget(self.loadButton)
        buttons.addWidget(self.sampleButton)
        form = QFormLayout()
        form.addRow("Sources:", self.sourcesLabel)
        form.addRow("Shape:", self.shapeLabel)
        folder_line = QHBoxLayout()  # one line: the column must fit a laptop screen
        folder_line.addWidget(self.folderLabel, 1)
        folder_line.addWidget(self.recursiveCheck)
        layout = QVBoxLayout(self.body)
        layout.addLayout(buttons)
        layout.addLayout(folder_line)
        layout.addLayout(form)
        layout.addWidget(self.planesBox)
        layout.addWidget(self.make_error_label("z", "t", "scenes", name="planesError"))  # seen even when folded away

        self.loadButton.clicked.connect(self.loadRequested)
        self.sampleButton.clicked.connect(self.sampleRequested)
        self.recursiveCheck.toggled.connect(self._emit_edited)
        self.set_stacks(1, 1, 1, "")

    def _build_planes(self) -> None:
        """Z stacks, time series and scenes: shown where the loaded files have them."""
        self.planesBox = QWidget()
        self.planesBox.setObjectName("planesBox")
        self.zCombo = self._combo("zCombo", Z_ITEMS)
        self.zCombo.setToolTip("What a Z stack gives: a maximum or mean projection (one image), every plane as its\n"
                               "own image (named z00, z01, …), or one plane. A stack without a choice is not cut.")
        self.zPlaneSpin = self._plane_spin("zPlaneSpin", "The plane to cut, counted from 0 as the image names count (z00 is the first).")
        self.tCombo = self._combo("tCombo", T_ITEMS)
        self.tCombo.setToolTip("What a time series gives: every frame as its own image (named t00, t01, …), or one\n"
                               "frame. A time series without a choice is not cut.")
        self.tFrameSpin = self._plane_spin("tFrameSpin", "The frame to cut, counted from 0 as the image names count (t00 is the first).")
        self.scenesEdit = QLineEdit()
        self.scenesEdit.setObjectName("scenesEdit")
        self.scenesEdit.setPlaceholderText("all")
        self.scenesEdit.setToolTip("Scenes (series, positions) of each file to cut, counted from 0 as in the\n"
                                   "image names (s0, s1, …): e.g. 0, 2. Empty: all of them (Enter to apply).")
        self.planesNote = QLabel()
        self.planesNote.setObjectName("planesNote")
        self.planesNote.setWordWrap(True)
        self.planesNote.setStyleSheet(WARNING_STYLE)
        self.zLabel, self.tLabel, self.scenesLabel = QLabel("Z stacks:"), QLabel("Time series:"), QLabel("Scenes:")
        grid = QGridLayout(self.planesBox)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setColumnStretch(1, 1)
        grid.addWidget(note_label("Planes"), 0, 0, 1, 3)
        grid.addWidget(self.zLabel, 1, 0)
        grid.addWidget(self.zCombo, 1, 1)
        grid.addWidget(self.zPlaneSpin, 1, 2)
        grid.addWidget(self.tLabel, 2, 0)
        grid.addWidget(self.tCombo, 2, 1)
        grid.addWidget(self.tFrameSpin, 2, 2)
        grid.addWidget(self.scenesLabel, 3, 0)
        grid.addWidget(self.scenesEdit, 3, 1, 1, 2)
        grid.addWidget(self.planesNote, 4, 0, 1, 3)
        for combo in (self.zCombo, self.tCombo):
            combo.currentIndexChanged.connect(self._on_plane_choice)
        for spin in (self.zPlaneSpin, self.tFrameSpin):
            spin.valueChanged.connect(self._emit_edited)
        self.scenesEdit.editingFinished.connect(self._emit_edited)  # Enter or leaving the field

    @staticmethod
    def _combo(name: str, items) -> QComboBox:
        combo = QComboBox()
        combo.setObjectName(name)
        for text, value in items:
            combo.addItem(text, value)
        return combo

    @staticmethod
    def _plane_spin(name: str, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setObjectName(name)
        spin.setRange(0, MAX_PLANE)
        spin.setKeyboardTracking(False)  # a typed value counts on Enter or when leaving the field
        spin.setToolTip(tip)
        return spin

    def values(self) -> dict[str, Any]:
        return {"recursive": self.recursiveCheck.isChecked(),
                "z": self._choice(self.zCombo, self.zPlaneSpin), "t": self._choice(self.tCombo, self.tFrameSpin),
                "scenes": self.scenesEdit.text().strip() or None}

    @staticmethod
    def _choice(combo: QComboBox, spin: QSpinBox):
        value = combo.currentData()
        return spin.value() if value == "plane" else value

    def _apply(self, settings: Settings) -> None:
        self.recursiveCheck.setChecked(settings.recursive)
        for combo, spin, value in ((self.zCombo, self.zPlaneSpin, settings.z), (self.tCombo, self.tFrameSpin, settings.t)):
            if isinstance(value, int):
                spin.setValue(value)
                value = "plane"
            combo.setCurrentIndex(max(0, combo.findData(value)))
        self.scenesEdit.setText(", ".join(map(str, settings.scenes)) if settings.scenes is not None else "")
        self._enable_spins()

    def _on_plane_choice(self, *args) -> None:
        self._enable_spins()
        self._emit_edited()

    def _enable_spins(self) -> None:
        self.zPlaneSpin.setEnabled(self.zCombo.currentData() == "plane")
        self.tFrameSpin.setEnabled(self.tCombo.currentData() == "plane")

    def set_stacks(self, n_z: int, n_t: int, scenes: int, waiting: str) -> None:
        """Show the Planes choices the loaded files need: Z when a scene has Z planes, T when one
        has frames, Scenes when a file has several; ``waiting`` says which files wait for a choice."""
        for widgets, shown in (((self.zLabel, self.zCombo, self.zPlaneSpin), n_z > 1),
                               ((self.tLabel, self.tCombo, self.tFrameSpin), n_t > 1),
                               ((self.scenesLabel, self.scenesEdit), scenes > 1)):
            for widget in widgets:
                widget.setVisible(shown)
        self.zCombo.setItemText(4, f"one plane (of {n_z}):" if n_z > 1 else "one plane:")
        self.tCombo.setItemText(2, f"one frame (of {n_t}):" if n_t > 1 else "one frame:")
        self.planesNote.setText(f"⚠ {waiting}: these stacks are not cut until you choose." if waiting else "")
        self.planesNote.setVisible(bool(waiting))
        self.planesBox.setVisible(n_z > 1 or n_t > 1 or scenes > 1)

    def set_folder(self, text: str, tooltip: str = "") -> None:
        """Name the loaded folder (or files)."""
        self.folderLabel.setText(elide_path(text, 30))
        self.folderLabel.setToolTip(tooltip or text)

    def set_sources(self, text: str, tooltip: str = "") -> None:
        self.sourcesLabel.setText(text)
        self.sourcesLabel.setToolTip(tooltip)

    def set_shape(self, text: str, tooltip: str = "") -> None:
        self.shapeLabel.setText(text)
        self.shapeLabel.setToolTip(tooltip)
