# Sourced by the bench scripts that start their own processes (srt.sh, webrtc_latency.sh,
# webrtc_whep.sh; the others use lib.sh's servers): each process started is added to PIDS,
# and all are stopped when the script exits, however it exits.
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
