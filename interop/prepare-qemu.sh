#!/usr/bin/env bash
# prepare-qemu.sh — make a QEMU with a vfio-user client (>= 10.1) from Debian
# packages only: a minimal trixie chroot with qemu-system-x86 from
# trixie-backports. Bookworm's own QEMU (7.2) has no vfio-user client.
# Idempotent: once the stamp is there a run only checks it and prints the
# version.
#
#   - installs debootstrap on the host when missing
#   - debootstrap --variant=minbase trixie, from the mirror the host's own
#     apt sources use (or $VFPM_DEBIAN_MIRROR)
#   - adds trixie-backports and installs qemu-system-x86, qemu-system-data
#     and seabios from it inside the chroot
#   - checks that the binary offers the vfio-user-pci device
#
# Cache: $VFPM_QEMU_CACHE, default /var/cache/vfpm/qemu-trixie (the chroot is
# CACHE/root, about 600 MB). Needs root. Each step prints how long it took;
# the last line of stdout is the cache dir, the line before it the version.
set -euo pipefail

cache=${VFPM_QEMU_CACHE:-/var/cache/vfpm/qemu-trixie}
suite=trixie
# What the chroot must hold. The stamp records this list, so changing it
# rebuilds the chroot on the next run.
qemu_pkgs=(qemu-system-x86 qemu-system-data seabios)

log() { echo "prepare-qemu: $*" >&2; }
die() { echo "prepare-qemu: error: $*" >&2; exit 1; }

(( EUID == 0 )) || die "needs root (debootstrap and chroot)"
[[ $(uname -m) == x86_64 ]] || die "needs an x86_64 host (got $(uname -m))"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

# Per-step timing: `step NAME` starts one, `step_end` prints it.
step_name='' step_start=''
step() { step_name=$1; step_start=$(date +%s.%N); log "$step_name ..."; }
step_end() {
    log "$step_name: $(awk -v a="$step_start" -v b="$(date +%s.%N)" \
        'BEGIN { printf "%.1f s", b - a }')"
}
total_start=$(date +%s.%N)

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
root=$cache/root
stamp=$cache/stamp
want_stamp="suite=$suite pkgs=${qemu_pkgs[*]} layout=1"

qemu_version() {
    chroot "$root" /usr/bin/qemu-system-x86_64 --version | head -n 1
}
cached() {
    [[ -f $stamp && $(cat "$stamp") == "$want_stamp" && -x $root/usr/bin/qemu-system-x86_64 ]]
}
print_cached() {
    step "checking the cached chroot"
    version=$(qemu_version) || die "the cached QEMU does not run; remove $cache and run again"
    step_end
    log "cached in $root"
    echo "$version"
    echo "$cache"
}

# The lock: qemu.sh holds it shared while QEMU runs, a rebuild takes it
# exclusively. A cached chroot needs only a shared hold, so checking it never
# waits for running VMs; a rebuild waits for them and for other preparers,
# then looks again (another preparer may have just finished).
exec 9>"$cache/.lock"
flock -s 9
if cached; then print_cached; exit 0; fi
flock 9
if cached; then print_cached; exit 0; fi

# ---------------------------------------------------------------- host tools
apt_host() {
    # DPkg::Lock::Timeout: another apt run on the host (e.g. the conformance
    # VM's preparer) is waited for instead of failing at once.
    apt-get -o DPkg::Lock::Timeout=300 "$@"
}
if ! command -v debootstrap >/dev/null; then
    step "installing debootstrap on the host"
    apt_host update -qq >"$cache/host-apt.log" 2>&1 \
        || { cat "$cache/host-apt.log" >&2; die "apt-get update failed"; }
    apt_host install -y -qq --no-install-recommends debootstrap >>"$cache/host-apt.log" 2>&1 \
        || { tail -n 30 "$cache/host-apt.log" >&2; die "apt-get install debootstrap failed"; }
    step_end
fi
[[ -e /usr/share/debootstrap/scripts/$suite ]] \
    || die "this debootstrap does not know $suite (too old?)"

# The mirror: the first Debian archive (not -security) the host's apt uses,
# one-line or deb822 format.
host_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
             /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] || continue
        if [[ $f == *.sources ]]; then
            sed -n 's/^URIs:[[:space:]]*//p' "$f" | tr ' ' '\n'
        else
            awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' "$f"
        fi
    done | { grep -E '^https?://[^ ]*/debian/?$' || true; } | head -n 1
}
mirror=${VFPM_DEBIAN_MIRROR:-$(host_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
log "mirror $mirror"

# ---------------------------------------------------------------- chroot
# Built in CACHE/root.tmp and renamed when complete, so an interrupted run
# leaves nothing that looks usable. The chroot steps run in a private mount
# namespace: the /proc and /dev they mount vanish with it, even on failure.
tmp=$cache/root.tmp
remove_tree() {
    # --one-file-system: never descend into a mount that somehow survived.
    [[ -e $1 ]] || return 0
    if grep -qF " $1/" /proc/self/mountinfo; then
        die "$1 still has mounts under it (see /proc/self/mountinfo); unmount them first"
    fi
    rm -rf --one-file-system "$1"
}
remove_tree "$tmp"
rm -f "$stamp"

step "debootstrap --variant=minbase $suite"
dlog=$cache/debootstrap.log
if ! debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$dlog" 2>&1; then
    tail -n 30 "$dlog" >&2
    [[ -f $tmp/debootstrap/debootstrap.log ]] && tail -n 30 "$tmp/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (full log: $dlog)"
fi
step_end

# Same mirror for the main suite, its updates and backports. The host's apt
# settings on Release validity (a mirror that serves an archive snapshot
# needs Check-Valid-Until off) are carried over.
cat > "$tmp/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $mirror $suite-backports main
EOF
: > "$tmp/etc/apt/apt.conf.d/90vfpm"
for opt in Acquire::Check-Valid-Until Acquire::Check-Date; do
    v=$(apt-config dump "$opt" | sed -n "s/^$opt \"\\(.*\\)\";\$/\\1/p")
    [[ -n $v ]] && echo "$opt \"$v\";" >> "$tmp/etc/apt/apt.conf.d/90vfpm"
done
# No documentation or translations: the chroot only runs QEMU.
cat > "$tmp/etc/dpkg/dpkg.cfg.d/90vfpm-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
EOF

in_chroot() {
    # shellcheck disable=SC2016  # expanded by the inner shell
    unshare --mount --propagation private -- /bin/sh -c '
        set -e
        r=$1; shift
        mount -t proc proc "$r/proc"
        mount --rbind /dev "$r/dev"
        exec chroot "$r" "$@"' sh "$tmp" "$@"
}

step "apt-get update in the chroot"
in_chroot apt-get update -qq >&2 || die "apt-get update in the chroot failed"
step_end

step "apt-get install -t $suite-backports ${qemu_pkgs[*]}"
in_chroot apt-get install -y -qq --no-install-recommends -t "$suite-backports" \
    "${qemu_pkgs[@]}" >"$cache/install.log" 2>&1 \
    || { tail -n 30 "$cache/install.log" >&2; die "apt-get install in the chroot failed (log: $cache/install.log)"; }
in_chroot apt-get clean
step_end

step "checking the vfio-user client"
# Captured first: grep -q ending the pipe early would fail it under pipefail.
devices=$(in_chroot /usr/bin/qemu-system-x86_64 -device help 2>&1) \
    || die "qemu-system-x86_64 in the chroot does not run: $devices"
grep -q '"vfio-user-pci"' <<<"$devices" \
    || die "qemu-system-x86_64 in the chroot has no vfio-user-pci device"
step_end

mv "$tmp" "$root.new"
remove_tree "$root"
mv "$root.new" "$root"
echo "$want_stamp" > "$stamp"

version=$(qemu_version)
log "total $(awk -v a="$total_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')"
log "chroot in $root ($(du -sm "$root" | cut -f1) MB)"
echo "$version"
echo "$cache"
