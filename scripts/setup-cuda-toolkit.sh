#!/usr/bin/env bash
# Installs NVIDIA's CUDA 13.0 toolkit (nvcc, headers, cudart, NVRTC, cuBLAS,
# cuRAND) from PyPI into a venv and prints the environment that builds
# capbench's `cuda` feature with it. No GPU or driver needed.
#
#   eval "$(scripts/setup-cuda-toolkit.sh)"      # installs once, then exports
#
# The toolkit is pinned to 13.0.x: PTX from a newer nvcc needs a newer
# driver than many machines have. Where it goes: $CAPBENCH_CUDA_VENV
# (default ~/.cache/capbench/cuda-13.0). Only the exports go to stdout.
set -euo pipefail

venv="${CAPBENCH_CUDA_VENV:-$HOME/.cache/capbench/cuda-13.0}"
# nvcc, cccl (CUDA's C++ headers) and cudart are what candle-kernels' build
# needs to compile; nvrtc, cublas and curand are what cudarc links against
# (dynamic linking, fixed by candle), so a `cargo build` needs them too.
spec='cuda-toolkit[nvcc,cccl,cudart,nvrtc,cublas,curand]==13.0.*'

find_root() {
    local sp
    sp=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$sp/nvidia/cu13"
}

if [ ! -x "$venv/bin/nvcc-ok" ] || [ ! -x "$(find_root 2>/dev/null)/bin/nvcc" ]; then
    echo "installing $spec into $venv" >&2
    if ! python3 -m venv "$venv" >&2; then
        # Debian's python3 keeps venv in its own package.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
            rm -rf "$venv"
            python3 -m venv "$venv" >&2
        else
            echo "error: python3 -m venv failed; install python3-venv" >&2
            exit 1
        fi
    fi
    # --no-cache-dir: the wheels are about 1 GB; a second copy in pip's cache
    # is what filled a CI machine's disk.
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-cache-dir "$spec" >&2
    root=$(find_root)
    [ -x "$root/bin/nvcc" ] || { echo "error: no nvcc at $root/bin after installing $spec" >&2; exit 1; }
    # A marker written only after a whole install, so an interrupted one is redone.
    printf '#!/bin/sh\nexit 0\n' >"$venv/bin/nvcc-ok"
    chmod +x "$venv/bin/nvcc-ok"
fi
root=$(find_root)

# The wheels ship versioned libraries only (libcublas.so.13, …); the linker
# looks for the unversioned names. Link names are made beside them, once.
for lib in "$root"/lib/lib*.so.*; do
    base=$(basename "$lib")
    name="${base%%.so.*}.so"
    [ -e "$root/lib/$name" ] || ln -s "$base" "$root/lib/$name"
done

# A link-time stand-in for the driver library, libcuda.so.1: candle links
# cudarc with `dynamic-linking`, so a binary needs libcuda at link time, and
# the driver ships it, not the toolkit wheels. Like NVIDIA's own toolkit
# stub it sits in lib/stubs (never on a run-time search path), and every
# function returns CUDA_ERROR_STUB_LIBRARY (34): were it ever loaded, CUDA
# calls fail with that error instead of pretending. Its symbols are the
# driver API functions that cuda.h declares (after its _v2/_v3 renames).
stub="$root/lib/stubs/libcuda.so"
if [ ! -f "$stub" ]; then
    mkdir -p "$root/lib/stubs"
    src=$(mktemp --suffix=.c)
    cc -E -P -x c -I"$root/include" "$root/include/cuda.h" | python3 -c '
import re, sys
names = sorted(set(re.findall(r"\bCUresult\s+(cu[A-Za-z0-9_]+)\s*\(", sys.stdin.read())))
if len(names) < 100:
    sys.exit(f"only {len(names)} driver functions found in cuda.h")
print("/* libcuda.so.1 link-time stand-in: every call is CUDA_ERROR_STUB_LIBRARY. */")
for n in names:
    print(f"int {n}(void) {{ return 34; }}")
' >"$src"
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub" "$src"
    rm -f "$src"
fi

cat <<ENV
export CUDA_ROOT='$root'
export CUDA_PATH='$root'
export PATH='$root/bin':"\$PATH"
export LIBRARY_PATH='$root/lib':"\${LIBRARY_PATH:-}"
ENV
