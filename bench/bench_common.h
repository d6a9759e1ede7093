/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the vfpm benchmarks (bench/): clocks, statistics, the
 * machine description, the report files and the small socket helpers the
 * round-trip benchmarks use for their raw AF_UNIX baseline.
 *
 * Every benchmark writes one Markdown section (NAME.md) and the data its plot
 * needs (NAME*.dat) into the output directory; bench/run.sh assembles them.
 * A broken benchmark dies with a message and exit status 1; a missed target
 * is only reported.
 */
#ifndef VFPM_BENCH_COMMON_H
#define VFPM_BENCH_COMMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* The vfio-user sizes of a 4-byte REGION_READ: header + region access (+ data). */
#define BENCH_HDR_SIZE 16u
#define BENCH_ACCESS_SIZE 16u
#define BENCH_READ_REQ_SIZE (BENCH_HDR_SIZE + BENCH_ACCESS_SIZE)
#define BENCH_READ_REPLY_SIZE (BENCH_HDR_SIZE + BENCH_ACCESS_SIZE + 4u)
/* The memory device's trapped BAR and a scratch register in it. */
#define BENCH_TRAPPED_BAR 2u
#define BENCH_SCRATCH_OFFSET 0x100u

struct vfpm_client;
/*
 * Set Memory Space Enable in the command register, as a guest driver does:
 * vfio-pci (and vfpm) answer EIO to BAR accesses while memory decode is off,
 * and every open resets the function.
 */
void bench_enable_memory(struct vfpm_client *c);

/* Set once by main: the program name used in messages. */
extern const char *bench_prog;

_Noreturn void bench_die(const char *what, int err);
uint64_t bench_now_ns(void);
void bench_sleep_ms(unsigned int ms);

/* Summary of a sample; the array is sorted in place. */
struct bench_stats {
	size_t n;
	double min, p50, p99, max;
};
void bench_stats(double *v, size_t n, struct bench_stats *s);
double bench_median(double *v, size_t n);

const char *bench_verdict(bool met);
/* "nproc N, kernel K, cpu C" */
void bench_machine(char *buf, size_t len);

/* Output files in the directory given with --out. */
FILE *bench_open(const char *dir, const char *name);
void bench_close(FILE *f, const char *name);

/*
 * A fresh private directory under /tmp for sockets (buf: at least 64 bytes);
 * remove it with bench_rmdir.  Removed at exit too if the benchmark dies.
 */
void bench_tmpdir(char *buf, size_t len);
void bench_rmdir(const char *dir);

/*
 * Keep every CPU this process may run on out of its idle states while a
 * measurement runs: one SCHED_IDLE thread pinned to each CPU spins until
 * bench_spinners_stop.  Why: on a VM, a CPU that goes idle halts, and the
 * wake of a thread blocked in read(2) on it then costs the hypervisor's exit
 * and re-entry (tens of us), so a ping-pong's figure says more about whether
 * the CPU happened to go idle than about the code under test.  With a spinner
 * on it a CPU never halts, and a woken thread takes it at once: the scheduler
 * preempts a SCHED_IDLE thread for any other woken thread, and counts a CPU
 * that runs only SCHED_IDLE threads as idle when it places one.  Every variant
 * of a benchmark must then run under the same spinners.
 */
struct bench_spinners;
struct bench_spinners *bench_spinners_start(void);
void bench_spinners_stop(struct bench_spinners *s);
/*
 * Pin the calling thread to one of the CPUs it may run on (the last: the
 * first takes more of the machine's interrupts) and return that CPU; threads
 * it creates afterwards inherit the pin, a library's threads included.
 */
int bench_pin_one_cpu(void);

/* Raise RLIMIT_NOFILE (soft and hard: we run as root) to at least n. */
void bench_raise_nofile(unsigned long n);
/* "Threads:" and "VmRSS:" (KiB) of this process. */
long bench_threads(void);
long bench_rss_kib(void);

/*
 * What this process's fds are, by the target of their /proc/self/fd links
 * (the census's own directory fd left out).
 */
enum bench_fd_kind { BENCH_FD_SOCKET, BENCH_FD_MEMFD, BENCH_FD_EVENTFD, BENCH_FD_EPOLL,
		     BENCH_FD_TIMERFD, BENCH_FD_OTHER, BENCH_FD_KINDS };
struct bench_fd_census {
	long total, kind[BENCH_FD_KINDS];
};
void bench_fd_census(struct bench_fd_census *c);
/*
 * CPU time and times scheduled in (/proc/PID/task/TID/schedstat) of every
 * thread of process pid, or with pid 0 of this process but the calling
 * thread; with names, their names too (comma-separated, as many as fit in len).
 */
#define BENCH_MAX_THREADS 256
struct bench_sched {
	int n;
	struct {
		long tid;
		uint64_t run_ns, slices;
	} t[BENCH_MAX_THREADS];
};
void bench_sample_threads(pid_t pid, struct bench_sched *s, char *names, size_t len);
/*
 * From sample a to sample b: CPU ns and times scheduled in of the threads of
 * b (a thread new since a counts whole), and how many of a had ended by b
 * (what those did after a is lost with them).
 */
void bench_sched_delta(const struct bench_sched *a, const struct bench_sched *b,
		       uint64_t *run_ns, uint64_t *slices, int *ended);
/*
 * getrusage of this process minus that of the calling thread: CPU us and
 * context switches of every other thread, ended ones included.
 */
void bench_rusage_others(uint64_t *cpu_us, uint64_t *switches);

/*
 * The raw baseline: an AF_UNIX stream listener whose accepted peers are each
 * served by a thread that answers every req_size-byte message with a
 * reply_size-byte one, as a vfio-user server answers a REGION_READ.
 */
struct bench_echo;
struct bench_echo *bench_echo_start(const char *path, size_t req_size, size_t reply_size);
void bench_echo_stop(struct bench_echo *e);
int bench_unix_connect(const char *path);
/* The next connection on listen_fd, or -1 once stop_efd is readable (dies on errors). */
int bench_accept_or_stop(int listen_fd, int stop_efd);
/*
 * Let the workers waiting at start (a barrier of them and the caller) go,
 * and after run_ms set *stop: when they went (bench_now_ns).  The caller
 * then joins them.
 */
uint64_t bench_run_window(pthread_barrier_t *start, unsigned int run_ms, atomic_bool *stop);
/* One raw round trip on a connected socket: write req, read the whole reply. */
void bench_raw_round_trip(int sock, size_t req_size, size_t reply_size);

#endif /* VFPM_BENCH_COMMON_H */
