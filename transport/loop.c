// SPDX-License-Identifier: MIT
/*
 * The event loop of the transport (loop.h): sources in an epoll set, a ready
 * list of kicked sources, a tick for deadlines, and either a pool of
 * threads (the process's loop) or the caller (vfpm_loop_process) to run the
 * handlers.  The process's loop's threads are in loop_pool.c.
 */
#include "loop_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <vfpm/pm.h>

#include "base.h"
#include "tran_sock.h"

static _Thread_local const struct vfpm_loop *tls_processing;

/* ---- sources ---- */

void loop_src_init(struct loop_src *src, loop_src_fn fn)
{
	memset(src, 0, sizeof(*src));
	src->fn = fn;
	atomic_init(&src->state, LOOP_SRC_IDLE);
	atomic_init(&src->revents, 0);
}

static int slot_alloc_locked(struct vfpm_loop *loop, struct loop_src *src)
{
	uint32_t i;

	if (loop->free_head != SLOT_NONE) {
		i = loop->free_head;
		loop->free_head = loop->slots[i].next_free;
	} else {
		if (loop->nslots == loop->cap) {
			uint32_t cap = loop->cap ? loop->cap * 2 : 64;
			struct loop_slot *s = realloc(loop->slots, cap * sizeof(*s));

			if (!s)
				return -ENOMEM;
			loop->slots = s;
			loop->cap = cap;
		}
		i = loop->nslots++;
		loop->slots[i].gen = 1;
	}
	loop->slots[i].src = src;
	src->id = i | (uint64_t)loop->slots[i].gen << 32;
	return 0;
}

static void slot_free_locked(struct vfpm_loop *loop, uint32_t i)
{
	struct loop_slot *s = &loop->slots[i];

	s->src = NULL;
	/* Reports that name the old generation are stale from now on. */
	if (++s->gen == 0)
		s->gen = 1;
	s->next_free = loop->free_head;
	loop->free_head = i;
}

int loop_src_add(struct vfpm_loop *loop, struct loop_src *src, int fd, uint32_t events,
		 uint64_t *id)
{
	int err;

	src->loop = loop;
	pthread_mutex_lock(&loop->lock);
	err = slot_alloc_locked(loop, src);
	pthread_mutex_unlock(&loop->lock);
	if (!err && id)
		*id = src->id;
	if (err || fd < 0)
		return err;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd,
		      &(struct epoll_event){ .events = events, .data.u64 = src->id }) < 0) {
		err = -errno;
		pthread_mutex_lock(&loop->lock);
		slot_free_locked(loop, (uint32_t)src->id);
		pthread_mutex_unlock(&loop->lock);
	}
	return err;
}

uint32_t loop_src_events(struct loop_src *src)
{
	return atomic_exchange(&src->revents, 0);
}

int loop_src_modify(struct loop_src *src, int fd, uint32_t events)
{
	if (epoll_ctl(src->loop->epfd, EPOLL_CTL_MOD, fd,
		      &(struct epoll_event){ .events = events, .data.u64 = src->id }) < 0)
		return -errno;
	return 0;
}

static void ready_unlink_locked(struct vfpm_loop *loop, struct loop_src *src)
{
	struct loop_src **pp = &loop->ready_head, *prev = NULL;

	while (*pp && *pp != src) {
		prev = *pp;
		pp = &(*pp)->ready_next;
	}
	if (!*pp)
		return;
	*pp = src->ready_next;
	if (loop->ready_tail == src)
		loop->ready_tail = prev;
	src->on_ready = false;
}

void loop_src_remove(struct loop_src *src, int fd, bool from_handler)
{
	struct vfpm_loop *loop = src->loop;

	if (fd >= 0)
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	pthread_mutex_lock(&loop->lock);
	slot_free_locked(loop, (uint32_t)src->id);
	if (src->on_ready)
		ready_unlink_locked(loop, src);
	if (!from_handler) {
		atomic_fetch_add(&loop->release_waiters, 1);
		while (atomic_load(&src->state) != LOOP_SRC_IDLE)
			pthread_cond_wait(&loop->cond, &loop->lock);
		atomic_fetch_sub(&loop->release_waiters, 1);
	}
	pthread_mutex_unlock(&loop->lock);
}

/* Own src (true), or leave it marked for its owner to handle again (false). */
static bool src_claim(struct loop_src *src)
{
	int st = atomic_load(&src->state);

	for (;;) {
		if (st == LOOP_SRC_IDLE) {
			if (atomic_compare_exchange_weak(&src->state, &st, LOOP_SRC_OWNED))
				return true;
		} else if (st == LOOP_SRC_OWNED) {
			if (atomic_compare_exchange_weak(&src->state, &st, LOOP_SRC_AGAIN))
				return false;
		} else {
			return false;
		}
	}
}

/* Run an owned source's handler until nothing more came for it meanwhile. */
static void src_run(struct loop_src *src)
{
	struct vfpm_loop *loop = src->loop;

	for (;;) {
		int owned = LOOP_SRC_OWNED;

		if (!src->fn(src))
			return;
		if (atomic_compare_exchange_strong(&src->state, &owned, LOOP_SRC_IDLE))
			break;
		atomic_store(&src->state, LOOP_SRC_OWNED);
	}
	/* src may be gone from here on: a remover was perhaps waiting for this. */
	if (atomic_load(&loop->release_waiters)) {
		pthread_mutex_lock(&loop->lock);
		pthread_cond_broadcast(&loop->cond);
		pthread_mutex_unlock(&loop->lock);
	}
}

/* Put src on the ready list (loop->lock held): true when the list was empty. */
static bool ready_push_locked(struct vfpm_loop *loop, struct loop_src *src)
{
	bool was_empty = !loop->ready_head;

	src->on_ready = true;
	src->ready_next = NULL;
	if (loop->ready_tail)
		loop->ready_tail->ready_next = src;
	else
		loop->ready_head = src;
	loop->ready_tail = src;
	return was_empty;
}

/*
 * The source id names, owned by the caller now (NULL: gone, a stale id, or
 * its handler runs already and will run again), its report's events noted.
 */
static struct loop_src *claim_id(struct vfpm_loop *loop, uint64_t id, uint32_t events)
{
	struct loop_src *src = NULL;
	uint32_t i = (uint32_t)id;

	pthread_mutex_lock(&loop->lock);
	if (i < loop->nslots && loop->slots[i].gen == (uint32_t)(id >> 32))
		src = loop->slots[i].src;
	if (src) {
		atomic_fetch_or(&src->revents, events);
		if (!src_claim(src))
			src = NULL;
	}
	pthread_mutex_unlock(&loop->lock);
	return src;
}

void loop_run_id_once(struct vfpm_loop *loop, uint64_t id)
{
	struct loop_src *src = claim_id(loop, id, 0);
	bool kick = false;

	if (!src || !src->fn(src))
		return;
	/*
	 * Released under the lock, which every claim takes: nobody can own src,
	 * and free it, before it is on the ready list for what came meanwhile.
	 */
	pthread_mutex_lock(&loop->lock);
	if (atomic_exchange(&src->state, LOOP_SRC_IDLE) == LOOP_SRC_AGAIN && !src->on_ready)
		kick = ready_push_locked(loop, src);
	if (atomic_load(&loop->release_waiters))
		pthread_cond_broadcast(&loop->cond);
	pthread_mutex_unlock(&loop->lock);
	if (kick)
		eventfd_write(loop->kick_fd, 1);
}

void loop_src_kick(struct loop_src *src)
{
	struct vfpm_loop *loop = src->loop;
	bool was_empty;

	pthread_mutex_lock(&loop->lock);
	if (src->on_ready || loop->slots[(uint32_t)src->id].src != src) {
		pthread_mutex_unlock(&loop->lock);
		return;
	}
	was_empty = ready_push_locked(loop, src);
	pthread_mutex_unlock(&loop->lock);
	if (was_empty)
		eventfd_write(loop->kick_fd, 1);
}

/*
 * Handle the kicked sources, one at a time: those on the list now, not the
 * ones kicked meanwhile (a source that kicks itself to give the others a
 * turn must not keep this call going; they are the next call's).
 */
static int run_ready(struct vfpm_loop *loop)
{
	unsigned int budget = 0;
	eventfd_t v;
	int n = 0;

	eventfd_read(loop->kick_fd, &v);
	pthread_mutex_lock(&loop->lock);
	for (struct loop_src *s = loop->ready_head; s; s = s->ready_next)
		budget++;
	pthread_mutex_unlock(&loop->lock);
	while (budget--) {
		struct loop_src *src;
		bool won;

		pthread_mutex_lock(&loop->lock);
		src = loop->ready_head;
		if (!src) {
			pthread_mutex_unlock(&loop->lock);
			break;
		}
		loop->ready_head = src->ready_next;
		if (!loop->ready_head)
			loop->ready_tail = NULL;
		src->on_ready = false;
		won = src_claim(src);
		/* The rest are not held up behind this handler: an idle thread takes them. */
		if (loop->threaded && loop->ready_head)
			eventfd_write(loop->kick_fd, 1);
		pthread_mutex_unlock(&loop->lock);
		if (won)
			src_run(src);
		n++;
	}
	/* What was kicked meanwhile keeps the loop's fd readable. */
	pthread_mutex_lock(&loop->lock);
	if (loop->ready_head)
		eventfd_write(loop->kick_fd, 1);
	pthread_mutex_unlock(&loop->lock);
	return n;
}

/* ---- the tick ---- */

static void timer_set(struct vfpm_loop *loop, bool on)
{
	struct itimerspec its = { 0 };

	if (on) {
		its.it_value.tv_nsec = LOOP_TICK_MS * 1000000L;
		its.it_interval = its.it_value;
	}
	timerfd_settime(loop->timer_fd, 0, &its, NULL);
}

void loop_tick_need(struct vfpm_loop *loop)
{
	pthread_mutex_lock(&loop->tick_lock);
	if (!loop->tick_armed) {
		loop->tick_armed = true;
		timer_set(loop, true);
	}
	pthread_mutex_unlock(&loop->tick_lock);
}

static void run_tick(struct vfpm_loop *loop)
{
	int64_t now = vfpm_sock_now_ms();
	uint64_t expirations;
	bool need = false;

	if (read(loop->timer_fd, &expirations, sizeof(expirations)) != sizeof(expirations))
		return;	/* another thread took this tick */
	/* Anything that needs the tick after this point arms it again. */
	pthread_mutex_lock(&loop->tick_lock);
	loop->tick_armed = false;
	pthread_mutex_unlock(&loop->tick_lock);

	pthread_mutex_lock(&loop->servers_lock);
	for (struct loop_node *n = loop->servers.next; n != &loop->servers; n = n->next)
		need |= srv_loop_tick(n, now);
	pthread_mutex_unlock(&loop->servers_lock);

	pthread_mutex_lock(&loop->tick_lock);
	if (need)
		loop->tick_armed = true;
	else if (!loop->tick_armed)
		timer_set(loop, false);	/* idle: no wakeups at all */
	pthread_mutex_unlock(&loop->tick_lock);
}

void loop_link(struct vfpm_loop *loop, struct loop_node *n)
{
	pthread_mutex_lock(&loop->servers_lock);
	n->next = loop->servers.next;
	n->prev = &loop->servers;
	n->next->prev = n;
	loop->servers.next = n;
	loop->nservers++;
	pthread_mutex_unlock(&loop->servers_lock);
}

void loop_unlink(struct vfpm_loop *loop, struct loop_node *n)
{
	pthread_mutex_lock(&loop->servers_lock);
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
	loop->nservers--;
	pthread_mutex_unlock(&loop->servers_lock);
}

/* ---- dispatching ---- */

void loop_dispatch(struct vfpm_loop *loop, uint64_t id, uint32_t events)
{
	struct loop_src *src;

	switch (id) {
	case ID_KICK:
		run_ready(loop);
		return;
	case ID_TIMER:
		run_tick(loop);
		return;
	case ID_PM:
		vfpm_pm_worker_process();
		return;
	case ID_QUIT:
		return;
	default:
		break;
	}
	src = claim_id(loop, id, events);
	if (src)
		src_run(src);
}

bool loop_threaded(const struct vfpm_loop *loop)
{
	return loop->threaded;
}

bool loop_processing_here(const struct vfpm_loop *loop)
{
	return loop && tls_processing == loop;
}

int loop_process_wait(struct vfpm_loop *loop, int timeout_ms)
{
	const struct vfpm_loop *outer = tls_processing;
	struct epoll_event ev[PROCESS_BATCH];
	int n;

	if (loop->threaded)
		return -EINVAL;
	n = epoll_wait(loop->epfd, ev, PROCESS_BATCH, timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	tls_processing = loop;
	for (int i = 0; i < n; i++)
		loop_dispatch(loop, ev[i].data.u64, ev[i].events);
	/* Kicked sources are handled even when the kick's report is not in this batch. */
	n += run_ready(loop);
	tls_processing = outer;
	return n;
}

/* ---- loops ---- */

static void loop_free(struct vfpm_loop *loop)
{
	if (loop->pm_fd >= 0)
		epoll_ctl(loop->epfd, EPOLL_CTL_DEL, loop->pm_fd, NULL);
	close(loop->epfd);
	close(loop->kick_fd);
	close(loop->timer_fd);
	close(loop->quit_fd);
	if (loop->threaded)
		pthread_attr_destroy(&loop->thread_attr);
	pthread_mutex_destroy(&loop->lock);
	pthread_cond_destroy(&loop->cond);
	pthread_cond_destroy(&loop->watch_cond);
	pthread_mutex_destroy(&loop->tick_lock);
	pthread_mutex_destroy(&loop->servers_lock);
	free(loop->slots);
	free(loop);
}

static int loop_add_own(struct vfpm_loop *loop, int fd, uint64_t id)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = id };

	return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int loop_new(bool threaded, struct vfpm_loop **out)
{
	struct vfpm_loop *loop = calloc(1, sizeof(*loop));
	int err;

	if (!loop)
		return -ENOMEM;
	loop->threaded = threaded;
	loop->free_head = SLOT_NONE;
	loop->pm_fd = -1;
	loop->servers.next = loop->servers.prev = &loop->servers;
	pthread_mutex_init(&loop->lock, NULL);
	pthread_cond_init(&loop->cond, NULL);
	{
		pthread_condattr_t attr;

		/* The watchdog's timed waits are on the monotonic clock. */
		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&loop->watch_cond, &attr);
		pthread_condattr_destroy(&attr);
	}
	pthread_mutex_init(&loop->tick_lock, NULL);
	pthread_mutex_init(&loop->servers_lock, NULL);
	if (threaded) {
		pthread_attr_init(&loop->thread_attr);
		pthread_attr_setstacksize(&loop->thread_attr, POOL_STACK);
		pthread_attr_setdetachstate(&loop->thread_attr, PTHREAD_CREATE_DETACHED);
	}
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	loop->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	loop->quit_fd = threaded ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : dup(loop->kick_fd);
	if (loop->epfd < 0 || loop->kick_fd < 0 || loop->timer_fd < 0 || loop->quit_fd < 0) {
		err = -errno;
		goto fail;
	}
	err = loop_add_own(loop, loop->kick_fd, ID_KICK);
	if (!err)
		err = loop_add_own(loop, loop->timer_fd, ID_TIMER);
	if (!err && threaded)
		err = loop_add_own(loop, loop->quit_fd, ID_QUIT);
	if (!err && !threaded) {
		/* A PM core driven by its caller (vfpm_pm_worker_set_external) runs here too. */
		int pm_fd = vfpm_pm_worker_fd();

		if (pm_fd >= 0) {
			err = loop_add_own(loop, pm_fd, ID_PM);
			if (!err)
				loop->pm_fd = pm_fd;
		}
	}
	if (err)
		goto fail;
	*out = loop;
	return 0;
fail:
	/* Unopened fds are -1 or 0 from calloc: close only what was opened. */
	for (int *fd = &loop->epfd; fd <= &loop->quit_fd; fd++) {
		if (*fd > 0)
			close(*fd);
		*fd = -1;
	}
	if (threaded)
		pthread_attr_destroy(&loop->thread_attr);
	pthread_mutex_destroy(&loop->lock);
	pthread_cond_destroy(&loop->cond);
	pthread_cond_destroy(&loop->watch_cond);
	pthread_mutex_destroy(&loop->tick_lock);
	pthread_mutex_destroy(&loop->servers_lock);
	free(loop);
	return err ? err : -ENOMEM;
}

static struct {
	pthread_mutex_t lock;
	struct vfpm_loop *loop;
	unsigned int refs;
} global = { .lock = PTHREAD_MUTEX_INITIALIZER };

int loop_global_get(struct vfpm_loop **out)
{
	int err = 0;

	pthread_mutex_lock(&global.lock);
	if (!global.loop) {
		struct vfpm_loop *loop;

		err = loop_new(true, &loop);
		if (!err) {
			pthread_mutex_lock(&loop->lock);
			while (loop->nthreads < POOL_MIN && pool_spawn_locked(loop))
				;
			if (!loop->nthreads)
				err = -EAGAIN;
			else
				loop->has_watchdog = watchdog_start(loop);
			pthread_mutex_unlock(&loop->lock);
			if (err)
				loop_free(loop);
			else
				global.loop = loop;
		}
	}
	if (!err) {
		global.refs++;
		*out = global.loop;
	}
	pthread_mutex_unlock(&global.lock);
	return err;
}

void loop_global_put(struct vfpm_loop *loop)
{
	pthread_mutex_lock(&global.lock);
	if (--global.refs) {
		pthread_mutex_unlock(&global.lock);
		return;
	}
	/* The last user: the threads leave, then the loop goes (a process serving nothing holds nothing). */
	global.loop = NULL;
	pthread_mutex_lock(&loop->lock);
	loop->quit = true;
	eventfd_write(loop->quit_fd, 1);
	pthread_cond_broadcast(&loop->watch_cond);
	while (loop->nthreads)
		pthread_cond_wait(&loop->cond, &loop->lock);
	pthread_mutex_unlock(&loop->lock);
	if (loop->has_watchdog)
		pthread_join(loop->watchdog, NULL);
	loop_free(loop);
	pthread_mutex_unlock(&global.lock);
}

/* ---- the caller-driven API ---- */

int vfpm_loop_create(struct vfpm_loop **out)
{
	if (!out)
		return -EINVAL;
	return loop_new(false, out);
}

int vfpm_loop_destroy(struct vfpm_loop *loop)
{
	unsigned int n;

	if (!loop)
		return 0;
	pthread_mutex_lock(&loop->servers_lock);
	n = loop->nservers;
	pthread_mutex_unlock(&loop->servers_lock);
	if (n)
		return -EBUSY;
	loop_free(loop);
	return 0;
}

int vfpm_loop_fd(const struct vfpm_loop *loop)
{
	return loop ? loop->epfd : -EINVAL;
}

int vfpm_loop_process(struct vfpm_loop *loop)
{
	if (!loop)
		return -EINVAL;
	return loop_process_wait(loop, 0);
}
