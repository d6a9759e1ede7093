// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: feature payloads.  VFIO_DEVICE_FEATURE (and the other
 * device ioctls that take fds or variable payloads) through
 * vfpm_instance_ioctl on an open PCI device, with arbitrary "user memory"
 * (in_len readable bytes, cap writable ones, in a buffer exactly as large as
 * the larger, so ASan sees any access past it) and an fd table of eventfds,
 * memfds and closed fds, or the process's own fd table.
 *
 * Input: a sequence of operations, each
 *   u8 op, u8 fd spec, u16 in_len, u16 cap, in_len bytes of argument.
 * op selects the ioctl (mostly DEVICE_FEATURE) or "let the device suspend";
 * fd spec bits 0-1 are the table's size, bits 2-5 a kind per entry, bit 7
 * "no table" (fd numbers are the process's own).
 *
 * Checked: a successful ENTRY leaves low power engaged, a successful EXIT
 * leaves it disengaged; after the last close the device is idle with no
 * usage reference left; no fd leaks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/vfio.h>

#include <vfpm/device.h>

#include "fuzz_util.h"
#include "test_model.h"

#define MAX_ARG 1024u

static struct test_model *model;
static struct vfpm_pci_dev *pdev;
static int fd_baseline = -1;

static const unsigned int ioctls[] = {
	VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE,
	VFIO_DEVICE_SET_IRQS, VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_GET_IRQ_INFO,
	VFIO_DEVICE_GET_INFO, VFIO_DEVICE_RESET,
};
#define N_IOCTLS (sizeof(ioctls) / sizeof(ioctls[0]))
#define OP_LET_SUSPEND N_IOCTLS

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	model = fuzz_model_create();
	pdev = model->pdev;
	return 0;
}

static int make_fd(unsigned int kind)
{
	int fd;

	switch (kind) {
	case 0:
	case 1:
		return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	case 2:
		return memfd_create("fuzz", MFD_CLOEXEC);
	default:
		/* A number that names no open fd. */
		fd = eventfd(0, EFD_CLOEXEC);
		if (fd >= 0)
			close(fd);
		return fd;
	}
}

static void check_low_power(unsigned int cmd, const uint8_t *arg, size_t in_len, long ret)
{
	struct vfio_device_feature f;
	uint32_t index;

	if (cmd != VFIO_DEVICE_FEATURE || ret != 0 || in_len < sizeof(f))
		return;
	memcpy(&f, arg, sizeof(f));
	if (f.flags & VFIO_DEVICE_FEATURE_PROBE)
		return;
	index = f.flags & VFIO_DEVICE_FEATURE_MASK;
	if ((index == VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY ||
	     index == VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP) &&
	    !vfpm_pci_low_power_engaged(pdev)) {
		fprintf(stderr, "fuzz_feature: ENTRY succeeded, low power not engaged\n");
		abort();
	}
	if (index == VFIO_DEVICE_FEATURE_LOW_POWER_EXIT && vfpm_pci_low_power_engaged(pdev)) {
		fprintf(stderr, "fuzz_feature: EXIT succeeded, low power still engaged\n");
		abort();
	}
}

static void one_op(struct vfpm_instance *inst, struct fuzz_in *in)
{
	unsigned int op = fuzz_u8(in) % (N_IOCTLS + 1);
	unsigned int spec = fuzz_u8(in);
	size_t in_len = fuzz_u16(in) % (MAX_ARG + 1);
	size_t cap = fuzz_u16(in) % (MAX_ARG + 1);
	size_t size = in_len > cap ? in_len : cap;
	int fd[3];
	unsigned int nfds = spec & 3;
	struct vfpm_fds fds = { .fd = fd, .count = nfds };
	struct vfpm_fds_out out = { .count = 0 };
	struct vfpm_ubuf ubuf;
	uint8_t *arg;
	long ret;

	if (op == OP_LET_SUSPEND) {
		/* With low power engaged the device suspends once idle: let it. */
		if (vfpm_pci_low_power_engaged(pdev))
			vfpm_pm_wait_status(vfpm_pci_pm(pdev), VFPM_PM_SUSPENDED, 1000);
		return;
	}
	arg = malloc(size ? size : 1);
	if (!arg)
		abort();
	fuzz_bytes(in, arg, in_len);
	memset(arg + in_len, 0xa5, size - in_len);
	for (unsigned int i = 0; i < nfds; i++)
		fd[i] = make_fd((spec >> (2 + i)) & 3);
	ubuf = (struct vfpm_ubuf){ .data = arg, .in_len = in_len, .cap = cap };
	ret = vfpm_instance_ioctl(inst, ioctls[op], &ubuf, (spec & 0x80) ? NULL : &fds, &out);
	if (ubuf.out_len > cap) {
		fprintf(stderr, "fuzz_feature: wrote %zu bytes into %zu\n", ubuf.out_len, cap);
		abort();
	}
	check_low_power(ioctls[op], arg, in_len, ret);
	for (unsigned int i = 0; i < out.count; i++)
		close(out.fd[i]);
	for (unsigned int i = 0; i < nfds; i++) {
		if (fd[i] >= 0 && ((spec >> (2 + i)) & 3) != 3)
			close(fd[i]);
	}
	free(arg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { .p = data, .left = size };
	struct vfpm_instance *inst;

	if (vfpm_device_open(vfpm_pci_device(pdev), &inst))
		abort();
	for (unsigned int n = 0; in.left && n < 64; n++)
		one_op(inst, &in);
	vfpm_instance_close(inst);
	fuzz_model_wait_idle(model);
	fuzz_check_fds(&fd_baseline);
	return 0;
}
