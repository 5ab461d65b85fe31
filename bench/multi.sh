#!/usr/bin/env bash
# Many streams: sluice and nginx-rtmp side by side, same machine, same steps.
#
# For each stream count a fresh server is started (pinned to SERVER_CPU), and
# `sluice-bench multi` (pinned to BENCH_CPU) publishes that many copies of the ~500 kbps
# fixture, each with PER_STREAM players. Three scenarios (SCENARIO):
#
#   streams  many streams with few players each (default PER_STREAM=10)
#   ingest   publishers with one player each: how many one core ingests with every
#            frame delivered (PER_STREAM=1)
#   hls      publishers only, HLS on (2 s segments, 10 s window): CPU, and disk writes
#            per stream per hour of media (/proc/PID/io write_bytes)
#
#   SCENARIO=streams STREAMS="100 300 1000" bench/multi.sh
#   SCENARIO=ingest STREAMS="100 200 400 800" bench/multi.sh
#   SCENARIO=hls STREAMS="50 100 200" bench/multi.sh
#
# Environment: SCENARIO, STREAMS, PER_STREAM, DURATION (s), MW_LATENCY (sluice), SERVERS
# ("sluice nginx"; "before" is the sluice binary BEFORE_BIN, for a before/after run), PROTOCOL (rtmp|flv; flv is sluice-only), RAMP (players/s),
# PUB_THREADS (publisher runtime threads), BENCH_THREADS, SERVER_CPU / BENCH_CPU, FIXTURE,
# OUT. Writes bench/results/multi-SCENARIO-DATE.md (name it with OUT) and prints it.
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SCENARIO=${SCENARIO:-streams}
case "$SCENARIO" in
    streams) DEF_STREAMS="100 300 1000"; DEF_PER=10 ;;
    ingest) DEF_STREAMS="100 200 400 800"; DEF_PER=1 ;;
    hls) DEF_STREAMS="50 100 200"; DEF_PER=0 ;;
    *) echo "SCENARIO is streams, ingest or hls" >&2; exit 2 ;;
esac
STREAMS=${STREAMS:-$DEF_STREAMS}
PER_STREAM=${PER_STREAM:-$DEF_PER}
DURATION=${DURATION:-60}
MW_LATENCY=${MW_LATENCY:-350}
SERVERS=${SERVERS:-"sluice nginx"}
PROTOCOL=${PROTOCOL:-rtmp}
RAMP=${RAMP:-1000}
PUB_THREADS=${PUB_THREADS:-1}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
BENCH_THREADS=${BENCH_THREADS:-1}
FIXTURE=${FIXTURE:-$ROOT/tests/fixtures/avc-aac-640x360-10s.flv}
DATE=$(date +%Y%m%d)
OUT=${OUT:-$ROOT/bench/results/multi-$SCENARIO-$DATE.md}
# shellcheck source=bench/results.sh
source "$ROOT/bench/results.sh"
keep_earlier_runs "$OUT"
NGINX=${NGINX:-/usr/sbin/nginx}
NGINX_MODULE=${NGINX_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
BENCH_NAME=multi
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true

ROWS=$WORK/rows.jsonl
: > "$ROWS"
for n in $STREAMS; do
    for server in $SERVERS; do
        if [[ "$server" == nginx && "$PROTOCOL" != rtmp ]]; then
            continue
        fi
        rtmp_port=$(free_port)
        http_port=$(free_port)
        rm -rf "$WORK/hls"
        mkdir -p "$WORK/hls"
        case "$server" in
            sluice)
                extra=""
                if [[ "$SCENARIO" == hls ]]; then
                    extra="hls { enabled on; hls_path $WORK/hls; hls_fragment 2; hls_window 10; hls_dispose 30; }"
                fi
                start_sluice "$rtmp_port" "$http_port" "$SLUICE" "" "$extra" ;;
            before)
                extra=""
                if [[ "$SCENARIO" == hls ]]; then
                    extra="hls { enabled on; hls_path $WORK/hls; hls_fragment 2; hls_window 10; hls_dispose 30; }"
                fi
                start_sluice "$rtmp_port" "$http_port" "${BEFORE_BIN:?set BEFORE_BIN to the binary to compare}" "" "$extra" ;;
            nginx)
                extra=""
                if [[ "$SCENARIO" == hls ]]; then
                    extra="hls on; hls_path $WORK/hls; hls_fragment 2s; hls_playlist_length 10s;"
                fi
                start_nginx "$rtmp_port" "$extra" ;;
            *) echo "unknown server $server" >&2; exit 2 ;;
        esac
        wait_port "$rtmp_port"
        echo "== $server, $n streams x $PER_STREAM players, ${DURATION}s" >&2
        json=$WORK/$server-$n.json
        if taskset -c "$BENCH_CPU" "$BENCH" multi \
            --url "rtmp://127.0.0.1:$rtmp_port/live/bench" --file "$FIXTURE" \
            --streams "$n" --clients "$PER_STREAM" --publisher-threads "$PUB_THREADS" \
            --duration "$DURATION" --ramp "$RAMP" --protocol "$PROTOCOL" \
            --http-port "$http_port" --threads "$BENCH_THREADS" \
            --server-pid "$SERVER_PID" --quiet --json > "$json"; then
            python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["server_name"]=sys.argv[2]; d["streams"]=int(sys.argv[3]); print(json.dumps(d))' \
                "$json" "$server" "$n" >> "$ROWS"
        else
            echo "bench failed for $server with $n streams" >&2
        fi
        stop_server
    done
done

python3 - "$ROWS" "$OUT" "$DURATION" "$MW_LATENCY" "$PROTOCOL" "$SCENARIO" "$PER_STREAM" <<'PY'
import json, sys, platform, os
rows_path, out, duration, mw, proto, scenario, per = sys.argv[1:8]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
def f(v, fmt="{:.1f}"):
    return "-" if v is None else fmt.format(v)
cpu = "?"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip(); break
except OSError:
    pass
lines = [
    f"# Many-streams benchmark {os.path.basename(out)}",
    "",
    f"- machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}",
    f"- scenario {scenario}: each stream the ~500 kbps fixture with {per} {proto} player(s); "
    f"{duration} s steady state per step, sluice `mw_latency {mw}`; server on one core, "
    "sluice-bench on another (taskset)",
    "- CPU % is of one core; 'per stream' divides the server's CPU and whole RSS (idle base included) by the streams; "
    "'late' is the worst publisher lag behind its schedule (a bench or server limit)",
    "",
]
if scenario == "hls":
    lines += [
        "| streams | server | publishing | CPU % | CPU % per 100 streams | RSS MB | disk MB/s | disk MB per stream-hour | late ms |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
else:
    lines += [
        "| streams | server | publishing | players | CPU % | CPU % per 100 streams | RSS MB | KB per stream | frames ok % | latency p50/p99 ms | late ms | bench CPU % |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
for r in rows:
    s, n, p = r["server"], r["streams"], r["publishers"]
    cpu_pct = s["cpu_pct"]
    per100 = None if cpu_pct is None or n == 0 else cpu_pct * 100.0 / n
    rss, base = s.get("rss_mb"), s.get("rss_base_mb")
    kb_stream = None if rss is None else rss * 1024.0 / n
    if scenario == "hls":
        wb, win = r.get("server_write_bytes"), r.get("window_secs") or 0
        mbps = None if wb is None or win == 0 else wb / 1048576.0 / win
        per_hour = None if mbps is None or n == 0 else mbps * 3600.0 / n
        lines.append(
            f"| {n} | {r['server_name']} | {p['started']} | {f(cpu_pct)} | {f(per100, '{:.2f}')} | "
            f"{f(rss)} | {f(mbps, '{:.2f}')} | {f(per_hour, '{:.0f}')} | {p['max_late_ms']} |"
        )
    else:
        lat = r["latency_ms"]
        lines.append(
            f"| {n} | {r['server_name']} | {p['started']} | {r['connected']} | {f(cpu_pct)} | "
            f"{f(per100, '{:.2f}')} | {f(rss)} | {f(kb_stream, '{:.0f}')} | "
            f"{f(r['frames']['ok_pct'], '{:.2f}')} | {f(lat['p50'], '{}')}/{f(lat['p99'], '{}')} | "
            f"{p['max_late_ms']} | {f(r['bench']['cpu_pct'])} |"
        )
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
add_earlier_runs "$OUT"
echo "written to $OUT" >&2
