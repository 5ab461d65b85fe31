# Sourced by the bench scripts: one results file per scenario and date
# (bench/results/SCENARIO-YYYYMMDD.md). A script writes its run to OUT as it always did; when
# the day already has a file for the scenario, the earlier runs are kept above the new one,
# under the time it ran, instead of being replaced (or left as loose files with a time in
# their names). A run cut short leaves the earlier runs in OUT.earlier.

keep_earlier_runs() { # $1 = OUT; before the run writes it
    EARLIER_RUNS=""
    if [[ -s "$1" ]]; then
        EARLIER_RUNS="$1.earlier"
        cp "$1" "$EARLIER_RUNS"
    fi
}

add_earlier_runs() { # $1 = OUT; once the run has written it
    [[ -n "${EARLIER_RUNS:-}" && -s "$EARLIER_RUNS" ]] || return 0
    local merged="$1.merged"
    {
        cat "$EARLIER_RUNS"
        printf '\n---\n\n_Another run of this scenario the same day, at %s:_\n\n' "$(date +%H:%M:%S)"
        cat "$1"
    } >"$merged"
    mv "$merged" "$1"
    rm -f "$EARLIER_RUNS"
}
