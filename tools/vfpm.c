// SPDX-License-Identifier: MIT
/* vfpm: serve, inspect and drive vfpm devices. */
#include "cli.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
	"Usage: vfpm COMMAND [OPTIONS]\n"
	"\n"
	"Serve PCI devices over vfio-user with Linux-style runtime power management.\n"
	"\n"
	"Commands:\n"
	"  serve   serve sample devices on vfio-user sockets\n"
	"  info    show a device's info, regions, interrupts and power state\n"
	"  power   drive the low-power features and report wakeups and the power state\n"
	"  check   run the conformance scenarios (Linux 6.1 semantics) against a device\n"
	"\n"
	"Run 'vfpm COMMAND --help' for a command's options.\n";

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vfpm %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'vfpm %s --help'.\n", cmd);
	return 1;
}

int cli_fail(const char *cmd, int err, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "vfpm %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err < 0 ? -err : err));
	fputc('\n', stderr);
	return 2;
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	return false;
}

static volatile int stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

volatile int *cli_stop_flag(void)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	return &stop_requested;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} cmds[] = {
		{ "serve", cmd_serve },
		{ "info", cmd_info },
		{ "power", cmd_power },
		{ "check", cmd_check },
	};

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 1 : 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "vfpm: unknown command '%s'\n%s", argv[1], usage);
	return 1;
}
