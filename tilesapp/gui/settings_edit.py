"""The one settings object of the window: built from the panels, errors sent back to them.

Settings flow one way: a panel says it was edited, :class:`SettingsEditor` builds a
:class:`Settings` from every panel's raw values, and each ``SettingsError`` goes back next to
the field it concerns, named by the field's label. A broken field keeps its last valid value,
so the other edits still apply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Signal

from tilesapp.core.errors import SettingsError
from tilesapp.core.settings import Settings
from tilesapp.gui.panels._base import Panel
from tilesapp.gui.settings_store import SettingsStore
from tilesapp.gui.workers import untangle
from tilesapp.gui.wording import FIELD_LABELS, capitalized, window_words

#: Rules of the window beyond the settings' own: ``check(settings)`` → [(field, message)].
Check = Callable[[Settings], list[tuple[str, str]]]


def kept(exc: SettingsError) -> list[SettingsError]:
    """The errors of ``exc``, to be kept while they are shown, without their tracebacks (see
    :func:`~tilesapp.gui.workers.untangle`)."""
    return list(untangle(exc).errors)


class SettingsEditor(QObject):
    """Holds the current valid settings and the errors shown next to the fields.

    Signals
    -------
    changed(Settings, Settings)
        The settings changed (old, new).
    checked()
        The fields were checked (after every edit, changed or not).
    message(str)
        An error no panel owns, for the status bar.
    """

    changed = Signal(object, object)
    checked = Signal()
    message = Signal(str)

    def __init__(self, panels: Sequence[Panel], store: SettingsStore, parent: QObject | None = None):
        super().__init__(parent)
        self.panels = tuple(panels)
        self.store = store
        self.settings: Settings = store.load_settings()
        self.errors: list[SettingsError] = []
        self.checks: list[Check] = []
        for panel in self.panels:
            panel.set_settings(self.settings)
            panel.edited.connect(self.collect)

    def panel_of(self, field: str) -> Panel | None:
        return next((p for p in self.panels if p.owns(field)), None)

    def collect(self) -> None:
        """Build the settings from the panels' values; show every broken rule next to its field."""
        values: dict = {}
        for panel in self.panels:
            values.update(panel.values())
        errors: list[SettingsError] = []
        new = self.settings
        for _ in range(len(values) + 1):
            try:
                new = dataclasses.replace(self.settings, **values)
                break
            except SettingsError as exc:
                errors += [e for e in kept(exc) if e.field not in {f.field for f in errors}]
                broken = {e.field for e in exc.errors} & set(values)
                if not broken:
                    new = self.settings
                    break
                for field in broken:
                    del values[field]
        self._use(new, errors)

    def set_settings(self, settings: Settings) -> None:
        """Show ``settings`` in every panel and use them."""
        for panel in self.panels:
            panel.set_settings(settings)
        self._use(settings, [])

    def replace(self, **values) -> None:
        """Change fields that no panel shows (e.g. pixel sizes typed in the sources table)."""
        try:
            new = dataclasses.replace(self.settings, **values)
        except SettingsError as exc:
            self._show([*self.errors, *kept(exc)])
            return
        self._use(new, [e for e in self.errors if e.field not in values])

    def recheck(self) -> None:
        """Check the window's own rules again (the sources changed)."""
        self._use(self.settings, [e for e in self.errors if not getattr(e, "window_rule", False)])

    def _use(self, new: Settings, errors: list[SettingsError]) -> None:
        for check in self.checks:
            for field, message in check(new):
                error = SettingsError(field, message)
                error.window_rule = True
                errors.append(error)
        old, self.settings = self.settings, new
        self._show(errors)
        if new != old:
            # Pixel sizes typed for single images, channels and scenes chosen by name or number
            # belong to the folder they were chosen for (settings files keep them).
            self.store.save_settings(dataclasses.replace(new, file_pixel_sizes=(), channels=None, scenes=None))
            self.changed.emit(old, new)
        self.checked.emit()

    def _show(self, errors: list[SettingsError]) -> None:
        self.errors = errors
        for panel in self.panels:
            panel.clear_errors()
        for exc in errors:
            text = capitalized(window_words(exc.describe(FIELD_LABELS)))
            panel = self.panel_of(exc.field)
            if panel is None or not panel.show_error(exc.field, text):
                self.message.emit(text)
        for field, text in self.settings_warnings():
            panel = self.panel_of(field)
            if panel is not None:
                panel.show_error(field, capitalized(text), warning=True)

    def settings_warnings(self) -> list[tuple[str, str]]:
        """Choices that are allowed but probably not meant (too few grey levels)."""
        broken = {e.field for e in self.errors}
        return [(f, m) for f, m in self.settings.warnings if f not in broken]

    def error_in(self, panel: Panel) -> bool:
        return any(self.panel_of(e.field) is panel for e in self.errors)
