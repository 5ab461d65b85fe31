#!/usr/bin/env bash
# Fuzz smoke: builds every cargo-fuzz target of fuzz/ (AddressSanitizer, debug assertions and
# overflow checks on) and runs each for FUZZ_SECONDS (default 20) from its committed corpus
# (fuzz/corpus/<target>/) and past crashes (fuzz/regressions/<target>/). Short runs do not find
# deep bugs; they keep the targets building and re-check the corpus with sanitizers on every
# run, and now and then find a shallow one. New corpus entries go to a scratch directory, so
# the committed corpus is never touched. A crash is saved under fuzz/artifacts/<target>/ and
# makes the script fail; replay it with
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run [--fuzz-dir media] <target> <artifact file>)
# then fix it and commit the input to fuzz/regressions/<target>/.
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# cargo-fuzz itself is installed (cargo install cargo-fuzz --locked) when missing.
#
# Two cargo-fuzz packages: fuzz/media/ (the `media` crate's targets: flv, fmp4, hls_playlist,
# hls_writer, dash_mpd, ts_demux, ts_ingest; it builds media and amf only) and fuzz/ (the targets that
# need `rtmp`, `amf` or the whole `sluice` crate; its build takes over half an hour on two
# cores). Both read the corpus under fuzz/corpus/<target>/. FUZZ_DIRS="media" (or ".") builds
# and runs one package only. A target named on the command line runs from the package that
# lists it.
#
# Usage: scripts/fuzz-smoke.sh [target...]   (default: every target; FUZZ_SECONDS=20)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

secs="${FUZZ_SECONDS:-20}"
if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
read -r -a fuzz_dirs <<<"${FUZZ_DIRS:-media .}"

start=$(date +%s)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
ran=0
for dir in "${fuzz_dirs[@]}"; do
    mapfile -t listed < <(cargo fuzz list --fuzz-dir "$dir")
    targets=()
    if [ "$#" -gt 0 ]; then
        for t in "$@"; do
            for l in "${listed[@]}"; do
                [ "$t" = "$l" ] && targets+=("$t")
            done
        done
    else
        targets=("${listed[@]}")
    fi
    [ "${#targets[@]}" -gt 0 ] || continue
    # One build per package: its targets share all their dependencies.
    b0=$(date +%s)
    cargo fuzz build --fuzz-dir "$dir"
    echo "fuzz-smoke: build of fuzz/$dir took $(($(date +%s) - b0)) s"
    for t in "${targets[@]}"; do
        dirs=("$scratch/$t")
        mkdir -p "$scratch/$t"
        for d in "corpus/$t" "regressions/$t"; do
            [ -d "$d" ] && dirs+=("$d")
        done
        echo "fuzz-smoke: $t for ${secs} s"
        # -print_final_stats gives the run count; libFuzzer exits non-zero on a crash, leak,
        # time-out or out-of-memory. cargo-fuzz saves a crash under fuzz/$dir/artifacts/<target>/.
        if ! cargo fuzz run --fuzz-dir "$dir" "$t" "${dirs[@]}" -- \
            -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
            >"$scratch/$t.log" 2>&1; then
            tail -n 60 "$scratch/$t.log"
            failed+=("$t")
        fi
        ran=$((ran + 1))
        grep -E "^stat::number_of_executed_units" "$scratch/$t.log" | sed "s/^/fuzz-smoke: $t: /" || true
    done
done
echo "fuzz-smoke: $ran targets in $(($(date +%s) - start)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-smoke: FAILED: ${failed[*]} (inputs under fuzz/artifacts/ or fuzz/media/artifacts/)"
    exit 1
fi
