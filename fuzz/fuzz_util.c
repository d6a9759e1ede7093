// SPDX-License-Identifier: MIT
#include "fuzz_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Fds may grow by this much for reasons of the process (libFuzzer's own files). */
#define FD_SLACK 32

void fuzz_drain(int sock)
{
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 253)];
			struct cmsghdr align;
		} ctl;
		char buf[65536];
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
		};
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); n >= 0 && c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
		if (n <= 0)
			return;
	}
}

void fuzz_check_fds(int *baseline)
{
	int fd = dup(0);

	if (fd < 0)
		abort();
	close(fd);
	if (*baseline < 0)
		*baseline = fd;
	else if (fd > *baseline + FD_SLACK) {
		fprintf(stderr, "fuzz: fds leak: lowest free fd %d, was %d\n", fd, *baseline);
		abort();
	}
}

uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v = 0;

	fuzz_bytes(in, &v, 1);
	return v;
}

uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t v = 0;

	fuzz_bytes(in, &v, 2);
	return v;
}

uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t v = 0;

	fuzz_bytes(in, &v, 4);
	return v;
}

size_t fuzz_bytes(struct fuzz_in *in, void *buf, size_t len)
{
	size_t n = len < in->left ? len : in->left;

	memcpy(buf, in->p, n);
	memset((uint8_t *)buf + n, 0, len - n);
	in->p += n;
	in->left -= n;
	return n;
}
