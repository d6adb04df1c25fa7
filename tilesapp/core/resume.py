"""Resuming an export that did not end, and removing what lost work left on disk.

An export interrupted by Ctrl-C, a killed job or a lost cluster leaves its manifest (written
from the start, then every few seconds and at the end) and tiles. Resuming it trusts only that
manifest: a source it lists as complete (``ok``), described as the new run describes it (file,
scene and planes, shape, calibration, grid, tile names, split, mask and labels) and whose files
are all on disk is taken over as it is; every other source is cut again — and so is a source
whose tiles' objects a layout gathered into one file at the end (COCO's ``annotations.json``,
rebuilt from per-tile files that are gone once gathered). Before anything is
cut, every file the earlier export wrote that is not a file of a source taken over — the tiles
of an interrupted image, temporary files — is removed, so the new manifest again lists exactly
the tiles on disk.

Only settings that change what is written must match: ``memory_limit`` and ``workers`` say
how a run executes (they may change how a big image is cut in bands, hence the last bit of a
float tile, never which tiles there are). Another input, masks or labels folder, layout, or
setting refuses the resume before anything is removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tilesapp.core.cut import ImageResult
from tilesapp.core.errors import OutputError
from tilesapp.core.folders import ExportContents, export_contents
from tilesapp.core.geometry import index_width
from tilesapp.core.manifest import MANIFEST_NAME, Manifest, SourceRecord, TileRecord
from tilesapp.core.settings import Settings
from tilesapp.core.writers import PARTIAL_SUFFIX

#: Settings that say how a run executes, not what it writes.
RUN_ONLY = ("memory_limit", "workers")
#: Fields of a source's record that say how its cut ended (the others describe the source).
_OUTCOME = ("status", "error", "normalization", "tiles", "tiles_dropped", "warnings")
#: A temporary file of :class:`tilesapp.core.writers.Staged`: ``.<name>.<pid>-<n>.partial``.
_STAGED = re.compile(r"^\.(?P<name>.+)\.\d+-\d+" + re.escape(PARTIAL_SUFFIX) + "$")


@dataclass
class Resumption:
    """The earlier export of a folder, to be resumed."""

    manifest: Manifest
    contents: ExportContents
    kept: list[str] = field(default_factory=list)  # names of the sources taken over

    def take_over(self, records: list[SourceRecord], jobs: list, results: list) -> None:
        """Keep what the earlier export completed — a kept source's earlier record replaces the new
        one in ``records``, its job in ``jobs`` becomes None (nothing to cut) and its result in
        ``results`` holds its earlier tiles — then remove every other file the earlier export wrote."""
        for number, job in enumerate(jobs):
            done = self._completed(records[number]) if job is not None else None
            if done is not None:
                record, tiles, dropped = done
                records[number], jobs[number] = record, None
                results[number] = ImageResult(normalization=record.normalization, tiles=tiles, dropped=dropped)
        self.clear()

    def _completed(self, record: SourceRecord) -> tuple[SourceRecord, list[TileRecord], list[TileRecord]] | None:
        """The earlier record, tiles and dropped tiles of the source ``record`` describes (as
        planned now), when its cut completed and its files are on disk; None: cut it again."""
        earlier = next((s for s in self.manifest.sources if s.name == record.name), None)
        if earlier is None or earlier.status != "ok" or _description(earlier) != _description(record):
            return None
        tiles = [t for t in self.manifest.tiles if t.source == record.name]
        dropped = [t for t in self.manifest.dropped if t.source == record.name]
        folder = self.contents.folder
        if len(tiles) != earlier.tiles or not all((folder / f).is_file() for t in tiles for f in t.files()):
            return None
        if any(t.boxes and not t.label for t in tiles):  # its objects were gathered into one file (COCO)
            return None
        self.kept.append(record.name)
        return earlier, tiles, dropped

    def clear(self) -> int:
        """Remove what the earlier export wrote but the sources taken over; returns the count."""
        folder = self.contents.folder
        keep = {folder / MANIFEST_NAME} | {folder / f for f in self.manifest.files}
        kept = set(self.kept)
        keep |= {folder / f for t in self.manifest.tiles if t.source in kept for f in t.files()}
        removed = 0
        for path in self.contents.written:
            if path not in keep:
                path.unlink(missing_ok=True)
                removed += 1
        for leftover in self.contents.staging:  # a killed run's private folders of staged tiles
            shutil.rmtree(leftover, ignore_errors=True)
        return removed


def resumable(out: Path, settings: Settings, input_root: Path, folders: dict[str, Path | None],
              layout: str) -> Resumption | None:
    """The export in ``out`` to resume, or None when ``out`` holds none (a plain run).

    It must have been cut from ``input_root`` with the same ``settings``, masks and labels
    ``folders`` and ``layout``; otherwise (or when it cannot be read) :class:`OutputError`.
    """
    contents = export_contents(out)
    if not contents.written and not contents.other:
        return None
    manifest = contents.manifest
    if manifest is None:
        why = contents.damaged or f"there is no {MANIFEST_NAME}"
        raise OutputError(f"Cannot resume the export in {out}: {why}. Export into an empty folder, or replace what is "
                          f"there (overwrite) without resuming.")
    if contents.other:
        shown = ", ".join(p.relative_to(out).as_posix() for p in contents.other[:3])
        raise OutputError(f"Cannot resume the export in {out}: it holds {len(contents.other)} file"
                          f"{'s' * (len(contents.other) != 1)} that no export wrote ({shown}); move them first.")
    expected = {"input": str(input_root), "layout": layout,
                **{kind: None if folder is None else str(folder) for kind, folder in folders.items()}}
    now = json.loads(json.dumps(settings.to_dict()))
    differences = [f"{key} {manifest.settings.get(key)!r} there, {now.get(key)!r} now"
                   for key in sorted(set(now) | set(manifest.settings))
                   if key not in RUN_ONLY and manifest.settings.get(key) != now.get(key)]
    differences += [f"{key} {getattr(manifest, key)!r} there, {value!r} now" for key, value in expected.items()
                    if getattr(manifest, key) != value]
    if differences:
        more = f"; and {len(differences) - 3} more" if len(differences) > 3 else ""
        raise OutputError(f"Cannot resume the export in {out}: it was cut with other settings "
                          f"({'; '.join(differences[:3])}{more}). Resume with the same settings, or export into "
                          f"another folder.")
    return Resumption(manifest, contents)


def _description(record: SourceRecord) -> dict[str, Any]:
    data = json.loads(json.dumps(record.to_dict()))  # as the manifest holds it
    return {k: v for k, v in data.items() if k not in _OUTCOME}


# --- what lost work left ------------------------------------------------------------------------------
def image_files(sink, job) -> set[str]:
    """Every file the cut of ``job`` (an :class:`tilesapp.core.cut.ImageJob`) may write through
    ``sink``, relative to its folder (masks in either format a mask may take)."""
    grid = job.plan.grid
    width = index_width(len(grid))
    formats = ("png", "tif") if job.mask is not None else (None,)
    names: set[str] = set()
    for index in range(len(grid)):
        for mask_format in formats:
            files = sink.names(job.stem, index, width, job.split, mask_format)
            names.update(f for f in (files.file, files.mask, files.label) if f)
    return names


def remove_strays(sink, job, listed: list[TileRecord]) -> None:
    """Remove the files of ``job`` that ``listed`` does not name, and every temporary file
    beside its tiles (left by a process that died while writing)."""
    names = image_files(sink, job)
    keep = {f for record in listed for f in record.files()}
    sink.discard(sorted(names - keep))
    folder = getattr(sink, "folder", None)
    if folder is None:
        return
    basenames = {Path(n).name for n in names}
    for parent in {(Path(folder) / n).parent for n in names}:
        try:
            entries = list(os.scandir(parent))
        except OSError:
            continue
        for entry in entries:
            match = _STAGED.match(entry.name)
            if match and match["name"] in basenames:
                Path(entry.path).unlink(missing_ok=True)
