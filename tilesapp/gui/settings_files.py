"""Settings files (the JSON ``tilesapp cut --config`` reads): save, load, the recent ones,
and back to the defaults."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMenu

from tilesapp.core.errors import SettingsError
from tilesapp.core.settings import Settings, load_settings, save_settings
from tilesapp.gui import dialogs
from tilesapp.gui.wording import FIELD_LABELS
from tilesapp.gui.workers import Controller

SETTINGS_FILTER = "Settings (*.json);;All files (*)"


class SettingsFiles(Controller):
    """Save / load the settings as a file, the Open recent menu, Reset to defaults."""

    def save(self, path: str | Path | None = None) -> bool:
        """Save the settings as JSON (asks where when ``path`` is None)."""
        editor = self.window.editor
        if editor.errors:
            dialogs.inform(self.window, "Save settings",
                           f"Fix the invalid setting first: {editor.errors[0].describe(FIELD_LABELS)}", kind="warning")
            return False
        if path is None:
            start = self.window.store.path("settings_file") or Path.home() / "tilesapp-settings.json"
            path = dialogs.choose_save_file(self.window, "Save settings", start, SETTINGS_FILTER)
            if path is None:
                return False
        path = Path(path)
        if not path.suffix:
            path = path.with_suffix(".json")
        try:
            save_settings(editor.settings, path)
        except OSError as exc:
            dialogs.inform(self.window, "Save settings", dialogs.error_text(exc, "saving the settings"), kind="error")
            return False
        self._remember(path)
        self.status(f"Settings saved to {path}.")
        return True

    def load(self, path: str | Path | None = None) -> bool:
        """Load settings from a JSON file (asks which when ``path`` is None); unknown keys are
        reported, not fatal."""
        if path is None:
            path = dialogs.choose_open_file(self.window, "Load settings", self.window.store.path("settings_file"),
                                            SETTINGS_FILTER)
            if path is None:
                return False
        try:
            settings, unknown = load_settings(path, base=self.window.editor.settings)
        except SettingsError as exc:
            dialogs.inform(self.window, "Load settings", dialogs.error_text(exc, "loading the settings"), kind="warning")
            return False
        self._remember(Path(path))
        self.window.editor.set_settings(settings)
        message = f"Settings loaded from {path}."
        if unknown:
            message += f" Ignored unknown keys: {', '.join(unknown)}."
        self.status(message, 12)
        return True

    def reset(self) -> None:
        """Every setting back to its default (the folders chosen stay)."""
        self.window.editor.set_settings(Settings())
        self.status("Settings reset to their defaults.")

    def _remember(self, path: Path) -> None:
        self.window.store.set_path("settings_file", path)
        self.window.store.add_recent_settings_file(path)

    def fill_recent(self, menu: QMenu) -> None:
        """Recent folders, then recent settings files; each opens (loads) its entry."""
        menu.clear()
        store = self.window.store
        folders, files = store.recent_folders(), store.recent_settings_files()
        for folder in folders:
            action = menu.addAction(str(folder))
            action.triggered.connect(lambda checked=False, f=folder: self.window.loader.open_folder(f))
        if files:
            if folders:
                menu.addSeparator()
            for file in files:
                action = menu.addAction(f"Settings: {file}")
                action.triggered.connect(lambda checked=False, f=file: self.load(f))
        if not folders and not files:
            menu.addAction("No recent folders or settings files").setEnabled(False)
        else:
            menu.addSeparator()
            menu.addAction("Clear the list").triggered.connect(lambda checked=False: store.clear_recent_folders())
