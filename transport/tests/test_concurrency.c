// SPDX-License-Identifier: MIT
/*
 * Eight clients on one device: seven issue requests while the eighth toggles
 * low power (ENTRY / ENTRY_WITH_WAKEUP / EXIT).  Every request succeeds, the
 * model is never touched while the device is not ACTIVE, and the device
 * ends suspended once everyone has left.  And requests that block in the
 * model, more of them than the event loop has threads, hold up only their
 * own connections.  Also run under ThreadSanitizer (make tsan).
 */
#include "test_util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#define WORKERS 7
#define WORKER_ITERATIONS 150
#define TOGGLES 60

struct shared {
	struct tfix *f;
	pthread_barrier_t start;
	atomic_uint failures;
	atomic_uint wake_signals;
	unsigned int arms;
};

struct worker {
	struct shared *sh;
	struct vfpm_client *c;
	unsigned int id;
};

static void check(struct shared *sh, bool ok)
{
	if (!ok)
		atomic_fetch_add(&sh->failures, 1);
}

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;

	pthread_barrier_wait(&sh->start);
	for (unsigned int i = 0; i < WORKER_ITERATIONS; i++) {
		struct vfio_device_info info;
		uint16_t vendor = 0;
		uint32_t id = 0, v = w->id * 1000 + i;

		check(sh, vfpm_client_region_read(w->c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID,
						  &vendor, 2) == 2 && vendor == TM_VENDOR_ID);
		check(sh, vfpm_client_region_read(w->c, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_ID, &id,
						  4) == 4 && id == TM_ID);
		/* Each worker owns one word of BAR2 past the registers. */
		check(sh, vfpm_client_region_write(w->c, VFIO_PCI_BAR2_REGION_INDEX,
						   0x100 + 4 * w->id, &v, 4) == 4);
		id = 0;
		check(sh, vfpm_client_region_read(w->c, VFIO_PCI_BAR2_REGION_INDEX,
						  0x100 + 4 * w->id, &id, 4) == 4 && id == v);
		if (i % 8 == 0)
			check(sh, vfpm_client_get_info(w->c, &info) == 0 &&
				  info.num_regions == VFIO_PCI_NUM_REGIONS);
	}
	return NULL;
}

static void *toggler_thread(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	int efd = t_eventfd();

	pthread_barrier_wait(&sh->start);
	for (unsigned int i = 0; i < TOGGLES; i++) {
		if (i % 2) {
			check(sh, vfpm_client_low_power_entry_with_wakeup(w->c, efd) == 0);
			sh->arms++;
		} else {
			check(sh, vfpm_client_low_power_entry(w->c) == 0);
		}
		check(sh, vfpm_client_low_power_exit(w->c) == 0);
		atomic_fetch_add(&sh->wake_signals, (unsigned int)t_eventfd_read(efd));
	}
	close(efd);
	return NULL;
}

static void test_eight_clients_toggling(void **state)
{
	struct tfix *f = *state;
	struct shared sh = { .f = f };
	struct worker w[WORKERS + 1];
	pthread_t t[WORKERS + 1];

	pthread_barrier_init(&sh.start, NULL, WORKERS + 1);
	for (unsigned int i = 0; i <= WORKERS; i++) {
		w[i] = (struct worker){ .sh = &sh, .c = tfix_connect(f), .id = i };
	}
	t_enable_memory(w[0].c);
	tfix_wait_conns(f, WORKERS + 1);
	for (unsigned int i = 0; i < WORKERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker_thread, &w[i]), 0);
	assert_int_equal(pthread_create(&t[WORKERS], NULL, toggler_thread, &w[WORKERS]), 0);
	for (unsigned int i = 0; i <= WORKERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);

	assert_int_equal(sh.failures, 0);
	assert_true(sh.wake_signals <= sh.arms);
	assert_int_equal(f->model->violations, 0);
	assert_false(vfpm_pci_low_power_engaged(f->model->pdev));

	for (unsigned int i = 0; i <= WORKERS; i++)
		vfpm_client_close(w[i].c);
	tfix_wait_conns(f, 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	pthread_barrier_destroy(&sh.start);
}

/* Clients connect and leave in parallel, some with low power armed. */
static void *churn_thread(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;

	pthread_barrier_wait(&sh->start);
	for (unsigned int i = 0; i < 20; i++) {
		struct vfpm_client *c;
		int efd = t_eventfd();

		if (vfpm_client_connect(sh->f->path, &c)) {
			atomic_fetch_add(&sh->failures, 1);
			close(efd);
			continue;
		}
		if ((i + w->id) % 3 == 0) {
			/* Another client may have low power engaged already: EINVAL. */
			int ret = vfpm_client_low_power_entry_with_wakeup(c, efd);

			check(sh, ret == 0 || ret == -EINVAL);
		}
		check(sh, vfpm_client_reset(c) == 0);
		vfpm_client_close(c);
		close(efd);
	}
	return NULL;
}

static void test_connect_churn(void **state)
{
	struct tfix *f = *state;
	struct shared sh = { .f = f };
	struct worker w[4];
	pthread_t t[4];

	pthread_barrier_init(&sh.start, NULL, 4);
	for (unsigned int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .sh = &sh, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, churn_thread, &w[i]), 0);
	}
	for (unsigned int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(sh.failures, 0);
	tfix_wait_conns(f, 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_device_open_count(vfpm_pci_device(f->model->pdev)), 0);
	pthread_barrier_destroy(&sh.start);
}

#define BLOCKED 6	/* more than the loop's two permanent threads */

/*
 * Six clients' reads wait in the model at once; a seventh client is still
 * served.  On the threaded loop each waiting read holds a thread, so the
 * reads reach the model only as the watchdog adds threads (the pool has two
 * to start with), and the seventh needs one more; on the caller-driven loop
 * the model defers them (t_read_gate_close) and its one thread goes on.
 */
static void test_blocked_requests_hold_up_only_their_own(void **state)
{
	struct tfix *f = *state;
	struct t_slow_read s[BLOCKED];
	pthread_t t[BLOCKED];
	struct vfpm_client *other;
	uint32_t cmd = 0;

	for (unsigned int i = 0; i < BLOCKED; i++) {
		s[i] = (struct t_slow_read){ .c = tfix_connect(f) };
		t_enable_memory(s[i].c);
	}
	other = tfix_connect(f);
	t_read_gate_close(f->model);
	for (unsigned int i = 0; i < BLOCKED; i++)
		assert_int_equal(pthread_create(&t[i], NULL, t_slow_read_thread, &s[i]), 0);
	assert_int_equal(tm_read_gate_wait(f->model, BLOCKED, T_TIMEOUT_MS), 0);

	/* Every one of them is inside its request: the other client is served all the same. */
	assert_int_equal(vfpm_client_region_read(other, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						 &cmd, 2), 2);
	assert_int_equal(vfpm_pm_status(tfix_pm(f)), VFPM_PM_ACTIVE);

	tm_read_gate_open(f->model);
	for (unsigned int i = 0; i < BLOCKED; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(s[i].ret, 4);
		assert_int_equal(s[i].value, TM_SLOW_VALUE);
		vfpm_client_close(s[i].c);
	}
	vfpm_client_close(other);
	tfix_wait_conns(f, 0);
	assert_int_equal(f->model->violations, 0);
}

/*
 * A client whose first write holds VERSION and a read that blocks in the
 * model: another client of the same device is still accepted and answered
 * (the first run of a connection, on the thread that accepted it, serves
 * only its VERSION).
 */
static void test_first_burst_does_not_stop_accepting(void **state)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
	struct vfio_user_version v = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };
	struct vfio_user_region_access ra = {
		.offset = TM_REG_SLOW, .region = VFIO_PCI_BAR2_REGION_INDEX, .count = 4,
	};
	uint8_t ver[sizeof(struct vfio_user_version) + sizeof(json)];
	struct tfix *f = *state;
	struct vfpm_client *c0 = tfix_connect(f);

	memcpy(ver, &v, sizeof(v));
	memcpy(ver + sizeof(v), json, sizeof(json));
	t_enable_memory(c0);
	for (int trial = 0; trial < 5; trial++) {
		struct pollfd p;
		int a, b;

		t_read_gate_close(f->model);
		a = raw_connect(f->path);
		assert_int_equal(raw_send(a, 1, VFIO_USER_VERSION, 0, ver, sizeof(ver), NULL, 0), 0);
		assert_int_equal(raw_send(a, 2, VFIO_USER_REGION_READ, 0, &ra, sizeof(ra), NULL, 0),
				 0);
		assert_int_equal(tm_read_gate_wait(f->model, 1, T_TIMEOUT_MS), 0);
		b = raw_connect(f->path);
		assert_int_equal(raw_send(b, 1, VFIO_USER_VERSION, 0, ver, sizeof(ver), NULL, 0), 0);
		p = (struct pollfd){ .fd = b, .events = POLLIN };
		assert_int_equal(poll(&p, 1, T_TIMEOUT_MS), 1);
		tm_read_gate_open(f->model);
		close(a);
		close(b);
		tfix_wait_conns(f, 1);
	}
	vfpm_client_close(c0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_eight_clients_toggling, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_connect_churn, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_blocked_requests_hold_up_only_their_own,
						tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_first_burst_does_not_stop_accepting,
						tfix_setup, tfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
