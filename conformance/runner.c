// SPDX-License-Identifier: MIT
/*
 * vfpm-conformance: run the scenarios against one target and print one
 * machine-readable line per step (see conformance/README.md):
 *
 *   R <tab> scenario <tab> step <tab> command <tab> result <tab> expected <tab> verdict <tab> why
 *
 * usage: vfpm-conformance [-s SCENARIOS] [-o ONLY] [-q] TARGET
 *   TARGET: a vfio-user socket path, or vfio:BDF (default vfio:$VFPM_BDF)
 * Exit: 0 all scenarios as expected, 1 some step differed, 2 cannot run.
 */
#include "conformance.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *path = VFPM_SCENARIOS_PATH, *target;
	struct conf_opts opts = { .results = stdout, .report = stderr };
	struct conf_summary sum;
	struct conf_set *set;
	char err[512], bdf[80];
	int opt, rc;

	while ((opt = getopt(argc, argv, "s:o:qh")) != -1) {
		switch (opt) {
		case 's': path = optarg; break;
		case 'o': opts.only = optarg; break;
		case 'q': opts.report = NULL; break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
				"usage: %s [-s SCENARIOS] [-o ONLY] [-q] [TARGET]\n"
				"  TARGET: vfio-user socket path or vfio:BDF (default vfio:$VFPM_BDF)\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind < argc) {
		target = argv[optind];
	} else if (getenv("VFPM_BDF")) {
		snprintf(bdf, sizeof(bdf), "vfio:%s", getenv("VFPM_BDF"));
		target = bdf;
	} else {
		fprintf(stderr, "%s: no target (give a socket or vfio:BDF, or set VFPM_BDF)\n", argv[0]);
		return 2;
	}
	rc = conf_load(path, &set, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "%s: %s\n", argv[0], err);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	rc = conf_run(set, target, &opts, &sum, err, sizeof(err));
	conf_free(set);
	if (rc) {
		printf("E\t%s\n", err);
		fprintf(stderr, "%s: %s\n", argv[0], err);
		return 2;
	}
	printf("S\tscenarios=%u\tpassed=%u\tfailed=%u\tskipped=%u\tsteps=%u\tsteps_failed=%u\n",
	       sum.scenarios, sum.passed, sum.failed, sum.skipped, sum.steps, sum.steps_failed);
	return sum.failed ? 1 : 0;
}
