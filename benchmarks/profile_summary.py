#!/usr/bin/env python
"""Summarise a py-spy profile (``--format raw``, recorded with ``--threads``, best with ``--idle``).

Threads are grouped by what they run (main thread, export workers, band workers, merge
readers, other), and for each group the script prints its sampled seconds, the functions
that hold the most samples inclusively (a sample counts once per function in its stack) and
the lines where samples end (self time; waiting shows as ``wait``/``get``/``acquire``).

    py-spy record -r 100 --threads --idle -f raw -o w3.txt -- python -m tilesapp cut IN OUT ...
    python benchmarks/profile_summary.py w3.txt --rate 100 [--top 25] [--only tilesapp]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict

FRAME = re.compile(r"^(?P<name>.+?) \((?P<where>[^()]*)\)$")


def group(frames: list[str]) -> str:
    names = " ".join(frames)
    if frames[0].startswith("_run_module_as_main"):
        return "main thread"
    if "_map_bands" in names:
        return "band workers"
    if "_process " in names or "_Export._process" in names:
        return "export workers"
    if "_read_ahead" in names:
        return "merge readers"
    if "_TiledWriter._write" in names:
        return "merge writer"
    return "other threads"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("raw")
    p.add_argument("--rate", type=float, default=100.0, help="py-spy's --rate (samples per second)")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--only", help="list only functions matching this regular expression (e.g. 'export|writers')")
    args = p.parse_args()
    total = Counter()
    inclusive: dict[str, Counter] = defaultdict(Counter)
    leaf: dict[str, Counter] = defaultdict(Counter)
    threads: dict[str, set] = defaultdict(set)
    for line in open(args.raw, encoding="utf-8"):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack:
            continue
        n = int(count)
        parts = stack.split(";")
        thread, frames = parts[0], parts[1:]
        if not frames:
            continue
        g = group(frames)
        threads[g].add(thread)
        total[g] += n
        seen = set()
        for f in frames:
            m = FRAME.match(f)
            key = f"{m.group('name')} ({m.group('where').rsplit(':', 1)[0]})" if m else f
            if key not in seen:
                seen.add(key)
                inclusive[g][key] += n
        leaf[g][frames[-1]] += n
    s = 1.0 / args.rate
    for g, n in total.most_common():
        print(f"\n== {g}: {len(threads[g])} thread(s), {n * s:.1f} s sampled ==")
        print("  inclusive (functions in every sample of the group left out):")
        shown = 0
        for key, c in inclusive[g].most_common():
            if c == n or (args.only and not re.search(args.only, key)):
                continue
            print(f"    {c * s:7.2f} s  {100 * c / n:5.1f}%  {key}")
            shown += 1
            if shown >= args.top:
                break
        print("  self (where samples end):")
        for key, c in leaf[g].most_common(args.top):
            print(f"    {c * s:7.2f} s  {100 * c / n:5.1f}%  {key}")


if __name__ == "__main__":
    main()
