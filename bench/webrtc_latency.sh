#!/usr/bin/env bash
# Glass-to-glass latency WHIP -> sluice -> WHEP, measured in headless Chromium: a canvas
# showing the page's clock as large black/white blocks is published by WHIP, played back by
# WHEP in the same page (same clock) and read back on every decoded frame
# (bench/webrtc_latency.mjs); then the same without the server (the two peer connections
# connected directly), the browser's own share. Prints p50/p95/p99 and writes
# bench/results/webrtc-latency-DATE.md.
#
#   bench/webrtc_latency.sh                     # 30 s of samples after 5 s of warm-up
#   SECONDS_=10 bench/webrtc_latency.sh         # a quick run
#
# Environment: SECONDS_ (samples, s), WARMUP (s), MIN_LATENCY (1: `min_latency on`), SERVER_BIN (default target/release/sluice; not SLUICE_*, which the server reads as config),
# CHROMIUM (default: chromium on PATH), OUT. Needs node and tests/web's node_modules
# (npm ci --prefix tests/web). Everything listens on 127.0.0.1 only; every process started
# here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=${SECONDS_:-30}
WARMUP=${WARMUP:-5}
BIN=${SERVER_BIN:-$ROOT/target/release/sluice}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
DATE=$(date +%Y%m%d)
# MIN_LATENCY=1: the vhost has `min_latency on` (readers of the WHIP stream woken per video
# frame) instead of the default merged writes (`play { mw_latency }`, 100 ms).
VHOST_EXTRA=""
SCENARIO=webrtc-latency
if [[ -n "${MIN_LATENCY:-}" ]]; then
    VHOST_EXTRA="min_latency on;"
    SCENARIO=webrtc-latency-min-latency
fi
OUT=${OUT:-$ROOT/bench/results/$SCENARIO-$DATE.md}
# shellcheck source=bench/results.sh
source "$ROOT/bench/results.sh"
keep_earlier_runs "$OUT"
WORK=$(mktemp -d /tmp/sluice-rtc-latency.XXXXXX)
# shellcheck source=bench/pids.sh
source "$ROOT/bench/pids.sh"

[[ -x "$BIN" ]] || { echo "no sluice binary at $BIN (cargo build --release -p sluice)"; exit 1; }
[[ -n "$CHROMIUM" ]] || { echo "chromium missing (apt-get install chromium)"; exit 1; }
command -v node >/dev/null || { echo "node missing (apt-get install nodejs npm)"; exit 1; }
[[ -d "$ROOT/tests/web/node_modules/playwright-core" ]] || npm ci --prefix "$ROOT/tests/web" >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
free_udp_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RTMP=$(free_port)
API=$(free_port)
UDP=$(free_udp_port)
cat > "$WORK/sluice.conf" <<EOF
listen 127.0.0.1:$RTMP;
daemon off;
srs_log_tank console;
pid $WORK/sluice.pid;
http_api { enabled on; listen 127.0.0.1:$API; }
rtc_server { enabled on; listen $UDP; candidate 127.0.0.1; }
vhost __defaultVhost__ { $VHOST_EXTRA rtc { enabled on; rtc_to_rtmp on; } }
EOF
"$BIN" -c "$WORK/sluice.conf" > "$WORK/sluice.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
    grep -q "rtc_server: listening on udp port" "$WORK/sluice.log" && break
    sleep 0.1
done
grep -q "rtc_server: listening on udp port" "$WORK/sluice.log" || { cat "$WORK/sluice.log"; exit 1; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
JSON=$(node "$ROOT/bench/webrtc_latency.mjs" "http://127.0.0.1:$API" "$CHROMIUM" "$WARMUP" "$SECS" live latency)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "$JSON" > "$WORK/result.json"
if ! python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(1 if "error" in d or not all(r["latency"]["count"] for r in d["runs"]) else 0)' "$WORK/result.json"; then
    echo "the run failed: $JSON" >&2
    tail -20 "$WORK/sluice.log" >&2
    exit 1
fi

python3 - "$WORK/result.json" "$OUT" "$SECS" "$WARMUP" "$LOAD_BEFORE" "$LOAD_AFTER" "$(git -C "$ROOT" rev-parse --short HEAD)" "$("$CHROMIUM" --version 2>/dev/null | head -1)" "${MIN_LATENCY:-}" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
out, secs, warmup, lb, la, rev, chrome, minlat = sys.argv[2:10]
cfg = "vhost `min_latency on` (readers woken per video frame)" if minlat else "default vhost (merged writes, `play { mw_latency }` 100 ms)"
row = lambda name, x: f"| {name} | {x['count']} | {x['min']} | {x['p50']} | {x['p95']} | {x['p99']} | {x['max']} |"
names = {"sluice": "WHIP -> sluice -> WHEP", "direct": "Chromium -> Chromium, no server (baseline)"}
lines = [
    f"# WebRTC glass-to-glass latency, WHIP -> sluice -> WHEP, loopback",
    "",
    f"Command: `{'MIN_LATENCY=1 ' if minlat else ''}SECONDS_={secs} WARMUP={warmup} bench/webrtc_latency.sh` (sluice {rev}, release build; {chrome}, headless, software H.264).",
    f"sluice config: {cfg}.",
    "A canvas showing performance.now() as 40 black/white blocks is published by WHIP (canvas.captureStream(30), H.264) and played by WHEP in the same page;",
    "each frame given to requestVideoFrameCallback is read back: latency = callback time - drawn time (ms), over "
    f"{secs} s after {warmup} s of warm-up. The baseline: the same two peer connections connected to each other in the page, no server.",
    "",
    "| path | measured at | samples | min | p50 | p95 | p99 | max |",
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for r in d["runs"]:
    lines.append(row(f"{names[r['via']]} | requestVideoFrameCallback", r["latency"]))
    lines.append(row(f"{names[r['via']]} | expectedDisplayTime", r["displayLatency"]))
lines.append("")
for r in d["runs"]:
    jb = r["jitterBufferMs"]
    lines.append(
        f"- {names[r['via']]}: {r['frames']} frames seen in {r['seconds']:.1f} s, {r['unreadable']} unreadable; "
        f"sent {r['sentFps']:.1f} fps at {r['sentSize']} (quality limitation: {r['qualityLimitation'] or 'none'}), "
        f"decoded {r['decodedFps']:.1f} fps at {r['recvSize']}, jitter buffer {'-' if jb is None else round(jb, 1)} ms average, freezes {r['freezeCount']}.")
lines += [
    "",
    f"Load average before / after: {lb} / {la} (2-core machine shared with other builds and benches; Chromium, its encoder and decoder and sluice all ran on it).",
]
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
EOF
add_earlier_runs "$OUT"
echo "written: $OUT"
