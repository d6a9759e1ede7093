// SPDX-License-Identifier: MIT
/*
 * The vfio-user backend of the client: one connection, one request at a
 * time (requests from several threads are serialised on the connection).
 * Replies are read through the connection's receive buffer (tran_sock.c),
 * so a reply that fits costs one recvmsg, its fds kept with it.
 */
#include "client_internal.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "negotiate.h"
#include "tran_sock.h"
#include "wire.h"

#define CLIENT_MAX_MSG_FDS 8u
#define CLIENT_MAX_DATA_XFER (1u << 20)

struct sock_client {
	struct vfpm_client base;
	int sock;			/* immutable */
	struct vfpm_caps server;	/* immutable after VERSION */
	struct sock_dma *dma;		/* immutable: twin-socket DMA service, or NULL */
	struct vfpm_recv_limits rx_limits;	/* immutable */
	/*
	 * One request in flight: protects next_id, the order on the socket and
	 * rx (what the server sent that is not read yet).
	 */
	pthread_mutex_t lock;
	uint16_t next_id;
	struct vfpm_sock_rx rx;
};

static struct sock_client *to_sock(struct vfpm_client *c)
{
	return (struct sock_client *)c;
}

/* An errno from the wire: positive and plausible, or EIO. */
static int reply_errno(uint32_t error_no)
{
	return error_no && error_no < 4096 ? -(int)error_no : -EIO;
}

/*
 * Send a command and wait for its reply (0, reply owned by the caller) or
 * return the error (nothing owned).  A command from the server in between
 * is refused: this client offers no DMA_READ / DMA_WRITE service.
 */
static int request(struct sock_client *s, uint16_t cmd, const struct iovec *iov,
		   unsigned int iovcnt, const int *fds, unsigned int nfds, struct vfpm_msg *reply)
{
	struct vfio_user_header hdr = { .command = cmd, .flags = VFIO_USER_F_TYPE_COMMAND };
	int err;

	pthread_mutex_lock(&s->lock);
	hdr.msg_id = s->next_id++;
	err = vfpm_sock_send_msgv(s->sock, &hdr, iov, iovcnt, fds, nfds);
	while (!err) {
		uint32_t type;

		err = vfpm_sock_rx_next(&s->rx, s->sock, reply, &s->rx_limits);
		if (err)
			break;
		type = reply->hdr.flags & VFIO_USER_F_TYPE_MASK;
		if (type == VFIO_USER_F_TYPE_REPLY && reply->hdr.msg_id == hdr.msg_id)
			break;
		if (type == VFIO_USER_F_TYPE_COMMAND && !(reply->hdr.flags & VFIO_USER_F_NO_REPLY)) {
			struct vfio_user_header refuse = {
				.msg_id = reply->hdr.msg_id, .command = reply->hdr.command,
				.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR,
				.error_no = ENOTSUP,
			};

			err = vfpm_sock_send_msg(s->sock, &refuse, NULL, 0, NULL, 0);
		}
		vfpm_msg_release(reply);
	}
	pthread_mutex_unlock(&s->lock);
	if (err)
		return err == -ESHUTDOWN ? -ECONNRESET : err;
	if (reply->hdr.flags & VFIO_USER_F_ERROR) {
		err = reply_errno(reply->hdr.error_no);
		vfpm_msg_release(reply);
		return err;
	}
	if (reply->hdr.command != cmd) {
		vfpm_msg_release(reply);
		return -EPROTO;
	}
	return 0;
}

static int request1(struct sock_client *s, uint16_t cmd, const void *payload, size_t len,
		    const int *fds, unsigned int nfds, struct vfpm_msg *reply)
{
	struct iovec iov = { .iov_base = (void *)payload, .iov_len = len };

	return request(s, cmd, &iov, payload ? 1 : 0, fds, nfds, reply);
}

/* A request whose reply must carry at least minlen bytes. */
static int request_min(struct sock_client *s, uint16_t cmd, const void *payload, size_t len,
		       const int *fds, unsigned int nfds, struct vfpm_msg *reply, size_t minlen)
{
	int err = request1(s, cmd, payload, len, fds, nfds, reply);

	if (!err && reply->len < minlen) {
		vfpm_msg_release(reply);
		err = -EPROTO;
	}
	return err;
}

/* ---- commands ---- */

static int sock_get_info(struct vfpm_client *c, struct vfio_device_info *info)
{
	struct vfio_user_device_info req = { .argsz = sizeof(req) };
	struct vfpm_msg reply;
	int err = request_min(to_sock(c), VFIO_USER_DEVICE_GET_INFO, &req, sizeof(req), NULL, 0,
			      &reply, sizeof(req));

	if (err)
		return err;
	memset(info, 0, sizeof(*info));
	memcpy(info, reply.payload, sizeof(req));
	vfpm_msg_release(&reply);
	return 0;
}

static int sock_get_region_info(struct vfpm_client *c, uint32_t index,
				struct vfio_region_info *info, size_t size, int *fd)
{
	struct vfio_user_region_info req = { .argsz = (uint32_t)size, .index = index };
	struct vfpm_msg reply;
	int err = request_min(to_sock(c), VFIO_USER_DEVICE_GET_REGION_INFO, &req, sizeof(req),
			      NULL, 0, &reply, sizeof(req));

	if (err)
		return err;
	memset(info, 0, size);
	memcpy(info, reply.payload, reply.len < size ? reply.len : size);
	*fd = vfpm_msg_take_fd(&reply, 0);
	vfpm_msg_release(&reply);
	return 0;
}

static int sock_get_irq_info(struct vfpm_client *c, uint32_t index, struct vfio_irq_info *info)
{
	struct vfio_user_irq_info req = { .argsz = sizeof(req), .index = index };
	struct vfpm_msg reply;
	int err = request_min(to_sock(c), VFIO_USER_DEVICE_GET_IRQ_INFO, &req, sizeof(req), NULL, 0,
			      &reply, sizeof(req));

	if (err)
		return err;
	memcpy(info, reply.payload, sizeof(*info));
	vfpm_msg_release(&reply);
	return 0;
}

static int set_irqs_one(struct sock_client *s, uint32_t flags, uint32_t index, uint32_t start,
			uint32_t count, const void *data, size_t data_len, const int *fds,
			unsigned int nfds)
{
	struct vfio_user_irq_set req = {
		.argsz = (uint32_t)(sizeof(req) + data_len), .flags = flags, .index = index,
		.start = start, .count = count,
	};
	struct iovec iov[2] = {
		{ .iov_base = &req, .iov_len = sizeof(req) },
		{ .iov_base = (void *)data, .iov_len = data_len },
	};
	struct vfpm_msg reply;
	int err = request(s, VFIO_USER_DEVICE_SET_IRQS, iov, data_len ? 2 : 1, fds, nfds, &reply);

	if (!err)
		vfpm_msg_release(&reply);
	return err;
}

/*
 * DATA_EVENTFD: the eventfds travel by SCM_RIGHTS, so a message cannot say
 * "this vector: none" in the middle of a range, nor carry more fds than the
 * server takes.  When either matters, a first message without fds sets up
 * the whole range with no eventfd (what the ioctl does for fds of -1,
 * enabling MSI / MSI-X with start + count vectors), then each run of
 * assigned vectors follows, in as many messages as the fd limit needs.
 */
static int sock_set_irqs(struct vfpm_client *c, uint32_t flags, uint32_t index, uint32_t start,
			 uint32_t count, const void *data, size_t data_len)
{
	struct sock_client *s = to_sock(c);
	const uint32_t max_fds = s->server.max_msg_fds < VFPM_SOCK_MAX_FDS ?
				 s->server.max_msg_fds : VFPM_SOCK_MAX_FDS;
	const int32_t *efd = data;
	int fds[VFPM_SOCK_MAX_FDS];
	bool all_assigned = true;
	uint32_t i = 0;
	int err;

	if ((flags & VFIO_IRQ_SET_DATA_TYPE_MASK) != VFIO_IRQ_SET_DATA_EVENTFD || count == 0)
		return set_irqs_one(s, flags, index, start, count, data, data_len, NULL, 0);
	for (uint32_t k = 0; k < count; k++)
		all_assigned &= efd[k] >= 0;
	if (all_assigned && count <= max_fds) {
		for (uint32_t k = 0; k < count; k++)
			fds[k] = efd[k];
		return set_irqs_one(s, flags, index, start, count, NULL, 0, fds, count);
	}
	err = set_irqs_one(s, flags, index, start, count, NULL, 0, NULL, 0);
	while (!err && i < count) {
		uint32_t n = 0;

		if (efd[i] < 0) {
			i++;
			continue;
		}
		if (!max_fds)
			return -ENOTSUP;
		while (i + n < count && efd[i + n] >= 0 && n < max_fds) {
			fds[n] = efd[i + n];
			n++;
		}
		err = set_irqs_one(s, flags, index, start + i, n, NULL, 0, fds, n);
		i += n;
	}
	return err;
}

static ssize_t sock_region_read(struct vfpm_client *c, uint32_t index, uint64_t offset,
				void *buf, size_t count)
{
	struct sock_client *s = to_sock(c);
	size_t done = 0;

	do {
		size_t chunk = count - done < s->server.max_data_xfer_size ?
			       count - done : s->server.max_data_xfer_size;
		struct vfio_user_region_access req = {
			.offset = offset + done, .region = index, .count = (uint32_t)chunk,
		};
		struct vfio_user_region_access rep;
		struct vfpm_msg reply;
		int err = request_min(s, VFIO_USER_REGION_READ, &req, sizeof(req), NULL, 0, &reply,
				      sizeof(rep));

		if (err)
			return done ? (ssize_t)done : err;
		memcpy(&rep, reply.payload, sizeof(rep));
		if (rep.count > chunk || reply.len != sizeof(rep) + rep.count) {
			vfpm_msg_release(&reply);
			return -EPROTO;
		}
		memcpy((uint8_t *)buf + done, (uint8_t *)reply.payload + sizeof(rep), rep.count);
		vfpm_msg_release(&reply);
		done += rep.count;
		if (rep.count < chunk)
			break;
	} while (done < count);
	return (ssize_t)done;
}

static ssize_t sock_region_write(struct vfpm_client *c, uint32_t index, uint64_t offset,
				 const void *buf, size_t count)
{
	struct sock_client *s = to_sock(c);
	size_t done = 0;

	do {
		size_t chunk = count - done < s->server.max_data_xfer_size ?
			       count - done : s->server.max_data_xfer_size;
		struct vfio_user_region_access req = {
			.offset = offset + done, .region = index, .count = (uint32_t)chunk,
		};
		struct iovec iov[2] = {
			{ .iov_base = &req, .iov_len = sizeof(req) },
			{ .iov_base = (uint8_t *)buf + done, .iov_len = chunk },
		};
		struct vfio_user_region_access rep;
		struct vfpm_msg reply;
		int err = request(s, VFIO_USER_REGION_WRITE, iov, 2, NULL, 0, &reply);

		if (!err && reply.len < sizeof(rep)) {
			vfpm_msg_release(&reply);
			err = -EPROTO;
		}
		if (err)
			return done ? (ssize_t)done : err;
		memcpy(&rep, reply.payload, sizeof(rep));
		vfpm_msg_release(&reply);
		if (rep.count > chunk)
			return -EPROTO;
		done += rep.count;
		if (rep.count < chunk)
			break;
	} while (done < count);
	return (ssize_t)done;
}

static int sock_region_write_multi(struct vfpm_client *c, const struct vfpm_client_write *w,
				   unsigned int n)
{
	struct sock_client *s = to_sock(c);
	struct vfio_user_write_multi_entry *wr;
	unsigned int i = 0;
	int err = 0;

	if (!s->server.write_multiple) {
		for (i = 0; i < n && !err; i++) {
			ssize_t done = sock_region_write(c, w[i].index, w[i].offset, w[i].data,
							 w[i].count);

			err = done < 0 ? (int)done : (size_t)done != w[i].count ? -EIO : 0;
		}
		return err;
	}
	wr = calloc(n < VFIO_USER_MULTI_MAX ? n : VFIO_USER_MULTI_MAX, sizeof(*wr));
	if (!wr)
		return -ENOMEM;
	while (i < n && !err) {
		struct vfio_user_write_multi_hdr hdr = {
			.wr_cnt = n - i < VFIO_USER_MULTI_MAX ? n - i : VFIO_USER_MULTI_MAX,
		};
		struct iovec iov[2] = {
			{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
			{ .iov_base = wr, .iov_len = hdr.wr_cnt * sizeof(*wr) },
		};
		struct vfpm_msg reply;

		for (uint64_t k = 0; k < hdr.wr_cnt; k++) {
			const struct vfpm_client_write *one = &w[i + k];

			wr[k] = (struct vfio_user_write_multi_entry){
				.offset = one->offset, .region = one->index, .count = one->count,
			};
			memcpy(wr[k].data, one->data, sizeof(wr[k].data));
		}
		err = request(s, VFIO_USER_REGION_WRITE_MULTI, iov, 2, NULL, 0, &reply);
		if (!err)
			vfpm_msg_release(&reply);
		i += (unsigned int)hdr.wr_cnt;
	}
	free(wr);
	return err;
}

static int sock_reset(struct vfpm_client *c)
{
	struct vfpm_msg reply;
	int err = request1(to_sock(c), VFIO_USER_DEVICE_RESET, NULL, 0, NULL, 0, &reply);

	if (!err)
		vfpm_msg_release(&reply);
	return err;
}

static int sock_power_status(struct vfpm_client *c, struct vfpm_client_power *st)
{
	static const char *const names[] = { "active", "resuming", "suspended", "suspending" };
	struct vfpm_user_power_status ps;
	struct vfpm_msg reply;
	int err = request_min(to_sock(c), VFPM_USER_POWER_STATUS, NULL, 0, NULL, 0, &reply,
			      sizeof(ps));

	if (err)
		return err;
	memcpy(&ps, reply.payload, sizeof(ps));
	vfpm_msg_release(&reply);
	if (ps.runtime_status > 3)
		return -EPROTO;
	snprintf(st->runtime_status, sizeof(st->runtime_status), "%s", names[ps.runtime_status]);
	st->have_counts = true;
	st->runtime_pm = ps.flags & VFPM_USER_POWER_F_RUNTIME_PM;
	st->low_power = ps.flags & VFPM_USER_POWER_F_LOW_POWER;
	st->wakeup_armed = ps.flags & VFPM_USER_POWER_F_WAKEUP_ARMED;
	st->usage_count = ps.usage_count;
	st->suspends = ps.suspends;
	st->resumes = ps.resumes;
	return 0;
}

static int sock_feature(struct vfpm_client *c, uint32_t flags, void *data, size_t len,
			size_t cap, const int *fds, unsigned int nfds)
{
	struct vfio_user_device_feature req = { .flags = flags };
	struct iovec iov[2] = {
		{ .iov_base = &req, .iov_len = sizeof(req) },
		{ .iov_base = data, .iov_len = len },
	};
	struct vfpm_msg reply;
	size_t n = 0;
	int err;

	if (sizeof(req) + (len > cap ? len : cap) > UINT32_MAX)
		return -EINVAL;
	req.argsz = (uint32_t)(sizeof(req) + (len > cap ? len : cap));
	err = request(to_sock(c), VFIO_USER_DEVICE_FEATURE, iov, len ? 2 : 1, fds, nfds, &reply);
	if (err)
		return err;
	if (reply.len < sizeof(req)) {
		vfpm_msg_release(&reply);
		return -EPROTO;
	}
	if (flags & VFIO_DEVICE_FEATURE_GET) {
		n = reply.len - sizeof(req);
		if (n > cap)
			n = cap;
		memcpy(data, (uint8_t *)reply.payload + sizeof(req), n);
	}
	vfpm_msg_release(&reply);
	return (int)n;
}

static int32_t sock_fd_arg(const struct vfpm_client *c, const int *fds, unsigned int index)
{
	(void)c;
	(void)fds;
	return (int32_t)index;
}

/*
 * A window without an fd but with a vaddr is served on the twin socket; it
 * is registered before the server hears of it, so the server can use it as
 * soon as the map is done.
 */
static int sock_dma_map(struct vfpm_client *c, const struct vfpm_client_dma *map)
{
	struct sock_client *s = to_sock(c);
	struct vfio_user_dma_map req = {
		.argsz = sizeof(req), .flags = map->flags, .offset = map->fd >= 0 ? map->offset : 0,
		.addr = map->iova, .size = map->size,
	};
	bool served = map->fd < 0 && map->vaddr && s->dma;
	struct vfpm_msg reply;
	int err = served ? sock_dma_add(s->dma, map) : 0;

	if (err)
		return err;
	err = request1(s, VFIO_USER_DMA_MAP, &req, sizeof(req), &map->fd, map->fd >= 0 ? 1 : 0,
		       &reply);
	if (!err)
		vfpm_msg_release(&reply);
	else if (served)
		sock_dma_remove(s->dma, map->iova, map->size);
	return err;
}

static int sock_dma_unmap(struct vfpm_client *c, uint64_t iova, uint64_t size)
{
	struct sock_client *s = to_sock(c);
	struct vfio_user_dma_unmap req = { .argsz = sizeof(req), .addr = iova, .size = size };
	struct vfpm_msg reply;
	int err = request1(s, VFIO_USER_DMA_UNMAP, &req, sizeof(req), NULL, 0, &reply);

	/* The server has finished with the window: stop serving it. */
	if (!err) {
		vfpm_msg_release(&reply);
		if (s->dma)
			sock_dma_remove(s->dma, iova, size);
	}
	return err;
}

static void sock_close(struct vfpm_client *c)
{
	struct sock_client *s = to_sock(c);

	sock_dma_stop(s->dma);
	close(s->sock);
	vfpm_sock_rx_release(&s->rx);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const struct vfpm_client_ops sock_ops = {
	.name = "vfio-user",
	.close = sock_close,
	.get_info = sock_get_info,
	.get_region_info = sock_get_region_info,
	.get_irq_info = sock_get_irq_info,
	.set_irqs = sock_set_irqs,
	.region_read = sock_region_read,
	.region_write = sock_region_write,
	.region_write_multi = sock_region_write_multi,
	.reset = sock_reset,
	.power_status = sock_power_status,
	.feature = sock_feature,
	.fd_arg = sock_fd_arg,
	.dma_map = sock_dma_map,
	.dma_unmap = sock_dma_unmap,
};

/* ---- connecting ---- */

static int negotiate(struct sock_client *s)
{
	struct vfpm_caps mine = {
		.max_msg_fds = CLIENT_MAX_MSG_FDS, .max_data_xfer_size = CLIENT_MAX_DATA_XFER,
		.max_dma_maps = VFIO_USER_DEF_MAX_DMA_MAPS, .pgsizes = VFIO_USER_DEF_PGSIZES,
		.write_multiple = true, .twin_socket = true, .twin_fd_index = -1,
	};
	struct vfio_user_version ver = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };
	char *json = vfpm_caps_format(&mine);
	struct iovec iov[2] = { { .iov_base = &ver, .iov_len = sizeof(ver) } };
	struct vfpm_msg reply;
	int err;

	if (!json)
		return -ENOMEM;
	iov[1] = (struct iovec){ .iov_base = json, .iov_len = strlen(json) + 1 };
	err = request(s, VFIO_USER_VERSION, iov, 2, NULL, 0, &reply);
	free(json);
	if (err)
		return err;
	if (reply.len < sizeof(ver)) {
		err = -EPROTO;
	} else {
		memcpy(&ver, reply.payload, sizeof(ver));
		if (ver.major != VFIO_USER_MAJOR || ver.minor > VFIO_USER_MINOR)
			err = -EPROTO;
	}
	vfpm_caps_defaults(&s->server);
	if (!err)
		err = vfpm_caps_parse((uint8_t *)reply.payload + sizeof(ver),
				      reply.len - sizeof(ver), &s->server);
	if (!err && s->server.twin_socket) {
		/* Twin-socket mode: the server's DMA commands come on this fd. */
		int twin = s->server.twin_fd_index >= 0 ?
			   vfpm_msg_take_fd(&reply, (unsigned int)s->server.twin_fd_index) : -1;

		if (twin < 0)
			err = -EPROTO;	/* inconsistent: the specification says abort */
		else if ((err = sock_dma_start(twin, CLIENT_MAX_DATA_XFER, &s->dma)))
			close(twin);
	}
	vfpm_msg_release(&reply);
	return err;
}

int vfpm_client_connect(const char *socket_path, struct vfpm_client **out)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct sock_client *s;
	int err;

	if (!socket_path || !out)
		return -EINVAL;
	if (strlen(socket_path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, socket_path);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.ops = &sock_ops;
	s->rx_limits = (struct vfpm_recv_limits){
		.max_size = VFIO_USER_HDR_SIZE + CLIENT_MAX_DATA_XFER + VFIO_USER_MSG_SLACK,
		.max_fds = VFPM_SOCK_MAX_FDS,
	};
	vfpm_sock_rx_init(&s->rx);
	pthread_mutex_init(&s->lock, NULL);
	s->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->sock < 0) {
		err = -errno;
		goto fail;
	}
	if (connect(s->sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = -errno;
		goto fail;
	}
	err = negotiate(s);
	if (err)
		goto fail;
	*out = &s->base;
	return 0;
fail:
	sock_dma_stop(s->dma);
	if (s->sock >= 0)
		close(s->sock);
	vfpm_sock_rx_release(&s->rx);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return err;
}
