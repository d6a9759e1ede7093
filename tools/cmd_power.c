// SPDX-License-Identifier: MIT
/* vfpm power: drive the low-power features of a device and report its wakeups. */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <vfpm/client.h>

static const char power_usage[] =
	"Usage: vfpm power TARGET ACTION [--count N]\n"
	"\n"
	"Drive the low-power features of a device (VFIO_DEVICE_FEATURE 3, 4, 5).\n"
	"TARGET is a vfio-user socket path, or vfio:PCI-ADDRESS for a kernel device.\n"
	"\n"
	"Actions:\n"
	"  enter         LOW_POWER_ENTRY, then hold the connection until SIGINT/SIGTERM\n"
	"                (closing it drops low power, as closing a VFIO device fd does)\n"
	"  enter-wakeup  LOW_POWER_ENTRY_WITH_WAKEUP with an eventfd; wait for the wakeup\n"
	"  exit          LOW_POWER_EXIT\n"
	"  watch         enter-wakeup again and again, one line per wakeup\n"
	"  status        print the power state without waking the device\n"
	"\n"
	"  --count N     watch: stop after N wakeups (default: until SIGINT/SIGTERM)\n"
	"  -h, --help    this text\n";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait for the eventfd or a stop signal; 1 woke, 0 stopped, negative errno. */
static int power_wait_wakeup(int efd, volatile int *stop)
{
	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	uint64_t count;

	while (!*stop) {
		int n = poll(&pfd, 1, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (read(efd, &count, sizeof(count)) != sizeof(count))
			return -EIO;
		return 1;
	}
	return 0;
}

static int power_hold(volatile int *stop)
{
	while (!*stop)
		pause();
	return 0;
}

static int power_run(struct vfpm_client *c, const char *action, long count, volatile int *stop)
{
	double start = now_s();
	int efd, err;
	long woken = 0;

	if (!strcmp(action, "status")) {
		struct vfpm_client_power st;

		err = vfpm_client_power_status(c, &st);
		if (err)
			return cli_fail("power", err, "cannot read the power state");
		printf("%s", st.runtime_status);
		if (st.have_counts)
			printf(" usage=%d low_power=%s wakeup=%s suspends=%llu resumes=%llu",
			       st.usage_count, st.low_power ? "engaged" : "off",
			       st.wakeup_armed ? "armed" : "off", (unsigned long long)st.suspends,
			       (unsigned long long)st.resumes);
		printf("\n");
		return 0;
	}
	if (!strcmp(action, "exit")) {
		err = vfpm_client_low_power_exit(c);
		if (err)
			return cli_fail("power", err, "LOW_POWER_EXIT failed");
		printf("low power exited\n");
		return 0;
	}
	if (!strcmp(action, "enter")) {
		err = vfpm_client_low_power_entry(c);
		if (err)
			return cli_fail("power", err, "LOW_POWER_ENTRY failed");
		printf("low power entered; holding it until SIGINT/SIGTERM\n");
		fflush(stdout);
		power_hold(stop);
		printf("released\n");
		return 0;
	}

	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		return cli_fail("power", errno, "eventfd");
	do {
		err = vfpm_client_low_power_entry_with_wakeup(c, efd);
		if (err) {
			close(efd);
			return cli_fail("power", err, "LOW_POWER_ENTRY_WITH_WAKEUP failed");
		}
		if (woken == 0) {
			printf("low power entered with a wakeup eventfd; waiting\n");
			fflush(stdout);
		}
		err = power_wait_wakeup(efd, stop);
		if (err < 0) {
			close(efd);
			return cli_fail("power", err, "waiting for the wakeup");
		}
		if (err == 0)
			break;
		woken++;
		printf("wakeup %ld at %.3f s\n", woken, now_s() - start);
		fflush(stdout);
	} while (!strcmp(action, "watch") && (count <= 0 || woken < count) && !*stop);
	close(efd);
	return 0;
}

int cmd_power(int argc, char **argv)
{
	const char *target = NULL, *action = NULL;
	struct vfpm_client *c;
	volatile int *stop;
	long count = 0;
	int err, status;

	if (cli_wants_help(argc, argv)) {
		fputs(power_usage, stdout);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--count")) {
			char *end;

			if (i + 1 >= argc)
				return cli_usage_error("power", "--count needs a number");
			count = strtol(argv[++i], &end, 10);
			if (*end || count <= 0)
				return cli_usage_error("power", "--count wants a positive number, not '%s'",
						       argv[i]);
		} else if (argv[i][0] == '-') {
			return cli_usage_error("power", "unknown option '%s'", argv[i]);
		} else if (!target) {
			target = argv[i];
		} else if (!action) {
			action = argv[i];
		} else {
			return cli_usage_error("power", "unexpected argument '%s'", argv[i]);
		}
	}
	if (!target || !action)
		return cli_usage_error("power", "needs a TARGET and an ACTION");
	if (strcmp(action, "enter") && strcmp(action, "enter-wakeup") && strcmp(action, "exit") &&
	    strcmp(action, "watch") && strcmp(action, "status"))
		return cli_usage_error("power", "unknown action '%s' "
				       "(enter, enter-wakeup, exit, watch, status)", action);
	if (count && strcmp(action, "watch"))
		return cli_usage_error("power", "--count goes with watch");

	stop = cli_stop_flag();
	err = vfpm_client_open(target, &c);
	if (err)
		return cli_fail("power", err, "cannot open %s", target);
	status = power_run(c, action, count, stop);
	vfpm_client_close(c);
	return status;
}
