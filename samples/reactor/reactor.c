// SPDX-License-Identifier: MIT
/*
 * A reactor hosting many vfpm devices on one thread (README.md): one
 * epoll set holds vfpm's loop fd, a signalfd and the reactor's own timers,
 * and everything vfpm does (accepts, requests, replies, the runtime PM
 * core's timers and work) runs inside vfpm_loop_process on this thread.
 * The process never has a second thread; it checks so itself, once a
 * second.
 *
 * Each device is a page of trapped registers (reactor.h) whose runtime PM
 * callbacks only count.  One register is answered later: its read is
 * deferred and completed from the reactor's own timerfd, as a model that
 * waits for a backend must do on a reactor instead of blocking it.
 *
 *   vfpm-reactor --devices N --dir DIR [--ready FILE]
 *
 * serves devN.sock in DIR for N in 0 .. N-1 until SIGTERM or SIGINT, then
 * tears everything down and exits 0.  FILE receives the pid once every
 * server listens.
 */
#include "reactor.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <vfpm/log.h>
#include <vfpm/pci.h>
#include <vfpm/pm.h>
#include <vfpm/transport.h>

#define RX_MAX_DEVICES 65536u
/*
 * fds beyond one per device (its listening socket): the process's own,
 * vfpm's loop and reserve, and the clients' connections and eventfds.
 */
#define RX_FDS_SPARE 256u

/* What each fd in the reactor's epoll set is. */
enum rx_source {
	RX_SRC_VFPM,		/* vfpm_loop_fd: vfpm has work */
	RX_SRC_SIGNAL,		/* SIGTERM / SIGINT */
	RX_SRC_SLOW,		/* deferred reads are due */
	RX_SRC_CHECK,		/* once a second: still one thread? */
};

struct reactor;

/*
 * One device.  Its fields need no lock: every callback of the model runs
 * on the reactor's thread, inside vfpm_loop_process or in the create and
 * destroy calls main makes.
 */
struct rx_dev {
	struct reactor *r;
	struct vfpm_pci_dev *pdev;
	struct vfpm_server *srv;
	unsigned int index;
	uint32_t scratch;
	uint32_t suspends, resumes, deferred;
};

/* A read of RX_REG_SLOW waiting for the slow timer. */
struct rx_slow {
	struct rx_slow *next;
	struct rx_dev *d;
	struct vfpm_request *req;
	void *buf;		/* the access's buffer, kept by the core until completion */
};

struct reactor {
	unsigned int ndev;
	struct rx_dev *devs;
	struct vfpm_loop *loop;
	int epfd, sigfd, slow_fd, check_fd;
	struct rx_slow *slow_head, *slow_tail;
	/* Teardown has begun: reads are no longer deferred (see rx_teardown). */
	bool stopping;
	bool quit;
	bool failed;
};

/* ---- the device ---- */

static void rx_slow_answer(struct rx_slow *s)
{
	uint32_t v = ~s->d->scratch;

	memcpy(s->buf, &v, sizeof(v));
	s->d->deferred++;
	vfpm_request_complete(s->req, sizeof(v));
	free(s);
}

/* Answer every deferred read now (the reply goes out in vfpm_loop_process). */
static void rx_slow_complete_all(struct reactor *r)
{
	struct rx_slow *s = r->slow_head;

	r->slow_head = r->slow_tail = NULL;
	while (s) {
		struct rx_slow *next = s->next;

		rx_slow_answer(s);
		s = next;
	}
}

/*
 * Queue a read of RX_REG_SLOW for the slow timer; false when it must be
 * answered now (the caller cannot wait, or the reactor is stopping).  The
 * first read queued arms the timer; the ones queued after it ride along.
 */
static bool rx_slow_defer(struct rx_dev *d, struct vfpm_instance *inst, void *buf)
{
	const struct itimerspec due = { .it_value = { 0, RX_SLOW_MS * 1000000L } };
	struct reactor *r = d->r;
	struct rx_slow *s;

	if (r->stopping)
		return false;
	/* Before the defer: a handle once taken must be completed. */
	s = calloc(1, sizeof(*s));
	if (!s)
		return false;
	s->req = vfpm_request_defer(inst);
	if (!s->req) {
		free(s);
		return false;
	}
	s->d = d;
	s->buf = buf;
	if (r->slow_tail) {
		r->slow_tail->next = s;
	} else {
		r->slow_head = s;
		timerfd_settime(r->slow_fd, 0, &due, NULL);
	}
	r->slow_tail = s;
	return true;
}

static ssize_t rx_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, unsigned int bar,
			 uint64_t offset, void *buf, size_t count, bool write)
{
	struct rx_dev *d = vfpm_pci_model(pdev);
	uint32_t v;

	if (bar != 0 || count != 4 || offset % 4)
		return -EINVAL;
	if (write) {
		/* The other registers are read-only: writes to them are dropped. */
		if (offset == RX_REG_SCRATCH)
			memcpy(&d->scratch, buf, sizeof(d->scratch));
		return 4;
	}
	switch (offset) {
	case RX_REG_ID: v = RX_ID; break;
	case RX_REG_INDEX: v = d->index; break;
	case RX_REG_SCRATCH: v = d->scratch; break;
	case RX_REG_SUSPENDS: v = d->suspends; break;
	case RX_REG_RESUMES: v = d->resumes; break;
	case RX_REG_DEFERRED: v = d->deferred; break;
	case RX_REG_SLOW:
		if (rx_slow_defer(d, inst, buf))
			return -EINPROGRESS;
		v = ~d->scratch;
		break;
	default: v = 0; break;
	}
	memcpy(buf, &v, sizeof(v));
	return 4;
}

/* Nothing runs in the background to stop or restart: the callbacks count. */
static int rx_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	struct rx_dev *d = vfpm_pci_model(pdev);

	d->suspends++;
	return 0;
}

static int rx_runtime_resume(struct vfpm_pci_dev *pdev)
{
	struct rx_dev *d = vfpm_pci_model(pdev);

	d->resumes++;
	return 0;
}

static const struct vfpm_pci_model_ops rx_ops = {
	.bar_rw = rx_bar_rw,
	.runtime_suspend = rx_runtime_suspend,
	.runtime_resume = rx_runtime_resume,
};

/* Create device index and its server at DIR/devINDEX.sock, listening in r->loop. */
static int rx_dev_create(struct reactor *r, const char *dir, unsigned int index)
{
	struct rx_dev *d = &r->devs[index];
	struct vfpm_pci_desc desc = {
		.vendor_id = RX_VENDOR_ID, .device_id = RX_DEVICE_ID,
		.subsystem_vendor_id = RX_VENDOR_ID, .subsystem_id = RX_DEVICE_ID,
		.class_code = 0xff0000,
		.bars = { [0] = { .type = VFPM_PCI_BAR_MEM32, .size = RX_BAR0_SIZE } },
		.pm_cap = true,
	};
	char name[32], path[PATH_MAX];
	int err;

	d->r = r;
	d->index = index;
	snprintf(name, sizeof(name), "reactor%u", index);
	desc.name = name;
	if ((size_t)snprintf(path, sizeof(path), "%s/dev%u.sock", dir, index) >= sizeof(path))
		return -ENAMETOOLONG;
	err = vfpm_pci_dev_create(&desc, &rx_ops, d, &d->pdev);
	if (err) {
		fprintf(stderr, "vfpm-reactor: cannot create device %u: %s\n", index,
			strerror(-err));
		return err;
	}
	err = vfpm_server_create(vfpm_pci_device(d->pdev), path, NULL, &d->srv);
	if (!err) {
		err = vfpm_server_attach(d->srv, r->loop);
		if (err) {
			vfpm_server_destroy(d->srv);
			d->srv = NULL;
		}
	}
	if (err)
		fprintf(stderr, "vfpm-reactor: cannot serve device %u on %s: %s\n", index, path,
			strerror(-err));
	return err;
}

/* ---- the process ---- */

/* The process's thread count, from /proc/self/status; -1 when unknown. */
static long rx_threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long n = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

static void rx_check_threads(struct reactor *r, const char *when)
{
	long n = rx_threads();

	if (n == 1)
		return;
	fprintf(stderr, "vfpm-reactor: FAIL: %ld threads %s, not 1\n", n, when);
	r->failed = true;
}

/*
 * The listening sockets are one fd each, and the fd table is the
 * process's: raise the soft limit to the hard one, which needs no
 * privilege, and say what to do when even that is too low.  Before the
 * first server: vfpm sizes its connection budget from the limit then.
 */
static int rx_raise_fd_limit(unsigned int ndev)
{
	unsigned long long need = (unsigned long long)ndev + RX_FDS_SPARE;
	struct rlimit rl;
	int err;

	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		err = -errno;
		fprintf(stderr, "vfpm-reactor: getrlimit(RLIMIT_NOFILE): %s\n", strerror(-err));
		return err;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl)) {
			err = -errno;
			fprintf(stderr, "vfpm-reactor: cannot raise the fd limit to its hard limit "
				"%llu: %s\n", (unsigned long long)rl.rlim_max, strerror(-err));
			return err;
		}
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
		return 0;
	fprintf(stderr, "vfpm-reactor: %u devices need about %llu file descriptors, but the fd "
		"limit (RLIMIT_NOFILE) is %llu, its hard limit.  Raise the hard limit (prlimit "
		"--nofile=%llu:%llu as root, LimitNOFILE=%llu in a systemd unit) or serve fewer "
		"devices\n", ndev, need, (unsigned long long)rl.rlim_cur, need, need, need);
	return -EMFILE;
}

static int rx_epoll_add(struct reactor *r, int fd, enum rx_source what)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = what };

	return epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* The reactor's own fds: its epoll set and what it watches besides vfpm. */
static int rx_open_fds(struct reactor *r)
{
	const struct itimerspec second = { .it_value = { 1, 0 }, .it_interval = { 1, 0 } };
	sigset_t sigs;
	int err;

	/* Blocked, so that they arrive only through the signalfd. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL))
		return -errno;
	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	r->sigfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	r->slow_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	r->check_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (r->epfd < 0 || r->sigfd < 0 || r->slow_fd < 0 || r->check_fd < 0)
		return -errno;
	if (timerfd_settime(r->check_fd, 0, &second, NULL))
		return -errno;
	err = rx_epoll_add(r, r->sigfd, RX_SRC_SIGNAL);
	if (!err)
		err = rx_epoll_add(r, r->slow_fd, RX_SRC_SLOW);
	if (!err)
		err = rx_epoll_add(r, r->check_fd, RX_SRC_CHECK);
	return err;
}

static void rx_close_fds(struct reactor *r)
{
	int *fds[] = { &r->epfd, &r->sigfd, &r->slow_fd, &r->check_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (*fds[i] >= 0) {
			close(*fds[i]);
			*fds[i] = -1;
		}
}

/* Written under a temporary name and renamed: a reader never sees half of it. */
static int rx_write_ready(const char *path)
{
	char tmp[PATH_MAX];
	FILE *f;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) || rename(tmp, path)) {
		unlink(tmp);
		return -errno;
	}
	return 0;
}

static void rx_handle(struct reactor *r, enum rx_source what)
{
	struct signalfd_siginfo si;
	uint64_t ticks;
	int n;

	switch (what) {
	case RX_SRC_VFPM:
		/* Does not wait; what it leaves for later keeps the fd readable. */
		n = vfpm_loop_process(r->loop);
		if (n < 0) {
			fprintf(stderr, "vfpm-reactor: vfpm_loop_process: %s\n", strerror(-n));
			r->failed = r->quit = true;
		}
		break;
	case RX_SRC_SIGNAL:
		if (read(r->sigfd, &si, sizeof(si)) == sizeof(si))
			r->quit = true;
		break;
	case RX_SRC_SLOW:
		if (read(r->slow_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
			rx_slow_complete_all(r);
		break;
	case RX_SRC_CHECK:
		if (read(r->check_fd, &ticks, sizeof(ticks)) == sizeof(ticks))
			rx_check_threads(r, "while serving");
		break;
	}
}

/* The reactor: wait for any of its fds, handle what is ready, until a signal. */
static void rx_run(struct reactor *r)
{
	struct epoll_event ev[8];

	while (!r->quit) {
		int n = epoll_wait(r->epfd, ev, 8, -1);

		if (n < 0 && errno != EINTR) {
			perror("vfpm-reactor: epoll_wait");
			r->failed = true;
			return;
		}
		for (int i = 0; i < n; i++)
			rx_handle(r, ev[i].data.u32);
	}
}

/*
 * Stopping a server waits for the requests in flight, and a deferred read
 * completes only from our timer, which nobody runs while we stop: answer
 * the queued reads first, and defer no more.
 */
static void rx_teardown(struct reactor *r)
{
	int err;

	r->stopping = true;
	rx_slow_complete_all(r);
	for (unsigned int i = 0; i < r->ndev; i++)
		if (r->devs[i].srv)
			vfpm_server_destroy(r->devs[i].srv);	/* drives the loop itself */
	if (r->loop) {
		err = vfpm_loop_destroy(r->loop);
		if (err) {
			fprintf(stderr, "vfpm-reactor: vfpm_loop_destroy: %s\n", strerror(-err));
			r->failed = true;
		}
	}
	for (unsigned int i = 0; i < r->ndev; i++)
		if (r->devs[i].pdev)
			vfpm_pci_dev_destroy(r->devs[i].pdev);
	free(r->devs);
	rx_close_fds(r);
}

static void rx_usage(FILE *f)
{
	fprintf(f,
		"usage: vfpm-reactor --devices N --dir DIR [--ready FILE]\n"
		"\n"
		"Serve N devices (at most %u) over vfio-user at DIR/dev0.sock .. DIR/devN-1.sock\n"
		"from one thread: one epoll loop drives vfpm (vfpm_loop_process) and the runtime\n"
		"PM core.  Each device is a 4 KiB page of trapped registers (reactor.h).\n"
		"\n"
		"  --devices N   how many devices\n"
		"  --dir DIR     where their sockets go (an existing directory)\n"
		"  --ready FILE  write the pid there once every device listens\n"
		"  --help        this text\n"
		"\n"
		"SIGTERM or SIGINT: disconnect every client, tear down, exit 0.\n",
		RX_MAX_DEVICES);
}

static int rx_parse(int argc, char **argv, unsigned int *ndev, const char **dir,
		    const char **ready)
{
	static const struct option opts[] = {
		{ "devices", required_argument, NULL, 'n' },
		{ "dir", required_argument, NULL, 'd' },
		{ "ready", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long n;
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || !n || n > RX_MAX_DEVICES) {
				fprintf(stderr, "vfpm-reactor: --devices wants 1 to %u, not '%s'\n",
					RX_MAX_DEVICES, optarg);
				return 2;
			}
			*ndev = (unsigned int)n;
			break;
		case 'd': *dir = optarg; break;
		case 'r': *ready = optarg; break;
		case 'h': rx_usage(stdout); return 0;
		default: rx_usage(stderr); return 2;
		}
	}
	if (optind != argc || !*ndev || !*dir) {
		rx_usage(stderr);
		return 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct reactor r = { .epfd = -1, .sigfd = -1, .slow_fd = -1, .check_fd = -1 };
	const char *dir = NULL, *ready = NULL;
	unsigned int ndev = 0;
	int err, status;

	status = rx_parse(argc, argv, &ndev, &dir, &ready);
	if (status >= 0)
		return status;
	vfpm_log_set(vfpm_log_stderr, NULL, VFPM_LOG_WARNING);
	/* Before any device: the PM core's work then runs in our loop, not its threads. */
	err = vfpm_pm_worker_set_external(true);
	if (err) {
		fprintf(stderr, "vfpm-reactor: vfpm_pm_worker_set_external: %s\n", strerror(-err));
		return 1;
	}
	err = rx_raise_fd_limit(ndev);
	if (!err)
		err = rx_open_fds(&r);
	if (!err) {
		r.devs = calloc(ndev, sizeof(*r.devs));
		err = r.devs ? vfpm_loop_create(&r.loop) : -ENOMEM;
	}
	if (!err)
		err = rx_epoll_add(&r, vfpm_loop_fd(r.loop), RX_SRC_VFPM);
	for (unsigned int i = 0; !err && i < ndev; i++) {
		r.ndev = i + 1;	/* the teardown frees what exists of a failed one */
		err = rx_dev_create(&r, dir, i);
	}
	if (err) {
		fprintf(stderr, "vfpm-reactor: cannot start: %s\n", strerror(-err));
		rx_teardown(&r);
		return 1;
	}

	rx_check_threads(&r, "once every device listens");
	if (ready) {
		err = rx_write_ready(ready);
		if (err) {
			fprintf(stderr, "vfpm-reactor: cannot write %s: %s\n", ready, strerror(-err));
			r.failed = r.quit = true;
		}
	}
	printf("vfpm-reactor: %u devices in %s, pid %ld, one thread\n", ndev, dir, (long)getpid());
	fflush(stdout);

	rx_run(&r);
	rx_teardown(&r);
	rx_check_threads(&r, "after teardown");
	if (ready)
		unlink(ready);
	printf("vfpm-reactor: stopped%s\n", r.failed ? " (with failures)" : "");
	return r.failed ? 1 : 0;
}
