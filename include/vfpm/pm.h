/* SPDX-License-Identifier: MIT */
/*
 * vfpm runtime power management core.
 *
 * A userspace port of the semantics of Linux's drivers/base/power/runtime.c
 * (as of Linux 6.1).  One struct vfpm_pm_dev per device; a driver supplies
 * runtime_suspend / runtime_resume / runtime_idle callbacks, and users of the
 * device bracket every access with a usage reference (vfpm_pm_resume_and_get()
 * ... vfpm_pm_put()).  The core guarantees:
 *
 *  - the callbacks of one device never run at the same time on two threads;
 *  - a caller that holds a usage reference obtained by a successful
 *    get_sync / resume_and_get sees the device ACTIVE until it drops it;
 *  - asynchronous requests (put, request_idle, request_resume, autosuspend
 *    timers) are served by a small shared pool of worker threads, not one
 *    thread per device, or, in the caller-driven mode, by the caller's own
 *    event loop (vfpm_pm_worker_set_external());
 *  - get and put on an ACTIVE, enabled, error-free device take no lock.
 *
 * Every function returns 0 (or a positive value with the kernel's meaning)
 * on success and a negative errno on failure.  Return values follow the
 * kernel helper of the same name; where the kernel helper returns 1 ("the
 * device was already active"), so does ours.
 *
 * A new device starts as the kernel's does: status SUSPENDED, usage count 0,
 * runtime PM disabled (disable depth 1), runtime_auto true (allowed), no
 * autosuspend.  Call vfpm_pm_set_active() (optional) and vfpm_pm_enable().
 *
 * Callbacks run with no vfpm lock held, on the calling thread for the
 * synchronous helpers and on a worker thread for the asynchronous ones (in
 * the caller-driven mode: on the thread calling vfpm_pm_worker_process()).  A
 * callback must not destroy its own device.  It may call the asynchronous
 * helpers (request_*, put, put_noidle, get_noresume) on its own device.
 */
#ifndef VFPM_PM_H
#define VFPM_PM_H

#include <vfpm/export.h>

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum vfpm_pm_status {
	VFPM_PM_ACTIVE = 0,
	VFPM_PM_RESUMING = 1,
	VFPM_PM_SUSPENDED = 2,
	VFPM_PM_SUSPENDING = 3,
};

struct vfpm_pm_dev;

/*
 * Driver callbacks.  Any of them may be NULL: as in Linux since 5.14, a
 * missing runtime_suspend or runtime_resume is a transition that succeeds
 * without a callback, and a missing runtime_idle means "idle is fine, go
 * ahead and suspend".
 *
 * runtime_suspend: return 0 when the device is now suspended.  -EAGAIN or
 *   -EBUSY mean "not now" (the device stays ACTIVE, no error is recorded);
 *   any other error is recorded as the sticky runtime_error.
 * runtime_resume: return 0 when the device is usable.  Any error is recorded
 *   as the sticky runtime_error and the device stays SUSPENDED; every later
 *   resume then fails with -EINVAL until vfpm_pm_set_active() or
 *   vfpm_pm_set_suspended() is called with runtime PM disabled.
 * runtime_idle: return 0 to let the core suspend the device now, nonzero to
 *   keep it active.
 */
struct vfpm_pm_ops {
	int (*runtime_suspend)(struct vfpm_pm_dev *dev, void *opaque);
	int (*runtime_resume)(struct vfpm_pm_dev *dev, void *opaque);
	int (*runtime_idle)(struct vfpm_pm_dev *dev, void *opaque);
};

/* Lifecycle. */
VFPM_API int vfpm_pm_dev_create(const struct vfpm_pm_ops *ops, void *opaque,
		       struct vfpm_pm_dev **out);
/*
 * Disables runtime PM, cancels pending requests and timers and waits for a
 * callback in progress.  The device must have no children left.
 */
VFPM_API void vfpm_pm_dev_destroy(struct vfpm_pm_dev *dev);
/*
 * Make parent the device's parent (or NULL for none).  Only while runtime PM
 * is disabled on dev; -EBUSY otherwise.  A child that is ACTIVE counts in the
 * parent's child count, and the parent cannot suspend while it has active
 * children (unless ignore_children); resuming a child resumes its parent.
 */
VFPM_API int vfpm_pm_set_parent(struct vfpm_pm_dev *dev, struct vfpm_pm_dev *parent);
VFPM_API void *vfpm_pm_opaque(const struct vfpm_pm_dev *dev);

/* Usage count without a transition. */
VFPM_API void vfpm_pm_get_noresume(struct vfpm_pm_dev *dev);
VFPM_API void vfpm_pm_put_noidle(struct vfpm_pm_dev *dev);

/*
 * Take a reference and resume synchronously.  get_sync returns 1 if the
 * device was already active, 0 if it was resumed, a negative errno on
 * failure, and keeps the reference even on failure (the caller must still put
 * it, as with the kernel's pm_runtime_get_sync).  resume_and_get returns 0 on
 * success (already active or resumed) and drops the reference on failure.
 */
VFPM_API int vfpm_pm_get_sync(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_resume_and_get(struct vfpm_pm_dev *dev);
/* Take a reference and queue an asynchronous resume. */
VFPM_API int vfpm_pm_get(struct vfpm_pm_dev *dev);

/*
 * Drop a reference; when it reaches zero: put queues an idle check, put_sync
 * runs it (and the suspend it leads to) now, the autosuspend variants go
 * through the autosuspend delay.  -EINVAL if the count was already zero.
 */
VFPM_API int vfpm_pm_put(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_put_sync(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_put_autosuspend(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_put_sync_autosuspend(struct vfpm_pm_dev *dev);

/* Transitions without touching the usage count. */
VFPM_API int vfpm_pm_resume(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_request_resume(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_idle(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_request_idle(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_suspend(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_autosuspend(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_request_autosuspend(struct vfpm_pm_dev *dev);
/* Queue a suspend request after delay_ms (0: now). */
VFPM_API int vfpm_pm_schedule_suspend(struct vfpm_pm_dev *dev, unsigned int delay_ms);

/* User policy (the kernel's power/control = auto / on). */
VFPM_API void vfpm_pm_allow(struct vfpm_pm_dev *dev);
VFPM_API void vfpm_pm_forbid(struct vfpm_pm_dev *dev);

/* Enable / disable runtime PM (nesting depth, as in the kernel). */
VFPM_API void vfpm_pm_enable(struct vfpm_pm_dev *dev);
VFPM_API void vfpm_pm_disable(struct vfpm_pm_dev *dev);
/*
 * Carry out a pending resume request now, cancel every other pending request
 * and timer, and wait for a transition or idle callback in progress.
 * Returns 1 if a pending resume was carried out, 0 otherwise.
 */
VFPM_API int vfpm_pm_barrier(struct vfpm_pm_dev *dev);

/*
 * Set the status directly.  Only while runtime PM is disabled or a runtime
 * error is recorded (-EAGAIN otherwise); clears the runtime error.  Setting
 * ACTIVE under a parent that is enabled, not ignoring children and not
 * ACTIVE fails with -EBUSY.
 */
VFPM_API int vfpm_pm_set_active(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_set_suspended(struct vfpm_pm_dev *dev);

VFPM_API void vfpm_pm_set_ignore_children(struct vfpm_pm_dev *dev, bool ignore);
/*
 * The kernel's pm_runtime_no_callbacks: the device never has callbacks, so a
 * resume need not wake a parent that can stay as it is.
 */
VFPM_API void vfpm_pm_set_no_callbacks(struct vfpm_pm_dev *dev);

/* Autosuspend. */
VFPM_API void vfpm_pm_mark_last_busy(struct vfpm_pm_dev *dev);
VFPM_API void vfpm_pm_set_autosuspend_delay(struct vfpm_pm_dev *dev, int delay_ms);
VFPM_API void vfpm_pm_use_autosuspend(struct vfpm_pm_dev *dev, bool use);

/* Observation (a snapshot: it may change as soon as it is returned). */
VFPM_API enum vfpm_pm_status vfpm_pm_status(const struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_usage_count(const struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_child_count(const struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_runtime_error(struct vfpm_pm_dev *dev);
VFPM_API int vfpm_pm_disable_depth(struct vfpm_pm_dev *dev);
VFPM_API bool vfpm_pm_is_enabled(struct vfpm_pm_dev *dev);
VFPM_API bool vfpm_pm_runtime_auto(struct vfpm_pm_dev *dev);
VFPM_API const char *vfpm_pm_status_name(enum vfpm_pm_status status);

/*
 * Block until the device is in `status`, or has entered it since the call
 * began (a brief visit counts: a device that resumes and at once suspends
 * again satisfies a wait for ACTIVE), or timeout_ms passes (negative: no
 * limit).  0 when reached, -ETIMEDOUT otherwise.  For tests and tools that
 * would otherwise poll.
 */
VFPM_API int vfpm_pm_wait_status(struct vfpm_pm_dev *dev, enum vfpm_pm_status status,
			int timeout_ms);

/*
 * Number of threads in the shared worker pool (0 until a device exists, and
 * always 0 in the caller-driven mode).
 */
VFPM_API int vfpm_pm_worker_threads(void);

/*
 * The caller-driven mode, for hosts that do not let a library start threads
 * (an SPDK-style reactor): no worker thread is started, and the host's own
 * event loop runs the asynchronous requests and timers.
 *
 * vfpm_pm_worker_set_external(true) chooses it for the whole process, false
 * goes back to the worker threads (the default).  Only while no device
 * exists: -EBUSY otherwise; 0 on success (also when already in that mode),
 * or a negative errno if the fd below cannot be made.
 *
 * vfpm_pm_worker_fd() returns, in the caller-driven mode, an fd that is
 * readable (POLLIN / EPOLLIN) whenever something is due: a request was
 * queued or the earliest timer expired.  It is an epoll fd (close-on-exec,
 * non-blocking) to add to the host's own epoll set or poll() array; never
 * read or close it.  It stays the same fd until set_external(false).
 * -EINVAL in the threads mode.
 *
 * vfpm_pm_worker_process() runs, on the calling thread, what is due now:
 * the queued requests and the expired timers, that is the runtime_idle,
 * runtime_suspend and runtime_resume callbacks of the asynchronous helpers.
 * It never blocks but inside those callbacks, and it clears the fd's
 * readiness.  A request queued while it runs (a resume queues an idle check)
 * is left for the next call and keeps the fd readable, so a loop that calls
 * it whenever the fd is readable serves everything.  Returns the number of
 * device works it ran (0 when nothing was due), or -EINVAL in the threads
 * mode.  Several threads may call it at once; a device's work still never
 * runs on two of them at a time.  Do not call it from a PM callback: a work
 * it ran could wait for the transition that callback is part of.  From a
 * callback that vfpm_pm_worker_process() itself is running, it runs nothing
 * and returns 0 (the outer call goes on).
 *
 * In this mode vfpm_pm_wait_status() serves the pool itself while it waits,
 * since the loop that would otherwise do it may be the waiting thread.
 */
VFPM_API int vfpm_pm_worker_set_external(bool external);
VFPM_API int vfpm_pm_worker_fd(void);
VFPM_API int vfpm_pm_worker_process(void);

#ifdef __cplusplus
}
#endif

#endif /* VFPM_PM_H */
