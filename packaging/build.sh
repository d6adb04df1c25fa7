#!/usr/bin/env bash
# Build the double-clickable program with PyInstaller, from a clean clone, on this platform:
#   Linux   -> dist/TilesCreator          (one file)
#   Windows -> dist/TilesCreator/         (TilesCreator.exe windowed + tilesapp.exe console)
#   macOS   -> dist/TilesCreator.app      (one folder in an app bundle)
# Everything is installed into a private virtualenv (build/venv, or $TILESAPP_BUILD_VENV),
# never into the Python that runs this script. PYTHON picks the interpreter (python3).
# Then: python -m pytest tests/test_bundle.py   (or TILESAPP_BUNDLE=path/to/executable ...)
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || python=python  # Windows runners name it python
venv=${TILESAPP_BUILD_VENV:-build/venv}
pyinstaller_spec='pyinstaller>=6.10,<7'

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 || fail "no Python found: install Python 3.10+ or set PYTHON=/path/to/python3"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || fail "Python 3.10 or newer is needed ($("$python" --version 2>&1))"

# Libraries Qt needs at build time (PyInstaller imports Qt to find its plug-ins), for the
# smoke test, and the X11 ones (--display) so that PyInstaller finds and bundles what the xcb
# plug-in links to (libxcb-cursor & co. are missing on many desktops). A no-op where they are
# present or the system is not Debian-like.
bash scripts/system-deps.sh --display

if [ ! -d "$venv" ]; then
  step "virtualenv $venv"
  "$python" -m venv "$venv" || fail "could not create $venv (on Debian/Ubuntu: apt-get install python3-venv)"
fi
if [ -x "$venv/bin/python" ]; then vpy=$venv/bin/python; else vpy=$venv/Scripts/python.exe; fi
[ -x "$vpy" ] || fail "no interpreter in $venv; delete that folder and run again"

step "installing tilesapp and PyInstaller into $venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
"$vpy" -m pip install -q --upgrade pip
# A regular (not editable) install: the bundle must contain the package as users get it,
# with the vendor readers ([formats]: CZI, ND2, LIF, DeltaVision, Andor SIF) and onnxruntime
# for `predict` ([predict]: its CPU build).
"$vpy" -m pip install -q ".[formats,predict]" "$pyinstaller_spec"

version=$("$vpy" -c 'import tilesapp; print(tilesapp.__version__)')
step "building Tiles Creator $version with $("$vpy" -m PyInstaller --version | head -n1 | sed 's/^/PyInstaller /')"
start=$(date +%s)
"$vpy" -m PyInstaller --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/tilesapp.spec
seconds=$(( $(date +%s) - start ))

case "$(uname -s)" in
  Darwin) built=dist/TilesCreator.app; exe=$built/Contents/MacOS/TilesCreator ;;
  MINGW*|MSYS*|CYGWIN*|Windows_NT) built=dist/TilesCreator; exe=$built/tilesapp.exe ;;
  *) if [ -d dist/TilesCreator ]; then built=dist/TilesCreator; exe=$built/TilesCreator
     else built=dist/TilesCreator; exe=$built; fi ;;
esac
[ -e "$exe" ] || fail "PyInstaller finished but $exe is missing"

step "smoke test: $exe --version"
got=$("$exe" --version | tr -d '\r')  # Windows ends lines with CR LF
[ "$got" = "tilesapp $version" ] || fail "expected 'tilesapp $version', got '$got'"
echo "$got"

# pylibCZIrw is LGPL-3: shipping it obliges us to ship its licence texts (the spec copies its
# dist-info); a one-file bundle is read with PyInstaller's own archive reader.
step "licence texts of pylibCZIrw in the bundle"
"$vpy" - "$built" <<'PY' || fail "pylibCZIrw's licence texts are missing from $built (see copy_metadata in the spec)"
import sys
from pathlib import Path

built = Path(sys.argv[1])
if built.is_file():
    from PyInstaller.archive.readers import CArchiveReader
    names = list(CArchiveReader(str(built)).toc)
else:
    names = [p.relative_to(built).as_posix() for p in built.rglob("*")]
texts = {Path(n).name for n in names
         if any(d.lower().startswith("pylibczirw-") and d.endswith(".dist-info") for d in Path(n).parts[:-1])}
missing = {"COPYING", "COPYING.LESSER"} - texts
print(", ".join(sorted(texts & {"COPYING", "COPYING.LESSER", "NOTICE.txt"})))
sys.exit(1 if missing else 0)
PY

size=$(du -sh "$built" | cut -f1)
step "built $built ($size) in ${seconds}s"
echo "Test it: python -m pytest tests/test_bundle.py   (TILESAPP_BUNDLE=$exe)"
