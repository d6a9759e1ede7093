# Shared by the command's test scripts (source it after setting VFPM):
# a work directory that is removed on exit with every process in pids, and
# the ok / bad / check helpers counting towards the closing
# "N passed, N failed" line that finish prints.
work=$(mktemp -d "/tmp/vfpm-$(basename "$0" .sh).XXXXXX")
pids=()
passed=0 failed=0
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

ok() { echo "ok - $1"; passed=$((passed + 1)); }
bad() { echo "not ok - $1"; failed=$((failed + 1)); }
# check NAME EXPECTED-STATUS PATTERN -- COMMAND...: status and output (stdout+stderr) must match.
check() {
	local name=$1 want=$2 pattern=$3; shift 4
	local out rc
	out=$("$@" 2>&1); rc=$?
	if [ "$rc" = "$want" ] && grep -qE -- "$pattern" <<<"$out"; then
		ok "$name"
	else
		bad "$name (status $rc, wanted $want; output: $(head -c 600 <<<"$out"))"
	fi
}
# wait_for FILE-OR-SOCKET: up to 10 s.
wait_for() {
	for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done
	return 1
}
# wait_grep FILE PATTERN: up to 10 s.
wait_grep() {
	for _ in $(seq 100); do grep -qE -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
# The closing line, and the exit status.
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
}
