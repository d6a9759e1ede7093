/* SPDX-License-Identifier: MIT */
/* The conformance engine's scenario model, shared by parse.c and engine.c. */
#ifndef VFPM_CONFORMANCE_INTERNAL_H
#define VFPM_CONFORMANCE_INTERNAL_H

#include "conformance.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfpm/client.h>

#define CONF_MAX_ARGS 8

struct conf_step {
	unsigned int line;
	char *text;			/* the command as written */
	char *argv[CONF_MAX_ARGS];
	int argc;
	char *expect_kernel;		/* the observation expected on Linux */
	char *expect_vfpm;		/* the same, unless the step declares a difference */
	char *why;			/* why the two may differ, or NULL */
};

struct conf_scenario {
	unsigned int line;
	char *id;
	char *title;
	char *only;			/* "kernel" or "vfpm": the other target cannot run it */
	char *only_why;
	struct conf_step *steps;
	unsigned int nsteps;
};

struct conf_set {
	struct conf_scenario *sc;
	unsigned int n;
};

/* ---- a target: its instances, eventfds and what discovery found (target.c) ---- */

#define MAX_INST 4
#define MAX_EFD 4
#define MAX_REGIONS 16
#define WAIT_MS 3000
#define PARK_MS 1500		/* vfio-user: how long the parked (slow) request lasts */
#define CFG VFIO_PCI_CONFIG_REGION_INDEX
/* The memory device's slow register (include/vfpm/devices.h; not a dependency here). */
#define MEMDEV_BAR 2
#define MEMDEV_ID 0x4d454d30u
#define MEMDEV_REG_DELAY 0x08
#define MEMDEV_REG_SLOW 0x0c

struct inst {
	bool open;
	struct vfpm_client *c;		/* NULL for a kernel instance opened raw */
	void *map;			/* mmap of the first page of the BAR, or NULL */
	size_t maplen;
	/* the parked request */
	bool parked;
	pthread_t th;
	ssize_t park_ret;
	int uffd;
	void *page;
};

struct ctx {
	const char *target;
	bool kernel;
	char bdf[64];
	struct vfpm_client *status;	/* vfio-user: a connection that never opens the device */
	struct inst in[MAX_INST + 1];	/* 1-based */
	int efd[MAX_EFD + 1];
	/* discovered */
	uint32_t num_regions;
	uint64_t region_size[MAX_REGIONS];	/* 0 for an index the device does not have */
	uint32_t bar;			/* first mmap-able memory BAR */
	uint64_t bar_size, cfg_size;
	unsigned int pm_cap;
	bool have_slow;
	const char *why_no_park;
	long page;
};

void set_res(char *res, size_t len, long r);
bool parse_u64(const char *s, uint64_t *v);
int inst_open(struct ctx *x, struct inst *in);
void inst_unmap(struct inst *in);
void inst_close(struct inst *in);
void inst_close_synced(struct ctx *x, struct inst *in);
int xioctl(int fd, unsigned long req, void *arg);
int inst_info(struct inst *in, struct vfio_device_info *info);
int inst_region_info(struct inst *in, uint32_t index, struct vfio_region_info *ri);
int inst_feature(struct inst *in, uint32_t flags, void *data, size_t len, const int *fds,
		 unsigned int nfds);
int32_t inst_fd_arg(struct inst *in, const int *fds, unsigned int i);
ssize_t inst_rw(struct ctx *x, struct inst *in, uint32_t index, uint64_t off, void *buf,
		size_t count, bool write);
int cfg_read(struct ctx *x, struct inst *in, unsigned int off, unsigned int len,     uint32_t *v);
int cfg_write(struct ctx *x, struct inst *in, unsigned int off, unsigned int len,      uint32_t v);
int status_now(struct ctx *x, char *out, size_t len);
void wait_status(struct ctx *x, const char *want, int timeout_ms, char *res, size_t len);
void stays_active(struct ctx *x, int ms, char *res, size_t len);
const char *touch(volatile uint32_t *p);
int park(struct ctx *x, struct inst *in, char *res, size_t len);
int release(struct ctx *x, struct inst *in);
int discover(struct ctx *x, char *err, size_t errlen);
/* touch() turns a SIGBUS into "SIGBUS" once this is installed. */
void catch_sigbus(void);

#endif
