"""The sources of an export, planned before anything is cut.

:class:`ExportPlan` turns each input file into its sources (scenes, planes, channels as the
settings choose, :mod:`tilesapp.core.sources`), plans each (:mod:`tilesapp.core.plan`) and keeps,
in the manifest's order, a record for each (:class:`~tilesapp.core.manifest.SourceRecord`), the
job that cuts it (None when it cannot be cut) and, later, its result. :class:`ExportSummary` is
what the run tells its caller, read off those records at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tilesapp.core.annotations import AnnotationFolders
from tilesapp.core.cut import ImageJob, ImageResult
from tilesapp.core.errors import ImageError, SettingsError
from tilesapp.core.manifest import SourceRecord
from tilesapp.core.memory import largest_tile, tile_bytes
from tilesapp.core.plan import plan_image
from tilesapp.core.readers import open_image
from tilesapp.core.settings import Settings
from tilesapp.core.sinks import StemNames
from tilesapp.core.sources import sources_of
from tilesapp.core.training import TrainingRun


@dataclass
class ExportSummary:
    """What an export did."""

    output: Path
    manifest_path: Path
    tiles_written: int = 0
    images_ok: int = 0
    images_total: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (image or "", message)
    cancelled: bool = False
    stopped_by: str | None = None  # a full disk or a lost permission ended the run
    tiles_dropped: int = 0  # by the empty-tile filter
    split: dict[str, int] | None = None  # images exported per side, when sources are split
    manifest_written: bool = False  # the final manifest is on disk
    #: The settings each failed image needs (e.g. "pixel_size"), for front ends to name their own way.
    settings_failures: dict[str, tuple[str, ...]] = field(default_factory=dict)
    retried: list[str] = field(default_factory=list)  # images run again after their worker was lost
    resumed: int = 0  # sources taken over from the interrupted export resumed

    @property
    def exit_code(self) -> int:
        """0 when every image was exported, 1 otherwise."""
        return 0 if not (self.failed or self.cancelled or self.stopped_by) else 1


class ExportPlan:
    """The sources of an export in the manifest's order: ``records``, ``jobs`` (None for a
    source that cannot be cut) and ``results`` (None until cut), index for index.

    ``warn(name, message)`` is told every warning of a source (``name``) as it is found.
    """

    def __init__(self, settings: Settings, splits: dict[str, str], training: TrainingRun,
                 summary: ExportSummary, warn: Callable[[str, str], None]):
        self.settings, self.splits, self.training, self.summary, self.warn = settings, splits, training, summary, warn
        self.records: list[SourceRecord] = []
        self.jobs: list[ImageJob | None] = []
        self.results: list[ImageResult | None] = []
        self.stems = StemNames()

    def record(self, name: str) -> SourceRecord:
        """The record of the source called ``name``."""
        return next(r for r in self.records if r.name == name)

    def add_file(self, path: Path, name: str, annotations: AnnotationFolders) -> None:
        """The sources of one file, planned: a record each, and a job for each that can be cut."""
        split = self.splits[name] if self.settings.val_fraction > 0 else None
        try:
            with open_image(path) as image:
                scenes = [(scene.info, not getattr(scene, "whole_only", False)) for scene in image.scenes]
            sources, warnings = sources_of(path, name, [info for info, _ in scenes], self.settings)
            mask, labels = annotations.find(path, name)
            objects, objects_file = self.training.objects_for(path, name)
        except ImageError as exc:
            self.fail(SourceRecord(name, self.stems.take(name), split=split), exc)
            return
        for number, source in enumerate(sources):
            record = SourceRecord(name, self.stems.take(name, source.stem_suffix), name=source.name, split=split,
                                  scene=source.ref.scene if len(scenes) > 1 else None,
                                  scene_name=source.info.scene_name, z=source.ref.z, t=source.ref.t,
                                  channel_names=list(source.info.channel_names) or
                                  (list(source.ref.channels) if source.ref.channels is not None else None),
                                  reader=source.info.reader)
            self._append(record)
            for warning in warnings if number == 0 else ():
                self.warn(record.name, warning)
            try:
                plan = plan_image(source.info, self.settings, source.name, scenes[source.ref.scene][1])
                self.training.check_plan(plan, record.name)
            except ImageError as exc:
                self.fail(record, exc, appended=True)
                continue
            self.jobs[-1] = ImageJob(len(self.records) - 1, source.ref, source.name, record.tile_stem, plan,
                                     self.splits[name], mask, labels, objects)
            record.describe(plan, mask, labels or objects_file)
            for warning in plan.warnings:
                self.warn(record.name, f"{record.name}: {warning}")

    def fail(self, record: SourceRecord, exc: ImageError, appended: bool = False) -> None:
        """Mark a source failed (``appended``: its record is in already, its job None)."""
        record.status, record.error = "failed", str(exc)
        if not appended:
            self._append(record)
        if getattr(exc, "setting", None):
            self.summary.settings_failures[record.name] = (exc.setting,)

    def _append(self, record: SourceRecord) -> None:
        self.records.append(record)
        self.jobs.append(None)
        self.results.append(None)

    def check_tile_memory(self, memory_limit: int) -> None:
        """Refuse a tile size whose tiles alone would not fit the memory limit (SettingsError)."""
        channels = max((j.plan.info.channels for j in self.jobs if j is not None), default=1)
        itemsize = np.dtype(self.settings.dtype).itemsize
        fits = largest_tile(self.settings.tile_size, channels, itemsize, memory_limit)
        if fits is not None:
            per_tile = tile_bytes(self.settings.tile_size, channels, itemsize)
            raise SettingsError(
                "tile_size", f"{{name}} {self.settings.tile_size} needs {per_tile >> 20} MB for each tile of "
                             f"{channels} channel{'s' * (channels > 1)}, more than the memory limit "
                             f"({memory_limit >> 20} MB) allows; use tiles of {fits} px or less, or raise the "
                             f"memory limit.")

    def close(self, cancelled: bool, stop_reason: str | None) -> None:
        """Settle every record's status at the end of the run and fill the summary from them."""
        summary, records = self.summary, self.records
        for record in records:
            if record.status == "pending":
                record.status = "cancelled" if (cancelled or stop_reason) else "failed"
            if record.status == "stopped":
                record.status = "cancelled"  # its tiles were taken back; the run's stop says why
                record.error = None
        summary.tiles_written = sum(r.tiles for r in records)
        summary.tiles_dropped = sum(r.tiles_dropped for r in records)
        if self.settings.val_fraction > 0:
            summary.split = {side: sum(r.status == "ok" and r.split == side for r in records) for side in ("train", "val")}
        summary.images_ok = sum(r.status == "ok" for r in records)
        summary.failed = [(r.name, r.error or "") for r in records if r.status == "failed"]
        summary.cancelled = cancelled and any(r.status == "cancelled" for r in records)
        summary.stopped_by = stop_reason
