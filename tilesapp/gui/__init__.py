"""The desktop window of Tiles Creator (PySide6 + pyqtgraph); Qt lives only below here."""

from tilesapp.gui import _compat  # noqa: F401  (first: guards against a PySide6 refcount bug)
from tilesapp.gui.main_window import MainWindow

__all__ = ["MainWindow"]
