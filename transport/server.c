// SPDX-License-Identifier: MIT
/*
 * vfio-user server: replies, VERSION negotiation, serving one message,
 * accepting, and the server's life in an event loop (loop.h): started
 * servers and vfpm_server_run share the process's threaded loop, attached
 * ones are in a loop their caller drives (vfpm_loop_process).  Connections
 * are served by server_conn.c.  A handler never takes srv->lock while
 * calling into the device, so a blocked request cannot hold up accepting or
 * other connections.
 */
#include "server_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How long accepting pauses when the process is out of fds or memory. */
#define ACCEPT_RETRY_MS 100

/* ---- replies ---- */

void srv_reply_own(struct srv_reply *r, void *buf, size_t len)
{
	free(r->alloc);
	r->alloc = buf;
	r->iov[0] = (struct iovec){ .iov_base = buf, .iov_len = len };
	r->iovcnt = 1;
}

size_t srv_reply_max(const struct vfpm_server_conn *conn)
{
	return conn->srv->max_msg_size - VFIO_USER_HDR_SIZE;
}

static void srv_reply_release(struct srv_reply *r)
{
	for (unsigned int i = 0; i < r->fds.count; i++)
		close(r->fds.fd[i]);
	r->fds.count = 0;
	free(r->alloc);
	r->alloc = NULL;
	r->iovcnt = 0;
}

int srv_send_error(struct vfpm_server_conn *conn, const struct vfio_user_header *req, int err)
{
	struct vfio_user_header hdr = {
		.msg_id = req->msg_id, .command = req->command,
		.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
		.error_no = (uint32_t)err,
	};

	return srv_conn_send(conn, &hdr, NULL, 0, NULL, 0);
}

static int send_reply(struct vfpm_server_conn *conn, const struct vfio_user_header *req,
		      struct srv_reply *r)
{
	struct vfio_user_header hdr = {
		.msg_id = req->msg_id, .command = req->command,
		.flags = VFIO_USER_F_TYPE_REPLY,
	};

	return srv_conn_send(conn, &hdr, r->iov, r->iovcnt, r->fds.fd, r->fds.count);
}

/* ---- VERSION ---- */

static int handle_version(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r)
{
	struct vfio_user_version ver;
	struct vfio_user_version *out;
	struct vfpm_caps peer, mine;
	int twin[2] = { -1, -1 };
	char *json;
	size_t jlen;
	int err;

	if (conn->negotiated)
		return -EPROTO;
	if (m->len < sizeof(ver) || m->nfds)
		return -EINVAL;
	memcpy(&ver, m->payload, sizeof(ver));
	if (ver.major != VFIO_USER_MAJOR) {
		/* The specification: a server that cannot speak the major closes. */
		conn->close_after_reply = true;
		return -ENOTSUP;
	}
	vfpm_caps_defaults(&peer);
	err = vfpm_caps_parse((const char *)m->payload + sizeof(ver), m->len - sizeof(ver), &peer);
	if (err)
		return err;
	mine = conn->srv->caps;
	mine.pgsizes = peer.pgsizes & SRV_PGSIZES;
	if (!mine.pgsizes)
		return -EINVAL;
	/* The reply's capabilities are a subset of the proposal's. */
	mine.write_multiple = peer.write_multiple;
	/* Server-to-client DMA messages get a socket of their own when the client can. */
	if (peer.twin_socket && peer.max_msg_fds >= 1 &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, twin) == 0) {
		mine.twin_socket = true;
		mine.twin_fd_index = 0;
	}

	json = vfpm_caps_format(&mine);
	jlen = json ? strlen(json) + 1 : 0;
	out = json ? malloc(sizeof(*out) + jlen) : NULL;
	if (!out) {
		free(json);
		if (twin[0] >= 0) {
			close(twin[0]);
			close(twin[1]);
		}
		return -ENOMEM;
	}
	out->major = VFIO_USER_MAJOR;
	out->minor = ver.minor < VFIO_USER_MINOR ? ver.minor : VFIO_USER_MINOR;
	memcpy(out->data, json, jlen);
	free(json);
	srv_reply_own(r, out, sizeof(*out) + jlen);
	if (twin[0] >= 0) {
		r->fds.fd[r->fds.count++] = twin[1];	/* the client's end goes with the reply */
		srv_sock_set_send_timeout(twin[0], conn->srv->opts.msg_timeout_ms);
		srv_dma_set_twin_socket(conn, twin[0]);
	}

	conn->peer = peer;
	conn->dma.min_pgsize = mine.pgsizes & -mine.pgsizes;
	conn->negotiated = true;
	atomic_store(&conn->dl_version, 0);
	return 0;
}

/* ---- serving a message ---- */

static int process_msg(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r)
{
	if ((m->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_COMMAND)
		return -EPROTO;	/* neither a command nor a reply */
	if (m->fds_truncated || m->nfds > conn->srv->caps.max_msg_fds) {
		static struct vfpm_ratelimit rl;

		vfpm_logf_rl(&rl, VFPM_LOG_WARNING, "%s: sent more than max_msg_fds (%u) fds with "
			     "command %u; the rest were dropped unopened and the command is "
			     "refused (EINVAL)", conn->who, conn->srv->caps.max_msg_fds,
			     m->hdr.command);
		return -EINVAL;
	}
	if (m->hdr.command == VFIO_USER_VERSION)
		return handle_version(conn, m, r);
	if (!conn->negotiated)
		return -EPROTO;
	return srv_dispatch_command(conn, m, r);
}

const char *srv_drop_reason(struct vfpm_server_conn *conn, int err, char *buf, size_t len)
{
	const struct vfpm_server_opts *o = &conn->srv->opts;

	switch (err) {
	case -ESHUTDOWN:
		return NULL;
	case -ETIMEDOUT:
		if (!conn->negotiated)
			snprintf(buf, len, "did not complete VERSION within %u ms of connecting",
				 o->version_timeout_ms);
		else
			snprintf(buf, len, "began a message and did not finish it within %u ms",
				 o->msg_timeout_ms);
		return buf;
	case -EBADMSG:
		snprintf(buf, len, "sent a message header with msg_size %u, below the header's "
			 "16 bytes", conn->bad_msg_size);
		return buf;
	case -E2BIG:
		snprintf(buf, len, "sent a message of %u bytes, over the %zu this server accepts",
			 conn->bad_msg_size, conn->srv->max_msg_size);
		return buf;
	case -ECONNRESET:
		return "went away in the middle of a message";
	case -ECONNABORTED:
		return "asked for an unsupported protocol version";
	case -EAGAIN:
		snprintf(buf, len, "did not read its replies for %u ms", o->msg_timeout_ms);
		return buf;
	default:
		snprintf(buf, len, "connection error: %s", strerror(-err));
		return buf;
	}
}

bool srv_deliver_reply(struct vfpm_server_conn *conn, struct vfpm_msg *m)
{
	static struct vfpm_ratelimit rl;

	if ((m->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY)
		return false;
	if (srv_main_dma_deliver(conn, m))
		vfpm_logf_rl(&rl, VFPM_LOG_DEBUG, "%s: a reply (msg_id %u, command %u) that "
			     "answers nothing of ours; ignored", conn->who, m->hdr.msg_id,
			     m->hdr.command);
	vfpm_msg_release(m);
	return true;
}

/*
 * A command's outcome: err (negative: refused, logged) or the reply r.  m
 * and r are released; the answer is sent unless the client asked for none
 * or send is false.  0 or what sending failed with.
 */
static int answer(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r,
		  int err, bool send)
{
	if (err < 0)
		vfpm_logf(VFPM_LOG_DEBUG, "%s: command %u (msg_id %u) refused: %s", conn->who,
			  m->hdr.command, m->hdr.msg_id, strerror(-err));
	/* Fds the handler did not take are closed here, whatever happened. */
	vfpm_msg_release(m);
	if (send && !(m->hdr.flags & VFIO_USER_F_NO_REPLY))
		err = err < 0 ? srv_send_error(conn, &m->hdr, -err) : send_reply(conn, &m->hdr, r);
	else
		err = 0;
	srv_reply_release(r);
	return err;
}

int srv_serve_msg(struct vfpm_server_conn *conn, struct vfpm_msg *m)
{
	struct srv_reply r = { .iovcnt = 0 };
	int err;

	if (srv_deliver_reply(conn, m))
		return 0;
	err = process_msg(conn, m, &r);
	if (err == -EINPROGRESS) {
		/* The model completes it later: the message and the reply wait with it. */
		conn->pend.active = true;
		conn->pend.m = *m;
		conn->pend.r = r;
		return -EINPROGRESS;
	}
	err = answer(conn, m, &r, err, true);
	if (err)
		return err;
	return conn->close_after_reply ? -ECONNABORTED : 0;
}

int srv_finish_pending(struct vfpm_server_conn *conn)
{
	struct conn_pending *p = &conn->pend;
	/* A connection that is ending only waited for the model: nothing is sent. */
	int err = answer(conn, &p->m, &p->r, srv_region_finish(conn, &p->m, &p->r, p->result),
			 !conn->end_err);

	pthread_mutex_lock(&p->lock);
	p->active = false;
	p->done = false;
	pthread_mutex_unlock(&p->lock);
	return err;
}

void srv_sock_set_send_timeout(int sock, unsigned int timeout_ms)
{
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000, .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000,
	};

	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int srv_conn_open_instance(struct vfpm_server_conn *conn)
{
	struct vfpm_server *srv = conn->srv;
	int err;

	if (conn->inst)
		return 0;
	err = vfpm_device_open(srv->dev, &conn->inst);
	if (err) {
		conn->inst = NULL;
		return err;
	}
	vfpm_instance_set_dma(conn->inst, &srv_conn_dma_ops, conn);
	if (srv->opts.on_connect)
		srv->opts.on_connect(conn, srv->opts.opaque);
	return 0;
}

/* ---- accepting ---- */

/*
 * opts.allowed_uids: is the process at the other end of sock one of them?
 * The credentials are the ones the peer had when it connected (or created
 * the socket pair), as SO_PEERCRED reports them.
 */
static bool peer_allowed(const struct vfpm_server *srv, int sock)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (!srv->opts.n_allowed_uids)
		return true;
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred))
		return false;
	for (unsigned int i = 0; i < srv->opts.n_allowed_uids; i++) {
		if (srv->opts.allowed_uids[i] == cred.uid)
			return true;
	}
	return false;
}

/*
 * Take a place for a new connection on srv: within the device's limit and
 * the process's budget (srv->lock held).  0, or -EUSERS with the reason.
 */
static int conn_admit_locked(struct vfpm_server *srv, const char **why)
{
	if (srv->live >= srv->opts.max_connections) {
		*why = "this device's connection limit";
		return -EUSERS;
	}
	if (!srv_budget_take_connection(srv->live)) {
		*why = "the process's connection budget";
		return -EUSERS;
	}
	return 0;
}

static void log_refused(const struct vfpm_server *srv, int sock, const char *why)
{
	static struct vfpm_ratelimit rl;
	char who[160];
	pid_t pid;
	uid_t uid;

	if (!vfpm_log_enabled(VFPM_LOG_WARNING))
		return;
	srv_describe_peer(srv, sock, &pid, &uid, who, sizeof(who));
	vfpm_logf_rl(&rl, VFPM_LOG_WARNING, "%s: connection refused: %s", who, why);
}

/*
 * Out of fds: drop the newest connection, so that the queue never stalls.
 * accept4 fails with EMFILE before it looks at the queue, so whether one was
 * waiting is known only here: 1 one was dropped, 0 the queue is empty, -1
 * no reserve either (pause until a connection ends).
 */
static int accept_at_fd_limit(struct vfpm_server *srv, int err)
{
	static struct vfpm_ratelimit rl;
	char who[160];
	int dropped = srv_drop_with_reserve(srv, who, sizeof(who));

	if (dropped <= 0)
		return dropped;
	vfpm_logf_rl(&rl, VFPM_LOG_WARNING, "%s: connection refused: the process is out of "
		     "file descriptors (%s); the newest connection was closed", who,
		     strerror(err));
	return 1;
}

/* Accepting stops for a while: the tick tries again. */
#define ACCEPT_BATCH 32

enum accept_result { ACCEPT_EMPTY, ACCEPT_DONE, ACCEPT_PAUSE };

/*
 * Link a new connection and put it in the loop (srv->lock not held), and
 * with serve_now serve what it sent already on this thread: 0 or -errno.
 */
static int conn_admit(struct vfpm_server *srv, struct vfpm_server_conn *conn, bool *gone,
		      bool serve_now)
{
	const char *why = NULL;
	int err;

	pthread_mutex_lock(&srv->lock);
	err = srv->stopping ? -ESHUTDOWN : conn_admit_locked(srv, &why);
	if (err) {
		pthread_mutex_unlock(&srv->lock);
		if (why)
			log_refused(srv, conn->sock, why);
		return err;
	}
	conn->gone = gone;
	conn->next = srv->conns;
	srv->conns = conn;
	srv->live++;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	if (serve_now) {
		static struct vfpm_ratelimit connected_rl;

		vfpm_logf_rl(&connected_rl, VFPM_LOG_INFO, "%s: connected", conn->who);
	}
	return srv_conn_start(conn, serve_now);
}

void srv_conn_gone_locked(struct vfpm_server_conn *conn)
{
	struct vfpm_server *srv = conn->srv;
	struct vfpm_server_conn **pp;

	for (pp = &srv->conns; *pp && *pp != conn; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = conn->next;
	if (conn->gone)
		*conn->gone = true;
	srv->live--;
	srv_budget_put_connection();
	srv_reserve_fd_refill();
	/* A listener that paused for want of fds may find one now. */
	if (srv->accept_paused)
		loop_tick_need(srv->loop);
	pthread_cond_broadcast(&srv->cond);
}

static enum accept_result accept_one(struct vfpm_server *srv)
{
	struct vfpm_server_conn *conn;
	int sock = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	int err;

	if (sock < 0) {
		if (errno == EMFILE || errno == ENFILE) {
			int dropped = accept_at_fd_limit(srv, errno);

			return dropped > 0 ? ACCEPT_DONE : dropped == 0 ? ACCEPT_EMPTY : ACCEPT_PAUSE;
		}
		if (errno == ENOBUFS || errno == ENOMEM)
			return ACCEPT_PAUSE;
		if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
			return ACCEPT_DONE;
		return ACCEPT_EMPTY;	/* EAGAIN, or nothing more to do now */
	}
	if (!peer_allowed(srv, sock)) {
		/* Refused before anything is read or opened: the client sees the close. */
		log_refused(srv, sock, "its uid is not allowed");
		close(sock);
		return ACCEPT_DONE;
	}
	conn = srv_conn_new(srv, sock);
	if (!conn) {
		log_refused(srv, sock, "out of memory");
		close(sock);
		return ACCEPT_PAUSE;
	}
	/*
	 * A client sends VERSION as soon as it is connected: it is served
	 * here rather than on another thread woken for it.
	 */
	err = conn_admit(srv, conn, NULL, true);
	if (err == -ESHUTDOWN || err == -EUSERS) {
		close(sock);
		srv_conn_free(conn);
		return ACCEPT_DONE;
	}
	if (err) {
		/* srv_conn_start has closed and freed it. */
		vfpm_logf(VFPM_LOG_WARNING, "%s: connection refused: %s", srv->name,
			  strerror(-err));
		return ACCEPT_DONE;
	}
	return ACCEPT_DONE;
}

/* The listening socket's handler: accept what is queued, a batch at a time. */
static bool listen_handle(struct loop_src *src)
{
	struct vfpm_server *srv = (struct vfpm_server *)((char *)src -
							 offsetof(struct vfpm_server, listen_src));

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		bool stopping;

		pthread_mutex_lock(&srv->lock);
		stopping = srv->stopping;
		pthread_mutex_unlock(&srv->lock);
		if (stopping)
			return true;
		switch (accept_one(srv)) {
		case ACCEPT_EMPTY:
			return true;
		case ACCEPT_PAUSE:
			/* Polling the queue meanwhile would spin: the tick retries. */
			pthread_mutex_lock(&srv->lock);
			srv->accept_paused = true;
			pthread_mutex_unlock(&srv->lock);
			loop_tick_need(srv->loop);
			return true;
		case ACCEPT_DONE:
			break;
		}
	}
	/* More may be queued: after the other sources have had a turn. */
	loop_src_kick(src);
	return true;
}

/* ---- the server in a loop ---- */

/*
 * Become a user of a loop (want, or the process's when NULL; with any, the
 * one the server is in already, if it is): 0 or -errno.
 */
static int srv_loop_enter(struct vfpm_server *srv, struct vfpm_loop *want, bool any)
{
	int err = 0;

	pthread_mutex_lock(&srv->loop_lock);
	if (srv->loop && any) {
		srv->loop_users++;
	} else if (srv->loop) {
		if (want && want != srv->loop)
			err = -EBUSY;
		else if (!want && !srv->loop_global)
			err = -EBUSY;
		else
			srv->loop_users++;
	} else {
		struct vfpm_loop *loop = want;

		if (!loop)
			err = loop_global_get(&loop);
		if (!err) {
			srv->loop = loop;
			srv->loop_global = !want;
			srv->loop_users = 1;
			loop_link(loop, &srv->node);
			pthread_mutex_lock(&srv->lock);
			srv->caller_loop = want;
			pthread_mutex_unlock(&srv->lock);
		}
	}
	pthread_mutex_unlock(&srv->loop_lock);
	return err;
}

static void srv_loop_leave(struct vfpm_server *srv)
{
	pthread_mutex_lock(&srv->loop_lock);
	if (!--srv->loop_users) {
		pthread_mutex_lock(&srv->lock);
		srv->caller_loop = NULL;
		pthread_mutex_unlock(&srv->lock);
		loop_unlink(srv->loop, &srv->node);
		if (srv->loop_global)
			loop_global_put(srv->loop);
		srv->loop = NULL;
	}
	pthread_mutex_unlock(&srv->loop_lock);
}

/* Wait until *done (srv->lock held), driving a caller's loop when nobody else may. */
static void srv_wait(struct vfpm_server *srv, const bool *done_flag, const unsigned int *count)
{
	while (done_flag ? !*done_flag : *count != 0) {
		struct vfpm_loop *loop = srv->caller_loop;

		if (loop) {
			pthread_mutex_unlock(&srv->lock);
			loop_process_wait(loop, LOOP_TICK_MS);
			pthread_mutex_lock(&srv->lock);
		} else {
			pthread_cond_wait(&srv->cond, &srv->lock);
		}
	}
}

/* Start listening in loop (NULL: the process's): 0 or -errno. */
static int srv_listen_in(struct vfpm_server *srv, struct vfpm_loop *loop, bool run)
{
	int err;

	if (srv->listen_fd < 0)
		return -EINVAL;
	pthread_mutex_lock(&srv->lock);
	if (srv->running || srv->stopping) {
		pthread_mutex_unlock(&srv->lock);
		return -EBUSY;
	}
	srv->running = true;
	srv->starting = true;
	pthread_mutex_unlock(&srv->lock);
	err = srv_loop_enter(srv, loop, false);
	if (!err) {
		loop_src_init(&srv->listen_src, listen_handle);
		err = loop_src_add(srv->loop, &srv->listen_src, srv->listen_fd,
				   EPOLLIN | EPOLLET, NULL);
		if (err)
			srv_loop_leave(srv);
	}
	pthread_mutex_lock(&srv->lock);
	srv->starting = false;
	if (err)
		srv->running = false;
	else if (run)
		srv->run_waiting = true;	/* with starting cleared: stop leaves unlistening to run */
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	return err;
}

/* Stop listening and wait for the connections to be torn down (after stopping is set). */
static void srv_unlisten(struct vfpm_server *srv)
{
	loop_src_remove(&srv->listen_src, srv->listen_fd, false);
	pthread_mutex_lock(&srv->lock);
	srv_wait(srv, NULL, &srv->live);
	pthread_mutex_unlock(&srv->lock);
	srv_loop_leave(srv);
	pthread_mutex_lock(&srv->lock);
	srv->running = false;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}

int vfpm_server_run(struct vfpm_server *srv)
{
	int err;

	pthread_mutex_lock(&srv->lock);
	if (srv->stopping && !srv->running) {
		/* Stopped before it ran: return at once, as it would have. */
		pthread_mutex_unlock(&srv->lock);
		return srv->listen_fd < 0 ? -EINVAL : 0;
	}
	pthread_mutex_unlock(&srv->lock);
	err = srv_listen_in(srv, NULL, true);
	if (err)
		return err;
	pthread_mutex_lock(&srv->lock);
	while (!srv->stopping)
		pthread_cond_wait(&srv->cond, &srv->lock);
	pthread_mutex_unlock(&srv->lock);
	srv_unlisten(srv);
	pthread_mutex_lock(&srv->lock);
	srv->run_waiting = false;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	return 0;
}

int vfpm_server_start(struct vfpm_server *srv)
{
	return srv_listen_in(srv, NULL, false);
}

int vfpm_server_attach(struct vfpm_server *srv, struct vfpm_loop *loop)
{
	if (!srv || !loop)
		return -EINVAL;
	return srv_listen_in(srv, loop, false);
}

void vfpm_server_stop(struct vfpm_server *srv)
{
	bool unlisten;

	pthread_mutex_lock(&srv->lock);
	if (srv->stopping) {
		/* A concurrent stop, or vfpm_server_run's own, finishes the work. */
		while (srv->running || srv->run_waiting || srv->on_caller)
			pthread_cond_wait(&srv->cond, &srv->lock);
		pthread_mutex_unlock(&srv->lock);
		return;
	}
	srv->stopping = true;
	for (struct vfpm_server_conn *c = srv->conns; c; c = c->next) {
		if (c->sock >= 0)
			shutdown(c->sock, SHUT_RDWR);
		if (c->dma_sock >= 0)
			shutdown(c->dma_sock, SHUT_RDWR);
	}
	pthread_cond_broadcast(&srv->cond);
	/* A listener being put in its loop is there (or failed) first. */
	while (srv->starting)
		pthread_cond_wait(&srv->cond, &srv->lock);
	/* vfpm_server_run stops listening on its own thread. */
	unlisten = srv->running && !srv->run_waiting;
	pthread_mutex_unlock(&srv->lock);

	if (unlisten)
		srv_unlisten(srv);
	pthread_mutex_lock(&srv->lock);
	while (srv->running || srv->run_waiting)
		pthread_cond_wait(&srv->cond, &srv->lock);
	/* Connections served by vfpm_server_serve_fd end before their callers return. */
	srv_wait(srv, NULL, &srv->on_caller);
	pthread_mutex_unlock(&srv->lock);
}

int vfpm_server_serve_fd(struct vfpm_server *srv, int sock)
{
	struct vfpm_server_conn *conn;
	int type = 0, err, flags;
	socklen_t len = sizeof(type);
	bool gone = false;

	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
		err = -errno;
		close(sock);
		return err;
	}
	if (type != SOCK_STREAM) {
		close(sock);
		return -EINVAL;
	}
	if (!peer_allowed(srv, sock)) {
		log_refused(srv, sock, "its uid is not allowed");
		close(sock);
		return -EACCES;
	}
	flags = fcntl(sock, F_GETFL);
	fcntl(sock, F_SETFD, FD_CLOEXEC);
	if (flags < 0 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0) {
		err = -errno;
		close(sock);
		return err;
	}
	pthread_mutex_lock(&srv->lock);
	if (srv->stopping) {
		pthread_mutex_unlock(&srv->lock);
		close(sock);
		return -ESHUTDOWN;
	}
	srv->on_caller++;
	pthread_mutex_unlock(&srv->lock);

	/* Its loop is the server's, or the process's while the server has none. */
	err = srv_loop_enter(srv, NULL, true);
	conn = err ? NULL : srv_conn_new(srv, sock);
	if (!conn) {
		close(sock);
		if (!err) {
			srv_loop_leave(srv);
			err = -ENOMEM;
		}
	} else {
		err = conn_admit(srv, conn, &gone, false);
		if (err == -ESHUTDOWN || err == -EUSERS) {
			close(sock);
			srv_conn_free(conn);
		}
		if (!err) {
			pthread_mutex_lock(&srv->lock);
			srv_wait(srv, &gone, NULL);
			pthread_mutex_unlock(&srv->lock);
		}
		srv_loop_leave(srv);
	}

	pthread_mutex_lock(&srv->lock);
	srv->on_caller--;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	return err;
}
