// SPDX-License-Identifier: MIT
/*
 * vfpm serve's device list: devices from --device options and from device
 * list files, their options checked with the place they came from, and the
 * fds they need against the process's limit, checked before any is created.
 */
#include "cli.h"
#include "serve.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/*
 * fds one device holds while it is served, measured on an idle one (the cli
 * test checks the sum against a running server): its listening socket
 * (memory, optout), and the backing file (nvme), the backend's listening
 * socket and its wake eventfd (poller).  A BAR's memfd is made only when a
 * client asks for it and closed after the last client: see SERVE_FDS_CLIENTS.
 */
#define SERVE_FDS_DEVICE 1u
#define SERVE_FDS_NVME 2u
#define SERVE_FDS_POLLER 3u
/* The transport's reserve fd and its acceptor's epoll and eventfd, the PM core's. */
#define SERVE_FDS_PROCESS 8u
/*
 * Room for clients: 16 connections of 6 fds (socket, DMA socket, fds in
 * flight, and the memfds of two BARs their devices make for them).
 */
#define SERVE_FDS_CLIENTS 96u

/* Separators of a list file's words. */
#define SERVE_BLANKS " \t\r\n"

struct serve_device *serve_list_add(struct serve_list *l, const char *kind)
{
	if (l->n == l->cap) {
		unsigned int cap = l->cap ? l->cap * 2 : 16;
		struct serve_device *dev = realloc(l->dev, cap * sizeof(*dev));

		if (!dev)
			return NULL;
		l->dev = dev;
		l->cap = cap;
	}
	l->dev[l->n] = (struct serve_device){ .kind = kind };
	return &l->dev[l->n++];
}

void serve_list_free(struct serve_list *l)
{
	for (unsigned int i = 0; i < l->n; i++) {
		free(l->dev[i].owned[0]);
		free(l->dev[i].owned[1]);
	}
	free(l->dev);
	*l = (struct serve_list){ 0 };
}

int serve_kind_known(const char *kind)
{
	return !strcmp(kind, "memory") || !strcmp(kind, "poller") || !strcmp(kind, "optout") ||
	       !strcmp(kind, "nvme");
}

int serve_device_option(struct serve_device *d, const char *opt, const char *val, int socket_ok,
			char *err, size_t len)
{
	if (!strcmp(opt, "--socket") && socket_ok) {
		d->socket = val;
	} else if (!strcmp(opt, "--backend")) {
		d->backend = val;
	} else if (!strcmp(opt, "--backing")) {
		d->backing = val;
	} else if (!strcmp(opt, "--block-size")) {
		if (strcmp(val, "512") && strcmp(val, "4096")) {
			snprintf(err, len, "--block-size wants 512 or 4096, not '%s'", val);
			return -1;
		}
		d->block_size = (unsigned int)strtoul(val, NULL, 10);
	} else {
		return 1;
	}
	return 0;
}

/* A usage error about d: "FILE:LINE: " first when a list file described it. */
static int serve_device_error(const struct serve_device *d, const char *msg)
{
	if (d->file)
		return cli_usage_error("serve", "%s:%u: %s", d->file, d->line, msg);
	return cli_usage_error("serve", "%s", msg);
}

/* One line of a list file, split in place: 0, or the exit status after the message. */
static int serve_list_line(struct serve_list *l, const char *path, unsigned int lineno, char *line)
{
	char *save = NULL, err[160];
	char *kind = strtok_r(line, SERVE_BLANKS, &save);
	struct serve_device *d;
	char *word;

	if (!kind || kind[0] == '#')
		return 0;	/* blank or a comment */
	if (!serve_kind_known(kind))
		return cli_usage_error("serve", "%s:%u: unknown device kind '%s' (memory, poller, "
				       "optout or nvme)", path, lineno, kind);
	word = strtok_r(NULL, SERVE_BLANKS, &save);
	if (!word || word[0] == '#' || word[0] == '-')
		return cli_usage_error("serve", "%s:%u: a %s device needs its socket: KIND SOCKET "
				       "[OPTIONS]", path, lineno, kind);
	/* The words live as long as the device: they are the line's own copy. */
	d = serve_list_add(l, kind);
	if (!d)
		return cli_fail("serve", ENOMEM, "%s:%u", path, lineno);
	d->file = path;
	d->line = lineno;
	d->socket = word;
	while ((word = strtok_r(NULL, SERVE_BLANKS, &save)) && word[0] != '#') {
		char *val = strtok_r(NULL, SERVE_BLANKS, &save);
		int ret;

		if (!val || val[0] == '#')
			return cli_usage_error("serve", "%s:%u: %s needs a value", path, lineno, word);
		ret = serve_device_option(d, word, val, 0, err, sizeof(err));
		if (ret > 0)
			return cli_usage_error("serve", "%s:%u: unknown device option '%s' (--backend, "
					       "--backing or --block-size)", path, lineno, word);
		if (ret < 0)
			return serve_device_error(d, err);
	}
	return 0;
}

int serve_list_read(struct serve_list *l, const char *path)
{
	FILE *f = fopen(path, "re");
	unsigned int lineno = 0;
	size_t cap = 0;
	char *buf = NULL;
	int status = 0;

	if (!f)
		return cli_fail("serve", errno, "cannot read the device list %s", path);
	while (!status && getline(&buf, &cap, f) >= 0) {
		char *line = strdup(buf);
		unsigned int before = l->n;

		lineno++;
		if (!line) {
			status = cli_fail("serve", ENOMEM, "%s:%u", path, lineno);
			break;
		}
		status = serve_list_line(l, path, lineno, line);
		/* The device owns its line (its words point into it). */
		if (l->n > before)
			l->dev[l->n - 1].owned[0] = line;
		else
			free(line);
	}
	if (!status && ferror(f))
		status = cli_fail("serve", errno, "cannot read the device list %s", path);
	free(buf);
	fclose(f);
	return status;
}

int serve_list_finish(struct serve_list *l)
{
	for (unsigned int n = 0; n < l->n; n++) {
		struct serve_device *d = &l->dev[n];
		char msg[160];

		if (!d->socket) {
			if (asprintf(&d->owned[1], "vfpm-%s-%u.sock", d->kind, n) < 0)
				return cli_fail("serve", ENOMEM, "a socket path");
			d->socket = d->owned[1];
		}
		if (d->backend && strcmp(d->kind, "poller")) {
			snprintf(msg, sizeof(msg), "--backend is for a poller device, not %s", d->kind);
			return serve_device_error(d, msg);
		}
		if ((d->backing || d->block_size) && strcmp(d->kind, "nvme")) {
			snprintf(msg, sizeof(msg), "--%s is for an nvme device, not %s",
				 d->backing ? "backing" : "block-size", d->kind);
			return serve_device_error(d, msg);
		}
		if (!strcmp(d->kind, "nvme") && !d->backing)
			return serve_device_error(d, "an nvme device needs --backing FILE");
		if (!strcmp(d->kind, "poller") && !d->backend) {
			if (asprintf(&d->owned[1], "%s.backend", d->socket) < 0)
				return cli_fail("serve", ENOMEM, "a backend path");
			d->backend = d->owned[1];
		}
	}
	return 0;
}

/* fds open now (what the process holds before any device). */
static unsigned long serve_open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned long n = 0;
	struct dirent *e;

	if (!d)
		return 3;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;	/* the DIR's own */
}

static unsigned long serve_device_fds(const struct serve_device *d)
{
	if (!strcmp(d->kind, "poller"))
		return SERVE_FDS_POLLER;
	return !strcmp(d->kind, "nvme") ? SERVE_FDS_NVME : SERVE_FDS_DEVICE;
}

int serve_fd_budget(const struct serve_list *l)
{
	unsigned long base = serve_open_fds() + SERVE_FDS_PROCESS + SERVE_FDS_CLIENTS;
	unsigned long need = base, fit = 0;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return cli_fail("serve", errno, "getrlimit(RLIMIT_NOFILE)");
	/* Up to the hard limit: more needs privileges, which only the caller can grant. */
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			return cli_fail("serve", errno, "cannot raise the fd limit to its hard "
					"limit %llu", (unsigned long long)rl.rlim_max);
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		return 0;
	for (unsigned int i = 0; i < l->n; i++) {
		need += serve_device_fds(&l->dev[i]);
		if (need <= rl.rlim_cur)
			fit++;
	}
	if (need <= rl.rlim_cur)
		return 0;
	return cli_fail("serve", 0, "%u devices need %lu file descriptors (%lu of them for the "
			"process and its clients), but the fd limit (RLIMIT_NOFILE) is %llu, its "
			"hard limit: %lu of the devices fit.  Raise the hard limit to %lu or more "
			"(prlimit --nofile=%lu:%lu vfpm serve ... as root, LimitNOFILE=%lu in a "
			"systemd unit, or 'nofile' in /etc/security/limits.conf) or serve fewer "
			"devices", l->n, need, base, (unsigned long long)rl.rlim_cur, fit, need, need,
			need, need);
}
