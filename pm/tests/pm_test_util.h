/* SPDX-License-Identifier: MIT */
/*
 * A test "device model" for the runtime PM core: a device whose
 * suspend / resume / idle callbacks record what happened to it, can be told
 * to fail or to take time, and check the core's promises from the inside:
 *
 *  - callbacks of one device never overlap;
 *  - the status is SUSPENDING in runtime_suspend, RESUMING in runtime_resume
 *    and ACTIVE in runtime_idle;
 *  - runtime_suspend never runs while a reference holder is inside
 *    model_access();
 *  - optionally, a parent is ACTIVE while a child resumes, and every child is
 *    suspended when the parent suspends.
 *
 * A broken promise is counted as a violation (callbacks may run on worker
 * threads, where a cmocka assertion cannot be raised); tests assert that the
 * count is zero, normally through model_free_checked().
 */
#ifndef PM_TEST_UTIL_H
#define PM_TEST_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>

#include <vfpm/pm.h>

enum model_flags {
	MODEL_NO_SUSPEND_CB = 1 << 0,
	MODEL_NO_RESUME_CB = 1 << 1,
	MODEL_NO_IDLE_CB = 1 << 2,
};

enum model_cb {
	MODEL_CB_NONE = 0,
	MODEL_CB_SUSPEND,
	MODEL_CB_RESUME,
	MODEL_CB_IDLE,
};

#define MODEL_MAX_CHILDREN 4

struct pm_model {
	struct vfpm_pm_dev *dev;
	struct vfpm_pm_ops ops;		/* outlives dev: freed with the model */
	const char *name;

	/* Behaviour, changeable at any time by the test. */
	atomic_int suspend_ret;		/* value runtime_suspend returns */
	atomic_int resume_ret;
	atomic_int idle_ret;
	atomic_int suspend_delay_us;	/* time a callback takes */
	atomic_int resume_delay_us;
	atomic_int idle_delay_us;
	atomic_bool check_status;	/* check the status inside callbacks */
	atomic_bool check_family;	/* check parent/children invariants */

	/* What happened. */
	atomic_int suspend_calls;	/* callback invocations */
	atomic_int resume_calls;
	atomic_int idle_calls;
	atomic_int suspends;		/* successful ones */
	atomic_int resumes;
	atomic_long last_suspend_seq;	/* global order of the last calls */
	atomic_long last_resume_seq;
	atomic_long last_idle_seq;
	atomic_llong last_suspend_ns;	/* CLOCK_MONOTONIC of the last success */
	atomic_llong last_resume_ns;
	atomic_int in_callback;		/* enum model_cb running now */
	atomic_int callback_entered;	/* enum model_cb, set on entry */
	atomic_bool suspended;		/* the "hardware" is powered down */
	atomic_int accessing;		/* threads inside model_access() */
	atomic_long accesses;
	atomic_int violations;

	/* Family, set up before use by model_set_parent(). */
	struct pm_model *parent;
	struct pm_model *children[MODEL_MAX_CHILDREN];
	int nr_children;

	/* Signalled whenever a callback finishes; protects first_violation. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char first_violation[256];

	struct pm_model *next_live;	/* registry of models not yet freed */
};

/* A new device as the core creates it: SUSPENDED, disabled. */
struct pm_model *model_new(const char *name, unsigned int flags);
/* A new device made ACTIVE (set_active) and enabled, usage 0. */
struct pm_model *model_new_active(const char *name, unsigned int flags);
/* Destroy the device (unless dev was set to NULL) and free the model. */
void model_free(struct pm_model *m);

/*
 * cmocka teardown: free the models a failed test left behind (newest
 * first, so children go before their parents).  Always returns 0.
 */
int model_free_leftovers(void **state);

/* vfpm_pm_set_active / set_suspended that also keep the model's power flag. */
int model_set_active(struct pm_model *m);
int model_set_suspended(struct pm_model *m);
/* vfpm_pm_set_parent plus the model link used by the family checks. */
int model_set_parent(struct pm_model *child, struct pm_model *parent);

/*
 * What a reference holder does with the device: touches the "hardware".
 * Records a violation (and returns false) if the device is not ACTIVE, is
 * powered down, or (with check_family) its parent is not ACTIVE.
 */
bool model_access(struct pm_model *m);

/* Wait until *counter >= value (0) or timeout_ms passes (-ETIMEDOUT). */
int model_wait_count(struct pm_model *m, atomic_int *counter, int value,
		     int timeout_ms);
/* Wait until a callback of this kind is running (or has run) (0/-ETIMEDOUT). */
int model_wait_entered(struct pm_model *m, enum model_cb cb, int timeout_ms);

int model_violations(struct pm_model *m);
/* Copy of the first violation message ("" if none). */
const char *model_first_violation(struct pm_model *m);

/* vfpm_pm_wait_status under a name that reads well in tests. */
int wait_status(struct vfpm_pm_dev *dev, enum vfpm_pm_status status,
		int timeout_ms);

int64_t now_ns(void);
int64_t ms_since(int64_t start_ns);
void sleep_us(int us);

/* For test files (after <cmocka.h>): no promise of the core was broken. */
#define assert_model_clean(m)                                               \
	do {                                                                 \
		if (model_violations(m))                                     \
			fprintf(stderr, "model %s: %d violation(s), first: %s\n", \
				(m)->name, model_violations(m),              \
				model_first_violation(m));                   \
		assert_int_equal(model_violations(m), 0);                    \
	} while (0)

/* A cmocka test entry that frees what a failed test left behind. */
#define PM_TEST(fn) cmocka_unit_test_teardown(fn, model_free_leftovers)

/* Generous bound for "shortly" (asynchronous work), sanitizers included. */
#define SOON_MS 5000

#endif /* PM_TEST_UTIL_H */
