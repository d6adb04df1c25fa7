#!/usr/bin/env python
"""PNG encoding cost of one tile with OpenCV, per zlib compression level: time and size.

The tiles are the ones the workloads write: a 512² uint8 tile of a W1 image with the YOLO
preset (the synthetic source of bench_workloads.py recalibrated ×2 with INTER_CUBIC, global
min-max to 0–255) and a 128² tile of a W3 crop (256² uint8, global min-max). Or give tiles:
``--tile a.png --tile b.tif``. For every level 0–9 (``cv2.IMWRITE_PNG_COMPRESSION``) and for
OpenCV's default (no parameter): median time of ``cv2.imencode`` over --repeat calls, bytes
and ratio to the raw pixels. Then the throughput of the default with 1 and 2 threads (does
the encoder release the GIL?).

    python benchmarks/png_levels.py [--repeat 200] [--tile PATH ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_workloads import fluorescence  # noqa: E402


def to_uint8(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float32)
    lo, hi = float(image.min()), float(image.max())
    return np.clip(np.rint((image - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def default_tiles() -> dict[str, np.ndarray]:
    w1 = np.clip(fluorescence((2048, 2048), 2024), 0, 65535).astype(np.uint16)
    w1 = to_uint8(cv2.resize(w1, (4096, 4096), interpolation=cv2.INTER_CUBIC))
    w3 = to_uint8(np.clip(fluorescence((256, 256), 7000, peak=180.0, base=12.0) / 1.2, 0, 255).astype(np.uint8))
    return {"W1yolo 512² uint8 (tile 60 of 121)": w1[5 * 384 : 5 * 384 + 512, 5 * 384 : 5 * 384 + 512].copy(),
            "W3 128² uint8 (tile 0 of 9)": w3[:128, :128].copy()}


def time_encode(tile: np.ndarray, params: list[int], repeat: int) -> tuple[float, int]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        ok, buf = cv2.imencode(".png", tile, params)
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(buf)


def throughput(tile: np.ndarray, threads: int, n: int) -> float:
    """Tiles encoded per second with ``threads`` threads (OpenCV default parameters)."""
    with ThreadPoolExecutor(threads) as pool:
        t = time.perf_counter()
        list(pool.map(lambda _: cv2.imencode(".png", tile), range(n)))
        return n / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=200)
    p.add_argument("--tile", type=Path, action="append", help="a tile file to measure instead")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.tile:
        tiles = {str(t): (tifffile.imread(t) if t.suffix == ".tif" else cv2.imread(str(t), cv2.IMREAD_UNCHANGED))
                 for t in args.tile}
    else:
        tiles = default_tiles()
    cv2.setNumThreads(1)  # imencode is single-threaded anyway; keep resize pools out of it
    results = {}
    print(f"OpenCV {cv2.__version__}; median of {args.repeat} encodes per row\n")
    for name, tile in tiles.items():
        raw = tile.nbytes
        rows = []
        for label, params in [("default", [])] + [(str(level), [cv2.IMWRITE_PNG_COMPRESSION, level]) for level in range(10)]:
            seconds, size = time_encode(tile, params, args.repeat)
            rows.append({"level": label, "ms": seconds * 1e3, "bytes": size, "ratio": size / raw})
        tput = {threads: throughput(tile, threads, max(200, 20 * args.repeat // 10)) for threads in (1, 2)}
        results[name] = {"raw_bytes": raw, "levels": rows, "tiles_per_s": tput}
        print(f"### {name}: raw {raw:,} bytes\n")
        print("| level | ms / tile | bytes | size / raw |")
        print("|---|---:|---:|---:|")
        for r in rows:
            print(f"| {r['level']} | {r['ms']:.3f} | {r['bytes']:,} | {r['ratio']:.3f} |")
        print(f"\ndefault parameters: {tput[1]:.0f} tiles/s on 1 thread, {tput[2]:.0f} tiles/s on 2 threads "
              f"({tput[2] / tput[1]:.2f}×)\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
