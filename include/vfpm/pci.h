/* SPDX-License-Identifier: MIT */
/*
 * vfpm PCI device core (layer 3): the userspace counterpart of Linux 6.1's
 * vfio-pci-core, for emulated devices.
 *
 * A device model (layer 4, the kernel's "variant driver") describes its
 * function with struct vfpm_pci_desc and plugs in through struct
 * vfpm_pci_model_ops.  The core provides the configuration space with its
 * capability list, the BARs (trapped into bar_rw, or backed by a memfd the
 * user can mmap), the interrupts, reset, the runtime power management
 * features (VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, _ENTRY_WITH_WAKEUP, _EXIT)
 * and the runtime suspend / resume that stop and restart the model's backend.
 *
 * Open the device through the device core: vfpm_device_open(vfpm_pci_device(p)).
 *
 * Locking for models: callbacks run without core locks held.  Code that
 * touches mmap-able BAR memory through vfpm_pci_bar_mem() (a backend thread,
 * or bar_rw of another BAR) must hold vfpm_pci_mem_lock() around the access:
 * revoking the user's mappings moves those bytes under the write side.
 */
#ifndef VFPM_PCI_H
#define VFPM_PCI_H

#include <vfpm/export.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include <vfpm/device.h>
#include <vfpm/pm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfpm_pci_dev;

enum vfpm_pci_bar_type {
	VFPM_PCI_BAR_NONE = 0,
	VFPM_PCI_BAR_MEM32,
	VFPM_PCI_BAR_MEM64,	/* takes this index and the next */
	VFPM_PCI_BAR_IO,
};

/* A page-aligned range of a BAR that the user may mmap. */
struct vfpm_pci_bar_area {
	uint64_t offset;
	uint64_t size;
};

#define VFPM_PCI_BAR_AREAS_MAX 8

struct vfpm_pci_bar_desc {
	enum vfpm_pci_bar_type type;
	uint64_t size;		/* power of two */
	bool prefetchable;
	/*
	 * The whole BAR is backed by memory the user may mmap (memory BARs
	 * whose size is a multiple of the page size; the MSI-X table, when the
	 * BAR holds it, stays trapped).  Otherwise every access is trapped
	 * into the model's bar_rw, unless areas name mappable ranges.
	 */
	bool mappable;
	/*
	 * A BAR that mixes trapped registers and mappable memory (NVMe's
	 * registers trapped, its doorbells in a page the VMM maps): accesses
	 * inside these areas go to the memory (vfpm_pci_bar_mem), the rest to
	 * bar_rw.  Each area is page-aligned, inside the BAR, in increasing
	 * order and without overlap.  Ignored when mappable is set.
	 */
	unsigned int nr_areas;
	struct vfpm_pci_bar_area areas[VFPM_PCI_BAR_AREAS_MAX];
	/*
	 * The memory behind the mappable areas: by default a memfd the core
	 * creates when a client first asks for the region (and closes after
	 * the last close; vfpm_pci_bar_mem stays the same).  With own_fd, the model supplies it: the BAR is the range
	 * [fd_offset, fd_offset + size) of fd, which must be a file the core
	 * may resize (a memfd, a tmpfs file) ending there; fd_offset is
	 * page-aligned.  The core takes a duplicate of fd at creation; the
	 * model keeps its own.  Revoking the user's mappings truncates the
	 * file to fd_offset, restoring grows it back (see docs/device-model.md).
	 * The user receives a writable fd of the whole file: it can read,
	 * write or truncate what lies before fd_offset too, so keep nothing
	 * there that the user must not see or may not destroy.
	 */
	bool own_fd;
	int fd;
	uint64_t fd_offset;
	/*
	 * Trapped accesses (VFIO_USER_REGION_READ/WRITE) to the mappable
	 * memory reach bar_rw too, which may then use vfpm_pci_bar_mem under
	 * vfpm_pci_mem_lock (a doorbell the model wants to hear about).
	 * Without it the core reads and writes the memory itself.
	 */
	bool trap_mapped;
};

/*
 * A capability the model adds to the configuration space after the
 * standard ones (vendor-specific ones as virtio uses, or PCI Express
 * extended capabilities).  The core links it into the list; the guest's
 * reads see its bytes, its writes change the bits wmask allows, and then
 * the hooks, when set, see the access.
 */
struct vfpm_pci_cap_desc {
	/*
	 * A PCI Express extended capability (at 0x100 and above; needs
	 * pcie_cap), with a 4-byte header ID/version/next; otherwise a
	 * standard one with a 2-byte header ID/next.
	 */
	bool extended;
	uint16_t id;			/* e.g. PCI_CAP_ID_VNDR, PCI_EXT_CAP_ID_VNDR */
	uint8_t version;		/* extended capabilities only */
	uint16_t size;			/* bytes, header included; a multiple of 4 */
	/*
	 * The capability's power-on bytes after the header (size minus 2 or
	 * 4 bytes; NULL: zeros).  A vendor-specific capability's length byte
	 * is the first of them: the core fills it in when it is 0.
	 */
	const void *data;
	/* Guest-writable bits of the same bytes (NULL: none writable). */
	const void *wmask;
	/*
	 * inst is the instance whose access it is (as for bar_rw); offset
	 * is within the capability (0 = its header), count 1, 2 or 4,
	 * never crossing a dword.  read may change buf (filled with the
	 * current bytes) before the user sees it; write is told the bytes
	 * after the masked write landed.  Both run with the device active,
	 * on the thread serving the request, under the core's
	 * configuration lock (one hook at a time per device): they must not
	 * call back into the core but for vfpm_pci_cfg_raw_read/write.  0 or
	 * -errno: the access fails (a write's masked bytes stay written).
	 */
	int (*read)(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, void *opaque,
		    unsigned int offset, void *buf, unsigned int count);
	int (*write)(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, void *opaque,
		     unsigned int offset, const void *buf, unsigned int count);
	void *opaque;
};

#define VFPM_PCI_CAPS_MAX 16

struct vfpm_pci_desc {
	/* The device's name in the log (copied); NULL: "pci VENDOR:DEVICE". */
	const char *name;
	uint16_t vendor_id, device_id;
	uint16_t subsystem_vendor_id, subsystem_id;
	uint8_t revision;
	uint32_t class_code;		/* 24 bits */
	uint8_t interrupt_pin;		/* 0: no INTx, 1: INTA */
	struct vfpm_pci_bar_desc bars[6];
	/* Capabilities, in list order PM, MSI, MSI-X, PCIe; 0/false leaves one out. */
	bool pm_cap;
	bool no_soft_reset;		/* PMCSR NoSoftReset */
	/*
	 * The function can signal PME from D3hot (PMC PME_Support): a backend
	 * event (vfpm_pci_wake_get) while the function is in D3hot sets
	 * PME_Status when the user has set PME_En.
	 */
	bool pme_d3hot;
	unsigned int msi_vectors;
	unsigned int msix_vectors;
	uint8_t msix_bar;		/* table at offset 0, PBA after it, in this BAR */
	bool pcie_cap;
	bool flr;
	/* The model's own capabilities, in list order after those above (copied). */
	unsigned int nr_caps;
	const struct vfpm_pci_cap_desc *caps;
};

struct vfpm_pci_model_ops {
	/*
	 * Called once at the end of vfpm_pci_dev_create, while the device is
	 * ACTIVE and held by the registration (no runtime PM callback can
	 * run): start what an active device runs.  Right after it the
	 * registration's reference is dropped and the unused device suspends
	 * through runtime_suspend.  A failure fails the creation.
	 */
	int (*probe)(struct vfpm_pci_dev *pdev);
	/*
	 * Called by vfpm_pci_dev_destroy once runtime PM is disabled, so that
	 * no runtime PM callback can run any more: stop every thread the model
	 * runs.  The runtime PM device is still valid while it runs.
	 */
	void (*remove)(struct vfpm_pci_dev *pdev);
	/* First open and last close of the device.  open may take a runtime PM
	 * reference (vfpm_pm_get_noresume) to keep the device out of runtime
	 * suspend while it is open; close then drops it. */
	int (*open)(struct vfpm_pci_dev *pdev);
	void (*close)(struct vfpm_pci_dev *pdev);
	/*
	 * A trapped BAR access (offset within the BAR): bytes done or -errno.
	 * inst is the instance (vfio-user connection) that made it, the
	 * request's context (vfpm_instance_id names it in a log).
	 *
	 * A model that must not block here (its device answers later) defers
	 * it: req = vfpm_request_defer(inst), and when req is not NULL, return
	 * -EINPROGRESS, keep buf (a read fills it before completing) and later,
	 * from any thread, call vfpm_request_complete(req, bytes or -errno)
	 * exactly once.  NULL means the caller cannot wait (a synchronous
	 * access): finish it here as usual.  The device stays awake (the
	 * access's runtime PM reference is held) until the completion.  A
	 * deferred piece ends the access: when the core split it (across
	 * trapped registers, mapped memory or the MSI-X table), the pieces
	 * after it are not done, and the result is the bytes of the pieces
	 * before plus the model's (those bytes alone when it fails).
	 */
	ssize_t (*bar_rw)(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, unsigned int bar,
			  uint64_t offset, void *buf, size_t count, bool write);
	/* Function reset: VFIO_DEVICE_RESET, FLR, or a soft reset on D3hot->D0. */
	void (*reset)(struct vfpm_pci_dev *pdev);
	/*
	 * Runtime suspend: stop the backend, release what can be released.
	 * Also called when the user puts the function in D3hot (a PMCSR write,
	 * as a guest driver does), and runtime_resume when it comes back to D0
	 * (before the soft reset, unless NoSoftReset): a function in D3hot is
	 * stopped like a suspended device, while the runtime PM status stays
	 * ACTIVE, as the kernel sees a passed-through function the guest put
	 * in D3hot.  The calls for one device never overlap, and a model
	 * stopped for D3hot is not stopped twice when runtime PM suspends it.
	 */
	int (*runtime_suspend)(struct vfpm_pci_dev *pdev);
	int (*runtime_resume)(struct vfpm_pci_dev *pdev);
};

VFPM_API
int vfpm_pci_dev_create(const struct vfpm_pci_desc *desc, const struct vfpm_pci_model_ops *ops,
			void *model, struct vfpm_pci_dev **out);
/* Every instance must be closed. */
VFPM_API void vfpm_pci_dev_destroy(struct vfpm_pci_dev *pdev);

VFPM_API struct vfpm_device *vfpm_pci_device(struct vfpm_pci_dev *pdev);
VFPM_API struct vfpm_pm_dev *vfpm_pci_pm(struct vfpm_pci_dev *pdev);
VFPM_API void *vfpm_pci_model(struct vfpm_pci_dev *pdev);

/* The model's own view of a mappable BAR's memory (stays valid while revoked). */
VFPM_API void *vfpm_pci_bar_mem(struct vfpm_pci_dev *pdev, unsigned int bar);
/*
 * Hold off revocation of mappable BAR memory (the memory lock, read side).
 * Not recursive, and waiting writers go first: never take it twice on one
 * thread.
 */
VFPM_API void vfpm_pci_mem_lock(struct vfpm_pci_dev *pdev);
VFPM_API void vfpm_pci_mem_unlock(struct vfpm_pci_dev *pdev);

/*
 * Where capability i of desc.caps sits in the configuration space (the
 * offset of its header), or 0 when there is no such capability.
 */
VFPM_API unsigned int vfpm_pci_cap_offset(struct vfpm_pci_dev *pdev, unsigned int i);
/*
 * Raw configuration access for the model from its capability hooks (the
 * configuration lock is held there): no masks, no side effects, no resume.
 * Sizes 1, 2 or 4 within a dword.  0 or -EINVAL.
 */
VFPM_API int vfpm_pci_cfg_raw_read(struct vfpm_pci_dev *pdev, unsigned int offset,
				   unsigned int size, uint32_t *value);
VFPM_API int vfpm_pci_cfg_raw_write(struct vfpm_pci_dev *pdev, unsigned int offset,
				    unsigned int size, uint32_t value);

/* Low power state as the user requested it. */
VFPM_API bool vfpm_pci_low_power_engaged(struct vfpm_pci_dev *pdev);
/* Current PMCSR power state: 0 (D0) or 3 (D3hot). */
VFPM_API int vfpm_pci_power_state(struct vfpm_pci_dev *pdev);

/*
 * Host-side access, for the device model or a management tool: resumes the
 * device for the access (-EIO if it cannot be resumed).  Config accesses are
 * raw (no write masks), sizes 1, 2 or 4.
 */
VFPM_API
int vfpm_pci_host_cfg_read(struct vfpm_pci_dev *pdev, unsigned int offset, unsigned int size,
			   uint32_t *value);
VFPM_API
int vfpm_pci_host_cfg_write(struct vfpm_pci_dev *pdev, unsigned int offset, unsigned int size,
			    uint32_t value);

/*
 * DMA into the user's memory (the guest's RAM) at a DMA address, from any
 * thread: a backend thread or a request.  The memory is that of the
 * instance (vfio-user connection) whose request last turned Bus Master
 * Enable on.  0, -EPERM while Bus Master Enable is off (a function without
 * it issues no memory requests), -EFAULT when the range is not in the
 * user's DMA windows (or no user has any), -EACCES when a window forbids
 * the direction, or the transport's error (the client went away, did not
 * answer in time).  The range is checked before a byte moves.
 */
VFPM_API int vfpm_pci_dma_read(struct vfpm_pci_dev *pdev, uint64_t iova, void *buf, size_t len);
VFPM_API
int vfpm_pci_dma_write(struct vfpm_pci_dev *pdev, uint64_t iova, const void *buf, size_t len);

/*
 * Zero-copy DMA: map len bytes of the user's memory at iova into the
 * process, as up to max iovecs (one per DMA window the range crosses), and
 * hold them until vfpm_pci_dma_unmap.  The rules of vfpm_pci_dma_read
 * decide who may DMA and where.  prot is what the device will do:
 * PROT_READ (read the user's memory), PROT_WRITE (write it), or both; the
 * windows must allow it.
 *
 * A window the user shared by fd is mapped in place: the iovec points into
 * the server's mapping of it.  A window without one (its DMA goes through
 * messages) is bounced: the iovec points to a buffer of the core's, one
 * per such window, filled from the user's memory at map time for
 * PROT_READ (zeroed for PROT_WRITE alone) and written back whole at unmap
 * for PROT_WRITE; so with PROT_WRITE alone, write every byte of it.
 *
 * A held range stays valid when the user unmaps its window or goes away:
 * the memory is released at the last unmap (a bounced write-back then
 * fails).  Unmapping a window does not wait for holds, so hold for one
 * command, never across a runtime suspend.  A client can shrink a window's
 * file, so accesses through the iovecs are guarded: a lost page reads as
 * zeros (and takes writes nowhere), and unmap returns -EFAULT.  On the
 * main socket, bounced windows have the -EDEADLK rule of vfpm_pci_dma_read
 * (map and unmap from a thread of the model's own).
 *
 * 0 with sg filled, -ENOSPC when the range needs more than max iovecs,
 * -EINVAL for a bad prot or len 0, -ENOMEM, or the errors of
 * vfpm_pci_dma_read; the whole range is checked before it is held.
 */
struct vfpm_dma_sg {
	struct iovec *iov;		/* the caller's array, filled by map */
	unsigned int nr_iov;
	void *priv;			/* the core's */
};
VFPM_API int vfpm_pci_dma_map(struct vfpm_pci_dev *pdev, uint64_t iova, size_t len, int prot,
			      struct iovec *iov, unsigned int max, struct vfpm_dma_sg *sg);
/*
 * Release a mapping: 0, or -errno when a bounced write-back failed or a
 * page was lost (-EFAULT).  sg is emptied either way.  Release every
 * mapping before vfpm_pci_dev_destroy.
 */
VFPM_API int vfpm_pci_dma_unmap(struct vfpm_pci_dev *pdev, struct vfpm_dma_sg *sg);

/* Interrupts raised by the model. */
VFPM_API void vfpm_pci_intx_assert(struct vfpm_pci_dev *pdev);
VFPM_API void vfpm_pci_intx_deassert(struct vfpm_pci_dev *pdev);
VFPM_API int vfpm_pci_msi_signal(struct vfpm_pci_dev *pdev, unsigned int vector);
VFPM_API int vfpm_pci_msix_signal(struct vfpm_pci_dev *pdev, unsigned int vector);

/*
 * The ERR interrupt (VFIO_PCI_ERR_IRQ_INDEX: an uncorrectable error, for a
 * PCIe function) and the REQ interrupt (VFIO_PCI_REQ_IRQ_INDEX: the device
 * asks its user to release it): 0, or -ENODEV when the user set no eventfd
 * for it.
 */
VFPM_API int vfpm_pci_err_signal(struct vfpm_pci_dev *pdev);
VFPM_API int vfpm_pci_req_signal(struct vfpm_pci_dev *pdev);

/*
 * A wake event from the backend while the device may be suspended (the
 * PME of a real device): resumes the device asynchronously, which signals
 * the user's wakeup eventfd if one is armed.  Returns 0 once queued.
 */
VFPM_API int vfpm_pci_wake(struct vfpm_pci_dev *pdev);

/*
 * A backend event that the backend will handle (data arriving for a
 * stopped device): takes a runtime PM reference, which resumes the device
 * asynchronously when it is suspended (signalling the user's wakeup eventfd
 * when one is armed) and keeps it up until vfpm_pci_wake_put.  When the
 * function is in D3hot and the user set PME_En (desc.pme_d3hot), it also
 * sets PME_Status, as a real function signals PME; the backend stays
 * stopped until the user puts the function back in D0, and the event waits
 * for it there.  Never blocks; safe from any thread.  0 or -errno (no
 * reference is held then).
 */
VFPM_API int vfpm_pci_wake_get(struct vfpm_pci_dev *pdev);
/* The event is handled: the device may sleep again. */
VFPM_API void vfpm_pci_wake_put(struct vfpm_pci_dev *pdev);

#ifdef __cplusplus
}
#endif

#endif /* VFPM_PCI_H */
