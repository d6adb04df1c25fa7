#!/usr/bin/env python
"""The "tiler" contender: the plain script with the-lay/tiler (pip ``tiler``) doing the tiling.

tiler cuts and merges arrays; it neither reads, resamples nor writes. So reading, resizing
(INTER_CUBIC up, INTER_AREA down), global min-max and casting are the plain script's, and
tiler's ``Tiler`` (mode "constant") cuts, its ``Merger`` (window "boxcar": flat averaging)
merges. Its grid has as many tiles as Tiles Creator's (ceil((L - P) / S) + 1 == ceil((L - O) / S))
but pads the last row/column with zeros instead of shifting it back inside the image.

    python tiler_script.py cut IN OUT [--scale 2] [--patch 512] [--overlap 128] [--dtype ...] [--format tif|png] [--bounds 0 1]
    python tiler_script.py merge TILES OUT     # TILES: a folder written by "cut" above (shapes.json)
"""
import argparse
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import tifffile
from tiler import Merger, Tiler


def read(path: Path) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        return tifffile.imread(path)
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def write(path: Path, tile: np.ndarray) -> None:
    if path.suffix == ".tif":
        tifffile.imwrite(path, tile)
    else:
        cv2.imwrite(str(path), tile)


def cut_one(path: Path, args) -> tuple[str, tuple[int, int], int]:
    img = read(path)
    h, w = img.shape[:2]
    nh, nw = math.floor(h * args.scale + 0.5), math.floor(w * args.scale + 0.5)
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_CUBIC if nh > h else cv2.INTER_AREA)
    img = img.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    b0, b1 = args.bounds
    img = (img - lo) * ((b1 - b0) / (hi - lo) if hi > lo else 0.0) + b0
    if args.dtype != "float32":
        img = np.clip(np.rint(img), b0, b1).astype(args.dtype)
    tiler = Tiler(data_shape=img.shape, tile_shape=(args.patch, args.patch), overlap=args.overlap, mode="constant")
    width = max(3, len(str(tiler.n_tiles - 1)))
    for i, tile in tiler.iterate(img):
        write(args.out / f"{path.stem}_{i:0{width}d}.{args.format}", tile)
    return path.stem, img.shape, tiler.n_tiles


def cut(args) -> int:
    images = sorted(f for f in args.input.iterdir() if f.suffix.lower() in (".tif", ".tiff", ".png"))
    with ThreadPoolExecutor(args.workers) as pool:
        done = list(pool.map(lambda f: cut_one(f, args), images))
    meta = {"patch": args.patch, "overlap": args.overlap, "format": args.format,
            "images": {stem: list(shape) for stem, shape, _ in done}}
    (args.out / "shapes.json").write_text(json.dumps(meta))
    return sum(n for *_, n in done)


def merge(args) -> int:
    meta = json.loads((args.input / "shapes.json").read_text())
    with ThreadPoolExecutor(args.workers) as pool:
        for stem, shape in meta["images"].items():
            tiler = Tiler(data_shape=shape, tile_shape=(meta["patch"], meta["patch"]), overlap=meta["overlap"], mode="constant")
            merger = Merger(tiler, window="boxcar")
            width = max(3, len(str(tiler.n_tiles - 1)))
            names = [args.input / f"{stem}_{i:0{width}d}.{meta['format']}" for i in range(tiler.n_tiles)]
            dtype = None
            for i, tile in enumerate(pool.map(read, names)):
                dtype = tile.dtype
                merger.add(i, tile)
            merged = merger.merge(unpad=True)
            if dtype.kind in "ui":
                merged = np.rint(merged)
            tifffile.imwrite(args.out / f"{stem}.tif", merged.astype(dtype), bigtiff=merged.nbytes > 2**31)
    return len(meta["images"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["cut", "merge"])
    p.add_argument("input", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--scale", type=float, default=2.0)
    p.add_argument("--patch", type=int, default=512)
    p.add_argument("--overlap", type=int, default=128)
    p.add_argument("--dtype", default="float32", choices=["float32", "uint8", "uint16"])
    p.add_argument("--format", default="tif", choices=["tif", "png"])
    p.add_argument("--bounds", type=float, nargs=2, default=(0.0, 1.0))
    p.add_argument("--workers", type=int, default=os.cpu_count())
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    n = cut(args) if args.mode == "cut" else merge(args)
    print(f"{n} {'tiles' if args.mode == 'cut' else 'images'} written")


if __name__ == "__main__":
    main()
