/* SPDX-License-Identifier: MIT */
/*
 * Interrupts of one emulated PCI function (private to the pci layer): the
 * semantics of Linux 6.1's drivers/vfio/pci/vfio_pci_intrs.c and of
 * VFIO_DEVICE_SET_IRQS / VFIO_DEVICE_GET_IRQ_INFO, with eventfds as the only
 * signalling mechanism.
 *
 * The user configures the interrupts with SET_IRQS (INTx, MSI, MSI-X, ERR and
 * REQ; trigger eventfds, INTx mask/unmask, loopback triggering with
 * DATA_NONE / DATA_BOOL); the device model raises them with
 * vfpm_pci_irq_intx_assert() / _deassert() and vfpm_pci_irq_msi_signal().
 * Only one of INTx, MSI and MSI-X is enabled at a time, as in vfio-pci.
 *
 * Eventfds are duplicated when they are set (vfpm_eventfd_get), so the user
 * may close its own copy; vfpm_pci_irqs_disable_all() and _destroy() close
 * them.  All functions are thread-safe (one mutex per struct vfpm_pci_irqs)
 * and never call back into the caller.
 */
#ifndef VFPM_PCI_IRQ_H
#define VFPM_PCI_IRQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/vfio.h>
#include <vfpm/device.h>

/* How many vectors each index has (vfio_pci_get_irq_count). */
struct vfpm_pci_irq_counts {
	unsigned int intx;	/* 1 if the function has an interrupt pin, else 0 */
	unsigned int msi;	/* vectors the MSI capability offers, 0 without it */
	unsigned int msix;	/* MSI-X table size, 0 without it */
	unsigned int err;	/* 1 for a PCI Express function, else 0 */
	/* REQ always has 1 vector. */
};

/* No interrupt type enabled (vfio-pci's VFIO_PCI_NUM_IRQS + 1). */
#define VFPM_PCI_IRQ_NONE (VFIO_PCI_NUM_IRQS + 1)

struct vfpm_pci_irq_vector {
	int trigger;		/* eventfd or -1 */
};

struct vfpm_pci_irqs {
	pthread_mutex_t lock;			/* protects everything below */
	struct vfpm_pci_irq_counts counts;	/* immutable after init */
	unsigned int type;			/* VFIO_PCI_*_IRQ_INDEX or VFPM_PCI_IRQ_NONE */
	/* INTx */
	int intx_trigger;			/* eventfd or -1 */
	int intx_unmask;			/* eventfd that unmasks (virqfd) or -1 */
	bool intx_masked;			/* masked by the user or automatically */
	bool intx_pending;			/* line asserted while masked */
	bool intx_asserted;			/* the model's line level */
	bool virq_disabled;			/* the user's COMMAND.INTX_DISABLE is set */
	/* MSI / MSI-X: vectors[0 .. nvec) while type is MSI or MSI-X */
	struct vfpm_pci_irq_vector *vectors;
	unsigned int nvec;
	int err_trigger;			/* eventfd or -1 */
	int req_trigger;			/* eventfd or -1 */
	/* Thread that watches intx_unmask (started on demand). */
	pthread_t unmask_thread;
	bool unmask_thread_running;
	int unmask_stop;			/* eventfd that stops the watcher, or -1 */
};

int vfpm_pci_irqs_init(struct vfpm_pci_irqs *irqs, const struct vfpm_pci_irq_counts *counts);
/* Disables everything and frees it. */
void vfpm_pci_irqs_destroy(struct vfpm_pci_irqs *irqs);
/* What the last close does: every index disabled, every eventfd closed. */
void vfpm_pci_irqs_disable_all(struct vfpm_pci_irqs *irqs);

unsigned int vfpm_pci_irq_count(struct vfpm_pci_irqs *irqs, unsigned int index);

/* VFIO_DEVICE_GET_IRQ_INFO with the kernel's argsz/index checks and flags. */
int vfpm_pci_irqs_get_info(struct vfpm_pci_irqs *irqs, struct vfpm_ubuf *arg);
/* VFIO_DEVICE_SET_IRQS: validation (vfio_set_irqs_validate_and_prepare) then the action. */
int vfpm_pci_irqs_set(struct vfpm_pci_irqs *irqs, struct vfpm_ubuf *arg,
		      const struct vfpm_fds *fds);

/* The type enabled now: VFIO_PCI_*_IRQ_INDEX or VFPM_PCI_IRQ_NONE. */
unsigned int vfpm_pci_irq_type(struct vfpm_pci_irqs *irqs);
/* Mask INTx; true if it was enabled and unmasked, and this call masked it. */
bool vfpm_pci_irq_intx_mask(struct vfpm_pci_irqs *irqs);
/* Unmask INTx; a line still asserted fires (and auto-masks) again. */
void vfpm_pci_irq_intx_unmask(struct vfpm_pci_irqs *irqs);
bool vfpm_pci_irq_intx_masked(struct vfpm_pci_irqs *irqs);

/* The model raises / lowers its INTx line (level-triggered, auto-masked on delivery). */
void vfpm_pci_irq_intx_assert(struct vfpm_pci_irqs *irqs);
void vfpm_pci_irq_intx_deassert(struct vfpm_pci_irqs *irqs);
/*
 * The user's COMMAND.INTX_DISABLE, as vfio-pci virtualizes it: setting it
 * masks INTx, clearing it unmasks (each on a change only).
 */
void vfpm_pci_irq_intx_set_virq_disabled(struct vfpm_pci_irqs *irqs, bool disabled);
/*
 * The model signals MSI (index VFIO_PCI_MSI_IRQ_INDEX) or MSI-X vector.
 * 0 when an eventfd was signalled; -ENODEV when that type is not enabled or
 * the vector has no trigger; -EINVAL for a vector out of range.
 */
int vfpm_pci_irq_msi_signal(struct vfpm_pci_irqs *irqs, unsigned int index, unsigned int vector);
/* ERR and REQ notifications; -ENODEV when no eventfd is set. */
int vfpm_pci_irq_err_signal(struct vfpm_pci_irqs *irqs);
int vfpm_pci_irq_req_signal(struct vfpm_pci_irqs *irqs);

#endif /* VFPM_PCI_IRQ_H */
