#!/usr/bin/env bash
# Set up and run the whole test suite: `bash scripts/test.sh [pytest options]`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check -e ".[test,formats]"
export QT_QPA_PLATFORM=offscreen
# The engine's layers (pyproject.toml [tool.importlinter]): core never imports Qt, readers and
# sinks import nothing above them, merge does not go through the export.
lint-imports --no-cache >/dev/null || { lint-imports --no-cache; exit 1; }
exec python3 -m pytest "$@"
