/* SPDX-License-Identifier: MIT */
/*
 * The conformance engine: scenarios (conformance/scenarios.txt) parsed into
 * steps and carried out through the client library against one target, a
 * vfio-user socket or a kernel VFIO device ("vfio:BDF").  Used by the
 * runner (conformance/runner.c) and by `vfpm check`.
 */
#ifndef VFPM_CONFORMANCE_H
#define VFPM_CONFORMANCE_H

#include <stdbool.h>
#include <stdio.h>

struct conf_set;

/* Parse a scenario file; on failure err says where and why. */
int conf_load(const char *path, struct conf_set **out, char *err, size_t errlen);
void conf_free(struct conf_set *set);
unsigned int conf_count(const struct conf_set *set);

struct conf_summary {
	unsigned int scenarios, passed, failed, skipped;	/* scenarios */
	unsigned int steps, steps_failed;
};

struct conf_opts {
	const char *only;	/* run only scenarios whose id contains this (NULL: all) */
	FILE *results;		/* machine-readable lines "R\t..." (NULL: none) */
	FILE *report;		/* one human line per scenario (NULL: none) */
	bool verbose;		/* report: every step too */
};

/*
 * Run every scenario against target.  Returns 0 when the run could be made
 * (whatever the verdicts; see sum), or a negative errno when the target
 * could not be opened or discovered (err says why).
 */
int conf_run(const struct conf_set *set, const char *target, const struct conf_opts *opts,
	     struct conf_summary *sum, char *err, size_t errlen);

#endif /* VFPM_CONFORMANCE_H */
