#!/usr/bin/env bash
# Measures the regression gate two ways on this machine, TRIALS times each:
# interleaved (`capbench ab`, PAIRS pairs) and sequential (`run` twice with
# --repeat PAIRS, then `compare`, uncalibrated). Per trial: an A/A (any
# "regressed" is a false alarm) and A/B with a known slowdown injected into
# NEW (the hidden --inject-slowdown knob, a test aid: each GEMM iteration
# spins for that fraction of its own time). Prints the rates; keeps all runs.
#
#   scripts/ab-trials.sh                     # 20 trials, levels 0.05 0.10
#   TRIALS=5 CB=target/release/capbench scripts/ab-trials.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TRIALS="${TRIALS:-20}"
PAIRS="${PAIRS:-10}"
LEVELS="${LEVELS:-0.05 0.10}"
SUITE="${SUITE:-scripts/ab-trials.toml}"
CB="${CB:-target/release/capbench}"
OUT="${OUT:-results/local/ab-trials-$(date -u +%Y%m%dT%H%M%SZ)}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
[ -x "$CB" ] || cargo build --release -q
mkdir -p "$OUT"
start=$(date +%s)

rc_of() { set +e; "$@" >/dev/null 2>&1; echo $?; set -e; }

printf "trial\tmethod\tlevel\tthreshold\texit\n" > "$OUT/trials.tsv"
record() { printf "%s\t%s\t%s\t%s\t%s\n" "$@" >> "$OUT/trials.tsv"; }
for i in $(seq 1 "$TRIALS"); do
    for lvl in 0 $LEVELS; do
        inject=(); [ "$lvl" = 0 ] || inject=(--inject-slowdown-new "$lvl")
        rc=$(rc_of "$CB" ab --base "$CB" --new "$CB" --pairs "$PAIRS" "${inject[@]}" \
            --out "$OUT/t$i-ab-$lvl" --format json -- --suite "$SUITE")
        record "$i" interleaved "$lvl" 2% "$rc"
    done
    "$CB" run --quiet --suite "$SUITE" --repeat "$PAIRS" --out "$OUT/t$i-seq-A" 2>/dev/null || true
    for lvl in 0 $LEVELS; do
        inject=(); [ "$lvl" = 0 ] || inject=(--inject-slowdown "$lvl")
        "$CB" run --quiet --suite "$SUITE" --repeat "$PAIRS" "${inject[@]}" --out "$OUT/t$i-seq-$lvl" 2>/dev/null || true
        for t in 5% 2%; do
            rc=$(rc_of "$CB" compare "$OUT/t$i-seq-A" "$OUT/t$i-seq-$lvl" --threshold "$t")
            record "$i" sequential "$lvl" "$t" "$rc"
        done
    done
    echo "trial $i/$TRIALS done ($(( $(date +%s) - start )) s)" >&2
done

elapsed=$(( $(date +%s) - start ))
{
    echo "ab trials: suite $SUITE, $PAIRS pairs (sequential: --repeat $PAIRS per side), $TRIALS trials, ${elapsed} s, load avg now $(cut -d' ' -f1-3 /proc/loadavg)"
    awk -F'\t' 'NR > 1 { k = $2 " " ($3 == 0 ? "A/A" : $3 * 100 "% slower") " @" $4; n[k]++; if ($5 == 1) r[k]++ }
        END { for (k in n) printf "%-32s regressed in %d of %d\n", k, r[k], n[k] }' "$OUT/trials.tsv" | sort
    echo "runs: $OUT"
} | tee "$OUT/summary.txt"
