/* SPDX-License-Identifier: MIT */
/*
 * Stress: reference holders (resume_and_get -> access -> put) race against
 * a thread that forces transitions.  The model device checks from inside
 * its callbacks that no access happens while it is powered down and that
 * callbacks never overlap; at the end the counts must balance and the
 * device must idle into SUSPENDED.  Also runs under ThreadSanitizer
 * (make tsan): only C11 atomics and pthreads here.
 *
 * Loops are bounded by an iteration count, with a deadline as a safety net.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pm_test_util.h"

#define USERS 4
#define USER_ITERS 8000
#define DEADLINE_MS 60000
#define CALLBACK_US 50
/* Autosuspend on; the chaos thread switches the delay between 0 and 1 ms. */
#define AUTOSUSPEND_MS 0
#define CHAOS_GAP_US 100

struct stress {
	struct pm_model *targets[2];	/* users pick by their index */
	int nr_targets;
	struct pm_model *chaos[3];	/* devices the chaos thread drives */
	int nr_chaos;
	bool chaos_may_disable[3];
	int user_gap_us;		/* longest pause between iterations */
	int64_t deadline_ns;
	atomic_int users_running;
	atomic_long iterations;
	atomic_long accesses_ok;
	atomic_long refused;		/* resume_and_get refused (-EACCES) */
	atomic_long chaos_ops;
	atomic_int unexpected;
	atomic_int first_unexpected;	/* the return value */
	atomic_int first_unexpected_site;
};

struct user {
	struct stress *s;
	int id;
};

enum site {
	SITE_RESUME_AND_GET = 1,
	SITE_PUT,
	SITE_CHAOS,
};

static void unexpected(struct stress *s, enum site site, int ret)
{
	if (atomic_fetch_add(&s->unexpected, 1) == 0) {
		atomic_store(&s->first_unexpected, ret);
		atomic_store(&s->first_unexpected_site, (int)site);
	}
	fprintf(stderr, "unexpected return %d at site %d\n", ret, (int)site);
}

static bool past_deadline(const struct stress *s)
{
	return now_ns() > s->deadline_ns;
}

/*
 * What dropping the last reference may answer under contention: the idle
 * check or suspend it starts can find the device busy, disabled, being
 * suspended, or already suspended by another thread (1).
 */
static bool put_result_ok(int ret)
{
	return ret == 0 || ret == 1 || ret == -EAGAIN || ret == -EBUSY ||
	       ret == -EACCES || ret == -EINPROGRESS;
}

static uint32_t next_random(uint32_t *state)
{
	uint32_t x = *state;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

static void *user_thread(void *arg)
{
	struct user *u = arg;
	struct stress *s = u->s;
	struct pm_model *m = s->targets[u->id % s->nr_targets];
	uint32_t rnd = 0x9e3779b9u * (uint32_t)(u->id + 1);

	for (int i = 0, attempts = 0; i < USER_ITERS &&
	     attempts < 10 * USER_ITERS && !past_deadline(s); attempts++) {
		int ret = vfpm_pm_resume_and_get(m->dev);

		if (ret < 0) {
			/* Only a device disabled while SUSPENDED refuses. */
			if (ret != -EACCES)
				unexpected(s, SITE_RESUME_AND_GET, ret);
			atomic_fetch_add(&s->refused, 1);
			sleep_us(20); /* let the chaos thread enable it again */
			continue;
		}
		i++;
		if (ret != 0)
			unexpected(s, SITE_RESUME_AND_GET, ret);
		if (model_access(m))
			atomic_fetch_add(&s->accesses_ok, 1);

		switch ((i + u->id) % 3) {
		case 0:
			ret = vfpm_pm_put(m->dev);
			break;
		case 1:
			ret = vfpm_pm_put_sync(m->dev);
			break;
		default:
			vfpm_pm_mark_last_busy(m->dev);
			ret = vfpm_pm_put_autosuspend(m->dev);
			break;
		}
		if (!put_result_ok(ret))
			unexpected(s, SITE_PUT, ret);
		atomic_fetch_add(&s->iterations, 1);
		/* Gaps let the device idle, so that gets race with suspends. */
		if (next_random(&rnd) % 2)
			sleep_us((int)(next_random(&rnd) %
				       (uint32_t)s->user_gap_us));
	}
	atomic_fetch_sub(&s->users_running, 1);
	return NULL;
}

static void tiny_pause(uint32_t *rnd)
{
	int spins = (int)(next_random(rnd) % 2000);

	for (volatile int i = 0; i < spins; i++)
		;
}

/* Returns the helper's answer when it is one to check, else 0. */
static int chaos_step(struct stress *s, int which, uint32_t *rnd)
{
	struct vfpm_pm_dev *dev = s->chaos[which]->dev;
	int op = (int)(next_random(rnd) % 13);
	int ret = 0;

	switch (op) {
	case 0:
		ret = vfpm_pm_suspend(dev);
		break;
	case 1:
		ret = vfpm_pm_resume(dev);
		break;
	case 2:
		ret = vfpm_pm_request_idle(dev);
		break;
	case 3:
		ret = vfpm_pm_request_resume(dev);
		break;
	case 4:
		vfpm_pm_forbid(dev);
		tiny_pause(rnd);
		vfpm_pm_allow(dev);
		break;
	case 5:
		ret = vfpm_pm_schedule_suspend(dev, next_random(rnd) % 2);
		break;
	case 6:
		ret = vfpm_pm_idle(dev);
		break;
	case 7:
		ret = vfpm_pm_autosuspend(dev);
		break;
	case 8:
		ret = vfpm_pm_request_autosuspend(dev);
		break;
	case 9:
		/* Hold off suspend for a moment, then 0 or 1 ms of delay. */
		vfpm_pm_set_autosuspend_delay(dev, -1);
		tiny_pause(rnd);
		vfpm_pm_set_autosuspend_delay(dev, (int)(next_random(rnd) % 2));
		break;
	case 10:
		if (s->chaos_may_disable[which]) {
			vfpm_pm_disable(dev);
			tiny_pause(rnd);
			vfpm_pm_enable(dev);
		}
		break;
	case 11:
		vfpm_pm_barrier(dev);
		break;
	default:
		/* get takes its reference whatever it answers. */
		ret = vfpm_pm_get(dev);
		if (ret == -EINVAL || ret > 1)
			unexpected(s, SITE_CHAOS, ret);
		tiny_pause(rnd);
		ret = vfpm_pm_put(dev);
		break;
	}
	/* Nothing fails in these callbacks: no runtime error, no underflow. */
	if (ret == -EINVAL || ret > 1 || ret < -4095)
		unexpected(s, SITE_CHAOS, ret);
	return ret;
}

static void *chaos_thread(void *arg)
{
	struct stress *s = arg;
	uint32_t rnd = 0x2545f491;

	while (atomic_load(&s->users_running) > 0 && !past_deadline(s)) {
		int which = (int)(next_random(&rnd) % (uint32_t)s->nr_chaos);

		chaos_step(s, which, &rnd);
		atomic_fetch_add(&s->chaos_ops, 1);
		sleep_us((int)(next_random(&rnd) % CHAOS_GAP_US));
	}
	return NULL;
}

static struct pm_model *stress_model(const char *name)
{
	struct pm_model *m = model_new(name, 0);

	atomic_store(&m->suspend_delay_us, CALLBACK_US);
	atomic_store(&m->resume_delay_us, CALLBACK_US);
	vfpm_pm_set_autosuspend_delay(m->dev, AUTOSUSPEND_MS);
	vfpm_pm_use_autosuspend(m->dev, true);
	return m;
}

static void run_stress(struct stress *s)
{
	pthread_t users[USERS], chaos;
	struct user u[USERS];
	int64_t start = now_ns();

	s->deadline_ns = start + (int64_t)DEADLINE_MS * 1000000;
	atomic_store(&s->users_running, USERS);
	for (int i = 0; i < USERS; i++) {
		u[i] = (struct user){ .s = s, .id = i };
		assert_int_equal(pthread_create(&users[i], NULL, user_thread,
						&u[i]), 0);
	}
	assert_int_equal(pthread_create(&chaos, NULL, chaos_thread, s), 0);
	for (int i = 0; i < USERS; i++)
		pthread_join(users[i], NULL);
	pthread_join(chaos, NULL);

	fprintf(stderr, "stress: %ld iterations, %ld accesses, %ld refused, "
		"%ld chaos ops in %lld ms%s\n",
		atomic_load(&s->iterations), atomic_load(&s->accesses_ok),
		atomic_load(&s->refused), atomic_load(&s->chaos_ops),
		(long long)ms_since(start),
		past_deadline(s) ? " (deadline reached)" : "");
	if (atomic_load(&s->unexpected))
		fprintf(stderr, "first unexpected: %d at site %d\n",
			atomic_load(&s->first_unexpected),
			atomic_load(&s->first_unexpected_site));
	assert_int_equal(atomic_load(&s->unexpected), 0);
	assert_true(atomic_load(&s->iterations) > 0);
}

/* After the storm: counts balance, nothing is held, the device idles. */
static void check_settles(struct pm_model *m)
{
	assert_int_equal(vfpm_pm_usage_count(m->dev), 0);
	assert_int_equal(vfpm_pm_runtime_error(m->dev), 0);
	assert_true(vfpm_pm_runtime_auto(m->dev));
	assert_true(vfpm_pm_is_enabled(m->dev));
	/*
	 * A resume of an ACTIVE device may legitimately have cancelled the
	 * last idle request; one more reference cycle queues a fresh one.
	 */
	assert_int_equal(vfpm_pm_resume_and_get(m->dev), 0);
	assert_true(model_access(m));
	assert_int_equal(vfpm_pm_put(m->dev), 0);
}

static void check_suspended_and_balanced(struct pm_model *m)
{
	assert_int_equal(wait_status(m->dev, VFPM_PM_SUSPENDED, SOON_MS), 0);
	vfpm_pm_barrier(m->dev);
	assert_int_equal(vfpm_pm_status(m->dev), VFPM_PM_SUSPENDED);
	assert_true(atomic_load(&m->suspended));
	assert_int_equal(atomic_load(&m->in_callback), MODEL_CB_NONE);
	/* Started ACTIVE, ended SUSPENDED: exactly one more suspend. */
	fprintf(stderr, "%s: %d suspends, %d resumes, %d idles\n", m->name,
		atomic_load(&m->suspends), atomic_load(&m->resumes),
		atomic_load(&m->idle_calls));
	assert_int_equal(atomic_load(&m->suspends),
			 atomic_load(&m->resumes) + 1);
	assert_int_equal(atomic_load(&m->suspend_calls),
			 atomic_load(&m->suspends));
	assert_int_equal(atomic_load(&m->resume_calls),
			 atomic_load(&m->resumes));
	assert_model_clean(m);
}

static void test_stress_one_device(void **state)
{
	struct stress s = { 0 };
	struct pm_model *m = stress_model("dev");

	assert_int_equal(model_set_active(m), 0);
	vfpm_pm_enable(m->dev);
	s.targets[0] = m;
	s.nr_targets = 1;
	s.chaos[0] = m;
	s.chaos_may_disable[0] = true;
	s.nr_chaos = 1;
	s.user_gap_us = 150;

	run_stress(&s);
	assert_model_clean(m);
	assert_true(atomic_load(&m->suspends) > 0);
	check_settles(m);
	check_suspended_and_balanced(m);
	model_free(m);
}

static void test_stress_parent_two_children(void **state)
{
	struct stress s = { 0 };
	struct pm_model *p = stress_model("parent");
	struct pm_model *c1 = stress_model("child1");
	struct pm_model *c2 = stress_model("child2");
	struct pm_model *kids[2] = { c1, c2 };

	assert_int_equal(model_set_active(p), 0);
	vfpm_pm_enable(p->dev);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(model_set_parent(kids[i], p), 0);
		assert_int_equal(model_set_active(kids[i]), 0);
		vfpm_pm_enable(kids[i]->dev);
		atomic_store(&kids[i]->check_family, true);
	}
	atomic_store(&p->check_family, true);
	assert_int_equal(vfpm_pm_child_count(p->dev), 2);

	s.targets[0] = c1;
	s.targets[1] = c2;
	s.nr_targets = 2;
	s.chaos[0] = p;
	s.chaos[1] = c1;
	s.chaos[2] = c2;
	/* Disabling the parent would legitimately let children run alone. */
	s.chaos_may_disable[1] = true;
	s.chaos_may_disable[2] = true;
	s.nr_chaos = 3;
	/* Longer pauses, so that both children are idle at once more often. */
	s.user_gap_us = 400;

	run_stress(&s);
	for (int i = 0; i < 2; i++) {
		assert_model_clean(kids[i]);
		check_settles(kids[i]);
	}
	for (int i = 0; i < 2; i++)
		check_suspended_and_balanced(kids[i]);
	assert_int_equal(vfpm_pm_child_count(p->dev), 0);
	check_settles(p);
	check_suspended_and_balanced(p);
	assert_true(atomic_load(&p->suspends) > 1);

	model_free(c1);
	model_free(c2);
	model_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		PM_TEST(test_stress_one_device),
		PM_TEST(test_stress_parent_two_children),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
