/* SPDX-License-Identifier: MIT */
/*
 * The transport's event loop (loop.c): one epoll set for listening sockets
 * and connections, driven either by a small pool of threads (the process's
 * loop, behind vfpm_server_start) or by the caller (struct vfpm_loop made
 * with vfpm_loop_create, for reactors).
 *
 * A source is an fd in the set (edge-triggered) or something kicked onto the
 * loop's ready list (an async completion).  Its handler runs on one thread at
 * a time: a readiness report or a kick that finds the source being handled
 * marks it to be handled again when the running handler returns, so nothing
 * is lost and per-source order holds without a lock held across a handler.
 * Epoll reports name a source by its slot and a generation, never by
 * pointer, so a report fetched just before the source went away is
 * recognised as stale and dropped.
 */
#ifndef VFPM_TRANSPORT_LOOP_H
#define VFPM_TRANSPORT_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <vfpm/transport.h>

struct loop_src;
/*
 * Handle the source (its owner's thread).  false when the handler removed
 * the source and freed it: it must not be touched again.
 */
typedef bool (*loop_src_fn)(struct loop_src *src);

struct loop_src {
	loop_src_fn fn;			/* immutable */
	struct vfpm_loop *loop;		/* immutable once added */
	atomic_int state;		/* LOOP_SRC_IDLE / _OWNED / _AGAIN */
	atomic_uint revents;		/* epoll events reported since the handler took them */
	uint64_t id;			/* slot | generation << 32, while added */
	/* The loop's lock: on its ready list. */
	bool on_ready;
	struct loop_src *ready_next;
};

void loop_src_init(struct loop_src *src, loop_src_fn fn);
/*
 * Put src (and fd, when not -1, with epoll events) in loop: 0 or -errno.
 * *id (may be NULL) is src's id, which stays safe to use (loop_run_id)
 * when src may already be gone: once its fd is in the set, another thread
 * may handle it, and free it.
 */
int loop_src_add(struct vfpm_loop *loop, struct loop_src *src, int fd, uint32_t events,
		 uint64_t *id);
/* The epoll events reported since the last call (the handler's). */
uint32_t loop_src_events(struct loop_src *src);
/* Change the epoll events of src's fd (any thread). */
int loop_src_modify(struct loop_src *src, int fd, uint32_t events);
/*
 * Take src out of its loop (fd, when not -1, out of the set).  From src's
 * own handler it returns at once (the handler then returns false); from
 * any other thread it waits until no handler of src runs.
 */
void loop_src_remove(struct loop_src *src, int fd, bool from_handler);
/* Have src handled again soon, on the loop's threads or its caller (any thread). */
void loop_src_kick(struct loop_src *src);
/*
 * Run the handler of the source id names once, now, on this thread, unless
 * it is gone or a handler of it runs already (which then runs again); what
 * comes meanwhile is left to the loop (kicked), not run here.
 */
void loop_run_id_once(struct vfpm_loop *loop, uint64_t id);

/* Something in the loop has a deadline: have the loop's tick run (any thread). */
void loop_tick_need(struct vfpm_loop *loop);

/* A server in a loop, for the tick (embedded in struct vfpm_server). */
struct loop_node {
	struct loop_node *prev, *next;
};

void loop_link(struct vfpm_loop *loop, struct loop_node *n);
/* After it returns the tick no longer looks at n. */
void loop_unlink(struct vfpm_loop *loop, struct loop_node *n);
/*
 * The tick's work for one server, supplied by server.c: time out what is
 * overdue; true while anything of it still needs the tick.  Called every
 * LOOP_TICK_MS while some source asked for it, with nothing of the loop's
 * locked but its list of servers.
 */
bool srv_loop_tick(struct loop_node *n, int64_t now_ms);
#define LOOP_TICK_MS 20

/* The process's threaded loop: a reference (created and started by the first). */
int loop_global_get(struct vfpm_loop **out);
void loop_global_put(struct vfpm_loop *loop);
/* Does the loop run handlers on its own threads (false: on its caller's)? */
bool loop_threaded(const struct vfpm_loop *loop);
/* The calling thread is inside vfpm_loop_process of loop. */
bool loop_processing_here(const struct vfpm_loop *loop);
/*
 * Handle what is ready in a caller's loop, waiting up to timeout_ms for it
 * (for stop and serve_fd on such a loop): as vfpm_loop_process.
 */
int loop_process_wait(struct vfpm_loop *loop, int timeout_ms);

#define LOOP_SRC_IDLE 0
#define LOOP_SRC_OWNED 1
#define LOOP_SRC_AGAIN 2

#endif /* VFPM_TRANSPORT_LOOP_H */
