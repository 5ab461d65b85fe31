#!/usr/bin/env bash
# Fan-out benchmark: sluice and nginx-rtmp side by side, same machine, same steps.
#
# The server is pinned to one core and sluice-bench to another (taskset); for each player
# count a fresh server is started, one publisher pushes the ~500 kbps fixture and N players
# play it for DURATION seconds of steady state. Writes bench/results/fanout-PROTOCOL-mwN-DATE.md
# (one file per scenario and date; name it with OUT) and prints it.
#
#   bench/fanout.sh                                  # 1000..16000 players, 60 s each
#   PLAYERS="200 1000" DURATION=15 bench/fanout.sh   # a quick run
#
# Environment: PLAYERS, DURATION (s), MW_LATENCY (ms, sluice's play { mw_latency }),
# SERVERS ("sluice nginx"; "sluice-tls" is sluice with its RTMP players over RTMPS (the
# publisher stays on RTMP; a self-signed P-256 certificate made here with openssl);
# "sluice-minlat" is sluice with `min_latency on` (players written per video frame);
# "before" runs the sluice binary BEFORE_BIN (not SLUICE_*: the server reads those as config), e.g. built from
# an earlier commit, for a before/after comparison in one run), PROTOCOL (rtmp|flv; flv is sluice-only), RAMP (players/s),
# SERVER_CPU / BENCH_CPU (cores), BENCH_THREADS, READ_TICK (ms, sluice-bench --read-tick; 1 by default, which saves the bench CPU; 0 reads each socket when readable, as real players do: use it when comparing servers whose writes differ in number),
# REPEAT (runs of each step, servers alternating; adds a mean/spread table), FIXTURE, OUT.
# Everything listens on 127.0.0.1 only; every process started here is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PLAYERS=${PLAYERS:-"1000 2000 4000 8000 16000"}
DURATION=${DURATION:-60}
MW_LATENCY=${MW_LATENCY:-100}
SERVERS=${SERVERS:-"sluice nginx"}
PROTOCOL=${PROTOCOL:-rtmp}
RAMP=${RAMP:-1000}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
BENCH_THREADS=${BENCH_THREADS:-1}
READ_TICK=${READ_TICK:-1}
REPEAT=${REPEAT:-1}
FIXTURE=${FIXTURE:-$ROOT/tests/fixtures/avc-aac-640x360-10s.flv}
DATE=$(date +%Y%m%d)
OUT=${OUT:-$ROOT/bench/results/fanout-$PROTOCOL-mw$MW_LATENCY-$DATE.md}
# shellcheck source=bench/results.sh
source "$ROOT/bench/results.sh"
keep_earlier_runs "$OUT"
NGINX=${NGINX:-/usr/sbin/nginx}
NGINX_MODULE=${NGINX_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}

BENCH_NAME=fanout
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

ROWS=$WORK/rows.jsonl
: > "$ROWS"
for n in $PLAYERS; do
  for run in $(seq "$REPEAT"); do
    for server in $SERVERS; do
        if [[ "$server" == nginx && "$PROTOCOL" != rtmp ]]; then
            continue
        fi
        rtmp_port=$(free_port)
        http_port=$(free_port)
        tls_args=()
        case "$server" in
            sluice) start_sluice "$rtmp_port" "$http_port" ;;
            sluice-minlat) start_sluice "$rtmp_port" "$http_port" "$SLUICE" "" "min_latency on;" ;;
            sluice-tls)
                make_cert
                tls_port=$(free_port)
                start_sluice "$rtmp_port" "$http_port" "$SLUICE" "$tls_port"
                tls_args=(--tls --tls-port "$tls_port" --ca "$WORK/cert.pem") ;;
            before) start_sluice "$rtmp_port" "$http_port" "${BEFORE_BIN:?set BEFORE_BIN to the binary to compare}" ;;
            nginx) start_nginx "$rtmp_port" ;;
            *) echo "unknown server $server" >&2; exit 2 ;;
        esac
        wait_port "$rtmp_port"
        echo "== $server, $n players, ${DURATION}s (run $run of $REPEAT)" >&2
        json=$WORK/$server-$n.json
        if taskset -c "$BENCH_CPU" "$BENCH" fanout \
            --url "rtmp://127.0.0.1:$rtmp_port/live/bench" --file "$FIXTURE" \
            --clients "$n" --duration "$DURATION" --ramp "$RAMP" --protocol "$PROTOCOL" \
            --http-port "$http_port" --threads "$BENCH_THREADS" --read-tick "$READ_TICK" \
            --server-pid "$SERVER_PID" "${tls_args[@]}" --json > "$json"; then
            python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["server_name"]=sys.argv[2]; d["players"]=int(sys.argv[3]); print(json.dumps(d))' \
                "$json" "$server" "$n" >> "$ROWS"
        else
            echo "bench failed for $server with $n players" >&2
        fi
        stop_server
    done
  done
done

python3 - "$ROWS" "$OUT" "$DURATION" "$MW_LATENCY" "$PROTOCOL" <<'PY'
import json, sys, platform, os
rows_path, out, duration, mw, proto = sys.argv[1:6]
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
    f"# Fan-out benchmark {os.path.basename(out)}",
    "",
    f"- machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}",
    f"- protocol {proto}, {duration} s steady state per step, sluice `mw_latency {mw}`; "
    "server on one core, sluice-bench on another (taskset)",
    "",
    "| players | server | connected | CPU % | RSS MB | KB/player | frames ok % | latency p50/p99 ms | first frame p50 ms | bench CPU % |",
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for r in rows:
    s, lat = r["server"], r["latency_ms"]
    lines.append(
        f"| {r['players']} | {r['server_name']} | {r['connected']} | {f(s['cpu_pct'])} | "
        f"{f(s['rss_mb'])} | {f(s['kb_per_player'])} | {f(r['frames']['ok_pct'], '{:.2f}')} | "
        f"{f(lat['p50'], '{}')}/{f(lat['p99'], '{}')} | {f(r['first_frame_ms']['p50'])} | "
        f"{f(r['bench']['cpu_pct'])} |"
    )
groups = {}
for r in rows:
    groups.setdefault((r["players"], r["server_name"]), []).append(r)
if any(len(g) > 1 for g in groups.values()):
    import statistics as st
    def ms(vals):
        vals = [v for v in vals if v is not None]
        if not vals:
            return "-"
        if len(vals) == 1:
            return f"{vals[0]:.1f}"
        return f"{st.mean(vals):.1f} ± {st.stdev(vals):.1f} ({min(vals):.1f}-{max(vals):.1f})"
    lines += [
        "",
        "Mean ± standard deviation (min-max) over the runs of each step:",
        "",
        "| players | server | runs | CPU % | KB/player | frames ok % (min) | bench CPU % |",
        "| ---: | --- | ---: | --- | --- | ---: | --- |",
    ]
    for (n, name), g in groups.items():
        lines.append(
            f"| {n} | {name} | {len(g)} | {ms([r['server']['cpu_pct'] for r in g])} | "
            f"{ms([r['server']['kb_per_player'] for r in g])} | "
            f"{min(r['frames']['ok_pct'] for r in g):.2f} | "
            f"{ms([r['bench']['cpu_pct'] for r in g])} |"
        )
text = "\n".join(lines) + "\n"
open(out, "w").write(text)
print(text)
PY
add_earlier_runs "$OUT"
echo "written to $OUT" >&2
