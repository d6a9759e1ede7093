// SPDX-License-Identifier: MIT
/*
 * Malformed messages written by hand on raw sockets.  Each case checks the
 * error reply (or that the server closed a stream it can no longer trust),
 * that no fd sent with it stays open, and that another client of the same
 * device keeps working.
 */
#include "test_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/vfio.h>

struct mfix {
	struct tfix *f;
	struct vfpm_client *other;	/* the bystander */
	int sock;			/* the offender, after VERSION */
	int fds_before;			/* before the offender connected */
};

static int mfix_setup(void **state)
{
	struct mfix *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	tfix_setup((void **)&m->f);
	m->other = tfix_connect(m->f);
	m->fds_before = t_count_fds();
	m->sock = raw_connect(m->f->path);
	raw_version(m->sock);
	*state = m;
	return 0;
}

static int mfix_teardown(void **state)
{
	struct mfix *m = *state;

	/* Whatever the offender did, the bystander is fine and nothing leaked. */
	t_check_client(m->other);
	if (m->sock >= 0)
		close(m->sock);
	tfix_wait_conns(m->f, 1);
	assert_int_equal(t_count_fds(), m->fds_before);
	vfpm_client_close(m->other);
	tfix_wait_conns(m->f, 0);
	tfix_teardown((void **)&m->f);
	free(m);
	return 0;
}

/* A REGION_WRITE whose header says count and whose data is len bytes. */
static int send_region_write(int sock, uint16_t id, uint32_t flags, uint32_t region,
			     uint64_t offset, uint32_t count, const void *data, size_t len)
{
	struct vfio_user_region_access a = { .offset = offset, .region = region, .count = count };
	uint8_t buf[sizeof(a) + 64];

	assert_true(len <= 64);
	memcpy(buf, &a, sizeof(a));
	memcpy(buf + sizeof(a), data, len);
	return raw_send(sock, id, VFIO_USER_REGION_WRITE, flags, buf, sizeof(a) + len, NULL, 0);
}

/* The offender's connection still serves requests. */
static void offender_still_works(struct mfix *m)
{
	struct vfio_user_device_info info = { .argsz = sizeof(info) };

	assert_int_equal(raw_send(m->sock, 900, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info),
				  NULL, 0), 0);
	assert_int_equal(raw_expect_ok(m->sock, 900, VFIO_USER_DEVICE_GET_INFO), sizeof(info));
}

/* The offender's connection is gone, and the server has torn it down. */
static void offender_closed(struct mfix *m)
{
	raw_expect_closed(m->sock);
	close(m->sock);
	m->sock = -1;
	tfix_wait_conns(m->f, 1);
}

static void test_short_header(void **state)
{
	struct mfix *m = *state;
	uint8_t part[10] = { 0 };

	assert_int_equal(vfpm_sock_write_all(m->sock, part, sizeof(part)), 0);
	t_check_client(m->other);	/* the server waits for the rest on that thread only */
	shutdown(m->sock, SHUT_WR);
	offender_closed(m);
}

static void test_size_below_header(void **state)
{
	struct mfix *m = *state;
	struct vfio_user_header hdr = {
		.msg_id = 5, .command = VFIO_USER_DEVICE_GET_INFO, .msg_size = 8,
	};

	assert_int_equal(vfpm_sock_write_all(m->sock, &hdr, sizeof(hdr)), 0);
	raw_expect_error(m->sock, 5, VFIO_USER_DEVICE_GET_INFO, EINVAL);
	offender_closed(m);
}

static void test_size_over_max(void **state)
{
	struct mfix *m = *state;
	struct vfio_user_header hdr = {
		.msg_id = 6, .command = VFIO_USER_REGION_WRITE,
		.msg_size = VFIO_USER_HDR_SIZE + T_MAX_XFER + VFIO_USER_MSG_SLACK + 1,
	};

	assert_int_equal(vfpm_sock_write_all(m->sock, &hdr, sizeof(hdr)), 0);
	raw_expect_error(m->sock, 6, VFIO_USER_REGION_WRITE, E2BIG);
	offender_closed(m);
}

/* Header and part of the payload, with an fd, then nothing: the fd is not kept. */
static void test_truncated_payload(void **state)
{
	struct mfix *m = *state;
	struct {
		struct vfio_user_header hdr;
		uint8_t half[40];
	} msg = { .hdr = { .msg_id = 8, .command = VFIO_USER_DEVICE_FEATURE,
			   .msg_size = 16 + 100 } };
	struct iovec iov = { .iov_base = &msg, .iov_len = sizeof(msg) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl = { .buf = { 0 } };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	int efd = t_eventfd();

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &efd, sizeof(int));
	assert_int_equal(sendmsg(m->sock, &mh, MSG_NOSIGNAL), sizeof(msg));
	close(efd);
	t_check_client(m->other);
	shutdown(m->sock, SHUT_WR);
	offender_closed(m);
}

/* Each command with a payload shorter than its fixed part. */
static void test_payload_too_short(void **state)
{
	static const uint16_t cmds[] = {
		VFIO_USER_VERSION,
		VFIO_USER_DMA_MAP, VFIO_USER_DMA_UNMAP, VFIO_USER_DEVICE_GET_INFO,
		VFIO_USER_DEVICE_GET_REGION_INFO, VFIO_USER_DEVICE_GET_IRQ_INFO,
		VFIO_USER_DEVICE_SET_IRQS, VFIO_USER_REGION_READ, VFIO_USER_REGION_WRITE,
		VFIO_USER_REGION_WRITE_MULTI, VFIO_USER_DEVICE_FEATURE,
	};
	struct mfix *m = *state;
	uint8_t payload[3] = { 1, 2, 3 };

	for (unsigned int i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		uint16_t id = (uint16_t)(100 + i);

		assert_int_equal(raw_send(m->sock, id, cmds[i], 0, payload, sizeof(payload), NULL, 0),
				 0);
		/* VERSION was negotiated already: that is the first complaint. */
		raw_expect_error(m->sock, id, cmds[i], cmds[i] == VFIO_USER_VERSION ? EPROTO : EINVAL);
	}
	/* A write whose data is shorter (or longer) than its count. */
	uint32_t zero = 0;

	assert_int_equal(send_region_write(m->sock, 120, 0, VFIO_PCI_CONFIG_REGION_INDEX, 0, 8,
					   &zero, 4), 0);
	raw_expect_error(m->sock, 120, VFIO_USER_REGION_WRITE, EINVAL);
	assert_int_equal(send_region_write(m->sock, 121, 0, VFIO_PCI_CONFIG_REGION_INDEX, 0, 2,
					   &zero, 4), 0);
	raw_expect_error(m->sock, 121, VFIO_USER_REGION_WRITE, EINVAL);
	/* DATA_BOOL with fewer bytes than count. */
	struct vfio_user_irq_set set = {
		.argsz = sizeof(set) + 4, .flags = VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX, .count = 4,
	};

	assert_int_equal(raw_send(m->sock, 122, VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set),
				  NULL, 0), 0);
	raw_expect_error(m->sock, 122, VFIO_USER_DEVICE_SET_IRQS, EINVAL);
	offender_still_works(m);
}

static void test_too_many_fds(void **state)
{
	struct mfix *m = *state;
	int efd[T_MAX_FDS + 1];
	struct vfio_user_irq_set set = {
		.argsz = sizeof(set), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX, .count = T_MAX_FDS + 1,
	};
	struct vfio_user_device_info info = { .argsz = sizeof(info) };

	for (unsigned int i = 0; i <= T_MAX_FDS; i++)
		efd[i] = t_eventfd();
	/* More than max_msg_fds. */
	assert_int_equal(raw_send(m->sock, 30, VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set), efd,
				  T_MAX_FDS + 1), 0);
	raw_expect_error(m->sock, 30, VFIO_USER_DEVICE_SET_IRQS, EINVAL);
	/* Fds on a command that takes none; more eventfds than count. */
	assert_int_equal(raw_send(m->sock, 31, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info),
				  efd, 1), 0);
	raw_expect_error(m->sock, 31, VFIO_USER_DEVICE_GET_INFO, EINVAL);
	set.count = 2;
	assert_int_equal(raw_send(m->sock, 32, VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set), efd,
				  3), 0);
	raw_expect_error(m->sock, 32, VFIO_USER_DEVICE_SET_IRQS, EINVAL);
	/* Two fds on a DMA_MAP. */
	struct vfio_user_dma_map map = {
		.argsz = sizeof(map), .flags = VFIO_USER_DMA_F_READ, .addr = 0x1000, .size = 0x1000,
	};

	assert_int_equal(raw_send(m->sock, 33, VFIO_USER_DMA_MAP, 0, &map, sizeof(map), efd, 2), 0);
	raw_expect_error(m->sock, 33, VFIO_USER_DMA_MAP, EINVAL);
	/* An fd that cannot be mapped. */
	assert_int_equal(raw_send(m->sock, 34, VFIO_USER_DMA_MAP, 0, &map, sizeof(map), efd, 1), 0);
	raw_expect_error(m->sock, 34, VFIO_USER_DMA_MAP, ENODEV);

	for (unsigned int i = 0; i <= T_MAX_FDS; i++)
		close(efd[i]);
	offender_still_works(m);
}

static void test_unknown_commands(void **state)
{
	struct mfix *m = *state;
	uint8_t payload[32] = { 0 };

	assert_int_equal(raw_send(m->sock, 40, 99, 0, payload, sizeof(payload), NULL, 0), 0);
	raw_expect_error(m->sock, 40, 99, ENOTTY);
	assert_int_equal(raw_send(m->sock, 41, 14, 0, NULL, 0, NULL, 0), 0);
	raw_expect_error(m->sock, 41, 14, ENOTTY);
	assert_int_equal(raw_send(m->sock, 42, 0, 0, NULL, 0, NULL, 0), 0);
	raw_expect_error(m->sock, 42, 0, ENOTTY);
	/* In the specification but not served. */
	assert_int_equal(raw_send(m->sock, 43, VFIO_USER_DEVICE_GET_REGION_IO_FDS, 0, payload, 16,
				  NULL, 0), 0);
	raw_expect_error(m->sock, 43, VFIO_USER_DEVICE_GET_REGION_IO_FDS, ENOTSUP);
	assert_int_equal(raw_send(m->sock, 44, VFIO_USER_MIG_DATA_READ, 0, payload, 8, NULL, 0), 0);
	raw_expect_error(m->sock, 44, VFIO_USER_MIG_DATA_READ, ENOTSUP);
	/* Server-to-client commands sent by the client. */
	assert_int_equal(raw_send(m->sock, 45, VFIO_USER_DMA_READ, 0, payload, 16, NULL, 0), 0);
	raw_expect_error(m->sock, 45, VFIO_USER_DMA_READ, EPROTO);
	assert_int_equal(raw_send(m->sock, 46, VFIO_USER_DMA_WRITE, 0, payload, 20, NULL, 0), 0);
	raw_expect_error(m->sock, 46, VFIO_USER_DMA_WRITE, EPROTO);
	offender_still_works(m);
}

static void test_count_over_max(void **state)
{
	struct mfix *m = *state;
	struct vfio_user_region_access rd = {
		.region = VFIO_PCI_CONFIG_REGION_INDEX, .count = T_MAX_XFER + 1,
	};
	static uint8_t wr[sizeof(struct vfio_user_region_access) + T_MAX_XFER + 1];

	assert_int_equal(raw_send(m->sock, 50, VFIO_USER_REGION_READ, 0, &rd, sizeof(rd), NULL, 0),
			 0);
	raw_expect_error(m->sock, 50, VFIO_USER_REGION_READ, EINVAL);
	memcpy(wr, &rd, sizeof(rd));
	assert_int_equal(raw_send(m->sock, 51, VFIO_USER_REGION_WRITE, 0, wr, sizeof(wr), NULL, 0),
			 0);
	raw_expect_error(m->sock, 51, VFIO_USER_REGION_WRITE, EINVAL);
	/* An offset beyond the 40-bit region space, a region index beyond 24 bits. */
	rd = (struct vfio_user_region_access){ .offset = 1ull << 40, .count = 4 };
	assert_int_equal(raw_send(m->sock, 52, VFIO_USER_REGION_READ, 0, &rd, sizeof(rd), NULL, 0),
			 0);
	raw_expect_error(m->sock, 52, VFIO_USER_REGION_READ, EINVAL);
	rd = (struct vfio_user_region_access){ .region = 1u << 24, .count = 4 };
	assert_int_equal(raw_send(m->sock, 53, VFIO_USER_REGION_READ, 0, &rd, sizeof(rd), NULL, 0),
			 0);
	raw_expect_error(m->sock, 53, VFIO_USER_REGION_READ, EINVAL);
	offender_still_works(m);
}

static void test_reply_sent_as_command(void **state)
{
	struct mfix *m = *state;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };

	/*
	 * A reply answers a DMA message of the server's; one that answers
	 * nothing is dropped without a word (replying to a reply would only
	 * confuse the client): the next answer that comes is 62's.
	 */
	assert_int_equal(raw_send(m->sock, 60, VFIO_USER_DEVICE_GET_INFO, VFIO_USER_F_TYPE_REPLY,
				  &info, sizeof(info), NULL, 0), 0);
	assert_int_equal(raw_send(m->sock, 61, VFIO_USER_DEVICE_GET_INFO,
				  VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR, NULL, 0, NULL, 0), 0);
	/* Neither a command nor a reply: EPROTO. */
	assert_int_equal(raw_send(m->sock, 62, VFIO_USER_DEVICE_GET_INFO, 7, &info, sizeof(info),
				  NULL, 0), 0);
	raw_expect_error(m->sock, 62, VFIO_USER_DEVICE_GET_INFO, EPROTO);
	offender_still_works(m);
}

static void test_command_before_version(void **state)
{
	struct mfix *m = *state;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	int sock = raw_connect(m->f->path);

	assert_int_equal(raw_send(sock, 70, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info), NULL,
				  0), 0);
	raw_expect_error(sock, 70, VFIO_USER_DEVICE_GET_INFO, EPROTO);
	raw_version(sock);
	assert_int_equal(raw_send(sock, 71, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info), NULL,
				  0), 0);
	assert_int_equal(raw_expect_ok(sock, 71, VFIO_USER_DEVICE_GET_INFO), sizeof(info));
	close(sock);
	tfix_wait_conns(m->f, 2);
}

/* No_reply: the command is done, nothing comes back, not even an error. */
static void test_no_reply(void **state)
{
	struct mfix *m = *state;
	const uint16_t mem_enable = 2;	/* PCI_COMMAND_MEMORY */
	const uint32_t value = 0x600d;
	struct vfio_user_region_access rd = {
		.region = VFIO_PCI_BAR2_REGION_INDEX, .offset = TM_REG_SCRATCH, .count = 4,
	};
	struct vfpm_msg msg;
	uint32_t v;

	assert_int_equal(send_region_write(m->sock, 80, VFIO_USER_F_NO_REPLY,
					   VFIO_PCI_CONFIG_REGION_INDEX, 4, 2, &mem_enable, 2), 0);
	assert_int_equal(send_region_write(m->sock, 81, VFIO_USER_F_NO_REPLY,
					   VFIO_PCI_BAR2_REGION_INDEX, TM_REG_SCRATCH, 4, &value, 4),
			 0);
	assert_int_equal(raw_send(m->sock, 82, 99, VFIO_USER_F_NO_REPLY, NULL, 0, NULL, 0), 0);
	assert_int_equal(raw_send(m->sock, 83, VFIO_USER_REGION_READ, 0, &rd, sizeof(rd), NULL, 0),
			 0);
	raw_recv(m->sock, &msg);
	assert_int_equal(msg.hdr.msg_id, 83);
	assert_int_equal(msg.hdr.flags, VFIO_USER_F_TYPE_REPLY);
	assert_int_equal(msg.len, sizeof(rd) + 4);
	memcpy(&v, (uint8_t *)msg.payload + sizeof(rd), 4);
	assert_int_equal(v, 0x600d);
	vfpm_msg_release(&msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_short_header, mfix_setup, mfix_teardown),
		cmocka_unit_test_setup_teardown(test_size_below_header, mfix_setup, mfix_teardown),
		cmocka_unit_test_setup_teardown(test_size_over_max, mfix_setup, mfix_teardown),
		cmocka_unit_test_setup_teardown(test_truncated_payload, mfix_setup, mfix_teardown),
		cmocka_unit_test_setup_teardown(test_payload_too_short, mfix_setup, mfix_teardown),
		cmocka_unit_test_setup_teardown(test_too_many_fds, mfix_setup, mfix_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_commands, mfix_setup, mfix_teardown),
		cmocka_unit_test_setup_teardown(test_count_over_max, mfix_setup, mfix_teardown),
		cmocka_unit_test_setup_teardown(test_reply_sent_as_command, mfix_setup,
						mfix_teardown),
		cmocka_unit_test_setup_teardown(test_command_before_version, mfix_setup,
						mfix_teardown),
		cmocka_unit_test_setup_teardown(test_no_reply, mfix_setup, mfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
