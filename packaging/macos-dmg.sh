#!/usr/bin/env bash
# macOS: put dist/TilesCreator.app (from build.sh) with a link to /Applications into a
# compressed disk image, dist/TilesCreator-<version>-macos-<arch>.dmg.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { printf 'macos-dmg.sh: %s\n' "$*" >&2; exit 1; }
[ "$(uname -s)" = Darwin ] || fail "hdiutil exists on macOS only"
app=dist/TilesCreator.app
[ -d "$app" ] || fail "$app is missing: run packaging/build.sh first"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' tilesapp/__init__.py)
[ -n "$version" ] || fail "no __version__ in tilesapp/__init__.py"
dmg=dist/TilesCreator-$version-macos-$(uname -m).dmg

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
ditto "$app" "$staging/TilesCreator.app"  # ditto keeps the bundle's symlinks and signatures
ln -s /Applications "$staging/Applications"  # drag the app onto it to install
rm -f "$dmg"
# hdiutil sometimes fails with "Resource busy" while a previous image detaches: try again
for attempt in 1 2 3; do
  hdiutil create -volname "Tiles Creator $version" -srcfolder "$staging" -fs HFS+ -format UDZO -ov "$dmg" && break
  [ "$attempt" = 3 ] && fail "hdiutil create failed three times"
  sleep 5
done
hdiutil verify "$dmg" >/dev/null
echo "Built $dmg ($(du -h "$dmg" | cut -f1))"
