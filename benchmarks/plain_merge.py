#!/usr/bin/env python
"""The "plain merge" contender: tiles back into whole images, flat averaging, whole canvas.

What an analyst writes to merge a Tiles Creator tile folder: read manifest.json for where each
tile lies, sum tiles into a float32 canvas and a float32 count per source (tiles read by a
thread pool), divide, cast back to the tiles' type (rounded for integers), one TIFF per source
(BigTIFF when over 2 GB would not fit a classic TIFF; tifffile decides with bigtiff=True).

    python plain_merge.py TILES OUT [--workers N]
"""
import argparse
import json
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import tifffile


def read(path):
    return tifffile.imread(path) if path.suffix == ".tif" else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("tiles", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((args.tiles / "manifest.json").read_text())
    by_source = defaultdict(list)
    for t in manifest["tiles"]:
        by_source[t["source"]].append(t)
    with ThreadPoolExecutor(args.workers) as pool:
        for source in manifest["sources"]:
            tiles = by_source[source["file"]]
            rows, cols = source["scaled_shape"]
            acc = np.zeros((rows, cols), np.float32)
            count = np.zeros((rows, cols), np.float32)
            dtype = None
            for t, tile in zip(tiles, pool.map(lambda t: read(args.tiles / t["file"]), tiles)):
                dtype = tile.dtype
                acc[t["y0"] : t["y1"], t["x0"] : t["x1"]] += tile[: t["y1"] - t["y0"], : t["x1"] - t["x0"]]
                count[t["y0"] : t["y1"], t["x0"] : t["x1"]] += 1
            acc /= count
            if dtype.kind in "ui":
                acc = np.rint(acc, out=acc).astype(dtype)
            tifffile.imwrite(args.out / f"{source['tile_stem']}.tif", acc, bigtiff=acc.nbytes > 2**31)
    print(f"{len(manifest['sources'])} images merged")


if __name__ == "__main__":
    main()
