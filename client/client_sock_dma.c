// SPDX-License-Identifier: MIT
/*
 * Client memory served over vfio-user's twin socket: the server's
 * VFIO_USER_DMA_READ / DMA_WRITE commands for windows the client mapped
 * without an fd, answered from the process memory the caller named (vaddr),
 * on a thread of their own, so that a device model can do DMA while the
 * client waits for the reply to the request that started it.
 */
#include "client_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tran_sock.h"
#include "wire.h"

struct sock_dma_window {
	uint64_t iova;
	uint64_t size;
	uint32_t flags;		/* VFPM_CLIENT_DMA_* */
	uint8_t *vaddr;
};

struct sock_dma {
	int sock;		/* immutable: the client's end of the twin socket */
	uint32_t max_xfer;	/* immutable: the largest count this client accepts */
	pthread_t thread;
	/*
	 * lock: the thread runs.  It starts with the first window served here:
	 * before one exists the server has nothing to ask for, and a client
	 * that never maps fd-less memory pays for no thread at connect.
	 */
	bool started;
	/* Owned by the thread: what the server sent that it has not read yet. */
	struct vfpm_sock_rx rx;
	/* Protects the windows; held across a copy, so an unmap waits for it. */
	pthread_mutex_t lock;
	struct sock_dma_window *windows;
	unsigned int count;
	unsigned int cap;
};

/* Copy between buf and the windows covering [addr, addr + len), all or nothing. */
static int windows_copy(struct sock_dma *d, uint64_t addr, uint8_t *buf, size_t len, bool write)
{
	const uint32_t need = write ? VFPM_CLIENT_DMA_WRITE : VFPM_CLIENT_DMA_READ;

	for (int pass = 0; pass < 2; pass++) {
		uint64_t a = addr;
		size_t left = len;
		uint8_t *p = buf;

		while (left) {
			const struct sock_dma_window *w = NULL;
			uint64_t off, n;

			for (unsigned int i = 0; i < d->count && !w; i++) {
				if (a >= d->windows[i].iova && a - d->windows[i].iova < d->windows[i].size)
					w = &d->windows[i];
			}
			if (!w)
				return -EFAULT;
			if (!(w->flags & need))
				return -EACCES;
			off = a - w->iova;
			n = w->size - off < left ? w->size - off : left;
			if (pass && write)
				memcpy(w->vaddr + off, p, n);
			else if (pass)
				memcpy(p, w->vaddr + off, n);
			a += n;
			p += n;
			left -= n;
		}
	}
	return 0;
}

static int reply_error(struct sock_dma *d, const struct vfio_user_header *req, int err)
{
	struct vfio_user_header hdr = {
		.msg_id = req->msg_id, .command = req->command,
		.flags = VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR, .error_no = (uint32_t)err,
	};

	return vfpm_sock_send_msg(d->sock, &hdr, NULL, 0, NULL, 0);
}

static int serve_dma(struct sock_dma *d, struct vfpm_msg *m)
{
	struct vfio_user_header hdr = {
		.msg_id = m->hdr.msg_id, .command = m->hdr.command, .flags = VFIO_USER_F_TYPE_REPLY,
	};
	bool write = m->hdr.command == VFIO_USER_DMA_WRITE;
	struct vfio_user_dma_access req;
	uint8_t *data = NULL;
	struct iovec iov[2];
	int err = 0;

	if (m->hdr.command != VFIO_USER_DMA_READ && m->hdr.command != VFIO_USER_DMA_WRITE)
		err = -ENOTSUP;
	else if (m->len < sizeof(req) || m->nfds || m->fds_truncated)
		err = -EINVAL;
	if (!err) {
		memcpy(&req, m->payload, sizeof(req));
		if (req.count > d->max_xfer || (write && m->len - sizeof(req) != req.count))
			err = -EINVAL;
	}
	if (!err && !write) {
		data = malloc(req.count ? req.count : 1);
		if (!data)
			err = -ENOMEM;
	}
	if (!err) {
		pthread_mutex_lock(&d->lock);
		err = windows_copy(d, req.addr,
				   write ? (uint8_t *)m->payload + sizeof(req) : data, req.count,
				   write);
		pthread_mutex_unlock(&d->lock);
	}
	if (m->hdr.flags & VFIO_USER_F_NO_REPLY) {
		free(data);
		return 0;
	}
	if (err) {
		free(data);
		return reply_error(d, &m->hdr, -err);
	}
	iov[0] = (struct iovec){ .iov_base = &req, .iov_len = sizeof(req) };
	iov[1] = (struct iovec){ .iov_base = data, .iov_len = write ? 0 : req.count };
	err = vfpm_sock_send_msgv(d->sock, &hdr, iov, write ? 1 : 2, NULL, 0);
	free(data);
	return err;
}

static void *sock_dma_thread(void *arg)
{
	struct sock_dma *d = arg;
	/* DMA commands carry no fds: any sent are never installed, and refused. */
	const struct vfpm_recv_limits lim = {
		.max_size = VFIO_USER_HDR_SIZE + sizeof(struct vfio_user_dma_access) + d->max_xfer,
		.max_fds = 0,
	};

	for (;;) {
		struct vfpm_msg m;
		int err = vfpm_sock_rx_next(&d->rx, d->sock, &m, &lim);

		if (err)
			break;	/* closed, or a stream that cannot be followed */
		/* Only commands come this way; anything else is dropped. */
		if ((m.hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND)
			err = serve_dma(d, &m);
		vfpm_msg_release(&m);
		if (err)
			break;
	}
	return NULL;
}

int sock_dma_start(int sock, uint32_t max_xfer, struct sock_dma **out)
{
	struct sock_dma *d = calloc(1, sizeof(*d));
	int err;

	if (!d)
		return -ENOMEM;
	d->sock = sock;
	d->max_xfer = max_xfer;
	vfpm_sock_rx_init(&d->rx);
	err = -pthread_mutex_init(&d->lock, NULL);
	if (err) {
		free(d);
		return err;
	}
	*out = d;
	return 0;
}

void sock_dma_stop(struct sock_dma *d)
{
	bool started;

	if (!d)
		return;
	shutdown(d->sock, SHUT_RDWR);
	pthread_mutex_lock(&d->lock);
	started = d->started;
	pthread_mutex_unlock(&d->lock);
	if (started)
		pthread_join(d->thread, NULL);
	close(d->sock);
	vfpm_sock_rx_release(&d->rx);
	pthread_mutex_destroy(&d->lock);
	free(d->windows);
	free(d);
}

int sock_dma_add(struct sock_dma *d, const struct vfpm_client_dma *map)
{
	int err = 0;

	pthread_mutex_lock(&d->lock);
	if (!d->started) {
		err = -pthread_create(&d->thread, NULL, sock_dma_thread, d);
		d->started = !err;
		/* Named before it is seen: a program (and the tests) can tell it from its own. */
		if (!err)
			pthread_setname_np(d->thread, "vfpm-client-dma");
	}
	if (!err && d->count == d->cap) {
		unsigned int cap = d->cap ? d->cap * 2 : 8;
		struct sock_dma_window *w = realloc(d->windows, cap * sizeof(*w));

		if (w) {
			d->windows = w;
			d->cap = cap;
		} else {
			err = -ENOMEM;
		}
	}
	if (!err)
		d->windows[d->count++] = (struct sock_dma_window){
			.iova = map->iova, .size = map->size, .flags = map->flags,
			.vaddr = map->vaddr,
		};
	pthread_mutex_unlock(&d->lock);
	return err;
}

void sock_dma_remove(struct sock_dma *d, uint64_t iova, uint64_t size)
{
	pthread_mutex_lock(&d->lock);
	for (unsigned int i = 0; i < d->count; i++) {
		if (d->windows[i].iova == iova && d->windows[i].size == size) {
			d->windows[i] = d->windows[--d->count];
			break;
		}
	}
	pthread_mutex_unlock(&d->lock);
}
