"""What the window remembers between runs, kept in ``QSettings``.

Never block the application from starting because of a settings file: a stored value that
cannot be used is logged and ignored, and the default takes its place.

Set the environment variable ``TILESAPP_SETTINGS_FILE`` to keep everything in that INI file
instead of the user's settings (tests and portable installs do).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from tilesapp.core.errors import SettingsError
from tilesapp.core.settings import Settings
from tilesapp.gui.workers import untangle

log = logging.getLogger(__name__)

ENV_FILE = "TILESAPP_SETTINGS_FILE"
MAX_RECENT = 8
#: Where QSettings keeps things (registry key, plist or ~/.config/TilesCreator/tilesapp.conf).
ORGANIZATION = "TilesCreator"
APPLICATION = "tilesapp"


class SettingsStore:
    """Read and write the remembered state: settings, recent folders, window layout.

    Parameters
    ----------
    qsettings : QSettings, optional
        Where to keep things; by default the file named by ``TILESAPP_SETTINGS_FILE`` or the
        application's user settings (organization and application names of the QApplication).
    """

    def __init__(self, qsettings: QSettings | None = None):
        if qsettings is None:
            path = os.environ.get(ENV_FILE)
            qsettings = QSettings(path, QSettings.Format.IniFormat) if path else QSettings(ORGANIZATION, APPLICATION)
        self.qsettings = qsettings

    # --- the pipeline settings ----------------------------------------------------------------
    def load_settings(self) -> Settings:
        """The settings of the last run; values that fail validation are dropped one by one."""
        raw = self.qsettings.value("settings/json", "")
        if not raw:
            return Settings()
        try:
            data = json.loads(str(raw))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            log.warning("Ignoring stored settings (%s)", exc)
            return Settings()
        # Drop the offending field and retry, so one bad value does not cost the others.
        for _ in range(len(data) + 1):
            try:
                settings, unknown = Settings.from_dict(data)
            except SettingsError as exc:
                untangle(exc)  # no frame of the window's construction kept in a cycle
                log.warning("Ignoring stored setting %r: %s", exc.field, exc)
                if exc.field not in data:
                    return Settings()
                del data[exc.field]
                continue
            if unknown:
                log.info("Ignoring unknown stored settings: %s", ", ".join(unknown))
            return settings
        return Settings()

    def save_settings(self, settings: Settings) -> None:
        self.qsettings.setValue("settings/json", json.dumps(settings.to_dict()))

    # --- folders ----------------------------------------------------------------------------
    def recent_folders(self) -> list[Path]:
        """Recently opened folders, most recent first (only those that still exist)."""
        items = self._json_list("recent/folders")
        return [Path(p) for p in items if isinstance(p, str) and Path(p).is_dir()]

    def add_recent_folder(self, folder: Path) -> None:
        folder = Path(folder).absolute()
        items = [str(folder)] + [p for p in self._json_list("recent/folders") if p != str(folder)]
        self.qsettings.setValue("recent/folders", json.dumps(items[:MAX_RECENT]))

    def clear_recent_folders(self) -> None:
        self.qsettings.remove("recent/folders")
        self.qsettings.remove("recent/settings")

    def recent_settings_files(self) -> list[Path]:
        """Settings files recently saved or loaded, most recent first (only those that still exist)."""
        return [Path(p) for p in self._json_list("recent/settings") if isinstance(p, str) and Path(p).is_file()]

    def add_recent_settings_file(self, path: Path) -> None:
        path = Path(path).absolute()
        items = [str(path)] + [p for p in self._json_list("recent/settings") if p != str(path)]
        self.qsettings.setValue("recent/settings", json.dumps(items[:MAX_RECENT]))

    def path(self, key: str) -> Path | None:
        """A remembered folder ("export", "dialog", "settings_file"), or None."""
        value = self.qsettings.value(f"paths/{key}", "")
        return Path(str(value)) if value else None

    def set_path(self, key: str, path: Path | None) -> None:
        self.qsettings.setValue(f"paths/{key}", "" if path is None else str(path))

    # --- window layout --------------------------------------------------------------------------
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        """Saved geometry of the main window and state of its splitter (None when absent)."""
        return self._bytes("window/geometry"), self._bytes("window/state")

    def save_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.qsettings.setValue("window/geometry", geometry)
        self.qsettings.setValue("window/state", state)

    def sync(self) -> None:
        self.qsettings.sync()

    # --- helpers -------------------------------------------------------------------------------
    def _json_list(self, key: str) -> list:
        raw = self.qsettings.value(key, "")
        if not raw:
            return []
        try:
            items = json.loads(str(raw))
        except ValueError:
            log.warning("Ignoring stored %s: not JSON", key)
            return []
        return items if isinstance(items, list) else []

    def _bytes(self, key: str) -> QByteArray | None:
        value = self.qsettings.value(key)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None
