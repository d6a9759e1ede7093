/* SPDX-License-Identifier: MIT */
/*
 * How the interop guest programs report, for run-guest.sh to count:
 * "check: NAME: ok|FAIL (details)" lines and indented notes, flushed at once
 * (the console is the only channel out of the guest).  Header-only: each
 * guest program is one static binary built from one source file.
 */
#ifndef VFPM_INTEROP_GUEST_REPORT_H
#define VFPM_INTEROP_GUEST_REPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static unsigned int failures;

static void check(const char *name, bool ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void check(const char *name, bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("check: %s: %s", name, ok ? "ok" : "FAIL");
	if (fmt && *fmt) {
		printf(" (");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf(")");
	}
	printf("\n");
	fflush(stdout);
	if (!ok)
		failures++;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	va_list ap;

	printf("  ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

#endif /* VFPM_INTEROP_GUEST_REPORT_H */
