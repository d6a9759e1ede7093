// SPDX-License-Identifier: MIT
/*
 * bench-scale: issue 7, benchmark 5.
 *
 * N memory devices (1 as the baseline, then 1,000 and 10,000), each served by
 * its own vfpm server on its own socket, all in one process, all unopened and
 * therefore SUSPENDED.  Each N runs in a fresh child process so that threads
 * and RSS start from the same point; the child reports through shared memory
 * and exits without tearing down (the kernel reclaims; the parent removes the
 * socket files).
 *
 *  - threads: "Threads:" of /proc/self/status once all are suspended;
 *  - RSS per device: (VmRSS then - VmRSS before the first device) / N;
 *  - RSS per active device, last: every device opened in-process, memory
 *    decode on (its BARs mapped) and held ACTIVE (vfpm_device_pm_get), idle;
 *  - suspend all: every device resumed with a request reference
 *    (vfpm_device_pm_get), then timed from the first vfpm_device_pm_put to
 *    the last device reading SUSPENDED (vfpm_pm_wait_status); 5 repetitions;
 *  - wake one: a client connected over vfio-user to one device in the middle,
 *    low power engaged (LOW_POWER_ENTRY, so it suspends while open); each
 *    cycle waits for SUSPENDED and times a 4-byte REGION_READ of BAR2 (the
 *    resume happens inside the request), 1,000 cycles.
 * The memory device is the model: it is what the other benchmarks serve, and
 * it has no backend thread (the poller's watcher would add a thread each).
 */
#include "bench_common.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <vfpm/client.h>
#include "devices.h"
#include <vfpm/transport.h>

#define MAX_COUNTS 8
#define SUSPEND_REPS 5
#define WAKE_CYCLES 1000

struct scale_result {
	long devices;
	bool served;			/* a vfpm server and socket per device */
	bool skipped;			/* not measured: see fds_needed */
	long fds_per_device, fds_needed, fd_limit;
	double create_s;		/* creating the devices and starting the servers */
	long threads, pm_workers;
	double rss_kib_per_device;
	double active_kib_per_device;	/* open, memory on, ACTIVE */
	long rss_before_kib, rss_after_kib;
	double suspend_all_ms[SUSPEND_REPS];
	struct bench_stats suspend_all, wake;
};

static void wait_suspended(struct vfpm_pm_dev *pm)
{
	int err = vfpm_pm_wait_status(pm, VFPM_PM_SUSPENDED, 30000);

	if (err)
		bench_die("a device did not suspend within 30 s", err);
}

static double suspend_all_ms(struct vfpm_pci_dev **pdev, long n)
{
	uint64_t t0;

	for (long i = 0; i < n; i++) {
		int err = vfpm_device_pm_get(vfpm_pci_device(pdev[i]));

		if (err)
			bench_die("vfpm_device_pm_get", err);
	}
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++)
		vfpm_device_pm_put(vfpm_pci_device(pdev[i]));
	for (long i = 0; i < n; i++)
		wait_suspended(vfpm_pci_pm(pdev[i]));
	return (double)(bench_now_ns() - t0) / 1e6;
}

static void spin_suspended(struct vfpm_pm_dev *pm)
{
	uint64_t began = bench_now_ns();

	while (vfpm_pm_status(pm) != VFPM_PM_SUSPENDED) {
		if (bench_now_ns() - began > 5000000000ull)
			bench_die("the device did not suspend within 5 s", ETIMEDOUT);
		sched_yield();
	}
}

static void wake_one(struct vfpm_pci_dev *pdev, const char *path, struct bench_stats *st)
{
	static double us[WAKE_CYCLES];
	struct vfpm_client *c;
	int err = vfpm_client_connect(path, &c);

	if (err)
		bench_die("vfpm_client_connect", err);
	bench_enable_memory(c);
	err = vfpm_client_low_power_entry(c);
	if (err)
		bench_die("LOW_POWER_ENTRY", err);
	for (int i = 0; i < WAKE_CYCLES; i++) {
		uint32_t value;
		uint64_t t0;
		ssize_t n;

		spin_suspended(vfpm_pci_pm(pdev));
		t0 = bench_now_ns();
		n = vfpm_client_region_read(c, BENCH_TRAPPED_BAR, BENCH_SCRATCH_OFFSET, &value,
					    sizeof(value));
		us[i] = (double)(bench_now_ns() - t0) / 1000.0;
		if (n != (ssize_t)sizeof(value))
			bench_die("vfpm_client_region_read", n < 0 ? (int)n : EIO);
	}
	bench_stats(us, WAKE_CYCLES, st);
	vfpm_client_close(c);
}

/* Devices-only mode: the same cycle through an instance opened in-process. */
static void wake_one_inprocess(struct vfpm_pci_dev *pdev, struct bench_stats *st)
{
	static double us[WAKE_CYCLES];
	struct vfio_device_feature entry = {
		.argsz = sizeof(entry),
		.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
	};
	struct vfpm_ubuf u = { .data = &entry, .in_len = sizeof(entry), .cap = sizeof(entry) };
	uint16_t cmd = PCI_COMMAND_MEMORY;
	struct vfpm_instance *inst;
	int err = vfpm_device_open(vfpm_pci_device(pdev), &inst);

	if (err)
		bench_die("vfpm_device_open", err);
	if (vfpm_instance_write(inst, &cmd, sizeof(cmd),
				VFPM_REGION_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + PCI_COMMAND) !=
	    (ssize_t)sizeof(cmd))
		bench_die("enable memory decode", EIO);
	err = (int)vfpm_instance_ioctl(inst, VFIO_DEVICE_FEATURE, &u, NULL, NULL);
	if (err)
		bench_die("LOW_POWER_ENTRY", err);
	for (int i = 0; i < WAKE_CYCLES; i++) {
		uint32_t value;
		uint64_t t0;
		ssize_t n;

		spin_suspended(vfpm_pci_pm(pdev));
		t0 = bench_now_ns();
		n = vfpm_instance_read(inst, &value, sizeof(value),
				       VFPM_REGION_OFFSET(BENCH_TRAPPED_BAR) + BENCH_SCRATCH_OFFSET);
		us[i] = (double)(bench_now_ns() - t0) / 1000.0;
		if (n != (ssize_t)sizeof(value))
			bench_die("vfpm_instance_read", n < 0 ? (int)n : EIO);
	}
	bench_stats(us, WAKE_CYCLES, st);
	spin_suspended(vfpm_pci_pm(pdev));
	vfpm_instance_close(inst);
}

static long open_fds(void)
{
	long n = 0;
	DIR *d = opendir("/proc/self/fd");

	if (!d)
		bench_die("/proc/self/fd", errno);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void sock_path(char *buf, size_t len, const char *dir, long i)
{
	snprintf(buf, len, "%s/d%05ld.sock", dir, i);
}

/* Every device opened in-process, memory decode on, held ACTIVE: idle but awake. */
static void activate_all(struct vfpm_pci_dev **pdev, long n)
{
	for (long i = 0; i < n; i++) {
		struct vfpm_device *dev = vfpm_pci_device(pdev[i]);
		uint16_t cmd = PCI_COMMAND_MEMORY;
		struct vfpm_instance *inst;
		int err = vfpm_device_open(dev, &inst);

		if (!err)
			err = vfpm_device_pm_get(dev);
		if (err)
			bench_die("open a device and hold it active", err);
		if (vfpm_instance_write(inst, &cmd, sizeof(cmd),
					VFPM_REGION_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) +
						PCI_COMMAND) != (ssize_t)sizeof(cmd))
			bench_die("enable memory decode", EIO);
	}
}

/* In the child: everything for one N, into *r. */
static void run_scale(const char *dir, struct scale_result *r)
{
	long n = r->devices, fds_before;
	struct vfpm_pci_dev **pdev = calloc((size_t)n, sizeof(*pdev));
	char path[128];
	uint64_t t0;

	if (!pdev)
		bench_die("calloc", ENOMEM);
	bench_raise_nofile((unsigned long)r->fds_needed);
	fds_before = open_fds();
	r->rss_before_kib = bench_rss_kib();
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		struct vfpm_server *srv;
		int err = vfpm_memdev_create(false, &pdev[i]);

		sock_path(path, sizeof(path), dir, i);
		if (!err && r->served)
			err = vfpm_server_create(vfpm_pci_device(pdev[i]), path, NULL, &srv);
		if (!err && r->served)
			err = vfpm_server_start(srv);
		if (err)
			bench_die("create a device and its server", err);
	}
	r->fds_per_device = (open_fds() - fds_before + n / 2) / n;
	for (long i = 0; i < n; i++)
		wait_suspended(vfpm_pci_pm(pdev[i]));
	r->create_s = (double)(bench_now_ns() - t0) / 1e9;
	r->threads = bench_threads();
	r->pm_workers = vfpm_pm_worker_threads();
	r->rss_after_kib = bench_rss_kib();
	r->rss_kib_per_device = (double)(r->rss_after_kib - r->rss_before_kib) / (double)n;

	for (int k = 0; k < SUSPEND_REPS; k++)
		r->suspend_all_ms[k] = suspend_all_ms(pdev, n);
	bench_stats(r->suspend_all_ms, SUSPEND_REPS, &r->suspend_all);
	if (r->served) {
		sock_path(path, sizeof(path), dir, n / 2);
		wake_one(pdev[n / 2], path, &r->wake);
	} else {
		wake_one_inprocess(pdev[n / 2], &r->wake);
	}
	/* Last: the instances stay open until the child exits. */
	activate_all(pdev, n);
	r->active_kib_per_device = (double)(bench_rss_kib() - r->rss_before_kib) / (double)n;
}

static void write_report(const char *dir, const struct scale_result *r, int count)
{
	FILE *md = bench_open(dir, "scale.md"), *dat = bench_open(dir, "scale.dat");

	fprintf(md, "## 5. Scale\n\n");
	fprintf(md, "N memory devices (BAR0 64 KiB memfd, BAR2 trapped, MSI-X) in one process "
		"(a fresh child per row), unopened and SUSPENDED; \"served\" rows give each "
		"device its own vfpm server and socket, \"devices only\" rows have the PCI "
		"core alone. Threads from /proc/self/status; RSS per device = VmRSS growth / "
		"N (at N = 1 that is the process's fixed cost: PM worker and server threads, "
		"allocator arenas); active: the same once every device is open in-process "
		"with memory decode on (BARs mapped, nothing written) and held ACTIVE; "
		"marginal = (growth - growth at N = 1) / (N - 1); fds per "
		"device from /proc/self/fd. Suspend all: every device resumed with "
		"a request reference, then from the first put to the last SUSPENDED, %d "
		"repetitions (median [min - max]). Wake one: LOW_POWER_ENTRY engaged on one "
		"device, then a 4-byte read of BAR2 on it while SUSPENDED (resume included), "
		"%d cycles: a REGION_READ over vfio-user when served, vfpm_instance_read "
		"otherwise. N = 1 is the baseline. Issue 15's target: RSS <= 32 KiB per idle "
		"or suspended device (10,000 devices).\n\n",
		SUSPEND_REPS, WAKE_CYCLES);
	fprintf(md, "| devices | mode | threads | PM workers | fds / device | RSS KiB / device | "
		"active KiB / device | marginal KiB / device | create s | suspend all ms | per device us | "
		"wake one p50 us | p99 us |\n");
	fprintf(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (int i = 0; i < count; i++) {
		const struct scale_result *s = &r[i];
		const char *mode = s->served ? "served" : "devices only";
		char marginal[32] = "-";

		/* Beyond the one-device row of the same mode: what one more device costs. */
		for (int j = 0; j < count; j++) {
			const struct scale_result *one = &r[j];

			if (one->devices == 1 && one->served == s->served && !one->skipped &&
			    s->devices > 1)
				snprintf(marginal, sizeof(marginal), "%.1f",
					 ((double)(s->rss_after_kib - s->rss_before_kib) -
					  (double)(one->rss_after_kib - one->rss_before_kib)) /
					 (double)(s->devices - 1));
		}

		if (s->skipped) {
			fprintf(md, "| %ld | %s | not run: needs ~%ld fds, RLIMIT_NOFILE hard "
				"limit is %ld and cannot be raised here (no CAP_SYS_RESOURCE) "
				"|||||||||||\n", s->devices, mode, s->fds_needed, s->fd_limit);
			continue;
		}
		fprintf(md, "| %ld | %s | %ld | %ld | %ld | %.1f | %.1f | %s | %.2f | "
			"%.2f [%.2f - %.2f] | %.2f | %.2f | %.2f |\n", s->devices, mode,
			s->threads, s->pm_workers, s->fds_per_device, s->rss_kib_per_device,
			s->active_kib_per_device, marginal, s->create_s,
			s->suspend_all.p50,
			s->suspend_all.min, s->suspend_all.max,
			s->suspend_all.p50 * 1000.0 / (double)s->devices, s->wake.p50,
			s->wake.p99);
		fprintf(dat, "%ld %d %ld %.2f %.3f %.3f %.3f %.2f\n", s->devices,
			s->served ? 1 : 0, s->threads, s->rss_kib_per_device, s->suspend_all.p50,
			s->wake.p50, s->wake.p99, s->active_kib_per_device);
	}
	fprintf(md, "\n![scale](scale.png)\n\n");
	bench_close(dat, "scale.dat");
	bench_close(md, "scale.md");
}

/* Run one row in a fresh child. */
static void measure_row(struct scale_result *r)
{
	char dir[64];
	int status;
	pid_t pid;

	bench_tmpdir(dir, sizeof(dir));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		bench_die("fork", errno);
	if (pid == 0) {
		run_scale(dir, r);
		fflush(NULL);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid)
		bench_die("waitpid", errno);
	bench_rmdir(dir);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_die("the child measuring one device count failed", ECHILD);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "devices", required_argument, NULL, 'd' },
		{ 0 }
	};
	const char *out = "bench/results";
	char counts_arg[256] = "1,1000,10000";
	long counts[MAX_COUNTS / 2];
	int ncounts = 0, nrows = 0, opt;
	/* A listening socket; a BAR's memfd comes only with a client that asks for it. */
	long served_fds = 1, bare_fds = 1;
	struct scale_result *rows;
	struct rlimit rl;

	bench_prog = "bench-scale";
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'o')
			out = optarg;
		else if (opt == 'd')
			snprintf(counts_arg, sizeof(counts_arg), "%s", optarg);
		else
			return 2;
	}
	for (char *tok = strtok(counts_arg, ","); tok && ncounts < MAX_COUNTS / 2;
	     tok = strtok(NULL, ","))
		counts[ncounts++] = strtol(tok, NULL, 10);
	for (int i = 0; i < ncounts; i++)
		if (counts[i] < 1 || counts[i] > 100000)
			bench_die("--devices: counts from 1 to 100000", EINVAL);
	if (getrlimit(RLIMIT_NOFILE, &rl))
		bench_die("getrlimit", errno);

	rows = mmap(NULL, sizeof(*rows) * MAX_COUNTS, PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rows == MAP_FAILED)
		bench_die("mmap", errno);
	for (int i = 0; i < ncounts; i++) {
		for (int served = 1; served >= 0; served--) {
			struct scale_result *r = &rows[nrows++];
			long per = served ? served_fds : bare_fds;

			*r = (struct scale_result){ .devices = counts[i], .served = served,
						    .fd_limit = (long)rl.rlim_max };
			/* Slack for stdio, the PM core, a client connection. */
			r->fds_needed = counts[i] * per + 64;
			if ((rlim_t)r->fds_needed > rl.rlim_max && geteuid() != 0) {
				r->skipped = true;
				continue;
			}
			if ((rlim_t)r->fds_needed > rl.rlim_max) {
				/* Root may raise the hard limit only with CAP_SYS_RESOURCE. */
				struct rlimit want = { r->fds_needed, r->fds_needed };

				if (prlimit(0, RLIMIT_NOFILE, &want, NULL)) {
					r->skipped = true;
					continue;
				}
				if (setrlimit(RLIMIT_NOFILE, &rl))
					bench_die("restore RLIMIT_NOFILE", errno);
			}
			measure_row(r);
			/*
			 * What the smaller counts measured sizes the next ones (not
			 * N = 1, whose row carries the process's own fds).
			 */
			if (r->devices > 1 && !r->skipped && r->fds_per_device > per) {
				if (served)
					served_fds = r->fds_per_device;
				else
					bare_fds = r->fds_per_device;
			}
		}
	}
	write_report(out, rows, nrows);
	munmap(rows, sizeof(*rows) * MAX_COUNTS);
	return 0;
}
