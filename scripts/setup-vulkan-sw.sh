#!/usr/bin/env bash
# Installs Mesa's software Vulkan driver (lavapipe) so wgpu has an adapter on
# machines without a GPU (CI runners, containers). Debian/Ubuntu only.
set -euo pipefail
if ! command -v apt-get >/dev/null; then
    echo "setup-vulkan-sw: no apt-get here; install your distribution's Mesa Vulkan drivers" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
echo "setup-vulkan-sw: installed mesa-vulkan-drivers (lavapipe)"
