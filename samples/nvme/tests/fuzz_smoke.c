// SPDX-License-Identifier: MIT
/*
 * fuzz/fuzz_nvme.c without libFuzzer: its entry points over pseudo-random
 * inputs from a fixed seed (and any files named on the command line), so
 * that the target is built and exercised by every test run, not only by
 * -Dfuzz=true builds.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMOKE_INPUTS 400
#define SMOKE_MAX_LEN 4096

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint8_t next_byte(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint8_t)(rng >> 24);
}

int main(int argc, char **argv)
{
	static uint8_t buf[SMOKE_MAX_LEN];

	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (!f) {
			perror(argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	for (int i = 0; i < SMOKE_INPUTS; i++) {
		size_t len = (size_t)(next_byte() << 4 | (next_byte() & 0xf)) % SMOKE_MAX_LEN;

		for (size_t b = 0; b < len; b++) {
			uint8_t v = next_byte();

			/* Ops 0 and 1 (commands) and small opcodes, more often than bytes would. */
			buf[b] = b % 67 == 0 ? v % 2 : b % 67 == 1 ? v % 0x10 : v;
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("fuzz-nvme-smoke: %d inputs, no crash\n", SMOKE_INPUTS + argc - 1);
	return 0;
}
