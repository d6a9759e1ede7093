#!/usr/bin/env bash
# Runs every vfpm benchmark against an existing build directory and writes
# bench/results/README.md (the tables, each target beside its figure with met /
# not met) and bench/results/*.png (gnuplot), with the raw fragments and plot
# data under bench/results/data/.
# Usage: bash bench/run.sh BUILD_DIR   (from anywhere)
#
# Exits non-zero when a benchmark breaks (a program fails), never because a
# target is missed: the figures depend on the machine.
set -euo pipefail

build=${1:?usage: bench/run.sh BUILD_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
case "$build" in /*) ;; *) build="$root/$build" ;; esac

results=bench/results
data=$results/data
mkdir -p "$data"

if ! command -v gnuplot >/dev/null; then
	echo "bench: installing gnuplot-nox (plots)"
	apt-get install -y gnuplot-nox >/dev/null ||
		{ apt-get update >/dev/null && apt-get install -y gnuplot-nox >/dev/null; }
fi

for b in pm rtt concurrency transitions scale idle setup syscalls; do
	[ -x "$build/bench/bench-$b" ] || { echo "bench: $build/bench/bench-$b is missing" >&2; exit 1; }
done
[ -x "$build/tools/vfpm" ] || { echo "bench: $build/tools/vfpm is missing" >&2; exit 1; }

machine="nproc $(nproc), kernel $(uname -r), cpu $(grep -m1 -E '^(model name|cpu model|Processor)' /proc/cpuinfo | sed 's/^[^:]*: *//')"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
# The machine may be shared: its load says how much to trust the spreads.
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: $machine; load average $load_start"

# Run one benchmark, saying how long it took; set -e stops at the first failure.
run() {
	local name=$1 t0=$SECONDS
	shift
	echo "bench: $name ..."
	"$@"
	echo "bench: $name done in $((SECONDS - t0)) s"
}

run "runtime PM fast path" "$build/bench/bench-pm" --md "$results/pm.md"
run "1-2 round trip and PM wrapper" "$build/bench/bench-rtt" --out "$data"
run "4 concurrency" "$build/bench/bench-concurrency" --out "$data"
run "3 runtime PM transitions" "$build/bench/bench-transitions" --out "$data"
run "5 scale (and 10,000 served / 1,000 connected)" "$build/bench/bench-scale" --out "$data"
run "6 idle cost" "$build/bench/bench-idle" --out "$data" --vfpm "$build/tools/vfpm" --seconds 10
run "8 connection setup" "$build/bench/bench-setup" --out "$data"
# perf stat -p on a server in a child process: without perf the section says so.
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
	run "9 syscalls per request" "$build/bench/bench-syscalls" --out "$data"
else
	printf '## 9. Syscalls per request on the server\n\nNot run: perf cannot count the raw_syscalls:sys_enter tracepoint here (perf missing, or perf_event_paranoid / tracefs refuse).\n\n' >"$data/syscalls.md"
fi
# A Linux guest under QEMU (TCG): vfpm's NVMe controller beside QEMU's own
# (the vfpm side is skipped until vfpm serves one; all of it without root).
run "7 NVMe under a Linux guest" bash bench/nvme-guest.sh "$build" --md "$data/nvme-guest.md"

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench: plots ..."
gnuplot <<EOF
set terminal pngcairo size 1100,450 font ",10" noenhanced
set datafile separator whitespace
set grid ytics
set style fill solid 0.6 border -1

set output "$results/rtt.png"
set multiplot layout 1,2 title "Round trip, 4-byte REGION_READ vs raw AF_UNIX ping-pong (1 client, one CPU)"
set title "throughput (median, min-max over repetitions)"
set ylabel "requests/s"
set yrange [0:*]
set style data histogram
set style histogram errorbars gap 1 lw 1
plot "$data/rtt.dat" using 2:3:4:xtic(1) notitle lc rgb "#4477aa"
set title "latency"
set ylabel "us"
set style histogram clustered gap 1
set key top left
plot "$data/rtt.dat" using 5:xtic(1) title "p50" lc rgb "#4477aa", \
     "" using 6 title "p99" lc rgb "#cc6677"
unset multiplot

set output "$results/rtt-clients.png"
set title "Round trip and PM wrapper by clients: median of per-round ratios (min-max), targets dashed"
set style data yerrorlines
set logscale x 2
set xlabel "clients"
set ylabel "throughput ratio"
set xrange [0.8:20]
set yrange [*:*]
set key bottom right
plot "$data/rtt-clients.dat" using 1:2:3:4 title "vfpm (memory) / raw" lw 2 lc rgb "#4477aa", \
     "" using 1:5:6:7 title "memory / opt-out (PM wrapper)" lw 2 lc rgb "#cc6677", \
     0.95 title "round trip target" dt 2 lc rgb "#4477aa", \
     0.98 title "PM wrapper target" dt 2 lc rgb "#cc6677"
unset logscale x
unset xlabel
set autoscale x
set yrange [0:*]

set output "$results/concurrency.png"
set title "Concurrency: 4-byte REGION_READs, one connection per client (median, min-max)"
set style data yerrorlines
set logscale x 2
set xlabel "clients"
set ylabel "requests/s (all clients)"
set key top left
plot "$data/concurrency.dat" using 1:2:3:4 title "raw AF_UNIX ping-pong" lw 2, \
     "" using 1:5:6:7 title "vfpm, one device" lw 2, \
     "" using 1:8:9:10 title "vfpm, separate devices" lw 2
unset logscale x
unset xlabel

set output "$results/transitions.png"
set title "Runtime PM transitions (10,000 cycles; each figure beside its baseline)"
set style data histogram
set style histogram clustered gap 1
set logscale y
set yrange [0.01:*]
set ylabel "us (log)"
set xtics rotate by -20
plot "$data/transitions.dat" using 2:xtic(1) title "p50" lc rgb "#4477aa", \
     "" using 3 title "p99" lc rgb "#cc6677"
unset logscale y
set xtics norotate
set yrange [0:*]

set output "$results/scale.png"
set multiplot layout 1,2 title "Scale: N memory devices in one process, all suspended"
set style data linespoints
set logscale x 10
set xlabel "devices"
set title "RSS per device"
set ylabel "KiB"
set key top right
plot "< awk '\$2 == 1' $data/scale.dat" using 1:4 title "served" lw 2, \
     "< awk '\$2 == 0' $data/scale.dat" using 1:4 title "devices only" lw 2
set title "suspend all (median)"
set ylabel "ms"
set key top left
plot "< awk '\$2 == 1' $data/scale.dat" using 1:5 title "served" lw 2, \
     "< awk '\$2 == 0' $data/scale.dat" using 1:5 title "devices only" lw 2
unset multiplot
unset logscale x
unset xlabel

set output "$results/idle.png"
set title "Idle cost of the polling device (vfpm serve), per-second min-max"
set style data histogram
set style histogram errorbars gap 1 lw 1
set ylabel "CPU % of one core"
set yrange [0:*]
plot "$data/idle.dat" using 2:4:5:xtic(1) notitle lc rgb "#4477aa"
EOF

# The report: targets first, then every benchmark's section.
readme=$results/README.md
{
	echo "# vfpm benchmarks (issues 7 and 15)"
	echo
	echo "Written by \`make bench\` (bench/run.sh): $started; machine: $machine;"
	echo "tree: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' + local changes')."
	echo "Load average (1, 5, 15 min) at the start: $load_start; at the end: $load_end (the benchmarks"
	echo "themselves add about 1-2; more means other work shared the $(nproc) CPUs and widened the spreads)."
	echo "All times CLOCK_MONOTONIC. Benchmarks are not tests: a target missed is reported, not failed."
	echo
	echo "## Targets"
	echo
	echo "Ratios are medians of paired ratios [min - max] where a section says so; each row's"
	echo "section below gives its method and its baseline."
	echo
	echo "| target | figure | target | verdict |"
	echo "|---|---:|---:|---|"
	grep -E '^\| [12]\. ' "$data/rtt.md"
	sed -n 's/^- \(.*\), 1 thread: \([0-9.]*x\) (target >= \([0-9.]*x\)): \(.*\)$/| PM fast path: mutex pair \/ \1 (1 thread) | \2 | >= \3 | \4 |/p' "$results/pm.md"
	# Issue 15: every row of a section's target table (the ones with a verdict).
	for part in scale-connected idle setup transitions syscalls; do
		grep -E '\*\*(not )?met\*\* \|$' "$data/$part.md" || true
	done
	echo
	for part in rtt transitions concurrency scale scale-connected idle nvme-guest setup syscalls; do
		cat "$data/$part.md"
	done
	echo "## Runtime PM fast path (bench-pm)"
	echo
	sed '1,2d' "$results/pm.md"
} >"$readme"

echo
cat "$readme"
echo "bench: results written to $results/README.md and $results/*.png"
