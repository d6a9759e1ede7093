/* SPDX-License-Identifier: MIT */
/*
 * Private helpers every layer may use: the log (<vfpm/log.h>) from inside
 * the library, and guarded memory (memguard.c).
 */
#ifndef VFPM_BASE_H
#define VFPM_BASE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vfpm/log.h>

/*
 * A rate limit for one kind of message: at most VFPM_LOG_BURST lines per
 * VFPM_LOG_INTERVAL_MS; the lines held back are counted, and the next line
 * let through says how many.  Zero-initialise; safe from any thread.
 */
#define VFPM_LOG_BURST 10
#define VFPM_LOG_INTERVAL_MS 5000
struct vfpm_ratelimit {
	_Atomic uint64_t window_start_ms;
	atomic_uint in_window;
	atomic_uint suppressed;
};

void vfpm_logf_rl(struct vfpm_ratelimit *rl, enum vfpm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Guarded memory: a mapping of a file a client holds a writable fd of (a
 * BAR's memfd, a DMA window).  The client can shrink that file at any time,
 * and the next access to a page past its new end raises SIGBUS, which would
 * kill the whole process.  vfpm installs a SIGBUS handler when the first
 * range is guarded: a fault inside a guarded range maps a private page of
 * zeros over the faulting page (with the range's protection), counts the
 * fault on the range and lets the access go on, so the access reads zeros
 * or writes into memory nobody else sees.  The owner of the range looks at
 * the count after its accesses (or at its next chance) to report the loss
 * and refuse or rebuild.  A SIGBUS anywhere else goes to the handler that
 * was installed before vfpm's (the default one kills the process, as
 * before).
 *
 * A range must stay mapped while it is guarded: remove the guard before
 * unmapping it.  The owner makes sure no access to the range is in progress
 * when it removes the guard (its own locking).
 */
struct vfpm_memguard;

/*
 * Put the guard's handler back in front when something replaced it without
 * chaining (a test framework that installs its own handler per test); it
 * chains to the handler found there.  The first vfpm_memguard_add does it.
 */
int vfpm_memguard_install(void);
/* Guard [addr, addr + len); prot is what a recovered page gets. */
int vfpm_memguard_add(void *addr, size_t len, int prot, struct vfpm_memguard **out);
void vfpm_memguard_remove(struct vfpm_memguard *g);
/* Faults recovered in the range since it was guarded (or last rearmed). */
unsigned int vfpm_memguard_faults(const struct vfpm_memguard *g);
/* The owner rebuilt the range (now at addr, len): count from zero again. */
void vfpm_memguard_rearm(struct vfpm_memguard *g, void *addr, size_t len);
/* Faults recovered in the whole process since it started. */
unsigned long vfpm_memguard_total_faults(void);

#endif /* VFPM_BASE_H */
