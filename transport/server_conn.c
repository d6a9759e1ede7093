// SPDX-License-Identifier: MIT
/*
 * A connection as a source of the server's event loop (loop.h): its handler
 * reads what the non-blocking socket has, serves whole messages in order,
 * sends the replies, and tears the connection down when it ends.  Nothing
 * waits on a client: a reply the socket cannot take is queued and reading
 * stops until the client has read it (so a client that does not read stalls
 * only itself), and the loop's tick times out a client that is too slow
 * with VERSION, with the rest of a message or with reading its replies.
 *
 * The handler runs on one thread at a time (the loop's guarantee), which is
 * what keeps each connection's requests in order; different connections'
 * handlers run at once on the pool's threads, so a request that blocks
 * holds up only its own connection.
 */
#include "server_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* Messages one handler run serves before the other sources get a turn. */
#define CONN_BUDGET 16
#define CONN_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLET)
/*
 * Commands read while a request is pending (for the DMA replies behind
 * them) wait here: this many, or this much payload, and reading stops.
 */
#define CONN_HELD_MAX 8u
#define CONN_HELD_BYTES (64u * 1024u)

static struct vfpm_server_conn *to_conn(struct loop_src *src)
{
	return (struct vfpm_server_conn *)((char *)src - offsetof(struct vfpm_server_conn, src));
}

/* ---- sending ---- */

static void chunk_free(struct out_chunk *c)
{
	for (unsigned int i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	free(c);
}

/* Queue bytes [sent, total) of the message in v (send_lock held): 0 or -ENOMEM. */
static int out_queue(struct vfpm_server_conn *conn, const struct iovec *v, unsigned int cnt,
		     size_t total, size_t sent, const int *fds, unsigned int nfds)
{
	unsigned int keep_fds = sent ? 0 : nfds;
	struct out_chunk *c = malloc(sizeof(*c) + keep_fds * sizeof(int) + (total - sent));
	size_t at = 0, skip = sent;

	if (!c)
		return -ENOMEM;
	c->next = NULL;
	c->fds = (int *)(c + 1);
	c->data = (unsigned char *)(c->fds + keep_fds);
	c->len = total - sent;
	c->off = 0;
	c->nfds = 0;
	for (unsigned int i = 0; i < keep_fds; i++) {
		int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);

		if (fd < 0) {
			chunk_free(c);
			return -errno;
		}
		c->fds[c->nfds++] = fd;
	}
	for (unsigned int i = 0; i < cnt; i++) {
		size_t len = v[i].iov_len;
		const char *p = v[i].iov_base;

		if (skip >= len) {
			skip -= len;
			continue;
		}
		memcpy(c->data + at, p + skip, len - skip);
		at += len - skip;
		skip = 0;
	}
	if (conn->outq_tail)
		conn->outq_tail->next = c;
	else
		conn->outq_head = c;
	conn->outq_tail = c;
	if (!conn->out_armed) {
		/* Told when the client has read: then the handler sends the rest. */
		conn->out_armed = true;
		loop_src_modify(&conn->src, conn->sock, CONN_EVENTS | EPOLLOUT);
		atomic_store(&conn->dl_out, vfpm_sock_now_ms() + conn->srv->opts.msg_timeout_ms);
		loop_tick_need(conn->srv->loop);
	}
	return 0;
}

int srv_conn_send(struct vfpm_server_conn *conn, struct vfio_user_header *hdr,
		  const struct iovec *iov, unsigned int iovcnt, const int *fds, unsigned int nfds)
{
	struct iovec v[4];
	unsigned int cnt;
	ssize_t sent = 0, total;
	int err = 0;

	if (iovcnt > 3)
		return -EINVAL;
	total = vfpm_sock_msg_iov(hdr, iov, iovcnt, v, &cnt);
	if (total < 0)
		return (int)total;

	pthread_mutex_lock(&conn->send_lock);
	if (conn->send_closed) {
		err = -ECONNRESET;
	} else {
		if (!conn->outq_head) {
			sent = vfpm_sock_send_nb(conn->sock, v, cnt, fds, nfds);
			if (sent == -EAGAIN)
				sent = 0;
		}
		if (sent < 0)
			err = (int)sent;
		else if (sent < total)
			err = out_queue(conn, v, cnt, (size_t)total, (size_t)sent, fds, nfds);
	}
	pthread_mutex_unlock(&conn->send_lock);
	return err;
}

/* Send what is queued: 0 when nothing is left, -EAGAIN while the client does not read. */
static int out_flush(struct vfpm_server_conn *conn)
{
	int err = 0;

	pthread_mutex_lock(&conn->send_lock);
	while (conn->outq_head) {
		struct out_chunk *c = conn->outq_head;
		struct iovec v = { .iov_base = c->data + c->off, .iov_len = c->len - c->off };
		ssize_t n = vfpm_sock_send_nb(conn->sock, &v, 1, c->off ? NULL : c->fds,
					      c->off ? 0 : c->nfds);

		if (n < 0) {
			err = (int)n;
			break;
		}
		c->off += (size_t)n;
		if (c->off < c->len) {
			err = -EAGAIN;
			break;
		}
		conn->outq_head = c->next;
		if (!conn->outq_head)
			conn->outq_tail = NULL;
		chunk_free(c);
	}
	if (!conn->outq_head && conn->out_armed) {
		conn->out_armed = false;
		loop_src_modify(&conn->src, conn->sock, CONN_EVENTS);
		atomic_store(&conn->dl_out, 0);
	}
	pthread_mutex_unlock(&conn->send_lock);
	return err;
}

static bool out_pending(struct vfpm_server_conn *conn)
{
	bool pending;

	pthread_mutex_lock(&conn->send_lock);
	pending = conn->outq_head != NULL;
	pthread_mutex_unlock(&conn->send_lock);
	return pending;
}

/* ---- the handler ---- */

/* The next whole message: 0, -EAGAIN when none is whole yet, or what ends the connection. */
static int next_msg(struct vfpm_server_conn *conn, struct vfpm_msg *m)
{
	struct vfpm_server *srv = conn->srv;
	struct vfpm_recv_limits lim = {
		.max_size = srv->max_msg_size,
		.max_fds = srv->caps.max_msg_fds,
		.msg_timeout_ms = srv->opts.msg_timeout_ms,
	};
	int err = vfpm_sock_rx_poll(&conn->rx, conn->sock, m, &lim, &conn->readable);

	/*
	 * A short read says the socket is empty, not that the client's end of
	 * stream is not behind it: once the client has hung up, read until
	 * the end is seen.
	 */
	if (err == -EAGAIN && conn->peer_hup && !conn->hup_read) {
		conn->hup_read = true;
		conn->readable = true;
		err = vfpm_sock_rx_poll(&conn->rx, conn->sock, m, &lim, &conn->readable);
	}

	if (err == -EBADMSG || err == -E2BIG) {
		/* The size cannot be believed: say why, then drop the stream. */
		conn->bad_msg_size = m->hdr.msg_size;
		srv_send_error(conn, &m->hdr, err == -EBADMSG ? EINVAL : E2BIG);
	}
	return err;
}

/* Keep a command that came while a request is pending (it is served after it). */
static int hold(struct vfpm_server_conn *conn, struct vfpm_msg *m)
{
	if (!conn->held) {
		conn->held = malloc(CONN_HELD_MAX * sizeof(*conn->held));
		if (!conn->held) {
			vfpm_msg_release(m);
			return -ENOMEM;
		}
	}
	conn->held[conn->nheld++] = *m;
	conn->held_bytes += m->len;
	return 0;
}

/* The oldest command held; the array goes with the last one. */
static void unhold(struct vfpm_server_conn *conn, struct vfpm_msg *m)
{
	*m = conn->held[0];
	conn->nheld--;
	conn->held_bytes -= m->len;
	memmove(conn->held, conn->held + 1, conn->nheld * sizeof(*conn->held));
	if (!conn->nheld) {
		free(conn->held);
		conn->held = NULL;
	}
}

/* A pending request the model has completed meanwhile is answered: 0 or -errno. */
static int finish_if_done(struct vfpm_server_conn *conn)
{
	bool done;

	if (!conn->pend.active)
		return 0;
	pthread_mutex_lock(&conn->pend.lock);
	done = conn->pend.done;
	pthread_mutex_unlock(&conn->pend.lock);
	return done ? srv_finish_pending(conn) : 0;
}

/*
 * Serve what is there: 0 when the handler may return, or what ends the
 * connection.  *more: the budget ran out with messages perhaps left.
 */
static int conn_serve(struct vfpm_server_conn *conn, bool *more)
{
	int err;

	*more = false;
	err = out_flush(conn);
	if (err)
		return err == -EAGAIN ? 0 : err;
	err = finish_if_done(conn);
	if (err)
		return err;
	/*
	 * The first run, on the accepting thread, serves one message (VERSION,
	 * which never reaches the model): whatever follows goes to the loop,
	 * so that no client can hold up accepting for its device.
	 */
	for (int budget = conn->first_run ? 1 : CONN_BUDGET; budget; budget--) {
		struct vfpm_msg m;

		if (conn->pend.active) {
			/*
			 * Reading goes on for the replies a model's DMA waits for
			 * (perhaps to complete this very request); the commands
			 * read meanwhile wait in order, a few at most.
			 */
			if (conn->nheld == CONN_HELD_MAX || conn->held_bytes >= CONN_HELD_BYTES)
				return 0;
			err = next_msg(conn, &m);
			if (err)
				return err == -EAGAIN ? 0 : err;
			if (!srv_deliver_reply(conn, &m)) {
				err = hold(conn, &m);
				if (err)
					return err;
			}
			continue;
		}
		if (conn->nheld) {
			unhold(conn, &m);
		} else {
			err = next_msg(conn, &m);
			if (err)
				return err == -EAGAIN ? 0 : err;
		}
		err = srv_serve_msg(conn, &m);
		if (err == -EINPROGRESS)
			continue;
		if (err)
			return err;
		/* The client has not read its reply: it gets no more until it does. */
		if (out_pending(conn))
			return 0;
	}
	/* Out of turns: come back if there is more (buffered, or perhaps in the socket). */
	*more = conn->rx.end > conn->rx.start || conn->rx.big || conn->readable || conn->peer_hup;
	return 0;
}

/* The tick's deadline for a begun message: set or cleared as the buffer says. */
static void conn_update_deadlines(struct vfpm_server_conn *conn)
{
	bool begun = conn->rx.big || conn->rx.end > conn->rx.start;
	int64_t dl = begun ? conn->rx.head_deadline_ms : 0;

	if (atomic_load(&conn->dl_msg) == dl)
		return;
	atomic_store(&conn->dl_msg, dl);
	if (dl)
		loop_tick_need(conn->srv->loop);
}

static void log_end(struct vfpm_server_conn *conn, int err)
{
	const char *why;
	char buf[160];

	switch (atomic_load(&conn->expired)) {
	case CONN_EXP_VERSION:
	case CONN_EXP_MSG:
		err = -ETIMEDOUT;
		break;
	case CONN_EXP_OUT:
		err = -EAGAIN;
		break;
	default:
		break;
	}
	why = srv_drop_reason(conn, err, buf, sizeof(buf));
	if (why) {
		/* One rate limit per reason: a flood of one kind hides no other. */
		static struct vfpm_ratelimit rl[8];
		unsigned int kind = err == -ETIMEDOUT ? (conn->negotiated ? 1 : 2) :
				    err == -EAGAIN ? 3 : err == -E2BIG || err == -EBADMSG ? 4 :
				    err == -ECONNRESET ? 5 : 0;

		vfpm_logf_rl(&rl[kind], VFPM_LOG_WARNING, "%s: %s; disconnected", conn->who, why);
	} else {
		static struct vfpm_ratelimit rl;

		vfpm_logf_rl(&rl, VFPM_LOG_INFO, "%s: disconnected", conn->who);
	}
}

/* Tear the connection down and free it (its handler, which then returns false). */
static void conn_end(struct vfpm_server_conn *conn)
{
	struct vfpm_server *srv = conn->srv;

	/* What came after the last message served (and its fds) is dropped. */
	vfpm_sock_rx_release(&conn->rx);
	while (conn->nheld) {
		struct vfpm_msg m;

		unhold(conn, &m);
		vfpm_msg_release(&m);
	}
	free(conn->held);
	conn->held = NULL;
	/* No more replies will come: a model waiting for one gives up now. */
	srv_main_dma_close(conn);
	log_end(conn, conn->end_err);
	if (conn->inst && srv->opts.on_disconnect)
		srv->opts.on_disconnect(conn, srv->opts.opaque);

	/* A model thread waiting for a DMA reply from this client gives up now. */
	pthread_mutex_lock(&srv->lock);
	if (conn->dma_sock >= 0)
		shutdown(conn->dma_sock, SHUT_RDWR);
	pthread_mutex_unlock(&srv->lock);
	srv_dma_destroy(&conn->dma);
	if (conn->inst)
		vfpm_instance_close(conn->inst);
	conn->inst = NULL;

	loop_src_remove(&conn->src, conn->sock, true);
	pthread_mutex_lock(&conn->send_lock);
	conn->send_closed = true;
	while (conn->outq_head) {
		struct out_chunk *c = conn->outq_head;

		conn->outq_head = c->next;
		chunk_free(c);
	}
	conn->outq_tail = NULL;
	pthread_mutex_unlock(&conn->send_lock);

	pthread_mutex_lock(&srv->lock);
	/* Closed under the lock: vfpm_server_stop and the tick shut down only open sockets. */
	close(conn->sock);
	conn->sock = -1;
	if (conn->dma_sock >= 0)
		close(conn->dma_sock);
	conn->dma_sock = -1;
	srv_conn_gone_locked(conn);
	pthread_mutex_unlock(&srv->lock);
	/* A completion's kick, made under the lock, is over once we have had it. */
	pthread_mutex_lock(&conn->pend.lock);
	pthread_mutex_unlock(&conn->pend.lock);
	srv_conn_free(conn);
}

static bool conn_handle(struct loop_src *src)
{
	struct vfpm_server_conn *conn = to_conn(src);
	bool more = false;
	int err = 0;

	atomic_store(&conn->serving_tid, (unsigned long)pthread_self());
	/* Called for a readiness edge or a kick: either way, look. */
	conn->readable = true;
	conn->hup_read = false;
	if (loop_src_events(src) & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		conn->peer_hup = true;
	if (!conn->ending)
		err = conn_serve(conn, &more);
	conn->first_run = false;
	if (err && !conn->end_err)
		conn->end_err = err;
	if (conn->end_err || conn->ending) {
		/* A request still out with the model comes back first (its completion kicks us). */
		finish_if_done(conn);
		conn->ending = conn->pend.active;
		if (!conn->ending) {
			atomic_store(&conn->serving_tid, 0);
			conn_end(conn);
			return false;
		}
	}
	conn_update_deadlines(conn);
	atomic_store(&conn->serving_tid, 0);
	if (more)
		loop_src_kick(src);
	return true;
}

/* ---- life ---- */

struct vfpm_server_conn *srv_conn_new(struct vfpm_server *srv, int sock)
{
	struct vfpm_server_conn *conn = calloc(1, sizeof(*conn));

	if (!conn || srv_dma_init(&conn->dma, srv->caps.max_dma_maps)) {
		free(conn);
		return NULL;
	}
	conn->srv = srv;
	conn->sock = sock;
	conn->dma_sock = -1;
	conn->accepted_ms = vfpm_sock_now_ms();
	srv_describe_peer(srv, sock, &conn->peer_pid, &conn->peer_uid, conn->who,
			  sizeof(conn->who));
	pthread_mutex_init(&conn->dma_sock_lock, NULL);
	pthread_mutex_init(&conn->send_lock, NULL);
	pthread_mutex_init(&conn->pend.lock, NULL);
	srv_main_dma_init(conn);
	vfpm_caps_defaults(&conn->peer);
	vfpm_sock_rx_init(&conn->rx);
	loop_src_init(&conn->src, conn_handle);
	conn->async = (struct vfpm_async){ .complete = srv_conn_async_done, .opaque = conn };
	atomic_init(&conn->dl_version, conn->accepted_ms + srv->opts.version_timeout_ms);
	conn->first_run = true;
	return conn;
}

void srv_conn_free(struct vfpm_server_conn *conn)
{
	srv_main_dma_destroy(conn);
	pthread_mutex_destroy(&conn->send_lock);
	pthread_mutex_destroy(&conn->dma_sock_lock);
	pthread_mutex_destroy(&conn->pend.lock);
	pthread_rwlock_destroy(&conn->dma.lock);
	free(conn);
}

int srv_conn_start(struct vfpm_server_conn *conn, bool serve_now)
{
	struct vfpm_server *srv = conn->srv;
	uint64_t id;
	int err = loop_src_add(srv->loop, &conn->src, conn->sock, CONN_EVENTS, &id);

	if (err) {
		pthread_mutex_lock(&srv->lock);
		close(conn->sock);
		conn->sock = -1;
		srv_conn_gone_locked(conn);
		pthread_mutex_unlock(&srv->lock);
		srv_conn_free(conn);
		return err;
	}
	/* VERSION's deadline runs from now on. */
	loop_tick_need(srv->loop);
	/* conn may be served, and gone, on another thread already: only its id is safe. */
	if (serve_now)
		loop_run_id_once(srv->loop, id);
	return 0;
}

/* ---- the tick ---- */

static int64_t earliest_deadline(struct vfpm_server_conn *conn)
{
	int64_t d[3] = {
		atomic_load(&conn->dl_version),
		atomic_load(&conn->dl_msg), atomic_load(&conn->dl_out),
	};
	int64_t best = 0;

	for (int i = 0; i < 3; i++) {
		if (d[i] && (!best || d[i] < best))
			best = d[i];
	}
	return best;
}

bool srv_loop_tick(struct loop_node *n, int64_t now_ms)
{
	struct vfpm_server *srv = (struct vfpm_server *)((char *)n -
							 offsetof(struct vfpm_server, node));
	bool need = false;

	pthread_mutex_lock(&srv->lock);
	if (srv->accept_paused && srv->running && !srv->stopping) {
		/* Out of fds or memory a while ago: try again. */
		srv->accept_paused = false;
		loop_src_kick(&srv->listen_src);
	}
	for (struct vfpm_server_conn *c = srv->conns; c; c = c->next) {
		int64_t dl;
		int why;

		if (c->sock < 0 || atomic_load(&c->expired))
			continue;
		dl = earliest_deadline(c);
		if (!dl)
			continue;
		if (now_ms < dl) {
			need = true;
			continue;
		}
		why = dl == atomic_load(&c->dl_out) ? CONN_EXP_OUT :
		      dl == atomic_load(&c->dl_msg) ? CONN_EXP_MSG : CONN_EXP_VERSION;
		atomic_store(&c->expired, why);
		/* Its handler finds the end of the stream and says why from expired. */
		shutdown(c->sock, SHUT_RDWR);
	}
	pthread_mutex_unlock(&srv->lock);
	return need;
}
