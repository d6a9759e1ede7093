// SPDX-License-Identifier: MIT
/* Helpers shared by the vfpm benchmarks; see bench_common.h. */
#include "bench_common.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>

#include <vfpm/client.h>

const char *bench_prog = "bench";

_Noreturn void bench_die(const char *what, int err)
{
	fprintf(stderr, "%s: %s (%d: %s)\n", bench_prog, what, err,
		strerror(err < 0 ? -err : err));
	exit(EXIT_FAILURE);
}

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted sample. */
static double percentile(const double *sorted, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

void bench_stats(double *v, size_t n, struct bench_stats *s)
{
	if (n == 0)
		bench_die("statistics of an empty sample", EINVAL);
	qsort(v, n, sizeof(*v), cmp_double);
	*s = (struct bench_stats){ .n = n, .min = v[0], .max = v[n - 1],
				   .p50 = percentile(v, n, 50), .p99 = percentile(v, n, 99) };
}

double bench_median(double *v, size_t n)
{
	struct bench_stats s;

	bench_stats(v, n, &s);
	return s.p50;
}

const char *bench_verdict(bool met)
{
	return met ? "**met**" : "**not met**";
}

static void cpu_model(char *buf, size_t len)
{
	static const char *const keys[] = { "model name", "cpu model", "Processor", "uarch" };
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!colon)
			continue;
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			if (strncmp(line, keys[i], strlen(keys[i])) == 0) {
				colon++;
				colon += strspn(colon, " \t");
				colon[strcspn(colon, "\n")] = '\0';
				snprintf(buf, len, "%s", colon);
				fclose(f);
				return;
			}
		}
	}
	fclose(f);
}

void bench_machine(char *buf, size_t len)
{
	struct utsname u;
	char cpu[256];

	if (uname(&u))
		snprintf(u.release, sizeof(u.release), "unknown");
	cpu_model(cpu, sizeof(cpu));
	snprintf(buf, len, "nproc %ld, kernel %s, cpu %s", sysconf(_SC_NPROCESSORS_ONLN),
		 u.release, cpu);
}

FILE *bench_open(const char *dir, const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		bench_die(path, errno);
	return f;
}

void bench_close(FILE *f, const char *name)
{
	if (ferror(f) | fclose(f))
		bench_die(name, EIO);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

/* Directories made by bench_tmpdir and not removed yet: a benchmark that dies removes them. */
#define MAX_TMPDIRS 8
static char tmpdirs[MAX_TMPDIRS][64];

static void remove_tmpdirs_at_exit(void)
{
	for (int i = 0; i < MAX_TMPDIRS; i++)
		if (tmpdirs[i][0])
			nftw(tmpdirs[i], remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void bench_tmpdir(char *buf, size_t len)
{
	static bool registered;

	snprintf(buf, len, "/tmp/vfpm-bench-XXXXXX");
	if (!mkdtemp(buf))
		bench_die("mkdtemp", errno);
	if (!registered && atexit(remove_tmpdirs_at_exit) == 0)
		registered = true;
	for (int i = 0; i < MAX_TMPDIRS; i++) {
		if (!tmpdirs[i][0]) {
			snprintf(tmpdirs[i], sizeof(tmpdirs[i]), "%s", buf);
			break;
		}
	}
}

void bench_rmdir(const char *dir)
{
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	for (int i = 0; i < MAX_TMPDIRS; i++)
		if (strcmp(tmpdirs[i], dir) == 0)
			tmpdirs[i][0] = '\0';
}

/* ---- spinners: CPUs kept out of idle (see bench_common.h) ---- */

struct bench_spinners {
	atomic_bool stop;
	int count;
	pthread_t thread[CPU_SETSIZE];
};

static void *spinner_main(void *arg)
{
	atomic_bool *stop = arg;
	struct sched_param idle = { .sched_priority = 0 };
	/* Here, not in the attributes: glibc's refuse SCHED_IDLE. */
	int ret = pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);

	if (ret)
		bench_die("spinner: SCHED_IDLE", ret);
	/*
	 * No pause instruction in the loop: a hypervisor may take a long run of
	 * them for a vCPU spinning on a lock and deschedule it, the very exit
	 * the spinner is there to avoid.
	 */
	while (!atomic_load_explicit(stop, memory_order_relaxed))
		;
	return NULL;
}

struct bench_spinners *bench_spinners_start(void)
{
	struct bench_spinners *s = calloc(1, sizeof(*s));
	cpu_set_t allowed;

	if (!s)
		bench_die("calloc", ENOMEM);
	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		bench_die("sched_getaffinity", errno);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		pthread_attr_t attr;
		cpu_set_t one;
		int ret;

		if (!CPU_ISSET(cpu, &allowed))
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		ret = pthread_attr_init(&attr);
		if (!ret)
			ret = pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
		if (!ret)
			ret = pthread_create(&s->thread[s->count], &attr, spinner_main, &s->stop);
		if (ret)
			bench_die("spinner thread", ret);
		pthread_attr_destroy(&attr);
		s->count++;
	}
	return s;
}

void bench_spinners_stop(struct bench_spinners *s)
{
	atomic_store(&s->stop, true);
	for (int i = 0; i < s->count; i++)
		pthread_join(s->thread[i], NULL);
	free(s);
}

int bench_pin_one_cpu(void)
{
	cpu_set_t allowed;
	int cpu = -1;

	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		bench_die("sched_getaffinity", errno);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &allowed))
			cpu = i;
	if (cpu < 0)
		bench_die("no CPU to run on", ESRCH);
	CPU_ZERO(&allowed);
	CPU_SET(cpu, &allowed);
	if (sched_setaffinity(0, sizeof(allowed), &allowed))
		bench_die("sched_setaffinity", errno);
	return cpu;
}

void bench_raise_nofile(unsigned long n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		bench_die("getrlimit", errno);
	if (rl.rlim_cur >= n)
		return;
	rl.rlim_cur = n;
	if (rl.rlim_max < n)
		rl.rlim_max = n;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		bench_die("setrlimit RLIMIT_NOFILE (run as root)", errno);
}

static long status_field(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long value = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		bench_die("/proc/self/status", errno);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) == 0) {
			value = strtol(line + klen, NULL, 10);
			break;
		}
	}
	fclose(f);
	if (value < 0)
		bench_die(key, ENOENT);
	return value;
}

long bench_threads(void)
{
	return status_field("Threads:");
}

long bench_rss_kib(void)
{
	return status_field("VmRSS:");
}

void bench_enable_memory(struct vfpm_client *c)
{
	uint16_t cmd;
	ssize_t n = vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd,
					    sizeof(cmd));

	if (n != (ssize_t)sizeof(cmd))
		bench_die("read the command register", n < 0 ? (int)n : EIO);
	cmd |= PCI_COMMAND_MEMORY;
	n = vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd,
				     sizeof(cmd));
	if (n != (ssize_t)sizeof(cmd))
		bench_die("write the command register", n < 0 ? (int)n : EIO);
}

/* ---- the process's own fds and threads ---- */

void bench_fd_census(struct bench_fd_census *c)
{
	static const char *const prefix[BENCH_FD_KINDS] = {
		[BENCH_FD_SOCKET] = "socket:", [BENCH_FD_MEMFD] = "/memfd:",
		[BENCH_FD_EVENTFD] = "anon_inode:[eventfd]",
		[BENCH_FD_EPOLL] = "anon_inode:[eventpoll]",
		[BENCH_FD_TIMERFD] = "anon_inode:[timerfd]",
	};
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	if (!d)
		bench_die("/proc/self/fd", errno);
	*c = (struct bench_fd_census){ 0 };
	while ((e = readdir(d))) {
		char link[PATH_MAX] = "", path[320];
		enum bench_fd_kind k = BENCH_FD_OTHER;
		ssize_t n;

		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0)
			link[n] = '\0';
		for (int i = 0; i < BENCH_FD_OTHER; i++)
			if (strncmp(link, prefix[i], strlen(prefix[i])) == 0)
				k = (enum bench_fd_kind)i;
		c->kind[k]++;
		c->total++;
	}
	closedir(d);
}

void bench_sample_threads(pid_t pid, struct bench_sched *s, char *names, size_t len)
{
	long self = pid ? -1 : (long)gettid();
	char dir[64];
	struct dirent *e;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/task", pid ? (int)pid : (int)getpid());
	d = opendir(dir);
	if (!d)
		bench_die(dir, errno);
	s->n = 0;
	if (names)
		names[0] = '\0';
	while ((e = readdir(d))) {
		unsigned long long run, wait, slices;
		char path[400], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.' || atol(e->d_name) == self)
			continue;
		snprintf(path, sizeof(path), "%s/%s/schedstat", dir, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;	/* a thread that just ended */
		if (fscanf(f, "%llu %llu %llu", &run, &wait, &slices) == 3 &&
		    s->n < BENCH_MAX_THREADS) {
			s->t[s->n].tid = atol(e->d_name);
			s->t[s->n].run_ns = run;
			s->t[s->n].slices = slices;
			s->n++;
		}
		fclose(f);
		if (!names)
			continue;
		snprintf(path, sizeof(path), "%s/%s/comm", dir, e->d_name);
		f = fopen(path, "r");
		if (f && fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		if (f)
			fclose(f);
		if (strlen(names) + strlen(comm) + 3 < len)
			strcat(strcat(names, names[0] ? ", " : ""), comm);
	}
	closedir(d);
}

void bench_sched_delta(const struct bench_sched *a, const struct bench_sched *b,
		       uint64_t *run_ns, uint64_t *slices, int *ended)
{
	*run_ns = *slices = 0;
	*ended = a->n;
	for (int i = 0; i < b->n; i++) {
		uint64_t run0 = 0, slices0 = 0;

		for (int j = 0; j < a->n; j++) {
			if (a->t[j].tid == b->t[i].tid) {
				run0 = a->t[j].run_ns;
				slices0 = a->t[j].slices;
				(*ended)--;
			}
		}
		*run_ns += b->t[i].run_ns - run0;
		*slices += b->t[i].slices - slices0;
	}
}

void bench_rusage_others(uint64_t *cpu_us, uint64_t *switches)
{
	struct rusage all, mine;

	if (getrusage(RUSAGE_SELF, &all) || getrusage(RUSAGE_THREAD, &mine))
		bench_die("getrusage", errno);
	*cpu_us = (uint64_t)(all.ru_utime.tv_sec + all.ru_stime.tv_sec -
			     mine.ru_utime.tv_sec - mine.ru_stime.tv_sec) * 1000000u +
		  (uint64_t)(all.ru_utime.tv_usec + all.ru_stime.tv_usec -
			     mine.ru_utime.tv_usec - mine.ru_stime.tv_usec);
	*switches = (uint64_t)(all.ru_nvcsw + all.ru_nivcsw - mine.ru_nvcsw - mine.ru_nivcsw);
}

/* ---- the raw AF_UNIX baseline ---- */

struct bench_echo {
	int listen_fd;
	int stop_efd;
	size_t req_size, reply_size;
	pthread_t accept_thread;
};

struct echo_peer {
	int sock;
	size_t req_size, reply_size;
};

static bool read_exact(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, (char *)buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

static bool write_all(int fd, const void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write(fd, (const char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

static void *echo_peer_main(void *arg)
{
	struct echo_peer p = *(struct echo_peer *)arg;
	uint8_t req[256] = { 0 }, reply[256] = { 0 };

	free(arg);
	while (read_exact(p.sock, req, p.req_size)) {
		memcpy(reply, req, BENCH_HDR_SIZE);	/* the header comes back, as in vfio-user */
		if (!write_all(p.sock, reply, p.reply_size))
			break;
	}
	close(p.sock);
	return NULL;
}

uint64_t bench_run_window(pthread_barrier_t *start, unsigned int run_ms, atomic_bool *stop)
{
	int ret = pthread_barrier_wait(start);
	uint64_t began;

	if (ret != 0 && ret != PTHREAD_BARRIER_SERIAL_THREAD)
		bench_die("pthread_barrier_wait", ret);
	began = bench_now_ns();
	bench_sleep_ms(run_ms);
	atomic_store(stop, true);
	return began;
}

int bench_accept_or_stop(int listen_fd, int stop_efd)
{
	for (;;) {
		struct pollfd pfd[2] = { { .fd = listen_fd, .events = POLLIN },
					 { .fd = stop_efd, .events = POLLIN } };
		int sock;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			bench_die("raw server poll", errno);
		}
		if (pfd[1].revents)
			return -1;
		sock = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0)
			bench_die("raw server accept", errno);
		return sock;
	}
}

static void *echo_accept_main(void *arg)
{
	struct bench_echo *e = arg;

	for (;;) {
		int sock = bench_accept_or_stop(e->listen_fd, e->stop_efd);
		struct echo_peer *p;
		pthread_t peer;

		if (sock < 0)
			return NULL;
		p = malloc(sizeof(*p));
		if (!p)
			bench_die("malloc", ENOMEM);
		*p = (struct echo_peer){ .sock = sock, .req_size = e->req_size,
					 .reply_size = e->reply_size };
		/* Detached: a peer thread ends at its client's EOF and owns nothing of e. */
		if (pthread_create(&peer, NULL, echo_peer_main, p) || pthread_detach(peer))
			bench_die("pthread_create", EAGAIN);
	}
}

struct bench_echo *bench_echo_start(const char *path, size_t req_size, size_t reply_size)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct bench_echo *e = calloc(1, sizeof(*e));

	if (!e || req_size > 256 || reply_size > 256)
		bench_die("bench_echo_start", EINVAL);
	e->req_size = req_size;
	e->reply_size = reply_size;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	e->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (e->listen_fd < 0 || bind(e->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) ||
	    listen(e->listen_fd, 64))
		bench_die("echo listen", errno);
	e->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (e->stop_efd < 0)
		bench_die("eventfd", errno);
	if (pthread_create(&e->accept_thread, NULL, echo_accept_main, e))
		bench_die("pthread_create", EAGAIN);
	return e;
}

/* Stops accepting; the peer threads end at their clients' EOF. */
void bench_echo_stop(struct bench_echo *e)
{
	uint64_t one = 1;

	if (write(e->stop_efd, &one, sizeof(one)) != sizeof(one))
		bench_die("eventfd write", errno);
	pthread_join(e->accept_thread, NULL);
	close(e->stop_efd);
	close(e->listen_fd);
	free(e);
}

int bench_unix_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof(addr)))
		bench_die("connect to the raw echo server", errno);
	return sock;
}

void bench_raw_round_trip(int sock, size_t req_size, size_t reply_size)
{
	uint8_t req[256] = { 0 }, reply[256];

	if (!write_all(sock, req, req_size) || !read_exact(sock, reply, reply_size))
		bench_die("raw round trip", errno ? errno : EPIPE);
}
