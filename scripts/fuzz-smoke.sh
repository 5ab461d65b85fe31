#!/usr/bin/env bash
# Fuzz smoke: builds every cargo-fuzz target of fuzz/ (AddressSanitizer, debug assertions and
# overflow checks on) and runs each for FUZZ_SECONDS (default 20) from its committed corpus
# (fuzz/corpus/<target>/) and past crashes (fuzz/regressions/<target>/). Short runs do not find
# deep bugs; they keep the targets building and re-check the corpus with sanitizers on every
# run, and now and then find a shallow one. New corpus entries go to a scratch directory, so
# the committed corpus is never touched. A crash is saved under fuzz/artifacts/<target>/ and
# makes the script fail; replay it with
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run <target> artifacts/<target>/<file>)
# then fix it and commit the input to fuzz/regressions/<target>/.
#
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# cargo-fuzz itself is installed (cargo install cargo-fuzz --locked) when missing.
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

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

start=$(date +%s)
# One build for every target: they share all their dependencies.
cargo fuzz build
built=$(date +%s)
echo "fuzz-smoke: build took $((built - start)) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
    dirs=("$scratch/$t")
    mkdir -p "$scratch/$t"
    for d in "corpus/$t" "regressions/$t"; do
        [ -d "$d" ] && dirs+=("$d")
    done
    echo "fuzz-smoke: $t for ${secs} s"
    # -print_final_stats gives the run count; libFuzzer exits non-zero on a crash, leak,
    # time-out or out-of-memory.
    if ! cargo fuzz run "$t" "${dirs[@]}" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$scratch/$t.log" 2>&1; then
        tail -n 60 "$scratch/$t.log"
        failed+=("$t")
    fi
    grep -E "^stat::number_of_executed_units" "$scratch/$t.log" | sed "s/^/fuzz-smoke: $t: /" || true
done
echo "fuzz-smoke: ${#targets[@]} targets in $(($(date +%s) - start)) s (build $((built - start)) s)"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-smoke: FAILED: ${failed[*]} (inputs under fuzz/artifacts/)"
    exit 1
fi
