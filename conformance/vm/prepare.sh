#!/usr/bin/env bash
# prepare.sh — make everything the Linux reference VM needs, from Debian
# packages only. Idempotent: a second run does nothing but check.
#
#   - installs qemu-system-x86, busybox-static, cpio, gcc/libc6-dev when missing
#   - downloads Debian's linux-image-6.1.0-N-amd64 (the one linux-image-amd64
#     depends on, or $VFPM_VM_KPKG) with `apt-get download`, unpacks it with
#     `dpkg -x` (never installs it) and keeps only the kernel, the VFIO
#     modules and the NVMe driver's (nvme, nvme-core; for the interop guest),
#     each set with its dependencies from each module's .modinfo
#   - extracts the uncompressed vmlinux from the bzImage, for a PVH boot
#   - builds the base initramfs: busybox, the modules, /init
#   - builds the static probe program (probe.c)
#
# Cache: $VFPM_VM_CACHE, default <repo>/build/conformance-vm (gitignored).
# Prints the cache dir on its last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VFPM_VM_CACHE:-$repo/build/conformance-vm}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { echo "prepare: $*" >&2; }
die() { echo "prepare: error: $*" >&2; exit 1; }

[[ $(uname -m) == x86_64 ]] || die "needs an x86_64 host (got $(uname -m))"

# One preparer at a time per cache (parallel run.sh calls share it).
exec 9>"$cache/.lock"
flock 9

# ---------------------------------------------------------------- packages
apt_updated=0
apt_update() {
    if (( ! apt_updated )); then
        log "apt-get update"
        apt-get update -qq >&2 || die "apt-get update failed"
        apt_updated=1
    fi
}
need_pkgs=()
installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == *"ok installed"* ]]; }
for p in qemu-system-x86 qemu-system-data seabios busybox-static cpio gcc libc6-dev \
         linux-libc-dev xz-utils gzip coreutils file util-linux; do
    installed "$p" || need_pkgs+=("$p")
done
if (( ${#need_pkgs[@]} )); then
    (( EUID == 0 )) || die "missing packages ${need_pkgs[*]}; run as root to install them"
    apt_update
    log "installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${need_pkgs[@]}" >&2 || die "apt-get install ${need_pkgs[*]} failed"
fi
grep -q 'LOW_POWER_ENTRY_WITH_WAKEUP' /usr/include/linux/vfio.h \
    || die "/usr/include/linux/vfio.h predates Linux 6.1 (no low-power features)"

# ---------------------------------------------------------------- kernel
# Which package: $VFPM_VM_KPKG, else the one the linux-image-amd64 metapackage
# pulls in (bookworm's current 6.1 ABI).
pick_kpkg() {
    local p
    p=$(apt-cache depends linux-image-amd64 2>/dev/null \
        | sed -n 's/^ *Depends: *\(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | sort -V | tail -n 1)
    if [[ -z $p ]]; then
        p=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null \
            | awk '{print $1}' | sort -V | tail -n 1)
    fi
    echo "$p"
}
kpkg=${VFPM_VM_KPKG:-}
if [[ -z $kpkg && -f $cache/kpkg ]]; then kpkg=$(cat "$cache/kpkg"); fi
if [[ -z $kpkg ]]; then
    kpkg=$(pick_kpkg)
    if [[ -z $kpkg ]]; then apt_update; kpkg=$(pick_kpkg); fi
    [[ -n $kpkg ]] || die "apt offers no linux-image-6.1.0-*-amd64"
fi
[[ $kpkg =~ ^linux-image-(6\.1\.0-[0-9]+-amd64)$ ]] || die "unexpected kernel package '$kpkg'"
kver=${BASH_REMATCH[1]}
kdir=$cache/$kver
# The module sets the VM gets, each with its dependencies in load order:
# vfio in modules/ (/lib/modules/ in the initramfs, loaded by init.sh), nvme
# in modules/nvme/ (/lib/modules/nvme/, loaded only by the interop guest's
# NVMe case). .done records them, so a changed list unpacks the kernel again.
vfio_mods=(irqbypass vfio vfio_virqfd vfio_iommu_type1 vfio-pci-core vfio-pci)
nvme_mods=(nvme-core nvme)
want_done="vfio=${vfio_mods[*]} nvme=${nvme_mods[*]}"

if [[ ! -f $kdir/.done || $(cat "$kdir/.done") != "$want_done" ]]; then
    rm -rf "$kdir"; mkdir -p "$kdir/deb"
    log "apt-get download $kpkg"
    dl() { ( cd "$kdir/deb" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >&2 ); }
    dl || { apt_update; dl; } || die "apt-get download $kpkg failed"
    deb=$(ls "$kdir"/deb/*.deb)
    tmp=$kdir/unpack
    log "dpkg -x $(basename "$deb")"
    dpkg -x "$deb" "$tmp"
    cp "$tmp/boot/vmlinuz-$kver" "$kdir/bzImage"
    cp "$tmp/boot/config-$kver" "$kdir/config"
    moddir=$(echo "$tmp"/lib/modules/"$kver"/kernel)
    [[ -d $moddir ]] || die "no module tree in $deb"

    # Resolve modules and their dependencies (depends= in .modinfo), in load order.
    find_mod() {   # module name (- or _) -> path of .ko / .ko.xz / .ko.zst
        local n=$1 alt
        alt=${n//-/_}; local alt2=${n//_/-}
        find "$moddir" \( -name "$n.ko*" -o -name "$alt.ko*" -o -name "$alt2.ko*" \) -print -quit
    }
    modinfo_depends() {  # path -> comma-separated deps
        case $1 in
            *.ko.xz)  xz -dc "$1" ;;
            *.ko.zst) zstd -dcq "$1" ;;
            *.ko.gz)  gzip -dc "$1" ;;
            *)        cat "$1" ;;
        esac | tr '\0' '\n' | sed -n 's/^depends=//p' 
    }
    declare -A seen=()
    order=()
    visit() {
        local n=${1//-/_} p d
        [[ -n ${seen[$n]:-} ]] && return 0
        seen[$n]=1
        p=$(find_mod "$1"); [[ -n $p ]] || die "module $1 not in $kpkg"
        IFS=, read -r -a deps <<<"$(modinfo_depends "$p")"
        for d in "${deps[@]}"; do [[ -n $d ]] && visit "$d"; done
        order+=("$p")
    }
    keep_set() {   # keep_set DIR MODULE...: DIR/*.ko and DIR/order, deps first
        local out=$1 p b; shift
        seen=() order=()
        for m in "$@"; do visit "$m"; done
        mkdir -p "$out"
        : > "$out/order"
        for p in "${order[@]}"; do
            b=$(basename "$p"); b=${b%%.ko*}
            case $p in
                *.ko.xz)  xz -dc "$p" > "$out/$b.ko" ;;
                *.ko.zst) zstd -dcq "$p" > "$out/$b.ko" ;;
                *.ko.gz)  gzip -dc "$p" > "$out/$b.ko" ;;
                *)        cp "$p" "$out/$b.ko" ;;
            esac
            echo "$b" >> "$out/order"
        done
        log "modules in ${out#"$kdir"/}: $(tr '\n' ' ' < "$out/order")"
    }
    keep_set "$kdir/modules" "${vfio_mods[@]}"
    # CONFIG_BLK_DEV_NVME=y would leave nothing to load: an empty order.
    if grep -q '^CONFIG_BLK_DEV_NVME=m' "$kdir/config"; then
        keep_set "$kdir/modules/nvme" "${nvme_mods[@]}"
    else
        mkdir -p "$kdir/modules/nvme"; : > "$kdir/modules/nvme/order"
        log "nvme is built into $kver (or absent): no modules to keep"
    fi
    rm -rf "$tmp" "$kdir/deb"   # keep only what the VM needs (~75 MB)
    echo "$want_done" > "$kdir/.done"
fi
echo "$kpkg" > "$cache/kpkg"

if [[ ! -f $kdir/vmlinux ]]; then
    log "extracting vmlinux"
    if bash "$here/extract-vmlinux.sh" "$kdir/bzImage" "$kdir/vmlinux.try"; then
        mv "$kdir/vmlinux.try" "$kdir/vmlinux"
    else
        log "warning: could not extract vmlinux; run.sh will boot the bzImage"
    fi
fi

# ---------------------------------------------------------------- initramfs
init_src=$here/init.sh
base=$cache/base-$kver.cpio.gz
stamp_in="$(sha256sum "$init_src" "$kdir/modules/order" "$kdir/modules/nvme/order" /bin/busybox \
    | sha256sum | cut -c1-16)"
if [[ ! -f $base || $(cat "$base.stamp" 2>/dev/null) != "$stamp_in" ]]; then
    log "building base initramfs"
    r=$cache/rootfs.tmp
    rm -rf "$r"; mkdir -p "$r"/{bin,sbin,dev,proc,sys,tmp,lib/modules,vfpm}
    cp /bin/busybox "$r/bin/busybox"
    ln -s busybox "$r/bin/sh"
    cp "$kdir"/modules/*.ko "$kdir/modules/order" "$r/lib/modules/"
    mkdir -p "$r/lib/modules/nvme"
    cp "$kdir/modules/nvme/order" "$r/lib/modules/nvme/"
    if [[ -s $kdir/modules/nvme/order ]]; then cp "$kdir"/modules/nvme/*.ko "$r/lib/modules/nvme/"; fi
    cp "$init_src" "$r/init"; chmod 755 "$r/init"
    ( cd "$r" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) \
        | gzip -1 > "$base.tmp"
    mv "$base.tmp" "$base"; echo "$stamp_in" > "$base.stamp"
    rm -rf "$r"
fi

# ---------------------------------------------------------------- probe
probe=$cache/probe
if [[ ! -x $probe || $here/probe.c -nt $probe ]]; then
    log "building probe (gcc -static)"
    gcc -std=gnu11 -O2 -Wall -Wextra -static -o "$probe.tmp" "$here/probe.c" -lpthread
    mv "$probe.tmp" "$probe"
fi

echo "$cache"
