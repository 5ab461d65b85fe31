#!/usr/bin/env bash
# Cross-check with RTMP players that are not ours: the same fan-out step as
# bench/fanout.sh, but the players are GStreamer's `rtmp2src` (its own RTMP code, many
# pipelines in one gst-launch process) or rtmpdump (librtmp, one process per player),
# so that no ranking rests on sluice-bench's own socket habits.
#
# The publisher is still `sluice-bench publish` (pacing only). As these clients report
# nothing per frame, delivery is checked in the kernel: the bytes the players acknowledged
# over the window (`ss -ti` bytes_acked of every socket on the server's port) against
# players x the stream's rate.
#
#   PLAYERS="200 1000" bench/crosscheck.sh
#   CLIENT=rtmpdump PLAYERS=200 bench/crosscheck.sh
#   CLIENT=rtmpdump STREAMS=50 PLAYERS=500 bench/crosscheck.sh   # 50 streams x 10 players
#
# With STREAMS > 1 the publishers are `sluice-bench multi --clients 0` (bench, bench_1,
# ...) and the players are spread over the streams in turn (PLAYERS is the total).
#
# Environment: PLAYERS, STREAMS (1), DURATION (s), CLIENT (gst|rtmpdump), PER_PROCESS (gst pipelines
# per gst-launch process), SERVERS ("sluice nginx"; "sluice-minlat" is sluice with
# `min_latency on`), MW_LATENCY, RAMP (players/s),
# SERVER_CPU / BENCH_CPU, FIXTURE, OUT. Everything listens on 127.0.0.1 only; every
# process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PLAYERS=${PLAYERS:-"200 1000"}
STREAMS=${STREAMS:-1}
DURATION=${DURATION:-30}
CLIENT=${CLIENT:-gst}
PER_PROCESS=${PER_PROCESS:-100}
SERVERS=${SERVERS:-"sluice nginx"}
MW_LATENCY=${MW_LATENCY:-350}
RAMP=${RAMP:-200}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
FIXTURE=${FIXTURE:-$ROOT/tests/fixtures/avc-aac-640x360-10s.flv}
DATE=$(date +%Y%m%d)
OUT=${OUT:-$ROOT/bench/results/crosscheck-$CLIENT-$DATE.md}
# shellcheck source=bench/results.sh
source "$ROOT/bench/results.sh"
keep_earlier_runs "$OUT"
NGINX=${NGINX:-/usr/sbin/nginx}
NGINX_MODULE=${NGINX_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
BENCH_NAME=crosscheck
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

case "$CLIENT" in
    gst)
        gst-inspect-1.0 rtmp2src >/dev/null 2>&1 || {
            echo "installing GStreamer's rtmp2src (gstreamer1.0-plugins-bad)..." >&2
            apt-get install -y -q gstreamer1.0-tools gstreamer1.0-plugins-bad >&2
        } ;;
    rtmpdump)
        command -v rtmpdump >/dev/null 2>&1 || apt-get install -y -q rtmpdump >&2 ;;
    *) echo "CLIENT is gst or rtmpdump" >&2; exit 2 ;;
esac
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true
# The pause between two rtmpdump starts (computed once: a python start per player would
# slow the ramp down).
RAMP_STEP=$(python3 -c "print(1 / $RAMP)")

# Seconds of CPU (utime+stime) of a process, and bytes it wrote through system calls.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# Bytes acknowledged by the peers of every established socket on local port $1.
acked() { ss -tinH state established "( sport = :$1 )" | grep -o 'bytes_acked:[0-9]*' | awk -F: '{ s += $2 } END { print s + 0 }'; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# Sum over the client processes (players that are separate processes).
clients_ticks() {
    local t=0 p
    for p in "${CLIENT_PIDS[@]}"; do
        # A client may be gone between the test and the read.
        t=$((t + $(cpu_ticks "$p" 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# The URL of stream $2 (0-based) of base URL $1: bench, bench_1, bench_2 ... as
# `sluice-bench multi` names them.
stream_url() { if (( $2 == 0 )); then echo "$1"; else echo "$1_$2"; fi; }

start_players() { # $1 = base url, $2 = count (spread over the STREAMS streams); fills CLIENT_PIDS
    local base=$1 n=$2 started=0 url
    CLIENT_PIDS=()
    while (( started < n )); do
        url=$(stream_url "$base" $(( started % STREAMS )))
        case "$CLIENT" in
            gst)
                local k=$(( n - started < PER_PROCESS ? n - started : PER_PROCESS ))
                local args=() i
                for ((i = 0; i < k; i++)); do
                    args+=(rtmp2src "location=$url" '!' fakesink sync=false)
                done
                taskset -c "$BENCH_CPU" gst-launch-1.0 -q "${args[@]}" >/dev/null 2>>"$WORK/clients.log" &
                CLIENT_PIDS+=($!)
                started=$((started + k))
                sleep "$(python3 -c "print($k / $RAMP)")" ;;
            rtmpdump)
                taskset -c "$BENCH_CPU" rtmpdump -q --live -r "$url" -o /dev/null 2>>"$WORK/clients.log" &
                CLIENT_PIDS+=($!)
                started=$((started + 1))
                sleep "$RAMP_STEP" ;;
        esac
    done
}

stop_players() {
    local p
    for p in "${CLIENT_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${CLIENT_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    CLIENT_PIDS=()
}

KBPS=$(python3 -c 'import os,sys; print(round(os.path.getsize(sys.argv[1]) * 8 / 1000 / 10))' "$FIXTURE")
ROWS=$WORK/rows.txt
: > "$ROWS"
for n in $PLAYERS; do
    for server in $SERVERS; do
        rtmp_port=$(free_port)
        http_port=$(free_port)
        case "$server" in
            sluice) start_sluice "$rtmp_port" "$http_port" ;;
            sluice-minlat) start_sluice "$rtmp_port" "$http_port" "$SLUICE" "" "min_latency on;" ;;
            nginx) start_nginx "$rtmp_port" ;;
            *) echo "unknown server $server" >&2; exit 2 ;;
        esac
        wait_port "$rtmp_port"
        url="rtmp://127.0.0.1:$rtmp_port/live/bench"
        echo "== $server, $STREAMS stream(s), $n $CLIENT players, ${DURATION}s" >&2
        if (( STREAMS > 1 )); then
            # Publishers only, for longer than the ramp (a process start per player),
            # the settling and the window; stopped after the window.
            taskset -c "$BENCH_CPU" "$BENCH" multi --url "$url" --file "$FIXTURE" \
                --streams "$STREAMS" --clients 0 --quiet \
                --duration $(( DURATION + n + 600 )) >/dev/null 2>&1 &
        else
            taskset -c "$BENCH_CPU" "$BENCH" publish --url "$url" --file "$FIXTURE" >/dev/null 2>&1 &
        fi
        PUB=$!
        sleep $(( STREAMS > 1 ? 5 : 2 ))
        rss0=$(rss_kb "$SERVER_PID")
        start_players "$url" "$n"
        sleep 5 # the last ones connect and the GOP-cache bursts pass
        alive=0
        for p in "${CLIENT_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
        t0=$(cpu_ticks "$SERVER_PID"); w0=$(acked "$rtmp_port"); c0=$(clients_ticks); s0=$(date +%s.%N)
        sleep "$DURATION"
        t1=$(cpu_ticks "$SERVER_PID"); w1=$(acked "$rtmp_port"); c1=$(clients_ticks); s1=$(date +%s.%N)
        rss1=$(rss_kb "$SERVER_PID")
        python3 - "$n" "$server" "$t0" "$t1" "$w0" "$w1" "$s0" "$s1" "$rss0" "$rss1" "$KBPS" "$c0" "$c1" "$alive" "${#CLIENT_PIDS[@]}" "$STREAMS" >> "$ROWS" <<'PY'
import sys
n, server = int(sys.argv[1]), sys.argv[2]
streams = int(sys.argv[16])
t0, t1, w0, w1 = (int(x) for x in sys.argv[3:7])
s0, s1 = float(sys.argv[7]), float(sys.argv[8])
rss0, rss1, kbps = int(sys.argv[9]), int(sys.argv[10]), int(sys.argv[11])
c0, c1, alive, procs = (int(x) for x in sys.argv[12:16])
secs = s1 - s0
cpu = (t1 - t0) / 100.0 / secs * 100.0
sent_kbps = (w1 - w0) * 8 / 1000.0 / secs
delivered = sent_kbps / (n * kbps) * 100.0
kb_player = (rss1 - rss0) / n
clients = (c1 - c0) / 100.0 / secs * 100.0
print(f"| {streams} | {n} | {server} | {cpu:.1f} | {rss1 / 1024:.1f} | {kb_player:.1f} | {sent_kbps / 1000:.1f} | {delivered:.0f} | {clients:.1f} | {alive}/{procs} |")
PY
        tail -1 "$ROWS" >&2
        stop_players
        kill "$PUB" 2>/dev/null || true
        wait "$PUB" 2>/dev/null || true
        stop_server
    done
done

{
    echo "# Cross-check with $CLIENT players, $(basename "$OUT")"
    echo
    echo "- machine: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores, Linux $(uname -r)"
    echo "- $STREAMS ~${KBPS} kbps stream(s) (sluice-bench $( (( STREAMS > 1 )) && echo "multi --clients 0" || echo publish)), N $CLIENT players in all, spread over the streams ($([[ $CLIENT == gst ]] && echo "rtmp2src ! fakesink, $PER_PROCESS per gst-launch process" || echo "one rtmpdump process each")); ${DURATION} s window after the ramp; sluice \`mw_latency $MW_LATENCY\`; server on core $SERVER_CPU, clients on core $BENCH_CPU"
    echo "- 'sent %' is what the players acknowledged over the window (ss bytes_acked on the server's port) against N x the stream's rate: ~100 % means every player is fed; 'clients CPU %' near 100 means the clients, not the server, set the pace"
    echo
    echo "| streams | players | server | CPU % | RSS MB | KB/player | sent Mbps | sent % | clients CPU % | client processes alive |"
    echo "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    cat "$ROWS"
} > "$OUT"
add_earlier_runs "$OUT"
cat "$OUT"
echo "written to $OUT" >&2
