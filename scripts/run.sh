#!/usr/bin/env bash
# Set up and launch Tiles Creator: `bash scripts/run.sh [FOLDER]` (no folder: a demo folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh --display
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check -e ".[formats,predict]"
if [ $# -eq 0 ]; then
  exec tilesapp gui --demo
fi
exec tilesapp gui "$@"
