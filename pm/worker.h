/* SPDX-License-Identifier: MIT */
/*
 * The shared worker pool of the runtime PM core: a few threads that run the
 * queued requests and fire the timers of every device in the process (the
 * kernel's pm_wq and per-device hrtimers).  A device embeds one struct
 * pm_work; its function is called on a worker thread when the work was
 * queued or its timer expired, never on two threads at once.
 *
 * Lock order: a device lock may be held while calling pm_work_queue(),
 * pm_work_timer_arm() and pm_work_timer_cancel(); the pool's own lock is
 * never held while a work function runs.  pm_work_cancel_sync() waits for a
 * running work function, so it must be called without the device lock.
 */
#ifndef VFPM_PM_WORKER_H
#define VFPM_PM_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pm_work;
typedef void (*pm_work_fn)(struct pm_work *work, bool timer_fired);

struct pm_work {
	pm_work_fn fn;			/* immutable after pm_work_init() */
	/* Everything below is protected by the pool lock. */
	struct pm_work *prev, *next;	/* run queue linkage */
	size_t heap_index;		/* position in the timer heap, or PM_WORK_NO_TIMER */
	uint64_t timer_at_ns;		/* CLOCK_MONOTONIC expiry while armed */
	bool queued;			/* on the run queue */
	bool running;			/* fn is executing on a worker */
	bool requeue;			/* queued again while running */
	bool timer_fired;		/* timer expired since fn last ran */
};

#define PM_WORK_NO_TIMER SIZE_MAX

/* Take / drop a reference on the pool; the first starts its threads, the last joins them. */
int pm_worker_get(void);
void pm_worker_put(void);
int pm_worker_thread_count(void);

void pm_work_init(struct pm_work *work, pm_work_fn fn);
/* Queue the work unless it is already queued (a running work is queued again). */
void pm_work_queue(struct pm_work *work);
/* (Re)arm the work's one timer to fire at at_ns (CLOCK_MONOTONIC). */
void pm_work_timer_arm(struct pm_work *work, uint64_t at_ns);
/* Disarm the timer if it has not fired yet. */
void pm_work_timer_cancel(struct pm_work *work);
/* Remove the work from the queue, forget a fired timer, and wait until fn is not running. */
void pm_work_cancel_sync(struct pm_work *work);

uint64_t pm_now_ns(void);

#endif /* VFPM_PM_WORKER_H */
