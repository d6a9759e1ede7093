/* SPDX-License-Identifier: MIT */
/*
 * bench-pm: what a usage reference costs on a device that is already ACTIVE.
 *
 * pm.h promises that get and put on an ACTIVE, enabled, error-free device take
 * no lock.  This measures that fast path (get_sync + put, resume_and_get +
 * put) against the obvious alternative, a pthread mutex around a counter
 * (lock; count++; unlock; lock; count--; unlock), with one thread and with two
 * threads hammering the same device / the same mutex.  One extra reference is
 * taken before measuring, so the usage count never drops to zero and no pair
 * ever leaves the fast path.
 *
 * Each thread runs `pairs` pairs; a repetition's figure is the wall time from
 * the first thread starting to the last one finishing, divided by `pairs`
 * (so with two threads it is what each thread pays per pair while sharing).
 * Repetitions interleave the variants so that drift in the machine shows up
 * in every variant's spread rather than biasing one of them.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vfpm/pm.h>

#include "bench_common.h"

#define DEFAULT_REPS 15
#define DEFAULT_PAIRS 2000000UL
#define MAX_REPS 10000
#define MAX_THREADS 2
/* From the issue: uncontended, the fast path is at least 3x cheaper. */
#define TARGET_RATIO 3.0
#define MUTEX_PAIR_NAME "mutex lock/inc/unlock + lock/dec/unlock"

enum pair_loop {
	LOOP_GET_SYNC,
	LOOP_RESUME_AND_GET,
	LOOP_MUTEX,
};

/* What every thread of a variant works on: one device, or one mutex. */
struct pair_target {
	struct vfpm_pm_dev *dev;
	pthread_mutex_t lock;
	long count; /* protected by lock */
};

struct pair_thread {
	struct pair_target *target;
	enum pair_loop loop;
	unsigned long pairs;
	pthread_barrier_t *start;
	struct timespec began, ended;
};

struct variant {
	const char *name;
	enum pair_loop loop;
	int threads;
	double *ns_per_pair; /* one figure per repetition */
	double median, min, max;
};

/* Keeps the mutex loop's counter observable, so no pair is optimised away. */
static volatile long mutex_count_sink;

static _Noreturn void die(const char *what, int err)
{
	fprintf(stderr, "bench-pm: %s (%d: %s)\n", what, err, strerror(err < 0 ? -err : err));
	exit(EXIT_FAILURE);
}

static void run_get_sync_pairs(struct vfpm_pm_dev *dev, unsigned long pairs)
{
	for (unsigned long i = 0; i < pairs; i++) {
		int ret = vfpm_pm_get_sync(dev);

		if (ret != 1)
			die("vfpm_pm_get_sync did not return 1: the device left the fast path", ret);
		ret = vfpm_pm_put(dev);
		if (ret != 0)
			die("vfpm_pm_put failed after vfpm_pm_get_sync", ret);
		atomic_signal_fence(memory_order_seq_cst);
	}
}

static void run_resume_and_get_pairs(struct vfpm_pm_dev *dev, unsigned long pairs)
{
	for (unsigned long i = 0; i < pairs; i++) {
		/* The kernel helper returns 0 on success; accept 1 as well. */
		int ret = vfpm_pm_resume_and_get(dev);

		if (ret < 0)
			die("vfpm_pm_resume_and_get failed on an ACTIVE device", ret);
		ret = vfpm_pm_put(dev);
		if (ret != 0)
			die("vfpm_pm_put failed after vfpm_pm_resume_and_get", ret);
		atomic_signal_fence(memory_order_seq_cst);
	}
}

static void lock_or_die(pthread_mutex_t *lock)
{
	int ret = pthread_mutex_lock(lock);

	if (ret != 0)
		die("pthread_mutex_lock", ret);
}

static void unlock_or_die(pthread_mutex_t *lock)
{
	int ret = pthread_mutex_unlock(lock);

	if (ret != 0)
		die("pthread_mutex_unlock", ret);
}

static void run_mutex_pairs(struct pair_target *target, unsigned long pairs)
{
	for (unsigned long i = 0; i < pairs; i++) {
		lock_or_die(&target->lock);
		target->count++;
		unlock_or_die(&target->lock);
		lock_or_die(&target->lock);
		target->count--;
		unlock_or_die(&target->lock);
		atomic_signal_fence(memory_order_seq_cst);
	}
	lock_or_die(&target->lock);
	mutex_count_sink = target->count;
	unlock_or_die(&target->lock);
}

static void *pair_thread_main(void *opaque)
{
	struct pair_thread *t = opaque;
	int ret = pthread_barrier_wait(t->start);

	if (ret != 0 && ret != PTHREAD_BARRIER_SERIAL_THREAD)
		die("pthread_barrier_wait", ret);
	clock_gettime(CLOCK_MONOTONIC, &t->began);
	switch (t->loop) {
	case LOOP_GET_SYNC:
		run_get_sync_pairs(t->target->dev, t->pairs);
		break;
	case LOOP_RESUME_AND_GET:
		run_resume_and_get_pairs(t->target->dev, t->pairs);
		break;
	case LOOP_MUTEX:
		run_mutex_pairs(t->target, t->pairs);
		break;
	}
	clock_gettime(CLOCK_MONOTONIC, &t->ended);
	return NULL;
}

static int64_t timespec_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* One repetition of one variant; returns wall ns per pair per thread. */
static double run_variant_once(struct pair_target *target, enum pair_loop loop,
			       int threads, unsigned long pairs)
{
	pthread_t tids[MAX_THREADS];
	struct pair_thread t[MAX_THREADS];
	pthread_barrier_t start;
	int64_t first_began = INT64_MAX, last_ended = INT64_MIN;
	int ret;

	ret = pthread_barrier_init(&start, NULL, (unsigned int)threads);
	if (ret != 0)
		die("pthread_barrier_init", ret);
	for (int i = 0; i < threads; i++) {
		t[i] = (struct pair_thread){ .target = target, .loop = loop,
					     .pairs = pairs, .start = &start };
		ret = pthread_create(&tids[i], NULL, pair_thread_main, &t[i]);
		if (ret != 0)
			die("pthread_create", ret);
	}
	for (int i = 0; i < threads; i++) {
		ret = pthread_join(tids[i], NULL);
		if (ret != 0)
			die("pthread_join", ret);
		if (timespec_ns(&t[i].began) < first_began)
			first_began = timespec_ns(&t[i].began);
		if (timespec_ns(&t[i].ended) > last_ended)
			last_ended = timespec_ns(&t[i].ended);
	}
	pthread_barrier_destroy(&start);
	return (double)(last_ended - first_began) / (double)pairs;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void summarise(struct variant *v, int reps)
{
	double *sorted = malloc(sizeof(*sorted) * (size_t)reps);

	if (!sorted)
		die("out of memory", ENOMEM);
	memcpy(sorted, v->ns_per_pair, sizeof(*sorted) * (size_t)reps);
	qsort(sorted, (size_t)reps, sizeof(*sorted), compare_double);
	v->min = sorted[0];
	v->max = sorted[reps - 1];
	v->median = reps % 2 ? sorted[reps / 2]
			     : (sorted[reps / 2 - 1] + sorted[reps / 2]) / 2.0;
	free(sorted);
}

static int fast_path_ok(struct vfpm_pm_dev *dev, void *opaque)
{
	return 0;
}

static const struct vfpm_pm_ops always_ok_ops = {
	.runtime_suspend = fast_path_ok,
	.runtime_resume = fast_path_ok,
	.runtime_idle = fast_path_ok,
};

/* An enabled, ACTIVE device pinned ACTIVE by one reference of our own. */
static struct vfpm_pm_dev *create_pinned_active_device(void)
{
	struct vfpm_pm_dev *dev;
	int ret = vfpm_pm_dev_create(&always_ok_ops, NULL, &dev);

	if (ret < 0)
		die("vfpm_pm_dev_create", ret);
	ret = vfpm_pm_set_active(dev);
	if (ret < 0)
		die("vfpm_pm_set_active", ret);
	vfpm_pm_enable(dev);
	vfpm_pm_get_noresume(dev);
	if (vfpm_pm_status(dev) != VFPM_PM_ACTIVE || vfpm_pm_usage_count(dev) != 1 ||
	    !vfpm_pm_is_enabled(dev))
		die("device setup: expected ACTIVE, enabled, usage count 1", EINVAL);
	return dev;
}

static void check_still_pinned(struct vfpm_pm_dev *dev)
{
	if (vfpm_pm_status(dev) != VFPM_PM_ACTIVE || vfpm_pm_usage_count(dev) != 1)
		die("after the run: expected the device still ACTIVE with usage count 1",
		    EINVAL);
}

static const struct variant *find_variant(const struct variant *v, int n,
					  enum pair_loop loop, int threads)
{
	for (int i = 0; i < n; i++)
		if (v[i].loop == loop && v[i].threads == threads)
			return &v[i];
	return NULL;
}

static void write_report(FILE *out, const char *machine, const struct variant *v,
			 int n, int reps, unsigned long pairs)
{
	char when[64] = "unknown";
	time_t now = time(NULL);
	struct tm tm;
	bool all_met = true;

	if (gmtime_r(&now, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);

	fprintf(out, "# bench-pm: runtime PM get+put fast path vs a pthread mutex pair\n\n");
	fprintf(out, "- machine: %s\n", machine);
	fprintf(out, "- run: %s; %d reps x %lu pairs per thread, CLOCK_MONOTONIC\n",
		when, reps, pairs);
	fprintf(out, "- ns/pair: wall time of a rep / pairs per thread; median, min and max over the reps\n");
	if (sysconf(_SC_NPROCESSORS_ONLN) < MAX_THREADS)
		fprintf(out, "- warning: fewer CPUs than threads; the 2-thread figures measure time slicing\n");
	fprintf(out, "\n| loop | threads | median ns/pair | min | max | mutex / this |\n");
	fprintf(out, "|---|---:|---:|---:|---:|---:|\n");
	for (int i = 0; i < n; i++) {
		const struct variant *mutex = find_variant(v, n, LOOP_MUTEX, v[i].threads);

		fprintf(out, "| %s | %d | %.2f | %.2f | %.2f | %.2fx |\n", v[i].name,
			v[i].threads, v[i].median, v[i].min, v[i].max,
			mutex->median / v[i].median);
	}

	fprintf(out, "\nTarget (issue): uncontended (1 thread), the fast path is at least %.1fx "
		     "cheaper than the mutex pair.\n\n", TARGET_RATIO);
	for (int i = 0; i < n; i++) {
		const struct variant *mutex = find_variant(v, n, LOOP_MUTEX, 1);
		double ratio = mutex->median / v[i].median;

		if (v[i].loop == LOOP_MUTEX || v[i].threads != 1)
			continue;
		fprintf(out, "- %s, 1 thread: %.2fx (target >= %.1fx): **%s**\n", v[i].name,
			ratio, TARGET_RATIO, ratio >= TARGET_RATIO ? "met" : "not met");
		all_met = all_met && ratio >= TARGET_RATIO;
	}
	fprintf(out, "- overall: **%s**\n", all_met ? "met" : "not met");

	fprintf(out, "\n2 threads on one device / one mutex (informative, no target):\n\n");
	for (int i = 0; i < n; i++) {
		const struct variant *mutex = find_variant(v, n, LOOP_MUTEX, 2);

		if (v[i].loop == LOOP_MUTEX || v[i].threads != 2)
			continue;
		fprintf(out, "- %s, 2 threads: mutex / fast path = %.2fx\n", v[i].name,
			mutex->median / v[i].median);
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: bench-pm [--reps N] [--pairs N] [--md PATH] [--help]\n"
		"\n"
		"Measures ns per get+put pair on an ACTIVE vfpm runtime PM device (the\n"
		"lock-free fast path) against a pthread mutex pair, with 1 and 2 threads.\n"
		"\n"
		"  --reps N   repetitions per variant (default %d); median, min, max over them\n"
		"  --pairs N  pairs per thread per repetition (default %lu)\n"
		"  --md PATH  also write the results as Markdown to PATH\n"
		"  --help     this text\n",
		DEFAULT_REPS, DEFAULT_PAIRS);
}

static unsigned long parse_count(const char *opt, const char *arg, unsigned long max)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(arg, &end, 10);
	if (errno || end == arg || *end != '\0' || arg[0] == '-' || n == 0 || n > max) {
		fprintf(stderr, "bench-pm: %s wants a whole number from 1 to %lu, not '%s'\n",
			opt, max, arg);
		exit(EXIT_FAILURE);
	}
	return n;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "pairs", required_argument, NULL, 'p' },
		{ "md", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int reps = DEFAULT_REPS;
	unsigned long pairs = DEFAULT_PAIRS;
	const char *md_path = NULL;
	struct variant variants[] = {
		{ .name = "get_sync + put", .loop = LOOP_GET_SYNC, .threads = 1 },
		{ .name = "resume_and_get + put", .loop = LOOP_RESUME_AND_GET, .threads = 1 },
		{ .name = MUTEX_PAIR_NAME, .loop = LOOP_MUTEX, .threads = 1 },
		{ .name = "get_sync + put", .loop = LOOP_GET_SYNC, .threads = 2 },
		{ .name = "resume_and_get + put", .loop = LOOP_RESUME_AND_GET, .threads = 2 },
		{ .name = MUTEX_PAIR_NAME, .loop = LOOP_MUTEX, .threads = 2 },
	};
	const int n = (int)(sizeof(variants) / sizeof(variants[0]));
	struct pair_target target = { .count = 0 };
	char machine[512];
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case 'r':
			reps = (int)parse_count("--reps", optarg, MAX_REPS);
			break;
		case 'p':
			pairs = parse_count("--pairs", optarg, 1000000000UL);
			break;
		case 'm':
			md_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		default:
			usage(stderr);
			return EXIT_FAILURE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_FAILURE;
	}

	bench_machine(machine, sizeof(machine));
	printf("machine: %s\n", machine);
	printf("running %d variants x %d reps x %lu pairs per thread...\n\n", n, reps, pairs);
	fflush(stdout);

	target.dev = create_pinned_active_device();
	ret = pthread_mutex_init(&target.lock, NULL);
	if (ret != 0)
		die("pthread_mutex_init", ret);
	for (int i = 0; i < n; i++) {
		variants[i].ns_per_pair = calloc((size_t)reps, sizeof(double));
		if (!variants[i].ns_per_pair)
			die("out of memory", ENOMEM);
		/* Warm-up: caches, branch predictors, the CPU's clock. */
		run_variant_once(&target, variants[i].loop, variants[i].threads,
				 pairs / 10 + 1);
	}
	for (int r = 0; r < reps; r++)
		for (int i = 0; i < n; i++)
			variants[i].ns_per_pair[r] = run_variant_once(
				&target, variants[i].loop, variants[i].threads, pairs);
	check_still_pinned(target.dev);
	for (int i = 0; i < n; i++)
		summarise(&variants[i], reps);

	write_report(stdout, machine, variants, n, reps, pairs);
	if (md_path) {
		FILE *md = fopen(md_path, "w");

		if (!md)
			die(md_path, errno);
		write_report(md, machine, variants, n, reps, pairs);
		if (fclose(md) != 0)
			die(md_path, errno);
	}

	vfpm_pm_put_noidle(target.dev);
	vfpm_pm_dev_destroy(target.dev);
	pthread_mutex_destroy(&target.lock);
	for (int i = 0; i < n; i++)
		free(variants[i].ns_per_pair);
	return EXIT_SUCCESS;
}
