# Shared by the bench scripts (sourced, not run): the work directory and its cleanup,
# ports, the release build, and starting sluice or nginx-rtmp pinned to SERVER_CPU.
# The sourcing script sets ROOT, SERVER_CPU, MW_LATENCY, NGINX, NGINX_MODULE first.

WORK=$(mktemp -d "/tmp/sluice-${BENCH_NAME:-bench}.XXXXXX")
SERVER_PID=""

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    stop_server
    # Anything else still running in this script's job table (a bench cut short by Ctrl-C).
    for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

echo "building (release)..." >&2
(cd "$ROOT" && cargo build --release -q -p sluice -p sluice-bench)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SLUICE=$TARGET_DIR/release/sluice
BENCH=$TARGET_DIR/release/sluice-bench

if [[ " $SERVERS " == *" nginx "* ]] && [[ ! -f "$NGINX_MODULE" || ! -x "$NGINX" ]]; then
    echo "installing nginx with the RTMP module (libnginx-mod-rtmp)..." >&2
    apt-get install -y -q libnginx-mod-rtmp nginx-core >&2 || apt-get install -y -q libnginx-mod-rtmp >&2
fi

# Every bench player comes from 127.0.0.1: max_connections_per_ip (default 256) would refuse
# all but the first 256, so it is turned off; a binary from before the directive (BEFORE_BIN)
# does not know it, and gets the config without it.
per_ip_line() { # $1 = binary
    local probe=$WORK/per-ip-probe.conf
    printf 'listen 127.0.0.1:1935;\nmax_connections_per_ip 0;\n' > "$probe"
    if "$1" -t -c "$probe" >/dev/null 2>&1; then
        echo "max_connections_per_ip 0;"
    fi
}

make_cert() {
    [[ -f $WORK/cert.pem ]] && return 0
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj /CN=localhost \
        -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -addext "basicConstraints=critical,CA:FALSE" >/dev/null 2>&1
}

start_sluice() { # $1 = rtmp port, $2 = http port, $3 = binary, $4 = rtmps port (optional), $5 = vhost lines
    local dir=$WORK/sluice
    mkdir -p "$dir"
    local rtmps=""
    local vhost_extra="${5:-}"
    if [[ -n "${4:-}" ]]; then
        rtmps="rtmps { enabled on; listen 127.0.0.1:$4; key $WORK/key.pem; cert $WORK/cert.pem; }"
    fi
    cat > "$dir/sluice.conf" <<CONF
listen              127.0.0.1:$1;
$rtmps
max_connections     1000000;
$(per_ip_line "${3:-$SLUICE}")
daemon              off;
pid                 $dir/sluice.pid;
srs_log_tank        file;
srs_log_file        $dir/sluice.log;
srs_log_level       trace;
http_server {
    enabled         on;
    listen          127.0.0.1:$2;
    dir             $dir;
}
vhost __defaultVhost__ {
    $vhost_extra
    play {
        mw_latency  $MW_LATENCY;
    }
    http_remux {
        enabled     on;
        mount       [vhost]/[app]/[stream].flv;
    }
}
CONF
    taskset -c "$SERVER_CPU" "${3:-$SLUICE}" -c "$dir/sluice.conf" >>"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
}

start_nginx() { # $1 = rtmp port, $2 = application lines (optional)
    local dir=$WORK/nginx
    mkdir -p "$dir/logs"
    # master_process off: one process does the work, so its pid is the one to sample.
    cat > "$dir/nginx.conf" <<CONF
load_module $NGINX_MODULE;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events {
    worker_connections 20000;
}
rtmp {
    server {
        listen 127.0.0.1:$1;
        application live {
            live on;
            ${2:-}
        }
    }
}
CONF
    taskset -c "$SERVER_CPU" "$NGINX" -p "$dir/" -c "$dir/nginx.conf" >>"$dir/stdout.log" 2>&1 &
    SERVER_PID=$!
}

