"""The panels of the control column, one small file each."""

from tilesapp.gui.panels.calibration import CalibrationPanel
from tilesapp.gui.panels.export import ExportBar, ExportPanel
from tilesapp.gui.panels.media import MediaPanel
from tilesapp.gui.panels.normalization import NormalizationPanel
from tilesapp.gui.panels.tiles import TilesPanel
from tilesapp.gui.panels.training import TrainingPanel

__all__ = ["CalibrationPanel", "ExportBar", "ExportPanel", "MediaPanel", "NormalizationPanel", "TilesPanel", "TrainingPanel"]
