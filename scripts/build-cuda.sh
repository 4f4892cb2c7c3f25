#!/usr/bin/env bash
# Builds capbench for NVIDIA GPUs with the CUDA toolkit from PyPI (no local
# CUDA install and no driver needed to build):
#
#   target/release/capbench       the usual binary (wgpu, NVML): starts anywhere
#   target/release/capbench-cuda  the CUDA worker (candle's cuda, NVML)
#
# candle links libcuda at load time, so a binary with CUDA does not start
# where the NVIDIA driver is missing. capbench therefore runs cuda cases in
# capbench-cuda, after checking that the driver loads: without one, those
# cases are recorded "unavailable: no CUDA driver found" and the rest run.
#
#   scripts/build-cuda.sh COMPUTE_CAP    e.g. 90 (H100/H200), 89 (L4, RTX 40xx),
#                                        86 (A10, RTX 30xx), 80 (A100), 75 (T4)
#
# Without an argument, CUDA_COMPUTE_CAP or nvidia-smi decides. Most of
# candle's kernels are compiled to PTX for that capability (newer GPUs JIT
# it), but its quantized-matmul and MoE kernels to machine code for exactly
# that generation (nvcc -gencode arch=compute_XY,code=sm_XY): build for the
# GPU you run on. About an hour on 2 shared cores (docs/notes/cuda-build.md).
#
# capbench-cuda gets an rpath to the toolkit venv (for cuBLAS, cuRAND and
# the CUDA runtime), never to the link-time libcuda stand-in in lib/stubs:
# at run time the driver's own libcuda.so.1 is loaded, or none.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-cuda: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option '$1' (usage: $0 [COMPUTE_CAP]; see --help)" ;;
esac
[ $# -le 1 ] || die "one COMPUTE_CAP at most, got $# arguments (see --help)"

cap="${1:-${CUDA_COMPUTE_CAP:-}}"
if [ -z "$cap" ] && command -v nvidia-smi >/dev/null; then
    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n1 | tr -d ' .')
fi
[ -n "$cap" ] || die "usage: $0 COMPUTE_CAP (e.g. 90; see nvidia-smi --query-gpu=compute_cap --format=csv)"
case "$cap" in *[!0-9]*) die "COMPUTE_CAP must be digits like 90 or 86, not '$cap'" ;; esac
# CUDA 13's nvcc builds for compute capability 7.5 (Turing) and newer.
[ "$cap" -ge 75 ] || die "CUDA 13 supports compute capability 7.5 and newer, not $cap"

eval "$(scripts/setup-cuda-toolkit.sh)"
export CUDA_COMPUTE_CAP="$cap"

# The CUDA worker first: it runs cuda cases only, so no wgpu. Both builds
# share target/ (only crates whose features differ are built twice); the
# usual build runs last, so target/release/capbench is the one without CUDA.
cargo build --release -p capbench --no-default-features --features cuda,nvml
install -m 755 target/release/capbench target/release/capbench-cuda
cargo build --release -p capbench --features nvml

echo "built for compute capability $cap:" >&2
echo "  target/release/capbench       (no CUDA link; runs cuda cases through capbench-cuda)" >&2
echo "  target/release/capbench-cuda  (needs the NVIDIA driver's libcuda.so.1 to start)" >&2
if command -v readelf >/dev/null; then
    echo "  capbench-cuda links: $(readelf -d target/release/capbench-cuda | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')" >&2
fi
