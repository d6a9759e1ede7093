/* SPDX-License-Identifier: MIT */
/*
 * The shared worker pool of the runtime PM core: a few threads that run the
 * queued requests and fire the timers of every device in the process (the
 * kernel's pm_wq and per-device hrtimers).  A device embeds one struct
 * pm_work; its function is called on a worker thread (or, in the
 * caller-driven mode, on a thread calling pm_worker_process()) when the work
 * was queued or its timer expired, never on two threads at once.
 *
 * Lock order: a device lock may be held while calling pm_work_queue(),
 * pm_work_timer_arm() and pm_work_timer_cancel(); the pool's own lock is
 * never held while a work function runs.  pm_work_cancel_sync() waits for a
 * work function running on another thread, so it must be called without the
 * device lock.
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

/*
 * Take / drop a reference on the pool; the first starts its threads (none in
 * the caller-driven mode), the last joins them.
 */
int pm_worker_get(void);
void pm_worker_put(void);
int pm_worker_thread_count(void);

/*
 * The caller-driven mode (vfpm_pm_worker_set_external() and friends in
 * <vfpm/pm.h>): no thread is started; pm_worker_process() runs what is due
 * on the calling thread and pm_worker_fd() is readable when something is.
 *
 * Where the core waits, and why none of it waits for a worker in this mode:
 *
 *  - rpm_suspend / rpm_resume wait while the device is SUSPENDING or
 *    RESUMING, and rpm_wait_for_idle_callback() while an idle callback runs
 *    (runtime.c).  These statuses are set only by the thread that is about
 *    to run the callback itself, never by a queued request, so the wait is
 *    for a callback already running on another thread (one on the same
 *    thread is a callback calling a synchronous helper on its own device,
 *    which <vfpm/pm.h> forbids in either mode; the idle case is skipped).
 *  - rpm_barrier_locked() (control.c: barrier, disable, destroy) does not
 *    wait for a queued request: pm_work_cancel_sync() takes it off the
 *    queue, and barrier and disable carry out a pending resume inline.  It
 *    waits only for a work function running on another thread; one running
 *    on the calling thread is not waited for (current_work).
 *  - vfpm_pm_wait_status() (helpers.c) is the one wait for queued work: in
 *    this mode it drives the pool itself (pm_worker_caller_driven()).
 */
int pm_worker_set_external(bool external);
/* The epoll fd of the caller-driven mode, or -EINVAL in the threads mode. */
int pm_worker_fd(void);
/* Run the works due now on this thread: their number, or -EINVAL in the threads mode. */
int pm_worker_process(void);
/* Caller-driven mode and not inside a work function: a waiter must run the pool itself. */
bool pm_worker_caller_driven(void);

void pm_work_init(struct pm_work *work, pm_work_fn fn);
/* Queue the work unless it is already queued (a running work is queued again). */
void pm_work_queue(struct pm_work *work);
/* (Re)arm the work's one timer to fire at at_ns (CLOCK_MONOTONIC). */
void pm_work_timer_arm(struct pm_work *work, uint64_t at_ns);
/* Disarm the timer if it has not fired yet. */
void pm_work_timer_cancel(struct pm_work *work);
/*
 * Remove the work from the queue, forget a fired timer, and wait until fn is
 * not running on another thread (called from fn itself, it returns at once).
 */
void pm_work_cancel_sync(struct pm_work *work);

uint64_t pm_now_ns(void);

#endif /* VFPM_PM_WORKER_H */
