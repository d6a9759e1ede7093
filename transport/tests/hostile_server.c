// SPDX-License-Identifier: MIT
/*
 * The server the hostile-client tests attack: one process serving three
 * devices, as `vfpm serve` would, so that an attack on one device can be
 * checked against the others and against the process's resources.
 *
 *   DIR/a.sock   the test model (mappable BAR0, trapped BAR2 that does DMA)
 *   DIR/b.sock   another test model: the device that must keep answering
 *   DIR/p.sock   the polling device (its backend thread reads BAR0 itself)
 *
 * Usage: hostile-server DIR [--version-timeout MS] [--msg-timeout MS]
 *                           [--max-connections N] [--max-total-connections N]
 *                           [--caller-loop 1]
 * Logs to stderr at info; writes DIR/ready once every socket listens; runs
 * until SIGTERM, then tears everything down and exits 0.  With
 * --caller-loop the servers are attached to a loop the main thread drives
 * (epoll on it and a signalfd), and the PM core's work runs there too: the
 * library runs no thread (the devices' own backends still do).
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"
#include <vfpm/log.h>
#include <vfpm/pm.h>
#include <vfpm/transport.h>

#include "test_model.h"

static unsigned int arg_uint(int argc, char **argv, const char *name)
{
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], name))
			return (unsigned int)strtoul(argv[i + 1], NULL, 10);
	}
	return 0;
}

static struct vfpm_loop *loop;

static struct vfpm_server *serve(struct vfpm_pci_dev *pdev, const char *dir, const char *name,
				 const struct vfpm_server_opts *opts)
{
	struct vfpm_server *srv;
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (vfpm_server_create(vfpm_pci_device(pdev), path, opts, &srv) ||
	    (loop ? vfpm_server_attach(srv, loop) : vfpm_server_start(srv))) {
		fprintf(stderr, "hostile-server: cannot serve %s\n", path);
		exit(2);
	}
	return srv;
}

int main(int argc, char **argv)
{
	struct vfpm_transport_limits lim = { 0 };
	struct vfpm_server_opts opts = { 0 }, topts;
	struct vfpm_server *srv[3];
	const struct tm_config config = { .registers = true, .msix_mappable = true, .flr = true };
	struct test_model *a, *b;
	struct vfpm_pci_dev *p;
	struct vfpm_poller_opts popts;
	char backend[256], ready[256];
	sigset_t stop;
	FILE *f;
	int sig;

	if (argc < 2 || (argc % 2) != 0) {
		fprintf(stderr, "usage: hostile-server DIR [--OPTION VALUE]...\n");
		return 1;
	}
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	vfpm_log_set(vfpm_log_stderr, NULL, VFPM_LOG_INFO);

	opts.version_timeout_ms = arg_uint(argc, argv, "--version-timeout");
	opts.msg_timeout_ms = arg_uint(argc, argv, "--msg-timeout");
	opts.max_connections = arg_uint(argc, argv, "--max-connections");
	lim.max_connections = arg_uint(argc, argv, "--max-total-connections");
	vfpm_transport_set_limits(&lim);
	if (arg_uint(argc, argv, "--caller-loop") &&
	    (vfpm_pm_worker_set_external(true) || vfpm_loop_create(&loop))) {
		fprintf(stderr, "hostile-server: cannot set up the caller's loop\n");
		return 2;
	}

	snprintf(backend, sizeof(backend), "%s/p.backend", argv[1]);
	popts = (struct vfpm_poller_opts){ .backend_path = backend };
	if (tm_create(&config, &a) || tm_create(&config, &b) || vfpm_poller_create(&popts, &p)) {
		fprintf(stderr, "hostile-server: cannot create the devices\n");
		return 2;
	}
	topts = opts;
	topts.on_connect = tm_on_connect;
	topts.on_disconnect = tm_on_disconnect;
	topts.opaque = a;
	srv[0] = serve(a->pdev, argv[1], "a.sock", &topts);
	topts.opaque = b;
	srv[1] = serve(b->pdev, argv[1], "b.sock", &topts);
	srv[2] = serve(p, argv[1], "p.sock", &opts);

	snprintf(ready, sizeof(ready), "%s/ready", argv[1]);
	f = fopen(ready, "w");
	if (!f || fputs("ready\n", f) == EOF || fclose(f) == EOF)
		return 2;
	if (loop) {
		struct pollfd pfd[2] = {
			{ .fd = vfpm_loop_fd(loop), .events = POLLIN },
			{ .fd = signalfd(-1, &stop, SFD_CLOEXEC), .events = POLLIN },
		};

		while (!pfd[1].revents) {
			if (poll(pfd, 2, -1) > 0 && (pfd[0].revents & POLLIN))
				vfpm_loop_process(loop);
		}
		close(pfd[1].fd);
	} else {
		sigwait(&stop, &sig);
	}

	for (int i = 0; i < 3; i++)
		vfpm_server_destroy(srv[i]);
	vfpm_loop_destroy(loop);
	tm_destroy(a);
	tm_destroy(b);
	vfpm_poller_destroy(p);
	fprintf(stderr, "hostile-server: clean exit\n");
	return 0;
}
