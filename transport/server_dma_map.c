// SPDX-License-Identifier: MIT
/*
 * Window mappings and the holds models take on them: the provider's map and
 * release ops, under vfpm_pci_dma_map (zero-copy DMA).
 *
 * A window the client backed with an fd is one mmap of it, a struct
 * dma_mapping with a reference count: the table's entry holds one, and each
 * hold of a model one.  DMA_UNMAP and disconnect drop the table's and return
 * at once; the memory, its guard and its place in the process's DMA window
 * budget go with the last reference.  So a hold never makes a client wait
 * (nor a client a model), and the memory under a hold stays mapped, if no
 * longer the client's to reuse: a model holds a range for one command.
 *
 * The client can still shrink the file under a hold.  The guard keeps the
 * model's accesses from faulting (lost pages read as zeros), and counts
 * them; a window that lost pages is lost as a whole (its copies fail, see
 * server_dma.c), so a hold that ends on a window with faults counted
 * reports -EFAULT.  A window already lost is not mapped.
 */
#include "server_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/mman.h>

int srv_dma_mapping_create(int fd, uint64_t offset, uint64_t size, int prot,
			   struct dma_mapping **out)
{
	struct dma_mapping *m;
	int err;

	if (size > SIZE_MAX || offset > (uint64_t)INT64_MAX)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->size = (size_t)size;
	m->addr = mmap(NULL, m->size, prot, MAP_SHARED, fd, (off_t)offset);
	if (m->addr == MAP_FAILED) {
		err = -errno;
		free(m);
		return err;
	}
	err = vfpm_memguard_add(m->addr, m->size, prot, &m->guard);
	if (err) {
		munmap(m->addr, m->size);
		free(m);
		return err;
	}
	atomic_init(&m->refs, 1);
	*out = m;
	return 0;
}

void srv_dma_mapping_put(struct dma_mapping *m)
{
	if (!m || atomic_fetch_sub(&m->refs, 1) != 1)
		return;
	/* The guard goes first: nothing may fault in the range once it is unmapped. */
	vfpm_memguard_remove(m->guard);
	munmap(m->addr, m->size);
	free(m);
	srv_budget_put_dma_maps(1);
}

int srv_conn_dma_map(void *opaque, uint64_t iova, size_t len, int prot, struct iovec *seg,
		     void **hold)
{
	struct vfpm_server_conn *conn = opaque;
	struct dma_table *t = &conn->dma;
	struct dma_region *reg;
	uint64_t off, n;
	uint32_t need = 0;
	int err = 0;

	if (prot & PROT_READ)
		need |= VFIO_USER_DMA_F_READ;
	if (prot & PROT_WRITE)
		need |= VFIO_USER_DMA_F_WRITE;
	/* The read side: the entry cannot go while its mapping gains a reference. */
	pthread_rwlock_rdlock(&t->lock);
	reg = srv_dma_find(t, iova);
	if (!reg) {
		err = -EFAULT;
		goto out;
	}
	if ((reg->flags & need) != need) {
		err = -EACCES;
		goto out;
	}
	off = iova - reg->addr;
	n = reg->size - off < len ? reg->size - off : len;
	seg->iov_len = (size_t)n;
	if (!reg->mapping) {
		err = -EOPNOTSUPP;	/* reached by messages: the device core bounces it */
		goto out;
	}
	if (vfpm_memguard_faults(reg->mapping->guard)) {
		err = srv_dma_window_lost(conn, reg);
		goto out;
	}
	atomic_fetch_add(&reg->mapping->refs, 1);
	seg->iov_base = (uint8_t *)reg->mapping->addr + off;
	*hold = reg->mapping;
out:
	pthread_rwlock_unlock(&t->lock);
	return err;
}

int srv_conn_dma_release(void *hold)
{
	static struct vfpm_ratelimit rl;
	struct dma_mapping *m = hold;
	/* Read before the reference goes: the last one takes the guard with it. */
	unsigned int faults = vfpm_memguard_faults(m->guard);

	srv_dma_mapping_put(m);
	if (!faults)
		return 0;
	vfpm_logf_rl(&rl, VFPM_LOG_WARNING, "a DMA range a device model held lost pages (%u "
		     "page faults recovered, they read as zeros): the client truncated the file "
		     "behind its window", faults);
	return -EFAULT;
}
