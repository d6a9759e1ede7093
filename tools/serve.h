/* SPDX-License-Identifier: MIT */
/*
 * vfpm serve's devices: the list built from --device options and device
 * list files (serve_list.c), and the fd budget they need.
 */
#ifndef VFPM_TOOLS_SERVE_H
#define VFPM_TOOLS_SERVE_H

#include <stddef.h>

#include <vfpm/pci.h>
#include <vfpm/transport.h>

struct serve_device {
	const char *kind;		/* memory, poller, optout or nvme */
	const char *socket;
	const char *backend;		/* poller */
	const char *backing;		/* nvme */
	unsigned int block_size;	/* nvme; 0: 512 */
	/* Where a device of a list file was described (file NULL: the command line). */
	const char *file;
	unsigned int line;
	char *owned[2];			/* strings made for it, freed with it */
	struct vfpm_pci_dev *pdev;
	struct vfpm_server *srv;
};

struct serve_list {
	struct serve_device *dev;
	unsigned int n, cap;
};

/* A new device of kind at the end of the list (NULL when out of memory). */
struct serve_device *serve_list_add(struct serve_list *l, const char *kind);
void serve_list_free(struct serve_list *l);
/* Is kind one vfpm serve knows? */
int serve_kind_known(const char *kind);
/*
 * A device option (--backend, --backing, --block-size; --socket too when
 * socket_ok) for d: 0, 1 when opt is not a device option, or -1 with the
 * reason in err.
 */
int serve_device_option(struct serve_device *d, const char *opt, const char *val, int socket_ok,
			char *err, size_t len);
/*
 * Read a device list file: one device a line, "KIND SOCKET [OPTIONS]",
 * blank lines and '#' comments skipped.  0, or the exit status after the
 * message (FILE:LINE: why, for a bad line).
 */
int serve_list_read(struct serve_list *l, const char *path);
/*
 * Fill in what a device needs and check what it was given (default socket
 * and backend paths; options for the kind): 0, or the exit status after the
 * message.
 */
int serve_list_finish(struct serve_list *l);
/*
 * Raise the soft fd limit to the hard one, and check that the devices fit
 * under it with room for clients: 0, or the exit status after saying how
 * many fit and what limit they need.
 */
int serve_fd_budget(const struct serve_list *l);

#endif /* VFPM_TOOLS_SERVE_H */
