"""Where the full story of an error goes: a log file per user, never the user's screen."""

from __future__ import annotations

import logging
import os
import sys
from logging.handlers import RotatingFileHandler
from pathlib import Path


def log_dir() -> Path:
    """Per-user log folder (``TILESAPP_LOG_DIR`` overrides it)."""
    if os.environ.get("TILESAPP_LOG_DIR"):
        return Path(os.environ["TILESAPP_LOG_DIR"])
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "TilesCreator" / "Logs"
    if sys.platform == "darwin":
        return home / "Library" / "Logs" / "TilesCreator"
    return Path(os.environ.get("XDG_STATE_HOME", home / ".local" / "state")) / "tilesapp"


def log_path() -> Path:
    return log_dir() / "tilesapp.log"


def setup_logging(level: int = logging.INFO) -> Path | None:
    """Send log records (with tracebacks) to the log file; returns its path, or None.

    Nothing is printed to the terminal: messages for users are printed by the CLI/GUI. When
    the log file cannot be opened, records are dropped rather than shown as tracebacks.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_tilesapp", False):
            root.removeHandler(handler)
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2, encoding="utf-8")
    except OSError:
        handler, path = logging.NullHandler(), None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"))
    handler._tilesapp = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    return path
