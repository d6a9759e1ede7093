#!/usr/bin/env bash
# make demo: serve a polling device and a memory device, then walk a client
# through traffic, low power, a wake from the backend, and the race.
# Usage: demo.sh BUILD-DIR   (make demo has already installed and built)
set -euo pipefail
build=$(realpath "${1:-build}")
vfpm=$build/tools/vfpm
demo=$build/tools/demo/vfpm-demo
work=$(mktemp -d /tmp/vfpm-demo.XXXXXX)
server=
cleanup() {
	[ -n "$server" ] && kill -TERM "$server" 2>/dev/null && wait "$server" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

echo "vfpm demo: a vfio-user device that really sleeps"
echo "  server: $vfpm serve --device poller --device memory (sockets in $work)"
echo
"$vfpm" serve --device poller --socket "$work/poller.sock" --backend "$work/backend.sock" \
	--device memory --socket "$work/memory.sock" --ready-file "$work/ready" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.1; done
if [ ! -e "$work/ready" ]; then
	echo "vfpm demo: the server did not start:" >&2
	cat "$work/server.log" >&2
	exit 1
fi
sed 's/^/  server: /' "$work/server.log"
echo
"$demo" "$work/poller.sock" "$work/backend.sock" "$work/memory.sock" "$server"
kill -TERM "$server"
wait "$server"
server=
echo
echo "vfpm demo: done; the server shut down cleanly."
