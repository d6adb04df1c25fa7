"""What the loaded images are and what an export would do with each: one source of truth for
every count the window shows (sources line, sample title, calibration note, sources table,
export hint and warning). Plain Python on the engine's calls: no Qt here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tilesapp.core.calibration import format_pixel_size
from tilesapp.core.errors import Cancelled, ImageError
from tilesapp.core.folders import collect_inputs
from tilesapp.core.memory import default_memory_limit, largest_tile, tile_bytes
from tilesapp.core.plan import TYPED_ALL, TYPED_FILE, TYPED_MISSING, CalibrationMissing, ImagePlan, plan_image
from tilesapp.core.progress import Progress
from tilesapp.core.readers import SceneInfo, verify
from tilesapp.core.settings import Settings
from tilesapp.core.sources import sources_of
from tilesapp.gui.wording import GIVE_PIXEL_SIZE, PLANE_CHOICES, plural, without_name

#: What a row waiting for a plane choice needs, in the export warning.
NEEDS_TEXT = {"z": "needs a Z choice (Planes, in the Media panel)", "t": "needs a frame choice (Planes, in the Media panel)"}
#: How the table names where a pixel size came from.
TYPED_LABELS = {TYPED_FILE: "typed for this image", TYPED_ALL: "typed for all images",
                TYPED_MISSING: "typed for images without calibration"}


@dataclass
class Sources:
    """What was loaded: a folder (or dropped files), its images and what their metadata says.

    ``unreadable`` holds the images found damaged when the folder was loaded (every scene was
    opened and a little of it read), so that they are counted and named before any export.
    ``scenes`` holds every scene of each readable file (a file may hold several: series,
    positions, tiles of a scan), as its metadata says.
    """

    sources: Path | list[Path]  # as given to the engine's export
    folders: list[Path]  # input folders, never to be written to
    scenes: dict[Path, list[SceneInfo]] = field(default_factory=dict)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    skipped: list[Path] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)  # every image found, readable or not
    root: Path | None = None  # common folder of the images; names are relative to it
    unsearched: list[str] = field(default_factory=list)  # sub-folders that could not be read, said

    @property
    def infos(self) -> list[SceneInfo]:
        """The first scene of each readable file."""
        return [scenes[0] for scenes in self.scenes.values()]

    @property
    def all_scenes(self) -> list[SceneInfo]:
        return [info for scenes in self.scenes.values() for info in scenes]

    @property
    def paths(self) -> list[Path]:
        """The readable files."""
        return list(self.scenes)

    @property
    def stacks(self) -> tuple[int, int]:
        """The most Z planes and T frames a loaded scene has (1, 1: no stack)."""
        scenes = self.all_scenes
        return max((i.n_z for i in scenes), default=1), max((i.n_t for i in scenes), default=1)

    @property
    def max_scenes(self) -> int:
        return max((len(s) for s in self.scenes.values()), default=1)

    def channel_names(self) -> list[str]:
        """Every channel name the loaded scenes' metadata gives, in order of first appearance."""
        seen: dict[str, None] = {}
        for info in self.all_scenes:
            for name in info.channel_names:
                seen.setdefault(name, None)
        return list(seen)

    def names(self) -> dict[Path, str]:
        """Each image's name as the export's manifest (and its train/val split) knows it."""
        if self.root is None:
            return {p: p.name for p in self.images}
        return {p: p.relative_to(self.root).as_posix() if p.is_relative_to(self.root) else str(p)
                for p in self.images}

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
    """List the images of a folder (or files), read their metadata and check that each can be
    read (its first and last rows: a truncated file is found now, not half-way through an export)."""
    inputs = collect_inputs(sources, recursive)
    given = Path(sources) if isinstance(sources, (str, Path)) else [Path(p) for p in sources]
    result = Sources(
        given, list(inputs.folders), skipped=list(inputs.skipped), images=list(inputs.images), root=inputs.root,
        unsearched=inputs.unsearched_warnings(),
    )
    n = len(inputs.images)
    for i, path in enumerate(inputs.images):
        if cancel.is_set():
            raise Cancelled("Loading was cancelled.")
        yield Progress(i, n, i, n, path.name, "Checking the images")
        try:
            result.scenes[path] = verify(path)
        except ImageError as exc:
            result.unreadable.append((inputs.name(path), str(exc)))
    yield Progress(n, n, n, n, "", "Images checked")
    return result


@dataclass(frozen=True)
class Row:
    """One image an export would cut (a source: a file, or one scene or plane of it), as the
    sources table shows it; a file that gives none (unreadable, or a stack awaiting a choice)
    is one row, failing, as the export records it."""

    path: Path
    name: str  # as the manifest names the source ("a.czi [s1]")
    info: SceneInfo | None  # the source as the engine sees it; None: unreadable
    plan: ImagePlan | None = None  # None: it will fail (``problem`` says why)
    problem: str = ""
    needs_pixel_size: bool = False
    number: int = 0  # which source of its file (0-based), for the preview
    scene: SceneInfo | None = None  # the file's scene, with its planes and every channel
    scenes: int = 1  # scenes in the file
    needs: str = ""  # the setting a failing row needs ("z", "t", "channels", "scenes"), if any
    warnings: tuple[str, ...] = ()
    planes: tuple = (None, None)  # (z, t) it takes of its scene: a number, "max", "mean", or None
    whole_file: bool = False  # the row stands for its whole file (it gives no image yet)

    @property
    def ok(self) -> bool:
        return self.plan is not None

    @property
    def waiting(self) -> bool:
        """A stack waiting for a choice of planes (not a choice that does not fit it)."""
        return self.needs in ("z", "t") and self.scene is not None and "does not exist" not in self.problem

    @property
    def pixel_size(self) -> str:
        if self.plan is not None and self.plan.input_pixel_size_um is not None:
            return format_pixel_size(self.plan.input_pixel_size_um)
        if self.info is not None and self.info.pixel_size_um is not None:
            return format_pixel_size(self.info.pixel_size_um)
        return "–"

    @property
    def origin(self) -> str:
        """Where the pixel size came from, in words."""
        origin = self.plan.calibration if self.plan is not None else (self.info.calibration if self.info else None)
        return TYPED_LABELS.get(origin, origin or ("none" if self.info is not None else ""))

    @property
    def typed(self) -> bool:
        return self.plan is not None and self.plan.calibration in TYPED_LABELS

    @property
    def scene_text(self) -> str:
        """``2 of 4 · TileScan_001 tile 2/4`` for a file of several scenes ("" for one)."""
        scene = self.scene
        if scene is None or self.scenes <= 1:
            return ""
        if self.whole_file:
            return f"{self.scenes} scenes"
        return f"{scene.scene + 1} of {self.scenes}" + (f" · {scene.scene_name}" if scene.scene_name else "")

    @property
    def planes_text(self) -> str:
        """The file's Z × T planes and what this source is of them: ``Z 11 → max``, ``T 53 → frame 3``."""
        scene, ref = self.scene, self.planes
        if scene is None or scene.n_z * scene.n_t == 1:
            return ""
        parts = []
        for axis, count, chosen in (("Z", scene.n_z, ref[0]), ("T", scene.n_t, ref[1])):
            if count > 1:
                part = f"{axis} {count}"
                if chosen is not None:
                    part += f" → {PLANE_CHOICES.get(chosen, chosen) if isinstance(chosen, str) else chosen}"
                parts.append(part)
        return ", ".join(parts)

    @property
    def channels_text(self) -> str:
        """``3: Phase, EGFP, Cy3``, ``RGB`` or ``1``; the kept ones when channels are chosen."""
        info = self.info if self.info is not None else self.scene
        if info is None:
            return ""
        if info.axes == "YXS" and info.channels in (3, 4):
            return "RGB" if info.channels == 3 else "RGBA"
        names = ", ".join(info.channel_names)
        return f"{info.channels}: {names}" if names and info.channels > 1 else (names or str(info.channels))

    @property
    def status(self) -> str:
        if self.info is None:
            return f"unreadable: {self.problem}"
        if self.needs_pixel_size:
            hint = self.info.calibration_hint
            return ("needs a pixel size: double-click its Pixel size cell (or give one in Calibration)"
                    + (f" — {hint}" if hint else ""))
        if self.needs in ("z", "t") and self.waiting:
            scene = self.scene
            what = f"a Z choice ({scene.n_z} planes)" if self.needs == "z" else f"a frame choice ({scene.n_t} frames)"
            return f"needs {what}: choose in Planes, Media panel"
        if self.needs in ("z", "t"):
            return f"will fail: {self.problem} Change it in Planes (Media panel)."
        if self.plan is None:
            return f"will fail: {self.problem}"
        if self.warnings:
            return f"ready · ⚠ {self.warnings[0]}"
        return "ready"


@dataclass(frozen=True)
class Assessment:
    """Every image of the sources under the current settings."""

    rows: tuple[Row, ...] = ()
    skipped: int = 0
    files: int = 0  # image files the rows come from
    unsearched: int = 0  # sub-folders that could not be read

    @property
    def ready(self) -> list[Row]:
        return [r for r in self.rows if r.ok]

    @property
    def failing(self) -> list[Row]:
        """Images the export would fail: unreadable ones, and those the settings do not fit."""
        return [r for r in self.rows if not r.ok]

    @property
    def unreadable(self) -> list[Row]:
        return [r for r in self.rows if r.info is None]

    @property
    def tiles(self) -> int:
        return sum(len(r.plan.grid) for r in self.ready)

    @property
    def max_channels(self) -> int:
        return max((r.info.channels for r in self.rows if r.info is not None), default=1)

    def needing(self, setting: str) -> list[Row]:
        """The rows that wait for a choice of ``setting`` ("z" or "t")."""
        return [r for r in self.rows if not r.ok and r.needs == setting and r.waiting]

    def count_text(self) -> str:
        """``7 images (1 unreadable, 2 other files skipped)``: every image is counted, as the export counts."""
        notes = []
        if self.unreadable:
            notes.append(f"{len(self.unreadable)} unreadable")
        if self.skipped:
            notes.append(f"{plural(self.skipped, 'other file')} skipped")
        if self.unsearched:
            notes.append(f"{plural(self.unsearched, 'folder')} not readable")
        text = plural(len(self.rows), "image")
        if self.files and self.files != len(self.rows):
            notes.insert(0, f"from {plural(self.files, 'file')}")
        return text + (f" ({', '.join(notes)})" if notes else "")

    def calibration_text(self, settings: Settings) -> str:
        """Who has a pixel size from where, and what the typed one is given to."""
        readable = [r for r in self.rows if r.info is not None]
        if not readable or not settings.calibrate:
            return ""
        calibrated = [r for r in readable if r.info.pixel_size_um is not None]
        bare = len(readable) - len(calibrated)
        origins = sorted({r.info.calibration for r in calibrated if r.info.calibration})
        parts = []
        if calibrated:
            sizes = sorted({r.info.pixel_size_um[1] for r in calibrated})
            span = f"{sizes[0]:.4g} µm" if math.isclose(sizes[0], sizes[-1]) else f"{sizes[0]:.4g}–{sizes[-1]:.4g} µm"
            parts.append(f"{len(calibrated)} of {plural(len(self.rows), 'image')} calibrated ({span}, "
                         f"{', '.join(origins)})")
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable")
        if settings.pixel_size is not None and settings.pixel_size_scope == "all":
            parts.append("the pixel size above replaces every image's metadata")
        elif bare:
            typed = sum(1 for r in readable if r.info.pixel_size_um is None and r.plan is not None
                        and r.plan.calibration == TYPED_FILE)
            if settings.pixel_size is not None:
                parts.append(f"{plural(bare, 'image')} without calibration get the pixel size above")
            elif typed == bare:
                parts.append(f"{plural(bare, 'image')} without calibration have a pixel size typed in the table")
            else:
                parts.append(f"{bare - typed} without calibration need a pixel size: type it above or in the table")
        return "; ".join(parts) + "."

    def failure_text(self) -> tuple[str, str]:
        """The export warning: how many images will fail and the first reason; all in the tooltip."""
        failing = self.failing
        if not failing:
            return "", ""
        lines = [f"{r.name}: {r.problem}" for r in failing]
        first = failing[0]
        why = "needs a pixel size" if first.needs_pixel_size else \
            (NEEDS_TEXT[first.needs] if first.waiting else first.status if first.info is None else first.problem)
        why = why if len(why) <= 70 else why[:69] + "…"
        return (f"⚠ {len(failing)} of {plural(len(self.rows), 'image')} will fail (marked in the sources table), "
                f"e.g. {first.name}: {why}.".replace("..", "."), "\n".join(lines[:40]))


def assess(sources: Sources | None, settings: Settings) -> Assessment:
    """Plan every image of ``sources`` under ``settings`` (from metadata: no pixels are read):
    one row per source the export would cut — every scene, plane or projection of a file, as
    :func:`tilesapp.core.sources.sources_of` gives them — and one failing row for a file that
    gives none, as the export records it."""
    if sources is None:
        return Assessment()
    reasons = dict(sources.unreadable)
    rows = []
    for path, name in sources.names().items():
        scenes = sources.scenes.get(path)
        if not scenes:
            rows.append(Row(path, name, None, problem=without_name(path.name, reasons.get(name, "cannot be read."))))
            continue
        rows += _file_rows(path, name, scenes, settings)
    return Assessment(tuple(rows), len(sources.skipped), len(sources.scenes) + len(sources.unreadable),
                      len(sources.unsearched))


def _file_rows(path: Path, name: str, scenes: list[SceneInfo], settings: Settings) -> list[Row]:
    try:
        found, warnings = sources_of(path, name, scenes, settings)
    except ImageError as exc:
        needs = getattr(exc, "setting", "")
        # the scene the choice is missing for, so its planes are shown
        scene = next((i for i in scenes if (needs == "z" and i.n_z > 1) or (needs == "t" and i.n_t > 1)), scenes[0])
        return [Row(path, name, scene, problem=without_name(name, str(exc)), scene=scene, scenes=len(scenes),
                    needs=needs, whole_file=True)]
    rows = []
    for number, source in enumerate(found):
        scene = scenes[source.ref.scene]
        common = dict(number=number, scene=scene, scenes=len(scenes), planes=(source.ref.z, source.ref.t))
        try:
            plan = plan_image(source.info, settings, source.name)
        except CalibrationMissing as exc:
            why = f" ({exc.hint})" if exc.hint else ""
            rows.append(Row(path, source.name, source.info, problem=f"no pixel size in its file{why}; {GIVE_PIXEL_SIZE}.",
                            needs_pixel_size=True, needs="pixel_size", **common))
            continue
        except ImageError as exc:
            rows.append(Row(path, source.name, source.info, problem=without_name(source.name, str(exc)),
                            needs=getattr(exc, "setting", ""), **common))
            continue
        notes = tuple(warnings if number == 0 else ()) + tuple(plan.warnings)
        rows.append(Row(path, source.name, source.info, plan, warnings=notes, **common))
    return rows


def tile_memory_problem(settings: Settings, channels: int) -> str:
    """Why the export would refuse this tile size for the memory limit ("" when it would not):
    the engine's rule (two tiles and their working copies must fit), said before the user
    presses Export."""
    limit = settings.memory_limit or default_memory_limit()
    itemsize = np.dtype(settings.dtype).itemsize
    fits = largest_tile(settings.tile_size, channels, itemsize, limit)
    if fits is None:
        return ""
    per_tile = tile_bytes(settings.tile_size, channels, itemsize)
    return (f"tiles of {settings.tile_size} px need {per_tile >> 20} MB each ({plural(channels, 'channel')}, "
            f"{settings.dtype}), more than this computer's memory limit for an export ({limit >> 20} MB) allows; "
            f"use tiles of {fits} px or less.")