"""Write the application icon files from the one drawing in ``tilesapp/gui/icon.py``.

    python resources/make_icon.py

Writes ``tilesapp.svg``, ``tilesapp.png`` (256 px, the window icon), ``tilesapp.ico``
(16–256 px, for the Windows executables and installer) and ``tilesapp.icns`` (16–1024 px, for
the macOS app) next to this script. The ICO and ICNS files need Pillow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtGui import QGuiApplication  # noqa: E402

from tilesapp.gui.icon import draw_icon, icon_svg  # noqa: E402


def _frames(sizes):
    """Pillow images of the icon, each drawn at its size (crisp small sizes)."""
    from PIL import Image

    frames = []
    for size in sizes:
        png = HERE / f".icon-{size}.png"
        draw_icon(size).save(str(png))
        frames.append(Image.open(png).convert("RGBA"))
        frames[-1].load()
        png.unlink()
    return frames


def write_ico(path: Path) -> None:
    """A Windows icon holding 16 to 256 px images."""
    try:
        import PIL  # noqa: F401
    except ImportError:  # Qt's writer stores one size only
        draw_icon(256).save(str(path))
        return
    sizes = (16, 24, 32, 48, 64, 128, 256)
    frames = _frames(sizes)
    frames[-1].save(path, format="ICO", sizes=[(s, s) for s in sizes], append_images=frames[:-1])


def write_icns(path: Path) -> None:
    """A macOS icon holding 16 to 1024 px images (the sizes of an .iconset, @1x and @2x)."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        print(f"Pillow is not installed: {path.name} not written", file=sys.stderr)
        return
    frames = _frames((16, 32, 64, 128, 256, 512, 1024))
    frames[-1].save(path, format="ICNS", append_images=frames[:-1])


def main() -> None:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841  (QImage text needs it)
    (HERE / "tilesapp.svg").write_text(icon_svg(), encoding="utf-8")
    draw_icon(256).save(str(HERE / "tilesapp.png"))
    write_ico(HERE / "tilesapp.ico")
    write_icns(HERE / "tilesapp.icns")
    for name in ("tilesapp.svg", "tilesapp.png", "tilesapp.ico", "tilesapp.icns"):
        if (HERE / name).exists():
            print(HERE / name)


if __name__ == "__main__":
    main()
