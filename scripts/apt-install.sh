#!/usr/bin/env bash
# Installs Debian/Ubuntu packages for a set-up script: apt-install.sh WHO
# PACKAGE... (WHO names the caller in messages). sudo when not root; exits 1
# with the list when there is no apt-get. Shared by setup-llamacpp-build.sh
# and setup-vulkan-headers.sh.
set -euo pipefail
who=$1
shift
if ! command -v apt-get >/dev/null; then
    echo "$who: no apt-get here; install $* with your package manager" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
echo "$who: installed $*" >&2
