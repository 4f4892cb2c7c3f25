#!/usr/bin/env bash
# Builds capbench for NVIDIA GPUs with the CUDA toolkit from PyPI (no local
# CUDA install and no driver needed to build):
#
#   target/release/capbench       the usual binary (wgpu, NVML): starts anywhere
#   target/release/capbench-cuda  the CUDA worker (candle's cuda, NVML)
#
# candle links libcuda at load time, and so does llama.cpp's CUDA backend,
# so a binary with CUDA does not start where the NVIDIA driver is missing.
# capbench therefore runs cuda (and llamacpp:cuda) cases in capbench-cuda,
# after checking that the driver loads: without one, those cases are
# recorded "unavailable: no CUDA driver found" and the rest run.
#
#   scripts/build-cuda.sh [--llamacpp | --llamacpp-only] COMPUTE_CAP
#                                        e.g. 90 (H100/H200), 89 (L4, RTX 40xx),
#                                        86 (A10, RTX 30xx), 80 (A100), 75 (T4)
#
#   --llamacpp       also llama.cpp's CUDA backend in capbench-cuda
#                    (`--backend llamacpp:cuda`) and llama.cpp's CPU one in
#                    capbench (`llamacpp`); needs cmake, g++ and libclang
#                    (scripts/setup-llamacpp-build.sh)
#   --llamacpp-only  capbench-cuda with llama.cpp's CUDA backend instead of
#                    candle's (no `cuda` backend; skips candle's kernels)
#
# Without COMPUTE_CAP, CUDA_COMPUTE_CAP or nvidia-smi decides. Most of
# candle's kernels are compiled to PTX for that capability (newer GPUs JIT
# it), but its quantized-matmul and MoE kernels to machine code for exactly
# that generation (nvcc -gencode arch=compute_XY,code=sm_XY): build for the
# GPU you run on. llama.cpp's kernels are compiled for that capability, as
# machine code and PTX (CMAKE_CUDA_ARCHITECTURES=XY; set it yourself for
# several). On 2 shared cores candle's kernels take about an hour, llama.cpp's
# about 25 minutes (docs/notes/cuda-build.md).
#
# capbench-cuda gets an rpath to the toolkit venv (for cuBLAS, cuRAND and
# the CUDA runtime), never to the link-time libcuda stand-in in lib/stubs:
# at run time the driver's own libcuda.so.1 is loaded, or none. The build
# folder is $CARGO_TARGET_DIR (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "build-cuda: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

engines=candle
while [ $# -gt 0 ]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --llamacpp) engines=candle+llamacpp ;;
        --llamacpp-only) engines=llamacpp ;;
        -*) die "unknown option '$1' (usage: $0 [--llamacpp | --llamacpp-only] [COMPUTE_CAP]; see --help)" ;;
        *) break ;;
    esac
    shift
done
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
target="${CARGO_TARGET_DIR:-target}"

worker_features=cuda,nvml
main_features=nvml
case "$engines" in
    candle+llamacpp) worker_features=cuda,nvml,llamacpp-cuda; main_features=nvml,llamacpp ;;
    llamacpp) worker_features=nvml,llamacpp-cuda; main_features=nvml,llamacpp ;;
esac
if [ "$engines" != candle ]; then
    # llama.cpp is compiled by cmake from llama-cpp-sys-2's build script,
    # which passes on CMAKE_* variables: the GPU generation (cmake would
    # otherwise build seven, or "native", which needs a GPU here) and
    # the toolkit's nvcc.
    export CMAKE_CUDA_ARCHITECTURES="${CMAKE_CUDA_ARCHITECTURES:-$cap}"
    export CMAKE_CUDA_COMPILER="$CUDA_ROOT/bin/nvcc" CUDAToolkit_ROOT="$CUDA_ROOT"
    # llama-cpp-sys-2 links cuBLAS statically on Linux (cublas_static,
    # cublasLt_static, culibos, from the folders it finds through
    # CUDA_LIBRARY_PATH). The PyPI wheels ship cuBLAS as shared libraries
    # only: the folder made here holds the wheels' static CUDA runtime, the
    # driver stand-in, and empty archives under the three static names, and
    # capbench's build script links the shared cuBLAS instead (harness/build.rs).
    link="$(realpath -m "$target")/cuda-link"
    mkdir -p "$link/lib64/stubs"
    ln -sf "$CUDA_ROOT/lib/libcudart_static.a" "$link/lib64/"
    ln -sf "$CUDA_ROOT/lib/stubs/libcuda.so" "$link/lib64/stubs/"
    for name in cublas_static cublasLt_static culibos; do
        if [ -e "$CUDA_ROOT/lib/lib$name.a" ]; then
            ln -sf "$CUDA_ROOT/lib/lib$name.a" "$link/lib64/"
        else
            rm -f "$link/lib64/lib$name.a"
            ar rc "$link/lib64/lib$name.a"
        fi
    done
    export CUDA_LIBRARY_PATH="$link"
fi

# The CUDA worker first: it runs CUDA cases only, so no wgpu. Both builds
# share the target folder (only crates whose features differ are built
# twice); the usual build runs last, so $target/release/capbench is the
# one without CUDA.
cargo build --release -p capbench --no-default-features --features "$worker_features"
install -m 755 "$target/release/capbench" "$target/release/capbench-cuda"
cargo build --release -p capbench --features "$main_features"

echo "built for compute capability $cap ($engines):" >&2
echo "  $target/release/capbench       (no CUDA link; runs CUDA cases through capbench-cuda)" >&2
echo "  $target/release/capbench-cuda  (needs the NVIDIA driver's libcuda.so.1 to start)" >&2
if command -v readelf >/dev/null; then
    echo "  capbench-cuda links: $(readelf -d "$target/release/capbench-cuda" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')" >&2
fi
