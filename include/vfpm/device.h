/* SPDX-License-Identifier: MIT */
/*
 * vfpm device core (layer 2): the userspace counterpart of Linux's
 * drivers/vfio/vfio_main.c.
 *
 * A driver registers a struct vfpm_device with an ops table.  Each user of the
 * device (a vfio-user connection, a test) opens an instance, the equivalent
 * of a device file descriptor; the first open calls open_device and the last
 * close calls close_device.  Requests on an instance are the kernel's device
 * ioctls (VFIO_DEVICE_GET_INFO, _GET_REGION_INFO, _GET_IRQ_INFO, _SET_IRQS,
 * _RESET, _FEATURE: same command numbers, same argument structs from
 * <linux/vfio.h>) plus read and write at VFIO region offsets.
 *
 * When the driver has runtime PM callbacks, the device gets a runtime PM
 * device (see <vfpm/pm.h>) and every ioctl runs between resume_and_get and
 * put, before its argument is even looked at; a failed resume returns -EIO.
 * Read and write are left to the driver, which brackets them itself with
 * vfpm_device_pm_get() / vfpm_device_pm_put() once it has checked the region
 * index (as vfio-pci does).
 *
 * Arguments travel in a struct vfpm_ubuf, the stand-in for user memory: a
 * read past what the user supplied, or a write past what the user can take
 * back, is -EFAULT, as copy_from_user / copy_to_user would be.  File
 * descriptors named in arguments (eventfds) are looked up in a struct
 * vfpm_fds: the fds that came with the request (vfio-user, where an
 * argument's fd number is an index into the message's fds), or, when NULL,
 * the process's own fd table (as with the kernel).
 */
#ifndef VFPM_DEVICE_H
#define VFPM_DEVICE_H

#include <vfpm/export.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <vfpm/pm.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfpm_device;
struct vfpm_instance;

/* An ioctl argument in "user memory". */
struct vfpm_ubuf {
	void *data;
	size_t in_len;		/* bytes the user supplied: readable */
	size_t cap;		/* bytes the user can take back: writable */
	size_t out_len;		/* high-water mark of what was written */
};

VFPM_API int vfpm_ubuf_read(const struct vfpm_ubuf *u, size_t offset, void *dst, size_t len);
VFPM_API int vfpm_ubuf_write(struct vfpm_ubuf *u, size_t offset, const void *src, size_t len);

/* File descriptors that came with a request; fd numbers in arguments index it. */
struct vfpm_fds {
	const int *fd;
	unsigned int count;
};

/*
 * Resolve an fd number from an argument: the request's fd at that index, or
 * the process's fd itself when fds is NULL.  Returns the fd (not duplicated),
 * or -EBADF when there is no such open fd.
 */
VFPM_API int vfpm_fds_lookup(const struct vfpm_fds *fds, int32_t number);

/*
 * The kernel's eventfd_ctx_fdget for an argument's fd number: a duplicate of
 * the eventfd (the caller owns it and closes it when done), -EBADF when the
 * number names no open fd, -EINVAL when the fd is not an eventfd.
 */
VFPM_API int vfpm_eventfd_get(const struct vfpm_fds *fds, int32_t number);
/*
 * Add 1 to an eventfd's counter (the kernel's eventfd_signal): never blocks;
 * -EAGAIN when the counter is full and the signal was dropped.
 */
VFPM_API int vfpm_eventfd_signal(int efd);

/* File descriptors a reply carries back (e.g. a region's memfd). */
#define VFPM_FDS_OUT_MAX 8
struct vfpm_fds_out {
	int fd[VFPM_FDS_OUT_MAX];	/* owned by the caller once returned */
	/* Where the object starts in each fd (a region's mmap offset), usually 0. */
	uint64_t offset[VFPM_FDS_OUT_MAX];
	unsigned int count;
};

VFPM_API int vfpm_fds_out_add(struct vfpm_fds_out *out, int fd);
/* The same, for an object that starts at offset in the fd. */
VFPM_API int vfpm_fds_out_add_at(struct vfpm_fds_out *out, int fd, uint64_t offset);

/* What a management query sees of a device's power state, without waking it. */
struct vfpm_power_info {
	bool runtime_pm;		/* the driver has runtime PM callbacks */
	enum vfpm_pm_status status;	/* ACTIVE when it has not */
	int usage_count;
	bool low_power;			/* the user asked for low power (driver's view) */
	bool wakeup_armed;		/* ... with a wakeup eventfd */
	uint64_t suspends, resumes;	/* successful runtime transitions */
};

struct vfpm_device_ops {
	/* First open / last close; called with the open lock held. */
	int (*open_device)(struct vfpm_device *dev);
	void (*close_device)(struct vfpm_device *dev);
	/* Every device ioctl but VFIO_DEVICE_FEATURE; -EINVAL when NULL. */
	long (*ioctl)(struct vfpm_device *dev, unsigned int cmd, struct vfpm_ubuf *arg,
		      const struct vfpm_fds *in, struct vfpm_fds_out *out);
	/*
	 * Region access at a VFIO region offset (index << 40 | offset), through
	 * inst (the request's context: whose access it is).
	 */
	ssize_t (*read)(struct vfpm_instance *inst, void *buf, size_t count, uint64_t pos);
	ssize_t (*write)(struct vfpm_instance *inst, const void *buf, size_t count, uint64_t pos);
	/*
	 * One VFIO_DEVICE_FEATURE after the core's validation: flags as the
	 * user gave them, data after the 8-byte header, argsz the user's argsz
	 * minus the header.  NULL: -EINVAL, as in the kernel.
	 */
	int (*device_feature)(struct vfpm_device *dev, uint32_t flags, struct vfpm_ubuf *data,
			      size_t argsz, const struct vfpm_fds *in);
	/* Fill low_power and wakeup_armed without waking the device; may be NULL. */
	void (*power_info)(struct vfpm_device *dev, struct vfpm_power_info *info);
	/* Runtime PM; having either makes the device a runtime PM device. */
	int (*runtime_suspend)(struct vfpm_device *dev);
	int (*runtime_resume)(struct vfpm_device *dev);
};

/*
 * Register a device.  A runtime PM device starts as a probed kernel device
 * does: ACTIVE, runtime PM enabled and one usage reference held by the
 * registration, which the driver drops when it is ready (vfio-pci does so at
 * the end of its registration, and the unused device then suspends).
 */
VFPM_API
int vfpm_device_create(const struct vfpm_device_ops *ops, void *priv, struct vfpm_device **out);
/* All instances must be closed. */
VFPM_API void vfpm_device_destroy(struct vfpm_device *dev);
VFPM_API void *vfpm_device_priv(const struct vfpm_device *dev);
/* The device's runtime PM device, or NULL when the driver has no PM callbacks. */
VFPM_API struct vfpm_pm_dev *vfpm_device_pm(const struct vfpm_device *dev);
VFPM_API unsigned int vfpm_device_open_count(struct vfpm_device *dev);

/* The device's power state as a management query sees it; never wakes the device. */
VFPM_API void vfpm_device_power_info(struct vfpm_device *dev, struct vfpm_power_info *info);

/* The request wrapper's halves: 0, or -EIO when the device cannot be resumed. */
VFPM_API int vfpm_device_pm_get(struct vfpm_device *dev);
VFPM_API void vfpm_device_pm_put(struct vfpm_device *dev);

/* Open an instance (a "device fd"); the first one calls open_device. */
VFPM_API int vfpm_device_open(struct vfpm_device *dev, struct vfpm_instance **out);
/* Close it; the last one calls close_device.  No request may be in flight on it. */
VFPM_API void vfpm_instance_close(struct vfpm_instance *inst);
VFPM_API struct vfpm_device *vfpm_instance_device(const struct vfpm_instance *inst);
/* A number naming the instance in logs: unique in the process, never reused. */
VFPM_API uint64_t vfpm_instance_id(const struct vfpm_instance *inst);

/*
 * DMA: the memory a user lets the device reach (a VMM's guest RAM), at DMA
 * addresses (IOVAs).  The transport gives each instance a provider for the
 * memory its client mapped (VFIO_USER_DMA_MAP); the driver says which
 * instance's memory the device reaches (the PCI core: the one whose
 * request last turned Bus Master Enable on), and DMA goes there.  Drivers
 * and models never see the transport.
 */
struct vfpm_dma_ops {
	/* Copy len bytes at iova: 0, or -errno (-EFAULT outside the user's memory). */
	int (*read)(void *opaque, uint64_t iova, void *buf, size_t len);
	int (*write)(void *opaque, uint64_t iova, const void *buf, size_t len);
	/*
	 * Optional, for zero-copy DMA (vfpm_device_dma_map): map in place the
	 * start of [iova, iova + len), the part that lies in the one piece of
	 * the user's memory (a DMA window) holding iova.  prot is what the
	 * device will do (PROT_READ: read the user's memory, PROT_WRITE: write
	 * it).  0 with seg set (where the part is in this process, and its
	 * length, at most len) and *hold set to what release takes; the memory
	 * stays valid until release, whatever the user does meanwhile.
	 * -EOPNOTSUPP when that piece can only be copied: seg->iov_len still
	 * says how long the part is, and the core bounces it through read and
	 * write.  -EFAULT and -EACCES as read and write return them.
	 */
	int (*map)(void *opaque, uint64_t iova, size_t len, int prot, struct iovec *seg,
		   void **hold);
	/*
	 * End a hold: 0, or -EFAULT when memory of it was lost while it was
	 * held (a file the user shrank).  It takes no opaque: it may run after
	 * the instance is closed.  Required with map.
	 */
	int (*release)(void *hold);
};
/*
 * Give the instance a DMA provider; before its first request.  ops must
 * outlive the instance and every hold made through it (a static table).
 */
VFPM_API void vfpm_instance_set_dma(struct vfpm_instance *inst, const struct vfpm_dma_ops *ops,
			   void *opaque);
/*
 * The device DMAs through inst from now on (NULL: nowhere).  An instance
 * without a provider changes nothing.  Waits for copies and maps in
 * progress, not for holds (vfpm_device_dma_map).  Closing the instance
 * ends it too.
 */
VFPM_API void vfpm_device_set_dma_instance(struct vfpm_device *dev, struct vfpm_instance *inst);
/*
 * DMA of len bytes between buf and the user's memory at iova (write: to the
 * user's memory).  -EFAULT when no instance's memory is reachable or the
 * range is not mapped, or the provider's error.  Safe from any thread.
 */
VFPM_API
int vfpm_device_dma(struct vfpm_device *dev, uint64_t iova, void *buf, size_t len, bool write);

/*
 * Zero-copy DMA: make [iova, iova + len) of the user's memory (that of
 * the DMA instance, as vfpm_device_dma) addressable as up to max iovecs,
 * one per piece of memory the provider has (a DMA window), and hold it
 * until vfpm_device_dma_unmap.  prot: PROT_READ and/or PROT_WRITE (from
 * <sys/mman.h>), what the device will do.
 *
 * Pieces the provider maps in place (its map op) point into the user's
 * memory.  The others are bounced: a buffer of the core's per piece (one
 * for the whole range when the provider has no map op), filled through the
 * provider's read at map time for PROT_READ, zeroed for PROT_WRITE alone,
 * and written back whole through its write at unmap for PROT_WRITE (so
 * write every byte of it, or map PROT_READ | PROT_WRITE).  The write-back
 * goes to the instance the range came from, or fails with -EFAULT when it
 * is closed.
 *
 * A hold pins nothing of the core's: switching the DMA instance, closing
 * an instance and the user unmapping its memory go ahead meanwhile.
 *
 * 0 with iov[0 .. *nr_iov) filled and *hold set; -EINVAL for len 0, a bad
 * prot or a NULL pointer; -ENOSPC when the range needs more than max
 * iovecs; -ENOMEM; -EFAULT when no instance's memory is reachable or part
 * of the range is outside it; -EACCES when a piece forbids prot; or the
 * provider's error.  The whole range is checked before it is held.  With a
 * provider without a map op, a range mapped PROT_WRITE alone is checked
 * only when written back.
 */
struct vfpm_dma_hold;
VFPM_API
int vfpm_device_dma_map(struct vfpm_device *dev, uint64_t iova, size_t len, int prot,
			struct iovec *iov, unsigned int max, unsigned int *nr_iov,
			struct vfpm_dma_hold **hold);
/*
 * End a hold (and free it): bounced pieces are written back (PROT_WRITE),
 * pieces mapped in place are released.  0, or the first error: the
 * write-back's, or -EFAULT when memory of the range was lost while held.
 */
VFPM_API int vfpm_device_dma_unmap(struct vfpm_device *dev, struct vfpm_dma_hold *hold);

/* A device ioctl (cmd from <linux/vfio.h>).  out may be NULL if no fds can come back. */
VFPM_API
long vfpm_instance_ioctl(struct vfpm_instance *inst, unsigned int cmd, struct vfpm_ubuf *arg,
			 const struct vfpm_fds *in, struct vfpm_fds_out *out);
VFPM_API
ssize_t vfpm_instance_read(struct vfpm_instance *inst, void *buf, size_t count, uint64_t pos);
VFPM_API ssize_t vfpm_instance_write(struct vfpm_instance *inst, const void *buf, size_t count,
			    uint64_t pos);

/*
 * Region accesses that may complete later, for a transport that must not
 * block (a reactor).  The result is returned as vfpm_instance_read/write
 * return it, or -EINPROGRESS when the driver deferred the access: then
 * async->complete(async->opaque, result) is called exactly once, later, on
 * whichever thread the driver completes it, and buf (which the caller keeps
 * valid until then) holds what a read returned.  When the driver completes
 * before the call has returned (on another thread), the call returns the
 * result itself and complete is not called.  *async is copied: it may live
 * on the caller's stack.  The runtime PM usage reference of the access (the
 * PCI core's) is held until completion, so a low power entry meanwhile
 * replies at once but the device only suspends after it, as with an ioctl
 * in flight in the kernel.  The instance must not be closed while an access
 * on it is pending (the core logs it and keeps the instance's memory until
 * the completion, but the driver may still use it).
 *
 * vfpm_instance_read/write never return -EINPROGRESS: a driver cannot
 * defer under them (vfpm_request_defer returns NULL).
 */
struct vfpm_async {
	void (*complete)(void *opaque, ssize_t result);
	void *opaque;
};
VFPM_API ssize_t vfpm_instance_read_async(struct vfpm_instance *inst, void *buf, size_t count,
					  uint64_t pos, const struct vfpm_async *async);
VFPM_API ssize_t vfpm_instance_write_async(struct vfpm_instance *inst, const void *buf,
					   size_t count, uint64_t pos,
					   const struct vfpm_async *async);

/*
 * The driver's side.  Inside its read or write op (a PCI model: inside
 * bar_rw), on the thread that called it, a driver that cannot finish now
 * asks to defer the access of inst.  It gets a handle, or NULL when the
 * caller cannot wait (a plain vfpm_instance_read/write, an access already
 * deferred, not inside an access of inst on this thread, no memory): then
 * it completes the access inline as usual.  With a handle, the op returns
 * -EINPROGRESS (anything else abandons the handle: the core logs it and
 * ignores the completion) and later, from any thread, the driver calls
 * vfpm_request_complete exactly once with what the op would have returned
 * (bytes done or -errno), after filling the read's buffer.  The handle is
 * gone after that call.
 */
struct vfpm_request;
VFPM_API struct vfpm_request *vfpm_request_defer(struct vfpm_instance *inst);
VFPM_API void vfpm_request_complete(struct vfpm_request *req, ssize_t result);

/*
 * The kernel's vfio_check_feature, for drivers: -EINVAL when flags ask for an
 * operation outside supported_ops (VFIO_DEVICE_FEATURE_GET/SET) or for none,
 * or argsz < minsz; 0 for a PROBE; 1 when the driver should carry it out.
 */
VFPM_API int vfpm_check_feature(uint32_t flags, size_t argsz, uint32_t supported_ops, size_t minsz);

/* Region offsets, as vfio-pci lays them out: index in the top 24 bits. */
#define VFPM_REGION_SHIFT 40
#define VFPM_REGION_OFFSET(index) ((uint64_t)(index) << VFPM_REGION_SHIFT)
#define VFPM_REGION_INDEX(pos) ((unsigned int)((uint64_t)(pos) >> VFPM_REGION_SHIFT))
#define VFPM_REGION_OFFSET_MASK (VFPM_REGION_OFFSET(1) - 1)

#ifdef __cplusplus
}
#endif

#endif /* VFPM_DEVICE_H */
