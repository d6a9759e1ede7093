// SPDX-License-Identifier: MIT
/*
 * Hostile clients against a server process of three devices (hostile_server.c:
 * a.sock and b.sock, two test models; p.sock, the polling device).  Each test
 * attacks one device and then checks what its users would see:
 *  - the process is alive;
 *  - another device answers correct data within HS_ANSWER_MS, fds included;
 *  - the attacked device works again once the attacker has gone;
 *  - threads, fds, RSS and memory mappings of the process come back to the
 *    baseline taken before the attack (glibc keeps freed thread stacks and
 *    malloc arenas for reuse: the baseline is taken after a warm-up that
 *    made them, and mappings and RSS get a small allowance, HS_MAPS_SLACK
 *    and HS_RSS_SLACK_KIB);
 *  - the server's log names the attacker and the limit that held.
 * Each test prints a row of the resources before, during and after its attack.
 */
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "devices.h"

#define HS_ANSWER_MS 2000		/* another device answers within this */
#define HS_SETTLE_MS 20000		/* resources are back within this */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HS_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(HS_ASAN)
/* ASan keeps freed memory in quarantine and maps its own shadow as it goes. */
#define HS_MAPS_SLACK 256
#define HS_RSS_SLACK_KIB (64 * 1024)
#else
#define HS_MAPS_SLACK 64
#define HS_RSS_SLACK_KIB (8 * 1024)
#endif
#define HS_WARMUP_CLIENTS 60	/* under the 64 per device */

static const char *server_exe;

struct res {
	long threads, fds, maps, rss_kib;
};

struct hfix {
	char dir[64];
	char a[128], b[128], p[128], log[128];
	pid_t pid;
	struct res base;
};

/* ---- the figures of the closing table ---- */

#define MAX_ROWS 16
static char rows[MAX_ROWS][400];
static unsigned int nrows;

static void report(const char *attack, const char *held, const struct res *before,
		   const struct res *during, const struct res *after)
{
	if (nrows == MAX_ROWS)
		return;
	snprintf(rows[nrows++], sizeof(rows[0]),
		 "| %s | %s | %ld / %ld / %ld | %ld / %ld / %ld | %ld / %ld / %ld | "
		 "%ld / %ld / %ld |",
		 attack, held, before->threads, during->threads, after->threads, before->fds,
		 during->fds, after->fds, before->rss_kib / 1024, during->rss_kib / 1024,
		 after->rss_kib / 1024, before->maps, during->maps, after->maps);
}

/* ---- the server process ---- */

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static long count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void res_read(pid_t pid, struct res *r)
{
	char path[64], line[256];
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "Threads: %ld", &r->threads);
		sscanf(line, "VmRSS: %ld", &r->rss_kib);
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	r->fds = count_dir(path);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		r->maps += strchr(line, '\n') != NULL;
	fclose(f);
}

static void assert_alive(struct hfix *f)
{
	int status;

	if (waitpid(f->pid, &status, WNOHANG) != 0)
		fail_msg("the server process died (status %#x): see %s", status, f->log);
}

static bool log_contains(struct hfix *f, const char *needle)
{
	char line[1024];
	bool found = false;
	FILE *l = fopen(f->log, "re");

	assert_non_null(l);
	while (!found && fgets(line, sizeof(line), l))
		found = strstr(line, needle) != NULL;
	fclose(l);
	return found;
}

static void assert_logged(struct hfix *f, const char *needle)
{
	long deadline = now_ms() + HS_ANSWER_MS;

	while (!log_contains(f, needle)) {
		if (now_ms() > deadline)
			fail_msg("the server's log (%s) never said \"%s\"", f->log, needle);
		sleep_ms(20);
	}
}

static void server_start(struct hfix *f, rlim_t nofile, const char *const *args)
{
	const char *argv[16] = { server_exe, f->dir };
	char ready[128];
	long deadline;
	unsigned int n = 2;

	for (; args && *args && n < 13; args++)
		argv[n++] = *args;
	/* The caller-driven run: the server drives a loop of its own, no library thread. */
	if (getenv("VFPM_TEST_LOOP") && !strcmp(getenv("VFPM_TEST_LOOP"), "caller")) {
		argv[n++] = "--caller-loop";
		argv[n++] = "1";
	}
	snprintf(ready, sizeof(ready), "%s/ready", f->dir);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		int log = open(f->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (nofile) {
			struct rlimit rl;

			getrlimit(RLIMIT_NOFILE, &rl);
			rl.rlim_cur = nofile;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (log < 0 || null < 0 || dup2(log, 2) < 0 || dup2(null, 1) < 0)
			_exit(126);
		execv(server_exe, (char *const *)argv);
		_exit(127);
	}
	deadline = now_ms() + 10000;
	while (access(ready, F_OK) != 0) {
		assert_alive(f);
		assert_true(now_ms() < deadline);
		sleep_ms(10);
	}
}

/* Wait until the figures stop moving (connections ending, threads exiting). */
static void res_settle(struct hfix *f, struct res *r)
{
	struct res prev;
	unsigned int same = 0;
	long deadline = now_ms() + HS_SETTLE_MS;

	res_read(f->pid, &prev);
	while (same < 3 && now_ms() < deadline) {
		sleep_ms(100);
		res_read(f->pid, r);
		same = r->threads == prev.threads && r->fds == prev.fds && r->maps == prev.maps ?
		       same + 1 : 0;
		prev = *r;
	}
	*r = prev;
}

/*
 * Warm up what glibc keeps for reuse (thread stacks, malloc arenas) with as
 * many concurrent clients as an attack brings, then take the baseline.
 */
static void take_baseline(struct hfix *f)
{
	struct vfpm_client *c[HS_WARMUP_CLIENTS];

	for (int i = 0; i < HS_WARMUP_CLIENTS; i++) {
		assert_int_equal(vfpm_client_connect(f->b, &c[i]), 0);
		t_check_client(c[i]);
	}
	for (int i = 0; i < HS_WARMUP_CLIENTS; i++)
		vfpm_client_close(c[i]);
	res_settle(f, &f->base);
}

static int hfix_setup_with(void **state, rlim_t nofile, const char *const *args)
{
	struct hfix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	strcpy(f->dir, "/tmp/vfpm-hostile-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->a, sizeof(f->a), "%s/a.sock", f->dir);
	snprintf(f->b, sizeof(f->b), "%s/b.sock", f->dir);
	snprintf(f->p, sizeof(f->p), "%s/p.sock", f->dir);
	snprintf(f->log, sizeof(f->log), "%s/server.log", f->dir);
	server_start(f, nofile, args);
	take_baseline(f);
	*state = f;
	return 0;
}

static int hfix_setup(void **state)
{
	return hfix_setup_with(state, 0, NULL);
}

static int hfix_teardown(void **state)
{
	struct hfix *f = *state;
	int status = 0;
	char path[160];

	assert_alive(f);
	kill(f->pid, SIGTERM);
	assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
	/* A clean shutdown after the attack: every device and server torn down. */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	if (getenv("VFPM_HOSTILE_KEEP")) {
		fprintf(stderr, "server log kept: %s\n", f->log);
	} else {
		unlink(f->log);
		snprintf(path, sizeof(path), "%s/ready", f->dir);
		unlink(path);
		rmdir(f->dir);
	}
	free(f);
	return 0;
}

/* ---- what every attack checks ---- */

/* Another device answers correct data, fds included, within HS_ANSWER_MS. */
static void check_other_device(struct hfix *f)
{
	long start = now_ms();
	struct vfio_region_info info = { .argsz = sizeof(info) };
	struct vfpm_client *c;
	uint32_t id = 0;
	int fd = -1;

	assert_alive(f);
	assert_int_equal(vfpm_client_connect(f->b, &c), 0);
	t_check_client(c);
	t_enable_memory(c);
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_ID, &id, 4),
			 4);
	assert_int_equal(id, TM_ID);
	/* A reply that carries an fd: the process still has fds for it. */
	assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_BAR0_REGION_INDEX, &info,
						     sizeof(info), &fd), 0);
	assert_true(fd >= 0);
	close(fd);
	vfpm_client_close(c);
	if (now_ms() - start > HS_ANSWER_MS)
		fail_msg("the other device took %ld ms to answer", now_ms() - start);
}

/*
 * The device's last user has gone (the server tears connections down on its
 * own time): unused, it is suspended again.  Asked without opening it.
 */
static void wait_device_closed(const char *path)
{
	struct vfpm_client_power st;
	struct vfpm_client *c;
	long deadline = now_ms() + HS_SETTLE_MS;

	assert_int_equal(vfpm_client_connect(path, &c), 0);
	for (;;) {
		assert_int_equal(vfpm_client_power_status(c, &st), 0);
		if (!strcmp(st.runtime_status, "suspended") && st.usage_count == 0)
			break;
		assert_true(now_ms() < deadline);
		sleep_ms(20);
	}
	vfpm_client_close(c);
}

/* Back to the baseline once the attacker has gone (asserts), into *after. */
static void assert_back_to_baseline(struct hfix *f, struct res *after)
{
	long deadline = now_ms() + HS_SETTLE_MS;
	const struct res *b = &f->base;

	for (;;) {
		res_read(f->pid, after);
		if (after->threads <= b->threads && after->fds <= b->fds &&
		    after->maps <= b->maps + HS_MAPS_SLACK &&
		    after->rss_kib <= b->rss_kib + HS_RSS_SLACK_KIB)
			return;
		if (now_ms() > deadline)
			fail_msg("resources not back: threads %ld (baseline %ld), fds %ld (%ld), "
				 "maps %ld (%ld), RSS %ld KiB (%ld)", after->threads, b->threads,
				 after->fds, b->fds, after->maps, b->maps, after->rss_kib,
				 b->rss_kib);
		sleep_ms(100);
	}
}

static void bar2_write(struct vfpm_client *c, unsigned int reg, uint32_t v)
{
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_BAR2_REGION_INDEX, reg, &v, 4), 4);
}

static uint32_t bar2_read(struct vfpm_client *c, unsigned int reg)
{
	uint32_t v = 0;

	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR2_REGION_INDEX, reg, &v, 4), 4);
	return v;
}

/* The test model reads 4 bytes at iova by DMA: 0 and the word, or the negative errno. */
static int model_dma_read(struct vfpm_client *c, uint64_t iova, uint32_t *word)
{
	bar2_write(c, TM_REG_DMA_ADDR, (uint32_t)iova);
	bar2_write(c, TM_REG_DMA_ADDR + 4, (uint32_t)(iova >> 32));
	bar2_write(c, TM_REG_DMA_CMD, TM_DMA_READ);
	*word = bar2_read(c, TM_REG_DMA_DATA);
	return (int32_t)bar2_read(c, TM_REG_DMA_STATUS);
}

static int bar_fd(struct vfpm_client *c, unsigned int bar)
{
	struct vfio_region_info info = { .argsz = sizeof(info) };
	int fd = -1;

	assert_int_equal(vfpm_client_get_region_info(c, bar, &info, sizeof(info), &fd), 0);
	assert_true(fd >= 0);
	return fd;
}

/* ---- memory a client can resize ---- */

/* BAR0's memfd truncated under the device: the next access is an error, not SIGBUS. */
static void test_bar_memfd_truncated(void **state)
{
	struct hfix *f = *state;
	uint8_t pattern[256], back[256];
	struct res during, after;
	struct vfpm_client *c;
	struct stat st;
	uint8_t *map;
	int fd;

	memset(pattern, 0xa5, sizeof(pattern));
	assert_int_equal(vfpm_client_connect(f->a, &c), 0);
	t_enable_memory(c);
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_BAR0_REGION_INDEX, 0, pattern,
						  sizeof(pattern)), sizeof(pattern));
	fd = bar_fd(c, VFIO_PCI_BAR0_REGION_INDEX);
	assert_int_equal(ftruncate(fd, 0), 0);
	/* The server's own access to those pages faults: the request fails, the process lives. */
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, 0, back,
						 sizeof(back)), -EIO);
	res_read(f->pid, &during);
	check_other_device(f);
	assert_logged(f, "BAR0: a client truncated its memory file");
	/* The device rebuilt its file: the same client reads again (the lost bytes are zeros). */
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, 0, back,
						 sizeof(back)), sizeof(back));
	vfpm_client_close(c);
	close(fd);
	wait_device_closed(f->a);

	/* The next user finds a whole BAR: right size, mapping and region access agree. */
	assert_int_equal(vfpm_client_connect(f->a, &c), 0);
	t_enable_memory(c);
	fd = bar_fd(c, VFIO_PCI_BAR0_REGION_INDEX);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, TM_BAR0_SIZE);
	map = mmap(NULL, TM_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_BAR0_REGION_INDEX, 512, pattern,
						  sizeof(pattern)), sizeof(pattern));
	assert_memory_equal(map + 512, pattern, sizeof(pattern));
	munmap(map, TM_BAR0_SIZE);
	close(fd);
	vfpm_client_close(c);
	assert_back_to_baseline(f, &after);
	report("BAR memfd truncated (REGION_READ)", "guarded BAR memory; EIO, BAR rebuilt",
	       &f->base, &during, &after);
}

/* The same under the polling device, whose backend thread reads BAR0 by itself. */
static void test_bar_memfd_truncated_poller(void **state)
{
	struct hfix *f = *state;
	struct res during, after;
	struct vfpm_client *c;
	uint32_t magic = 0;
	int fd;

	assert_int_equal(vfpm_client_connect(f->p, &c), 0);
	t_enable_memory(c);
	fd = bar_fd(c, VFIO_PCI_BAR0_REGION_INDEX);
	assert_int_equal(ftruncate(fd, 0), 0);
	/* No request at all: the polling thread faults on its next look at the rings. */
	sleep_ms(200);
	assert_alive(f);
	res_read(f->pid, &during);
	check_other_device(f);
	/* The loss shows at the next access, which rebuilds the file. */
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX,
						 VFPM_POLLER_REG_MAGIC, &magic, 4), -EIO);
	assert_logged(f, "BAR0: a client truncated its memory file");
	vfpm_client_close(c);
	close(fd);
	wait_device_closed(f->p);

	/* Open again: reset, the device's registers are whole. */
	assert_int_equal(vfpm_client_connect(f->p, &c), 0);
	t_enable_memory(c);
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX,
						 VFPM_POLLER_REG_MAGIC, &magic, 4), 4);
	assert_int_equal(magic, VFPM_POLLER_MAGIC);
	vfpm_client_close(c);
	assert_back_to_baseline(f, &after);
	report("BAR memfd truncated (poller thread)", "guarded BAR memory; EIO, BAR rebuilt",
	       &f->base, &during, &after);
}

static int guest_memfd(size_t size, uint8_t fill)
{
	int fd = memfd_create("guest", MFD_CLOEXEC);
	uint8_t *mem;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(mem != MAP_FAILED);
	memset(mem, fill, size);
	munmap(mem, size);
	return fd;
}

/* A DMA window's file truncated after DMA_MAP: the model's DMA fails with EFAULT. */
static void test_dma_memfd_truncated(void **state)
{
	struct hfix *f = *state;
	struct vfpm_client_dma map = {
		.iova = 0x100000, .size = 0x10000,
		.flags = VFPM_CLIENT_DMA_READ | VFPM_CLIENT_DMA_WRITE,
	};
	struct res during, after;
	struct vfpm_client *c;
	uint32_t word = 0;

	assert_int_equal(vfpm_client_connect(f->a, &c), 0);
	t_enable_memory(c);
	map.fd = guest_memfd(map.size, 0x3c);
	assert_int_equal(vfpm_client_dma_map(c, &map), 0);
	assert_int_equal(model_dma_read(c, map.iova + 0x2000, &word), 0);
	assert_int_equal(word, 0x3c3c3c3cu);

	assert_int_equal(ftruncate(map.fd, 0), 0);
	assert_int_equal(model_dma_read(c, map.iova + 0x2000, &word), -EFAULT);
	/* The window stays refused: its pages are gone. */
	assert_int_equal(model_dma_read(c, map.iova, &word), -EFAULT);
	res_read(f->pid, &during);
	check_other_device(f);
	assert_logged(f, "was truncated by the client");
	/* Unmapped and mapped again from a whole file, it works. */
	assert_int_equal(vfpm_client_dma_unmap(c, map.iova, map.size), 0);
	close(map.fd);
	map.fd = guest_memfd(map.size, 0x5a);
	assert_int_equal(vfpm_client_dma_map(c, &map), 0);
	assert_int_equal(model_dma_read(c, map.iova, &word), 0);
	assert_int_equal(word, 0x5a5a5a5au);
	close(map.fd);
	vfpm_client_close(c);
	assert_back_to_baseline(f, &after);
	report("DMA memfd truncated after DMA_MAP", "guarded DMA window; EFAULT", &f->base,
	       &during, &after);
}

/*
 * A revoked BAR's memfd grown back by the client: it sees no device data,
 * and its writes never reach the device.
 */
static void test_revoked_bar_regrown(void **state)
{
	struct hfix *f = *state;
	uint8_t secret[4096], zeros[4096] = { 0 }, back[4096];
	struct res during, after;
	struct vfpm_client *c;
	struct stat st;
	uint8_t *map;
	int fd;

	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(vfpm_client_connect(f->a, &c), 0);
	t_enable_memory(c);
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_BAR0_REGION_INDEX, 0, secret,
						  sizeof(secret)), sizeof(secret));
	fd = bar_fd(c, VFIO_PCI_BAR0_REGION_INDEX);
	map = mmap(NULL, TM_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_memory_equal(map, secret, sizeof(secret));

	assert_int_equal(vfpm_client_low_power_entry(c), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 0);	/* revoked */
	assert_int_equal(ftruncate(fd, TM_BAR0_SIZE), 0);
	assert_memory_equal(map, zeros, sizeof(zeros));	/* none of the device's bytes */
	memset(map, 0xee, TM_BAR0_SIZE);		/* and this goes nowhere */
	res_read(f->pid, &during);
	check_other_device(f);

	assert_int_equal(vfpm_client_low_power_exit(c), 0);
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, 0, back,
						 sizeof(back)), sizeof(back));
	assert_memory_equal(back, secret, sizeof(secret));
	/* The mapping is live again, with the device's bytes. */
	assert_memory_equal(map, secret, sizeof(secret));
	munmap(map, TM_BAR0_SIZE);
	close(fd);
	vfpm_client_close(c);
	assert_back_to_baseline(f, &after);
	report("revoked BAR memfd grown back", "contents kept apart; rewritten on restore",
	       &f->base, &during, &after);
}

/* ---- floods ---- */

/* A non-blocking connect that waits for room in the listen queue; -1 on failure. */
static int flood_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	long deadline = now_ms() + 2000;

	if (sock < 0)
		return -1;
	strcpy(addr.sun_path, path);
	while (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (errno != EAGAIN || now_ms() > deadline) {
			close(sock);
			return -1;
		}
		sleep_ms(1);
	}
	return sock;
}

/* Sockets the server has closed (EOF or reset), among n. */
static unsigned int count_closed(const int *socks, unsigned int n)
{
	unsigned int closed = 0;

	for (unsigned int i = 0; i < n; i++) {
		struct pollfd pfd = { .fd = socks[i], .events = POLLIN };
		char c;

		if (poll(&pfd, 1, 0) == 1 && recv(socks[i], &c, 1, MSG_DONTWAIT | MSG_PEEK) <= 0)
			closed++;
	}
	return closed;
}

/* The other device's low power with a wakeup eventfd works under the flood. */
static void check_other_wakeup(struct hfix *f)
{
	struct vfpm_client *c;
	int efd = t_eventfd();

	assert_int_equal(vfpm_client_connect(f->b, &c), 0);
	assert_int_equal(vfpm_client_low_power_entry_with_wakeup(c, efd), 0);
	assert_int_equal(vfpm_client_low_power_exit(c), 0);
	vfpm_client_close(c);
	close(efd);
}

#define FLOOD_CONNS 1100

static void connection_flood(struct hfix *f, const char *attack, const char *held,
			     const char *logged, long max_new_threads)
{
	static int socks[FLOOD_CONNS];
	struct res during, after;
	unsigned int n = 0;

	for (; n < FLOOD_CONNS; n++) {
		socks[n] = flood_connect(f->a);
		if (socks[n] < 0)
			break;
	}
	assert_int_equal(n, FLOOD_CONNS);
	sleep_ms(300);
	res_read(f->pid, &during);
	assert_true(during.threads <= f->base.threads + max_new_threads);
	check_other_device(f);
	check_other_wakeup(f);
	assert_logged(f, logged);
	/* The connections over the limit were closed, the others are held. */
	assert_true(count_closed(socks, n) >= FLOOD_CONNS - (unsigned int)max_new_threads);
	for (unsigned int i = 0; i < n; i++)
		close(socks[i]);
	assert_back_to_baseline(f, &after);
	/* And the attacked device takes clients again. */
	struct vfpm_client *c;

	assert_int_equal(vfpm_client_connect(f->a, &c), 0);
	t_check_client(c);
	vfpm_client_close(c);
	report(attack, held, &f->base, &during, &after);
}

static int hfix_setup_nofile(void **state)
{
	return hfix_setup_with(state, 1024, NULL);
}

/* 1,100 connections to one device under a 1,024-fd limit: the device's own limit holds. */
static void test_connection_flood(void **state)
{
	connection_flood(*state, "1,100 connections to one device (fd limit 1,024)",
			 "64 connections per device", "this device's connection limit", 64 + 2);
}

static int hfix_setup_no_device_limit(void **state)
{
	static const char *const args[] = { "--max-connections", "100000", NULL };

	return hfix_setup_with(state, 1024, args);
}

/* The same without a per-device limit: the process's budget, from the fd limit, holds. */
static void test_connection_flood_process_budget(void **state)
{
	connection_flood(*state, "1,100 connections, no per-device limit (fd limit 1,024)",
			 "process budget (1,024 - 64) / 4 = 240, the last 60 kept for devices "
			 "with fewer than 4", "the process's connection budget", 180 + 2);
}

static int hfix_setup_no_limits(void **state)
{
	static const char *const args[] = {
		"--max-connections", "100000", "--max-total-connections", "100000", NULL,
	};

	return hfix_setup_with(state, 1024, args);
}

/*
 * Limits lifted, so that a flood really fills the fd table: the newest
 * connection to any device is accepted and closed at once on the reserve
 * fd (never left queued), and all is well again once the flood is gone.
 */
static void test_fd_limit_reached(void **state)
{
	struct hfix *f = *state;
	static int socks[FLOOD_CONNS];
	struct res during, after;
	unsigned int n = 0;
	struct vfpm_client *c;
	long start;
	char byte;
	int sock;

	for (; n < FLOOD_CONNS; n++) {
		socks[n] = flood_connect(f->a);
		assert_true(socks[n] >= 0);
	}
	sleep_ms(300);
	res_read(f->pid, &during);
	assert_alive(f);
	assert_true(during.fds >= 1000);
	/* A new client of the other device hears at once that there is no room. */
	start = now_ms();
	sock = raw_connect(f->b);
	assert_true(recv(sock, &byte, 1, 0) <= 0);
	assert_true(now_ms() - start < HS_ANSWER_MS);
	close(sock);
	assert_logged(f, "the process is out of file descriptors");
	for (unsigned int i = 0; i < n; i++)
		close(socks[i]);
	assert_back_to_baseline(f, &after);
	check_other_device(f);
	assert_int_equal(vfpm_client_connect(f->a, &c), 0);
	t_check_client(c);
	vfpm_client_close(c);
	report("1,100 connections with the limits lifted (fd limit 1,024)",
	       "reserve fd: the newest connection closed at once, any device", &f->base,
	       &during, &after);
}

static int hfix_setup_timeouts(void **state)
{
	static const char *const args[] = {
		"--version-timeout", "1000", "--msg-timeout", "1000", NULL,
	};

	return hfix_setup_with(state, 0, args);
}

/* Half-sent messages: before VERSION and after, each dropped at its deadline. */
static void test_slowloris(void **state)
{
	struct hfix *f = *state;
	static int socks[600];
	struct vfio_user_header hdr = {
		.msg_id = 1, .command = VFIO_USER_DEVICE_GET_INFO, .msg_size = 1u << 20,
	};
	struct res during, after;
	unsigned int n;
	long start;

	/* 10 that do VERSION, then begin a 1 MiB message and stall. */
	for (n = 0; n < 10; n++) {
		socks[n] = raw_connect(f->a);
		raw_version(socks[n]);
		assert_int_equal(send(socks[n], &hdr, sizeof(hdr), MSG_NOSIGNAL), sizeof(hdr));
		assert_int_equal(send(socks[n], socks, 100, MSG_NOSIGNAL), 100);
	}
	/* 590 that never finish VERSION's header, on two devices. */
	for (; n < 600; n++) {
		socks[n] = flood_connect(n % 2 ? f->a : f->p);
		assert_true(socks[n] >= 0);
		send(socks[n], &hdr, 8, MSG_NOSIGNAL);	/* refused ones may be closed already */
	}
	start = now_ms();
	sleep_ms(200);
	res_read(f->pid, &during);
	/* At most 64 per device were admitted. */
	assert_true(during.threads <= f->base.threads + 2 * 64 + 2);
	check_other_device(f);
	/* Within the deadlines (1 s) every one of them is dropped. */
	while (count_closed(socks, 600) < 600) {
		if (now_ms() - start > 5000)
			fail_msg("only %u of 600 stalled clients dropped after 5 s",
				 count_closed(socks, 600));
		sleep_ms(50);
	}
	assert_logged(f, "did not complete VERSION within 1000 ms");
	assert_logged(f, "began a message and did not finish it within 1000 ms");
	for (n = 0; n < 600; n++)
		close(socks[n]);
	assert_back_to_baseline(f, &after);
	report("600 half-sent messages (before and after VERSION)",
	       "64 per device; VERSION and message deadlines (1 s here, 5 s / 10 s by default)",
	       &f->base, &during, &after);
}

/* One byte of a message with up to 253 fds, ten times: only max_msg_fds are ever held. */
static void test_held_fds(void **state)
{
	struct hfix *f = *state;
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	struct vfio_user_header hdr = {
		.msg_id = 7, .command = VFIO_USER_DEVICE_GET_INFO,
		.msg_size = sizeof(hdr) + sizeof(info),
	};
	uint8_t msg[sizeof(hdr) + sizeof(info)];
	struct res during, after;
	int sock = raw_connect(f->a), fds[250];
	unsigned int sent = 0;

	raw_version(sock);
	for (int i = 0; i < 250; i++) {
		fds[i] = eventfd(0, EFD_CLOEXEC);
		assert_true(fds[i] >= 0);
	}
	memcpy(msg, &hdr, sizeof(hdr));
	memcpy(msg + sizeof(hdr), &info, sizeof(info));
	/* Ten pieces of one byte, 25 fds each, and the message left unfinished. */
	for (; sent < 10; sent++) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 25)];
			struct cmsghdr align;
		} ctl;
		struct iovec iov = { .iov_base = msg + sent, .iov_len = 1 };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
		};
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * 25);
		memcpy(CMSG_DATA(c), fds + sent * 25, sizeof(int) * 25);
		assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), 1);
	}
	sleep_ms(300);
	res_read(f->pid, &during);
	/* Its socket, its thread's share, and at most max_msg_fds (16) of the 250. */
	assert_true(during.fds <= f->base.fds + 1 + 16);
	check_other_device(f);
	/* The rest of the message: refused for its fds, and the connection goes on. */
	assert_int_equal(send(sock, msg + sent, sizeof(msg) - sent, MSG_NOSIGNAL),
			 (ssize_t)(sizeof(msg) - sent));
	raw_expect_error(sock, 7, VFIO_USER_DEVICE_GET_INFO, EINVAL);
	assert_int_equal(raw_send(sock, 8, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info),
				  NULL, 0), 0);
	assert_int_equal(raw_expect_ok(sock, 8, VFIO_USER_DEVICE_GET_INFO), sizeof(info));
	assert_logged(f, "sent more than max_msg_fds (16) fds");
	for (int i = 0; i < 250; i++)
		close(fds[i]);
	close(sock);
	assert_back_to_baseline(f, &after);
	report("250 fds on one half-sent message", "max_msg_fds (16) as the fds arrive",
	       &f->base, &during, &after);
}

/* A client that sends requests and never reads a reply: dropped at the deadline. */
static void test_replies_never_read(void **state)
{
	struct hfix *f = *state;
	struct vfio_user_region_access a = {
		.offset = 0, .region = VFIO_PCI_CONFIG_REGION_INDEX, .count = 256,
	};
	struct res during, after;
	int sock = raw_connect(f->a), sent = 0;
	long start;
	int buf = 0;

	raw_version(sock);
	assert_int_equal(setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf)), 0);
	/* Config reads of 256 bytes until the server's replies fill both buffers. */
	for (; sent < 20000; sent++) {
		if (raw_send(sock, (uint16_t)sent, VFIO_USER_REGION_READ, 0, &a, sizeof(a), NULL, 0))
			break;
		if (sent % 64 == 63) {
			struct pollfd pfd = { .fd = sock, .events = POLLOUT };

			if (poll(&pfd, 1, 50) == 0)
				break;	/* the server stopped reading: its sends are blocked */
		}
	}
	start = now_ms();
	res_read(f->pid, &during);
	check_other_device(f);
	/* Within the message deadline (1 s here) the server gives up on it. */
	assert_logged(f, "did not read its replies for 1000 ms");
	assert_true(now_ms() - start < 5000);
	close(sock);
	assert_back_to_baseline(f, &after);
	report("requests sent, replies never read", "send deadline = message deadline (1 s here)",
	       &f->base, &during, &after);
}

/* A twin socket whose client never answers DMA: the model's DMA times out, the device lives. */
static void test_twin_dma_never_answered(void **state)
{
	struct hfix *f = *state;
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8,"
				   "\"twin_socket\":{\"supported\":true}}}";
	uint8_t vbuf[sizeof(struct vfio_user_version) + sizeof(json)];
	struct vfio_user_version ver = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };
	struct vfio_user_dma_map map = {
		.argsz = sizeof(map), .flags = VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE,
		.addr = 0x100000, .size = 0x1000,
	};
	struct res during, after;
	struct vfpm_msg m;
	int sock = raw_connect(f->a), twin;
	uint16_t cmd16 = PCI_COMMAND_MEMORY;
	long start;

	memcpy(vbuf, &ver, sizeof(ver));
	memcpy(vbuf + sizeof(ver), json, sizeof(json));
	assert_int_equal(raw_send(sock, 1, VFIO_USER_VERSION, 0, vbuf, sizeof(vbuf), NULL, 0), 0);
	raw_recv(sock, &m);
	assert_int_equal(m.nfds, 1);
	twin = vfpm_msg_take_fd(&m, 0);	/* held, never read */
	vfpm_msg_release(&m);
	assert_int_equal(raw_send(sock, 2, VFIO_USER_DMA_MAP, 0, &map, sizeof(map), NULL, 0), 0);
	assert_int_equal(raw_expect_ok(sock, 2, VFIO_USER_DMA_MAP), 0);
	{
		uint8_t w[sizeof(struct vfio_user_region_access) + 4];
		struct vfio_user_region_access *a = (void *)w;
		uint32_t regs[3][2] = {
			{ TM_REG_DMA_ADDR, 0x100000 }, { TM_REG_DMA_ADDR + 4, 0 },
			{ TM_REG_DMA_CMD, TM_DMA_READ },
		};

		*a = (struct vfio_user_region_access){
			.offset = PCI_COMMAND, .region = VFIO_PCI_CONFIG_REGION_INDEX, .count = 2,
		};
		memcpy(a->data, &cmd16, 2);
		assert_int_equal(raw_send(sock, 3, VFIO_USER_REGION_WRITE, 0, w, sizeof(*a) + 2,
					  NULL, 0), 0);
		raw_expect_ok(sock, 3, VFIO_USER_REGION_WRITE);
		start = now_ms();
		for (int i = 0; i < 3; i++) {
			*a = (struct vfio_user_region_access){
				.offset = regs[i][0], .region = VFIO_PCI_BAR2_REGION_INDEX, .count = 4,
			};
			memcpy(a->data, &regs[i][1], 4);
			assert_int_equal(raw_send(sock, (uint16_t)(4 + i), VFIO_USER_REGION_WRITE, 0,
						  w, sizeof(w), NULL, 0), 0);
			raw_expect_ok(sock, (uint16_t)(4 + i), VFIO_USER_REGION_WRITE);
		}
	}
	/* The model's DMA waited for the message deadline (1 s here), not forever. */
	assert_true(now_ms() - start >= 900);
	res_read(f->pid, &during);
	check_other_device(f);
	assert_logged(f, "the client did not answer in time");
	close(twin);
	close(sock);
	assert_back_to_baseline(f, &after);
	report("twin socket: DMA requests never answered", "DMA reply deadline (1 s here)",
	       &f->base, &during, &after);
}

static unsigned int read_max_map_count(void)
{
	FILE *m = fopen("/proc/sys/vm/max_map_count", "re");
	unsigned int n = 65530;

	if (m) {
		if (fscanf(m, "%u", &n) != 1)
			n = 65530;
		fclose(m);
	}
	return n;
}

/* Map 4 KiB windows until the server says no: how many it took, and its last answer. */
static unsigned int map_until_refused(struct vfpm_client *c, int fd, uint64_t base, int *err)
{
	struct vfpm_client_dma map = {
		.size = 4096, .flags = VFPM_CLIENT_DMA_READ | VFPM_CLIENT_DMA_WRITE, .fd = fd,
	};
	unsigned int n = 0;

	for (;;) {
		map.iova = base + (uint64_t)n * 4096;
		*err = vfpm_client_dma_map(c, &map);
		if (*err)
			return n;
		n++;
	}
}

/* DMA windows by the ten thousand: the process's budget keeps room in vm.max_map_count. */
static void test_dma_map_flood(void **state)
{
	struct hfix *f = *state;
	unsigned int budget = read_max_map_count() / 2, taken = 0;
	struct vfpm_client *c[3], *other;
	struct vfpm_client_dma map = {
		.iova = 0, .size = 4096, .flags = VFPM_CLIENT_DMA_READ,
	};
	struct res during, after;
	int fd = guest_memfd(4096, 0x11), err;

	for (int i = 0; i < 3; i++) {
		unsigned int n;

		assert_int_equal(vfpm_client_connect(f->a, &c[i]), 0);
		n = map_until_refused(c[i], fd, (uint64_t)i << 40, &err);
		assert_int_equal(err, -ENOSPC);
		/* Each connection has 16,384 at most; all of them together, the budget. */
		assert_true(n <= 16384);
		taken += n;
	}
	assert_int_equal(taken, budget);
	res_read(f->pid, &during);
	assert_true(during.maps >= f->base.maps + budget);
	/* New connections (a thread each) and requests still work on the other device. */
	check_other_device(f);
	check_other_wakeup(f);
	assert_int_equal(vfpm_client_connect(f->b, &other), 0);
	map.fd = fd;
	assert_int_equal(vfpm_client_dma_map(other, &map), -ENOSPC);
	assert_logged(f, "DMA windows in use");
	for (int i = 0; i < 3; i++)
		vfpm_client_close(c[i]);
	/* The budget is given back with the mappings. */
	for (long deadline = now_ms() + HS_SETTLE_MS; (err = vfpm_client_dma_map(other, &map));) {
		assert_int_equal(err, -ENOSPC);
		assert_true(now_ms() < deadline);
		sleep_ms(50);
	}
	vfpm_client_close(other);
	close(fd);
	assert_back_to_baseline(f, &after);
	report("DMA_MAP of 4 KiB windows until refused, 3 connections",
	       "16,384 per connection; process budget = max_map_count / 2", &f->base, &during,
	       &after);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bar_memfd_truncated, hfix_setup, hfix_teardown),
		cmocka_unit_test_setup_teardown(test_bar_memfd_truncated_poller, hfix_setup,
						hfix_teardown),
		cmocka_unit_test_setup_teardown(test_dma_memfd_truncated, hfix_setup, hfix_teardown),
		cmocka_unit_test_setup_teardown(test_revoked_bar_regrown, hfix_setup, hfix_teardown),
		cmocka_unit_test_setup_teardown(test_connection_flood, hfix_setup_nofile,
						hfix_teardown),
		cmocka_unit_test_setup_teardown(test_connection_flood_process_budget,
						hfix_setup_no_device_limit, hfix_teardown),
		cmocka_unit_test_setup_teardown(test_fd_limit_reached, hfix_setup_no_limits,
						hfix_teardown),
		cmocka_unit_test_setup_teardown(test_slowloris, hfix_setup_timeouts, hfix_teardown),
		cmocka_unit_test_setup_teardown(test_held_fds, hfix_setup_timeouts, hfix_teardown),
		cmocka_unit_test_setup_teardown(test_replies_never_read, hfix_setup_timeouts,
						hfix_teardown),
		cmocka_unit_test_setup_teardown(test_twin_dma_never_answered, hfix_setup_timeouts,
						hfix_teardown),
		cmocka_unit_test_setup_teardown(test_dma_map_flood, hfix_setup, hfix_teardown),
	};
	struct rlimit rl;
	int failed;

	if (argc < 2) {
		fprintf(stderr, "usage: test-transport-hostile PATH-TO-hostile-server\n");
		return 2;
	}
	server_exe = argv[1];
	/* The floods need more fds than the usual soft limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	/* One attack at a time, when debugging: VFPM_TEST_FILTER=test_held_fds. */
	if (getenv("VFPM_TEST_FILTER"))
		cmocka_set_test_filter(getenv("VFPM_TEST_FILTER"));
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	printf("\n| attack | limit that held | threads before / during / after | fds | "
	       "RSS MiB | mappings |\n|---|---|---|---|---|---|\n");
	for (unsigned int i = 0; i < nrows; i++)
		printf("%s\n", rows[i]);
	return failed;
}
