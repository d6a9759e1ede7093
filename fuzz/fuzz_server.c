// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the vfio-user server against hostile clients.  Every
 * input is one session of two clients of the same device at once: two
 * socketpairs whose server ends go to vfpm_server_serve_fd, connection A on
 * this thread and B on a helper thread, while a writer thread sends the
 * input into the client ends and a reader thread per connection takes the
 * replies (and the fds in them) and answers the server's DMA messages.
 *
 * The input is the byte stream the clients send.  The writer cuts it into
 * messages by their msg_size (what is left when a header is short or
 * msg_size points past the end goes as one last piece) and reads what to do
 * from each message's msg_id, which the server only echoes
 * (fuzz_server_input.h has the names):
 *
 *   bit 15       0: connection A, 1: connection B
 *   bits 12-13   n, how many fds go with the message (0-3)
 *   bit 11       many: max_msg_fds + 1 + 5 * n fds instead (5, 10, 15, 20)
 *   bits 8-10,14 the fds' kind: (bits 8-10) << 1 | bit 14 (enum fz_fd_kind;
 *                0 eventfd and 1 64 KiB memfd are the original encoding)
 *   bits 6-7     the action on the fds of the reply (the reply echoes the
 *                msg_id): a memfd (a BAR's, from GET_REGION_INFO) is kept
 *                until the session ends, after being 1: truncated to 0,
 *                2: shrunk to 4 KiB, 3: grown to twice its size; the twin
 *                socket (VERSION) is closed at once on 0, and otherwise
 *                answers the server's DMA messages 1: correctly, 2: with
 *                error replies, 3: with hostile replies (wrong msg_id, data
 *                short, not a reply: whole messages all the same)
 *   bits 0-5     the id proper, free; but bits 0-7 all set on a last piece
 *                that is not a whole message make the clients stall before
 *                they hang up, so that the VERSION and message deadlines
 *                expire
 *
 * When a message has an action, or fds the client acts on after the reply,
 * the writer waits for the reply before it goes on, so that the action
 * lands between this message and the next: the BAR truncated before the
 * next REGION_READ, the DMA window's file truncated before the model's DMA.
 *
 * After each input, with both connections gone: the device is idle again
 * (nothing leaked a usage reference or left low power engaged), no
 * connection is left, the server closed every fd it received (the lowest
 * free fd does not creep up), no mapping of a client's file is left (and
 * /proc/self/maps does not grow), no thread is left over, and the process's
 * budgets of connections and DMA windows are whole again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vfpm/transport.h>

#include "fuzz_server_input.h"
#include "fuzz_util.h"
#include "server_internal.h"
#include "test_model.h"

/* The server's options: small enough that the limits are reachable. */
#define MAX_MSG_FDS FZ_MAX_MSG_FDS
#define MAX_DMA_MAPS 8
/*
 * The deadlines: short, so that the stall that makes them expire is cheap;
 * msg_timeout_ms also bounds the wait for a twin-socket DMA reply and for a
 * send to a client, which the clients' readers easily meet.
 */
#define VERSION_TIMEOUT_MS 30
#define MSG_TIMEOUT_MS 30
/* The process's budgets: two connections' worth of windows is over it. */
#define BUDGET_CONNECTIONS 2
#define BUDGET_DMA_MAPS 12

#define MAX_FDS (MAX_MSG_FDS + 1 + 5 * 3)
#define MEMFD_SIZE 65536
#define MEMFD_NAME "fuzz-client"
/* How long the writer waits for a reply before it goes on regardless. */
#define SYNC_TIMEOUT_MS 2000
/* The stall at the end: past both deadlines. */
#define STALL_MS ((VERSION_TIMEOUT_MS > MSG_TIMEOUT_MS ? VERSION_TIMEOUT_MS : MSG_TIMEOUT_MS) + 10)
/* Memfds from replies a client keeps (more are closed). */
#define MAX_HELD 8
/* Lines /proc/self/maps may grow by for the allocator's sake (ASan's size classes). */
#define MAPS_SLACK 1024
/* Mappings of the BARs' memfds at most: BAR0 and BAR4, each in up to 3 pieces. */
#define MAX_BAR_MAPS 6

static const enum fz_fd_kind mix_kinds[] = {
	FZ_EVENTFD, FZ_MEMFD, FZ_PIPE_READ, FZ_SOCKET, FZ_DEVNULL,
};

/*
 * A client connection.  Its reader thread lives as long as the process
 * (creating threads per input costs more than an input under ASan): it
 * waits on start_reader, reads the replies until the server hangs up and
 * posts reader_done.
 */
struct client {
	int sock;			/* the client's end */
	sem_t start_reader, reader_done;
	/* Protects replies, eof, held, nheld; cond: a reply came, or eof. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned long replies;
	bool eof;
	int held[MAX_HELD];		/* memfds from replies: the BARs' */
	unsigned int nheld;
	/* Serialises sends on sock: the writer's pieces, the reader's DMA answers. */
	pthread_mutex_t send_lock;
	/* The reader's own: the twin socket and how it answers. */
	int twin;
	unsigned int twin_mode, twin_seq;
};

static struct test_model *model;
static struct vfpm_server *srv;
static struct client clients[2];
static int fd_baseline = -1, maps_baseline = -1, threads_baseline = -1;
/* FUZZ_LOG set: the library's log and what the clients do, on stderr. */
static bool verbose;
/* What a correct DMA_READ answer carries (filled at init). */
static uint8_t pattern[4096];

/* The writer thread: the input, then done. */
static struct {
	const uint8_t *data;
	size_t len;
	sem_t start, done;
} writer;

/* The thread serving connection B. */
static struct {
	int sock;
	int err;
	sem_t start, done;
} server_b;

/* libFuzzer's timers interrupt waits. */
static void sem_wait_nointr(sem_t *sem)
{
	while (sem_wait(sem) < 0 && errno == EINTR)
		;
}

static void truncate_to(int fd, off_t size)
{
	if (ftruncate(fd, size) < 0) {
		/* A sealed file refuses: that is the point of it. */
	}
}

/* ---- the fds clients send ---- */

static int memfd_of(off_t size, unsigned int flags)
{
	int fd = memfd_create(MEMFD_NAME, MFD_CLOEXEC | flags);

	if (fd >= 0 && ftruncate(fd, size) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* A dup of a BAR memfd one of the clients got (c's own first); -1 when none. */
static int held_dup(struct client *c)
{
	int fd = -1;

	for (unsigned int i = 0; i < 2 && fd < 0; i++) {
		struct client *h = i ? &clients[c == &clients[0]] : c;

		pthread_mutex_lock(&h->lock);
		if (h->nheld)
			fd = fcntl(h->held[h->nheld - 1], F_DUPFD_CLOEXEC, 0);
		pthread_mutex_unlock(&h->lock);
	}
	return fd;
}

static int make_fd(enum fz_fd_kind kind, struct client *c)
{
	int fd, p[2];

	switch (kind) {
	case FZ_EVENTFD:
		return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	case FZ_EVENTFD_FULL: {
		uint64_t v = UINT64_MAX - 1;

		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd >= 0 && write(fd, &v, sizeof(v)) != sizeof(v)) {
			close(fd);
			fd = -1;
		}
		return fd;
	}
	case FZ_MEMFD_SMALL:
		return memfd_of(4096, 0);
	case FZ_MEMFD_SEALED:
		fd = memfd_of(MEMFD_SIZE, MFD_ALLOW_SEALING);
		if (fd >= 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
			close(fd);
			fd = -1;
		}
		return fd;
	case FZ_MEMFD_RDONLY: {
		char path[64];
		int rw = memfd_of(MEMFD_SIZE, 0);

		if (rw < 0)
			return -1;
		snprintf(path, sizeof(path), "/proc/self/fd/%d", rw);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		close(rw);
		return fd;
	}
	case FZ_PIPE_READ:
	case FZ_PIPE_WRITE:
		if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
			return -1;
		close(p[kind == FZ_PIPE_READ ? 1 : 0]);
		return p[kind == FZ_PIPE_READ ? 0 : 1];
	case FZ_SOCKET:
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
			return -1;
		close(p[1]);
		return p[0];
	case FZ_DEVNULL:
		return open("/dev/null", O_RDWR | O_CLOEXEC);
	case FZ_BAR:
		fd = held_dup(c);
		return fd >= 0 ? fd : memfd_of(MEMFD_SIZE, 0);
	case FZ_MIX:	/* not a kind of one fd */
	case FZ_MEMFD:
	case FZ_MEMFD_TRUNC_NOW:
	case FZ_MEMFD_TRUNC_AFTER:
	case FZ_MEMFD_SHRINK_AFTER:
	case FZ_MEMFD_GROW_AFTER:
		break;
	}
	return memfd_of(MEMFD_SIZE, 0);
}

static bool acts_after_reply(enum fz_fd_kind kind)
{
	return kind == FZ_MEMFD_TRUNC_AFTER || kind == FZ_MEMFD_SHRINK_AFTER ||
	       kind == FZ_MEMFD_GROW_AFTER;
}

static void act_after_reply(enum fz_fd_kind kind, int fd)
{
	if (kind == FZ_MEMFD_TRUNC_AFTER)
		truncate_to(fd, 0);
	else if (kind == FZ_MEMFD_SHRINK_AFTER)
		truncate_to(fd, MEMFD_SIZE / 2);
	else if (kind == FZ_MEMFD_GROW_AFTER)
		truncate_to(fd, MEMFD_SIZE * 2);
}

/* Send one piece with its fds; false once the server has gone. */
static bool send_piece(int sock, const uint8_t *p, size_t len, const int *fds, unsigned int n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = (void *)p, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

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
		if (w <= 0)
			return false;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		iov.iov_base = (char *)iov.iov_base + w;
		iov.iov_len -= (size_t)w;
	}
	return true;
}

/* Wait until c has had count replies, or the server hung up, or a while passed. */
static void wait_replies(struct client *c, unsigned long count)
{
	struct timespec deadline;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SYNC_TIMEOUT_MS / 1000;
	deadline.tv_nsec += (SYNC_TIMEOUT_MS % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->lock);
	while (c->replies < count && !c->eof && err != ETIMEDOUT)
		err = pthread_cond_timedwait(&c->cond, &c->lock, &deadline);
	pthread_mutex_unlock(&c->lock);
	if (err == ETIMEDOUT)
		fprintf(stderr, "fuzz_server: no reply within %d ms; going on\n", SYNC_TIMEOUT_MS);
}

static void write_input(void)
{
	unsigned long expect[2] = { 0, 0 };
	bool dead[2] = { false, false };
	bool stall = false;
	size_t off = 0;

	while (off < writer.len) {
		const uint8_t *p = writer.data + off;
		size_t left = writer.len - off, size = left;
		struct vfio_user_header h = { .msg_id = 0 };
		enum fz_fd_kind kinds[MAX_FDS];
		int fds[MAX_FDS];
		unsigned int nfds = 0, n = 0, ci = 0;
		bool whole = false, after = false;
		struct client *c;

		if (left >= sizeof(h)) {
			memcpy(&h, p, sizeof(h));
			whole = h.msg_size >= sizeof(h) && h.msg_size <= left;
			if (whole)
				size = h.msg_size;
			nfds = FZ_NFDS(h.msg_id);
			if (h.msg_id & FZ_MANY)
				nfds = MAX_MSG_FDS + 1 + 5 * nfds;
			ci = (h.msg_id & FZ_CONN_B) ? 1 : 0;
			stall = !whole && (h.msg_id & FZ_STALL) == FZ_STALL;
		}
		off += size;
		c = &clients[ci];
		if (dead[ci])
			continue;
		for (unsigned int i = 0; i < nfds; i++) {
			enum fz_fd_kind k = FZ_KIND_OF(h.msg_id);

			if (k == FZ_MIX)
				k = mix_kinds[i % (sizeof(mix_kinds) / sizeof(mix_kinds[0]))];
			fds[n] = make_fd(k, c);
			if (fds[n] < 0)
				continue;
			kinds[n++] = k;
			after |= acts_after_reply(k);
		}
		pthread_mutex_lock(&c->send_lock);
		if (!send_piece(c->sock, p, size, fds, n))
			dead[ci] = true;
		pthread_mutex_unlock(&c->send_lock);
		for (unsigned int i = 0; i < n; i++) {
			if (kinds[i] == FZ_MEMFD_TRUNC_NOW)
				truncate_to(fds[i], 0);
		}
		if (!dead[ci] && whole) {
			/* A reply of the client's answers nothing of the server's: no answer comes. */
			if (!(h.flags & VFIO_USER_F_NO_REPLY) &&
			    (h.flags & VFIO_USER_F_TYPE_MASK) != VFIO_USER_F_TYPE_REPLY)
				expect[ci]++;
			if (FZ_ACTION_OF(h.msg_id) || after)
				wait_replies(c, expect[ci]);
		}
		for (unsigned int i = 0; i < n; i++) {
			act_after_reply(kinds[i], fds[i]);
			close(fds[i]);
		}
	}
	if (stall)
		fuzz_sleep_ms(STALL_MS);
	shutdown(clients[0].sock, SHUT_WR);
	shutdown(clients[1].sock, SHUT_WR);
}

static void *writer_main(void *arg)
{
	(void)arg;
	for (;;) {
		sem_wait_nointr(&writer.start);
		write_input();
		sem_post(&writer.done);
	}
	return NULL;
}

/* ---- what clients receive ---- */

/*
 * Exactly len bytes of sock (buf NULL: thrown away), keeping up to max fds
 * that come with them in fds[*nfds...] and closing the rest.  false at the
 * end of the stream or on an error.
 */
static bool recv_exact(int sock, void *buf, size_t len, int *fds, unsigned int *nfds,
		       unsigned int max)
{
	char scratch[4096];

	while (len) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * VFPM_SOCK_MAX_FDS)];
			struct cmsghdr align;
		} ctl;
		size_t want = buf ? len : (len < sizeof(scratch) ? len : sizeof(scratch));
		struct iovec iov = { .iov_base = buf ? buf : scratch, .iov_len = want };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
		};
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); n > 0 && c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				if (*nfds < max)
					fds[(*nfds)++] = fd;
				else
					close(fd);
			}
		}
		if (n <= 0)
			return false;
		if (buf)
			buf = (char *)buf + n;
		len -= (size_t)n;
	}
	return true;
}

/* The fds of a reply: keep and attack the BAR memfds, take the twin socket. */
static void take_reply_fds(struct client *c, unsigned int action, const int *fds, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++) {
		int fd = fds[i];
		struct stat st;

		if (fstat(fd, &st) < 0) {
			close(fd);
			continue;
		}
		if (S_ISSOCK(st.st_mode) && action != FZ_TWIN_CLOSE && c->twin < 0) {
			c->twin = fd;
			c->twin_mode = action;
			c->twin_seq = 0;
			continue;
		}
		if (S_ISREG(st.st_mode)) {
			if (action == FZ_BAR_TRUNCATE)
				truncate_to(fd, 0);
			else if (action == FZ_BAR_SHRINK)
				truncate_to(fd, 4096);
			else if (action == FZ_BAR_GROW)
				truncate_to(fd, st.st_size ? st.st_size * 2 : MEMFD_SIZE);
			if (verbose)
				fprintf(stderr, "fuzz %c: a memfd of %lld bytes in a reply: action %u\n",
					c == clients ? 'A' : 'B', (long long)st.st_size, action);
			pthread_mutex_lock(&c->lock);
			if (c->nheld < MAX_HELD) {
				c->held[c->nheld++] = fd;
				fd = -1;
			}
			pthread_mutex_unlock(&c->lock);
		}
		if (fd >= 0)
			close(fd);
	}
}

/* Send iovecs whole (empty ones skipped); false when the peer is gone. */
static bool send_all_iov(int sock, struct iovec *iov, unsigned int cnt)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = cnt };

	for (;;) {
		ssize_t w;

		while (mh.msg_iovlen && !mh.msg_iov->iov_len) {
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (!mh.msg_iovlen)
			return true;
		w = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		while (w > 0) {
			size_t step = (size_t)w < mh.msg_iov->iov_len ? (size_t)w : mh.msg_iov->iov_len;

			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + step;
			mh.msg_iov->iov_len -= step;
			w -= (ssize_t)step;
			if (!mh.msg_iov->iov_len && mh.msg_iovlen) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
}

/*
 * The server's DMA_READ / DMA_WRITE on the main socket (no twin socket, as
 * QEMU): answered correctly, as QEMU does; its payload is read here.
 */
static bool main_answer(struct client *c, const struct vfio_user_header *h)
{
	struct vfio_user_dma_access a = { .addr = 0 };
	size_t len = h->msg_size > sizeof(*h) ? h->msg_size - sizeof(*h) : 0;
	size_t alen = len < sizeof(a) ? len : sizeof(a), dlen = 0;
	struct vfio_user_header rh = {
		.msg_id = h->msg_id, .command = h->command, .flags = VFIO_USER_F_TYPE_REPLY,
	};
	unsigned int n = 0;
	int fds[1];
	struct iovec iov[3];
	bool ok;

	if (!recv_exact(c->sock, &a, alen, fds, &n, 0) ||
	    !recv_exact(c->sock, NULL, len - alen, fds, &n, 0))
		return false;
	if (h->command == VFIO_USER_DMA_READ)
		dlen = a.count;
	if (dlen > sizeof(pattern)) {
		rh.flags |= VFIO_USER_F_ERROR;
		rh.error_no = EFAULT;
		dlen = 0;
	}
	iov[0] = (struct iovec){ .iov_base = &rh, .iov_len = sizeof(rh) };
	iov[1] = (struct iovec){ .iov_base = &a, .iov_len = rh.error_no ? 0 : sizeof(a) };
	iov[2] = (struct iovec){ .iov_base = (void *)pattern, .iov_len = dlen };
	rh.msg_size = (uint32_t)(iov[0].iov_len + iov[1].iov_len + iov[2].iov_len);
	pthread_mutex_lock(&c->send_lock);
	ok = send_all_iov(c->sock, iov, 3);
	pthread_mutex_unlock(&c->send_lock);
	return ok;
}

/* One message from the server on the connection's socket; false once it has hung up. */
static bool read_reply(struct client *c)
{
	struct vfio_user_header h;
	int fds[VFPM_SOCK_MAX_FDS];
	unsigned int n = 0;
	bool ok = recv_exact(c->sock, &h, sizeof(h), fds, &n, VFPM_SOCK_MAX_FDS);

	if (ok && (h.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_COMMAND &&
	    (h.command == VFIO_USER_DMA_READ || h.command == VFIO_USER_DMA_WRITE)) {
		for (unsigned int i = 0; i < n; i++)
			close(fds[i]);
		return main_answer(c, &h);
	}
	if (ok && h.msg_size > sizeof(h))
		ok = recv_exact(c->sock, NULL, h.msg_size - sizeof(h), fds, &n, VFPM_SOCK_MAX_FDS);
	if (!ok) {
		for (unsigned int i = 0; i < n; i++)
			close(fds[i]);
		return false;
	}
	take_reply_fds(c, FZ_ACTION_OF(h.msg_id), fds, n);
	pthread_mutex_lock(&c->lock);
	c->replies++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return true;
}

/*
 * Answer one DMA_READ / DMA_WRITE on the twin socket as twin_mode says.
 * Every answer is a whole message whose msg_size is true, so the stream
 * stays in step; false when the twin socket is gone.
 */
static bool twin_answer(struct client *c)
{
	struct vfio_user_header h, rh;
	struct vfio_user_dma_access a = { .addr = 0 };
	size_t len, alen, plen = sizeof(a), dlen = 0;
	unsigned int n = 0;
	int fds[1];
	struct iovec iov[3];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 0 };

	if (!recv_exact(c->twin, &h, sizeof(h), fds, &n, 0))
		return false;
	len = h.msg_size > sizeof(h) ? h.msg_size - sizeof(h) : 0;
	alen = len < sizeof(a) ? len : sizeof(a);
	if (!recv_exact(c->twin, &a, alen, fds, &n, 0) ||
	    !recv_exact(c->twin, NULL, len - alen, fds, &n, 0))
		return false;
	rh = (struct vfio_user_header){
		.msg_id = h.msg_id, .command = h.command, .flags = VFIO_USER_F_TYPE_REPLY,
	};
	if (h.command == VFIO_USER_DMA_READ)
		dlen = a.count;
	if (c->twin_mode == FZ_TWIN_ERROR || dlen > sizeof(pattern)) {
		static const uint32_t errnos[] = { EIO, 0, 100000, EFAULT };

		rh.flags |= VFIO_USER_F_ERROR;
		rh.error_no = errnos[c->twin_seq % 4];
		plen = dlen = 0;
	} else if (c->twin_mode == FZ_TWIN_HOSTILE) {
		switch (c->twin_seq % 3) {
		case 0:
			rh.msg_id++;
			break;
		case 1:	/* a DMA_READ's data one byte short, a DMA_WRITE's reply 4 bytes */
			if (dlen)
				dlen--;
			else
				plen = 4;
			break;
		default:
			rh.flags = VFIO_USER_F_TYPE_COMMAND;
			break;
		}
	}
	if (verbose)
		fprintf(stderr, "fuzz %c: twin: %s of %llu bytes at %#llx answered: msg_id %u, "
			"flags %#x, error %u, %zu + %zu bytes\n", c == clients ? 'A' : 'B',
			h.command == VFIO_USER_DMA_READ ? "DMA_READ" : "DMA_WRITE",
			(unsigned long long)a.count, (unsigned long long)a.addr, rh.msg_id, rh.flags,
			rh.error_no, plen, dlen);
	c->twin_seq++;
	rh.msg_size = (uint32_t)(sizeof(rh) + plen + dlen);
	iov[mh.msg_iovlen++] = (struct iovec){ .iov_base = &rh, .iov_len = sizeof(rh) };
	if (plen)
		iov[mh.msg_iovlen++] = (struct iovec){ .iov_base = &a, .iov_len = plen };
	if (dlen)
		iov[mh.msg_iovlen++] = (struct iovec){ .iov_base = (void *)pattern, .iov_len = dlen };
	for (size_t total = rh.msg_size; total;) {
		ssize_t w = sendmsg(c->twin, &mh, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		total -= (size_t)w;
		while (w > 0) {
			if ((size_t)w >= mh.msg_iov->iov_len) {
				w -= (ssize_t)mh.msg_iov->iov_len;
				mh.msg_iov++;
				mh.msg_iovlen--;
			} else {
				mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + w;
				mh.msg_iov->iov_len -= (size_t)w;
				w = 0;
			}
		}
	}
	return true;
}

/* Read the replies and answer DMA until the server hangs up; then drop every fd. */
static void read_session(struct client *c)
{
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = c->sock, .events = POLLIN },
			{ .fd = c->twin, .events = POLLIN },
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		if (pfd[1].revents && !twin_answer(c)) {
			close(c->twin);
			c->twin = -1;
		}
		if (pfd[0].revents && !read_reply(c))
			break;
	}
	if (c->twin >= 0)
		close(c->twin);
	c->twin = -1;
	pthread_mutex_lock(&c->lock);
	c->eof = true;
	for (unsigned int i = 0; i < c->nheld; i++)
		close(c->held[i]);
	c->nheld = 0;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void *reader_main(void *arg)
{
	struct client *c = arg;

	for (;;) {
		sem_wait_nointr(&c->start_reader);
		read_session(c);
		sem_post(&c->reader_done);
	}
	return NULL;
}

static void *server_b_main(void *arg)
{
	(void)arg;
	for (;;) {
		sem_wait_nointr(&server_b.start);
		server_b.err = vfpm_server_serve_fd(srv, server_b.sock);
		sem_post(&server_b.done);
	}
	return NULL;
}

/* ---- the invariants ---- */

/*
 * The process's DMA window budget whole again: every unit can be taken, and
 * not one more.  (The connection budget is exactly two connections, so a
 * unit leaked shows as the next input's connection being refused.)
 */
static void check_dma_budget(void)
{
	unsigned int maps = 0;
	bool over;

	while (maps < BUDGET_DMA_MAPS && srv_budget_take_dma_map())
		maps++;
	over = srv_budget_take_dma_map();
	srv_budget_put_dma_maps(maps + over);
	if (maps != BUDGET_DMA_MAPS || over) {
		fprintf(stderr, "fuzz_server: %u%s of the %u DMA windows of the budget free with "
			"no connection\n", maps, over ? " (and more)" : "", BUDGET_DMA_MAPS);
		abort();
	}
}

/*
 * /proc/self/maps: no mapping of a client's memfd is left (the DMA windows
 * went with their connections), the BARs have their own mappings (memfd or,
 * revoked, shared anonymous memory) and no more, and the rest has not grown
 * beyond what the allocator's size classes take (an input that leaks one
 * mapping gets there within a few thousand executions).
 */
static const char *const map_needles[] = {
	("memfd:" MEMFD_NAME), "memfd:vfpm-bar", "/dev/zero",
};
#define N_NEEDLES (sizeof(map_needles) / sizeof(map_needles[0]))
static int maps_base[N_NEEDLES];

static void check_maps(void)
{
	int counts[N_NEEDLES];
	int lines = fuzz_count_maps(map_needles, N_NEEDLES, counts);

	if (lines < 0)
		abort();
	if (maps_baseline < 0) {
		maps_baseline = lines;
		memcpy(maps_base, counts, sizeof(counts));
		return;
	}
	if (counts[0] || counts[1] > MAX_BAR_MAPS || counts[2] > maps_base[2] + MAX_BAR_MAPS ||
	    lines > maps_baseline + MAPS_SLACK) {
		fprintf(stderr, "fuzz_server: mappings leak: %d of clients' memfds, %d of the BARs' "
			"memfds (at most %d), %d of shared anonymous memory (were %d), %d lines "
			"in all (were %d)\n", counts[0], counts[1], MAX_BAR_MAPS, counts[2],
			maps_base[2], lines, maps_baseline);
		abort();
	}
}

static void check_process(void)
{
	fuzz_check_fds(&fd_baseline);
	check_maps();
	fuzz_check_threads(&threads_baseline);
	check_dma_budget();
}

/* ---- libFuzzer ---- */

static void start_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;

	if (pthread_create(&t, NULL, fn, arg) || pthread_detach(t))
		abort();
}

static void log_stderr(enum vfpm_log_level level, const char *msg, void *opaque)
{
	(void)opaque;
	fprintf(stderr, "vfpm %d: %s\n", (int)level, msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct vfpm_server_opts opts = {
		/* Small enough that the limits are reachable, big enough for real requests. */
		.max_data_xfer_size = 8192, .max_msg_fds = MAX_MSG_FDS,
		.max_dma_maps = MAX_DMA_MAPS, .max_connections = 2,
		.version_timeout_ms = VERSION_TIMEOUT_MS, .msg_timeout_ms = MSG_TIMEOUT_MS,
		.on_connect = tm_on_connect, .on_disconnect = tm_on_disconnect,
	};
	const struct vfpm_transport_limits lim = {
		.max_connections = BUDGET_CONNECTIONS, .max_dma_maps = BUDGET_DMA_MAPS,
	};
	pthread_condattr_t attr;

	(void)argc;
	(void)argv;
	/* FUZZ_LOG=1: the log on stderr, to see why an input goes where it goes. */
	verbose = getenv("FUZZ_LOG") != NULL;
	if (verbose)
		vfpm_log_set(log_stderr, NULL, VFPM_LOG_DEBUG);
	memset(pattern, 0x5a, sizeof(pattern));
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	for (unsigned int i = 0; i < 2; i++) {
		struct client *c = &clients[i];

		c->sock = c->twin = -1;
		sem_init(&c->start_reader, 0, 0);
		sem_init(&c->reader_done, 0, 0);
		pthread_mutex_init(&c->lock, NULL);
		pthread_mutex_init(&c->send_lock, NULL);
		pthread_cond_init(&c->cond, &attr);
		start_thread(reader_main, c);
	}
	pthread_condattr_destroy(&attr);
	sem_init(&writer.start, 0, 0);
	sem_init(&writer.done, 0, 0);
	sem_init(&server_b.start, 0, 0);
	sem_init(&server_b.done, 0, 0);
	start_thread(writer_main, NULL);
	start_thread(server_b_main, NULL);
	if (vfpm_transport_set_limits(&lim))
		abort();
	model = fuzz_model_create();
	opts.opaque = model;
	if (vfpm_server_create_fd(vfpm_pci_device(model->pdev), -1, &opts, &srv)) {
		fprintf(stderr, "fuzz_server: cannot set up the server\n");
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int server_end[2];
	int err;

	/* The baselines: libFuzzer's own threads and files are there by now. */
	if (threads_baseline < 0) {
		fuzz_check_threads(&threads_baseline);
		check_maps();
	}
	for (unsigned int i = 0; i < 2; i++) {
		struct client *c = &clients[i];
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			abort();
		server_end[i] = sv[0];
		c->sock = sv[1];
		c->replies = 0;
		c->eof = false;
		sem_post(&c->start_reader);
	}
	server_b.sock = server_end[1];
	sem_post(&server_b.start);
	writer.data = data;
	writer.len = size;
	sem_post(&writer.start);
	err = vfpm_server_serve_fd(srv, server_end[0]);
	sem_wait_nointr(&server_b.done);
	sem_wait_nointr(&writer.done);
	for (unsigned int i = 0; i < 2; i++) {
		sem_wait_nointr(&clients[i].reader_done);
		close(clients[i].sock);
		clients[i].sock = -1;
	}
	if (err || server_b.err) {
		fprintf(stderr, "fuzz_server: serve_fd: A %s, B %s\n", strerror(-err),
			strerror(-server_b.err));
		abort();
	}
	if (vfpm_server_connection_count(srv) != 0)
		abort();
	fuzz_model_wait_idle(model);
	check_process();
	return 0;
}
