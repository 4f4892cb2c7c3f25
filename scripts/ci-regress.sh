#!/usr/bin/env bash
# CI regression step: run the gate suite, compare it with this machine's
# stored baseline, append the Markdown verdict to $GITHUB_STEP_SUMMARY (or
# print it), and exit 1 on a confident regression.
#
#   scripts/ci-regress.sh [BASELINE_NAME]        # default name: main
#
# Environment: SUITE (default gate), THRESHOLD (default 5%), BASELINES_DIR
# (default results/baselines), SAVE_BASELINE=1 to store this run as the new
# baseline when it passes (do that on the main branch only).
# Without a baseline for this machine the run is saved as the first one and
# the step passes: there is nothing to compare yet.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME="${1:-main}"
SUITE="${SUITE:-gate}"
THRESHOLD="${THRESHOLD:-5%}"
BASELINES_DIR="${BASELINES_DIR:-results/baselines}"
SUMMARY="${GITHUB_STEP_SUMMARY:-/dev/stdout}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

cargo build --release -q
CB=target/release/capbench
OUT="results/local/ci-$(date -u +%Y%m%dT%H%M%SZ)"
$CB run --quiet --suite "$SUITE" --out "$OUT"

if ! $CB baseline show "$NAME" --baselines-dir "$BASELINES_DIR" >/dev/null 2>&1; then
    $CB baseline save "$NAME" "$OUT" --baselines-dir "$BASELINES_DIR"
    echo "### capbench: no baseline '$NAME' for this machine yet — saved this run as the first one" >> "$SUMMARY"
    exit 0
fi

set +e
$CB compare --baseline "$NAME" --baselines-dir "$BASELINES_DIR" "$OUT" \
    --threshold "$THRESHOLD" --format md > "$OUT/compare.md"
rc=$?
set -e
cat "$OUT/compare.md" >> "$SUMMARY"
if [ "$rc" = 0 ] && [ "${SAVE_BASELINE:-0}" = 1 ]; then
    $CB baseline save "$NAME" "$OUT" --baselines-dir "$BASELINES_DIR"
fi
exit "$rc"
