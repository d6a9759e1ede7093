#!/usr/bin/env bash
# probe-all.sh [DEVICE...] — run the probe in one VM boot per device type
# (default: e1000e nvme virtio-net). Each device's observations are printed
# and saved to <cache>/results/DEVICE.txt. Exits non-zero if any run failed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=$(bash "$here/prepare.sh" | tail -n 1)
mkdir -p "$cache/results"
(( $# )) || set -- e1000e nvme virtio-net
fail=0
for dev in "$@"; do
    echo "==== $dev"
    t0=$(date +%s.%N)
    if VFPM_VM_SKIP_PREPARE=1 VFPM_VM_CACHE=$cache bash "$here/run.sh" -d "$dev" \
            > "$cache/results/$dev.txt"; then rc=0; else rc=$?; fi
    t1=$(date +%s.%N)
    cat "$cache/results/$dev.txt"
    printf '==== %s rc=%d wall=%.2fs (saved in %s)\n' "$dev" "$rc" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" "$cache/results/$dev.txt"
    (( rc == 0 )) || fail=1
done
exit "$fail"
