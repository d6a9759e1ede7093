/* SPDX-License-Identifier: MIT */
/*
 * The PCI core's tests' side of the test device model (tests/model): the
 * helpers a test uses to talk to the device the way a user would (ioctls in
 * a struct vfpm_ubuf, region reads and writes at VFIO region offsets, fds)
 * and the fixture that creates the model and opens an instance.
 */
#ifndef PCI_TEST_UTIL_H
#define PCI_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/vfio.h>

#include <vfpm/device.h>
#include <vfpm/pci.h>
#include <vfpm/pm.h>

#include "test_model.h"

/*
 * VFIO_DEVICE_FEATURE with a header {argsz, flags} followed by payload; the
 * user memory is exactly header + payload (argsz may say otherwise); a NULL
 * payload stands for payload_len zero bytes.
 */
long tm_feature(struct vfpm_instance *inst, uint32_t flags, uint32_t argsz,
		const void *payload, size_t payload_len, const struct vfpm_fds *fds);
/* The three low power features, SET, the way a user normally calls them. */
long tm_entry(struct vfpm_instance *inst);
long tm_entry_wakeup(struct vfpm_instance *inst, int32_t efd, const struct vfpm_fds *fds);
long tm_exit(struct vfpm_instance *inst);

/* VFIO_DEVICE_GET_INFO with this argsz (user memory: the whole struct). */
long tm_get_info(struct vfpm_instance *inst, uint32_t argsz);
/* VFIO_DEVICE_GET_REGION_INFO; *memfd gets the region's fd or -1 (memfd may be NULL). */
long tm_region_info(struct vfpm_instance *inst, uint32_t index, uint32_t argsz,
		    struct vfio_region_info *info, int *memfd);

/* Region accesses. */
ssize_t tm_read(struct vfpm_instance *inst, unsigned int index, uint64_t offset, void *buf,
		size_t count);
ssize_t tm_write(struct vfpm_instance *inst, unsigned int index, uint64_t offset,
		 const void *buf, size_t count);
/* Config space reads/writes of 1, 2 or 4 bytes; 0 or the negative errno. */
int tm_cfg_read(struct vfpm_instance *inst, unsigned int offset, unsigned int size,
		uint32_t *value);
int tm_cfg_write(struct vfpm_instance *inst, unsigned int offset, unsigned int size,
		 uint32_t value);
/* Write PCI_COMMAND with or without Memory Space enabled. */
int tm_set_memory(struct vfpm_instance *inst, bool enable);
/* Walk the capability list from 0x34 through config reads; 0 if absent. */
unsigned int tm_find_cap(struct vfpm_instance *inst, uint8_t cap_id);

/* VFIO_DEVICE_SET_IRQS with the given flags and optional eventfd data. */
long tm_set_irqs(struct vfpm_instance *inst, uint32_t flags, uint32_t index, uint32_t start,
		 uint32_t count, const int32_t *fds, const struct vfpm_fds *in);

/* A nonblocking eventfd read: its counter (0 when nothing was signalled), or -errno. */
int64_t tm_eventfd_take(int efd);
int tm_eventfd_new(void);
/* Number of open fds of this process. */
int tm_count_fds(void);

/*
 * A cmocka fixture without cmocka: *state holds the prestate (a struct
 * tm_config *, or NULL for the default model) and becomes a struct
 * tm_fixture *.  Setup creates the model, waits until the unused device has
 * suspended and, with open, opens one instance.  Teardown opens the read
 * gate, closes the instance if the test left it open, destroys the
 * device and fails (-1) when the model saw a violation.
 */
struct tm_fixture {
	struct test_model *m;
	struct vfpm_instance *inst;	/* NULL once the test closed it */
};

int tm_fixture_setup(void **state, bool open);
int tm_fixture_teardown(void **state);

#endif /* PCI_TEST_UTIL_H */
