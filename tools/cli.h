/* SPDX-License-Identifier: MIT */
/* The vfpm command: shared pieces of its subcommands. */
#ifndef VFPM_CLI_H
#define VFPM_CLI_H

#include <stdbool.h>

/* Each subcommand: argv[0] is its name; returns the process exit status. */
int cmd_serve(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_power(int argc, char **argv);
int cmd_check(int argc, char **argv);

/* "vfpm SUBCOMMAND: message" on stderr; returns 1 (usage) or 2 (failure). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_fail(const char *cmd, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* -h / --help anywhere in argv. */
bool cli_wants_help(int argc, char **argv);
/* Install SIGINT/SIGTERM handlers that set the returned flag (no SA_RESTART). */
volatile int *cli_stop_flag(void);

#endif /* VFPM_CLI_H */
