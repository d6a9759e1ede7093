// SPDX-License-Identifier: MIT
/*
 * vfio-user message I/O over AF_UNIX stream sockets with SCM_RIGHTS.
 *
 * A stream socket has no message boundaries, but the kernel never hands out
 * the fds of a later sendmsg while completing a read of an earlier one when
 * the reader asks for exactly the bytes it is missing; so reading the header,
 * then exactly msg_size - 16 bytes, collects precisely this message's fds.
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

/* Keep the fds of one recvmsg in m, or close them when m is NULL or full. */
static void stash_fds(struct vfpm_msg *m, struct msghdr *mh, unsigned int max_fds)
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
				if (m && m->nfds < max_fds) {
					m->fds[m->nfds++] = fd;
				} else {
					close(fd);
					if (m)
						m->fds_truncated = true;
				}
			}
		}
	}
	/* The kernel dropped fds that found no room: they were never ours. */
	if (m && (mh->msg_flags & MSG_CTRUNC))
		m->fds_truncated = true;
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
		n = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/*
 * One recvmsg: bytes read, 0 at end of stream, or a negative errno.  At most
 * max_fds fds in m altogether: the control buffer has room for only as many
 * as may still come, so the kernel never installs the others in our fd
 * table.  With a deadline (0: none) it never blocks past it (-ETIMEDOUT).
 */
static ssize_t recv_some(int sock, void *buf, size_t len, struct vfpm_msg *m,
			 unsigned int max_fds, int64_t deadline_ms)
{
	union {
		char buf[FDS_CMSG_SPACE];
		struct cmsghdr align;
	} ctl;
	unsigned int room = m && max_fds > m->nfds ? max_fds - m->nfds : 0;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (room > VFPM_SOCK_MAX_FDS)
		room = VFPM_SOCK_MAX_FDS;
	for (;;) {
		mh.msg_control = room ? ctl.buf : NULL;
		mh.msg_controllen = room ? CMSG_SPACE(sizeof(int) * room) : 0;
		mh.msg_flags = 0;
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | (deadline_ms ? MSG_DONTWAIT : 0));
		if (n >= 0)
			break;
		if (errno == EINTR)
			continue;
		if (!deadline_ms || (errno != EAGAIN && errno != EWOULDBLOCK))
			return -errno;
		n = wait_readable(sock, deadline_ms);
		if (n < 0)
			return n;
	}
	stash_fds(m, &mh, m ? max_fds : 0);
	return n;
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
		ssize_t n = recv_some(sock, (char *)buf + *got, len - *got, m, st->max_fds,
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

int vfpm_sock_send_msgv(int sock, struct vfio_user_header *hdr, const struct iovec *iov,
			unsigned int iovcnt, const int *fds, unsigned int nfds)
{
	union {
		char buf[FDS_CMSG_SPACE];
		struct cmsghdr align;
	} ctl;
	struct iovec v[SEND_MAX_IOV + 1];
	struct msghdr mh = { .msg_iov = v };
	size_t total = sizeof(*hdr);
	unsigned int first = 0, cnt = 1;

	if (iovcnt > SEND_MAX_IOV || nfds > VFPM_SOCK_MAX_FDS)
		return -EINVAL;
	v[0] = (struct iovec){ .iov_base = hdr, .iov_len = sizeof(*hdr) };
	for (unsigned int i = 0; i < iovcnt; i++) {
		if (!iov[i].iov_len)
			continue;
		v[cnt++] = iov[i];
		total += iov[i].iov_len;
	}
	if (total > UINT32_MAX)
		return -E2BIG;
	hdr->msg_size = (uint32_t)total;
	if (nfds) {
		struct cmsghdr *c;

		memset(ctl.buf, 0, sizeof(ctl.buf));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	while (first < cnt) {
		ssize_t n;

		mh.msg_iov = v + first;
		mh.msg_iovlen = cnt - first;
		do {
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
			n = send(sock, buf, len, MSG_NOSIGNAL);
		} while (n < 0 && errno == EINTR);
		if (n < 0)
			return -errno;
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}
