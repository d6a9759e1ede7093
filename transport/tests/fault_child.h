/* SPDX-License-Identifier: MIT */
/*
 * Clients in child processes, for tests that kill a client (SIGKILL) at a
 * chosen point or run it as another user.  The child uses raw sockets and no
 * cmocka: it reports "ready" through a pipe once its steps are done (or
 * exits with a nonzero status when one fails), then waits to be killed.
 */
#ifndef VFPM_TRANSPORT_FAULT_CHILD_H
#define VFPM_TRANSPORT_FAULT_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The steps a child takes on its connection (sock), after VERSION unless raw. */
typedef int (*child_fn)(int sock, void *arg);

struct child {
	pid_t pid;
	int ready_fd;		/* the read end of the child's pipe */
};

/*
 * Fork a client: connect to path as uid (-1: the same), negotiate VERSION
 * unless raw, run fn, report ready.  Returns 0 once the child is ready, or
 * the exit status of a child that failed before (it is reaped): 9 fds, 10 setuid,
 * 11 connect, 12 VERSION (e.g. the server closed the connection), 13 fn.
 */
int child_start(struct child *c, const char *path, uid_t uid, bool raw, child_fn fn, void *arg);
/* SIGKILL the child and reap it. */
void child_kill(struct child *c);
/* Wait for a child that exits by itself: its exit status (asserts it exited). */
int child_wait(struct child *c);

/* Steps for children (return 0 or -1; async-signal-safe enough after fork). */
int child_send(int sock, uint16_t id, uint16_t cmd, const void *payload, size_t len,
	       const int *fds, unsigned int nfds);
/* Receive one reply: 0 and its error_no in *err (0 for success), or -1. */
int child_recv_reply(int sock, uint16_t id, uint32_t *err);

#endif /* VFPM_TRANSPORT_FAULT_CHILD_H */
