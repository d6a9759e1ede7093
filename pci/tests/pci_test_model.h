/* SPDX-License-Identifier: MIT */
/*
 * A device model for the PCI core's tests (a "variant driver"), and the
 * helpers a test uses to talk to it the way a user would: ioctls in a
 * struct vfpm_ubuf, region reads and writes at VFIO region offsets, fds.
 *
 * The function: vendor 0x1af4, INTA, BAR0 a mappable 16 KiB MEM32, BAR2 a
 * trapped 4 KiB MEM32 (reads return what the array holds, a pattern until
 * written; a "slow" mode parks a BAR2 read until the test releases it),
 * BAR4 a 16 KiB MEM64 holding the MSI-X table (4 vectors), and the PM, MSI
 * (1 vector), MSI-X and PCIe capabilities.
 *
 * The model checks from inside that the core keeps its promise: no trapped
 * BAR access while the device is suspended (by its own flag, set by
 * runtime_suspend and cleared by runtime_resume) or while the runtime PM
 * status is not ACTIVE.  bar_rw may run on any thread, so a broken promise
 * is counted (and printed), and the test asserts the count is zero.
 */
#ifndef PCI_TEST_MODEL_H
#define PCI_TEST_MODEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/vfio.h>

#include <vfpm/device.h>
#include <vfpm/pci.h>
#include <vfpm/pm.h>

#define TM_VENDOR_ID 0x1af4
#define TM_DEVICE_ID 0x10f7
#define TM_BAR0_SIZE 0x4000u
#define TM_BAR2_SIZE 0x1000u
#define TM_BAR4_SIZE 0x4000u
#define TM_MSIX_VECTORS 4

/* Generous bound for asynchronous work, sanitizers included. */
#define TM_SOON_MS 5000
/* How long "stays" is checked for when something must not happen. */
#define TM_QUIET_MS 100

struct tm_config {
	bool opt_out;		/* open holds a runtime PM reference */
	bool no_soft_reset;	/* PMCSR NoSoftReset */
	bool msix_mappable;	/* BAR4 backed by a memfd */
};

struct test_model {
	struct vfpm_pci_dev *pdev;
	struct vfpm_pm_dev *pm;
	struct tm_config config;

	/* What happened. */
	atomic_int opens;
	atomic_int closes;
	atomic_int resets;
	atomic_int suspends;		/* runtime_suspend calls */
	atomic_int resumes;		/* runtime_resume calls (failed ones included) */
	atomic_bool suspended;		/* the backend is stopped */
	atomic_long bar_accesses;
	atomic_int violations;

	/* Behaviour. */
	atomic_int resume_ret;		/* what runtime_resume returns (0 or -EIO) */

	/* BAR2 contents and the slow-read rendezvous. */
	pthread_mutex_t lock;		/* protects bar2 and the fields below */
	pthread_cond_t cond;
	uint8_t bar2[TM_BAR2_SIZE];
	bool slow;			/* the next BAR2 reads park until released */
	bool entered;			/* a slow read is parked */
	bool released;
};

struct test_model *tm_create(const struct tm_config *config);
/* Destroys the device (all instances closed) and frees the model. */
void tm_destroy(struct test_model *m);

/* Expected BAR2 byte at offset before any write. */
uint8_t tm_bar2_pattern(uint64_t offset);

/* Slow BAR2 reads: park them, wait until one is parked, let it go. */
void tm_slow_arm(struct test_model *m);
int tm_slow_wait_entered(struct test_model *m, int timeout_ms);
void tm_slow_release(struct test_model *m);

/* ---- user-side helpers ---- */

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

/* Waits with the library's own wait, for tests. */
int tm_wait(struct test_model *m, enum vfpm_pm_status status, int timeout_ms);
/*
 * "The device stays ACTIVE": flush pending requests (vfpm_pm_barrier), then
 * check it is ACTIVE, that an idle check run now refuses to suspend it (the
 * barrier cancels a queued idle request, which could otherwise hide a
 * missing reference), and, when quiet_ms > 0, that it does not reach
 * SUSPENDED within quiet_ms.  True when all of that holds.
 */
bool tm_stays_active(struct test_model *m, int quiet_ms);

/*
 * A cmocka fixture without cmocka: *state holds the prestate (a struct
 * tm_config *, or NULL for the default model) and becomes a struct
 * tm_fixture *.  Setup creates the model, waits until the unused device has
 * suspended and, with open, opens one instance.  Teardown releases a parked
 * slow read, closes the instance if the test left it open, destroys the
 * device and fails (-1) when the model saw a violation.
 */
struct tm_fixture {
	struct test_model *m;
	struct vfpm_instance *inst;	/* NULL once the test closed it */
};

int tm_fixture_setup(void **state, bool open);
int tm_fixture_teardown(void **state);

#endif /* PCI_TEST_MODEL_H */
