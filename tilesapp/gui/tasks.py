"""The window's slow work, as generators of engine calls for :class:`~tilesapp.gui.workers.Job`.

Nothing here re-implements the engine: these functions only chain its calls and shape the
results for display, in a worker thread.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tilesapp.core.errors import Cancelled, ImageError
from tilesapp.core.export import collect_inputs
from tilesapp.core.pipeline import ImagePlan, preview
from tilesapp.core.progress import Progress
from tilesapp.core.settings import Settings
from tilesapp.core.sources import SourceInfo, inspect_image
from tilesapp.gui.viewer import DisplayImage, display_image


@dataclass
class Sources:
    """What was loaded: a folder (or dropped files), its images and what their metadata says."""

    sources: Path | list[Path]  # as given to the engine's export
    folders: list[Path]  # input folders, never to be written to
    infos: list[SourceInfo] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    skipped: list[Path] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [info.path for info in self.infos]

    @property
    def label(self) -> str:
        """The folder, or how many files were dropped."""
        if isinstance(self.sources, Path):
            return str(self.sources)
        folder = self.folders[0] if len(self.folders) == 1 else None
        return f"{len(self.sources)} files" + (f" in {folder}" if folder else "")


def inspect_sources(
    sources: Path | Sequence[Path], recursive: bool, cancel: threading.Event
) -> Generator[Progress, None, Sources]:
    """List the images of a folder (or files) and read their metadata, one progress per image."""
    inputs = collect_inputs(sources, recursive)
    given = Path(sources) if isinstance(sources, (str, Path)) else [Path(p) for p in sources]
    result = Sources(given, list(inputs.folders), skipped=list(inputs.skipped))
    n = len(inputs.images)
    for i, path in enumerate(inputs.images):
        if cancel.is_set():
            raise Cancelled("Loading was cancelled.")
        yield Progress(i, n, i, n, path.name, "Reading metadata")
        try:
            result.infos.append(inspect_image(path))
        except ImageError as exc:
            result.unreadable.append((path.name, str(exc)))
    yield Progress(n, n, n, n, "", "Metadata read")
    return result


@dataclass(frozen=True)
class Preview:
    """One recalibrated image of the folder, ready to be shown under its tile grid."""

    path: Path
    plan: ImagePlan
    values: np.ndarray  # (rows, cols, channels) float32, what hovering reads
    display: DisplayImage


def preview_settings(settings: Settings) -> Settings:
    """Settings for a preview: the geometry of the export, whatever the output format.

    The format decides which images can be written, not where tiles lie; .tif takes every
    type and channel count, so a format choice does not block looking at the tiles.
    """
    return dataclasses.replace(settings, format="tif")


def make_preview(path: Path, settings: Settings) -> Preview:
    """Read, plan and recalibrate one image (engine), and prepare it for the screen."""
    plan, image = preview(path, preview_settings(settings))
    values = image[:, :, 0] if image.shape[2] == 1 else image
    return Preview(Path(path), plan, values, display_image(image, plan.info.axes))
