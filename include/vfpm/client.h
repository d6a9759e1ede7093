/* SPDX-License-Identifier: MIT */
/*
 * vfpm client library (layer 6): one device handle over two backends,
 *
 *  - "vfio-user": a vfpm server (or any vfio-user server) on an AF_UNIX
 *    socket (vfpm_client_connect), and
 *  - "vfio": a Linux VFIO device through the group/container API
 *    (vfpm_client_open_vfio), so that the same scenarios run against the
 *    kernel's vfio-pci,
 *
 * with the kernel's argument structs from <linux/vfio.h> in both cases.
 * Every function returns 0 (or a byte count) on success and a negative errno
 * on failure: the server's errno for a vfio-user error reply, the ioctl's for
 * the kernel.  A handle may be used from several threads; over vfio-user its
 * requests are then serialised (one request at a time per connection; use
 * one handle per thread for parallel requests).
 */
#ifndef VFPM_CLIENT_H
#define VFPM_CLIENT_H

#include <vfpm/export.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/vfio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfpm_client;

/* Connect to a vfio-user socket and negotiate the version. */
VFPM_API int vfpm_client_connect(const char *socket_path, struct vfpm_client **out);
/*
 * Open the VFIO device at a PCI address ("0000:01:00.0") through its IOMMU
 * group: the group in a container with the type1 IOMMU, then a device fd.
 * The device must be bound to vfio-pci and its group viable (-EBUSY
 * otherwise).  Handles of one process on devices of the same group share the
 * group and its container (the kernel lets a group be opened once), and so
 * their DMA mappings; each handle is its own device fd, an instance of its
 * own, as with a second open of the device.
 */
VFPM_API int vfpm_client_open_vfio(const char *pci_addr, struct vfpm_client **out);
/*
 * Either of the above from one string: "vfio:ADDR" or a PCI address opens
 * the kernel device, anything else is a socket path ("vfio-user:" prefix
 * optional).
 */
VFPM_API int vfpm_client_open(const char *target, struct vfpm_client **out);
/* Disconnect / close the device fd, group and container. */
VFPM_API void vfpm_client_close(struct vfpm_client *c);
/* "vfio-user" or "vfio". */
VFPM_API const char *vfpm_client_backend(const struct vfpm_client *c);

/* VFIO_DEVICE_GET_INFO: argsz, flags, num_regions, num_irqs. */
VFPM_API int vfpm_client_get_info(struct vfpm_client *c, struct vfio_device_info *info);
/*
 * VFIO_DEVICE_GET_REGION_INFO into info, a buffer of size bytes (at least
 * sizeof(struct vfio_region_info)) that receives the capability chain when
 * it fits; info->argsz then says the size the full answer needs.  When fd is
 * not NULL it receives an fd to mmap the region with (at info->offset) when
 * the region has VFIO_REGION_INFO_FLAG_MMAP, else -1; the caller closes it.
 */
VFPM_API int vfpm_client_get_region_info(struct vfpm_client *c, uint32_t index,
				struct vfio_region_info *info, size_t size, int *fd);
/* VFIO_DEVICE_GET_IRQ_INFO. */
VFPM_API
int vfpm_client_get_irq_info(struct vfpm_client *c, uint32_t index, struct vfio_irq_info *info);
/*
 * VFIO_DEVICE_SET_IRQS.  data as for the ioctl: nothing for DATA_NONE, count
 * bytes for DATA_BOOL, count int32 fds for DATA_EVENTFD (-1 de-assigns that
 * vector).  Over vfio-user the eventfds travel by SCM_RIGHTS, split into as
 * many messages as runs of assigned / de-assigned vectors need.
 */
VFPM_API
int vfpm_client_set_irqs(struct vfpm_client *c, uint32_t flags, uint32_t index, uint32_t start,
			 uint32_t count, const void *data);
/* Region access at an offset within region index: bytes done or -errno. */
VFPM_API ssize_t vfpm_client_region_read(struct vfpm_client *c, uint32_t index, uint64_t offset,
				void *buf, size_t count);
VFPM_API ssize_t vfpm_client_region_write(struct vfpm_client *c, uint32_t index, uint64_t offset,
				 const void *buf, size_t count);

/* Small writes done in order: one REGION_WRITE_MULTI when the server agreed to it. */
struct vfpm_client_write {
	uint32_t index;
	uint32_t count;		/* 1..8 */
	uint64_t offset;
	uint8_t data[8];
};
VFPM_API
int vfpm_client_region_write_multi(struct vfpm_client *c, const struct vfpm_client_write *w,
				   unsigned int n);

/*
 * The device's power state, read without waking it: over vfio-user vfpm's
 * POWER_STATUS extension (docs/vfio-user-power.md; a server without it
 * answers -ENOTTY), for a kernel device its sysfs runtime_status.
 */
struct vfpm_client_power {
	char runtime_status[16];	/* "active", "suspended", "resuming", "suspending" */
	bool have_counts;		/* the fields below are filled (vfio-user only) */
	bool runtime_pm;
	bool low_power;
	bool wakeup_armed;
	int usage_count;
	uint64_t suspends, resumes;
};
VFPM_API int vfpm_client_power_status(struct vfpm_client *c, struct vfpm_client_power *st);

/* VFIO_DEVICE_RESET. */
VFPM_API int vfpm_client_reset(struct vfpm_client *c);

/*
 * VFIO_DEVICE_FEATURE with flags (feature index | GET/SET/PROBE) and the
 * feature's data: len bytes in data go with the request, and a GET reply is
 * copied back into data (room: cap bytes).  fds[0..nfds) travel with the
 * request; an fd field inside data must name them with vfpm_client_fd_arg.
 * Returns the bytes of data the reply carries (0 for SET / PROBE; cap for a
 * kernel GET, which does not say) or a negative errno.
 */
VFPM_API int vfpm_client_feature(struct vfpm_client *c, uint32_t flags, void *data, size_t len,
			size_t cap, const int *fds, unsigned int nfds);
/*
 * The value to put in an fd field of a feature's data for fds[index]: the
 * index itself over vfio-user (docs/vfio-user-power.md), the fd for the
 * kernel.
 */
VFPM_API
int32_t vfpm_client_fd_arg(const struct vfpm_client *c, const int *fds, unsigned int index);

/* The low power features (VFIO_DEVICE_FEATURE_LOW_POWER_*, SET). */
VFPM_API int vfpm_client_low_power_entry(struct vfpm_client *c);
VFPM_API int vfpm_client_low_power_entry_with_wakeup(struct vfpm_client *c, int eventfd);
VFPM_API int vfpm_client_low_power_exit(struct vfpm_client *c);

/*
 * Give the device access to memory at DMA address iova.  Over vfio-user the
 * server mmaps fd at offset; with fd < 0 the server reaches the memory with
 * DMA_READ / DMA_WRITE messages, which the library answers from vaddr on a
 * thread of its own (the twin socket negotiated at connect; without vaddr
 * it answers EFAULT).  The kernel maps the process memory at vaddr.  Fill
 * fd and vaddr both for code that runs on both backends.
 */
#define VFPM_CLIENT_DMA_READ (1u << 0)
#define VFPM_CLIENT_DMA_WRITE (1u << 1)
struct vfpm_client_dma {
	uint64_t iova;
	uint64_t size;
	uint32_t flags;		/* VFPM_CLIENT_DMA_* */
	int fd;			/* vfio-user */
	uint64_t offset;	/* vfio-user: in fd */
	void *vaddr;		/* kernel */
};
VFPM_API int vfpm_client_dma_map(struct vfpm_client *c, const struct vfpm_client_dma *map);
/* Exactly a previous mapping. */
VFPM_API int vfpm_client_dma_unmap(struct vfpm_client *c, uint64_t iova, uint64_t size);

#ifdef __cplusplus
}
#endif

#endif /* VFPM_CLIENT_H */
