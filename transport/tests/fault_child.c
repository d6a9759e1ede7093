// SPDX-License-Identifier: MIT
/* Clients in child processes (see fault_child.h). */
#include "fault_child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

int child_send(int sock, uint16_t id, uint16_t cmd, const void *payload, size_t len,
	       const int *fds, unsigned int nfds)
{
	struct vfio_user_header hdr = { .msg_id = id, .command = cmd };

	return vfpm_sock_send_msg(sock, &hdr, payload, len, fds, nfds) ? -1 : 0;
}

int child_recv_reply(int sock, uint16_t id, uint32_t *err)
{
	struct vfpm_msg m;

	if (vfpm_sock_recv_msg(sock, &m, 1u << 24))
		return -1;
	*err = (m.hdr.flags & VFIO_USER_F_ERROR) ? m.hdr.error_no : 0;
	vfpm_msg_release(&m);
	return m.hdr.msg_id == id && (m.hdr.flags & VFIO_USER_F_TYPE_MASK) == VFIO_USER_F_TYPE_REPLY ?
	       0 : -1;
}

static int child_version(int sock)
{
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
	uint8_t buf[sizeof(struct vfio_user_version) + sizeof(json)];
	struct vfio_user_version ver = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };
	uint32_t err;

	memcpy(buf, &ver, sizeof(ver));
	memcpy(buf + sizeof(ver), json, sizeof(json));
	if (child_send(sock, 1, VFIO_USER_VERSION, buf, sizeof(buf), NULL, 0) ||
	    child_recv_reply(sock, 1, &err) || err)
		return -1;
	return 0;
}

/* The child's whole life; its exit status says where it stopped. */
static int child_main(const char *path, uid_t uid, bool raw, child_fn fn, void *arg, int ready)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int sock;

	if (uid != (uid_t)-1 && (setgid(uid) < 0 || setuid(uid) < 0))
		return 10;
	sock = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(addr.sun_path, path);
	if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return 11;
	if (!raw && child_version(sock))
		return 12;
	if (fn && fn(sock, arg))
		return 13;
	if (write(ready, "r", 1) != 1)
		return 14;
	for (;;)
		pause();
}

int child_start(struct child *c, const char *path, uid_t uid, bool raw, child_fn fn, void *arg)
{
	int p[2];
	char byte;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		/*
		 * Keep nothing of the parent's but the pipe: a copy of another
		 * connection's socket would keep it open after the parent closes it.
		 */
		if (dup2(p[1], 3) < 0 || close_range(4, ~0u, 0) < 0)
			_exit(9);
		_exit(child_main(path, uid, raw, fn, arg, 3));
	}
	close(p[1]);
	c->ready_fd = p[0];
	if (read(c->ready_fd, &byte, 1) != 1)
		return child_wait(c);
	return 0;
}

void child_kill(struct child *c)
{
	int status;

	kill(c->pid, SIGKILL);
	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
	assert_true(WIFSIGNALED(status));
	close(c->ready_fd);
}

int child_wait(struct child *c)
{
	int status;

	assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
	close(c->ready_fd);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}
