"""Exceptions a user can cause, each carrying one readable sentence."""

from __future__ import annotations

from collections.abc import Mapping

#: Where a message names the setting it concerns; each front end puts its own word there
#: (a field's label in the window, a flag on the command line, the JSON key by default).
SUBJECT = "{name}"


class TilesError(Exception):
    """Base class: the message is meant to be shown to a user as it is."""


class SettingsError(TilesError, ValueError):
    """Settings break one rule or more; nothing has been written.

    ``field`` names the (first) setting as in the JSON file; ``errors`` lists one
    :class:`SettingsError` per broken rule, so a window can mark every field at once. A message
    may contain :data:`SUBJECT` where the setting is named: ``str()`` puts the JSON key there,
    :meth:`describe` the caller's word for it.

    >>> err = SettingsError("tile_size", "{name} must be a whole number; got 'x'.")
    >>> str(err), err.describe({"tile_size": "--tile-size"})
    ("tile_size must be a whole number; got 'x'.", "--tile-size must be a whole number; got 'x'.")
    """

    def __init__(self, field: str, message: str, errors: list[SettingsError] | None = None):
        self.field = field
        self.template = message
        self.errors: list[SettingsError] = list(errors) if errors else [self]
        super().__init__(self.describe())

    def describe(self, labels: Mapping[str, str] | None = None) -> str:
        """The message(s) with each setting named by ``labels[field]`` (the JSON key when absent)."""
        if len(self.errors) > 1 or self.errors[0] is not self:
            return " ".join(e.describe(labels) for e in self.errors)
        label = (labels or {}).get(self.field, self.field)
        return self.template.replace(SUBJECT, label)

    @classmethod
    def collect(cls, errors: list[SettingsError]) -> SettingsError:
        """One exception standing for several broken rules (the first one's field)."""
        flat = [e for error in errors for e in error.errors]
        return flat[0] if len(flat) == 1 else cls(flat[0].field, flat[0].template, flat)


class ImageError(TilesError):
    """One image cannot be processed; the run goes on with the others."""


class OutputError(TilesError):
    """The output folder cannot be used (unsafe, not empty, not writable, locked)."""


class Cancelled(TilesError):
    """The user asked to stop."""
