#!/usr/bin/env bash
# One prepared command for a Linux machine with an NVIDIA GPU: builds
# capbench with CUDA (scripts/build-cuda.sh, toolkit from PyPI) or takes a
# prebuilt pair, then runs scripts/gpu-check.toml — the quick suite plus
# decode of two real shapes — on `cuda` and `wgpu:vulkan`, and writes the
# run folder with its report.
#
#   scripts/gpu-check.sh [OUT_DIR]       default results/local/gpu-check-<time>
#
#   CAPBENCH_BIN_DIR=DIR   use DIR/capbench and DIR/capbench-cuda (no build)
#   CUDA_COMPUTE_CAP=90    build for this capability (default: nvidia-smi's)
#   BACKENDS=cuda          run only these backends
#
# wgpu:vulkan needs NVIDIA's Vulkan driver (the ICD, e.g. libnvidia-gl);
# without it the run goes on with cuda alone and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "gpu-check: $*" >&2; exit 2; }

command -v nvidia-smi >/dev/null || die "nvidia-smi not found: this check needs an NVIDIA GPU and its driver"
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv >&2

if [ -n "${CAPBENCH_BIN_DIR:-}" ]; then
    bin="$CAPBENCH_BIN_DIR"
else
    cap="${CUDA_COMPUTE_CAP:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')}"
    scripts/build-cuda.sh "$cap"
    bin=target/release
fi
[ -x "$bin/capbench" ] && [ -x "$bin/capbench-cuda" ] ||
    die "$bin must hold capbench and capbench-cuda (scripts/build-cuda.sh builds both)"

out="${1:-results/local/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}"
"$bin/capbench" list backends >&2

backends="${BACKENDS:-}"
if [ -z "$backends" ]; then
    backends=cuda
    if "$bin/capbench" list backends --json | python3 -c '
import json, sys
w = [b for b in json.load(sys.stdin) if b["backend"] == "wgpu"][0]
sys.exit(0 if any(d.get("api") == "vulkan" and d.get("device_type") != "cpu" for d in w["devices"]) else 1)
'; then
        backends=cuda,wgpu:vulkan
    else
        echo "gpu-check: no Vulkan adapter on the GPU; running cuda only" >&2
    fi
fi

# Exit code 1 only says that some case was not ok: everything is recorded.
"$bin/capbench" run --suite scripts/gpu-check.toml --backend "$backends" --out "$out" --report || true
echo "gpu-check: run folder $out (report in $out/report)" >&2
