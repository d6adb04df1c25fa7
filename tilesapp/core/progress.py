"""Progress records yielded by the engine's long operations."""

from __future__ import annotations

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
