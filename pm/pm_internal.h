/* SPDX-License-Identifier: MIT */
/* Private to the runtime PM core: the device structure and the flag-driven entry points. */
#ifndef VFPM_PM_INTERNAL_H
#define VFPM_PM_INTERNAL_H

#include <vfpm/pm.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker.h"

/* Flags of the kernel's __pm_runtime_* entry points. */
#define RPM_ASYNC	0x01	/* queue the request on the worker */
#define RPM_NOWAIT	0x02	/* do not wait for a transition in progress */
#define RPM_GET_PUT	0x04	/* increment / decrement the usage count */
#define RPM_AUTO	0x08	/* honour the autosuspend delay */

enum pm_request {
	PM_REQ_NONE = 0,
	PM_REQ_IDLE,
	PM_REQ_SUSPEND,
	PM_REQ_AUTOSUSPEND,
	PM_REQ_RESUME,
};

/*
 * The state word: bits 0-1 the status, bit 2 SLOW (the lock-free get must
 * take the lock), bits 8-63 the usage count as a signed number.
 */
#define PM_STATE_STATUS_MASK	0x3u
#define PM_STATE_SLOW		0x4u
#define PM_STATE_LOW_MASK	0xffu
#define PM_STATE_USAGE_ONE	((uint64_t)1 << 8)

#define PM_LAST_STATUS_INVALID	(-1)

struct vfpm_pm_dev {
	/*
	 * Atomic, no lock: usage count and status (status bits change only
	 * under `lock`; the count changes anywhere).  Kept first and alone on
	 * its cache line with the other hot fields.
	 */
	_Atomic uint64_t state;
	_Atomic int child_count;		/* atomic: active children */
	_Atomic uint64_t last_busy_ns;		/* atomic: CLOCK_MONOTONIC */
	_Atomic int autosuspend_delay_ms;	/* atomic; written under lock */

	/* Immutable after creation. */
	struct vfpm_pm_ops ops;
	void *opaque;

	/* Protects every field below; never held across a callback. */
	pthread_mutex_t lock;
	/* Broadcast on every status change and when an idle callback ends. */
	pthread_cond_t wait;

	struct vfpm_pm_dev *parent;	/* changed only while disabled */
	int disable_depth;
	int runtime_error;
	int last_status;			/* status when runtime PM was last disabled, or PM_LAST_STATUS_INVALID */
	enum pm_request request;
	bool request_pending;
	bool deferred_resume;
	bool idle_notification;		/* an idle callback is running ... */
	pthread_t idle_thread;		/* ... on this thread */
	bool ignore_children;
	bool runtime_auto;
	bool no_callbacks;
	bool use_autosuspend;
	bool timer_autosuspends;
	uint64_t timer_expires;		/* 0: no timer armed */
	/* How often each status was entered, so that a waiter sees a brief visit. */
	uint64_t status_entries[4];

	struct pm_work work;		/* request and timer; the pool's lock guards its fields */
};

/* ---- the state word (no lock needed to read it) ---- */

static inline enum vfpm_pm_status state_status(uint64_t s)
{
	return (enum vfpm_pm_status)(s & PM_STATE_STATUS_MASK);
}

static inline int64_t state_usage(uint64_t s)
{
	return (int64_t)(s & ~(uint64_t)PM_STATE_LOW_MASK) / (int64_t)PM_STATE_USAGE_ONE;
}

static inline enum vfpm_pm_status rpm_status(struct vfpm_pm_dev *dev)
{
	return state_status(atomic_load(&dev->state));
}

static inline int64_t rpm_usage(struct vfpm_pm_dev *dev)
{
	return state_usage(atomic_load(&dev->state));
}

/* ---- runtime.c: the state machine; "lock held" unless said otherwise ---- */

void rpm_lock(struct vfpm_pm_dev *dev);
/* Also brings the fast-path bit in step with the fields it depends on. */
void rpm_unlock(struct vfpm_pm_dev *dev);
/* Wait on dev->wait for a status change or the end of an idle callback. */
void rpm_wait(struct vfpm_pm_dev *dev);
void rpm_set_status(struct vfpm_pm_dev *dev, enum vfpm_pm_status status);
void rpm_deactivate_timer(struct vfpm_pm_dev *dev);
void rpm_cancel_pending(struct vfpm_pm_dev *dev);
int rpm_check_suspend_allowed(struct vfpm_pm_dev *dev);
int rpm_idle(struct vfpm_pm_dev *dev, int rpmflags);
int rpm_suspend(struct vfpm_pm_dev *dev, int rpmflags);
int rpm_resume(struct vfpm_pm_dev *dev, int rpmflags);
/* Lock-free: increment (returns the word before) and the kernel's rpm_drop_usage_count. */
uint64_t rpm_usage_inc(struct vfpm_pm_dev *dev);
int64_t rpm_drop_usage_count(struct vfpm_pm_dev *dev);
/* The worker's entry point for dev->work (no lock held). */
void rpm_work(struct pm_work *work, bool timer_fired);

/* The kernel's __pm_runtime_idle / _suspend / _resume (no lock held). */
int pm_runtime_idle_flags(struct vfpm_pm_dev *dev, int rpmflags);
int pm_runtime_suspend_flags(struct vfpm_pm_dev *dev, int rpmflags);
int pm_runtime_resume_flags(struct vfpm_pm_dev *dev, int rpmflags);

#endif /* VFPM_PM_INTERNAL_H */
