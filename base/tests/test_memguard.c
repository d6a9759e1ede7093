// SPDX-License-Identifier: MIT
/*
 * Guarded memory: a mapping whose file is truncated under it faults into
 * zeros instead of killing the process, the fault is counted on its range,
 * and a SIGBUS anywhere else still reaches the handler the program had.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "base.h"

#define SIZE (4u * 4096u)

static int make_file(uint8_t fill, uint8_t **map)
{
	int fd = memfd_create("guarded", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	*map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(*map != MAP_FAILED);
	memset(*map, fill, SIZE);
	return fd;
}

static void test_truncated_file_reads_zeros(void **state)
{
	struct vfpm_memguard *g;
	unsigned long total = vfpm_memguard_total_faults();
	uint8_t *map, copy[SIZE];
	int fd = make_file(0x77, &map);

	(void)state;
	/* cmocka installs its own SIGBUS handler for every test. */
	assert_int_equal(vfpm_memguard_install(), 0);
	assert_int_equal(vfpm_memguard_add(map, SIZE, PROT_READ | PROT_WRITE, &g), 0);
	assert_int_equal(vfpm_memguard_faults(g), 0);
	/* Half the file goes: the first two pages stay, the last two fault. */
	assert_int_equal(ftruncate(fd, SIZE / 2), 0);
	memcpy(copy, map, SIZE);
	for (size_t i = 0; i < SIZE / 2; i++)
		assert_int_equal(copy[i], 0x77);
	for (size_t i = SIZE / 2; i < SIZE; i++)
		assert_int_equal(copy[i], 0);
	assert_int_equal(vfpm_memguard_faults(g), 2);
	assert_int_equal(vfpm_memguard_total_faults(), total + 2);
	/* A write lands in the private page: no fault, nobody else sees it. */
	map[SIZE - 1] = 0x42;
	assert_int_equal(map[SIZE - 1], 0x42);
	assert_int_equal(vfpm_memguard_faults(g), 2);
	vfpm_memguard_rearm(g, map, SIZE);
	assert_int_equal(vfpm_memguard_faults(g), 0);
	vfpm_memguard_remove(g);
	munmap(map, SIZE);
	close(fd);
}

static sigjmp_buf theirs_jump;
static volatile sig_atomic_t theirs_called;

static void their_handler(int sig)
{
	(void)sig;
	theirs_called++;
	siglongjmp(theirs_jump, 1);
}

/*
 * A fault outside every guarded range is the program's: its handler, which
 * it installed before the guard's, runs.  First in the file: the guard's
 * handler is installed by the first add in the process.
 */
static void test_unguarded_fault_chains(void **state)
{
	struct sigaction sa = { .sa_handler = their_handler }, old;
	struct vfpm_memguard *g;
	uint8_t *guarded, *plain;
	int gfd = make_file(1, &guarded), pfd = make_file(2, &plain);
	volatile uint8_t sink = 0;

	(void)state;
	/* Theirs first, then ours (the guard installs its handler on the first add). */
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGBUS, &sa, &old), 0);
	assert_int_equal(vfpm_memguard_add(guarded, SIZE, PROT_READ, &g), 0);
	assert_int_equal(sigaction(SIGBUS, NULL, &sa), 0);
	assert_true(sa.sa_handler != their_handler);
	/* A guarded fault is still recovered... */
	assert_int_equal(ftruncate(gfd, 0), 0);
	assert_int_equal(guarded[4096], 0);
	assert_int_equal(vfpm_memguard_faults(g), 1);
	assert_int_equal(theirs_called, 0);
	/* ...and an unguarded one is theirs. */
	assert_int_equal(ftruncate(pfd, 0), 0);
	if (sigsetjmp(theirs_jump, 1) == 0)
		sink = plain[0];
	assert_int_equal(theirs_called, 1);
	(void)sink;
	vfpm_memguard_remove(g);
	munmap(guarded, SIZE);
	munmap(plain, SIZE);
	close(gfd);
	close(pfd);
}

/* Many ranges at once (DMA windows by the thousand), and their slots reused. */
static void test_many_ranges(void **state)
{
	enum { N = 3000 };
	static struct vfpm_memguard *g[N];
	uint8_t *map;
	int fd = make_file(9, &map);

	(void)state;
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < N; i++)
			assert_int_equal(vfpm_memguard_add(map + (i % 4) * 4096, 4096, PROT_READ,
							   &g[i]), 0);
		for (int i = 0; i < N; i++)
			vfpm_memguard_remove(g[i]);
	}
	munmap(map, SIZE);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unguarded_fault_chains),
		cmocka_unit_test(test_truncated_file_reads_zeros),
		cmocka_unit_test(test_many_ranges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
