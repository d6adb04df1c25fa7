"""``python -m tilesapp.gui [FOLDER] [--demo] [--quit-after S]``: the window without the CLI."""

import argparse
import sys
from pathlib import Path


def main() -> int:
    from tilesapp.gui.app import run_app

    parser = argparse.ArgumentParser(prog="python -m tilesapp.gui", description="Open the Tiles Creator window.")
    parser.add_argument("folder", nargs="?", type=Path, help="folder of images to load")
    parser.add_argument("--demo", action="store_true", help="load synthetic demo images")
    parser.add_argument("--quit-after", type=float, metavar="SECONDS", help="close the window after SECONDS")
    args = parser.parse_args()
    return run_app(args.folder, args.demo, args.quit_after)


if __name__ == "__main__":
    sys.exit(main())
