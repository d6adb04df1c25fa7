"""Tiles panel: tile size and overlap, the preview and stepping through its tiles."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QWidget,
)

from tilesapp.core.settings import PAD_MODES, Settings
from tilesapp.gui.panels._base import Panel

#: What the size and overlap fields let through: the settings say what is allowed, next to the
#: field, instead of the field silently clamping a typed value.
FIELD_MAX = 9_999_999


class TilesPanel(Panel):
    """Tile size, overlap, padding; Preview tiles, next image, slider, show all, output values, count.

    Signals
    -------
    previewRequested(), anotherRequested()
        Preview an image; the next image of the sources table.
    outputValuesToggled(bool)
        Show the values the tiles will hold (after normalization and the cast), or the source's.
    currentTileChanged(int)
        The slider moved to tile ``index``.
    showAllToggled(bool)
    showAnnotationsToggled(bool)
        Draw the masks / boxes of the previewed image, or not.
    """

    FIELDS = ("tile_size", "overlap", "pad_mode")
    previewRequested = Signal()
    anotherRequested = Signal()
    currentTileChanged = Signal(int)
    showAllToggled = Signal(bool)
    showAnnotationsToggled = Signal(bool)
    outputValuesToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Tiles", parent)
        self.setObjectName("tilesPanel")
        self.patchSizeSpin = QSpinBox()  # objectName kept from the ancestor widget
        self.patchSizeSpin.setObjectName("patchSizeSpin")
        self.patchSizeSpin.setRange(0, FIELD_MAX)
        self.patchSizeSpin.setSingleStep(16)
        self.patchSizeSpin.setSuffix(" px")
        self.patchSizeSpin.setToolTip("Side of the square tiles, in pixels of the recalibrated image (Enter to apply).")
        self.overlapSpin = QSpinBox()
        self.overlapSpin.setObjectName("overlapSpin")
        self.overlapSpin.setRange(0, FIELD_MAX)
        self.overlapSpin.setSingleStep(8)
        self.overlapSpin.setSuffix(" px")
        self.overlapSpin.setToolTip("Pixels shared by neighbouring tiles; the last tile of a row or column may share more.")
        for spin in (self.patchSizeSpin, self.overlapSpin):
            spin.setKeyboardTracking(False)  # a typed value counts on Enter or when leaving the field
        self.padModeCombo = QComboBox()
        self.padModeCombo.setObjectName("padModeCombo")
        for mode in PAD_MODES:
            self.padModeCombo.addItem(mode, mode)
        self.padModeCombo.setToolTip("How an image smaller than a tile is filled up to the tile size.")

        self.previewButton = QPushButton("Preview tiles")
        self.previewButton.setObjectName("previewButton")
        self.previewButton.setToolTip(
            "Recalibrate the image selected in the sources table (the first one otherwise) and draw its tiles."
        )
        self.anotherButton = QPushButton("Next image")
        self.anotherButton.setObjectName("anotherImageButton")
        self.anotherButton.setToolTip("Preview the next image of the sources table (or click a row of the table).")
        self.tileSlider = QSlider(Qt.Orientation.Horizontal)
        self.tileSlider.setObjectName("tileSlider")
        self.tileSlider.setRange(0, 0)
        self.tileSlider.setPageStep(1)
        self.tileSlider.setToolTip("Step through the tiles of the previewed image (← → keys when focused).")
        self.tileIndexLabel = QLabel("–")
        self.tileIndexLabel.setObjectName("tileIndexLabel")
        self.tileIndexLabel.setMinimumWidth(96)
        self.tileIndexLabel.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.showAllCheck = QCheckBox("Show all tiles")
        self.showAllCheck.setObjectName("showAllCheck")
        self.showAnnotationsCheck = QCheckBox("Show masks/boxes")
        self.showAnnotationsCheck.setObjectName("showAnnotationsCheck")
        self.showAnnotationsCheck.setChecked(True)
        self.showAnnotationsCheck.setToolTip("Draw the mask (coloured by label) or the boxes of the previewed image.")
        self.outputValuesCheck = QCheckBox("Show output values")
        self.outputValuesCheck.setObjectName("outputValuesCheck")
        self.outputValuesCheck.setToolTip(
            "Show the values the tiles will hold: after normalization and the cast to the output type\n"
            "(a near-black output is seen before exporting). Unticked: the source's values, recalibrated."
        )
        self.tileCountLabel = QLabel("–")
        self.tileCountLabel.setObjectName("tileCountLabel")
        self.tileCountLabel.setWordWrap(True)

        grid = QGridLayout(self.body)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        grid.addWidget(QLabel("Size:"), 0, 0)
        grid.addWidget(self.patchSizeSpin, 0, 1)
        grid.addWidget(QLabel("Overlap:"), 0, 2)
        grid.addWidget(self.overlapSpin, 0, 3)
        grid.addWidget(QLabel("Padding:"), 1, 0)
        grid.addWidget(self.padModeCombo, 1, 1)
        grid.addWidget(self.make_error_label("tile_size", "overlap", "pad_mode", name="tilesError"), 2, 0, 1, 4)
        buttons = QHBoxLayout()
        buttons.addWidget(self.previewButton)
        buttons.addWidget(self.anotherButton)
        grid.addLayout(buttons, 3, 0, 1, 4)
        slider = QHBoxLayout()
        slider.addWidget(self.tileSlider, 1)
        slider.addWidget(self.tileIndexLabel)
        grid.addLayout(slider, 4, 0, 1, 4)
        grid.addWidget(self.showAllCheck, 5, 0, 1, 2)
        grid.addWidget(self.showAnnotationsCheck, 5, 2, 1, 2)
        grid.addWidget(self.outputValuesCheck, 6, 0, 1, 4)
        grid.addWidget(QLabel("Tiles:"), 7, 0)
        grid.addWidget(self.tileCountLabel, 7, 1, 1, 3)

        self.patchSizeSpin.valueChanged.connect(self._emit_edited)
        self.overlapSpin.valueChanged.connect(self._emit_edited)
        self.padModeCombo.currentIndexChanged.connect(self._emit_edited)
        self.previewButton.clicked.connect(self.previewRequested)
        self.anotherButton.clicked.connect(self.anotherRequested)
        self.tileSlider.valueChanged.connect(self._on_slider)
        self.showAllCheck.toggled.connect(self.showAllToggled)
        self.showAnnotationsCheck.toggled.connect(self.showAnnotationsToggled)
        self.outputValuesCheck.toggled.connect(self.outputValuesToggled)
        self._count = 0
        self.set_tiles(None)

    def values(self) -> dict[str, Any]:
        return {
            "tile_size": self.patchSizeSpin.value(),
            "overlap": self.overlapSpin.value(),
            "pad_mode": self.padModeCombo.currentData(),
        }

    def _apply(self, settings: Settings) -> None:
        self.patchSizeSpin.setValue(settings.tile_size)
        self.overlapSpin.setValue(settings.overlap)
        self.padModeCombo.setCurrentIndex(max(0, self.padModeCombo.findData(settings.pad_mode)))

    def set_locked(self, locked: bool) -> None:
        """Only the settings are locked during an export: previewing stays possible."""
        for widget in (self.patchSizeSpin, self.overlapSpin, self.padModeCombo):
            widget.setEnabled(not locked)

    def set_tiles(self, count: int | None, text: str = "", current: int = 0, annotated: bool = False) -> None:
        """Tiles of the previewed image (None: no preview): slider range and count label;
        ``annotated``: the preview has a mask or boxes to show."""
        with self.updating():
            self.tileSlider.blockSignals(True)
            self.tileSlider.setRange(0, max(0, (count or 1) - 1))
            self.tileSlider.setValue(min(current, max(0, (count or 1) - 1)))
            self.tileSlider.blockSignals(False)
        has = bool(count)
        self._count = count or 0
        self.tileSlider.setEnabled(has)
        self.showAllCheck.setEnabled(has)
        self.showAnnotationsCheck.setEnabled(has and annotated)
        self.tileCountLabel.setText(text if has else "– (preview an image)")
        self._show_index()

    def current_tile(self) -> int:
        return self.tileSlider.value()

    def _on_slider(self, index: int) -> None:
        self._show_index()
        self.currentTileChanged.emit(index)

    def _show_index(self) -> None:
        if self.tileSlider.isEnabled():
            # Tiles are counted from 1 on screen (the files from 000).
            self.tileIndexLabel.setText(f"tile {self.tileSlider.value() + 1} of {self._count}")
        else:
            self.tileIndexLabel.setText("–")
