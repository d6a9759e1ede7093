#!/bin/sh
# /init of the reference VM (busybox sh). Loads the VFIO modules, binds the
# device under test to vfio-pci with driver_override, runs /vfpm/prog with the
# arguments listed in /vfpm/args (one per line) and powers off. The program's
# output is framed by marker lines that run.sh looks for on the serial console:
#   @@VFPM-BEGIN@@ ... @@VFPM-END rc=N@@
# Kernel command line options read here:
#   vfpm.bdf=DDDD:BB:DD.F   device to bind (default: the only non-bridge
#                           device off bus 00, i.e. the one on the root port)
#   vfpm.dmesg=1            print the kernel log after the program
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Keep the console for the program: only emergencies from the kernel.
echo 1 > /proc/sys/kernel/printk

finish() {
    echo "@@VFPM-END rc=$1@@"
    if grep -q 'vfpm.dmesg=1' /proc/cmdline; then
        echo "@@VFPM-DMESG@@"; dmesg; echo "@@VFPM-DMESG-END@@"
    fi
    sync
    poweroff -f
    sleep 5
    exit "$1"   # a dying init panics; panic=-1 + -no-reboot ends QEMU
}
fail() { echo "@@VFPM-BEGIN@@"; echo "init: $*"; finish 125; }

for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m.ko" || fail "insmod $m failed"
done

bdf=$(sed -n 's/.*vfpm\.bdf=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -z "$bdf" ]; then
    for d in /sys/bus/pci/devices/*; do
        b=${d##*/}
        case $b in ????:00:*) continue ;; esac
        case $(cat "$d/class") in 0x0604*) continue ;; esac
        [ -z "$bdf" ] || fail "more than one candidate device ($bdf, $b); pass vfpm.bdf="
        bdf=$b
    done
fi
[ -n "$bdf" ] || fail "no device under test found"
dev=/sys/bus/pci/devices/$bdf
[ -d "$dev" ] || fail "no such device $bdf"

echo vfio-pci > "$dev/driver_override" || fail "driver_override"
if [ -e "$dev/driver" ]; then
    echo "$bdf" > "$dev/driver/unbind" || fail "unbind"
fi
echo "$bdf" > /sys/bus/pci/drivers_probe || fail "drivers_probe"
drv=$(readlink "$dev/driver" 2>/dev/null)
[ "${drv##*/}" = vfio-pci ] || fail "$bdf did not bind to vfio-pci (driver: ${drv:-none})"

args=
[ -f /vfpm/args ] && args=$(cat /vfpm/args)
[ -x /vfpm/prog ] || fail "no /vfpm/prog"
export VFPM_BDF=$bdf
echo "@@VFPM-BEGIN@@"
# Word splitting on newlines only: one argument per line of /vfpm/args.
IFS='
'
set -- $args
unset IFS
/vfpm/prog "$@"
finish $?
