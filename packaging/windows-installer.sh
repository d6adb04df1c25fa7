#!/usr/bin/env bash
# Windows (Git Bash): wrap dist/TilesCreator/ (from build.sh) in an Inno Setup installer,
# dist/TilesCreator-<version>-windows-x64-setup.exe. Installs Inno Setup with Chocolatey when
# ISCC.exe is not found (windows-latest runners have not always shipped it).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { printf 'windows-installer.sh: %s\n' "$*" >&2; exit 1; }
[ -f dist/TilesCreator/TilesCreator.exe ] || fail "dist/TilesCreator/TilesCreator.exe is missing: run packaging/build.sh first"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' tilesapp/__init__.py)
[ -n "$version" ] || fail "no __version__ in tilesapp/__init__.py"

find_iscc() {
  command -v iscc 2>/dev/null && return 0
  command -v ISCC.exe 2>/dev/null && return 0
  for dir in "/c/Program Files (x86)" "/c/Program Files" "${LOCALAPPDATA:-/nonexistent}/Programs"; do
    for candidate in "$dir"/Inno\ Setup*/ISCC.exe; do
      [ -f "$candidate" ] && { echo "$candidate"; return 0; }
    done
  done
  return 1
}

if ! iscc=$(find_iscc); then
  command -v choco >/dev/null 2>&1 || fail "Inno Setup is not installed (and no Chocolatey to install it): get it from jrsoftware.org"
  echo "Installing Inno Setup with Chocolatey..."
  choco install innosetup -y --no-progress >/dev/null
  iscc=$(find_iscc) || fail "Inno Setup was installed but ISCC.exe was not found"
fi
echo "Using $iscc"
# Git Bash rewrites arguments that start with / into paths; ISCC's options must pass as they are.
MSYS2_ARG_CONV_EXCL='*' "$iscc" /Q "/DAppVersion=$version" "packaging\\tilesapp.iss"
setup=dist/TilesCreator-$version-windows-x64-setup.exe
[ -f "$setup" ] || fail "ISCC finished but $setup is missing"
echo "Built $setup ($(du -h "$setup" | cut -f1))"
