// SPDX-License-Identifier: MIT
/*
 * The shared worker pool: a run queue of devices with pending requests and a
 * binary min-heap of armed timers, served by PM_WORKER_THREADS threads.  One
 * pool serves every device in the process, so 10,000 devices still mean two
 * threads.
 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#define PM_WORKER_THREADS 2

static struct {
	/* Serialises starting and stopping the pool; taken before `lock`. */
	pthread_mutex_t lifecycle;
	unsigned users;			/* lifecycle */
	pthread_t threads[PM_WORKER_THREADS];	/* lifecycle */
	int nthreads;			/* lifecycle; read by pm_worker_thread_count() under it */

	/* Protects everything below and every struct pm_work's queue/timer fields. */
	pthread_mutex_t lock;
	pthread_cond_t kick;		/* work queued, a nearer timer armed, or stop */
	pthread_cond_t done;		/* a work function returned */
	bool stop;
	struct pm_work *head, *tail;	/* run queue, FIFO */
	struct pm_work **heap;		/* timers, earliest first */
	size_t heap_len, heap_cap;
} pool = {
	.lifecycle = PTHREAD_MUTEX_INITIALIZER,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

uint64_t pm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- run queue (pool.lock held) ---- */

static void runq_append(struct pm_work *w)
{
	w->next = NULL;
	w->prev = pool.tail;
	if (pool.tail)
		pool.tail->next = w;
	else
		pool.head = w;
	pool.tail = w;
	w->queued = true;
}

static void runq_remove(struct pm_work *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		pool.head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		pool.tail = w->prev;
	w->prev = w->next = NULL;
	w->queued = false;
}

/* ---- timer heap (pool.lock held) ---- */

static void heap_set(size_t i, struct pm_work *w)
{
	pool.heap[i] = w;
	w->heap_index = i;
}

static void heap_sift_up(size_t i)
{
	struct pm_work *w = pool.heap[i];

	while (i > 0) {
		size_t up = (i - 1) / 2;

		if (pool.heap[up]->timer_at_ns <= w->timer_at_ns)
			break;
		heap_set(i, pool.heap[up]);
		i = up;
	}
	heap_set(i, w);
}

static void heap_sift_down(size_t i)
{
	struct pm_work *w = pool.heap[i];

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= pool.heap_len)
			break;
		if (child + 1 < pool.heap_len &&
		    pool.heap[child + 1]->timer_at_ns < pool.heap[child]->timer_at_ns)
			child++;
		if (w->timer_at_ns <= pool.heap[child]->timer_at_ns)
			break;
		heap_set(i, pool.heap[child]);
		i = child;
	}
	heap_set(i, w);
}

static void heap_remove(struct pm_work *w)
{
	size_t i = w->heap_index;
	struct pm_work *last = pool.heap[--pool.heap_len];

	w->heap_index = PM_WORK_NO_TIMER;
	if (last == w)
		return;
	heap_set(i, last);
	heap_sift_up(i);
	heap_sift_down(last->heap_index);
}

static bool heap_reserve(void)
{
	size_t cap;
	struct pm_work **grown;

	if (pool.heap_len < pool.heap_cap)
		return true;
	cap = pool.heap_cap ? pool.heap_cap * 2 : 64;
	grown = realloc(pool.heap, cap * sizeof(*grown));
	if (!grown)
		return false;
	pool.heap = grown;
	pool.heap_cap = cap;
	return true;
}

/* ---- public work API ---- */

void pm_work_init(struct pm_work *work, pm_work_fn fn)
{
	*work = (struct pm_work){ .fn = fn, .heap_index = PM_WORK_NO_TIMER };
}

static void queue_locked(struct pm_work *work)
{
	if (work->queued)
		return;
	if (work->running) {
		/* Run it again when the current run ends, never concurrently. */
		work->requeue = true;
		return;
	}
	runq_append(work);
	pthread_cond_signal(&pool.kick);
}

void pm_work_queue(struct pm_work *work)
{
	pthread_mutex_lock(&pool.lock);
	queue_locked(work);
	pthread_mutex_unlock(&pool.lock);
}

void pm_work_timer_arm(struct pm_work *work, uint64_t at_ns)
{
	pthread_mutex_lock(&pool.lock);
	if (work->heap_index != PM_WORK_NO_TIMER) {
		work->timer_at_ns = at_ns;
		heap_sift_up(work->heap_index);
		heap_sift_down(work->heap_index);
	} else if (heap_reserve()) {
		work->timer_at_ns = at_ns;
		pool.heap_len++;
		heap_set(pool.heap_len - 1, work);
		heap_sift_up(pool.heap_len - 1);
	} else {
		/*
		 * Out of memory for the heap: fire at once instead of never.
		 * The work function checks the expiry itself, as the kernel's
		 * timer function does, so an early run only re-arms the timer.
		 */
		work->timer_fired = true;
		queue_locked(work);
	}
	if (work->heap_index == 0)
		pthread_cond_signal(&pool.kick);
	pthread_mutex_unlock(&pool.lock);
}

void pm_work_timer_cancel(struct pm_work *work)
{
	pthread_mutex_lock(&pool.lock);
	if (work->heap_index != PM_WORK_NO_TIMER)
		heap_remove(work);
	pthread_mutex_unlock(&pool.lock);
}

void pm_work_cancel_sync(struct pm_work *work)
{
	pthread_mutex_lock(&pool.lock);
	if (work->queued)
		runq_remove(work);
	work->requeue = false;
	work->timer_fired = false;
	while (work->running)
		pthread_cond_wait(&pool.done, &pool.lock);
	pthread_mutex_unlock(&pool.lock);
}

/* ---- the threads ---- */

/* Move expired timers to the run queue; returns the next expiry, or 0 for none. */
static uint64_t fire_expired_timers(void)
{
	uint64_t now = pm_now_ns();

	while (pool.heap_len) {
		struct pm_work *w = pool.heap[0];

		if (w->timer_at_ns > now)
			return w->timer_at_ns;
		heap_remove(w);
		w->timer_fired = true;
		queue_locked(w);
	}
	return 0;
}

static void wait_for_kick(uint64_t next_timer_ns)
{
	struct timespec until;

	if (!next_timer_ns) {
		pthread_cond_wait(&pool.kick, &pool.lock);
		return;
	}
	until.tv_sec = (time_t)(next_timer_ns / 1000000000u);
	until.tv_nsec = (long)(next_timer_ns % 1000000000u);
	pthread_cond_timedwait(&pool.kick, &pool.lock, &until);
}

static void *worker_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&pool.lock);
	while (!pool.stop) {
		uint64_t next = fire_expired_timers();
		struct pm_work *w = pool.head;
		bool fired;

		if (!w) {
			wait_for_kick(next);
			continue;
		}
		runq_remove(w);
		w->running = true;
		fired = w->timer_fired;
		w->timer_fired = false;
		pthread_mutex_unlock(&pool.lock);

		w->fn(w, fired);

		pthread_mutex_lock(&pool.lock);
		w->running = false;
		if (w->requeue) {
			w->requeue = false;
			queue_locked(w);
		}
		pthread_cond_broadcast(&pool.done);
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

static int start_threads(void)
{
	pthread_condattr_t attr;
	int err;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pool.kick, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&pool.done, NULL);
	pool.stop = false;

	for (pool.nthreads = 0; pool.nthreads < PM_WORKER_THREADS; pool.nthreads++) {
		err = pthread_create(&pool.threads[pool.nthreads], NULL, worker_main, NULL);
		if (err)
			return -err;
	}
	return 0;
}

static void stop_threads(void)
{
	pthread_mutex_lock(&pool.lock);
	pool.stop = true;
	pthread_cond_broadcast(&pool.kick);
	pthread_mutex_unlock(&pool.lock);
	while (pool.nthreads > 0)
		pthread_join(pool.threads[--pool.nthreads], NULL);
	pthread_cond_destroy(&pool.kick);
	pthread_cond_destroy(&pool.done);
	free(pool.heap);
	pool.heap = NULL;
	pool.heap_len = pool.heap_cap = 0;
}

int pm_worker_get(void)
{
	int err = 0;

	pthread_mutex_lock(&pool.lifecycle);
	if (pool.users == 0) {
		err = start_threads();
		if (err)
			stop_threads();
	}
	if (!err)
		pool.users++;
	pthread_mutex_unlock(&pool.lifecycle);
	return err;
}

void pm_worker_put(void)
{
	pthread_mutex_lock(&pool.lifecycle);
	if (pool.users > 0 && --pool.users == 0)
		stop_threads();
	pthread_mutex_unlock(&pool.lifecycle);
}

int pm_worker_thread_count(void)
{
	int n;

	pthread_mutex_lock(&pool.lifecycle);
	n = pool.nthreads;
	pthread_mutex_unlock(&pool.lifecycle);
	return n;
}
