"""Exceptions a user can cause, each carrying one readable sentence."""


class TilesError(Exception):
    """Base class: the message is meant to be shown to a user as it is."""


class SettingsError(TilesError, ValueError):
    """A setting breaks a rule; ``field`` names the setting (as in the JSON file)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class ImageError(TilesError):
    """One image cannot be processed; the run goes on with the others."""


class OutputError(TilesError):
    """The output folder cannot be used (unsafe, not empty, not writable)."""


class Cancelled(TilesError):
    """The user asked to stop."""
