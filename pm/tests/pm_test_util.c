/* SPDX-License-Identifier: MIT */
#include "pm_test_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Global order of callback invocations, across all devices. */
static atomic_long callback_seq;

/* Models not yet freed, newest first. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pm_model *live_models;

static const char *const cb_names[] = {
	[MODEL_CB_NONE] = "none",
	[MODEL_CB_SUSPEND] = "runtime_suspend",
	[MODEL_CB_RESUME] = "runtime_resume",
	[MODEL_CB_IDLE] = "runtime_idle",
};

int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ms_since(int64_t start_ns)
{
	return (now_ns() - start_ns) / 1000000;
}

void sleep_us(int us)
{
	struct timespec ts = {
		.tv_sec = us / 1000000,
		.tv_nsec = (long)(us % 1000000) * 1000,
	};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void violation(struct pm_model *m, const char *fmt, ...)
{
	char msg[sizeof(m->first_violation)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&m->lock);
	if (atomic_fetch_add(&m->violations, 1) == 0)
		snprintf(m->first_violation, sizeof(m->first_violation), "%s",
			 msg);
	pthread_mutex_unlock(&m->lock);
	fprintf(stderr, "VIOLATION [%s]: %s\n", m->name, msg);
}

static void notify(struct pm_model *m)
{
	pthread_mutex_lock(&m->lock);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void enter_callback(struct pm_model *m, struct vfpm_pm_dev *dev,
			   enum model_cb cb)
{
	int running = atomic_exchange(&m->in_callback, (int)cb);

	if (running != MODEL_CB_NONE)
		violation(m, "%s entered while %s was running", cb_names[cb],
			  cb_names[running]);
	if (dev != m->dev && m->dev)
		violation(m, "%s called with a foreign device", cb_names[cb]);
	atomic_store(&m->callback_entered, (int)cb);
	notify(m);
}

static void leave_callback(struct pm_model *m, enum model_cb cb)
{
	int running = atomic_exchange(&m->in_callback, MODEL_CB_NONE);

	if (running != (int)cb)
		violation(m, "%s left while in_callback said %s", cb_names[cb],
			  cb_names[running]);
	notify(m);
}

static void take_time(int us)
{
	if (us > 0)
		sleep_us(us);
}

static void check_status(struct pm_model *m, enum model_cb cb,
			 enum vfpm_pm_status want)
{
	enum vfpm_pm_status st;

	if (!atomic_load(&m->check_status))
		return;
	st = vfpm_pm_status(m->dev);
	if (st != want)
		violation(m, "%s ran with status %s, expected %s", cb_names[cb],
			  vfpm_pm_status_name(st), vfpm_pm_status_name(want));
}

static int model_runtime_suspend(struct vfpm_pm_dev *dev, void *opaque)
{
	struct pm_model *m = opaque;
	int ret;

	enter_callback(m, dev, MODEL_CB_SUSPEND);
	check_status(m, MODEL_CB_SUSPEND, VFPM_PM_SUSPENDING);
	atomic_fetch_add(&m->suspend_calls, 1);
	atomic_store(&m->last_suspend_seq, atomic_fetch_add(&callback_seq, 1));
	if (atomic_load(&m->accessing))
		violation(m, "runtime_suspend entered during a device access");
	if (atomic_load(&m->check_family)) {
		for (int i = 0; i < m->nr_children; i++) {
			struct pm_model *c = m->children[i];

			if (!atomic_load(&c->suspended) ||
			    atomic_load(&c->in_callback) != MODEL_CB_NONE)
				violation(m, "parent suspends while child %s "
					  "is powered or in a callback",
					  c->name);
		}
	}
	take_time(atomic_load(&m->suspend_delay_us));
	ret = atomic_load(&m->suspend_ret);
	if (ret == 0) {
		if (atomic_load(&m->accessing))
			violation(m, "device accessed during runtime_suspend");
		atomic_store(&m->suspended, true);
		atomic_store(&m->last_suspend_ns, now_ns());
		atomic_fetch_add(&m->suspends, 1);
	}
	leave_callback(m, MODEL_CB_SUSPEND);
	return ret;
}

static int model_runtime_resume(struct vfpm_pm_dev *dev, void *opaque)
{
	struct pm_model *m = opaque;
	int ret;

	enter_callback(m, dev, MODEL_CB_RESUME);
	check_status(m, MODEL_CB_RESUME, VFPM_PM_RESUMING);
	atomic_fetch_add(&m->resume_calls, 1);
	atomic_store(&m->last_resume_seq, atomic_fetch_add(&callback_seq, 1));
	if (atomic_load(&m->check_family) && m->parent &&
	    (atomic_load(&m->parent->suspended) ||
	     vfpm_pm_status(m->parent->dev) != VFPM_PM_ACTIVE))
		violation(m, "child resumes while parent %s is not active",
			  m->parent->name);
	take_time(atomic_load(&m->resume_delay_us));
	ret = atomic_load(&m->resume_ret);
	if (ret == 0) {
		atomic_store(&m->suspended, false);
		atomic_store(&m->last_resume_ns, now_ns());
		atomic_fetch_add(&m->resumes, 1);
	}
	leave_callback(m, MODEL_CB_RESUME);
	return ret;
}

static int model_runtime_idle(struct vfpm_pm_dev *dev, void *opaque)
{
	struct pm_model *m = opaque;
	int ret;

	enter_callback(m, dev, MODEL_CB_IDLE);
	check_status(m, MODEL_CB_IDLE, VFPM_PM_ACTIVE);
	atomic_fetch_add(&m->idle_calls, 1);
	atomic_store(&m->last_idle_seq, atomic_fetch_add(&callback_seq, 1));
	take_time(atomic_load(&m->idle_delay_us));
	ret = atomic_load(&m->idle_ret);
	leave_callback(m, MODEL_CB_IDLE);
	return ret;
}

struct pm_model *model_new(const char *name, unsigned int flags)
{
	struct pm_model *m = calloc(1, sizeof(*m));
	pthread_condattr_t attr;

	if (!m)
		abort();
	if (!(flags & MODEL_NO_SUSPEND_CB))
		m->ops.runtime_suspend = model_runtime_suspend;
	if (!(flags & MODEL_NO_RESUME_CB))
		m->ops.runtime_resume = model_runtime_resume;
	if (!(flags & MODEL_NO_IDLE_CB))
		m->ops.runtime_idle = model_runtime_idle;

	m->name = name;
	atomic_store(&m->suspended, true);
	atomic_store(&m->check_status, true);
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &attr);
	pthread_condattr_destroy(&attr);

	if (vfpm_pm_dev_create(&m->ops, m, &m->dev) != 0 || !m->dev) {
		fprintf(stderr, "vfpm_pm_dev_create failed\n");
		abort();
	}
	pthread_mutex_lock(&live_lock);
	m->next_live = live_models;
	live_models = m;
	pthread_mutex_unlock(&live_lock);
	return m;
}

struct pm_model *model_new_active(const char *name, unsigned int flags)
{
	struct pm_model *m = model_new(name, flags);

	if (model_set_active(m) != 0)
		abort();
	vfpm_pm_enable(m->dev);
	return m;
}

void model_free(struct pm_model *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&live_lock);
	for (struct pm_model **pp = &live_models; *pp; pp = &(*pp)->next_live) {
		if (*pp == m) {
			*pp = m->next_live;
			break;
		}
	}
	pthread_mutex_unlock(&live_lock);
	if (m->dev)
		vfpm_pm_dev_destroy(m->dev);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int model_free_leftovers(void **state)
{
	struct pm_model *m;

	(void)state;
	for (;;) {
		pthread_mutex_lock(&live_lock);
		m = live_models;
		pthread_mutex_unlock(&live_lock);
		if (!m)
			return 0;
		/* Whatever the test left held, let destroy finish cleanly. */
		model_free(m);
	}
}

int model_set_active(struct pm_model *m)
{
	int ret = vfpm_pm_set_active(m->dev);

	if (ret == 0)
		atomic_store(&m->suspended, false);
	return ret;
}

int model_set_suspended(struct pm_model *m)
{
	int ret = vfpm_pm_set_suspended(m->dev);

	if (ret == 0)
		atomic_store(&m->suspended, true);
	return ret;
}

int model_set_parent(struct pm_model *child, struct pm_model *parent)
{
	int ret = vfpm_pm_set_parent(child->dev, parent ? parent->dev : NULL);

	if (ret == 0 && parent) {
		if (parent->nr_children >= MODEL_MAX_CHILDREN)
			abort();
		child->parent = parent;
		parent->children[parent->nr_children++] = child;
	}
	return ret;
}

static bool access_ok(struct pm_model *m, const char *when)
{
	enum vfpm_pm_status st = vfpm_pm_status(m->dev);
	bool ok = true;

	if (st != VFPM_PM_ACTIVE) {
		violation(m, "access %s with status %s", when,
			  vfpm_pm_status_name(st));
		ok = false;
	}
	if (atomic_load(&m->suspended)) {
		violation(m, "access %s while powered down", when);
		ok = false;
	}
	if (atomic_load(&m->check_family) && m->parent &&
	    (atomic_load(&m->parent->suspended) ||
	     vfpm_pm_status(m->parent->dev) != VFPM_PM_ACTIVE)) {
		violation(m, "access %s while parent %s is not active", when,
			  m->parent->name);
		ok = false;
	}
	return ok;
}

bool model_access(struct pm_model *m)
{
	bool ok;

	atomic_fetch_add(&m->accessing, 1);
	ok = access_ok(m, "(start)");
	/* A short "register access" so that a racing suspend can hit it. */
	for (volatile int i = 0; i < 200; i++)
		;
	ok = access_ok(m, "(end)") && ok;
	atomic_fetch_add(&m->accesses, 1);
	atomic_fetch_sub(&m->accessing, 1);
	return ok;
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

int model_wait_count(struct pm_model *m, atomic_int *counter, int value,
		     int timeout_ms)
{
	struct timespec deadline;
	int ret = 0;

	deadline_after(&deadline, timeout_ms);
	pthread_mutex_lock(&m->lock);
	while (atomic_load(counter) < value) {
		if (pthread_cond_timedwait(&m->cond, &m->lock, &deadline) ==
		    ETIMEDOUT) {
			ret = atomic_load(counter) >= value ? 0 : -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int model_wait_entered(struct pm_model *m, enum model_cb cb, int timeout_ms)
{
	struct timespec deadline;
	int ret = 0;

	deadline_after(&deadline, timeout_ms);
	pthread_mutex_lock(&m->lock);
	while (atomic_load(&m->callback_entered) != (int)cb) {
		if (pthread_cond_timedwait(&m->cond, &m->lock, &deadline) ==
		    ETIMEDOUT) {
			ret = atomic_load(&m->callback_entered) == (int)cb ?
				      0 : -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int model_violations(struct pm_model *m)
{
	return atomic_load(&m->violations);
}

const char *model_first_violation(struct pm_model *m)
{
	return m->first_violation;
}

int wait_status(struct vfpm_pm_dev *dev, enum vfpm_pm_status status,
		int timeout_ms)
{
	return vfpm_pm_wait_status(dev, status, timeout_ms);
}
