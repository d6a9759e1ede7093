// SPDX-License-Identifier: MIT
/*
 * The public helpers that are plain combinations of the core's entry points
 * (the kernel's static inlines in include/linux/pm_runtime.h), and the
 * accessors.
 */
#include "pm_internal.h"

#include <errno.h>
#include <poll.h>
#include <time.h>

/*
 * Longest sleep on the pool's fd while wait_status drives the pool: a status
 * change made by another thread's synchronous call does not make the fd
 * readable, so look again at least this often.
 */
#define WAIT_DRIVING_SLICE_MS 10

int vfpm_pm_get_sync(struct vfpm_pm_dev *dev)
{
	return pm_runtime_resume_flags(dev, RPM_GET_PUT);
}

int vfpm_pm_get(struct vfpm_pm_dev *dev)
{
	return pm_runtime_resume_flags(dev, RPM_GET_PUT | RPM_ASYNC);
}

int vfpm_pm_put(struct vfpm_pm_dev *dev)
{
	return pm_runtime_idle_flags(dev, RPM_GET_PUT | RPM_ASYNC);
}

int vfpm_pm_put_sync(struct vfpm_pm_dev *dev)
{
	return pm_runtime_idle_flags(dev, RPM_GET_PUT);
}

int vfpm_pm_put_autosuspend(struct vfpm_pm_dev *dev)
{
	return pm_runtime_suspend_flags(dev, RPM_GET_PUT | RPM_ASYNC | RPM_AUTO);
}

int vfpm_pm_put_sync_autosuspend(struct vfpm_pm_dev *dev)
{
	return pm_runtime_suspend_flags(dev, RPM_GET_PUT | RPM_AUTO);
}

int vfpm_pm_resume(struct vfpm_pm_dev *dev)
{
	return pm_runtime_resume_flags(dev, 0);
}

int vfpm_pm_request_resume(struct vfpm_pm_dev *dev)
{
	return pm_runtime_resume_flags(dev, RPM_ASYNC);
}

int vfpm_pm_idle(struct vfpm_pm_dev *dev)
{
	return pm_runtime_idle_flags(dev, 0);
}

int vfpm_pm_request_idle(struct vfpm_pm_dev *dev)
{
	return pm_runtime_idle_flags(dev, RPM_ASYNC);
}

int vfpm_pm_suspend(struct vfpm_pm_dev *dev)
{
	return pm_runtime_suspend_flags(dev, 0);
}

int vfpm_pm_autosuspend(struct vfpm_pm_dev *dev)
{
	return pm_runtime_suspend_flags(dev, RPM_AUTO);
}

int vfpm_pm_request_autosuspend(struct vfpm_pm_dev *dev)
{
	return pm_runtime_suspend_flags(dev, RPM_ASYNC | RPM_AUTO);
}

void vfpm_pm_mark_last_busy(struct vfpm_pm_dev *dev)
{
	atomic_store(&dev->last_busy_ns, pm_now_ns());
}

void vfpm_pm_set_ignore_children(struct vfpm_pm_dev *dev, bool ignore)
{
	rpm_lock(dev);
	dev->ignore_children = ignore;
	rpm_unlock(dev);
}

void vfpm_pm_set_no_callbacks(struct vfpm_pm_dev *dev)
{
	rpm_lock(dev);
	dev->no_callbacks = true;
	rpm_unlock(dev);
}

enum vfpm_pm_status vfpm_pm_status(const struct vfpm_pm_dev *dev)
{
	return state_status(atomic_load(&((struct vfpm_pm_dev *)dev)->state));
}

int vfpm_pm_usage_count(const struct vfpm_pm_dev *dev)
{
	return (int)state_usage(atomic_load(&((struct vfpm_pm_dev *)dev)->state));
}

int vfpm_pm_child_count(const struct vfpm_pm_dev *dev)
{
	return atomic_load(&((struct vfpm_pm_dev *)dev)->child_count);
}

int vfpm_pm_runtime_error(struct vfpm_pm_dev *dev)
{
	int error;

	rpm_lock(dev);
	error = dev->runtime_error;
	rpm_unlock(dev);
	return error;
}

int vfpm_pm_disable_depth(struct vfpm_pm_dev *dev)
{
	int depth;

	rpm_lock(dev);
	depth = dev->disable_depth;
	rpm_unlock(dev);
	return depth;
}

bool vfpm_pm_is_enabled(struct vfpm_pm_dev *dev)
{
	return vfpm_pm_disable_depth(dev) == 0;
}

bool vfpm_pm_runtime_auto(struct vfpm_pm_dev *dev)
{
	bool allowed;

	rpm_lock(dev);
	allowed = dev->runtime_auto;
	rpm_unlock(dev);
	return allowed;
}

const char *vfpm_pm_status_name(enum vfpm_pm_status status)
{
	switch (status) {
	case VFPM_PM_ACTIVE:
		return "active";
	case VFPM_PM_RESUMING:
		return "resuming";
	case VFPM_PM_SUSPENDED:
		return "suspended";
	case VFPM_PM_SUSPENDING:
		return "suspending";
	}
	return "unknown";
}

/*
 * The caller-driven mode: the status this wait is for is most likely reached
 * by a queued request or a timer, and nobody else may be serving the pool
 * (the caller's loop is often this very thread).  Serve it here, sleeping on
 * its fd when nothing is due.  0, or -ETIMEDOUT once deadline_ns (0: none)
 * has passed.  Lock held on entry and exit, dropped meanwhile.
 */
static int rpm_wait_driving_worker(struct vfpm_pm_dev *dev, uint64_t deadline_ns)
{
	struct pollfd pfd = { .events = POLLIN };
	int slice = WAIT_DRIVING_SLICE_MS;
	uint64_t now;

	rpm_unlock(dev);
	if (pm_worker_process() == 0) {
		now = pm_now_ns();
		if (deadline_ns && deadline_ns <= now)
			slice = 0;
		else if (deadline_ns && deadline_ns - now < (uint64_t)slice * 1000000u)
			slice = (int)((deadline_ns - now + 999999u) / 1000000u);
		pfd.fd = pm_worker_fd();
		if (slice > 0 && pfd.fd >= 0)
			poll(&pfd, 1, slice);
	}
	rpm_lock(dev);
	return deadline_ns && pm_now_ns() >= deadline_ns ? -ETIMEDOUT : 0;
}

int vfpm_pm_wait_status(struct vfpm_pm_dev *dev, enum vfpm_pm_status status, int timeout_ms)
{
	struct timespec until;
	uint64_t entries, deadline_ns = 0;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	if (timeout_ms >= 0)
		deadline_ns = pm_now_ns() + (uint64_t)timeout_ms * 1000000u;
	if (timeout_ms > 0) {
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	rpm_lock(dev);
	entries = dev->status_entries[status];
	while (vfpm_pm_status(dev) != status && dev->status_entries[status] == entries && !err) {
		if (pm_worker_caller_driven())
			err = rpm_wait_driving_worker(dev, deadline_ns);
		else if (timeout_ms < 0)
			pthread_cond_wait(&dev->wait, &dev->lock);
		else if (pthread_cond_timedwait(&dev->wait, &dev->lock, &until) == ETIMEDOUT)
			err = -ETIMEDOUT;
	}
	if (err && (vfpm_pm_status(dev) == status || dev->status_entries[status] != entries))
		err = 0;
	rpm_unlock(dev);
	return err;
}

int vfpm_pm_worker_threads(void)
{
	return pm_worker_thread_count();
}

int vfpm_pm_worker_set_external(bool external)
{
	return pm_worker_set_external(external);
}

int vfpm_pm_worker_fd(void)
{
	return pm_worker_fd();
}

int vfpm_pm_worker_process(void)
{
	return pm_worker_process();
}
