"""The application icon: a 3 × 3 grid of tiles over a fluorescence-green image.

The drawing is defined once, as shapes in a 0–1 square (:func:`icon_shapes`); Qt paints it
for the window and ``resources/make_icon.py`` writes it as SVG/PNG/ICO for packaging.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap

BACKGROUND = "#17212b"
#: Tile fills, row-major: greens of different brightness, like fluorescence tiles.
TILE_FILLS = ("#1f6f43", "#2e9e5b", "#1a5a38", "#38b56a", "#5fd68a", "#2e9e5b", "#1a5a38", "#2e9e5b", "#1f6f43")
HIGHLIGHT = "#ffc640"


def icon_shapes() -> list[dict]:
    """Rounded rectangles of the icon in a unit square: x, y, w, h, radius, fill, stroke, stroke_width."""
    shapes = [dict(x=0.0, y=0.0, w=1.0, h=1.0, r=0.18, fill=BACKGROUND, stroke=None, sw=0.0)]
    margin, gap = 0.13, 0.035
    cell = (1 - 2 * margin - 2 * gap) / 3
    for i, fill in enumerate(TILE_FILLS):
        row, col = divmod(i, 3)
        x, y = margin + col * (cell + gap), margin + row * (cell + gap)
        shapes.append(dict(x=x, y=y, w=cell, h=cell, r=0.035, fill=fill, stroke=None, sw=0.0))
    # The highlighted tile, as in the preview: overlapping the centre and its right neighbour.
    x = margin + 1 * (cell + gap) + cell / 2
    y = margin + 1 * (cell + gap) - gap / 2
    shapes.append(dict(x=x, y=y, w=cell + gap, h=cell + gap, r=0.04, fill=None, stroke=HIGHLIGHT, sw=0.045))
    return shapes


def draw_icon(size: int) -> QImage:
    """The icon as a ``size`` × ``size`` ARGB image."""
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    for s in icon_shapes():
        rect = QRectF(s["x"] * size, s["y"] * size, s["w"] * size, s["h"] * size)
        if s["stroke"]:
            painter.setPen(QPen(QColor(s["stroke"]), s["sw"] * size))
        else:
            painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(s["fill"]) if s["fill"] else Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(rect, s["r"] * size, s["r"] * size)
    painter.end()
    return image


def icon_svg() -> str:
    """The icon as an SVG document (256 × 256)."""
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 1 1">']
    for s in icon_shapes():
        fill = s["fill"] or "none"
        stroke = f' stroke="{s["stroke"]}" stroke-width="{s["sw"]:.4f}"' if s["stroke"] else ""
        parts.append(
            f'  <rect x="{s["x"]:.4f}" y="{s["y"]:.4f}" width="{s["w"]:.4f}" height="{s["h"]:.4f}" '
            f'rx="{s["r"]:.4f}" fill="{fill}"{stroke}/>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _resource_file(name: str) -> Path | None:
    """A file of ``resources/``: in a PyInstaller bundle, or in a source checkout."""
    roots = [Path(getattr(sys, "_MEIPASS", "")) / "resources"] if hasattr(sys, "_MEIPASS") else []
    roots.append(Path(__file__).resolve().parents[2] / "resources")
    return next((root / name for root in roots if (root / name).is_file()), None)


def app_icon() -> QIcon:
    """The window icon: ``resources/tilesapp.png`` when shipped, else drawn at a few sizes."""
    icon = QIcon()
    path = _resource_file("tilesapp.png")
    if path is not None:
        icon.addFile(str(path))
    for size in (16, 24, 32, 48, 64, 128, 256):
        if path is None or size <= 32:  # small sizes are drawn crisp rather than downscaled
            icon.addPixmap(QPixmap.fromImage(draw_icon(size)))
    return icon
