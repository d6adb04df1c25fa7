#!/usr/bin/env python
"""Export benchmark: Tiles Creator against a naive baseline and an I/O floor, in one run.

Standard workload (the defaults): 6 synthetic uint16 fluorescence images of 2048 × 2048 px at
0.65 µm (ImageJ metadata), recalibrated to 0.325 µm (4096 × 4096), cut into 512 px tiles with
128 px overlap, "unet" preset (global min-max to 0..1, float32 TIFF): 6 × 121 = 726 tiles.

Three methods are timed, interleaved over ``--repeat`` rounds (the median is reported):

tilesapp  ``tilesapp.core.export.run_export`` with ``Settings().with_preset("unet")`` into an
          empty folder (worker threads: one per core unless ``--workers``).
baseline  serial, per image: ``tifffile.imread``, ``skimage.transform.resize`` (order 3,
          ``preserve_range=True``, skimage's default anti-aliasing, i.e. none when upscaling)
          of the whole image, global min-max to 0..1 float32, one ``tifffile.imwrite`` per tile
          (boxes from ``TileGrid``, so the tile count is the same).
floor     serial, per image: ``tifffile.imread`` of the source, then one file per tile holding
          as many bytes as a float32 tile (512 × 512 × 4), written from a preallocated buffer.
          No computation at all: what reading and writing the data costs on this machine.

Every timed run writes into a new folder; the previous output is deleted and ``os.sync()``
is called before the clock starts (neither is timed). Each run must produce the expected
number of tiles. Run from the repository root::

    python benchmarks/bench_export.py [--images 6] [--size 2048] [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

try:  # run from a checkout without installing: make the package importable
    import tilesapp  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the script is started
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tilesapp
from tilesapp.core import export as export_module
from tilesapp.core.calibration import scale_factors, scaled_shape
from tilesapp.core.demo import synthetic_fluorescence, write_calibrated
from tilesapp.core.export import MANIFEST_NAME, run_export
from tilesapp.core.geometry import TileGrid
from tilesapp.core.settings import Settings

INPUT_PIXEL_UM = 0.65
METHODS = ("tilesapp", "baseline", "floor")
#: Targets of the issue: speed-up over the baseline, and tilesapp time / floor time.
TARGET_SPEEDUP = 3.0
TARGET_FLOOR = 1.5
#: A later, tighter goal for the same workload (reported, not enforced by --check).
TARGET_FLOOR_NEXT = 1.3
SOURCE_SEED = 2024


# --- the workload --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workload:
    sources: Path  # folder of the source images
    images: tuple[Path, ...]
    settings: Settings
    scaled: tuple[int, int]  # recalibrated (rows, cols) of every image
    grid: TileGrid
    source_bytes: int

    @property
    def tiles_per_image(self) -> int:
        return len(self.grid)

    @property
    def n_tiles(self) -> int:
        return len(self.images) * self.tiles_per_image

    @property
    def tile_bytes(self) -> int:
        """Pixel bytes of one float32 tile (what the floor writes per tile)."""
        return self.settings.tile_size * self.settings.tile_size * np.dtype(np.float32).itemsize


def build_workload(folder: Path, n_images: int, size: int, settings: Settings) -> Workload:
    """Write ``n_images`` synthetic ``size`` × ``size`` uint16 images at 0.65 µm into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n_images):
        path = folder / f"bench_{i:02d}.tif"
        image = synthetic_fluorescence((size, size), INPUT_PIXEL_UM, seed=SOURCE_SEED + i)
        write_calibrated(path, image, INPUT_PIXEL_UM, "imagej")
        images.append(path)
    factors = scale_factors((INPUT_PIXEL_UM, INPUT_PIXEL_UM), settings.target_pixel_size_um)
    scaled = scaled_shape((size, size), factors)
    grid = TileGrid.for_shape(scaled, settings.tile_size, settings.overlap)
    return Workload(folder, tuple(images), settings, scaled, grid, sum(p.stat().st_size for p in images))


# --- the three methods ---------------------------------------------------------------------------
# Each takes (workload, empty output folder) and returns the number of tiles it reports.
def run_tilesapp(work: Workload, out: Path, workers: int | None = None) -> int:
    gen = run_export(work.sources, out, dataclasses.replace(work.settings, workers=workers))
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        summary = stop.value
    if summary.exit_code != 0:
        raise RuntimeError(f"tilesapp export failed: {summary}")
    return summary.tiles_written


def run_baseline(work: Workload, out: Path) -> int:
    from skimage.transform import resize

    written = 0
    for path in work.images:
        image = tifffile.imread(path)
        # anti_aliasing left at skimage's default (None): off when upscaling.
        scaled = resize(image, work.scaled, order=3, preserve_range=True)
        low, high = float(scaled.min()), float(scaled.max())
        norm = ((scaled - low) / (high - low if high > low else 1.0)).astype(np.float32)
        del scaled
        for tile in work.grid:
            region = norm[tile.y0 : tile.y1, tile.x0 : tile.x1]
            if tile.pad_y or tile.pad_x:  # only for sources smaller than a tile (not the standard workload)
                region = np.pad(region, ((0, tile.pad_y), (0, tile.pad_x)))
            tifffile.imwrite(out / f"{path.stem}_{tile.index:03d}.tif", region)
            written += 1
    return written


def run_floor(work: Workload, out: Path) -> int:
    # Random (not zero) bytes so that no layer below can shortcut the writes.
    payload = np.random.default_rng(0).integers(0, 256, work.tile_bytes, dtype=np.uint8).tobytes()
    written = 0
    for path in work.images:
        tifffile.imread(path)
        for index in range(work.tiles_per_image):
            with open(out / f"{path.stem}_{index:03d}.raw", "wb") as fh:
                fh.write(payload)
            written += 1
    return written


# --- timing --------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    user: float  # CPU seconds of the whole process (all threads)
    system: float
    tiles: int
    tile_bytes: int
    other_bytes: int  # files that are not tiles (tilesapp's manifest.json)


@dataclass
class MethodResult:
    name: str
    runs: list[Run] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    def median_of(self, key: Callable[[Run], float]) -> float:
        return statistics.median(key(r) for r in self.runs)


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def _inventory(folder: Path) -> tuple[int, int, int]:
    """(tile files, their bytes, bytes of other files) in ``folder``."""
    tiles = tile_bytes = other = 0
    for entry in os.scandir(folder):
        if not entry.is_file():
            continue
        size = entry.stat().st_size
        if entry.name == MANIFEST_NAME or entry.name.startswith("."):
            other += size
        else:
            tiles += 1
            tile_bytes += size
    return tiles, tile_bytes, other


def timed_run(name: str, fn: Callable[[Path], int], out: Path, expected: int, settle: float = 0.0) -> Run:
    out.mkdir(parents=True)
    os.sync()  # flush what earlier runs (and the cleaning) left dirty: not charged to this one
    if settle > 0:
        time.sleep(settle)  # let the system reach the same idle state before every run (see --settle)
    user0, sys0 = _cpu()
    start = time.perf_counter()
    reported = fn(out)
    seconds = time.perf_counter() - start
    user1, sys1 = _cpu()
    tiles, tile_bytes, other = _inventory(out)
    assert reported == expected, f"{name}: reported {reported} tiles, expected {expected}"
    assert tiles == expected, f"{name}: {tiles} tile files in {out}, expected {expected}"
    return Run(seconds, user1 - user0, sys1 - sys0, tiles, tile_bytes, other)


def run_benchmark(work: Workload, runs_dir: Path, repeat: int, workers: int | None,
                  log: Callable[[str], None], settle: float = 0.0) -> dict[str, MethodResult]:
    functions: dict[str, Callable[[Path], int]] = {
        "tilesapp": lambda out: run_tilesapp(work, out, workers),
        "baseline": lambda out: run_baseline(work, out),
        "floor": lambda out: run_floor(work, out),
    }
    results = {name: MethodResult(name) for name in METHODS}
    previous: Path | None = None
    for round_ in range(repeat):
        # Interleaved, and the order rotates so that no method always follows the same one.
        order = METHODS[round_ % len(METHODS):] + METHODS[: round_ % len(METHODS)]
        for name in order:
            if previous is not None:
                shutil.rmtree(previous)  # cleaning: before the sync, outside the timing
            out = runs_dir / f"{name}-{round_ + 1}"
            run = timed_run(name, functions[name], out, work.n_tiles, settle)
            results[name].runs.append(run)
            previous = out
            log(f"  round {round_ + 1}/{repeat}  {name:<8} {run.seconds:7.2f} s  "
                f"(CPU {run.user + run.system:6.2f} s = {run.user:.2f} user + {run.system:.2f} sys)")
    if previous is not None:
        shutil.rmtree(previous)
    return results


def warm_up(folder: Path, settings: Settings, workers: int | None) -> None:
    """One tiny untimed run of each method: imports, lazy modules and thread pools are ready."""
    work = build_workload(folder / "src", 1, 300, settings)
    for name, fn in (("tilesapp", lambda o: run_tilesapp(work, o, workers)),
                     ("baseline", lambda o: run_baseline(work, o)), ("floor", lambda o: run_floor(work, o))):
        out = folder / name
        out.mkdir()
        fn(out)
    shutil.rmtree(folder)


# --- where tilesapp's time goes (optional, --stages) ---------------------------------------------
_STAGES = {  # name in tilesapp.core.export -> label
    "read_image": "read",
    "scale": "resize",
    "channel_range": "min/max",
    "stretch": "stretch",
    "cast": "cast",
    "from_yxc": "layout",
    "write_image": "write",
}


def stage_breakdown(work: Workload, out: Path, workers: int | None) -> dict:
    """One extra, untimed-for-the-table tilesapp run with each stage of the export wrapped.

    For every stage: calls, thread-seconds of wall time and of CPU time (summed over worker
    threads). Wall minus CPU is time a thread spent waiting (GIL, disk, page allocation).
    """
    totals = {label: [0, 0.0, 0.0] for label in _STAGES.values()}
    lock = threading.Lock()
    originals = {name: getattr(export_module, name) for name in _STAGES}

    def wrap(name: str, fn: Callable) -> Callable:
        label = _STAGES[name]

        def wrapper(*args, **kwargs):
            w0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                dw, dc = time.perf_counter() - w0, time.thread_time() - c0
                with lock:
                    entry = totals[label]
                    entry[0] += 1
                    entry[1] += dw
                    entry[2] += dc
        return wrapper

    out.mkdir(parents=True)
    os.sync()
    try:
        for name, fn in originals.items():
            setattr(export_module, name, wrap(name, fn))
        user0, sys0 = _cpu()
        start = time.perf_counter()
        tiles = run_tilesapp(work, out, workers)
        seconds = time.perf_counter() - start
        user1, sys1 = _cpu()
    finally:
        for name, fn in originals.items():
            setattr(export_module, name, fn)
        shutil.rmtree(out, ignore_errors=True)
    assert tiles == work.n_tiles
    return {
        "seconds": seconds,
        "cpu_user": user1 - user0,
        "cpu_system": sys1 - sys0,
        "workers": workers or os.cpu_count(),
        "stages": {label: {"calls": c, "thread_seconds": w, "cpu_seconds": cpu} for label, (c, w, cpu) in totals.items()},
    }


def print_stages(info: dict, print_: Callable[[str], None]) -> None:
    stages = info["stages"]
    busy = sum(s["thread_seconds"] for s in stages.values())
    print_(f"\ntilesapp stages (one extra run: {info['seconds']:.2f} s wall, {info['workers']} worker threads, "
           f"process CPU {info['cpu_user']:.2f} user + {info['cpu_system']:.2f} sys):")
    print_(f"  {'stage':<8} {'calls':>6} {'thread-s':>9} {'CPU-s':>7} {'waiting':>8} {'share':>6}")
    for label, s in stages.items():
        wait = s["thread_seconds"] - s["cpu_seconds"]
        share = s["thread_seconds"] / busy if busy else 0.0
        print_(f"  {label:<8} {s['calls']:>6} {s['thread_seconds']:>9.2f} {s['cpu_seconds']:>7.2f} {wait:>8.2f} {share:>6.0%}")
    print_(f"  {'total':<8} {'':>6} {busy:>9.2f}   (worker threads × wall = {info['workers'] * info['seconds']:.2f} thread-s)")


# --- the machine ---------------------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _ram_gib() -> float | None:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return None


def _filesystem(path: Path) -> str:
    """Type and device of the file system holding ``path`` (Linux), else ''."""
    best = ("", "")
    target = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3:
                mount = parts[1]
                inside = target == mount or target.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best[0]):
                    best = (mount, f"{parts[2]} on {parts[0]}")
    return best[1]


def machine_info(workdir: Path) -> dict:
    import cv2
    import skimage

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    ram = _ram_gib()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_gib": None if ram is None else round(ram, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "tifffile": tifffile.__version__,
        "scikit_image": skimage.__version__,
        "tilesapp": tilesapp.__version__,
        "workdir_filesystem": _filesystem(workdir),
    }


def machine_line(m: dict) -> str:
    ram = "?" if m["ram_gib"] is None else f"{m['ram_gib']:.0f} GiB"
    return (f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {ram} RAM, {m['os']}\n"
            f"         Python {m['python']}, numpy {m['numpy']}, OpenCV {m['opencv']} "
            f"({m['opencv_threads']} threads), tifffile {m['tifffile']}, scikit-image {m['scikit_image']}, "
            f"tilesapp {m['tilesapp']}\n"
            f"         work folder on {m['workdir_filesystem'] or '?'}")


# --- report --------------------------------------------------------------------------------------
def summarize(work: Workload, results: dict[str, MethodResult]) -> dict:
    methods = {}
    for name, res in results.items():
        med = res.median
        tile_bytes = res.runs[0].tile_bytes
        methods[name] = {
            "median_s": med,
            "runs_s": [r.seconds for r in res.runs],
            "tiles": res.runs[0].tiles,
            "tiles_per_s": work.n_tiles / med,
            "tile_bytes": tile_bytes,
            "other_bytes": res.runs[0].other_bytes,
            "mb_per_s": tile_bytes / med / 1e6,
            "cpu_user_s": res.median_of(lambda r: r.user),
            "cpu_system_s": res.median_of(lambda r: r.system),
            "cores_busy": res.median_of(lambda r: (r.user + r.system) / r.seconds),
        }
    speedup = methods["baseline"]["median_s"] / methods["tilesapp"]["median_s"]
    floor_ratio = methods["tilesapp"]["median_s"] / methods["floor"]["median_s"]
    return {
        "methods": methods,
        "ratios": {"baseline_over_tilesapp": speedup, "tilesapp_over_floor": floor_ratio},
        "targets": {
            "speedup_min": TARGET_SPEEDUP,
            "floor_max": TARGET_FLOOR,
            "floor_max_next": TARGET_FLOOR_NEXT,
            "speedup_met": speedup >= TARGET_SPEEDUP,
            "floor_met": floor_ratio <= TARGET_FLOOR,
            "floor_next_met": floor_ratio <= TARGET_FLOOR_NEXT,
        },
    }


def print_report(summary: dict, print_: Callable[[str], None]) -> None:
    head = (f"{'method':<9} {'median s':>9} {'runs s':>20} {'tiles/s':>8} {'MB/s':>7} "
            f"{'tiles':>6} {'MB written':>11} {'CPU s':>6} {'cores busy':>10}")
    print_(head)
    print_("-" * len(head))
    for name, m in summary["methods"].items():
        runs = " ".join(f"{s:.2f}" for s in m["runs_s"])
        print_(f"{name:<9} {m['median_s']:>9.2f} {runs:>20} {m['tiles_per_s']:>8.1f} {m['mb_per_s']:>7.0f} "
               f"{m['tiles']:>6} {m['tile_bytes'] / 1e6:>11.1f} {m['cpu_user_s'] + m['cpu_system_s']:>6.2f} "
               f"{m['cores_busy']:>10.2f}")
    r, t = summary["ratios"], summary["targets"]
    yes = {True: "met", False: "NOT met"}
    print_("")
    print_(f"baseline / tilesapp (speed-up): {r['baseline_over_tilesapp']:5.2f}x   "
           f"target >= {t['speedup_min']:g}x: {yes[t['speedup_met']]}")
    print_(f"tilesapp / floor              : {r['tilesapp_over_floor']:5.2f}x   "
           f"target <= {t['floor_max']:g}x: {yes[t['floor_met']]}   "
           f"(later target <= {t['floor_max_next']:g}x: {yes[t['floor_next_met']]})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6, help="number of source images (default 6)")
    parser.add_argument("--size", type=int, default=2048, help="side of the square sources in px (default 2048)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the median is reported (default 3)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder in which the temporary work folder is made (default: the system's temp folder); "
                             "its disk is the one measured")
    parser.add_argument("--workers", type=int, default=None, help="tilesapp worker threads (default: one per core)")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds to wait after cleaning and os.sync() before each timed run (default 0); "
                             "useful on virtual machines whose freed memory is handed back to the host")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    parser.add_argument("--stages", action="store_true",
                        help="after the timed rounds, one more tilesapp run that reports where its time goes")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (sources) at the end")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when a target is not met")
    args = parser.parse_args(argv)
    if args.images < 1 or args.size < 1 or args.repeat < 1:
        parser.error("--images, --size and --repeat must be at least 1")
    try:
        import skimage  # noqa: F401  (the baseline)
    except ImportError:
        parser.error("the baseline needs scikit-image: pip install -e '.[bench]' (or pip install scikit-image)")

    def say(text: str) -> None:
        print(text, flush=True)

    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="tilesapp-bench-", dir=args.workdir))
    settings = Settings().with_preset("unet")
    try:
        machine = machine_info(root)
        say(machine_line(machine))
        t0 = time.perf_counter()
        work = build_workload(root / "sources", args.images, args.size, settings)
        say(f"\nWorkload: {len(work.images)} images {args.size}×{args.size} uint16 at {INPUT_PIXEL_UM} µm "
            f"({work.source_bytes / 1e6:.1f} MB) -> {settings.target_pixel_size_um} µm "
            f"({work.scaled[1]}×{work.scaled[0]}), tiles {settings.tile_size}/{settings.overlap}, preset unet: "
            f"{work.tiles_per_image} tiles per image, {work.n_tiles} tiles "
            f"({work.n_tiles * work.tile_bytes / 1e6:.0f} MB of float32 pixels); built in {time.perf_counter() - t0:.1f} s")
        say(f"tilesapp workers: {args.workers or os.cpu_count()}; baseline and floor: serial; "
            f"{args.repeat} interleaved round(s), median reported; settle {args.settle:g} s before each run\n")
        warm_up(root / "warmup", settings, args.workers)
        results = run_benchmark(work, root / "runs", args.repeat, args.workers, say, args.settle)
        summary = summarize(work, results)
        say("")
        print_report(summary, say)
        stages = None
        if args.stages:
            stages = stage_breakdown(work, root / "runs" / "stages", args.workers)
            print_stages(stages, say)
        if args.json is not None:
            data = {
                "machine": machine,
                "workload": {
                    "images": len(work.images),
                    "size": args.size,
                    "dtype": "uint16",
                    "input_pixel_size_um": INPUT_PIXEL_UM,
                    "target_pixel_size_um": settings.target_pixel_size_um,
                    "scaled_shape": list(work.scaled),
                    "tile_size": settings.tile_size,
                    "overlap": settings.overlap,
                    "preset": "unet",
                    "tiles": work.n_tiles,
                    "source_bytes": work.source_bytes,
                },
                "repeat": args.repeat,
                "settle_s": args.settle,
                "tilesapp_workers": args.workers or os.cpu_count(),
                **summary,
                "stages": stages,
            }
            args.json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
            say(f"\nResults written to {args.json}")
    finally:
        if args.keep:
            say(f"Work folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    targets = summary["targets"]
    return 0 if not args.check or (targets["speedup_met"] and targets["floor_met"]) else 1


if __name__ == "__main__":
    sys.exit(main())
