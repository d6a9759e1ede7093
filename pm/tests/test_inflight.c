/* SPDX-License-Identifier: MIT */
/*
 * Requests that meet a transition in progress, with the meaning of Linux
 * 6.1's rpm_suspend / rpm_resume: synchronous callers wait for it, a
 * resume requested during a suspend is carried out right after it
 * (deferred resume, the suspend then reports -EAGAIN), asynchronous
 * requests during a resume answer -EINPROGRESS.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>

#include "pm_test_util.h"

#define SLOW_US 200000

enum op { OP_SUSPEND, OP_GET_SYNC };

/* One helper call on another thread. */
struct call {
	pthread_t thread;
	struct pm_model *m;
	enum op op;
	int ret;
};

static void *call_thread(void *arg)
{
	struct call *c = arg;

	switch (c->op) {
	case OP_SUSPEND:
		c->ret = vfpm_pm_suspend(c->m->dev);
		break;
	case OP_GET_SYNC:
		c->ret = vfpm_pm_get_sync(c->m->dev);
		break;
	}
	return NULL;
}

static void start_call(struct call *c, struct pm_model *m, enum op op)
{
	*c = (struct call){ .m = m, .op = op };
	assert_int_equal(pthread_create(&c->thread, NULL, call_thread, c), 0);
}

static int finish_call(struct call *c)
{
	pthread_join(c->thread, NULL);
	return c->ret;
}

/* A slow suspend running on another thread, caught in the act. */
static struct pm_model *suspending_model(struct call *c)
{
	struct pm_model *m = model_new_active("dev", 0);

	atomic_store(&m->suspend_delay_us, SLOW_US);
	start_call(c, m, OP_SUSPEND);
	assert_int_equal(model_wait_entered(m, MODEL_CB_SUSPEND, SOON_MS), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDING);
	return m;
}

/* get_sync during a suspend waits for it, then resumes. */
static void test_get_sync_waits_for_suspend(void **state)
{
	struct call c;
	struct pm_model *m = suspending_model(&c);

	assert_int_equal(vfpm_pm_get_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_ACTIVE);
	assert_true(model_access(m));
	assert_int_equal(finish_call(&c), 0);
	assert_int_equal(m->suspends, 1);
	assert_int_equal(m->resumes, 1);
	assert_true(m->last_suspend_seq < m->last_resume_seq);
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_model_clean(m);
	model_free(m);
}

/* A second synchronous suspend waits, then finds it suspended: 1. */
static void test_suspend_waits_for_suspend(void **state)
{
	struct call c;
	struct pm_model *m = suspending_model(&c);

	/* An idle check cannot start while SUSPENDING. */
	assert_int_equal(vfpm_pm_request_idle(m->dev), -EAGAIN);
	assert_int_equal(vfpm_pm_suspend(m->dev), 1);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(finish_call(&c), 0);
	assert_int_equal(m->suspend_calls, 1);
	assert_int_equal(m->idle_calls, 0);
	assert_model_clean(m);
	model_free(m);
}

/*
 * request_resume during a suspend: the resume is deferred until the
 * suspend callback is done, then carried out; the suspend says -EAGAIN.
 */
static void test_deferred_resume(void **state)
{
	struct call c;
	struct pm_model *m = suspending_model(&c);

	vfpm_pm_get_noresume(m->dev); /* keep it active afterwards */
	assert_int_equal(vfpm_pm_request_resume(m->dev), 0);
	assert_int_equal(finish_call(&c), -EAGAIN);
	assert_int_equal(model_wait_count(m, &m->resumes, 1, SOON_MS), 0);
	assert_int_equal(wait_status(m->dev, VFPM_PM_ACTIVE, SOON_MS), 0);
	assert_int_equal(m->suspends, 1);
	assert_true(m->last_suspend_seq < m->last_resume_seq);
	assert_true(model_access(m));
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_model_clean(m);
	model_free(m);
}

/* Two get_sync at once: one resume; one caller says 0, the other 1. */
static void test_concurrent_get_sync_resume_once(void **state)
{
	struct pm_model *m = model_new("dev", 0);
	struct call c;
	int mine, theirs;

	vfpm_pm_enable(m->dev);
	atomic_store(&m->resume_delay_us, SLOW_US);
	start_call(&c, m, OP_GET_SYNC);
	assert_int_equal(model_wait_entered(m, MODEL_CB_RESUME, SOON_MS), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_RESUMING);

	/* Asynchronous requests during a resume: -EINPROGRESS. */
	assert_int_equal(vfpm_pm_request_resume(m->dev), -EINPROGRESS);
	assert_int_equal(vfpm_pm_get(m->dev), -EINPROGRESS);
	vfpm_pm_put_noidle(m->dev);
	/* A suspend is refused (the resuming caller holds a reference). */
	assert_int_equal(vfpm_pm_suspend(m->dev), -EAGAIN);

	mine = vfpm_pm_get_sync(m->dev);
	assert_true(model_access(m));
	theirs = finish_call(&c);
	assert_int_equal(mine, 1);
	assert_int_equal(theirs, 0);
	assert_int_equal(m->resume_calls, 1);
	assert_int_equal(vfpm_pm_usage_count(m->dev), 2);
	assert_int_equal(vfpm_pm_put(m->dev), 0);
	assert_int_equal(vfpm_pm_put_sync(m->dev), 0);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_model_clean(m);
	model_free(m);
}

/* disable during a suspend waits for it to finish. */
static void test_disable_waits_for_transition(void **state)
{
	struct call c;
	struct pm_model *m = suspending_model(&c);

	vfpm_pm_disable(m->dev);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(m->in_callback, MODEL_CB_NONE);
	assert_int_equal(finish_call(&c), 0);
	vfpm_pm_enable(m->dev);
	assert_model_clean(m);
	model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		PM_TEST(test_get_sync_waits_for_suspend),
		PM_TEST(test_suspend_waits_for_suspend),
		PM_TEST(test_deferred_resume),
		PM_TEST(test_concurrent_get_sync_resume_once),
		PM_TEST(test_disable_waits_for_transition),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
