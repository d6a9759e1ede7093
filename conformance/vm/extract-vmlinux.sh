#!/usr/bin/env bash
# extract-vmlinux.sh BZIMAGE OUT
# Writes the uncompressed ELF vmlinux embedded in an x86 bzImage to OUT.
# Uses the boot-protocol header (>= 2.08): setup_sects at 0x1f1,
# payload_offset at 0x248 and payload_length at 0x24c; the payload starts
# payload_offset bytes into the protected-mode part, which begins after
# (setup_sects + 1) 512-byte sectors. Every compressor except gzip has the
# uncompressed size appended as 4 trailing bytes, which are dropped.
set -euo pipefail
in=${1:?usage: extract-vmlinux.sh BZIMAGE OUT}
out=${2:?usage: extract-vmlinux.sh BZIMAGE OUT}

u8()  { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' \n'; }
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' \n'; }
hex() { od -An -tx1 -j "$2" -N"$3" "$1" | tr -d ' \n'; }

[[ $(hex "$in" $((0x202)) 4) == 48647253 ]] || { echo "extract-vmlinux: $in: not a bzImage (no HdrS)" >&2; exit 1; }
ver=$(od -An -tu2 -j $((0x206)) -N2 "$in" | tr -d ' \n')
(( ver >= 0x208 )) || { echo "extract-vmlinux: boot protocol $ver too old" >&2; exit 1; }
setup=$(u8 "$in" $((0x1f1))); (( setup == 0 )) && setup=4
poff=$(u32 "$in" $((0x248))); plen=$(u32 "$in" $((0x24c)))
start=$(( (setup + 1) * 512 + poff ))
magic=$(hex "$in" "$start" 6)

case $magic in
  1f8b*)         dec=(gzip -dc);               trim=0 ;;
  fd377a585a00)  dec=(xz -dc --single-stream); trim=4 ;;
  28b52ffd*)     dec=(zstd -dcq);              trim=4 ;;
  425a68*)       dec=(bzip2 -dc);              trim=4 ;;
  5d00*)         dec=(xz -dc --format=lzma);   trim=4 ;;
  02214c18*)     dec=(lz4 -dc);                trim=4 ;;
  *) echo "extract-vmlinux: unknown payload magic $magic at $start" >&2; exit 1 ;;
esac
command -v "${dec[0]}" >/dev/null || { echo "extract-vmlinux: needs ${dec[0]}" >&2; exit 1; }

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
dd if="$in" iflag=skip_bytes,count_bytes skip="$start" count="$((plen - trim))" bs=1M status=none \
  | "${dec[@]}" > "$tmp"
[[ $(hex "$tmp" 0 4) == 7f454c46 ]] || { echo "extract-vmlinux: result is not ELF" >&2; exit 1; }
mv "$tmp" "$out"
