// SPDX-License-Identifier: MIT
/*
 * Many servers in one process: started servers share the process's event
 * loop (its pool of two threads and a watchdog), so 200 idle devices and
 * their connections cost a constant number of threads, not 200; each still
 * accepts and answers, also after others were stopped or destroyed; stopping
 * and destroying servers while clients connect to them leaves nothing
 * behind (threads and fds back to the baseline); vfpm_server_run still works
 * next to them.
 */
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define N_SERVERS 200
/* Threads beyond the baseline with every server idle: the acceptor, and slack. */
/* The loop's pool (2) and its watchdog. */
#define MAX_EXTRA_THREADS 3
#define N_CLIENT_THREADS 4

struct many {
	char dir[64];
	struct test_model *model[N_SERVERS];
	struct vfpm_server *srv[N_SERVERS];
	int baseline_fds, baseline_threads;
};

/* Threads end shortly after they are joined: wait for the count to come down to want. */
static int wait_threads_at_most(int want)
{
	int n = t_count_threads();

	for (int i = 0; i < 1000 && n > want; i++) {
		usleep(10000);
		n = t_count_threads();
	}
	return n;
}

static void sock_path(const struct many *m, unsigned int i, char *buf, size_t len)
{
	snprintf(buf, len, "%s/d%03u.sock", m->dir, i);
}

static void start_server(struct many *m, unsigned int i)
{
	char path[128];

	sock_path(m, i, path, sizeof(path));
	assert_int_equal(vfpm_server_create(vfpm_pci_device(m->model[i]->pdev), path, NULL,
					    &m->srv[i]), 0);
	assert_int_equal(vfpm_server_start(m->srv[i]), 0);
}

static int many_setup(void **state)
{
	struct many *m = calloc(1, sizeof(*m));
	struct vfpm_transport_limits lim;
	struct rlimit rl;

	assert_non_null(m);
	/* 200 devices hold more fds than a default soft limit of 1024 allows. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	vfpm_transport_get_limits(&lim);	/* the reserve fd */
	m->baseline_fds = t_count_fds();
	strcpy(m->dir, "/tmp/vfpm-test-XXXXXX");
	assert_non_null(mkdtemp(m->dir));
	for (unsigned int i = 0; i < N_SERVERS; i++)
		assert_int_equal(tm_create(NULL, &m->model[i]), 0);
	for (unsigned int i = 0; i < N_SERVERS; i++)
		assert_int_equal(vfpm_pm_wait_status(vfpm_pci_pm(m->model[i]->pdev),
						     VFPM_PM_SUSPENDED, T_TIMEOUT_MS), 0);
	/* The devices and the PM core's threads are there; the servers come now. */
	m->baseline_threads = t_count_threads();
	for (unsigned int i = 0; i < N_SERVERS; i++)
		start_server(m, i);
	*state = m;
	return 0;
}

static int many_teardown(void **state)
{
	struct many *m = *state;

	for (unsigned int i = 0; i < N_SERVERS; i++)
		vfpm_server_destroy(m->srv[i]);
	/* The last server out ends the acceptor: nothing of the transport is left. */
	assert_int_equal(wait_threads_at_most(m->baseline_threads), m->baseline_threads);
	for (unsigned int i = 0; i < N_SERVERS; i++) {
		assert_int_equal(atomic_load(&m->model[i]->violations), 0);
		tm_destroy(m->model[i]);
	}
	assert_int_equal(t_count_fds(), m->baseline_fds);
	rmdir(m->dir);
	free(m);
	return 0;
}

static struct vfpm_client *connect_to(struct many *m, unsigned int i)
{
	struct vfpm_client *c = NULL;
	char path[128];

	sock_path(m, i, path, sizeof(path));
	assert_int_equal(vfpm_client_connect(path, &c), 0);
	return c;
}

/* Connect, check the device answers, leave. */
static void check_answers(struct many *m, unsigned int i)
{
	struct vfpm_client *c = connect_to(m, i);

	t_check_client(c);
	vfpm_client_close(c);
	assert_int_equal(vfpm_server_wait_connections(m->srv[i], 0, T_TIMEOUT_MS), 0);
}

/* 200 idle servers: a constant number of threads, and every one of them accepts. */
static void test_idle_servers_share_a_thread(void **state)
{
	static const unsigned int probe[] = { 0, 1, 57, 100, 142, N_SERVERS - 1 };
	struct many *m = *state;
	struct vfpm_client *c[12];
	int threads = t_count_threads();

	if (threads > m->baseline_threads + MAX_EXTRA_THREADS)
		fail_msg("%d servers idle: %d threads, %d before them", N_SERVERS, threads,
			 m->baseline_threads);
	for (unsigned int i = 0; i < sizeof(probe) / sizeof(probe[0]); i++)
		check_answers(m, probe[i]);

	/*
	 * Four connections at once on each of three devices: no thread for
	 * any of them (the pool may have grown by one if a handler was slow
	 * to come back on a loaded machine), none of the clients' either
	 * (their DMA threads start with a served window).
	 */
	for (unsigned int i = 0; i < 12; i++)
		c[i] = connect_to(m, 10 + i % 3);
	for (unsigned int i = 0; i < 12; i++)
		t_check_client(c[i]);
	assert_in_range(t_count_threads(), threads, threads + 1);
	for (unsigned int i = 0; i < 12; i++)
		vfpm_client_close(c[i]);
	for (unsigned int i = 0; i < 3; i++)
		assert_int_equal(vfpm_server_wait_connections(m->srv[10 + i], 0, T_TIMEOUT_MS), 0);
	assert_int_equal(wait_threads_at_most(threads), threads);
}

/* Stopping or destroying some servers leaves the others accepting. */
static void test_others_go_on_after_stop_and_destroy(void **state)
{
	struct many *m = *state;
	struct vfpm_client *c = connect_to(m, 20);
	struct vfpm_client *gone = NULL;
	char path[128];

	/* A connected client of a server that is destroyed is disconnected. */
	t_check_client(c);
	vfpm_server_destroy(m->srv[20]);
	m->srv[20] = NULL;
	sock_path(m, 20, path, sizeof(path));
	assert_int_not_equal(vfpm_client_connect(path, &gone), 0);
	vfpm_client_close(c);

	vfpm_server_stop(m->srv[21]);
	assert_int_equal(vfpm_server_start(m->srv[21]), -EBUSY);
	check_answers(m, 19);
	check_answers(m, 22);
	check_answers(m, N_SERVERS - 1);

	/* A new server after those: the acceptor takes it on. */
	start_server(m, 20);
	check_answers(m, 20);
	/* Every server stopped but one, which still answers. */
	for (unsigned int i = 0; i < N_SERVERS - 1; i++)
		vfpm_server_stop(m->srv[i]);
	check_answers(m, N_SERVERS - 1);
}

struct hammer {
	struct many *m;
	unsigned int first, count;	/* the servers it connects to */
	atomic_bool *done;
	unsigned int seed;
	unsigned int connected;		/* connections that answered */
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;

	while (!atomic_load(h->done)) {
		unsigned int i = h->first + (unsigned int)rand_r(&h->seed) % h->count;
		struct vfpm_client *c = NULL;
		struct vfio_device_info info;
		char path[128];

		sock_path(h->m, i, path, sizeof(path));
		if (vfpm_client_connect(path, &c))
			continue;	/* destroyed: refused, or reset while queued */
		if (vfpm_client_get_info(c, &info) == 0)
			h->connected++;
		vfpm_client_close(c);
	}
	return NULL;
}

/*
 * Clients connect again and again to 40 servers while 32 of them are stopped
 * and destroyed one by one, some started again at once, three rounds: nothing
 * hangs, nothing is left behind (the teardown checks threads and fds), and
 * the others still answer.
 */
static void test_destroy_under_connects(void **state)
{
	struct many *m = *state;
	struct hammer h[N_CLIENT_THREADS];
	pthread_t t[N_CLIENT_THREADS];
	atomic_bool done = false;
	unsigned int total = 0;

	for (unsigned int k = 0; k < N_CLIENT_THREADS; k++) {
		h[k] = (struct hammer){ .m = m, .first = 40, .count = 40, .done = &done,
					.seed = k + 1 };
		assert_int_equal(pthread_create(&t[k], NULL, hammer_thread, &h[k]), 0);
	}
	for (unsigned int round = 0; round < 3; round++) {
		for (unsigned int i = 40; i < 72; i++) {
			usleep(1000);
			if (i % 2)
				vfpm_server_stop(m->srv[i]);
			vfpm_server_destroy(m->srv[i]);
			m->srv[i] = NULL;
			/* Some come back at once: attached while the acceptor is busy. */
			if (round < 2 && i % 4 == 0)
				start_server(m, i);
		}
		for (unsigned int i = 40; i < 72; i++) {
			if (!m->srv[i])
				start_server(m, i);
		}
	}
	for (unsigned int i = 40; i < 72; i++) {
		vfpm_server_destroy(m->srv[i]);
		m->srv[i] = NULL;
	}
	atomic_store(&done, true);
	for (unsigned int k = 0; k < N_CLIENT_THREADS; k++) {
		assert_int_equal(pthread_join(t[k], NULL), 0);
		total += h[k].connected;
	}
	assert_true(total > 0);
	for (unsigned int i = 72; i < 80; i++)
		assert_int_equal(vfpm_server_wait_connections(m->srv[i], 0, T_TIMEOUT_MS), 0);
	check_answers(m, 72);
	check_answers(m, 79);
}

static void *run_loop(void *arg)
{
	return (void *)(intptr_t)vfpm_server_run(arg);
}

/* A server whose loop runs on a thread of the caller's, next to the started ones. */
static void test_run_on_own_thread(void **state)
{
	struct many *m = *state;
	struct vfpm_server *srv;
	char path[128];
	pthread_t t;
	void *ret;

	vfpm_server_destroy(m->srv[5]);
	sock_path(m, 5, path, sizeof(path));
	assert_int_equal(vfpm_server_create(vfpm_pci_device(m->model[5]->pdev), path, NULL, &srv),
			 0);
	m->srv[5] = srv;
	assert_int_equal(pthread_create(&t, NULL, run_loop, srv), 0);
	check_answers(m, 5);
	check_answers(m, 6);
	assert_int_equal(vfpm_server_start(srv), -EBUSY);
	vfpm_server_stop(srv);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_int_equal((intptr_t)ret, 0);
	check_answers(m, 6);
	/* A started server cannot be run as well. */
	assert_int_equal(vfpm_server_run(m->srv[7]), -EBUSY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_idle_servers_share_a_thread, many_setup,
						many_teardown),
		cmocka_unit_test_setup_teardown(test_others_go_on_after_stop_and_destroy,
						many_setup, many_teardown),
		cmocka_unit_test_setup_teardown(test_destroy_under_connects, many_setup,
						many_teardown),
		cmocka_unit_test_setup_teardown(test_run_on_own_thread, many_setup, many_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
