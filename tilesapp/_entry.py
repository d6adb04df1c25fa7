"""The ``tilesapp`` command's entry point: Ctrl-C at any moment ends it with exit code 130 and
no traceback — even while the program is still starting."""

from __future__ import annotations

import signal
import sys


def main() -> int:
    def interrupted(*_args):
        sys.stderr.write("Interrupted.\n")
        raise SystemExit(130)

    # Until the command line takes over (it restores Python's KeyboardInterrupt), an interrupt
    # while modules are imported exits quietly.
    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        from tilesapp.cli import main as cli_main
    finally:
        signal.signal(signal.SIGINT, previous)
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
