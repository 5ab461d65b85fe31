#!/usr/bin/env bash
# Refreshes the JavaScript players embedded in sluice (crates/sluice/assets/vendor/):
# installs the versions pinned by that folder's package-lock.json with `npm ci` in a
# scratch directory, then copies the minified builds (less their source-map comment), their
# licences, and a gzip -9 -n copy of each (sent to browsers that accept gzip, which keeps
# the console's page weight low). The copies are committed, so building sluice needs
# neither npm nor the network.
# To upgrade: change the versions in package.json, run `npm install --package-lock-only`
# there, then this script, and update the file names in crates/sluice/src/http/console.rs
# and crates/sluice/assets/players/player.js (a unit test checks that they agree).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$here/crates/sluice/assets/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$vendor/package.json" "$vendor/package-lock.json" "$work/"
npm ci --prefix "$work" --ignore-scripts --no-audit --no-fund >/dev/null
hls_version="$(node -p "require('$work/node_modules/hls.js/package.json').version")"
mpegts_version="$(node -p "require('$work/node_modules/mpegts.js/package.json').version")"
rm -f "$vendor"/*.js "$vendor"/*.gz "$vendor"/LICENSE.*
# hls.light: no alternate audio, subtitles, DRM or CMCD, none of which a live preview needs.
cp "$work/node_modules/hls.js/dist/hls.light.min.js" "$vendor/hls-$hls_version.light.min.js"
cp "$work/node_modules/hls.js/LICENSE" "$vendor/LICENSE.hls.js"
cp "$work/node_modules/mpegts.js/dist/mpegts.js" "$vendor/mpegts-$mpegts_version.min.js"
cp "$work/node_modules/mpegts.js/LICENSE" "$vendor/LICENSE.mpegts.js"
cp "$work/node_modules/mpegts.js/dist/mpegts.js.LICENSE.txt" "$vendor/LICENSE.mpegts.js.bundled.txt"
# The source maps are not shipped: drop the comments that would send a browser's developer
# tools looking for them.
for f in "$vendor"/*.min.js; do
  sed -i '/^\/\/# sourceMappingURL=/d' "$f"
  gzip -9 -n -c "$f" > "$f.gz"
done
ls -l "$vendor"
