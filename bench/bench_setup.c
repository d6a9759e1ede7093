// SPDX-License-Identifier: MIT
/*
 * bench-setup: how long a client takes to get a working device (issue 15's
 * "connection setup p50 <= 1.2x a raw accept + VERSION + reply loop").
 *
 *  - vfpm: vfpm_client_connect (connect, VERSION, and whatever the client
 *    library sets up with it) then VFIO_USER_DEVICE_GET_INFO, against an
 *    in-process server of a memory device; the close is not timed.
 *  - raw baseline: connect to an AF_UNIX echo server that accepts and serves
 *    each connection on a thread (bench_echo), then two round trips of
 *    VERSION-sized messages: what the vfpm exchange costs at the least.
 *
 * The two alternate within each repetition, their order reversed every
 * repetition; every setup is timed with CLOCK_MONOTONIC.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

#include <vfpm/client.h>
#include <vfpm/pci.h>
#include <vfpm/transport.h>

#include "bench_common.h"
#include "devices.h"

/* A VERSION request with its JSON capabilities, and its reply, at the most. */
#define RAW_MSG_SIZE 160u

enum variant { V_RAW, V_VFPM, V_COUNT };

static double setup_raw(const char *path)
{
	uint64_t t0 = bench_now_ns();
	int sock = bench_unix_connect(path);
	double us;

	bench_raw_round_trip(sock, RAW_MSG_SIZE, RAW_MSG_SIZE);
	bench_raw_round_trip(sock, RAW_MSG_SIZE, RAW_MSG_SIZE);
	us = (double)(bench_now_ns() - t0) / 1000.0;
	close(sock);
	return us;
}

static double setup_vfpm(const char *path)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct vfpm_client *c;
	uint64_t t0 = bench_now_ns();
	double us;
	int err = vfpm_client_connect(path, &c);

	if (!err)
		err = vfpm_client_get_info(c, &info);
	if (err)
		bench_die("connect + GET_INFO", err);
	us = (double)(bench_now_ns() - t0) / 1000.0;
	vfpm_client_close(c);
	return us;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "reps", required_argument, NULL, 'r' },
		{ "setups", required_argument, NULL, 'n' },
		{ 0 }
	};
	const char *out = "bench/results";
	int reps = 11, opt;
	size_t setups = 200, total;
	char dir[64], path[V_COUNT][128];
	struct vfpm_pci_dev *pdev;
	struct vfpm_server *srv;
	struct bench_echo *echo;
	struct bench_stats st[V_COUNT];
	double *lat[V_COUNT], ratio;
	FILE *md;
	int err;

	bench_prog = "bench-setup";
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'o')
			out = optarg;
		else if (opt == 'r')
			reps = atoi(optarg);
		else if (opt == 'n')
			setups = strtoul(optarg, NULL, 10);
		else
			return 2;
	}
	if (reps < 1 || setups < 10)
		bench_die("--reps >= 1 and --setups >= 10", EINVAL);
	total = (size_t)reps * setups;

	bench_tmpdir(dir, sizeof(dir));
	snprintf(path[V_RAW], sizeof(path[V_RAW]), "%s/raw.sock", dir);
	snprintf(path[V_VFPM], sizeof(path[V_VFPM]), "%s/vfpm.sock", dir);
	echo = bench_echo_start(path[V_RAW], RAW_MSG_SIZE, RAW_MSG_SIZE);
	err = vfpm_memdev_create(false, &pdev);
	if (!err)
		err = vfpm_server_create(vfpm_pci_device(pdev), path[V_VFPM], NULL, &srv);
	if (!err)
		err = vfpm_server_start(srv);
	if (err)
		bench_die("vfpm server", err);
	for (int v = 0; v < V_COUNT; v++) {
		lat[v] = calloc(total, sizeof(double));
		if (!lat[v])
			bench_die("calloc", ENOMEM);
	}
	/* Warm-up, not measured: threads, caches, the device's first open. */
	for (int i = 0; i < 20; i++) {
		setup_raw(path[V_RAW]);
		setup_vfpm(path[V_VFPM]);
	}
	for (int rep = 0; rep < reps; rep++) {
		for (int k = 0; k < V_COUNT; k++) {
			int v = rep % 2 ? V_COUNT - 1 - k : k;

			for (size_t i = 0; i < setups; i++)
				lat[v][(size_t)rep * setups + i] =
					v == V_RAW ? setup_raw(path[V_RAW]) : setup_vfpm(path[V_VFPM]);
		}
	}
	for (int v = 0; v < V_COUNT; v++)
		bench_stats(lat[v], total, &st[v]);
	ratio = st[V_VFPM].p50 / st[V_RAW].p50;

	md = bench_open(out, "setup.md");
	fprintf(md, "## 8. Connection setup\n\n");
	fprintf(md, "From connect to a working device: vfpm_client_connect (connect, VERSION and "
		"what the client library sets up with it) then GET_INFO, against an in-process "
		"server of the memory device (the close is not timed); the raw baseline connects "
		"to an AF_UNIX echo server that serves each connection on a thread of its own and "
		"makes two round trips of %u-byte messages (a VERSION exchange's size). %d "
		"repetitions x %zu setups per variant, alternating, order reversed every "
		"repetition. Issue 15's target: p50 <= 1.2x the raw loop.\n\n", RAW_MSG_SIZE,
		reps, setups);
	fprintf(md, "| variant | p50 us | p99 us | min | max |\n|---|---:|---:|---:|---:|\n");
	fprintf(md, "| raw: connect + 2 round trips | %.2f | %.2f | %.2f | %.2f |\n",
		st[V_RAW].p50, st[V_RAW].p99, st[V_RAW].min, st[V_RAW].max);
	fprintf(md, "| vfpm: connect + VERSION + GET_INFO | %.2f | %.2f | %.2f | %.2f |\n\n",
		st[V_VFPM].p50, st[V_VFPM].p99, st[V_VFPM].min, st[V_VFPM].max);
	fprintf(md, "| target | figure | target | verdict |\n|---|---:|---:|---|\n");
	fprintf(md, "| vfpm / raw connection setup, p50 | %.2fx | <= 1.2x | %s |\n\n", ratio,
		bench_verdict(ratio <= 1.2));
	bench_close(md, "setup.md");

	vfpm_server_destroy(srv);
	vfpm_memdev_destroy(pdev);
	bench_echo_stop(echo);
	bench_rmdir(dir);
	for (int v = 0; v < V_COUNT; v++)
		free(lat[v]);
	return 0;
}
