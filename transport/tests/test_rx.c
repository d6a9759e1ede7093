// SPDX-License-Identifier: MIT
/*
 * The server's buffered receive, seen from a client on a raw socket: requests
 * written together are all answered in order, a request written byte by
 * byte still works, fds reach the command they were sent with whatever
 * comes before or after it, a message larger than the buffer works and an
 * oversized one is still refused; and a request written in one piece costs
 * the server's connection thread two socket syscalls, one recvmsg and one
 * sendmsg.  First, the kernel behaviour that matching fds to messages relies
 * on.
 *
 * The connection is served by vfpm_server_serve_fd on a thread of the test,
 * so that the test can read that thread's syscall count when it returns.
 */
#include "test_util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

struct rfix {
	struct tfix *f;
	int sock;			/* the client's end */
	int server_sock;		/* the server's end, served by thread */
	pthread_t thread;		/* serving the server's end */
	int serve_ret;
	unsigned long syscalls;		/* the serving thread's socket syscalls */
	int fds_before;
};

static void *serve_thread(void *arg)
{
	struct rfix *r = arg;
	unsigned long before = vfpm_sock_thread_syscalls();

	r->serve_ret = vfpm_server_serve_fd(r->f->srv, r->server_sock);
	r->syscalls = vfpm_sock_thread_syscalls() - before;
	return NULL;
}

/* A connection served on a thread of ours; VERSION done when version is set. */
static void rfix_connect(struct rfix *r, bool version)
{
	struct timeval tv = { .tv_sec = T_TIMEOUT_MS / 1000 };
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	r->server_sock = sv[0];
	r->sock = sv[1];
	assert_int_equal(pthread_create(&r->thread, NULL, serve_thread, r), 0);
	if (version)
		raw_version(r->sock);
}

/* The client leaves; the server's thread returns.  Its syscall count. */
static unsigned long rfix_disconnect(struct rfix *r)
{
	if (r->sock >= 0)
		close(r->sock);
	r->sock = -1;
	assert_int_equal(pthread_join(r->thread, NULL), 0);
	assert_int_equal(r->serve_ret, 0);
	return r->syscalls;
}

static int rfix_setup(void **state)
{
	struct rfix *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	tfix_setup((void **)&r->f);
	r->fds_before = t_count_fds();
	r->sock = -1;
	*state = r;
	return 0;
}

static int rfix_teardown(void **state)
{
	struct rfix *r = *state;

	/* Nothing a test sent stays open in the server. */
	assert_int_equal(t_count_fds(), r->fds_before);
	tfix_teardown((void **)&r->f);
	free(r);
	return 0;
}

/* Append one message to buf at *len. */
static void put_msg(uint8_t *buf, size_t cap, size_t *len, uint16_t id, uint16_t cmd,
		    const void *payload, size_t plen)
{
	struct vfio_user_header hdr = {
		.msg_id = id, .command = cmd, .flags = VFIO_USER_F_TYPE_COMMAND,
		.msg_size = (uint32_t)(VFIO_USER_HDR_SIZE + plen),
	};

	assert_true(*len + hdr.msg_size <= cap);
	memcpy(buf + *len, &hdr, sizeof(hdr));
	memcpy(buf + *len + sizeof(hdr), payload, plen);
	*len += hdr.msg_size;
}

static void put_region_read(uint8_t *buf, size_t cap, size_t *len, uint16_t id, uint32_t region,
			    uint64_t offset, uint32_t count)
{
	struct vfio_user_region_access a = { .offset = offset, .region = region, .count = count };

	put_msg(buf, cap, len, id, VFIO_USER_REGION_READ, &a, sizeof(a));
}

/* SET_IRQS of INTx, to the one eventfd sent with it (or de-assigned without). */
static void put_intx_eventfd(uint8_t *buf, size_t cap, size_t *len, uint16_t id)
{
	struct vfio_user_irq_set set = {
		.argsz = sizeof(set), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_INTX_IRQ_INDEX, .count = 1,
	};

	put_msg(buf, cap, len, id, VFIO_USER_DEVICE_SET_IRQS, &set, sizeof(set));
}

/* One sendmsg of len bytes, with nfds fds. */
static void send_bytes(int sock, const void *buf, size_t len, const int *fds, unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl = { .buf = { 0 } };
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	assert_true(nfds <= 4);
	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

/* The next reply answers REGION_READ id with count bytes: returns the first 4 of them. */
static uint32_t expect_read_reply(int sock, uint16_t id, uint32_t count)
{
	struct vfio_user_region_access a;
	struct vfpm_msg m;
	uint32_t v = 0;

	raw_recv(sock, &m);
	assert_int_equal(m.hdr.msg_id, id);
	assert_int_equal(m.hdr.command, VFIO_USER_REGION_READ);
	if (m.hdr.flags != VFIO_USER_F_TYPE_REPLY)
		fail_msg("REGION_READ %u refused: %s", id, strerror((int)m.hdr.error_no));
	assert_int_equal(m.len, sizeof(a) + count);
	memcpy(&a, m.payload, sizeof(a));
	assert_int_equal(a.count, count);
	memcpy(&v, (uint8_t *)m.payload + sizeof(a), count < 4 ? count : 4);
	vfpm_msg_release(&m);
	return v;
}

static void raw_write32(int sock, uint16_t id, uint32_t region, uint64_t offset, uint32_t v)
{
	struct vfio_user_region_access a = { .offset = offset, .region = region, .count = 4 };
	uint8_t w[sizeof(a) + sizeof(v)];

	memcpy(w, &a, sizeof(a));
	memcpy(w + sizeof(a), &v, sizeof(v));
	assert_int_equal(raw_send(sock, id, VFIO_USER_REGION_WRITE, 0, w, sizeof(w), NULL, 0), 0);
	raw_expect_ok(sock, id, VFIO_USER_REGION_WRITE);
}

/* COMMAND.MEM on, so that BAR accesses reach the model. */
static void raw_enable_memory(int sock)
{
	struct vfio_user_region_access a = {
		.offset = PCI_COMMAND, .region = VFIO_PCI_CONFIG_REGION_INDEX, .count = 2,
	};
	uint16_t v = PCI_COMMAND_MEMORY;
	uint8_t w[sizeof(a) + sizeof(v)];

	memcpy(w, &a, sizeof(a));
	memcpy(w + sizeof(a), &v, sizeof(v));
	assert_int_equal(raw_send(sock, 1, VFIO_USER_REGION_WRITE, 0, w, sizeof(w), NULL, 0), 0);
	raw_expect_ok(sock, 1, VFIO_USER_REGION_WRITE);
}

/* INTx through efd works: the eventfd reached SET_IRQS. */
static void check_intx_fires(int sock, int efd)
{
	raw_write32(sock, 2, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_INTX, 1);
	assert_int_equal(t_eventfd_read(efd), 1);
	raw_write32(sock, 3, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_INTX, 0);
}

/*
 * Park the connection thread in a BAR2 read at the read gate, so that what
 * the test sends next is queued in the socket before the server reads again.
 */
static void park_server(struct rfix *r, uint16_t id)
{
	uint8_t buf[64];
	size_t len = 0;

	tm_read_gate_close(r->f->model);
	put_region_read(buf, sizeof(buf), &len, id, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_SLOW, 4);
	send_bytes(r->sock, buf, len, NULL, 0);
	assert_int_equal(tm_read_gate_wait(r->f->model, 1, T_TIMEOUT_MS), 0);
}

static void unpark_server(struct rfix *r, uint16_t id)
{
	tm_read_gate_open(r->f->model);
	assert_int_equal(expect_read_reply(r->sock, id, 4), TM_SLOW_VALUE);
}

/*
 * The kernel behaviour the buffered receive relies on (tran_sock.c): a
 * stream read ends right after the bytes that carried fds, and the fds ride
 * on the first bytes of their sendmsg.  Three sendmsgs, the second with an
 * fd, queued before one large read: the read returns the first two and the
 * fd; the next one the third, without.
 */
static void test_kernel_ends_read_after_fds(void **state)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl;
	char buf[4096];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int sv[2], efd = t_eventfd(), got[2] = { 0, 0 };

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	send_bytes(sv[0], "AAAA", 4, NULL, 0);
	send_bytes(sv[0], "BBBB", 4, &efd, 1);
	send_bytes(sv[0], "CCCC", 4, NULL, 0);
	for (int i = 0; i < 2; i++) {
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		got[i] = (int)recvmsg(sv[1], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (i == 0) {
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			int fd;

			assert_non_null(c);
			assert_int_equal(c->cmsg_type, SCM_RIGHTS);
			assert_int_equal(c->cmsg_len, CMSG_LEN(sizeof(int)));
			memcpy(&fd, CMSG_DATA(c), sizeof(fd));
			close(fd);
			assert_memory_equal(buf, "AAAABBBB", 8);
		} else {
			assert_int_equal(mh.msg_controllen, 0);
			assert_memory_equal(buf, "CCCC", 4);
		}
	}
	assert_int_equal(got[0], 8);
	assert_int_equal(got[1], 4);
	close(sv[0]);
	close(sv[1]);
	close(efd);
}

/* Eight requests in one write: eight replies, in order, each with its data. */
static void test_pipelined_in_order(void **state)
{
	struct rfix *r = *state;
	uint8_t buf[512];
	size_t len = 0;

	rfix_connect(r, true);
	for (uint16_t i = 0; i < 8; i++)
		put_region_read(buf, sizeof(buf), &len, (uint16_t)(10 + i),
				VFIO_PCI_CONFIG_REGION_INDEX, i % 2 ? PCI_DEVICE_ID : PCI_VENDOR_ID, 2);
	send_bytes(r->sock, buf, len, NULL, 0);
	for (uint16_t i = 0; i < 8; i++)
		assert_int_equal(expect_read_reply(r->sock, (uint16_t)(10 + i), 2),
				 i % 2 ? TM_DEVICE_ID : TM_VENDOR_ID);
	rfix_disconnect(r);
}

/*
 * VERSION, then a REGION_READ and a SET_IRQS with its eventfd, each written
 * one byte at a time (the fd with the first byte): every byte a read of its
 * own, the fd still reaches SET_IRQS.
 */
static void test_byte_by_byte(void **state)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
	struct rfix *r = *state;
	uint8_t buf[256], ver[sizeof(struct vfio_user_version) + sizeof(json)];
	struct vfio_user_version v = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };
	size_t len = 0;
	int efd = t_eventfd();

	rfix_connect(r, false);
	memcpy(ver, &v, sizeof(v));
	memcpy(ver + sizeof(v), json, sizeof(json));
	put_msg(buf, sizeof(buf), &len, 0x7777, VFIO_USER_VERSION, ver, sizeof(ver));
	for (size_t i = 0; i < len; i++)
		send_bytes(r->sock, buf + i, 1, NULL, 0);
	assert_true(raw_expect_ok(r->sock, 0x7777, VFIO_USER_VERSION) > sizeof(v));

	len = 0;
	put_region_read(buf, sizeof(buf), &len, 20, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, 2);
	for (size_t i = 0; i < len; i++) {
		send_bytes(r->sock, buf + i, 1, NULL, 0);
		usleep(200);	/* let the server read each byte on its own */
	}
	assert_int_equal(expect_read_reply(r->sock, 20, 2), TM_VENDOR_ID);

	raw_enable_memory(r->sock);
	len = 0;
	put_intx_eventfd(buf, sizeof(buf), &len, 21);
	for (size_t i = 0; i < len; i++) {
		send_bytes(r->sock, buf + i, 1, &efd, i == 0);
		usleep(200);
	}
	raw_expect_ok(r->sock, 21, VFIO_USER_DEVICE_SET_IRQS);
	check_intx_fires(r->sock, efd);
	rfix_disconnect(r);
	close(efd);
}

/*
 * A SET_IRQS with its eventfd, then a REGION_READ without, queued together
 * before the server reads: the fd goes to SET_IRQS and the read is served.
 */
static void test_fds_then_plain(void **state)
{
	struct rfix *r = *state;
	uint8_t a[64], b[64];
	size_t alen = 0, blen = 0;
	int efd = t_eventfd();

	rfix_connect(r, true);
	raw_enable_memory(r->sock);
	put_intx_eventfd(a, sizeof(a), &alen, 30);
	put_region_read(b, sizeof(b), &blen, 31, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, 2);
	park_server(r, 29);
	send_bytes(r->sock, a, alen, &efd, 1);
	send_bytes(r->sock, b, blen, NULL, 0);
	unpark_server(r, 29);
	raw_expect_ok(r->sock, 30, VFIO_USER_DEVICE_SET_IRQS);
	assert_int_equal(expect_read_reply(r->sock, 31, 2), TM_VENDOR_ID);
	check_intx_fires(r->sock, efd);
	rfix_disconnect(r);
	close(efd);
}

/*
 * A REGION_READ without fds, then a SET_IRQS with its eventfd, queued
 * together: one read takes both (the kernel ends it after the fd's bytes),
 * and the fd goes to SET_IRQS, the last message that starts in it.
 */
static void test_plain_then_fds(void **state)
{
	struct rfix *r = *state;
	uint8_t a[64], b[64];
	size_t alen = 0, blen = 0;
	int efd = t_eventfd();

	rfix_connect(r, true);
	raw_enable_memory(r->sock);
	put_region_read(a, sizeof(a), &alen, 40, VFIO_PCI_CONFIG_REGION_INDEX, PCI_DEVICE_ID, 2);
	put_intx_eventfd(b, sizeof(b), &blen, 41);
	park_server(r, 39);
	send_bytes(r->sock, a, alen, NULL, 0);
	send_bytes(r->sock, b, blen, &efd, 1);
	unpark_server(r, 39);
	assert_int_equal(expect_read_reply(r->sock, 40, 2), TM_DEVICE_ID);
	raw_expect_ok(r->sock, 41, VFIO_USER_DEVICE_SET_IRQS);
	check_intx_fires(r->sock, efd);
	rfix_disconnect(r);
	close(efd);
}

/*
 * Two messages in one sendmsg with an fd meant for the first: nothing tells
 * the server where in the bytes the sender meant it, and it goes to the
 * last one.  Only this client's own requests suffer (the read is refused,
 * SET_IRQS without an fd de-assigns), the fd is not kept, and the
 * connection goes on.
 */
static void test_two_messages_one_sendmsg(void **state)
{
	struct rfix *r = *state;
	uint8_t buf[128];
	size_t len = 0;
	int efd = t_eventfd();

	rfix_connect(r, true);
	raw_enable_memory(r->sock);
	put_intx_eventfd(buf, sizeof(buf), &len, 50);
	put_region_read(buf, sizeof(buf), &len, 51, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, 2);
	send_bytes(r->sock, buf, len, &efd, 1);
	raw_expect_ok(r->sock, 50, VFIO_USER_DEVICE_SET_IRQS);
	raw_expect_error(r->sock, 51, VFIO_USER_REGION_READ, EINVAL);
	raw_write32(r->sock, 52, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_INTX, 1);
	assert_int_equal(t_eventfd_read(efd), 0);	/* the server holds no copy */
	raw_write32(r->sock, 53, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_INTX, 0);
	len = 0;
	put_region_read(buf, sizeof(buf), &len, 54, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, 2);
	send_bytes(r->sock, buf, len, NULL, 0);
	assert_int_equal(expect_read_reply(r->sock, 54, 2), TM_VENDOR_ID);
	rfix_disconnect(r);
	close(efd);
}

/*
 * A SET_IRQS whose first bytes came with its eventfd and whose rest comes
 * right before a second SET_IRQS with another eventfd: each keeps its own
 * (the server reads only the first one's missing bytes while it holds fds,
 * so none of the second's can count against the first's max_fds).
 */
static void test_split_fds_then_fds(void **state)
{
	struct rfix *r = *state;
	uint8_t a[64], b[64];
	size_t alen = 0, blen = 0;
	int efd1 = t_eventfd(), efd2 = t_eventfd();

	rfix_connect(r, true);
	raw_enable_memory(r->sock);
	put_intx_eventfd(a, sizeof(a), &alen, 55);
	put_intx_eventfd(b, sizeof(b), &blen, 56);
	for (unsigned int round = 0; round < 20; round++) {
		send_bytes(r->sock, a, 10, &efd1, 1);
		usleep(500);	/* the server reads the 10 bytes and the fd */
		send_bytes(r->sock, a + 10, alen - 10, NULL, 0);
		send_bytes(r->sock, b, blen, &efd2, 1);
		raw_expect_ok(r->sock, 55, VFIO_USER_DEVICE_SET_IRQS);
		raw_expect_ok(r->sock, 56, VFIO_USER_DEVICE_SET_IRQS);
	}
	raw_write32(r->sock, 2, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_INTX, 1);
	assert_int_equal(t_eventfd_read(efd1), 0);
	assert_int_equal(t_eventfd_read(efd2), 1);
	raw_write32(r->sock, 3, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_INTX, 0);
	rfix_disconnect(r);
	close(efd1);
	close(efd2);
}

/*
 * A REGION_WRITE larger than the buffer (its payload's rest read directly),
 * with a REGION_READ of the same bytes right behind it in the same write,
 * whole and then split at odd places.
 */
static void test_larger_than_buffer(void **state)
{
	struct rfix *r = *state;
	static uint8_t buf[2 * T_MAX_XFER], w[sizeof(struct vfio_user_region_access) + T_MAX_XFER];
	struct vfio_user_region_access a = {
		.offset = 0, .region = VFIO_PCI_BAR0_REGION_INDEX, .count = T_MAX_XFER,
	};
	static const size_t cuts[] = { 7, 16, 100, 4095, 4096, 4127, 4150 };
	size_t len = 0;

	rfix_connect(r, true);
	raw_enable_memory(r->sock);
	for (unsigned int round = 0; round < 2; round++) {
		struct vfpm_msg m;

		memcpy(w, &a, sizeof(a));
		for (size_t i = 0; i < T_MAX_XFER; i++)
			w[sizeof(a) + i] = (uint8_t)(i * 7 + round);
		len = 0;
		put_msg(buf, sizeof(buf), &len, 60, VFIO_USER_REGION_WRITE, w, sizeof(w));
		assert_true(len > VFPM_SOCK_RX_BUF);
		put_region_read(buf, sizeof(buf), &len, 61, VFIO_PCI_BAR0_REGION_INDEX, 0,
				T_MAX_XFER);
		if (round == 0) {
			send_bytes(r->sock, buf, len, NULL, 0);
		} else {
			size_t at = 0;

			for (unsigned int i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
				send_bytes(r->sock, buf + at, cuts[i] - at, NULL, 0);
				at = cuts[i];
				usleep(1000);
			}
			send_bytes(r->sock, buf + at, len - at, NULL, 0);
		}
		raw_expect_ok(r->sock, 60, VFIO_USER_REGION_WRITE);
		raw_recv(r->sock, &m);
		assert_int_equal(m.hdr.msg_id, 61);
		assert_int_equal(m.hdr.flags, VFIO_USER_F_TYPE_REPLY);
		assert_int_equal(m.len, sizeof(w));
		assert_memory_equal((uint8_t *)m.payload + sizeof(a), w + sizeof(a), T_MAX_XFER);
		vfpm_msg_release(&m);
	}
	rfix_disconnect(r);
}

/*
 * A request, then an oversized header in the same write: the request is
 * answered, the oversized message refused with E2BIG and the stream closed.
 */
static void test_oversized_behind_request(void **state)
{
	struct rfix *r = *state;
	uint8_t buf[128];
	size_t len = 0;
	struct vfio_user_header big = {
		.msg_id = 71, .command = VFIO_USER_REGION_WRITE, .flags = VFIO_USER_F_TYPE_COMMAND,
		.msg_size = VFIO_USER_HDR_SIZE + T_MAX_XFER + VFIO_USER_MSG_SLACK + 1,
	};

	rfix_connect(r, true);
	put_region_read(buf, sizeof(buf), &len, 70, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, 2);
	memcpy(buf + len, &big, sizeof(big));
	len += sizeof(big);
	send_bytes(r->sock, buf, len, NULL, 0);
	assert_int_equal(expect_read_reply(r->sock, 70, 2), TM_VENDOR_ID);
	raw_expect_error(r->sock, 71, VFIO_USER_REGION_WRITE, E2BIG);
	raw_expect_closed(r->sock);
	rfix_disconnect(r);
}

/* REGION_READs, each written with one sendmsg, and their replies read: the server's syscalls. */
static unsigned long syscalls_for(struct rfix *r, unsigned int requests)
{
	uint8_t buf[64];
	size_t len = 0;

	rfix_connect(r, true);
	put_region_read(buf, sizeof(buf), &len, 80, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, 2);
	for (unsigned int i = 0; i < requests; i++) {
		send_bytes(r->sock, buf, len, NULL, 0);
		assert_int_equal(expect_read_reply(r->sock, 80, 2), TM_VENDOR_ID);
	}
	return rfix_disconnect(r);
}

/*
 * The target: 2 syscalls per request on the server (one recvmsg for
 * header and payload, one sendmsg for the reply).  The difference of two runs
 * removes the fixed cost of VERSION and the goodbye.
 */
static void test_syscalls_per_request(void **state)
{
	struct rfix *r = *state;
	const unsigned int few = 100, many = 2100;
	unsigned long a = syscalls_for(r, few), b = syscalls_for(r, many);
	double per = (double)(b - a) / (many - few);

	printf("server connection thread: %lu socket syscalls for %u requests, %lu for %u: "
	       "%.3f per request\n", a, few, b, many, per);
	/*
	 * At most one extra call per hundred requests: on a loaded machine a
	 * read now and then comes back empty-handed (seen in CI: 2.001).
	 */
	assert_true(per <= 2.01);
	assert_true(a <= 2 * few + 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kernel_ends_read_after_fds, rfix_setup,
						rfix_teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_in_order, rfix_setup, rfix_teardown),
		cmocka_unit_test_setup_teardown(test_byte_by_byte, rfix_setup, rfix_teardown),
		cmocka_unit_test_setup_teardown(test_fds_then_plain, rfix_setup, rfix_teardown),
		cmocka_unit_test_setup_teardown(test_plain_then_fds, rfix_setup, rfix_teardown),
		cmocka_unit_test_setup_teardown(test_two_messages_one_sendmsg, rfix_setup,
						rfix_teardown),
		cmocka_unit_test_setup_teardown(test_split_fds_then_fds, rfix_setup, rfix_teardown),
		cmocka_unit_test_setup_teardown(test_larger_than_buffer, rfix_setup, rfix_teardown),
		cmocka_unit_test_setup_teardown(test_oversized_behind_request, rfix_setup,
						rfix_teardown),
		cmocka_unit_test_setup_teardown(test_syscalls_per_request, rfix_setup, rfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
