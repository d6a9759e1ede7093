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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
static void stash_fds(struct vfpm_msg *m, struct msghdr *mh)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (m && m->nfds < VFPM_SOCK_MAX_FDS) {
				m->fds[m->nfds++] = fd;
			} else {
				close(fd);
				if (m)
					m->fds_truncated = true;
			}
		}
	}
	if (m && (mh->msg_flags & MSG_CTRUNC))
		m->fds_truncated = true;
}

/* One recvmsg: bytes read, 0 at end of stream, or a negative errno. */
static ssize_t recv_some(int sock, void *buf, size_t len, struct vfpm_msg *m)
{
	union {
		char buf[FDS_CMSG_SPACE];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	ssize_t n;

	do {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	stash_fds(m, &mh);
	return n;
}

/* Exactly len bytes: 0, -ECONNRESET at end of stream (*got says how far), or -errno. */
static int recv_exact(int sock, void *buf, size_t len, struct vfpm_msg *m, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = recv_some(sock, (char *)buf + *got, len - *got, m);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -ECONNRESET;
		*got += (size_t)n;
	}
	return 0;
}

int vfpm_sock_recv_msg(int sock, struct vfpm_msg *m, size_t max_size)
{
	size_t got;
	int err;

	vfpm_msg_init(m);
	err = recv_exact(sock, &m->hdr, sizeof(m->hdr), m, &got);
	if (err) {
		if (err == -ECONNRESET && got == 0)
			err = -ESHUTDOWN;
		goto fail;
	}
	if (m->hdr.msg_size < VFIO_USER_HDR_SIZE) {
		err = -EBADMSG;
		goto fail;
	}
	if (m->hdr.msg_size > max_size) {
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
		err = recv_exact(sock, m->payload, m->len, m, &got);
		if (err)
			goto fail;
	}
	return 0;
fail:
	vfpm_msg_release(m);
	return err;
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
	size_t got;

	return recv_exact(sock, buf, len, NULL, &got);
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
