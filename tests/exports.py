"""Comparing export folders: the same files byte for byte, the same manifest, and a manifest
that lists exactly the files on disk; a slower layout, for interruptions that must land mid-run."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tilesapp.core import sinks
from tilesapp.core.sinks.folder import FolderSink

#: Manifest fields that say when a run happened, not what it wrote.
WHEN = ("created", "updated")
#: Files of a folder that are no export's output.
NOT_OUTPUT = ("manifest.json", ".tilesapp.lock")


def output_files(folder: Path) -> dict[str, bytes]:
    """Every file of an export folder but its manifest and lock, by relative name."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and p.name not in NOT_OUTPUT}


def manifest(folder: Path) -> dict:
    data = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    for key in WHEN:
        data.pop(key, None)
    return data


def assert_same_export(a: Path, b: Path) -> None:
    """Two export folders hold the same manifest (but its dates) and the same files, byte for byte."""
    ma, mb = manifest(a), manifest(b)
    for key in ma.keys() | mb.keys():
        assert ma.get(key) == mb.get(key), key
    fa, fb = output_files(a), output_files(b)
    assert sorted(fa) == sorted(fb)
    assert [name for name in fa if fa[name] != fb[name]] == []


def assert_lists_what_is_on_disk(folder: Path) -> set[str]:
    """The manifest lists exactly the files on disk (no temporary file left); returns them."""
    m = manifest(folder)
    listed = {f for t in m["tiles"] for f in (t["file"], t.get("mask"), t.get("label")) if f} | set(m["files"])
    on_disk = set(output_files(folder))
    assert on_disk == listed, (sorted(on_disk - listed)[:5], sorted(listed - on_disk)[:5])
    return listed



class SlowSink(FolderSink):
    """The plain layout a millisecond slower per tile (layout "slow", see :func:`slow_layout`):
    a cancel or a lost worker lands mid-image on any machine."""

    layout = "slow"

    def write(self, name, array, axes, pixel_size_um):
        time.sleep(0.001)
        super().write(name, array, axes, pixel_size_um)


def slow_layout() -> str:
    """Register :class:`SlowSink`; its name. It lives in a module of tests/ so that the workers of
    a LocalCluster the tests start (they get the tests' ``sys.path``) can unpickle it."""
    sinks.register(SlowSink)
    return SlowSink.layout
