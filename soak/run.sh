#!/usr/bin/env bash
# The soak: 16 clients for SECONDS (default 600) against one server, with
# the invariants checked throughout (see soak/soak.c).  Prints a summary and
# exits non-zero when an invariant was broken.
#
#   bash soak/run.sh BUILD [SECONDS]      SOAK_CLIENTS=N, SOAK_SEED=N to vary
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SECS=${2:-600}
ninja -C "$BUILD" soak/vfpm-soak >/dev/null
args=(--seconds "$SECS" --clients "${SOAK_CLIENTS:-16}")
if [[ -n ${SOAK_SEED:-} ]]; then
	args+=(--seed "$SOAK_SEED")
fi
exec "$BUILD/soak/vfpm-soak" "${args[@]}"
