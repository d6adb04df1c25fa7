#!/usr/bin/env python
"""Tiles Creator against its peers on five workloads, in one run (issue 16).

Workloads (inputs generated into a temporary folder; see benchmarks/README.md):

W1        6 × 2048² uint16 TIFFs at 0.65 µm → 0.325 µm (4096²), 512/128, UNet preset
          (global 0–1, float32 .tif): 726 tiles
W1yolo    the same with the YOLO preset (global 0–255, uint8 .png): 726 tiles
W2        one --size² (12 000²) uint16 tiled BigTIFF (zlib) at 0.65 µm → 0.325 µm, 512/128,
          global 0–255 uint8 .tif (``--bounds 0 255``): 3 969 tiles
W2-6000   the same at 6 000² (961 tiles); W2-18000 (8 836 tiles) with --big
W2merge   the W2 tiles merged back into one image (flat)
W1merge   the W1 tiles merged back into six images (flat)
W3        2 000 uint8 PNG 256², no recalibration, 128/32, global 0–255 uint8 .png: 18 000 tiles

Contenders, each run in its own process under ``/usr/bin/time -v`` (peak memory = "Maximum
resident set size"), into a new empty folder (deleted and ``os.sync()``-ed before the clock):

tilesapp        ``python -m tilesapp cut|merge`` of this checkout (default settings otherwise);
                its bytecode is compiled first, as ``pip install`` and the bundle do, so that no run
                pays for compiling the package (``PYTHONDONTWRITEBYTECODE`` keeps Python from
                caching it itself on some machines: 70–100 ms per run here)
tilesapp-whole  W2 only: ``--memory-limit 16GB``, the image processed whole
plain           ``plain_script.py`` / ``plain_merge.py``: numpy + OpenCV + tifffile, whole images
tiler           ``tiler_script.py``: the plain script with the-lay/tiler cutting and merging
pyvips          ``vips_script.py``: libvips (cut only)
floor           ``floor_script.py``: decode the sources, write as many files and bytes

Rounds are interleaved (the order rotates each round); medians are reported, with min–max.
Every run must write the expected number of tiles (or images); a mismatch is flagged and the
exit status is 1. Tile 0 and a middle tile of the first image (merges: the first image) are
compared with tilesapp's: the largest absolute difference is reported.

    python benchmarks/bench_workloads.py [--workloads W1,W1yolo,W2,W2-6000,W2merge,W1merge,W3]
        [--repeat 3] [--size 12000] [--big] [--contenders tilesapp,plain,...] [--extras]
        [--data DIR] [--workdir DIR] [--keep] [--settle S] [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
PIXEL_UM = 0.65
TARGET_UM = 0.325
DEFAULT_WORKLOADS = "W1,W1yolo,W2,W2-6000,W2merge,W1merge,W3"
CONTENDERS = ("tilesapp", "tilesapp-whole", "tilesapp-1worker", "plain", "tiler", "pyvips", "floor")


# --- inputs --------------------------------------------------------------------------------------
def fluorescence(shape: tuple[int, int], seed: int, peak: float = 9000.0, base: float = 400.0) -> np.ndarray:
    """A float32 microscopy-like image: bright blobs (cells) with short processes, a smooth
    uneven background, shot-like noise. About 0.3 s for 2048²."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    signal = np.zeros(shape, np.float32)
    n = max(3, rows * cols // 40_000)
    for _ in range(n):
        cy, cx = rng.uniform(0, rows), rng.uniform(0, cols)
        b = float(rng.uniform(0.5, 1.0))
        for _ in range(int(rng.integers(2, 5))):
            a, length = rng.uniform(0, 2 * np.pi), rng.uniform(10, 40)
            end = (int(cx + length * np.cos(a)), int(cy + length * np.sin(a)))
            cv2.line(signal, (int(cx), int(cy)), end, 0.6 * b, 2, cv2.LINE_AA)
        cv2.circle(signal, (int(cx), int(cy)), int(rng.uniform(4, 12)), b, -1, cv2.LINE_AA)
    signal = cv2.GaussianBlur(signal, (0, 0), 2.0)
    yy = np.sin(np.linspace(0, np.pi, rows, dtype=np.float32))[:, None]
    xx = np.cos(np.linspace(0, np.pi / 2, cols, dtype=np.float32))[None, :]
    expected = base + peak * (signal + 0.08 + 0.05 * yy * xx)
    noise = rng.standard_normal(shape, dtype=np.float32)
    noise *= np.sqrt(expected) + 30.0
    return expected + noise


def make_w1(folder: Path, n: int = 6, size: int = 2048) -> None:
    if len(list(folder.glob("*.tif"))) == n:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = np.clip(fluorescence((size, size), 2024 + i), 0, 65535).astype(np.uint16)
        tifffile.imwrite(folder / f"img_{i:02d}.tif", image, imagej=True, resolution=(1 / PIXEL_UM, 1 / PIXEL_UM),
                         metadata={"unit": "um", "axes": "YX"})


def make_w2(folder: Path, size: int) -> None:
    path = folder / "slide.tif"
    if path.is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    from bench_big import write_slide  # the slide bench_big.py measures, written band by band

    write_slide(path, size, PIXEL_UM)


def make_w3(folder: Path, n: int = 2000, size: int = 256) -> None:
    if len(list(folder.glob("*.png"))) == n:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = fluorescence((size, size), 7000 + i, peak=180.0, base=12.0) / 1.2
        cv2.imwrite(str(folder / f"crop_{i:04d}.png"), np.clip(image, 0, 255).astype(np.uint8))


def num(x: int) -> str:
    """1 234 567: thin grouping, as in the README."""
    return f"{x:,}".replace(",", " ")


# --- geometry ------------------------------------------------------------------------------------
def n_axis(length: int, patch: int, overlap: int) -> int:
    return 1 if length <= patch else math.ceil((length - overlap) / (patch - overlap))


def n_tiles(shape: tuple[int, int], scale: float, patch: int, overlap: int) -> int:
    rows, cols = (math.floor(s * scale + 0.5) for s in shape)
    return n_axis(rows, patch, overlap) * n_axis(cols, patch, overlap)


# --- workloads -----------------------------------------------------------------------------------
@dataclass
class Contender:
    name: str
    cmd: list[str]  # "{in}" and "{out}" are replaced
    input: Path | None = None  # another input than the workload's (tiler merges its own tiles)


@dataclass
class Workload:
    key: str
    title: str
    input: Path
    expected: int
    suffix: str  # of the files counted in every output
    contenders: list[Contender]
    merge: bool = False
    notes: list[str] = field(default_factory=list)
    keep_output_of: str | None = None  # contender whose last output becomes a merge input


def cut_contenders(scale: float, patch: int, overlap: int, dtype: str, fmt: str, bounds: tuple[int, int],
                   tilesapp_flags: list[str]) -> list[Contender]:
    geometry = ["--scale", str(scale), "--patch", str(patch), "--overlap", str(overlap)]
    common = geometry + ["--dtype", dtype, "--format", fmt, "--bounds", str(bounds[0]), str(bounds[1])]
    itemsize = str(np.dtype(dtype).itemsize)
    return [
        Contender("tilesapp", [PY, "-m", "tilesapp", "cut", "{in}", "{out}", "-q", "--patch-size", str(patch),
                               "--overlap", str(overlap), *tilesapp_flags]),
        Contender("plain", [PY, str(HERE / "plain_script.py"), "{in}", "{out}", *common]),
        Contender("tiler", [PY, str(HERE / "tiler_script.py"), "cut", "{in}", "{out}", *common]),
        Contender("pyvips", [PY, str(HERE / "vips_script.py"), "{in}", "{out}", *common]),
        Contender("floor", [PY, str(HERE / "floor_script.py"), "cut", "{in}", "{out}", *geometry,
                            "--itemsize", itemsize, "--format", fmt]),
    ]


def w2_flags() -> list[str]:
    return ["--target-pixel-size", str(TARGET_UM), "--norm", "global", "--dtype", "uint8", "--format", "tif",
            "--bounds", "0", "255"]


def build_workloads(keys: list[str], data: Path, args) -> list[Workload]:
    workloads = []
    for key in keys:
        if key in ("W1", "W1yolo"):
            w1 = data / f"w1-{args.w1_images}x{args.w1_size}"
            make_w1(w1, args.w1_images, args.w1_size)
            unet = key == "W1"
            n = args.w1_images * n_tiles((args.w1_size, args.w1_size), 2.0, 512, 128)
            shape = f"{args.w1_images} × {args.w1_size}² uint16 → {n}"
            cs = cut_contenders(2.0, 512, 128, "float32" if unet else "uint8", "tif" if unet else "png",
                                (0, 1) if unet else (0, 255),
                                ["--target-pixel-size", str(TARGET_UM), "--preset", "unet" if unet else "yolo"])
            title = (f"W1: {shape} float32 .tif (UNet preset)" if unet else f"W1yolo: {shape} uint8 .png (YOLO preset)")
            w = Workload(key, title, w1, n, ".tif" if unet else ".png", cs)
            if unet:
                w.keep_output_of = "tilesapp"
            workloads.append(w)
        elif key.startswith("W2") and not key.endswith("merge"):
            size = int(key.split("-")[1]) if "-" in key else args.size
            make_w2(data / f"w2-{size}", size)
            cs = cut_contenders(2.0, 512, 128, "uint8", "tif", (0, 255), w2_flags())
            cs = [c for c in cs if c.name != "tiler"]
            if size <= 12000:
                whole = Contender("tilesapp-whole", cs[0].cmd + ["--memory-limit", "16GB"])
                cs.insert(1, whole)
            n = n_tiles((size, size), 2.0, 512, 128)
            w = Workload(key, f"{key}: one {num(size)}² uint16 tiled BigTIFF → {num(2 * size)}², {num(n)} uint8 .tif",
                         data / f"w2-{size}", n, ".tif", cs)
            w.notes.append("tiler not run: on an in-memory array it is the plain script with another slicing")
            if size == args.size:
                w.keep_output_of = "tilesapp"
            workloads.append(w)
        elif key == "W3":
            make_w3(data / f"w3-{args.w3_images}", args.w3_images)
            n = args.w3_images * n_tiles((256, 256), 1.0, 128, 32)
            cs = cut_contenders(1.0, 128, 32, "uint8", "png", (0, 255), ["--no-calibration", "--preset", "yolo"])
            if args.extras:
                cs.insert(1, Contender("tilesapp-1worker", cs[0].cmd + ["--workers", "1"]))
            workloads.append(Workload(key, f"W3: {num(args.w3_images)} PNG 256² → {num(n)} uint8 .png tiles 128/32 (no recalibration)",
                                      data / f"w3-{args.w3_images}", n, ".png", cs))
        elif key in ("W1merge", "W2merge"):
            tiles = data / ("w1-tiles" if key == "W1merge" else f"w2-{args.size}-tiles")
            cs = [
                Contender("tilesapp", [PY, "-m", "tilesapp", "merge", "{in}", "{out}", "-q"]),
                Contender("plain", [PY, str(HERE / "plain_merge.py"), "{in}", "{out}"]),
                Contender("floor", [PY, str(HERE / "floor_script.py"), "merge", "{in}", "{out}"]),
            ]
            n_w1 = args.w1_images * n_tiles((args.w1_size, args.w1_size), 2.0, 512, 128)
            w = Workload(key, f"W1merge: {n_w1} float32 tiles → {args.w1_images} images {2 * args.w1_size}²" if key == "W1merge" else
                         f"W2merge: {num(n_tiles((args.size, args.size), 2.0, 512, 128))} uint8 tiles → one {num(2 * args.size)}² image",
                         tiles, args.w1_images if key == "W1merge" else 1, ".tif", cs, merge=True)
            if key == "W1merge":
                cs.insert(2, Contender("tiler", [PY, str(HERE / "tiler_script.py"), "merge", "{in}", "{out}"],
                                       input=data / "w1-tiles-tiler"))
                w.notes.append("tiler merges the tiles of its own cut (its last row/column padded, not shifted)")
            w.notes.append("pyvips not run: libvips has no flat-averaging merge of overlapping tiles short of a sum chain per tile")
            workloads.append(w)
        else:
            raise SystemExit(f"unknown workload {key!r}; choose from {DEFAULT_WORKLOADS},W2-18000")
    return workloads


# --- running -------------------------------------------------------------------------------------
def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    return e


def timed(cmd: list[str], timeout: float) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env(), timeout=timeout)
    wall = time.perf_counter() - start
    stats = dict(re.findall(r"^\s*(.+?): (.+)$", proc.stderr, re.M))
    result = {"seconds": wall, "rc": proc.returncode}
    if "Maximum resident set size (kbytes)" in stats:
        result["peak_mb"] = int(stats["Maximum resident set size (kbytes)"]) / 1024
        result["cpu_s"] = float(stats["User time (seconds)"]) + float(stats["System time (seconds)"])
    if proc.returncode != 0:
        result["error"] = (proc.stdout + proc.stderr)[-2000:]
    return result


def output_files(folder: Path, suffix: str) -> list[Path]:
    return [p for p in folder.rglob(f"*{suffix}") if p.is_file() and not p.name.startswith(".")]


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def available(name: str) -> str | None:
    """None when a peer can run here, else why not."""
    probes = {"tiler": "import tiler", "pyvips": "import pyvips; pyvips.Image.black(1, 1).avg()"}
    if name not in probes:
        return None
    proc = subprocess.run([PY, "-c", probes[name]], capture_output=True, text=True, env=env())
    if proc.returncode == 0:
        return None
    hint = {"tiler": "pip install tiler", "pyvips": "pip install pyvips pyvips-binary (or apt-get install libvips42)"}[name]
    return f"{name} not importable ({proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'error'}): {hint}"


def prepare_merge_input(w: Workload, data: Path, kept: dict[str, Path], args) -> None:
    """The tiles a merge workload reads: kept from this run's cut, or cut now (untimed)."""
    if w.key == "W1merge":
        sources = [("w1-tiles", "W1", "tilesapp"), ("w1-tiles-tiler", "W1", "tiler")]
    else:
        sources = [(f"w2-{args.size}-tiles", "W2", "tilesapp")]
    for folder, cut_key, contender in sources:
        target = data / folder
        if contender == "tiler" and not any(c.name == "tiler" for c in w.contenders):
            continue
        clear(target)
        if (cut_key, contender) in kept:
            shutil.move(str(kept.pop((cut_key, contender))), target)
            continue
        print(f"  preparing {folder} (untimed {contender} cut)", flush=True)
        cut_w = build_workloads([cut_key], data, args)[0]
        c = next(c for c in cut_w.contenders if c.name == contender)
        r = timed([a.replace("{in}", str(cut_w.input)).replace("{out}", str(target)) for a in c.cmd], args.timeout)
        if r["rc"] != 0:
            raise SystemExit(f"preparing {folder} failed:\n{r.get('error')}")


def compare(w: Workload, outs: dict[str, Path]) -> dict[str, float | None]:
    """Largest |difference| with tilesapp's output, on a few tiles (cuts) or the first image."""
    ref = outs.get("tilesapp")
    result: dict[str, float | None] = {}
    if ref is None:
        return result
    ref_files = sorted(output_files(ref, w.suffix))
    if not ref_files:
        return result
    if w.merge:
        names = [ref_files[0].name]
    else:
        first_stem = ref_files[0].name.rsplit("_", 1)[0]
        mine = sorted(p.name for p in ref_files if p.name.rsplit("_", 1)[0] == first_stem)
        names = [mine[0], mine[len(mine) // 2]]
    for name, out in outs.items():
        if name in ("tilesapp", "floor") or out is None:
            continue
        worst = 0.0
        for n in names:
            a, b = _read(next(ref.rglob(n), None)), _read(next(out.rglob(n), None))
            if a is None or b is None or a.shape != b.shape:
                worst = None
                break
            for y in range(0, a.shape[0], 2048):  # rows at a time: merged images are big
                d = np.abs(a[y : y + 2048].astype(np.float64) - b[y : y + 2048].astype(np.float64)).max()
                worst = max(worst, float(d))
        result[name] = worst
    return result


def _read(path: Path | None) -> np.ndarray | None:
    if path is None:
        return None
    if path.suffix == ".tif":
        return np.squeeze(tifffile.imread(path))
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def run_workload(w: Workload, work: Path, args, kept: dict) -> dict:
    skipped = {}
    contenders = []
    for c in w.contenders:
        if args.contenders and c.name not in args.contenders:
            continue
        why = available(c.name)
        if why:
            skipped[c.name] = why
            continue
        contenders.append(c)
    runs: dict[str, list[dict]] = {c.name: [] for c in contenders}
    outs = {c.name: work / "out" / w.key / c.name for c in contenders}
    print(f"\n## {w.title}", flush=True)
    for note in skipped.values():
        print(f"  skipped: {note}", flush=True)
    for r in range(args.repeat):
        order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
        for c in order:
            out = outs[c.name]
            clear(out)
            os.sync()
            if args.settle:
                time.sleep(args.settle)
            src = c.input or w.input
            cmd = [a.replace("{in}", str(src)).replace("{out}", str(out)) for a in c.cmd]
            result = timed(cmd, args.timeout)
            files = output_files(out, w.suffix) if out.exists() else []
            result["files"] = len(files)
            result["mb_written"] = sum(p.stat().st_size for p in files) / 1e6
            runs[c.name].append(result)
            status = "" if result["rc"] == 0 else f"  FAILED rc={result['rc']}: {result.get('error', '')[-300:]}"
            print(f"  round {r + 1} {c.name:16s} {result['seconds']:7.2f} s  {result.get('peak_mb', 0):7.0f} MB  "
                  f"{result['files']} files{status}", flush=True)
    diffs = compare(w, {c.name: outs[c.name] for c in contenders})
    summary = {}
    for c in contenders:
        rs = runs[c.name]
        ok = [x for x in rs if x["rc"] == 0]
        times = [x["seconds"] for x in ok]
        # tilesapp / this within each round (runs minutes apart on a shared host drift together)
        pairs = [a["seconds"] / b["seconds"] for a, b in zip(runs.get("tilesapp", []), rs)
                 if a["rc"] == 0 and b["rc"] == 0 and b["seconds"] > 0]
        summary[c.name] = {
            "paired": statistics.median(pairs) if pairs else None,
            "paired_min": min(pairs) if pairs else None,
            "paired_max": max(pairs) if pairs else None,
            "seconds": statistics.median(times) if times else None,
            "min": min(times) if times else None,
            "max": max(times) if times else None,
            "peak_mb": statistics.median([x["peak_mb"] for x in ok]) if ok else None,
            "cpu_s": statistics.median([x["cpu_s"] for x in ok]) if ok else None,
            "files": sorted({x["files"] for x in rs}),
            "mb_written": statistics.median([x["mb_written"] for x in ok]) if ok else None,
            "failed": len(rs) - len(ok),
            "max_abs_diff": diffs.get(c.name),
        }
    if w.keep_output_of and w.keep_output_of in outs and outs[w.keep_output_of].exists():
        kept[(w.key.split("-")[0] if w.key.startswith("W2") else w.key, w.keep_output_of)] = outs[w.keep_output_of]
    if w.key == "W1" and "tiler" in outs and outs["tiler"].exists():
        kept[("W1", "tiler")] = outs["tiler"]
    if not args.keep:
        for name, out in outs.items():
            if out not in kept.values():
                clear(out)
    return {"key": w.key, "title": w.title, "expected": w.expected, "contenders": summary, "skipped": skipped,
            "notes": w.notes}


# --- report --------------------------------------------------------------------------------------
def fmt_s(x: float | None) -> str:
    return "—" if x is None else (f"{x:.2f} s" if x < 100 else f"{x:.0f} s")


def ratio(a: float | None, b: float | None) -> str:
    return "—" if not a or not b else f"{a / b:.2f}×"


def report(results: list[dict], machine: str, args, startup: dict) -> tuple[str, int]:
    lines = [f"Machine: {machine}. Medians of {args.repeat} interleaved rounds (min–max in the detail tables); "
             f"peak = maximum resident set size (/usr/bin/time -v).", ""]
    if startup:
        lines.append("Process start-up (median of 3; tilesapp's bytecode compiled first, as when installed): "
                     + ", ".join(f"{k} {v:.2f} s" for k, v in startup.items()) + ".")
        lines.append("")
    peers = ["plain", "tiler", "pyvips", "floor"]
    lines.append("| workload | tilesapp | plain | tiler | pyvips | floor | tilesapp / plain | tilesapp / floor | tilesapp / tiler | tilesapp / pyvips |")
    lines.append("|---|---|---|---|---|---|---:|---:|---:|---:|")
    bad = 0
    for res in results:
        cs = res["contenders"]

        def cell(name):
            c = cs.get(name)
            if c is None:
                return "—"
            if c["seconds"] is None:
                return "failed"
            return f"{fmt_s(c['seconds'])}, {c['peak_mb']:.0f} MB"

        t = (cs.get("tilesapp") or {}).get("seconds")
        lines.append(f"| {res['title']} | {cell('tilesapp')} | " + " | ".join(cell(p) for p in peers) + " | "
                     + " | ".join(ratio(t, (cs.get(p) or {}).get("seconds")) for p in ("plain", "floor", "tiler", "pyvips")) + " |")
    lines.append("")
    for res in results:
        lines.append(f"### {res['title']}")
        lines.append("")
        lines.append(f"Expected {res['expected']} {'images' if 'merge' in res['key'] else 'tiles'} from every contender.")
        lines.append("")
        lines.append("| contender | time (median) | min–max | peak MB | CPU s | files | MB written | max abs diff vs tilesapp "
                     "| tilesapp / this | same, per round: median (min–max) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        t = (res["contenders"].get("tilesapp") or {}).get("seconds")
        for name, c in res["contenders"].items():
            files = ", ".join(str(f) for f in c["files"])
            if c["files"] != [res["expected"]] or c["failed"]:
                files += " **MISMATCH**" if c["files"] != [res["expected"]] else ""
                files += f" **{c['failed']} failed**" if c["failed"] else ""
                bad += 1
            diff = "—" if c["max_abs_diff"] is None else f"{c['max_abs_diff']:.3g}"
            span = "—" if c["min"] is None else f"{c['min']:.2f}–{c['max']:.2f}"
            paired = "—" if c["paired"] is None or name == "tilesapp" else \
                f"{c['paired']:.2f}× ({c['paired_min']:.2f}–{c['paired_max']:.2f})"
            lines.append(f"| {name} | {fmt_s(c['seconds'])} | {span} | {c['peak_mb'] or 0:.0f} | {c['cpu_s'] or 0:.1f} | "
                         f"{files} | {c['mb_written'] or 0:.0f} | {diff} | {ratio(t, c['seconds'])} | {paired} |")
        for why in res["skipped"].values():
            lines.append(f"\nSkipped: {why}.")
        for note in res["notes"]:
            lines.append(f"\nNote: {note}.")
        lines.append("")
    return "\n".join(lines), bad


def machine_name() -> str:
    model = platform.processor() or platform.machine()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.+)", cpuinfo).group(1).strip()
    except (OSError, AttributeError):
        pass
    mem = ""
    try:
        mem = f", {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    return f"{model}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, OpenCV {cv2.__version__}, numpy {np.__version__}"


def compile_checkout() -> None:
    """Compile the checkout's bytecode, as an installed package has it (see the docstring)."""
    import compileall

    if not compileall.compile_dir(ROOT / "tilesapp", quiet=1):
        raise SystemExit(f"could not compile {ROOT / 'tilesapp'}")


def startup_times() -> dict[str, float]:
    probes = {"python -m tilesapp --version": [PY, "-m", "tilesapp", "--version"],
              "python + numpy/cv2/tifffile imports": [PY, "-c", "import numpy, cv2, tifffile"]}
    out = {}
    for name, cmd in probes.items():
        times = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env())
            times.append(time.perf_counter() - t)
        out[name] = statistics.median(times)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=DEFAULT_WORKLOADS, help=f"comma-separated (default {DEFAULT_WORKLOADS}; also W2-18000)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--size", type=int, default=12000, help="side of the W2 slide (W2, W2merge)")
    p.add_argument("--big", action="store_true", help="add W2-18000 (about 10 GB for the plain script)")
    p.add_argument("--contenders", help=f"comma-separated subset of {', '.join(CONTENDERS)}")
    p.add_argument("--extras", action="store_true", help="add tilesapp --workers 1 on W3")
    p.add_argument("--w1-images", type=int, default=6, help="W1: number of images (smaller for a quick check)")
    p.add_argument("--w1-size", type=int, default=2048, help="W1: side of each image")
    p.add_argument("--w3-images", type=int, default=2000, help="W3: number of PNG images")
    p.add_argument("--data", type=Path, help="folder for the generated inputs (kept and reused)")
    p.add_argument("--workdir", type=Path, help="where the temporary folder goes (which disk is measured)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (inputs and every output)")
    p.add_argument("--settle", type=float, default=0.0, help="seconds to wait before each timed run")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds after which a run is killed")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = p.parse_args(argv)
    args.contenders = set(args.contenders.split(",")) if args.contenders else None
    if not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time is missing: apt-get install -y time")
    keys = [k.strip() for k in args.workloads.split(",") if k.strip()]
    if args.big and "W2-18000" not in keys:
        keys.insert(keys.index("W2") + 1 if "W2" in keys else len(keys), "W2-18000")
    # merges read the cut's tiles: run the cuts first
    keys = [k for k in keys if not k.endswith("merge")] + [k for k in keys if k.endswith("merge")]

    work = Path(tempfile.mkdtemp(prefix="tilesapp-workloads-", dir=args.workdir))
    data = args.data or work / "data"
    data.mkdir(parents=True, exist_ok=True)
    machine = machine_name()
    print(f"{machine}\nwork folder {work}, inputs in {data}", flush=True)
    results, kept = [], {}
    try:
        t = time.perf_counter()
        workloads = build_workloads(keys, data, args)
        print(f"inputs ready in {time.perf_counter() - t:.0f} s", flush=True)
        compile_checkout()
        startup = startup_times()
        for w in workloads:
            if w.merge:
                prepare_merge_input(w, data, kept, args)
            results.append(run_workload(w, work, args, kept))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            if args.data:
                for folder in ("w1-tiles", "w1-tiles-tiler", f"w2-{args.size}-tiles"):
                    clear(data / folder)
    text, bad = report(results, machine, args, startup)
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "repeat": args.repeat, "startup": startup,
                                         "workloads": results}, indent=1))
    if bad:
        print(f"\n{bad} contender(s) wrote the wrong number of files or failed: see MISMATCH / failed above.")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
