#!/usr/bin/env bash
# Smoke test of a built program, as a user without Python runs it: `bash packaging/smoke_test.sh [EXE]`.
# --version, `info` and `cut` on a folder of demo images, the window offscreen for 2 s; then the
# full check, tests/test_bundle.py, with the build's virtualenv. EXE defaults to this platform's
# build (dist/TilesCreator, dist/TilesCreator/tilesapp.exe or the .app's executable).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

fail() { printf 'smoke_test.sh: %s\n' "$*" >&2; exit 1; }
windows=false
case "$(uname -s)" in
  Darwin) default=dist/TilesCreator.app/Contents/MacOS/TilesCreator ;;
  MINGW*|MSYS*|CYGWIN*) default=dist/TilesCreator/tilesapp.exe; windows=true ;;
  *) default=dist/TilesCreator ;;
esac
exe=${1:-$default}
[ -f "$exe" ] || fail "no executable $exe: run packaging/build.sh first"
exe=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")
venv=${TILESAPP_BUILD_VENV:-build/venv}
if [ -x "$venv/bin/python" ]; then vpy=$root/$venv/bin/python; else vpy=$root/$venv/Scripts/python.exe; fi
[ -x "$vpy" ] || fail "no virtualenv $venv: run packaging/build.sh first"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' tilesapp/__init__.py)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/home" "$work/empty-bin"
# An empty HOME and nothing on PATH: the program must not need Python or anything else.
run() {
  if $windows; then
    # Windows programs cannot start without SYSTEMROOT (Git Bash may spell it SystemRoot)
    local sysroot=${SYSTEMROOT:-${SystemRoot:-C:\\Windows}}
    env -i SYSTEMROOT="$sysroot" WINDIR="$sysroot" TEMP="$work" TMP="$work" USERPROFILE="$work/home" \
      LOCALAPPDATA="$work/home/Local" APPDATA="$work/home/Roaming" PATH="/c/Windows/System32" \
      QT_QPA_PLATFORM=offscreen "$exe" "$@"
  else
    env -i HOME="$work/home" PATH="$work/empty-bin" LANG=C.UTF-8 QT_QPA_PLATFORM=offscreen "$exe" "$@"
  fi
}

echo "== $exe --version"
got=$(run --version | tr -d '\r')  # Windows ends lines with CR LF
[ "$got" = "tilesapp $version" ] || fail "expected 'tilesapp $version', got '$got'"
echo "$got"

echo "== info on demo images"
"$vpy" -c "import sys; from tilesapp.core.demo import make_demo_folder; make_demo_folder(sys.argv[1])" "$work/demo"
run info "$work/demo"
images=$(run info "$work/demo" --json | "$vpy" -c "import json, sys; print(len(json.load(sys.stdin)['images']))" | tr -d '\r')
[ "$images" -ge 1 ] || fail "info found no images in the demo folder"

echo "== cut (UNet preset)"
run cut "$work/demo" "$work/tiles" --preset unet --quiet
tiles=$(find "$work/tiles" -maxdepth 1 -name '*.tif' | wc -l)
[ "$tiles" -gt 0 ] || fail "cut wrote no tiles"
echo "$tiles tiles"

echo "== window (offscreen, 2 s)"
run gui "$work/demo" --quit-after 2
echo "window opened and closed"

echo "== tests/test_bundle.py"
# onnx builds the tiny models of the predict tests (the spec keeps it out of the bundle)
"$vpy" -m pip install -q --disable-pip-version-check "pytest>=7.4" "onnx>=1.15"
TILESAPP_BUNDLE="$exe" "$vpy" -m pytest -q -p no:cacheprovider tests/test_bundle.py
