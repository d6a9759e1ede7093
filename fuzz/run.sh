#!/usr/bin/env bash
# Build the libFuzzer targets (clang, ASan + UBSan) in build-fuzz/ through
# meson (-Dfuzz=true, fuzz/meson.build: the same static libraries as every
# other build) and run each for SECONDS (default 60): first over its
# regression inputs (fuzz/regressions/TARGET), then fuzzing from its seeds
# (generated from valid messages by gen_seeds) and the corpus kept in
# build-fuzz/corpus.  Prints each target's execution count and crashes;
# exits non-zero when any target crashed (the input is saved in
# build-fuzz/artifacts/).
#
#   bash fuzz/run.sh [SECONDS]        FUZZ_JOBS=N to build with N jobs,
#                                     FUZZ_CC=CC for another clang
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-60}
OUT=build-fuzz
CC=${FUZZ_CC:-clang}
TARGETS=(server feature config nvme)
# -g -O1, as libFuzzer's documentation builds (at -O2 fewer edges to steer by).
MESON_OPTS=(-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false -Doptimization=1
	-Dwerror=true)

if ! command -v "$CC" >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
	echo "fuzz: installing clang and libclang-rt-dev"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi

# Configured once (a build-fuzz/ of old keeps its corpus and artifacts);
# one configured without the option gets it.
mkdir -p "$OUT/artifacts"
if [[ ! -f $OUT/build.ninja ]]; then
	echo "fuzz: configuring $OUT/ (CC=$CC meson setup ${MESON_OPTS[*]})"
	if ! CC=$CC meson setup "$OUT" "${MESON_OPTS[@]}" >"$OUT/setup.log" 2>&1; then
		tail -20 "$OUT/setup.log"
		exit 1
	fi
elif ! meson configure "$OUT" | grep -qE '^ +fuzz +true '; then
	echo "fuzz: $OUT/ was configured without -Dfuzz=true: reconfiguring"
	meson configure "$OUT" "${MESON_OPTS[@]}" >"$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log"; exit 1; }
fi
echo "fuzz: building in $OUT/"
if ! ninja -C "$OUT" -j "${FUZZ_JOBS:-$(nproc)}" "${TARGETS[@]/#/fuzz/fuzz_}" fuzz/gen_seeds \
	>"$OUT/build.log" 2>&1; then
	grep -E 'error|FAILED' "$OUT/build.log" | head -20
	echo "fuzz: the build failed; log: $OUT/build.log"
	exit 1
fi
rm -rf "$OUT/seeds"
"$OUT/fuzz/gen_seeds" "$OUT/seeds"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=0
summary=()
for t in "${TARGETS[@]}"; do
	exe="$OUT/fuzz/fuzz_$t"
	log="$OUT/fuzz_$t.log"
	corpus="$OUT/corpus/$t"
	mkdir -p "$corpus" "$OUT/seeds/$t"	# fuzz_nvme has no seeds
	crashes=0
	# Every input that ever crashed a target stays a regression input.
	if compgen -G "fuzz/regressions/$t/*" >/dev/null; then
		if ! "$exe" fuzz/regressions/"$t"/* >"$OUT/fuzz_$t.regressions.log" 2>&1; then
			echo "fuzz: $t: a regression input crashes again (see $OUT/fuzz_$t.regressions.log)"
			crashes=$((crashes + 1))
		fi
	fi
	# Crashes, leaks, timeouts and out-of-memory count; a slow unit is reported only.
	before=$(ls "$OUT/artifacts" | grep -cE "^$t-(crash|leak|timeout|oom)-" || true)
	echo "fuzz: $t for ${SECONDS_EACH}s"
	set +e
	"$exe" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=20 \
		-rss_limit_mb=2560 -max_len=16384 -artifact_prefix="$OUT/artifacts/$t-" \
		"$corpus" "$OUT/seeds/$t" >"$log" 2>&1
	rc=$?
	set -e
	after=$(ls "$OUT/artifacts" | grep -cE "^$t-(crash|leak|timeout|oom)-" || true)
	slow=$(ls "$OUT/artifacts" | grep -c "^$t-slow-unit-" || true)
	crashes=$((crashes + after - before))
	if [[ $rc -ne 0 && $after -eq $before ]]; then
		crashes=$((crashes + 1))	# died without an artifact (e.g. a hang of the runner)
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	summary+=("$(printf '%-8s executions %10s  (%s/s)  coverage %5s  corpus %5s  crashes %d  slow units %d' \
		"$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$(ls "$corpus" | wc -l)" "$crashes" "$slow")")
	if [[ $crashes -ne 0 ]]; then
		failed=1
		echo "fuzz: $t crashed; log: $log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|fuzz_)' "$log" | head -5 || true
		ls "$OUT/artifacts" | grep -E "^$t-(crash|leak|timeout|oom)-" |
			sed "s|^|  artifact: $OUT/artifacts/|" || true
	fi
done
echo "fuzz: results (${SECONDS_EACH}s each)"
printf '  %s\n' "${summary[@]}"
exit $failed
