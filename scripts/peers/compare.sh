#!/usr/bin/env bash
# capbench against llama.cpp and PyTorch on this machine, from the package
# registries only, measured interleaved (see compare.py for the pairs).
#
#   scripts/peers/compare.sh [--out DIR] [compare.py options…]
#
# Installs, once, into $PEERS_DIR (default target/peers):
#   - a venv with cmake and ninja (PyPI) and torch + safetensors (PyPI);
#   - llama.cpp's llama-bench, built from the source the PyPI sdist of
#     llama-cpp-python vendors (LLAMA_CPP_PYTHON_VERSION, default 0.3.36),
#     with GGML_NATIVE so it uses this CPU's SIMD as capbench does.
# Then builds capbench (release) unless $CAPBENCH names a binary, and runs
# compare.py. Options after the script name pass through, e.g.
#   --threads 2 --rounds 2 --models tinyllama-1.1b --formats q4_0 --skip train
# Needs: python3 (with venv), a C/C++ compiler, cargo; ~6 GB of disk for the
# exported models and torch. It is a benchmark, not a CI test.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
PEERS_DIR=${PEERS_DIR:-$root/target/peers}
LLAMA_CPP_PYTHON_VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
TORCH_SPEC=${TORCH_SPEC:-torch}
out=$root/results/local/peers-$(date -u +%Y%m%dT%H%M%SZ)
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
mkdir -p "$PEERS_DIR"
venv=$PEERS_DIR/venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import cmake, ninja' 2>/dev/null; then
  "$venv/bin/pip" install -q cmake ninja
fi
if [ "${SKIP_TORCH:-0}" != 1 ] && ! "$venv/bin/python" -c 'import torch, safetensors' 2>/dev/null; then
  "$venv/bin/pip" install -q "$TORCH_SPEC" safetensors numpy
fi
src=$PEERS_DIR/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION
bench=$src/vendor/llama.cpp/build/bin/llama-bench
if [ ! -x "$bench" ]; then
  tarball=$PEERS_DIR/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz
  [ -f "$tarball" ] || python3 "$here/fetch_sdist.py" llama-cpp-python "$LLAMA_CPP_PYTHON_VERSION" "$tarball"
  # -m: the sdist's mtimes may lie ahead of this clock, which makes ninja
  # regenerate its manifest forever.
  tar -xmzf "$tarball" -C "$PEERS_DIR"
  # The sdist keeps the submodule's `.git` file, which points at a git dir
  # the sdist lacks; llama.cpp's build-info step then depends on a missing
  # file and ninja regenerates forever.
  rm -f "$src/vendor/llama.cpp/.git"
  PATH=$venv/bin:$PATH cmake -S "$src/vendor/llama.cpp" -B "$src/vendor/llama.cpp/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON
  PATH=$venv/bin:$PATH cmake --build "$src/vendor/llama.cpp/build" --target llama-bench -j "$(nproc)"
fi
if [ -z "${CAPBENCH:-}" ]; then
  (cd "$root" && cargo build --release -p capbench)
  CAPBENCH=$root/target/release/capbench
fi
py=()
if "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  py=(--python "$venv/bin/python")
fi
mkdir -p "$out"
echo "peers: llama-bench $bench; torch: ${py[*]:-none}; writing $out" >&2
cd "$root"
python3 "$here/compare.py" --capbench "$CAPBENCH" --llama-bench "$bench" "${py[@]}" --out "$out" "${args[@]}"
