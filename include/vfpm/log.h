/* SPDX-License-Identifier: MIT */
/*
 * vfpm's log: what the library refuses, drops or repairs, and why.
 *
 * The library is silent until the program installs a log function.  Every
 * client vfpm disconnects or refuses, every resource it withholds (a
 * connection over a limit, fds beyond max_msg_fds, a DMA mapping over the
 * budget) and every memory fault it recovers from is logged, naming the
 * device's socket and the peer (pid and uid when the kernel knows them) and
 * the reason.  Floods are rate-limited per reason: a burst is logged, the
 * rest are counted and the count is logged with the next line let through.
 *
 * The log function may be called from any vfpm thread, one call at a time
 * (calls are serialised), never with a vfpm lock held that a vfpm call from
 * inside the log function could take; it must not block for long.
 */
#ifndef VFPM_LOG_H
#define VFPM_LOG_H

#include <vfpm/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* syslog(3)'s numbers, so that a program can hand the level to syslog as is. */
enum vfpm_log_level {
	VFPM_LOG_ERR = 3,	/* a device or the process is in trouble */
	VFPM_LOG_WARNING = 4,	/* a client was refused or dropped, a resource withheld */
	VFPM_LOG_NOTICE = 5,	/* a recovery: a device rebuilt what a client broke */
	VFPM_LOG_INFO = 6,	/* connections coming and going */
	VFPM_LOG_DEBUG = 7,
};

/* msg is one line without the newline; it is valid only during the call. */
typedef void (*vfpm_log_fn)(enum vfpm_log_level level, const char *msg, void *opaque);

/*
 * Send the messages of level max_level and more severe to fn (NULL: silence,
 * the default).  Safe at any time, from any thread.
 */
VFPM_API void vfpm_log_set(vfpm_log_fn fn, void *opaque, enum vfpm_log_level max_level);

/* A ready-made log function: "vfpm[PID]: LEVEL: MSG" on stderr. */
VFPM_API void vfpm_log_stderr(enum vfpm_log_level level, const char *msg, void *opaque);

/* Whether a message of this level would be logged now. */
VFPM_API int vfpm_log_enabled(enum vfpm_log_level level);

/*
 * Log one line through the same function (printf format, no newline
 * needed), when the level is enabled: a device model's own messages, say
 * why a controller stopped, go where the library's go.  Any thread.
 */
VFPM_API void vfpm_logf(enum vfpm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif

#endif /* VFPM_LOG_H */
