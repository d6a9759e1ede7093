// SPDX-License-Identifier: MIT
/*
 * The shared worker pool: a run queue of devices with pending requests and a
 * binary min-heap of armed timers, served by PM_WORKER_THREADS threads.  One
 * pool serves every device in the process, so 10,000 devices still mean two
 * threads.
 *
 * In the caller-driven mode no thread is started: the same queue and heap are
 * served by whoever calls pm_worker_process(), and an epoll fd tells the
 * caller's own loop when to call it.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

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
	size_t runq_len;
	struct pm_work **heap;		/* timers, earliest first */
	size_t heap_len, heap_cap;

	/*
	 * The caller-driven mode and its fds: changed only with no users,
	 * under both `lifecycle` and `lock`, so either lock is enough to read
	 * them.  The epoll fd holds the eventfd (written for every queued
	 * work) and the timerfd (armed at the earliest timer of the heap).
	 */
	bool external;
	int epoll_fd, kick_fd, timer_fd;
} pool = {
	.lifecycle = PTHREAD_MUTEX_INITIALIZER,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.epoll_fd = -1,
	.kick_fd = -1,
	.timer_fd = -1,
};

/*
 * The work whose function this thread is running, if any.  A thread runs at
 * most one at a time (a nested pm_worker_process() runs nothing), so this is
 * all pm_work_cancel_sync() needs to tell "running here" from "running on
 * another thread", which it must wait for.
 */
static _Thread_local struct pm_work *current_work;

static pthread_once_t pool_conds_once = PTHREAD_ONCE_INIT;

/* Once per process: the caller-driven mode needs `done` with no thread started. */
static void pool_init_conds(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pool.kick, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&pool.done, NULL);
}

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
	pool.runq_len++;
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
	pool.runq_len--;
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

/* ---- waking whoever serves the pool (pool.lock held) ---- */

/* Work was queued. */
static void pool_kick(void)
{
	uint64_t one = 1;
	ssize_t written;

	if (!pool.external) {
		pthread_cond_signal(&pool.kick);
		return;
	}
	/* Can fail only with EAGAIN, the counter saturated: readable anyway. */
	written = write(pool.kick_fd, &one, sizeof(one));
	(void)written;
}

static uint64_t heap_first_expiry(void)
{
	return pool.heap_len ? pool.heap[0]->timer_at_ns : 0;
}

/* Arm the timerfd at the earliest timer, or disarm it if there is none. */
static void pool_timer_fd_follow_heap(void)
{
	uint64_t at = heap_first_expiry();
	struct itimerspec its = { 0 };

	if (at) {
		/* An all-zero it_value would disarm; a past time fires at once. */
		its.it_value.tv_sec = (time_t)(at / 1000000000u);
		its.it_value.tv_nsec = (long)(at % 1000000000u);
	}
	timerfd_settime(pool.timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Caller-driven mode: the earliest expiry may have moved from `before`. */
static void pool_timer_fd_update(uint64_t before)
{
	if (heap_first_expiry() != before)
		pool_timer_fd_follow_heap();
}

/* Clear an eventfd's or timerfd's readiness (both are non-blocking). */
static void drain_fd(int fd)
{
	uint64_t count;

	while (read(fd, &count, sizeof(count)) > 0)
		;
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
	pool_kick();
}

void pm_work_queue(struct pm_work *work)
{
	pthread_mutex_lock(&pool.lock);
	queue_locked(work);
	pthread_mutex_unlock(&pool.lock);
}

void pm_work_timer_arm(struct pm_work *work, uint64_t at_ns)
{
	uint64_t first;

	pthread_mutex_lock(&pool.lock);
	first = heap_first_expiry();
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
	if (pool.external)
		pool_timer_fd_update(first);
	else if (work->heap_index == 0)
		pthread_cond_signal(&pool.kick);
	pthread_mutex_unlock(&pool.lock);
}

void pm_work_timer_cancel(struct pm_work *work)
{
	uint64_t first;

	pthread_mutex_lock(&pool.lock);
	first = heap_first_expiry();
	if (work->heap_index != PM_WORK_NO_TIMER)
		heap_remove(work);
	/* A worker thread merely wakes early; the timerfd is worth keeping exact. */
	if (pool.external)
		pool_timer_fd_update(first);
	pthread_mutex_unlock(&pool.lock);
}

void pm_work_cancel_sync(struct pm_work *work)
{
	pthread_mutex_lock(&pool.lock);
	if (work->queued)
		runq_remove(work);
	work->requeue = false;
	work->timer_fired = false;
	/*
	 * A function running on this very thread (we were called from it, or
	 * from a callback it made) ends only after we return: waiting for it
	 * would wait for ourselves.  It has nothing queued any more.
	 */
	while (work->running && current_work != work)
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

/* Take the first queued work and run it, pool.lock dropped meanwhile. */
static void run_first_work(void)
{
	struct pm_work *w = pool.head;
	bool fired;

	runq_remove(w);
	w->running = true;
	fired = w->timer_fired;
	w->timer_fired = false;
	current_work = w;
	pthread_mutex_unlock(&pool.lock);

	w->fn(w, fired);

	pthread_mutex_lock(&pool.lock);
	current_work = NULL;
	w->running = false;
	if (w->requeue) {
		w->requeue = false;
		queue_locked(w);
	}
	pthread_cond_broadcast(&pool.done);
}

static void *worker_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&pool.lock);
	while (!pool.stop) {
		uint64_t next = fire_expired_timers();

		if (!pool.head) {
			wait_for_kick(next);
			continue;
		}
		run_first_work();
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

static int pool_start(void)
{
	int err;

	pthread_once(&pool_conds_once, pool_init_conds);
	pool.stop = false;
	if (pool.external)
		return 0;

	for (pool.nthreads = 0; pool.nthreads < PM_WORKER_THREADS; pool.nthreads++) {
		err = pthread_create(&pool.threads[pool.nthreads], NULL, worker_main, NULL);
		if (err)
			return -err;
		/* Named before anyone looks: a program (and the tests) tells them from its own. */
		pthread_setname_np(pool.threads[pool.nthreads], "vfpm-pm");
	}
	return 0;
}

static void pool_stop(void)
{
	pthread_mutex_lock(&pool.lock);
	pool.stop = true;
	pthread_cond_broadcast(&pool.kick);
	pthread_mutex_unlock(&pool.lock);
	while (pool.nthreads > 0)
		pthread_join(pool.threads[--pool.nthreads], NULL);
	/* Under the lock: a caller-driven pm_worker_process() may be looking. */
	pthread_mutex_lock(&pool.lock);
	free(pool.heap);
	pool.heap = NULL;
	pool.heap_len = pool.heap_cap = 0;
	if (pool.external) {
		/* Nothing is left to do: leave the fd quiet for the next user. */
		drain_fd(pool.kick_fd);
		pool_timer_fd_follow_heap();
	}
	pthread_mutex_unlock(&pool.lock);
}

int pm_worker_get(void)
{
	int err = 0;

	pthread_mutex_lock(&pool.lifecycle);
	if (pool.users == 0) {
		err = pool_start();
		if (err)
			pool_stop();
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
		pool_stop();
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

/* ---- the caller-driven mode ---- */

static void close_fds(int epoll_fd, int kick_fd, int timer_fd)
{
	if (epoll_fd >= 0)
		close(epoll_fd);
	if (kick_fd >= 0)
		close(kick_fd);
	if (timer_fd >= 0)
		close(timer_fd);
}

/* The epoll fd the caller waits on, holding the kick eventfd and the timerfd. */
static int open_fds(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int epoll_fd, kick_fd, timer_fd, err = 0;

	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (epoll_fd < 0 || kick_fd < 0 || timer_fd < 0)
		err = -errno;
	/* Nobody reads it, but a caller may well set every fd it polls non-blocking. */
	if (!err && fcntl(epoll_fd, F_SETFL, O_NONBLOCK) < 0)
		err = -errno;
	ev.data.fd = kick_fd;
	if (!err && epoll_ctl(epoll_fd, EPOLL_CTL_ADD, kick_fd, &ev) < 0)
		err = -errno;
	ev.data.fd = timer_fd;
	if (!err && epoll_ctl(epoll_fd, EPOLL_CTL_ADD, timer_fd, &ev) < 0)
		err = -errno;
	if (err) {
		close_fds(epoll_fd, kick_fd, timer_fd);
		return err;
	}
	pthread_mutex_lock(&pool.lock);
	pool.epoll_fd = epoll_fd;
	pool.kick_fd = kick_fd;
	pool.timer_fd = timer_fd;
	pool.external = true;
	pthread_mutex_unlock(&pool.lock);
	return 0;
}

int pm_worker_set_external(bool external)
{
	int epoll_fd, kick_fd, timer_fd, err = 0;

	pthread_mutex_lock(&pool.lifecycle);
	/* Devices' works and timers live in the mode they were created in. */
	if (pool.users) {
		err = -EBUSY;
	} else if (external && !pool.external) {
		err = open_fds();
	} else if (!external && pool.external) {
		pthread_mutex_lock(&pool.lock);
		epoll_fd = pool.epoll_fd;
		kick_fd = pool.kick_fd;
		timer_fd = pool.timer_fd;
		pool.epoll_fd = pool.kick_fd = pool.timer_fd = -1;
		pool.external = false;
		pthread_mutex_unlock(&pool.lock);
		close_fds(epoll_fd, kick_fd, timer_fd);
	}
	pthread_mutex_unlock(&pool.lifecycle);
	return err;
}

int pm_worker_fd(void)
{
	int fd;

	pthread_mutex_lock(&pool.lock);
	fd = pool.external ? pool.epoll_fd : -EINVAL;
	pthread_mutex_unlock(&pool.lock);
	return fd;
}

bool pm_worker_caller_driven(void)
{
	bool external;

	pthread_mutex_lock(&pool.lock);
	external = pool.external;
	pthread_mutex_unlock(&pool.lock);
	return external && !current_work;
}

int pm_worker_process(void)
{
	size_t budget;
	int ran = 0;

	pthread_mutex_lock(&pool.lock);
	if (!pool.external) {
		pthread_mutex_unlock(&pool.lock);
		return -EINVAL;
	}
	/*
	 * Called from a work function (a PM callback calling back in): the
	 * works we would run could wait for the transition in progress below
	 * us on this same stack.  The outer call goes on with them instead.
	 */
	if (current_work) {
		pthread_mutex_unlock(&pool.lock);
		return 0;
	}
	/* Consume the readiness first: a kick from now on makes the fd readable again. */
	drain_fd(pool.kick_fd);
	drain_fd(pool.timer_fd);
	fire_expired_timers();
	/*
	 * What is due now, and no more: a work queued while we run (the idle
	 * check a resume queues, a work that requeues itself) waits for the
	 * next call, so the caller's loop gets to serve its other fds.
	 */
	for (budget = pool.runq_len; budget > 0 && pool.head; budget--, ran++)
		run_first_work();
	if (pool.head)
		pool_kick();
	else
		drain_fd(pool.kick_fd);	/* kicks for works this call ran after all */
	pool_timer_fd_follow_heap();
	pthread_mutex_unlock(&pool.lock);
	return ran;
}
