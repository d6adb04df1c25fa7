"""Training set panel: masks and labels folders, the empty-tile filter, the train/val split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QWidget,
)

from tilesapp.core.settings import Settings
from tilesapp.gui.panels._base import Panel, elide_path, note_label

#: Longest seed the spin box takes (Qt spin boxes hold 32-bit integers).
MAX_SEED = 2**31 - 1


def percent_spin(name: str, maximum: float = 100.0, off_text: str = "") -> QDoubleSpinBox:
    """A spin box that shows a share (0–1 in the settings) as a percentage."""
    spin = QDoubleSpinBox()
    spin.setObjectName(name)
    spin.setRange(0.0, maximum)
    spin.setDecimals(1)
    spin.setSingleStep(5.0)
    spin.setSuffix(" %")
    spin.setKeyboardTracking(False)  # typed values count on Enter or when leaving the field
    _narrow(spin)
    if off_text:
        spin.setSpecialValueText(off_text)  # shown at the minimum (0)
    return spin


def _narrow(spin) -> None:
    """Let a spin box shrink to what it shows, not to its longest possible value, so the
    panel does not widen the column."""
    spin.setMinimumWidth(spin.minimumSizeHint().width())
    policy = spin.sizePolicy()
    policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
    spin.setSizePolicy(policy)


class TrainingPanel(Panel):
    """Masks / labels folders (not settings: they name data, like the input folder), the
    empty-tile filter, the box visibility and the split of the images into train and val.

    Signals
    -------
    masksFolderRequested(), labelsFolderRequested(), clearMasksRequested(), clearLabelsRequested()
    """

    FIELDS = ("min_foreground", "keep_empty", "min_box_visibility", "val_fraction", "seed")
    masksFolderRequested = Signal()
    labelsFolderRequested = Signal()
    clearMasksRequested = Signal()
    clearLabelsRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Training set", parent)
        self.setObjectName("trainingPanel")
        self.masksFolderButton = QPushButton("Masks folder…")
        self.masksFolderButton.setObjectName("masksFolderButton")
        self.masksFolderButton.setToolTip(
            "Label masks named like the images (same name, any image format), cut on the same tiles into masks/."
        )
        self.labelsFolderButton = QPushButton("Labels folder…")
        self.labelsFolderButton.setObjectName("labelsFolderButton")
        self.labelsFolderButton.setToolTip(
            "YOLO label files <image name>.txt (class cx cy w h, normalized), cut with the tiles into labels/."
        )
        self.masksFolderLabel = note_label("No masks", "masksFolderLabel")
        self.labelsFolderLabel = note_label("No labels", "labelsFolderLabel")
        self.clearMasksButton = self._clear_button("clearMasksButton", "Do not use masks")
        self.clearLabelsButton = self._clear_button("clearLabelsButton", "Do not use labels")

        self.minForegroundSpin = percent_spin("minForegroundSpin", off_text="off")
        self.minForegroundSpin.setToolTip(
            "Drop tiles with less foreground than this: mask > 0 with masks, the boxes' area with labels,\n"
            "else pixels above an automatic (Otsu) threshold. Off keeps every tile."
        )
        self.keepEmptySpin = percent_spin("keepEmptySpin")
        self.keepEmptySpin.setToolTip(
            "Share of the dropped tiles kept anyway, chosen at random with the seed,\n"
            "so that the model also sees background."
        )
        self.boxVisibilitySpin = percent_spin("boxVisibilitySpin")
        self.boxVisibilitySpin.setToolTip(
            "Minimum box visibility: a box enters a tile (clipped to it) when at least this share\n"
            "of its area lies inside the tile. Needs a labels folder."
        )
        self.valFractionSpin = percent_spin("valFractionSpin", maximum=99.0, off_text="no split")
        self.valFractionSpin.setToolTip(
            "Share of the images (never of one image's tiles) written to val/; the others go to train/."
        )
        self.seedSpin = QSpinBox()
        self.seedSpin.setObjectName("seedSpin")
        self.seedSpin.setRange(0, MAX_SEED)
        self.seedSpin.setKeyboardTracking(False)
        _narrow(self.seedSpin)
        self.seedSpin.setToolTip("Seed of the random choices (empty tiles kept, the split): same seed, same result.")
        self.splitLabel = note_label("", "splitLabel")

        grid = QGridLayout(self.body)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        for row, (button, label, clear) in enumerate(
            ((self.masksFolderButton, self.masksFolderLabel, self.clearMasksButton),
             (self.labelsFolderButton, self.labelsFolderLabel, self.clearLabelsButton))
        ):
            line = QHBoxLayout()
            line.addWidget(button)
            line.addWidget(label, 1)
            line.addWidget(clear)
            grid.addLayout(line, row, 0, 1, 4)
        grid.addWidget(QLabel("Min. foreground:"), 2, 0)
        grid.addWidget(self.minForegroundSpin, 2, 1)
        grid.addWidget(QLabel("Keep empty:"), 2, 2)
        grid.addWidget(self.keepEmptySpin, 2, 3)
        grid.addWidget(QLabel("Box visibility:"), 3, 0)
        grid.addWidget(self.boxVisibilitySpin, 3, 1)
        grid.addWidget(QLabel("Seed:"), 3, 2)
        grid.addWidget(self.seedSpin, 3, 3)
        grid.addWidget(QLabel("Validation:"), 4, 0)
        grid.addWidget(self.valFractionSpin, 4, 1)
        grid.addWidget(self.splitLabel, 4, 2, 1, 2)
        grid.addWidget(self.make_error_label(*self.FIELDS, name="trainingError"), 5, 0, 1, 4)

        self.masksFolderButton.clicked.connect(self.masksFolderRequested)
        self.labelsFolderButton.clicked.connect(self.labelsFolderRequested)
        self.clearMasksButton.clicked.connect(self.clearMasksRequested)
        self.clearLabelsButton.clicked.connect(self.clearLabelsRequested)
        for spin in (self.minForegroundSpin, self.keepEmptySpin, self.boxVisibilitySpin, self.valFractionSpin):
            spin.valueChanged.connect(self._on_spin)
        self.seedSpin.valueChanged.connect(self._emit_edited)
        self.set_folders(None, None)

    @staticmethod
    def _clear_button(name: str, tip: str) -> QToolButton:
        button = QToolButton()
        button.setObjectName(name)
        button.setText("✕")
        button.setToolTip(tip)
        button.setAccessibleName(tip)
        button.setAutoRaise(True)
        return button

    def values(self) -> dict[str, Any]:
        return {
            "min_foreground": self.minForegroundSpin.value() / 100,
            "keep_empty": self.keepEmptySpin.value() / 100,
            "min_box_visibility": self.boxVisibilitySpin.value() / 100,
            "val_fraction": self.valFractionSpin.value() / 100,
            "seed": self.seedSpin.value(),
        }

    def _apply(self, settings: Settings) -> None:
        self.minForegroundSpin.setValue(100 * settings.min_foreground)
        self.keepEmptySpin.setValue(100 * settings.keep_empty)
        self.boxVisibilitySpin.setValue(100 * settings.min_box_visibility)
        self.valFractionSpin.setValue(100 * settings.val_fraction)
        self.seedSpin.setValue(min(settings.seed, MAX_SEED))
        self._enable()

    def _on_spin(self, *args) -> None:
        self._enable()
        self._emit_edited()

    def _enable(self) -> None:
        # Kept-empty tiles only exist when the filter drops some.
        self.keepEmptySpin.setEnabled(self.minForegroundSpin.value() > 0)

    def set_folders(self, masks: Path | None, labels: Path | None) -> None:
        """Show the chosen masks / labels folders (None: not used)."""
        for folder, label, clear, none in (
            (masks, self.masksFolderLabel, self.clearMasksButton, "No masks"),
            (labels, self.labelsFolderLabel, self.clearLabelsButton, "No labels"),
        ):
            label.setText(none if folder is None else elide_path(str(folder), 30))
            label.setToolTip("" if folder is None else str(folder))
            clear.setEnabled(folder is not None)
        self.boxVisibilitySpin.setEnabled(labels is not None)

    def set_split(self, text: str, tooltip: str = "") -> None:
        """How many images go to val/ (and train/)."""
        self.splitLabel.setText(text)
        self.splitLabel.setToolTip(tooltip)
