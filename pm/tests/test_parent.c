/* SPDX-License-Identifier: MIT */
/*
 * Parents and children, with the meaning of Linux 6.1: an ACTIVE child
 * counts in its parent's child_count and keeps it from suspending (unless
 * ignore_children); resuming a child resumes its parent first; a child
 * that suspends lets its parent idle.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>

#include "pm_test_util.h"

#define QUIET_MS 250

static void free_family(struct pm_model *parent, struct pm_model *c1,
			struct pm_model *c2)
{
	/* Children go first: a parent must have none left. */
	if (c1)
		assert_model_clean(c1);
	if (c2)
		assert_model_clean(c2);
	assert_model_clean(parent);
	model_free(c1);
	model_free(c2);
	model_free(parent);
}

/* A child that is ACTIVE (set by hand) and enabled, under an ACTIVE parent. */
static struct pm_model *active_child(struct pm_model *parent, const char *name)
{
	struct pm_model *c = model_new(name, 0);

	assert_int_equal(model_set_parent(c, parent), 0);
	assert_int_equal(model_set_active(c), 0);
	vfpm_pm_enable(c->dev);
	atomic_store(&c->check_family, true);
	return c;
}

/* set_parent only while the child's runtime PM is disabled. */
static void test_set_parent_needs_disabled_child(void **state)
{
	struct pm_model *p = model_new_active("parent", 0);
	struct pm_model *c = model_new_active("child", 0);

	assert_int_equal(vfpm_pm_set_parent(c->dev, p->dev), -EBUSY);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	vfpm_pm_disable(c->dev);
	assert_int_equal(vfpm_pm_set_parent(c->dev, NULL), 0);
	vfpm_pm_enable(c->dev);
	model_free(c);
	model_free(p);
}

/* An active child blocks the parent's suspend with -EBUSY. */
static void test_active_child_blocks_parent(void **state)
{
	struct pm_model *p = model_new_active("parent", 0);
	struct pm_model *c = active_child(p, "child");

	atomic_store(&p->check_family, true);
	assert_int_equal(vfpm_pm_child_count(p->dev), 1);
	assert_int_equal(vfpm_pm_suspend(p->dev), -EBUSY);
	assert_int_equal(vfpm_pm_idle(p->dev), -EBUSY);
	assert_int_equal(vfpm_pm_request_idle(p->dev), -EBUSY);
	assert_int_equal(vfpm_pm_schedule_suspend(p->dev, 100), -EBUSY);
	assert_int_equal(vfpm_pm_status(p->dev), VFPM_PM_ACTIVE);
	assert_int_equal(p->suspend_calls + p->idle_calls, 0);
	/* The usage count is checked before the children. */
	vfpm_pm_get_noresume(p->dev);
	assert_int_equal(vfpm_pm_suspend(p->dev), -EAGAIN);
	vfpm_pm_put_noidle(p->dev);

	/* Ignoring its children, the parent suspends under an active child. */
	atomic_store(&p->check_family, false);
	vfpm_pm_set_ignore_children(p->dev, true);
	assert_int_equal(vfpm_pm_suspend(p->dev), 0);
	assert_int_equal(vfpm_pm_status(p->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_status(c->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_child_count(p->dev), 1);
	atomic_store(&c->check_family, false);
	free_family(p, c, NULL);
}

/* Resuming a child resumes its parent first. */
static void test_child_resume_resumes_parent(void **state)
{
	struct pm_model *p = model_new_active("parent", 0);
	struct pm_model *c = model_new("child", 0);

	atomic_store(&p->check_family, true);
	atomic_store(&c->check_family, true);
	assert_int_equal(model_set_parent(c, p), 0);
	vfpm_pm_enable(c->dev);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	assert_int_equal(vfpm_pm_suspend(p->dev), 0);

	assert_int_equal(vfpm_pm_get_sync(c->dev), 0);
	assert_int_equal(vfpm_pm_status(c->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_status(p->dev), VFPM_PM_ACTIVE);
	assert_int_equal(p->resumes, 1);
	assert_int_equal(c->resumes, 1);
	assert_true(p->last_resume_seq < c->last_resume_seq);
	assert_int_equal(vfpm_pm_child_count(p->dev), 1);
	/* The reference the child took on its parent was given back. */
	assert_int_equal(vfpm_pm_usage_count(p->dev), 0);
	assert_true(model_access(c));
	assert_true(model_access(p));
	/* The parent's own idle check finds the active child. */
	vfpm_pm_barrier(p->dev);
	assert_int_equal(vfpm_pm_status(p->dev), VFPM_PM_ACTIVE);

	/* The child suspends, then its parent idles and suspends after it. */
	assert_int_equal(vfpm_pm_put_sync(c->dev), 0);
	assert_int_equal(vfpm_pm_status(c->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	assert_int_equal(wait_status(p->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(p->suspends, 2);
	assert_true(c->last_suspend_seq < p->last_suspend_seq);
	free_family(p, c, NULL);
}

/* A parent that cannot resume makes the child's resume fail (-EBUSY). */
static void test_parent_resume_failure(void **state)
{
	struct pm_model *p = model_new("parent", 0);
	struct pm_model *c = model_new("child", 0);

	vfpm_pm_enable(p->dev);
	assert_int_equal(model_set_parent(c, p), 0);
	vfpm_pm_enable(c->dev);
	atomic_store(&p->resume_ret, -EIO);
	assert_int_equal(vfpm_pm_get_sync(c->dev), -EBUSY);
	assert_int_equal(vfpm_pm_status(c->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_status(p->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(c->resume_calls, 0);
	assert_int_equal(vfpm_pm_runtime_error(p->dev), -EIO);
	assert_int_equal(vfpm_pm_runtime_error(c->dev), 0);
	assert_int_equal(vfpm_pm_usage_count(p->dev), 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	vfpm_pm_put_noidle(c->dev);
	free_family(p, c, NULL);
}

/* set_active on a child under an enabled, SUSPENDED parent: -EBUSY. */
static void test_set_active_under_suspended_parent(void **state)
{
	struct pm_model *p = model_new("parent", 0);
	struct pm_model *c = model_new("child", 0);

	vfpm_pm_enable(p->dev);
	assert_int_equal(model_set_parent(c, p), 0);
	assert_int_equal(model_set_active(c), -EBUSY);
	assert_int_equal(vfpm_pm_status(c->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	assert_int_equal(vfpm_pm_disable_depth(c->dev), 1);

	/* Allowed when the parent ignores its children ... */
	vfpm_pm_set_ignore_children(p->dev, true);
	assert_int_equal(model_set_active(c), 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 1);
	assert_int_equal(model_set_suspended(c), 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	vfpm_pm_set_ignore_children(p->dev, false);

	/* ... or has runtime PM disabled. */
	vfpm_pm_disable(p->dev);
	assert_int_equal(model_set_active(c), 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 1);
	assert_int_equal(model_set_suspended(c), 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	vfpm_pm_enable(p->dev);
	assert_int_equal(p->resume_calls + c->resume_calls, 0);
	free_family(p, c, NULL);
}

/* set_suspended on an active child lets the parent idle into suspend. */
static void test_set_suspended_child_idles_parent(void **state)
{
	struct pm_model *p = model_new_active("parent", 0);
	struct pm_model *c = active_child(p, "child");

	assert_int_equal(vfpm_pm_child_count(p->dev), 1);
	vfpm_pm_disable(c->dev);
	assert_int_equal(model_set_suspended(c), 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	assert_int_equal(wait_status(p->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(p->suspends, 1);
	free_family(p, c, NULL);
}

/*
 * ignore_children: a child's resume does not resume the parent, and a
 * child's suspend does not idle it (Linux 6.1 rpm_resume / rpm_suspend).
 */
static void test_ignore_children_decouples(void **state)
{
	struct pm_model *p = model_new_active("parent", 0);
	struct pm_model *c = model_new("child", 0);

	vfpm_pm_set_ignore_children(p->dev, true);
	assert_int_equal(model_set_parent(c, p), 0);
	vfpm_pm_enable(c->dev);
	assert_int_equal(vfpm_pm_suspend(p->dev), 0);

	assert_int_equal(vfpm_pm_get_sync(c->dev), 0);
	assert_int_equal(vfpm_pm_status(c->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_status(p->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(p->resume_calls, 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 1);
	assert_int_equal(vfpm_pm_usage_count(p->dev), 0);
	assert_int_equal(vfpm_pm_put_sync(c->dev), 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);

	/* An ACTIVE parent is not idled by its child's suspend either. */
	vfpm_pm_forbid(p->dev);
	assert_int_equal(vfpm_pm_status(p->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_get_sync(c->dev), 0);
	vfpm_pm_get_noresume(p->dev);
	vfpm_pm_allow(p->dev);		/* usage 2 -> 1: no idle check */
	vfpm_pm_put_noidle(p->dev);	/* usage 0, still no idle check */
	assert_int_equal(vfpm_pm_usage_count(p->dev), 0);
	assert_int_equal(vfpm_pm_put_sync(c->dev), 0);
	assert_int_equal(vfpm_pm_status(c->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(wait_status(p->dev, VFPM_PM_SUSPENDED, QUIET_MS),
			 -ETIMEDOUT);
	assert_int_equal(p->idle_calls, 0);
	free_family(p, c, NULL);
}

/* A disabled parent is left alone: the child resumes without it. */
static void test_disabled_parent_not_resumed(void **state)
{
	struct pm_model *p = model_new("parent", 0);
	struct pm_model *c = model_new("child", 0);

	assert_int_equal(model_set_parent(c, p), 0);
	vfpm_pm_enable(c->dev);
	assert_int_equal(vfpm_pm_get_sync(c->dev), 0);
	assert_int_equal(vfpm_pm_status(c->dev), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_status(p->dev), VFPM_PM_SUSPENDED);
	assert_int_equal(p->resume_calls, 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 1);
	assert_int_equal(vfpm_pm_usage_count(p->dev), 0);
	assert_int_equal(vfpm_pm_put_sync(c->dev), 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	free_family(p, c, NULL);
}

/* With two children, the parent suspends only when both have. */
static void test_two_children(void **state)
{
	struct pm_model *p = model_new_active("parent", 0);
	struct pm_model *c1 = active_child(p, "child1");
	struct pm_model *c2 = active_child(p, "child2");

	atomic_store(&p->check_family, true);
	assert_int_equal(vfpm_pm_child_count(p->dev), 2);
	assert_int_equal(vfpm_pm_suspend(c1->dev), 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 1);
	/* The parent was told to idle, but child2 is still active. */
	vfpm_pm_barrier(p->dev);
	assert_int_equal(wait_status(p->dev, VFPM_PM_SUSPENDED, QUIET_MS),
			 -ETIMEDOUT);
	assert_int_equal(vfpm_pm_suspend(p->dev), -EBUSY);
	assert_int_equal(vfpm_pm_suspend(c2->dev), 0);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	assert_int_equal(wait_status(p->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);

	/* Resuming one child resumes the parent once. */
	assert_int_equal(vfpm_pm_resume_and_get(c2->dev), 0);
	assert_int_equal(vfpm_pm_resume_and_get(c1->dev), 0);
	assert_int_equal(p->resumes, 1);
	assert_int_equal(vfpm_pm_child_count(p->dev), 2);
	assert_true(model_access(c1));
	assert_true(model_access(c2));
	assert_int_equal(vfpm_pm_put(c1->dev), 0);
	assert_int_equal(vfpm_pm_put(c2->dev), 0);
	assert_int_equal(wait_status(c1->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(wait_status(c2->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(wait_status(p->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	assert_int_equal(p->suspends, 2);
	assert_true(p->last_suspend_seq > c1->last_suspend_seq);
	assert_true(p->last_suspend_seq > c2->last_suspend_seq);
	free_family(p, c1, c2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		PM_TEST(test_set_parent_needs_disabled_child),
		PM_TEST(test_active_child_blocks_parent),
		PM_TEST(test_child_resume_resumes_parent),
		PM_TEST(test_parent_resume_failure),
		PM_TEST(test_set_active_under_suspended_parent),
		PM_TEST(test_set_suspended_child_idles_parent),
		PM_TEST(test_ignore_children_decouples),
		PM_TEST(test_disabled_parent_not_resumed),
		PM_TEST(test_two_children),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
