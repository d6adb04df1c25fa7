#!/usr/bin/env python
"""The I/O floor: read (decode) the sources, write as many files and bytes, compute nothing.

cut    decode every source (tifffile / OpenCV), then write one file per tile of the
       contenders' geometry (same count, same names, same suffix), each holding the tile's
       uncompressed pixel bytes (patch² × itemsize × channels) from one preallocated buffer.
merge  decode every tile of a Tiles Creator folder, then write one file per source holding
       the merged image's pixel bytes (rows × cols × itemsize of the tiles).

Sources (cut) and tiles (merge) are spread over a thread pool like the plain script's.

    python floor_script.py cut IN OUT [--scale 2] [--patch 512] [--overlap 128] [--itemsize 4] [--format tif]
    python floor_script.py merge TILES OUT
"""
import argparse
import json
import math
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import tifffile


def decode(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        return tifffile.imread(path)
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def count(length: int, patch: int, overlap: int) -> int:
    return 1 if length <= patch else math.ceil((length - overlap) / (patch - overlap))


def cut(args) -> int:
    images = sorted(f for f in args.input.iterdir() if f.suffix.lower() in (".tif", ".tiff", ".png"))

    def one(path: Path) -> int:
        img = decode(path)
        h, w = img.shape[:2]
        channels = 1 if img.ndim == 2 else img.shape[2]
        del img
        n = count(math.floor(h * args.scale + 0.5), args.patch, args.overlap) * count(math.floor(w * args.scale + 0.5), args.patch, args.overlap)
        data = memoryview(np.ones(args.patch * args.patch * args.itemsize * channels, np.uint8))
        width = max(3, len(str(n - 1)))
        for i in range(n):
            with open(args.out / f"{path.stem}_{i:0{width}d}.{args.format}", "wb") as fh:
                fh.write(data)
        return n

    with ThreadPoolExecutor(args.workers) as pool:
        return sum(pool.map(one, images))


def merge(args) -> int:
    manifest = json.loads((args.input / "manifest.json").read_text())
    by_source = defaultdict(list)
    for t in manifest["tiles"]:
        by_source[t["source"]].append(t)
    with ThreadPoolExecutor(args.workers) as pool:
        for source in manifest["sources"]:
            itemsize = 1
            for tile in pool.map(lambda t: decode(args.input / t["file"]), by_source[source["file"]]):
                itemsize = tile.dtype.itemsize
            rows, cols = source["scaled_shape"]
            buffer = np.zeros(rows * cols * itemsize, np.uint8)  # untouched zero pages: nothing computed
            with open(args.out / f"{source['tile_stem']}.tif", "wb") as fh:
                fh.write(memoryview(buffer))
    return len(manifest["sources"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["cut", "merge"])
    p.add_argument("input", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--scale", type=float, default=2.0)
    p.add_argument("--patch", type=int, default=512)
    p.add_argument("--overlap", type=int, default=128)
    p.add_argument("--itemsize", type=int, default=4, help="bytes per pixel and channel of a tile")
    p.add_argument("--format", default="tif")
    p.add_argument("--workers", type=int, default=os.cpu_count())
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    n = cut(args) if args.mode == "cut" else merge(args)
    print(f"{n} files written")


if __name__ == "__main__":
    main()
