#!/usr/bin/env bash
# libvfpm as a device author meets it: `meson install` into a staging dir,
# then samples/counter and samples/doorbell built outside the tree with
# pkg-config alone, run against the installed shared library, and the
# installed files checked.
#   test_install.sh BUILD SRC
set -uo pipefail
build=$1 src=$2
stage=$(mktemp -d "${TMPDIR:-/tmp}/vfpm-install.XXXXXX")
trap 'rm -rf "$stage"' EXIT
pass=0 fail=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }
bad() { echo "not ok - $*"; fail=$((fail + 1)); }

if meson install -C "$build" --destdir "$stage" --no-rebuild >"$stage/install.log" 2>&1; then
	ok "meson install"
else
	bad "meson install: $(tail -n 5 "$stage/install.log")"
fi
pc=$(find "$stage" -name vfpm.pc | head -n 1)
so=$(find "$stage" -name 'libvfpm.so.0' | head -n 1)
[[ -n $pc ]] && ok "vfpm.pc installed" || bad "no vfpm.pc"
[[ -n $so ]] && ok "libvfpm.so.0 installed" || bad "no libvfpm.so.0"
[[ -n $(find "$stage" -path '*/include/vfpm/pci.h') ]] && ok "headers installed" || bad "no headers"
[[ -z $(find "$stage" -name devices.h) ]] && ok "the sample devices' header is not public" ||
	bad "devices.h installed"
[[ -n $(find "$stage" -path '*/bin/vfpm') ]] && ok "vfpm installed" || bad "no vfpm binary"
[[ -n $(find "$stage" -name 'vfpm.1*') ]] && ok "man page installed" || bad "no man page"

if [[ -n $pc && -n $so ]]; then
	# The .pc file names the final prefix; point it at the staging copy.
	prefix=$(sed -n 's/^prefix=//p' "$pc")
	sed "s|^prefix=.*|prefix=$stage$prefix|" "$pc" > "$stage/vfpm.pc"
	export PKG_CONFIG_PATH=$stage
	# A sanitizer build's library needs its runtime in the program too (grep
	# reads all of nm's output: with -q and pipefail, nm's SIGPIPE fails the test).
	cc=(cc)
	if nm -D "$so" | grep ' U __asan_init' >/dev/null; then
		cc=(clang -fsanitize=address,undefined)
	fi
	if "${cc[@]}" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror "$src/samples/counter/counter.c" \
		$(pkg-config --cflags --libs vfpm) -o "$stage/counter" 2>"$stage/cc.log"; then
		ok "samples/counter builds with pkg-config alone"
	else
		bad "samples/counter does not build: $(head -n 5 "$stage/cc.log")"
	fi
	if [[ -x $stage/counter ]]; then
		out=$(LD_LIBRARY_PATH=$(dirname "$so") "$stage/counter" "$stage/counter.sock" 2>&1)
		grep -q '^counter: ok' <<<"$out" && ok "samples/counter runs on the installed library" ||
			bad "samples/counter: $out"
		lib=$(LD_LIBRARY_PATH=$(dirname "$so") ldd "$stage/counter" | awk '/libvfpm/ { print $3 }')
		[[ $lib == "$(dirname "$so")"/* ]] && ok "it links the installed libvfpm.so.0" ||
			bad "it links '$lib'"
	fi
	# The guide's device: mixed BAR, vendor capability, DMA, polling that sleeps.
	if "${cc[@]}" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror "$src/samples/doorbell/doorbell.c" \
		"$src/samples/doorbell/check.c" $(pkg-config --cflags --libs vfpm) -o "$stage/doorbell" \
		2>"$stage/cc.log"; then
		ok "samples/doorbell builds with pkg-config alone"
		out=$(LD_LIBRARY_PATH=$(dirname "$so") "$stage/doorbell" --check "$stage/doorbell.sock" 2>&1)
		grep -q '^doorbell: all ok' <<<"$out" && ok "samples/doorbell runs on the installed library" ||
			bad "samples/doorbell: $(grep -v ': ok ' <<<"$out")"
	else
		bad "samples/doorbell does not build: $(head -n 5 "$stage/cc.log")"
	fi
fi
echo "$pass passed, $fail failed"
(( fail == 0 ))
