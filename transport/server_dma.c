// SPDX-License-Identifier: MIT
/*
 * Client memory: the per-connection table of DMA_MAP windows and the DMA
 * accesses device models make through it.
 *
 * A window the client backed with an fd is mmap'd at DMA_MAP and unmapped at
 * DMA_UNMAP or disconnect, or when a model's last hold on it ends
 * (server_dma_map.c); the fd itself is closed as soon as it is mapped (the
 * mapping keeps the memory).  Windows without an fd are recorded (they
 * count towards max_dma_maps and overlap checks) and are reached with
 * VFIO_USER_DMA_READ / DMA_WRITE messages on the twin socket, when the client
 * asked for twin-socket mode in VERSION (-ENOTSUP otherwise).  The separate
 * socket lets a model do DMA from inside a request: the connection thread
 * is busy with that request, the client answers on its own thread.
 */
#include "server_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/vfio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int srv_dma_init(struct dma_table *t, uint32_t max)
{
	memset(t, 0, sizeof(*t));
	t->max = max;
	t->min_pgsize = VFIO_USER_DEF_PGSIZES;
	return -pthread_rwlock_init(&t->lock, NULL);
}

/*
 * Drop the table's part in a window (write side held: no copy is in
 * progress): its mapping's reference, which owns the window's place in the
 * budget, or that place itself.
 */
static void region_release(struct dma_region *reg)
{
	if (reg->mapping)
		srv_dma_mapping_put(reg->mapping);
	else
		srv_budget_put_dma_maps(1);
	reg->mapping = NULL;
}

/* Unmap everything; the lock itself is destroyed with the connection. */
void srv_dma_destroy(struct dma_table *t)
{
	pthread_rwlock_wrlock(&t->lock);
	for (unsigned int i = 0; i < t->count; i++)
		region_release(&t->regions[i]);
	free(t->regions);
	t->regions = NULL;
	t->count = t->cap = 0;
	pthread_rwlock_unlock(&t->lock);
}

/* Index of the first region that ends after addr (count if none). */
static unsigned int first_ending_after(const struct dma_table *t, uint64_t addr)
{
	unsigned int lo = 0, hi = t->count;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		const struct dma_region *reg = &t->regions[mid];

		if (reg->addr + reg->size <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool overlaps_any(const struct dma_table *t, uint64_t addr, uint64_t size)
{
	unsigned int i = first_ending_after(t, addr);

	return i < t->count && t->regions[i].addr < addr + size;
}

static int table_insert(struct dma_table *t, const struct dma_region *reg)
{
	unsigned int i;

	if (t->count == t->cap) {
		unsigned int cap = t->cap ? t->cap * 2 : 8;
		struct dma_region *n = realloc(t->regions, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->regions = n;
		t->cap = cap;
	}
	i = first_ending_after(t, reg->addr);
	memmove(&t->regions[i + 1], &t->regions[i], (t->count - i) * sizeof(*reg));
	t->regions[i] = *reg;
	t->count++;
	return 0;
}

/*
 * Does [offset, offset + size) lie within the file?  A window reaching past
 * the end of the file would be mapped all the same, and every model access
 * beyond it would fault.  Only regular files (memfds included) have a size
 * to check.  A client that shrinks the file after the map makes the same
 * fault happen later: the mapping is guarded memory (base.h), so the access
 * that faults reads zeros, the window is marked lost and the access fails
 * with -EFAULT, as does every later one (dma_walk).
 */
static bool window_fits_file(int fd, uint64_t offset, uint64_t size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return false;
	if (!S_ISREG(st.st_mode))
		return true;
	return offset <= (uint64_t)st.st_size && size <= (uint64_t)st.st_size - offset;
}

int srv_dma_map(struct vfpm_server_conn *conn, struct vfpm_msg *m)
{
	static struct vfpm_ratelimit map_rl;
	const uint32_t known = VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE;
	struct dma_table *t = &conn->dma;
	struct vfio_user_dma_map req;
	struct dma_region reg;
	uint64_t pg = t->min_pgsize;
	int prot = 0;
	int err = 0;

	if (m->len < sizeof(req) || m->nfds > 1)
		return -EINVAL;
	memcpy(&req, m->payload, sizeof(req));
	if ((req.flags & ~known) || !(req.flags & known))
		return -EINVAL;
	if (!req.size || req.addr + req.size < req.addr || (req.addr | req.size) & (pg - 1))
		return -EINVAL;
	if (m->nfds && (req.offset & (pg - 1)))
		return -EINVAL;
	if (m->nfds && !window_fits_file(m->fds[0], req.offset, req.size))
		return -EINVAL;
	if (req.flags & VFIO_USER_DMA_F_READ)
		prot |= PROT_READ;
	if (req.flags & VFIO_USER_DMA_F_WRITE)
		prot |= PROT_WRITE;
	reg = (struct dma_region){
		.addr = req.addr, .size = req.size, .offset = req.offset, .flags = req.flags,
	};

	pthread_rwlock_wrlock(&t->lock);
	if (overlaps_any(t, req.addr, req.size)) {
		err = -EEXIST;
		goto out;
	}
	if (t->count >= t->max) {
		vfpm_logf_rl(&map_rl, VFPM_LOG_WARNING, "%s: DMA_MAP refused: the connection has "
			     "max_dma_maps (%u) windows (ENOSPC)", conn->who, t->max);
		err = -ENOSPC;
		goto out;
	}
	if (!srv_budget_take_dma_map()) {
		struct vfpm_transport_limits lim;

		vfpm_transport_get_limits(&lim);
		vfpm_logf_rl(&map_rl, VFPM_LOG_WARNING, "%s: DMA_MAP refused: the process has its "
			     "budget of %u DMA windows in use (ENOSPC)", conn->who, lim.max_dma_maps);
		err = -ENOSPC;
		goto out;
	}
	if (m->nfds) {
		err = srv_dma_mapping_create(m->fds[0], req.offset, req.size, prot, &reg.mapping);
		if (err) {
			vfpm_logf_rl(&map_rl, VFPM_LOG_WARNING, "%s: DMA_MAP refused: cannot map "
				     "the window's fd (%s)", conn->who, strerror(-err));
			srv_budget_put_dma_maps(1);
			goto out;
		}
	}
	err = table_insert(t, &reg);
	if (err)
		region_release(&reg);
out:
	pthread_rwlock_unlock(&t->lock);
	/* The fd itself is closed with the message: the mapping keeps the memory. */
	return err;
}

/* Remove windows [i, j) (write side held). */
static void table_remove(struct dma_table *t, unsigned int i, unsigned int j)
{
	if (i == j)
		return;	/* nothing, maybe not even a table (regions NULL) */
	for (unsigned int k = i; k < j; k++)
		region_release(&t->regions[k]);
	memmove(&t->regions[i], &t->regions[j], (t->count - j) * sizeof(t->regions[0]));
	t->count -= j - i;
}

/*
 * DMA_UNMAP.  The specification asks for an exact match of one mapping;
 * QEMU also sends ranges that cover several (virtio-mem), none (a vIOMMU
 * invalidation), or the whole 64-bit space as VFIO_DMA_UNMAP_FLAG_ALL with
 * address and size 0.  So, as the kernel's type1 IOMMU: every window inside
 * the range goes; a window that straddles its edge is EINVAL (and nothing
 * goes); a range with no window in it is ENOENT, as libvfio-user answers.
 */
int srv_dma_unmap(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r)
{
	struct dma_table *t = &conn->dma;
	struct vfio_user_dma_unmap req, *out;
	unsigned int i, j;
	uint64_t last;
	int err = 0;

	if (m->len < sizeof(req))
		return -EINVAL;
	memcpy(&req, m->payload, sizeof(req));
	if (req.argsz < sizeof(req) || (req.flags & ~(uint32_t)VFIO_DMA_UNMAP_FLAG_ALL))
		return -EINVAL;
	if (req.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
		if (req.addr || req.size)
			return -EINVAL;
	} else if (!req.size || req.size - 1 > UINT64_MAX - req.addr) {
		return -EINVAL;	/* empty, or past the end of the 64-bit space */
	}
	out = malloc(sizeof(*out));
	if (!out)
		return -ENOMEM;

	/*
	 * Taking the write side waits for the model's copies in progress, not
	 * for its holds: a held window's mapping outlives its table entry.
	 */
	pthread_rwlock_wrlock(&t->lock);
	if (req.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
		table_remove(t, 0, t->count);
	} else {
		last = req.addr + (req.size - 1);
		i = first_ending_after(t, req.addr);
		for (j = i; j < t->count && t->regions[j].addr <= last; j++) {
			const struct dma_region *reg = &t->regions[j];

			if (reg->addr < req.addr || reg->size - 1 > last - reg->addr)
				err = -EINVAL;	/* straddles an edge of the range */
		}
		if (!err && i == j)
			err = -ENOENT;
		if (!err)
			table_remove(t, i, j);
	}
	pthread_rwlock_unlock(&t->lock);
	if (err) {
		free(out);
		return err;
	}
	*out = req;
	srv_reply_own(r, out, sizeof(*out));
	return 0;
}

/* ---- DMA messages on the twin socket ---- */

void srv_dma_set_twin_socket(struct vfpm_server_conn *conn, int sock)
{
	pthread_mutex_lock(&conn->srv->lock);
	conn->dma_sock = sock;
	pthread_mutex_unlock(&conn->srv->lock);
}

/* Check a DMA reply: 0, the client's error, or -EPROTO. */
static int twin_reply_check(const struct vfpm_msg *reply, const struct vfio_user_header *req)
{
	if ((reply->hdr.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY ||
	    reply->hdr.msg_id != req->msg_id || reply->hdr.command != req->command)
		return -EPROTO;
	if (reply->hdr.flags & VFIO_USER_F_ERROR)
		return reply->hdr.error_no && reply->hdr.error_no < 4096 ?
		       -(int)reply->hdr.error_no : -EIO;
	return 0;
}

/* A DMA_READ reply's data into buf: exactly the request's header and len bytes, or -EPROTO. */
static int dma_read_reply_data(const struct vfpm_msg *reply, void *buf, size_t len)
{
	const size_t hdr = sizeof(struct vfio_user_dma_access);

	if (reply->len != hdr + len)
		return -EPROTO;
	memcpy(buf, (const uint8_t *)reply->payload + hdr, len);
	return 0;
}

/*
 * DMA messages of at most the client's max_data_xfer_size each, one after
 * the other, with one_msg (on the twin socket or the main one).
 */
static int dma_messages(struct vfpm_server_conn *conn, uint64_t addr, uint8_t *buf, size_t len,
			bool write,
			int (*one_msg)(struct vfpm_server_conn *, uint64_t, uint8_t *, size_t, bool))
{
	size_t max = conn->peer.max_data_xfer_size;

	while (len) {
		size_t n = len < max ? len : max;
		int err = one_msg(conn, addr, buf, n, write);

		if (err)
			return err;
		addr += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* One DMA_READ or DMA_WRITE of at most the client's max_data_xfer_size. */
static int twin_dma_one(struct vfpm_server_conn *conn, uint64_t addr, uint8_t *buf, size_t len,
			bool write)
{
	struct vfio_user_dma_access req = { .addr = addr, .count = len };
	struct vfio_user_header hdr = {
		.command = write ? VFIO_USER_DMA_WRITE : VFIO_USER_DMA_READ,
		.flags = VFIO_USER_F_TYPE_COMMAND,
	};
	struct iovec iov[2] = {
		{ .iov_base = &req, .iov_len = sizeof(req) },
		{ .iov_base = buf, .iov_len = len },
	};
	struct vfpm_msg reply;
	int err;

	struct vfpm_recv_limits lim = {
		.max_size = VFIO_USER_HDR_SIZE + sizeof(req) + len, .max_fds = 0,
		.deadline_ms = vfpm_sock_now_ms() + conn->srv->opts.msg_timeout_ms,
	};

	pthread_mutex_lock(&conn->dma_sock_lock);
	hdr.msg_id = conn->dma_msg_id++;
	err = vfpm_sock_send_msgv(conn->dma_sock, &hdr, iov, write ? 2 : 1, NULL, 0);
	if (!err)
		err = vfpm_sock_recv_msg_limited(conn->dma_sock, &reply, &lim);
	if (err && !conn->dma_sock_broken) {
		/*
		 * A reply that never came, or half of one: a late one would be
		 * taken for the next request's.  No more DMA on this socket.
		 */
		conn->dma_sock_broken = true;
		shutdown(conn->dma_sock, SHUT_RDWR);
		vfpm_logf(VFPM_LOG_WARNING, "%s: DMA over the twin socket failed (%s%s); no more "
			  "DMA messages on it", conn->who, strerror(-err),
			  err == -ETIMEDOUT || err == -EAGAIN ? ": the client did not answer in time" :
			  "");
	}
	pthread_mutex_unlock(&conn->dma_sock_lock);
	if (err)
		return err == -ESHUTDOWN ? -ECONNRESET : err;
	err = twin_reply_check(&reply, &hdr);
	/* The specification gives the DMA_WRITE reply's count 4 bytes: accept 12. */
	if (!err && write && reply.len < sizeof(req) - 4)
		err = -EPROTO;
	if (!err && !write)
		err = dma_read_reply_data(&reply, buf, len);
	vfpm_msg_release(&reply);
	return err;
}

/* ---- DMA messages on the main socket ---- */

void srv_main_dma_init(struct vfpm_server_conn *conn)
{
	pthread_condattr_t attr;

	pthread_mutex_init(&conn->main_dma.lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&conn->main_dma.cond, &attr);
	pthread_condattr_destroy(&attr);
	/* Far from the ids a client uses for its own requests, for the logs' sake. */
	conn->main_dma.next_id = 0x8000;
}

void srv_main_dma_destroy(struct vfpm_server_conn *conn)
{
	if (conn->main_dma.reply) {
		vfpm_msg_release(conn->main_dma.reply);
		free(conn->main_dma.reply);
	}
	pthread_cond_destroy(&conn->main_dma.cond);
	pthread_mutex_destroy(&conn->main_dma.lock);
}

void srv_main_dma_close(struct vfpm_server_conn *conn)
{
	pthread_mutex_lock(&conn->main_dma.lock);
	conn->main_dma.closed = true;
	pthread_cond_broadcast(&conn->main_dma.cond);
	pthread_mutex_unlock(&conn->main_dma.lock);
}

int srv_main_dma_deliver(struct vfpm_server_conn *conn, struct vfpm_msg *m)
{
	struct vfpm_msg *copy;
	int err = -ENOENT;

	pthread_mutex_lock(&conn->main_dma.lock);
	if (conn->main_dma.busy && !conn->main_dma.have_reply &&
	    m->hdr.msg_id == conn->main_dma.msg_id && m->hdr.command == conn->main_dma.command) {
		copy = malloc(sizeof(*copy));
		if (copy) {
			*copy = *m;		/* the payload and fds move with it */
			vfpm_msg_init(m);
			conn->main_dma.reply = copy;
			conn->main_dma.have_reply = true;
			pthread_cond_broadcast(&conn->main_dma.cond);
			err = 0;
		}
	}
	pthread_mutex_unlock(&conn->main_dma.lock);
	return err;
}

/*
 * DMA_READ / DMA_WRITE on the main socket have the specification's layout,
 * as on the twin socket: address and count (8 bytes each), then the data.
 * QEMU 11.1's client answers so (checked with a Linux guest under it:
 * interop/, the memory device's DMA engine on ordinary guest RAM).
 */
static void abs_deadline(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Send one request and wait for its reply (or the deadline, or the end). */
static int main_dma_exchange(struct vfpm_server_conn *conn, struct vfio_user_header *hdr,
			     const struct iovec *iov, unsigned int iovcnt, struct vfpm_msg **reply)
{
	struct timespec deadline;
	int err = 0;

	pthread_mutex_lock(&conn->main_dma.lock);
	while (conn->main_dma.busy && !conn->main_dma.closed)
		pthread_cond_wait(&conn->main_dma.cond, &conn->main_dma.lock);
	if (conn->main_dma.closed) {
		pthread_mutex_unlock(&conn->main_dma.lock);
		return -ECONNRESET;
	}
	conn->main_dma.busy = true;
	conn->main_dma.have_reply = false;
	hdr->msg_id = conn->main_dma.next_id++;
	conn->main_dma.msg_id = hdr->msg_id;
	conn->main_dma.command = hdr->command;
	pthread_mutex_unlock(&conn->main_dma.lock);

	err = srv_conn_send(conn, hdr, iov, iovcnt, NULL, 0);

	abs_deadline(&deadline, conn->srv->opts.msg_timeout_ms);
	pthread_mutex_lock(&conn->main_dma.lock);
	while (!err && !conn->main_dma.have_reply && !conn->main_dma.closed) {
		if (pthread_cond_timedwait(&conn->main_dma.cond, &conn->main_dma.lock,
					   &deadline) == ETIMEDOUT)
			err = -ETIMEDOUT;
	}
	if (!err && conn->main_dma.have_reply) {
		*reply = conn->main_dma.reply;
		conn->main_dma.reply = NULL;
		conn->main_dma.have_reply = false;
	} else if (!err) {
		err = -ECONNRESET;
	}
	conn->main_dma.busy = false;
	pthread_cond_broadcast(&conn->main_dma.cond);
	pthread_mutex_unlock(&conn->main_dma.lock);
	return err;
}

/* One DMA_READ or DMA_WRITE on the main socket, of at most the client's max_data_xfer_size. */
static int main_dma_one(struct vfpm_server_conn *conn, uint64_t addr, uint8_t *buf, size_t len,
			bool write)
{
	static struct vfpm_ratelimit rl;
	struct vfio_user_dma_access req = { .addr = addr, .count = len };
	struct vfio_user_header hdr = {
		.command = write ? VFIO_USER_DMA_WRITE : VFIO_USER_DMA_READ,
		.flags = VFIO_USER_F_TYPE_COMMAND,
	};
	struct iovec iov[2] = {
		{ .iov_base = &req, .iov_len = sizeof(req) },
		{ .iov_base = buf, .iov_len = len },
	};
	struct vfpm_msg *reply = NULL;
	int err;

	/*
	 * From the connection's own thread (inside a request) the reply could
	 * never be read, and QEMU answers only once our reply has come.
	 */
	if (atomic_load(&conn->serving_tid) == (unsigned long)pthread_self() ||
	    loop_processing_here(conn->srv->loop))
		return -EDEADLK;
	err = main_dma_exchange(conn, &hdr, iov, write ? 2 : 1, &reply);
	if (!err)
		err = twin_reply_check(reply, &hdr);
	if (!err && !write)
		err = dma_read_reply_data(reply, buf, len);
	if (reply) {
		vfpm_msg_release(reply);
		free(reply);
	}
	if (err && err != -EFAULT)
		vfpm_logf_rl(&rl, VFPM_LOG_WARNING, "%s: DMA %s of %zu bytes at %#" PRIx64 " over "
			     "the main socket failed: %s", conn->who, write ? "write" : "read", len,
			     addr, strerror(-err));
	return err;
}

/* ---- DMA for device models ---- */

/*
 * The client shrank the file behind a window: its pages read as zeros (the
 * guard), so every access to it fails from now on.  Logged once per window.
 */
int srv_dma_window_lost(struct vfpm_server_conn *conn, struct dma_region *reg)
{
	if (!atomic_exchange(&reg->loss_logged, true))
		vfpm_logf(VFPM_LOG_WARNING, "%s: the file behind DMA window [%#" PRIx64 ", %#" PRIx64
			  ") was truncated by the client; DMA to it fails with EFAULT until it is "
			  "unmapped", conn->who, reg->addr, reg->addr + reg->size);
	return -EFAULT;
}

struct dma_region *srv_dma_find(const struct dma_table *t, uint64_t addr)
{
	unsigned int i = first_ending_after(t, addr);

	if (i >= t->count || t->regions[i].addr > addr)
		return NULL;
	return &t->regions[i];
}

/*
 * Check that [addr, addr + len) lies in accessible windows (0 or -errno);
 * with buf, copy between it and client memory (write selects the direction).
 */
static int dma_walk(struct vfpm_server_conn *conn, uint64_t addr, uint8_t *buf, size_t len,
		    bool write)
{
	const uint32_t need = write ? VFIO_USER_DMA_F_WRITE : VFIO_USER_DMA_F_READ;
	struct dma_table *t = &conn->dma;

	while (len) {
		struct dma_region *reg = srv_dma_find(t, addr);
		const struct dma_mapping *mapping;
		uint64_t off, n;
		int err = 0;

		if (!reg)
			return -EFAULT;
		if (!(reg->flags & need))
			return -EACCES;
		mapping = reg->mapping;
		off = addr - reg->addr;
		n = reg->size - off < len ? reg->size - off : len;
		if (buf && !mapping && conn->dma_sock >= 0)
			err = dma_messages(conn, addr, buf, n, write, twin_dma_one);
		else if (buf && !mapping)
			err = dma_messages(conn, addr, buf, n, write, main_dma_one);
		else if (buf && write)
			memcpy((uint8_t *)mapping->addr + off, buf, n);
		else if (buf)
			memcpy(buf, (const uint8_t *)mapping->addr + off, n);
		if (!err && mapping && vfpm_memguard_faults(mapping->guard))
			err = srv_dma_window_lost(conn, reg);
		if (err)
			return err;
		if (buf)
			buf += n;
		addr += n;
		len -= n;
	}
	return 0;
}

/*
 * The range is checked before a byte moves; a DMA message failing halfway
 * (the client refused or went away) can still leave part of it done.
 */
static int dma_access(struct vfpm_server_conn *conn, uint64_t addr, void *buf, size_t len,
		      bool write)
{
	struct dma_table *t = &conn->dma;
	int err;

	if (addr + len < addr)
		return -EFAULT;
	pthread_rwlock_rdlock(&t->lock);
	err = dma_walk(conn, addr, NULL, len, write);
	if (!err)
		err = dma_walk(conn, addr, buf, len, write);
	pthread_rwlock_unlock(&t->lock);
	return err;
}

int vfpm_server_dma_read(struct vfpm_server_conn *conn, uint64_t addr, void *buf, size_t len)
{
	return dma_access(conn, addr, buf, len, false);
}

int vfpm_server_dma_write(struct vfpm_server_conn *conn, uint64_t addr, const void *buf,
			  size_t len)
{
	return dma_access(conn, addr, (void *)buf, len, true);
}

/* The instance's DMA provider: the device core reaches this client's memory through it. */
static int conn_dma_read(void *opaque, uint64_t iova, void *buf, size_t len)
{
	return dma_access(opaque, iova, buf, len, false);
}

static int conn_dma_write(void *opaque, uint64_t iova, const void *buf, size_t len)
{
	return dma_access(opaque, iova, (void *)buf, len, true);
}

const struct vfpm_dma_ops srv_conn_dma_ops = {
	.read = conn_dma_read,
	.write = conn_dma_write,
	.map = srv_conn_dma_map,
	.release = srv_conn_dma_release,
};
