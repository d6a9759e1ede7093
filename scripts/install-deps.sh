#!/usr/bin/env bash
# Installs the Debian packages vfpm builds and tests with, when missing.
set -euo pipefail
need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in gcc clang meson ninja-build pkg-config libcmocka-dev libjson-c-dev \
           linux-libc-dev libclang-rt-14-dev python3; do
  have_pkg "$pkg" || need+=("$pkg")
done
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "vfpm: missing packages: ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "vfpm: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
