"""Calibration panel: input pixel size (from the metadata or typed), target pixel size."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from tilesapp.core.calibration import UNIT_LABELS, UNITS
from tilesapp.core.settings import Settings
from tilesapp.gui.panels._base import Panel, note_label

AUTO_PLACEHOLDER = "auto (from each file)"


def pixel_size_text(size: tuple[float, float] | None) -> str:
    """How a pixel size is written in the edit: ``0.65``, ``0.5 × 0.6`` (y × x), or empty (auto).

    >>> pixel_size_text((0.65, 0.65)), pixel_size_text((0.5, 0.6)), pixel_size_text(None)
    ('0.65', '0.5 × 0.6', '')
    """
    if size is None:
        return ""
    y, x = size
    return f"{x:.6g}" if f"{y:.6g}" == f"{x:.6g}" else f"{y:.6g} × {x:.6g}"


def parse_pixel_size(text: str) -> str | tuple[str, str] | None:
    """Split the text of the pixel size edit; values stay text for Settings to validate.

    Empty means auto; ``y × x`` (or ``y x x``, ``y; x``) gives anisotropic pixels; a decimal
    comma is accepted.

    >>> parse_pixel_size(""), parse_pixel_size("0,65"), parse_pixel_size("0.5 x 0.6")
    (None, '0.65', ('0.5', '0.6'))
    """
    text = text.strip()
    if not text or text.lower() == "auto":
        return None
    parts = [p.strip() for p in re.split(r"[×xX;*]", text) if p.strip()]
    if len(parts) == 2:
        return (parts[0].replace(",", "."), parts[1].replace(",", "."))
    return text.replace(",", ".")


def unit_combo(name: str) -> QComboBox:
    combo = QComboBox()
    combo.setObjectName(name)
    for unit in UNITS:
        combo.addItem(UNIT_LABELS[unit], unit)
    return combo


class CalibrationPanel(Panel):
    """Use calibration, pixel size + unit, target pixel size + unit, and what they give."""

    FIELDS = ("calibrate", "pixel_size", "unit", "target_pixel_size", "target_unit")

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Calibration", parent)
        self.setObjectName("calibrationPanel")
        self.calibrationCheck = QCheckBox("Use calibration (rescale to the target pixel size)")
        self.calibrationCheck.setObjectName("calibrationCheck")
        self.pixelSizeEdit = QLineEdit()
        self.pixelSizeEdit.setObjectName("pixelSizeEdit")
        self.pixelSizeEdit.setPlaceholderText(AUTO_PLACEHOLDER)
        self.pixelSizeEdit.setClearButtonEnabled(True)
        self.pixelSizeEdit.setToolTip(
            "Size of one pixel of the input images. Empty: each file's own metadata.\n"
            "Type 'y × x' for pixels that are not square."
        )
        self.unitCombo = unit_combo("unitCombo")
        self.targetPixelSizeEdit = QLineEdit()
        self.targetPixelSizeEdit.setObjectName("targetPixelSizeEdit")
        self.targetPixelSizeEdit.setToolTip("Pixel size the model was trained on; the tiles get it.")
        self.targetUnitCombo = unit_combo("targetUnitCombo")
        self.metadataLabel = note_label("", "metadataLabel")
        self.metadataLabel.setVisible(False)
        self.resultLabel = QLabel("–")
        self.resultLabel.setObjectName("resultLabel")
        self.resultLabel.setWordWrap(True)

        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        grid.addWidget(QLabel("Pixel size:"), 0, 0)
        grid.addWidget(self.pixelSizeEdit, 0, 1)
        grid.addWidget(self.unitCombo, 0, 2)
        grid.addWidget(self.metadataLabel, 1, 1, 1, 2)
        grid.addWidget(self.make_error_label("pixel_size", "unit", name="pixelSizeError"), 2, 0, 1, 3)
        grid.addWidget(QLabel("Target:"), 3, 0)
        grid.addWidget(self.targetPixelSizeEdit, 3, 1)
        grid.addWidget(self.targetUnitCombo, 3, 2)
        grid.addWidget(self.make_error_label("target_pixel_size", "target_unit", name="targetError"), 4, 0, 1, 3)
        grid.addWidget(QLabel("Result:"), 5, 0)
        grid.addWidget(self.resultLabel, 5, 1, 1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(self.calibrationCheck)
        layout.addLayout(grid)

        #: The pixel size shown came from the folder's metadata, not from the user.
        self.prefilled = False
        self.calibrationCheck.toggled.connect(self._emit_edited)
        self.calibrationCheck.toggled.connect(self._enable)
        self.pixelSizeEdit.textEdited.connect(self._on_user_pixel_size)
        self.unitCombo.activated.connect(self._on_user_pixel_size)
        self.targetPixelSizeEdit.textEdited.connect(self._emit_edited)
        self.unitCombo.currentIndexChanged.connect(self._emit_edited)
        self.targetUnitCombo.currentIndexChanged.connect(self._emit_edited)
        self._enable(self.calibrationCheck.isChecked())

    def values(self) -> dict[str, Any]:
        return {
            "calibrate": self.calibrationCheck.isChecked(),
            "pixel_size": parse_pixel_size(self.pixelSizeEdit.text()),
            "unit": self.unitCombo.currentData(),
            "target_pixel_size": self.targetPixelSizeEdit.text().strip().replace(",", "."),
            "target_unit": self.targetUnitCombo.currentData(),
        }

    def _apply(self, settings: Settings) -> None:
        self.prefilled = False
        self.calibrationCheck.setChecked(settings.calibrate)
        self.pixelSizeEdit.setText(pixel_size_text(settings.pixel_size))
        self.unitCombo.setCurrentIndex(max(0, self.unitCombo.findData(settings.unit)))
        self.targetPixelSizeEdit.setText(f"{settings.target_pixel_size:.6g}")
        self.targetUnitCombo.setCurrentIndex(max(0, self.targetUnitCombo.findData(settings.target_unit)))
        self._enable(settings.calibrate)

    def set_pixel_size(self, size: tuple[float, float] | None, unit: str = "um") -> None:
        """Fill the pixel size from the folder's metadata; None means auto."""
        with self.updating():
            self.pixelSizeEdit.setText(pixel_size_text(size))
            self.unitCombo.setCurrentIndex(max(0, self.unitCombo.findData(unit)))
        self.prefilled = size is not None
        self.edited.emit()

    def _on_user_pixel_size(self, *args) -> None:
        self.prefilled = False
        self._emit_edited()

    def set_metadata(self, text: str, tooltip: str = "") -> None:
        """What the folder's metadata says about pixel sizes."""
        self.metadataLabel.setText(text)
        self.metadataLabel.setToolTip(tooltip)
        self.metadataLabel.setVisible(bool(text))

    def set_result(self, text: str, tooltip: str = "") -> None:
        """Scale factor and resulting pixel size."""
        self.resultLabel.setText(text)
        self.resultLabel.setToolTip(tooltip)

    def _enable(self, on: bool) -> None:
        for widget in (self.pixelSizeEdit, self.unitCombo, self.targetPixelSizeEdit, self.targetUnitCombo):
            widget.setEnabled(on)
