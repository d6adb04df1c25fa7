"""Progress records yielded by the engine's long operations, and how often to yield them."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    """Where a long operation stands.

    ``done``/``total`` count the unit of work (tiles for export and merge, images for the
    mosaic); ``images_done``/``images_total`` count images; ``current`` names the image being
    worked on; ``message`` says what is happening in words.
    """

    done: int
    total: int
    images_done: int = 0
    images_total: int = 0
    current: str = ""
    message: str = ""

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


class Throttle:
    """Says when a progress record is due: at most one per ``interval`` seconds (the window
    and the terminal show no more than that)."""

    INTERVAL = 0.05

    def __init__(self, interval: float | None = None):
        self.interval = self.INTERVAL if interval is None else interval
        self._last = -float("inf")

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self.interval:
            self._last = now
            return True
        return False


class TileCounter:
    """Work done, counted by the threads doing it (callable with how much); read by the thread
    reporting progress, never woken by it — a queued event per tile bounced the GIL between
    the threads writing tiles and the one reporting them."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        with self._lock:
            self.count += n
