#!/usr/bin/env bash
# run.sh BUILD [--from-meson] — the conformance scenarios (scenarios.txt)
# against vfpm (the memory device served by BUILD/tools/vfpm) and against
# Linux 6.1 vfio-pci in QEMU (one boot per device type, all scenarios per
# boot), then one side-by-side table: scenario, step, each kernel's result,
# vfpm's result, match.
#
# Exit status: 0 when every step matched (or differs for a reason its
# scenario states) and met its expectation; 1 otherwise; 2 when vfpm's part
# could not run.  --from-meson (the meson test): 77 only when nothing at all
# could run.
#
# Environment:
#   VFPM_CONFORMANCE_DEVICES  kernel device types (default "e1000e nvme")
#   VFPM_CONFORMANCE_KERNEL=0 skip the kernel part (says so; the sanitizer
#                             builds' meson test sets it)
#   VFPM_CONFORMANCE_OUT      where results go (default BUILD/conformance-results)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: run.sh BUILD [--from-meson]}
build=$(cd "$build" && pwd) || exit 2
from_meson=0; [[ ${2:-} == --from-meson ]] && from_meson=1
runner=$build/conformance/vfpm-conformance
static=$build/conformance/vfpm-conformance-static
vfpm=$build/tools/vfpm
scen=$here/scenarios.txt
final_out=${VFPM_CONFORMANCE_OUT:-$build/conformance-results}
devices=${VFPM_CONFORMANCE_DEVICES:-e1000e nvme}

say() { echo "conformance: $*"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }
t_start=$(now)

for f in "$runner" "$vfpm"; do
    [[ -x $f ]] || { say "missing $f (build first: ninja -C $build)"; exit 2; }
done

# ------------------------------------------------------------------ vfpm
# Results are made in a private directory and copied to $final_out at the
# end, so that two runs on one build tree (make test here, make conformance
# there) do not mix their files.
work=$(mktemp -d "${TMPDIR:-/tmp}/vfpm-conf.XXXXXX")
out=$work/results
mkdir -p "$out"
publish() {
    mkdir -p "$final_out" && rm -f "$final_out"/*.txt "$final_out"/*.report "$final_out"/*.log &&
        cp "$out"/* "$final_out"/ 2>/dev/null
}
trap 'publish; rm -rf "$work"' EXIT

run_vfpm() {   # in a subshell of its own: the server goes with it
    local t0 rc; t0=$(now)
    "$vfpm" serve --device memory --socket "$work/m.sock" --ready-file "$work/ready" \
        >"$work/serve.log" 2>&1 &
    serve_pid=$!
    trap 'kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null' EXIT
    for _ in $(seq 100); do [[ -s $work/ready ]] && break; sleep 0.05; done
    if [[ ! -s $work/ready ]]; then
        say "vfpm serve did not start: $(cat "$work/serve.log")"; return 2
    fi
    timeout -k 5 300 "$runner" -s "$scen" "$work/m.sock" >"$out/vfpm.txt" 2>"$out/vfpm.report"
    rc=$?
    kill "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null
    cp "$work/serve.log" "$out/vfpm-serve.log"
    if grep -q 'Sanitizer' "$out/vfpm-serve.log"; then
        say "vfpm serve reported a sanitizer error:"; cat "$out/vfpm-serve.log"; rc=2
    fi
    say "vfpm (memory device over vfio-user): runner exit $rc, $(secs "$t0" "$(now)")s"
    (( rc <= 1 )) || { cat "$out/vfpm.report"; return 2; }
    return 0
}

# ---------------------------------------------------------------- kernel
kernel_why=
kernel_ok() {
    if [[ ${VFPM_CONFORMANCE_KERNEL:-1} == 0 ]]; then
        kernel_why="VFPM_CONFORMANCE_KERNEL=0 was set"; return 1
    fi
    if [[ ! -x $static ]]; then
        kernel_why="no static runner in $build (sanitizer builds cannot link one)"; return 1
    fi
    if [[ $(uname -m) != x86_64 ]]; then
        kernel_why="the reference VM needs an x86_64 host (this is $(uname -m))"; return 1
    fi
    local log=$out/prepare.log
    if ! bash "$here/vm/prepare.sh" >"$log" 2>&1; then
        kernel_why="could not prepare the reference VM (no qemu and could not install it, or no kernel package): $(grep -m1 'error' "$log" || tail -n1 "$log")"
        return 1
    fi
    cache=$(tail -n1 "$log")
    return 0
}

run_kernel() {   # DEVICE -> $out/DEVICE.txt
    local dev=$1 t0 rc; t0=$(now)
    VFPM_VM_SKIP_PREPARE=1 VFPM_VM_CACHE=$cache \
        bash "$here/vm/run.sh" -d "$dev" -t 240 --retries 1 --file "$scen" \
        "$static" -s /vfpm/scenarios.txt >"$work/$dev.raw" 2>"$work/$dev.err"
    rc=$?
    grep -a $'^[RSEC]\t' "$work/$dev.raw" >"$out/$dev.txt"
    grep -a -v $'^[RSEC]\t' "$work/$dev.raw" >"$out/$dev.report"
    local t; t=$(secs "$t0" "$(now)")
    t_kernel[$dev]=$t
    if grep -q $'^R\t' "$out/$dev.txt" && ! grep -q $'^S\t' "$out/$dev.txt"; then
        # It ran and died: a failure (its missing steps show as "-"), not a skip.
        say "kernel $dev: the runner stopped in the middle (run.sh exit $rc after ${t}s):"
        tail -n 20 "$work/$dev.err" | sed 's/^/    /'
        return 0
    fi
    if (( rc > 1 )) || ! grep -q $'^S\t' "$out/$dev.txt"; then
        say "kernel $dev: no results (run.sh exit $rc after ${t}s; the VM failed to boot twice, or the runner could not start):"
        tail -n 20 "$work/$dev.err" | sed 's/^/    /'
        grep -a $'^E\t' "$out/$dev.txt" | sed 's/^/    /'
        rm -f "$out/$dev.txt"
        return 1
    fi
    say "kernel $dev (Linux $(sed 's/linux-image-//' "$cache/kpkg") vfio-pci in QEMU): runner exit $rc, ${t}s ($(grep -o 'vm=[0-9.]*s' "$work/$dev.err" | tail -n1))"
    return 0
}

# vfpm's part mostly waits (it polls the power state), so it runs while the
# VMs boot; its messages come after theirs.
( run_vfpm >"$work/vfpm.msg" 2>&1 ) &
vfpm_job=$!

kernels=()
declare -A t_kernel=()
if kernel_ok; then
    for dev in $devices; do
        run_kernel "$dev" && kernels+=("$dev")
    done
    (( ${#kernels[@]} )) || kernel_why="the VM gave no results for any of: $devices (see above)"
fi
vfpm_rc=0
wait "$vfpm_job" || vfpm_rc=$?
cat "$work/vfpm.msg"
t_vfpm=$(sed -n 's/.*runner exit [0-9]*, \([0-9.]*\)s$/\1/p' "$work/vfpm.msg")
if [[ -n $kernel_why ]]; then
    say "KERNEL PART SKIPPED: $kernel_why"
    say "running the vfpm part alone; its steps are checked against the expected observations only."
fi
if (( vfpm_rc )); then
    say "the vfpm part could not run"
    (( ${#kernels[@]} )) || { (( from_meson )) && exit 77; exit 2; }
fi

# ----------------------------------------------------------------- table
files=()
for d in "${kernels[@]}"; do files+=("$out/$d.txt"); done
[[ -f $out/vfpm.txt ]] && files+=("$out/vfpm.txt")
names="${kernels[*]}"; [[ -f $out/vfpm.txt ]] && names+=" vfpm"
awk -F'\t' -v names="$names" -v kernels="${#kernels[@]}" '
    BEGIN { n = split(names, col, " ") }
    FNR == 1 { f++ }
    $1 == "C" { cleanup[++nc] = col[f] ": " $2 ": " $3 }
    $1 != "R" { next }
    {
        k = $2 SUBSEP $3
        if (!(k in seen)) { seen[k] = 1; order[++rows] = k; sc[k] = $2; st[k] = $3; cmd[k] = $4 }
        res[k, f] = $5; verdict[k, f] = $7; if ($8 != "") why[k] = $8
    }
    END {
        w1 = 8; w3 = 7
        for (i = 1; i <= rows; i++) {
            k = order[i]
            if (length(sc[k]) > w1) w1 = length(sc[k])
            if (length(cmd[k]) > w3) w3 = length(cmd[k])
        }
        if (w3 > 34) w3 = 34
        hdr = sprintf("%-" w1 "s %4s  %-" w3 "s", "scenario", "step", "command")
        for (c = 1; c <= n; c++) hdr = hdr sprintf("  %-14s", (c <= kernels ? "kernel " : "") col[c])
        print hdr "  match"
        for (i = 1; i <= rows; i++) {
            k = order[i]; line = sprintf("%-" w1 "s %4s  %-" w3 "s", sc[k], st[k], substr(cmd[k], 1, w3))
            same = 1; fail = 0; na = 1; skipped = 0
            for (c = 1; c <= n; c++) {
                r = ((k, c) in res) ? res[k, c] : "-"
                line = line sprintf("  %-14s", r)
                if (r != res[k, 1]) same = 0
                # "cannot": a step this target could not do, undeclared by the
                # scenario (e.g. no long request to park): not a pass.
                if (verdict[k, c] == "FAIL" || verdict[k, c] == "cannot" || r == "-") fail = 1
                if (verdict[k, c] == "skip") skipped = 1
                if (r != "n/a") na = 0
            }
            if (fail) m = "NO"
            else if (skipped) m = "n/a (one target only)"
            else if (na) m = "n/a (neither target can)"
            else if (same) m = (n > 1 ? "yes" : "as expected")
            else if (k in why) { m = "legit*"; legit[++nl] = sc[k] " step " st[k] ": " why[k] }
            else m = "NO"
            if (m == "NO") bad++; else if (m ~ /^(yes|legit|as expected)/) good++
            print line "  " m
            s = sc[k]
            if (!(s in smatch)) { sorder[++ns] = s; smatch[s] = m; nsteps[s] = 0 }
            nsteps[s]++
            if (m == "NO") smatch[s] = "NO"
            else if (m ~ /^legit/ && smatch[s] !~ /^NO/) smatch[s] = "legit*"
            else if (m ~ /^n\/a/ && smatch[s] ~ /^(yes|as expected)/) smatch[s] = m
            for (c = 1; c <= n; c++) {
                v = verdict[k, c]; if (!((k, c) in res)) v = "-"
                if (!((s, c) in sv) || v == "FAIL" || (v == "skip" && sv[s, c] == "pass")) sv[s, c] = v
            }
        }
        printf "\nPer scenario:\n%-" w1 "s %5s", "scenario", "steps"
        for (c = 1; c <= n; c++) printf "  %-14s", (c <= kernels ? "kernel " : "") col[c]
        print "  match"
        for (i = 1; i <= ns; i++) {
            s = sorder[i]; printf "%-" w1 "s %5d", s, nsteps[s]
            for (c = 1; c <= n; c++) printf "  %-14s", sv[s, c]
            print "  " smatch[s]
        }
        printf "\n%d scenarios, %d steps: %d match or differ for a stated reason, %d NOT, rest n/a\n", ns, rows, good, bad
        if (nl) { print "\n* differences the scenarios declare legitimate:"; for (i = 1; i <= nl; i++) print "  - " legit[i] }
        for (i = 1; i <= nc; i++) print "cleanup warning: " cleanup[i]
        exit bad ? 1 : 0
    }' "${files[@]}" >"$out/table.txt"
table_rc=$?
cat "$out/table.txt"
echo
for f in "${files[@]}"; do
    printf 'conformance: %-8s %s\n' "$(basename "$f" .txt)" "$(grep $'^S\t' "$f" | cut -f2- | tr '\t' ' ')"
done
say "total ${SECONDS}s wall (vfpm ${t_vfpm:-?}s$(for d in "${kernels[@]}"; do printf ', kernel %s %ss' "$d" "${t_kernel[$d]}"; done)); results in $final_out"
if [[ -n $kernel_why ]]; then say "NOTE: kernel part skipped: $kernel_why"; fi
if (( table_rc )); then say "FAILED: differences without a stated reason, or unexpected observations (rows marked NO)"; exit 1; fi
(( vfpm_rc )) && exit 1
if (( ${#kernels[@]} )); then
    say "PASSED: every step matches Linux (${kernels[*]}) or differs for a reason its scenario states"
else
    say "PASSED (vfpm part only): every step met its expected observation"
fi
exit 0
