/* SPDX-License-Identifier: MIT */
/*
 * The runtime PM helpers as a user sees them: return values, statuses,
 * counts and callbacks, with the meaning of Linux 6.1's runtime PM.
 * Errors are in test_errors.c, parents in test_parent.c, delays in
 * test_autosuspend.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "pm_test_util.h"

/* Long enough for a wrongly queued request to have run; only for "never". */
#define QUIET_MS 250

/* A new device: the kernel's pm_runtime_init() state. */
static void test_new_device_defaults(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(vfpm_pm_child_count(m->dev), 0);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 1);
	assert_false(vfpm_pm_is_enabled(m->dev));
	assert_true(vfpm_pm_runtime_auto(m->dev));
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	assert_ptr_equal(vfpm_pm_opaque(m->dev), m);
	assert_true(vfpm_pm_worker_threads() > 0);

	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 0);
	assert_true(vfpm_pm_is_enabled(m->dev));
	/* Enabling does not transition the device. */
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(m->resume_calls + m->suspend_calls + m->idle_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* disable nests; an unbalanced enable leaves the depth at 0. */
static void test_enable_disable_nesting(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	assert_int_equal(vfpm_pm_disable_depth(m->dev), 0);
	vfpm_pm_disable(m->dev);
	vfpm_pm_disable(m->dev);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 2);
	assert_false(vfpm_pm_is_enabled(m->dev));
	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 1);
	assert_false(vfpm_pm_is_enabled(m->dev));
	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 0);
	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 0);
	assert_true(vfpm_pm_is_enabled(m->dev));
	/* Disabling and enabling do not transition the device. */
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(m->suspend_calls + m->resume_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* get_noresume / put_noidle move the count only, never below 0. */
static void test_get_noresume_put_noidle(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	vfpm_pm_enable(m->dev);
	vfpm_pm_get_noresume(m->dev);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	vfpm_pm_get_noresume(m->dev);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 2);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	vfpm_pm_put_noidle(m->dev);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(m->resume_calls, 0);
	assert_model_clean(m);
	model_free(m);

	/* On an ACTIVE device, put_noidle reaching 0 starts no idle check. */
	m = model_new_active("dev", 0);
	vfpm_pm_get_noresume(m->dev);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, QUIET_MS),
			 -ETIMEDOUT);
	assert_int_equal(m->idle_calls, 0);
	assert_int_equal(m->suspend_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* get_sync: 0 when it resumed, 1 when already active; put / put_sync. */
static void test_get_sync_and_put_sync(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_get_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(m->resume_calls, 1);
	assert_true(model_access(m));

	assert_int_equal(vfpm_pm_get_sync(m->dev), 1);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 2);
	assert_int_equal(m->resume_calls, 1);

	/* The count stays above 0: nothing happens. */
	assert_int_equal(vfpm_pm_put(m->dev), 0);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	/* put_sync to 0 ran the idle check and the suspend before returning. */
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(m->idle_calls, 1);
	assert_int_equal(m->suspends, 1);
	assert_true(m->last_idle_seq < m->last_suspend_seq);
	assert_model_clean(m);
	model_free(m);
}

/* Runtime PM disabled: get_sync keeps its reference, resume_and_get not. */
static void test_get_sync_disabled(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	assert_int_equal(vfpm_pm_get_sync(m->dev), -EACCES);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	/* Dropping it to 0 runs the idle check, refused: still disabled. */
	assert_int_equal(vfpm_pm_put(m->dev), -EACCES);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);

	assert_int_equal(vfpm_pm_resume_and_get(m->dev), -EACCES);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(vfpm_pm_get(m->dev), -EACCES);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(m->resume_calls, 0);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	assert_model_clean(m);
	model_free(m);
}

/* resume_and_get returns 0 whether it resumed or not. */
static void test_resume_and_get(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_true(model_access(m));
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 2);
	assert_int_equal(m->resume_calls, 1);
	assert_int_equal(vfpm_pm_put(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_put(m->dev), 0);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	/* put to 0 queued an idle check: the device suspends shortly. */
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(m->suspends, 1);
	assert_int_equal(m->idle_calls, 1);
	assert_model_clean(m);
	model_free(m);
}

/*
 * A disabled device answers resume with 1 only if it was ACTIVE when it was
 * disabled (and still is); otherwise -EACCES.
 */
static void test_resume_while_disabled(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	vfpm_pm_disable(m->dev);
	assert_int_equal(vfpm_pm_resume(m->dev), 1);
	assert_int_equal(vfpm_pm_get_sync(m->dev), 1);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 2);
	vfpm_pm_disable(m->dev); /* depth 2: the status at disable stays */
	assert_int_equal(vfpm_pm_resume(m->dev), 1);
	vfpm_pm_put_noidle(m->dev);
	vfpm_pm_put_noidle(m->dev);

	/* Set SUSPENDED while disabled: now it is refused. */
	assert_int_equal(model_set_suspended(m), 0);
	assert_int_equal(vfpm_pm_resume(m->dev), -EACCES);
	/* Back to ACTIVE, but it was not ACTIVE when disabled. */
	assert_int_equal(model_set_active(m), 0);
	assert_int_equal(vfpm_pm_resume(m->dev), 1);
	assert_int_equal(m->resume_calls + m->suspend_calls, 0);
	assert_model_clean(m);
	model_free(m);

	/* Never enabled: the status at disable is unknown. */
	m = model_new("fresh", 0);
	assert_int_equal(model_set_active(m), 0);
	assert_int_equal(vfpm_pm_resume(m->dev), -EACCES);
	assert_int_equal(vfpm_pm_get_sync(m->dev), -EACCES);
	vfpm_pm_put_noidle(m->dev);
	assert_model_clean(m);
	model_free(m);

	/* Disabled while SUSPENDED. */
	m = model_new("suspended", 0);
	vfpm_pm_enable(m->dev);
	vfpm_pm_disable(m->dev);
	assert_int_equal(vfpm_pm_resume(m->dev), -EACCES);
	assert_int_equal(m->resume_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* Every put variant refuses to go below 0. */
static void test_put_underflow(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	assert_int_equal(vfpm_pm_put(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(vfpm_pm_put_sync(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(vfpm_pm_put_autosuspend(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(vfpm_pm_put_sync_autosuspend(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	/* A refused put starts no idle check either. */
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(m->idle_calls + m->suspend_calls, 0);
	/* And the count still works afterwards. */
	assert_int_equal(vfpm_pm_get_sync(m->dev), 1);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_model_clean(m);
	model_free(m);
}

/* The autosuspend puts skip the idle callback and suspend directly. */
static void test_put_autosuspend_variants_skip_idle(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	atomic_store(&m->idle_ret, -EBUSY); /* idle would veto */
	vfpm_pm_get_noresume(m->dev);
	assert_int_equal(vfpm_pm_put_sync_autosuspend(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(m->idle_calls, 0);
	assert_int_equal(m->suspends, 1);

	assert_int_equal(vfpm_pm_get_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_put_autosuspend(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(m->idle_calls, 0);
	assert_int_equal(m->suspends, 2);

	/* While put / put_sync go through idle, which vetoes. */
	assert_int_equal(vfpm_pm_get_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_put_sync(m->dev), -EBUSY);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(m->idle_calls, 1);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	assert_model_clean(m);
	model_free(m);
}

/* get: take a reference and resume asynchronously. */
static void test_get_async(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_get(m->dev), 0);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(wait_status(m->dev, VFPM_PM_ACTIVE, SOON_MS), 0);
	assert_int_equal(m->resumes, 1);
	assert_true(model_access(m));
	assert_int_equal(vfpm_pm_get(m->dev), 1);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 2);
	/* The references keep it active. */
	vfpm_pm_barrier(m->dev);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_put(m->dev), 0);
	assert_int_equal(vfpm_pm_put(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(m->suspends, 1);
	assert_model_clean(m);
	model_free(m);
}

/* suspend / resume without touching the count. */
static void test_suspend_resume_sync(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	/* resume of an ACTIVE device: 1, and no idle check follows. */
	assert_int_equal(vfpm_pm_resume(m->dev), 1);
	assert_int_equal(m->resume_calls, 0);

	assert_int_equal(vfpm_pm_suspend(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(m->suspends, 1);
	assert_int_equal(m->idle_calls, 0); /* suspend does not ask idle */
	assert_int_equal(vfpm_pm_suspend(m->dev), 1);
	assert_int_equal(m->suspend_calls, 1);

	/*
	 * resume with usage 0: 0, the device is resumed, and (as in the
	 * kernel) an idle check is queued, so it suspends again.
	 */
	assert_int_equal(vfpm_pm_resume(m->dev), 0);
	assert_int_equal(m->resumes, 1);
	assert_int_equal(model_wait_count(m, &m->suspends, 2, SOON_MS), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(m->idle_calls, 1);
	assert_model_clean(m);
	model_free(m);

	m = model_new_active("quiet", 0);
	assert_int_equal(vfpm_pm_resume(m->dev), 1);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, QUIET_MS),
			 -ETIMEDOUT);
	assert_int_equal(m->idle_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* suspend / idle refusals, in the kernel's order. */
static void test_suspend_refusals(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	vfpm_pm_get_noresume(m->dev);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_idle(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_request_idle(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_autosuspend(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, 0), -EAGAIN);
	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, 100), -EAGAIN);
	/* Disabled wins over the usage count. */
	vfpm_pm_disable(m->dev);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EACCES);
	assert_int_equal(vfpm_pm_idle(m->dev), -EACCES);
	assert_int_equal(vfpm_pm_request_idle(m->dev), -EACCES);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EACCES);
	vfpm_pm_enable(m->dev);
	assert_int_equal(m->idle_calls + m->suspend_calls, 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);

	assert_int_equal(vfpm_pm_suspend(m->dev), 0);
	/* Already suspended: suspend says 1, idle (not ACTIVE) -EAGAIN. */
	assert_int_equal(vfpm_pm_suspend(m->dev), 1);
	assert_int_equal(vfpm_pm_autosuspend(m->dev), 1);
	assert_int_equal(vfpm_pm_idle(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_request_idle(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, 100), 1);
	assert_int_equal(m->suspend_calls, 1);
	assert_int_equal(m->idle_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* idle: the callback's nonzero answer is returned and vetoes suspend. */
static void test_idle_sync(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	atomic_store(&m->idle_ret, -EBUSY);
	assert_int_equal(vfpm_pm_idle(m->dev), -EBUSY);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	atomic_store(&m->idle_ret, 1);
	assert_int_equal(vfpm_pm_idle(m->dev), 1);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	/* An idle failure is not a runtime error. */
	atomic_store(&m->idle_ret, -EIO);
	assert_int_equal(vfpm_pm_idle(m->dev), -EIO);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	assert_int_equal(m->idle_calls, 3);
	assert_int_equal(m->suspend_calls, 0);

	atomic_store(&m->idle_ret, 0);
	assert_int_equal(vfpm_pm_idle(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(m->idle_calls, 4);
	assert_int_equal(m->suspends, 1);
	assert_true(m->last_idle_seq < m->last_suspend_seq);
	assert_model_clean(m);
	model_free(m);

	/* No idle callback: idle means suspend. */
	m = model_new_active("noidle", MODEL_NO_IDLE_CB);
	assert_int_equal(vfpm_pm_idle(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(m->suspends, 1);
	assert_model_clean(m);
	model_free(m);
}

/* request_idle: asynchronous idle check, then suspend. */
static void test_request_idle(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	assert_int_equal(vfpm_pm_request_idle(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(m->idle_calls, 1);
	assert_int_equal(m->suspends, 1);
	assert_model_clean(m);
	model_free(m);

	/* The idle callback vetoes: it runs, the device stays ACTIVE. */
	m = model_new_active("veto", 0);
	atomic_store(&m->idle_ret, -EBUSY);
	assert_int_equal(vfpm_pm_request_idle(m->dev), 0);
	assert_int_equal(model_wait_count(m, &m->idle_calls, 1, SOON_MS), 0);
	vfpm_pm_barrier(m->dev);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(m->suspend_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* request_resume: asynchronous resume; as in the kernel it idles after. */
static void test_request_resume(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	assert_int_equal(vfpm_pm_request_resume(m->dev), -EACCES);
	vfpm_pm_enable(m->dev);
	/* Holding a reference, the device stays ACTIVE. */
	vfpm_pm_get_noresume(m->dev);
	assert_int_equal(vfpm_pm_request_resume(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_ACTIVE, SOON_MS), 0);
	assert_int_equal(m->resumes, 1);
	assert_int_equal(vfpm_pm_request_resume(m->dev), 1);
	vfpm_pm_barrier(m->dev);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_true(model_access(m));
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);

	/* Without one, the resume is followed by an idle check. */
	assert_int_equal(vfpm_pm_request_resume(m->dev), 0);
	assert_int_equal(model_wait_count(m, &m->resumes, 2, SOON_MS), 0);
	assert_int_equal(model_wait_count(m, &m->suspends, 2, SOON_MS), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_model_clean(m);
	model_free(m);
}

/* forbid / allow: the user's power/control = on / auto. */
static void test_forbid_allow(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	vfpm_pm_forbid(m->dev);
	assert_false(vfpm_pm_runtime_auto(m->dev));
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	vfpm_pm_forbid(m->dev);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);

	vfpm_pm_allow(m->dev);
	assert_true(vfpm_pm_runtime_auto(m->dev));
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(m->suspends, 1);
	vfpm_pm_allow(m->dev);
	assert_true(vfpm_pm_runtime_auto(m->dev));
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);

	/* forbid resumes a suspended device before returning. */
	vfpm_pm_forbid(m->dev);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(m->resumes, 1);
	assert_true(model_access(m));

	/* allow while someone else holds a reference: no suspend. */
	vfpm_pm_get_noresume(m->dev);
	vfpm_pm_allow(m->dev);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, QUIET_MS),
			 -ETIMEDOUT);
	assert_int_equal(vfpm_pm_put(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(m->suspends, 2);
	assert_model_clean(m);
	model_free(m);
}

/* disable cancels a queued request; an idle already running is refused. */
static void test_disable_cancels_requests(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	/* A slow idle callback: the request is queued or just started. */
	atomic_store(&m->idle_delay_us, 50000);
	assert_int_equal(vfpm_pm_request_idle(m->dev), 0);
	vfpm_pm_disable(m->dev);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, QUIET_MS),
			 -ETIMEDOUT);
	vfpm_pm_enable(m->dev);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, QUIET_MS),
			 -ETIMEDOUT);
	assert_int_equal(m->suspend_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* barrier: a queued resume has happened, nothing is in flight. */
static void test_barrier(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	vfpm_pm_enable(m->dev);
	atomic_store(&m->resume_delay_us, 50000);
	vfpm_pm_get_noresume(m->dev);
	assert_int_equal(vfpm_pm_request_resume(m->dev), 0);
	vfpm_pm_barrier(m->dev);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(m->resumes, 1);
	vfpm_pm_put_noidle(m->dev);

	atomic_store(&m->suspend_delay_us, 50000);
	assert_int_equal(vfpm_pm_request_idle(m->dev), 0);
	vfpm_pm_barrier(m->dev);
	enum vfpm_pm_status st = vfpm_pm_status(m->dev);
	assert_true(st == VFPM_PM_ACTIVE || st == VFPM_PM_SUSPENDED);
	assert_int_equal(m->in_callback, MODEL_CB_NONE);
	assert_model_clean(m);
	model_free(m);
}

/* set_active / set_suspended only when disabled (or after an error). */
static void test_set_status(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	assert_int_equal(vfpm_pm_set_active(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_set_suspended(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 0);

	vfpm_pm_disable(m->dev);
	assert_int_equal(model_set_suspended(m), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 1);
	assert_int_equal(model_set_active(m), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 1);
	vfpm_pm_enable(m->dev);
	assert_true(vfpm_pm_is_enabled(m->dev));
	/* No callback runs for a status set by hand. */
	assert_int_equal(m->suspend_calls + m->resume_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* wait_status returns at once when there, -ETIMEDOUT after the timeout. */
static void test_wait_status(void **state)
{
	struct pm_model *m = model_new("dev", 0);
	int64_t start = now_ns();

	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, 0), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, -1), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_ACTIVE, 100), -ETIMEDOUT);
	assert_true(ms_since(start) >= 90);
	assert_int_equal(wait_status(m->dev, VFPM_PM_ACTIVE, 0), -ETIMEDOUT);
	vfpm_pm_enable(m->dev);
	vfpm_pm_get_noresume(m->dev);
	assert_int_equal(vfpm_pm_request_resume(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_ACTIVE, -1), 0);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(vfpm_pm_put_sync(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_suspend(m->dev), 0);

	/*
	 * A brief visit counts: unreferenced, the device resumes and idles
	 * straight back to SUSPENDED, and a waiter for ACTIVE still returns.
	 * The slow resume makes sure the wait begins before the visit (the
	 * visit must fall inside the call to count).
	 */
	atomic_store(&m->resume_delay_us, 500000);
	assert_int_equal(vfpm_pm_request_resume(m->dev), 0);
	assert_int_equal(model_wait_entered(m, MODEL_CB_RESUME, SOON_MS), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_ACTIVE, SOON_MS), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(m->resume_calls, 2);
	model_free(m);
}

static void test_status_names(void **state)
{
	assert_string_equal(vfpm_pm_status_name(VFPM_PM_ACTIVE), "active");
	assert_string_equal(vfpm_pm_status_name(VFPM_PM_RESUMING), "resuming");
	assert_string_equal(vfpm_pm_status_name(VFPM_PM_SUSPENDED),
			    "suspended");
	assert_string_equal(vfpm_pm_status_name(VFPM_PM_SUSPENDING),
			    "suspending");
	assert_non_null(vfpm_pm_status_name((enum vfpm_pm_status)42));
}

/* destroy with timers, queued requests or a running callback is clean. */
static void test_destroy_with_pending_work(void **state)
{
	struct pm_model *m;

	m = model_new_active("timer", 0);
	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, 10000), 0);
	model_free(m);

	m = model_new_active("autosuspend", 0);
	vfpm_pm_get_noresume(m->dev); /* no idle check while configuring */
	vfpm_pm_set_autosuspend_delay(m->dev, 10000);
	vfpm_pm_use_autosuspend(m->dev, true);
	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(vfpm_pm_put_autosuspend(m->dev), 0);
	model_free(m);

	m = model_new_active("idle", 0);
	assert_int_equal(vfpm_pm_request_idle(m->dev), 0);
	model_free(m);

	m = model_new("resume", 0);
	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_request_resume(m->dev), 0);
	model_free(m);

	/* A callback in progress on a worker: destroy waits for it. */
	m = model_new("running", 0);
	vfpm_pm_enable(m->dev);
	atomic_store(&m->resume_delay_us, 100000);
	assert_int_equal(vfpm_pm_request_resume(m->dev), 0);
	assert_int_equal(model_wait_entered(m, MODEL_CB_RESUME, SOON_MS), 0);
	vfpm_pm_dev_destroy(m->dev);
	assert_int_equal(m->in_callback, MODEL_CB_NONE);
	assert_int_equal(m->resume_calls, 1);
	m->dev = NULL;
	assert_model_clean(m);
	model_free(m);
}

/* Many devices share a small pool of workers, and all get served. */
static void test_shared_worker_pool(void **state)
{
	enum { N = 32 };
	struct pm_model *m[N];

	for (int i = 0; i < N; i++)
		m[i] = model_new_active("many", 0);
	assert_true(vfpm_pm_worker_threads() > 0);
	assert_true(vfpm_pm_worker_threads() < N);
	for (int i = 0; i < N; i++)
		assert_int_equal(vfpm_pm_request_idle(m[i]->dev), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(wait_status(m[i]->dev, VFPM_PM_SUSPENDED,
					     SOON_MS), 0);
		assert_int_equal(m[i]->suspends, 1);
		assert_model_clean(m[i]);
		model_free(m[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		PM_TEST(test_new_device_defaults),
		PM_TEST(test_enable_disable_nesting),
		PM_TEST(test_get_noresume_put_noidle),
		PM_TEST(test_get_sync_and_put_sync),
		PM_TEST(test_get_sync_disabled),
		PM_TEST(test_resume_and_get),
		PM_TEST(test_resume_while_disabled),
		PM_TEST(test_put_underflow),
		PM_TEST(test_put_autosuspend_variants_skip_idle),
		PM_TEST(test_get_async),
		PM_TEST(test_suspend_resume_sync),
		PM_TEST(test_suspend_refusals),
		PM_TEST(test_idle_sync),
		PM_TEST(test_request_idle),
		PM_TEST(test_request_resume),
		PM_TEST(test_forbid_allow),
		PM_TEST(test_disable_cancels_requests),
		PM_TEST(test_barrier),
		PM_TEST(test_set_status),
		PM_TEST(test_wait_status),
		PM_TEST(test_status_names),
		PM_TEST(test_destroy_with_pending_work),
		PM_TEST(test_shared_worker_pool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
