"""Settings of the program's own process, made by its entry points (the ``tilesapp`` command and
the built program) before anything imports numpy. A user's own environment wins."""

from __future__ import annotations

import os
import sys

#: How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). The
#: cut's threads hand it over at every file operation, OpenCV call and numpy pass; with the
#: default, a thread back from one waited up to 5 ms for a thread running Python to let go.
#: 0.2 ms, measured on a 2-core VM: W3 (2 000 small PNGs) 4.09 → 3.81 s, W1yolo 1.52 → 1.45 s,
#: W2-6000 1.24 → 1.18 s; W1 and merges the same (0.05 and 0.1 ms: as 0.2; 1 ms: 4.08 → 3.98 s).
SWITCH_INTERVAL = 0.0002


def tune() -> None:
    """One OpenBLAS thread and a short GIL switch interval for this process."""
    # numpy's OpenBLAS starts a thread per core as numpy is imported, and they spin (sched_yield)
    # for a while after the dot product numpy's import runs: CPU taken from the cut on a 2-core
    # machine, for linear algebra the program never does at scale (W1yolo: user time 2.76 →
    # 2.63 s, wall 1.86 → 1.79 s, medians of 6).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.setswitchinterval(SWITCH_INTERVAL)
