#!/usr/bin/env bash
# Runs every vfpm benchmark against an existing build directory.
# Usage: bash bench/run.sh BUILD_DIR   (from anywhere; results go to bench/results/)
set -euo pipefail

build=${1:?usage: bench/run.sh BUILD_DIR}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
case "$build" in /*) ;; *) build="$root/$build" ;; esac

mkdir -p bench/results

"$build/bench/bench-pm" --md bench/results/pm.md
echo "bench: runtime PM fast path results written to bench/results/pm.md"
