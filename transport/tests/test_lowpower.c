// SPDX-License-Identifier: MIT
/*
 * The low power features over the socket: DEVICE_FEATURE 3/4/5, the wakeup
 * eventfd passed by SCM_RIGHTS and read back by the client, the errors of
 * the fd index rule, disconnect while armed, and ENTRY racing a request in
 * flight on another connection.
 */
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

static uint16_t read_vendor(struct vfpm_client *c)
{
	uint16_t vendor = 0;

	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID,
						 &vendor, sizeof(vendor)), sizeof(vendor));
	return vendor;
}

/* ENTRY: the device suspends; any request wakes it, and it suspends again after. */
static void test_entry_access_resuspends(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	int resumes;

	tfix_wait_status(f, VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_client_low_power_entry(c), 0);
	assert_true(vfpm_pci_low_power_engaged(f->model->pdev));
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_true(f->model->suspends >= 1);

	resumes = f->model->resumes;
	assert_int_equal(read_vendor(c), TM_VENDOR_ID);
	assert_int_equal(f->model->resumes, resumes + 1);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);

	/* A device ioctl wakes it the same way. */
	struct vfio_device_info info;

	assert_int_equal(vfpm_client_get_info(c, &info), 0);
	assert_int_equal(f->model->resumes, resumes + 2);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_true(vfpm_pci_low_power_engaged(f->model->pdev));

	/* ENTRY while engaged is refused. */
	assert_int_equal(vfpm_client_low_power_entry(c), -EINVAL);
	vfpm_client_close(c);
}

/* WITH_WAKEUP: the eventfd travels by SCM_RIGHTS and fires once on the wake. */
static void test_wakeup_eventfd(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	int efd = t_eventfd();

	assert_int_equal(vfpm_client_low_power_entry_with_wakeup(c, efd), 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(t_eventfd_read(efd), 0);

	assert_int_equal(read_vendor(c), TM_VENDOR_ID);
	assert_int_equal(t_eventfd_read(efd), 1);
	/* The wake disengaged low power and took the open reference back: it stays up. */
	assert_false(vfpm_pci_low_power_engaged(f->model->pdev));
	assert_int_equal(vfpm_pm_status(tfix_pm(f)), VFPM_PM_ACTIVE);
	assert_true(vfpm_pm_usage_count(tfix_pm(f)) >= 1);
	assert_int_equal(read_vendor(c), TM_VENDOR_ID);
	assert_int_equal(t_eventfd_read(efd), 0);

	/* EXIT after the wake is a no-op; the eventfd is not signalled again. */
	assert_int_equal(vfpm_client_low_power_exit(c), 0);
	assert_int_equal(t_eventfd_read(efd), 0);
	vfpm_client_close(c);
	close(efd);
}

/* EXIT: back to ACTIVE with the open reference; EXIT again is a no-op. */
static void test_exit(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);

	assert_int_equal(vfpm_client_low_power_exit(c), 0);	/* without ENTRY */
	assert_int_equal(vfpm_client_low_power_entry(c), 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_client_low_power_exit(c), 0);
	assert_false(vfpm_pci_low_power_engaged(f->model->pdev));
	assert_int_equal(vfpm_pm_status(tfix_pm(f)), VFPM_PM_ACTIVE);
	assert_true(vfpm_pm_usage_count(tfix_pm(f)) >= 1);
	assert_int_equal(vfpm_client_low_power_exit(c), 0);
	vfpm_client_close(c);
}

static int feature4(struct vfpm_client *c, int32_t index, uint32_t data_len, const int *fds,
		    unsigned int nfds)
{
	struct vfio_device_low_power_entry_with_wakeup entry = { .wakeup_eventfd = index };

	return vfpm_client_feature(c, VFIO_DEVICE_FEATURE_SET |
				   VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
				   &entry, data_len, 0, fds, nfds);
}

/* The fd index rule's errors, and that nothing leaks on any of them. */
static void test_wakeup_errors(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	int before = t_count_fds();
	int efd = t_eventfd(), efd2 = t_eventfd();
	int pipefd[2];
	int two[2] = { efd, efd2 };

	assert_int_equal(pipe(pipefd), 0);
	/* An index beyond the message's fds, or none at all. */
	assert_int_equal(feature4(c, 1, 8, &efd, 1), -EBADF);
	assert_int_equal(feature4(c, 0, 8, NULL, 0), -EBADF);
	/* Negative. */
	assert_int_equal(feature4(c, -1, 8, &efd, 1), -EINVAL);
	/* Not an eventfd. */
	assert_int_equal(feature4(c, 0, 8, &pipefd[0], 1), -EINVAL);
	/* argsz shorter than the feature's struct; argsz right but no data sent. */
	assert_int_equal(feature4(c, 0, 4, &efd, 1), -EINVAL);
	assert_int_equal(vfpm_client_feature(c, VFIO_DEVICE_FEATURE_SET |
					     VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
					     two, 0, 8, &efd, 1), -EFAULT);
	assert_false(vfpm_pci_low_power_engaged(f->model->pdev));

	/* Index 1 of two: the second eventfd is the one armed. */
	assert_int_equal(feature4(c, 1, 8, two, 2), 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(read_vendor(c), TM_VENDOR_ID);
	assert_int_equal(t_eventfd_read(efd2), 1);
	assert_int_equal(t_eventfd_read(efd), 0);

	close(pipefd[0]);
	close(pipefd[1]);
	close(efd);
	close(efd2);
	assert_int_equal(t_count_fds(), before);
	vfpm_client_close(c);
}

/* The client goes away while low power is armed: no signal, and the device sleeps. */
static void test_disconnect_while_armed(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	int efd = t_eventfd();
	int resumes;

	assert_int_equal(vfpm_client_low_power_entry_with_wakeup(c, efd), 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	resumes = f->model->resumes;
	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
	/* The last close woke the device to tear it down, without signalling. */
	assert_true(f->model->resumes > resumes);
	assert_int_equal(t_eventfd_read(efd), 0);
	assert_false(vfpm_pci_low_power_engaged(f->model->pdev));
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(t_eventfd_read(efd), 0);
	close(efd);

	/* A new client finds a working device. */
	c = tfix_connect(f);
	t_check_client(c);
	vfpm_client_close(c);
}

/*
 * vfpm's POWER_STATUS looks without waking: a connection opens the device
 * with its first device command, and the status query is not one.
 */
static void test_power_status_does_not_wake(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *watcher, *c = tfix_connect(f);
	struct vfpm_client_power st;
	struct vfio_device_info info = { .argsz = sizeof(info) };
	int resumes;
	int efd = t_eventfd();

	assert_int_equal(vfpm_client_low_power_entry_with_wakeup(c, efd), 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	resumes = f->model->resumes;

	/* Not tfix_connect: its extra round trip is a device command. */
	assert_int_equal(vfpm_client_connect(f->path, &watcher), 0);
	assert_int_equal(vfpm_client_power_status(watcher, &st), 0);
	assert_string_equal(st.runtime_status, "suspended");
	assert_true(st.have_counts);
	assert_true(st.runtime_pm);
	assert_true(st.low_power);
	assert_true(st.wakeup_armed);
	assert_int_equal(st.usage_count, 0);
	assert_int_equal(f->model->resumes, resumes);
	assert_int_equal(t_eventfd_read(efd), 0);

	/* Its first device command is an access like any other: it wakes the device. */
	assert_int_equal(vfpm_client_get_info(watcher, &info), 0);
	assert_int_equal(t_eventfd_read(efd), 1);
	assert_int_equal(vfpm_client_power_status(watcher, &st), 0);
	assert_string_equal(st.runtime_status, "active");
	assert_false(st.low_power);
	assert_false(st.wakeup_armed);
	assert_int_equal(st.usage_count, 1);
	assert_true(st.resumes >= 1 && st.suspends >= 1);
	vfpm_client_close(watcher);
	vfpm_client_close(c);
	close(efd);
}

/* Plain ENTRY, then disconnect while suspended: the unused device stays suspended. */
static void test_disconnect_after_entry(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);

	assert_int_equal(vfpm_client_low_power_entry(c), 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_device_open_count(vfpm_pci_device(f->model->pdev)), 0);
}

static sigjmp_buf sigbus_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(sigbus_jmp, 1);
}

/* Read a word through a mapping: 0 or -EFAULT when the access faults (SIGBUS). */
static int probe_read(volatile uint32_t *p, uint32_t *v)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	int ret = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(sigbus_jmp, 1) == 0)
		*v = *p;
	else
		ret = -EFAULT;
	sigaction(SIGBUS, &old, NULL);
	return ret;
}

/* The BAR fd that came by SCM_RIGHTS is revoked while low power is engaged. */
static void test_mmap_revoked_while_engaged(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	struct vfio_region_info info;
	volatile uint32_t *map;
	uint32_t v = 0;
	int resumes;
	int fd;

	t_enable_memory(c);
	assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_BAR0_REGION_INDEX, &info,
						     sizeof(info), &fd), 0);
	map = mmap(NULL, TM_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)info.offset);
	assert_true(map != MAP_FAILED);
	close(fd);
	map[4] = 0x5eed;

	assert_int_equal(vfpm_client_low_power_entry(c), 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	resumes = f->model->resumes;
	assert_int_equal(probe_read(&map[4], &v), -EFAULT);
	/* The faulting access did not wake the device. */
	assert_int_equal(f->model->resumes, resumes);
	assert_int_equal(vfpm_pm_status(tfix_pm(f)), VFPM_PM_SUSPENDED);

	assert_int_equal(vfpm_client_low_power_exit(c), 0);
	assert_int_equal(probe_read(&map[4], &v), 0);
	assert_int_equal(v, 0x5eed);
	munmap((void *)map, TM_BAR0_SIZE);
	vfpm_client_close(c);
}

/*
 * The race: client 1 is inside a long request, client 2 asks for low power.
 * ENTRY succeeds at once, the device stays ACTIVE until the request returns,
 * then suspends; the model is never touched while not ACTIVE.
 */
static void entry_during_request(struct tfix *f, bool deferred)
{
	struct vfpm_client *c1 = tfix_connect(f), *c2 = tfix_connect(f);
	struct t_slow_read r = { .c = c1 };
	pthread_t t;

	t_enable_memory(c1);
	if (deferred)
		tm_read_gate_close_deferred(f->model);
	else
		tm_read_gate_close(f->model);
	assert_int_equal(pthread_create(&t, NULL, t_slow_read_thread, &r), 0);
	assert_int_equal(tm_read_gate_wait(f->model, 1, T_TIMEOUT_MS), 0);

	assert_int_equal(vfpm_client_low_power_entry(c2), 0);
	assert_true(vfpm_pci_low_power_engaged(f->model->pdev));
	assert_int_equal(vfpm_pm_status(tfix_pm(f)), VFPM_PM_ACTIVE);
	/* Client 2 is not held up by client 1's request either. */
	assert_int_equal(read_vendor(c2), TM_VENDOR_ID);
	assert_int_equal(vfpm_pm_status(tfix_pm(f)), VFPM_PM_ACTIVE);

	tm_read_gate_open(f->model);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(r.ret, 4);
	assert_int_equal(r.value, TM_SLOW_VALUE);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(f->model->violations, 0);

	vfpm_client_close(c1);
	vfpm_client_close(c2);
}

/*
 * The request in flight blocks the thread it runs on (threaded core); on the
 * caller-driven core, whose one thread must never block, the model defers it
 * instead (a blocked model would hold up every connection there).
 */
static void test_entry_during_request(void **state)
{
	entry_during_request(*state, t_caller_loop());
}

/*
 * The same with the request deferred by the model on either core: its
 * runtime PM reference is held until it completes, so ENTRY still succeeds
 * at once and the device suspends only after the completion.
 */
static void test_entry_during_deferred_request(void **state)
{
	entry_during_request(*state, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_entry_access_resuspends, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_eventfd, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_exit, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_power_status_does_not_wake, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_errors, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_while_armed, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_disconnect_after_entry, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_mmap_revoked_while_engaged, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_entry_during_request, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_entry_during_deferred_request, tfix_setup,
						tfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
