"""The ``tilesapp`` command's entry point: Ctrl-C at any moment ends it with exit code 130 and
no traceback — even while the program is still starting or already ending."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

# numpy's OpenBLAS starts a thread per core as numpy is imported, and they spin (sched_yield)
# for a while after the dot product numpy's import runs: CPU taken from the cut on a 2-core
# machine, for linear algebra the program never does at scale (W1yolo: user time 2.76 → 2.63 s,
# wall 1.86 → 1.79 s, medians of 6). Set before anything imports numpy; a user's own value wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

#: How long a thread may hold the GIL while another waits for it (Python's default: 5 ms). The
#: cut's threads hand it over at every file operation, OpenCV call and numpy pass; with the
#: default, a thread back from one waited up to 5 ms for a thread running Python to let go.
#: 0.2 ms, measured on a 2-core VM: W3 (2 000 small PNGs) 4.09 → 3.81 s, W1yolo 1.52 → 1.45 s,
#: W2-6000 1.24 → 1.18 s; W1 and merges the same (0.05 and 0.1 ms: as 0.2; 1 ms: 4.08 → 3.98 s).
SWITCH_INTERVAL = 0.0002
sys.setswitchinterval(SWITCH_INTERVAL)


def _quit(*_args) -> None:
    # Nothing has been written yet (modules are being imported) or everything is done (the
    # interpreter is ending): leave at once. Raising here could be swallowed — or turned into an
    # ImportError — by C code that clears errors while importing, or end as a traceback from
    # Python's shutdown.
    try:
        sys.stdout.flush()
        sys.stderr.write("Interrupted.\n")
        sys.stderr.flush()
    finally:
        os._exit(130)


# First thing, as this module is imported: from here on an interrupt quits quietly (unless
# interrupts are ignored, as for a command started in the background).
_PREVIOUS = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
if _PREVIOUS not in (None, signal.SIG_IGN):
    signal.signal(signal.SIGINT, _quit)


@contextlib.contextmanager
def quitting_on_interrupt():
    """While importing (before a command writes anything), an interrupt quits at once."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGINT, _quit)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def main() -> int:
    ignored = _PREVIOUS in (None, signal.SIG_IGN)
    try:
        from tilesapp.cli import main as cli_main
    finally:
        if not ignored:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # the command handles interrupts itself
    try:
        return cli_main()
    finally:
        if not ignored:
            signal.signal(signal.SIGINT, _quit)


if __name__ == "__main__":
    sys.exit(main())
