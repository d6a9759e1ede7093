#!/usr/bin/env bash
# run.sh — the interop test of `make test`: vfpm's devices under a stock
# QEMU 11 (trixie-backports, prepare-qemu.sh) with Debian's Linux 6.1 guest
# (run-guest.sh), one VM boot per case:
#   memory         enumeration, config space, BAR0 through QEMU's mmap of our
#                  fd, BAR2 trapped (REGION_READ/WRITE), DMA by the device into
#                  guest RAM and out (DMA_READ/DMA_WRITE on the main socket),
#                  PMCSR D3hot and back
#   memory-memfd   the same with guest RAM as a shared memfd (DMA_MAP with
#                  fds: the DMA goes through the server's mapping)
#   poller         the guest holds the polling device in D0, D3hot, D0: the
#                  server's CPU in each phase, D3hot below half of D0
#   memory-vfio-msix  the memory device bound to the guest's vfio-pci (under
#                  an intel-iommu): runtime-suspended to D3hot; opened through
#                  the VFIO group API, each MSI-X vector's doorbell fires
#                  exactly its eventfd, INTx fires (vfio-pci's default PCI 2.3
#                  masking: STATUS.Interrupt_Status and COMMAND.INTX_DISABLE),
#                  MAP_DMA reaches the server as DMA_MAP; D3hot again after
#                  close
#   nvme-qemu      the NVMe guest side against QEMU's built-in controller (the
#                  baseline): Linux's nvme driver binds, /dev/nvme0n1 has the
#                  backing file's size, a pattern written and read back with
#                  O_DIRECT is in the backing file where the guest wrote it;
#                  unbound, D3hot, D0, bound again, the pattern still reads
#   nvme           the same with vfpm's NVMe controller over vfio-user, and
#                  the server's CPU bound and idle, then in D3hot; skipped
#                  ("SKIP: vfpm has no nvme device yet") while `vfpm serve
#                  --help` lists no nvme device
# Prints each case's PASS/FAIL/SKIP line and "N passed, M failed, K skipped".
#
#   run.sh BUILD [--from-meson]
# Exit 0 all passed, 1 a case failed, 77 (skipped) when this machine cannot
# run QEMU (not x86_64, or the chroot cannot be prepared) outside CI; with
# CI=true that is a failure too.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(cd "${1:?usage: run.sh BUILD}" && pwd)
results=$build/interop-results

cannot_run() {
    echo "interop: cannot run: $*"
    if [[ ${CI:-} == true ]]; then
        echo "interop: CI=true: that is a failure"
        exit 1
    fi
    exit 77
}

[[ $(uname -m) == x86_64 ]] || cannot_run "needs an x86_64 host"
bash "$here/prepare-qemu.sh" > "$build/interop-prepare.log" 2>&1 ||
    cannot_run "prepare-qemu.sh failed: $(tail -n 3 "$build/interop-prepare.log")"

passed=0 failed=0 skipped=0
run_case() {   # run_case NAME ARGS...
    local name=$1 out rc; shift
    out=$(bash "$here/run-guest.sh" --results "$results/$name" "$@" "$build" 2>&1)
    rc=$?
    echo "$out" > "$results/$name.log"
    if (( rc == 77 )); then   # run-guest.sh: "run-guest: SKIP: why"
        echo "interop: $name: $(grep -m1 -o 'SKIP: .*' <<<"$out" || echo SKIP)"
        skipped=$((skipped + 1))
        return
    fi
    # The case's figures, if any, and its verdict.
    sed -n '/^== the server.s CPU/,/^check: [a-z]*-cpu-/p' <<<"$out"
    grep '^check: nvme-backing-file' <<<"$out"
    echo "interop: $name: $(tail -n 1 <<<"$out")"
    if (( rc == 0 )); then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "interop: $name: full output in $results/$name.log"
        tail -n 40 <<<"$out" | sed 's/^/  /'
    fi
}

mkdir -p "$results"
run_case memory -d memory --dma
run_case memory-memfd -d memory --memfd --dma
run_case poller -d poller
run_case memory-vfio-msix -d memory --guest-msix --trace
run_case nvme-qemu --qemu-nvme --memfd
run_case nvme -d nvme --memfd
echo "interop: $passed passed, $failed failed, $skipped skipped"
(( failed == 0 ))
