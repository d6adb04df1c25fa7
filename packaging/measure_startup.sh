#!/usr/bin/env bash
# Start-up time of a built program, launch to window: `bash packaging/measure_startup.sh [EXE] [RUNS]`.
# Each run starts EXE with an empty HOME and no Python on PATH (offscreen, or xcb when DISPLAY
# is set) as `gui --quit-after 0`; the time is from just before exec to the log line the app
# writes right after window.show() returned (clock of the log, ms). Also prints the total
# wall time of the run (includes closing the window and the one-file cleanup).
set -euo pipefail
cd "$(dirname "$0")/.."
exe=${1:-dist/TilesCreator}
runs=${2:-5}
[ -x "$exe" ] || { echo "measure_startup.sh: no executable $exe (run packaging/build.sh first)" >&2; exit 1; }
platform=offscreen
[ -n "${DISPLAY:-}" ] && platform=xcb
for i in $(seq "$runs"); do
  home=$(mktemp -d)
  start=$(date +%s.%N)
  env -i HOME="$home" PATH=/usr/bin:/bin LANG=C.UTF-8 DISPLAY="${DISPLAY:-}" QT_QPA_PLATFORM=$platform \
    "$exe" gui --quit-after 0 >/dev/null 2>&1
  end=$(date +%s.%N)
  shown=$(grep -h ' started' "$home"/.local/state/tilesapp/tilesapp.log | tail -n1 | cut -c1-23)
  [ -n "$shown" ] || { echo "run $i: no 'started' line in the log" >&2; exit 1; }
  python_free=$(date -d "${shown/,/.}" +%s.%N)
  awk -v s="$start" -v w="$python_free" -v e="$end" -v i="$i" \
    'BEGIN { printf "run %d: window shown after %.2f s, run ended after %.2f s\n", i, w - s, e - s }'
  rm -rf "$home"
done
