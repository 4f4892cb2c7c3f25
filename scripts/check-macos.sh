#!/usr/bin/env bash
# Compiles (type-checks and lints) capbench for Apple silicon with the Metal
# backend, on Linux: `cargo clippy --target aarch64-apple-darwin --features
# capbench/metal -D warnings` over the whole workspace, all targets. This is
# how the macOS-only code (`#[cfg(target_os = "macos")]`: Metal device
# selection, sync and memory queries) is kept compiling without a Mac. It
# does not link and runs nothing: whether Metal *works* needs a Mac
# (docs/gpu-backends.md, "Metal").
#
#   scripts/check-macos.sh
#
# Needs the Rust standard library for the target (`rustup target add
# aarch64-apple-darwin`, done here when missing). A few dependencies
# compile C or C++ in build scripts (candle's tokenizers → esaxx-rs,
# criterion → alloca); with no Apple SDK here, a stand-in compiler writes
# empty objects for them — nothing is linked, so their contents are never
# used. A clean run takes ~15 min on 2 cores; CARGO_TARGET_DIR defaults to
# target/macos-check so the host build is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-apple-darwin

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "check-macos: adding the $target standard library (rustup)" >&2
    rustup target add "$target" || {
        echo "check-macos: could not add $target; run 'rustup target add $target' where the network allows" >&2
        exit 2
    }
fi

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
cat >"$tools/cc" <<'CC'
#!/bin/sh
# Stand-in C/C++ compiler for a check build: an empty object where one was asked for.
out=""
while [ $# -gt 0 ]; do
    case "$1" in
    -o) out="$2"; shift ;;
    -o*) out="${1#-o}" ;;
    -Fo*) out="${1#-Fo}" ;;
    esac
    shift
done
[ -n "$out" ] && : >"$out"
exit 0
CC
chmod +x "$tools/cc"

export CC_aarch64_apple_darwin="$tools/cc" CXX_aarch64_apple_darwin="$tools/cc" AR_aarch64_apple_darwin=ar
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/macos-check}"
cargo clippy --workspace --all-targets --target "$target" --features capbench/metal -- -D warnings
echo "check-macos: capbench with Metal compiles for $target, clippy-clean (not linked, not run)" >&2
