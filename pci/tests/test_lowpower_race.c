// SPDX-License-Identifier: MIT
/*
 * The low power race (issue 3), looped: instance 1 is inside a long BAR read
 * (the model parks it) when instance 2 asks for low power.  ENTRY returns 0,
 * the device stays ACTIVE until the read returns, and only then suspends.
 * The model counts any BAR access made while it is suspended or not ACTIVE.
 * Odd iterations use ENTRY_WITH_WAKEUP: the eventfd must not fire for the
 * reader (the device never suspended under it), only for the EXIT that wakes
 * the device afterwards.  Also runs under ThreadSanitizer (make tsan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "pci_test_util.h"

#define ITERATIONS 1000
#define READ_OFFSET 0x180
#define READ_LEN 64

struct reader {
	struct vfpm_instance *inst;
	uint8_t buf[READ_LEN];
	ssize_t ret;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	r->ret = tm_read(r->inst, VFIO_PCI_BAR2_REGION_INDEX, READ_OFFSET, r->buf, READ_LEN);
	return NULL;
}

static int setup_open(void **state)
{
	return tm_fixture_setup(state, true);
}

/* The second instance, closed by teardown if a failed test left it open. */
static struct vfpm_instance *second;

static int teardown(void **state)
{
	if (second)
		vfpm_instance_close(second);
	second = NULL;
	return tm_fixture_teardown(state);
}

static void test_entry_waits_for_request_in_flight(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int efd = tm_eventfd_new();

	assert_true(efd >= 0);
	assert_int_equal(vfpm_device_open(vfpm_pci_device(m->pdev), &second), 0);
	assert_int_equal(tm_set_memory(fx->inst, true), 0);

	for (int i = 0; i < ITERATIONS; i++) {
		struct reader r = { .inst = fx->inst, .ret = -1 };
		bool wakeup = i & 1;
		pthread_t thread;
		int suspends = atomic_load(&m->suspends);

		tm_read_gate_close(m);
		assert_int_equal(pthread_create(&thread, NULL, reader_main, &r), 0);
		if (tm_read_gate_wait(m, 1, TM_SOON_MS)) {
			tm_read_gate_open(m);
			pthread_join(thread, NULL);
			fail_msg("iteration %d: the read never reached the model", i);
		}

		assert_int_equal(wakeup ? tm_entry_wakeup(second, efd, NULL) : tm_entry(second), 0);
		/* The reader's request holds the device awake. */
		if (!tm_stays_active(m, 0)) {
			tm_read_gate_open(m);
			pthread_join(thread, NULL);
			fail_msg("iteration %d: the device did not stay ACTIVE under a request", i);
		}
		assert_int_equal(atomic_load(&m->suspends), suspends);

		tm_read_gate_open(m);
		assert_int_equal(pthread_join(thread, NULL), 0);
		assert_int_equal(r.ret, READ_LEN);
		for (int b = 0; b < READ_LEN; b++)
			assert_int_equal(r.buf[b], tm_bar2_pattern(READ_OFFSET + b));

		/* Once it has returned, the device suspends. */
		if (tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS))
			fail_msg("iteration %d: no suspend after the request returned (%s)", i,
				 vfpm_pm_status_name(vfpm_pm_status(m->pm)));
		assert_int_equal(atomic_load(&m->suspends), suspends + 1);
		assert_int_equal(tm_eventfd_take(efd), 0);

		assert_int_equal(tm_exit(second), 0);
		assert_int_equal(vfpm_pm_status(m->pm), VFPM_PM_ACTIVE);
		assert_int_equal(tm_eventfd_take(efd), wakeup ? 1 : 0);
		assert_int_equal(atomic_load(&m->violations), 0);
	}

	vfpm_instance_close(second);
	second = NULL;
	close(efd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_entry_waits_for_request_in_flight,
						setup_open, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
