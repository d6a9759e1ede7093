#!/usr/bin/env bash
# The vfpm command end to end: each subcommand's success and failure paths,
# with real servers, sockets and signals.  Usage: test_cli.sh PATH-TO-vfpm
set -u
VFPM=$(realpath "$1")
. "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/harness.sh"
send_backend() {
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode()); s.close()' "$1" "$2"
}

# ---- the command itself ----
check "top-level --help" 0 "Commands:" -- "$VFPM" --help
check "no command is a usage error" 1 "Usage: vfpm" -- "$VFPM"
check "unknown command" 1 "unknown command 'frobnicate'" -- "$VFPM" frobnicate
for cmd in serve info power; do
	check "$cmd --help" 0 "Usage: vfpm $cmd" -- "$VFPM" "$cmd" --help
done

# ---- serve: bad input ----
check "serve: unknown device kind" 1 "unknown device kind 'disk'" -- "$VFPM" serve --device disk
check "serve: unknown option" 1 "unknown option '--colour'" -- "$VFPM" serve --colour red
check "serve: option without value" 1 "--socket needs a value" -- "$VFPM" serve --socket
check "serve: bad mode" 1 "--mode wants an octal mode" -- "$VFPM" serve --mode 999
check "serve: backend on a memory device" 1 "--backend is for a poller" -- "$VFPM" serve --device memory --backend x
check "serve: socket in a missing directory" 2 "cannot serve the memory device on /nonexistent/x.sock" -- \
	"$VFPM" serve --socket /nonexistent/x.sock
check "serve: nvme without a backing file" 1 "an nvme device needs --backing FILE" -- \
	"$VFPM" serve --device nvme --socket n.sock
check "serve: nvme on a missing backing file" 2 "the nvme backing file /nonexistent/d.img: No such file" -- \
	"$VFPM" serve --device nvme --backing /nonexistent/d.img --socket n.sock
truncate -s 511 tiny.img
check "serve: nvme on a backing file under one block" 2 \
	"backing file tiny.img is too small: 511 bytes, less than one 512-byte block" -- \
	"$VFPM" serve --device nvme --backing tiny.img --socket n.sock
truncate -s 4095 tiny.img
check "serve: nvme, 4 KiB blocks, a file under one" 2 "less than one 4096-byte block" -- \
	"$VFPM" serve --device nvme --backing tiny.img --block-size 4096 --socket n.sock
check "serve: nvme on a directory" 2 "neither a regular file nor a block device" -- \
	"$VFPM" serve --device nvme --backing . --socket n.sock
check "serve: bad block size" 1 "--block-size wants 512 or 4096, not '1024'" -- \
	"$VFPM" serve --device nvme --backing tiny.img --block-size 1024
check "serve: backing on a memory device" 1 "--backing is for an nvme device, not memory" -- \
	"$VFPM" serve --device memory --backing tiny.img
[ ! -e n.sock ] && ok "serve: no socket left by a failed nvme device" || bad "serve: n.sock left behind"

# ---- serve: a memory and a poller device ----
"$VFPM" serve --device memory --socket m.sock --device poller --socket p.sock --ready-file ready >serve.log 2>&1 &
serve_pid=$!; pids+=("$serve_pid")
if wait_for ready; then ok "serve: ready"; else bad "serve: ready (log: $(cat serve.log))"; fi
[ "$(stat -c %a m.sock)" = 600 ] && ok "serve: socket is 0600" || bad "serve: socket mode $(stat -c %a m.sock)"
[ -S p.sock.backend ] && ok "serve: poller backend socket" || bad "serve: no poller backend socket"
check "serve: a second server on the same socket" 2 "Address already in use" -- "$VFPM" serve --socket m.sock

# ---- info ----
check "info: the unused device is suspended, and info says so without waking it" 0 \
	"^power: suspended, usage count 0" -- "$VFPM" info m.sock
check "info: regions" 0 "region 0 \(BAR0\): size 0x10000 read write mmap" -- "$VFPM" info m.sock
check "info: interrupts" 0 "irq 2 \(MSI-X\): 4 vectors" -- "$VFPM" info m.sock
check "info: no target" 1 "needs a TARGET" -- "$VFPM" info
check "info: two targets" 1 "takes one TARGET" -- "$VFPM" info a b
check "info: nobody there" 2 "cannot open nothing.sock" -- "$VFPM" info nothing.sock

# ---- power ----
check "power: exit without entry" 0 "low power exited" -- "$VFPM" power m.sock exit
check "power: unknown action" 1 "unknown action 'sleep'" -- "$VFPM" power m.sock sleep
check "power status: the unused device sleeps" 0 "^suspended usage=0 low_power=off" -- "$VFPM" power m.sock status
check "power: missing action" 1 "needs a TARGET and an ACTION" -- "$VFPM" power m.sock
check "power: --count without watch" 1 "--count goes with watch" -- "$VFPM" power m.sock exit --count 2
check "power: bad --count" 1 "--count wants a positive number" -- "$VFPM" power m.sock watch --count 0
check "power: nobody there" 2 "cannot open nothing.sock" -- "$VFPM" power nothing.sock exit

# enter: holds low power while it runs; another client sees it engaged.
"$VFPM" power m.sock enter >enter.log 2>&1 &
enter_pid=$!; pids+=("$enter_pid")
wait_grep enter.log "low power entered" && ok "power enter: entered" || bad "power enter: $(cat enter.log)"
check "power enter: info sees low power engaged" 0 "low power engaged" -- "$VFPM" info m.sock
kill -TERM "$enter_pid"; wait "$enter_pid"; rc=$?
[ "$rc" = 0 ] && grep -q released enter.log && ok "power enter: SIGTERM releases" || bad "power enter: status $rc"
check "power enter: closed, low power is dropped" 0 "low power not engaged" -- "$VFPM" info m.sock

# enter-wakeup on the poller: traffic at the backend wakes it.
"$VFPM" power p.sock enter-wakeup >wake.log 2>&1 &
wake_pid=$!; pids+=("$wake_pid")
wait_grep wake.log "waiting" && ok "power enter-wakeup: armed" || bad "power enter-wakeup: $(cat wake.log)"
# Poll with 'power status': it never wakes the device ('info' would, past its first line).
wait_suspended() {
	for _ in $(seq 100); do "$VFPM" power "$1" status | grep -q "^suspended" && return 0; sleep 0.1; done
	return 1
}
wait_suspended p.sock
check "power enter-wakeup: the poller sleeps" 0 "^suspended usage=0 low_power=engaged wakeup=armed" -- \
	"$VFPM" power p.sock status
check "power status: asking did not wake it" 0 "^suspended" -- "$VFPM" power p.sock status
grep -q "wakeup 1 at" wake.log && bad "power enter-wakeup: woke before any traffic" || ok "power enter-wakeup: no spurious wakeup"
send_backend p.sock.backend "ping"
wait "$wake_pid"; rc=$?
[ "$rc" = 0 ] && grep -q "wakeup 1 at" wake.log && ok "power enter-wakeup: woken by backend data" || \
	bad "power enter-wakeup: status $rc, $(cat wake.log)"

# watch: two wakeups, then it stops by itself.
"$VFPM" power p.sock watch --count 2 >watch.log 2>&1 &
watch_pid=$!; pids+=("$watch_pid")
for n in 1 2; do
	wait_suspended p.sock
	grep -q "wakeup $n at" watch.log && { bad "power watch: wakeup $n before traffic"; break; }
	send_backend p.sock.backend "wake $n"
	wait_grep watch.log "wakeup $n at" || break
done
wait "$watch_pid"; rc=$?
[ "$rc" = 0 ] && grep -q "wakeup 2 at" watch.log && ok "power watch: two wakeups" || \
	bad "power watch: status $rc, $(cat watch.log)"

# ---- serve: an nvme controller ----
truncate -s 1M disk.img
"$VFPM" serve --device nvme --backing disk.img --socket n.sock --block-size 4096 --ready-file nready \
	>nserve.log 2>&1 &
nserve_pid=$!; pids+=("$nserve_pid")
if wait_for nready; then ok "serve: nvme ready"; else bad "serve: nvme ready (log: $(cat nserve.log))"; fi
grep -q "nvme device on n.sock, backing disk.img" nserve.log && ok "serve: nvme says what it serves" ||
	bad "serve: nvme log $(cat nserve.log)"
check "info: nvme: class 010802, suspended while unused" 0 "^power: suspended" -- "$VFPM" info n.sock
check "info: nvme: BAR0 with its doorbell page mapped" 0 "region 0 \(BAR0\): size 0x4000 .*mmap" -- \
	"$VFPM" info n.sock
check "info: nvme: MSI-X" 0 "irq 2 \(MSI-X\): 16 vectors" -- "$VFPM" info n.sock
kill -TERM "$nserve_pid"; wait "$nserve_pid"; rc=$?
[ "$rc" = 0 ] && [ ! -e n.sock ] && ok "serve: nvme stops on SIGTERM" || bad "serve: nvme exit $rc"

# ---- shutdown ----
kill -INT "$serve_pid"; wait "$serve_pid"; rc=$?
[ "$rc" = 0 ] && ok "serve: SIGINT shuts down cleanly" || bad "serve: exit status $rc"
grep -q "SIGINT, shutting down" serve.log && ok "serve: says why it stops" || bad "serve: log $(cat serve.log)"
[ ! -e m.sock ] && [ ! -e p.sock ] && ok "serve: sockets removed" || bad "serve: sockets left behind"

# ---- serve: a device list file, and more than 16 devices ----
mkdir -p list
{
	echo "# two of each kind, and one on the command line"
	echo "memory list/m0.sock"
	echo ""
	echo "  optout list/o0.sock   # no runtime PM"
	echo "poller list/p0.sock --backend list/p0.be"
	echo "nvme list/n0.sock --backing disk.img --block-size 4096"
	for i in $(seq 1 20); do echo "memory list/m$i.sock"; done
} >devices.list
"$VFPM" serve --devices devices.list --device memory --socket list/cli.sock --ready-file lready \
	>lserve.log 2>&1 &
lserve_pid=$!; pids+=("$lserve_pid")
if wait_for lready; then ok "serve: --devices ready"; else bad "serve: --devices ready (log: $(cat lserve.log))"; fi
[ -S list/p0.be ] && [ -S list/m20.sock ] && [ -S list/cli.sock ] && ok "serve: --devices: every socket" ||
	bad "serve: --devices sockets: $(ls list)"
check "serve: --devices: a listed device answers" 0 "^power: suspended" -- "$VFPM" info list/m20.sock
check "serve: --devices: the nvme line's options" 0 "region 0 \(BAR0\): size 0x4000" -- \
	"$VFPM" info list/n0.sock
check "serve: --devices and --device together" 0 "^power: suspended" -- "$VFPM" info list/cli.sock
# What the fd check counts per device (1, nvme 2, a poller 3) is what the devices hold.
fds=$(ls /proc/"$lserve_pid"/fd | wc -l)
[ "$fds" -le $((1 * 23 + 2 + 3 + 16)) ] && ok "serve: 25 devices hold $fds fds, within the fd check's count" ||
	bad "serve: 25 devices hold $fds fds, more than the fd check counts"
threads=$(grep Threads: /proc/"$lserve_pid"/status | awk '{print $2}')
[ "$threads" -le 8 ] && ok "serve: 25 idle devices, $threads threads" || bad "serve: $threads threads"
kill -TERM "$lserve_pid"; wait "$lserve_pid"; rc=$?
[ "$rc" = 0 ] && [ ! -e list/m20.sock ] && ok "serve: --devices stops on SIGTERM" || bad "serve: --devices exit $rc"

printf 'memory a.sock\n# fine so far\nmemory b.sock --backing disk.img\n' >bad.list
check "serve: --devices: a bad line says file:line" 1 "bad.list:3: --backing is for an nvme device, not memory" -- \
	"$VFPM" serve --devices bad.list
printf 'memory a.sock\ndisk d.sock\n' >bad.list
check "serve: --devices: an unknown kind" 1 "bad.list:2: unknown device kind 'disk'" -- \
	"$VFPM" serve --devices bad.list
printf 'poller\n' >bad.list
check "serve: --devices: a line without a socket" 1 "bad.list:1: a poller device needs its socket" -- \
	"$VFPM" serve --devices bad.list
printf 'nvme n.sock --backing disk.img --block-size 1024\n' >bad.list
check "serve: --devices: a bad option value" 1 "bad.list:1: --block-size wants 512 or 4096" -- \
	"$VFPM" serve --devices bad.list
printf 'memory a.sock --colour red\n' >bad.list
check "serve: --devices: an unknown option" 1 "bad.list:1: unknown device option '--colour'" -- \
	"$VFPM" serve --devices bad.list
check "serve: --devices: a missing file" 2 "cannot read the device list nope.list: No such file" -- \
	"$VFPM" serve --devices nope.list
printf '# nothing\n\n' >bad.list
check "serve: --devices: no device" 1 "no device in the device list" -- "$VFPM" serve --devices bad.list
check "serve: a device option after --devices" 1 "--socket after --devices" -- \
	"$VFPM" serve --devices devices.list --socket x.sock
[ ! -e a.sock ] && ok "serve: no socket left by a bad list" || bad "serve: a.sock left behind"

# Too many devices for the fd limit: said before anything is created.
check "serve: too few fds for the devices" 2 \
	"24 devices need [0-9]+ file descriptors .* the fd limit \(RLIMIT_NOFILE\) is 64, its hard limit: [0-9]+ of the devices fit.  Raise the hard limit to [0-9]+" -- \
	prlimit --nofile=64:64 "$VFPM" serve --devices devices.list
[ ! -e list/m0.sock ] && ok "serve: nothing created when the fds are too few" || bad "serve: list/m0.sock created"
check "serve: the soft fd limit is raised to the hard one" 0 "Max open files +512 +512" -- \
	bash -c '(prlimit --nofile=64:512 "$1" serve --devices "$2" --ready-file sready >sserve.log 2>&1 &
		  p=$!; for _ in $(seq 100); do [ -e sready ] && break; sleep 0.1; done
		  grep "open files" /proc/$p/limits; kill $p; wait $p; cat sready)' _ "$VFPM" devices.list

# ---- systemd socket activation ----
python3 - "$VFPM" <<'PY' >act.log 2>&1 &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("act.sock"); s.listen(8)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execve(sys.argv[1], [sys.argv[1], "serve", "--device", "optout"], env)
PY
act_pid=$!; pids+=("$act_pid")
wait_grep act.log "activation fd 3" && ok "serve: socket activation" || bad "serve: activation: $(cat act.log)"
check "serve: activated socket serves" 0 "^power: suspended" -- "$VFPM" info act.sock
kill -TERM "$act_pid"; wait "$act_pid"; rc=$?
[ "$rc" = 0 ] && ok "serve: activated server stops on SIGTERM" || bad "serve: activated exit $rc"

finish
