// SPDX-License-Identifier: MIT
/*
 * Runtime power management of a PCI device as a user sees it (issue 3):
 * the low power features (ENTRY, ENTRY_WITH_WAKEUP, EXIT), the request
 * wrapper, wakeups, the last close, failed resumes, INTx across a suspend
 * and a model that opts out.  Expected results are Linux 6.1 vfio-pci's
 * (see docs/design.md, "Semantics to reproduce").
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "pci_test_util.h"

#define FEATURE_HDR ((uint32_t)sizeof(struct vfio_device_feature))
#define F_GET VFIO_DEVICE_FEATURE_GET
#define F_SET VFIO_DEVICE_FEATURE_SET
#define F_PROBE VFIO_DEVICE_FEATURE_PROBE
#define ENTRY VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY
#define ENTRY_WAKEUP VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP
#define EXIT VFIO_DEVICE_FEATURE_LOW_POWER_EXIT

static int setup_open(void **state)
{
	return tm_fixture_setup(state, true);
}

static int setup_unopened(void **state)
{
	return tm_fixture_setup(state, false);
}

static int teardown(void **state)
{
	return tm_fixture_teardown(state);
}

static enum vfpm_pm_status status_of(struct test_model *m)
{
	return vfpm_pm_status(m->pm);
}

/* A number that names no open fd of this process. */
static int closed_fd_number(void)
{
	int fd = dup(STDERR_FILENO);

	assert_true(fd >= 0);
	close(fd);
	return fd;
}

/* Enter low power (plain ENTRY) and wait until the device has suspended. */
static void enter_and_suspend(struct tm_fixture *fx)
{
	int suspends = atomic_load(&fx->m->suspends);

	assert_int_equal(tm_entry(fx->inst), 0);
	assert_int_equal(tm_wait(fx->m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(atomic_load(&fx->m->suspends), suspends + 1);
	assert_true(atomic_load(&fx->m->suspended));
}

/* ---- open and close ---- */

static void test_unopened_suspends_open_resumes(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	struct vfpm_device *dev = vfpm_pci_device(m->pdev);
	struct vfpm_instance *a, *b;

	/* The fixture waited for SUSPENDED: the unused device suspended once. */
	assert_int_equal(status_of(m), VFPM_PM_SUSPENDED);
	assert_int_equal(atomic_load(&m->suspends), 1);
	assert_int_equal(atomic_load(&m->resumes), 0);
	assert_int_equal(atomic_load(&m->opens), 0);

	assert_int_equal(vfpm_device_open(dev, &a), 0);
	assert_int_equal(status_of(m), VFPM_PM_ACTIVE);
	assert_int_equal(atomic_load(&m->resumes), 1);
	assert_int_equal(atomic_load(&m->opens), 1);
	assert_false(atomic_load(&m->suspended));
	/* The open reference keeps it awake. */
	assert_true(tm_stays_active(m, TM_QUIET_MS));

	/* A second instance does not open the device again. */
	assert_int_equal(vfpm_device_open(dev, &b), 0);
	assert_int_equal(atomic_load(&m->opens), 1);
	vfpm_instance_close(b);
	assert_int_equal(atomic_load(&m->closes), 0);
	assert_true(tm_stays_active(m, 0));

	/* The last close lets the unused device suspend again. */
	vfpm_instance_close(a);
	assert_int_equal(atomic_load(&m->closes), 1);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(atomic_load(&m->suspends), 2);

	/* And it can be opened again. */
	assert_int_equal(vfpm_device_open(dev, &a), 0);
	assert_int_equal(status_of(m), VFPM_PM_ACTIVE);
	assert_int_equal(atomic_load(&m->opens), 2);
	assert_true(atomic_load(&m->resets) >= 1);
	vfpm_instance_close(a);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
}

/* ---- the request wrapper ---- */

enum request_kind {
	REQ_GET_INFO,
	REQ_PROBE,
	REQ_UNKNOWN_IOCTL,
	REQ_GET_INFO_ARGSZ_0,
	REQ_FEATURE_ARGSZ_0,
	REQ_REGION_INFO_BAD_INDEX,
	REQ_UNREADABLE_ARG,
	REQ_COUNT,
};

static long run_request(struct vfpm_instance *inst, enum request_kind kind)
{
	struct vfpm_ubuf u;
	uint64_t junk[8] = { 0 };

	switch (kind) {
	case REQ_GET_INFO:
		return tm_get_info(inst, sizeof(struct vfio_device_info));
	case REQ_PROBE:
		return tm_feature(inst, F_PROBE | F_SET | ENTRY, FEATURE_HDR, NULL, 0, NULL);
	case REQ_UNKNOWN_IOCTL:
		u = (struct vfpm_ubuf){ .data = junk, .in_len = sizeof(junk), .cap = sizeof(junk) };
		return vfpm_instance_ioctl(inst, _IO(VFIO_TYPE, VFIO_BASE + 60), &u, NULL, NULL);
	case REQ_GET_INFO_ARGSZ_0:
		return tm_get_info(inst, 0);
	case REQ_FEATURE_ARGSZ_0:
		return tm_feature(inst, F_SET | ENTRY, 0, NULL, 0, NULL);
	case REQ_REGION_INFO_BAD_INDEX:
		return tm_region_info(inst, VFIO_PCI_NUM_REGIONS, sizeof(struct vfio_region_info),
				      NULL, NULL);
	case REQ_UNREADABLE_ARG:	/* copy_from_user would fault */
		u = (struct vfpm_ubuf){ .data = junk, .in_len = 0, .cap = sizeof(junk) };
		return vfpm_instance_ioctl(inst, VFIO_DEVICE_GET_INFO, &u, NULL, NULL);
	case REQ_COUNT:
		break;
	}
	return -1000;
}

static void test_every_ioctl_resumes_first(void **state)
{
	static const long expected[REQ_COUNT] = {
		[REQ_GET_INFO] = 0,
		[REQ_PROBE] = 0,
		[REQ_UNKNOWN_IOCTL] = -ENOTTY,
		[REQ_GET_INFO_ARGSZ_0] = -EINVAL,
		[REQ_FEATURE_ARGSZ_0] = -EINVAL,
		[REQ_REGION_INFO_BAD_INDEX] = -EINVAL,
		[REQ_UNREADABLE_ARG] = -EFAULT,
	};
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;

	enter_and_suspend(fx);
	for (int kind = 0; kind < REQ_COUNT; kind++) {
		int resumes = atomic_load(&m->resumes);
		int suspends = atomic_load(&m->suspends);

		assert_int_equal(status_of(m), VFPM_PM_SUSPENDED);
		assert_int_equal(run_request(fx->inst, kind), expected[kind]);
		assert_int_equal(atomic_load(&m->resumes), resumes + 1);
		/* Low power is still engaged: the device suspends again. */
		assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
		assert_int_equal(atomic_load(&m->suspends), suspends + 1);
	}
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_true(tm_stays_active(m, 0));
}

/* ---- VFIO_DEVICE_FEATURE validation ---- */

static void test_feature_validation_order(void **state)
{
	struct tm_fixture *fx = *state;
	struct vfpm_instance *inst = fx->inst;
	struct test_model *m = fx->m;
	const uint32_t lp[] = { ENTRY, ENTRY_WAKEUP, EXIT };
	const uint32_t unknown[] = { 100, 0, 1, 2, 0xffff };
	uint32_t short_payload = 0;

	/* argsz < 8 first, whatever else is wrong. */
	assert_int_equal(tm_feature(inst, F_SET | ENTRY, 0, NULL, 0, NULL), -EINVAL);
	assert_int_equal(tm_feature(inst, F_SET | ENTRY, FEATURE_HDR - 1, NULL, 0, NULL), -EINVAL);
	assert_int_equal(tm_feature(inst, F_PROBE | F_SET | ENTRY, 7, NULL, 0, NULL), -EINVAL);
	assert_int_equal(tm_feature(inst, F_SET | 100, 4, NULL, 0, NULL), -EINVAL);
	/* Then unknown flag bits, before the feature index is looked at. */
	assert_int_equal(tm_feature(inst, F_SET | ENTRY | (1u << 20), FEATURE_HDR, NULL, 0, NULL),
			 -EINVAL);
	assert_int_equal(tm_feature(inst, F_SET | ENTRY | (1u << 31), FEATURE_HDR, NULL, 0, NULL),
			 -EINVAL);
	assert_int_equal(tm_feature(inst, F_PROBE | 100 | (1u << 19), FEATURE_HDR, NULL, 0, NULL),
			 -EINVAL);
	/* Then GET and SET together without PROBE, still before the index. */
	assert_int_equal(tm_feature(inst, F_GET | F_SET | ENTRY, FEATURE_HDR, NULL, 0, NULL),
			 -EINVAL);
	assert_int_equal(tm_feature(inst, F_GET | F_SET | 100, FEATURE_HDR, NULL, 0, NULL),
			 -EINVAL);

	/* Unknown features (0 VF token, 1 and 2 migration included): ENOTTY. */
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		assert_int_equal(tm_feature(inst, F_GET | unknown[i], FEATURE_HDR, NULL, 0, NULL),
				 -ENOTTY);
		assert_int_equal(tm_feature(inst, F_SET | unknown[i], FEATURE_HDR, NULL, 0, NULL),
				 -ENOTTY);
		assert_int_equal(tm_feature(inst, F_PROBE | F_SET | unknown[i], FEATURE_HDR, NULL,
					    0, NULL), -ENOTTY);
	}

	/* 3, 4 and 5 are SET-only features. */
	for (size_t i = 0; i < sizeof(lp) / sizeof(lp[0]); i++) {
		assert_int_equal(tm_feature(inst, F_GET | lp[i], FEATURE_HDR + 8, NULL, 8, NULL),
				 -EINVAL);
		assert_int_equal(tm_feature(inst, F_PROBE | lp[i], FEATURE_HDR, NULL, 0, NULL), 0);
		assert_int_equal(tm_feature(inst, F_PROBE | F_SET | lp[i], FEATURE_HDR, NULL, 0,
					    NULL), 0);
		assert_int_equal(tm_feature(inst, F_PROBE | F_GET | lp[i], FEATURE_HDR, NULL, 0,
					    NULL), -EINVAL);
		assert_int_equal(tm_feature(inst, F_PROBE | F_GET | F_SET | lp[i], FEATURE_HDR,
					    NULL, 0, NULL), -EINVAL);
		assert_int_equal(tm_feature(inst, lp[i], FEATURE_HDR + 8, NULL, 8, NULL), -EINVAL);
	}
	/* ENTRY_WITH_WAKEUP needs its 8-byte struct (a PROBE does not). */
	assert_int_equal(tm_feature(inst, F_SET | ENTRY_WAKEUP, FEATURE_HDR + 4, &short_payload,
				    sizeof(short_payload), NULL), -EINVAL);
	assert_int_equal(tm_feature(inst, F_SET | ENTRY_WAKEUP, FEATURE_HDR, NULL, 0, NULL),
			 -EINVAL);

	/* None of that did anything: no low power, the open reference still held. */
	assert_false(vfpm_pci_low_power_engaged(m->pdev));
	assert_true(tm_stays_active(m, TM_QUIET_MS));
	assert_int_equal(atomic_load(&m->suspends), 1);	/* the unused device's only */

	/* And a real ENTRY afterwards still works. */
	enter_and_suspend(fx);
	assert_int_equal(tm_exit(inst), 0);
	assert_true(tm_stays_active(m, 0));
}

/* ---- ENTRY ---- */

static void test_entry_suspends_once_and_twice_is_einval(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int baseline, efd, resumes;

	assert_int_equal(status_of(m), VFPM_PM_ACTIVE);
	enter_and_suspend(fx);
	assert_true(vfpm_pci_low_power_engaged(m->pdev));
	vfpm_pm_barrier(m->pm);
	assert_int_equal(atomic_load(&m->suspends), 2);	/* unused + this one */

	/* ENTRY while engaged: the request wakes the device, then EINVAL. */
	resumes = atomic_load(&m->resumes);
	assert_int_equal(tm_entry(fx->inst), -EINVAL);
	assert_int_equal(atomic_load(&m->resumes), resumes + 1);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);

	/* ENTRY_WITH_WAKEUP while engaged: EINVAL, and its eventfd is not kept. */
	baseline = tm_count_fds();
	efd = tm_eventfd_new();
	assert_true(efd >= 0);
	assert_int_equal(tm_entry_wakeup(fx->inst, efd, NULL), -EINVAL);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	/* Not armed: waking the device does not signal it. */
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(tm_eventfd_take(efd), 0);
	close(efd);
	assert_int_equal(tm_count_fds(), baseline);

	assert_int_equal(tm_exit(fx->inst), 0);
	assert_false(vfpm_pci_low_power_engaged(m->pdev));
	assert_true(tm_stays_active(m, TM_QUIET_MS));
}

/* ---- ENTRY_WITH_WAKEUP argument checks ---- */

static void check_wakeup_errors(struct tm_fixture *fx)
{
	struct vfpm_instance *inst = fx->inst;
	int pipefd[2], devnull, baseline;

	baseline = tm_count_fds();
	assert_int_equal(pipe(pipefd), 0);
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(devnull >= 0);

	assert_int_equal(tm_entry_wakeup(inst, -1, NULL), -EINVAL);
	assert_int_equal(tm_entry_wakeup(inst, INT32_MIN, NULL), -EINVAL);
	assert_int_equal(tm_entry_wakeup(inst, closed_fd_number(), NULL), -EBADF);
	assert_int_equal(tm_entry_wakeup(inst, 1 << 20, NULL), -EBADF);
	assert_int_equal(tm_entry_wakeup(inst, pipefd[0], NULL), -EINVAL);
	assert_int_equal(tm_entry_wakeup(inst, pipefd[1], NULL), -EINVAL);
	assert_int_equal(tm_entry_wakeup(inst, devnull, NULL), -EINVAL);
	assert_false(vfpm_pci_low_power_engaged(fx->m->pdev));

	close(pipefd[0]);
	close(pipefd[1]);
	close(devnull);
	assert_int_equal(tm_count_fds(), baseline);
}

static void test_wakeup_argument_errors(void **state)
{
	struct tm_fixture *fx = *state;

	check_wakeup_errors(fx);
	assert_true(tm_stays_active(fx->m, TM_QUIET_MS));
	assert_int_equal(atomic_load(&fx->m->suspends), 1);
}

static void test_wakeup_reserved_not_checked(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	struct vfio_device_low_power_entry_with_wakeup entry;
	int baseline = tm_count_fds();
	int efd = tm_eventfd_new();

	assert_true(efd >= 0);
	entry = (struct vfio_device_low_power_entry_with_wakeup){
		.wakeup_eventfd = efd, .reserved = 0xdeadbeef,
	};
	assert_int_equal(tm_feature(fx->inst, F_SET | ENTRY_WAKEUP, FEATURE_HDR + sizeof(entry),
				    &entry, sizeof(entry), NULL), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(tm_eventfd_take(efd), 0);
	/* EXIT wakes the device, which signals the armed eventfd. */
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(tm_eventfd_take(efd), 1);
	assert_true(tm_stays_active(m, 0));
	close(efd);
	assert_int_equal(tm_count_fds(), baseline);
}

/* vfio-user: the number is an index into the fds that came with the request. */
static void test_wakeup_fd_table_index(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int baseline = tm_count_fds();
	int pipefd[2], efd, table[2];
	struct vfpm_fds fds = { .fd = table, .count = 2 };

	assert_int_equal(pipe(pipefd), 0);
	efd = tm_eventfd_new();
	assert_true(efd >= 0);
	table[0] = pipefd[0];
	table[1] = efd;

	assert_int_equal(tm_entry_wakeup(fx->inst, 2, &fds), -EBADF);
	assert_int_equal(tm_entry_wakeup(fx->inst, 1000, &fds), -EBADF);
	assert_int_equal(tm_entry_wakeup(fx->inst, -1, &fds), -EINVAL);
	assert_int_equal(tm_entry_wakeup(fx->inst, 0, &fds), -EINVAL);	/* the pipe */
	if (efd >= 2)	/* efd's own number is out of the table */
		assert_int_equal(tm_entry_wakeup(fx->inst, efd, &fds), -EBADF);
	assert_true(tm_stays_active(m, 0));

	/* Index 1 is the eventfd (process fd 1 is not one: the table is used). */
	assert_int_equal(tm_entry_wakeup(fx->inst, 1, &fds), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(tm_eventfd_take(efd), 1);
	assert_true(tm_stays_active(m, 0));

	close(pipefd[0]);
	close(pipefd[1]);
	close(efd);
	/* The duplicate the device held was dropped when it woke. */
	assert_int_equal(tm_count_fds(), baseline);
}

/* ---- EXIT ---- */

static void test_exit_without_entry_is_noop(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;

	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_true(tm_stays_active(m, 0));
	/* No reference was taken by those: ENTRY still lets it suspend. */
	enter_and_suspend(fx);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_true(tm_stays_active(m, 0));
	/* And none was lost: the last close still suspends it. */
	vfpm_instance_close(fx->inst);
	fx->inst = NULL;
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
}

static void test_exit_after_suspend_stays_active(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int resumes;

	enter_and_suspend(fx);
	resumes = atomic_load(&m->resumes);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(status_of(m), VFPM_PM_ACTIVE);
	assert_int_equal(atomic_load(&m->resumes), resumes + 1);
	assert_false(vfpm_pci_low_power_engaged(m->pdev));
	assert_true(tm_stays_active(m, TM_QUIET_MS));
	assert_false(atomic_load(&m->suspended));
}

/* ---- wakeups ---- */

static void test_wakeup_signals_once_and_stays_active(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int baseline = tm_count_fds();
	int efd = tm_eventfd_new();
	int resumes;

	assert_true(efd >= 0);
	assert_int_equal(tm_entry_wakeup(fx->inst, efd, NULL), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(tm_eventfd_take(efd), 0);	/* suspending is not a wakeup */

	/* Any request wakes it: one signal, and the device stays awake. */
	resumes = atomic_load(&m->resumes);
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(atomic_load(&m->resumes), resumes + 1);
	assert_int_equal(tm_eventfd_take(efd), 1);
	assert_false(vfpm_pci_low_power_engaged(m->pdev));
	assert_true(tm_stays_active(m, TM_QUIET_MS));

	/* No second signal for later requests. */
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(tm_get_info(fx->inst, 0), -EINVAL);
	assert_int_equal(tm_eventfd_take(efd), 0);
	assert_true(tm_stays_active(m, 0));

	/* The device may enter low power again: plain ENTRY... */
	enter_and_suspend(fx);
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(tm_eventfd_take(efd), 0);	/* ...no longer armed */
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_true(tm_stays_active(m, 0));

	/* ...or armed again, woken by the backend this time (a PME). */
	assert_int_equal(tm_entry_wakeup(fx->inst, efd, NULL), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(vfpm_pci_wake(m->pdev), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_ACTIVE, TM_SOON_MS), 0);
	assert_true(tm_stays_active(m, TM_QUIET_MS));
	assert_int_equal(tm_eventfd_take(efd), 1);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(tm_eventfd_take(efd), 0);

	close(efd);
	assert_int_equal(tm_count_fds(), baseline);
}

static void test_plain_entry_access_wakes_and_resuspends(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	uint8_t buf[16];
	uint32_t vendor = 0;
	int resumes, suspends;

	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	enter_and_suspend(fx);

	resumes = atomic_load(&m->resumes);
	suspends = atomic_load(&m->suspends);
	assert_int_equal(tm_cfg_read(fx->inst, PCI_VENDOR_ID, 2, &vendor), 0);
	assert_int_equal(vendor, TM_VENDOR_ID);
	assert_int_equal(atomic_load(&m->resumes), resumes + 1);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(atomic_load(&m->suspends), suspends + 1);

	/* A trapped BAR read too: the model sees the device powered. */
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, 0x20, buf, sizeof(buf)),
			 sizeof(buf));
	for (unsigned int i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], tm_bar2_pattern(0x20 + i));
	assert_int_equal(atomic_load(&m->resumes), resumes + 2);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(atomic_load(&m->suspends), suspends + 2);
	assert_true(vfpm_pci_low_power_engaged(m->pdev));

	assert_int_equal(tm_exit(fx->inst), 0);
	assert_true(tm_stays_active(m, 0));
}

/* ---- the last close ---- */

static void test_last_close_while_armed(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int baseline = tm_count_fds();
	int efd = tm_eventfd_new();
	int resumes;

	assert_true(efd >= 0);
	assert_int_equal(tm_entry_wakeup(fx->inst, efd, NULL), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(tm_count_fds(), baseline + 2);	/* ours and the device's copy */

	resumes = atomic_load(&m->resumes);
	vfpm_instance_close(fx->inst);
	fx->inst = NULL;
	assert_int_equal(atomic_load(&m->closes), 1);
	/* Woken to be torn down, without telling the user. */
	assert_int_equal(atomic_load(&m->resumes), resumes + 1);
	assert_int_equal(tm_eventfd_take(efd), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(tm_eventfd_take(efd), 0);
	close(efd);
	assert_int_equal(tm_count_fds(), baseline);
	assert_false(vfpm_pci_low_power_engaged(m->pdev));
}

/* ---- a failed resume ---- */

static void test_failed_resume_is_sticky_eio(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	uint8_t buf[8];
	uint32_t value;
	long accesses;

	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	enter_and_suspend(fx);
	accesses = atomic_load(&m->bar_accesses);
	atomic_store(&m->resume_error, -EIO);

	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), -EIO);
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), -EIO);
	assert_int_equal(tm_exit(fx->inst), -EIO);
	assert_int_equal(tm_cfg_read(fx->inst, PCI_VENDOR_ID, 2, &value), -EIO);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, 0, buf, sizeof(buf)), -EIO);

	/* Sticky: a healthy backend does not clear the recorded error. */
	atomic_store(&m->resume_error, 0);
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), -EIO);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, 0, buf, 4), -EIO);
	assert_int_equal(vfpm_pci_host_cfg_read(m->pdev, PCI_VENDOR_ID, 2, &value), -EIO);

	assert_int_equal(status_of(m), VFPM_PM_SUSPENDED);
	assert_true(atomic_load(&m->suspended));
	assert_int_equal(atomic_load(&m->bar_accesses), accesses);
}

/* ---- INTx across a suspend ---- */

static long set_intx_trigger(struct vfpm_instance *inst, int efd)
{
	int32_t fd = efd;

	return tm_set_irqs(inst, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			   VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd, NULL);
}

static long intx_action(struct vfpm_instance *inst, uint32_t action)
{
	return tm_set_irqs(inst, VFIO_IRQ_SET_DATA_NONE | action, VFIO_PCI_INTX_IRQ_INDEX, 0, 1,
			   NULL, NULL);
}

static void test_intx_unmasked_after_wake(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int intx = tm_eventfd_new(), wake = tm_eventfd_new();

	assert_true(intx >= 0 && wake >= 0);
	assert_int_equal(set_intx_trigger(fx->inst, intx), 0);
	/* Working before: an assert fires once and auto-masks. */
	vfpm_pci_intx_assert(m->pdev);
	assert_int_equal(tm_eventfd_take(intx), 1);
	vfpm_pci_intx_deassert(m->pdev);
	assert_int_equal(intx_action(fx->inst, VFIO_IRQ_SET_ACTION_UNMASK), 0);
	assert_int_equal(tm_eventfd_take(intx), 0);

	/* Suspended: INTx masked by the suspend; woken: unmasked again. */
	assert_int_equal(tm_entry_wakeup(fx->inst, wake, NULL), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(tm_eventfd_take(wake), 1);
	assert_true(tm_stays_active(m, 0));
	assert_int_equal(tm_eventfd_take(intx), 0);
	vfpm_pci_intx_assert(m->pdev);
	assert_int_equal(tm_eventfd_take(intx), 1);
	vfpm_pci_intx_deassert(m->pdev);
	assert_int_equal(intx_action(fx->inst, VFIO_IRQ_SET_ACTION_UNMASK), 0);

	/* A line raised while suspended is held back until the wake unmasks it. */
	assert_int_equal(tm_entry_wakeup(fx->inst, wake, NULL), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	vfpm_pci_intx_assert(m->pdev);
	assert_int_equal(tm_eventfd_take(intx), 0);
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(tm_eventfd_take(wake), 1);
	assert_int_equal(tm_eventfd_take(intx), 1);
	vfpm_pci_intx_deassert(m->pdev);

	close(intx);
	close(wake);
}

static void test_intx_user_mask_survives_wake(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int intx = tm_eventfd_new(), wake = tm_eventfd_new();

	assert_true(intx >= 0 && wake >= 0);
	assert_int_equal(set_intx_trigger(fx->inst, intx), 0);
	assert_int_equal(intx_action(fx->inst, VFIO_IRQ_SET_ACTION_MASK), 0);

	assert_int_equal(tm_entry_wakeup(fx->inst, wake, NULL), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(tm_eventfd_take(wake), 1);
	assert_true(tm_stays_active(m, 0));

	/* Still masked by the user: nothing until the user unmasks. */
	vfpm_pci_intx_assert(m->pdev);
	assert_int_equal(tm_eventfd_take(intx), 0);
	assert_int_equal(intx_action(fx->inst, VFIO_IRQ_SET_ACTION_UNMASK), 0);
	assert_int_equal(tm_eventfd_take(intx), 1);
	vfpm_pci_intx_deassert(m->pdev);

	/* Same across plain ENTRY, a suspend and EXIT. */
	assert_int_equal(intx_action(fx->inst, VFIO_IRQ_SET_ACTION_MASK), 0);
	enter_and_suspend(fx);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_true(tm_stays_active(m, 0));
	vfpm_pci_intx_assert(m->pdev);
	assert_int_equal(tm_eventfd_take(intx), 0);
	assert_int_equal(intx_action(fx->inst, VFIO_IRQ_SET_ACTION_UNMASK), 0);
	assert_int_equal(tm_eventfd_take(intx), 1);
	vfpm_pci_intx_deassert(m->pdev);

	close(intx);
	close(wake);
}

/* ---- a model that opts out of runtime PM ---- */

static void test_opt_out_never_suspends(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int suspends = atomic_load(&m->suspends);
	int baseline = tm_count_fds();
	int efd;

	assert_true(m->config.opt_out);
	assert_int_equal(tm_entry(fx->inst), 0);
	assert_true(vfpm_pci_low_power_engaged(m->pdev));
	assert_true(tm_stays_active(m, TM_QUIET_MS));
	assert_int_equal(tm_entry(fx->inst), -EINVAL);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_true(tm_stays_active(m, 0));

	check_wakeup_errors(fx);

	efd = tm_eventfd_new();
	assert_true(efd >= 0);
	assert_int_equal(tm_entry_wakeup(fx->inst, efd, NULL), 0);
	assert_true(tm_stays_active(m, TM_QUIET_MS));
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(tm_eventfd_take(efd), 0);	/* never suspended: no wakeup */
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(tm_eventfd_take(efd), 0);
	assert_true(tm_stays_active(m, 0));
	assert_int_equal(atomic_load(&m->suspends), suspends);
	close(efd);
	assert_int_equal(tm_count_fds(), baseline);

	/* Its close drops the model's reference: the unused device suspends. */
	vfpm_instance_close(fx->inst);
	fx->inst = NULL;
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(atomic_load(&m->suspends), suspends + 1);
}

static const struct tm_config opt_out_config = { .opt_out = true };

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_open, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unopened_suspends_open_resumes,
						setup_unopened, teardown),
		T(test_every_ioctl_resumes_first),
		T(test_feature_validation_order),
		T(test_entry_suspends_once_and_twice_is_einval),
		T(test_wakeup_argument_errors),
		T(test_wakeup_reserved_not_checked),
		T(test_wakeup_fd_table_index),
		T(test_exit_without_entry_is_noop),
		T(test_exit_after_suspend_stays_active),
		T(test_wakeup_signals_once_and_stays_active),
		T(test_plain_entry_access_wakes_and_resuspends),
		T(test_last_close_while_armed),
		T(test_failed_resume_is_sticky_eio),
		T(test_intx_unmasked_after_wake),
		T(test_intx_user_mask_survives_wake),
		cmocka_unit_test_prestate_setup_teardown(test_opt_out_never_suspends, setup_open,
							 teardown, (void *)&opt_out_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
