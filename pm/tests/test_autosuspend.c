/* SPDX-License-Identifier: MIT */
/*
 * Delayed suspends: autosuspend (delay counted from last_busy) and
 * schedule_suspend, with the meaning of Linux 6.1.  Timing checks only use
 * lower bounds ("not before the delay") and generous upper bounds, so that
 * they hold under sanitizers too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "pm_test_util.h"

#define DELAY_MS 300
/* Timer and clock granularity we tolerate on the early side. */
#define EARLY_SLACK_MS 10

/* ACTIVE, enabled, autosuspend on with DELAY_MS, usage 0. */
static struct pm_model *autosuspend_model(void)
{
	struct pm_model *m = model_new("dev", 0);

	/* Configure while disabled, so that nothing runs yet. */
	vfpm_pm_set_autosuspend_delay(m->dev, DELAY_MS);
	vfpm_pm_use_autosuspend(m->dev, true);
	assert_int_equal(model_set_active(m), 0);
	vfpm_pm_enable(m->dev);
	return m;
}

static int64_t suspend_ms_after(struct pm_model *m, int64_t start_ns)
{
	return (atomic_load(&m->last_suspend_ns) - start_ns) / 1000000;
}

/* put_autosuspend: still ACTIVE right after, SUSPENDED after the delay. */
static void test_put_autosuspend_waits_for_delay(void **state)
{
	struct pm_model *m = autosuspend_model();
	int64_t start;

	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	start = now_ns();
	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(vfpm_pm_put_autosuspend(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(m->suspend_calls, 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED,
				     DELAY_MS + SOON_MS), 0);
	assert_true(suspend_ms_after(m, start) >= DELAY_MS - EARLY_SLACK_MS);
	assert_int_equal(m->idle_calls, 0);
	assert_int_equal(m->suspends, 1);
	assert_model_clean(m);
	model_free(m);
}

/* put_sync_autosuspend also waits for the delay, and returns at once. */
static void test_put_sync_autosuspend_waits_for_delay(void **state)
{
	struct pm_model *m = autosuspend_model();
	int64_t start;

	vfpm_pm_get_noresume(m->dev);
	start = now_ns();
	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(vfpm_pm_put_sync_autosuspend(m->dev), 0);
	assert_true(ms_since(start) < DELAY_MS - EARLY_SLACK_MS);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED,
				     DELAY_MS + SOON_MS), 0);
	assert_true(suspend_ms_after(m, start) >= DELAY_MS - EARLY_SLACK_MS);
	assert_model_clean(m);
	model_free(m);
}

/* With autosuspend on, the idle path (put) goes through the delay too. */
static void test_put_goes_through_delay(void **state)
{
	struct pm_model *m = autosuspend_model();
	int64_t start;

	vfpm_pm_get_noresume(m->dev);
	start = now_ns();
	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(vfpm_pm_put(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED,
				     DELAY_MS + SOON_MS), 0);
	assert_true(suspend_ms_after(m, start) >= DELAY_MS - EARLY_SLACK_MS);
	assert_int_equal(m->idle_calls, 1);
	assert_model_clean(m);
	model_free(m);
}

/* mark_last_busy during the delay postpones the suspend. */
static void test_mark_last_busy_postpones(void **state)
{
	struct pm_model *m = autosuspend_model();
	int64_t busy;

	vfpm_pm_get_noresume(m->dev);
	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(vfpm_pm_put_autosuspend(m->dev), 0);
	sleep_us(DELAY_MS / 2 * 1000); /* timing, not synchronisation */
	busy = now_ns();
	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED,
				     DELAY_MS + SOON_MS), 0);
	assert_true(suspend_ms_after(m, busy) >= DELAY_MS - EARLY_SLACK_MS);
	assert_int_equal(m->suspends, 1);
	assert_model_clean(m);
	model_free(m);
}

/* A reference taken during the delay keeps the device ACTIVE. */
static void test_reference_during_delay_keeps_active(void **state)
{
	struct pm_model *m = autosuspend_model();

	vfpm_pm_get_noresume(m->dev);
	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(vfpm_pm_put_autosuspend(m->dev), 0);
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, 2 * DELAY_MS),
			 -ETIMEDOUT);
	assert_true(model_access(m));
	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(vfpm_pm_put_autosuspend(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED,
				     DELAY_MS + SOON_MS), 0);
	assert_int_equal(m->suspends, 1);
	assert_int_equal(m->resume_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* autosuspend / request_autosuspend honour the delay; 0 means now. */
static void test_autosuspend_helpers(void **state)
{
	struct pm_model *m = autosuspend_model();
	int64_t start = now_ns();

	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(vfpm_pm_autosuspend(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED,
				     DELAY_MS + SOON_MS), 0);
	assert_true(suspend_ms_after(m, start) >= DELAY_MS - EARLY_SLACK_MS);

	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	vfpm_pm_put_noidle(m->dev);
	start = now_ns();
	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(vfpm_pm_request_autosuspend(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED,
				     DELAY_MS + SOON_MS), 0);
	assert_true(suspend_ms_after(m, start) >= DELAY_MS - EARLY_SLACK_MS);

	/* With a delay of 0 the synchronous one suspends before returning. */
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	vfpm_pm_put_noidle(m->dev);
	vfpm_pm_get_noresume(m->dev); /* keep set_autosuspend_delay quiet */
	vfpm_pm_set_autosuspend_delay(m->dev, 0);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(vfpm_pm_autosuspend(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(m->suspends, 3);
	assert_int_equal(m->idle_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* A negative delay with use_autosuspend holds a reference and resumes. */
static void test_negative_delay_prevents_suspend(void **state)
{
	struct pm_model *m = model_new("dev", 0);

	vfpm_pm_enable(m->dev);
	vfpm_pm_use_autosuspend(m->dev, true);
	vfpm_pm_set_autosuspend_delay(m->dev, -1);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(m->resumes, 1);
	assert_int_equal(vfpm_pm_suspend(m->dev), -EAGAIN);
	vfpm_pm_set_autosuspend_delay(m->dev, -5); /* still negative */
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);

	/* Back to >= 0: the reference is dropped and the device may idle. */
	vfpm_pm_set_autosuspend_delay(m->dev, 0);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);

	/* use_autosuspend(false) also gives the reference back. */
	vfpm_pm_set_autosuspend_delay(m->dev, -1);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	vfpm_pm_use_autosuspend(m->dev, false);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);

	/* A negative delay does nothing until autosuspend is used. */
	vfpm_pm_set_autosuspend_delay(m->dev, -1);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	vfpm_pm_use_autosuspend(m->dev, true);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	vfpm_pm_use_autosuspend(m->dev, true); /* no second reference */
	assert_int_equal(vfpm_pm_usage_count(m->dev), 1);
	vfpm_pm_set_autosuspend_delay(m->dev, 50);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(m->resumes, 3);
	assert_int_equal(m->suspends, 3);
	assert_model_clean(m);
	model_free(m);
}

/* schedule_suspend(ms): a plain suspend after the delay, no idle check. */
static void test_schedule_suspend(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);
	int64_t start = now_ns();

	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, DELAY_MS), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED,
				     DELAY_MS + SOON_MS), 0);
	assert_true(suspend_ms_after(m, start) >= DELAY_MS - EARLY_SLACK_MS);
	assert_int_equal(m->idle_calls, 0);
	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, DELAY_MS), 1);
	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, 0), 1);

	/* 0: queued now. */
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	vfpm_pm_put_noidle(m->dev);
	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, 0), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(m->suspends, 2);
	assert_int_equal(m->idle_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* A resume (even of an ACTIVE device) cancels a scheduled suspend. */
static void test_resume_cancels_scheduled_suspend(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, 100), 0);
	assert_int_equal(vfpm_pm_resume(m->dev), 1);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, 500),
			 -ETIMEDOUT);
	assert_int_equal(m->suspend_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/* disable cancels the timers; enable does not bring them back. */
static void test_disable_cancels_timers(void **state)
{
	struct pm_model *m = model_new_active("dev", 0);

	assert_int_equal(vfpm_pm_schedule_suspend(m->dev, 100), 0);
	vfpm_pm_disable(m->dev);
	vfpm_pm_enable(m->dev);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, 400),
			 -ETIMEDOUT);
	model_free(m);

	m = autosuspend_model();
	vfpm_pm_get_noresume(m->dev); /* keep set_autosuspend_delay quiet */
	vfpm_pm_set_autosuspend_delay(m->dev, 100);
	vfpm_pm_mark_last_busy(m->dev);
	assert_int_equal(vfpm_pm_put_autosuspend(m->dev), 0);
	vfpm_pm_disable(m->dev);
	vfpm_pm_enable(m->dev);
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, 400),
			 -ETIMEDOUT);
	assert_int_equal(m->suspend_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		PM_TEST(test_put_autosuspend_waits_for_delay),
		PM_TEST(test_put_sync_autosuspend_waits_for_delay),
		PM_TEST(test_put_goes_through_delay),
		PM_TEST(test_mark_last_busy_postpones),
		PM_TEST(test_reference_during_delay_keeps_active),
		PM_TEST(test_autosuspend_helpers),
		PM_TEST(test_negative_delay_prevents_suspend),
		PM_TEST(test_schedule_suspend),
		PM_TEST(test_resume_cancels_scheduled_suspend),
		PM_TEST(test_disable_cancels_timers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
