#!/usr/bin/env bash
# Runs a command as if this machine had other cache sizes: a private mount
# namespace with each CPU's sysfs cache folder replaced by a copy whose
# L1d/L2/L3 sizes and ways are the ones given. candle's GEMM (gemm-common)
# and capbench's memory predictor both read sysfs, so this reproduces how
# the packing slabs and block sizes of another CPU model change the memory a
# workload holds, without that machine. Linux, root (or CAP_SYS_ADMIN).
#
#   scripts/emulate-caches.sh L1D:WAYS L2:WAYS L3:WAYS -- COMMAND…
#   e.g. an Intel Xeon 5th gen VM (48K 12-way L1d, 2M 16-way L2, 260M L3):
#   scripts/emulate-caches.sh 48K:12 2048K:16 266240K:15 -- \
#       cargo test -p capbench --test caps_cli predicted_need
#
# Seen (2026-12-06, AMD EPYC host): the predictor test passes here and under
# the Xeon figures above; before the q8_0 repack term it failed under them
# with the same −12.6 % that the Xeon host reported.
set -euo pipefail
if [ $# -lt 5 ] || [ "$4" != "--" ]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
l1=$1 l2=$2 l3=$3
shift 4
fake=$(mktemp -d)
trap 'rm -rf "$fake"' EXIT
for cpu in /sys/devices/system/cpu/cpu[0-9]*; do
    [ -d "$cpu/cache" ] || continue
    n=$(basename "$cpu")
    for idx in "$cpu"/cache/index*; do
        d="$fake/$n/$(basename "$idx")"
        mkdir -p "$d"
        for f in level type size ways_of_associativity coherency_line_size shared_cpu_list; do
            [ -r "$idx/$f" ] && cp "$idx/$f" "$d/$f"
        done
        case "$(cat "$idx/level"):$(cat "$idx/type")" in
            1:Data) spec=$l1 ;;
            2:*) spec=$l2 ;;
            3:*) spec=$l3 ;;
            *) continue ;;
        esac
        echo "${spec%%:*}" > "$d/size"
        echo "${spec##*:}" > "$d/ways_of_associativity"
    done
done
export CAPBENCH_FAKE_CACHES="$fake"
unshare -m bash -c '
    for d in "$CAPBENCH_FAKE_CACHES"/cpu*; do
        mount --bind "$d" "/sys/devices/system/cpu/$(basename "$d")/cache"
    done
    unset CAPBENCH_FAKE_CACHES
    exec "$@"' bash "$@"
