#!/usr/bin/env bash
# One prepared command for a Linux machine with an NVIDIA GPU: builds
# capbench with CUDA (scripts/build-cuda.sh, toolkit from PyPI) or takes a
# prebuilt pair, then runs scripts/gpu-check.toml — the quick suite plus
# decode of two real shapes — on `cuda` and `wgpu:vulkan`, and on
# `llamacpp:cuda` where capbench-cuda has llama.cpp's CUDA backend, and
# writes the run folder with its report.
#
#   scripts/gpu-check.sh [OUT_DIR]       default results/local/gpu-check-<time>
#
#   CAPBENCH_BIN_DIR=DIR   use DIR/capbench and DIR/capbench-cuda (no build)
#   CUDA_COMPUTE_CAP=90    build for this capability (default: nvidia-smi's)
#   LLAMACPP=1             build with llama.cpp too (build-cuda.sh --llamacpp)
#   BACKENDS=cuda          run only these backends
#
# Before any case runs, capbench itself checks that the CUDA driver loads
# and sees a GPU; if not, this stops with its answer (exit 2) rather than
# recording a run of `unavailable` cases. wgpu:vulkan needs NVIDIA's Vulkan
# driver (the ICD, e.g. libnvidia-gl); without it the run goes on with cuda
# alone and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "gpu-check: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option '$1' (usage: $0 [OUT_DIR]; see --help)" ;;
esac
[ $# -le 1 ] || die "one OUT_DIR at most, got $# arguments (see --help)"
out="${1:-results/local/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}"

if [ -n "${CAPBENCH_BIN_DIR:-}" ]; then
    bin="$CAPBENCH_BIN_DIR"
    [ -x "$bin/capbench" ] && [ -x "$bin/capbench-cuda" ] ||
        die "CAPBENCH_BIN_DIR=$bin must hold capbench and capbench-cuda (scripts/build-cuda.sh builds both into target/release)"
    # Informative only: capbench's own driver check below decides.
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv >&2 || true
    fi
else
    # Building takes tens of minutes: stop first where there is no GPU.
    command -v nvidia-smi >/dev/null ||
        die "no NVIDIA GPU / driver here: nvidia-smi not found (this check needs an NVIDIA GPU and its driver)"
    nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv >&2 ||
        die "no NVIDIA GPU / driver here: nvidia-smi failed (its message is above)"
    cap="${CUDA_COMPUTE_CAP:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')}"
    if [ "${LLAMACPP:-0}" = 1 ]; then
        scripts/build-cuda.sh --llamacpp "$cap"
    else
        scripts/build-cuda.sh "$cap"
    fi
    bin=target/release
fi

# The worker beside this capbench, whatever the folder holds (links too).
CAPBENCH_CUDA_WORKER="$(cd "$bin" && pwd)/capbench-cuda"
export CAPBENCH_CUDA_WORKER

"$bin/capbench" list backends >&2
backends_json=$("$bin/capbench" list backends --json)

# cuda must be usable: capbench loads libcuda.so.1 with dlopen and asks it
# for GPUs before it would start capbench-cuda, and says why not.
cuda_note=$(python3 -c '
import json, sys
c = [b for b in json.load(sys.stdin) if b["backend"] == "cuda"][0]
print("" if c["usable"] else (c["note"] or "cuda is not usable"))
' <<<"$backends_json")
[ -z "$cuda_note" ] || die "cuda is not usable here: $cuda_note"

backends="${BACKENDS:-}"
if [ -z "$backends" ]; then
    backends=cuda
    if python3 -c '
import json, sys
w = [b for b in json.load(sys.stdin) if b["backend"] == "wgpu"][0]
sys.exit(0 if any(d.get("api") == "vulkan" and d.get("device_type") != "cpu" for d in w["devices"]) else 1)
' <<<"$backends_json"; then
        backends=cuda,wgpu:vulkan
    else
        echo "gpu-check: no Vulkan adapter on the GPU; not running wgpu:vulkan" >&2
    fi
    # llama.cpp on the same GPU, where the CUDA worker has it and sees it.
    if python3 -c '
import json, sys
l = [b for b in json.load(sys.stdin) if b["backend"] == "llamacpp"][0]
sys.exit(0 if any(d.get("backend") == "llamacpp:cuda" for d in l["devices"]) else 1)
' <<<"$backends_json"; then
        backends="$backends,llamacpp:cuda"
    fi
fi

# Exit code 1 only says that some case was not ok: everything is recorded.
"$bin/capbench" run --suite scripts/gpu-check.toml --backend "$backends" --out "$out" --report || true
echo "gpu-check: run folder $out (report in $out/report)" >&2
