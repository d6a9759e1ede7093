/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the fuzz targets. */
#ifndef VFPM_FUZZ_UTIL_H
#define VFPM_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct test_model;

/* libFuzzer's entry points, which each target defines (Initialize if it needs to). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The device fuzz_server and fuzz_feature serve: the tests' model
 * (tests/model) with BAR2's registers and bulk DMA, BAR4 mappable, FLR and
 * 4 MSI vectors, which aborts on a broken promise (a trapped access while
 * not ACTIVE is the bug the runtime PM core exists to prevent), so that the
 * fuzzer reports it as a crash.  Aborts when it cannot be created.
 */
struct test_model *fuzz_model_create(void);
/*
 * Wait until the device is idle again after its last close (suspended:
 * nothing holds it).  Aborts when it does not get there: a usage reference
 * leaked, or low power stayed engaged.
 */
void fuzz_model_wait_idle(struct test_model *m);

/* Read sock until EOF, closing every fd that arrives (SCM_RIGHTS). */
void fuzz_drain(int sock);
/*
 * Abort when the lowest free fd number has grown well past the first one
 * seen (*baseline, -1 at first): an fd leaks with every input.
 */
void fuzz_check_fds(int *baseline);

/*
 * Lines of /proc/self/maps, -1 when it cannot be read; counts[i] gets the
 * number of lines that contain needles[i].
 */
int fuzz_count_maps(const char *const *needles, unsigned int n, int *counts);
/* Threads of the process (/proc/self/task), -1 when it cannot be read. */
int fuzz_count_threads(void);
/*
 * Abort when the process has more threads than *baseline (-1 at first: the
 * count now becomes it) for longer than a joined thread takes to disappear.
 */
void fuzz_check_threads(int *baseline);
/* Sleep ms milliseconds, whatever signals come (libFuzzer's timers). */
void fuzz_sleep_ms(unsigned int ms);

/* Consume bytes from an input, zero once it is used up. */
struct fuzz_in {
	const uint8_t *p;
	size_t left;
};
uint8_t fuzz_u8(struct fuzz_in *in);
uint16_t fuzz_u16(struct fuzz_in *in);
uint32_t fuzz_u32(struct fuzz_in *in);
/* Up to len bytes into buf (the rest zero); returns how many came from the input. */
size_t fuzz_bytes(struct fuzz_in *in, void *buf, size_t len);

#endif /* VFPM_FUZZ_UTIL_H */
