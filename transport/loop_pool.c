// SPDX-License-Identifier: MIT
/*
 * The threads of the process's event loop (loop.c).
 *
 * The pool is a leader/followers pool: every thread waits in epoll_wait for
 * one report and handles it itself, so a request costs no hand-off between
 * threads.  It keeps POOL_MIN threads.  A watchdog thread adds one when no
 * thread has been waiting for work and no handler has returned for
 * POOL_STALL_MS (the handlers are all stuck: slow models, say), up to
 * POOL_MAX; a thread beyond POOL_MIN that has waited POOL_IDLE_MS for work
 * leaves.  So idle devices and idle connections cost no thread, a flood of
 * quick requests does not grow the pool, and a request that blocks holds
 * up only its own connection (others wait POOL_STALL_MS at most for a
 * thread) while fewer than POOL_MAX block at once.
 */
#include "loop_internal.h"

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <time.h>

#include "base.h"

static void *pool_main(void *arg);

bool pool_spawn_locked(struct vfpm_loop *loop)
{
	pthread_t t;
	sigset_t all, old;
	int err;

	/*
	 * The application's signals are not for the pool; the faults of its
	 * own accesses are (a client's truncated memfd raises SIGBUS in the
	 * thread that touched it, which base.h's guard turns into an error).
	 */
	sigfillset(&all);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGSEGV);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&t, &loop->thread_attr, pool_main, loop);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		return false;
	/* Named before anyone can look (the tests count threads by name). */
	pthread_setname_np(t, "vfpm-loop");
	__atomic_add_fetch(&loop->nthreads, 1, __ATOMIC_RELAXED);
	return true;
}

/*
 * The watchdog: when no pool thread waits for work, see whether any handler
 * returns within POOL_STALL_MS; if none does, they are stuck, and one more
 * thread is started to serve the others.
 */
static void *watchdog_main(void *arg);

/* Start the watchdog (lock held; it is joinable, unlike the pool's threads). */
bool watchdog_start(struct vfpm_loop *loop)
{
	pthread_attr_t attr;
	sigset_t all, old;
	int err;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64u * 1024u);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&loop->watchdog, &attr, watchdog_main, loop);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (!err)
		pthread_setname_np(loop->watchdog, "vfpm-loop-watch");
	return err == 0;
}

static void *watchdog_main(void *arg)
{
	static struct vfpm_ratelimit rl;
	struct vfpm_loop *loop = arg;

	pthread_mutex_lock(&loop->lock);
	while (!loop->quit) {
		unsigned long before;
		struct timespec ts;

		atomic_store(&loop->watch_waiting, true);
		while (!loop->quit && atomic_load(&loop->idle))
			pthread_cond_wait(&loop->watch_cond, &loop->lock);
		atomic_store(&loop->watch_waiting, false);
		if (loop->quit)
			break;
		before = atomic_load(&loop->handled);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += POOL_STALL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!loop->quit && pthread_cond_timedwait(&loop->watch_cond, &loop->lock,
							     &ts) != ETIMEDOUT)
			;
		if (loop->quit || atomic_load(&loop->idle) || atomic_load(&loop->handled) != before)
			continue;
		if (loop->nthreads < POOL_MAX) {
			pool_spawn_locked(loop);
		} else {
			pthread_mutex_unlock(&loop->lock);
			vfpm_logf_rl(&rl, VFPM_LOG_WARNING, "SERVER: all %u request threads are "
				     "stuck in handlers; new requests wait for one", POOL_MAX);
			pthread_mutex_lock(&loop->lock);
			/* Nothing to do until a handler returns: do not spin meanwhile. */
			ts.tv_sec += 1;
			pthread_cond_timedwait(&loop->watch_cond, &loop->lock, &ts);
		}
	}
	pthread_mutex_unlock(&loop->lock);
	return NULL;
}

static void *pool_main(void *arg)
{
	struct vfpm_loop *loop = arg;

	for (;;) {
		struct epoll_event ev;
		int n;
		/* The permanent threads sleep until there is work: an idle process never wakes. */
		int timeout = __atomic_load_n(&loop->nthreads, __ATOMIC_RELAXED) > POOL_MIN ?
			      POOL_IDLE_MS : -1;

		atomic_fetch_add(&loop->idle, 1);
		n = epoll_wait(loop->epfd, &ev, 1, timeout);
		if (atomic_fetch_sub(&loop->idle, 1) == 1 && atomic_load(&loop->watch_waiting)) {
			/* Nobody left waiting: have the watchdog keep an eye on the handlers. */
			pthread_mutex_lock(&loop->lock);
			pthread_cond_signal(&loop->watch_cond);
			pthread_mutex_unlock(&loop->lock);
		}
		if (n == 1 && ev.data.u64 == ID_QUIT)
			break;
		if (n == 1) {
			loop_dispatch(loop, ev.data.u64, ev.events);
			atomic_fetch_add(&loop->handled, 1);
			continue;
		}
		if (n == 0) {
			bool leave;

			pthread_mutex_lock(&loop->lock);
			leave = loop->nthreads > POOL_MIN && !loop->quit;
			if (leave) {
				__atomic_sub_fetch(&loop->nthreads, 1, __ATOMIC_RELAXED);
				pthread_cond_broadcast(&loop->cond);
			}
			pthread_mutex_unlock(&loop->lock);
			if (leave)
				return NULL;
		}
	}
	pthread_mutex_lock(&loop->lock);
	__atomic_sub_fetch(&loop->nthreads, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&loop->cond);
	pthread_mutex_unlock(&loop->lock);
	return NULL;
}

