#!/usr/bin/env bash
# Measures the projection error on this machine: decode of a model size is
# projected from a smaller size of the same family and format (its MBU/MFU
# against `capbench probe`'s ceilings, carried to the bigger model's analytic
# bytes and FLOPs), then that size is measured, and the two are compared.
#
#   scripts/projection-validation.sh [OUT_DIR]
#
# Pairs: dense-tiny → dense-small (f32, q8_0, q4_0) and dense-small →
# llama-3.2-1b (q8_0, q4_0), decode, batch 1; with LARGE=1 also
# llama-3.2-1b → llama-2-7b (q4_0: a 3.8 GB model, several minutes a
# process), the pair whose source is itself bandwidth-saturated. Environment: BACKEND (default
# cpu), CASE_TIMEOUT (default 3600 s: a 1B model is built and checked
# against its f32 reference before timing), THREADS (optional --threads), REPEAT (default 3), CB (a capbench
# binary to use instead of building the release one). Prints a table and
# writes OUT_DIR/validation.tsv. Needs jq.
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

OUT="${1:-results/local/projection-validation-$(date -u +%Y%m%dT%H%M%SZ)}"
BACKEND="${BACKEND:-cpu}"
REPEAT="${REPEAT:-3}"
CASE_TIMEOUT="${CASE_TIMEOUT:-3600}"
THREADS_FLAG=()
[ -n "${THREADS:-}" ] && THREADS_FLAG=(--threads "$THREADS")
mkdir -p "$OUT"
if [ -z "${CB:-}" ]; then
    cargo build --release -q
    CB=target/release/capbench
fi

TINY=(decode/dense-tiny/f32 decode/dense-tiny/q8_0 decode/dense-tiny/q4_0)
SMALL=(decode/dense-small/f32/p8g16 decode/dense-small/q8_0/p8g16 decode/dense-small/q4_0/p8g16)
BIG=(decode/llama-3.2-1b/q8_0/p8g16 decode/llama-3.2-1b/q4_0/p8g16)
# (source run, target workload) pairs, by format.
PAIRS=(
    "tiny decode/dense-small/f32/p8g16"
    "tiny decode/dense-small/q8_0/p8g16"
    "tiny decode/dense-small/q4_0/p8g16"
    "small decode/llama-3.2-1b/q8_0/p8g16"
    "small decode/llama-3.2-1b/q4_0/p8g16"
)
LARGE_W=(decode/llama-2-7b/q4_0/p8g16)
[ "${LARGE:-0}" = 1 ] && PAIRS+=("big decode/llama-2-7b/q4_0/p8g16")

run_suite() { # name workloads…
    local name=$1
    shift
    local suite="$OUT/$name.toml"
    {
        echo "name = \"validation-$name\""
        printf 'workloads = [%s]\n' "$(printf '"%s",' "$@")"
        printf '[sampling]\nrepeat = %s\nwarmup_iters = 1\nmin_samples = 10\nmax_time_s = 0.5\ntarget_ci_rel = 0.02\n' "$REPEAT"
    } >"$suite"
    [ -f "$OUT/$name/run.json" ] || $CB run --quiet --backend "$BACKEND" "${THREADS_FLAG[@]}" \
        --case-timeout "$CASE_TIMEOUT" --suite "$suite" --out "$OUT/$name" >/dev/null
}

[ -f "$OUT/probe/run.json" ] || $CB probe --backend "$BACKEND" "${THREADS_FLAG[@]}" --out "$OUT/probe" >/dev/null
run_suite tiny "${TINY[@]}"
run_suite small "${SMALL[@]}"
run_suite big "${BIG[@]}"
[ "${LARGE:-0}" = 1 ] && run_suite large "${LARGE_W[@]}"

measured() { # run-dir workload → tokens/s
    jq -r --arg w "$2" '.cases[] | select(.workload.name == $w and .status == "ok") | .headline.value' "$1/run.json"
}

printf 'source\ttarget\tprojected_tokens_per_s\tmeasured_tokens_per_s\terror_rel\tband\tin_band\tefficiency\n' >"$OUT/validation.tsv"
for pair in "${PAIRS[@]}"; do
    read -r src target <<<"$pair"
    claims="$OUT/claim-$(echo "$target" | tr '/' '_').toml"
    printf '[[claim]]\nid = "v"\nstatement = "projection validation"\nworkload = "%s"\nbackend = "%s"\nexpect = ["tokens_per_s > 0"]\n' \
        "$target" "$BACKEND" >"$claims"
    json=$($CB check "$claims" --results "$OUT/probe" "$OUT/$src" --format json || true)
    proj=$(jq -r '.claims[0].projections[0].value // empty' <<<"$json")
    # The band `check` judges with: from another size it reaches the roof
    # at 100 % (docs/claims.md).
    lo=$(jq -r '.claims[0].expectations[0].band_low // empty' <<<"$json")
    hi=$(jq -r '.claims[0].expectations[0].band_high // empty' <<<"$json")
    from=$(jq -r '.claims[0].projections[0] | "\(.from_case) \(.efficiency_kind)=\(.efficiency_assumed)"' <<<"$json")
    case "$target" in
    *dense-small*) meas=$(measured "$OUT/small" "$target") ;;
    *llama-2-7b*) meas=$(measured "$OUT/large" "$target") ;;
    *) meas=$(measured "$OUT/big" "$target") ;;
    esac
    if [ -z "$proj" ] || [ -z "$meas" ]; then
        printf '%s\t%s\t%s\t%s\t-\t-\t-\t%s\n' "$src" "$target" "${proj:--}" "${meas:--}" "$from" >>"$OUT/validation.tsv"
        continue
    fi
    err=$(jq -n --argjson p "$proj" --argjson m "$meas" '($p / $m - 1)')
    inside=$(jq -rn --argjson m "$meas" --argjson l "${lo:-0}" --argjson h "${hi:-0}" 'if $m >= $l and $m <= $h then "yes" else "no" end')
    printf '%s\t%s\t%.4g\t%.4g\t%+.3f\t[%.4g, %.4g]\t%s\t%s\n' "$src" "$target" "$proj" "$meas" "$err" "${lo:-0}" "${hi:-0}" "$inside" "$from" >>"$OUT/validation.tsv"
done
column -t -s $'\t' "$OUT/validation.tsv"
echo "folder: $OUT"
