#!/usr/bin/env bash
# Measures the projection error across thread counts on this machine: the
# same workloads run with --threads 1 and --threads 2 (each run brackets its
# own read and GEMM ceilings); the 1-thread efficiencies (MBU against the
# read ceiling, MFU against GEMM) are projected by `capbench check` onto a
# profile of this machine at 2 threads (its measured 2-thread ceilings: the
# lower end of each bracket), and compared with the 2-thread measurement.
# The pair is the same workload on two "machines" whose ceilings differ,
# which is what a projection onto another spec sheet assumes.
#
#   scripts/projection-validation-threads.sh [OUT_DIR]
#
# Then, on the 1-thread run alone, the same across sizes: each pair's
# target is projected from its source size (a copy of the run holding only
# the source and the ceilings) and compared with its measurement.
#
# Environment: WORKLOADS (space-separated, default: dense-small and
# llama-3.2-1b decode at q4_0), SIZE_PAIRS (source:target pairs among them),
# UNCERTAINTY (check's --projection-uncertainty, default its own), REPEAT
# (default 2), CASE_TIMEOUT (default 3600 s), CB (a capbench binary instead
# of building the release one). Writes OUT_DIR/validation-threads.tsv and
# validation-sizes.tsv and prints them. Needs jq.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-results/local/projection-validation-threads-$(date -u +%Y%m%dT%H%M%SZ)}"
REPEAT="${REPEAT:-2}"
CASE_TIMEOUT="${CASE_TIMEOUT:-3600}"
WORKLOADS="${WORKLOADS:-decode/dense-small/q4_0/p8g16 decode/llama-3.2-1b/q4_0/p8g16}"
SIZE_PAIRS="${SIZE_PAIRS:-decode/dense-small/q4_0/p8g16:decode/llama-3.2-1b/q4_0}"
U_FLAG=()
[ -n "${UNCERTAINTY:-}" ] && U_FLAG=(--projection-uncertainty "$UNCERTAINTY")
mkdir -p "$OUT"
if [ -z "${CB:-}" ]; then
    cargo build --release -q -p capbench
    CB=target/release/capbench
fi

suite="$OUT/threads.toml"
{
    echo 'name = "validation-threads"'
    printf 'workloads = ["kernel/read-llc", "kernel/gemm-f32-512"'
    for w in $WORKLOADS; do printf ', "%s"' "$w"; done
    printf ']\n[sampling]\nrepeat = %s\nwarmup_iters = 1\nmin_samples = 5\nmax_time_s = 0.5\ntarget_ci_rel = 0.02\n' "$REPEAT"
} >"$suite"
for t in 1 2; do
    [ -f "$OUT/t$t/run.json" ] || $CB run --quiet --backend cpu --threads "$t" \
        --case-timeout "$CASE_TIMEOUT" --suite "$suite" --out "$OUT/t$t" >/dev/null || true
done

# This machine at 2 threads, as a profile: the lower end of each bracket.
ceiling() { # kind [dtype] → value
    jq -r --arg k "$1" --arg d "${2:-}" \
        '[.ceilings[] | select(.kind == $k and ($d == "" or .dtype == $d)) | .value] | min // empty' "$OUT/t2/run.json"
}
bw=$(ceiling read)
gf=$(ceiling gemm f32)
measured() { # run-dir workload → tokens/s
    jq -r --arg w "$2" '.cases[] | select(.workload.name == $w and .status == "ok") | .headline.value' "$1/run.json"
}
printf 'workload\tprojected_tokens_per_s\tmeasured_2t_tokens_per_s\terror_rel\tband\tin_band\tfrom\n' >"$OUT/validation-threads.tsv"
for w in $WORKLOADS; do
    claims="$OUT/claim-$(echo "$w" | tr '/' '_').toml"
    printf '[profile.here-2t]\nmemory_gib = 16\nbandwidth_gb_per_s = %s\npeak_tflops = { f32 = %s }\nsource = "this machine at --threads 2: read and GEMM f32 ceilings of %s"\n\n' \
        "$bw" "$(jq -n --argjson g "$gf" '$g / 1000')" "$OUT/t2" >"$claims"
    printf '[[claim]]\nid = "v"\nstatement = "thread validation"\nworkload = "%s"\nprofile = "here-2t"\nbackend = "cpu"\nexpect = ["tokens_per_s > 0"]\n' "$w" >>"$claims"
    json=$($CB check "$claims" --results "$OUT/t1" "${U_FLAG[@]}" --format json || true)
    proj=$(jq -r '.claims[0].projections[0].value // empty' <<<"$json")
    lo=$(jq -r '.claims[0].expectations[0].band_low // empty' <<<"$json")
    hi=$(jq -r '.claims[0].expectations[0].band_high // empty' <<<"$json")
    from=$(jq -r '.claims[0].projections[0] | "\(.from_case) \(.efficiency_kind)=\(.efficiency_assumed)"' <<<"$json")
    meas=$(measured "$OUT/t2" "$w")
    if [ -z "$proj" ] || [ -z "$meas" ]; then
        why=$(jq -r '[.claims[0].expectations[0].reason // empty] | join("")' <<<"$json")
        printf '%s\t%s\t%s\t-\t-\t-\t%s\n' "$w" "${proj:--}" "${meas:--}" "$why" >>"$OUT/validation-threads.tsv"
        continue
    fi
    err=$(jq -n --argjson p "$proj" --argjson m "$meas" '($p / $m - 1)')
    inside=$(jq -rn --argjson m "$meas" --argjson l "${lo:-0}" --argjson h "${hi:-0}" 'if $m >= $l and $m <= $h then "yes" else "no" end')
    printf '%s\t%.4g\t%.4g\t%+.3f\t[%.4g, %.4g]\t%s\t%s\n' "$w" "$proj" "$meas" "$err" "${lo:-0}" "${hi:-0}" "$inside" "$from" >>"$OUT/validation-threads.tsv"
done
column -t -s $'\t' "$OUT/validation-threads.tsv"
echo "2-thread profile: read $bw GB/s, GEMM f32 $gf GFLOP/s; folder: $OUT"

printf 'source\ttarget\tprojected_tokens_per_s\tmeasured_tokens_per_s\terror_rel\tband\tin_band\tfrom\n' >"$OUT/validation-sizes.tsv"
for pair in $SIZE_PAIRS; do
    src=${pair%%:*} target=${pair##*:}
    d="$OUT/sizes/$(echo "$src-$target" | tr '/' '_')"
    mkdir -p "$d"
    jq --arg s "$src" '.cases |= map(select(.workload.name == $s or (.workload.name | startswith("kernel/"))))' \
        "$OUT/t1/run.json" >"$d/run.json"
    claims="$d/claim.toml"
    printf '[[claim]]\nid = "v"\nstatement = "size validation"\nworkload = "%s"\nbackend = "cpu"\nexpect = ["tokens_per_s > 0"]\n' "$target" >"$claims"
    json=$($CB check "$claims" --results "$d" "${U_FLAG[@]}" --format json || true)
    proj=$(jq -r '.claims[0].projections[0].value // empty' <<<"$json")
    lo=$(jq -r '.claims[0].expectations[0].band_low // empty' <<<"$json")
    hi=$(jq -r '.claims[0].expectations[0].band_high // empty' <<<"$json")
    from=$(jq -r '.claims[0].projections[0] | "\(.from_case) \(.efficiency_kind)=\(.efficiency_assumed)"' <<<"$json")
    meas=$(measured "$OUT/t1" "$target")
    if [ -z "$proj" ] || [ -z "$meas" ]; then
        printf '%s\t%s\t%s\t%s\t-\t-\t-\t-\n' "$src" "$target" "${proj:--}" "${meas:--}" >>"$OUT/validation-sizes.tsv"
        continue
    fi
    err=$(jq -n --argjson p "$proj" --argjson m "$meas" '($p / $m - 1)')
    inside=$(jq -rn --argjson m "$meas" --argjson l "${lo:-0}" --argjson h "${hi:-0}" 'if $m >= $l and $m <= $h then "yes" else "no" end')
    printf '%s\t%s\t%.4g\t%.4g\t%+.3f\t[%.4g, %.4g]\t%s\t%s\n' "$src" "$target" "$proj" "$meas" "$err" "${lo:-0}" "${hi:-0}" "$inside" "$from" >>"$OUT/validation-sizes.tsv"
done
column -t -s $'\t' "$OUT/validation-sizes.tsv"
