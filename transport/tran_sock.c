// SPDX-License-Identifier: MIT
/*
 * vfio-user message I/O over AF_UNIX stream sockets with SCM_RIGHTS.
 *
 * A stream socket has no message boundaries, but the kernel never hands out
 * the fds of a later sendmsg while completing a read of an earlier one when
 * the reader asks for exactly the bytes it is missing; so reading the header,
 * then exactly msg_size - 16 bytes, collects precisely this message's fds
 * (vfpm_sock_recv_msg, the tests' raw clients' way).  Connections, the
 * server's and the client library's alike, read through a buffer instead
 * (vfpm_sock_rx_next): one recvmsg takes header and payload, and the fds are
 * matched to their message by the rule written above that code.
 */
#include "tran_sock.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FDS_CMSG_SPACE CMSG_SPACE(sizeof(int) * VFPM_SOCK_MAX_FDS)
#define SEND_MAX_IOV 8
/* recv_some's deadline for "do not wait at all". */
#define RECV_NONBLOCK INT64_C(-1)

/* The socket syscalls this thread made here (vfpm_sock_thread_syscalls). */
static _Thread_local unsigned long thread_syscalls;

unsigned long vfpm_sock_thread_syscalls(void)
{
	return thread_syscalls;
}

void vfpm_msg_init(struct vfpm_msg *m)
{
	memset(&m->hdr, 0, sizeof(m->hdr));
	m->payload = NULL;
	m->len = 0;
	m->nfds = 0;
	m->fds_truncated = false;
}

void vfpm_msg_release(struct vfpm_msg *m)
{
	for (unsigned int i = 0; i < m->nfds; i++) {
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	}
	m->nfds = 0;
	free(m->payload);
	m->payload = NULL;
	m->len = 0;
}

int vfpm_msg_take_fd(struct vfpm_msg *m, unsigned int i)
{
	int fd;

	if (i >= m->nfds)
		return -1;
	fd = m->fds[i];
	m->fds[i] = -1;
	return fd;
}

/* Where the fds of one recvmsg go: fds[*n], up to max altogether (NULL: nowhere). */
struct fd_sink {
	int *fds;
	unsigned int *n;
	bool *truncated;	/* set when one had to be dropped */
	unsigned int max;
};

/* The fds a message collects as they arrive. */
static struct fd_sink msg_sink(struct vfpm_msg *m, unsigned int max_fds)
{
	return (struct fd_sink){ .fds = m->fds, .n = &m->nfds, .truncated = &m->fds_truncated,
				 .max = max_fds < VFPM_SOCK_MAX_FDS ? max_fds : VFPM_SOCK_MAX_FDS };
}

/* Keep the fds of one recvmsg in the sink, or close them when there is no room. */
static void stash_fds(const struct fd_sink *sink, struct msghdr *mh)
{
	if (mh->msg_controllen) {
		for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
			size_t n;

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < n; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				if (sink && *sink->n < sink->max) {
					sink->fds[(*sink->n)++] = fd;
				} else {
					close(fd);
					if (sink)
						*sink->truncated = true;
				}
			}
		}
	}
	/* The kernel dropped fds that found no room: they were never ours. */
	if (sink && (mh->msg_flags & MSG_CTRUNC))
		*sink->truncated = true;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t vfpm_sock_now_ms(void)
{
	return now_ms();
}

/*
 * Wait until sock is readable or deadline_ms (monotonic) passes: 0, or
 * -ETIMEDOUT, or -errno.
 */
static int wait_readable(int sock, int64_t deadline_ms)
{
	struct pollfd pfd = { .fd = sock, .events = POLLIN };

	for (;;) {
		int64_t left = deadline_ms - now_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		thread_syscalls++;
		n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * One recvmsg: bytes read, 0 at end of stream, or a negative errno.  At most
 * sink->max fds in the sink altogether: the control buffer has room for only
 * as many as may still come, so the kernel never installs the others in our
 * fd table.  With a deadline (0: none) it never blocks past it (-ETIMEDOUT);
 * RECV_NONBLOCK as the deadline never blocks at all (-EAGAIN).
 */
static ssize_t recv_some_fds(int sock, void *buf, size_t len, const struct fd_sink *sink,
			     int64_t deadline_ms, bool *got_fds)
{
	union {
		char buf[FDS_CMSG_SPACE];
		struct cmsghdr align;
	} ctl;
	unsigned int room = sink && sink->max > *sink->n ? sink->max - *sink->n : 0;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (room > VFPM_SOCK_MAX_FDS)
		room = VFPM_SOCK_MAX_FDS;
	for (;;) {
		mh.msg_control = room ? ctl.buf : NULL;
		mh.msg_controllen = room ? CMSG_SPACE(sizeof(int) * room) : 0;
		mh.msg_flags = 0;
		thread_syscalls++;
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | (deadline_ms ? MSG_DONTWAIT : 0));
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			errno = EAGAIN;
		if (!deadline_ms || deadline_ms == RECV_NONBLOCK || errno != EAGAIN)
			return -errno;
		n = wait_readable(sock, deadline_ms);
		if (n < 0)
			return n;
	}
	/* A read that meets fds stops where their sendmsg's bytes end (see below). */
	if (got_fds)
		*got_fds = mh.msg_controllen || (mh.msg_flags & MSG_CTRUNC);
	stash_fds(sink, &mh);
	return n;
}

static ssize_t recv_some(int sock, void *buf, size_t len, const struct fd_sink *sink,
			 int64_t deadline_ms)
{
	return recv_some_fds(sock, buf, len, sink, deadline_ms, NULL);
}

static int64_t earliest(int64_t a, int64_t b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

/* A message being received: its fds' limit and its deadlines. */
struct recv_state {
	unsigned int max_fds;
	bool begun;		/* its first byte is in */
	int64_t deadline_ms;	/* for the next byte; 0: none */
	unsigned int msg_timeout_ms;
};

/*
 * Exactly len bytes: 0, -ECONNRESET at end of stream (*got says how far), or
 * -errno.  Once the message's first byte is in, the rest of it has
 * msg_timeout_ms.
 */
static int recv_exact(int sock, void *buf, size_t len, struct vfpm_msg *m, struct recv_state *st,
		      size_t *got)
{
	*got = 0;
	while (*got < len) {
		struct fd_sink sink = m ? msg_sink(m, st->max_fds) : (struct fd_sink){ 0 };
		ssize_t n = recv_some(sock, (char *)buf + *got, len - *got, m ? &sink : NULL,
				      st->deadline_ms);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ECONNRESET;
		if (!st->begun && st->msg_timeout_ms)
			st->deadline_ms = earliest(st->deadline_ms, now_ms() + st->msg_timeout_ms);
		st->begun = true;
		*got += (size_t)n;
	}
	return 0;
}

int vfpm_sock_recv_msg_limited(int sock, struct vfpm_msg *m, const struct vfpm_recv_limits *lim)
{
	struct recv_state st = {
		.max_fds = lim->max_fds, .deadline_ms = lim->deadline_ms,
		.msg_timeout_ms = lim->msg_timeout_ms,
	};
	size_t got;
	int err;

	vfpm_msg_init(m);
	err = recv_exact(sock, &m->hdr, sizeof(m->hdr), m, &st, &got);
	if (err) {
		if (err == -ECONNRESET && got == 0)
			err = -ESHUTDOWN;
		goto fail;
	}
	if (m->hdr.msg_size < VFIO_USER_HDR_SIZE) {
		err = -EBADMSG;
		goto fail;
	}
	if (m->hdr.msg_size > lim->max_size) {
		err = -E2BIG;
		goto fail;
	}
	m->len = m->hdr.msg_size - VFIO_USER_HDR_SIZE;
	if (m->len) {
		m->payload = malloc(m->len);
		if (!m->payload) {
			err = -ENOMEM;
			goto fail;
		}
		err = recv_exact(sock, m->payload, m->len, m, &st, &got);
		if (err)
			goto fail;
	}
	return 0;
fail:
	vfpm_msg_release(m);
	return err;
}

int vfpm_sock_recv_msg(int sock, struct vfpm_msg *m, size_t max_size)
{
	struct vfpm_recv_limits lim = { .max_size = max_size, .max_fds = VFPM_SOCK_MAX_FDS };

	return vfpm_sock_recv_msg_limited(sock, m, &lim);
}

/* ---- the buffered receive of a connection (server or client) ---- */

/*
 * Which message the fds of a read belong to.  On an AF_UNIX stream socket
 * (Linux, unix_stream_read_generic) the fds a sender passes with sendmsg
 * ride on the first skb that sendmsg queues, and a read that takes fds from
 * an skb returns as soon as that skb is consumed, or when the buffer is full:
 * a read never takes the fds of two sendmsgs, and the bytes of the skb that
 * carried them are the last bytes of the read.  The fds therefore belong to
 * the last message that starts in the bytes of the read, or, when none
 * starts in it, to the message the read continues.  For a sender that writes
 * each message with one sendmsg (the vfpm client, QEMU, libvfio-user) this
 * is exactly the message they were sent with; so it is for the vfpm
 * server's replies and DMA commands, which the vfpm client reads this way.
 *
 * Checked on Linux 6.18 with two sendmsgs queued before one 4 KiB recvmsg:
 * "AAAA" then "BBBB" with an eventfd then "CCCC" read as 8 bytes "AAAABBBB"
 * with 1 fd, then "CCCC" with none; "AAAA" with an fd then "BBBB" read as
 * "AAAA" with the fd, then "BBBB"; both with fds read as two reads of one fd
 * each; a 300,000-byte sendmsg with an fd read its fd with the first 36,544
 * bytes only; and "pp" then 8 bytes with an fd read with a 6-byte buffer
 * gave the fd with "ppQQQQ", the read holding the skb's first byte.
 *
 * A client that puts two messages in one sendmsg with fds gets them on the
 * later one (nothing tells where in the skb it meant them); a client that
 * splits a message oddly may get its fds on another of its own messages.
 * Either way the fds stay on this connection, within max_fds per message,
 * and the command that did not expect them is refused.
 */

void vfpm_sock_rx_init(struct vfpm_sock_rx *rx)
{
	rx->big = NULL;
	rx->big_have = 0;
	rx->start = 0;
	rx->end = 0;
	rx->head_deadline_ms = 0;
	rx->fds_at = 0;
	rx->nfds = 0;
	rx->fds_truncated = false;
}

static void rx_drop_fds(struct vfpm_sock_rx *rx)
{
	for (unsigned int i = 0; i < rx->nfds; i++)
		close(rx->fds[i]);
	rx->nfds = 0;
	rx->fds_truncated = false;
}

void vfpm_sock_rx_release(struct vfpm_sock_rx *rx)
{
	if (rx->big) {
		vfpm_msg_release(rx->big);
		free(rx->big);
	}
	rx_drop_fds(rx);
	vfpm_sock_rx_init(rx);
}

static bool rx_holds_fds(const struct vfpm_sock_rx *rx)
{
	return rx->nfds || rx->fds_truncated;
}

/* msg_size of the header at off (whole in the buffer). */
static uint32_t rx_msg_size(const struct vfpm_sock_rx *rx, size_t off)
{
	struct vfio_user_header hdr;

	memcpy(&hdr, rx->buf + off, sizeof(hdr));
	return hdr.msg_size;
}

/* The message that owns the fds of a read of buf[from, rx->end): see above. */
static size_t rx_fds_owner(const struct vfpm_sock_rx *rx, size_t from)
{
	size_t owner = rx->start, at = rx->start;

	while (at < rx->end) {
		uint32_t size;

		if (at >= from)
			owner = at;
		if (rx->end - at < VFIO_USER_HDR_SIZE)
			break;
		size = rx_msg_size(rx, at);
		if (size < VFIO_USER_HDR_SIZE)
			break;	/* refused as soon as it is the head */
		at += size;
	}
	return owner;
}

/* Hand the fds held for the message at off (if any) to m. */
static void rx_give_fds(struct vfpm_sock_rx *rx, size_t off, struct vfpm_msg *m)
{
	if (!rx_holds_fds(rx) || rx->fds_at != off)
		return;
	memcpy(m->fds, rx->fds, rx->nfds * sizeof(int));
	m->nfds = rx->nfds;
	m->fds_truncated = rx->fds_truncated;
	rx->nfds = 0;
	rx->fds_truncated = false;
}

/* The head message is whole in the buffer: move it to m. */
static int rx_take(struct vfpm_sock_rx *rx, struct vfpm_msg *m, size_t size)
{
	memcpy(&m->hdr, rx->buf + rx->start, sizeof(m->hdr));
	m->len = size - VFIO_USER_HDR_SIZE;
	if (m->len) {
		m->payload = malloc(m->len);
		if (!m->payload)
			return -ENOMEM;
		memcpy(m->payload, rx->buf + rx->start + VFIO_USER_HDR_SIZE, m->len);
	}
	rx_give_fds(rx, rx->start, m);
	rx->start += size;
	if (rx->start == rx->end)
		rx->start = rx->end = 0;
	rx->head_deadline_ms = 0;
	return 0;
}

/*
 * The head message is larger than the buffer: what is buffered of it goes
 * to its own allocation, and the rest is read there directly (exactly its
 * bytes, so any fds that come meanwhile are its own).
 */
static int rx_take_large(struct vfpm_sock_rx *rx, int sock, struct vfpm_msg *m, size_t size,
			 const struct vfpm_recv_limits *lim)
{
	struct recv_state st = {
		.max_fds = lim->max_fds, .begun = true,
		.deadline_ms = earliest(lim->deadline_ms, rx->head_deadline_ms),
	};
	size_t have = rx->end - rx->start - VFIO_USER_HDR_SIZE, got;

	memcpy(&m->hdr, rx->buf + rx->start, sizeof(m->hdr));
	m->len = size - VFIO_USER_HDR_SIZE;
	m->payload = malloc(m->len);
	if (!m->payload)
		return -ENOMEM;
	memcpy(m->payload, rx->buf + rx->start + VFIO_USER_HDR_SIZE, have);
	rx_give_fds(rx, rx->start, m);
	rx->start = rx->end = 0;
	rx->head_deadline_ms = 0;
	return recv_exact(sock, (char *)m->payload + have, m->len - have, m, &st, &got);
}

/*
 * One read into the buffer's free space.  While the head message holds fds
 * already, the read takes only the bytes the head still misses, so that
 * whatever fds come are its own and count against its max_fds.
 */
static int rx_fill(struct vfpm_sock_rx *rx, int sock, const struct vfpm_recv_limits *lim,
		   int64_t deadline_ms, bool *short_read)
{
	size_t buffered = rx->end - rx->start, want, from;
	struct fd_sink sink = {
		.fds = rx->fds, .n = &rx->nfds, .truncated = &rx->fds_truncated,
		.max = lim->max_fds < VFPM_SOCK_MAX_FDS ? lim->max_fds : VFPM_SOCK_MAX_FDS,
	};
	bool had_fds = rx_holds_fds(rx), got_fds = false;
	ssize_t n;

	if (had_fds && rx->fds_at != rx->start) {
		/* Cannot happen (only the head can be partial); never let them cross. */
		rx_drop_fds(rx);
		rx->fds_truncated = true;
		rx->fds_at = rx->start;
	}
	if (rx->start) {
		memmove(rx->buf, rx->buf + rx->start, buffered);
		if (rx_holds_fds(rx))
			rx->fds_at -= rx->start;
		rx->start = 0;
		rx->end = buffered;
	}
	want = sizeof(rx->buf) - rx->end;
	if (rx_holds_fds(rx)) {
		if (buffered < VFIO_USER_HDR_SIZE)
			want = VFIO_USER_HDR_SIZE - buffered;
		else
			want = rx_msg_size(rx, 0) - buffered;
	}
	from = rx->end;
	n = recv_some_fds(sock, rx->buf + from, want, &sink, deadline_ms, &got_fds);
	if (n < 0)
		return (int)n;
	if (n == 0)
		return buffered ? -ECONNRESET : -ESHUTDOWN;
	rx->end += (size_t)n;
	if (!had_fds && rx_holds_fds(rx))
		rx->fds_at = rx_fds_owner(rx, from);
	/*
	 * Short, and not cut at a sendmsg that carried fds: the socket is
	 * empty (a read that meets fds stops there, whatever follows).
	 */
	*short_read = (size_t)n < want && !got_fds;
	return 0;
}

/*
 * The begun head message's rest is waited for from now: its deadline, once.
 * A message's time runs from when it is first waited for, not from when
 * its first byte came in behind a request that took its time.
 */
static void rx_wait_starts(struct vfpm_sock_rx *rx, const struct vfpm_recv_limits *lim)
{
	if (lim->msg_timeout_ms && !rx->head_deadline_ms)
		rx->head_deadline_ms = now_ms() + lim->msg_timeout_ms;
}

/*
 * The head message's size (0 while its header is not whole), or -EBADMSG /
 * -E2BIG with the header in m (the stream cannot be believed any more).
 */
static ssize_t rx_head_size(const struct vfpm_sock_rx *rx, const struct vfpm_recv_limits *lim,
			    struct vfpm_msg *m)
{
	uint32_t size;

	if (rx->end - rx->start < VFIO_USER_HDR_SIZE)
		return 0;
	size = rx_msg_size(rx, rx->start);
	if (size < VFIO_USER_HDR_SIZE || size > lim->max_size) {
		memcpy(&m->hdr, rx->buf + rx->start, sizeof(m->hdr));
		return size < VFIO_USER_HDR_SIZE ? -EBADMSG : -E2BIG;
	}
	return size;
}

int vfpm_sock_rx_next(struct vfpm_sock_rx *rx, int sock, struct vfpm_msg *m,
		      const struct vfpm_recv_limits *lim)
{
	bool short_read;
	int err;

	vfpm_msg_init(m);
	for (;;) {
		size_t buffered = rx->end - rx->start;
		ssize_t size = rx_head_size(rx, lim, m);

		if (size < 0)
			return (int)size;
		if (size && (size_t)size <= buffered) {
			err = rx_take(rx, m, (size_t)size);
			break;
		}
		/* A begun message must be finished within msg_timeout_ms. */
		if (buffered)
			rx_wait_starts(rx, lim);
		if ((size_t)size > sizeof(rx->buf)) {
			err = rx_take_large(rx, sock, m, (size_t)size, lim);
			break;
		}
		err = rx_fill(rx, sock, lim, earliest(lim->deadline_ms,
						      buffered ? rx->head_deadline_ms : 0), &short_read);
		if (err)
			break;
	}
	if (err)
		vfpm_msg_release(m);
	return err;
}

/*
 * The head message is larger than the buffer (non-blocking receive): what is
 * buffered of it moves to a message of its own, whose payload the following
 * reads fill directly (exactly its bytes, so the fds that come are its own).
 */
static int rx_begin_big(struct vfpm_sock_rx *rx, size_t size, const struct vfpm_recv_limits *lim)
{
	size_t have = rx->end - rx->start - VFIO_USER_HDR_SIZE;
	struct vfpm_msg *big = malloc(sizeof(*big));

	if (!big)
		return -ENOMEM;
	vfpm_msg_init(big);
	memcpy(&big->hdr, rx->buf + rx->start, sizeof(big->hdr));
	big->len = size - VFIO_USER_HDR_SIZE;
	big->payload = malloc(big->len);
	if (!big->payload) {
		free(big);
		return -ENOMEM;
	}
	memcpy(big->payload, rx->buf + rx->start + VFIO_USER_HDR_SIZE, have);
	rx_give_fds(rx, rx->start, big);
	rx->start = rx->end = 0;
	rx->big = big;
	rx->big_have = have;
	return 0;
}

/* Read more of the big message: 0 (whole, or *readable cleared) or -errno. */
static int rx_fill_big(struct vfpm_sock_rx *rx, int sock, const struct vfpm_recv_limits *lim,
		       bool *readable)
{
	struct fd_sink sink = msg_sink(rx->big, lim->max_fds);
	size_t left = rx->big->len - rx->big_have;
	bool got_fds;
	ssize_t n = recv_some_fds(sock, (char *)rx->big->payload + rx->big_have, left, &sink,
				  RECV_NONBLOCK, &got_fds);

	if (n == -EAGAIN) {
		*readable = false;
		return 0;
	}
	if (n < 0)
		return (int)n;
	if (n == 0)
		return -ECONNRESET;
	rx->big_have += (size_t)n;
	if ((size_t)n < left && !got_fds)
		*readable = false;
	return 0;
}

int vfpm_sock_rx_poll(struct vfpm_sock_rx *rx, int sock, struct vfpm_msg *m,
		      const struct vfpm_recv_limits *lim, bool *readable)
{
	vfpm_msg_init(m);
	for (;;) {
		size_t buffered = rx->end - rx->start;
		bool short_read;
		ssize_t size;
		int err;

		if (rx->big) {
			if (rx->big_have == rx->big->len) {
				*m = *rx->big;
				free(rx->big);
				rx->big = NULL;
				rx->head_deadline_ms = 0;
				return 0;
			}
			if (!*readable)
				return -EAGAIN;
			err = rx_fill_big(rx, sock, lim, readable);
			if (err)
				return err;
			continue;
		}
		size = rx_head_size(rx, lim, m);
		if (size < 0)
			return (int)size;
		if (size && (size_t)size <= buffered) {
			err = rx_take(rx, m, (size_t)size);
			if (err)
				vfpm_msg_release(m);
			return err;
		}
		if (buffered)
			rx_wait_starts(rx, lim);
		if ((size_t)size > sizeof(rx->buf)) {
			err = rx_begin_big(rx, (size_t)size, lim);
			if (err)
				return err;
			continue;
		}
		if (!*readable)
			return -EAGAIN;
		err = rx_fill(rx, sock, lim, RECV_NONBLOCK, &short_read);
		if (err == -EAGAIN) {
			*readable = false;
			return -EAGAIN;
		}
		if (err)
			return err;
		/* A read that did not fill what it asked for emptied the socket. */
		if (short_read)
			*readable = false;
	}
}

/* The SCM_RIGHTS of nfds fds into mh, with ctl (FDS_CMSG_SPACE bytes) as its buffer. */
static void put_fds(struct msghdr *mh, char *ctl, const int *fds, unsigned int nfds)
{
	struct cmsghdr *c;

	memset(ctl, 0, FDS_CMSG_SPACE);
	mh->msg_control = ctl;
	mh->msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
	c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
}

ssize_t vfpm_sock_msg_iov(struct vfio_user_header *hdr, const struct iovec *iov,
			  unsigned int iovcnt, struct iovec *v, unsigned int *cnt)
{
	size_t total = sizeof(*hdr);

	*cnt = 1;
	v[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(*hdr) };
	for (unsigned int i = 0; i < iovcnt; i++) {
		if (!iov[i].iov_len)
			continue;
		v[(*cnt)++] = iov[i];
		total += iov[i].iov_len;
	}
	if (total > UINT32_MAX)
		return -E2BIG;
	hdr->msg_size = (uint32_t)total;
	return (ssize_t)total;
}

ssize_t vfpm_sock_send_nb(int sock, const struct iovec *iov, unsigned int iovcnt, const int *fds,
			  unsigned int nfds)
{
	union {
		char buf[FDS_CMSG_SPACE];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
	ssize_t n;

	if (nfds > VFPM_SOCK_MAX_FDS)
		return -EINVAL;
	if (nfds)
		put_fds(&mh, ctl.buf, fds, nfds);
	do {
		thread_syscalls++;
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n;
}

int vfpm_sock_send_msgv(int sock, struct vfio_user_header *hdr, const struct iovec *iov,
			unsigned int iovcnt, const int *fds, unsigned int nfds)
{
	union {
		char buf[FDS_CMSG_SPACE];
		struct cmsghdr align;
	} ctl;
	struct iovec v[SEND_MAX_IOV + 1];
	struct msghdr mh = { .msg_iov = v };
	unsigned int first = 0, cnt;
	ssize_t total;

	if (iovcnt > SEND_MAX_IOV || nfds > VFPM_SOCK_MAX_FDS)
		return -EINVAL;
	total = vfpm_sock_msg_iov(hdr, iov, iovcnt, v, &cnt);
	if (total < 0)
		return (int)total;
	if (nfds)
		put_fds(&mh, ctl.buf, fds, nfds);
	while (first < cnt) {
		ssize_t n;

		mh.msg_iov = v + first;
		mh.msg_iovlen = cnt - first;
		do {
			thread_syscalls++;
			n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		} while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		/* The fds went with the first byte. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		while (n > 0 && first < cnt) {
			if ((size_t)n >= v[first].iov_len) {
				n -= (ssize_t)v[first].iov_len;
				first++;
			} else {
				v[first].iov_base = (char *)v[first].iov_base + n;
				v[first].iov_len -= (size_t)n;
				n = 0;
			}
		}
	}
	return 0;
}

int vfpm_sock_send_msg(int sock, struct vfio_user_header *hdr, const void *payload, size_t len,
		       const int *fds, unsigned int nfds)
{
	struct iovec iov = { .iov_base = (void *)payload, .iov_len = len };

	return vfpm_sock_send_msgv(sock, hdr, &iov, payload ? 1 : 0, fds, nfds);
}

int vfpm_sock_read_all(int sock, void *buf, size_t len)
{
	struct recv_state st = { .max_fds = 0 };
	size_t got;

	return recv_exact(sock, buf, len, NULL, &st, &got);
}

int vfpm_sock_write_all(int sock, const void *buf, size_t len)
{
	while (len) {
		ssize_t n;

		do {
			thread_syscalls++;
			n = send(sock, buf, len, MSG_NOSIGNAL);
		} while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}
