#!/usr/bin/env bash
# nvme-guest.sh — an NVMe controller driven by a Linux guest (QEMU 11.1, TCG):
# vfpm's (`vfpm serve --device nvme` over vfio-user) beside QEMU's built-in
# `-device nvme`, in one run. The same guest program (interop/guest-nvme.c,
# O_DIRECT, queue depth 1) measures sequential write and read in 1 MiB
# requests over 64 MiB and 4 KiB random write and read (fixed seed), each for
# SECONDS; every figure is printed for both controllers with the ratio
# vfpm / QEMU. TCG makes the absolute figures machine- and load-bound: read
# the ratios. Then, for vfpm's controller only, the `vfpm serve` process's CPU
# (utime + stime from /proc/PID/stat) with the nvme driver bound and idle,
# and with the function unbound and in D3hot, each measured over PHASE
# seconds and scaled to CPU seconds per idle minute.
#
#   bench/nvme-guest.sh BUILD [--seconds S] [--phase S] [--rounds N] [--md FILE]
#     --seconds  each bench run (default 3)
#     --phase    each CPU phase (default 5)
#     --rounds   guest runs per side, alternating QEMU, vfpm, QEMU, ... (default
#                1); each figure is then the median over the rounds
#     --md       also write the table there (bench/run.sh: bench/results/data/nvme-guest.md)
#
# The backing files are preallocated (fallocate), so that neither side pays
# for the host file system's block allocation during the runs.
#
# Until vfpm has an NVMe device (`vfpm serve --help` lists none), the vfpm
# side is skipped and said so; the QEMU side still runs. Needs root and an
# x86_64 host (interop/run-guest.sh); otherwise it says so and exits 0. Exits
# non-zero when a guest run fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:?usage: bench/nvme-guest.sh BUILD [--seconds S] [--phase S] [--rounds N] [--md FILE]}
shift
case $build in /*) ;; *) build=$PWD/$build ;; esac
seconds=3 phase=5 rounds=1 md=''
while (( $# )); do
    case $1 in
        --seconds) seconds=${2:?}; shift 2 ;;
        --phase)   phase=${2:?}; shift 2 ;;
        --rounds)  rounds=${2:?}; shift 2 ;;
        --md)      md=${2:?}; shift 2 ;;
        *) echo "nvme-guest: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ $seconds =~ ^[1-9][0-9]*$ && $phase =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] ||
    { echo "nvme-guest: --seconds, --phase and --rounds want whole numbers > 0" >&2; exit 2; }
log() { echo "nvme-guest: $*" >&2; }
results=$build/bench-nvme-guest
mkdir -p "$results"

write_md() {   # write_md TEXT...: the section for bench/results/README.md
    [[ -n $md ]] || return 0
    mkdir -p "$(dirname "$md")"
    printf '%s\n' "$@" > "$md"
}
header=(
    "## 7. NVMe under a Linux guest: vfpm vs QEMU's built-in controller"
    ""
    "bench/nvme-guest.sh: Linux 6.1 guest, QEMU 11.1 (TCG, 2 vCPUs), guest RAM a shared memfd; the guest's"
    "nvme driver on a 256 MiB preallocated backing file; interop/guest-nvme.c bench: O_DIRECT, queue"
    "depth 1, ${seconds} s per run; $rounds guest run(s) per side, alternating: the median of the rounds"
    "[min - max]."
    "TCG bounds every figure: compare the ratio, not the absolute numbers."
    ""
)
if (( EUID != 0 )) || [[ $(uname -m) != x86_64 ]]; then
    log "skipped: needs root and an x86_64 host (QEMU from interop/prepare-qemu.sh)"
    write_md "${header[@]}" "Skipped: needs root and an x86_64 host."
    exit 0
fi

# run_side NAME ARGS...: one guest run; its console log in $results/NAME.
# Returns run-guest.sh's status (77: skipped).
run_side() {
    local name=$1 rc=0; shift
    log "$name: interop/run-guest.sh $* ..."
    bash "$root/interop/run-guest.sh" --results "$results/$name" --memfd --log-level info --preallocate \
        --seconds "$seconds" --phase "$phase" -t $((180 + 8 * seconds + 4 * phase)) \
        "$@" "$build" > "$results/$name.log" 2>&1 || rc=$?
    tail -n 1 "$results/$name.log" | sed "s/^/nvme-guest: $name: /" >&2
    return "$rc"
}
# figure SIDE TEST: the median over the rounds of the guest's value for TEST
# ("" if none); spread SIDE TEST: " [min - max]" over the rounds (if more than one).
spread() {
    local r
    (( rounds > 1 )) || return 0
    for (( r = 1; r <= rounds; r++ )); do
        sed -n "s/^bench: test=$2 value=\\([0-9.]*\\) .*/\\1/p" "$results/$1-$r/console.log" 2>/dev/null
    done | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR > 1) printf " [%s - %s]", lo, hi }'
}
figure() {
    local r
    for (( r = 1; r <= rounds; r++ )); do
        sed -n "s/^bench: test=$2 value=\\([0-9.]*\\) .*/\\1/p" "$results/$1-$r/console.log" 2>/dev/null
    done | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

rm -rf "$results"/qemu-* "$results"/vfpm-*
qrc=0 vrc=0 vfpm_note=''
for (( r = 1; r <= rounds; r++ )); do
    run_side "qemu-$r" --qemu-nvme --nvme verify,bench || qrc=$?
    (( qrc )) && { log "the QEMU side FAILED (exit $qrc): see $results/qemu-$r.log"; break; }
    (( vrc == 77 )) && continue
    run_side "vfpm-$r" -d nvme --nvme verify,bench,d3hot || vrc=$?
    if (( vrc == 77 )); then
        vfpm_note="The vfpm side is skipped: vfpm has no nvme device yet (\`vfpm serve --help\` lists none)"
        log "$vfpm_note"
    elif (( vrc )); then
        vfpm_note="The vfpm side FAILED (exit $vrc): see $results/vfpm-$r.log"
        log "$vfpm_note"
        break
    fi
done

rows=()
for t in seq-write:MiB/s:"sequential write, 1 MiB" seq-read:MiB/s:"sequential read, 1 MiB" \
         rand-write-4k:IOPS:"random write, 4 KiB" rand-read-4k:IOPS:"random read, 4 KiB"; do
    IFS=: read -r test unit label <<<"$t"
    q=$(figure qemu "$test") v=''
    (( vrc == 0 )) && v=$(figure vfpm "$test")
    ratio=$(awk -v a="$v" -v b="$q" 'BEGIN { if (a != "" && b > 0) printf "%.2f", a / b; else print "-" }')
    qs=$(spread qemu "$test") vs=''
    [[ -n $v ]] && vs=$(spread vfpm "$test")
    rows+=("| $label ($unit) | ${q:--}$qs | ${v:--}$vs | $ratio |")
done
# The server's CPU per phase (run-guest.sh's cpu.txt: name, seconds, % of a
# core), from the last round.
cpu_rows=()
if (( vrc == 0 )) && [[ -s $results/vfpm-$rounds/cpu.txt ]]; then
    for p in bound-idle:"controller active: driver bound, idle" d3hot:"suspended: unbound, D3hot"; do
        IFS=: read -r name label <<<"$p"
        read -r secs pct < <(awk -v n="$name" '$1 == n { print $2, $4 }' "$results/vfpm-$rounds/cpu.txt")
        cpu_rows+=("| $label | ${secs:-?} s | ${pct:-?} % | $(awk -v p="${pct:-0}" 'BEGIN { printf "%.2f", 0.6 * p }') s |")
    done
fi

out=("${header[@]}"
     "| figure | QEMU built-in nvme | vfpm nvme | vfpm / QEMU |"
     "|---|---:|---:|---:|"
     "${rows[@]}"
     "")
if (( ${#cpu_rows[@]} )); then
    out+=("Host CPU of the \`vfpm serve\` process (utime + stime, /proc/PID/stat), measured over each"
          "phase and scaled to a minute:"
          ""
          "| vfpm's controller | measured over | % of a core | CPU per idle minute |"
          "|---|---:|---:|---:|"
          "${cpu_rows[@]}"
          "")
elif [[ -z $vfpm_note ]]; then
    out+=("Host CPU of the \`vfpm serve\` process per idle minute: not measured (no phases in $results/vfpm-$rounds)." "")
fi
[[ -n $vfpm_note ]] && out+=("$vfpm_note; so are the \`vfpm serve\` CPU figures per idle minute (bound vs D3hot)." "")
out+=("Guest logs: $results/{qemu,vfpm}-N/console.log (N: the round)."
      "")
printf '%s\n' "${out[@]}"
write_md "${out[@]}"
(( qrc == 0 )) && (( vrc == 0 || vrc == 77 ))
