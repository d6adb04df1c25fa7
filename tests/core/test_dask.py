"""The cut and the merge on a Dask cluster (a LocalCluster of two worker processes, so that every
image, band and flag really travels by pickle): the same files, byte for byte, and the same
manifest as a run on this computer; per-band tasks for a big image; cancel; a worker killed
mid-image; resume; workers that do not see the run's folders."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import tifffile
from exports import assert_lists_what_is_on_disk, assert_same_export, manifest, slow_layout
from helpers import drain, microscopy, write_imagej

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

from tilesapp.cli import main  # noqa: E402
from tilesapp.core import executors_dask  # noqa: E402
from tilesapp.core.executors_dask import ClusterError, open_cluster, what_a_worker_sees  # noqa: E402
from tilesapp.core.export import run_export  # noqa: E402
from tilesapp.core.merge import run_merge  # noqa: E402
from tilesapp.core.settings import Settings  # noqa: E402

LIMIT = 64 << 20  # the smallest memory limit: the big image below is cut in bands


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes; ``workers=2`` as the local runs below (the same band plan)."""
    executor = open_cluster("local:2", workers=2)
    yield executor
    executor.close()


def _labelled(folder, shape, seed):
    """An image at 0.65 µm with a label mask and YOLO boxes of the same stem."""
    image = microscopy(shape, seed=seed)
    write_imagej(folder / "images" / f"cells{seed}.tif", image, 0.65)
    tifffile.imwrite(folder / "masks" / f"cells{seed}.tif", ((image > np.percentile(image, 90)) * (seed + 1)).astype(np.uint8))
    (folder / "labels" / f"cells{seed}.txt").write_text(f"0 0.5 0.5 0.2 0.3\n{seed % 2} 0.15 0.8 0.1 0.1\n")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    for kind in ("images", "masks", "labels"):
        (root / kind).mkdir()
    for seed, shape in enumerate([(260, 300), (200, 340), (300, 260), (150, 180)]):
        _labelled(root, shape, seed)
    (root / "labels" / "classes.txt").write_text("cell\nnucleus\n")
    return root


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """1400 × 1200 uint16 at 0.5 µm → 2258 × 1935 at 0.31 µm: more than a band's share of LIMIT."""
    folder = tmp_path_factory.mktemp("big") / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "slide.tif", microscopy((1400, 1200), seed=5), resolution=(2e4, 2e4),
                     resolutionunit="CENTIMETER", tile=(256, 256), compression="zlib")
    write_imagej(folder / "small.tif", microscopy((200, 300), seed=6), 0.5)
    return folder


def _pair(folder, tmp_path, settings, executor, **kwargs):
    """The same export here and on the cluster, into folders of the same name (some layouts
    write it down), ``tmp_path/here/set`` and ``tmp_path/cluster/set``; their summaries."""
    _, here = drain(run_export(folder, tmp_path / "here" / "set", settings, **kwargs))
    _, there = drain(run_export(folder, tmp_path / "cluster" / "set", settings, executor=executor, **kwargs))
    return here, there


# --- the same result as on this computer ----------------------------------------------------------------
@pytest.mark.parametrize("preset, extra", [
    ("unet", dict(min_foreground=0.05, keep_empty=0.25, seed=3)),  # the filter on the masks
    ("yolo", dict(val_fraction=0.5, seed=1)),  # png tiles and masks, split by source
])
def test_presets_with_masks_and_labels_on_a_cluster_equal_a_local_run(cluster, dataset, tmp_path, preset, extra):
    settings = dataclasses.replace(Settings(tile_size=128, overlap=32, workers=2).with_preset(preset), **extra)
    here, there = _pair(dataset / "images", tmp_path, settings, cluster, masks=dataset / "masks",
                        labels=dataset / "labels")
    assert here.exit_code == there.exit_code == 0 and there.tiles_written == here.tiles_written > 50
    assert not there.retried
    assert_same_export(tmp_path / "here" / "set", tmp_path / "cluster" / "set")
    m = manifest(tmp_path / "cluster" / "set")
    assert all(t["mask"] and t["label"] for t in m["tiles"])
    assert (bool(m["dropped"]), bool(m["split"])) == (preset == "unet", preset == "yolo")


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    """Images with instance masks (ids) and the same objects as QuPath GeoJSON polygons."""
    root = tmp_path_factory.mktemp("objects")
    for kind in ("images", "masks", "geo"):
        (root / kind).mkdir()
    for i, shape in enumerate([(90, 120), (80, 100), (70, 70)]):
        write_imagej(root / "images" / f"img{i}.tif", microscopy(shape, seed=i), 0.5)
        mask, features = np.zeros(shape, np.uint16), []
        for k, label in enumerate((3, 9, 300)):
            y, x, h, w = 8 + 20 * k, 10 + 25 * k, 12, 18
            mask[y : y + h, x : x + w] = label
            ring = [[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]
            features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                             "properties": {"classification": {"name": ("cell", "nucleus")[k % 2]}}})
        tifffile.imwrite(root / "masks" / f"img{i}.tif", mask)
        (root / "geo" / f"img{i}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return root


@pytest.mark.parametrize("layout, source", [("coco", "masks"), ("nnunet", "annotations"), ("ultralytics", "annotations")])
def test_framework_layouts_on_a_cluster_equal_a_local_run(cluster, objects, tmp_path, layout, source):
    # objects traced or drawn in the workers, gathered by this computer at the end
    settings = Settings(tile_size=64, overlap=16, norm="global", bounds=(0, 255), dtype="uint8", format="png",
                        layout=layout, val_fraction=0.34, seed=2, workers=2)
    given = {"masks": objects / "masks"} if source == "masks" else {"annotations": objects / "geo"}
    here, there = _pair(objects / "images", tmp_path, settings, cluster, **given)
    assert here.exit_code == there.exit_code == 0 and there.tiles_written == here.tiles_written > 10
    assert_same_export(tmp_path / "here" / "set", tmp_path / "cluster" / "set")


def test_a_big_image_goes_to_the_cluster_in_bands_and_equals_a_local_run(cluster, big, tmp_path):
    # percentiles (a histogram over the bands) and the automatic threshold (a subsample of them):
    # every pass of the cut runs on bands
    settings = Settings(tile_size=256, overlap=64, target_pixel_size=0.31, percentiles=(1.0, 99.0), min_foreground=0.02,
                        memory_limit=LIMIT, workers=2).with_preset("unet")
    _, here = drain(run_export(big, tmp_path / "here", settings))
    with distributed.get_task_stream(client=cluster.client) as stream:
        progress, there = drain(run_export(big, tmp_path / "cluster", settings, executor=cluster))
    assert there.exit_code == 0 and there.tiles_written == here.tiles_written > 0
    assert there.tiles_dropped == here.tiles_dropped > 20
    assert_same_export(tmp_path / "here", tmp_path / "cluster")
    bands = [t["key"] for t in stream.data if "-band-" in t["key"]]
    images = {t["key"] for t in stream.data if "-band-" not in t["key"]}
    assert len(images) == 2 and len(bands) >= 3 * 3  # three passes of at least three bands
    assert progress[-1].done == progress[-1].total


def test_merge_on_a_cluster_equals_a_local_merge(cluster, big, tmp_path):
    settings = Settings(tile_size=256, overlap=64, target_pixel_size=0.31, norm="none", dtype="uint16", workers=2)
    drain(run_export(big, tmp_path / "tiles", settings))
    limit = LIMIT  # the slide's 2258 × 1935 canvas needs more: merged row by row into a tiled BigTIFF
    _, here = drain(run_merge(tmp_path / "tiles", tmp_path / "here", blend="gradient", memory_limit=limit))
    _, there = drain(run_merge(tmp_path / "tiles", tmp_path / "cluster", blend="gradient", memory_limit=limit,
                               executor=cluster))
    assert [p.name for p in there.written] == [p.name for p in here.written] == ["slide.tif", "small.tif"]
    assert not there.failed and there.exit_code == 0
    for path in here.written:
        assert path.read_bytes() == (tmp_path / "cluster" / path.name).read_bytes()
    assert tifffile.TiffFile(tmp_path / "cluster" / "slide.tif").pages[0].is_tiled


# --- cancel, lost workers, resume -------------------------------------------------------------------------
def test_cancel_on_a_cluster_leaves_a_manifest_listing_exactly_the_tiles_on_disk(cluster, dataset, tmp_path):
    settings = Settings(tile_size=48, overlap=8, workers=2).with_preset("unet")
    cancel = threading.Event()
    gen = run_export(dataset / "images", tmp_path / "out", settings, cancel=cancel, executor=cluster, layout=slow_layout())
    for progress in gen:
        if progress.done >= 30:
            cancel.set()
    m = manifest(tmp_path / "out")
    assert m["status"] == "cancelled" and "cancelled" in {s["status"] for s in m["sources"]}
    listed = assert_lists_what_is_on_disk(tmp_path / "out")
    assert 0 < len(listed) < progress.total
    # cut again from there: the images the cancelled run completed are kept, the others done
    _, resumed = drain(run_export(dataset / "images", tmp_path / "out", settings, executor=cluster, resume=True,
                                  layout="slow"))
    _, whole = drain(run_export(dataset / "images", tmp_path / "whole", settings, layout="slow"))
    assert resumed.exit_code == 0 and resumed.resumed == sum(s["status"] == "ok" for s in m["sources"])
    assert_same_export(tmp_path / "whole", tmp_path / "out")


def test_a_worker_killed_mid_image_is_retried_and_the_result_is_the_same(cluster, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(2):
        write_imagej(folder / f"field{seed}.tif", microscopy((400, 400), seed=seed), 0.65)
    settings = Settings(tile_size=32, overlap=8, workers=2).with_preset("unet")  # 1089 tiles, over 1 s an image
    cluster.client.wait_for_workers(2, timeout=30)
    pids = cluster.client.run(os.getpid)
    killed = []
    gen = run_export(folder, tmp_path / "cluster", settings, executor=cluster, layout=slow_layout())
    try:
        while True:
            next(gen)
            if not killed and cluster.in_flight() > 200:  # an image is half-way, on some worker
                busy = [w for w, keys in cluster.client.processing().items() if keys]
                if busy:
                    killed.append(busy[0])
                    os.kill(pids[busy[0]], signal.SIGKILL)
    except StopIteration as stop:
        summary = stop.value
    assert killed and summary.exit_code == 0
    assert summary.retried and all(f"{name}: a worker was lost while cutting it" in dict(summary.warnings)[name]
                                   for name in summary.retried)
    assert not list((tmp_path / "cluster").rglob("*.partial"))
    _, here = drain(run_export(folder, tmp_path / "here", settings, layout="slow"))
    assert_same_export(tmp_path / "here", tmp_path / "cluster")
    cluster.client.wait_for_workers(2, timeout=30)  # the nanny started a new worker


def test_an_image_whose_worker_is_lost_too_often_fails_alone_and_leaves_no_file(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for seed in range(2):
        write_imagej(folder / f"field{seed}.tif", microscopy((400, 400), seed=seed), 0.65)
    settings = Settings(tile_size=32, overlap=8, workers=2).with_preset("unet")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # no second chance
        executor = open_cluster("local:2", workers=2)
    try:
        pids = executor.client.run(os.getpid)
        gen = run_export(folder, tmp_path / "out", settings, executor=executor, layout=slow_layout())
        killed = []
        for _ in gen:
            if not killed and executor.in_flight() > 200:
                busy = [w for w, keys in executor.client.processing().items() if keys]
                if busy:
                    killed.append(busy[0])
                    os.kill(pids[busy[0]], signal.SIGKILL)
    finally:
        executor.close()
    m = manifest(tmp_path / "out")
    failed = {s["file"]: s["error"] for s in m["sources"] if s["status"] == "failed"}
    assert killed and len(failed) == 1 and m["status"] == "complete"
    assert "the worker cutting it was lost 1 time (it ended while it ran" in next(iter(failed.values()))
    stem = next(iter(failed))[: -len(".tif")]
    assert not list((tmp_path / "out").glob(f"{stem}_*")) and not list((tmp_path / "out").rglob("*.partial"))
    assert_lists_what_is_on_disk(tmp_path / "out")


# --- the command line -----------------------------------------------------------------------------------
def test_cli_cut_and_merge_with_a_scheduler_address(cluster, dataset, tmp_path, capsys):
    address = cluster.client.scheduler.address
    out = tmp_path / "tiles"
    assert main(["cut", str(dataset / "images"), str(out), "--preset", "yolo", "--patch-size", "128", "--overlap", "32",
                 "--workers", "2", "--scheduler", address, "-q"]) == 0
    assert main(["cut", str(dataset / "images"), str(tmp_path / "here"), "--preset", "yolo", "--patch-size", "128",
                 "--overlap", "32", "--workers", "2", "-q"]) == 0
    assert_same_export(tmp_path / "here", out)
    assert main(["merge", str(out), str(tmp_path / "merged"), "--scheduler", address, "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "merged").iterdir()) == [f"cells{i}.tif" for i in range(4)]


def test_workers_that_do_not_see_the_folders_refuse_the_run_and_nothing_is_written(cluster, dataset, tmp_path,
                                                                                  monkeypatch, capsys):
    # /proc/self/cwd is each process's own working folder: the same path names another folder
    # on the workers (started elsewhere), as a folder that is not shared would
    (tmp_path / "seen-here").mkdir()
    write_imagej(tmp_path / "seen-here" / "a.tif", microscopy((64, 64)), 0.65)
    monkeypatch.chdir(tmp_path)
    address = cluster.client.scheduler.address
    code = main(["cut", "/proc/self/cwd/seen-here", "/proc/self/cwd/tiles", "--scheduler", address, "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "Not every Dask worker sees the files of this run" in err
    assert "cannot see /proc/self/cwd/seen-here" in err and "does not see the export folder" in err
    assert not (tmp_path / "tiles").exists()
    problems = what_a_worker_sees([(str(tmp_path / "seen-here" / "a.tif"), 1)], str(tmp_path / "nothing"), "x", "0")
    assert len(problems) == 3 and "sees another file" in problems[1]


def test_a_bad_scheduler_is_a_clear_error(dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(executors_dask, "CONNECT_TIMEOUT", 2.0)
    with pytest.raises(ClusterError, match="between 1 and 256"):
        open_cluster("local:0")
    with pytest.raises(ClusterError, match="not a scheduler address"):
        open_cluster("nowhere")
    started = time.monotonic()
    code = main(["cut", str(dataset / "images"), str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9", "-q"])
    assert code == 2 and time.monotonic() - started < 60
    assert "Cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
