#!/usr/bin/env bash
# Fleet fan-out with a Slurm job array: each array task measures the same
# suite on the node it lands on (ceilings first, then the suite) into its own
# run folder; a dependent job merges them and checks the claims. Slurm does
# the scheduling — capbench only measures, merges and judges.
#
#   scripts/fleet-slurm.sh [SUITE] [TASKS]      # default: claims/evidence.toml, 4 tasks
#
# Environment: PARTITIONS (sbatch --partition list, e.g. "a100,v100,t4" —
# one task per partition round-robin when set), BACKENDS (default cpu; add
# cuda on GPU nodes and build with `--features cuda`), OUT (default
# results/fleet-<time>), CLAIMS (default claims/examples.toml).
# Needs a shared filesystem holding this checkout (Slurm's usual set-up).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE="${1:-claims/evidence.toml}"
TASKS="${2:-4}"
BACKENDS="${BACKENDS:-cpu}"
CLAIMS="${CLAIMS:-claims/examples.toml}"
OUT="${OUT:-results/fleet-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT/logs"
cargo build --release -q
CB="$PWD/target/release/capbench"

PART_FLAG=()
if [ -n "${PARTITIONS:-}" ]; then
    PART_FLAG=(--partition "$PARTITIONS")
fi

# One array task per node: ceilings, then the suite. A failing case exits 1
# after recording it — the folder is kept either way.
ARRAY_ID=$(sbatch --parsable "${PART_FLAG[@]}" \
    --job-name capbench-fleet --array "0-$((TASKS - 1))" --nodes 1 --exclusive \
    --output "$OUT/logs/%A_%a.out" \
    --wrap "set -u; D=$OUT/task-\$SLURM_ARRAY_TASK_ID-\$(hostname -s); \
            $CB probe --backend $BACKENDS --out \$D/probe; \
            $CB run --quiet --backend $BACKENDS --suite $SUITE --out \$D/run; true")

# After every task (whatever its exit): merge, report, check.
sbatch --parsable --dependency "afterany:$ARRAY_ID" --job-name capbench-merge \
    --output "$OUT/logs/merge.out" \
    --wrap "$CB merge $OUT/task-*/probe $OUT/task-*/run --out $OUT/merged && \
            $CB report $OUT/merged && \
            $CB check $CLAIMS --results $OUT/merged > $OUT/claims.txt; true"

echo "submitted array $ARRAY_ID ($TASKS tasks); merged results will be in $OUT/merged, verdicts in $OUT/claims.txt"
