// SPDX-License-Identifier: MIT
/*
 * The reactor's check (test sample-reactor): start vfpm-reactor with N
 * devices, then drive a spread of them (the first, the last, the middle and
 * random ones) over vfio-user as a VMM would, all connected at once and
 * driven by several threads: GET_INFO, configuration space, trapped
 * registers, a read the device answers later, low power entry with a
 * wakeup eventfd and the access that wakes it.  Meanwhile it watches from
 * outside that the reactor never has a second thread; then SIGTERM, with
 * two clients still connected (one of them in low power), must end it
 * with status 0 within a few seconds.  Prints a line per device and
 * per phase; returns 0 when all held.
 *
 *   reactor-check REACTOR [N]      (N: 1000 by default)
 */
#include "reactor.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <vfpm/client.h>

#define TARGETS 30u
#define WORKERS 4u
#define READY_MS 30000
#define STOP_MS 5000
#define SUSPEND_MS 3000
#define WAKE_MS 2000
#define KEPT 2u			/* clients still connected when SIGTERM comes */

struct target {
	unsigned int index;
	struct vfpm_client *c;
};

struct check {
	const char *reactor;
	char dir[64];
	char ready[96];
	pid_t pid;
	unsigned int ndev;
	struct target t[TARGETS];
	unsigned int nt;
	atomic_uint next;		/* the next target a worker takes */
	atomic_uint workers_left;
	atomic_int failures;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static bool step(struct check *k, const struct target *t, bool ok, const char *what)
{
	if (!ok) {
		if (t)
			printf("reactor: FAIL dev%u: %s\n", t->index, what);
		else
			printf("reactor: FAIL %s\n", what);
		atomic_fetch_add(&k->failures, 1);
	}
	return ok;
}

/* "Threads:" of the reactor's /proc status; -1 when it cannot be read. */
static long reactor_threads(pid_t pid)
{
	char path[64], line[256];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

static bool one_thread(struct check *k, const char *when)
{
	long n = reactor_threads(k->pid);
	char what[96];

	snprintf(what, sizeof(what), "the reactor has %ld threads %s, not 1", n, when);
	return step(k, NULL, n == 1, what);
}

/* ---- one device ---- */

static bool reg_read(struct target *t, unsigned int off, uint32_t *v)
{
	*v = 0;
	return vfpm_client_region_read(t->c, VFIO_PCI_BAR0_REGION_INDEX, off, v, 4) == 4;
}

static bool reg_is(struct check *k, struct target *t, unsigned int off, uint32_t want,
		   const char *what)
{
	char msg[128];
	uint32_t v;
	bool ok = reg_read(t, off, &v) && v == want;

	snprintf(msg, sizeof(msg), "%s: read %#x, want %#x", what, v, want);
	return step(k, t, ok, msg);
}

static bool cfg_setup(struct check *k, struct target *t)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	uint16_t ids[2] = { 0 }, cmd = PCI_COMMAND_MEMORY;

	if (!step(k, t, vfpm_client_get_info(t->c, &info) == 0 &&
		  (info.flags & VFIO_DEVICE_FLAGS_PCI) &&
		  info.num_regions > VFIO_PCI_CONFIG_REGION_INDEX, "GET_INFO"))
		return false;
	if (!step(k, t, vfpm_client_region_read(t->c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID,
						ids, 4) == 4 &&
		  ids[0] == RX_VENDOR_ID && ids[1] == RX_DEVICE_ID, "vendor and device ID"))
		return false;
	return step(k, t, vfpm_client_region_write(t->c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						   &cmd, 2) == 2, "memory space enable");
}

/* A deferred read: answered from the reactor's timer, counted by the device. */
static bool slow_read(struct check *k, struct target *t, uint32_t scratch)
{
	uint32_t before;

	return step(k, t, reg_read(t, RX_REG_DEFERRED, &before), "read DEFERRED") &&
	       reg_is(k, t, RX_REG_SLOW, ~scratch, "SLOW (deferred) is ~SCRATCH") &&
	       reg_is(k, t, RX_REG_DEFERRED, before + 1, "DEFERRED counted the slow read");
}

static bool wait_suspended(struct vfpm_client *c)
{
	for (int64_t end = now_ms() + SUSPEND_MS; now_ms() < end; sleep_ms(5)) {
		struct vfpm_client_power st;

		if (!vfpm_client_power_status(c, &st) && !strcmp(st.runtime_status, "suspended"))
			return true;
	}
	return false;
}

/* Low power with a wakeup eventfd; an access wakes the device and fires it once. */
static bool low_power(struct check *k, struct target *t)
{
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint32_t suspends = 0, resumes = 0;
	uint64_t n = 0;
	bool ok;

	ok = step(k, t, efd >= 0, "eventfd") &&
	     step(k, t, reg_read(t, RX_REG_SUSPENDS, &suspends) &&
		  reg_read(t, RX_REG_RESUMES, &resumes), "read the PM counters") &&
	     step(k, t, vfpm_client_low_power_entry_with_wakeup(t->c, efd) == 0,
		  "LOW_POWER_ENTRY_WITH_WAKEUP") &&
	     step(k, t, wait_suspended(t->c), "suspended after the entry") &&
	     step(k, t, read(efd, &n, sizeof(n)) < 0 && errno == EAGAIN,
		  "the eventfd is quiet while it sleeps") &&
	     reg_is(k, t, RX_REG_ID, RX_ID, "ID read that wakes it") &&
	     step(k, t, poll(&p, 1, WAKE_MS) == 1 && read(efd, &n, sizeof(n)) == sizeof(n) &&
		  n == 1, "the wakeup eventfd fired once") &&
	     reg_is(k, t, RX_REG_SUSPENDS, suspends + 1, "one more runtime suspend") &&
	     reg_is(k, t, RX_REG_RESUMES, resumes + 1, "one more runtime resume");
	if (efd >= 0)
		close(efd);
	return ok;
}

static bool drive(struct check *k, struct target *t)
{
	uint32_t scratch = 0x5a000000u | t->index;

	return cfg_setup(k, t) &&
	       reg_is(k, t, RX_REG_ID, RX_ID, "ID") &&
	       reg_is(k, t, RX_REG_INDEX, t->index, "INDEX names the socket's device") &&
	       step(k, t, vfpm_client_region_write(t->c, VFIO_PCI_BAR0_REGION_INDEX,
						   RX_REG_SCRATCH, &scratch, 4) == 4,
		    "write SCRATCH") &&
	       reg_is(k, t, RX_REG_SCRATCH, scratch, "SCRATCH reads back") &&
	       slow_read(k, t, scratch) &&
	       low_power(k, t) &&
	       reg_is(k, t, RX_REG_SCRATCH, scratch, "SCRATCH kept across the sleep") &&
	       slow_read(k, t, scratch);
}

static void *worker(void *arg)
{
	struct check *k = arg;

	for (unsigned int i; (i = atomic_fetch_add(&k->next, 1)) < k->nt;) {
		struct target *t = &k->t[i];
		int64_t start = now_ms();
		bool ok = drive(k, t);

		printf("reactor: %s dev%u (%lld ms)\n", ok ? "ok  " : "FAIL", t->index,
		       (long long)(now_ms() - start));
	}
	atomic_fetch_sub(&k->workers_left, 1);
	return NULL;
}

/* ---- the phases ---- */

/* First, last, middle, second, second to last, then random ones, all distinct. */
static void pick_targets(struct check *k, unsigned int seed)
{
	unsigned int fixed[] = { 0, k->ndev - 1, k->ndev / 2, 1, k->ndev - 2 };
	unsigned int want = k->ndev < TARGETS ? k->ndev : TARGETS;

	for (unsigned int i = 0; k->nt < want; i++) {
		unsigned int idx = i < 5 ? fixed[i] : (unsigned int)rand_r(&seed) % k->ndev;
		bool seen = idx >= k->ndev;

		for (unsigned int j = 0; j < k->nt && !seen; j++)
			seen = k->t[j].index == idx;
		if (!seen)
			k->t[k->nt++].index = idx;
	}
}

static bool start_reactor(struct check *k)
{
	char ndev[16];
	int64_t start = now_ms();
	pid_t me = getpid();
	FILE *f;
	long pid = 0;
	int status;

	snprintf(ndev, sizeof(ndev), "%u", k->ndev);
	k->pid = fork();
	if (k->pid < 0)
		return step(k, NULL, false, "fork");
	if (!k->pid) {
		/* Never outlive a check that died. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != me)
			_exit(127);
		execl(k->reactor, k->reactor, "--devices", ndev, "--dir", k->dir, "--ready",
		      k->ready, (char *)NULL);
		perror("reactor: exec");
		_exit(127);
	}
	while (!(f = fopen(k->ready, "r"))) {
		if (waitpid(k->pid, &status, WNOHANG) == k->pid) {
			k->pid = 0;
			return step(k, NULL, false, "the reactor exited before it was ready");
		}
		if (now_ms() - start > READY_MS)
			return step(k, NULL, false, "the reactor not ready in time");
		sleep_ms(10);
	}
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	printf("reactor: ok   %u devices ready in %lld ms\n", k->ndev,
	       (long long)(now_ms() - start));
	return step(k, NULL, pid == k->pid, "the ready file holds the reactor's pid");
}

static bool connect_all(struct check *k)
{
	char path[128];
	bool ok = true;

	for (unsigned int i = 0; i < k->nt; i++) {
		snprintf(path, sizeof(path), "%s/dev%u.sock", k->dir, k->t[i].index);
		ok &= step(k, &k->t[i], vfpm_client_connect(path, &k->t[i].c) == 0,
			   "connect (VERSION)");
	}
	return ok;
}

/* Run the workers over every target, sampling the reactor's threads meanwhile. */
static void drive_all(struct check *k)
{
	pthread_t th[WORKERS];
	unsigned int started = 0, samples = 0;
	int64_t start = now_ms();
	long worst = 1;

	atomic_store(&k->workers_left, WORKERS);
	for (unsigned int i = 0; i < WORKERS; i++, started++)
		if (pthread_create(&th[i], NULL, worker, k)) {
			atomic_fetch_sub(&k->workers_left, WORKERS - i);
			step(k, NULL, false, "pthread_create");
			break;
		}
	while (atomic_load(&k->workers_left)) {
		long n = reactor_threads(k->pid);

		if (n != 1)
			worst = n;
		samples++;
		sleep_ms(2);
	}
	for (unsigned int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	printf("reactor: %s %u devices driven by %u threads in %lld ms; reactor threads: 1 in "
	       "%u samples%s\n", worst == 1 ? "ok  " : "FAIL", k->nt, WORKERS,
	       (long long)(now_ms() - start), samples, worst == 1 ? "" : ", and not always");
	step(k, NULL, worst == 1, "the reactor had one thread while served");
}

/* Two clients on one device at once: each sees the device, deferred reads too. */
static void second_clients(struct check *k)
{
	for (unsigned int i = 0; i < 2 && i < k->nt; i++) {
		struct target twin = { .index = k->t[i].index };
		char path[128];
		uint32_t scratch = 0;

		snprintf(path, sizeof(path), "%s/dev%u.sock", k->dir, twin.index);
		if (!step(k, &twin, vfpm_client_connect(path, &twin.c) == 0, "a second connection"))
			continue;
		if (reg_read(&k->t[i], RX_REG_SCRATCH, &scratch) &&
		    reg_is(k, &twin, RX_REG_INDEX, twin.index, "INDEX on the second connection") &&
		    reg_is(k, &twin, RX_REG_SCRATCH, scratch, "SCRATCH seen by both") &&
		    slow_read(k, &twin, scratch) && slow_read(k, &k->t[i], scratch))
			printf("reactor: ok   dev%u with two clients at once\n", twin.index);
		one_thread(k, "with a device open twice");
		vfpm_client_close(twin.c);
	}
}

static void stop_reactor(struct check *k)
{
	int64_t start = now_ms();
	int status = 0;
	pid_t got;

	kill(k->pid, SIGTERM);
	while (!(got = waitpid(k->pid, &status, WNOHANG)) && now_ms() - start < STOP_MS)
		sleep_ms(5);
	if (!got) {
		kill(k->pid, SIGKILL);
		waitpid(k->pid, &status, 0);
		step(k, NULL, false, "the reactor did not stop within 5 s of SIGTERM");
	} else if (step(k, NULL, got == k->pid && WIFEXITED(status) && !WEXITSTATUS(status),
			"the reactor exits 0 on SIGTERM")) {
		printf("reactor: ok   stopped %lld ms after SIGTERM, status 0\n",
		       (long long)(now_ms() - start));
	}
	k->pid = 0;
}

/* What a reactor that did not finish may have left in the directory. */
static void clean_dir(struct check *k)
{
	char path[128];
	unsigned int left = 0;

	for (unsigned int i = 0; i < k->ndev; i++) {
		snprintf(path, sizeof(path), "%s/dev%u.sock", k->dir, i);
		left += !unlink(path);
	}
	unlink(k->ready);
	rmdir(k->dir);
	step(k, NULL, !left, "the reactor removed its socket files");
}

int main(int argc, char **argv)
{
	static struct check k;
	const char *tmp = getenv("TMPDIR");
	unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();

	/* Nothing left in the buffer at the fork; lines in order with the reactor's. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: reactor-check REACTOR [N]\n");
		return 2;
	}
	k.reactor = argv[1];
	k.ndev = argc == 3 ? (unsigned int)strtoul(argv[2], NULL, 10) : 1000;
	if (k.ndev < 2) {
		fprintf(stderr, "reactor-check: N must be 2 or more\n");
		return 2;
	}
	/* Short: socket paths must fit in sun_path. */
	if (!tmp || strlen(tmp) > 32)
		tmp = "/tmp";
	snprintf(k.dir, sizeof(k.dir), "%s/vfpm-reactor-XXXXXX", tmp);
	if (!mkdtemp(k.dir)) {
		perror("reactor-check: mkdtemp");
		return 1;
	}
	snprintf(k.ready, sizeof(k.ready), "%s/ready", k.dir);
	pick_targets(&k, seed);
	printf("reactor: %u devices, %u of them driven (seed %u)\n", k.ndev, k.nt, seed);

	if (start_reactor(&k) && one_thread(&k, "once ready") && connect_all(&k)) {
		one_thread(&k, "with every client connected");
		drive_all(&k);
		second_clients(&k);
	}
	/* Two stay for the stop, the first of them asleep: the reactor disconnects them. */
	for (unsigned int i = KEPT; i < k.nt; i++)
		if (k.t[i].c)
			vfpm_client_close(k.t[i].c);
	if (k.pid > 0) {
		one_thread(&k, "after most clients left");
		if (k.t[0].c)
			step(&k, &k.t[0], vfpm_client_low_power_entry(k.t[0].c) == 0,
			     "LOW_POWER_ENTRY before the stop");
		stop_reactor(&k);
	}
	for (unsigned int i = 0; i < KEPT && i < k.nt; i++) {
		uint32_t v;

		if (!k.t[i].c)
			continue;
		step(&k, &k.t[i], !reg_read(&k.t[i], RX_REG_ID, &v),
		     "a client still connected at the stop is disconnected");
		vfpm_client_close(k.t[i].c);
	}
	clean_dir(&k);
	if (atomic_load(&k.failures)) {
		printf("reactor: %d FAILED\n", atomic_load(&k.failures));
		return 1;
	}
	printf("reactor: all ok\n");
	return 0;
}
