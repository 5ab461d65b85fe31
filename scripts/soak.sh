#!/usr/bin/env bash
# Soak: publish/play churn with hostile clients mixed in, against the release binary, on
# loopback only. Not part of CI (it runs for DURATION seconds, one hour by default).
#
#   scripts/soak.sh                     # one hour
#   DURATION=600 scripts/soak.sh        # ten minutes
#
# Every CHURN seconds a round starts: STREAMS publishers (sluice-bench, the fixture looped)
# each with PLAYERS players over RTMP and HTTP-FLV, all ending after the round; meanwhile
# a hostile client loop (python3) sends garbage, half handshakes, huge and forged names,
# slow HTTP heads and 8 MiB half-sent messages. Every SAMPLE seconds the server's RSS,
# descriptors and threads are written to a CSV. At the end it prints the first and last
# samples and fails if the server died or its descriptors or memory kept growing.
#
# Environment: DURATION, CHURN (s), STREAMS, PLAYERS, SAMPLE (s), OUT (the CSV).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-3600}
CHURN=${CHURN:-30}
STREAMS=${STREAMS:-4}
PLAYERS=${PLAYERS:-25}
SAMPLE=${SAMPLE:-10}
FIXTURE=$ROOT/tests/fixtures/avc-aac-640x360-10s.flv
WORK=$(mktemp -d /tmp/sluice-soak.XXXXXX)
OUT=${OUT:-$WORK/samples.csv}
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "building (release)..." >&2
(cd "$ROOT" && cargo build --release -q -p sluice -p sluice-bench)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SLUICE=$TARGET_DIR/release/sluice
BENCH=$TARGET_DIR/release/sluice-bench

RTMP=$(free_port)
HTTP=$(free_port)
API=$(free_port)
cat > "$WORK/sluice.conf" <<CONF
listen              127.0.0.1:$RTMP;
max_connections     2000;
max_connections_per_ip 0;
daemon              off;
srs_log_tank        file;
srs_log_file        $WORK/sluice.log;
http_api { enabled on; listen 127.0.0.1:$API; }
http_server { enabled on; listen 127.0.0.1:$HTTP; dir $WORK; }
vhost __defaultVhost__ {
    play { unpublished_timeout 20; }
    http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }
    hls { enabled on; hls_path $WORK/hls; hls_fragment 2; hls_window 10; hls_dispose 30; }
}
CONF
"$SLUICE" -c "$WORK/sluice.conf" > "$WORK/stdout.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$RTMP") 2>/dev/null && break
    sleep 0.1
done

sample() {
    local rss fds threads
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status")
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$SERVER/status")
    fds=$(ls "/proc/$SERVER/fd" | wc -l)
    echo "$(date +%s),$rss,$fds,$threads" >> "$OUT"
}
echo "unix_time,rss_kib,fds,threads" > "$OUT"

# Hostile clients, in a loop until killed: each kind once per pass.
python3 - "$RTMP" "$HTTP" > "$WORK/hostile.log" 2>&1 <<'PY' &
import os, socket, sys, time, random
rtmp, http = int(sys.argv[1]), int(sys.argv[2])
def conn(port, timeout=2.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s
def handshake(s):
    s.sendall(b"\x03" + bytes(1536))
    got = b""
    while len(got) < 1 + 1536 * 2:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("closed in handshake")
        got += chunk
    s.sendall(got[1:1 + 1536])  # C2 echoes S1
def amf_str(v):
    b = v.encode()
    return b"\x02" + len(b).to_bytes(2, "big") + b
def command(name, obj_pairs):
    body = amf_str(name) + b"\x00\x3f\xf0\x00\x00\x00\x00\x00\x00" + b"\x03"
    for k, v in obj_pairs:
        kb = k.encode()
        body += len(kb).to_bytes(2, "big") + kb + amf_str(v)
    body += b"\x00\x00\x09"
    return body
def chunked(msg_type, payload, csid=3):
    out = bytes([csid]) + b"\x00\x00\x00" + len(payload).to_bytes(3, "big") + bytes([msg_type]) + b"\x00\x00\x00\x00"
    out += payload[:128]
    rest = payload[128:]
    while rest:
        out += bytes([0xC0 | csid]) + rest[:128]
        rest = rest[128:]
    return out
n = 0
while True:
    n += 1
    attacks = [
        lambda: conn(rtmp).sendall(os.urandom(4096)),
        lambda: conn(rtmp).sendall(b"\x03" + os.urandom(700)),
        lambda: (lambda s: (handshake(s), s.sendall(chunked(20, command("connect", [("app", "live\n2026 forged"), ("tcUrl", "rtmp://x/" + "y" * 5000)])))))(conn(rtmp)),
        lambda: (lambda s: (handshake(s), s.sendall(b"\x03\x00\x00\x00\x80\x00\x00\x14\x00\x00\x00\x00" + os.urandom(128) + (b"\xc3" + os.urandom(128)) * 2000)))(conn(rtmp)),
        lambda: conn(http).sendall(b"GET /live/" + b"a" * 20000 + b".flv HTTP/1.1\r\n"),
        lambda: conn(http).sendall(b"GET /live/x.flv HTTP/1.1\r\nHost: a\r\n" + b"X: " + b"b" * 70000 + b"\r\n\r\n"),
        lambda: conn(http).sendall(os.urandom(2048)),
    ]
    for a in attacks:
        try:
            a()
        except OSError:
            pass
    if n % 100 == 0:
        print(f"{time.time():.0f} {n} hostile passes", flush=True)
    time.sleep(1.0)
PY
PIDS+=("$!")

echo "soak: ${DURATION}s, rounds of ${STREAMS} streams x ${PLAYERS} players every ${CHURN}s; work dir $WORK" >&2
start=$(date +%s)
sleep 5
sample
first=$(tail -1 "$OUT")
round=0
next_sample=$(( $(date +%s) + SAMPLE ))
while (( $(date +%s) - start < DURATION )); do
    round=$((round + 1))
    if ! kill -0 "$SERVER" 2>/dev/null; then
        echo "soak: the server died in round $round" >&2
        tail -50 "$WORK/sluice.log" >&2 || true
        exit 1
    fi
    "$BENCH" publish --url "rtmp://127.0.0.1:$RTMP/live/soak$round" --file "$FIXTURE" \
        --streams "$STREAMS" --duration "$((CHURN - 2))" > "$WORK/publish.log" 2>&1 &
    sleep 2
    for s in $(seq 0 $((STREAMS - 1))); do
        name=soak$round; [[ $s -gt 0 ]] && name=soak${round}_$s
        proto=rtmp
        proto_url="rtmp://127.0.0.1:$RTMP/live/$name"
        if (( s % 2 == 1 )); then
            proto=flv
            proto_url="http://127.0.0.1:$HTTP/live/$name.flv"
        fi
        "$BENCH" play --url "$proto_url" --protocol "$proto" --clients "$PLAYERS" \
            --duration "$((CHURN - 6))" > "$WORK/play-$s.log" 2>&1 &
    done
    # Players of a stream nobody publishes: closed by play.unpublished_timeout.
    "$BENCH" play --url "rtmp://127.0.0.1:$RTMP/live/never$round" --clients 5 \
        --duration "$((CHURN - 6))" > "$WORK/play-never.log" 2>&1 &
    round_end=$(( $(date +%s) + CHURN ))
    while (( $(date +%s) < round_end )); do
        if (( $(date +%s) >= next_sample )); then
            sample
            next_sample=$(( $(date +%s) + SAMPLE ))
        fi
        sleep 1
    done
done
sleep 5
sample
last=$(tail -1 "$OUT")
kill -0 "$SERVER" 2>/dev/null || { echo "soak: the server died" >&2; exit 1; }
echo "soak: $round rounds in $(( $(date +%s) - start )) s; samples in $OUT" >&2
echo "first (time,rss KiB,fds,threads): $first"
echo "last  (time,rss KiB,fds,threads): $last"
python3 - "$OUT" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
rss = [int(r["rss_kib"]) for r in rows]
fds = [int(r["fds"]) for r in rows]
thr = [int(r["threads"]) for r in rows]
print(f"rss KiB min {min(rss)} max {max(rss)}; fds min {min(fds)} max {max(fds)}; threads min {min(thr)} max {max(thr)}")
# Growth check: the last quarter's peak against the second quarter's peak.
q = max(1, len(rows) // 4)
early, late = max(rss[q:2 * q] or rss), max(rss[-q:])
if late > early * 1.5 + 20 * 1024:
    print(f"soak: RSS kept growing ({early} -> {late} KiB)")
    sys.exit(1)
PY
