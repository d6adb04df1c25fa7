"""Calibration panel: input pixel size (from the metadata or typed), target pixel size."""

from __future__ import annotations

import re
from typing import Any

from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from tilesapp.core.calibration import UNIT_LABELS, UNITS
from tilesapp.core.settings import Settings
from tilesapp.gui.panels._base import Panel, note_label

AUTO_PLACEHOLDER = "none: such images fail"


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
    """Use calibration; the pixel size given to images without calibration (or, explicitly, to
    all images); target pixel size; what they give.

    A pixel size typed here never replaces the metadata of a calibrated image unless "Apply to
    all images" is ticked; a pixel size for one image is typed in the sources table.
    """

    FIELDS = ("calibrate", "pixel_size", "pixel_size_scope", "unit", "target_pixel_size", "target_unit")

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
            "Pixel size given to the images whose files carry no calibration (Enter to apply).\n"
            "Calibrated images keep their own unless 'Apply to all images' is ticked.\n"
            "Type 'y × x' for pixels that are not square."
        )
        self.unitCombo = unit_combo("unitCombo")
        self.allCheck = QCheckBox("Apply to all images (replaces their metadata)")
        self.allCheck.setObjectName("pixelSizeAllCheck")
        self.allCheck.setToolTip("Give the pixel size above to every image, even those whose files carry one.")
        self.targetPixelSizeEdit = QLineEdit()
        self.targetPixelSizeEdit.setObjectName("targetPixelSizeEdit")
        self.targetPixelSizeEdit.setToolTip("Pixel size the model was trained on; the tiles get it (Enter to apply).")
        self.targetUnitCombo = unit_combo("targetUnitCombo")
        self.metadataLabel = note_label("", "metadataLabel")
        self.metadataLabel.setVisible(False)
        self.resultLabel = QLabel("–")
        self.resultLabel.setObjectName("resultLabel")
        self.resultLabel.setWordWrap(True)

        grid = QGridLayout()
        grid.setColumnStretch(1, 1)
        grid.addWidget(QLabel("Without calibration:"), 0, 0)
        grid.addWidget(self.pixelSizeEdit, 0, 1)
        grid.addWidget(self.unitCombo, 0, 2)
        grid.addWidget(self.allCheck, 1, 0, 1, 3)
        grid.addWidget(self.metadataLabel, 2, 0, 1, 3)
        grid.addWidget(self.make_error_label("pixel_size", "unit", "pixel_size_scope", "file_pixel_sizes",
                                             name="pixelSizeError"), 3, 0, 1, 3)
        grid.addWidget(QLabel("Target:"), 4, 0)
        grid.addWidget(self.targetPixelSizeEdit, 4, 1)
        grid.addWidget(self.targetUnitCombo, 4, 2)
        grid.addWidget(self.make_error_label("target_pixel_size", "target_unit", name="targetError"), 5, 0, 1, 3)
        grid.addWidget(QLabel("Result:"), 6, 0)
        grid.addWidget(self.resultLabel, 6, 1, 1, 2)
        layout = QVBoxLayout(self.body)
        layout.addWidget(self.calibrationCheck)
        layout.addLayout(grid)

        self.calibrationCheck.toggled.connect(self._emit_edited)
        self.calibrationCheck.toggled.connect(self._enable)
        self.allCheck.toggled.connect(self._emit_edited)
        # Typed values count when the typing is over: Enter or leaving the field.
        self.pixelSizeEdit.editingFinished.connect(self._emit_edited)
        self.targetPixelSizeEdit.editingFinished.connect(self._emit_edited)
        self.unitCombo.currentIndexChanged.connect(self._emit_edited)
        self.targetUnitCombo.currentIndexChanged.connect(self._emit_edited)
        self._enable(self.calibrationCheck.isChecked())

    def values(self) -> dict[str, Any]:
        return {
            "calibrate": self.calibrationCheck.isChecked(),
            "pixel_size": parse_pixel_size(self.pixelSizeEdit.text()),
            "pixel_size_scope": "all" if self.allCheck.isChecked() else "uncalibrated",
            "unit": self.unitCombo.currentData(),
            "target_pixel_size": self.targetPixelSizeEdit.text().strip().replace(",", "."),
            "target_unit": self.targetUnitCombo.currentData(),
        }

    def _apply(self, settings: Settings) -> None:
        self.calibrationCheck.setChecked(settings.calibrate)
        self.pixelSizeEdit.setText(pixel_size_text(settings.pixel_size))
        self.allCheck.setChecked(settings.pixel_size is not None and settings.pixel_size_scope == "all")
        self.unitCombo.setCurrentIndex(max(0, self.unitCombo.findData(settings.unit)))
        self.targetPixelSizeEdit.setText(f"{settings.target_pixel_size:.6g}")
        self.targetUnitCombo.setCurrentIndex(max(0, self.targetUnitCombo.findData(settings.target_unit)))
        self._enable(settings.calibrate)

    def set_metadata(self, text: str, tooltip: str = "") -> None:
        """What the images' metadata says about pixel sizes, and who gets the typed one."""
        self.metadataLabel.setText(text)
        self.metadataLabel.setToolTip(tooltip)
        self.metadataLabel.setVisible(bool(text))

    def set_result(self, text: str, tooltip: str = "") -> None:
        """Scale factor and resulting pixel size."""
        self.resultLabel.setText(text)
        self.resultLabel.setToolTip(tooltip)

    def _enable(self, on: bool) -> None:
        for widget in (self.pixelSizeEdit, self.unitCombo, self.allCheck, self.targetPixelSizeEdit,
                       self.targetUnitCombo):
            widget.setEnabled(on)
