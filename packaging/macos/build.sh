#!/usr/bin/env bash
# Build Ponder for macOS: Ponder.app and Ponder-<version>.dmg (drag Ponder onto Applications).
#
#   packaging/macos/build.sh [--python PY] [--skip-freeze]
#
# The Python must have Ponder's dependencies, PyInstaller and the Metal engine installed
# (pip install dist/engine/llama_cpp_python-*.whl, from packaging/build_engine.py --backend metal).
#
# Signing and notarisation happen only when these are set (they need an Apple Developer ID):
#   PONDER_CODESIGN_IDENTITY  "Developer ID Application: Name (TEAMID)" in the login keychain
#   PONDER_NOTARY_PROFILE     a notarytool keychain profile, made once with
#                             xcrun notarytool store-credentials PROFILE --apple-id ID --team-id TEAMID
#                             (prompts for an app-specific password)
# Without them the .app is ad-hoc signed (PyInstaller does that) and Gatekeeper will ask the
# user to confirm the first start (right-click > Open).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY=python3
SKIP_FREEZE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --python) PY="$2"; shift 2 ;;
    --skip-freeze) SKIP_FREEZE=1; shift ;;
    *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' app/__init__.py)"
DIST="$ROOT/build/macos/dist"
APP="$DIST/Ponder.app"
DMG="$ROOT/dist/Ponder-$VERSION.dmg"
mkdir -p "$ROOT/dist"

if [ "$SKIP_FREEZE" = 0 ]; then
  "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$ROOT/build/macos/work" packaging/ponder.spec
fi
[ -x "$APP/Contents/MacOS/Ponder" ] || { echo "build.sh: no app at $APP" >&2; exit 1; }

if [ -n "${PONDER_CODESIGN_IDENTITY:-}" ]; then
  # --deep signs every nested library with the same identity; hardened runtime for notarisation.
  codesign --force --deep --timestamp --options runtime \
    --entitlements packaging/macos/entitlements.plist --sign "$PONDER_CODESIGN_IDENTITY" "$APP"
  codesign --verify --deep --strict --verbose=2 "$APP"
fi

# The disk image: the app and a link to /Applications side by side, so installing is one drag.
STAGE="$ROOT/build/macos/dmg"
rm -rf "$STAGE" "$DMG" && mkdir -p "$STAGE"
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname "Ponder $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG" >/dev/null

if [ -n "${PONDER_CODESIGN_IDENTITY:-}" ]; then
  codesign --force --timestamp --sign "$PONDER_CODESIGN_IDENTITY" "$DMG"
  if [ -n "${PONDER_NOTARY_PROFILE:-}" ]; then
    xcrun notarytool submit "$DMG" --keychain-profile "$PONDER_NOTARY_PROFILE" --wait
    xcrun stapler staple "$DMG"
    spctl --assess --type open --context context:primary-signature --verbose=2 "$DMG"
  fi
fi

echo "app  $APP  $(du -sh "$APP" | cut -f1)"
echo "dmg  $DMG  $(du -sh "$DMG" | cut -f1)"
