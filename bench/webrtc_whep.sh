#!/usr/bin/env bash
# CPU and memory of WHEP players: one RTMP publisher (ffmpeg looping the fixture, -re) and
# N WebRTC players of it (`sluice-bench whep`: str0m clients, one UDP socket each), then
# the cost of the stream's AAC -> Opus transcode. sluice's CPU is read from /proc/PID/stat
# over DURATION seconds of steady state, as % of one core; RSS at the end of each step.
# Server pinned to CPU SERVER_CPU, publisher and players to CLIENT_CPU. Writes
# bench/results/webrtc-whep-DATE.md.
#
#   bench/webrtc_whep.sh                              # 1, 10, 50, 100, 250 players, 20 s each
#   COUNTS="1 100" DURATION=10 bench/webrtc_whep.sh   # a quick run
#
# The transcode: the same fixture without its audio (ffmpeg -an) is published as a second
# stream beside the first; the Opus transcode's cost is the server's CPU with one WHEP player
# of the stream with AAC minus that with one WHEP player of the stream without (the
# player's video costs the same in both), the median of REPEATS pairs.
#
# Environment: COUNTS, DURATION (s), REPEATS (transcode pairs, 3; 0: none), SERVER_CPU,
# CLIENT_CPU, SERVER_BIN (not SLUICE_*: the server reads those as config), BENCH_BIN (default target/release/...), KEEP_BFRAMES, FIXTURE, OUT,
# WHEP_ARGS (more sluice-bench whep options, e.g. "--ramp 20"), VIDEO_KBPS (the
# re-encoded video's bitrate, 450). Everything listens on
# 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNTS=${COUNTS:-1 10 50 100 250}
DURATION=${DURATION:-20}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BIN=${SERVER_BIN:-$ROOT/target/release/sluice}
BENCH=${BENCH_BIN:-$ROOT/target/release/sluice-bench}
FIXTURE=${FIXTURE:-$ROOT/tests/fixtures/avc-aac-640x360-10s.flv}
DATE=$(date +%Y%m%d)
OUT=${OUT:-$ROOT/bench/results/webrtc-whep-$DATE.md}
# shellcheck source=bench/results.sh
source "$ROOT/bench/results.sh"
keep_earlier_runs "$OUT"
WORK=$(mktemp -d /tmp/sluice-whep-bench.XXXXXX)
# shellcheck source=bench/pids.sh
source "$ROOT/bench/pids.sh"

[[ -x "$BIN" ]] || { echo "no sluice binary at $BIN (cargo build --release -p sluice)"; exit 1; }
[[ -x "$BENCH" ]] || { echo "no sluice-bench at $BENCH (cargo build --release -p sluice-bench)"; exit 1; }
command -v ffmpeg >/dev/null || { echo "ffmpeg missing (apt-get install ffmpeg)"; exit 1; }

# The fixture has B frames, which sluice leaves out for WebRTC players (Chromium cannot
# decode them, docs/webrtc.md): its players would get the I and P frames only. A WebRTC
# source is encoded without them (-bf 0), so the bench publishes a copy re-encoded so
# (same size, rate and bitrate, audio as it is), made once here. KEEP_BFRAMES=1: as it is.
SOURCE=$FIXTURE
if [[ -z "${KEEP_BFRAMES:-}" ]]; then
    SOURCE=$WORK/no-bframes.flv
    ffmpeg -nostdin -hide_banner -loglevel error -i "$FIXTURE" -c:v libx264 -preset veryfast \
        -bf 0 -b:v "${VIDEO_KBPS:-450}k" -maxrate "$(( ${VIDEO_KBPS:-450} * 10 / 9 ))k" \
        -bufsize "$(( ${VIDEO_KBPS:-450} * 2 ))k" -g 50 -c:a copy -f flv "$SOURCE"
fi

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
max_connections 1000;
max_connections_per_ip 0;
http_api { enabled on; listen 127.0.0.1:$API; }
rtc_server { enabled on; listen $UDP; candidate 127.0.0.1; }
vhost __defaultVhost__ {
    gop_cache on;
    rtc { enabled on; rtmp_to_rtc on; }
}
EOF
taskset -c "$SERVER_CPU" "$BIN" -c "$WORK/sluice.conf" > "$WORK/sluice.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 100); do
    grep -q "rtc_server: listening on udp port" "$WORK/sluice.log" && break
    sleep 0.1
done
grep -q "rtc_server: listening on udp port" "$WORK/sluice.log" || { cat "$WORK/sluice.log"; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
measure() { # % of one core used by the server over DURATION seconds
    local t0 t1
    t0=$(ticks "$SERVER")
    sleep "$DURATION"
    t1=$(ticks "$SERVER")
    printf '%.1f' "$(echo "scale=3; ($t1 - $t0) * 100 / $HZ / $DURATION" | bc)"
}
publish() { # $1 = stream name, $2.. = extra ffmpeg output options
    local name=$1
    shift
    taskset -c "$CLIENT_CPU" ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 \
        -i "$SOURCE" -c copy "$@" -f flv "rtmp://127.0.0.1:$RTMP/live/$name" \
        > "$WORK/ffmpeg-$name.log" 2>&1 &
    PIDS+=("$!")
}
whep() { # $1 = stream, $2 = players; prints the JSON report
    taskset -c "$CLIENT_CPU" "$BENCH" whep --url "http://127.0.0.1:$API/rtc/v1/whep/?app=live&stream=$1" \
        --clients "$2" --duration "$DURATION" --server-pid "$SERVER" --json ${WHEP_ARGS:-} \
        2> "$WORK/whep-$1-$2.log" || true
}
field() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=d.get(sys.argv[2]); print("-" if v is None else (round(v,1) if isinstance(v,float) else v))' "$1" "$2"; }

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
IDLE_RSS=$(rss_kib "$SERVER")
publish av
sleep 4
PUB_CPU=$(measure)
PUB_RSS=$(rss_kib "$SERVER")
ROWS=()
for n in $COUNTS; do
    J=$(whep av "$n")
    [[ -n "$J" ]] || { echo "sluice-bench whep $n failed:"; cat "$WORK/whep-av-$n.log"; exit 1; }
    echo "$J" > "$WORK/whep-av-$n.json"
    ROWS+=("| $n | $(field "$J" connected) | $(field "$J" server_cpu_percent) | $(field "$J" server_rss_kib) | $(field "$J" video_fps_min) / $(field "$J" video_fps_median) / $(field "$J" video_fps_max) | $(field "$J" audio_fps_min) / $(field "$J" audio_fps_median) | $(field "$J" video_kbps_median) | $(field "$J" gaps_total) | $(field "$J" client_cpu_percent) |")
    echo "${ROWS[-1]}" >&2
    sleep 2
done
# The transcode: a second stream, the same without audio, beside the first; one player of
# each in turn, REPEATS times, so that the machine's noise shows in the spread.
REPEATS=${REPEATS:-3}
if (( REPEATS > 0 )); then
publish vonly -an
sleep 4
BOTH_CPU=$(measure)
V_CPUS=()
AV_CPUS=()
DIFFS=()
for i in $(seq "$REPEATS"); do
    J=$(whep vonly 1)
    echo "$J" > "$WORK/whep-vonly-1-$i.json"
    v=$(field "$J" server_cpu_percent)
    sleep 2
    J=$(whep av 1)
    echo "$J" > "$WORK/whep-av-1-$i.json"
    a=$(field "$J" server_cpu_percent)
    sleep 2
    V_CPUS+=("$v")
    AV_CPUS+=("$a")
    DIFFS+=("$(printf '%.1f' "$(echo "$a - $v" | bc)")")
    echo "transcode pair $i: without audio $v %, with AAC $a %" >&2
done
TRANSCODE=$(printf '%s\n' "${DIFFS[@]}" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

{
    echo "# WebRTC: WHEP players of one RTMP stream ($DATE)"
    echo
    echo "Command: \`$([[ -n "${VIDEO_KBPS:-}" ]] && echo "VIDEO_KBPS=$VIDEO_KBPS ")COUNTS=\"$COUNTS\" DURATION=$DURATION REPEATS=$REPEATS bench/webrtc_whep.sh\` (sluice $(git -C "$ROOT" rev-parse --short HEAD), release build)."
    echo "Machine: $(nproc) cores, $(uname -r); sluice pinned to CPU $SERVER_CPU, ffmpeg and sluice-bench to CPU $CLIENT_CPU."
    echo "Load average before / after: $LOAD_BEFORE / $LOAD_AFTER (shared machine: other builds and benches ran; numbers are indicative)."
    echo "Publisher: ffmpeg -re looping $(basename "$FIXTURE") (H.264 640x360 25 fps ~450 kb/s, AAC 44.1 kHz stereo) over RTMP$([[ -z "${KEEP_BFRAMES:-}" ]] && echo ", its video re-encoded once without B frames (libx264 -bf 0, ${VIDEO_KBPS:-450} kb/s, GOP 2 s) as a WebRTC source is")."
    echo "Players: \`sluice-bench whep\` (str0m 0.24 clients, H.264 + Opus, receive only, one UDP socket each; RTCP receiver reports and NACKs from str0m)."
    echo "Each row: a fresh set of players; CPU of sluice over $DURATION s after every player connected and 3 s of warm-up."
    echo
    echo "| WHEP players | connected | sluice CPU (% of one core) | sluice RSS (KiB) | video fps per player min / median / max | Opus packets/s min / median | video kb/s (median) | frames after a loss | client CPU (% of one core) |"
    echo "| ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |"
    echo "| 0 (RTMP publisher only) | - | $PUB_CPU | $PUB_RSS | - | - | - | - | - |"
    for r in "${ROWS[@]}"; do echo "$r"; done
    echo
    echo "Idle RSS (rtc_server listening, no stream): $IDLE_RSS KiB."
    (( REPEATS > 0 )) || exit 0
    echo
    echo "AAC -> Opus transcode of one stream (once per stream, shared by its WHEP players):"
    echo "both streams published (with AAC, and the same without audio): $BOTH_CPU %;"
    echo "+ 1 WHEP player of the stream without audio: ${V_CPUS[*]} %; + 1 WHEP player of the stream with AAC instead: ${AV_CPUS[*]} % (${#DIFFS[@]} pairs, ${DURATION} s each, in turn);"
    echo "differences ${DIFFS[*]}: the transcode (and sending its Opus packets) costs about **$TRANSCODE % of one core** (median)."
} | tee "$OUT"
add_earlier_runs "$OUT"
