// SPDX-License-Identifier: MIT
/*
 * Runtime PM control: device lifecycle, enable/disable, barrier, direct
 * status setting, user policy (allow/forbid) and autosuspend settings, built
 * on the state machine in runtime.c.
 */
#include "pm_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* ---- lifecycle and the helpers that are not plain flag wrappers ---- */

int vfpm_pm_dev_create(const struct vfpm_pm_ops *ops, void *opaque, struct vfpm_pm_dev **out)
{
	struct vfpm_pm_dev *dev;
	pthread_condattr_t attr;
	int err;

	if (!out)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	err = pm_worker_get();
	if (err) {
		free(dev);
		return err;
	}
	if (ops)
		dev->ops = *ops;
	dev->opaque = opaque;
	pthread_mutex_init(&dev->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&dev->wait, &attr);
	pthread_condattr_destroy(&attr);
	pm_work_init(&dev->work, rpm_work);

	/* As the kernel's pm_runtime_init(): suspended, disabled, allowed. */
	atomic_init(&dev->state, (uint64_t)VFPM_PM_SUSPENDED | PM_STATE_SLOW);
	atomic_init(&dev->autosuspend_delay_ms, 0);
	atomic_init(&dev->last_busy_ns, pm_now_ns());
	dev->disable_depth = 1;
	dev->last_status = PM_LAST_STATUS_INVALID;
	dev->runtime_auto = true;
	*out = dev;
	return 0;
}

void vfpm_pm_dev_destroy(struct vfpm_pm_dev *dev)
{
	if (!dev)
		return;
	vfpm_pm_disable(dev);
	rpm_lock(dev);
	rpm_deactivate_timer(dev);
	rpm_unlock(dev);
	pm_work_cancel_sync(&dev->work);
	/* An active child stops counting in its parent when it goes away. */
	if (dev->parent && rpm_status(dev) == VFPM_PM_ACTIVE)
		atomic_fetch_sub(&dev->parent->child_count, 1);
	pthread_cond_destroy(&dev->wait);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
	pm_worker_put();
}

void *vfpm_pm_opaque(const struct vfpm_pm_dev *dev)
{
	return dev->opaque;
}

int vfpm_pm_set_parent(struct vfpm_pm_dev *dev, struct vfpm_pm_dev *parent)
{
	int err = 0;

	if (parent == dev)
		return -EINVAL;
	rpm_lock(dev);
	if (dev->disable_depth == 0) {
		err = -EBUSY;
	} else if (dev->parent != parent) {
		bool active = rpm_status(dev) == VFPM_PM_ACTIVE;

		if (active && dev->parent)
			atomic_fetch_sub(&dev->parent->child_count, 1);
		if (active && parent)
			atomic_fetch_add(&parent->child_count, 1);
		dev->parent = parent;
	}
	rpm_unlock(dev);
	return err;
}

void vfpm_pm_get_noresume(struct vfpm_pm_dev *dev)
{
	rpm_usage_inc(dev);
}

void vfpm_pm_put_noidle(struct vfpm_pm_dev *dev)
{
	uint64_t s = atomic_load(&dev->state);

	while (state_usage(s) > 0 &&
	       !atomic_compare_exchange_weak(&dev->state, &s, s - PM_STATE_USAGE_ONE))
		;
}

int vfpm_pm_resume_and_get(struct vfpm_pm_dev *dev)
{
	int ret = pm_runtime_resume_flags(dev, RPM_GET_PUT);

	if (ret < 0) {
		vfpm_pm_put_noidle(dev);
		return ret;
	}
	return 0;
}

int vfpm_pm_schedule_suspend(struct vfpm_pm_dev *dev, unsigned int delay_ms)
{
	int retval;

	rpm_lock(dev);
	if (!delay_ms) {
		retval = rpm_suspend(dev, RPM_ASYNC);
		goto out;
	}
	retval = rpm_check_suspend_allowed(dev);
	if (retval)
		goto out;
	rpm_cancel_pending(dev);
	dev->timer_expires = pm_now_ns() + (uint64_t)delay_ms * 1000000u;
	dev->timer_autosuspends = false;
	pm_work_timer_arm(&dev->work, dev->timer_expires);
out:
	rpm_unlock(dev);
	return retval;
}

void vfpm_pm_allow(struct vfpm_pm_dev *dev)
{
	rpm_lock(dev);
	if (!dev->runtime_auto) {
		dev->runtime_auto = true;
		if (rpm_drop_usage_count(dev) == 0)
			rpm_idle(dev, RPM_AUTO | RPM_ASYNC);
	}
	rpm_unlock(dev);
}

void vfpm_pm_forbid(struct vfpm_pm_dev *dev)
{
	rpm_lock(dev);
	if (dev->runtime_auto) {
		dev->runtime_auto = false;
		rpm_usage_inc(dev);
		rpm_resume(dev, 0);
	}
	rpm_unlock(dev);
}

/* ---- enable, disable, barrier, set_status (the kernel's pm_runtime_*) ---- */

/* Cancel requests and wait for callbacks in progress (lock held, dropped meanwhile). */
static void rpm_barrier_locked(struct vfpm_pm_dev *dev)
{
	rpm_deactivate_timer(dev);
	if (dev->request_pending) {
		dev->request = PM_REQ_NONE;
		rpm_unlock(dev);
		pm_work_cancel_sync(&dev->work);
		rpm_lock(dev);
		dev->request_pending = false;
	}
	while (rpm_status(dev) == VFPM_PM_SUSPENDING || rpm_status(dev) == VFPM_PM_RESUMING ||
	       dev->idle_notification)
		rpm_wait(dev);
}

int vfpm_pm_barrier(struct vfpm_pm_dev *dev)
{
	int retval = 0;

	rpm_usage_inc(dev);
	rpm_lock(dev);
	if (dev->request_pending && dev->request == PM_REQ_RESUME) {
		rpm_resume(dev, 0);
		retval = 1;
	}
	rpm_barrier_locked(dev);
	rpm_unlock(dev);
	vfpm_pm_put_noidle(dev);
	return retval;
}

void vfpm_pm_disable(struct vfpm_pm_dev *dev)
{
	rpm_lock(dev);
	if (dev->disable_depth > 0) {
		dev->disable_depth++;
		goto out;
	}
	/* A pending resume means there is work to do: do not strand it. */
	if (dev->request_pending && dev->request == PM_REQ_RESUME) {
		rpm_usage_inc(dev);
		rpm_resume(dev, 0);
		vfpm_pm_put_noidle(dev);
	}
	if (!dev->disable_depth++) {
		rpm_barrier_locked(dev);
		dev->last_status = (int)rpm_status(dev);
	}
out:
	rpm_unlock(dev);
}

void vfpm_pm_enable(struct vfpm_pm_dev *dev)
{
	rpm_lock(dev);
	if (dev->disable_depth > 0 && --dev->disable_depth == 0)
		dev->last_status = PM_LAST_STATUS_INVALID;
	rpm_unlock(dev);
}

/* The kernel's __pm_runtime_set_status. */
static int rpm_set_status_direct(struct vfpm_pm_dev *dev, enum vfpm_pm_status status)
{
	struct vfpm_pm_dev *parent;
	bool notify_parent = false;
	int error = 0;

	rpm_lock(dev);
	/* Only while disabled or failed; keep it disabled meanwhile. */
	if (!dev->runtime_error && !dev->disable_depth) {
		rpm_unlock(dev);
		return -EAGAIN;
	}
	dev->disable_depth++;
	parent = dev->parent;

	if (rpm_status(dev) != status && parent) {
		if (status == VFPM_PM_SUSPENDED) {
			int children = atomic_load(&parent->child_count);

			while (children > 0 &&
			       !atomic_compare_exchange_weak(&parent->child_count, &children,
							     children - 1))
				;
			notify_parent = !parent->ignore_children;
		} else {
			rpm_lock(parent);
			/* An active child under an enabled, inactive parent is invalid. */
			if (!parent->disable_depth && !parent->ignore_children &&
			    rpm_status(parent) != VFPM_PM_ACTIVE)
				error = -EBUSY;
			else if (rpm_status(dev) == VFPM_PM_SUSPENDED)
				atomic_fetch_add(&parent->child_count, 1);
			rpm_unlock(parent);
		}
	}
	if (!error) {
		rpm_set_status(dev, status);
		dev->runtime_error = 0;
	}
	rpm_unlock(dev);

	if (notify_parent)
		vfpm_pm_request_idle(parent);
	vfpm_pm_enable(dev);
	return error;
}

int vfpm_pm_set_active(struct vfpm_pm_dev *dev)
{
	return rpm_set_status_direct(dev, VFPM_PM_ACTIVE);
}

int vfpm_pm_set_suspended(struct vfpm_pm_dev *dev)
{
	return rpm_set_status_direct(dev, VFPM_PM_SUSPENDED);
}

/* The kernel's update_autosuspend (lock held). */
static void rpm_update_autosuspend(struct vfpm_pm_dev *dev, int old_delay, bool old_use)
{
	int delay = atomic_load(&dev->autosuspend_delay_ms);

	if (dev->use_autosuspend && delay < 0) {
		/* Runtime suspend is prevented now; take a reference if it was allowed. */
		if (!old_use || old_delay >= 0) {
			rpm_usage_inc(dev);
			rpm_resume(dev, 0);
		}
	} else {
		/* Allowed now; drop the reference if it used to be prevented. */
		if (old_use && old_delay < 0)
			atomic_fetch_sub(&dev->state, PM_STATE_USAGE_ONE);
		rpm_idle(dev, RPM_AUTO);
	}
}

void vfpm_pm_set_autosuspend_delay(struct vfpm_pm_dev *dev, int delay_ms)
{
	int old_delay;

	rpm_lock(dev);
	old_delay = atomic_exchange(&dev->autosuspend_delay_ms, delay_ms);
	rpm_update_autosuspend(dev, old_delay, dev->use_autosuspend);
	rpm_unlock(dev);
}

void vfpm_pm_use_autosuspend(struct vfpm_pm_dev *dev, bool use)
{
	bool old_use;

	rpm_lock(dev);
	old_use = dev->use_autosuspend;
	dev->use_autosuspend = use;
	rpm_update_autosuspend(dev, atomic_load(&dev->autosuspend_delay_ms), old_use);
	rpm_unlock(dev);
}
