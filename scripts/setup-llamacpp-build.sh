#!/usr/bin/env bash
# Installs what `--features llamacpp` needs to build llama.cpp (vendored by
# the llama-cpp-sys-2 crate): cmake, a C++ compiler with OpenMP (g++), and
# libclang for the crate's bindgen step. Debian/Ubuntu packages only; skips
# what is already there. About 4 minutes of C++ on 2 cores follow in cargo.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
    need+=(libclang-dev)
fi
if [ ${#need[@]} -eq 0 ]; then
    echo "setup-llamacpp-build: cmake, g++ and libclang are already here"
    exit 0
fi
"$(dirname "$0")/apt-install.sh" setup-llamacpp-build "${need[@]}"
