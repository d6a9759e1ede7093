#!/bin/sh
# /interop/init of the interop guest (busybox sh; the kernel runs it through
# rdinit=/interop/init, so the conformance VM's /init in the same initramfs
# is left alone). Runs /interop/guest-check against the vfio-user device and
# powers off. Its output is framed for run-guest.sh:
#   @@INTEROP-BEGIN@@ ... @@INTEROP-END rc=N@@
# Kernel command line options read here:
#   interop.args=A,B,...  arguments for guest-check (commas for spaces)
#   interop.nvme=M,M...   instead of guest-check: load the NVMe driver
#                         (/lib/modules/nvme/, from conformance/vm/prepare.sh)
#                         and run /interop/guest-nvme with these modes
#                         (verify, bench, d3hot)
#   interop.nvmeargs=A,B  guest-nvme's options (e.g. --size,268435456)
#   interop.vfio=1        afterwards, bind the device to the guest's vfio-pci
#                         (needs the VM's intel-iommu) and wait for the
#                         guest kernel to runtime-suspend it into D3hot
#   interop.msix=1        with interop.vfio=1: then run /interop/guest-vfio
#                         (MSI-X and INTx through the VFIO group API) and
#                         wait for the device to be suspended again
#   interop.vfioargs=A,B  more arguments for guest-vfio (e.g. --rounds,10)
#   interop.nointxmask=1  load vfio-pci with nointxmask=1
#   interop.ktrace=1      with interop.vfio=1: trace the guest kernel's PCI PM
#                         through the bind (tracefs kprobes) and print it;
#                         with tp_printk on the command line, the events from
#                         then to the power-off go to the console too
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

# interop.ktrace=1: the guest kernel's own account of the bind and of its
# runtime PM, through tracefs (kprobes on the PCI PM functions, a stack trace
# for each PMCSR write, the rpm events), printed after the vfio step.
T=/sys/kernel/tracing
ktrace_start() {
    mount -t tracefs nodev $T 2>/dev/null
    echo 0 > $T/tracing_on
    echo 4096 > $T/buffer_size_kb
    # shellcheck disable=SC2016  # $retval is tracefs syntax, not the shell's
    for p in \
        'p:pss pci_set_power_state state=%si:s32' \
        'r:pss_ret pci_set_power_state ret=$retval:s32' \
        'p:pup pci_power_up' \
        'r:pup_ret pci_power_up ret=$retval:s32' \
        'p:pfrs pci_pm_runtime_suspend' \
        'r:pfrs_ret pci_pm_runtime_suspend ret=$retval:s32' \
        'p:pfrr pci_pm_runtime_resume' \
        'p:psave pci_save_state' \
        'p:prest pci_restore_state' \
        'p:vsps vfio_pci_core:vfio_pci_set_power_state state=%si:s32' \
        'p:vrs vfio_pci_core:vfio_pci_core_runtime_suspend' \
        'p:vrr vfio_pci_core:vfio_pci_core_runtime_resume' \
        'p:cfgw pci_bus_write_config_word devfn=%si:x32 where=%dx:x32 val=%cx:x16' \
        'p:cfgr pci_bus_read_config_word devfn=%si:x32 where=%dx:x32' \
        'p:pshut pci_device_shutdown'; do
        echo "$p" >> $T/kprobe_events 2>/dev/null || echo "  ktrace: cannot add '$p'"
    done
    # where: PMCSR (0x44) and the PCIe capability (0x54..)
    echo 'stacktrace if where == 0x44' > $T/events/kprobes/cfgw/trigger 2>/dev/null
    echo 'where == 0x44' > $T/events/kprobes/cfgr/filter 2>/dev/null
    echo 1 > $T/events/kprobes/enable
    echo 1 > $T/events/rpm/enable 2>/dev/null
    echo 1 > $T/tracing_on
}
ktrace_dump() {
    echo 0 > $T/tracing_on
    echo "  ktrace: ---- begin"
    grep -v '^#' $T/trace | sed 's/^/  ktrace: /'
    echo "  ktrace: ---- end"
    # From here to the power-off (device_shutdown), every event goes to the
    # console as it happens.
    echo 1 > $T/tracing_on
    echo 1 > /proc/sys/kernel/tracepoint_printk   # needs tp_printk on the command line
    echo 8 > /proc/sys/kernel/printk
    echo "  ktrace: events printed from now on"
}

cmdline_opt() { sed -n "s/.*$1=\\([^ ]*\\).*/\\1/p" /proc/cmdline; }

echo "@@INTEROP-BEGIN@@"
echo "guest: Linux $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpus"

# interop.nvme: the NVMe controller under Linux's own nvme driver.
nvme_modes=$(cmdline_opt interop.nvme | tr ',' ' ')
if [ -n "$nvme_modes" ]; then
    rc=0
    if [ -d /sys/bus/pci/drivers/nvme ]; then
        echo "  nvme driver built in"
    elif [ -s /lib/modules/nvme/order ]; then
        # shellcheck disable=SC2013  # one module name per line, no spaces
        for m in $(cat /lib/modules/nvme/order); do
            insmod "/lib/modules/nvme/$m.ko" || { echo "  insmod $m failed"; rc=1; }
        done
        echo "  loaded $(tr '\n' ' ' < /lib/modules/nvme/order)"
    else
        echo "  no nvme driver: not built in and no /lib/modules/nvme/order" \
             "(conformance/vm/prepare.sh too old?)"
        rc=1
    fi
    if [ -d /sys/bus/pci/drivers/nvme ]; then
        echo "check: nvme-driver: ok"
    else
        echo "check: nvme-driver: FAIL (no /sys/bus/pci/drivers/nvme)"; finish 1
    fi
    nargs=$(cmdline_opt interop.nvmeargs | tr ',' ' ')
    # shellcheck disable=SC2086  # one word per argument, by design
    /interop/guest-nvme $nargs $nvme_modes || rc=1
    finish "$rc"
fi

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
    # interop.nointxmask=1: vfio-pci masks INTx at the interrupt controller
    # instead of with COMMAND's Interrupt Disable bit (PCI 2.3 masking, whose
    # handler claims an interrupt only when STATUS's Interrupt Status is set).
    params=
    [ "$(cmdline_opt interop.nointxmask)" = 1 ] && params=nointxmask=1
    # shellcheck disable=SC2013  # one module name per line, no spaces
    for m in $(cat /lib/modules/order); do
        if [ "$m" = vfio-pci ]; then
            # shellcheck disable=SC2086  # no parameter: no argument
            insmod "/lib/modules/$m.ko" $params || { echo "  insmod $m failed"; ok=0; }
        else
            insmod "/lib/modules/$m.ko" || { echo "  insmod $m failed"; ok=0; }
        fi
    done
    [ -n "$params" ] && echo "  vfio-pci $params"
    [ "$(cmdline_opt interop.ktrace)" = 1 ] && ktrace_start
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
    # interop.msix=1: open the device through the VFIO group API and check
    # MSI-X (and INTx) end to end (guest-vfio), then that the guest kernel
    # suspends it again once the program has closed it.
    if [ "$(cmdline_opt interop.msix)" = 1 ] && [ $ok = 1 ]; then
        vargs=$(cmdline_opt interop.vfioargs | tr ',' ' ')
        # shellcheck disable=SC2086  # one word per argument, by design
        /interop/guest-vfio $vargs "$bdf" || rc=1
        status='?' i=0
        while [ $i -lt 50 ]; do
            status=$(cat "$dev/power/runtime_status")
            [ "$status" = suspended ] && break
            sleep 0.1; i=$((i + 1))
        done
        state=$(cat "$dev/power_state" 2>/dev/null || echo ?)
        if [ "$status" = suspended ] && [ "$state" = D3hot ]; then
            echo "check: vfio-runtime-d3hot-after-close: ok (after $((i * 100)) ms)"
        else
            echo "check: vfio-runtime-d3hot-after-close: FAIL (runtime_status $status," \
                 "power_state $state)"; rc=1
        fi
    fi
    [ "$(cmdline_opt interop.ktrace)" = 1 ] && ktrace_dump
fi
finish "$rc"
