// SPDX-License-Identifier: MIT
/*
 * bench-syscalls: issue 15's "2 syscalls per request on the server (one
 * receive, one send)".
 *
 * The server runs in a child process of its own, so that what is counted is
 * the server's alone: an in-process vfpm server of the memory device on the
 * event loop, or (the baseline) the raw AF_UNIX echo server of the other
 * benchmarks (a thread per connection: one read, one write per request).
 * Its syscalls are counted from outside with `perf stat -p PID` on the
 * raw_syscalls:sys_enter tracepoint (all threads of the process, present and
 * future) and on the tracepoints of the syscalls a server loop makes; "other"
 * is the total minus those.
 *
 * For each server and each client count (1 and 8; every client a connection
 * of its own to the one device, in a thread of this process): connect and
 * warm up, start perf, let it attach, run the requests (4-byte REGION_READs
 * of BAR2; the raw ones of the same sizes), stop perf.  What the server does
 * with no request at all (the loop's timer tick, the watchdog) is counted
 * over an idle window of the same server first and subtracted at the rate it
 * ran, so that the figure is per request.
 */
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vfpm/client.h>
#include <vfpm/transport.h>
#include "devices.h"

#define MAX_CLIENTS 8
/* perf needs a moment to attach to every thread before the requests start. */
#define PERF_SETTLE_MS 500

enum server_kind { S_RAW, S_VFPM, S_COUNT };
enum counter { C_TOTAL, C_RECVMSG, C_SENDMSG, C_READ, C_WRITE, C_EPOLL_WAIT, C_EPOLL_CTL,
	       C_FUTEX, C_COUNT };

static const char *const counter_event[C_COUNT] = {
	[C_TOTAL] = "raw_syscalls:sys_enter",
	[C_RECVMSG] = "syscalls:sys_enter_recvmsg",
	[C_SENDMSG] = "syscalls:sys_enter_sendmsg",
	[C_READ] = "syscalls:sys_enter_read",
	[C_WRITE] = "syscalls:sys_enter_write",
	[C_EPOLL_WAIT] = "syscalls:sys_enter_epoll_wait",
	[C_EPOLL_CTL] = "syscalls:sys_enter_epoll_ctl",
	[C_FUTEX] = "syscalls:sys_enter_futex",
};

static const char *const counter_name[C_COUNT] = {
	[C_TOTAL] = "total", [C_RECVMSG] = "recvmsg", [C_SENDMSG] = "sendmsg",
	[C_READ] = "read", [C_WRITE] = "write", [C_EPOLL_WAIT] = "epoll_wait",
	[C_EPOLL_CTL] = "epoll_ctl", [C_FUTEX] = "futex",
};

struct window {
	double counts[C_COUNT];
	double seconds;
};

struct cell {
	enum server_kind kind;
	int clients;
	long requests;
	double per_request[C_COUNT];
	double other;
};

/* ---- the server process ---- */

struct server_proc {
	pid_t pid;
	int hold_fd;		/* the write end of a pipe: the server exits at its EOF */
};

static void serve_until_eof(enum server_kind kind, const char *path, int ready_fd, int hold_fd)
{
	struct vfpm_pci_dev *pdev;
	struct vfpm_server *srv;
	char byte = 'r', sink;
	int err = 0;

	if (kind == S_RAW) {
		bench_echo_start(path, BENCH_READ_REQ_SIZE, BENCH_READ_REPLY_SIZE);
	} else {
		err = vfpm_memdev_create(false, &pdev);
		if (!err)
			err = vfpm_server_create(vfpm_pci_device(pdev), path, NULL, &srv);
		if (!err)
			err = vfpm_server_start(srv);
	}
	if (err)
		bench_die("server", err);
	if (write(ready_fd, &byte, 1) != 1)
		bench_die("ready pipe", errno);
	while (read(hold_fd, &sink, 1) != 0)
		;
	_exit(0);
}

static void server_start(struct server_proc *sp, enum server_kind kind, const char *path)
{
	int ready[2], hold[2];
	char byte;

	if (pipe2(ready, O_CLOEXEC) || pipe2(hold, O_CLOEXEC))
		bench_die("pipe", errno);
	fflush(NULL);
	sp->pid = fork();
	if (sp->pid < 0)
		bench_die("fork", errno);
	if (sp->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(ready[0]);
		close(hold[1]);
		serve_until_eof(kind, path, ready[1], hold[0]);
	}
	close(ready[1]);
	close(hold[0]);
	if (read(ready[0], &byte, 1) != 1)
		bench_die("the server process did not start", ECHILD);
	close(ready[0]);
	sp->hold_fd = hold[1];
}

static void server_stop(struct server_proc *sp)
{
	int status;

	close(sp->hold_fd);
	if (waitpid(sp->pid, &status, 0) != sp->pid)
		bench_die("waitpid", errno);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		bench_die("the server process failed", ECHILD);
}

/* ---- perf ---- */

static pid_t perf_start(pid_t target, const char *out)
{
	char pidarg[32], events[1024] = "";
	pid_t pid;

	snprintf(pidarg, sizeof(pidarg), "%d", (int)target);
	for (int c = 0; c < C_COUNT; c++) {
		strcat(events, counter_event[c]);
		if (c + 1 < C_COUNT)
			strcat(events, ",");
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		bench_die("fork", errno);
	if (pid == 0) {
		execlp("perf", "perf", "stat", "-x", ",", "-o", out, "-e", events, "-p", pidarg,
		       (char *)NULL);
		fprintf(stderr, "bench-syscalls: exec perf: %s\n", strerror(errno));
		_exit(127);
	}
	bench_sleep_ms(PERF_SETTLE_MS);
	return pid;
}

/* Stop perf and read its counts (CSV: value,unit,event,...). */
static void perf_stop(pid_t pid, const char *out, struct window *w)
{
	char line[512];
	int status, seen = 0;
	FILE *f;

	bench_sleep_ms(PERF_SETTLE_MS);
	if (kill(pid, SIGINT))
		bench_die("kill perf", errno);
	if (waitpid(pid, &status, 0) != pid)
		bench_die("waitpid perf", errno);
	f = fopen(out, "r");
	if (!f)
		bench_die("perf's output", errno);
	while (fgets(line, sizeof(line), f)) {
		char *unit = strchr(line, ','), *event = unit ? strchr(unit + 1, ',') : NULL;

		if (!event)
			continue;
		event++;
		event[strcspn(event, ",")] = '\0';
		for (int c = 0; c < C_COUNT; c++) {
			if (strcmp(event, counter_event[c]) == 0) {
				/* "<not counted>" reads as 0: a syscall the server never made. */
				w->counts[c] = strtod(line, NULL);
				seen++;
			}
		}
	}
	fclose(f);
	if (seen != C_COUNT)
		bench_die("perf stat did not count every event (perf_event_paranoid?)", EPROTO);
}

/* ---- the clients ---- */

struct client_thread {
	enum server_kind kind;
	const char *path;
	struct vfpm_client *c;
	int sock;
	long requests;
	pthread_t thread;
};

static void one_request(struct client_thread *t)
{
	uint32_t value;
	ssize_t n;

	if (t->kind == S_RAW) {
		bench_raw_round_trip(t->sock, BENCH_READ_REQ_SIZE, BENCH_READ_REPLY_SIZE);
		return;
	}
	n = vfpm_client_region_read(t->c, BENCH_TRAPPED_BAR, BENCH_SCRATCH_OFFSET, &value,
				    sizeof(value));
	if (n != (ssize_t)sizeof(value))
		bench_die("REGION_READ", n < 0 ? (int)n : EIO);
}

static void *client_main(void *arg)
{
	struct client_thread *t = arg;

	for (long i = 0; i < t->requests; i++)
		one_request(t);
	return NULL;
}

static void run_clients(struct client_thread *t, int n, long requests)
{
	for (int i = 0; i < n; i++) {
		t[i].requests = requests;
		if (pthread_create(&t[i].thread, NULL, client_main, &t[i]))
			bench_die("pthread_create", EAGAIN);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i].thread, NULL);
}

static void measure(enum server_kind kind, int clients, long requests, const char *dir,
		    struct cell *cell)
{
	struct client_thread t[MAX_CLIENTS] = { 0 };
	struct window idle = { 0 }, busy = { 0 };
	struct server_proc sp;
	char path[128], out[128];
	uint64_t t0;
	pid_t perf;
	double sum = 0;

	snprintf(path, sizeof(path), "%s/%s.sock", dir, kind == S_RAW ? "raw" : "vfpm");
	snprintf(out, sizeof(out), "%s/perf.csv", dir);
	server_start(&sp, kind, path);
	for (int i = 0; i < clients; i++) {
		t[i] = (struct client_thread){ .kind = kind, .path = path, .sock = -1 };
		if (kind == S_RAW) {
			t[i].sock = bench_unix_connect(path);
		} else {
			int err = vfpm_client_connect(path, &t[i].c);

			if (err)
				bench_die("vfpm_client_connect", err);
			bench_enable_memory(t[i].c);
		}
	}
	run_clients(t, clients, 1000);		/* warm-up */

	t0 = bench_now_ns();
	perf = perf_start(sp.pid, out);
	perf_stop(perf, out, &idle);
	idle.seconds = (double)(bench_now_ns() - t0) / 1e9;

	t0 = bench_now_ns();
	perf = perf_start(sp.pid, out);
	run_clients(t, clients, requests);
	perf_stop(perf, out, &busy);
	busy.seconds = (double)(bench_now_ns() - t0) / 1e9;

	*cell = (struct cell){ .kind = kind, .clients = clients,
			       .requests = requests * clients };
	for (int c = 0; c < C_COUNT; c++) {
		double background = idle.counts[c] * busy.seconds / idle.seconds;

		cell->per_request[c] = (busy.counts[c] - background) / (double)cell->requests;
		if (c != C_TOTAL)
			sum += cell->per_request[c];
	}
	cell->other = cell->per_request[C_TOTAL] - sum;

	for (int i = 0; i < clients; i++) {
		if (kind == S_RAW)
			close(t[i].sock);
		else
			vfpm_client_close(t[i].c);
	}
	server_stop(&sp);
	unlink(path);
	unlink(out);
}

static void write_report(const char *out, const struct cell *cells, int n)
{
	FILE *md = bench_open(out, "syscalls.md");

	fprintf(md, "## 9. Syscalls per request on the server\n\n");
	fprintf(md, "The server in a child process of its own, its syscalls counted from outside "
		"with `perf stat -p PID` on raw_syscalls:sys_enter (every thread) and on the "
		"tracepoints of the syscalls named below; \"other\" is the total minus them. "
		"Requests: 4-byte REGION_READs of the memory device's BAR2 through the client "
		"library (vfpm, the event loop), or raw AF_UNIX messages of the same sizes "
		"against the echo server of the other benchmarks (a thread per connection: "
		"read + write); every client a connection of its own, in a thread of the "
		"benchmark. The server's count over an idle window of the same length (the "
		"loop's tick, the watchdog) is subtracted at its rate. Issue 15's target: 2 "
		"syscalls per request (one receive, one send).\n\n");
	fprintf(md, "| server | clients | requests | total / request |");
	for (int c = 1; c < C_COUNT; c++)
		fprintf(md, " %s |", counter_name[c]);
	fprintf(md, " other |\n|---|---:|---:|---:|");
	for (int c = 1; c < C_COUNT; c++)
		fprintf(md, "---:|");
	fprintf(md, "---:|\n");
	for (int i = 0; i < n; i++) {
		const struct cell *s = &cells[i];

		fprintf(md, "| %s | %d | %ld | %.2f |", s->kind == S_RAW ? "raw echo" : "vfpm",
			s->clients, s->requests, s->per_request[C_TOTAL]);
		for (int c = 1; c < C_COUNT; c++)
			fprintf(md, " %.2f |", s->per_request[c]);
		fprintf(md, " %.2f |\n", s->other);
	}
	fprintf(md, "\n| target | figure | target | verdict |\n|---|---:|---:|---|\n");
	for (int i = 0; i < n; i++) {
		const struct cell *s = &cells[i], *raw = NULL;

		if (s->kind != S_VFPM)
			continue;
		for (int j = 0; j < n; j++)
			if (cells[j].kind == S_RAW && cells[j].clients == s->clients)
				raw = &cells[j];
		fprintf(md, "| server syscalls per request, %d client%s | %.2f", s->clients,
			s->clients == 1 ? "" : "s", s->per_request[C_TOTAL]);
		if (raw)
			fprintf(md, " (raw echo: %.2f)", raw->per_request[C_TOTAL]);
		/* A little slack: the background subtraction is an estimate. */
		fprintf(md, " | 2 | %s |\n", bench_verdict(s->per_request[C_TOTAL] <= 2.1));
	}
	fprintf(md, "\n");
	bench_close(md, "syscalls.md");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "requests", required_argument, NULL, 'n' },
		{ 0 }
	};
	static const int client_counts[] = { 1, MAX_CLIENTS };
	const char *out = "bench/results";
	struct cell cells[S_COUNT * 2];
	long requests = 20000;
	int opt, n = 0;
	char dir[64];

	bench_prog = "bench-syscalls";
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (opt == 'o')
			out = optarg;
		else if (opt == 'n')
			requests = strtol(optarg, NULL, 10);
		else
			return 2;
	}
	if (requests < 1000)
		bench_die("--requests >= 1000 (per client)", EINVAL);
	bench_tmpdir(dir, sizeof(dir));
	for (int k = 0; k < 2; k++)
		for (int s = 0; s < S_COUNT; s++)
			measure((enum server_kind)s, client_counts[k], requests, dir, &cells[n++]);
	write_report(out, cells, n);
	bench_rmdir(dir);
	return 0;
}
