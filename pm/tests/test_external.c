/* SPDX-License-Identifier: MIT */
/*
 * The caller-driven mode of the worker pool (vfpm_pm_worker_set_external):
 * no thread is started, nothing asynchronous happens until the caller's loop
 * sees the pool's fd readable and calls vfpm_pm_worker_process(), and then
 * the callbacks run on the caller's thread.  Then back to the threads mode,
 * which must behave as before.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pm_test_util.h"
#include "worker.h"

#define DELAY_MS 50
/* Three autosuspend delays: long enough for a wrongly started thread to have suspended it. */
#define QUIET_MS 150

/* A device that remembers which thread ran its callbacks. */
struct tdev {
	struct vfpm_pm_dev *dev;
	atomic_int idle_ret;
	atomic_int suspends, resumes, idles;
	pthread_t suspend_thread, resume_thread, idle_thread;	/* written by the callbacks */
	atomic_bool foreign_thread;	/* a callback ran on a thread other than `owner` */
	pthread_t owner;
};

static void note_thread(struct tdev *t, pthread_t *where)
{
	*where = pthread_self();
	if (!pthread_equal(*where, t->owner))
		atomic_store(&t->foreign_thread, true);
}

static int tdev_suspend(struct vfpm_pm_dev *dev, void *opaque)
{
	struct tdev *t = opaque;

	(void)dev;
	note_thread(t, &t->suspend_thread);
	atomic_fetch_add(&t->suspends, 1);
	return 0;
}

static int tdev_resume(struct vfpm_pm_dev *dev, void *opaque)
{
	struct tdev *t = opaque;

	(void)dev;
	note_thread(t, &t->resume_thread);
	atomic_fetch_add(&t->resumes, 1);
	return 0;
}

static int tdev_idle(struct vfpm_pm_dev *dev, void *opaque)
{
	struct tdev *t = opaque;

	(void)dev;
	note_thread(t, &t->idle_thread);
	atomic_fetch_add(&t->idles, 1);
	return atomic_load(&t->idle_ret);
}

/* What a failed test left behind, for the teardown. */
static struct tdev *live[2];

static const struct vfpm_pm_ops tdev_ops = {
	.runtime_suspend = tdev_suspend,
	.runtime_resume = tdev_resume,
	.runtime_idle = tdev_idle,
};

/* ACTIVE and enabled, usage 0; autosuspend_ms < 0: no autosuspend. */
static struct tdev *tdev_new(int autosuspend_ms)
{
	struct tdev *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->owner = pthread_self();
	assert_int_equal(vfpm_pm_dev_create(&tdev_ops, t, &t->dev), 0);
	if (autosuspend_ms >= 0) {
		vfpm_pm_set_autosuspend_delay(t->dev, autosuspend_ms);
		vfpm_pm_use_autosuspend(t->dev, true);
	}
	assert_int_equal(vfpm_pm_set_active(t->dev), 0);
	vfpm_pm_enable(t->dev);
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		if (!live[i]) {
			live[i] = t;
			break;
		}
	}
	return t;
}

static void tdev_free(struct tdev *t)
{
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] == t)
			live[i] = NULL;
	vfpm_pm_dev_destroy(t->dev);
	free(t);
}

static int stop_drivers(void);

/* Each test starts in the default threads mode with no device. */
static int teardown(void **state)
{
	stop_drivers();
	model_free_leftovers(state);
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i])
			tdev_free(live[i]);
	vfpm_pm_worker_set_external(false);
	return 0;
}

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static bool fd_readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN);
}

/*
 * The caller's event loop: wait for the pool's fd, process, until the device
 * is in `status`.  Returns how many works process() ran in all.
 */
static int drive_until(struct tdev *t, enum vfpm_pm_status status)
{
	int fd = vfpm_pm_worker_fd();
	int64_t start = now_ns();
	int ran = 0, n;

	assert_true(fd >= 0);
	while (vfpm_pm_status(t->dev) != status) {
		assert_true(ms_since(start) < SOON_MS);
		if (!fd_readable(fd, 100))
			continue;
		n = vfpm_pm_worker_process();
		assert_true(n >= 0);
		ran += n;
	}
	return ran;
}

/* Run whatever the last transition queued (the idle check after a resume). */
static void drain_pool(void)
{
	int fd = vfpm_pm_worker_fd();

	while (fd_readable(fd, 0))
		assert_true(vfpm_pm_worker_process() >= 0);
}

/*
 * Autosuspend: nothing happens without process(), however long we wait;
 * the fd says when to call it, and the suspend runs on this thread.
 */
static void test_autosuspend_on_callers_thread(void **state)
{
	int threads_before, fd, flags;
	struct tdev *t;

	(void)state;
	threads_before = count_threads();
	assert_int_equal(vfpm_pm_worker_set_external(true), 0);
	fd = vfpm_pm_worker_fd();
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	flags = fcntl(fd, F_GETFL);
	assert_true(flags >= 0 && (flags & O_NONBLOCK));
	/* Nothing due: not readable, and processing is harmless. */
	assert_false(fd_readable(fd, 0));
	assert_int_equal(vfpm_pm_worker_process(), 0);

	t = tdev_new(DELAY_MS);
	assert_int_equal(vfpm_pm_worker_threads(), 0);
	assert_int_equal(count_threads(), threads_before);
	assert_int_equal(vfpm_pm_worker_fd(), fd);

	assert_int_equal(vfpm_pm_resume_and_get(t->dev), 0);
	vfpm_pm_mark_last_busy(t->dev);
	assert_int_equal(vfpm_pm_put_autosuspend(t->dev), 0);
	sleep_us(QUIET_MS * 1000);
	assert_int_equal(vfpm_pm_status(t->dev), VFPM_PM_ACTIVE);
	assert_int_equal(t->suspends, 0);
	/* The timer has expired: the fd says so, and stays readable until processed. */
	assert_true(fd_readable(fd, 0));
	assert_true(fd_readable(fd, 0));

	assert_true(drive_until(t, VFPM_PM_SUSPENDED) >= 1);
	assert_int_equal(t->suspends, 1);
	assert_true(pthread_equal(t->suspend_thread, pthread_self()));
	assert_false(t->foreign_thread);
	/*
	 * The timer's run carried out the suspend it queued, and left a
	 * requeued run that finds nothing to do; after it the fd is quiet.
	 */
	drain_pool();
	assert_false(fd_readable(fd, 0));
	assert_int_equal(vfpm_pm_worker_process(), 0);
	assert_int_equal(t->suspends, 1);
	assert_int_equal(vfpm_pm_worker_threads(), 0);
	assert_int_equal(count_threads(), threads_before);

	tdev_free(t);
	assert_int_equal(vfpm_pm_worker_set_external(false), 0);
}

/* request_idle, request_resume, get: queued, and run by process() here. */
static void test_async_requests_run_by_process(void **state)
{
	int threads_before = count_threads();
	struct tdev *t;

	(void)state;
	assert_int_equal(vfpm_pm_worker_set_external(true), 0);
	t = tdev_new(-1);

	/* Idle check: the idle callback, then the suspend it allows. */
	assert_int_equal(vfpm_pm_request_idle(t->dev), 0);
	sleep_us(QUIET_MS * 1000);
	assert_int_equal(vfpm_pm_status(t->dev), VFPM_PM_ACTIVE);
	assert_int_equal(t->idles, 0);
	assert_true(drive_until(t, VFPM_PM_SUSPENDED) >= 1);
	assert_int_equal(t->idles, 1);
	assert_int_equal(t->suspends, 1);
	assert_true(pthread_equal(t->idle_thread, pthread_self()));
	assert_true(pthread_equal(t->suspend_thread, pthread_self()));

	/* Resume; the idle check it queues keeps the device active. */
	atomic_store(&t->idle_ret, -EBUSY);
	assert_int_equal(vfpm_pm_request_resume(t->dev), 0);
	sleep_us(QUIET_MS * 1000);
	assert_int_equal(vfpm_pm_status(t->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(t->resumes, 0);
	assert_true(drive_until(t, VFPM_PM_ACTIVE) >= 1);
	assert_int_equal(t->resumes, 1);
	assert_true(pthread_equal(t->resume_thread, pthread_self()));
	drain_pool();
	assert_int_equal(t->idles, 2);
	assert_int_equal(vfpm_pm_status(t->dev), VFPM_PM_ACTIVE);

	/*
	 * wait_status waits for a queued request: with no worker thread it
	 * must run it itself, or it would time out.
	 */
	atomic_store(&t->idle_ret, 0);
	assert_int_equal(vfpm_pm_request_idle(t->dev), 0);
	assert_int_equal(vfpm_pm_wait_status(t->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(t->suspends, 2);

	/* get: a reference and an asynchronous resume. */
	atomic_store(&t->idle_ret, -EBUSY);
	assert_int_equal(vfpm_pm_get(t->dev), 0);
	assert_int_equal(vfpm_pm_usage_count(t->dev), 1);
	drive_until(t, VFPM_PM_ACTIVE);
	assert_int_equal(t->resumes, 2);
	vfpm_pm_put_noidle(t->dev);
	assert_int_equal(vfpm_pm_usage_count(t->dev), 0);

	/* schedule_suspend: a plain timer, fired through the timerfd. */
	assert_int_equal(vfpm_pm_schedule_suspend(t->dev, DELAY_MS), 0);
	sleep_us(QUIET_MS * 1000);
	assert_int_equal(vfpm_pm_status(t->dev), VFPM_PM_ACTIVE);
	drive_until(t, VFPM_PM_SUSPENDED);
	assert_int_equal(t->suspends, 3);

	assert_false(t->foreign_thread);
	assert_int_equal(count_threads(), threads_before);
	tdev_free(t);
	assert_int_equal(vfpm_pm_worker_set_external(false), 0);
}

/* The mode can change only while no device exists. */
static void test_mode_change_needs_no_devices(void **state)
{
	struct tdev *t;
	int fd;

	(void)state;
	/* Threads mode (the default): no fd, nothing to process. */
	assert_int_equal(vfpm_pm_worker_fd(), -EINVAL);
	assert_int_equal(vfpm_pm_worker_process(), -EINVAL);
	t = tdev_new(-1);
	assert_int_equal(vfpm_pm_worker_set_external(true), -EBUSY);
	assert_true(vfpm_pm_worker_threads() > 0);
	assert_int_equal(vfpm_pm_worker_fd(), -EINVAL);
	tdev_free(t);

	assert_int_equal(vfpm_pm_worker_set_external(true), 0);
	fd = vfpm_pm_worker_fd();
	assert_true(fd >= 0);
	t = tdev_new(-1);
	assert_int_equal(vfpm_pm_worker_set_external(false), -EBUSY);
	assert_int_equal(vfpm_pm_worker_set_external(true), -EBUSY);
	/* Still the caller-driven mode, with the same fd. */
	assert_int_equal(vfpm_pm_worker_fd(), fd);
	assert_int_equal(vfpm_pm_worker_threads(), 0);
	tdev_free(t);
	/* The fd outlives the last device; only set_external(false) ends it. */
	assert_int_equal(vfpm_pm_worker_fd(), fd);
	assert_int_equal(vfpm_pm_worker_set_external(false), 0);
	assert_int_equal(vfpm_pm_worker_fd(), -EINVAL);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
}

/* Back in the threads mode, the workers serve requests as before. */
static void test_threads_mode_after_external(void **state)
{
	int threads_before = count_threads();
	struct tdev *t;

	(void)state;
	assert_int_equal(vfpm_pm_worker_set_external(true), 0);
	t = tdev_new(-1);
	tdev_free(t);
	assert_int_equal(vfpm_pm_worker_set_external(false), 0);

	t = tdev_new(DELAY_MS);
	assert_true(vfpm_pm_worker_threads() > 0);
	assert_int_equal(count_threads(), threads_before + vfpm_pm_worker_threads());
	assert_int_equal(vfpm_pm_resume_and_get(t->dev), 0);
	vfpm_pm_mark_last_busy(t->dev);
	assert_int_equal(vfpm_pm_put_autosuspend(t->dev), 0);
	/* No process() call: a worker thread does it. */
	assert_int_equal(vfpm_pm_wait_status(t->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(t->suspends, 1);
	assert_false(pthread_equal(t->suspend_thread, pthread_self()));
	tdev_free(t);
	assert_int_equal(vfpm_pm_worker_threads(), 0);
}

/* The host's loop threads; the teardown stops them if a test failed. */
static pthread_t drivers[2];
static int nr_drivers;
static atomic_bool drivers_stop;

/* A loop thread of the host: wait for the fd, process, until told to stop. */
static void *driver_main(void *arg)
{
	int fd = vfpm_pm_worker_fd();

	(void)arg;
	while (!atomic_load(&drivers_stop)) {
		if (fd_readable(fd, 10) && vfpm_pm_worker_process() < 0)
			return (void *)1;
	}
	return NULL;
}

static void start_drivers(void)
{
	atomic_store(&drivers_stop, false);
	for (nr_drivers = 0; nr_drivers < 2; nr_drivers++)
		assert_int_equal(pthread_create(&drivers[nr_drivers], NULL, driver_main, NULL), 0);
}

/* 0 if every loop thread ended well. */
static int stop_drivers(void)
{
	void *ret;
	int bad = 0;

	atomic_store(&drivers_stop, true);
	while (nr_drivers > 0) {
		pthread_join(drivers[--nr_drivers], &ret);
		bad += ret != NULL;
	}
	return bad;
}

/*
 * Two loop threads and the test's own thread (through wait_status) process
 * at once: every request is served, and a device's callbacks never overlap
 * (the model checks that from the inside).
 */
static void test_several_threads_process(void **state)
{
	enum { N = 8, ROUNDS = 30 };
	struct pm_model *m[N];
	int resumes[N];

	(void)state;
	assert_int_equal(vfpm_pm_worker_set_external(true), 0);
	for (int i = 0; i < N; i++)
		m[i] = model_new_active("shared", 0);
	start_drivers();

	for (int r = 0; r < ROUNDS; r++) {
		/* A synchronous resume (the first round finds them ACTIVE), an async idle. */
		for (int i = 0; i < N; i++) {
			assert_int_equal(vfpm_pm_resume_and_get(m[i]->dev), 0);
			assert_true(model_access(m[i]));
			assert_int_equal(vfpm_pm_put(m[i]->dev), 0);
		}
		for (int i = 0; i < N; i++)
			assert_int_equal(wait_status(m[i]->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
		/* An async resume, then the idle check it queues suspends again. */
		for (int i = 0; i < N; i++) {
			resumes[i] = atomic_load(&m[i]->resumes);
			assert_int_equal(vfpm_pm_request_resume(m[i]->dev), 0);
		}
		for (int i = 0; i < N; i++)
			assert_int_equal(model_wait_count(m[i], &m[i]->resumes, resumes[i] + 1,
							  SOON_MS), 0);
		for (int i = 0; i < N; i++)
			assert_int_equal(wait_status(m[i]->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	}
	assert_int_equal(stop_drivers(), 0);
	for (int i = 0; i < N; i++) {
		assert_true(m[i]->suspends >= 2 * ROUNDS);
		assert_model_clean(m[i]);
		model_free(m[i]);
	}
	assert_int_equal(vfpm_pm_worker_set_external(false), 0);
}

/* ---- the pool itself (worker.h): the cases the public API cannot reach ---- */

struct self_cancel {
	struct pm_work work;
	atomic_int runs;
	atomic_int nested_process;
};

/*
 * A work function that cancels its own work, as a callback tearing down its
 * device from inside would: it must not wait for itself.  A nested process()
 * runs nothing.
 */
static void self_cancel_fn(struct pm_work *work, bool timer_fired)
{
	struct self_cancel *sc = (struct self_cancel *)work;

	(void)timer_fired;
	atomic_fetch_add(&sc->runs, 1);
	pm_work_queue(work);		/* requeue while running */
	atomic_store(&sc->nested_process, pm_worker_process());
	pm_work_cancel_sync(work);	/* forgets the requeue, returns at once */
}

static void test_cancel_sync_from_own_work(void **state)
{
	struct self_cancel sc = { 0 };
	int fd;

	(void)state;
	assert_int_equal(pm_worker_set_external(true), 0);
	assert_int_equal(pm_worker_get(), 0);
	fd = pm_worker_fd();
	pm_work_init(&sc.work, self_cancel_fn);
	pm_work_queue(&sc.work);
	assert_true(fd_readable(fd, 0));
	assert_int_equal(pm_worker_process(), 1);
	assert_int_equal(sc.runs, 1);
	assert_int_equal(sc.nested_process, 0);
	/* The cancel dropped the requeue: nothing left. */
	assert_false(fd_readable(fd, 0));
	assert_int_equal(pm_worker_process(), 0);
	assert_int_equal(sc.runs, 1);

	/* A timer that expired before process(): fired through the timerfd. */
	pm_work_timer_arm(&sc.work, pm_now_ns() + 20 * 1000000u);
	assert_false(fd_readable(fd, 0));
	assert_true(fd_readable(fd, SOON_MS));
	assert_int_equal(pm_worker_process(), 1);
	assert_int_equal(sc.runs, 2);
	/* A timer cancelled before it fires leaves the fd quiet. */
	pm_work_timer_arm(&sc.work, pm_now_ns() + 20 * 1000000u);
	pm_work_timer_cancel(&sc.work);
	assert_false(fd_readable(fd, 60));
	pm_work_cancel_sync(&sc.work);
	pm_worker_put();
	assert_int_equal(pm_worker_set_external(false), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_autosuspend_on_callers_thread, teardown),
		cmocka_unit_test_teardown(test_async_requests_run_by_process, teardown),
		cmocka_unit_test_teardown(test_mode_change_needs_no_devices, teardown),
		cmocka_unit_test_teardown(test_threads_mode_after_external, teardown),
		cmocka_unit_test_teardown(test_several_threads_process, teardown),
		cmocka_unit_test(test_cancel_sync_from_own_work),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
