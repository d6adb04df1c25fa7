#!/usr/bin/env bash
# Set up and run the whole test suite: `bash scripts/test.sh [pytest options]`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check -e ".[test]"
export QT_QPA_PLATFORM=offscreen
exec python3 -m pytest "$@"
