"""The desktop window of Tiles Creator (PySide6 + pyqtgraph); Qt lives only below here."""

# Imported for its side effect, before any other Qt call: it guards against a PySide6 refcount bug.
from tilesapp.gui import _compat  # noqa: F401
from tilesapp.gui.main_window import MainWindow

__all__ = ["MainWindow"]
