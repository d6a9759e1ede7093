// SPDX-License-Identifier: MIT
/*
 * guest-nvme: runs inside the Linux guest (static) and drives an NVMe
 * controller through Linux's own nvme driver: vfpm's controller over
 * vfio-user, or QEMU's built-in one for the baseline. Only the block device
 * and sysfs are used.
 *
 *   guest-nvme [OPTIONS] MODE...        (the modes run in the order given)
 *     --size BYTES   the namespace's expected size (checked; default: any)
 *     --wait SEC     how long to wait for /dev/nvme0n1 (default 30)
 *     --seconds SEC  bench: length of each of the four runs (default 3)
 *     --phase SEC    d3hot: length of each measured phase (default 3)
 *     --seed N       verify: the pattern's seed (default: from /dev/urandom)
 *   MODE:
 *     verify  4 MiB of a position-dependent pattern, in four 1 MiB regions
 *             spread over the namespace (start, 37 MiB + 8 KiB, just below
 *             the middle, end), each written with O_DIRECT in a different
 *             request size (4 KiB, 8 KiB from a buffer one logical block
 *             off a page boundary, 128 KiB, 1 MiB), fsync, read back with
 *             O_DIRECT (1 MiB requests) and compared. One
 *             "nvme-pattern: off=N len=N seed=0x..." line per region, for
 *             the host's check of the backing file (nvme-check.py).
 *     bench   O_DIRECT, queue depth 1, over the 64 MiB from the middle of the
 *             namespace (verify's regions stay intact): sequential write and
 *             read in 1 MiB requests, 4 KiB random read and write (fixed
 *             seed), each for --seconds; one line each:
 *             "bench: test=T value=V unit=U ops=N bytes=N secs=S"
 *     d3hot   @@PHASE bound-idle@@ (driver bound, no I/O) for --phase s;
 *             unbind the nvme driver (/sys/bus/pci/drivers/nvme/unbind),
 *             PMCSR to D3hot through the sysfs config file, @@PHASE d3hot@@
 *             for --phase s, @@PHASE end@@; then back to D0, bind the driver
 *             again, wait for the namespace and (after verify) read the
 *             pattern back once more.
 * The host measures the server's CPU between the @@PHASE@@ lines.
 *
 * The pattern: the 64-bit little-endian word at byte offset o of the
 * namespace is splitmix64(o ^ seed) (o a multiple of 8).
 *
 * Every step prints "check: NAME: ok|FAIL ..."; the last line is
 * "guest-nvme: PASS" or "guest-nvme: FAIL (N failed)", exit 0 or 1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guest-pci.h"
#include "guest-report.h"

#define SYS_PCI "/sys/bus/pci/devices"
#define NVME_DRV "/sys/bus/pci/drivers/nvme"
#define BLK_DEV "/dev/nvme0n1"
#define BLK_SYS "/sys/block/nvme0n1"
#define CLASS_NVME 0x010802	/* mass storage, NVM, NVM Express */


#define KiB 1024ull
#define MiB (1024ull * 1024)
#define REGIONS 4
#define REGION_LEN MiB
#define BENCH_LEN (64 * MiB)

struct region {
	unsigned long long off;
	size_t req;		/* write request size */
	size_t mem_skew;	/* buffer offset from a page boundary, in logical blocks */
};

static unsigned long long want_size, dev_size;
static unsigned int lbs = 512;
static unsigned int wait_s = 30, bench_s = 3, phase_s = 3;
static uint64_t seed;
static bool seed_given, verified;
static struct region regions[REGIONS];
static char bdf[256], pci_dir[512];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void phase(const char *name)
{
	printf("@@PHASE %s@@\n", name);
	fflush(stdout);
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void fill_pattern(void *buf, unsigned long long off, size_t len)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		w[i] = splitmix64((off + 8 * i) ^ seed);
}

/* The first word that differs from the pattern, or -1. */
static long long find_mismatch(const void *buf, unsigned long long off, size_t len)
{
	const uint64_t *w = buf;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i] != splitmix64((off + 8 * i) ^ seed))
			return (long long)i;
	return -1;
}

static int write_all(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void read_attr(const char *path, char *out, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, out, len - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		snprintf(out, len, "?");
		return;
	}
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
}

static long hex_attr(const char *dir, const char *name)
{
	char path[1024], buf[64];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	read_attr(path, buf, sizeof(buf));
	return buf[0] == '?' ? -1 : strtol(buf, NULL, 16);
}

static const char *driver_of(const char *dir, char *out, size_t len)
{
	char path[1024], target[1024];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/driver", dir);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0) {
		snprintf(out, len, "none");
	} else {
		target[n] = '\0';
		snprintf(out, len, "%.*s", (int)len - 1,
			 strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
	}
	return out;
}

/* The NVMe function (class 010802): BDF and sysfs folder; false if none. */
static bool find_function(void)
{
	struct dirent **names;
	int n = scandir(SYS_PCI, &names, NULL, alphasort);
	bool found = false;

	for (int i = 0; i < n; i++) {
		char dir[512];

		snprintf(dir, sizeof(dir), "%s/%s", SYS_PCI, names[i]->d_name);
		if (names[i]->d_name[0] != '.' && !found && hex_attr(dir, "class") == CLASS_NVME) {
			snprintf(bdf, sizeof(bdf), "%s", names[i]->d_name);
			snprintf(pci_dir, sizeof(pci_dir), "%s", dir);
			found = true;
		}
		free(names[i]);
	}
	if (n >= 0)
		free(names);
	return found;
}

static bool wait_for_namespace(unsigned int seconds)
{
	double end = now_s() + seconds;
	struct stat st;

	while (stat(BLK_DEV, &st) < 0 || !S_ISBLK(st.st_mode)) {
		if (now_s() > end)
			return false;
		sleep_ms(100);
	}
	return true;
}

/* The function, the driver, the namespace: everything else needs them. */
static bool step_device(void)
{
	char drv[64], buf[128], path[1024];
	double t0 = now_s();
	bool ok;
	int fd;

	if (!find_function()) {
		check("nvme-function", false, "no PCI function of class %06x (NVMe): the controller "
		      "did not enumerate", CLASS_NVME);
		return false;
	}
	check("nvme-function", true, "%s [%04lx:%04lx] driver %s", bdf, hex_attr(pci_dir, "vendor"),
	      hex_attr(pci_dir, "device"), driver_of(pci_dir, drv, sizeof(drv)));
	ok = wait_for_namespace(wait_s);
	if (!ok) {
		check("nvme-namespace", false, "no %s after %u s (driver of %s: %s; %s %s)", BLK_DEV,
		      wait_s, bdf, driver_of(pci_dir, drv, sizeof(drv)), NVME_DRV,
		      access(NVME_DRV, F_OK) ? "missing: nvme.ko not loaded" : "present");
		return false;
	}
	read_attr("/sys/class/nvme/nvme0/model", buf, sizeof(buf));
	note("controller nvme0: model '%s'", buf);
	read_attr("/sys/class/nvme/nvme0/serial", buf, sizeof(buf));
	note("  serial '%s'", buf);
	read_attr("/sys/class/nvme/nvme0/firmware_rev", buf, sizeof(buf));
	note("  firmware '%s'", buf);
	read_attr(BLK_SYS "/queue/max_hw_sectors_kb", buf, sizeof(buf));
	note("  max_hw_sectors_kb %s", buf);
	snprintf(path, sizeof(path), "%s/msi_irqs", pci_dir);
	{
		DIR *d = opendir(path);
		int nirq = 0;
		struct dirent *e;

		while (d && (e = readdir(d)))
			nirq += e->d_name[0] != '.';
		if (d)
			closedir(d);
		note("  %d MSI/MSI-X vectors in use", nirq);
	}
	fd = open(BLK_DEV, O_RDONLY);
	if (fd < 0 || ioctl(fd, BLKGETSIZE64, &dev_size) < 0 ||
	    ioctl(fd, BLKSSZGET, (int *)&lbs) < 0) {
		check("nvme-namespace", false, "%s: %s", BLK_DEV, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	check("nvme-namespace", true, "%s after %.1f s: %llu bytes, logical block %u", BLK_DEV,
	      now_s() - t0, dev_size, lbs);
	if (want_size)
		check("nvme-size", dev_size == want_size, "%llu bytes, want %llu", dev_size, want_size);
	if (dev_size < 160 * MiB) {
		check("nvme-size-enough", false, "%llu bytes: verify and bench need 160 MiB", dev_size);
		return false;
	}
	return true;
}

static void *alloc_buf(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, len + 4096))
		return NULL;
	memset(p, 0, len + 4096);
	return p;
}

/* Where bench works: BENCH_LEN from the middle, between verify's regions 2 and 3. */
static unsigned long long bench_base(void)
{
	return dev_size / 2 & ~(MiB - 1);
}

static void plan_regions(void)
{
	regions[0] = (struct region){ 0, 4 * KiB, 0 };
	regions[1] = (struct region){ 37 * MiB + 8 * KiB, 8 * KiB, 1 };
	regions[2] = (struct region){ bench_base() - REGION_LEN - 12 * KiB, 128 * KiB, 0 };
	regions[3] = (struct region){ (dev_size - REGION_LEN) & ~(4 * KiB - 1), MiB, 0 };
}

/* Reads every region back (1 MiB requests) and compares; the failures' count. */
static int read_back(int fd, uint8_t *buf, const char *when)
{
	int bad = 0;

	for (int r = 0; r < REGIONS; r++) {
		struct region *g = &regions[r];
		ssize_t n;
		long long at;

		memset(buf, 0xa5, REGION_LEN);
		n = pread(fd, buf, REGION_LEN, (off_t)g->off);
		if (n != (ssize_t)REGION_LEN) {
			note("%s: region %d read at %llu: %zd (%s)", when, r, g->off, n,
			     n < 0 ? strerror(errno) : "short");
			bad++;
			continue;
		}
		at = find_mismatch(buf, g->off, REGION_LEN);
		if (at >= 0) {
			uint64_t got;

			memcpy(&got, buf + 8 * at, 8);
			note("%s: region %d differs at byte %llu: 0x%016llx, want 0x%016llx", when, r,
			     g->off + 8 * (unsigned long long)at, (unsigned long long)got,
			     (unsigned long long)splitmix64((g->off + 8 * (uint64_t)at) ^ seed));
			bad++;
		}
	}
	return bad;
}

static void mode_verify(void)
{
	uint8_t *wbuf = alloc_buf(REGION_LEN), *rbuf = alloc_buf(REGION_LEN);
	unsigned int failures_before = failures;
	double t0;
	int fd, bad;

	if (!wbuf || !rbuf) {
		check("nvme-verify", false, "out of memory");
		return;
	}
	if (!seed_given) {
		int ufd = open("/dev/urandom", O_RDONLY);

		if (ufd < 0 || read(ufd, &seed, sizeof(seed)) != sizeof(seed))
			seed = (uint64_t)(now_s() * 1e9);
		if (ufd >= 0)
			close(ufd);
	}
	plan_regions();
	fd = open(BLK_DEV, O_RDWR | O_DIRECT);
	if (fd < 0) {
		check("nvme-verify", false, "open %s O_DIRECT: %s", BLK_DEV, strerror(errno));
		return;
	}
	t0 = now_s();
	for (int r = 0; r < REGIONS; r++) {
		struct region *g = &regions[r];
		/* A buffer off its page by whole logical blocks: PRP1 with an offset. */
		uint8_t *src = wbuf + (lbs < 4096 ? g->mem_skew * lbs : 0);

		printf("nvme-pattern: off=%llu len=%llu seed=0x%016llx req=%zu skew=%zu\n", g->off,
		       (unsigned long long)REGION_LEN, (unsigned long long)seed, g->req,
		       src - wbuf);
		for (size_t done = 0; done < REGION_LEN; done += g->req) {
			ssize_t n;

			fill_pattern(src, g->off + done, g->req);
			n = pwrite(fd, src, g->req, (off_t)(g->off + done));
			if (n != (ssize_t)g->req) {
				check("nvme-write", false, "region %d: %zu bytes at %llu: %zd (%s)", r,
				      g->req, g->off + done, n, n < 0 ? strerror(errno) : "short");
				close(fd);
				return;
			}
		}
	}
	check("nvme-write", true, "%d regions of 1 MiB, O_DIRECT, %.2f s", REGIONS, now_s() - t0);
	if (fsync(fd) < 0)
		check("nvme-fsync", false, "%s", strerror(errno));
	else
		check("nvme-fsync", true, NULL);
	t0 = now_s();
	bad = read_back(fd, rbuf, "read back");
	check("nvme-verify", bad == 0, "%d of %d regions match, seed 0x%016llx, read in %.2f s",
	      REGIONS - bad, REGIONS, (unsigned long long)seed, now_s() - t0);
	/* Small reads too: one logical block at the start of each region. */
	bad = 0;
	for (int r = 0; r < REGIONS; r++) {
		if (pread(fd, rbuf, lbs, (off_t)regions[r].off) != (ssize_t)lbs ||
		    find_mismatch(rbuf, regions[r].off, lbs) >= 0)
			bad++;
	}
	check("nvme-verify-block", bad == 0, "one %u-byte block per region: %d bad", lbs, bad);
	verified = failures == failures_before;
	close(fd);
	free(wbuf);
	free(rbuf);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct bench_run {
	const char *name;
	bool write, random;
	size_t req;
};

static void mode_bench(void)
{
	static const struct bench_run runs[] = {
		{ "seq-write", true, false, MiB },
		{ "seq-read", false, false, MiB },
		{ "rand-write-4k", true, true, 4 * KiB },
		{ "rand-read-4k", false, true, 4 * KiB },
	};
	unsigned long long base = bench_base();
	uint8_t *buf = alloc_buf(MiB);
	bool all_ok = true;
	int fd;

	if (!buf) {
		check("nvme-bench", false, "out of memory");
		return;
	}
	for (size_t i = 0; i < MiB; i++)
		buf[i] = (uint8_t)(i * 7 + 3);	/* not zeros */
	fd = open(BLK_DEV, O_RDWR | O_DIRECT);
	if (fd < 0) {
		check("nvme-bench", false, "open %s O_DIRECT: %s", BLK_DEV, strerror(errno));
		return;
	}
	note("bench: O_DIRECT, queue depth 1, %llu MiB from byte %llu, %u s per run", BENCH_LEN / MiB,
	     base, bench_s);
	for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
		const struct bench_run *b = &runs[k];
		uint64_t rng = 0x5646504d4e564d45ull;	/* fixed: the same offsets every run */
		unsigned long long ops = 0, pos = 0;
		double t0 = now_s(), t = t0, end = t0 + bench_s;
		ssize_t n = 0;

		while (t < end) {
			unsigned long long off;

			if (b->random) {
				off = (xorshift(&rng) % (BENCH_LEN / b->req)) * b->req;
			} else {
				off = pos;
				pos = (pos + b->req) % BENCH_LEN;
			}
			n = b->write ? pwrite(fd, buf, b->req, (off_t)(base + off))
				     : pread(fd, buf, b->req, (off_t)(base + off));
			if (n != (ssize_t)b->req)
				break;
			ops++;
			t = now_s();
		}
		if (b->write && n == (ssize_t)b->req && fsync(fd) < 0)
			n = -1;
		t = now_s() - t0;
		if (n != (ssize_t)b->req || !ops) {
			check("nvme-bench", false, "%s: %s after %llu requests", b->name,
			      n < 0 ? strerror(errno) : "short transfer", ops);
			all_ok = false;
			continue;
		}
		if (b->random)
			printf("bench: test=%s value=%.1f unit=IOPS ops=%llu bytes=%llu secs=%.3f\n",
			       b->name, (double)ops / t, ops, ops * b->req, t);
		else
			printf("bench: test=%s value=%.2f unit=MiB/s ops=%llu bytes=%llu secs=%.3f\n",
			       b->name, (double)(ops * b->req) / MiB / t, ops, ops * b->req, t);
		fflush(stdout);
	}
	if (all_ok)
		check("nvme-bench", true, "4 runs");
	close(fd);
	free(buf);
}


static void mode_d3hot(void)
{
	char path[1024], drv[64], ps[32];
	unsigned int pm;
	uint16_t pmcsr;
	struct stat st;
	double t0;

	snprintf(path, sizeof(path), "%s/config", pci_dir);
	cfg_fd = open(path, O_RDWR);
	if (cfg_fd < 0) {
		check("nvme-d3hot", false, "open %s: %s", path, strerror(errno));
		return;
	}
	pm = find_pm_cap();
	if (!pm) {
		check("nvme-d3hot", false, "%s has no PM capability", bdf);
		return;
	}
	note("PM capability at %#x: PMC 0x%04x PMCSR 0x%04x", pm, cfg16(pm + PM_PMC),
	     cfg16(pm + PM_PMCSR));

	phase("bound-idle");
	sleep_ms(phase_s * 1000L);

	t0 = now_s();
	if (write_all(NVME_DRV "/unbind", bdf) < 0) {
		check("nvme-unbind", false, "write %s to %s/unbind: %s", bdf, NVME_DRV, strerror(errno));
		return;
	}
	check("nvme-unbind", strcmp(driver_of(pci_dir, drv, sizeof(drv)), "none") == 0 &&
	      stat(BLK_DEV, &st) < 0, "%.2f s; driver now %s, %s %s", now_s() - t0, drv, BLK_DEV,
	      stat(BLK_DEV, &st) < 0 ? "gone" : "still there");

	set_power_state(pm, PMCSR_D3HOT);
	sleep_ms(10);	/* PCI PM: 10 ms after a move to or from D3hot */
	pmcsr = cfg16(pm + PM_PMCSR);
	snprintf(path, sizeof(path), "%s/power_state", pci_dir);
	read_attr(path, ps, sizeof(ps));
	check("nvme-d3hot", (pmcsr & PMCSR_STATE_MASK) == PMCSR_D3HOT, "PMCSR reads 0x%04x, "
	      "the kernel's power_state %s", pmcsr, ps);
	phase("d3hot");
	sleep_ms(phase_s * 1000L);
	phase("end");

	set_power_state(pm, 0);
	sleep_ms(10);
	pmcsr = cfg16(pm + PM_PMCSR);
	check("nvme-d0", (pmcsr & PMCSR_STATE_MASK) == 0, "PMCSR reads 0x%04x (%s)", pmcsr,
	      pmcsr & PMCSR_NO_SOFT_RESET ? "No_Soft_Reset" : "soft reset");
	t0 = now_s();
	if (write_all(NVME_DRV "/bind", bdf) < 0) {
		check("nvme-rebind", false, "write %s to %s/bind: %s", bdf, NVME_DRV, strerror(errno));
		return;
	}
	if (!wait_for_namespace(wait_s)) {
		check("nvme-rebind", false, "no %s %u s after the bind (driver %s)", BLK_DEV, wait_s,
		      driver_of(pci_dir, drv, sizeof(drv)));
		return;
	}
	check("nvme-rebind", true, "%s back after %.1f s", BLK_DEV, now_s() - t0);
	if (verified) {
		uint8_t *buf = alloc_buf(REGION_LEN);
		int fd = open(BLK_DEV, O_RDONLY | O_DIRECT);
		int bad = fd < 0 || !buf ? REGIONS : read_back(fd, buf, "after D3hot");

		check("nvme-verify-after-d3hot", bad == 0, "%d of %d regions match", REGIONS - bad,
		      REGIONS);
		if (fd >= 0)
			close(fd);
		free(buf);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: guest-nvme [--size BYTES] [--wait SEC] [--seconds SEC] "
		"[--phase SEC] [--seed N] verify|bench|d3hot...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int first_mode = argc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (a[0] != '-') {
			first_mode = i;
			break;
		}
		if (i + 1 >= argc)
			usage();
		if (!strcmp(a, "--size"))
			want_size = strtoull(argv[++i], NULL, 0);
		else if (!strcmp(a, "--wait"))
			wait_s = (unsigned int)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(a, "--seconds"))
			bench_s = (unsigned int)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(a, "--phase"))
			phase_s = (unsigned int)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(a, "--seed")) {
			seed = strtoull(argv[++i], NULL, 0);
			seed_given = true;
		} else
			usage();
	}
	if (first_mode == argc)
		usage();
	for (int i = first_mode; i < argc; i++)
		if (strcmp(argv[i], "verify") && strcmp(argv[i], "bench") && strcmp(argv[i], "d3hot"))
			usage();
	if (step_device()) {
		for (int i = first_mode; i < argc; i++) {
			if (!strcmp(argv[i], "verify"))
				mode_verify();
			else if (!strcmp(argv[i], "bench"))
				mode_bench();
			else
				mode_d3hot();
		}
	}
	if (failures)
		printf("guest-nvme: FAIL (%u failed)\n", failures);
	else
		printf("guest-nvme: PASS\n");
	return failures ? 1 : 0;
}
