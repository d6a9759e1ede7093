// SPDX-License-Identifier: MIT
/* vfpm serve: sample devices on vfio-user sockets until SIGINT/SIGTERM. */
#include "cli.h"

#include <errno.h>
#include <pwd.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices.h"
#include "nvme_dev.h"
#include "serve.h"
#include <vfpm/log.h>
#include <vfpm/transport.h>

#define SERVE_MAX_UIDS 32
/* Devices named one by one on stdout; beyond them, a count. */
#define SERVE_LISTED 100u

static const char serve_usage[] =
	"Usage: vfpm serve [--device KIND [--socket PATH] [DEVICE OPTIONS]]...\n"
	"                  [--devices FILE]... [OPTIONS]\n"
	"\n"
	"Serve sample devices, each on its own vfio-user socket, until SIGINT or SIGTERM.\n"
	"\n"
	"  --device KIND      memory, poller, optout or nvme; each --device starts a new\n"
	"                     device (default: one memory device)\n"
	"  --devices FILE     the devices listed in FILE, one a line: KIND SOCKET\n"
	"                     [DEVICE OPTIONS] (words separated by blanks; blank lines\n"
	"                     and lines or ends of lines from a '#' are skipped);\n"
	"                     repeatable, and usable with --device\n"
	"  --socket PATH      the device's vfio-user socket (default: vfpm-KIND-N.sock)\n"
	"  --backend PATH     poller: the UNIX socket the device listens on for its\n"
	"                     backend traffic (default: SOCKET.backend)\n"
	"  --backing FILE     nvme (required): the namespace, a file or a block device,\n"
	"                     its size rounded down to the block size\n"
	"  --block-size N     nvme: the logical block size, 512 (default) or 4096\n"
	"  --mode OCTAL       permissions of the socket files (default: 0600)\n"
	"  --allow-uid UID    serve only clients running as this uid (a number or a user\n"
	"                     name; repeatable); others are disconnected before the\n"
	"                     device is opened (default: anyone who can open the socket)\n"
	"  --ready-file PATH  write the word 'ready' there once every socket listens\n"
	"  --log-level LEVEL  what goes to stderr: error, warning, notice, info or\n"
	"                     debug (default: info); every refused or dropped client\n"
	"                     is logged at warning with who and why\n"
	"  -h, --help         this text\n"
	"\n"
	"Limits on clients (0 or absent: the default; a client over one is refused or\n"
	"disconnected, and the log says who and why):\n"
	"  --max-connections N        live connections per device (default 64)\n"
	"  --max-total-connections N  live connections over all devices\n"
	"                             (default: (fd limit - 64) / 4)\n"
	"  --version-timeout MS       time from connecting to VERSION done (default 5000)\n"
	"  --msg-timeout MS           time from a message's first byte to its last\n"
	"                             (default 10000)\n"
	"  --max-msg-fds N            fds one message may carry (default 16, at most 253;\n"
	"                             QEMU 10 and 11 refuse a server stating more than 16)\n"
	"  --max-dma-maps N           DMA windows per connection (default 16384)\n"
	"  --max-total-dma-maps N     DMA windows over all connections\n"
	"                             (default: half of vm.max_map_count)\n"
	"\n"
	"File descriptors: the soft limit (RLIMIT_NOFILE) is raised to the hard one.\n"
	"Each device holds 1 fd (nvme 2, a poller 3), and its BARs' memfds only\n"
	"while a client is connected; the process keeps some for itself and its\n"
	"clients.  When the devices do not fit, nothing is served and the\n"
	"message says how many would and what limit they need.\n"
	"\n"
	"Systemd socket activation: when LISTEN_FDS and LISTEN_PID are set, the\n"
	"listening sockets are fds 3, 4, ... in the order of the devices.\n";

/* A uid from a number or a user name: 0, or -1 when it is neither. */
static int serve_parse_uid(const char *val, uid_t *uid)
{
	struct passwd *pw;
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(val, &end, 10);
	if (*val && !*end && !errno && n < (uid_t)-1) {
		*uid = (uid_t)n;
		return 0;
	}
	pw = getpwnam(val);
	if (!pw)
		return -1;
	*uid = pw->pw_uid;
	return 0;
}

/* The numeric limit options: where each one's value goes. */
struct serve_limits {
	struct vfpm_transport_limits process;
	enum vfpm_log_level log_level;
};

static unsigned int *serve_limit_field(const char *opt, struct vfpm_server_opts *opts,
				       struct serve_limits *lim, unsigned long *max)
{
	*max = UINT32_MAX;
	if (!strcmp(opt, "--max-connections"))
		return &opts->max_connections;
	if (!strcmp(opt, "--max-total-connections"))
		return &lim->process.max_connections;
	if (!strcmp(opt, "--version-timeout"))
		return &opts->version_timeout_ms;
	if (!strcmp(opt, "--msg-timeout"))
		return &opts->msg_timeout_ms;
	if (!strcmp(opt, "--max-dma-maps"))
		return &opts->max_dma_maps;
	if (!strcmp(opt, "--max-total-dma-maps"))
		return &lim->process.max_dma_maps;
	if (!strcmp(opt, "--max-msg-fds")) {
		*max = 253;
		return &opts->max_msg_fds;
	}
	return NULL;
}

static int serve_parse_log_level(const char *val, enum vfpm_log_level *level)
{
	static const struct { const char *name; enum vfpm_log_level level; } levels[] = {
		{ "error", VFPM_LOG_ERR }, { "warning", VFPM_LOG_WARNING },
		{ "notice", VFPM_LOG_NOTICE }, { "info", VFPM_LOG_INFO },
		{ "debug", VFPM_LOG_DEBUG },
	};

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (!strcmp(val, levels[i].name)) {
			*level = levels[i].level;
			return 0;
		}
	}
	return cli_usage_error("serve", "--log-level wants error, warning, notice, info or "
			       "debug, not '%s'", val);
}

static int serve_parse(int argc, char **argv, struct serve_list *devs,
		       struct vfpm_server_opts *opts, struct serve_limits *lim, uid_t *uids,
		       const char **ready_file)
{
	struct serve_device *cur = NULL;
	bool listed = false;
	char err[160];

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned long max;
		unsigned int *field = serve_limit_field(opt, opts, lim, &max);
		int ret;

		if (strcmp(opt, "--device") && strcmp(opt, "--devices") && strcmp(opt, "--socket") &&
		    strcmp(opt, "--backend") && strcmp(opt, "--backing") &&
		    strcmp(opt, "--block-size") && strcmp(opt, "--mode") &&
		    strcmp(opt, "--ready-file") && strcmp(opt, "--allow-uid") &&
		    strcmp(opt, "--log-level") && !field)
			return cli_usage_error("serve", "unknown option '%s'", opt);
		if (!val)
			return cli_usage_error("serve", "%s needs a value", opt);
		i++;
		if (field) {
			char *end;
			unsigned long n;

			errno = 0;
			n = strtoul(val, &end, 10);
			if (!*val || *end || errno || n > max || val[0] == '-')
				return cli_usage_error("serve", "%s wants a number from 0 to %lu, "
						       "not '%s'", opt, max, val);
			*field = (unsigned int)n;
		} else if (!strcmp(opt, "--log-level")) {
			if (serve_parse_log_level(val, &lim->log_level))
				return 1;
		} else if (!strcmp(opt, "--device")) {
			if (!serve_kind_known(val))
				return cli_usage_error("serve", "unknown device kind '%s' "
						       "(memory, poller, optout or nvme)", val);
			cur = serve_list_add(devs, val);
			if (!cur)
				return cli_fail("serve", ENOMEM, "--device");
		} else if (!strcmp(opt, "--devices")) {
			int status = serve_list_read(devs, val);

			if (status)
				return status;
			/* Options that follow belong to no listed device. */
			cur = NULL;
			listed = true;
		} else if (!strcmp(opt, "--mode")) {
			char *end;
			unsigned long mode = strtoul(val, &end, 8);

			if (*end || mode > 0777)
				return cli_usage_error("serve", "--mode wants an octal mode like 0600, not '%s'", val);
			opts->socket_mode = (mode_t)mode;
		} else if (!strcmp(opt, "--allow-uid")) {
			if (opts->n_allowed_uids == SERVE_MAX_UIDS)
				return cli_usage_error("serve", "at most %d --allow-uid", SERVE_MAX_UIDS);
			if (serve_parse_uid(val, &uids[opts->n_allowed_uids]))
				return cli_usage_error("serve", "--allow-uid wants a uid or a user name, "
						       "not '%s'", val);
			opts->allowed_uids = uids;
			opts->n_allowed_uids++;
		} else if (!strcmp(opt, "--ready-file")) {
			*ready_file = val;
		} else {
			if (!cur && listed)
				return cli_usage_error("serve", "%s after --devices: start a device "
						       "with --device KIND first", opt);
			if (!cur && !(cur = serve_list_add(devs, "memory")))
				return cli_fail("serve", ENOMEM, "--device");
			ret = serve_device_option(cur, opt, val, 1, err, sizeof(err));
			if (ret)
				return cli_usage_error("serve", "%s", err);
		}
	}
	if (devs->n == 0 && listed)
		return cli_usage_error("serve", "no device in the device list");
	if (devs->n == 0 && !serve_list_add(devs, "memory"))
		return cli_fail("serve", ENOMEM, "a device");
	return serve_list_finish(devs);
}

/*
 * The nvme device's backing file, told plainly when it will not do: 0, or
 * the exit status after the message.
 */
static int serve_check_backing(const struct serve_device *d)
{
	unsigned int block = d->block_size ? d->block_size : 512;
	struct stat st;

	if (stat(d->backing, &st))
		return cli_fail("serve", errno, "the nvme backing file %s", d->backing);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return cli_fail("serve", 0, "the nvme backing file %s is neither a regular file "
				"nor a block device", d->backing);
	if (S_ISREG(st.st_mode) && st.st_size < (off_t)block)
		return cli_fail("serve", 0, "the nvme backing file %s is too small: %lld bytes, "
				"less than one %u-byte block", d->backing, (long long)st.st_size,
				block);
	return 0;
}

static int serve_create_device(struct serve_device *d)
{
	if (!strcmp(d->kind, "nvme")) {
		struct vfpm_nvme_opts opts = { .backing_path = d->backing,
					       .block_size = d->block_size };

		return vfpm_nvme_create(&opts, &d->pdev);
	}
	if (!strcmp(d->kind, "poller")) {
		struct vfpm_poller_opts opts = { .backend_path = d->backend };

		return vfpm_poller_create(&opts, &d->pdev);
	}
	return vfpm_memdev_create(!strcmp(d->kind, "optout"), &d->pdev);
}

static void serve_destroy_device(struct serve_device *d)
{
	if (d->srv)
		vfpm_server_destroy(d->srv);
	if (!d->pdev)
		return;
	if (!strcmp(d->kind, "poller"))
		vfpm_poller_destroy(d->pdev);
	else if (!strcmp(d->kind, "nvme"))
		vfpm_nvme_destroy(d->pdev);
	else
		vfpm_memdev_destroy(d->pdev);
}

/* Socket activation: the fds systemd passed, if they are for us. */
static int serve_activation_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

	if (!pid || !fds || strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	return (int)strtol(fds, NULL, 10);
}

static int serve_start(struct serve_device *d, unsigned int n, int activated,
		       const struct vfpm_server_opts *opts, bool quiet)
{
	int err;

	if (d->backing && (err = serve_check_backing(d)))
		return err;
	err = serve_create_device(d);
	if (err && d->backing)
		return cli_fail("serve", err, "cannot create the nvme device on %s", d->backing);
	if (err)
		return cli_fail("serve", err, "cannot create the %s device%s%s", d->kind,
				d->backend ? " with backend " : "", d->backend ? d->backend : "");
	if ((int)n < activated)
		err = vfpm_server_create_fd(vfpm_pci_device(d->pdev), 3 + (int)n, opts, &d->srv);
	else
		err = vfpm_server_create(vfpm_pci_device(d->pdev), d->socket, opts, &d->srv);
	if (!err)
		err = vfpm_server_start(d->srv);
	if (err)
		return cli_fail("serve", err, "cannot serve the %s device on %s", d->kind,
				(int)n < activated ? "the activation socket" : d->socket);
	if (quiet)
		return 0;
	if ((int)n < activated)
		printf("vfpm: %s device on activation fd %u\n", d->kind, 3 + n);
	else
		printf("vfpm: %s device on %s%s%s%s%s\n", d->kind, d->socket,
		       d->backend ? ", backend " : "", d->backend ? d->backend : "",
		       d->backing ? ", backing " : "", d->backing ? d->backing : "");
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_list devs = { 0 };
	struct vfpm_server_opts opts = { .socket_mode = 0600 };
	struct serve_limits lim = { .log_level = VFPM_LOG_INFO };
	uid_t uids[SERVE_MAX_UIDS];
	const char *ready_file = NULL;
	unsigned int started = 0;
	sigset_t stop_signals;
	int activated, status, sig;

	if (cli_wants_help(argc, argv)) {
		fputs(serve_usage, stdout);
		return 0;
	}
	status = serve_parse(argc, argv, &devs, &opts, &lim, uids, &ready_file);
	if (!status)
		status = serve_fd_budget(&devs);
	if (status) {
		serve_list_free(&devs);
		return status;
	}
	vfpm_log_set(vfpm_log_stderr, NULL, lim.log_level);
	vfpm_transport_set_limits(&lim.process);
	activated = serve_activation_fds();

	/* Block the stop signals before any thread starts, then wait for one here. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

	for (started = 0; started < devs.n && !status; started++)
		status = serve_start(&devs.dev[started], started, activated, &opts,
				     started >= SERVE_LISTED);
	if (!status && devs.n > SERVE_LISTED)
		printf("vfpm: %u devices in all (the first %u listed)\n", devs.n, SERVE_LISTED);
	if (!status && ready_file) {
		FILE *f = fopen(ready_file, "w");

		if (!f || fputs("ready\n", f) == EOF || fclose(f) == EOF)
			status = cli_fail("serve", errno, "cannot write %s", ready_file);
	}
	fflush(stdout);
	if (!status) {
		sigwait(&stop_signals, &sig);
		printf("vfpm: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	}
	while (started > 0)
		serve_destroy_device(&devs.dev[--started]);
	serve_list_free(&devs);
	return status;
}
