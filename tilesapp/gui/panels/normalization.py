"""Normalization panel: histogram stretching, target bounds, output type and format, presets;
which channels are kept (and in which order), and whether colours are stretched jointly."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QRadioButton,
    QToolButton,
    QWidget,
)

from tilesapp.core.settings import CHANNEL_STRETCHES, DEFAULT_BOUNDS, DTYPES, FORMATS, PRESETS, Settings
from tilesapp.gui.panels._base import Panel

CUSTOM = "Custom"
#: How presets are named in the combo box.
PRESET_LABELS = {"unet": "UNet", "yolo": "YOLO"}
NORM_TIPS = {
    "none": "Values are kept as they are; the output type must hold them.",
    "local": "Each tile is stretched from its own minimum/maximum (noise gets stretched too).",
    "global": "Each image is stretched from its minimum/maximum; dim regions stay dim.",
}


#: How the colour stretch choices are named, and what they do.
STRETCH_LABELS = {"auto": "auto", "joint": "joint", "each": "each channel"}
STRETCH_TIPS = {
    "auto": "RGB colour (brightfield, H&E, IHC) is stretched jointly, so stain colours keep their balance;\n"
            "fluorescence channels each on its own.",
    "joint": "One low/high over all channels: their balance is kept.",
    "each": "Every channel stretched from its own low/high (fluorescence channels of unrelated brightness).",
}


def channels_text(channels: tuple | None) -> str:
    """``DAPI, FITC BP`` or ``0, 2`` for the channels field ("" for all).

    >>> channels_text(("DAPI", 2)), channels_text(None)
    ('DAPI, 2', '')
    """
    return "" if channels is None else ", ".join(map(str, channels))


def bound_text(value: float) -> str:
    """``0``, ``255``, ``0.5``: bounds without useless decimals."""
    return f"{value:.10g}"


class NormalizationPanel(Panel):
    """None / local / global, percentiles, target bounds, output type and format, presets.

    Signals
    -------
    presetChosen(str)
        The user picked a preset ("unet" or "yolo").
    """

    FIELDS = ("norm", "percentiles", "bounds", "dtype", "format", "channels", "channel_stretch")
    presetChosen = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Normalization", parent)
        self.setObjectName("normalizationPanel")
        self.presetCombo = QComboBox()
        self.presetCombo.setObjectName("presetCombo")
        self.presetCombo.addItem(CUSTOM, "")
        for name in PRESETS:
            self.presetCombo.addItem(PRESET_LABELS.get(name, name), name)
        self.presetCombo.setToolTip(
            "UNet: global, 0–1, float32, .tif.  YOLO: global, 0–255, uint8, .png.\nSets the four fields below."
        )

        self.normNone = QRadioButton("None")
        self.normNone.setObjectName("normNone")
        self.normLocal = QRadioButton("Local")
        self.normLocal.setObjectName("normLocal")
        self.normGlobal = QRadioButton("Global")
        self.normGlobal.setObjectName("normGlobal")
        self._norm_buttons = {"none": self.normNone, "local": self.normLocal, "global": self.normGlobal}
        self._norm_group = QButtonGroup(self)
        for name, button in self._norm_buttons.items():
            button.setToolTip(NORM_TIPS[name])
            self._norm_group.addButton(button)

        self.lowPercentileSpin = self._percentile_spin("lowPercentileSpin")
        self.highPercentileSpin = self._percentile_spin("highPercentileSpin")
        self.lowPercentileSpin.setToolTip("Values below this percentile map to the lower bound (0 = minimum).")
        self.highPercentileSpin.setToolTip("Values above this percentile map to the upper bound (100 = maximum).")
        self.lowerBoundEdit = QLineEdit()
        self.lowerBoundEdit.setObjectName("lowerBoundEdit")
        self.upperBoundEdit = QLineEdit()
        self.upperBoundEdit.setObjectName("upperBoundEdit")
        for edit in (self.lowerBoundEdit, self.upperBoundEdit):
            edit.setToolTip("Target bounds of the stretched values; they follow the type (0–1 for float32,\n"
                            "0–255 for uint8, 0–65535 for uint16) until you type your own (Enter to apply).")
        self.dtypeCombo = QComboBox()
        self.dtypeCombo.setObjectName("dtypeCombo")
        for dtype in DTYPES:
            self.dtypeCombo.addItem(dtype, dtype)
        self.formatCombo = QComboBox()
        self.formatCombo.setObjectName("formatCombo")
        for fmt in FORMATS:
            self.formatCombo.addItem(f".{fmt}", fmt)
        self.formatCombo.setToolTip(".tif stores any type; .png uint8 and uint16; .jpg uint8 only (lossy).")
        self.channelStretchCombo = QComboBox()
        self.channelStretchCombo.setObjectName("channelStretchCombo")
        for value in CHANNEL_STRETCHES:
            self.channelStretchCombo.addItem(STRETCH_LABELS[value], value)
            self.channelStretchCombo.setItemData(self.channelStretchCombo.count() - 1, STRETCH_TIPS[value],
                                                 Qt.ItemDataRole.ToolTipRole)
        self.channelStretchCombo.setToolTip("How the channels of an image are stretched:\n"
                                            + "\n".join(f"{STRETCH_LABELS[k]}: {v}" for k, v in STRETCH_TIPS.items()))
        self.channelsEdit = QLineEdit()
        self.channelsEdit.setObjectName("channelsEdit")
        self.channelsEdit.setPlaceholderText("all, in the file's order")
        self.channelsEdit.setToolTip("Channels to keep, in this order: their names (DAPI, FITC BP) or numbers from 0,\n"
                                     "separated by commas. Empty: every channel (Enter to apply).")
        self.channelsButton = QToolButton()
        self.channelsButton.setObjectName("channelsButton")
        self.channelsButton.setText("Names ▾")
        self.channelsButton.setToolTip("The channel names of the loaded images: pick one to add it to the list.")
        self.channelsButton.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.channelsMenu = QMenu(self.channelsButton)
        self.channelsMenu.setObjectName("channelsMenu")
        self.channelsButton.setMenu(self.channelsMenu)
        self.channelsMenu.aboutToShow.connect(self._fill_channels_menu)  # filled when opened, never while in use
        self._channel_names: list[str] = []
        self.set_channel_names([])

        norms = QHBoxLayout()
        for button in self._norm_buttons.values():
            norms.addWidget(button)
        norms.addStretch(1)
        grid = QGridLayout(self.body)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        grid.addWidget(QLabel("Preset:"), 0, 0)
        grid.addWidget(self.presetCombo, 0, 1, 1, 3)
        grid.addWidget(QLabel("Stretch:"), 1, 0)
        grid.addLayout(norms, 1, 1, 1, 3)
        grid.addWidget(QLabel("Percentiles:"), 2, 0)
        grid.addWidget(self.lowPercentileSpin, 2, 1)
        grid.addWidget(QLabel("to"), 2, 2)
        grid.addWidget(self.highPercentileSpin, 2, 3)
        grid.addWidget(self.make_error_label("percentiles"), 3, 0, 1, 4)
        grid.addWidget(QLabel("Bounds:"), 4, 0)
        grid.addWidget(self.lowerBoundEdit, 4, 1)
        grid.addWidget(QLabel("to"), 4, 2)
        grid.addWidget(self.upperBoundEdit, 4, 3)
        grid.addWidget(self.make_error_label("bounds", name="boundsError"), 5, 0, 1, 4)
        grid.addWidget(QLabel("Type:"), 6, 0)
        grid.addWidget(self.dtypeCombo, 6, 1)
        grid.addWidget(QLabel("as"), 6, 2)
        grid.addWidget(self.formatCombo, 6, 3)
        grid.addWidget(self.make_error_label("dtype", "format", "norm", name="outputError"), 7, 0, 1, 4)
        grid.addWidget(QLabel("Channels:"), 8, 0)
        channels = QHBoxLayout()
        channels.addWidget(self.channelsEdit, 1)
        channels.addWidget(self.channelsButton)
        grid.addLayout(channels, 8, 1, 1, 3)
        grid.addWidget(QLabel("Colours:"), 9, 0)
        grid.addWidget(self.channelStretchCombo, 9, 1, 1, 3)
        grid.addWidget(self.make_error_label("channels", "channel_stretch", name="channelsError"), 10, 0, 1, 4)

        self.presetCombo.activated.connect(self._on_preset)
        self._norm_group.buttonToggled.connect(self._on_norm_toggled)
        for spin in (self.lowPercentileSpin, self.highPercentileSpin):
            spin.valueChanged.connect(self._emit_edited)
        for edit in (self.lowerBoundEdit, self.upperBoundEdit):
            edit.editingFinished.connect(self._on_bound_edited)  # Enter or leaving the field
        self.dtypeCombo.currentIndexChanged.connect(self._on_dtype)
        self.formatCombo.currentIndexChanged.connect(self._emit_edited)
        self.channelStretchCombo.currentIndexChanged.connect(self._emit_edited)
        self.channelsEdit.editingFinished.connect(self._emit_edited)  # Enter or leaving the field
        #: The bounds follow the output type until the user types one.
        self._bounds_auto = True

    @staticmethod
    def _percentile_spin(name: str) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setObjectName(name)
        spin.setRange(0.0, 100.0)
        spin.setDecimals(2)
        spin.setSingleStep(0.1)
        spin.setSuffix(" %")
        spin.setKeyboardTracking(False)  # typed values count on Enter or when leaving the field
        return spin

    def norm(self) -> str:
        return next((name for name, b in self._norm_buttons.items() if b.isChecked()), "global")

    def values(self) -> dict[str, Any]:
        return {
            "norm": self.norm(),
            "percentiles": (self.lowPercentileSpin.value(), self.highPercentileSpin.value()),
            "bounds": None if self._bounds_auto else (
                self.lowerBoundEdit.text().strip().replace(",", "."),
                self.upperBoundEdit.text().strip().replace(",", "."),
            ),
            "dtype": self.dtypeCombo.currentData(),
            "format": self.formatCombo.currentData(),
            "channels": self.channelsEdit.text().strip() or None,
            "channel_stretch": self.channelStretchCombo.currentData(),
        }

    def _apply(self, settings: Settings) -> None:
        self._norm_buttons[settings.norm].setChecked(True)
        self._bounds_auto = settings.bounds is None
        self.lowPercentileSpin.setValue(settings.percentiles[0])
        self.highPercentileSpin.setValue(settings.percentiles[1])
        self.lowerBoundEdit.setText(bound_text(settings.output_bounds[0]))
        self.upperBoundEdit.setText(bound_text(settings.output_bounds[1]))
        self.dtypeCombo.setCurrentIndex(max(0, self.dtypeCombo.findData(settings.dtype)))
        self.formatCombo.setCurrentIndex(max(0, self.formatCombo.findData(settings.format)))
        self.channelStretchCombo.setCurrentIndex(max(0, self.channelStretchCombo.findData(settings.channel_stretch)))
        self.channelsEdit.setText(channels_text(settings.channels))
        self._enable_stretch()
        self.show_preset(settings.preset)

    def set_channel_names(self, names: list[str]) -> None:
        """The channel names the loaded images' metadata gives, offered in the Names menu."""
        self._channel_names = list(names)
        self.channelsButton.setEnabled(bool(names) or bool(self.channelsEdit.text()))

    def _fill_channels_menu(self) -> None:
        names = self._channel_names
        self.channelsMenu.clear()
        all_channels = QAction("All channels (clear the list)", self.channelsMenu)
        all_channels.triggered.connect(lambda checked=False: self._set_channels(""))
        self.channelsMenu.addAction(all_channels)
        if names:
            self.channelsMenu.addSeparator()
        for name in names:
            action = QAction(name, self.channelsMenu)
            action.triggered.connect(lambda checked=False, name=name: self._add_channel(name))
            self.channelsMenu.addAction(action)

    def _add_channel(self, name: str) -> None:
        kept = [p.strip() for p in self.channelsEdit.text().split(",") if p.strip()]
        if name not in kept:
            kept.append(name)
        self._set_channels(", ".join(kept))

    def _set_channels(self, text: str) -> None:
        self.channelsEdit.setText(text)
        self._emit_edited()

    def _on_bound_edited(self) -> None:
        self._bounds_auto = False
        self._emit_edited()

    def _on_dtype(self, *args) -> None:
        if self._bounds_auto and not self._updating:  # automatic bounds are the type's range
            low, high = DEFAULT_BOUNDS[self.dtypeCombo.currentData()]
            self.lowerBoundEdit.setText(bound_text(low))
            self.upperBoundEdit.setText(bound_text(high))
        self._emit_edited()

    def show_preset(self, name: str | None) -> None:
        """Show which preset the current values match ("Custom" for none)."""
        with self.updating():
            self.presetCombo.setCurrentIndex(max(0, self.presetCombo.findData(name or "")))

    def _on_preset(self, index: int) -> None:
        name = self.presetCombo.itemData(index)
        if name:
            self.presetChosen.emit(name)

    def _on_norm_toggled(self, button, checked: bool) -> None:
        if checked:
            self._enable_stretch()
            self._emit_edited()

    def _enable_stretch(self) -> None:
        # With "none" the values are kept: bounds and percentiles play no part.
        on = self.norm() != "none"
        for widget in (self.lowPercentileSpin, self.highPercentileSpin, self.lowerBoundEdit, self.upperBoundEdit,
                       self.channelStretchCombo):
            widget.setEnabled(on)
