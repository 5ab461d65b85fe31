#!/usr/bin/env bash
# Builds and runs the server (release build) on its embedded default config, or with the
# arguments given (e.g. `./scripts/run.sh -c conf/full.conf`). On Debian it first installs
# the C libraries the server links when they are missing: libsrt (SRT), libopus and
# libavcodec (WebRTC audio), OpenSSL (WebRTC's DTLS), and pkg-config to find them.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
for lib in srt:libsrt-openssl-dev opus:libopus-dev openssl:libssl-dev libavcodec:libavcodec-dev; do
    pkg-config --exists "${lib%%:*}" 2>/dev/null || missing+=("${lib#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "run.sh: installing ${missing[*]} (libraries the server links)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
exec cargo run --release --locked -p sluice -- "$@"
