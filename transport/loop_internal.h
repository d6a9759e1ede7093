/* SPDX-License-Identifier: MIT */
/*
 * The event loop's insides, shared by loop.c (sources, dispatching, the
 * tick, loops) and loop_pool.c (the threads of the process's loop).
 */
#ifndef VFPM_TRANSPORT_LOOP_INTERNAL_H
#define VFPM_TRANSPORT_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "loop.h"

#define POOL_MIN 2u
/*
 * Threads for handlers stuck at once: a client can keep a handler waiting
 * (a model's DMA over its twin socket it does not answer, up to
 * msg_timeout_ms), so this is well above what one client may hold.
 */
#define POOL_MAX 256u
#define POOL_IDLE_MS 5000
#define POOL_STALL_MS 2
/* Handlers run models' code: the stack a connection thread used to have. */
#define POOL_STACK (1024u * 1024u)
#define PROCESS_BATCH 64

/* Epoll data of the loop's own fds: generation 0, which no source has. */
#define ID_KICK 0u
#define ID_TIMER 1u
#define ID_QUIT 2u
#define ID_PM 3u

struct loop_slot {
	struct loop_src *src;		/* NULL: free */
	uint32_t gen;			/* of the source in it, or of the next one */
	uint32_t next_free;
};

struct vfpm_loop {
	bool threaded;			/* immutable */
	int epfd;			/* immutable */
	int kick_fd;			/* eventfd, level-triggered: the ready list is not empty */
	int timer_fd;			/* the tick */
	int quit_fd;			/* eventfd, never read: the pool's threads leave */
	int pm_fd;			/* the PM worker's fd in caller-driven mode, or -1 */

	/* Protects slots, the ready list and the pool; cond: a source released, a thread left. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct loop_slot *slots;
	uint32_t nslots, cap, free_head;
	struct loop_src *ready_head, *ready_tail;
	unsigned int nthreads;
	bool quit;
	pthread_attr_t thread_attr;	/* threaded only */
	/* The watchdog (threaded only): watch_cond wakes it when no thread is left waiting. */
	pthread_t watchdog;
	bool has_watchdog;
	pthread_cond_t watch_cond;
	atomic_bool watch_waiting;	/* it waits for that */
	atomic_ulong handled;		/* reports handled, for the watchdog */

	atomic_uint idle;		/* pool threads waiting in epoll_wait */
	atomic_uint release_waiters;	/* loop_src_remove calls waiting for a handler */

	pthread_mutex_t tick_lock;	/* protects tick_armed and arming the timer */
	bool tick_armed;

	pthread_mutex_t servers_lock;	/* protects servers; held across the tick */
	struct loop_node servers;	/* sentinel */
	unsigned int nservers;
};


#define SLOT_NONE UINT32_MAX

/* Handle one epoll report (or one of the loop's own ids) on this thread. */
void loop_dispatch(struct vfpm_loop *loop, uint64_t id, uint32_t events);
/* One more pool thread (loop->lock held): false when it could not be started. */
bool pool_spawn_locked(struct vfpm_loop *loop);
/* Start the watchdog (loop->lock held): false when it could not be started. */
bool watchdog_start(struct vfpm_loop *loop);

#endif /* VFPM_TRANSPORT_LOOP_INTERNAL_H */
