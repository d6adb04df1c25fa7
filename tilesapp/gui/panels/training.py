"""Training set panel: the layout (plain folders or a framework's), masks and labels folders or
imported annotations, boxes from masks, whole images, the empty-tile filter, the train/val split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QWidget,
)

from tilesapp.core.settings import ANNOTATION_MASKS, LAYOUTS, WHOLE_IMAGE_LAYOUTS, Settings
from tilesapp.gui.panels._base import Panel, elide_path, note_label
from tilesapp.gui.wording import LAYOUT_LABELS

#: What each layout writes, for its tooltip.
LAYOUT_TIPS = {
    "plain": "images/ with masks/ and/or labels/ beside them (train/ and val/ with a split).",
    "ultralytics": "YOLO detection: images/ and labels/ per split, and data.yaml (needs boxes, uint8 tiles).",
    "nnunet": "nnU-Net v2 raw dataset: imagesTr/ (a file per channel), labelsTr/, imagesTs/ and dataset.json\n"
              "(needs class masks or annotations; lossless files).",
    "cellpose": "Cellpose: name.tif beside name_masks.tif (instance masks), in train/ and test/.",
    "stardist": "StarDist: images/ and masks/ (instance masks) with the same names.",
    "coco": "COCO (Detectron2, MMDetection…): images/ and annotations.json per split (boxes and polygons).",
}
ANNOTATION_MASK_LABELS = {"auto": "auto", "classes": "classes", "instances": "instances"}

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
    """The layout; masks / labels folders or an annotations file or folder (not settings: they
    name data, like the input folder); boxes from masks, whole images, what annotations are
    drawn as; the empty-tile filter, the box visibility and the split into train and val.

    Signals
    -------
    masksFolderRequested(), labelsFolderRequested(), clearMasksRequested(), clearLabelsRequested()
    annotationsRequested(str)
        Choose annotations: a "file" (GeoJSON, ROI, COCO) or a "folder" of them.
    clearAnnotationsRequested()
    """

    FIELDS = ("min_foreground", "keep_empty", "min_box_visibility", "val_fraction", "seed", "layout",
              "boxes_from_masks", "whole_images", "annotation_masks")
    masksFolderRequested = Signal()
    labelsFolderRequested = Signal()
    clearMasksRequested = Signal()
    clearLabelsRequested = Signal()
    annotationsRequested = Signal(str)  # "file" or "folder"
    clearAnnotationsRequested = Signal()

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
        self._build_training()

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
        grid.addWidget(QLabel("Layout:"), 0, 0)
        grid.addWidget(self.layoutCombo, 0, 1, 1, 3)
        grid.addWidget(self.make_error_label("layout", name="layoutError"), 1, 0, 1, 4)
        for row, (button, label, clear) in enumerate(
            ((self.masksFolderButton, self.masksFolderLabel, self.clearMasksButton),
             (self.labelsFolderButton, self.labelsFolderLabel, self.clearLabelsButton),
             (self.annotationsButton, self.annotationsLabel, self.clearAnnotationsButton)), start=2
        ):
            line = QHBoxLayout()
            line.addWidget(button)
            line.addWidget(label, 1)
            line.addWidget(clear)
            grid.addLayout(line, row, 0, 1, 4)
        grid.addWidget(self.make_error_label("annotations", name="annotationsError"), 5, 0, 1, 4)
        grid.addWidget(self.boxesFromMasksCheck, 6, 0, 1, 2)
        grid.addWidget(self.wholeImagesCheck, 6, 2, 1, 2)
        grid.addWidget(QLabel("Masks drawn as:"), 7, 0)
        grid.addWidget(self.annotationMasksCombo, 7, 1)
        grid.addWidget(self.make_error_label("boxes_from_masks", "whole_images", "annotation_masks",
                                             name="trainingKindError"), 8, 0, 1, 4)
        grid.addWidget(QLabel("Min. foreground:"), 9, 0)
        grid.addWidget(self.minForegroundSpin, 9, 1)
        grid.addWidget(QLabel("Keep empty:"), 9, 2)
        grid.addWidget(self.keepEmptySpin, 9, 3)
        grid.addWidget(QLabel("Box visibility:"), 10, 0)
        grid.addWidget(self.boxVisibilitySpin, 10, 1)
        grid.addWidget(QLabel("Seed:"), 10, 2)
        grid.addWidget(self.seedSpin, 10, 3)
        grid.addWidget(QLabel("Validation:"), 11, 0)
        grid.addWidget(self.valFractionSpin, 11, 1)
        grid.addWidget(self.splitLabel, 11, 2, 1, 2)
        grid.addWidget(self.make_error_label("min_foreground", "keep_empty", "min_box_visibility", "val_fraction",
                                             "seed", name="trainingError"), 12, 0, 1, 4)

        self.masksFolderButton.clicked.connect(self.masksFolderRequested)
        self.labelsFolderButton.clicked.connect(self.labelsFolderRequested)
        self.clearMasksButton.clicked.connect(self.clearMasksRequested)
        self.clearLabelsButton.clicked.connect(self.clearLabelsRequested)
        for spin in (self.minForegroundSpin, self.keepEmptySpin, self.boxVisibilitySpin, self.valFractionSpin):
            spin.valueChanged.connect(self._on_spin)
        self.seedSpin.valueChanged.connect(self._emit_edited)
        self.clearAnnotationsButton.clicked.connect(self.clearAnnotationsRequested)
        self.layoutCombo.currentIndexChanged.connect(self._on_layout)
        self.boxesFromMasksCheck.toggled.connect(self._emit_edited)
        self.wholeImagesCheck.toggled.connect(self._emit_edited)
        self.annotationMasksCombo.currentIndexChanged.connect(self._emit_edited)
        self.set_folders(None, None)

    def _build_training(self) -> None:
        """The layout and where the objects come from."""
        self.layoutCombo = QComboBox()
        self.layoutCombo.setObjectName("layoutCombo")
        for layout in LAYOUTS:
            self.layoutCombo.addItem(LAYOUT_LABELS[layout], layout)
            self.layoutCombo.setItemData(self.layoutCombo.count() - 1, LAYOUT_TIPS[layout], Qt.ItemDataRole.ToolTipRole)
        self.layoutCombo.setToolTip("Where the tiles go: plain folders, or the layout a framework trains on as it is.\n"
                                    + "\n".join(f"{LAYOUT_LABELS[k]}: {v}" for k, v in LAYOUT_TIPS.items()))
        self.annotationsButton = QPushButton("Annotations…")
        self.annotationsButton.setObjectName("annotationsButton")
        self.annotationsButton.setToolTip(
            "Objects drawn in QuPath (GeoJSON export), Fiji (ROI sets: RoiSet.zip, .roi) or COCO (.json), matched to the\n"
            "images by name; drawn into masks and boxes as the layout needs. They replace masks and labels folders.")
        menu = QMenu(self.annotationsButton)
        menu.setObjectName("annotationsMenu")
        for kind, text in (("file", "A file (GeoJSON, ROI set, COCO)…"), ("folder", "A folder of annotation files…")):
            action = QAction(text, menu)
            action.setObjectName(f"annotations{kind.capitalize()}Action")
            action.triggered.connect(lambda checked=False, kind=kind: self.annotationsRequested.emit(kind))
            menu.addAction(action)
        self.annotationsButton.setMenu(menu)
        self.annotationsLabel = note_label("No annotations", "annotationsLabel")
        self.clearAnnotationsButton = self._clear_button("clearAnnotationsButton", "Do not use annotations")
        self.boxesFromMasksCheck = QCheckBox("Boxes from masks")
        self.boxesFromMasksCheck.setObjectName("boxesFromMasksCheck")
        self.boxesFromMasksCheck.setToolTip("One box per object of the instance masks (class 'object'), for YOLO labels.\n"
                                            "Needs a masks folder of instance masks (one id per object).")
        self.wholeImagesCheck = QCheckBox("Whole images")
        self.wholeImagesCheck.setObjectName("wholeImagesCheck")
        self.wholeImagesCheck.setToolTip("Write every image whole (recalibrated and normalized, not cut): nnU-Net, Cellpose\n"
                                         "and StarDist sample their own patches.")
        self.annotationMasksCombo = QComboBox()
        self.annotationMasksCombo.setObjectName("annotationMasksCombo")
        for kind in ANNOTATION_MASKS:
            self.annotationMasksCombo.addItem(ANNOTATION_MASK_LABELS[kind], kind)
        self.annotationMasksCombo.setToolTip(
            "What imported annotations are drawn as in the masks of the plain layout: class ids (1, 2, … per class),\n"
            "or one id per object (instances); auto: classes. Cellpose and StarDist take instances, nnU-Net classes.")
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
            "layout": self.layoutCombo.currentData(),
            "boxes_from_masks": self.boxesFromMasksCheck.isChecked(),
            "whole_images": self.wholeImagesCheck.isChecked(),
            "annotation_masks": self.annotationMasksCombo.currentData(),
        }

    def _apply(self, settings: Settings) -> None:
        self.minForegroundSpin.setValue(100 * settings.min_foreground)
        self.keepEmptySpin.setValue(100 * settings.keep_empty)
        self.boxVisibilitySpin.setValue(100 * settings.min_box_visibility)
        self.valFractionSpin.setValue(100 * settings.val_fraction)
        self.seedSpin.setValue(min(settings.seed, MAX_SEED))
        self.layoutCombo.setCurrentIndex(max(0, self.layoutCombo.findData(settings.layout)))
        self.boxesFromMasksCheck.setChecked(settings.boxes_from_masks)
        self.wholeImagesCheck.setChecked(settings.whole_images)
        self.annotationMasksCombo.setCurrentIndex(max(0, self.annotationMasksCombo.findData(settings.annotation_masks)))
        self._enable()

    def _on_spin(self, *args) -> None:
        self._enable()
        self._emit_edited()

    def _on_layout(self, *args) -> None:
        self._enable()
        self._emit_edited()

    def _enable(self) -> None:
        # Kept-empty tiles only exist when the filter drops some.
        self.keepEmptySpin.setEnabled(self.minForegroundSpin.value() > 0)
        layout = self.layoutCombo.currentData()
        # A choice the layout does not take stays available while it is on, so it can be undone.
        whole = layout in WHOLE_IMAGE_LAYOUTS
        self.wholeImagesCheck.setEnabled(whole or self.wholeImagesCheck.isChecked())
        self.wholeImagesCheck.setToolTip(self.wholeImagesCheck.toolTip().split("\n\n")[0] + (
            "" if whole else f"\n\nThe {LAYOUT_LABELS[layout]} layout takes tiles."))
        fixed = layout != "plain"
        self.annotationMasksCombo.setEnabled(not fixed or self.annotationMasksCombo.currentData() != "auto")

    def set_folders(self, masks: Path | None, labels: Path | None, annotations: Path | None = None) -> None:
        """Show the chosen masks / labels folders and annotations (None: not used)."""
        for folder, label, clear, none in (
            (masks, self.masksFolderLabel, self.clearMasksButton, "No masks"),
            (labels, self.labelsFolderLabel, self.clearLabelsButton, "No labels"),
            (annotations, self.annotationsLabel, self.clearAnnotationsButton, "No annotations"),
        ):
            label.setText(none if folder is None else elide_path(str(folder), 30))
            label.setToolTip("" if folder is None else str(folder))
            clear.setEnabled(folder is not None)
        self.boxVisibilitySpin.setEnabled(labels is not None or annotations is not None)

    def set_split(self, text: str, tooltip: str = "") -> None:
        """How many images go to val/ (and train/)."""
        self.splitLabel.setText(text)
        self.splitLabel.setToolTip(tooltip)
