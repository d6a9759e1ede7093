#!/usr/bin/env bash
# vfpm check end to end: usage errors, unreachable targets, a bad scenario
# file, a passing run against the memory device and a failing one against
# the opt-out device (which never suspends while open).
# Usage: test_check.sh PATH-TO-vfpm
set -u
VFPM=$(realpath "$1")
. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/harness.sh"
serve() {	# serve KIND SOCKET
	"$VFPM" serve --device "$1" --socket "$2" --ready-file "$2.ready" >"$2.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do [ -s "$2.ready" ] && return 0; sleep 0.1; done
	return 1
}

# ---- usage ----
check "check --help" 0 "Usage: vfpm check" -- "$VFPM" check --help
check "check: listed in vfpm --help" 0 "check +run the conformance" -- "$VFPM" --help
check "check: no target" 1 "no TARGET" -- "$VFPM" check
check "check: unknown option" 1 "unknown option '--fast'" -- "$VFPM" check --fast x.sock
check "check: option without value" 1 "--only needs a value" -- "$VFPM" check x.sock --only
check "check: group without device" 1 "give the PCI address" -- "$VFPM" check /dev/vfio/3
check "check: device with a socket" 1 "DEVICE goes with a /dev/vfio/N target" -- \
	"$VFPM" check x.sock 0000:01:00.0
check "check: device not in that group" 2 "cannot find the IOMMU group of 0000:7f:1f.7" -- \
	"$VFPM" check /dev/vfio/3 0000:7f:1f.7

# ---- unreachable targets, bad scenarios ----
check "check: no server on the socket" 2 "cannot connect to $work/none.sock" -- \
	"$VFPM" check "$work/none.sock"
check "check: missing scenario file" 2 "cannot read the scenarios: .*nothere.txt" -- \
	"$VFPM" check --scenarios nothere.txt x.sock
printf 'scenario a  A\n  step open 1 ok\n' >broken.txt
check "check: scenario syntax error says where" 2 "broken.txt:2: a step is" -- \
	"$VFPM" check --scenarios broken.txt x.sock

# ---- against vfpm devices ----
if serve memory m.sock; then
	check "check: memory device passes" 0 "0 FAILED" -- \
		"$VFPM" check --only entry --results r.txt "$work/m.sock"
	grep -qP '^R\tentry-suspends-after-put\t1\topen 1\tok\tok\tpass' r.txt &&
		ok "check: --results writes per-step lines" || bad "check: results: $(head -3 r.txt)"
	check "check: --verbose shows steps" 0 "wait suspended +suspended" -- \
		"$VFPM" check -v --only exit-resumes "$work/m.sock"
	cat >wrong.txt <<'S'
scenario wrong-expectation  Expects the device to stay active after ENTRY
  step open 1            => ok
  step feature 1 SET|3   => ok
  step stays-active 300  => active
S
	check "check: a wrong expectation fails with the step" 1 \
		"FAIL wrong-expectation +step 3 'stays-active 300': got suspend(ed|ing), expected active" -- \
		"$VFPM" check --scenarios wrong.txt "$work/m.sock"
else
	bad "check: vfpm serve --device memory did not start: $(cat m.sock.log)"
fi
if serve optout o.sock; then
	check "check: the opt-out device fails (it never suspends while open)" 1 \
		"FAIL entry-suspends-after-put" -- "$VFPM" check --only entry-suspends "$work/o.sock"
else
	bad "check: vfpm serve --device optout did not start: $(cat o.sock.log)"
fi

finish
