// SPDX-License-Identifier: MIT
/*
 * The client library's buffered receive: a round trip costs the calling
 * thread two socket syscalls (one sendmsg, one recvmsg for the whole reply),
 * and an fd reaches the reply it came with, call after call, also when a
 * command from the server arrives in the same read just before that reply
 * (reading exactly that command's header would have taken the fd with it).
 */
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

/* REGION_READs of the vendor ID through c: the calling thread's socket syscalls. */
static unsigned long client_syscalls_for(struct vfpm_client *c, unsigned int reads)
{
	unsigned long before = vfpm_sock_thread_syscalls();

	for (unsigned int i = 0; i < reads; i++) {
		uint16_t vendor = 0;

		assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX,
							 PCI_VENDOR_ID, &vendor, 2), 2);
		assert_int_equal(vendor, TM_VENDOR_ID);
	}
	return vfpm_sock_thread_syscalls() - before;
}

/* Issue 15: a round trip is 4 syscalls, 2 of them the client's. */
static void test_client_syscalls_per_round_trip(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	const unsigned int reads = 2000;
	unsigned long n = client_syscalls_for(c, reads);
	uint8_t big[T_MAX_XFER];
	unsigned long before;

	printf("client thread: %lu socket syscalls for %u REGION_READs: %.3f per round trip\n", n,
	       reads, (double)n / reads);
	/* At most one extra call per hundred round trips, for a loaded machine. */
	assert_true(n <= 2ul * reads + reads / 100);
	/* A reply larger than the buffer still arrives whole (its rest read directly). */
	t_enable_memory(c);
	before = vfpm_sock_thread_syscalls();
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, 0, big,
						 sizeof(big)), sizeof(big));
	printf("client thread: %lu socket syscalls for a %zu-byte REGION_READ\n",
	       vfpm_sock_thread_syscalls() - before, sizeof(big));
	vfpm_client_close(c);
}

/*
 * A mappable BAR's REGION_INFO carries its fd; the calls around it carry
 * none.  Were an fd matched to the wrong reply, the BAR's would come without
 * one (the other reply's release closes it) or a trapped region's with one.
 */
static void test_region_info_fd_on_its_reply(void **state)
{
	struct tfix *f = *state;
	int fds_before = t_count_fds();
	struct vfpm_client *c = tfix_connect(f);

	for (unsigned int i = 0; i < 1000; i++) {
		struct vfio_region_info info;
		uint16_t vendor = 0;
		struct stat st;
		int fd;

		assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_BAR0_REGION_INDEX, &info,
							     sizeof(info), &fd), 0);
		assert_true(fd >= 0);
		assert_true(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
		assert_int_equal(fstat(fd, &st), 0);
		assert_true(S_ISREG(st.st_mode));	/* the BAR's memory, not an eventfd */
		close(fd);
		assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_BAR2_REGION_INDEX, &info,
							     sizeof(info), &fd), 0);
		assert_int_equal(fd, -1);
		assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX,
							 PCI_VENDOR_ID, &vendor, 2), 2);
		assert_int_equal(vendor, TM_VENDOR_ID);
	}
	/* Nothing left over once the client is gone (the device drops its BAR file then). */
	vfpm_client_close(c);
	assert_int_equal(vfpm_server_wait_connections(f->srv, 0, 5000), 0);
	assert_int_equal(t_count_fds(), fds_before);
}

/*
 * The twin socket's DMA thread starts with the first window the client
 * serves from its own memory, not at connect (issue 15: connection setup).
 */
static void test_dma_thread_starts_with_first_served_window(void **state)
{
	struct tfix *f = *state;
	int before = t_count_threads();
	struct vfpm_client *c = tfix_connect(f);
	static uint8_t mem[8192] __attribute__((aligned(4096)));
	struct vfpm_client_dma map = {
		.iova = 0x100000, .size = sizeof(mem), .fd = -1, .vaddr = mem,
		.flags = VFPM_CLIENT_DMA_READ | VFPM_CLIENT_DMA_WRITE,
	};

	tfix_wait_conns(f, 1);
	/* No DMA thread of the client's until it serves a window. */
	assert_int_equal(t_count_threads_named("vfpm-client-dma"), 0);
	assert_int_equal(vfpm_client_dma_map(c, &map), 0);
	assert_int_equal(t_count_threads_named("vfpm-client-dma"), 1);
	assert_int_equal(vfpm_client_dma_unmap(c, map.iova, map.size), 0);
	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
	/* The client's DMA thread ends with it. */
	assert_int_equal(t_count_threads_named("vfpm-client-dma"), 0);
	(void)before;
}

/* ---- a server of the test's own, to put two messages in one read ---- */

struct fake_server {
	int listener;
	int region_fd;		/* what REGION_INFO sends: a memfd */
	int refused_errno;	/* the client's answer to the DMA_READ */
	unsigned int replies;	/* REGION_INFO replies sent */
};

static void fake_version(int sock)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
	uint8_t buf[sizeof(struct vfio_user_version) + sizeof(json)];
	struct vfio_user_version ver = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };
	struct vfio_user_header hdr = { .command = VFIO_USER_VERSION,
					.flags = VFIO_USER_F_TYPE_REPLY };
	struct vfpm_msg m;

	raw_recv(sock, &m);
	assert_int_equal(m.hdr.command, VFIO_USER_VERSION);
	hdr.msg_id = m.hdr.msg_id;
	vfpm_msg_release(&m);
	memcpy(buf, &ver, sizeof(ver));
	memcpy(buf + sizeof(ver), json, sizeof(json));
	assert_int_equal(vfpm_sock_send_msg(sock, &hdr, buf, sizeof(buf), NULL, 0), 0);
}

/*
 * Each REGION_INFO is answered by a DMA_READ command from the server and the
 * reply with its fd, both in one sendmsg: one read gets both, and the fd
 * belongs to the reply (the last message that starts in the read).
 */
static void fake_region_info(struct fake_server *fs, int sock, const struct vfpm_msg *req)
{
	struct vfio_user_dma_access dma = { .addr = 0x1000, .count = 4 };
	struct vfio_user_region_info info = {
		.argsz = sizeof(info), .flags = VFIO_REGION_INFO_FLAG_READ |
		VFIO_REGION_INFO_FLAG_MMAP, .index = VFIO_PCI_BAR0_REGION_INDEX, .size = 4096,
	};
	struct vfio_user_header cmd = {
		.msg_id = 0x4000, .command = VFIO_USER_DMA_READ, .flags = VFIO_USER_F_TYPE_COMMAND,
		.msg_size = VFIO_USER_HDR_SIZE + sizeof(dma),
	};
	struct vfio_user_header rep = {
		.msg_id = req->hdr.msg_id, .command = req->hdr.command,
		.flags = VFIO_USER_F_TYPE_REPLY, .msg_size = VFIO_USER_HDR_SIZE + sizeof(info),
	};
	uint8_t buf[sizeof(cmd) + sizeof(dma) + sizeof(rep) + sizeof(info)], *p = buf;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	struct vfpm_msg refusal;

	memcpy(p, &cmd, sizeof(cmd));
	memcpy(p += sizeof(cmd), &dma, sizeof(dma));
	memcpy(p += sizeof(dma), &rep, sizeof(rep));
	memcpy(p += sizeof(rep), &info, sizeof(info));
	/* Both messages and the fd in one sendmsg (vfpm_sock_send_msg sends one message). */
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fs->region_fd, sizeof(int));
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)sizeof(buf));
	fs->replies++;
	/* The client refuses the command before it takes the reply. */
	raw_recv(sock, &refusal);
	assert_int_equal(refusal.hdr.msg_id, 0x4000);
	assert_int_equal(refusal.hdr.command, VFIO_USER_DMA_READ);
	assert_true(refusal.hdr.flags & VFIO_USER_F_ERROR);
	assert_int_equal(refusal.nfds, 0);
	fs->refused_errno = (int)refusal.hdr.error_no;
	vfpm_msg_release(&refusal);
}

static void *fake_server_thread(void *arg)
{
	struct fake_server *fs = arg;
	int sock = accept4(fs->listener, NULL, NULL, SOCK_CLOEXEC);

	assert_true(sock >= 0);
	fake_version(sock);
	for (;;) {
		struct vfpm_msg m;

		if (vfpm_sock_recv_msg(sock, &m, 1u << 20))
			break;	/* the client closed */
		assert_int_equal(m.hdr.command, VFIO_USER_DEVICE_GET_REGION_INFO);
		fake_region_info(fs, sock, &m);
		vfpm_msg_release(&m);
	}
	close(sock);
	return NULL;
}

static void test_fd_on_reply_behind_server_command(void **state)
{
	struct tfix *f = *state;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct fake_server fs = { .region_fd = memfd_create("fake-bar0", MFD_CLOEXEC) };
	struct vfpm_client *c;
	pthread_t thread;

	assert_true(fs.region_fd >= 0);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/fake.sock", f->dir);
	fs.listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fs.listener >= 0);
	assert_int_equal(bind(fs.listener, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(fs.listener, 1), 0);
	assert_int_equal(pthread_create(&thread, NULL, fake_server_thread, &fs), 0);
	assert_int_equal(vfpm_client_connect(addr.sun_path, &c), 0);
	for (unsigned int i = 0; i < 200; i++) {
		struct vfio_region_info info;
		struct stat mine, got;
		int fd;

		assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_BAR0_REGION_INDEX, &info,
							     sizeof(info), &fd), 0);
		assert_true(fd >= 0);
		assert_int_equal(info.size, 4096);
		/* The very file the server sent (a memfd has an inode of its own). */
		assert_int_equal(fstat(fs.region_fd, &mine), 0);
		assert_int_equal(fstat(fd, &got), 0);
		assert_int_equal(mine.st_ino, got.st_ino);
		close(fd);
	}
	vfpm_client_close(c);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_int_equal(fs.replies, 200);
	assert_int_equal(fs.refused_errno, ENOTSUP);
	close(fs.listener);
	close(fs.region_fd);
	unlink(addr.sun_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dma_thread_starts_with_first_served_window,
						tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_client_syscalls_per_round_trip, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_region_info_fd_on_its_reply, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_fd_on_reply_behind_server_command, tfix_setup,
						tfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
