#!/usr/bin/env python
"""The export on a Dask cluster against the export on this computer's threads.

Two workloads, built in a temporary folder:

standard  the export benchmark's (``bench_export.py``): 6 synthetic uint16 images of 2048 × 2048
          px at 0.65 µm, recalibrated to 0.325 µm, 512 px tiles with 128 px overlap, "unet"
          preset (global min-max to 0..1, float32 TIFF): 726 tiles, 761 MB written.
many      a folder of many small images: 240 images of 384 × 384 px at 0.65 µm (768 × 768
          after recalibration), same tiles and preset: 4 tiles each, 960 tiles. Here the cost
          per image (a task, its arguments, its result) weighs most.

Two ways to run each, interleaved over ``--repeat`` rounds (medians are reported):

local     ``run_export`` on threads of this process (one per core, as ``tilesapp cut``).
cluster   ``run_export(executor=...)`` on ``--scheduler`` (default ``local:2``: a LocalCluster
          of two worker processes on this computer). The cluster is started once, before the
          rounds; its start is timed on its own and not charged to the runs.

Both use the same settings (``workers`` = this computer's cores), so they write the same
bytes: the first round checks it (every tile file and the manifest's tiles). Every timed run
writes into a new folder; the previous output is deleted and ``os.sync()`` called before the
clock starts. The report gives cluster / local per workload (above 1: the cluster is slower).
Run from the repository root, with the [dask] extra::

    python benchmarks/bench_dask.py [--scheduler local:2] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

try:  # run from a checkout without installing: make the package importable
    import tilesapp  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the script is started
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tilesapp.core.demo import synthetic_fluorescence, write_calibrated
from tilesapp.core.executors_dask import open_cluster
from tilesapp.core.export import run_export
from tilesapp.core.settings import Settings, cpu_count

INPUT_PIXEL_UM = 0.65
SETTINGS = Settings(tile_size=512, overlap=128).with_preset("unet")
WORKLOADS = {"standard": (6, 2048, 726), "many": (240, 384, 960)}  # images, side, tiles


def build(folder: Path, n_images: int, size: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n_images):
        image = synthetic_fluorescence((size, size), INPUT_PIXEL_UM, seed=2024 + i)
        write_calibrated(folder / f"img_{i:03d}.tif", image, INPUT_PIXEL_UM, "imagej")
    return folder


def export(folder: Path, out: Path, executor=None) -> tuple[float, int]:
    os.sync()
    start = time.perf_counter()
    gen = run_export(folder, out, SETTINGS, executor=executor)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        summary = stop.value
    seconds = time.perf_counter() - start
    if summary.exit_code != 0:
        raise RuntimeError(f"the export failed: {summary}")
    return seconds, summary.tiles_written


def same_output(a: Path, b: Path) -> bool:
    ma, mb = (json.loads((f / "manifest.json").read_text())["tiles"] for f in (a, b))
    return ma == mb and all((a / t["file"]).read_bytes() == (b / t["file"]).read_bytes() for t in ma)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheduler", default="local:2", help="a scheduler's address, or local:N (local:2)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--workdir", help="where the temporary folder goes (which disk is measured)")
    parser.add_argument("--only", choices=sorted(WORKLOADS), help="one workload only")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    names = [args.only] if args.only else list(WORKLOADS)
    with tempfile.TemporaryDirectory(prefix="tilesapp-bench-dask-", dir=args.workdir) as tmp:
        root = Path(tmp)
        print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
              f"({cpu_count()} usable), Python {platform.python_version()}; load average before: "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        folders = {name: build(root / name, *WORKLOADS[name][:2]) for name in names}
        start = time.perf_counter()
        cluster = open_cluster(args.scheduler)
        started = time.perf_counter() - start
        info = cluster.client.scheduler_info()["workers"]
        print(f"Cluster {args.scheduler}: {len(info)} workers, {sum(w['nthreads'] for w in info.values())} threads, "
              f"started (and reached) in {started:.2f} s")
        times: dict[str, dict[str, list[float]]] = {name: {"local": [], "cluster": []} for name in names}
        try:
            for name in names:  # warm-up: imports and pools ready on both sides, output checked
                export(folders[name], root / f"{name}-warm-local")
                export(folders[name], root / f"{name}-warm-cluster", cluster)
                if not same_output(root / f"{name}-warm-local", root / f"{name}-warm-cluster"):
                    raise RuntimeError(f"{name}: the cluster wrote other bytes than the local run")
                print(f"{name}: the cluster's tiles and manifest equal the local run's (checked)")
                for side in ("local", "cluster"):
                    shutil.rmtree(root / f"{name}-warm-{side}")
            for round_ in range(args.repeat):
                for name in names:
                    for side in (("local", "cluster") if round_ % 2 == 0 else ("cluster", "local")):
                        out = root / f"{name}-{side}-{round_}"
                        seconds, tiles = export(folders[name], out, cluster if side == "cluster" else None)
                        assert tiles == WORKLOADS[name][2], (name, tiles)
                        times[name][side].append(seconds)
                        shutil.rmtree(out)
                        print(f"  round {round_ + 1}/{args.repeat}  {name:<8} {side:<7} {seconds:6.2f} s")
        finally:
            cluster.close()
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        report = {}
        print(f"\n{'workload':<9} {'tiles':>6} {'local':>8} {'cluster':>8} {'cluster/local':>14}   (medians of {args.repeat})")
        for name in names:
            local, remote = statistics.median(times[name]["local"]), statistics.median(times[name]["cluster"])
            report[name] = {"tiles": WORKLOADS[name][2], "local_s": local, "cluster_s": remote, "ratio": remote / local,
                            "runs": times[name]}
            print(f"{name:<9} {WORKLOADS[name][2]:>6} {local:>7.2f}s {remote:>7.2f}s {remote / local:>13.2f}x")
        if args.json:
            Path(args.json).write_text(json.dumps({"scheduler": args.scheduler, "cluster_start_s": started,
                                                   "results": report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
