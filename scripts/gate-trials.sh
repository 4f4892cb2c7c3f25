#!/usr/bin/env bash
# Proves the regression gate on this machine: TRIALS A/A comparisons (same
# build, same suite: any "regressed" is a false alarm) and, per slowdown level,
# TRIALS A/B comparisons where B carries a known injected slowdown (the hidden
# --inject-slowdown knob: each GEMM iteration spins for that fraction of its
# own time). Prints false-alarm and detection rates; keeps every run.
#
#   scripts/gate-trials.sh                 # 20 trials, levels 0.10 0.07 0.05, threshold 5%
#   TRIALS=5 LEVELS="0.10" scripts/gate-trials.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TRIALS="${TRIALS:-20}"
LEVELS="${LEVELS:-0.10 0.07 0.05}"
THRESHOLD="${THRESHOLD:-5%}"
SUITE="${SUITE:-gate}"
OUT="${OUT:-results/local/gate-trials-$(date -u +%Y%m%dT%H%M%SZ)}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

cargo build --release -q
CB=target/release/capbench
mkdir -p "$OUT"
start=$(date +%s)

echo "calibrating A/A noise (3 runs of suite $SUITE)…" >&2
$CB calibrate --suite "$SUITE" --runs 3 --out "$OUT/calibration" >/dev/null
CAL="$OUT/calibration/calibration.json"

# compare BASE NEW → prints the exit code (0 pass, 1 regressed).
gate() {
    set +e
    $CB compare "$1" "$2" --threshold "$THRESHOLD" --calibration "$CAL" --format json > "$2.compare.json"
    local rc=$?
    set -e
    echo $rc
}

false_alarms=0
declare -A detected
for lvl in $LEVELS; do detected[$lvl]=0; done
printf "trial\tcomparison\texit\n" > "$OUT/trials.tsv"
for i in $(seq 1 "$TRIALS"); do
    $CB run --quiet --suite "$SUITE" --out "$OUT/t$i-A" 2>/dev/null
    $CB run --quiet --suite "$SUITE" --out "$OUT/t$i-A2" 2>/dev/null
    rc=$(gate "$OUT/t$i-A" "$OUT/t$i-A2")
    printf "%s\tA/A\t%s\n" "$i" "$rc" >> "$OUT/trials.tsv"
    [ "$rc" = 1 ] && false_alarms=$((false_alarms + 1))
    for lvl in $LEVELS; do
        $CB run --quiet --suite "$SUITE" --inject-slowdown "$lvl" --out "$OUT/t$i-B$lvl" 2>/dev/null
        rc=$(gate "$OUT/t$i-A" "$OUT/t$i-B$lvl")
        printf "%s\tA/B %s\t%s\n" "$i" "$lvl" "$rc" >> "$OUT/trials.tsv"
        [ "$rc" = 1 ] && detected[$lvl]=$((detected[$lvl] + 1))
    done
    echo "trial $i/$TRIALS done ($(( $(date +%s) - start )) s)" >&2
done

elapsed=$(( $(date +%s) - start ))
{
    echo "gate trials: suite $SUITE, threshold $THRESHOLD (raised per case to calibrated A/A noise), $TRIALS trials, ${elapsed} s"
    echo "false alarms (A/A): $false_alarms of $TRIALS"
    for lvl in $LEVELS; do
        pct=$(awk "BEGIN { printf \"%g\", $lvl * 100 }")
        echo "detected ${pct}% slowdown: ${detected[$lvl]} of $TRIALS"
    done
    echo "runs and comparisons: $OUT"
} | tee "$OUT/summary.txt"
