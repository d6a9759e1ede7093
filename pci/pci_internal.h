/* SPDX-License-Identifier: MIT */
/* Private to the PCI device core. */
#ifndef VFPM_PCI_INTERNAL_H
#define VFPM_PCI_INTERNAL_H

#include <vfpm/pci.h>

#include <pthread.h>

#include "base.h"
#include "config.h"
#include "irq.h"

struct pci_bar {
	/* Immutable, the device's description's (desc.bars[i]); NONE for a MEM64's upper half. */
	const struct vfpm_pci_bar_desc *desc;
	/*
	 * Immutable: the ranges backed by memory (desc.areas, or the whole BAR
	 * when desc.mappable), in increasing order.  Accesses elsewhere trap.
	 */
	unsigned int nr_areas;
	struct vfpm_pci_bar_area areas[VFPM_PCI_BAR_AREAS_MAX];
	/*
	 * memory_lock: the user's mapping source, or -1 when trapped or (not
	 * own_fd) until a client asks for it; host is then private anonymous
	 * memory.
	 */
	int memfd;
	uint64_t fd_offset;		/* immutable: where the BAR starts in memfd */
	void *host;			/* the model's view of a mappable BAR */
	struct vfpm_memguard *guard;	/* immutable: host, whose file a client can shrink */
	bool revoked;			/* memory_lock: memfd emptied, contents kept in host */
	bool contents_lost;		/* memory_lock: revoked in place, host maps the empty file */
};

/* A capability of the model's own, where it landed. */
struct pci_model_cap {
	struct vfpm_pci_cap_desc desc;	/* immutable; data and wmask not kept */
	uint16_t offset;
};

struct vfpm_pci_dev {
	/* Immutable after creation. */
	struct vfpm_device *vdev;
	struct vfpm_pci_desc desc;
	struct vfpm_pci_model_ops ops;
	void *model;
	char name[64];			/* for the log */
	uint64_t msix_table_size;	/* bytes of the MSI-X table in desc.msix_bar, 0 without */
	unsigned int nr_caps;		/* the model's own capabilities (desc.caps) */
	struct pci_model_cap caps[VFPM_PCI_CAPS_MAX];

	/*
	 * The kernel's memory_lock: protects the configuration space (and
	 * with it memory enable and the power state), the low power fields
	 * and the revocation of BAR mappings.  Readers: config reads, BAR
	 * accesses, model backends.  Writers: config writes, reset, low power
	 * entry/exit, runtime suspend/resume.  Never held across a call into
	 * the PM core that can run a callback.
	 */
	pthread_rwlock_t memory_lock;
	struct vfpm_pcicfg cfg;
	struct pci_bar bars[6];
	bool pm_runtime_engaged;
	int pm_wake_eventfd;		/* armed wakeup eventfd, or -1 */

	/* Only the runtime PM callbacks touch it, and the PM core serialises them. */
	bool pm_intx_masked;

	/*
	 * The function's own power state drives the model's backend too: a
	 * function in D3hot is stopped (the model's runtime_suspend), back in
	 * D0 it runs again (runtime_resume), whatever the runtime PM status.
	 * backend_lock serialises those calls with the runtime PM callbacks;
	 * it is taken before memory_lock, never while holding it.
	 */
	pthread_mutex_t backend_lock;
	bool d3_stopped;		/* backend_lock: stopped because of D3hot */

	struct vfpm_pci_irqs irqs;	/* has its own lock */
};

/* bars.c */
/* Check a BAR's mappable areas and own fd, and note its areas (creation). */
int pci_bar_check_desc(struct vfpm_pci_dev *pdev, unsigned int index);
int pci_bars_init(struct vfpm_pci_dev *pdev);
/*
 * The part of [offset, offset + *count) at its start that is all memory
 * (true) or all trapped (false); *count is cut to it.
 */
bool pci_bar_piece(const struct pci_bar *bar, uint64_t offset, size_t *count);
void pci_bars_release(struct vfpm_pci_dev *pdev);
/*
 * Revoke or restore the user's BAR mappings to match the state (memory_lock
 * held for writing).  A revocation always happens, if need be at the cost of
 * the contents; every failure is logged.  0 or the first error.
 */
int pci_bars_sync_mmap(struct vfpm_pci_dev *pdev);
/*
 * A client shrank a BAR's memfd (an access faulted, or the file is short):
 * log it and rebuild the file from the device's view, so that every mapping
 * works again (memory_lock held for writing).
 */
void pci_bars_repair_locked(struct vfpm_pci_dev *pdev);
/* The same, taking memory_lock, when a fault was recorded or a file is short. */
void pci_bars_repair(struct vfpm_pci_dev *pdev);
/*
 * A duplicate of the file behind BAR index (which has mappable memory) for a
 * client, made on first use: a BAR no client asked about holds no fd.  Takes
 * memory_lock.  0 or -errno.
 */
int pci_bar_file_dup(struct vfpm_pci_dev *pdev, unsigned int index, int *fd);
/*
 * Close the files of ours no client can use (revoked, contents kept at host):
 * an idle device holds no fd for its BARs (memory_lock held for writing).
 */
void pci_bars_drop_files_locked(struct vfpm_pci_dev *pdev);
/* Memory BAR accesses allowed: memory enabled, D0 (memory_lock held). */
bool pci_memory_enabled(struct vfpm_pci_dev *pdev);

/* dma.c */
/* COMMAND.Bus Master Enable (takes memory_lock for reading). */
bool pci_bus_master(struct vfpm_pci_dev *pdev);

/* caps.c */
/* Add desc.caps to the space (creation); logs and fails on a bad one. */
int pci_caps_build(struct vfpm_pci_dev *pdev);
/* Does the range touch a capability with a read (write) hook? */
bool pci_caps_hooked(struct vfpm_pci_dev *pdev, uint64_t pos, size_t count, bool write);
/* Run those hooks over buf, the range's bytes (memory_lock held for writing). */
int pci_caps_run_hooks(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, uint64_t pos,
		       uint8_t *buf, size_t count, bool write);

/* power.c */
/*
 * Stop or restart the model's backend to match PMCSR (after anything that
 * can change it: a config write, a reset, close).  memory_lock not held.
 */
void pci_backend_follow_power_state(struct vfpm_pci_dev *pdev);
int pci_feature(struct vfpm_device *vdev, uint32_t flags, struct vfpm_ubuf *data, size_t argsz,
		const struct vfpm_fds *in);
int pci_runtime_suspend(struct vfpm_device *vdev);
void pci_power_info(struct vfpm_device *vdev, struct vfpm_power_info *info);
int pci_runtime_resume(struct vfpm_device *vdev);
/* Drop low power on close without signalling (memory_lock held for writing). */
void pci_runtime_pm_exit_locked(struct vfpm_pci_dev *pdev);
/*
 * A D3hot -> D0 transition without NoSoftReset resets the function's
 * configuration; vfio-pci restores what it saved on D3hot entry, and so do
 * we: the configuration comes back from `saved`, PMCSR stays as it is now
 * (memory_lock held for writing).
 */
void pci_restore_config_keeping_pmcsr(struct vfpm_pci_dev *pdev, const uint8_t *saved);
/* Move PMCSR to D0 keeping the configuration (memory_lock held for writing). */
void pci_set_d0_preserving(struct vfpm_pci_dev *pdev);

#endif /* VFPM_PCI_INTERNAL_H */
