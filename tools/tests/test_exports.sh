#!/usr/bin/env bash
# libvfpm exports exactly its documented API: every dynamic symbol of the
# shared library is a function a public header declares with VFPM_API, and
# every such declaration is exported.
#   test_exports.sh LIBVFPM.so INCLUDE_DIR
set -uo pipefail
lib=$1 incdir=$2
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }

exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWDdBbRrVi]$/ { print $3 }' | sort -u)
declared=$(python3 - "$incdir" <<'PY'
import re, sys, glob
names = set()
for h in glob.glob(sys.argv[1] + "/vfpm/*.h"):
    text = open(h).read()
    for m in re.finditer(r"VFPM_API\s+[^;(]*?\b(vfpm_\w+)\s*\(", text):
        names.add(m.group(1))
print("\n".join(sorted(names)))
PY
)
n_exp=$(grep -c . <<<"$exported")
n_dec=$(grep -c . <<<"$declared")
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
[[ -z $extra ]] && ok "all $n_exp exported symbols are declared VFPM_API in include/vfpm" ||
	bad "exported but not public API: $(echo $extra)"
[[ -z $missing ]] && ok "all $n_dec VFPM_API declarations are exported" ||
	bad "declared VFPM_API but not exported: $(echo $missing)"
grep -q '^vfpm_' <<<"$exported" && ! grep -qv '^vfpm_' <<<"$exported" &&
	ok "every exported symbol has the vfpm_ prefix" || bad "symbols without the vfpm_ prefix"
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
[[ $soname == libvfpm.so.0 ]] && ok "soname $soname" || bad "soname '$soname'"
echo "$pass passed, $fail failed"
(( fail == 0 ))
