// SPDX-License-Identifier: MIT
/*
 * vfpm_server_serve_fd: an already-connected socket served on the caller's
 * thread, next to accepted connections and on a server without a listening
 * socket; vfpm_server_stop ends it; a socket of the wrong type is refused
 * (and closed).
 */
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

static void *serve_fd_thread(void *arg)
{
	void **a = arg;

	return (void *)(intptr_t)vfpm_server_serve_fd(a[0], (int)(intptr_t)a[1]);
}

/* A socketpair served on a thread of ours, next to accepted connections; stop ends it. */
static void test_serve_fd(void **state)
{
	struct tfix *f = *state;
	int sv[2];
	void *arg[2];
	pthread_t t;
	void *ret;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	arg[0] = f->srv;
	arg[1] = (void *)(intptr_t)sv[0];
	assert_int_equal(pthread_create(&t, NULL, serve_fd_thread, arg), 0);
	raw_version(sv[1]);
	assert_int_equal(raw_send(sv[1], 2, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info), NULL,
				  0), 0);
	assert_int_equal(raw_expect_ok(sv[1], 2, VFIO_USER_DEVICE_GET_INFO), sizeof(info));
	struct vfpm_client *c = tfix_connect(f);

	tfix_wait_conns(f, 2);
	t_check_client(c);
	vfpm_client_close(c);
	tfix_wait_conns(f, 1);
	/* The client leaves: serve_fd returns 0 and the connection is gone. */
	close(sv[1]);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_int_equal((intptr_t)ret, 0);
	tfix_wait_conns(f, 0);

	/* Not a stream socket: refused, and the fd is closed all the same. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(vfpm_server_serve_fd(f->srv, sv[0]), -EINVAL);
	close(sv[1]);

	/* vfpm_server_stop disconnects a serve_fd connection and waits for it. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	arg[1] = (void *)(intptr_t)sv[0];
	assert_int_equal(pthread_create(&t, NULL, serve_fd_thread, arg), 0);
	raw_version(sv[1]);
	vfpm_server_stop(f->srv);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_int_equal((intptr_t)ret, 0);
	raw_expect_closed(sv[1]);
	close(sv[1]);
	assert_int_equal(vfpm_server_connection_count(f->srv), 0);
}

/* A server without a listening socket serves only serve_fd connections. */
static void test_serve_fd_no_listener(void **state)
{
	struct tfix *f = *state;
	struct vfpm_server *srv;
	int sv[2];
	void *arg[2];
	pthread_t t;
	void *ret;

	assert_int_equal(vfpm_server_create_fd(vfpm_pci_device(f->model->pdev), -1, NULL, &srv), 0);
	assert_int_equal(vfpm_server_start(srv), -EINVAL);
	assert_int_equal(vfpm_server_run(srv), -EINVAL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	arg[0] = srv;
	arg[1] = (void *)(intptr_t)sv[0];
	assert_int_equal(pthread_create(&t, NULL, serve_fd_thread, arg), 0);
	raw_version(sv[1]);
	shutdown(sv[1], SHUT_WR);
	raw_expect_closed(sv[1]);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_int_equal((intptr_t)ret, 0);
	close(sv[1]);
	vfpm_server_destroy(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_serve_fd, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_serve_fd_no_listener, tfix_setup, tfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
