// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the vfio-user message parser and dispatcher.  Every
 * input is one whole client connection: a socketpair whose server end goes
 * to vfpm_server_serve_fd on this thread, while a peer thread writes the
 * input into the other end and a reader thread drains the replies.
 *
 * The input is the byte stream the client sends.  The peer cuts it into
 * messages by their msg_size (what is left when a header is short or
 * msg_size points past the end goes as one last piece) and attaches fds to a
 * message as its msg_id says: bits 12-13 are how many (0-3), bit 14 their
 * kind (0: eventfds, 1: 64 KiB memfds), so that valid messages carrying fds
 * (DEVICE_FEATURE 4, SET_IRQS, DMA_MAP) are reachable and seeds can say so.
 *
 * After each input: the device is idle again (nothing leaked a usage
 * reference or left low power engaged), and the server closed every fd it
 * received (the lowest free fd does not creep up).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vfpm/transport.h>

#include "fuzz_model.h"
#include "fuzz_util.h"

static struct vfpm_pci_dev *pdev;
static struct vfpm_server *srv;
static int fd_baseline = -1;

/*
 * The client side of the current input.  Its two threads live as long as
 * the process (creating threads per input costs more than an input under
 * ASan): each waits on its start semaphore, does its part of the input and
 * posts its done semaphore.
 */
struct peer {
	int sock;
	const uint8_t *data;
	size_t len;
	sem_t start_writer, start_reader, done;
};
static struct peer peer;

/* libFuzzer's timers interrupt waits. */
static void sem_wait_nointr(sem_t *sem)
{
	while (sem_wait(sem) < 0 && errno == EINTR)
		;
}

static int make_fd(bool memfd)
{
	int fd;

	if (!memfd)
		return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	fd = memfd_create("fuzz-dma", MFD_CLOEXEC);
	if (fd >= 0 && ftruncate(fd, 65536) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Send one piece with its fds; false once the server has gone. */
static bool send_piece(int sock, const uint8_t *p, size_t len, unsigned int nfds, bool memfd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 3)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[3];
	unsigned int n = 0;
	bool ok = true;

	for (unsigned int i = 0; i < nfds; i++) {
		fds[n] = make_fd(memfd);
		if (fds[n] >= 0)
			n++;
	}
	if (n) {
		struct cmsghdr *c;

		memset(ctl.buf, 0, sizeof(ctl.buf));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	while (iov.iov_len) {
		ssize_t w = sendmsg(sock, &mh, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			ok = false;
			break;
		}
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		iov.iov_base = (char *)iov.iov_base + w;
		iov.iov_len -= (size_t)w;
	}
	for (unsigned int i = 0; i < n; i++)
		close(fds[i]);
	return ok;
}

static void peer_write_input(struct peer *p)
{
	size_t off = 0;

	while (off < p->len) {
		size_t left = p->len - off, size = left;
		unsigned int nfds = 0;
		bool memfd = false;

		if (left >= 16) {
			uint16_t id;
			uint32_t msg_size;

			memcpy(&id, p->data + off, 2);
			memcpy(&msg_size, p->data + off + 4, 4);
			if (msg_size >= 16 && msg_size <= left)
				size = msg_size;
			nfds = (id >> 12) & 3;
			memfd = id & 0x4000;
		}
		if (!send_piece(p->sock, p->data + off, size, nfds, memfd))
			break;
		off += size;
	}
	shutdown(p->sock, SHUT_WR);
}

static void *peer_writer(void *arg)
{
	struct peer *p = arg;

	for (;;) {
		sem_wait_nointr(&p->start_writer);
		peer_write_input(p);
		sem_post(&p->done);
	}
	return NULL;
}

static void *peer_reader(void *arg)
{
	struct peer *p = arg;

	for (;;) {
		sem_wait_nointr(&p->start_reader);
		fuzz_drain(p->sock);
		sem_post(&p->done);
	}
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct vfpm_server_opts opts = {
		/* Small enough that the limits are reachable, big enough for real requests. */
		.max_data_xfer_size = 8192, .max_msg_fds = 4, .max_dma_maps = 8,
		.on_connect = fuzz_model_on_connect, .on_disconnect = fuzz_model_on_disconnect,
	};

	pthread_t t;

	(void)argc;
	(void)argv;
	sem_init(&peer.start_writer, 0, 0);
	sem_init(&peer.start_reader, 0, 0);
	sem_init(&peer.done, 0, 0);
	if (pthread_create(&t, NULL, peer_writer, &peer) || pthread_detach(t) ||
	    pthread_create(&t, NULL, peer_reader, &peer) || pthread_detach(t))
		abort();
	if (fuzz_model_create(&pdev))
		abort();
	opts.opaque = pdev;
	if (vfpm_server_create_fd(vfpm_pci_device(pdev), -1, &opts, &srv)) {
		fprintf(stderr, "fuzz_server: cannot set up the server\n");
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	int err;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	peer.sock = sv[1];
	peer.data = data;
	peer.len = size;
	sem_post(&peer.start_writer);
	sem_post(&peer.start_reader);
	err = vfpm_server_serve_fd(srv, sv[0]);
	sem_wait_nointr(&peer.done);
	sem_wait_nointr(&peer.done);
	close(sv[1]);
	if (err) {
		fprintf(stderr, "fuzz_server: serve_fd: %s\n", strerror(-err));
		abort();
	}
	if (vfpm_server_connection_count(srv) != 0)
		abort();
	fuzz_model_wait_idle(pdev);
	fuzz_check_fds(&fd_baseline);
	return 0;
}
