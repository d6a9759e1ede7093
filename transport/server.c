// SPDX-License-Identifier: MIT
/*
 * vfio-user server: the listening socket, one thread per connection, the
 * message loop, VERSION negotiation and error replies.
 *
 * Threads: vfpm_server_run accepts on the caller's thread and reaps finished
 * connections; vfpm_server_start hands the same work to the process's one
 * acceptor thread (server_acceptor.c).  Each connection thread opens the
 * device instance, serves its messages in order and tears down.
 * vfpm_server_serve_fd runs the same connection loop on its caller's thread,
 * which then unlinks and frees the connection itself.  A connection thread
 * never takes srv->lock while calling into the device, so a blocked request
 * cannot hold up accepting, reaping or other connections.
 */
#include "server_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
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

static int send_error(struct vfpm_server_conn *conn, const struct vfio_user_header *req, int err)
{
	struct vfio_user_header hdr = {
		.msg_id = req->msg_id, .command = req->command,
		.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
		.error_no = (uint32_t)err,
	};

	int ret;

	pthread_mutex_lock(&conn->send_lock);
	ret = vfpm_sock_send_msg(conn->sock, &hdr, NULL, 0, NULL, 0);
	pthread_mutex_unlock(&conn->send_lock);
	return ret;
}

static int send_reply(struct vfpm_server_conn *conn, const struct vfio_user_header *req,
		      struct srv_reply *r)
{
	struct vfio_user_header hdr = {
		.msg_id = req->msg_id, .command = req->command,
		.flags = VFIO_USER_F_TYPE_REPLY,
	};

	int ret;

	pthread_mutex_lock(&conn->send_lock);
	ret = vfpm_sock_send_msgv(conn->sock, &hdr, r->iov, r->iovcnt, r->fds.fd, r->fds.count);
	pthread_mutex_unlock(&conn->send_lock);
	return ret;
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
	return 0;
}

/* ---- the message loop ---- */

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

/* Why a connection is dropped, for the log: NULL for an ordinary goodbye. */
static const char *drop_reason(struct vfpm_server_conn *conn, int err, char *buf, size_t len)
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

/* Serve one message: 0 to go on, negative when the connection must close. */
static int serve_one(struct vfpm_server_conn *conn)
{
	const struct vfpm_server_opts *o = &conn->srv->opts;
	struct vfpm_recv_limits lim = {
		.max_size = conn->srv->max_msg_size,
		.max_fds = conn->srv->caps.max_msg_fds,
		.deadline_ms = conn->negotiated ? 0 : conn->accepted_ms + o->version_timeout_ms,
		.msg_timeout_ms = o->msg_timeout_ms,
	};
	struct vfpm_msg m;
	struct srv_reply r = { .iovcnt = 0 };
	bool no_reply;
	int err;

	err = vfpm_sock_rx_next(&conn->rx, conn->sock, &m, &lim);
	if (err == -EBADMSG || err == -E2BIG) {
		/* The size cannot be believed: say why, then drop the stream. */
		conn->bad_msg_size = m.hdr.msg_size;
		send_error(conn, &m.hdr, err == -EBADMSG ? EINVAL : E2BIG);
		return err;
	}
	if (err)
		return err;
	/* A reply is the answer to a DMA message of ours, never a command. */
	if ((m.hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY) {
		static struct vfpm_ratelimit rl;

		if (srv_main_dma_deliver(conn, &m))
			vfpm_logf_rl(&rl, VFPM_LOG_DEBUG, "%s: a reply (msg_id %u, command %u) "
				     "that answers nothing of ours; ignored", conn->who,
				     m.hdr.msg_id, m.hdr.command);
		vfpm_msg_release(&m);
		return 0;
	}

	no_reply = m.hdr.flags & VFIO_USER_F_NO_REPLY;
	err = process_msg(conn, &m, &r);
	if (err < 0)
		vfpm_logf(VFPM_LOG_DEBUG, "%s: command %u (msg_id %u) refused: %s", conn->who,
			  m.hdr.command, m.hdr.msg_id, strerror(-err));
	/* Fds the handler did not take are closed here, whatever happened. */
	vfpm_msg_release(&m);
	if (!no_reply)
		err = err < 0 ? send_error(conn, &m.hdr, -err) : send_reply(conn, &m.hdr, &r);
	else
		err = 0;
	srv_reply_release(&r);
	if (err)
		return err;
	return conn->close_after_reply ? -ECONNABORTED : 0;
}

void srv_sock_set_send_timeout(int sock, unsigned int timeout_ms)
{
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000, .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000,
	};

	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void conn_teardown(struct vfpm_server_conn *conn)
{
	struct vfpm_server *srv = conn->srv;

	/* A model thread waiting for a DMA reply from this client gives up now. */
	pthread_mutex_lock(&srv->lock);
	if (conn->dma_sock >= 0)
		shutdown(conn->dma_sock, SHUT_RDWR);
	pthread_mutex_unlock(&srv->lock);
	srv_dma_destroy(&conn->dma);
	if (conn->inst)
		vfpm_instance_close(conn->inst);
	conn->inst = NULL;

	pthread_mutex_lock(&srv->lock);
	/* Closed under the lock: vfpm_server_stop shuts down only open sockets. */
	close(conn->sock);
	conn->sock = -1;
	if (conn->dma_sock >= 0)
		close(conn->dma_sock);
	conn->dma_sock = -1;
	conn->finished = true;
	srv->live--;
	srv_budget_put_connection();
	srv_reserve_fd_refill();
	pthread_cond_broadcast(&srv->cond);
	/* Let the accept loop join this thread. */
	if (srv->wake_fd >= 0)
		eventfd_write(srv->wake_fd, 1);
	pthread_mutex_unlock(&srv->lock);
	srv_acceptor_conn_finished(srv);
}

/* Serve the connection until it ends, then tear it down. */
static void conn_serve(struct vfpm_server_conn *conn)
{
	struct vfpm_server *srv = conn->srv;
	const char *why;
	char buf[160];
	int err;

	conn->serving_thread = pthread_self();
	conn->serving = true;
	vfpm_sock_rx_init(&conn->rx);
	/*
	 * Messages are served in the order they came, each one already
	 * buffered before the socket is read again: a request written in one
	 * piece costs one recvmsg and its reply one sendmsg.
	 */
	while ((err = serve_one(conn)) == 0)
		;
	/* What came after the last message served (and its fds) is dropped. */
	vfpm_sock_rx_release(&conn->rx);
	/* No more replies will come: a model waiting for one gives up now. */
	srv_main_dma_close(conn);
	why = drop_reason(conn, err, buf, sizeof(buf));
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
	if (conn->inst && srv->opts.on_disconnect)
		srv->opts.on_disconnect(conn, srv->opts.opaque);
	conn_teardown(conn);
}

static void *conn_thread(void *arg)
{
	conn_serve(arg);
	return NULL;
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

/* ---- accepting and reaping ---- */

static void conn_free(struct vfpm_server_conn *conn)
{
	srv_main_dma_destroy(conn);
	pthread_mutex_destroy(&conn->send_lock);
	pthread_mutex_destroy(&conn->dma_sock_lock);
	pthread_rwlock_destroy(&conn->dma.lock);
	free(conn);
}

/* A connection around sock, not linked yet; NULL when out of memory. */
static struct vfpm_server_conn *conn_new(struct vfpm_server *srv, int sock)
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
	srv_sock_set_send_timeout(sock, srv->opts.msg_timeout_ms);
	srv_describe_peer(srv, sock, &conn->peer_pid, &conn->peer_uid, conn->who,
			  sizeof(conn->who));
	pthread_mutex_init(&conn->dma_sock_lock, NULL);
	pthread_mutex_init(&conn->send_lock, NULL);
	srv_main_dma_init(conn);
	vfpm_caps_defaults(&conn->peer);
	return conn;
}

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

/* Out of fds: drop the newest connection, so that the queue never stalls. */
static bool accept_at_fd_limit(struct vfpm_server *srv, int err)
{
	static struct vfpm_ratelimit rl;
	char who[160];
	int dropped = srv_drop_with_reserve(srv, who, sizeof(who));

	if (dropped <= 0)
		return dropped == 0;	/* -1, no reserve either: pause until a connection ends */
	vfpm_logf_rl(&rl, VFPM_LOG_WARNING, "%s: connection refused: the process is out of "
		     "file descriptors (%s); the newest connection was closed", who,
		     strerror(err));
	return true;
}

/*
 * false when accepting should pause: out of fds or memory even with the
 * reserve given up, the pending connection stays queued until a connection
 * finishes (polling the listening socket meanwhile would spin).
 */
bool srv_accept_one(struct vfpm_server *srv)
{
	static struct vfpm_ratelimit connected_rl;
	struct vfpm_server_conn *conn;
	const char *why = NULL;
	int sock = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	int err;

	if (sock < 0) {
		if (errno == EMFILE || errno == ENFILE)
			return accept_at_fd_limit(srv, errno);
		return !(errno == ENOBUFS || errno == ENOMEM);
	}
	if (!peer_allowed(srv, sock)) {
		/* Refused before anything is read or opened: the client sees the close. */
		log_refused(srv, sock, "its uid is not allowed");
		close(sock);
		return true;
	}
	pthread_mutex_lock(&srv->lock);
	err = srv->stopping ? -ESHUTDOWN : conn_admit_locked(srv, &why);
	pthread_mutex_unlock(&srv->lock);
	if (err) {
		if (why)
			log_refused(srv, sock, why);
		close(sock);
		return true;
	}
	conn = conn_new(srv, sock);
	if (!conn) {
		log_refused(srv, sock, "out of memory");
		srv_budget_put_connection();
		close(sock);
		return false;
	}

	pthread_mutex_lock(&srv->lock);
	err = srv->stopping ? ESHUTDOWN : pthread_create(&conn->thread, &srv->thread_attr,
							  conn_thread, conn);
	if (err) {
		pthread_mutex_unlock(&srv->lock);
		if (err != ESHUTDOWN)
			vfpm_logf(VFPM_LOG_WARNING, "%s: connection refused: cannot start its "
				  "thread (%s)", conn->who, strerror(err));
		srv_budget_put_connection();
		close(sock);
		conn_free(conn);
		return true;
	}
	conn->next = srv->conns;
	srv->conns = conn;
	srv->live++;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	vfpm_logf_rl(&connected_rl, VFPM_LOG_INFO, "%s: connected", conn->who);
	return true;
}

void srv_reap(struct vfpm_server *srv, bool all)
{
	for (;;) {
		struct vfpm_server_conn **pp, *conn = NULL;

		pthread_mutex_lock(&srv->lock);
		for (pp = &srv->conns; *pp; pp = &(*pp)->next) {
			if (!(*pp)->on_caller && (all || (*pp)->finished)) {
				conn = *pp;
				*pp = conn->next;
				break;
			}
		}
		pthread_mutex_unlock(&srv->lock);
		if (!conn)
			return;
		pthread_join(conn->thread, NULL);
		conn_free(conn);
	}
}

int vfpm_server_run(struct vfpm_server *srv)
{
	struct pollfd pfd[2] = {
		{ .fd = srv->listen_fd, .events = POLLIN },
		{ .fd = -1, .events = POLLIN },
	};
	bool paused = false;

	if (srv->listen_fd < 0)
		return -EINVAL;
	pthread_mutex_lock(&srv->lock);
	if (srv->running) {
		pthread_mutex_unlock(&srv->lock);
		return -EBUSY;
	}
	if (srv->stopping) {
		/* Stopped before it ran: return at once, as the loop would. */
		pthread_mutex_unlock(&srv->lock);
		return 0;
	}
	srv->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->wake_fd < 0) {
		int err = -errno;

		pthread_mutex_unlock(&srv->lock);
		return err;
	}
	pfd[1].fd = srv->wake_fd;
	srv->running = true;
	pthread_mutex_unlock(&srv->lock);

	for (;;) {
		bool stopping;
		eventfd_t v;
		int n;

		/* Paused: retry accepting after a connection finishes or a delay. */
		pfd[0].fd = paused ? -1 : srv->listen_fd;
		n = poll(pfd, 2, paused ? ACCEPT_RETRY_MS : -1);
		if (n < 0 && errno != EINTR)
			break;
		paused = false;
		if (n > 0 && (pfd[1].revents & POLLIN))
			eventfd_read(srv->wake_fd, &v);
		pthread_mutex_lock(&srv->lock);
		stopping = srv->stopping;
		pthread_mutex_unlock(&srv->lock);
		if (stopping)
			break;
		if (n > 0 && (pfd[0].revents & POLLIN))
			paused = !srv_accept_one(srv);
		srv_reap(srv, false);
	}
	/* vfpm_server_stop has shut the sockets down: every thread finishes. */
	srv_reap(srv, true);

	pthread_mutex_lock(&srv->lock);
	srv->running = false;
	close(srv->wake_fd);
	srv->wake_fd = -1;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	return 0;
}

int vfpm_server_start(struct vfpm_server *srv)
{
	int err;

	if (srv->listen_fd < 0)
		return -EINVAL;
	pthread_mutex_lock(&srv->lock);
	if (srv->started || srv->running || srv->stopping) {
		pthread_mutex_unlock(&srv->lock);
		return -EBUSY;
	}
	/*
	 * Claimed first, attached without srv->lock (the acceptor takes it
	 * under its own locks); a stop meanwhile waits for attaching to end.
	 */
	srv->started = srv->running = srv->attaching = true;
	pthread_mutex_unlock(&srv->lock);
	err = srv_acceptor_attach(srv);
	pthread_mutex_lock(&srv->lock);
	srv->attaching = false;
	if (err)
		srv->started = srv->running = false;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	return err;
}

void vfpm_server_stop(struct vfpm_server *srv)
{
	bool detach;

	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	for (struct vfpm_server_conn *c = srv->conns; c; c = c->next) {
		if (c->sock >= 0)
			shutdown(c->sock, SHUT_RDWR);
		if (c->dma_sock >= 0)
			shutdown(c->dma_sock, SHUT_RDWR);
	}
	if (srv->wake_fd >= 0)
		eventfd_write(srv->wake_fd, 1);
	while (srv->attaching)
		pthread_cond_wait(&srv->cond, &srv->lock);
	detach = srv->started;
	srv->started = false;
	pthread_mutex_unlock(&srv->lock);

	if (detach) {
		/* Then nobody accepts for srv, and its connection threads are ours to join. */
		srv_acceptor_detach(srv);
		srv_reap(srv, true);
		pthread_mutex_lock(&srv->lock);
		srv->running = false;
		pthread_cond_broadcast(&srv->cond);
		pthread_mutex_unlock(&srv->lock);
	}

	pthread_mutex_lock(&srv->lock);
	/* A concurrent stop, or vfpm_server_run on its caller's thread, finishes first. */
	while (srv->running)
		pthread_cond_wait(&srv->cond, &srv->lock);
	/* Connections served by vfpm_server_serve_fd end on their callers' threads. */
	while (srv->on_caller)
		pthread_cond_wait(&srv->cond, &srv->lock);
	pthread_mutex_unlock(&srv->lock);
}

int vfpm_server_serve_fd(struct vfpm_server *srv, int sock)
{
	struct vfpm_server_conn *conn, **pp;
	const char *why = NULL;
	int type = 0, err;
	socklen_t len = sizeof(type);

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
	fcntl(sock, F_SETFD, FD_CLOEXEC);
	conn = conn_new(srv, sock);
	if (!conn) {
		close(sock);
		return -ENOMEM;
	}
	conn->on_caller = true;

	pthread_mutex_lock(&srv->lock);
	err = srv->stopping ? -ESHUTDOWN : conn_admit_locked(srv, &why);
	if (err) {
		pthread_mutex_unlock(&srv->lock);
		if (why)
			vfpm_logf(VFPM_LOG_WARNING, "%s: connection refused: %s", conn->who, why);
		close(sock);
		conn_free(conn);
		return err;
	}
	conn->next = srv->conns;
	srv->conns = conn;
	srv->live++;
	srv->on_caller++;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);

	conn_serve(conn);

	pthread_mutex_lock(&srv->lock);
	for (pp = &srv->conns; *pp != conn; pp = &(*pp)->next)
		;
	*pp = conn->next;
	srv->on_caller--;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	conn_free(conn);
	return 0;
}
