// SPDX-License-Identifier: MIT
/*
 * Runtime power management core: the state machine of Linux 6.1's
 * drivers/base/power/runtime.c (rpm_idle / rpm_suspend / rpm_resume and the
 * helpers built on them), in userspace.
 *
 * The usage count and the status share one atomic word so that get and put
 * on an ACTIVE device need no lock: a getter increments the count and sees,
 * in the same atomic step, whether the device was ACTIVE; a suspender leaves
 * ACTIVE only by a compare-and-swap that requires the count to be zero.
 * Between them no device can be suspended under a reference holder.
 */
#include "pm_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* ---- the state word ---- */

static void rpm_refresh_fast_path(struct vfpm_pm_dev *dev);

/*
 * Any status change: status bits change only under the lock, while the count
 * may be moving concurrently, so flip just the status bits atomically.
 */
void rpm_set_status(struct vfpm_pm_dev *dev, enum vfpm_pm_status status)
{
	uint64_t s;

	/* An error recorded during the transition must block the fast path before ACTIVE shows. */
	rpm_refresh_fast_path(dev);
	s = atomic_load(&dev->state);
	atomic_fetch_xor(&dev->state, (s & PM_STATE_STATUS_MASK) ^ (uint64_t)status);
	dev->status_entries[status]++;
	pthread_cond_broadcast(&dev->wait);
}

/*
 * ACTIVE -> SUSPENDING or SUSPENDED (lock held), only while the usage count
 * is zero.  The lock-free get path can raise the count at any moment, so the
 * test and the change are one atomic step.
 */
static bool rpm_leave_active_if_unused(struct vfpm_pm_dev *dev, enum vfpm_pm_status status)
{
	uint64_t s = atomic_load(&dev->state);

	do {
		if (state_usage(s) != 0)
			return false;
	} while (!atomic_compare_exchange_weak(&dev->state, &s,
					       (s & ~(uint64_t)PM_STATE_STATUS_MASK) | (uint64_t)status));
	dev->status_entries[status]++;
	pthread_cond_broadcast(&dev->wait);
	return true;
}

/* Increment; returns the word as it was before. */
uint64_t rpm_usage_inc(struct vfpm_pm_dev *dev)
{
	return atomic_fetch_add(&dev->state, PM_STATE_USAGE_ONE);
}

/* The kernel's rpm_drop_usage_count: the new count, or -EINVAL (and no change) on underflow. */
int64_t rpm_drop_usage_count(struct vfpm_pm_dev *dev)
{
	int64_t now = state_usage(atomic_fetch_sub(&dev->state, PM_STATE_USAGE_ONE)) - 1;

	if (now >= 0)
		return now;
	atomic_fetch_add(&dev->state, PM_STATE_USAGE_ONE);
	return -EINVAL;
}

/*
 * The lock-free get is only equivalent to the locked one when the locked
 * one would do nothing but return 1: device ACTIVE, enabled, no error, and no
 * request or non-autosuspend timer that rpm_resume() would cancel.  The SLOW
 * bit says otherwise; it is recomputed (lock held) whenever we unlock.
 */
static void rpm_refresh_fast_path(struct vfpm_pm_dev *dev)
{
	bool slow = dev->disable_depth > 0 || dev->runtime_error ||
		    (dev->request_pending && dev->request != PM_REQ_NONE) ||
		    (dev->timer_expires && !dev->timer_autosuspends);
	bool is_slow = atomic_load(&dev->state) & PM_STATE_SLOW;

	if (slow && !is_slow)
		atomic_fetch_or(&dev->state, PM_STATE_SLOW);
	else if (!slow && is_slow)
		atomic_fetch_and(&dev->state, ~(uint64_t)PM_STATE_SLOW);
}

void rpm_lock(struct vfpm_pm_dev *dev)
{
	pthread_mutex_lock(&dev->lock);
}

void rpm_unlock(struct vfpm_pm_dev *dev)
{
	rpm_refresh_fast_path(dev);
	pthread_mutex_unlock(&dev->lock);
}

void rpm_wait(struct vfpm_pm_dev *dev)
{
	rpm_refresh_fast_path(dev);
	pthread_cond_wait(&dev->wait, &dev->lock);
}

/* ---- requests and timers (lock held) ---- */

static void rpm_queue_request(struct vfpm_pm_dev *dev, enum pm_request req)
{
	dev->request = req;
	if (!dev->request_pending) {
		dev->request_pending = true;
		pm_work_queue(&dev->work);
	}
}

void rpm_deactivate_timer(struct vfpm_pm_dev *dev)
{
	if (dev->timer_expires > 0) {
		pm_work_timer_cancel(&dev->work);
		dev->timer_expires = 0;
	}
}

void rpm_cancel_pending(struct vfpm_pm_dev *dev)
{
	rpm_deactivate_timer(dev);
	dev->request = PM_REQ_NONE;
}

static uint64_t rpm_autosuspend_expiration(struct vfpm_pm_dev *dev)
{
	int delay = atomic_load(&dev->autosuspend_delay_ms);
	uint64_t expires;

	if (!dev->use_autosuspend || delay < 0)
		return 0;
	expires = atomic_load(&dev->last_busy_ns) + (uint64_t)delay * 1000000u;
	return expires > pm_now_ns() ? expires : 0;
}

/* ---- callbacks ---- */

/*
 * Idle, suspend and resume callbacks never overlap on two threads: suspend
 * and resume exclude each other through the status, and a suspend or resume
 * waits for an idle callback running on another thread (the kernel lets
 * them overlap; our device models are simpler for not having to).
 */
static bool rpm_wait_for_idle_callback(struct vfpm_pm_dev *dev)
{
	if (!dev->idle_notification || pthread_equal(dev->idle_thread, pthread_self()))
		return false;
	while (dev->idle_notification)
		rpm_wait(dev);
	return true;
}

typedef int (*rpm_callback_fn)(struct vfpm_pm_dev *dev, void *opaque);

/* The kernel's rpm_callback: run cb unlocked and record its error. */
static int rpm_callback(struct vfpm_pm_dev *dev, rpm_callback_fn cb)
{
	int retval;

	/* A missing callback is success (so since Linux 5.14). */
	rpm_unlock(dev);
	retval = cb ? cb(dev, dev->opaque) : 0;
	rpm_lock(dev);
	dev->runtime_error = retval;
	return retval != -EACCES ? retval : -EIO;
}

/* ---- the state machine (lock held on entry and exit) ---- */

int rpm_check_suspend_allowed(struct vfpm_pm_dev *dev)
{
	if (dev->runtime_error)
		return -EINVAL;
	if (dev->disable_depth > 0)
		return -EACCES;
	if (rpm_usage(dev))
		return -EAGAIN;
	if (!dev->ignore_children && atomic_load(&dev->child_count))
		return -EBUSY;
	/* Pending resume requests take precedence over suspends. */
	if ((dev->deferred_resume && rpm_status(dev) == VFPM_PM_SUSPENDING) ||
	    (dev->request_pending && dev->request == PM_REQ_RESUME))
		return -EAGAIN;
	if (rpm_status(dev) == VFPM_PM_SUSPENDED)
		return 1;
	return 0;
}

int rpm_idle(struct vfpm_pm_dev *dev, int rpmflags)
{
	rpm_callback_fn cb = dev->ops.runtime_idle;
	int retval = rpm_check_suspend_allowed(dev);

	if (retval < 0)
		; /* Conditions are wrong. */
	else if (rpm_status(dev) != VFPM_PM_ACTIVE)
		retval = -EAGAIN;
	/* Any pending request other than an idle notification takes precedence. */
	else if (dev->request_pending && dev->request > PM_REQ_IDLE)
		retval = -EAGAIN;
	else if (dev->idle_notification)
		retval = -EINPROGRESS;
	if (retval)
		return retval;

	dev->request = PM_REQ_NONE;
	if (!cb || dev->no_callbacks)
		return rpm_suspend(dev, rpmflags | RPM_AUTO);

	if (rpmflags & RPM_ASYNC) {
		rpm_queue_request(dev, PM_REQ_IDLE);
		return 0;
	}

	dev->idle_notification = true;
	dev->idle_thread = pthread_self();
	rpm_unlock(dev);
	retval = cb(dev, dev->opaque);
	rpm_lock(dev);
	dev->idle_notification = false;
	pthread_cond_broadcast(&dev->wait);

	return retval ? retval : rpm_suspend(dev, rpmflags | RPM_AUTO);
}

/* Arm the autosuspend timer for `expires` unless it already fires no later. */
static void rpm_arm_autosuspend_timer(struct vfpm_pm_dev *dev, uint64_t expires)
{
	dev->request = PM_REQ_NONE;
	if (!(dev->timer_expires && dev->timer_expires <= expires)) {
		dev->timer_expires = expires;
		pm_work_timer_arm(&dev->work, expires);
	}
	dev->timer_autosuspends = true;
}

/* The parent may be able to suspend now that a child has (lock of dev held). */
static void rpm_notify_parent_idle(struct vfpm_pm_dev *dev, struct vfpm_pm_dev *parent)
{
	if (!parent || parent->ignore_children)
		return;
	rpm_unlock(dev);
	rpm_lock(parent);
	rpm_idle(parent, RPM_ASYNC);
	rpm_unlock(parent);
	rpm_lock(dev);
}

static int rpm_suspend_failed(struct vfpm_pm_dev *dev, int rpmflags, int retval)
{
	rpm_set_status(dev, VFPM_PM_ACTIVE);
	dev->deferred_resume = false;
	if (retval == -EAGAIN || retval == -EBUSY) {
		dev->runtime_error = 0;
		/* A failed autosuspend is retried if last_busy moved meanwhile. */
		if ((rpmflags & RPM_AUTO) && rpm_autosuspend_expiration(dev) != 0)
			return 1;
	} else {
		rpm_cancel_pending(dev);
	}
	return 0;
}

int rpm_suspend(struct vfpm_pm_dev *dev, int rpmflags)
{
	struct vfpm_pm_dev *parent = NULL;
	int retval;

repeat:
	retval = rpm_check_suspend_allowed(dev);
	if (retval < 0)
		; /* Conditions are wrong. */
	else if (rpm_status(dev) == VFPM_PM_RESUMING && !(rpmflags & RPM_ASYNC))
		retval = -EAGAIN; /* Synchronous suspends are not allowed while resuming. */
	if (retval)
		return retval;

	/* If the autosuspend delay has not expired yet, reschedule. */
	if ((rpmflags & RPM_AUTO) && rpm_status(dev) != VFPM_PM_SUSPENDING) {
		uint64_t expires = rpm_autosuspend_expiration(dev);

		if (expires != 0) {
			rpm_arm_autosuspend_timer(dev, expires);
			return 0;
		}
	}

	rpm_cancel_pending(dev);

	if (rpm_status(dev) == VFPM_PM_SUSPENDING) {
		if (rpmflags & (RPM_ASYNC | RPM_NOWAIT))
			return -EINPROGRESS;
		while (rpm_status(dev) == VFPM_PM_SUSPENDING)
			rpm_wait(dev);
		goto repeat;
	}

	if (dev->no_callbacks) {
		if (!rpm_leave_active_if_unused(dev, VFPM_PM_SUSPENDED))
			return -EAGAIN;
		goto suspended;
	}

	if (rpmflags & RPM_ASYNC) {
		rpm_queue_request(dev, (rpmflags & RPM_AUTO) ? PM_REQ_AUTOSUSPEND : PM_REQ_SUSPEND);
		return 0;
	}

	if (rpm_wait_for_idle_callback(dev))
		goto repeat;
	if (!rpm_leave_active_if_unused(dev, VFPM_PM_SUSPENDING))
		return -EAGAIN;

	retval = rpm_callback(dev, dev->ops.runtime_suspend);
	if (retval) {
		if (rpm_suspend_failed(dev, rpmflags, retval))
			goto repeat;
		return retval;
	}
	rpm_set_status(dev, VFPM_PM_SUSPENDED);

suspended:
	rpm_deactivate_timer(dev);
	parent = dev->parent;
	if (parent) {
		int children = atomic_load(&parent->child_count);

		while (children > 0 &&
		       !atomic_compare_exchange_weak(&parent->child_count, &children, children - 1))
			;
	}
	if (dev->deferred_resume) {
		dev->deferred_resume = false;
		rpm_resume(dev, 0);
		return -EAGAIN;
	}
	rpm_notify_parent_idle(dev, parent);
	return 0;
}

/* Resume dev's parent before dev (dev's lock held, dropped meanwhile); 0 or -EBUSY. */
static int rpm_resume_parent(struct vfpm_pm_dev *dev, struct vfpm_pm_dev *parent)
{
	int retval = 0;

	rpm_unlock(dev);
	rpm_usage_inc(parent);
	rpm_lock(parent);
	if (!parent->disable_depth && !parent->ignore_children) {
		rpm_resume(parent, 0);
		if (rpm_status(parent) != VFPM_PM_ACTIVE)
			retval = -EBUSY;
	}
	rpm_unlock(parent);
	rpm_lock(dev);
	return retval;
}

/* The no_callbacks shortcut: skip resuming the parent when it need not be active. */
static bool rpm_parent_allows_skip(struct vfpm_pm_dev *parent)
{
	bool skip;

	rpm_lock(parent);
	skip = parent->disable_depth > 0 || parent->ignore_children ||
	       rpm_status(parent) == VFPM_PM_ACTIVE;
	if (skip)
		atomic_fetch_add(&parent->child_count, 1);
	rpm_unlock(parent);
	return skip;
}

int rpm_resume(struct vfpm_pm_dev *dev, int rpmflags)
{
	struct vfpm_pm_dev *parent = NULL;
	int retval = 0;

repeat:
	if (dev->runtime_error) {
		retval = -EINVAL;
	} else if (dev->disable_depth > 0) {
		if (rpm_status(dev) == VFPM_PM_ACTIVE && dev->last_status == (int)VFPM_PM_ACTIVE)
			retval = 1;
		else
			retval = -EACCES;
	}
	if (retval)
		goto out;

	/* Cancel other requests; a running autosuspend timer is left to expire. */
	dev->request = PM_REQ_NONE;
	if (!dev->timer_autosuspends)
		rpm_deactivate_timer(dev);

	if (rpm_status(dev) == VFPM_PM_ACTIVE) {
		retval = 1;
		goto out;
	}

	if (rpm_status(dev) == VFPM_PM_RESUMING || rpm_status(dev) == VFPM_PM_SUSPENDING) {
		if (rpmflags & (RPM_ASYNC | RPM_NOWAIT)) {
			if (rpm_status(dev) == VFPM_PM_SUSPENDING) {
				dev->deferred_resume = true;
				if (rpmflags & RPM_NOWAIT)
					retval = -EINPROGRESS;
			} else {
				retval = -EINPROGRESS;
			}
			goto out;
		}
		while (rpm_status(dev) == VFPM_PM_RESUMING || rpm_status(dev) == VFPM_PM_SUSPENDING)
			rpm_wait(dev);
		goto repeat;
	}

	if (dev->no_callbacks && !parent && dev->parent && rpm_parent_allows_skip(dev->parent)) {
		retval = 1;
		goto active;
	}

	if (rpmflags & RPM_ASYNC) {
		rpm_queue_request(dev, PM_REQ_RESUME);
		goto out;
	}

	if (!parent && dev->parent) {
		parent = dev->parent;
		retval = rpm_resume_parent(dev, parent);
		if (retval)
			goto out;
		goto repeat;
	}

	if (dev->no_callbacks)
		goto active;

	if (rpm_wait_for_idle_callback(dev))
		goto repeat;
	rpm_set_status(dev, VFPM_PM_RESUMING);
	retval = rpm_callback(dev, dev->ops.runtime_resume);
	if (retval) {
		rpm_set_status(dev, VFPM_PM_SUSPENDED);
		rpm_cancel_pending(dev);
		goto out;
	}
active:
	rpm_set_status(dev, VFPM_PM_ACTIVE);
	atomic_store(&dev->last_busy_ns, pm_now_ns());
	if (parent)
		atomic_fetch_add(&parent->child_count, 1);
	if (retval >= 0)
		rpm_idle(dev, RPM_ASYNC);

out:
	if (parent) {
		rpm_unlock(dev);
		vfpm_pm_put(parent);
		rpm_lock(dev);
	}
	return retval;
}

/* ---- the worker's entry point ---- */

static void rpm_timer_expired(struct vfpm_pm_dev *dev)
{
	uint64_t expires = dev->timer_expires;

	if (expires == 0)
		return;
	if (expires > pm_now_ns()) {
		/* Early (the pool could not arm it): arm it again. */
		pm_work_timer_arm(&dev->work, expires);
		return;
	}
	dev->timer_expires = 0;
	rpm_suspend(dev, dev->timer_autosuspends ? (RPM_ASYNC | RPM_AUTO) : RPM_ASYNC);
}

void rpm_work(struct pm_work *work, bool timer_fired)
{
	struct vfpm_pm_dev *dev = (struct vfpm_pm_dev *)((char *)work - offsetof(struct vfpm_pm_dev, work));
	enum pm_request req;

	rpm_lock(dev);
	if (timer_fired)
		rpm_timer_expired(dev);
	if (dev->request_pending) {
		req = dev->request;
		dev->request = PM_REQ_NONE;
		dev->request_pending = false;
		switch (req) {
		case PM_REQ_NONE:
			break;
		case PM_REQ_IDLE:
			rpm_idle(dev, RPM_NOWAIT);
			break;
		case PM_REQ_SUSPEND:
			rpm_suspend(dev, RPM_NOWAIT);
			break;
		case PM_REQ_AUTOSUSPEND:
			rpm_suspend(dev, RPM_NOWAIT | RPM_AUTO);
			break;
		case PM_REQ_RESUME:
			rpm_resume(dev, RPM_NOWAIT);
			break;
		}
	}
	rpm_unlock(dev);
}

/* ---- entry points (the kernel's __pm_runtime_idle/suspend/resume) ---- */

/*
 * A put (RPM_GET_PUT) that leaves references does nothing else and takes no
 * lock; the last one, or a call without RPM_GET_PUT, runs the transition.
 */
static int rpm_put_then(struct vfpm_pm_dev *dev, int rpmflags,
			int (*transition)(struct vfpm_pm_dev *dev, int rpmflags))
{
	int retval;

	if (rpmflags & RPM_GET_PUT) {
		int64_t count = rpm_drop_usage_count(dev);

		if (count != 0)
			return count < 0 ? (int)count : 0;
	}
	rpm_lock(dev);
	retval = transition(dev, rpmflags);
	rpm_unlock(dev);
	return retval;
}

int pm_runtime_idle_flags(struct vfpm_pm_dev *dev, int rpmflags)
{
	return rpm_put_then(dev, rpmflags, rpm_idle);
}

int pm_runtime_suspend_flags(struct vfpm_pm_dev *dev, int rpmflags)
{
	return rpm_put_then(dev, rpmflags, rpm_suspend);
}

int pm_runtime_resume_flags(struct vfpm_pm_dev *dev, int rpmflags)
{
	int retval;

	if (rpmflags & RPM_GET_PUT) {
		uint64_t before = rpm_usage_inc(dev);

		/* The fast path: ACTIVE, nothing for rpm_resume() to do. */
		if ((before & PM_STATE_LOW_MASK) == VFPM_PM_ACTIVE)
			return 1;
	}
	rpm_lock(dev);
	retval = rpm_resume(dev, rpmflags);
	rpm_unlock(dev);
	return retval;
}
