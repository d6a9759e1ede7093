// SPDX-License-Identifier: MIT
/*
 * Who may use a device beyond the socket file's mode (0600 by default,
 * tested in test_e2e.c): with allowed_uids only those users are served
 * (SO_PEERCRED); anyone else is disconnected before a byte is read, and the
 * device is never opened for them.  Clients of other uids run in child
 * processes that setuid (the tests need root for that and skip otherwise).
 */
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "fault_child.h"

#define UID_ALLOWED 4242
#define UID_OTHER 4343

struct afix {
	struct tfix *f;
	struct vfpm_server *srv;	/* the restricted server, on the same device */
	char path[160];
};

static int afix_setup_uids(void **state, const uid_t *uids, unsigned int n)
{
	struct afix *a = calloc(1, sizeof(*a));
	struct vfpm_server_opts opts = {
		.socket_mode = 0666, .allowed_uids = uids, .n_allowed_uids = n,
	};

	assert_non_null(a);
	tfix_setup((void **)&a->f);
	/* Others must reach the socket for SO_PEERCRED to be what stops them. */
	assert_int_equal(chmod(a->f->dir, 0755), 0);
	snprintf(a->path, sizeof(a->path), "%s/restricted.sock", a->f->dir);
	assert_int_equal(vfpm_server_create(vfpm_pci_device(a->f->model->pdev), a->path, &opts,
					    &a->srv), 0);
	assert_int_equal(t_server_start(a->srv), 0);
	*state = a;
	return 0;
}

static int afix_setup(void **state)
{
	/* The array is the caller's only for the call: the server keeps a copy. */
	uid_t uids[2] = { UID_ALLOWED, 7 };

	return afix_setup_uids(state, uids, 2);
}

static int afix_teardown(void **state)
{
	struct afix *a = *state;

	vfpm_server_destroy(a->srv);
	tfix_teardown((void **)&a->f);
	free(a);
	return 0;
}

static int step_get_info(int sock, void *arg)
{
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	uint32_t err;

	(void)arg;
	if (child_send(sock, 2, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), NULL, 0) ||
	    child_recv_reply(sock, 2, &err) || err)
		return -1;
	return 0;
}

static void skip_unless_root(void)
{
	if (geteuid() != 0) {
		print_message("not root: cannot run clients as other users\n");
		skip();
	}
}

/* An allowed uid is served like any client. */
static void test_allowed_uid_served(void **state)
{
	struct afix *a = *state;
	struct child ch;

	skip_unless_root();
	assert_int_equal(child_start(&ch, a->path, UID_ALLOWED, false, step_get_info, NULL), 0);
	assert_int_equal(vfpm_server_wait_connections(a->srv, 1, T_TIMEOUT_MS), 0);
	assert_int_equal(vfpm_device_open_count(vfpm_pci_device(a->f->model->pdev)), 1);
	child_kill(&ch);
	assert_int_equal(vfpm_server_wait_connections(a->srv, 0, T_TIMEOUT_MS), 0);
	tfix_wait_status(a->f, VFPM_PM_SUSPENDED);
}

/* Another uid (root included) is closed at once; the device is never opened or woken. */
static void test_other_uid_refused(void **state)
{
	struct afix *a = *state;
	struct vfpm_pm_dev *pm = tfix_pm(a->f);
	int resumes;
	struct child ch;
	int sock;

	skip_unless_root();
	tfix_wait_status(a->f, VFPM_PM_SUSPENDED);
	resumes = a->f->model->resumes;
	/* The child's VERSION finds the connection closed. */
	assert_int_equal(child_start(&ch, a->path, UID_OTHER, false, step_get_info, NULL), 12);
	/* Root is not special. */
	sock = raw_connect(a->path);
	raw_expect_closed(sock);
	close(sock);
	assert_int_equal(vfpm_server_connection_count(a->srv), 0);
	assert_int_equal(vfpm_device_open_count(vfpm_pci_device(a->f->model->pdev)), 0);
	assert_int_equal(a->f->model->resumes, resumes);
	assert_int_equal(vfpm_pm_status(pm), VFPM_PM_SUSPENDED);
	/* The unrestricted server of the same device still serves root. */
	struct vfpm_client *c = tfix_connect(a->f);

	t_check_client(c);
	vfpm_client_close(c);
	tfix_wait_conns(a->f, 0);
}

/* vfpm_server_serve_fd checks the peer too. */
static void test_serve_fd_refused(void **state)
{
	struct afix *a = *state;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	if (geteuid() == UID_ALLOWED)
		skip();
	assert_int_equal(vfpm_server_serve_fd(a->srv, sv[0]), -EACCES);
	raw_expect_closed(sv[1]);
	close(sv[1]);
}

/* allowed_uids without n, or n without allowed_uids. */
static void test_bad_uid_options(void **state)
{
	struct tfix *f = *state;
	struct vfpm_server_opts opts = { .n_allowed_uids = 1 };
	struct vfpm_server *srv;

	assert_int_equal(vfpm_server_create_fd(vfpm_pci_device(f->model->pdev), -1, &opts, &srv),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_allowed_uid_served, afix_setup, afix_teardown),
		cmocka_unit_test_setup_teardown(test_other_uid_refused, afix_setup, afix_teardown),
		cmocka_unit_test_setup_teardown(test_serve_fd_refused, afix_setup, afix_teardown),
		cmocka_unit_test_setup_teardown(test_bad_uid_options, tfix_setup, tfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
