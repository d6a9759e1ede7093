// SPDX-License-Identifier: MIT
/*
 * Region accesses completed later (vfpm_instance_read/write_async,
 * vfpm_request_defer / _complete), with real threads.  The device is a
 * small model of this file's own whose BAR2 defers every trapped access
 * it can: a thread of the model completes it 50 ms later (LATER), a thread
 * completes it before bar_rw even returns (RACE), or the test keeps the
 * request and completes it itself (HOLD).  When it cannot defer, the model
 * completes inline, as a model must.
 *
 * BAR2 is 8 KiB: its first page is memory the core serves itself, its
 * second page traps into the model, so that one access can be split with
 * the deferred piece last.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/vfio.h>

#include "pci_test_util.h"

#define AM_BAR2_SIZE 0x2000u
#define AM_TRAPPED 0x1000u		/* where the trapped page starts */
#define AM_LATER_MS 50

enum am_mode {
	AM_LATER,
	AM_RACE,
	AM_HOLD,
};

/* A deferred access: what the model needs to finish it. */
struct am_pending {
	struct async_model *am;
	struct vfpm_request *req;
	void *buf;
	size_t count;
	uint64_t offset;
	bool write;
	int delay_ms;
};

struct async_model {
	struct vfpm_pci_dev *pdev;
	struct vfpm_pm_dev *pm;

	/* Behaviour, set by the test between accesses. */
	atomic_int mode;
	atomic_int fail_with;		/* complete with this -errno instead, when not 0 */

	atomic_int deferrals;		/* vfpm_request_defer gave a request */
	atomic_int inline_accesses;	/* it gave NULL: done inline */
	atomic_int suspends;		/* runtime_suspend calls */
	atomic_bool suspended;
	atomic_int violations;		/* accesses while suspended */

	/* The trapped page; written by whichever thread finishes an access. */
	pthread_mutex_t lock;
	uint8_t regs[AM_BAR2_SIZE - AM_TRAPPED];

	/* The one deferred access (the tests make one at a time). */
	struct am_pending pending;
	pthread_t completer;
	bool completer_started;
};

static uint8_t am_pattern(uint64_t offset)
{
	return (uint8_t)(offset * 7 + 3);
}

/* What the model does to finish an access, inline or later. */
static ssize_t am_access(struct async_model *am, uint64_t offset, void *buf, size_t count,
			 bool write)
{
	int fail = atomic_load(&am->fail_with);

	if (fail)
		return fail;
	pthread_mutex_lock(&am->lock);
	if (write)
		memcpy(&am->regs[offset - AM_TRAPPED], buf, count);
	else
		memcpy(buf, &am->regs[offset - AM_TRAPPED], count);
	pthread_mutex_unlock(&am->lock);
	return (ssize_t)count;
}

static void am_complete(struct am_pending *p)
{
	vfpm_request_complete(p->req, am_access(p->am, p->offset, p->buf, p->count, p->write));
}

static void *completer_main(void *arg)
{
	struct am_pending *p = arg;
	struct timespec delay = { 0, p->delay_ms * 1000000L };

	nanosleep(&delay, NULL);
	am_complete(p);
	return NULL;
}

static ssize_t am_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, unsigned int bar,
			 uint64_t offset, void *buf, size_t count, bool write)
{
	struct async_model *am = vfpm_pci_model(pdev);
	struct vfpm_request *req;

	if (bar != 2 || offset < AM_TRAPPED || count > AM_BAR2_SIZE - offset) {
		atomic_fetch_add(&am->violations, 1);
		return -EINVAL;
	}
	if (atomic_load(&am->suspended) || vfpm_pm_status(am->pm) != VFPM_PM_ACTIVE)
		atomic_fetch_add(&am->violations, 1);
	req = vfpm_request_defer(inst);
	if (!req) {
		/* The caller cannot wait: finish it here. */
		atomic_fetch_add(&am->inline_accesses, 1);
		return am_access(am, offset, buf, count, write);
	}
	atomic_fetch_add(&am->deferrals, 1);
	am->pending = (struct am_pending){
		.am = am, .req = req, .buf = buf, .count = count, .offset = offset,
		.write = write,
	};
	switch (atomic_load(&am->mode)) {
	case AM_LATER:
		am->pending.delay_ms = AM_LATER_MS;
		if (pthread_create(&am->completer, NULL, completer_main, &am->pending))
			am_complete(&am->pending);
		else
			am->completer_started = true;
		break;
	case AM_RACE:
		/* Completed on another thread before the -EINPROGRESS gets back. */
		if (pthread_create(&am->completer, NULL, completer_main, &am->pending))
			am_complete(&am->pending);
		else
			pthread_join(am->completer, NULL);
		break;
	case AM_HOLD:
		break;	/* the test completes it */
	}
	return -EINPROGRESS;
}

static int am_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	struct async_model *am = vfpm_pci_model(pdev);

	atomic_fetch_add(&am->suspends, 1);
	atomic_store(&am->suspended, true);
	return 0;
}

static int am_runtime_resume(struct vfpm_pci_dev *pdev)
{
	struct async_model *am = vfpm_pci_model(pdev);

	atomic_store(&am->suspended, false);
	return 0;
}

static const struct vfpm_pci_model_ops am_ops = {
	.bar_rw = am_bar_rw,
	.runtime_suspend = am_runtime_suspend,
	.runtime_resume = am_runtime_resume,
};

/* Wait for the model's completing thread, when it started one. */
static void am_join(struct async_model *am)
{
	if (am->completer_started)
		pthread_join(am->completer, NULL);
	am->completer_started = false;
}

/* ---- the transport's side: the completion callback ---- */

struct completion {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
	ssize_t result;
	pthread_t thread;
};

static void on_complete(void *opaque, ssize_t result)
{
	struct completion *c = opaque;

	pthread_mutex_lock(&c->lock);
	c->calls++;
	c->result = result;
	c->thread = pthread_self();
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static int completion_calls(struct completion *c)
{
	int n;

	pthread_mutex_lock(&c->lock);
	n = c->calls;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* 0 once complete was called, -ETIMEDOUT if not within timeout_ms. */
static int completion_wait(struct completion *c, int timeout_ms)
{
	struct timespec deadline;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->lock);
	while (!c->calls && !err)
		err = pthread_cond_timedwait(&c->cond, &c->lock, &deadline);
	pthread_mutex_unlock(&c->lock);
	return err ? -ETIMEDOUT : 0;
}

/* ---- fixture ---- */

struct fixture {
	struct async_model am;
	struct vfpm_instance *inst;
	struct vfpm_instance *second;	/* NULL unless the test opened it */
	struct completion c;
	struct vfpm_async async;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct vfpm_pci_desc desc = {
		.vendor_id = TM_VENDOR_ID,
		.device_id = 0x00f1,
		.class_code = 0xff0000,
		.bars = {
			[2] = { .type = VFPM_PCI_BAR_MEM32, .size = AM_BAR2_SIZE, .nr_areas = 1,
				.areas = { { .offset = 0, .size = AM_TRAPPED } } },
		},
		.pm_cap = true,
	};
	struct async_model *am;

	if (!fx)
		return -1;
	am = &fx->am;
	pthread_mutex_init(&am->lock, NULL);
	for (unsigned int i = 0; i < sizeof(am->regs); i++)
		am->regs[i] = am_pattern(AM_TRAPPED + i);
	pthread_mutex_init(&fx->c.lock, NULL);
	pthread_cond_init(&fx->c.cond, NULL);
	fx->async = (struct vfpm_async){ .complete = on_complete, .opaque = &fx->c };
	if (vfpm_pci_dev_create(&desc, &am_ops, am, &am->pdev))
		return -1;
	am->pm = vfpm_pci_pm(am->pdev);
	/* The unused device idles first, so that the tests count only their suspends. */
	if (vfpm_pm_wait_status(am->pm, VFPM_PM_SUSPENDED, TM_SOON_MS))
		return -1;
	if (vfpm_device_open(vfpm_pci_device(am->pdev), &fx->inst))
		return -1;
	if (tm_set_memory(fx->inst, true))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	int violations = atomic_load(&fx->am.violations);

	am_join(&fx->am);
	if (fx->second)
		vfpm_instance_close(fx->second);
	vfpm_instance_close(fx->inst);
	vfpm_pci_dev_destroy(fx->am.pdev);
	pthread_mutex_destroy(&fx->am.lock);
	pthread_cond_destroy(&fx->c.cond);
	pthread_mutex_destroy(&fx->c.lock);
	free(fx);
	return violations ? -1 : 0;
}

static uint64_t bar2(uint64_t offset)
{
	return VFPM_REGION_OFFSET(VFIO_PCI_BAR2_REGION_INDEX) + offset;
}

/* ---- tests ---- */

/* (a) Deferred and completed 50 ms later on the model's thread. */
static void test_read_async_completes_later(void **state)
{
	struct fixture *fx = *state;
	struct async_model *am = &fx->am;
	int usage = vfpm_pm_usage_count(am->pm);
	uint8_t buf[16];

	memset(buf, 0, sizeof(buf));
	atomic_store(&am->mode, AM_LATER);
	assert_int_equal(vfpm_instance_read_async(fx->inst, buf, sizeof(buf), bar2(0x1040),
						  &fx->async), -EINPROGRESS);
	/* Pending: not completed yet, and the access still holds the device. */
	assert_int_equal(completion_calls(&fx->c), 0);
	assert_int_equal(vfpm_pm_usage_count(am->pm), usage + 1);

	assert_int_equal(completion_wait(&fx->c, TM_SOON_MS), 0);
	am_join(am);
	assert_int_equal(completion_calls(&fx->c), 1);
	assert_int_equal(fx->c.result, sizeof(buf));
	assert_false(pthread_equal(fx->c.thread, pthread_self()));
	for (unsigned int i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], am_pattern(0x1040 + i));
	assert_int_equal(vfpm_pm_usage_count(am->pm), usage);
	assert_int_equal(atomic_load(&am->deferrals), 1);
	assert_int_equal(atomic_load(&am->inline_accesses), 0);
}

/* (a) The same for a write: the model sees the bytes, complete gets the count. */
static void test_write_async_completes_later(void **state)
{
	struct fixture *fx = *state;
	struct async_model *am = &fx->am;
	const uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	atomic_store(&am->mode, AM_LATER);
	assert_int_equal(vfpm_instance_write_async(fx->inst, data, sizeof(data), bar2(0x1100),
						   &fx->async), -EINPROGRESS);
	assert_int_equal(completion_wait(&fx->c, TM_SOON_MS), 0);
	am_join(am);
	assert_int_equal(completion_calls(&fx->c), 1);
	assert_int_equal(fx->c.result, sizeof(data));
	assert_memory_equal(&am->regs[0x100], data, sizeof(data));
}

/* (b) A plain read cannot wait: defer gives NULL and the model finishes inline. */
static void test_sync_read_completes_inline(void **state)
{
	struct fixture *fx = *state;
	struct async_model *am = &fx->am;
	int usage = vfpm_pm_usage_count(am->pm);
	uint8_t buf[16];

	atomic_store(&am->mode, AM_LATER);
	assert_int_equal(vfpm_instance_read(fx->inst, buf, sizeof(buf), bar2(0x1200)),
			 sizeof(buf));
	for (unsigned int i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], am_pattern(0x1200 + i));
	assert_int_equal(atomic_load(&am->inline_accesses), 1);
	assert_int_equal(atomic_load(&am->deferrals), 0);
	assert_int_equal(vfpm_pm_usage_count(am->pm), usage);
	/* Nor can a driver defer outside an access of the instance. */
	assert_null(vfpm_request_defer(fx->inst));
}

/*
 * (c) The race: instance 1 has a deferred read pending when instance 2
 * asks for low power.  ENTRY replies at once; the device stays ACTIVE
 * until the read completes, and only then suspends.
 */
static void test_entry_waits_for_deferred_access(void **state)
{
	struct fixture *fx = *state;
	struct async_model *am = &fx->am;
	struct vfpm_device *dev = vfpm_pci_device(am->pdev);
	struct vfpm_power_info info;
	struct am_pending p;
	uint8_t buf[32];
	int suspends;

	assert_int_equal(vfpm_device_open(dev, &fx->second), 0);
	atomic_store(&am->mode, AM_HOLD);
	assert_int_equal(vfpm_instance_read_async(fx->inst, buf, sizeof(buf), bar2(0x1300),
						  &fx->async), -EINPROGRESS);
	suspends = atomic_load(&am->suspends);

	assert_int_equal(tm_entry(fx->second), 0);
	/*
	 * Still awake.  The barrier runs a suspend the entry may have queued
	 * but cancels a queued idle check, so an idle check run by hand must
	 * be refused too: only a reference held explicitly passes both.
	 */
	vfpm_pm_barrier(am->pm);
	vfpm_device_power_info(dev, &info);
	assert_true(info.low_power);
	assert_int_equal(info.status, VFPM_PM_ACTIVE);
	assert_true(vfpm_pm_idle(am->pm) < 0);
	assert_int_equal(vfpm_pm_wait_status(am->pm, VFPM_PM_SUSPENDED, TM_QUIET_MS), -ETIMEDOUT);
	assert_int_equal(atomic_load(&am->suspends), suspends);
	assert_int_equal(completion_calls(&fx->c), 0);

	/* The model answers (from the test's thread): now the device may suspend. */
	p = am->pending;
	am_complete(&p);
	assert_int_equal(completion_calls(&fx->c), 1);
	assert_int_equal(fx->c.result, sizeof(buf));
	for (unsigned int i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], am_pattern(0x1300 + i));
	assert_int_equal(vfpm_pm_wait_status(am->pm, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(atomic_load(&am->suspends), suspends + 1);
	vfpm_device_power_info(dev, &info);
	assert_int_equal(info.status, VFPM_PM_SUSPENDED);

	assert_int_equal(tm_exit(fx->second), 0);
	assert_int_equal(vfpm_pm_status(am->pm), VFPM_PM_ACTIVE);
}

/* (d) Completed on another thread before bar_rw returned: the call returns the result. */
static void test_completion_before_return(void **state)
{
	struct fixture *fx = *state;
	struct async_model *am = &fx->am;
	int usage = vfpm_pm_usage_count(am->pm);
	uint8_t buf[16];

	atomic_store(&am->mode, AM_RACE);
	assert_int_equal(vfpm_instance_read_async(fx->inst, buf, sizeof(buf), bar2(0x1400),
						  &fx->async), sizeof(buf));
	/* The model's thread is gone: had complete been due, it would have run. */
	assert_int_equal(completion_calls(&fx->c), 0);
	for (unsigned int i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], am_pattern(0x1400 + i));
	assert_int_equal(atomic_load(&am->deferrals), 1);
	assert_int_equal(vfpm_pm_usage_count(am->pm), usage);

	/* An error the same way. */
	atomic_store(&am->fail_with, -EIO);
	assert_int_equal(vfpm_instance_read_async(fx->inst, buf, sizeof(buf), bar2(0x1400),
						  &fx->async), -EIO);
	assert_int_equal(completion_calls(&fx->c), 0);
	assert_int_equal(vfpm_pm_usage_count(am->pm), usage);
}

/*
 * A split read, the deferred piece last: the completion reports the bytes
 * of the memory piece before it with the model's, or those alone when the
 * model fails.
 */
static void test_split_read_reports_bytes_before(void **state)
{
	struct fixture *fx = *state;
	struct async_model *am = &fx->am;
	const uint8_t mem[8] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7 };
	uint8_t buf[16];

	assert_int_equal(vfpm_instance_write(fx->inst, mem, sizeof(mem), bar2(AM_TRAPPED - 8)),
			 sizeof(mem));
	atomic_store(&am->mode, AM_LATER);
	assert_int_equal(vfpm_instance_read_async(fx->inst, buf, sizeof(buf),
						  bar2(AM_TRAPPED - 8), &fx->async), -EINPROGRESS);
	assert_int_equal(completion_wait(&fx->c, TM_SOON_MS), 0);
	am_join(am);
	assert_int_equal(fx->c.result, sizeof(buf));
	assert_memory_equal(buf, mem, sizeof(mem));
	for (unsigned int i = 8; i < sizeof(buf); i++)
		assert_int_equal(buf[i], am_pattern(AM_TRAPPED + i - 8));

	fx->c.calls = 0;
	atomic_store(&am->fail_with, -EIO);
	assert_int_equal(vfpm_instance_read_async(fx->inst, buf, sizeof(buf),
						  bar2(AM_TRAPPED - 8), &fx->async), -EINPROGRESS);
	assert_int_equal(completion_wait(&fx->c, TM_SOON_MS), 0);
	am_join(am);
	assert_int_equal(fx->c.result, 8);
}

/*
 * The transport's mistake: an instance closed with an access pending.  The
 * completion still arrives, once, without touching freed memory (run under
 * a sanitizer to see the difference).
 */
static void test_close_with_access_pending(void **state)
{
	struct fixture *fx = *state;
	struct async_model *am = &fx->am;
	struct am_pending p;
	uint8_t buf[4];

	assert_int_equal(vfpm_device_open(vfpm_pci_device(am->pdev), &fx->second), 0);
	atomic_store(&am->mode, AM_HOLD);
	assert_int_equal(vfpm_instance_read_async(fx->second, buf, sizeof(buf), bar2(0x1500),
						  &fx->async), -EINPROGRESS);
	vfpm_instance_close(fx->second);
	fx->second = NULL;
	p = am->pending;
	am_complete(&p);
	assert_int_equal(completion_calls(&fx->c), 1);
	assert_int_equal(fx->c.result, sizeof(buf));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_async_completes_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_async_completes_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_read_completes_inline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entry_waits_for_deferred_access, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_completion_before_return, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split_read_reports_bytes_before, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_close_with_access_pending, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
