#!/usr/bin/env bash
# CI regression step: append the Markdown verdict to $GITHUB_STEP_SUMMARY
# (or print it), and exit 1 on a confident regression.
#
# When both builds are at hand — BASE_REV set, or a pull request
# (GITHUB_BASE_REF) whose merge base git can find — it runs them
# interleaved: `capbench ab --base <merge base> --new <this build>`, pairs
# of worker processes in random order, so drift of the runner cancels
# (docs/history.md has its measured false-alarm and detection rates).
# Otherwise it runs the gate suite and compares it with this machine's
# stored baseline.
#
#   scripts/ci-regress.sh [BASELINE_NAME]        # default name: main
#   BASE_REV=origin/main scripts/ci-regress.sh   # interleaved A/B
#
# Environment: SUITE (default gate), THRESHOLD (default 5%; the A/B's
# AB_THRESHOLD default 2%, AB_PAIRS default 10), BASELINES_DIR (default
# results/baselines), SAVE_BASELINE=1 to store this run as the new
# baseline when it passes (do that on the main branch only), HISTORY_DIR
# to file the run in that history and print its change-point analysis.
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
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"

BASE_REV="${BASE_REV:-}"
if [ -z "$BASE_REV" ] && [ -n "${GITHUB_BASE_REF:-}" ]; then
    BASE_REV="$(git merge-base HEAD "origin/$GITHUB_BASE_REF" 2>/dev/null || true)"
fi
if [ -n "$BASE_REV" ]; then
    OUT="results/local/ab-$STAMP"
    set +e
    $CB ab --base "$BASE_REV" --new "$CB" --out "$OUT" --pairs "${AB_PAIRS:-10}" \
        --threshold "${AB_THRESHOLD:-2%}" --format md -- --suite "$SUITE" > "$OUT.md"
    rc=$?
    set -e
    cat "$OUT.md" >> "$SUMMARY"
    exit "$rc"
fi

OUT="results/local/ci-$STAMP"
$CB run --quiet --suite "$SUITE" --out "$OUT"
if [ -n "${HISTORY_DIR:-}" ]; then
    $CB history add "$OUT" --dir "$HISTORY_DIR"
    $CB history analyze --dir "$HISTORY_DIR" --format md >> "$SUMMARY" || true
fi

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
