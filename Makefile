# Thin wrapper around meson/ninja.  Every target installs what it needs from
# Debian when it is missing (CI and fresh machines run as root).
SHELL := /bin/bash
BUILD ?= build
MESON_TEST := meson test --print-errorlogs --num-processes 2
# Warnings are errors in CI (CI=true), not for everyone who builds vfpm.
WERROR := $(if $(filter true,$(CI)),-Dwerror=true,)

.PHONY: all deps build test sanitize tsan bench demo demo-qemu conformance fuzz soak clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	meson setup $(WERROR) $(BUILD)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

test: build
	$(MESON_TEST) -C $(BUILD)

# ASan + UBSan build running the whole test suite.
sanitize: deps
	@[ -f build-asan/build.ninja ] || CC=clang meson setup $(WERROR) build-asan \
	    -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false
	ninja -C build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    $(MESON_TEST) -C build-asan

# ThreadSanitizer build running the concurrency tests.
tsan: deps
	@[ -f build-tsan/build.ninja ] || CC=clang meson setup $(WERROR) build-tsan \
	    -Db_sanitize=thread -Db_lundef=false -Dbench=false
	ninja -C build-tsan
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    setarch $$(uname -m) -R $(MESON_TEST) -C build-tsan --suite concurrency

bench: build
	bash bench/run.sh $(BUILD)

# The main job: a polling device that really sleeps, walked through by a client.
demo: build
	bash tools/demo/demo.sh $(BUILD)

# The guest act: a Linux guest under QEMU 11 holds the polling device in D0,
# D3hot and D0 again, and the server's CPU is shown in each.
demo-qemu: build
	bash interop/run-guest.sh -d poller --phase $${PHASE_SECONDS:-5} $(BUILD)

# The conformance scenarios against vfpm and against Linux 6.1 in QEMU.
conformance: build
	bash conformance/run.sh $(BUILD)

# libFuzzer targets (clang), each for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz: deps
	bash fuzz/run.sh $(FUZZ_SECONDS)

# Many clients, valid and invalid requests, low-power transitions (not in CI).
SOAK_SECONDS ?= 600
soak: build
	bash soak/run.sh $(BUILD) $(SOAK_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
