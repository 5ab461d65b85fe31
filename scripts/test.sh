#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: installs the real peers the
# tests use (ffmpeg/ffprobe) when they are missing, checks formatting and lints,
# then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v nginx >/dev/null 2>&1 && [ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ] || missing+=(nginx libnginx-mod-rtmp)
# The browser HLS test (crates/sluice/tests/web_hls.rs): headless chromium driven by node.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# SRT (crates/sluice/tests/srt.rs, crates/libsrt): libsrt to link against, srt-live-transmit as
# a second client, curl, and ip/tc for the loss test's network namespace.
pkg-config --exists srt 2>/dev/null || missing+=(pkg-config libsrt-openssl-dev)
command -v srt-live-transmit >/dev/null 2>&1 || missing+=(srt-tools)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
# WebRTC's AAC → Opus (crates/sluice/src/rtc/audio.rs) links the system's libopus.
pkg-config --exists opus 2>/dev/null || missing+=(libopus-dev pkg-config)
# str0m's DTLS (WebRTC) builds against the system's OpenSSL.
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev pkg-config)
# WebRTC's Opus → AAC (crates/libavaac) builds against the system's libavcodec.
pkg-config --exists libavcodec 2>/dev/null || missing+=(libavcodec-dev pkg-config)
# The origin cluster's stream directory (crates/sluice/tests/origin_cluster.rs).
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "test.sh: installing ${missing[*]} (needed by the end-to-end tests)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# hls.js and playwright-core, as pinned by tests/web/package-lock.json.
npm ci --prefix tests/web --no-audit --no-fund >/dev/null

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# cargo-nextest (when installed) runs every test in its own process, four at a time across
# all test binaries (.config/nextest.toml): the end-to-end tests wait on real time, and
# `cargo test` runs the binaries one after another. It does not run doc tests.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked
    cargo test --workspace --locked --doc
else
    echo "test.sh: cargo-nextest not found; running the tests with cargo test (slower)"
    cargo test --workspace --locked --no-fail-fast
fi
