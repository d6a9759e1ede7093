// SPDX-License-Identifier: MIT
/*
 * bench-rtt: issue 7, benchmarks 1 and 2.
 *
 * 1. Request round trip: a 4-byte REGION_READ of the memory device's trapped
 *    BAR2, through the client library over a real vfpm server socket, against
 *    a raw AF_UNIX ping-pong of the same message sizes (a 32-byte request and
 *    a 36-byte reply, as vfio-user's REGION_READ) done by the same harness.
 * 2. Cost of the PM wrapper: the same load on the memory device (runtime PM)
 *    and on the opt-out device (a runtime PM reference held while open: no
 *    transition can happen).  While a client has it open the memory device is
 *    ACTIVE too (the open reference), so what differs is only what the PM
 *    core does per request.
 *
 * The three variants run one after another inside each repetition, in an
 * order that reverses every repetition (raw, memory, optout, then optout,
 * memory, raw, ...) so that drift of the machine falls on all of them alike;
 * the ratios are taken per repetition (paired) and their median reported.
 * Every request is timed with CLOCK_MONOTONIC; a repetition's throughput is
 * its request count over its wall time.
 */
#include "bench_common.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vfpm/client.h>
#include "devices.h"
#include <vfpm/transport.h>

#define TARGET_VS_RAW 0.85
#define TARGET_PM_WRAPPER 0.98
#define WARMUP_REQUESTS 2000

enum variant { V_RAW, V_MEMORY, V_OPTOUT, V_COUNT };

static const char *const variant_name[V_COUNT] = {
	[V_RAW] = "raw AF_UNIX ping-pong (32 B / 36 B)",
	[V_MEMORY] = "vfpm REGION_READ 4 B, memory device (runtime PM)",
	[V_OPTOUT] = "vfpm REGION_READ 4 B, opt-out device",
};

static const char *const variant_label[V_COUNT] = {
	[V_RAW] = "raw", [V_MEMORY] = "memory", [V_OPTOUT] = "optout",
};

struct target_conn {
	int raw_sock;			/* V_RAW */
	struct vfpm_client *client;	/* the others */
};

static void one_request(enum variant v, struct target_conn *t)
{
	uint32_t value;
	ssize_t n;

	if (v == V_RAW) {
		bench_raw_round_trip(t->raw_sock, BENCH_READ_REQ_SIZE, BENCH_READ_REPLY_SIZE);
		return;
	}
	n = vfpm_client_region_read(t->client, BENCH_TRAPPED_BAR, BENCH_SCRATCH_OFFSET,
				    &value, sizeof(value));
	if (n != (ssize_t)sizeof(value))
		bench_die("vfpm_client_region_read", n < 0 ? (int)n : EIO);
}

/* One repetition: requests timed one by one into lat_us; returns requests/s. */
static double run_rep(enum variant v, struct target_conn *t, size_t requests, double *lat_us)
{
	uint64_t began = bench_now_ns(), prev = began;

	for (size_t i = 0; i < requests; i++) {
		uint64_t now;

		one_request(v, t);
		now = bench_now_ns();
		lat_us[i] = (double)(now - prev) / 1000.0;
		prev = now;
	}
	return (double)requests * 1e9 / (double)(prev - began);
}

struct server {
	struct vfpm_pci_dev *pdev;
	struct vfpm_server *srv;
};

static void serve_memdev(bool optout, const char *path, struct server *s)
{
	int err = vfpm_memdev_create(optout, &s->pdev);

	if (err)
		bench_die("vfpm_memdev_create", err);
	err = vfpm_server_create(vfpm_pci_device(s->pdev), path, NULL, &s->srv);
	if (!err)
		err = vfpm_server_start(s->srv);
	if (err)
		bench_die("vfpm server", err);
}

static void unserve(struct server *s)
{
	vfpm_server_destroy(s->srv);
	vfpm_memdev_destroy(s->pdev);
}

struct results {
	double *tput[V_COUNT];		/* per repetition */
	double *lat[V_COUNT];		/* every request of every repetition */
	double *ratio_raw, *ratio_pm;	/* per repetition, paired */
	struct bench_stats lat_stats[V_COUNT], tput_stats[V_COUNT];
	struct bench_stats raw_stats, pm_stats;
};

static void write_report(const char *dir, struct results *r, int reps, size_t requests)
{
	FILE *md = bench_open(dir, "rtt.md"), *dat = bench_open(dir, "rtt.dat");
	double vs_raw = r->raw_stats.p50, pm = r->pm_stats.p50;

	fprintf(md, "## 1-2. Request round trip and the cost of the PM wrapper\n\n");
	fprintf(md, "One client thread, one connection, a 4-byte REGION_READ of BAR2 "
		"(trapped) at offset 0x%x through the client library and an in-process vfpm "
		"server on an AF_UNIX socket; the raw baseline is the same harness doing "
		"write(32 B) / read(36 B) against an echo thread. %d repetitions x %zu "
		"requests per variant, interleaved (order reversed every repetition). "
		"Latency: every request timed with CLOCK_MONOTONIC, percentiles over all "
		"%zu requests; throughput: median of the repetitions [min - max].\n\n",
		BENCH_SCRATCH_OFFSET, reps, requests, (size_t)reps * requests);
	fprintf(md, "| variant | p50 us | p99 us | requests/s median | min | max |\n");
	fprintf(md, "|---|---:|---:|---:|---:|---:|\n");
	for (int v = 0; v < V_COUNT; v++) {
		fprintf(md, "| %s | %.2f | %.2f | %.0f | %.0f | %.0f |\n", variant_name[v],
			r->lat_stats[v].p50, r->lat_stats[v].p99, r->tput_stats[v].p50,
			r->tput_stats[v].min, r->tput_stats[v].max);
		fprintf(dat, "%s %.0f %.0f %.0f %.3f %.3f\n", variant_label[v],
			r->tput_stats[v].p50, r->tput_stats[v].min, r->tput_stats[v].max,
			r->lat_stats[v].p50, r->lat_stats[v].p99);
	}
	fprintf(md, "\n| target | figure (median of paired ratios [min - max]) | target | verdict |\n");
	fprintf(md, "|---|---:|---:|---|\n");
	fprintf(md, "| 1. vfpm (memory) / raw ping-pong throughput | %.3f [%.3f - %.3f] | "
		">= %.2f | %s |\n", vs_raw, r->raw_stats.min, r->raw_stats.max, TARGET_VS_RAW,
		bench_verdict(vs_raw >= TARGET_VS_RAW));
	fprintf(md, "| 2. memory / opt-out throughput (PM wrapper) | %.3f [%.3f - %.3f] | "
		">= %.2f | %s |\n\n", pm, r->pm_stats.min, r->pm_stats.max, TARGET_PM_WRAPPER,
		bench_verdict(pm >= TARGET_PM_WRAPPER));
	fprintf(md, "Cross-check, less sensitive to the machine's noise than throughput: the "
		"same ratios from the p50 latencies (1 / p50): vfpm / raw %.3f, memory / "
		"opt-out %.3f.\n\n", r->lat_stats[V_RAW].p50 / r->lat_stats[V_MEMORY].p50,
		r->lat_stats[V_OPTOUT].p50 / r->lat_stats[V_MEMORY].p50);
	fprintf(md, "![round trip](rtt.png)\n\n");
	bench_close(dat, "rtt.dat");
	bench_close(md, "rtt.md");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "reps", required_argument, NULL, 'r' },
		{ "requests", required_argument, NULL, 'n' },
		{ 0 }
	};
	const char *out = "bench/results";
	int reps = 31, opt;
	size_t requests = 5000;
	static double warmup_lat[WARMUP_REQUESTS];
	char dir[64], path[V_COUNT][128];
	struct server mem, optout;
	struct bench_echo *echo;
	struct target_conn conn[V_COUNT] = { { .raw_sock = -1 } };
	struct results r = { 0 };

	bench_prog = "bench-rtt";
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'o')
			out = optarg;
		else if (opt == 'r')
			reps = atoi(optarg);
		else if (opt == 'n')
			requests = strtoul(optarg, NULL, 10);
		else
			return 2;
	}
	if (reps < 1 || requests < 100)
		bench_die("--reps >= 1 and --requests >= 100", EINVAL);

	bench_tmpdir(dir, sizeof(dir));
	for (int v = 0; v < V_COUNT; v++)
		snprintf(path[v], sizeof(path[v]), "%s/%s.sock", dir, variant_label[v]);
	echo = bench_echo_start(path[V_RAW], BENCH_READ_REQ_SIZE, BENCH_READ_REPLY_SIZE);
	serve_memdev(false, path[V_MEMORY], &mem);
	serve_memdev(true, path[V_OPTOUT], &optout);
	conn[V_RAW].raw_sock = bench_unix_connect(path[V_RAW]);
	for (int v = V_MEMORY; v < V_COUNT; v++) {
		int err = vfpm_client_connect(path[v], &conn[v].client);

		if (err)
			bench_die("vfpm_client_connect", err);
		bench_enable_memory(conn[v].client);
	}

	for (int v = 0; v < V_COUNT; v++) {
		r.tput[v] = calloc((size_t)reps, sizeof(double));
		r.lat[v] = calloc((size_t)reps * requests, sizeof(double));
		if (!r.tput[v] || !r.lat[v])
			bench_die("calloc", ENOMEM);
	}
	/* Warm-up: connections, caches and the server threads, not measured. */
	for (int v = 0; v < V_COUNT; v++)
		run_rep((enum variant)v, &conn[v], WARMUP_REQUESTS, warmup_lat);
	r.ratio_raw = calloc((size_t)reps, sizeof(double));
	r.ratio_pm = calloc((size_t)reps, sizeof(double));
	if (!r.ratio_raw || !r.ratio_pm)
		bench_die("calloc", ENOMEM);
	for (int rep = 0; rep < reps; rep++) {
		for (int k = 0; k < V_COUNT; k++) {
			int v = rep % 2 ? V_COUNT - 1 - k : k;

			r.tput[v][rep] = run_rep((enum variant)v, &conn[v], requests,
						 r.lat[v] + (size_t)rep * requests);
		}
		r.ratio_raw[rep] = r.tput[V_MEMORY][rep] / r.tput[V_RAW][rep];
		r.ratio_pm[rep] = r.tput[V_MEMORY][rep] / r.tput[V_OPTOUT][rep];
	}
	for (int v = 0; v < V_COUNT; v++) {
		bench_stats(r.tput[v], (size_t)reps, &r.tput_stats[v]);
		bench_stats(r.lat[v], (size_t)reps * requests, &r.lat_stats[v]);
	}
	bench_stats(r.ratio_raw, (size_t)reps, &r.raw_stats);
	bench_stats(r.ratio_pm, (size_t)reps, &r.pm_stats);
	write_report(out, &r, reps, requests);

	close(conn[V_RAW].raw_sock);
	for (int v = V_MEMORY; v < V_COUNT; v++)
		vfpm_client_close(conn[v].client);
	unserve(&mem);
	unserve(&optout);
	bench_echo_stop(echo);
	bench_rmdir(dir);
	for (int v = 0; v < V_COUNT; v++) {
		free(r.tput[v]);
		free(r.lat[v]);
	}
	free(r.ratio_raw);
	free(r.ratio_pm);
	return 0;
}
