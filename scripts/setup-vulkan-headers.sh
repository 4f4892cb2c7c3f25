#!/usr/bin/env bash
# Newer Vulkan headers for `--features llamacpp-vulkan` on a distribution
# whose own are too old (Debian 12 ships 1.3.239; the llama.cpp that
# llama-cpp-sys-2 vendors uses VK_EXT_layer_settings, headers 1.3.261+).
#
# Downloads Debian 13's libvulkan-dev .deb from the Debian archive (pinned
# by version and SHA-256), unpacks only its headers into a folder laid out
# as a Vulkan SDK (include/, lib/, bin/), links the machine's own loader
# (libvulkan.so.1, any 1.x: the loader's ABI is stable and the headers only
# declare types) and glslc into it, and prints the VULKAN_SDK to export:
# cmake's FindVulkan looks there first. Nothing is installed system-wide.
#
#   eval "$(scripts/setup-vulkan-headers.sh)"   # sets VULKAN_SDK
#   cargo build --release --features capbench/llamacpp-vulkan
#
# Needs: curl, dpkg-deb, and the Debian packages libvulkan1, glslc and
# spirv-headers (installed with apt-get when missing, as
# scripts/setup-llamacpp-build.sh does). Usage: [DEST] (default
# target/vulkan-sdk).
set -euo pipefail
VERSION=1.4.309.0-1
SHA256=8d329d465e16168afff58b1bd0dd6db46aac2cc3f56054a481b25a04e90b345a
URL="http://deb.debian.org/debian/pool/main/v/vulkan-loader/libvulkan-dev_${VERSION}_amd64.deb"
DEST=${1:-target/vulkan-sdk}
say() { echo "setup-vulkan-headers: $*" >&2; }

if [ "$(uname -m)" != x86_64 ]; then
    say "only x86_64 is set up here (the .deb is amd64); install Vulkan headers ≥ 1.3.261 another way"
    exit 1
fi
need=()
ls /usr/lib/x86_64-linux-gnu/libvulkan.so.1 >/dev/null 2>&1 || need+=(libvulkan1)
command -v glslc >/dev/null || need+=(glslc)
[ -d /usr/include/spirv ] || need+=(spirv-headers)
if [ ${#need[@]} -gt 0 ]; then
    "$(dirname "$0")/apt-install.sh" setup-vulkan-headers "${need[@]}"
fi

if [ ! -f "$DEST/include/vulkan/vulkan.hpp" ] || [ "$(cat "$DEST/VERSION" 2>/dev/null)" != "$VERSION" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    curl -fsSL --retry 3 -o "$tmp/dev.deb" "$URL"
    got=$(sha256sum "$tmp/dev.deb" | cut -d' ' -f1)
    if [ "$got" != "$SHA256" ]; then
        say "$URL: SHA-256 $got, expected $SHA256; not using it"
        exit 1
    fi
    dpkg-deb -x "$tmp/dev.deb" "$tmp/x"
    rm -rf "$DEST"
    mkdir -p "$DEST/lib" "$DEST/bin"
    cp -r "$tmp/x/usr/include" "$DEST/include"
    echo "$VERSION" >"$DEST/VERSION"
fi
ln -sf /usr/lib/x86_64-linux-gnu/libvulkan.so.1 "$DEST/lib/libvulkan.so"
ln -sf "$(command -v glslc)" "$DEST/bin/glslc"
say "Vulkan headers $VERSION in $DEST (loader and glslc from this machine)"
echo "export VULKAN_SDK=$(cd "$DEST" && pwd)"
