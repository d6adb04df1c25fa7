"""``--resume``: an export interrupted (cancelled, or its process killed) and resumed into the
same folder equals an export that was never interrupted; what cannot be resumed is refused
before anything is removed."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import tifffile
from exports import assert_lists_what_is_on_disk, assert_same_export, manifest, output_files
from helpers import drain, microscopy, write_imagej

from tilesapp.cli import main
from tilesapp.core.errors import OutputError
from tilesapp.core.executors import ThreadExecutor
from tilesapp.core.export import run_export
from tilesapp.core.settings import Settings

SETTINGS = Settings(tile_size=48, overlap=8, workers=2).with_preset("unet")


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed, shape in enumerate([(260, 300), (200, 340), (300, 260), (150, 180)]):
        write_imagej(folder / f"cells{seed}.tif", microscopy(shape, seed=seed), 0.65)
    return folder


class CancelAfterFirst(ThreadExecutor):
    """One image at a time; the run is cancelled as soon as the first image is written."""

    def __init__(self, cancel: threading.Event):
        super().__init__(1)
        self.cancel = cancel

    def submit(self, fn, *args):
        def then_cancel(*args):
            try:
                return fn(*args)
            finally:
                self.cancel.set()

        return super().submit(then_cancel, *args)


def _cancelled(images, out, settings=SETTINGS, **kwargs):
    """An export cancelled once its first image is written; its manifest."""
    cancel = threading.Event()
    with CancelAfterFirst(cancel) as executor:
        drain(run_export(images, out, settings, cancel=cancel, executor=executor, **kwargs))
    m = manifest(out)
    assert m["status"] == "cancelled" and [s["status"] for s in m["sources"]].count("ok") == 1
    return m


def test_resume_after_a_cancel_equals_a_complete_run(images, tmp_path):
    before = _cancelled(images, tmp_path / "out")
    kept = {s["file"] for s in before["sources"] if s["status"] == "ok"}
    kept_files = {t["file"]: (tmp_path / "out" / t["file"]).stat().st_mtime_ns for t in before["tiles"] if t["source"] in kept}
    _, summary = drain(run_export(images, tmp_path / "out", SETTINGS, resume=True))
    _, whole = drain(run_export(images, tmp_path / "whole", SETTINGS))
    assert summary.exit_code == 0 and summary.resumed == len(kept) and summary.tiles_written == whole.tiles_written
    assert_same_export(tmp_path / "whole", tmp_path / "out")
    # the images the cancelled run completed were not cut again
    assert {f: (tmp_path / "out" / f).stat().st_mtime_ns for f in kept_files} == kept_files


def test_resume_after_the_command_was_killed_equals_a_complete_run(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(4):
        write_imagej(folder / f"field{seed}.tif", microscopy((500, 500), seed=seed), 0.65)
    out = tmp_path / "out"
    args = [folder, out, "--preset", "unet", "--patch-size", 40, "--overlap", 8, "--workers", 2, "-q"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen([sys.executable, "-m", "tilesapp", "cut", *map(str, args)], env=env)
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline and len(list(out.glob("*.tif"))) < 50:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the cut ended before it could be killed"
    assert manifest(out)["status"] == "running"
    assert set(output_files(out)) - {t["file"] for t in manifest(out)["tiles"]}  # tiles no manifest lists
    assert main(["cut", *map(str, args), "--resume"]) == 0
    assert main(["cut", *map(str, [folder, tmp_path / "whole", *args[2:]])]) == 0
    assert_same_export(tmp_path / "whole", out)
    assert_lists_what_is_on_disk(out)
    assert not (out / ".tilesapp.lock").exists()


def test_resume_with_other_settings_is_refused_and_nothing_is_removed(images, tmp_path, capsys):
    _cancelled(images, tmp_path / "out")
    files = output_files(tmp_path / "out")
    other = dataclasses.replace(SETTINGS, overlap=16)
    with pytest.raises(OutputError, match=r"Cannot resume .* other settings \(overlap 8 there, 16 now\)"):
        drain(run_export(images, tmp_path / "out", other, resume=True))
    assert output_files(tmp_path / "out") == files
    code = main(["cut", str(images), str(tmp_path / "out"), "--preset", "yolo", "--patch-size", "48", "--overlap", "8",
                 "--resume"])
    assert code == 2 and "dtype 'float32' there, 'uint8' now" in capsys.readouterr().err
    # how a run executes is no setting of what it writes
    _, summary = drain(run_export(images, tmp_path / "out", dataclasses.replace(SETTINGS, workers=1,
                                                                               memory_limit=256 << 20), resume=True))
    assert summary.exit_code == 0


def test_resume_needs_an_export_of_the_same_input_and_a_folder_holding_only_its_files(images, tmp_path):
    _cancelled(images, tmp_path / "out")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_imagej(elsewhere / "cells0.tif", microscopy((100, 100)), 0.65)
    with pytest.raises(OutputError, match="input"):
        drain(run_export(elsewhere, tmp_path / "out", SETTINGS, resume=True))
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"1 file that no export wrote \(notes.txt\)"):
        drain(run_export(images, tmp_path / "out", SETTINGS, resume=True))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a_000.tif").write_bytes(b"x")
    with pytest.raises(OutputError, match="there is no manifest.json"):
        drain(run_export(images, tmp_path / "other", SETTINGS, resume=True))
    # nothing to resume: a plain run
    _, summary = drain(run_export(images, tmp_path / "new", SETTINGS, resume=True))
    assert summary.exit_code == 0 and summary.resumed == 0


def test_resume_cuts_again_a_source_whose_files_are_not_all_there(images, tmp_path):
    drain(run_export(images, tmp_path / "out", SETTINGS))
    m = manifest(tmp_path / "out")
    lost = next(t for t in m["tiles"] if t["source"] == "cells2.tif")
    (tmp_path / "out" / lost["file"]).unlink()
    stray = tmp_path / "out" / ".cells1_000.tif.4242-0.partial"  # a temporary file of a killed run
    stray.write_bytes(b"half a tile")
    _, summary = drain(run_export(images, tmp_path / "out", SETTINGS, resume=True))
    assert summary.resumed == 3 and summary.exit_code == 0
    assert (tmp_path / "out" / lost["file"]).is_file() and not stray.exists()
    drain(run_export(images, tmp_path / "whole", SETTINGS))
    assert_same_export(tmp_path / "whole", tmp_path / "out")
    assert tifffile.imread(tmp_path / "out" / lost["file"]).shape == (48, 48)
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("layout", ["nnunet", "coco"])
def test_resume_of_a_framework_layout_equals_a_complete_run(images, tmp_path, layout):
    masks = tmp_path / "masks"
    masks.mkdir()
    for path in sorted(images.iterdir()):
        shape = tifffile.imread(path).shape
        mask = np.zeros(shape, np.uint16)
        mask[10:50, 20:80], mask[90:140, 100:160] = 7, 300  # two objects (instance ids)
        tifffile.imwrite(masks / path.name, mask)
    settings = Settings(tile_size=64, overlap=16, norm="global", bounds=(0, 255), dtype="uint8", format="png",
                        layout=layout, val_fraction=0.25, seed=1, workers=1)
    m = _cancelled(images, tmp_path / "out" / "set", settings, masks=masks)
    _, summary = drain(run_export(images, tmp_path / "out" / "set", settings, masks=masks, resume=True))
    drain(run_export(images, tmp_path / "whole" / "set", settings, masks=masks))
    # COCO gathers each tile's objects into annotations.json at the end: sources with objects are cut again
    kept = [s["file"] for s in m["sources"] if s["status"] == "ok"]
    with_objects = {t["source"] for t in m["tiles"] if t.get("boxes")}
    assert kept and summary.exit_code == 0
    assert summary.resumed == (len(set(kept) - with_objects) if layout == "coco" else len(kept))
    assert_same_export(tmp_path / "whole" / "set", tmp_path / "out" / "set")


def test_a_killed_run_s_folder_of_staged_tiles_is_cleared_by_resume_and_overwrite(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(2):
        cv2.imwrite(str(folder / f"crop{seed}.png"), (microscopy((96, 96), seed=seed) >> 8).astype(np.uint8))
    args = ["--no-calibration", "--preset", "yolo", "--patch-size", "48", "--overlap", "8", "-q"]
    for option in ("--resume", "--overwrite"):
        out = tmp_path / option.strip("-")
        assert main(["cut", str(folder), str(out), *args]) == 0
        staged = out / ".tilesapp-4242-7.partial"  # a killed run's private folder, half a tile in it
        staged.mkdir()
        (staged / "12.png").write_bytes(b"half a tile")
        assert main(["cut", str(folder), str(out), *args, option]) == 0
        assert not staged.exists()
        assert not [p for p in out.iterdir() if p.name.startswith(".")]
