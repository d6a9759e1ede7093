// SPDX-License-Identifier: MIT
/* vfpm check: the conformance scenarios against any target, pass/fail per scenario. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conformance.h"

static const char check_usage[] =
	"Usage: vfpm check [OPTIONS] TARGET [DEVICE]\n"
	"\n"
	"Run the conformance scenarios (Linux 6.1 vfio-pci's runtime power management,\n"
	"conformance/scenarios.txt) against a device and print pass or FAIL per scenario.\n"
	"\n"
	"TARGET is one of\n"
	"  SOCKET        a vfio-user socket served by vfpm (vfpm serve); the server must\n"
	"                answer vfpm's POWER_STATUS, which reads the power state without\n"
	"                waking the device\n"
	"  vfio:ADDR     a kernel VFIO device at PCI address ADDR (0000:01:00.0), bound to\n"
	"                vfio-pci (as root)\n"
	"  /dev/vfio/N   a VFIO group; DEVICE is then the PCI address of the device in it\n"
	"Nothing else may use the device during the check: the scenarios expect to find\n"
	"it unopened and suspended, and open and close it themselves.  It takes about\n"
	"20 s for a vfpm device, longer for a kernel device (each suspend ~10 ms).\n"
	"\n"
	"Options:\n"
	"  --scenarios FILE  the scenarios to run (default: conformance/scenarios.txt of\n"
	"                    the source tree vfpm was built from)\n"
	"  --only TEXT       only the scenarios whose name contains TEXT\n"
	"  --results FILE    also write one machine-readable line per step to FILE\n"
	"  -v, --verbose     print every step with its observation\n"
	"  -h, --help        this text\n"
	"\n"
	"Exit status: 0 every scenario passed, 1 some scenario failed, 2 the check could\n"
	"not run (target unreachable, scenario file unreadable), 1 also for usage errors.\n";

/* /dev/vfio/N + DEVICE -> "vfio:DEVICE", after checking DEVICE is in group N. */
static int group_target(const char *group, const char *dev, char *out, size_t len)
{
	char path[PATH_MAX], link[PATH_MAX];
	const char *n = group + strlen("/dev/vfio/"), *base;
	ssize_t got;

	if (snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", dev) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	got = readlink(path, link, sizeof(link) - 1);
	if (got < 0)
		return -errno;
	link[got] = '\0';
	base = strrchr(link, '/');
	base = base ? base + 1 : link;
	if (strcmp(base, n))
		return -EXDEV;
	snprintf(out, len, "vfio:%s", dev);
	return 0;
}

int cmd_check(int argc, char **argv)
{
	const char *path = VFPM_SCENARIOS_PATH, *results_path = NULL;
	const char *pos[2] = { NULL, NULL };
	struct conf_opts opts = { .report = stdout };
	struct conf_summary sum;
	struct conf_set *set;
	char err[512], target[PATH_MAX + 8];
	int npos = 0, rc;

	if (cli_wants_help(argc, argv)) {
		fputs(check_usage, stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			opts.verbose = true;
		} else if (!strcmp(a, "--scenarios") || !strcmp(a, "--only") ||
			   !strcmp(a, "--results")) {
			if (i + 1 >= argc)
				return cli_usage_error("check", "%s needs a value", a);
			if (a[2] == 's')
				path = argv[++i];
			else if (a[2] == 'o')
				opts.only = argv[++i];
			else
				results_path = argv[++i];
		} else if (a[0] == '-' && a[1]) {
			return cli_usage_error("check", "unknown option '%s'", a);
		} else if (npos < 2) {
			pos[npos++] = a;
		} else {
			return cli_usage_error("check", "too many arguments ('%s')", a);
		}
	}
	if (!npos)
		return cli_usage_error("check", "no TARGET (a vfio-user socket, vfio:ADDR, or "
				       "/dev/vfio/N DEVICE)");
	if (!strncmp(pos[0], "/dev/vfio/", 10)) {
		if (!pos[1])
			return cli_usage_error("check", "%s is a VFIO group: give the PCI address "
					       "of the device in it as DEVICE", pos[0]);
		rc = group_target(pos[0], pos[1], target, sizeof(target));
		if (rc == -EXDEV)
			return cli_fail("check", 0, "%s is not in IOMMU group %s", pos[1], pos[0]);
		if (rc)
			return cli_fail("check", rc, "cannot find the IOMMU group of %s", pos[1]);
	} else {
		if (pos[1])
			return cli_usage_error("check", "DEVICE goes with a /dev/vfio/N target only "
					       "(for a kernel device give vfio:%s)", pos[1]);
		snprintf(target, sizeof(target), "%s", pos[0]);
	}
	rc = conf_load(path, &set, err, sizeof(err));
	if (rc)
		return cli_fail("check", 0, "cannot read the scenarios: %s", err);
	if (results_path) {
		opts.results = fopen(results_path, "we");
		if (!opts.results) {
			rc = -errno;
			conf_free(set);
			return cli_fail("check", rc, "cannot write %s", results_path);
		}
	}
	printf("vfpm check: %u scenarios from %s against %s\n", conf_count(set), path, target);
	fflush(stdout);
	rc = conf_run(set, target, &opts, &sum, err, sizeof(err));
	conf_free(set);
	if (opts.results)
		fclose(opts.results);
	if (rc)
		return cli_fail("check", 0, "%s", err);
	printf("vfpm check: %u passed, %u FAILED, %u skipped (not for this target), %u steps "
	       "(%u failed)\n", sum.passed, sum.failed, sum.skipped, sum.steps, sum.steps_failed);
	return sum.failed ? 1 : 0;
}
