#!/usr/bin/env bash
# CPU cost of LL-HLS: one stream published in real time (ffmpeg, the 640x360 fixture looped)
# to a sluice with `hls_use_fmp4 on; hls_ll on; hls_part 200ms; hls_fragment 1`, then for each
# poller count N, N hls.js-like pollers (bench/llhls_pollers.py: blocking reload for the next
# part, then the part, on one keep-alive connection each) for DURATION seconds. Reports the
# server's CPU (utime+stime from /proc) per scenario, with no poller as the baseline, and
# writes bench/results/llhls-DATE.md.
#
#   bench/llhls.sh                          # 0, 100 and 1000 pollers, 30 s each
#   POLLERS="0 1000" DURATION=20 bench/llhls.sh
#
# Needs a release build (cargo build --release -p sluice), ffmpeg and python3. The server is
# pinned to SERVER_CPU and the pollers to BENCH_CPU. Everything listens on 127.0.0.1 only;
# every process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
POLLERS=${POLLERS:-"0 100 1000"}
DURATION=${DURATION:-30}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
SLUICE=${SLUICE:-$ROOT/target/release/sluice}
FIXTURE=${FIXTURE:-$ROOT/tests/fixtures/avc-aac-640x360-10s.flv}
DATE=$(date +%Y%m%d)
OUT=${OUT:-$ROOT/bench/results/llhls-$DATE.md}
# shellcheck source=bench/results.sh
source "$ROOT/bench/results.sh"
keep_earlier_runs "$OUT"
WORK=$(mktemp -d /tmp/sluice-llhls.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
cpu_ticks() {
    # utime + stime, in clock ticks.
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

[[ -x "$SLUICE" ]] || { echo "no release build at $SLUICE (cargo build --release -p sluice)" >&2; exit 1; }
RTMP=$(free_port); HTTP=$(free_port)
mkdir -p "$WORK/hls"
cat >"$WORK/sluice.conf" <<EOF
listen 127.0.0.1:$RTMP;
max_connections 5000;
max_connections_per_ip 5000;
daemon off;
srs_log_tank console;
srs_log_level warn;
http_server { enabled on; listen 127.0.0.1:$HTTP; dir $WORK/hls; }
vhost __defaultVhost__ {
    hls { enabled on; hls_path $WORK/hls; hls_use_fmp4 on; hls_ll on; hls_part 200ms;
          hls_fragment 1; hls_window 10; }
}
EOF
taskset -c "$SERVER_CPU" "$SLUICE" -c "$WORK/sluice.conf" >"$WORK/sluice.log" 2>&1 &
SERVER=$!; PIDS+=("$SERVER")
sleep 1
taskset -c "$BENCH_CPU" ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 \
    -i "$FIXTURE" -c copy -f flv "rtmp://127.0.0.1:$RTMP/live/test" &
PIDS+=("$!")
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$HTTP/live/test.m3u8" >/dev/null && break
    sleep 0.2
done
sleep 3
HZ=$(getconf CLK_TCK)

{
    echo "# LL-HLS CPU cost ($(date -u +%Y-%m-%dT%H:%M:%SZ))"
    echo
    echo "One 640x360 ~500 kbps stream, \`hls_use_fmp4 on; hls_ll on; hls_part 200ms; hls_fragment 1\`;"
    echo "server on CPU $SERVER_CPU, pollers (bench/llhls_pollers.py) on CPU $BENCH_CPU; $DURATION s per row."
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)."
    echo
    echo "| pollers | server CPU % of one core | requests/s served | blocking wait median / p99 (ms) | errors |"
    echo "|---|---|---|---|---|"
} >"$OUT"

for n in $POLLERS; do
    t0=$(cpu_ticks "$SERVER")
    if [[ "$n" == 0 ]]; then
        sleep "$DURATION"
        res='{"requests_per_second":0,"blocking_wait_ms_median":null,"blocking_wait_ms_p99":null,"errors":0}'
    else
        res=$(taskset -c "$BENCH_CPU" python3 "$ROOT/bench/llhls_pollers.py" 127.0.0.1 "$HTTP" /live/test.m3u8 "$n" "$DURATION")
    fi
    t1=$(cpu_ticks "$SERVER")
    cpu=$(python3 -c "print(round(100*($t1-$t0)/$HZ/$DURATION,1))")
    row=$(python3 -c "
import json,sys; r=json.loads(sys.argv[1])
print(f\"| $n | $cpu | {r['requests_per_second']} | {r['blocking_wait_ms_median']} / {r['blocking_wait_ms_p99']} | {r['errors']} |\")" "$res")
    echo "$row" >>"$OUT"
    echo "$n pollers: $res (server CPU $cpu %)" >&2
done
echo >>"$OUT"
add_earlier_runs "$OUT"
cat "$OUT"
