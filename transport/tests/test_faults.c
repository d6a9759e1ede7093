// SPDX-License-Identifier: MIT
/*
 * Fault injection with real sockets and processes: a device whose runtime
 * resume or suspend fails (the sticky error), clients killed with SIGKILL
 * in the middle of a request, of a message, while the device is suspended
 * and while it is resuming, a wakeup eventfd the client closed, a message
 * left half-sent, and the process out of fds when a client connects.
 *
 * Every test ends with the fd count back at its baseline, the device idle
 * and suspended with no usage reference left, no device access made while
 * it was not ACTIVE, and the server still serving.
 */
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "fault_child.h"

/*
 * A fault device served on its own socket, next to the fixture's test
 * device: another test model, whose runtime callbacks the tests make fail
 * (resume_error, suspend_error) or wait (the resume gate).
 */
struct ffix {
	struct tfix *f;			/* the bystander device and its server */
	struct test_model *m;
	struct vfpm_server *srv;
	char path[160];
	int baseline_fds;
};

static int ffix_setup(void **state)
{
	struct ffix *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	tfix_setup((void **)&x->f);
	x->baseline_fds = t_count_fds();
	assert_int_equal(tm_create(NULL, &x->m), 0);
	snprintf(x->path, sizeof(x->path), "%s/fault.sock", x->f->dir);
	assert_int_equal(vfpm_server_create(vfpm_pci_device(x->m->pdev), x->path, NULL, &x->srv),
			 0);
	assert_int_equal(t_server_start(x->srv), 0);
	assert_int_equal(vfpm_pm_wait_status(vfpm_pci_pm(x->m->pdev), VFPM_PM_SUSPENDED,
					     T_TIMEOUT_MS), 0);
	*state = x;
	return 0;
}

static struct vfpm_pm_dev *fpm(struct ffix *x)
{
	return vfpm_pci_pm(x->m->pdev);
}

static void fwait_status(struct ffix *x, enum vfpm_pm_status st)
{
	if (vfpm_pm_wait_status(fpm(x), st, T_TIMEOUT_MS))
		fail_msg("fault device %s, wanted %s", vfpm_pm_status_name(vfpm_pm_status(fpm(x))),
			 vfpm_pm_status_name(st));
}

/* Nobody uses the device: it idles into suspend with no reference left. */
static void fexpect_idle(struct ffix *x)
{
	assert_int_equal(vfpm_server_wait_connections(x->srv, 0, T_TIMEOUT_MS), 0);
	fwait_status(x, VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_usage_count(fpm(x)), 0);
	assert_false(vfpm_pci_low_power_engaged(x->m->pdev));
}

static int ffix_teardown(void **state)
{
	struct ffix *x = *state;

	vfpm_server_destroy(x->srv);
	assert_int_equal(atomic_load(&x->m->violations), 0);
	tm_destroy(x->m);
	assert_int_equal(t_count_fds(), x->baseline_fds);
	tfix_teardown((void **)&x->f);
	free(x);
	return 0;
}

static int read_config_word(struct vfpm_client *c, uint16_t *v)
{
	ssize_t n = vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID, v, 2);

	return n < 0 ? (int)n : 0;
}

/* ---- the sticky runtime error ---- */

/*
 * A resume that fails leaves the device SUSPENDED with its error recorded:
 * every request of an open connection is EIO, a new connection cannot open
 * the device, and the server, its other clients and other devices go on.
 * Once the error is cleared the device serves again.
 */
static void test_resume_fails_sticky(void **state)
{
	struct ffix *x = *state;
	struct vfpm_client *c, *c2, *other = tfix_connect(x->f);
	struct vfpm_client_power st;
	struct vfio_device_info info;
	uint16_t v;

	assert_int_equal(vfpm_client_connect(x->path, &c), 0);
	assert_int_equal(read_config_word(c, &v), 0);
	assert_int_equal(v, 0x1b36);
	assert_int_equal(vfpm_client_low_power_entry(c), 0);
	fwait_status(x, VFPM_PM_SUSPENDED);

	atomic_store(&x->m->resume_error, -EIO);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(vfpm_client_get_info(c, &info), -EIO);
		assert_int_equal(read_config_word(c, &v), -EIO);
		assert_int_equal(vfpm_client_low_power_exit(c), -EIO);
	}
	assert_true(vfpm_pm_runtime_error(fpm(x)) != 0);
	/* Sticky: the callback would succeed now, the device still refuses. */
	atomic_store(&x->m->resume_error, 0);
	assert_int_equal(vfpm_client_get_info(c, &info), -EIO);
	/* POWER_STATUS takes no reference: it still answers. */
	assert_int_equal(vfpm_client_power_status(c, &st), 0);
	assert_string_equal(st.runtime_status, "suspended");
	/* A new connection negotiates, but its open of the device fails as the kernel's open does. */
	assert_int_equal(vfpm_client_connect(x->path, &c2), 0);
	assert_true(vfpm_client_get_info(c2, &info) < 0);
	assert_int_equal(vfpm_server_connection_count(x->srv), 2);
	/* Other devices are not affected. */
	t_check_client(other);

	/* Clearing the error (as a driver would after recovering) brings the device back. */
	assert_int_equal(vfpm_pm_set_suspended(fpm(x)), 0);
	assert_int_equal(vfpm_client_get_info(c, &info), 0);
	assert_int_equal(vfpm_client_get_info(c2, &info), 0);
	assert_int_equal(vfpm_client_low_power_exit(c), 0);
	vfpm_client_close(c2);
	vfpm_client_close(c);
	fexpect_idle(x);
	vfpm_client_close(other);
	tfix_wait_conns(x->f, 0);
}

/*
 * The last client leaves while the device cannot be resumed: the close
 * cannot wake it for the teardown, and must not touch it while it is
 * suspended (the model counts that); the server carries on.
 */
static void test_close_with_sticky_error(void **state)
{
	struct ffix *x = *state;
	struct vfpm_client *c;
	struct vfio_device_info info;

	assert_int_equal(vfpm_client_connect(x->path, &c), 0);
	assert_int_equal(vfpm_client_low_power_entry(c), 0);
	fwait_status(x, VFPM_PM_SUSPENDED);
	atomic_store(&x->m->resume_error, -EIO);
	assert_int_equal(vfpm_client_get_info(c, &info), -EIO);
	vfpm_client_close(c);
	assert_int_equal(vfpm_server_wait_connections(x->srv, 0, T_TIMEOUT_MS), 0);
	assert_int_equal(vfpm_pm_status(fpm(x)), VFPM_PM_SUSPENDED);
	assert_int_equal(atomic_load(&x->m->violations), 0);
	/* Recovered, the device serves a new client. */
	atomic_store(&x->m->resume_error, 0);
	assert_int_equal(vfpm_pm_set_suspended(fpm(x)), 0);
	assert_int_equal(vfpm_client_connect(x->path, &c), 0);
	assert_int_equal(vfpm_client_get_info(c, &info), 0);
	vfpm_client_close(c);
	fexpect_idle(x);
}

/* A suspend that fails with a real error is sticky too (EAGAIN/EBUSY are not). */
static void test_suspend_fails_sticky(void **state)
{
	struct ffix *x = *state;
	struct vfpm_client *c, *other = tfix_connect(x->f);
	struct vfio_device_info info;

	assert_int_equal(vfpm_client_connect(x->path, &c), 0);
	assert_int_equal(vfpm_client_get_info(c, &info), 0);
	atomic_store(&x->m->suspend_error, -EIO);
	assert_int_equal(vfpm_client_low_power_entry(c), 0);
	/* The suspend is attempted once the request is over; it fails and is recorded. */
	for (int i = 0; i < T_TIMEOUT_MS / 10 && !vfpm_pm_runtime_error(fpm(x)); i++)
		usleep(10000);
	assert_int_equal(vfpm_pm_runtime_error(fpm(x)), -EIO);
	assert_int_equal(vfpm_pm_status(fpm(x)), VFPM_PM_ACTIVE);
	atomic_store(&x->m->suspend_error, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vfpm_client_get_info(c, &info), -EIO);
	t_check_client(other);
	assert_int_equal(vfpm_pm_set_active(fpm(x)), 0);
	assert_int_equal(vfpm_client_get_info(c, &info), 0);
	assert_int_equal(vfpm_client_low_power_exit(c), 0);
	vfpm_client_close(c);
	fexpect_idle(x);
	vfpm_client_close(other);
	tfix_wait_conns(x->f, 0);
}

/* ---- clients killed ---- */

static int step_enable_memory(int sock)
{
	struct vfio_user_region_access a = {
		.offset = PCI_COMMAND, .region = VFIO_PCI_CONFIG_REGION_INDEX, .count = 2,
	};
	const uint16_t cmd = PCI_COMMAND_MEMORY;
	uint8_t w[sizeof(a) + sizeof(cmd)];
	uint32_t err;

	memcpy(w, &a, sizeof(a));
	memcpy(w + sizeof(a), &cmd, sizeof(cmd));
	if (child_send(sock, 2, VFIO_USER_REGION_WRITE, w, sizeof(w), NULL, 0) ||
	    child_recv_reply(sock, 2, &err) || err)
		return -1;
	return 0;
}

/* The child's request that blocks in the test model's slow register. */
static int step_slow_read(int sock, void *arg)
{
	struct vfio_user_region_access rd = {
		.offset = TM_REG_SLOW, .region = VFIO_PCI_BAR2_REGION_INDEX, .count = 4,
	};

	(void)arg;
	if (step_enable_memory(sock))
		return -1;
	return child_send(sock, 3, VFIO_USER_REGION_READ, &rd, sizeof(rd), NULL, 0);
}

/* Killed while its request runs: the request completes, its reply goes nowhere. */
static void test_kill_mid_request(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *other = tfix_connect(f);
	int fds = t_count_fds();
	struct child ch;

	t_read_gate_close(f->model);
	assert_int_equal(child_start(&ch, f->path, (uid_t)-1, false, step_slow_read, NULL), 0);
	assert_int_equal(tm_read_gate_wait(f->model, 1, T_TIMEOUT_MS), 0);
	child_kill(&ch);
	t_check_client(other);		/* served while the killed client's request waits */
	tm_read_gate_open(f->model);
	tfix_wait_conns(f, 1);
	assert_int_equal(t_count_fds(), fds);
	t_check_client(other);
	vfpm_client_close(other);
	tfix_wait_conns(f, 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_usage_count(tfix_pm(f)), 0);
}

/* Half a DEVICE_FEATURE with an eventfd attached, then the client dies. */
static int step_half_message(int sock, void *arg)
{
	struct {
		struct vfio_user_header hdr;
		uint8_t half[12];
	} msg = { .hdr = { .msg_id = 4, .command = VFIO_USER_DEVICE_FEATURE, .msg_size = 16 + 16 } };
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
	int efd = eventfd(0, 0);

	(void)arg;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &efd, sizeof(int));
	return sendmsg(sock, &mh, 0) == (ssize_t)sizeof(msg) ? 0 : -1;
}

static void test_kill_mid_message(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *other = tfix_connect(f);
	int fds = t_count_fds();
	struct child ch;

	assert_int_equal(child_start(&ch, f->path, (uid_t)-1, false, step_half_message, NULL), 0);
	tfix_wait_conns(f, 2);
	t_check_client(other);
	child_kill(&ch);
	tfix_wait_conns(f, 1);
	/* The eventfd that came with the half message is not kept. */
	assert_int_equal(t_count_fds(), fds);
	t_check_client(other);
	vfpm_client_close(other);
	tfix_wait_conns(f, 0);
}

static int step_entry_with_wakeup(int sock, void *arg)
{
	struct vfio_user_device_feature f = {
		.argsz = sizeof(f) + sizeof(struct vfio_user_low_power_entry_with_wakeup),
		.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
	};
	struct vfio_user_low_power_entry_with_wakeup w = { .wakeup_eventfd = 0 };
	uint8_t req[sizeof(f) + sizeof(w)];
	int efd = eventfd(0, 0);
	uint32_t err;

	*(int *)arg = 0;
	memcpy(req, &f, sizeof(f));
	memcpy(req + sizeof(f), &w, sizeof(w));
	if (efd < 0 || child_send(sock, 5, VFIO_USER_DEVICE_FEATURE, req, sizeof(req), &efd, 1) ||
	    child_recv_reply(sock, 5, &err) || err)
		return -1;
	return 0;
}

/* Killed while the device sleeps armed: the last close drops low power without a signal. */
static void test_kill_while_suspended(void **state)
{
	struct tfix *f = *state;
	int resumes;
	struct child ch;
	int dummy;

	assert_int_equal(child_start(&ch, f->path, (uid_t)-1, false, step_entry_with_wakeup, &dummy), 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_true(vfpm_pci_low_power_engaged(f->model->pdev));
	resumes = f->model->resumes;
	child_kill(&ch);
	tfix_wait_conns(f, 0);
	/* Woken to be torn down, then idle again. */
	assert_true(f->model->resumes > resumes);
	assert_false(vfpm_pci_low_power_engaged(f->model->pdev));
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(vfpm_pm_usage_count(tfix_pm(f)), 0);
	/* And it serves the next client. */
	struct vfpm_client *c = tfix_connect(f);

	t_check_client(c);
	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
}

static int step_entry(int sock, void *arg)
{
	struct vfio_user_device_feature req = {
		.argsz = sizeof(req),
		.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
	};
	uint32_t err;

	(void)arg;
	if (child_send(sock, 6, VFIO_USER_DEVICE_FEATURE, &req, sizeof(req), NULL, 0) ||
	    child_recv_reply(sock, 6, &err) || err)
		return -1;
	return 0;
}

static int step_get_info(int sock, void *arg)
{
	struct vfio_user_device_info info = { .argsz = sizeof(info) };

	(void)arg;
	return child_send(sock, 7, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), NULL, 0);
}

/* Killed while its request waits for a slow resume of the suspended device. */
static void test_kill_while_resuming(void **state)
{
	struct ffix *x = *state;
	struct vfpm_client *c;
	struct child ch, waker;
	struct vfio_device_info info;

	/* A client keeps the device open and in low power. */
	assert_int_equal(vfpm_client_connect(x->path, &c), 0);
	assert_int_equal(vfpm_client_get_info(c, &info), 0);
	assert_int_equal(child_start(&ch, x->path, (uid_t)-1, false, step_entry, NULL), 0);
	fwait_status(x, VFPM_PM_SUSPENDED);

	tm_resume_gate_close(x->m);
	assert_int_equal(child_start(&waker, x->path, (uid_t)-1, false, step_get_info, NULL), 0);
	assert_int_equal(tm_resume_gate_wait(x->m, 1, T_TIMEOUT_MS), 0);
	assert_int_equal(vfpm_pm_status(fpm(x)), VFPM_PM_RESUMING);
	child_kill(&waker);
	child_kill(&ch);
	tm_resume_gate_open(x->m);
	assert_int_equal(vfpm_server_wait_connections(x->srv, 1, T_TIMEOUT_MS), 0);
	/* Low power is device-wide: it stays engaged for the remaining client. */
	assert_int_equal(vfpm_client_get_info(c, &info), 0);
	assert_int_equal(vfpm_client_low_power_exit(c), 0);
	vfpm_client_close(c);
	fexpect_idle(x);
}

/* ---- eventfds ---- */

/* The client closes its wakeup eventfd right after arming: the wake still works. */
static void test_wakeup_eventfd_closed_by_client(void **state)
{
	struct tfix *f = *state;
	int fds = t_count_fds();
	struct vfpm_client *c = tfix_connect(f);
	int efd = t_eventfd();
	uint16_t v;

	assert_int_equal(vfpm_client_low_power_entry_with_wakeup(c, efd), 0);
	close(efd);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(read_config_word(c, &v), 0);
	assert_int_equal(v, TM_VENDOR_ID);
	/* The wake disarmed: the server's copy of the eventfd is closed. */
	assert_false(vfpm_pci_low_power_engaged(f->model->pdev));
	assert_int_equal(vfpm_pm_status(tfix_pm(f)), VFPM_PM_ACTIVE);
	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(t_count_fds(), fds);
}

/*
 * The eventfd's counter is at its maximum, so the wake's write cannot
 * succeed (a non-blocking eventfd: EAGAIN).  The wake must still happen and
 * disarm, and the request must succeed: the signal is best effort.
 */
static void test_wakeup_eventfd_write_fails(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	int efd = t_eventfd();
	uint64_t max = 0xfffffffffffffffeull;
	uint16_t v;

	assert_int_equal(write(efd, &max, sizeof(max)), sizeof(max));
	assert_int_equal(vfpm_client_low_power_entry_with_wakeup(c, efd), 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(read_config_word(c, &v), 0);
	assert_false(vfpm_pci_low_power_engaged(f->model->pdev));
	assert_int_equal(t_eventfd_read(efd), max);
	close(efd);
	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
}

struct waker {
	struct vfpm_client *c;
	atomic_bool done;
	int err;
};

static void *waker_thread(void *arg)
{
	struct waker *w = arg;
	uint16_t v;

	w->err = read_config_word(w->c, &v);
	atomic_store(&w->done, true);
	return NULL;
}

/*
 * The same with a blocking eventfd: the kernel's eventfd_signal never
 * blocks, so the wake must not either, or one client's full eventfd hangs
 * the device (in RESUMING) for every client.
 */
static void test_wakeup_eventfd_full_blocking(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	int efd = eventfd(0, EFD_CLOEXEC);
	uint64_t max = 0xfffffffffffffffeull;
	struct waker w = { .c = c };
	pthread_t t;
	int i;

	assert_true(efd >= 0);
	assert_int_equal(write(efd, &max, sizeof(max)), sizeof(max));
	assert_int_equal(vfpm_client_low_power_entry_with_wakeup(c, efd), 0);
	tfix_wait_status(f, VFPM_PM_SUSPENDED);
	assert_int_equal(pthread_create(&t, NULL, waker_thread, &w), 0);
	for (i = 0; i < 200 && !atomic_load(&w.done); i++)
		usleep(10000);
	/* It did not block; the signal was dropped, as the kernel caps it. */
	assert_true(atomic_load(&w.done));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.err, 0);
	assert_false(vfpm_pci_low_power_engaged(f->model->pdev));
	close(efd);
	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
}

/* ---- streams ---- */

/* A message left half-sent holds up its own connection only. */
static void test_partial_message_hanging(void **state)
{
	struct tfix *f = *state;
	struct vfio_user_header hdr = {
		.msg_id = 1, .command = VFIO_USER_DEVICE_GET_INFO, .msg_size = 16 + 16,
	};
	int sock = raw_connect(f->path);

	raw_version(sock);
	assert_int_equal(vfpm_sock_write_all(sock, &hdr, sizeof(hdr)), 0);
	for (int round = 0; round < 5; round++) {
		struct vfpm_client *c[3];

		for (int i = 0; i < 3; i++)
			c[i] = tfix_connect(f);
		for (int i = 0; i < 3; i++) {
			t_check_client(c[i]);
			vfpm_client_close(c[i]);
		}
	}
	tfix_wait_conns(f, 1);
	close(sock);
	tfix_wait_conns(f, 0);
}

/*
 * Out of fds when a client connects (EMFILE on accept): the server uses its
 * reserve fd to accept and close the newest connection, so that the queue
 * never stalls (and no other device's listener with it), keeps its reserve,
 * and serves new clients once fds are free again.
 */
static void test_emfile_on_accept(void **state)
{
	struct tfix *f = *state;
	struct rlimit old, low;
	int fillers[64], nfill = 0, sock, err;
	struct vfpm_msg m;
	struct timeval tv = { .tv_sec = 0, .tv_usec = 300000 };
	static const char json[] = "{}";
	uint8_t buf[sizeof(struct vfio_user_version) + sizeof(json)];
	struct vfio_user_version ver = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };

	memcpy(buf, &ver, sizeof(ver));
	memcpy(buf + sizeof(ver), json, sizeof(json));
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)t_count_fds() + 40;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	/* Use up every fd but one: the client's socket. */
	for (;;) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			assert_int_equal(errno, EMFILE);
			break;
		}
		assert_true(nfill < 64);
		fillers[nfill++] = fd;
	}
	close(fillers[--nfill]);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(sock >= 0);
	{
		struct sockaddr_un addr = { .sun_family = AF_UNIX };

		strcpy(addr.sun_path, f->path);
		assert_int_equal(connect(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
	}
	assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	raw_send(sock, 1, VFIO_USER_VERSION, 0, buf, sizeof(buf), NULL, 0);
	/*
	 * The server has no fd for it: it gives up its reserve fd for a moment,
	 * accepts and closes the connection, so the client hears at once
	 * instead of waiting in the queue, and nothing is served.
	 */
	tv.tv_sec = T_TIMEOUT_MS / 1000;
	tv.tv_usec = 0;
	assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	err = vfpm_sock_recv_msg(sock, &m, 1u << 20);
	assert_true(err == -ESHUTDOWN || err == -ECONNRESET);
	assert_int_equal(vfpm_server_connection_count(f->srv), 0);
	close(sock);

	while (nfill)
		close(fillers[--nfill]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	/* And the server goes on accepting. */
	struct vfpm_client *c = tfix_connect(f);

	t_check_client(c);
	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resume_fails_sticky, ffix_setup, ffix_teardown),
		cmocka_unit_test_setup_teardown(test_close_with_sticky_error, ffix_setup,
						ffix_teardown),
		cmocka_unit_test_setup_teardown(test_suspend_fails_sticky, ffix_setup, ffix_teardown),
		cmocka_unit_test_setup_teardown(test_kill_mid_request, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_kill_mid_message, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_kill_while_suspended, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_kill_while_resuming, ffix_setup, ffix_teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_eventfd_closed_by_client, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_eventfd_write_fails, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_wakeup_eventfd_full_blocking, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_partial_message_hanging, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_emfile_on_accept, tfix_setup, tfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
