// SPDX-License-Identifier: MIT
/* The library's log: one function the program installs, lines rate-limited per reason. */
#include "base.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 512

/*
 * Protects log_fn and log_opaque, and serialises calls of the log function
 * (so that lines never interleave).  log_max is read without it: a level
 * test that races with vfpm_log_set costs one line at most.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static vfpm_log_fn log_fn;
static void *log_opaque;
static atomic_int log_max;	/* 0: silent */

void vfpm_log_set(vfpm_log_fn fn, void *opaque, enum vfpm_log_level max_level)
{
	pthread_mutex_lock(&log_lock);
	log_fn = fn;
	log_opaque = opaque;
	atomic_store(&log_max, fn ? (int)max_level : 0);
	pthread_mutex_unlock(&log_lock);
}

int vfpm_log_enabled(enum vfpm_log_level level)
{
	return (int)level <= atomic_load_explicit(&log_max, memory_order_relaxed);
}

static const char *level_name(enum vfpm_log_level level)
{
	switch (level) {
	case VFPM_LOG_ERR:
		return "error";
	case VFPM_LOG_WARNING:
		return "warning";
	case VFPM_LOG_NOTICE:
		return "notice";
	case VFPM_LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

void vfpm_log_stderr(enum vfpm_log_level level, const char *msg, void *opaque)
{
	(void)opaque;
	fprintf(stderr, "vfpm[%ld]: %s: %s\n", (long)getpid(), level_name(level), msg);
}

static void log_emit(enum vfpm_log_level level, const char *line)
{
	pthread_mutex_lock(&log_lock);
	if (log_fn && (int)level <= atomic_load(&log_max))
		log_fn(level, line, log_opaque);
	pthread_mutex_unlock(&log_lock);
}

static void log_vformat(enum vfpm_log_level level, unsigned int suppressed, const char *fmt,
			va_list ap)
{
	char line[LOG_LINE_MAX];
	int n = vsnprintf(line, sizeof(line), fmt, ap);

	if (n >= 0 && suppressed && (size_t)n < sizeof(line))
		snprintf(line + n, sizeof(line) - (size_t)n,
			 " (%u more like this were not logged)", suppressed);
	log_emit(level, line);
}

void vfpm_logf(enum vfpm_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (!vfpm_log_enabled(level))
		return;
	va_start(ap, fmt);
	log_vformat(level, 0, fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* May a line go now?  *suppressed: the lines held back before it, to report. */
static bool ratelimit_pass(struct vfpm_ratelimit *rl, unsigned int *suppressed)
{
	uint64_t now = now_ms();
	uint64_t start = atomic_load(&rl->window_start_ms);

	if (now - start >= VFPM_LOG_INTERVAL_MS &&
	    atomic_compare_exchange_strong(&rl->window_start_ms, &start, now))
		atomic_store(&rl->in_window, 0);
	if (atomic_fetch_add(&rl->in_window, 1) >= VFPM_LOG_BURST) {
		atomic_fetch_add(&rl->suppressed, 1);
		return false;
	}
	*suppressed = atomic_exchange(&rl->suppressed, 0);
	return true;
}

void vfpm_logf_rl(struct vfpm_ratelimit *rl, enum vfpm_log_level level, const char *fmt, ...)
{
	unsigned int suppressed = 0;
	va_list ap;

	if (!vfpm_log_enabled(level) || !ratelimit_pass(rl, &suppressed))
		return;
	va_start(ap, fmt);
	log_vformat(level, suppressed, fmt, ap);
	va_end(ap);
}
