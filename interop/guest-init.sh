#!/bin/sh
# /interop/init of the interop guest (busybox sh; the kernel runs it through
# rdinit=/interop/init, so the conformance VM's /init in the same initramfs
# is left alone). Runs /interop/guest-check against the vfio-user device and
# powers off. Its output is framed for run-guest.sh:
#   @@INTEROP-BEGIN@@ ... @@INTEROP-END rc=N@@
# Kernel command line options read here:
#   interop.args=A,B,...  arguments for guest-check (commas for spaces)
#   interop.vfio=1        afterwards, bind the device to the guest's vfio-pci
#                         (needs the VM's intel-iommu) and wait for the
#                         guest kernel to runtime-suspend it into D3hot
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Keep the console for the checks: only emergencies from the kernel.
echo 1 > /proc/sys/kernel/printk

finish() {
    echo "@@INTEROP-END rc=$1@@"
    sync
    poweroff -f
    sleep 5
    exit "$1"   # a dying init panics; panic=-1 + -no-reboot ends QEMU
}

cmdline_opt() { sed -n "s/.*$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }

echo "@@INTEROP-BEGIN@@"
echo "guest: Linux $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpus"
args=$(cmdline_opt interop.args | tr ',' ' ')
# shellcheck disable=SC2086  # one word per argument, by design
/interop/guest-check $args
rc=$?

# The guest kernel's own runtime PM: vfio-pci suspends an unused device
# into D3hot (through a PMCSR config write, which QEMU passes on).
if [ "$(cmdline_opt interop.vfio)" = 1 ]; then
    # The device guest-check looked at: its VVVV:DDDD is the first argument.
    want=${args%% *}
    dev=
    for d in /sys/bus/pci/devices/*; do
        if [ "$(cat "$d/vendor"):$(cat "$d/device")" = "0x${want%:*}:0x${want#*:}" ]; then
            dev=$d; break
        fi
    done
    bdf=${dev##*/}
    ok=1
    [ -n "$dev" ] || { echo "  no $want device"; ok=0; }
    # shellcheck disable=SC2013  # one module name per line, no spaces
    for m in $(cat /lib/modules/order); do
        insmod "/lib/modules/$m.ko" || { echo "  insmod $m failed"; ok=0; }
    done
    echo vfio-pci > "$dev/driver_override"
    echo "$bdf" > /sys/bus/pci/drivers_probe
    drv=$(readlink "$dev/driver" 2>/dev/null)
    echo "  $bdf driver: ${drv##*/}"
    [ "${drv##*/}" = vfio-pci ] || ok=0
    status='?' i=0
    while [ $ok = 1 ] && [ $i -lt 50 ]; do
        status=$(cat "$dev/power/runtime_status")
        [ "$status" = suspended ] && break
        sleep 0.1; i=$((i + 1))
    done
    # power_state is read without resuming the device.
    state=$(cat "$dev/power_state" 2>/dev/null || echo ?)
    echo "  runtime_status $status, power_state $state"
    # What else the guest kernel says about the device and its root port.
    port=$(dirname "$(readlink -f "$dev")")
    echo "  root port ${port##*/}: runtime_status $(cat "$port/power/runtime_status")," \
         "power_state $(cat "$port/power_state" 2>/dev/null)"
    dmesg | grep -F "$bdf" | sed 's/^/  dmesg: /'
    if [ $ok = 1 ] && [ "$status" = suspended ] && [ "$state" = D3hot ]; then
        echo "check: vfio-runtime-d3hot: ok"
    else
        echo "check: vfio-runtime-d3hot: FAIL"; rc=1
    fi
fi
finish "$rc"
