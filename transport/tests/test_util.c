// SPDX-License-Identifier: MIT
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

/*
 * VFPM_TEST_LOOP=caller: every server of the test is attached to one loop
 * the test drives itself (vfpm_loop_process on a thread of the test's),
 * with the runtime PM core's work in the same loop, so that the library
 * runs no thread of its own: the transport's caller-driven mode, under
 * the same tests as the threaded one.
 */
static struct vfpm_loop *caller_loop;

static void *caller_loop_main(void *arg)
{
	struct pollfd pfd = { .fd = vfpm_loop_fd(arg), .events = POLLIN };

	for (;;) {
		poll(&pfd, 1, 100);
		vfpm_loop_process(arg);
	}
	return NULL;
}

__attribute__((constructor)) static void caller_loop_init(void)
{
	const char *mode = getenv("VFPM_TEST_LOOP");
	pthread_t t;

	if (!mode || strcmp(mode, "caller"))
		return;
	if (vfpm_pm_worker_set_external(true) || vfpm_loop_create(&caller_loop) ||
	    pthread_create(&t, NULL, caller_loop_main, caller_loop)) {
		fprintf(stderr, "VFPM_TEST_LOOP=caller: cannot set up the caller's loop\n");
		exit(1);
	}
	pthread_detach(t);
}

bool t_caller_loop(void)
{
	return caller_loop != NULL;
}

int t_server_start(struct vfpm_server *srv)
{
	return caller_loop ? vfpm_server_attach(srv, caller_loop) : vfpm_server_start(srv);
}

void *t_slow_read_thread(void *arg)
{
	struct t_slow_read *r = arg;

	r->ret = vfpm_client_region_read(r->c, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_SLOW, &r->value,
					 4);
	return NULL;
}

void t_read_gate_close(struct test_model *m)
{
	if (caller_loop)
		tm_read_gate_close_deferred(m);
	else
		tm_read_gate_close(m);
}

/* The device the transport tests serve: BAR2's registers, BAR4 mappable, FLR. */
static const struct tm_config model_config = {
	.registers = true, .msix_mappable = true, .flr = true,
};

int tfix_setup(void **state)
{
	struct tfix *f = calloc(1, sizeof(*f));
	struct vfpm_server_opts opts = {
		.max_msg_fds = T_MAX_FDS, .max_data_xfer_size = T_MAX_XFER,
		.max_dma_maps = T_MAX_DMA_MAPS,
		.on_connect = tm_on_connect, .on_disconnect = tm_on_disconnect,
	};

	struct vfpm_transport_limits lim;

	assert_non_null(f);
	/* The process's reserve fd is there from the first server on: count it in. */
	vfpm_transport_get_limits(&lim);
	f->baseline_fds = t_count_fds();
	strcpy(f->dir, "/tmp/vfpm-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/dev.sock", f->dir);
	assert_int_equal(tm_create(&model_config, &f->model), 0);
	opts.opaque = f->model;
	assert_int_equal(vfpm_server_create(vfpm_pci_device(f->model->pdev), f->path, &opts,
					    &f->srv), 0);
	assert_int_equal(t_server_start(f->srv), 0);
	if (caller_loop) {
		/* The caller-driven run: not one thread of the library's. */
		assert_int_equal(t_count_threads_named("vfpm-loop"), 0);
		assert_int_equal(t_count_threads_named("vfpm-pm"), 0);
	}
	*state = f;
	return 0;
}

int tfix_teardown(void **state)
{
	struct tfix *f = *state;

	vfpm_server_destroy(f->srv);
	assert_int_equal(f->model->violations, 0);
	tm_destroy(f->model);
	rmdir(f->dir);
	/* Every fd a test, its clients or the server opened is closed again. */
	assert_int_equal(t_count_fds(), f->baseline_fds);
	free(f);
	return 0;
}

struct vfpm_client *tfix_connect(struct tfix *f)
{
	struct vfpm_client *c = NULL;

	struct vfio_irq_info irq;

	assert_int_equal(vfpm_client_connect(f->path, &c), 0);
	assert_non_null(c);
	/*
	 * One more round trip: the server closes its copy of the twin socket
	 * it sent with the VERSION reply only after sending it, so fd counts
	 * are stable only once the next request has been answered.
	 */
	assert_int_equal(vfpm_client_get_irq_info(c, VFIO_PCI_INTX_IRQ_INDEX, &irq), 0);
	return c;
}

struct vfpm_pm_dev *tfix_pm(struct tfix *f)
{
	return vfpm_pci_pm(f->model->pdev);
}

void tfix_wait_status(struct tfix *f, enum vfpm_pm_status status)
{
	int err = vfpm_pm_wait_status(tfix_pm(f), status, T_TIMEOUT_MS);

	if (err)
		fail_msg("device status %s, wanted %s",
			 vfpm_pm_status_name(vfpm_pm_status(tfix_pm(f))), vfpm_pm_status_name(status));
}

void tfix_wait_conns(struct tfix *f, unsigned int n)
{
	assert_int_equal(vfpm_server_wait_connections(f->srv, n, T_TIMEOUT_MS), 0);
}

void t_enable_memory(struct vfpm_client *c)
{
	uint16_t cmd = PCI_COMMAND_MEMORY;

	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						  &cmd, sizeof(cmd)), sizeof(cmd));
}

void t_check_client(struct vfpm_client *c)
{
	struct vfio_device_info info;
	uint16_t vendor = 0;

	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID,
						 &vendor, sizeof(vendor)), sizeof(vendor));
	assert_int_equal(vendor, TM_VENDOR_ID);
	assert_int_equal(vfpm_client_get_info(c, &info), 0);
	assert_int_equal(info.num_regions, VFIO_PCI_NUM_REGIONS);
}

/* Entries of a /proc directory, "." and ".." aside. */
static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

int t_count_fds(void)
{
	return count_entries("/proc/self/fd") - 1;	/* the DIR's own fd */
}

int t_count_threads(void)
{
	return count_entries("/proc/self/task");
}

int t_count_threads_named(const char *name)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;	/* it ended meanwhile */
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = 0;
		fclose(f);
		n += strcmp(comm, name) == 0;
	}
	closedir(d);
	return n;
}

int t_eventfd(void)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	assert_true(efd >= 0);
	return efd;
}

uint64_t t_eventfd_read(int efd)
{
	uint64_t v = 0;

	if (read(efd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
		assert_int_equal(errno, EAGAIN);
		return 0;
	}
	return v;
}

int raw_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = T_TIMEOUT_MS / 1000 };
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(sock >= 0);
	strcpy(addr.sun_path, path);
	assert_int_equal(connect(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return sock;
}

void raw_version(int sock)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
	uint8_t buf[sizeof(struct vfio_user_version) + sizeof(json)];
	struct vfio_user_version ver = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };

	memcpy(buf, &ver, sizeof(ver));
	memcpy(buf + sizeof(ver), json, sizeof(json));
	assert_int_equal(raw_send(sock, 0x7777, VFIO_USER_VERSION, 0, buf, sizeof(buf), NULL, 0), 0);
	assert_true(raw_expect_ok(sock, 0x7777, VFIO_USER_VERSION) > sizeof(ver));
}

int raw_send(int sock, uint16_t id, uint16_t cmd, uint32_t flags, const void *payload, size_t len,
	     const int *fds, unsigned int nfds)
{
	struct vfio_user_header hdr = { .msg_id = id, .command = cmd, .flags = flags };

	return vfpm_sock_send_msg(sock, &hdr, payload, len, fds, nfds);
}

void raw_recv(int sock, struct vfpm_msg *m)
{
	int err = vfpm_sock_recv_msg(sock, m, 1u << 24);

	if (err)
		fail_msg("no message from the server: %s", strerror(-err));
}

void raw_expect_error(int sock, uint16_t id, uint16_t cmd, int err)
{
	struct vfpm_msg m;

	raw_recv(sock, &m);
	assert_int_equal(m.hdr.msg_id, id);
	assert_int_equal(m.hdr.command, cmd);
	assert_int_equal(m.hdr.flags, VFIO_USER_F_TYPE_REPLY | VFIO_USER_F_ERROR);
	if ((int)m.hdr.error_no != err)
		fail_msg("errno %u (%s), wanted %d (%s)", m.hdr.error_no, strerror((int)m.hdr.error_no),
			 err, strerror(err));
	assert_int_equal(m.hdr.msg_size, VFIO_USER_HDR_SIZE);
	assert_int_equal(m.nfds, 0);
	vfpm_msg_release(&m);
}

size_t raw_expect_ok(int sock, uint16_t id, uint16_t cmd)
{
	struct vfpm_msg m;
	size_t len;

	raw_recv(sock, &m);
	assert_int_equal(m.hdr.msg_id, id);
	assert_int_equal(m.hdr.command, cmd);
	if (m.hdr.flags != VFIO_USER_F_TYPE_REPLY)
		fail_msg("reply flags %#x errno %u (%s)", m.hdr.flags, m.hdr.error_no,
			 strerror((int)m.hdr.error_no));
	len = m.len;
	vfpm_msg_release(&m);
	return len;
}

void raw_expect_closed(int sock)
{
	char c;
	ssize_t n;

	/* An error reply may come first; then the end of the stream. */
	do {
		n = recv(sock, &c, 1, 0);
	} while (n > 0);
	/* A reset (the server closed with our bytes unread) is a close too. */
	if (n < 0 && errno != ECONNRESET)
		fail_msg("connection still open: %s", strerror(errno));
}
