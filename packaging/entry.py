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


def _no_onnxruntime_telemetry() -> None:
    # onnxruntime (1.29 and later) sends usage events to Microsoft
    # (mobile.events.data.microsoft.com) on Linux and macOS and keeps a device id in
    # ~/.cache/Microsoft/DeveloperTools, from its import on. ORT_DISABLE_TELEMETRY=1 set before
    # the import turns all of it off (no id, no cache, no connection: checked with strace, 1.32
    # on Linux). The program makes no network connections of its own; a user's own value of the
    # variable wins.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


if __name__ == "__main__":
    _fix_missing_streams()
    _no_onnxruntime_telemetry()
    from tilesapp._process import tune

    tune()  # as the installed command: before numpy is imported
    from tilesapp.cli import main

    sys.exit(main())
