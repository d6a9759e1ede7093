// SPDX-License-Identifier: MIT
/*
 * bench-concurrency: issue 7, benchmark 4.
 *
 * 1, 2, 4, 8 and 16 client threads, each with its own connection, doing
 * back-to-back 4-byte REGION_READs of the memory device's trapped BAR2:
 *  - "one device": every connection to the same device (one server socket;
 *    the server serves each connection on a thread of its own);
 *  - "separate devices": connection i to device i (one server each);
 *  - baseline: the raw AF_UNIX ping-pong of the same sizes, one echo thread
 *    per connection, i.e. what the machine does with no vfpm at all.
 * A run lasts a fixed time; its figure is the requests completed by all
 * threads over the wall time from the common start to the stop.  Runs of
 * the three modes interleave (order reversed every repetition) and the
 * median of the repetitions is reported with its spread.  A SCHED_IDLE
 * spinner keeps every CPU out of idle for the whole measurement, in every
 * mode alike (bench_spinners_start says why): with few clients the figures
 * otherwise depend on whether a CPU halted between two messages.
 */
#include "bench_common.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vfpm/client.h>
#include "devices.h"
#include <vfpm/transport.h>

#define MAX_CLIENTS 16
#define NLEVELS 5
static const int levels[NLEVELS] = { 1, 2, 4, 8, 16 };

enum mode { M_RAW, M_ONE, M_SEPARATE, M_COUNT };
static const char *const mode_name[M_COUNT] = {
	[M_RAW] = "raw AF_UNIX ping-pong (baseline)",
	[M_ONE] = "vfpm, one memory device",
	[M_SEPARATE] = "vfpm, separate memory devices",
};

struct worker {
	pthread_t thread;
	int raw_sock;
	struct vfpm_client *client;
	pthread_barrier_t *start;
	atomic_bool *stop;
	unsigned long done;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned long done = 0;
	int ret = pthread_barrier_wait(w->start);

	if (ret != 0 && ret != PTHREAD_BARRIER_SERIAL_THREAD)
		bench_die("pthread_barrier_wait", ret);
	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		if (w->client) {
			uint32_t value;
			ssize_t n = vfpm_client_region_read(w->client, BENCH_TRAPPED_BAR,
							    BENCH_SCRATCH_OFFSET, &value,
							    sizeof(value));

			if (n != (ssize_t)sizeof(value))
				bench_die("vfpm_client_region_read", n < 0 ? (int)n : EIO);
		} else {
			bench_raw_round_trip(w->raw_sock, BENCH_READ_REQ_SIZE,
					     BENCH_READ_REPLY_SIZE);
		}
		done++;
	}
	w->done = done;
	return NULL;
}

struct setup {
	char dir[64];
	char raw_path[128];
	char dev_path[MAX_CLIENTS][128];
	struct bench_echo *echo;
	struct vfpm_pci_dev *pdev[MAX_CLIENTS];
	struct vfpm_server *srv[MAX_CLIENTS];
};

static struct vfpm_client *connect_client(const char *path)
{
	struct vfpm_client *c;
	int err = vfpm_client_connect(path, &c);

	if (err)
		bench_die("vfpm_client_connect", err);
	bench_enable_memory(c);
	return c;
}

/* One timed run: returns requests/s over all clients. */
static double run_once(struct setup *s, enum mode m, int clients, unsigned int run_ms)
{
	struct worker w[MAX_CLIENTS];
	pthread_barrier_t start;
	atomic_bool stop = false;
	unsigned long total = 0;
	uint64_t began, ended;
	int ret;

	ret = pthread_barrier_init(&start, NULL, (unsigned int)clients + 1);
	if (ret)
		bench_die("pthread_barrier_init", ret);
	for (int i = 0; i < clients; i++) {
		w[i] = (struct worker){ .raw_sock = -1, .start = &start, .stop = &stop };
		if (m == M_RAW)
			w[i].raw_sock = bench_unix_connect(s->raw_path);
		else
			w[i].client = connect_client(s->dev_path[m == M_ONE ? 0 : i]);
		ret = pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
		if (ret)
			bench_die("pthread_create", ret);
	}
	began = bench_run_window(&start, run_ms, &stop);
	for (int i = 0; i < clients; i++) {
		pthread_join(w[i].thread, NULL);
		total += w[i].done;
	}
	ended = bench_now_ns();
	for (int i = 0; i < clients; i++) {
		if (w[i].client)
			vfpm_client_close(w[i].client);
		else
			close(w[i].raw_sock);
	}
	pthread_barrier_destroy(&start);
	return (double)total * 1e9 / (double)(ended - began);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "reps", required_argument, NULL, 'r' },
		{ "run-ms", required_argument, NULL, 't' },
		{ 0 }
	};
	const char *out = "bench/results";
	int reps = 11, opt;
	unsigned int run_ms = 150;
	struct setup s = { 0 };
	double *fig[M_COUNT][NLEVELS];
	struct bench_stats st[M_COUNT][NLEVELS];
	struct bench_spinners *spin;
	FILE *md, *dat;

	bench_prog = "bench-concurrency";
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'o')
			out = optarg;
		else if (opt == 'r')
			reps = atoi(optarg);
		else if (opt == 't')
			run_ms = (unsigned int)atoi(optarg);
		else
			return 2;
	}
	if (reps < 1 || run_ms < 10)
		bench_die("--reps >= 1 and --run-ms >= 10", EINVAL);

	bench_tmpdir(s.dir, sizeof(s.dir));
	snprintf(s.raw_path, sizeof(s.raw_path), "%s/raw.sock", s.dir);
	s.echo = bench_echo_start(s.raw_path, BENCH_READ_REQ_SIZE, BENCH_READ_REPLY_SIZE);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		int err;

		snprintf(s.dev_path[i], sizeof(s.dev_path[i]), "%s/mem%02d.sock", s.dir, i);
		err = vfpm_memdev_create(false, &s.pdev[i]);
		if (!err)
			err = vfpm_server_create(vfpm_pci_device(s.pdev[i]), s.dev_path[i], NULL,
						 &s.srv[i]);
		if (!err)
			err = vfpm_server_start(s.srv[i]);
		if (err)
			bench_die("memory device server", err);
	}
	for (int m = 0; m < M_COUNT; m++) {
		for (int l = 0; l < NLEVELS; l++) {
			fig[m][l] = calloc((size_t)reps, sizeof(double));
			if (!fig[m][l])
				bench_die("calloc", ENOMEM);
		}
	}
	spin = bench_spinners_start();
	/* Warm-up: connections, threads and caches, not measured. */
	for (int m = 0; m < M_COUNT; m++)
		run_once(&s, (enum mode)m, 2, 50);

	for (int rep = 0; rep < reps; rep++) {
		for (int l = 0; l < NLEVELS; l++) {
			for (int k = 0; k < M_COUNT; k++) {
				int m = rep % 2 ? M_COUNT - 1 - k : k;

				fig[m][l][rep] = run_once(&s, (enum mode)m, levels[l], run_ms);
			}
		}
	}
	bench_spinners_stop(spin);
	for (int m = 0; m < M_COUNT; m++)
		for (int l = 0; l < NLEVELS; l++)
			bench_stats(fig[m][l], (size_t)reps, &st[m][l]);

	md = bench_open(out, "concurrency.md");
	dat = bench_open(out, "concurrency.dat");
	fprintf(md, "## 4. Concurrency\n\n");
	fprintf(md, "N client threads, one connection each, back-to-back 4-byte REGION_READs "
		"of BAR2 (memory device, in-process server; every connection is served by a "
		"server thread of its own). %d repetitions x %u ms per cell, modes "
		"interleaved; requests/s summed over the clients, median [min - max]. The "
		"baseline is the raw AF_UNIX ping-pong with N connections and N echo "
		"threads. The threads spread over every CPU, each of which a SCHED_IDLE "
		"thread keeps out of idle in every mode alike (a halted CPU's wake costs "
		"tens of us on a VM). No target here (issue 15's are in section 1-2, "
		"measured on one CPU); the last columns are vfpm / raw.\n\n",
		reps, run_ms);
	fprintf(md, "| clients | %s | %s | %s | one / raw | separate / raw |\n",
		mode_name[M_RAW], mode_name[M_ONE], mode_name[M_SEPARATE]);
	fprintf(md, "|---:|---:|---:|---:|---:|---:|\n");
	for (int l = 0; l < NLEVELS; l++) {
		fprintf(md, "| %d", levels[l]);
		for (int m = 0; m < M_COUNT; m++)
			fprintf(md, " | %.0f [%.0f - %.0f]", st[m][l].p50, st[m][l].min,
				st[m][l].max);
		fprintf(md, " | %.2f | %.2f |\n", st[M_ONE][l].p50 / st[M_RAW][l].p50,
			st[M_SEPARATE][l].p50 / st[M_RAW][l].p50);
		fprintf(dat, "%d %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f\n", levels[l],
			st[M_RAW][l].p50, st[M_RAW][l].min, st[M_RAW][l].max,
			st[M_ONE][l].p50, st[M_ONE][l].min, st[M_ONE][l].max,
			st[M_SEPARATE][l].p50, st[M_SEPARATE][l].min, st[M_SEPARATE][l].max);
	}
	fprintf(md, "\n![concurrency](concurrency.png)\n\n");
	bench_close(dat, "concurrency.dat");
	bench_close(md, "concurrency.md");

	for (int i = 0; i < MAX_CLIENTS; i++) {
		vfpm_server_destroy(s.srv[i]);
		vfpm_memdev_destroy(s.pdev[i]);
	}
	bench_echo_stop(s.echo);
	bench_rmdir(s.dir);
	for (int m = 0; m < M_COUNT; m++)
		for (int l = 0; l < NLEVELS; l++)
			free(fig[m][l]);
	return 0;
}
