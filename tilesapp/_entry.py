"""The ``tilesapp`` command's entry point: Ctrl-C at any moment ends it with exit code 130 and
no traceback — even while the program is still starting or already ending."""

from __future__ import annotations

import os
import signal
import sys


def _quit(*_args) -> None:
    # Nothing has been written yet (modules are being imported) or everything is done (the
    # interpreter is ending): leave at once. Raising here could be swallowed by C code that
    # clears errors while importing, or end as a traceback from Python's shutdown.
    try:
        sys.stdout.flush()
        sys.stderr.write("Interrupted.\n")
        sys.stderr.flush()
    finally:
        os._exit(130)


def main() -> int:
    previous = signal.signal(signal.SIGINT, _quit)
    try:
        from tilesapp.cli import main as cli_main
    finally:
        signal.signal(signal.SIGINT, previous)  # the command handles interrupts itself from here
    try:
        return cli_main()
    finally:
        signal.signal(signal.SIGINT, _quit)


if __name__ == "__main__":
    sys.exit(main())
