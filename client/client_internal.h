/* SPDX-License-Identifier: MIT */
/*
 * The client handle and its backend ops table.  A backend embeds struct
 * vfpm_client as its first member; client.c checks arguments and calls the
 * backend, which does the transport.
 */
#ifndef VFPM_CLIENT_INTERNAL_H
#define VFPM_CLIENT_INTERNAL_H

#include <vfpm/client.h>

struct vfpm_client_ops {
	const char *name;
	void (*close)(struct vfpm_client *c);
	int (*get_info)(struct vfpm_client *c, struct vfio_device_info *info);
	int (*get_region_info)(struct vfpm_client *c, uint32_t index,
			       struct vfio_region_info *info, size_t size, int *fd);
	int (*get_irq_info)(struct vfpm_client *c, uint32_t index, struct vfio_irq_info *info);
	int (*set_irqs)(struct vfpm_client *c, uint32_t flags, uint32_t index, uint32_t start,
			uint32_t count, const void *data, size_t data_len);
	ssize_t (*region_read)(struct vfpm_client *c, uint32_t index, uint64_t offset, void *buf,
			       size_t count);
	ssize_t (*region_write)(struct vfpm_client *c, uint32_t index, uint64_t offset,
				const void *buf, size_t count);
	/* NULL: the generic loop of region_write. */
	int (*region_write_multi)(struct vfpm_client *c, const struct vfpm_client_write *w,
				  unsigned int n);
	int (*reset)(struct vfpm_client *c);
	int (*power_status)(struct vfpm_client *c, struct vfpm_client_power *st);
	int (*feature)(struct vfpm_client *c, uint32_t flags, void *data, size_t len, size_t cap,
		       const int *fds, unsigned int nfds);
	int32_t (*fd_arg)(const struct vfpm_client *c, const int *fds, unsigned int index);
	int (*dma_map)(struct vfpm_client *c, const struct vfpm_client_dma *map);
	int (*dma_unmap)(struct vfpm_client *c, uint64_t iova, uint64_t size);
};

struct vfpm_client {
	const struct vfpm_client_ops *ops;	/* immutable */
};

/*
 * The vfio-user backend's DMA service on the twin socket (client_sock_dma.c):
 * a thread answering the server's DMA_READ / DMA_WRITE from the windows
 * registered with a vaddr, started with the first such window.  stop shuts
 * the socket down, joins, closes it.
 */
struct sock_dma;
int sock_dma_start(int sock, uint32_t max_xfer, struct sock_dma **out);
void sock_dma_stop(struct sock_dma *d);
int sock_dma_add(struct sock_dma *d, const struct vfpm_client_dma *map);
void sock_dma_remove(struct sock_dma *d, uint64_t iova, uint64_t size);

#endif /* VFPM_CLIENT_INTERNAL_H */
