"""Entry point of the built program: no arguments opens the window, arguments are the CLI.

The same ``tilesapp.cli.main`` as the installed ``tilesapp`` command, so the bundle runs the
package's own code paths.
"""

import os
import sys


def _fix_missing_streams() -> None:
    # A windowed Windows executable starts with sys.stdout/sys.stderr set to None; the CLI
    # binds sys.stderr at import time (progress bar) and would fail on the first write.
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))


if __name__ == "__main__":
    _fix_missing_streams()
    from tilesapp.cli import main

    sys.exit(main())
