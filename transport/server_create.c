// SPDX-License-Identifier: MIT
/*
 * Creating and destroying a server (its listening socket, its options and
 * limits), and what a program may observe of it.
 */
#include "server_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- creation ---- */

/* Is someone listening at path?  Decides whether a socket file there is stale. */
static bool socket_is_live(const struct sockaddr_un *addr)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return true;	/* cannot tell: do not remove it */
	live = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0 ||
	       errno != ECONNREFUSED;
	close(fd);
	return live;
}

static int listen_on(const char *path, mode_t mode)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, err;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode) || socket_is_live(&addr))
			return -EADDRINUSE;
		unlink(path);
	}
	/* Non-blocking: an event loop serves every socket and must never wait on one. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	/* Before listen(): nobody can connect while the umask's mode is in force. */
	if (chmod(path, mode) < 0 || listen(fd, 64) < 0) {
		err = -errno;
		unlink(path);
		close(fd);
		return err;
	}
	return fd;
}

static void cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

/* A server around a listening fd still to come (listen_fd -1). */
static int server_alloc(struct vfpm_device *dev, const struct vfpm_server_opts *opts,
			struct vfpm_server **out)
{
	struct vfpm_server *srv = calloc(1, sizeof(*srv));

	if (!srv)
		return -ENOMEM;
	if (opts)
		srv->opts = *opts;
	srv->opts.allowed_uids = NULL;
	if (srv->opts.n_allowed_uids) {
		uid_t *uids = opts->allowed_uids ?
			      calloc(srv->opts.n_allowed_uids, sizeof(*uids)) : NULL;

		if (!uids) {
			free(srv);
			return opts->allowed_uids ? -ENOMEM : -EINVAL;
		}
		memcpy(uids, opts->allowed_uids, srv->opts.n_allowed_uids * sizeof(*uids));
		srv->opts.allowed_uids = uids;
	}
	if (!srv->opts.socket_mode)
		srv->opts.socket_mode = 0600;
	if (!srv->opts.max_connections)
		srv->opts.max_connections = SRV_DEF_MAX_CONNECTIONS;
	if (!srv->opts.version_timeout_ms)
		srv->opts.version_timeout_ms = SRV_DEF_VERSION_TIMEOUT_MS;
	if (!srv->opts.msg_timeout_ms)
		srv->opts.msg_timeout_ms = SRV_DEF_MSG_TIMEOUT_MS;
	snprintf(srv->name, sizeof(srv->name), "server %p", (void *)srv);
	srv->dev = dev;
	vfpm_caps_defaults(&srv->caps);
	srv->caps.max_msg_fds = srv->opts.max_msg_fds ? srv->opts.max_msg_fds : SRV_DEF_MAX_MSG_FDS;
	if (srv->caps.max_msg_fds > VFPM_SOCK_MAX_FDS)
		srv->caps.max_msg_fds = VFPM_SOCK_MAX_FDS;
	if (srv->opts.max_data_xfer_size)
		srv->caps.max_data_xfer_size = srv->opts.max_data_xfer_size;
	srv->caps.max_dma_maps = srv->opts.max_dma_maps ? srv->opts.max_dma_maps :
				 SRV_DEF_MAX_DMA_MAPS;
	srv->caps.pgsizes = SRV_PGSIZES;
	srv->caps.write_multiple = true;
	srv->max_msg_size = VFIO_USER_HDR_SIZE + (size_t)srv->caps.max_data_xfer_size +
			    VFIO_USER_MSG_SLACK;
	srv->listen_fd = -1;
	srv->node.next = srv->node.prev = &srv->node;
	pthread_mutex_init(&srv->loop_lock, NULL);
	pthread_mutex_init(&srv->lock, NULL);
	cond_init_monotonic(&srv->cond);
	srv_reserve_fd_init();
	*out = srv;
	return 0;
}

/* Undo server_alloc (the listening fd is the caller's to close). */
static void server_free(struct vfpm_server *srv)
{
	pthread_mutex_destroy(&srv->loop_lock);
	pthread_cond_destroy(&srv->cond);
	pthread_mutex_destroy(&srv->lock);
	free((void *)srv->opts.allowed_uids);
	free(srv->path);
	free(srv);
}

int vfpm_server_create(struct vfpm_device *dev, const char *socket_path,
		       const struct vfpm_server_opts *opts, struct vfpm_server **out)
{
	struct vfpm_server *srv;
	int err;

	if (!dev || !socket_path || !out)
		return -EINVAL;
	err = server_alloc(dev, opts, &srv);
	if (err)
		return err;
	srv->path = strdup(socket_path);
	snprintf(srv->name, sizeof(srv->name), "%s", socket_path);
	if (!srv->path) {
		server_free(srv);
		return -ENOMEM;
	}
	srv->listen_fd = listen_on(socket_path, srv->opts.socket_mode);
	if (srv->listen_fd < 0) {
		err = srv->listen_fd;
		server_free(srv);
		return err;
	}
	*out = srv;
	return 0;
}

/* The listening socket's path, or "fd N", names the server in the log. */
static void server_name_from_fd(struct vfpm_server *srv, int fd)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	socklen_t len = sizeof(addr);

	if (getsockname(fd, (struct sockaddr *)&addr, &len) == 0 &&
	    len > offsetof(struct sockaddr_un, sun_path) && addr.sun_path[0])
		snprintf(srv->name, sizeof(srv->name), "%.*s",
			 (int)(len - offsetof(struct sockaddr_un, sun_path)), addr.sun_path);
	else
		snprintf(srv->name, sizeof(srv->name), "fd %d", fd);
}

int vfpm_server_create_fd(struct vfpm_device *dev, int listen_fd,
			  const struct vfpm_server_opts *opts, struct vfpm_server **out)
{
	int type = 0, listening = 0;
	socklen_t len = sizeof(type);
	struct vfpm_server *srv;
	int err;

	if (!dev || !out)
		return -EINVAL;
	if (listen_fd == -1)	/* connections come only through vfpm_server_serve_fd */
		return server_alloc(dev, opts, out);
	if (getsockopt(listen_fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	len = sizeof(listening);
	if (getsockopt(listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0)
		return -errno;
	if (type != SOCK_STREAM || !listening)
		return -EINVAL;
	err = server_alloc(dev, opts, &srv);
	if (err)
		return err;
	fcntl(listen_fd, F_SETFD, FD_CLOEXEC);
	fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
	srv->listen_fd = listen_fd;
	server_name_from_fd(srv, listen_fd);
	*out = srv;
	return 0;
}

void vfpm_server_destroy(struct vfpm_server *srv)
{
	if (!srv)
		return;
	vfpm_server_stop(srv);
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->path)
		unlink(srv->path);
	server_free(srv);
}

/* ---- observation ---- */

unsigned int vfpm_server_connection_count(struct vfpm_server *srv)
{
	unsigned int n;

	pthread_mutex_lock(&srv->lock);
	n = srv->live;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

int vfpm_server_wait_connections(struct vfpm_server *srv, unsigned int count, int timeout_ms)
{
	struct timespec deadline;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (timeout_ms >= 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&srv->lock);
	while (srv->live != count && !err) {
		if (timeout_ms < 0)
			pthread_cond_wait(&srv->cond, &srv->lock);
		else if (pthread_cond_timedwait(&srv->cond, &srv->lock, &deadline) == ETIMEDOUT)
			err = srv->live == count ? 0 : -ETIMEDOUT;
	}
	pthread_mutex_unlock(&srv->lock);
	return err;
}

struct vfpm_instance *vfpm_server_conn_instance(struct vfpm_server_conn *conn)
{
	return conn->inst;
}

void vfpm_server_conn_set_priv(struct vfpm_server_conn *conn, void *priv)
{
	conn->priv = priv;
}

void *vfpm_server_conn_priv(struct vfpm_server_conn *conn)
{
	return conn->priv;
}
