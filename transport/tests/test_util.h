/* SPDX-License-Identifier: MIT */
/*
 * Test support: a server for the test model on its own thread in a temp
 * dir, clients, raw sockets for hand-made messages, fd counting.
 */
#ifndef VFPM_TRANSPORT_TEST_UTIL_H
#define VFPM_TRANSPORT_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <vfpm/client.h>
#include <vfpm/transport.h>

#include "test_model.h"
#include "tran_sock.h"
#include "wire.h"

#define T_TIMEOUT_MS 10000
/* The fixture server's limits, small enough to exceed cheaply. */
#define T_MAX_XFER 4096u
#define T_MAX_FDS 16u
#define T_MAX_DMA_MAPS 8u

struct tfix {
	char dir[64];
	char path[128];
	struct test_model *model;
	struct vfpm_server *srv;
	int baseline_fds;
};

/* cmocka setup / teardown: state is a struct tfix *. */
int tfix_setup(void **state);
int tfix_teardown(void **state);

struct vfpm_client *tfix_connect(struct tfix *f);
struct vfpm_pm_dev *tfix_pm(struct tfix *f);
void tfix_wait_status(struct tfix *f, enum vfpm_pm_status status);
/* Wait for the server to have n live connections (asserts). */
void tfix_wait_conns(struct tfix *f, unsigned int n);
/* Enable memory decoding (PCI COMMAND.MEM) through c. */
void t_enable_memory(struct vfpm_client *c);
/* A client of the same device still works (asserts). */
void t_check_client(struct vfpm_client *c);

int t_count_fds(void);
/* Threads of this process (/proc/self/task). */
/*
 * Start srv: vfpm_server_start, or, under VFPM_TEST_LOOP=caller, attach it
 * to the loop the test drives itself (the library then runs no thread).
 */
int t_server_start(struct vfpm_server *srv);
/*
 * Close the model's read gate: reads wait at it on the threaded core; on
 * the caller-driven one, whose only thread must not block, they are
 * deferred and completed when the gate opens.
 */
void t_read_gate_close(struct test_model *m);
/* A thread's read of TM_REG_SLOW, which waits at the model's read gate. */
struct t_slow_read {
	struct vfpm_client *c;
	uint32_t value;
	ssize_t ret;
};

void *t_slow_read_thread(void *arg);	/* arg: struct t_slow_read */
/* Is this run the caller-driven one? */
bool t_caller_loop(void);
int t_count_threads(void);
/* Threads of the process whose name (comm) is name. */
int t_count_threads_named(const char *name);
int t_eventfd(void);
/* The counter of a non-blocking eventfd: its value, or 0 when unsignalled. */
uint64_t t_eventfd_read(int efd);

/* Raw sockets (receive timeout T_TIMEOUT_MS, so a test fails instead of hanging). */
int raw_connect(const char *path);
void raw_version(int sock);
int raw_send(int sock, uint16_t id, uint16_t cmd, uint32_t flags, const void *payload, size_t len,
	     const int *fds, unsigned int nfds);
/* Receive one message (asserts it arrives); the caller releases it. */
void raw_recv(int sock, struct vfpm_msg *m);
/* The next message is the error reply to (id, cmd) with errno err. */
void raw_expect_error(int sock, uint16_t id, uint16_t cmd, int err);
/* The next message is a successful reply to (id, cmd): its payload length. */
size_t raw_expect_ok(int sock, uint16_t id, uint16_t cmd);
/* The server closed the connection (asserts EOF, not a timeout). */
void raw_expect_closed(int sock);

#endif /* VFPM_TRANSPORT_TEST_UTIL_H */
