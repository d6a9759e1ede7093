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
 *
 * Then issue 15's scale targets (--connected N,K; 10,000 and 1,000): N devices
 * served by one process, K of them connected from a second process with the
 * client library (so that the client ends count nowhere), the server's own
 * threads, fds (by kind, from the /proc/self/fd links), RSS, and its threads'
 * CPU time and wakeups (getrusage, schedstat) over an idle window once every
 * device is SUSPENDED.  The fd hard limit decides N: what does not fit is reported and
 * the largest N that does is measured.
 */
#include "bench_common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
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
		"otherwise. N = 1 is the baseline. Issue 15's targets are judged in 5b, with "
		"connections.\n\n",
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

/* ---- 10,000 served, 1,000 connected: the server's own figures ---- */

struct connected_result {
	long devices, clients;
	bool skipped;
	long fd_limit, fds_needed;
	double create_s, connect_s;
	long threads_before, threads_idle, threads_connected, threads_lowpower;
	long threads_suspended;
	long active_connected;		/* devices not SUSPENDED once the clients are in */
	struct bench_fd_census fds_before, fds_devices, fds_connected;
	long rss_before_kib, rss_devices_kib, rss_connected_kib, rss_suspended_kib;
	double idle_seconds, idle_cpu_pct, idle_wakeups_per_s;
	double idle_sched_wakeups_per_s;	/* schedstat, threads alive at the end */
	int idle_threads_ended;
	char thread_names[256];
};

static void pipe_send(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		bench_die("pipe write", errno);
}

static void pipe_expect(int fd, char c)
{
	char got;

	if (read(fd, &got, 1) != 1 || got != c)
		bench_die("the other process of the connected row failed", ECHILD);
}

/* The device client k of K connects to: spread over the N served. */
static long connected_device(long k, long clients, long devices)
{
	return k * (devices / clients);
}

/*
 * The client process: K connections, each as a guest driver starts (GET_INFO,
 * BAR0's region info with its fd, memory decode on), then low power entered
 * on each when the server asks; holds them until told to quit.
 */
static void connected_clients(const char *dir, long n, long k, int from_srv, int to_srv)
{
	struct vfpm_client **c = calloc((size_t)k, sizeof(*c));
	char path[128];

	if (!c)
		bench_die("calloc", ENOMEM);
	bench_raise_nofile((unsigned long)(3 * k + 64));
	for (long i = 0; i < k; i++) {
		struct vfio_device_info info = { .argsz = sizeof(info) };
		struct vfio_region_info bar0 = { .argsz = sizeof(bar0) };
		int fd = -1, err;

		sock_path(path, sizeof(path), dir, connected_device(i, k, n));
		err = vfpm_client_connect(path, &c[i]);
		if (!err)
			err = vfpm_client_get_info(c[i], &info);
		if (!err)
			err = vfpm_client_get_region_info(c[i], VFIO_PCI_BAR0_REGION_INDEX, &bar0,
							  sizeof(bar0), &fd);
		if (err)
			bench_die("connect, GET_INFO, BAR0 region info", err);
		if (fd >= 0)
			close(fd);	/* the server's end is what is measured */
		bench_enable_memory(c[i]);
	}
	pipe_send(to_srv, 'c');
	pipe_expect(from_srv, 'l');
	for (long i = 0; i < k; i++) {
		int err = vfpm_client_low_power_entry(c[i]);

		if (err)
			bench_die("LOW_POWER_ENTRY", err);
	}
	pipe_send(to_srv, 'l');
	pipe_expect(from_srv, 'q');
	_exit(0);
}

/* The server process: N devices served; its own figures at each step. */
static void connected_server(const char *dir, struct connected_result *r, int ready,
			     int from_cli, int to_cli)
{
	long n = r->devices;
	struct vfpm_pci_dev **pdev = calloc((size_t)n, sizeof(*pdev));
	uint64_t cpu0, cpu1, sw0, sw1;
	static struct bench_sched a, b;
	uint64_t run_ns, slices;
	char path[128];
	uint64_t t0;

	if (!pdev)
		bench_die("calloc", ENOMEM);
	bench_raise_nofile((unsigned long)r->fds_needed);
	bench_fd_census(&r->fds_before);
	r->threads_before = bench_threads();
	r->rss_before_kib = bench_rss_kib();
	t0 = bench_now_ns();
	for (long i = 0; i < n; i++) {
		struct vfpm_server *srv;
		int err = vfpm_memdev_create(false, &pdev[i]);

		sock_path(path, sizeof(path), dir, i);
		if (!err)
			err = vfpm_server_create(vfpm_pci_device(pdev[i]), path, NULL, &srv);
		if (!err)
			err = vfpm_server_start(srv);
		if (err)
			bench_die("create a device and its server", err);
	}
	for (long i = 0; i < n; i++)
		wait_suspended(vfpm_pci_pm(pdev[i]));
	r->create_s = (double)(bench_now_ns() - t0) / 1e9;
	r->threads_idle = bench_threads();
	bench_fd_census(&r->fds_devices);
	r->rss_devices_kib = bench_rss_kib();

	t0 = bench_now_ns();
	pipe_send(ready, 'r');
	pipe_expect(from_cli, 'c');
	r->connect_s = (double)(bench_now_ns() - t0) / 1e9;
	for (long i = 0; i < n; i++)
		r->active_connected += vfpm_pm_status(vfpm_pci_pm(pdev[i])) != VFPM_PM_SUSPENDED;
	r->threads_connected = bench_threads();
	bench_fd_census(&r->fds_connected);
	r->rss_connected_kib = bench_rss_kib();

	pipe_send(to_cli, 'l');
	pipe_expect(from_cli, 'l');
	r->threads_lowpower = bench_threads();
	for (long i = 0; i < n; i++)
		wait_suspended(vfpm_pci_pm(pdev[i]));
	r->rss_suspended_kib = bench_rss_kib();
	/* Idle: every device SUSPENDED, the connected ones in low power. */
	bench_sleep_ms(500);
	t0 = bench_now_ns();
	bench_rusage_others(&cpu0, &sw0);
	bench_sample_threads(0, &a, NULL, 0);
	bench_sleep_ms((unsigned int)(r->idle_seconds * 1000));
	bench_sample_threads(0, &b, r->thread_names, sizeof(r->thread_names));
	bench_rusage_others(&cpu1, &sw1);
	r->idle_seconds = (double)(bench_now_ns() - t0) / 1e9;
	/*
	 * getrusage counts the threads that ended in the window too (a pool
	 * thread the watchdog added and that left idle); schedstat only says
	 * how many ended.
	 */
	bench_sched_delta(&a, &b, &run_ns, &slices, &r->idle_threads_ended);
	r->idle_sched_wakeups_per_s = (double)slices / r->idle_seconds;
	r->idle_cpu_pct = 100.0 * (double)(cpu1 - cpu0) / 1e6 / r->idle_seconds;
	r->idle_wakeups_per_s = (double)(sw1 - sw0) / r->idle_seconds;
	r->threads_suspended = bench_threads();
	pipe_send(to_cli, 'q');
	fflush(NULL);
	_exit(0);
}

static void measure_connected(struct connected_result *r)
{
	int ready[2], s2c[2], c2s[2], status;
	pid_t srv, cli;
	char dir[64], byte;

	bench_tmpdir(dir, sizeof(dir));
	if (pipe2(ready, O_CLOEXEC) || pipe2(s2c, O_CLOEXEC) || pipe2(c2s, O_CLOEXEC))
		bench_die("pipe", errno);
	fflush(NULL);
	srv = fork();
	if (srv < 0)
		bench_die("fork", errno);
	if (srv == 0) {
		close(ready[0]);
		close(s2c[0]);
		close(c2s[1]);
		connected_server(dir, r, ready[1], c2s[0], s2c[1]);
	}
	close(ready[1]);
	if (read(ready[0], &byte, 1) != 1)
		bench_die("the server of the connected row failed", ECHILD);
	/* Forked from this process, which has no threads: the client library is safe to use. */
	cli = fork();
	if (cli < 0)
		bench_die("fork", errno);
	if (cli == 0) {
		close(s2c[1]);
		close(c2s[0]);
		connected_clients(dir, r->devices, r->clients, s2c[0], c2s[1]);
	}
	close(ready[0]);
	close(s2c[0]);
	close(s2c[1]);
	close(c2s[0]);
	close(c2s[1]);
	if (waitpid(srv, &status, 0) != srv || !WIFEXITED(status) || WEXITSTATUS(status))
		bench_die("the server of the connected row failed", ECHILD);
	if (waitpid(cli, &status, 0) != cli || !WIFEXITED(status) || WEXITSTATUS(status))
		bench_die("the clients of the connected row failed", ECHILD);
	bench_rmdir(dir);
}

static double per(long a, long b, long n)
{
	return (double)(a - b) / (double)n;
}

static long other_fds(const struct bench_fd_census *c)
{
	return c->total - c->kind[BENCH_FD_SOCKET] - c->kind[BENCH_FD_MEMFD] -
	       c->kind[BENCH_FD_EVENTFD];
}

static void write_connected(const char *dir, const struct connected_result *r)
{
	FILE *md = bench_open(dir, "scale-connected.md");
	const struct bench_fd_census *f0 = &r->fds_before, *fd = &r->fds_devices, *fc = &r->fds_connected;
	long n = r->devices, k = r->clients, threads_max = r->threads_idle;
	double rss_idle, rss_suspended;

	fprintf(md, "### 5b. %ld devices served, %ld of them connected\n\n", n, k);
	if (r->skipped) {
		fprintf(md, "Not run: needs ~%ld fds in the server, RLIMIT_NOFILE hard limit is "
			"%ld and cannot be raised here (no CAP_SYS_RESOURCE).\n\n",
			r->fds_needed, r->fd_limit);
		bench_close(md, "scale-connected.md");
		return;
	}
	if (r->threads_connected > threads_max)
		threads_max = r->threads_connected;
	if (r->threads_suspended > threads_max)
		threads_max = r->threads_suspended;
	if (r->threads_lowpower > threads_max)
		threads_max = r->threads_lowpower;
	rss_idle = per(r->rss_connected_kib, r->rss_before_kib, n);
	rss_suspended = per(r->rss_suspended_kib, r->rss_before_kib, n);
	fprintf(md, "One server process (a fresh child) serves %ld memory devices, each its own "
		"vfpm server and socket on the event loop; a second process connects to %ld of "
		"them (every %ld-th) with the client library and starts each as a guest driver "
		"does: VERSION, GET_INFO, BAR0's region info with its fd (the server makes the "
		"BAR's memfd), memory decode on; the device is then open and ACTIVE, and idle. "
		"Then LOW_POWER_ENTRY on each, and every device reads SUSPENDED. All figures "
		"are the server's own (/proc/self: status, fd links, task schedstat; getrusage); the "
		"baseline is the same process before its first device. Creating the devices "
		"took %.1f s, the %ld connections %.1f s.\n\n", n, k, n / k, r->create_s, k,
		r->connect_s);
	fprintf(md, "| step | threads | fds | socket | memfd | eventfd | epoll | timerfd | other | "
		"VmRSS KiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	fprintf(md, "| before the first device | %ld | %ld | %ld | %ld | %ld | %ld | %ld | %ld | "
		"%ld |\n", r->threads_before, f0->total, f0->kind[BENCH_FD_SOCKET],
		f0->kind[BENCH_FD_MEMFD], f0->kind[BENCH_FD_EVENTFD], f0->kind[BENCH_FD_EPOLL],
		f0->kind[BENCH_FD_TIMERFD], f0->kind[BENCH_FD_OTHER], r->rss_before_kib);
	fprintf(md, "| %ld served, all SUSPENDED | %ld | %ld | %ld | %ld | %ld | %ld | %ld | %ld "
		"| %ld |\n", n, r->threads_idle, fd->total, fd->kind[BENCH_FD_SOCKET],
		fd->kind[BENCH_FD_MEMFD], fd->kind[BENCH_FD_EVENTFD], fd->kind[BENCH_FD_EPOLL],
		fd->kind[BENCH_FD_TIMERFD], fd->kind[BENCH_FD_OTHER], r->rss_devices_kib);
	fprintf(md, "| + %ld connected (%ld devices ACTIVE), idle | %ld | %ld | %ld | %ld | %ld | "
		"%ld | %ld | %ld | %ld |\n", k, r->active_connected, r->threads_connected,
		fc->total, fc->kind[BENCH_FD_SOCKET],
		fc->kind[BENCH_FD_MEMFD], fc->kind[BENCH_FD_EVENTFD], fc->kind[BENCH_FD_EPOLL],
		fc->kind[BENCH_FD_TIMERFD], fc->kind[BENCH_FD_OTHER], r->rss_connected_kib);
	fprintf(md, "| the connected ones in low power, all SUSPENDED | %ld | | | | | | | | %ld "
		"|\n", r->threads_lowpower, r->rss_suspended_kib);
	fprintf(md, "| after the idle window | %ld | | | | | | | | |\n\n", r->threads_suspended);
	fprintf(md, "- fds: %.2f per device (%ld listening sockets for %ld devices, plus the "
		"loop's own); %.2f per connection: %.2f sockets (the connection, and the "
		"server's end of the twin DMA socket the vfpm client negotiates at VERSION), "
		"%.2f memfds (BAR0's, made at the region info), %.2f eventfds, %.2f other.\n",
		per(fd->total, f0->total, n),
		fd->kind[BENCH_FD_SOCKET] - f0->kind[BENCH_FD_SOCKET], n,
		per(fc->total, fd->total, k),
		per(fc->kind[BENCH_FD_SOCKET], fd->kind[BENCH_FD_SOCKET], k),
		per(fc->kind[BENCH_FD_MEMFD], fd->kind[BENCH_FD_MEMFD], k),
		per(fc->kind[BENCH_FD_EVENTFD], fd->kind[BENCH_FD_EVENTFD], k),
		per(other_fds(fc), other_fds(fd), k));
	fprintf(md, "- RSS per device: %.1f KiB with none connected (all SUSPENDED), %.1f KiB "
		"with %ld connected and ACTIVE, %.1f KiB once those are SUSPENDED too; a "
		"connection adds %.1f KiB while ACTIVE (its device open, BAR0's memfd made; "
		"nothing writes the BAR, so its pages are never touched) and %.1f KiB once "
		"SUSPENDED.\n",
		per(r->rss_devices_kib, r->rss_before_kib, n), rss_idle, k, rss_suspended,
		per(r->rss_connected_kib, r->rss_devices_kib, k),
		per(r->rss_suspended_kib, r->rss_devices_kib, k));
	fprintf(md, "- Idle, every device SUSPENDED, over %.1f s: the server's threads other "
		"than the benchmark's own (at the end: %s) used %.4f %% of a CPU and were "
		"switched %.2f times a second (getrusage of the process minus the benchmark "
		"thread's, ended threads included); schedstat of the threads alive at the end: "
		"scheduled in %.2f times a second; %d thread(s) ended in the window.\n\n",
		r->idle_seconds, r->thread_names, r->idle_cpu_pct, r->idle_wakeups_per_s,
		r->idle_sched_wakeups_per_s, r->idle_threads_ended);
	fprintf(md, "| target | figure | target | verdict |\n|---|---:|---:|---|\n");
	fprintf(md, "| threads, %ld served / %ld connected | %ld | <= 16 | %s |\n", n, k,
		threads_max, bench_verdict(threads_max <= 16));
	fprintf(md, "| fds, %ld served / %ld connected (growth over the baseline) | %ld | <= %ld "
		"(1 / device + 1 / connection) | %s |\n", n, k, fc->total - f0->total, n + k,
		bench_verdict(fc->total - f0->total <= n + k));
	fprintf(md, "| RSS per device, %ld served / %ld connected and idle (ACTIVE) | %.1f KiB "
		"| <= 32 KiB | %s |\n", n, k, rss_idle, bench_verdict(rss_idle <= 32.0));
	fprintf(md, "| RSS per device, %ld served / %ld connected, all SUSPENDED | %.1f KiB | "
		"<= 32 KiB | %s |\n", n, k, rss_suspended, bench_verdict(rss_suspended <= 32.0));
	/* 0 is 0: no thread of the server ran in the window. */
	fprintf(md, "| idle CPU, %ld served, all SUSPENDED | %.4f %% (%.2f switches/s) | 0 | "
		"%s |\n\n", n, r->idle_cpu_pct, r->idle_wakeups_per_s,
		bench_verdict(r->idle_cpu_pct == 0 && r->idle_wakeups_per_s == 0 &&
			      r->idle_sched_wakeups_per_s == 0));
	bench_close(md, "scale-connected.md");
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
		{ "connected", required_argument, NULL, 'c' },
		{ "idle-seconds", required_argument, NULL, 'i' },
		{ 0 }
	};
	const char *out = "bench/results";
	char counts_arg[256] = "1,1000,10000", connected_arg[64] = "10000,1000";
	/* Longer than the longest timeout an idle loop might sleep on (5 s). */
	double idle_seconds = 12.0;
	struct connected_result *conn;
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
		else if (opt == 'c')
			snprintf(connected_arg, sizeof(connected_arg), "%s", optarg);
		else if (opt == 'i')
			idle_seconds = atof(optarg);
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

	conn = mmap(NULL, sizeof(*conn), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		    -1, 0);
	if (conn == MAP_FAILED)
		bench_die("mmap", errno);
	*conn = (struct connected_result){ .idle_seconds = idle_seconds,
					   .fd_limit = (long)rl.rlim_max };
	if (sscanf(connected_arg, "%ld,%ld", &conn->devices, &conn->clients) != 2 ||
	    conn->clients < 1 || conn->devices < conn->clients || conn->devices > 100000 ||
	    idle_seconds < 1 || idle_seconds > 60)
		bench_die("--connected DEVICES,CLIENTS (1 <= CLIENTS <= DEVICES <= 100000), "
			  "--idle-seconds from 1 to 60", EINVAL);
	/*
	 * A listening socket per device; per connection its socket, the twin
	 * socket and a BAR memfd; slack for the process's own.
	 */
	conn->fds_needed = conn->devices + 3 * conn->clients + 256;
	if ((rlim_t)conn->fds_needed > rl.rlim_max) {
		long fit = (long)rl.rlim_max - 3 * conn->clients - 256;

		fprintf(stderr, "bench-scale: %ld served / %ld connected needs ~%ld fds, the hard "
			"limit is %ld: measuring %ld served\n", conn->devices, conn->clients,
			conn->fds_needed, (long)rl.rlim_max, fit);
		conn->devices = fit;
		conn->fds_needed = (long)rl.rlim_max;
		if (fit < conn->clients)
			conn->skipped = true;
	}
	if (!conn->skipped)
		measure_connected(conn);
	write_connected(out, conn);
	munmap(conn, sizeof(*conn));
	return 0;
}
