/* SPDX-License-Identifier: MIT */
/*
 * An NVMe controller that sleeps: a device model on <vfpm/pci.h> whose single
 * namespace is a file (or a block device), for Linux's nvme driver.
 *
 * BAR0 (64-bit, 16 KiB): the controller registers in its first page,
 * trapped; the doorbells in its second page, memory the VMM maps, which a
 * poller thread reads (SPDK's layout).  BAR4: the MSI-X table (16 vectors)
 * and its PBA.  INTx as the fallback.  While the controller is enabled the
 * poller busy-polls the doorbells of the live queues; in runtime suspend (or
 * D3hot) it is stopped, after the commands it had started have completed,
 * and it starts again on resume with the queues as they were.
 *
 * Entry points for the vfpm tool, the tests and the fuzzer; the model itself
 * uses only the public library API.
 */
#ifndef VFPM_NVME_DEV_H
#define VFPM_NVME_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include <vfpm/pci.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VFPM_NVME_BAR0_SIZE 0x4000u
#define VFPM_NVME_DOORBELLS 0x1000u	/* BAR0 offset of the doorbell page */
#define VFPM_NVME_MSIX_VECTORS 16u
#define VFPM_NVME_MSIX_BAR 4u
#define VFPM_NVME_MAX_IO_QUEUES 64u	/* I/O queue ids 1 .. 64 */
#define VFPM_NVME_MAX_QUEUE_ENTRIES 1024u
#define VFPM_NVME_MAX_TRANSFER (512u * 1024)	/* MDTS */
#define VFPM_NVME_AER_LIMIT 4u		/* outstanding Asynchronous Event Requests */

struct vfpm_nvme_opts {
	/* The namespace: a regular file or a block device, opened read-write. */
	const char *backing_path;
	/* 512 (0 means 512) or 4096; the namespace is the file's size rounded down. */
	unsigned int block_size;
	/*
	 * No poller thread: the engine runs only when vfpm_nvme_poll is
	 * called (the fuzzer drives it so, deterministically).
	 */
	bool manual_poll;
};

/*
 * Create the controller (powered on, disabled).  -EINVAL for a block size
 * other than 512 or 4096, -ENOSPC for a backing file smaller than one block,
 * or the errno of opening it.
 */
int vfpm_nvme_create(const struct vfpm_nvme_opts *opts, struct vfpm_pci_dev **out);
void vfpm_nvme_destroy(struct vfpm_pci_dev *pdev);

/*
 * Manual mode: one pass of the engine on the calling thread (apply a
 * written CC, process the doorbells); -EINVAL without manual_poll.
 */
int vfpm_nvme_poll(struct vfpm_pci_dev *pdev);

struct vfpm_nvme_stats {
	bool polling;		/* the poller thread runs now */
	uint32_t csts;		/* the CSTS register */
	uint64_t blocks;	/* namespace size in blocks */
	uint64_t passes;	/* passes of the engine over the doorbells */
	uint64_t commands;	/* commands completed (an AER once it completes) */
	uint64_t drained;	/* ... of which by a runtime suspend, after the poller stopped */
	uint64_t suspends, resumes;
	/* Why CSTS.CFS was set (a static string), or NULL. */
	const char *fatal_reason;
};

void vfpm_nvme_get_stats(struct vfpm_pci_dev *pdev, struct vfpm_nvme_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* VFPM_NVME_DEV_H */
