"""The ``tilesapp`` command's entry point: Ctrl-C at any moment ends it with exit code 130 and
no traceback — even while the program is still starting or already ending."""

from __future__ import annotations

import os
import signal
import sys
import threading


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

import contextlib  # noqa: E402 - after the handler: an interrupt while these load quits quietly too

from tilesapp._process import tune  # noqa: E402

tune()  # before anything imports numpy


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
