/* SPDX-License-Identifier: MIT */
/*
 * Failing callbacks and the sticky runtime_error, with the meaning of
 * Linux 6.1: -EAGAIN / -EBUSY from runtime_suspend are "not now", any other
 * error is recorded and makes every later transition fail with -EINVAL
 * until set_active / set_suspended clears it; -EACCES from a callback is
 * reported as -EIO.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "pm_test_util.h"

/* -EAGAIN and -EBUSY from runtime_suspend: stays ACTIVE, no error. */
static void test_suspend_transient_errors(void **state)
{
	static const int errs[] = { -EAGAIN, -EBUSY };
	struct pm_model *m = model_new_active("dev", 0);

	for (unsigned int i = 0; i < 2; i++) {
		atomic_store(&m->suspend_ret, errs[i]);
		assert_int_equal(vfpm_pm_suspend(m->dev), errs[i]);
		assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
		assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);

		vfpm_pm_get_noresume(m->dev);
		assert_int_equal(vfpm_pm_put_sync(m->dev), errs[i]);
		assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
		assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
		assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	}
	assert_int_equal(m->suspend_calls, 4);
	assert_int_equal(m->suspends, 0);

	/* Nothing sticky: the next attempt works. */
	atomic_store(&m->suspend_ret, 0);
	assert_int_equal(vfpm_pm_suspend(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_get_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_model_clean(m);
	model_free(m);
}

/* Any other runtime_suspend error is sticky. */
static void test_suspend_error_is_sticky(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	atomic_store(&m->suspend_ret, -EIO);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EIO);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), -EIO);
	assert_false(m->suspended);

	/* Every later transition: -EINVAL, without calling back. */
	atomic_store(&m->suspend_ret, 0);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_idle(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_request_idle(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_autosuspend(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, 100), -EINVAL);
	assert_int_equal(vfpm_pm_resume(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_request_resume(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_get_sync(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(m->suspend_calls, 1);
	assert_int_equal(m->resume_calls + m->idle_calls, 0);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), -EIO);

	/* Recovery: disable, set the status, enable. */
	vfpm_pm_disable(m->dev);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), -EIO);
	assert_int_equal(model_set_active(m), 0);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 0);
	assert_int_equal(vfpm_pm_suspend(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_model_clean(m);
	model_free(m);
}

/* A runtime_resume error is sticky; get_sync keeps its reference. */
static void test_resume_error_is_sticky(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	vfpm_pm_enable(m->dev);
	atomic_store(&m->resume_ret, -EIO);
	assert_int_equal(vfpm_pm_get_sync(m->dev), -EIO);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), -EIO);
	assert_int_equal(m->resume_calls, 1);

	atomic_store(&m->resume_ret, 0);
	assert_int_equal(vfpm_pm_get_sync(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 2);
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 2);
	assert_int_equal(vfpm_pm_resume(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_request_resume(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_get(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 3);
	vfpm_pm_put_noidle(m->dev);
	vfpm_pm_put_noidle(m->dev);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EINVAL);
	assert_int_equal(m->resume_calls, 1);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);

	/* With an error recorded, set_suspended works even though enabled. */
	assert_int_equal(model_set_suspended(m), 0);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 0);
	assert_int_equal(vfpm_pm_get_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_true(model_access(m));
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_model_clean(m);
	model_free(m);
}

/* A callback returning -EACCES is reported as -EIO. */
static void test_callback_eacces_reported_as_eio(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	atomic_store(&m->suspend_ret, -EACCES);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EIO);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	/* Linux 6.1 records the callback's own value. */
	assert_int_equal(vfpm_pm_runtime_error(m->dev), -EACCES);

	/* set_active with an error recorded: allowed, clears it. */
	assert_int_equal(model_set_active(m), 0);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	assert_true(vfpm_pm_is_enabled(m->dev));
	atomic_store(&m->suspend_ret, 0);
	assert_int_equal(vfpm_pm_suspend(m->dev), 0);

	atomic_store(&m->resume_ret, -EACCES);
	assert_int_equal(vfpm_pm_resume(m->dev), -EIO);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), -EACCES);
	assert_model_clean(m);
	model_free(m);
}

/* An error from an asynchronous suspend is recorded all the same. */
static void test_async_suspend_error_recorded(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	atomic_store(&m->suspend_ret, -EIO);
	vfpm_pm_get_noresume(m->dev);
	assert_int_equal(vfpm_pm_put(m->dev), 0);
	assert_int_equal(model_wait_count(m, &m->suspend_calls, 1, SOON_MS), 0);
	vfpm_pm_barrier(m->dev);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), -EIO);
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_model_clean(m);
	model_free(m);
}

/* An error from an asynchronous resume: the next get_sync fails. */
static void test_async_resume_error_recorded(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	vfpm_pm_enable(m->dev);
	atomic_store(&m->resume_ret, -ENODEV);
	assert_int_equal(vfpm_pm_request_resume(m->dev), 0);
	assert_int_equal(model_wait_count(m, &m->resume_calls, 1, SOON_MS), 0);
	vfpm_pm_barrier(m->dev);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), -ENODEV);
	atomic_store(&m->resume_ret, 0);
	assert_int_equal(vfpm_pm_get_sync(m->dev), -EINVAL);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(m->resume_calls, 1);
	assert_model_clean(m);
	model_free(m);
}

/* The error is checked first: before "disabled". */
static void test_error_checked_before_disabled(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	atomic_store(&m->suspend_ret, -EIO);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EIO);
	vfpm_pm_disable(m->dev);
	vfpm_pm_get_noresume(m->dev);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EINVAL);
	assert_int_equal(vfpm_pm_idle(m->dev), -EINVAL);
	/* Even the "was active when disabled" answer comes after it. */
	assert_int_equal(vfpm_pm_resume(m->dev), -EINVAL);
	vfpm_pm_put_noidle(m->dev);
	/* Recovery through set_suspended while disabled. */
	assert_int_equal(model_set_suspended(m), 0);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	assert_int_equal(vfpm_pm_disable_depth(m->dev), 1);
	assert_int_equal(vfpm_pm_resume(m->dev), -EACCES);
	vfpm_pm_enable(m->dev);
	atomic_store(&m->suspend_ret, 0);
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	assert_true(model_access(m));
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_model_clean(m);
	model_free(m);
}

/* A pending or running resume takes precedence over a suspend. */
static void test_suspend_refused_while_resume_pending(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	vfpm_pm_enable(m->dev);
	atomic_store(&m->resume_delay_us, 200000);
	assert_int_equal(vfpm_pm_request_resume(m->dev), 0);
	/* Queued (pending resume) or running (RESUMING): -EAGAIN both. */
	assert_int_equal(vfpm_pm_suspend(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_idle(m->dev), -EAGAIN);
	/*
	 * Wait for the resume itself, not for ACTIVE: the idle check that
	 * follows may suspend the device before a waiter sees it ACTIVE.
	 */
	assert_int_equal(model_wait_count(m, &m->resumes, 1, SOON_MS), 0);
	assert_true(m->last_resume_seq < m->last_suspend_seq ||
		    m->suspend_calls == 0);
	/* Then, with usage 0, the resume's idle check suspends it. */
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_model_clean(m);
	model_free(m);
}

/*
 * A missing suspend or resume callback is a transition that succeeds without
 * one, as in Linux since 5.14 (6.1 included): no error is recorded.
 */
static void test_missing_callbacks_succeed(void **state)
{
	struct pm_model *m = model_new_active("nosuspend", MODEL_NO_SUSPEND_CB);

	assert_int_equal(vfpm_pm_suspend(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	assert_int_equal(m->suspend_calls, 0);
	model_free(m);

	m = model_new("noresume", MODEL_NO_RESUME_CB);
	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_get_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	assert_int_equal(m->resume_calls, 0);
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(m->suspend_calls, 1);
	model_free(m);
}

/* With set_no_callbacks, transitions succeed without callbacks. */
static void test_no_callbacks(void **state)
{
	struct pm_model *m = model_new("nocb", MODEL_NO_SUSPEND_CB |
				       MODEL_NO_RESUME_CB | MODEL_NO_IDLE_CB);

	vfpm_pm_set_no_callbacks(m->dev);
	vfpm_pm_enable(m->dev);
	assert_int_equal(vfpm_pm_get_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	assert_int_equal(vfpm_pm_put(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(vfpm_pm_resume(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(vfpm_pm_suspend(m->dev), 1);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		PM_TEST(test_suspend_transient_errors),
		PM_TEST(test_suspend_error_is_sticky),
		PM_TEST(test_resume_error_is_sticky),
		PM_TEST(test_callback_eacces_reported_as_eio),
		PM_TEST(test_async_suspend_error_recorded),
		PM_TEST(test_async_resume_error_recorded),
		PM_TEST(test_error_checked_before_disabled),
		PM_TEST(test_suspend_refused_while_resume_pending),
		PM_TEST(test_missing_callbacks_succeed),
		PM_TEST(test_no_callbacks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
