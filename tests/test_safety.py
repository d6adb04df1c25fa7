"""Issue 11: nothing lost, nothing written outside, whatever the input.

One test per case of the issue, each run through the real ``tilesapp`` command in a child
process (exit code, stdout/stderr, files on disk, manifest.json) so that the engine's internals
may change freely. Every case that is broken today is marked ``xfail(strict=True)``: the suite
stays green now, and the marker must go when the fix lands (an unexpected pass fails).
"""

from __future__ import annotations

import compileall
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from safety_helpers import (
    MB,
    Run,
    cli_env,
    files_under,
    lines,
    manifest,
    mentions,
    noise,
    nothing_written,
    run_cli,
    snapshot,
    strip_tiff,
    write_calibrated,
)

import tilesapp

#: Small tiles, so every export of a 200 × 260 image makes 24 tiles at once.
TILES = ("--patch-size", "64", "--overlap", "16")
NO_TRACEBACK = "Traceback"
#: Virtual memory of a child that is asked to allocate many GiB: the allocation fails there,
#: never on the machine running the tests.
CAP = 3 << 30


def xfail(reason: str):
    return pytest.mark.xfail(strict=True, reason=f"issue 11: {reason}")


def clean(run) -> None:
    """Never a traceback nor an 'unexpected error' on the user's screen."""
    assert NO_TRACEBACK not in run.output, run.output
    assert "unexpected error" not in run.output, run.output


@pytest.fixture
def images(tmp_path) -> Path:
    """Two calibrated 16-bit images (0.325 µm: no rescaling at the default target)."""
    folder = tmp_path / "input"
    folder.mkdir()
    write_calibrated(folder / "a.tif", noise(seed=1))
    write_calibrated(folder / "b.tif", noise(seed=2))
    return folder


@pytest.fixture
def cut(images, tmp_path) -> Path:
    """A tile folder cut from ``images``."""
    out = tmp_path / "tiles"
    run = run_cli("cut", images, out, *TILES)
    assert run.returncode == 0, run.output
    return out


def edit_manifest(folder: Path, edit) -> None:
    data = manifest(folder)
    edit(data)
    (folder / "manifest.json").write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def baseline_rss(tmp_path_factory) -> int:
    """Peak RSS of the command doing almost nothing (interpreter, numpy, OpenCV, tifffile)."""
    base = tmp_path_factory.mktemp("baseline")
    (base / "in").mkdir()
    write_calibrated(base / "in" / "in.tif", noise((32, 32)))
    peaks = []
    for args in (("cut", base / "in", base / "tiles", "--patch-size", "16", "--overlap", "0"),
                 ("merge", base / "tiles", base / "merged")):
        run = run_cli(*args, measure=True)
        assert run.returncode == 0, run.output
        peaks.append(peak(run))
    return max(peaks)


def peak(run) -> int:
    """The measured peak RSS of a run (it must have been measured)."""
    assert run.max_rss > 0, f"no peak memory measured: {run.output}"
    return run.max_rss


# === Security: merge trusts manifest.json =========================================================
@pytest.mark.parametrize(
    "field, value",
    [
        ("tile_stem", "ABSOLUTE"),  # the victim's absolute path without .tif
        ("tile_stem", "../outside/victim"),
        ("file", "ABSOLUTE_TILE"),  # a tile read from anywhere
        ("file", "../outside/stolen.tif"),
    ],
    ids=["tile_stem-absolute", "tile_stem-parent", "file-absolute", "file-parent"],
)
def test_merge_refuses_manifest_paths_outside_its_folders(cut, tmp_path, field, value):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.tif"
    tifffile.imwrite(victim, np.full((5, 5), 7, np.uint8))
    shutil.copy(cut / "a_000.tif", outside / "stolen.tif")
    before = snapshot(outside)
    value = {"ABSOLUTE": str(outside / "victim"), "ABSOLUTE_TILE": str(outside / "stolen.tif")}.get(value, value)

    def edit(m):
        if field == "tile_stem":
            m["sources"][0]["tile_stem"] = value
        else:
            m["tiles"][0]["file"] = value

    edit_manifest(cut, edit)
    merged = tmp_path / "merged"
    run = run_cli("merge", cut, merged)
    assert snapshot(outside) == before  # the victim is untouched, nothing new outside
    assert run.returncode == 2, run.output
    clean(run)
    assert field in run.stderr, run.stderr  # one sentence naming the field
    assert nothing_written(merged)


def test_merge_refuses_duplicate_tile_stems(cut, tmp_path):
    edit_manifest(cut, lambda m: m["sources"][1].__setitem__("tile_stem", m["sources"][0]["tile_stem"]))
    merged = tmp_path / "merged"
    run = run_cli("merge", cut, merged)
    assert run.returncode == 2, run.output
    clean(run)
    assert "tile_stem" in run.stderr, run.stderr
    assert nothing_written(merged)


def test_merge_refuses_huge_tile_size_before_allocating(cut, tmp_path):
    edit_manifest(cut, lambda m: m.__setitem__("tile_size", 40000))  # a 40 000² float64 window: 11.9 GiB
    merged = tmp_path / "merged"
    run = run_cli("merge", cut, merged, "--memory-limit", "256MB", address_space=CAP, timeout=60)
    assert run.returncode == 2, run.output
    clean(run)
    assert "tile_size" in run.stderr, run.stderr
    assert run.seconds < 20
    assert nothing_written(merged)


# === Data loss ====================================================================================
def test_merge_never_writes_into_the_cut_input_folder(images, cut):
    assert Path(manifest(cut)["input"]).resolve() == images.resolve()
    before = snapshot(images)
    run = run_cli("merge", cut, images, "--overwrite")
    assert snapshot(images) == before  # the originals are byte-identical
    assert run.returncode == 2, run.output
    clean(run)
    assert len(lines(run.stderr)) == 1, run.stderr


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_non_finite_pixels_never_give_silent_zeros(tmp_path, value):
    folder = tmp_path / "input"
    folder.mkdir()
    image = noise(seed=3).astype(np.float32)
    finite_low, finite_high = float(image.min()), float(image.max())
    image[5, 7] = value
    write_calibrated(folder / "x.tif", image)
    out = tmp_path / "tiles"
    run = run_cli("cut", folder, out, *TILES)
    clean(run)
    source = manifest(out)["sources"][0]
    non_finite = r"non-?finite|\bnan\b|\binf\b|infinit"
    if run.returncode == 1:  # the image fails alone, with a message saying why
        assert source["status"] == "failed" and mentions(source["error"], non_finite), source
        assert "x.tif" in run.stderr and mentions(run.stderr, non_finite), run.stderr
        return
    assert run.returncode == 0, run.output
    tiles = [tifffile.imread(out / t["file"]) for t in manifest(out)["tiles"]]
    values = np.concatenate([t[np.isfinite(t)] for t in tiles])
    assert values.size and values.max() > 0.5  # not silent zeros: the finite pixels are stretched
    low, high = source["normalization"]["low"][0], source["normalization"]["high"][0]
    assert (low, high) == pytest.approx((finite_low, finite_high))  # statistics of the finite values
    report = json.dumps({k: v for k, v in source.items() if k != "normalization"})
    assert mentions(report, non_finite), source  # recorded in the manifest...
    assert mentions(run.output, non_finite) and "x.tif" in run.output, run.output  # ...and said on screen


def test_non_utf8_file_name_still_gets_a_manifest(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    write_calibrated(folder / "a.tif", noise(seed=4))
    raw = b"caf\xe9.tif"  # Latin-1 é: not valid UTF-8
    write_calibrated(folder / "tmp.tif", noise(seed=5))
    try:
        os.rename(os.fsencode(folder / "tmp.tif"), os.fsencode(folder) + b"/" + raw)
    except OSError:
        pytest.skip("this file system only takes UTF-8 names")
    out = tmp_path / "tiles"
    run = run_cli("cut", folder, out, *TILES)
    clean(run)
    data = json.loads((out / "manifest.json").read_bytes().decode("utf-8"))  # strict UTF-8, valid JSON
    assert [s["status"] for s in data["sources"]] == ["ok", "ok"], data["sources"]
    texts = [v for s in data["sources"] for v in s.values() if isinstance(v, str)]
    lossless = [v for v in texts if os.fsencode(v) == raw or re.search(r"caf(\\x|%)e9", v, re.IGNORECASE)]
    assert lossless, texts  # the name can be recovered byte for byte
    for tile in data["tiles"]:
        assert os.path.lexists(os.fsencode(out) + b"/" + os.fsencode(tile["file"])), tile["file"]
    assert "caf" in run.output, run.output  # and the user is told about it


def test_manifest_write_failure_is_reported(images, tmp_path):
    out = tmp_path / "tiles"
    # Tiles (~4 KB PNGs) fit, the manifest (~10 KB) does not: the disk "fills" exactly there.
    run = run_cli("cut", images, out, *TILES, "--preset", "yolo", "--no-calibration", file_size=8 << 10)
    clean(run)
    assert run.returncode != 0, run.output
    assert "see manifest.json" not in run.output, run.output
    assert mentions(run.stderr, r"manifest"), run.stderr


@pytest.fixture
def six(tmp_path) -> Path:
    folder = tmp_path / "six"
    folder.mkdir()
    for i in range(6):
        write_calibrated(folder / f"s{i}.tif", noise(seed=10 + i))
    return folder


@pytest.mark.parametrize(
    "first, second",
    [(("--patch-size", "64"), ("--patch-size", "96")),
     (("--patch-size", "64", "--split", "0.5", "--seed", "1"), ("--patch-size", "64", "--split", "0.5", "--seed", "2"))],
    ids=["other-tile-size", "other-split-seed"],
)
def test_overwrite_leaves_exactly_the_new_export(six, tmp_path, first, second):
    out = tmp_path / "tiles"
    assert run_cli("cut", six, out, *first, "--overlap", "16").returncode == 0
    run = run_cli("cut", six, out, *second, "--overlap", "16", "--overwrite")
    assert run.returncode == 0, run.output
    clean(run)
    data = manifest(out)
    listed = {t["file"] for t in data["tiles"]}
    on_disk = {f for f in files_under(out) if "lock" not in f.lower()}
    assert on_disk == listed | {"manifest.json"}, sorted(on_disk - listed)[:10]
    sides = {}
    for name in on_disk - {"manifest.json"}:
        if "/" in name:  # train/s0_000.tif
            sides.setdefault(name.rsplit("/", 1)[1].split("_")[0], set()).add(name.split("/")[0])
    assert all(len(s) == 1 for s in sides.values()), sides  # no source in both train/ and val/


def test_overwrite_refuses_files_no_manifest_explains(images, tmp_path):
    out = tmp_path / "tiles"
    out.mkdir()
    (out / "precious.txt").write_text("a week of annotation")
    before = snapshot(out)
    run = run_cli("cut", images, out, *TILES, "--overwrite")
    assert snapshot(out) == before
    assert run.returncode == 2, run.output
    clean(run)
    assert mentions(run.stderr, r"precious\.txt|manifest"), run.stderr


@pytest.fixture(scope="module")
def slow_input(tmp_path_factory) -> Path:
    """Images whose export at 64 px tiles takes about a second (~2900 tiles)."""
    folder = tmp_path_factory.mktemp("slow")
    for i in range(3):
        write_calibrated(folder / f"b{i}.tif", noise((1500, 1500), seed=20 + i))
    return folder


@pytest.fixture(scope="module")
def long_input(tmp_path_factory) -> Path:
    """Images whose export at 64 px tiles on one worker takes a few seconds (~24000 tiles): long
    enough that every Ctrl-C below lands while it runs, on a machine several times faster than ours."""
    folder = tmp_path_factory.mktemp("long")
    for i in range(24):
        write_calibrated(folder / f"c{i:02d}.tif", noise((1500, 1500), seed=40 + i))
    return folder


def while_running(first_args: list, started, second_args: list) -> tuple[subprocess.Popen, str, Run]:
    """Start ``tilesapp FIRST_ARGS``; once ``started(first)`` holds, run ``tilesapp SECOND_ARGS`` with
    the first held still (lock and all: a fast machine could otherwise end it before the second
    has started); then let the first end. Returns the first process, its stderr, and the second run."""
    first = subprocess.Popen([sys.executable, "-m", "tilesapp", *map(str, first_args)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=cli_env())
    try:
        deadline = time.monotonic() + 30
        while not started(first):
            assert first.poll() is None and time.monotonic() < deadline, "the first run ended before the moment"
            time.sleep(0.002)
        paused = hasattr(signal, "SIGSTOP")
        if paused:
            os.kill(first.pid, signal.SIGSTOP)
        try:
            second = run_cli(*second_args)
        finally:
            if paused:
                os.kill(first.pid, signal.SIGCONT)
    finally:
        _, first_err = first.communicate(timeout=120)
    return first, first_err, second


def test_two_exports_into_one_folder_at_once(slow_input, tmp_path):
    out = tmp_path / "tiles"
    first, first_err, second = while_running(
        ["cut", slow_input, out, "--patch-size", "64", "--overlap", "16", "--workers", "1"],
        lambda _: out.is_dir() and any(p.suffix == ".tif" for p in out.iterdir()),
        ["cut", slow_input, out, "--patch-size", "96", "--overlap", "16", "--overwrite"])
    assert first.returncode == 0, first_err
    assert second.returncode != 0, second.output
    clean(second)
    assert mentions(second.stderr, r"lock|another (run|export|process)|in use|running|busy"), second.stderr
    data = manifest(out)
    assert data["tile_size"] == 64
    listed = {t["file"] for t in data["tiles"]}
    assert {f for f in files_under(out) if "lock" not in f.lower()} == listed | {"manifest.json"}
    assert all(tifffile.imread(out / f).shape == (64, 64) for f in sorted(listed)[::37])


def test_two_merges_into_one_folder_at_once(slow_input, tmp_path):
    """A second merge into a folder a merge is writing is refused (nothing of it written): the
    two would otherwise both pass the empty-folder check and mix their images."""
    tiles, merged = tmp_path / "tiles", tmp_path / "merged"
    assert run_cli("cut", slow_input, tiles, "--patch-size", "64", "--overlap", "16").returncode == 0
    def holds_the_lock(first) -> bool:  # the lock file names its holder once it is locked
        try:
            return (merged / ".tilesapp.lock").read_text().startswith(f"{first.pid} ")
        except OSError:
            return False

    first, first_err, second = while_running(["merge", tiles, merged], holds_the_lock,
                                             ["merge", tiles, merged, "--combine", "max"])
    assert first.returncode == 0, first_err
    assert second.returncode == 2, second.output
    clean(second)
    # refused by the lock, or (when the first had written an image by then) by what it wrote
    assert re.search(r"Another run is writing into .*merged|merged is not empty", second.stderr), second.stderr
    assert sorted(files_under(merged)) == ["b0.tif", "b1.tif", "b2.tif"]
    again = run_cli("merge", tiles, tmp_path / "again")
    assert again.returncode == 0
    for name in ("b0.tif", "b1.tif", "b2.tif"):  # the first run's blend, untouched by the refused max
        assert np.array_equal(tifffile.imread(merged / name), tifffile.imread(tmp_path / "again" / name)), name


@pytest.mark.parametrize("where", ["cut-tile", "cut-manifest", "merge-image"])
def test_planted_partial_symlink_is_not_written_through(images, tmp_path, where):
    target = tmp_path / "target.txt"
    target.write_bytes(b"the only copy")
    out = tmp_path / ("tiles" if where.startswith("cut") else "merged")
    if where.startswith("cut"):
        assert run_cli("cut", images, out, *TILES).returncode == 0  # an earlier export: --overwrite is legitimate
        name = ".a_000.tif.partial" if where == "cut-tile" else ".manifest.json.partial"
        (out / name).symlink_to(target)
        run = run_cli("cut", images, out, *TILES, "--overwrite")
    else:
        tiles = tmp_path / "tiles"
        assert run_cli("cut", images, tiles, *TILES).returncode == 0
        out.mkdir()
        (out / ".a.tif.partial").symlink_to(target)
        run = run_cli("merge", tiles, out, "--overwrite")
    assert target.read_bytes() == b"the only copy"
    assert not any((out / f).is_symlink() for f in files_under(out) if not f.startswith(".")), sorted(files_under(out))
    clean(run)


# === Bounded memory everywhere ======================================================================
def test_png_decompression_bomb_is_refused_in_bounded_memory(tmp_path, baseline_rss):
    folder = tmp_path / "input"
    folder.mkdir()
    bomb = np.zeros((10000, 10000), np.uint8)  # 100 MB of pixels in a ~100 KB PNG
    bomb[:10, :10] = 255
    assert cv2.imwrite(str(folder / "bomb.png"), bomb, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    del bomb
    write_calibrated(folder / "fine.tif", noise(seed=6, dtype=np.uint8, high=250))
    out = tmp_path / "tiles"
    run = run_cli("cut", folder, out, "--patch-size", "2048", "--overlap", "0", "--no-calibration", "--norm", "none",
                  "--dtype", "uint8", "--memory-limit", "64MB", timeout=60, measure=True)
    assert run.returncode == 1, run.output  # that image fails alone
    clean(run)
    assert "bomb.png" in run.stderr and mentions(run.stderr, r"memory|limit|too (big|large)"), run.stderr
    assert {s["file"]: s["status"] for s in manifest(out)["sources"]} == {"fine.tif": "ok", "bomb.png": "failed"}
    assert peak(run) - baseline_rss < 64 * MB, f"peak {run.max_rss / MB:.0f} MB, baseline {baseline_rss / MB:.0f} MB"


def test_jpeg_cut_respects_the_memory_limit(tmp_path, baseline_rss):
    folder = tmp_path / "input"
    folder.mkdir()
    rng = np.random.default_rng(0)
    photo = cv2.GaussianBlur((rng.random((1536, 2304, 3)) * 255).astype(np.uint8), (0, 0), 3)
    assert cv2.imwrite(str(folder / "photo.jpg"), photo)
    out = tmp_path / "tiles"
    limit = 128 * MB
    run = run_cli("cut", folder, out, "--pixel-size", "0.65", "--unit", "um", "--memory-limit", "128MB", timeout=60,
                  measure=True)
    clean(run)
    assert run.returncode in (0, 1), run.output
    assert peak(run) - baseline_rss <= 1.2 * limit, f"peak {run.max_rss / MB:.0f} MB, baseline {baseline_rss / MB:.0f} MB"


def test_patch_size_beyond_the_memory_limit_is_refused(images, tmp_path):
    out = tmp_path / "tiles"
    run = run_cli("cut", images, out, "--patch-size", "30000", "--overlap", "0", "--no-calibration",
                  "--memory-limit", "64MB", address_space=CAP, timeout=60)
    assert run.returncode == 2, run.output
    clean(run)
    assert mentions(run.stderr, r"patch|tile"), run.stderr
    # names the size that would fit: a 64 MB limit holds float32 tiles of at most 4096 px
    assert any(256 <= int(n) <= 4096 for n in re.findall(r"\d+", run.stderr)), run.stderr
    assert nothing_written(out)


def test_damaged_huge_tiff_fails_cleanly_every_time(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    # Claims 100 000² px in one-row deflate strips; the first strip is garbage. (The issue's
    # header with no data at all takes the same path but prints the tracebacks only in some
    # runs: here the strips after the damaged one keep zarr busy, so every run shows it.)
    strip_tiff(folder / "huge.tif", 100000, 100000, strips="first-damaged")
    for attempt in range(3):
        out = tmp_path / f"tiles{attempt}"
        run = run_cli("cut", folder, out, "--pixel-size", "0.325", "--unit", "um", "--patch-size", "2048",
                      address_space=CAP, timeout=60)
        assert run.returncode == 1, run.output
        assert "huge.tif" in run.stderr, run.stderr
        assert "Exception ignored" not in run.output, run.output
        clean(run)


def test_whole_canvas_merge_stays_within_the_memory_limit(tmp_path, baseline_rss):
    folder = tmp_path / "input"
    folder.mkdir()
    write_calibrated(folder / "c.tif", noise((4000, 4000), seed=7))
    tiles = tmp_path / "tiles"
    run = run_cli("cut", folder, tiles, "--patch-size", "512", "--overlap", "128", "--norm", "none", "--dtype", "uint16")
    assert run.returncode == 0, run.output
    limit = 256 * MB  # canvas and weights: 4000² × 16 bytes = 256 000 000 bytes, just inside
    run = run_cli("merge", tiles, tmp_path / "merged", "--memory-limit", "256MB", measure=True)
    assert run.returncode == 0, run.output
    assert tifffile.imread(tmp_path / "merged" / "c.tif").shape == (4000, 4000)
    assert peak(run) - baseline_rss <= 1.2 * limit, f"peak {run.max_rss / MB:.0f} MB, baseline {baseline_rss / MB:.0f} MB"


# === README's promises ==============================================================================
def test_banded_and_whole_image_uint8_tiles_are_identical(tmp_path):
    """×2 (a power-of-two scale): bands are resampled by OpenCV itself on whole periods, bit for
    bit as the whole image. Other scales are within one grey level (tests/core/test_stream.py)."""
    folder = tmp_path / "input"
    folder.mkdir()
    # 1700² at 0.65 µm → 3400² at 0.325 µm: ~75 MB whole by the engine's own count, > 64 MB
    write_calibrated(folder / "img.tif", noise((1700, 1700), seed=1, low=0, high=65536), 0.65)
    args = ("--norm", "global", "--dtype", "uint8", "--bounds", "0", "255", "--format", "tif",
            "--patch-size", "256", "--overlap", "32", "--workers", "1")
    banded, whole = tmp_path / "banded", tmp_path / "whole"
    assert run_cli("cut", folder, banded, *args, "--memory-limit", "64MB").returncode == 0
    assert run_cli("cut", folder, whole, *args, "--memory-limit", "16GB").returncode == 0
    names = [t["file"] for t in manifest(whole)["tiles"]]
    assert names == [t["file"] for t in manifest(banded)["tiles"]] and len(names) == 256
    differing = [n for n in names if (banded / n).read_bytes() != (whole / n).read_bytes()]
    assert not differing, f"{len(differing)} tiles differ, e.g. {differing[:3]}"


# === Errors a user can cause ========================================================================
@pytest.mark.parametrize(
    "args, field",
    [(("--bounds", "0", "1e39"), r"bounds"),
     (("--target-pixel-size", "1e-320"), r"target.pixel.size"),
     (("--config", "DEEP"), r"deep\.json|config|settings")],
    ids=["bounds-1e39", "target-pixel-size-1e-320", "config-100000-deep"],
)
def test_unusable_numbers_are_refused_before_writing(images, tmp_path, args, field):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    out = tmp_path / "tiles"
    run = run_cli("cut", images, out, *TILES, *[str(deep) if a == "DEEP" else a for a in args])
    assert run.returncode == 2, run.output
    clean(run)
    assert len(lines(run.stderr)) == 1 and mentions(run.stderr, field), run.stderr
    assert nothing_written(out)


@pytest.mark.parametrize("where", ["input-folder", "missing-folder"])
def test_save_config_is_checked_before_the_export(images, tmp_path, where):
    config = images / "settings.json" if where == "input-folder" else tmp_path / "missing" / "settings.json"
    before = snapshot(images)
    out = tmp_path / "tiles"
    run = run_cli("cut", images, out, *TILES, "--save-config", config)
    assert snapshot(images) == before  # the input folder is never written to
    assert run.returncode == 2, run.output
    clean(run)
    assert mentions(run.stderr, r"settings\.json|save.config"), run.stderr
    assert nothing_written(out)


def test_ctrl_c_at_any_moment_exits_130_without_traceback(long_input, tmp_path):
    # The child says 'R' just before it imports tilesapp (as the installed 'tilesapp' script does),
    # so each delay below lands in tilesapp's own code, never in Python's start-up. Its modules
    # are compiled first, as pip and the bundle install them: a checkout where bytecode is never
    # written (PYTHONDONTWRITEBYTECODE, a fresh CI clone) compiles them in the child, and 3 ms
    # then land in the compiler, before the first line of tilesapp runs.
    compileall.compile_dir(Path(tilesapp.__file__).parent, quiet=1)
    code = ("import sys; sys.stdout.buffer.write(b'R'); sys.stdout.flush(); "
            "from tilesapp._entry import main; sys.exit(main())")
    problems = []
    for i, delay in enumerate([0.003, 0.006, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5]):
        out = tmp_path / f"tiles{i}"
        child = subprocess.Popen([sys.executable, "-c", code, "cut", str(long_input), str(out), *TILES, "--workers", "1"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
        assert child.stdout.read(1) == b"R"
        time.sleep(delay)
        # A run that ended before the signal proves nothing about Ctrl-C: the input is too small.
        assert child.poll() is None, f"the export ended within {delay} s, before Ctrl-C: make long_input longer"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
        err = err.decode("utf-8", "replace")
        # 130, or the default action of SIGINT (which a shell reports as 130 too)
        if child.returncode not in (130, -signal.SIGINT) or NO_TRACEBACK in err:
            problems.append((delay, child.returncode, err.strip().splitlines()[-1:] if err.strip() else ""))
    assert not problems, problems


def _freeze(folder: Path) -> tuple:
    """Take the right to write in ``folder`` away: chmod for a user, the immutable flag for root
    (who ignores permissions); returns how to give it back, or skips the test."""
    if os.geteuid() != 0:
        return (lambda: folder.chmod(0o555)), (lambda: folder.chmod(0o755))
    probe = folder.parent / "immutable-probe"
    probe.mkdir(exist_ok=True)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode:
        pytest.skip("running as root without 'chattr +i': permissions cannot be taken away")
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    return ((lambda: subprocess.run(["chattr", "+i", str(folder)], check=True)),
            (lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)))


def test_permission_lost_mid_export_names_the_file_and_keeps_a_manifest(long_input, tmp_path):
    out = tmp_path / "tiles"
    out.mkdir()
    take, give = _freeze(out)
    child = subprocess.Popen([sys.executable, "-m", "tilesapp", "cut", str(long_input), str(out), *TILES, "--workers", "1",
                              "--overwrite"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    taken = False
    try:
        deadline = time.monotonic() + 30
        while not any(p.suffix == ".tif" for p in out.iterdir()):
            assert child.poll() is None and time.monotonic() < deadline, "the export ended before writing tiles"
            time.sleep(0.002)
        take()
        taken = True
        stdout, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
        if taken:
            give()
    output = stdout + stderr
    assert child.returncode == 1, output
    assert NO_TRACEBACK not in output and "unexpected error" not in output, output
    assert re.search(r"c\d+_\d{3,}\.tif|manifest\.json", stderr), stderr  # the file that could not be written
    assert mentions(stderr, r"permission|not permitted|refused|read-only"), stderr
    json.loads((out / "manifest.json").read_text(encoding="utf-8"))  # a manifest is kept


@pytest.mark.parametrize("case", ["tiff-0x10", "yolo-class-1e20", "damaged-mask", "name-of-250-bytes"])
def test_user_errors_are_one_sentence_naming_the_file(tmp_path, case):
    folder = tmp_path / "input"
    folder.mkdir()
    write_calibrated(folder / "a.tif", noise(seed=8))
    extra: list = []
    if case == "name-of-250-bytes":  # a valid name whose tiles' names (+ "_000.tif") are not
        name, what = "n" * 246 + ".tif", r"longer than the file system allows; give the image a shorter name"
        write_calibrated(folder / name, noise(seed=8))
    elif case == "tiff-0x10":
        strip_tiff(folder / "scan.tif", 0, 10)  # 0 rows × 10 columns
        extra, name, what = ["--pixel-size", "0.325", "--unit", "um"], "scan.tif", r"\b0\b|empty|no pixels?|zero|0 ?[×x] ?10"
    elif case == "yolo-class-1e20":
        labels = tmp_path / "labels"
        labels.mkdir()
        (labels / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1e20 0.5 0.5 0.1 0.1\n")
        extra, name, what = ["--labels", labels], "a.txt", r"line 2"
    else:
        masks = tmp_path / "masks"
        masks.mkdir()
        (masks / "a.tif").write_bytes(b"II*\x00\x08\x00\x00\x00garbage")
        extra, name, what = ["--masks", masks], "a.tif", r"mask"
    out = tmp_path / "tiles"
    run = run_cli("cut", folder, out, *TILES, *extra)
    assert run.returncode == 1, run.output
    clean(run)
    reasons = [line for line in lines(run.stderr) if name in line]
    assert reasons and all(mentions(line, what) for line in reasons), run.stderr
    errors = [s["error"] for s in manifest(out)["sources"] if s["status"] == "failed"]
    assert len(errors) == 1 and name in errors[0] and mentions(errors[0], what), errors


def _warnings(record: dict) -> str:
    return json.dumps({k: v for k, v in record.items() if "warn" in k.lower() and v})


@pytest.mark.parametrize("case", ["multi-series", "pixel-size-1e-9", "print-300-dpi"])
def test_silent_changes_are_warned(tmp_path, case):
    folder = tmp_path / "input"
    folder.mkdir()
    if case == "multi-series":
        name, words = "multi.tif", r"series"
        with tifffile.TiffWriter(folder / name) as tif:
            for shape, dtype in (((200, 260), np.uint16), ((100, 120), np.uint8)):
                tif.write(noise(shape, dtype=dtype, high=250), resolution=(1e4 / 0.325, 1e4 / 0.325),
                          resolutionunit="CENTIMETER", metadata=None)
    elif case == "pixel-size-1e-9":
        name, words = "tiny.tif", r"1 ?[×x] ?1|1 px|shr[iu]nk|small"
        write_calibrated(folder / name, noise(seed=9), 1e-9)
    else:
        name, words = "stage.tif", r"dpi|inch|print|enlarg|×\s?26\d"
        tifffile.imwrite(folder / name, noise((4, 5), seed=9), resolution=(300, 300), resolutionunit="INCH")
    out = tmp_path / "tiles"
    run = run_cli("cut", folder, out, *TILES)
    clean(run)
    source = manifest(out)["sources"][0]
    assert mentions(_warnings(source), words), source  # in the manifest
    assert name in run.output and mentions(run.output, words), run.output  # and in the summary
