#!/usr/bin/env bash
# run.sh — boot Debian's Linux 6.1 under QEMU (TCG) with one emulated PCIe
# device bound to vfio-pci, run a static program in the guest, print its
# output and exit with its status.
#
#   run.sh [options] [PROGRAM [ARGS...]]     (default PROGRAM: the built probe)
#     -d, --device NAME   e1000e (default) | nvme | virtio-net
#     -t, --timeout SEC   hard limit for the whole VM run (default 180)
#     --bzimage           boot the compressed bzImage instead of vmlinux (PVH)
#     --dmesg             also print the guest kernel log after the program
#     --log FILE          keep the raw serial console log in FILE
#     --retries N         boot again up to N times if the guest dies before
#                         the program starts (default 2)
#     --file PATH         also put PATH in the guest as /vfpm/BASENAME
#                         (repeatable; e.g. the conformance scenarios)
#
# Exit status: the program's, or 124 on timeout, 125 when the VM did not
# reach or finish the program (the console log is printed to stderr).
# Environment: VFPM_VM_CACHE (see prepare.sh), VFPM_VM_SKIP_PREPARE=1.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "run.sh: error: $*" >&2; exit 125; }

device=e1000e timeout_s=180 boot=pvh dmesg=0 keep_log= retries=2 files=()
while (( $# )); do
    case $1 in
        -d|--device)  device=${2:?}; shift 2 ;;
        -t|--timeout) timeout_s=${2:?}; shift 2 ;;
        --bzimage)    boot=bzimage; shift ;;
        --dmesg)      dmesg=1; shift ;;
        --log)        keep_log=${2:?}; shift 2 ;;
        --retries)    retries=${2:?}; shift 2 ;;
        --file)       files+=("${2:?}"); shift 2 ;;
        -h|--help)    sed -n '2,20p' "$0"; exit 0 ;;
        --)           shift; break ;;
        -*)           die "unknown option $1" ;;
        *)            break ;;
    esac
done

if [[ ${VFPM_VM_SKIP_PREPARE:-0} == 1 ]]; then
    cache=${VFPM_VM_CACHE:-$(cd "$here/../.." && pwd)/build/conformance-vm}
else
    cache=$(bash "$here/prepare.sh" | tail -n 1)
fi
kpkg=$(cat "$cache/kpkg" 2>/dev/null) || die "cache $cache not prepared"
kver=${kpkg#linux-image-}
kdir=$cache/$kver
base=$cache/base-$kver.cpio.gz
[[ -f $base ]] || die "no base initramfs in $cache (run prepare.sh)"

prog=${1:-$cache/probe}; (( $# )) && shift
[[ -f $prog ]] || die "no program $prog"
if [[ $(file -b "$prog") == *"dynamically linked"* ]]; then
    die "$prog is dynamically linked; the guest has no libc (build it with -static)"
fi

case $device in
    e1000e)     devargs=(-device e1000e,bus=rp1,romfile=) ;;
    virtio-net) devargs=(-device virtio-net-pci,bus=rp1,romfile=) ;;
    nvme)       devargs=(-drive "if=none,id=nvm0,format=raw,file=null-co://,file.size=1M,file.read-zeroes=on"
                         -device nvme,serial=vfpm0,drive=nvm0,bus=rp1) ;;
    *) die "unknown device '$device' (e1000e, nvme, virtio-net)" ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/vfpm-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The program and its arguments go in a second, uncompressed cpio archive
# appended to the base one (the kernel unpacks concatenated archives).
mkdir -p "$work/root/vfpm"
cp "$prog" "$work/root/vfpm/prog"; chmod 755 "$work/root/vfpm/prog"
for f in "${files[@]}"; do
    [[ -f $f ]] || die "no file $f"
    cp "$f" "$work/root/vfpm/$(basename "$f")"
done
: > "$work/root/vfpm/args"
for a in "$@"; do
    [[ $a != *$'\n'* ]] || die "arguments may not contain newlines"
    printf '%s\n' "$a" >> "$work/root/vfpm/args"
done
( cd "$work/root" && find vfpm | cpio -o -H newc -R 0:0 --quiet ) | gzip -1 > "$work/prog.cpio"
cat "$base" "$work/prog.cpio" > "$work/initrd"

# no_timer_check: under TCG on a busy host the kernel's IO-APIC timer test can
# time out, and with interrupt remapping on (intel-iommu) that is a panic.
append="console=ttyS0 quiet panic=-1 intel_iommu=on no_timer_check"
(( dmesg )) && append+=" vfpm.dmesg=1"
if [[ $boot == pvh && -f $kdir/vmlinux ]]; then
    bootargs=(-bios /usr/share/qemu/qboot.rom -kernel "$kdir/vmlinux")
else
    boot=bzimage
    bootargs=(-kernel "$kdir/bzImage")
fi

log=$work/console.log
boot_vm() {
timeout --kill-after=5 "$timeout_s" \
    qemu-system-x86_64 -M q35 -accel tcg -cpu max -smp "${VFPM_VM_SMP:-2}" -m 512 \
        -nodefaults -display none -no-user-config -no-reboot \
        -serial "file:$log" -monitor none \
        "${bootargs[@]}" -initrd "$work/initrd" -append "$append" \
        -device intel-iommu \
        -device pcie-root-port,id=rp1,chassis=1,slot=1 \
        "${devargs[@]}" \
        </dev/null >"$work/qemu.out" 2>&1
}
start=$(date +%s.%N)
attempt=1
while :; do
    set +e; boot_vm; qrc=$?; set -e
    tr -d '\r' < "$log" > "$work/console.txt" 2>/dev/null || : > "$work/console.txt"
    # A guest that died before starting the program (a boot hiccup under a
    # loaded host) is booted again; once the program ran, never.
    if (( qrc != 124 && qrc != 137 && attempt <= retries )) \
        && ! grep -q '^@@VFPM-BEGIN@@' "$work/console.txt"; then
        echo "run.sh: guest did not reach the program (attempt $attempt); booting again" >&2
        grep -m3 -E 'panic|BUG|error' "$work/console.txt" >&2 || true
        attempt=$((attempt + 1)); rm -f "$log"; continue
    fi
    break
done
end=$(date +%s.%N)
if [[ -n $keep_log ]]; then cp "$log" "$keep_log"; fi
elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}')
show_failure() {
    echo "run.sh: $1 (qemu exit $qrc, ${elapsed}s, boot=$boot, device=$device)" >&2
    echo "---- qemu output ----" >&2; cat "$work/qemu.out" >&2
    echo "---- console (last 60 lines) ----" >&2; tail -n 60 "$work/console.txt" >&2
}
if (( qrc == 124 || qrc == 137 )); then
    show_failure "timed out after ${timeout_s}s"; exit 124
fi
if ! grep -q '^@@VFPM-BEGIN@@' "$work/console.txt"; then
    show_failure "the guest never reached the program"; exit 125
fi
endline=$(grep -a -m1 '^@@VFPM-END rc=[0-9]*@@' "$work/console.txt" || true)
if [[ -z $endline ]]; then
    sed -n '/^@@VFPM-BEGIN@@/,$p' "$work/console.txt" | sed 1d
    show_failure "the program did not finish (guest crashed?)"; exit 125
fi
rc=${endline#@@VFPM-END rc=}; rc=${rc%@@}
sed -n '/^@@VFPM-BEGIN@@/,/^@@VFPM-END rc=/p' "$work/console.txt" | sed '1d;$d'
if (( dmesg )); then
    sed -n '/^@@VFPM-DMESG@@/,/^@@VFPM-DMESG-END@@/p' "$work/console.txt" | sed '1d;$d' >&2
fi
echo "run.sh: device=$device boot=$boot kernel=$kver rc=$rc vm=${elapsed}s" >&2
exit "$rc"
