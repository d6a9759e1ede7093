#!/usr/bin/env bash
# qemu.sh — run the trixie chroot's qemu-system-x86_64 (see prepare-qemu.sh)
# as if it were installed on the host.
#
#   qemu.sh [--bind DIR]... [--] QEMU-ARGS...
#     --bind DIR   make the host's DIR visible at the same path inside the
#                  chroot (repeatable): the folders of the vfio-user sockets,
#                  the kernel and initramfs, log files. Paths in QEMU-ARGS are
#                  then the host's paths.
#
# QEMU runs in a private mount namespace (unshare -m): the binds, /proc,
# /sys and /dev it gets exist only there and vanish when QEMU exits, however
# it exits, so nothing is left mounted on the host. Every step is an exec,
# so QEMU keeps this script's pid: timeout(1) and signals reach it directly.
# The working directory is kept when it is inside a bound folder.
#
# Environment: VFPM_QEMU_CACHE (as for prepare-qemu.sh); VFPM_QEMU_SKIP_PREPARE=1
# trusts the cache without running prepare-qemu.sh (which takes ~0 s when
# cached, but holds its lock).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "qemu.sh: error: $*" >&2; exit 125; }

(( EUID == 0 )) || die "needs root (chroot and mount namespaces)"

binds=()
while (( $# )); do
    case $1 in
        --bind) [[ -d ${2:-} ]] || die "--bind needs an existing folder (got '${2:-}')"
                binds+=("$(cd "$2" && pwd -P)"); shift 2 ;;
        --)     shift; break ;;
        *)      break ;;
    esac
done

if [[ ${VFPM_QEMU_SKIP_PREPARE:-0} == 1 ]]; then
    cache=${VFPM_QEMU_CACHE:-/var/cache/vfpm/qemu-trixie}
else
    cache=$(bash "$here/prepare-qemu.sh" 2>/dev/null | tail -n 1) \
        || die "prepare-qemu.sh failed; run it alone to see why"
fi
root=$cache/root
[[ -x $root/usr/bin/qemu-system-x86_64 ]] || die "no QEMU in $root (run prepare-qemu.sh)"

# A rebuild of the chroot takes the lock exclusively; hold it shared for as
# long as QEMU runs (fd 9 is inherited through the execs below).
exec 9<"$cache/.lock"
flock -s 9

# Mount points for the binds. They are created in the cached chroot (empty
# folders, harmless to leave) because a bind needs an existing target.
for d in "${binds[@]}"; do mkdir -p "$root$d"; done

# Inside the new namespace: /proc and /sys fresh, the host's /dev (QEMU needs
# /dev/null and /dev/urandom; /dev/shm and /dev/pts come along), then the
# binds, then chroot and exec QEMU from the same working directory.
# shellcheck disable=SC2016  # expanded by the inner shell
exec unshare --mount --propagation private -- /bin/bash -c '
    set -euo pipefail
    root=$1 cwd=$2 nbinds=$3; shift 3
    mount -t proc proc "$root/proc"
    mount -t sysfs -o ro sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    for (( i = 0; i < nbinds; i++ )); do
        mount --bind "$1" "$root$1"; shift
    done
    exec chroot "$root" /bin/sh -c "cd \"\$1\" 2>/dev/null || cd /; shift; exec /usr/bin/qemu-system-x86_64 \"\$@\"" \
        sh "$cwd" "$@"
' qemu.sh "$root" "$PWD" "${#binds[@]}" "${binds[@]}" "$@"
