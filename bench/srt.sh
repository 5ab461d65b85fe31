#!/usr/bin/env bash
# SRT cost: the CPU and memory of sluice with one SRT publisher, then with N SRT players of
# that stream (default 100). The publisher is ffmpeg looping the ~500 kbps fixture over SRT
# (MPEG-TS, -re); the players are srt-live-transmit processes writing to /dev/null (libsrt
# clients like every encoder's). sluice's CPU is read from /proc/PID/stat over DURATION
# seconds of steady state and given as % of one core. Writes bench/results/srt-DATE.md.
#
#   bench/srt.sh                         # 100 players, 30 s each step
#   PLAYERS=20 DURATION=10 bench/srt.sh  # a quick run
#
# Environment: PLAYERS, DURATION (s), SERVER_BIN (default target/release/sluice; not SLUICE_*, which the server reads as config), FIXTURE,
# OUT. Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PLAYERS=${PLAYERS:-100}
DURATION=${DURATION:-30}
BIN=${SERVER_BIN:-$ROOT/target/release/sluice}
FIXTURE=${FIXTURE:-$ROOT/tests/fixtures/avc-aac-640x360-10s.flv}
DATE=$(date +%Y%m%d)
OUT=${OUT:-$ROOT/bench/results/srt-$DATE.md}
# shellcheck source=bench/results.sh
source "$ROOT/bench/results.sh"
keep_earlier_runs "$OUT"
WORK=$(mktemp -d /tmp/sluice-srt-bench.XXXXXX)
# shellcheck source=bench/pids.sh
source "$ROOT/bench/pids.sh"

[[ -x "$BIN" ]] || { echo "no sluice binary at $BIN (cargo build --release -p sluice)"; exit 1; }
command -v srt-live-transmit >/dev/null || { echo "srt-live-transmit missing (apt-get install srt-tools)"; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RTMP=$(free_port)
SRT=$(free_port)
cat > "$WORK/sluice.conf" <<EOF
listen 127.0.0.1:$RTMP;
daemon off;
srs_log_tank console;
pid $WORK/sluice.pid;
max_connections 1000;
max_connections_per_ip 0;
srt_server { enabled on; listen 127.0.0.1:$SRT; }
vhost __defaultVhost__ { srt { enabled on; } }
EOF
"$BIN" -c "$WORK/sluice.conf" > "$WORK/sluice.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
sleep 1

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)
# % of one core used by PID over DURATION seconds.
measure() {
    local t0 t1
    t0=$(ticks "$SERVER")
    sleep "$DURATION"
    t1=$(ticks "$SERVER")
    echo "scale=1; ($t1 - $t0) * 100 / $HZ / $DURATION" | bc
}

ffmpeg -nostdin -hide_banner -loglevel error -re -stream_loop -1 -i "$FIXTURE" -c copy \
    -f mpegts "srt://127.0.0.1:$SRT?streamid=#!::r=live/bench,m=publish" > "$WORK/ffmpeg.log" 2>&1 &
PIDS+=("$!")
sleep 5
IDLE_RSS=$(rss_kib "$SERVER")
PUB_CPU=$(measure)
PUB_RSS=$(rss_kib "$SERVER")

for i in $(seq "$PLAYERS"); do
    srt-live-transmit -q -a:no "srt://127.0.0.1:$SRT?streamid=#!::r=live/bench,m=request" \
        file://con > /dev/null 2> "$WORK/player-$i.log" &
    PIDS+=("$!")
done
sleep 5
PLAYING=$(grep -c "srt play ip=" "$WORK/sluice.log" || true)
PLAY_CPU=$(measure)
PLAY_RSS=$(rss_kib "$SERVER")
STILL=0
for p in "${PIDS[@]:2}"; do kill -0 "$p" 2>/dev/null && STILL=$((STILL + 1)); done
THREADS=$(ls "/proc/$SERVER/task" | wc -l)

{
    echo "# SRT: one publisher, $PLAYERS players ($DATE)"
    echo
    echo "Command: \`PLAYERS=$PLAYERS DURATION=$DURATION bench/srt.sh\` (sluice $(git -C "$ROOT" rev-parse --short HEAD), release build)."
    echo "Machine: $(nproc) cores, $(uname -r); shared with other builds while measured (numbers are indicative)."
    echo "Publisher: ffmpeg looping $(basename "$FIXTURE") (~500 kbps) as MPEG-TS over SRT. Players: srt-live-transmit to /dev/null."
    echo
    echo "| step | sluice CPU (% of one core, ${DURATION} s) | RSS (KiB) |"
    echo "| --- | --- | --- |"
    echo "| idle, SRT listening | - | $IDLE_RSS |"
    echo "| 1 SRT publisher | $PUB_CPU | $PUB_RSS |"
    echo "| 1 SRT publisher + $PLAYERS SRT players ($PLAYING admitted, $STILL still connected at the end) | $PLAY_CPU | $PLAY_RSS |"
    echo
    echo "sluice threads at the end: $THREADS (tokio workers, libsrt's sender/receiver/GC threads, the srt-reactor thread)."
} | tee "$OUT"
add_earlier_runs "$OUT"
