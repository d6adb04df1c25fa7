#!/usr/bin/env python
"""Big-image benchmark: peak memory and time of cutting and merging one slide-sized image.

Workload (the defaults): one 12 000 × 12 000 uint16 tiled BigTIFF (256 px tiles, zlib) at
0.65 µm, written band by band by this script, cut at 0.325 µm (24 000 × 24 000 after
recalibration) into 512 px tiles with 128 px overlap, global min-max to 0–255 uint8 TIFF
(``--bounds 0 255``; the default bounds 0–1 would give tiles of only 0 and 1):
63 × 63 = **3969 tiles**; then those tiles merged back into one BigTIFF.

Each step runs the installed ``tilesapp`` command in its own process under
``/usr/bin/time -v``; its "Maximum resident set size" is the peak memory reported. Steps:

cut           ``tilesapp cut`` with the default memory limit (band by band)
cut-whole     the same with ``--memory-limit 16GB``: the image processed whole, for comparison
merge         ``tilesapp merge`` of the cut's tiles (progressive tiled BigTIFF)

Run from the repository root (about 2 minutes on 2 cores, 3 GB of disk)::

    python benchmarks/bench_big.py [--size 12000] [--skip-whole] [--json out.json] [--check]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

TARGETS = {"cut": 700e6, "merge": 1e9}  # peak resident bytes (issue 6)


def write_slide(path: Path, size: int, pixel_size_um: float = 0.65, band: int = 1024, seed: int = 0) -> None:
    """A synthetic fluorescence slide, generated and written band by band (bounded memory)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, size, (size * size // 40_000, 2))  # ~ one cell per 200 × 200 px
    radii = rng.uniform(6, 25, len(centres))
    tile = 256

    def bands():
        xx = np.arange(size)
        for y0 in range(0, size, band):
            y1 = min(size, y0 + band)
            yy = np.arange(y0, y1)[:, None]
            img = 300 + 80 * np.sin(yy / size * 5) + 60 * np.cos(xx / size * 3)[None, :]
            near = np.flatnonzero((centres[:, 0] > y0 - 80) & (centres[:, 0] < y1 + 80))
            for (cy, cx), r in zip(centres[near], radii[near]):
                x0, x1 = int(max(0, cx - 4 * r)), int(min(size, cx + 4 * r))
                img[:, x0:x1] += 2500 * np.exp(-((yy - cy) ** 2 + (xx[x0:x1] - cx) ** 2) / (2 * r * r))
            img += rng.normal(0, 25, img.shape)
            yield np.clip(img, 0, 65535).astype(np.uint16)

    def tiles():
        for block in bands():  # band is a multiple of the tile size
            for ty in range(0, block.shape[0], tile):
                for tx in range(0, size, tile):
                    out = np.zeros((tile, tile), np.uint16)
                    part = block[ty : ty + tile, tx : tx + tile]
                    out[: part.shape[0], : part.shape[1]] = part
                    yield out

    res = 1e4 / pixel_size_um
    tifffile.imwrite(path, tiles(), shape=(size, size), dtype=np.uint16, tile=(tile, tile), compression="zlib",
                     bigtiff=True, resolution=(res, res), resolutionunit="CENTIMETER")


def timed(cmd: list[str]) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; wall seconds, peak resident bytes, CPU seconds."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    stats = dict(re.findall(r"^\s*(.+?): (.+)$", proc.stderr, re.M))
    return {
        "seconds": round(wall, 2),
        "peak_rss_mb": round(int(stats["Maximum resident set size (kbytes)"]) / 1024, 1),
        "cpu_seconds": round(float(stats["User time (seconds)"]) + float(stats["System time (seconds)"]), 1),
    }


def count_tiles(folder: Path) -> int:
    return len(json.loads((folder / "manifest.json").read_text())["tiles"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12000, help="side of the slide in pixels")
    parser.add_argument("--workdir", type=Path, help="where the temporary folder goes")
    parser.add_argument("--skip-whole", action="store_true", help="skip the whole-image comparison run")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 when a memory target is missed")
    args = parser.parse_args(argv)
    tilesapp = shutil.which("tilesapp") or sys.exit("install the package first: pip install -e .")

    work = Path(tempfile.mkdtemp(prefix="tilesapp-big-", dir=args.workdir))
    try:
        slide = work / "in"
        slide.mkdir()
        t = time.perf_counter()
        write_slide(slide / "slide.tif", args.size)
        print(f"slide: {args.size} × {args.size} uint16, {(slide / 'slide.tif').stat().st_size / 1e6:.0f} MB on disk "
              f"(written in {time.perf_counter() - t:.0f} s)")
        cut = ["cut", str(slide), None, "--target-pixel-size", "0.325", "--patch-size", "512", "--overlap", "128",
               "--norm", "global", "--dtype", "uint8", "--bounds", "0", "255", "--format", "tif", "-q"]
        steps = {}
        for name, extra in (("cut", []), ("cut-whole", ["--memory-limit", "16GB"])):
            if name == "cut-whole" and args.skip_whole:
                continue
            out = work / name
            os.sync()
            steps[name] = timed([tilesapp, *[str(out) if a is None else a for a in cut], *extra])
            steps[name]["tiles"] = count_tiles(out)
            print(f"{name:10s} {steps[name]}")
            if name == "cut-whole":
                shutil.rmtree(out)
        os.sync()
        steps["merge"] = timed([tilesapp, "merge", str(work / "cut"), str(work / "merged"), "-q"])
        merged = next((work / "merged").glob("*.tif"))
        with tifffile.TiffFile(merged) as tif:
            steps["merge"]["output"] = f"{tif.pages[0].shape}, tiled {tif.pages[0].is_tiled}, BigTIFF {tif.is_bigtiff}"
        print(f"{'merge':10s} {steps['merge']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = {"size": args.size, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "steps": steps}
    misses = [f"{k}: {steps[k]['peak_rss_mb']:.0f} MB > {v / 1e6:.0f} MB" for k, v in TARGETS.items()
              if steps[k]["peak_rss_mb"] * 2**20 > v]
    if args.size == 12000 and steps["cut"]["tiles"] != 3969:
        misses.append(f"cut wrote {steps['cut']['tiles']} tiles, expected 3969")
    print("targets:", "all met" if not misses else "; ".join(misses))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 1 if (args.check and misses) else 0


if __name__ == "__main__":
    sys.exit(main())
