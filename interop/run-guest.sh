#!/usr/bin/env bash
# run-guest.sh — boot Debian's Linux 6.1 (the conformance VM's kernel and
# busybox initramfs) under a stock QEMU >= 10.1 (prepare-qemu.sh's trixie
# chroot) with one of vfpm's devices attached through QEMU's own vfio-user
# client, and check from inside the guest that it works: it enumerates, its
# config space reads, BAR0 (mmap-able memory) keeps a pattern, BAR2's ID
# register reads "MEM0", and PMCSR goes to D3hot and back. Or an NVMe
# controller (vfpm's, or QEMU's built-in one for the baseline) under the
# guest's own nvme driver: the guest writes a pattern through /dev/nvme0n1
# and the host finds it in the backing file (guest-nvme.c, nvme-check.py).
#
#   run-guest.sh [options] [BUILD]     (BUILD: meson build dir, default build;
#                                       the server is BUILD/tools/vfpm)
#     -d, --device KIND   memory (default), optout, or poller: the guest puts the
#                         polling device in D3hot for --phase seconds between two
#                         D0 phases, and the server's CPU is measured in each;
#                         or nvme: `vfpm serve --device nvme --backing FILE`,
#                         driven by the guest's nvme driver (--nvme); the
#                         server's CPU is measured with the driver bound and
#                         idle, then unbound with the function in D3hot. Exit
#                         77 ("SKIP: ...") while `vfpm serve --help` lists no
#                         nvme device
#     --qemu-nvme         instead of vfpm's controller, QEMU's built-in
#                         -device nvme on a backing file of the same size
#                         (the baseline; no server)
#     --nvme MODES        what guest-nvme does, in order, commas between:
#                         verify, bench, d3hot (default verify,d3hot); after
#                         verify the host checks the backing file
#     --nvme-size MIB     the backing file's size (default 256, at least 160)
#     --block-size N      the namespace's logical block size, 512 or 4096
#                         (default: the controller's own)
#     --backing FILE      keep the backing file there (default: a temporary one)
#     --preallocate       allocate the backing file's blocks first (fallocate;
#                         default sparse): for steadier bench figures
#     --seconds SEC       nvme bench: length of each of its four runs (default 3)
#     --phase SEC         poller, nvme d3hot: length of each phase (default 3)
#     -t, --timeout SEC   limit for the VM run (default 120)
#     --trace             put vfio-user-trace.py between QEMU and the server
#                         and log every message (RESULTS/trace.log)
#     --memfd             guest RAM as a shared memfd (QEMU can then hand the
#                         server fds in DMA_MAP)
#     --guest-vfio        then bind the device to the guest's vfio-pci (adds an
#                         intel-iommu) and wait for the guest kernel to
#                         runtime-suspend it into D3hot
#     --guest-msix        with --guest-vfio (implied): open the bound device
#                         through the guest's VFIO group API and check that
#                         the doorbell fires exactly the right eventfd for
#                         each MSI-X vector, and INTx; MAP_DMA (guest-vfio.c);
#                         with --trace, also that the guest's MAP_DMA reached
#                         the server as DMA_MAP
#     --dma               memory: the device's DMA engine copies a page of the
#                         guest's RAM into BAR0 and back (with --memfd through the
#                         server's mapping, else over the main socket)
#     --nointxmask        load the guest's vfio-pci with nointxmask=1 (INTx
#                         masked at the interrupt controller, not through
#                         COMMAND.INTx_Disable + STATUS.Interrupt_Status)
#     --ktrace            with --guest-vfio (implied): trace the guest's PCI PM
#                         calls, PMCSR writes (with stacks) and rpm events
#                         through the bind and print them (tracefs, kprobes)
#     --d3-bar0           last, touch BAR0 through its mapping in D3hot (the
#                         server revokes the memory; QEMU 11.1 disables the
#                         BAR first, so the guest reads 0)
#     --no-d3hot          leave out the guest's own PMCSR writes (D3hot, D0)
#     --log-level LEVEL   the server's (default debug)
#     --results DIR       where the logs stay (default BUILD/interop-results)
#
# Output: each step with its time, the guest's lines, QEMU's own messages,
# the server's warnings, then "run-guest: PASS ..." or "run-guest: FAIL ...".
# Exit 0 pass, 1 a check failed, 124 timeout, 125 could not run, 77 skipped
# (-d nvme before vfpm has an NVMe controller).
# Environment: VFPM_QEMU_CACHE (prepare-qemu.sh), VFPM_VM_CACHE
# (conformance/vm/prepare.sh), VFPM_QEMU_EXTRA (more QEMU arguments, split
# on spaces; e.g. "-trace vfio_pci_write_config" prints to RESULTS/qemu.out),
# VFPM_GUEST_APPEND (more guest kernel command line).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
log() { echo "run-guest: $*" >&2; }
die() { echo "run-guest: FAIL: $*" >&2; exit 125; }

device=memory timeout_s=120 trace=0 memfd=0 guest_vfio=0 d3_bar0=0 d3hot=1 phase_s=3 ktrace=0 guest_msix=0 nointxmask=0 dma=0
log_level=debug results=
qemu_nvme=0 nvme_modes=verify,d3hot nvme_size_mib=256 block_size='' backing='' bench_s=3 prealloc=0
while (( $# )); do
    case $1 in
        -d|--device)  device=${2:?}; shift 2 ;;
        -t|--timeout) timeout_s=${2:?}; shift 2 ;;
        --trace)      trace=1; shift ;;
        --memfd)      memfd=1; shift ;;
        --guest-vfio) guest_vfio=1; shift ;;
        --d3-bar0)    d3_bar0=1; shift ;;
        --ktrace)     ktrace=1; guest_vfio=1; shift ;;
        --guest-msix) guest_msix=1; guest_vfio=1; shift ;;
        --nointxmask) nointxmask=1; shift ;;
        --dma)        dma=1; shift ;;
        --no-d3hot)   d3hot=0; shift ;;
        --log-level)  log_level=${2:?}; shift 2 ;;
        --results)    results=${2:?}; shift 2 ;;
        --phase)      phase_s=${2:?}; shift 2 ;;
        --qemu-nvme)  qemu_nvme=1; device=nvme; shift ;;
        --nvme)       nvme_modes=${2:?}; shift 2 ;;
        --nvme-size)  nvme_size_mib=${2:?}; shift 2 ;;
        --block-size) block_size=${2:?}; shift 2 ;;
        --backing)    backing=${2:?}; shift 2 ;;
        --preallocate) prealloc=1; shift ;;
        --seconds)    bench_s=${2:?}; shift 2 ;;
        -h|--help)    sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        -*)           die "unknown option $1" ;;
        *)            break ;;
    esac
done
build=$(cd "${1:-$repo/build}" 2>/dev/null && pwd) || die "no build dir ${1:-$repo/build}"
vfpm=$build/tools/vfpm
[[ -x $vfpm ]] || die "no $vfpm (build first: ninja -C $build)"
case $device in
    memory) dev_id=1b36:00f0 ;;
    optout) dev_id=1b36:00f1 ;;
    poller) dev_id=1b36:00f2 ;;
    nvme)   dev_id='' ;;   # found by its class (010802) in the guest
    *) die "unknown device '$device' (memory, optout, poller, nvme)" ;;
esac
if [[ $device == nvme ]]; then
    [[ $nvme_modes =~ ^(verify|bench|d3hot)(,(verify|bench|d3hot))*$ ]] \
        || die "--nvme wants verify, bench and/or d3hot with commas, not '$nvme_modes'"
    if ! [[ $nvme_size_mib =~ ^[0-9]+$ ]] || (( nvme_size_mib < 160 )); then
        die "--nvme-size wants MiB, at least 160 (not '$nvme_size_mib')"
    fi
    [[ -z $block_size || $block_size == 512 || $block_size == 4096 ]] \
        || die "--block-size wants 512 or 4096, not '$block_size'"
    # Until vfpm serves an NVMe controller, its case is skipped, not failed.
    if (( ! qemu_nvme )) && ! "$vfpm" serve --help 2>&1 | grep -qiw nvme; then
        echo "run-guest: SKIP: vfpm has no nvme device yet (\`vfpm serve --help\` lists none)"
        exit 77
    fi
fi
results=${results:-$build/interop-results}
mkdir -p "$results"
results=$(cd "$results" && pwd)

seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
timed() {   # timed NAME CMD...: run CMD, print how long it took
    local name=$1 t0 rc=0; shift
    t0=$(date +%s.%N)
    "$@" || rc=$?
    log "$name: $(seconds_since "$t0") s"
    return "$rc"
}

# ---------------------------------------------------------------- preparing
qemu_out=$(timed "prepare-qemu" bash "$here/prepare-qemu.sh") || die "prepare-qemu.sh failed"
qemu_cache=$(tail -n 1 <<<"$qemu_out")
qemu_version=$(tail -n 2 <<<"$qemu_out" | head -n 1)
export VFPM_QEMU_CACHE=$qemu_cache
vm_cache=$(timed "prepare-vm (conformance/vm/prepare.sh)" bash "$repo/conformance/vm/prepare.sh" \
    | tail -n 1) || die "conformance/vm/prepare.sh failed"
kpkg=$(cat "$vm_cache/kpkg") || die "$vm_cache not prepared"
kver=${kpkg#linux-image-}
kdir=$vm_cache/$kver
base=$vm_cache/base-$kver.cpio.gz
[[ -f $base ]] || die "no base initramfs $base"

work=$(mktemp -d "${TMPDIR:-/tmp}/vfpm-interop.XXXXXX")
server_pid='' proxy_pid=''
# shellcheck disable=SC2317  # called by the trap
cleanup() {
    local pid
    for pid in $proxy_pid $server_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# The guest's files go in a second archive appended to the conformance VM's
# base one (busybox, the VFIO modules); rdinit= picks our init.
t0=$(date +%s.%N)
mkdir -p "$work/root/interop"
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -static -o "$work/root/interop/guest-check" \
    "$here/guest-check.c" || die "building guest-check failed"
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -static -o "$work/root/interop/guest-vfio" \
    "$here/guest-vfio.c" || die "building guest-vfio failed"
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -static -o "$work/root/interop/guest-nvme" \
    "$here/guest-nvme.c" || die "building guest-nvme failed"
install -m 755 "$here/guest-init.sh" "$work/root/interop/init"
( cd "$work/root" && find interop | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) \
    | gzip -1 > "$work/interop.cpio.gz"
cat "$base" "$work/interop.cpio.gz" > "$work/initrd"
log "guest programs and initramfs: $(seconds_since "$t0") s"

# ---------------------------------------------------------------- the server
# The NVMe controller's backing file: fresh, sparse, in a folder QEMU sees.
binds=(--bind "$work" --bind "$kdir")
backing_file=''
nvme_size=$((nvme_size_mib * 1024 * 1024))
if [[ $device == nvme ]]; then
    backing_file=${backing:-$work/nvme.img}
    mkdir -p "$(dirname "$backing_file")"
    backing_file=$(cd "$(dirname "$backing_file")" && pwd)/$(basename "$backing_file")
    rm -f "$backing_file"
    truncate -s "$nvme_size" "$backing_file" || die "cannot make $backing_file"
    if (( prealloc )); then
        fallocate -l "$nvme_size" "$backing_file" 2>/dev/null \
            || log "fallocate $backing_file failed: it stays sparse"
    fi
    [[ $(dirname "$backing_file") == "$work" ]] || binds+=(--bind "$(dirname "$backing_file")")
fi
sockdir=$work/sock
mkdir -p "$sockdir"
server_sock=$sockdir/$device.sock
: > "$results/vfpm.log"
if (( ! qemu_nvme )); then
    dev_opts=(--device "$device")
    [[ $device == nvme ]] && dev_opts+=(--backing "$backing_file")
    [[ $device == nvme && -n $block_size ]] && dev_opts+=(--block-size "$block_size")
    "$vfpm" serve "${dev_opts[@]}" --socket "$server_sock" --log-level "$log_level" \
        --ready-file "$work/ready" 2>"$results/vfpm.log" &
    server_pid=$!
    for _ in $(seq 100); do [[ -f $work/ready ]] && break; sleep 0.05; done
    [[ -f $work/ready ]] || die "vfpm serve did not get ready (log: $results/vfpm.log)"
fi
qemu_sock=$server_sock
: > "$results/trace.log"
if (( trace && ! qemu_nvme )); then
    qemu_sock=$sockdir/trace.sock
    python3 "$here/vfio-user-trace.py" --listen "$qemu_sock" --connect "$server_sock" \
        --log "$results/trace.log" 2>"$results/trace.err" &
    proxy_pid=$!
    for _ in $(seq 100); do [[ -S $qemu_sock ]] && break; sleep 0.05; done
    [[ -S $qemu_sock ]] || die "the trace proxy did not start ($(cat "$results/trace.err"))"
fi

# ---------------------------------------------------------------- the VM
guest_args=$dev_id
[[ $device == poller ]] && guest_args+=",--poller-act,$phase_s"
(( dma )) && guest_args+=",--dma"
(( d3_bar0 )) && guest_args+=",--d3-bar0"
(( d3hot )) || guest_args+=",--no-d3hot"
# no_timer_check: under TCG on a busy host the IO-APIC timer test can fail.
append="console=ttyS0 quiet panic=-1 no_timer_check rdinit=/interop/init interop.args=$guest_args"
(( guest_vfio )) && append+=" intel_iommu=on interop.vfio=1"
(( guest_msix )) && append+=" interop.msix=1"
(( nointxmask )) && append+=" interop.nointxmask=1"
(( ktrace )) && append+=" interop.ktrace=1 tp_printk"
if [[ $device == nvme ]]; then
    append+=" interop.nvme=$nvme_modes"
    append+=" interop.nvmeargs=--size,$nvme_size,--seconds,$bench_s,--phase,$phase_s"
fi
# More kernel command line (e.g. 'dyndbg="file drivers/pci/* +p"').
[[ -n ${VFPM_GUEST_APPEND:-} ]] && append+=" $VFPM_GUEST_APPEND"
if [[ -f $kdir/vmlinux ]]; then
    # PVH boot of the uncompressed kernel: the fastest under TCG.
    bootargs=(-bios /usr/share/qemu/qboot.rom -kernel "$kdir/vmlinux")
else
    bootargs=(-kernel "$kdir/bzImage")
fi
# shellcheck disable=SC2054  # the commas are QEMU's
machine=(-M q35 -m 512)
# shellcheck disable=SC2054
if (( memfd )); then
    machine=(-M q35,memory-backend=ram0 -m 512
             -object memory-backend-memfd,id=ram0,size=512M,share=on)
fi
iommu=()
# shellcheck disable=SC2054
(( guest_vfio )) && iommu=(-device intel-iommu,caching-mode=on)
vfio_user_dev='{"driver":"vfio-user-pci","socket":{"path":"'$qemu_sock'","type":"unix"},"bus":"rp1"}'
dev_args=(-device "$vfio_user_dev")
if (( qemu_nvme )); then
    # QEMU's own controller on the same kind of backing file.
    bs_props=''
    [[ -n $block_size ]] && bs_props=",logical_block_size=$block_size,physical_block_size=$block_size"
    # shellcheck disable=SC2054  # the commas are QEMU's
    dev_args=(-drive "file=$backing_file,if=none,id=nvm0,format=raw"
              -device "nvme,serial=vfpm-baseline,drive=nvm0,bus=rp1$bs_props")
fi
# shellcheck disable=SC2054
qemu_args=(
    "${machine[@]}" -accel tcg -cpu max -smp 2
    -nodefaults -display none -no-user-config -no-reboot
    -serial "file:$work/console.log" -monitor none
    "${bootargs[@]}" -initrd "$work/initrd" -append "$append"
    "${iommu[@]}"
    -device pcie-root-port,id=rp1,chassis=1,slot=1
    "${dev_args[@]}"
)
# Extra QEMU arguments, split on spaces (e.g. "-trace vfio_pci_write_config").
read -r -a extra <<<"${VFPM_QEMU_EXTRA:-}"
qemu_args+=("${extra[@]}")
printf '%q ' "$here/qemu.sh" "${binds[@]}" "${qemu_args[@]}" > "$results/qemu.cmd"
echo >> "$results/qemu.cmd"
# The server's CPU time at each @@PHASE NAME@@ line of the guest's console
# (utime + stime of the whole process, in clock ticks).
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
sample_phases() {
    local seen=0 line name
    while kill -0 "$server_pid" 2>/dev/null; do
        mapfile -t marks < <(grep -a -o '@@PHASE [a-z0-9-]*@@' "$work/console.log" 2>/dev/null)
        while (( seen < ${#marks[@]} )); do
            line=${marks[seen]}; name=${line#@@PHASE }; name=${name%@@}
            echo "$name $(date +%s.%N) $(cpu_ticks "$server_pid")"
            seen=$((seen + 1))
        done
        (( ${#marks[@]} )) && [[ ${marks[-1]} == '@@PHASE end@@' ]] && break
        sleep 0.05
    done > "$results/phases.txt"
}
sampler_pid=''
: > "$results/phases.txt"
# The server's CPU per phase: the poller's act, and vfpm's NVMe controller
# (bound and idle, then in D3hot).
measure_cpu=0
[[ $device == poller ]] && measure_cpu=1
[[ $device == nvme && $nvme_modes == *d3hot* ]] && (( ! qemu_nvme )) && measure_cpu=1
if (( measure_cpu )); then
    : > "$work/console.log"
    sample_phases &
    sampler_pid=$!
fi
t0=$(date +%s.%N)
set +e
VFPM_QEMU_SKIP_PREPARE=1 timeout --kill-after=5 "$timeout_s" \
    bash "$here/qemu.sh" "${binds[@]}" "${qemu_args[@]}" \
    </dev/null >"$results/qemu.out" 2>&1
qrc=$?
set -e
boot_s=$(seconds_since "$t0")
log "VM run (boot, checks, power-off): $boot_s s, qemu exit $qrc"

if [[ -n $sampler_pid ]]; then
    for _ in $(seq 40); do kill -0 "$sampler_pid" 2>/dev/null || break; sleep 0.05; done
    kill "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
fi

# Stop the proxy and the server now, so that their logs are complete. The
# proxy first gets to pass on what QEMU sent before it exited.
if [[ -n $proxy_pid ]]; then
    for _ in $(seq 40); do grep -q 'conn [0-9]*: closed' "$results/trace.log" && break; sleep 0.05; done
fi
for pid in $proxy_pid $server_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
proxy_pid='' server_pid=''
tr -d '\r' < "$work/console.log" > "$results/console.log" 2>/dev/null || : > "$results/console.log"

# ---------------------------------------------------------------- report
echo "== guest (Linux $kver under $qemu_version, TCG) =="
sed -n '/^@@INTEROP-BEGIN@@/,/^@@INTEROP-END/p' "$results/console.log" | sed '1d;/^@@INTEROP-END/d'
echo "== QEMU's messages (stdout and stderr) =="
if [[ -s $results/qemu.out ]]; then cat "$results/qemu.out"; else echo "(none)"; fi
echo "== the server's warnings, errors and refused requests (at most 40 lines) =="
n=$(grep -ciE 'warn|error|refused' "$results/vfpm.log" || true)
if (( qemu_nvme )); then
    echo "(no server: QEMU's built-in NVMe controller)"
elif (( n )); then
    # awk, not head: head would leave grep to die of SIGPIPE, and pipefail
    # + set -e with it.
    grep -iE 'warn|error|refused' "$results/vfpm.log" | awk 'NR <= 40'
    (( n > 40 )) && echo "... $n in all"
else
    echo "(none)"
fi
if (( trace )); then
    echo "== vfio-user messages from QEMU (by command; every message in $results/trace.log) =="
    awk '$2 == "c>s" { n[$4]++ } END { for (c in n) printf "  %-24s %d\n", c, n[c] }' \
        "$results/trace.log" | sort
fi

# The guest's VFIO_IOMMU_MAP_DMA (guest-vfio.c: 64 KiB at IOVA 0x10000000),
# through its intel-iommu (caching-mode: QEMU replays each new IOTLB entry),
# should reach the server as DMA_MAP messages covering the whole buffer.
dma_check=''
if (( guest_msix && trace )) && grep -q '^check: dma-map: ok' "$results/console.log"; then
    dma_line=$(python3 - "$results/trace.log" <<'PY'
import re, sys
lo, hi = 0x10000000, 0x10000000 + 64 * 1024
maps, unmaps, errors, covered = {}, 0, 0, set()
for line in open(sys.argv[1], errors="replace"):
    f = line.split()
    if len(f) < 5 or f[3] not in ("DMA_MAP", "DMA_UNMAP") or not f[2].startswith("id="):
        continue
    mid = int(f[2][3:])
    win = re.search(r" addr (0x[0-9a-f]+) size (0x[0-9a-f]+)", line)
    if f[1] == "c>s" and win:
        addr, size = int(win.group(1), 16), int(win.group(2), 16)
        if lo <= addr < hi:
            if f[3] == "DMA_MAP":
                maps[mid] = (addr, size)
                covered.update(range(addr, min(addr + size, hi), 4096))
            else:
                unmaps += 1
    elif f[1] == "s>c" and f[3] == "DMA_MAP" and mid in maps and "ERROR" in f[4]:
        errors += 1
ok = len(covered) == 16 and errors == 0
print("%s (%d DMA_MAP covering %d of 16 pages at 0x10000000, %d refused; %d DMA_UNMAP)"
      % ("ok" if ok else "FAIL", len(maps), len(covered), errors, unmaps))
PY
)
    echo "check: dma-map-reached-server: $dma_line"
    dma_check=${dma_line%% *}
fi

# The server's CPU in each phase: % of one core (and CPU seconds per minute at
# that rate), from the phase marks.
cpu_check=''
if (( measure_cpu )); then
    if [[ $device == poller ]]; then
        echo "== the server's CPU while the guest holds the polling device in each state =="
    else
        echo "== the server's CPU with the NVMe controller bound and idle, then unbound in D3hot =="
    fi
    hz=$(getconf CLK_TCK)
    awk -v hz="$hz" 'prev { pct = 100 * ($3 - pc) / hz / ($2 - pt)
                            printf "  %-10s %5.1f s  %6.1f %% of a core  (%.2f CPU s per minute)\n",
                                   pname, $2 - pt, pct, 0.6 * pct }
                     { pname = $1; pt = $2; pc = $3; prev = 1 }' "$results/phases.txt" \
        | tee "$results/cpu.txt"
    d3=$(awk '$1 == "d3hot" { print $4 }' "$results/cpu.txt")
    if [[ $device == poller ]]; then
        d0=$(awk '$1 == "d0" { print $4 }' "$results/cpu.txt")
        if [[ -n $d0 && -n $d3 ]] && awk -v a="$d3" -v b="$d0" 'BEGIN { exit !(a < 0.5 * b) }'; then
            cpu_check=ok
            echo "check: poller-cpu-falls-in-d3hot: ok (D3hot $d3 % < half of D0 $d0 %)"
        else
            cpu_check=FAIL
            echo "check: poller-cpu-falls-in-d3hot: FAIL (D0 '${d0:-?}' %, D3hot '${d3:-?}' %)"
        fi
    else
        # A controller that polls its queues must stop in D3hot (below half
        # of its idle cost); one that sleeps between doorbells has little to
        # save, but must not spend more than 5 % of a core there either.
        idle=$(awk '$1 == "bound-idle" { print $4 }' "$results/cpu.txt")
        if [[ -n $idle && -n $d3 ]] &&
           awk -v a="$d3" -v b="$idle" 'BEGIN { exit !(a < 0.5 * b || a < 5) }'; then
            cpu_check=ok
            echo "check: nvme-cpu-in-d3hot: ok (D3hot $d3 %, bound and idle $idle %)"
        else
            cpu_check=FAIL
            echo "check: nvme-cpu-in-d3hot: FAIL (bound and idle '${idle:-?}' %, D3hot" \
                 "'${d3:-?}' %: wants below 5 % or below half)"
        fi
    fi
fi

# The NVMe controller's backing file holds the guest's pattern where the
# guest wrote it (guest-nvme verify's nvme-pattern lines).
nvme_check=''
if [[ $device == nvme && $nvme_modes == *verify* ]]; then
    nvme_line=$(python3 "$here/nvme-check.py" --size "$nvme_size" "$backing_file" \
        "$results/console.log") || true
    echo "check: nvme-backing-file: ${nvme_line:-FAIL (nvme-check.py said nothing)}"
    nvme_check=${nvme_line%% *}
    [[ $nvme_check == ok ]] || nvme_check=FAIL
fi

endline=$(grep -a -m1 '^@@INTEROP-END rc=[0-9]*@@' "$results/console.log" || true)
what=$device
(( qemu_nvme )) && what=qemu-nvme
summary="device=$what qemu=\"$qemu_version\" kernel=$kver vm=${boot_s}s logs=$results"
if (( qrc == 124 || qrc == 137 )); then
    tail -n 30 "$results/console.log" >&2
    echo "run-guest: FAIL: timed out after ${timeout_s}s ($summary)"; exit 124
fi
if [[ -z $endline ]]; then
    tail -n 30 "$results/console.log" >&2
    echo "run-guest: FAIL: the guest did not finish its checks, qemu exit $qrc ($summary)"; exit 1
fi
rc=${endline#@@INTEROP-END rc=}; rc=${rc%@@}
failed=$(grep -c '^check: .*: FAIL' "$results/console.log" || true)
passed=$(grep -c '^check: .*: ok' "$results/console.log" || true)
[[ $cpu_check == FAIL ]] && failed=$((failed + 1))
[[ $cpu_check == ok ]] && passed=$((passed + 1))
[[ $dma_check == FAIL ]] && failed=$((failed + 1))
[[ $dma_check == ok ]] && passed=$((passed + 1))
[[ $nvme_check == FAIL ]] && failed=$((failed + 1))
[[ $nvme_check == ok ]] && passed=$((passed + 1))
if (( rc == 0 && failed == 0 && passed > 0 )); then
    echo "run-guest: PASS: $passed checks ($summary)"
    exit 0
fi
echo "run-guest: FAIL: $failed of $((passed + failed)) checks failed, guest rc $rc ($summary)"
exit 1
