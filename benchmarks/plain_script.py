#!/usr/bin/env python
"""The "plain script" contender: what an analyst writes in an afternoon to tile a folder.

numpy + OpenCV + tifffile, one thread per image (ThreadPoolExecutor), the whole image held in
memory: read, resize (INTER_CUBIC up, INTER_AREA down; by a factor given on the command line,
no metadata), global min-max to the bounds, cast, cut with Tiles Creator's geometry
(n = ceil((L - O) / S), start_i = min(i*S + P, L) - P), one file per tile <stem>_<index>.

    python plain_script.py IN OUT [--scale 2] [--patch 512] [--overlap 128]
        [--dtype float32|uint8|uint16] [--format tif|png] [--bounds 0 1] [--workers N]
"""
import argparse
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import tifffile


def starts(length, patch, overlap):
    if length <= patch:
        return [0]
    step = patch - overlap
    return [min(i * step + patch, length) - patch for i in range(math.ceil((length - overlap) / step))]


def process(path, args):
    if path.suffix.lower() in (".tif", ".tiff"):
        img = tifffile.imread(path)
    else:
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    h, w = img.shape[:2]
    nh, nw = math.floor(h * args.scale + 0.5), math.floor(w * args.scale + 0.5)
    if (nh, nw) != (h, w):
        interp = cv2.INTER_CUBIC if nh > h else cv2.INTER_AREA
        img = cv2.resize(img, (nw, nh), interpolation=interp)
    img = img.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    b0, b1 = args.bounds
    img -= lo
    img *= (b1 - b0) / (hi - lo) if hi > lo else 0.0
    img += b0
    if args.dtype != "float32":
        img = np.clip(np.rint(img, out=img), b0, b1, out=img).astype(args.dtype)
    ys, xs = starts(img.shape[0], args.patch, args.overlap), starts(img.shape[1], args.patch, args.overlap)
    width = max(3, len(str(len(ys) * len(xs) - 1)))
    i = 0
    for y in ys:
        for x in xs:
            tile = img[y : y + args.patch, x : x + args.patch]
            name = args.out / f"{path.stem}_{i:0{width}d}.{args.format}"
            if args.format == "tif":
                tifffile.imwrite(name, tile)
            else:
                cv2.imwrite(str(name), tile)
            i += 1
    return i


def main():
    p = argparse.ArgumentParser()
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
    images = sorted(f for f in args.input.iterdir() if f.suffix.lower() in (".tif", ".tiff", ".png"))
    with ThreadPoolExecutor(args.workers) as pool:
        n = sum(pool.map(lambda f: process(f, args), images))
    print(f"{n} tiles from {len(images)} images")


if __name__ == "__main__":
    main()
