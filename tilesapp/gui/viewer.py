"""The central image view: pan/zoom, levels, tile grid, mask and box overlays, a scale bar.

Coordinates are data pixels with row 0 at the top: pixel ``(row, col)`` covers
``[col, col + 1] × [row, row + 1]``, so a tile box ``[y0:y1, x0:x1]`` is drawn as the rectangle
from ``(x0, y0)`` to ``(x1, y1)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen, QPicture
from PySide6.QtWidgets import QGraphicsRectItem, QLabel, QStackedLayout, QWidget

from tilesapp.core.annotations import Boxes, resize_nearest
from tilesapp.core.geometry import TileGrid

# Before any ImageItem exists: arrays are (rows, cols[, channels]) like everywhere else.
pg.setConfigOptions(imageAxisOrder="row-major")

#: Outline colours cycled over tiles in "show all" mode, so overlapping tiles stay apart.
TILE_COLORS = ("#4fc3f7", "#81c784", "#f06292", "#ba68c8", "#4db6ac", "#7986cb")  # no amber: the highlight's
HIGHLIGHT_COLOR = "#ffd54f"
#: Mask labels 1, 2, … and box classes 0, 1, … cycle through these (red marks dropped tiles).
LABEL_COLORS = ("#00e676", "#ff9100", "#00b0ff", "#d500f9", "#ffea00", "#ff4081", "#1de9b6", "#c6ff00")
DROPPED_COLOR = "#ff3d3d"
MASK_ALPHA = 140
#: Larger images are reduced for display (in the worker), so that the GUI thread never
#: resamples megapixels at each zoom step; hovering still reads the full-resolution values.
MAX_DISPLAY_SIDE = 4096


@dataclass(frozen=True)
class DisplayImage:
    """An image ready for the screen: (rows, cols) grey or (rows, cols, 3) colour, and levels.

    ``shape`` is the (rows, cols) the image stands for in data coordinates; ``data`` may be
    smaller (a large image is reduced for display), and is then stretched over that shape.
    """

    data: np.ndarray
    levels: tuple[float, float]
    note: str = ""  # e.g. how channels were combined
    shape: tuple[int, int] | None = None
    channel_levels: tuple[tuple[float, float], ...] = ()  # a composite's stretch of each channel

    @property
    def extent(self) -> tuple[int, int]:
        return self.shape if self.shape is not None else tuple(self.data.shape[:2])


def display_image(
    image: np.ndarray, axes: str = "YX", like: DisplayImage | None = None, extent: tuple[int, int] | None = None
) -> DisplayImage:
    """Turn an engine image (rows, cols, channels) into something the view can show.

    Grey images keep their values (the histogram shows them); RGB stays RGB; several
    fluorescence channels become a colour composite, each channel stretched on its own.
    ``like``: the display of the whole image this one is a part of, whose levels it takes so
    that the part looks the same. ``extent``: the (rows, cols) that ``image`` stands for when it
    is a reduced view of a big image. Meant to run in a worker thread: it touches every pixel once.
    """
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    shown = _reduce(_combine(image, axes, like))
    rows, cols = extent if extent is not None else image.shape[:2]
    note = shown.note
    if shown.data.shape[:2] != (rows, cols):
        factor = max(rows / shown.data.shape[0], cols / shown.data.shape[1])
        big = " (big image)" if (rows, cols) != image.shape[:2] else ""
        note = ", ".join(n for n in (note, f"shown at 1/{math.ceil(factor - 1e-9)} resolution{big}") if n)
    return dataclasses.replace(shown, note=note, shape=(int(rows), int(cols)))


def _reduce(image: DisplayImage) -> DisplayImage:
    """Shrink an image larger than MAX_DISPLAY_SIDE (area average), so zooming stays instant."""
    rows, cols = image.data.shape[:2]
    factor = math.ceil(max(rows, cols) / MAX_DISPLAY_SIDE)
    if factor <= 1:
        return image
    size = (max(1, math.ceil(cols / factor)), max(1, math.ceil(rows / factor)))  # OpenCV wants (x, y)
    data = cv2.resize(np.ascontiguousarray(image.data), size, interpolation=cv2.INTER_AREA)
    return dataclasses.replace(image, data=data)


def _combine(image: np.ndarray, axes: str, like: DisplayImage | None = None) -> DisplayImage:
    """Grey stays grey, RGB stays RGB, fluorescence channels become a composite."""
    channels = image.shape[2]
    if channels == 1:
        data = image[:, :, 0]
        return DisplayImage(data, like.levels if like else robust_levels(data))
    if axes == "YXS":  # colour photographs: one set of levels for the three colours
        data = image[:, :, :3]
        levels = like.levels if like else robust_levels(data)
        return DisplayImage(data, levels, "" if channels == 3 else "alpha not shown")
    stretched, channel_levels = [], []
    for c in range(min(channels, 3)):
        low, high = like.channel_levels[c] if like and like.channel_levels else robust_levels(image[:, :, c])
        channel_levels.append((low, high))
        stretched.append(np.clip((image[:, :, c] - low) / max(high - low, 1e-12), 0, 1).astype(np.float32))
    if len(stretched) == 2:  # green / magenta, readable by colour-blind users
        green, magenta = stretched
        rgb = np.stack([magenta, green, magenta], axis=-1)
        note = "channel 1 green, channel 2 magenta"
    else:
        rgb = np.stack(stretched, axis=-1)
        note = "channels 1–3 as red, green, blue" + (f" (of {channels})" if channels > 3 else "")
    return DisplayImage(rgb, (0.0, 1.0), note, channel_levels=tuple(channel_levels))


def robust_levels(data: np.ndarray, low: float = 0.1, high: float = 99.9) -> tuple[float, float]:
    """Display levels from percentiles of a subsample (fast on large images)."""
    step = max(1, int(math.sqrt(data.shape[0] * data.shape[1] / 250_000)))
    sample = np.asarray(data[::step, ::step], dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(sample, [low, high])
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        hi = lo + 1.0
    return (float(lo), float(hi))


def mask_overlay(mask: np.ndarray, axes: str = "YX", shape: tuple[int, int] | None = None) -> np.ndarray:
    """A label mask (rows, cols[, channels]) as a semi-transparent RGBA image, 0 transparent.

    Label ``v > 0`` takes colour ``LABEL_COLORS[(v - 1) % n]``; a non-integer value counts as
    label 1. A colour (RGB) mask keeps its own colours. Several channels of labels take the
    colour of their first non-zero channel. ``shape`` reduces the result for display (nearest
    neighbour, values are never mixed). Meant to run in a worker thread.
    """
    if mask.ndim == 2:
        mask = mask[:, :, np.newaxis]
    if shape is not None and tuple(shape) != mask.shape[:2]:
        mask = resize_nearest(mask, tuple(shape))
    rows, cols, channels = mask.shape
    out = np.zeros((rows, cols, 4), np.uint8)
    nonzero = np.any(mask != 0, axis=2)
    if axes == "YXS" and channels in (3, 4):
        colours = mask[:, :, :3].astype(np.float64)
        if mask.dtype != np.uint8:
            colours *= 255.0 / (float(colours.max()) or 1.0)
        out[:, :, :3] = np.clip(colours, 0, 255)
    else:
        if channels == 1:
            values = mask[:, :, 0]
            if values.dtype.kind == "f":
                whole = np.isfinite(values) & (np.mod(values, 1) == 0)
                values = np.where(whole, np.abs(np.nan_to_num(values)), 1.0)
            labels = np.abs(values.astype(np.int64, copy=False))
        else:
            labels = np.argmax(mask != 0, axis=2).astype(np.int64) + 1
        table = np.array([pg.mkColor(c).getRgb()[:3] for c in LABEL_COLORS], np.uint8)
        out[:, :, :3] = table[(labels - 1) % len(LABEL_COLORS)]
    out[:, :, 3] = np.where(nonzero, MASK_ALPHA, 0)
    return out


def nice_length(max_length: float) -> float:
    """Largest round length (1, 2 or 5 × 10^k) not above ``max_length``.

    >>> nice_length(37.0), nice_length(0.7), nice_length(1000)
    (20.0, 0.5, 1000.0)
    """
    if not max_length > 0:
        return 0.0
    exponent = math.floor(math.log10(max_length))
    for mantissa in (5, 2, 1):
        value = mantissa * 10.0**exponent
        if value <= max_length * (1 + 1e-9):
            return float(f"{value:.12g}")
    return 10.0**exponent


def format_length(length_um: float) -> str:
    """A length in the unit that reads best: ``500 nm``, ``20 µm``, ``1 mm``.

    >>> format_length(0.5), format_length(20), format_length(2000)
    ('500 nm', '20 µm', '2 mm')
    """
    if length_um < 1:
        return f"{length_um * 1000:.4g} nm"
    if length_um >= 1000:
        return f"{length_um / 1000:.4g} mm"
    return f"{length_um:.4g} µm"


class PictureItem(pg.GraphicsObject):
    """An overlay of many shapes painted once into a cached ``QPicture``: one item, not one
    per shape, so thousands of tiles or boxes cost one paint call."""

    def __init__(self, z: float):
        super().__init__()
        self._picture = QPicture()
        self._rect = QRectF()
        self._rects: list[QRectF] = []
        self.setZValue(z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    def __len__(self) -> int:
        """Number of shapes drawn."""
        return len(self._rects)

    def rects(self) -> list[QRectF]:
        """Bounds of each shape drawn, in data pixels (the picture itself cannot be inspected)."""
        return list(self._rects)

    def _redraw(self, shapes: list, draw: Callable[[QPainter, Any], QRectF]) -> None:
        """Repaint: ``draw(painter, shape)`` paints one shape and returns its bounds."""
        self.prepareGeometryChange()
        self._picture = QPicture()
        self._rect = QRectF()
        self._rects = []
        if shapes:
            painter = QPainter(self._picture)
            for shape in shapes:
                self._rects.append(draw(painter, shape))
                self._rect = self._rect.united(self._rects[-1])
            painter.end()
        self.update()

    def paint(self, painter, *args):
        self._picture.play(painter)

    def boundingRect(self) -> QRectF:
        return QRectF(self._rect)


def _cosmetic_pen(color: str, width: float) -> QPen:
    pen = QPen(QColor(color))
    pen.setCosmetic(True)  # width in screen pixels, whatever the zoom
    pen.setWidthF(width)
    return pen


#: Tiles beyond which the grid is not drawn (the highlighted tile still is).
MAX_DRAWN_TILES = 40_000


class TileGridItem(PictureItem):
    """Every tile outline of an image.

    Overlapping tiles share edges, so outlines cycle through a few colours; the part of a tile
    that lies beyond the image (padding) is hatched.
    """

    def __init__(self):
        super().__init__(z=10)

    def set_grid(self, grid: TileGrid | None) -> None:
        """Draw the tiles of ``grid`` (nothing when None, or when there are more than
        :data:`MAX_DRAWN_TILES`: outlines a pixel apart show nothing and take seconds to draw)."""
        if grid is None or len(grid) > MAX_DRAWN_TILES:
            self._redraw([], lambda painter, tile: QRectF())
            return
        size = grid.tile_size
        hatch = QBrush(QColor(255, 255, 255, 60), Qt.BrushStyle.BDiagPattern)

        def draw(painter: QPainter, tile) -> QRectF:
            if tile.pad_y or tile.pad_x:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(hatch)
                if tile.pad_x:
                    painter.drawRect(QRectF(tile.x1, tile.y0, tile.pad_x, size))
                if tile.pad_y:
                    painter.drawRect(QRectF(tile.x0, tile.y1, tile.x1 - tile.x0, tile.pad_y))
            painter.setPen(_cosmetic_pen(TILE_COLORS[tile.index % len(TILE_COLORS)], 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            box = QRectF(tile.x0, tile.y0, size, size)
            painter.drawRect(box)
            return box

        self._redraw(list(grid), draw)


class BoxesItem(PictureItem):
    """Every box of an image (YOLO labels), coloured by class."""

    def __init__(self):
        super().__init__(z=8)

    def set_boxes(self, boxes: Boxes | None) -> None:
        """Draw ``boxes`` (x0, y0, x1, y1 in data pixels); nothing when None."""

        def draw(painter: QPainter, box) -> QRectF:
            cls, (x0, y0, x1, y1) = box
            painter.setPen(_cosmetic_pen(LABEL_COLORS[cls % len(LABEL_COLORS)], 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            rect = QRectF(x0, y0, x1 - x0, y1 - y0)
            painter.drawRect(rect)
            return rect

        shapes = [] if boxes is None else list(zip(boxes.classes.tolist(), boxes.xyxy.tolist()))
        self._redraw(shapes, draw)


#: Objects beyond which only their outlines are drawn (filling thousands of paths slows panning).
MAX_FILLED_OBJECTS = 5_000
OBJECT_ALPHA = 70


def rings_path(rings) -> QPainterPath:
    """One object's rings ((n, 2) arrays of x, y) as one closed path, combined even-odd (a
    hole is a ring inside another), built from the arrays at once."""
    closed = [np.vstack([ring, ring[:1]]) for ring in rings if len(ring) >= 2]
    if not closed:
        return QPainterPath()
    points = np.concatenate(closed).astype(np.float64)
    connect = np.ones(len(points), bool)
    connect[np.cumsum([len(ring) for ring in closed]) - 1] = False  # a ring's last point ends it
    path = pg.arrayToQPath(points[:, 0], points[:, 1], connect=connect)
    path.setFillRule(Qt.FillRule.OddEvenFill)
    return path


class ObjectsItem(PictureItem):
    """Every imported object (polygons with their holes) of an image, coloured by class: one
    item, each object one path (its rings combined even-odd, as the export draws them), filled
    lightly and outlined."""

    def __init__(self):
        super().__init__(z=9)

    def set_objects(self, objects) -> None:
        """Draw ``objects`` (:class:`~tilesapp.core.annotations_in.Objects`: rings of x, y in
        data pixels, one class each); an object without polygons is drawn as its box. None: nothing."""
        if objects is None or not len(objects):
            self._redraw([], lambda painter, shape: QRectF())
            return
        fill = len(objects) <= MAX_FILLED_OBJECTS
        pens, brushes = {}, {}

        def draw(painter: QPainter, shape) -> QRectF:
            cls, rings, box = shape
            colour = LABEL_COLORS[cls % len(LABEL_COLORS)]
            if cls not in pens:
                pens[cls] = _cosmetic_pen(colour, 1.5)
                tint = QColor(colour)
                tint.setAlpha(OBJECT_ALPHA)
                brushes[cls] = QBrush(tint) if fill else QBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(pens[cls])
            painter.setBrush(brushes[cls])
            if not rings:
                x0, y0, x1, y1 = box
                rect = QRectF(x0, y0, x1 - x0, y1 - y0)
                painter.drawRect(rect)
                return rect
            path = rings_path(rings)
            painter.drawPath(path)
            return path.boundingRect()

        rings = objects.rings if len(objects.rings) == len(objects) else [()] * len(objects)
        self._redraw(list(zip(objects.classes.tolist(), rings, objects.xyxy.tolist())), draw)


class DroppedTilesItem(PictureItem):
    """The tiles that the empty-tile filter drops: a red cross at the centre of each
    (crosses of overlapping tiles stay apart, unlike outlines)."""

    def __init__(self):
        super().__init__(z=12)

    def set_tiles(self, grid: TileGrid | None, keep: np.ndarray | None) -> None:
        """Mark the tiles of ``grid`` where ``keep`` is False (nothing when either is None)."""
        dropped = [] if grid is None or keep is None else [t for t in grid if not keep[t.index]]
        arm = grid.tile_size * 0.09 if grid is not None else 0.0
        pen = _cosmetic_pen(DROPPED_COLOR, 2.5)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)

        def draw(painter: QPainter, tile) -> QRectF:
            painter.setPen(pen)
            # The centre of the tile's image part, where its pixels are.
            centre = QPointF((tile.x0 + tile.x1) / 2, (tile.y0 + tile.y1) / 2)
            painter.drawLine(centre + QPointF(-arm, -arm), centre + QPointF(arm, arm))
            painter.drawLine(centre + QPointF(arm, -arm), centre + QPointF(-arm, arm))
            return QRectF(tile.x0, tile.y0, grid.tile_size, grid.tile_size)

        self._redraw(dropped, draw)


class ImageViewer(QWidget):
    """Image view with a histogram/levels bar, the tile overlay and a scale bar.

    Over the image, from bottom to top: the full-resolution pixels of one tile when the image is
    a reduced view (one image item), the mask (one RGBA image item), the boxes (one item), the
    imported objects' polygons (one item), all tile outlines (one item), the dropped tiles (one
    item), the current tile.

    Everything is placed in data pixels of the image's extent (:attr:`DisplayImage.extent`),
    whatever size the shown data and the hovered values have.

    Signals
    -------
    hovered(str)
        Position and value under the mouse, for the status bar ("" when outside the image).
    """

    hovered = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("imageViewer")
        self._values: np.ndarray | None = None  # what hovering reads (not the display copy)
        self._extent: tuple[int, int] = (0, 0)  # (rows, cols) the image stands for
        self._detail: tuple[tuple[int, int, int, int], np.ndarray] | None = None  # (box, values)
        self._pixel_size_um: float | None = None
        self._grid: TileGrid | None = None
        self._keep: np.ndarray | None = None  # per tile: kept by the empty-tile filter
        self._foreground: np.ndarray | None = None  # per tile: foreground share
        self._mask: np.ndarray | None = None  # what hovering reads of the mask
        self._current: int | None = None
        self._show_all = False
        self._show_annotations = True

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("imageGraphics")
        self.graphics.ci.setContentsMargins(4, 4, 4, 4)
        self.title = self.graphics.addLabel("", row=0, col=0, colspan=2, justify="left", size="10pt")
        self.view = self.graphics.addViewBox(row=1, col=0, lockAspect=True, invertY=True, enableMenu=True)
        self.view.setAspectLocked(True)
        self.view.invertY(True)  # row 0 at the top, as in every image viewer
        self.image = pg.ImageItem()
        self.view.addItem(self.image)
        self.histogram = pg.HistogramLUTItem(self.image)
        self.histogram.setMaximumWidth(130)
        self.graphics.addItem(self.histogram, row=1, col=1)

        # Over a reduced view: one tile at full resolution; it follows the histogram's levels.
        self.detail_item = pg.ImageItem()
        self.detail_item.setZValue(1)
        self.detail_item.setVisible(False)
        self.view.addItem(self.detail_item, ignoreBounds=True)
        for signal in (self.histogram.sigLevelsChanged, self.histogram.sigLevelChangeFinished,
                       self.histogram.sigLookupTableChanged):
            signal.connect(self._sync_detail)

        self.mask_item = pg.ImageItem()
        self.mask_item.setZValue(5)
        self.mask_item.setVisible(False)
        self.view.addItem(self.mask_item, ignoreBounds=True)
        self.boxes_item = BoxesItem()
        self.boxes_item.setVisible(False)
        self.view.addItem(self.boxes_item, ignoreBounds=True)
        self.objects_item = ObjectsItem()
        self.objects_item.setVisible(False)
        self.view.addItem(self.objects_item, ignoreBounds=True)
        self.dropped_item = DroppedTilesItem()
        self.dropped_item.setVisible(False)
        self.view.addItem(self.dropped_item, ignoreBounds=True)
        self.grid_item = TileGridItem()
        self.grid_item.setVisible(False)
        self.view.addItem(self.grid_item, ignoreBounds=True)
        self.highlight = QGraphicsRectItem()
        pen = QPen(QColor(HIGHLIGHT_COLOR))
        pen.setCosmetic(True)
        pen.setWidthF(3.0)
        self.highlight.setPen(pen)
        self.highlight.setBrush(QColor(255, 213, 79, 45))
        self.highlight.setZValue(20)
        self.highlight.setVisible(False)
        self.view.addItem(self.highlight, ignoreBounds=True)
        self.highlight_label = pg.TextItem("", color="#202020", fill=pg.mkBrush(HIGHLIGHT_COLOR), anchor=(0, 0))
        self.highlight_label.setZValue(21)
        self.highlight_label.setVisible(False)
        self.view.addItem(self.highlight_label, ignoreBounds=True)

        self._labels: list[pg.TextItem] = []  # names over the cells of the sample

        self.scale_bar = pg.ScaleBar(size=1.0, width=6, brush="w", pen=pg.mkPen("k", width=1), offset=(-24, -28))
        self.scale_bar.setParentItem(self.view)
        self.scale_bar.text.setColor("w")
        self.scale_bar.setVisible(False)
        self.view.sigRangeChanged.connect(self._update_scale_bar)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)

        self.placeholder = QLabel()
        self.placeholder.setObjectName("viewerPlaceholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setStyleSheet("QLabel { background: #1e1e1e; color: #bbbbbb; font-size: 13pt; padding: 24px; }")
        self._stack = QStackedLayout(self)
        self._stack.setContentsMargins(0, 0, 0, 0)
        self._stack.addWidget(self.placeholder)
        self._stack.addWidget(self.graphics)
        # Drops are the main window's business: do not let the view swallow them.
        for widget in (self, self.graphics, self.graphics.viewport(), self.placeholder):
            widget.setAcceptDrops(False)
        self.show_placeholder(
            "<p style='font-size:15pt; color:#e0e0e0'>Drop a folder of images here</p>"
            "<p>or use <b>Load…</b> in the Media panel (File ▸ Open folder, Ctrl+O).</p>"
            "<p style='color:#8a8a8a; font-size:11pt'>New here? File ▸ Open demo images.</p>"
        )

    # --- content ------------------------------------------------------------------------------
    def show_placeholder(self, html: str) -> None:
        """Show a message instead of an image."""
        self.placeholder.setText(html)
        self._stack.setCurrentWidget(self.placeholder)

    def show_image(
        self,
        image: DisplayImage,
        *,
        title: str = "",
        values: np.ndarray | None = None,
        pixel_size_um: float | None = None,
        keep_view: bool = False,
    ) -> None:
        """Show ``image``; ``values`` is what hovering reports, ``pixel_size_um`` enables the scale bar.

        ``values`` may be smaller than the image's extent (a reduced view of a big image):
        hovering then reads the value at the same relative place. ``keep_view`` keeps the zoom
        when the new image has the same extent (same image, recomputed).
        """
        same_shape = self._values is not None and values is not None and self._extent == tuple(image.extent)
        self._values = values if values is not None else image.data
        self._extent = tuple(image.extent)
        self._pixel_size_um = pixel_size_um
        self.set_detail(None)
        self.set_labels([])
        self.image.setImage(image.data, autoLevels=False, levels=image.levels)
        rows, cols = self._extent
        self.image.setRect(QRectF(0, 0, cols, rows))  # data pixels, whatever size is displayed
        self.histogram.setHistogramRange(*image.levels, padding=0.05)
        self.histogram.setLevels(*image.levels)
        self.title.setText(title)
        self._stack.setCurrentWidget(self.graphics)
        if not (keep_view and same_shape):
            self.view.autoRange(padding=0.02)
        self._update_scale_bar()

    def set_labels(self, labels: list[tuple[float, float, str]]) -> None:
        """Write texts over the image: (x, y, text) at each top-left corner, white on a dark band
        (Qt's fonts: every script reads right)."""
        for item in self._labels:
            self.view.removeItem(item)
        self._labels = []
        for x, y, text in labels:
            item = pg.TextItem(text, color="w", fill=pg.mkBrush(0, 0, 0, 160), anchor=(0, 0))
            item.setPos(QPointF(x, y))
            item.setZValue(15)
            self.view.addItem(item, ignoreBounds=True)
            self._labels.append(item)

    @property
    def labels(self) -> list[str]:
        """The texts written over the image."""
        return [item.toPlainText() for item in self._labels]

    def set_title(self, title: str) -> None:
        self.title.setText(title)

    def clear(self) -> None:
        """Forget the image, the tiles and the annotations."""
        self._values = None
        self._extent = (0, 0)
        self.set_detail(None)
        self.set_labels([])
        self.image.clear()
        self.set_grid(None)
        self.set_annotations(None, None)
        self.set_objects(None)
        self.title.setText("")
        self._pixel_size_um = None
        self._update_scale_bar()

    def set_grid(
        self,
        grid: TileGrid | None,
        current: int | None = None,
        keep: np.ndarray | None = None,
        foreground: np.ndarray | None = None,
    ) -> None:
        """Tiles to draw over the image, and the highlighted one.

        ``keep`` (per tile, bool) marks the tiles the empty-tile filter drops; ``foreground``
        (per tile, share) is named in the current tile's label.
        """
        self._grid = grid
        self._keep = keep if grid is not None else None
        self._foreground = foreground if grid is not None else None
        self.grid_item.set_grid(grid)
        self.grid_item.setVisible(grid is not None and self._show_all)
        self.dropped_item.set_tiles(grid, self._keep)
        self.dropped_item.setVisible(len(self.dropped_item) > 0)
        self.set_current_tile(current)

    def set_annotations(
        self, overlay: np.ndarray | None, boxes: Boxes | None, mask: np.ndarray | None = None
    ) -> None:
        """Draw a mask (``overlay``: RGBA from :func:`mask_overlay`, stretched over the image)
        and boxes over the image; None removes them. ``mask`` is what hovering reports."""
        self._mask = mask
        if overlay is None:
            self.mask_item.clear()
        else:
            self.mask_item.setImage(overlay, autoLevels=False, levels=(0, 255))
            rows, cols = self._extent if self._values is not None else overlay.shape[:2]
            self.mask_item.setRect(QRectF(0, 0, cols, rows))
        self.mask_item.setVisible(overlay is not None and self._show_annotations)
        self.boxes_item.set_boxes(boxes)
        self.boxes_item.setVisible(boxes is not None and self._show_annotations)

    def set_objects(self, objects) -> None:
        """Draw imported objects (polygons, coloured by class) over the image; None removes them."""
        self.objects_item.set_objects(objects)
        self.objects_item.setVisible(len(self.objects_item) > 0 and self._show_annotations)

    def set_detail(
        self, image: DisplayImage | None, box: tuple[int, int, int, int] | None = None, values: np.ndarray | None = None
    ) -> None:
        """Lay full-resolution pixels over part of a reduced image: ``image`` covers ``box``
        (y0, y1, x0, x1) in data pixels and hovering inside it reads ``values``; None removes it."""
        if image is None or box is None:
            self._detail = None
            self.detail_item.clear()
            self.detail_item.setVisible(False)
            return
        y0, y1, x0, x1 = box
        self._detail = (box, values if values is not None else image.data)
        self.detail_item.setImage(image.data, autoLevels=False, levels=image.levels)
        self.detail_item.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        self.detail_item.setVisible(True)
        self._sync_detail()

    @property
    def detail_box(self) -> tuple[int, int, int, int] | None:
        """Where full-resolution pixels are laid over the image (y0, y1, x0, x1), if anywhere."""
        return self._detail[0] if self._detail is not None else None

    def _sync_detail(self, *args) -> None:
        # The user's levels and colour map apply to the tile as to the image under it.
        if self._detail is not None and self.image.levels is not None:
            self.detail_item.setLookupTable(self.image.lut, update=False)
            self.detail_item.setLevels(self.image.levels)

    def set_show_annotations(self, show: bool) -> None:
        """Show the mask and boxes, or hide them."""
        self._show_annotations = show
        self.mask_item.setVisible(show and self.mask_item.image is not None)
        self.boxes_item.setVisible(show and len(self.boxes_item) > 0)
        self.objects_item.setVisible(show and len(self.objects_item) > 0)

    def set_show_all(self, show: bool) -> None:
        """Draw every tile outline, or the current tile only."""
        self._show_all = show
        self.grid_item.setVisible(self._grid is not None and show)

    def set_current_tile(self, index: int | None) -> None:
        """Highlight tile ``index`` of the grid (None: no highlight)."""
        self._current = index
        if self._grid is None or index is None or not 0 <= index < len(self._grid):
            self.highlight.setVisible(False)
            self.highlight_label.setVisible(False)
            return
        tile = self._grid.tile(index)
        size = self._grid.tile_size
        self.highlight.setRect(QRectF(tile.x0, tile.y0, size, size))
        self.highlight.setVisible(True)
        # Counted from 1 on screen, as a person counts (tile files are numbered from 000).
        text = f" tile {index + 1} · row {tile.row + 1}, col {tile.col + 1}"
        if self._foreground is not None:
            text += f" · {100 * self._foreground[index]:.1f} % foreground"
        if self._keep is not None and not self._keep[index]:
            text += " · dropped"
        self.highlight_label.setText(text + " ")
        # Outside the tile, never over it (a tile a few dozen pixels high on screen, as on a whole
        # slide, was a third hidden): above it, or below it on the first row (above would leave
        # the image and the view).
        if tile.row == 0:
            self.highlight_label.setAnchor((0, 0))
            self.highlight_label.setPos(QPointF(tile.x0, tile.y0 + size))
        else:
            self.highlight_label.setAnchor((0, 1))
            self.highlight_label.setPos(QPointF(tile.x0, tile.y0))
        self.highlight_label.setVisible(True)

    @property
    def pixel_size_um(self) -> float | None:
        """Pixel size of the image shown (None: not calibrated)."""
        return self._pixel_size_um

    def reset_view(self) -> None:
        """Fit the whole image in the view."""
        self.view.autoRange(padding=0.02)

    @property
    def has_image(self) -> bool:
        return self._values is not None

    # --- scale bar and hover -----------------------------------------------------------------------
    def _update_scale_bar(self, *args) -> None:
        if self._pixel_size_um is None or self._values is None:
            self.scale_bar.setVisible(False)
            return
        (x_min, x_max), _ = self.view.viewRange()
        width_um = (x_max - x_min) * self._pixel_size_um
        length_um = nice_length(width_um / 5)
        if length_um <= 0:
            self.scale_bar.setVisible(False)
            return
        self.scale_bar.size = length_um / self._pixel_size_um  # in data pixels
        self.scale_bar.text.setText(format_length(length_um))
        self.scale_bar.updateBar()
        self.scale_bar.setVisible(True)

    def _on_mouse_moved(self, pos) -> None:
        if self._values is None or not self.view.sceneBoundingRect().contains(pos):
            self.hovered.emit("")
            return
        point = self.view.mapSceneToView(pos)
        self.hovered.emit(self.readout(int(math.floor(point.y())), int(math.floor(point.x()))))

    def readout(self, row: int, col: int) -> str:
        """What hovering data pixel (row, col) reports ("" outside the image).

        Over a reduced view the value is the reduced one at the same relative place (said so),
        except inside the tile laid over it at full resolution.
        """
        rows, cols = self._extent
        if self._values is None or not (0 <= row < rows and 0 <= col < cols):
            return ""
        values_rows, values_cols = self._values.shape[:2]
        # Integer arithmetic: exact for any size, and the identity when nothing is reduced.
        r, c = row * values_rows // rows, col * values_cols // cols
        value, exact = self._values[r, c], (values_rows, values_cols) == (rows, cols)
        if self._detail is not None:
            (y0, y1, x0, x1), detail = self._detail
            if y0 <= row < y1 and x0 <= col < x1:
                value, exact = detail[row - y0, col - x0], True
        if np.ndim(value) == 0:
            text = f"{float(value):.6g}"
        else:
            text = ", ".join(f"{float(v):.5g}" for v in np.ravel(value)[:4])
        text = f"row {row}, col {col}   value {text}"
        if self._mask is not None and self._mask.shape[:2] == (values_rows, values_cols):
            label = self._mask[r, c]
            text += "   mask " + ", ".join(f"{float(v):.6g}" for v in np.ravel(label)[:4])
        return text + ("" if exact else "   (reduced view)")
