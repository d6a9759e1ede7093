// SPDX-License-Identifier: MIT
/*
 * The kernel backend of the client: a VFIO device fd obtained through the
 * group/container API (the only one Debian's 6.1 kernel offers without
 * no-IOMMU mode), then the same ioctls the vfio-user server maps its
 * messages onto.  Region access is pread/pwrite at the region's offset.
 */
#include "client_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Regions whose offsets are looked up once at open (vfio-pci has 9, plus VGA). */
#define KERNEL_MAX_REGIONS 16

/*
 * An IOMMU group and its container, shared by every handle of the process on
 * a device of that group: the kernel lets a group be opened once, while a
 * device may be opened many times (each device fd an instance).
 */
struct kernel_group {
	unsigned long number;		/* immutable */
	int container;			/* immutable */
	int group;			/* immutable */
	unsigned int refs;		/* groups_lock */
	struct kernel_group *next;	/* groups_lock */
};

/* Protects the list of open groups and their reference counts. */
static pthread_mutex_t groups_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kernel_group *groups;

struct kernel_client {
	struct vfpm_client base;
	/* All immutable after open. */
	struct kernel_group *grp;
	int device;
	unsigned int num_regions;
	uint64_t region_offset[KERNEL_MAX_REGIONS];
	char pci_addr[32];
};

static struct kernel_client *to_kernel(struct vfpm_client *c)
{
	return (struct kernel_client *)c;
}

static int xioctl(int fd, unsigned long req, void *arg)
{
	int ret;

	do {
		ret = ioctl(fd, req, arg);
	} while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : ret;
}

static int kernel_get_info(struct vfpm_client *c, struct vfio_device_info *info)
{
	int err;

	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	err = xioctl(to_kernel(c)->device, VFIO_DEVICE_GET_INFO, info);
	return err < 0 ? err : 0;
}

static int kernel_get_region_info(struct vfpm_client *c, uint32_t index,
				  struct vfio_region_info *info, size_t size, int *fd)
{
	struct kernel_client *k = to_kernel(c);
	int err;

	memset(info, 0, size);
	info->argsz = (uint32_t)size;
	info->index = index;
	err = xioctl(k->device, VFIO_DEVICE_GET_REGION_INFO, info);
	if (err < 0)
		return err;
	/* The device fd itself is what one mmaps, at info->offset. */
	if (fd) {
		*fd = -1;
		if (info->flags & VFIO_REGION_INFO_FLAG_MMAP) {
			*fd = fcntl(k->device, F_DUPFD_CLOEXEC, 0);
			if (*fd < 0)
				return -errno;
		}
	}
	return 0;
}

static int kernel_get_irq_info(struct vfpm_client *c, uint32_t index, struct vfio_irq_info *info)
{
	int err;

	memset(info, 0, sizeof(*info));
	info->argsz = sizeof(*info);
	info->index = index;
	err = xioctl(to_kernel(c)->device, VFIO_DEVICE_GET_IRQ_INFO, info);
	return err < 0 ? err : 0;
}

static int kernel_set_irqs(struct vfpm_client *c, uint32_t flags, uint32_t index, uint32_t start,
			   uint32_t count, const void *data, size_t data_len)
{
	struct vfio_irq_set *set;
	int err;

	if (data_len > UINT32_MAX - sizeof(*set))
		return -EINVAL;
	set = calloc(1, sizeof(*set) + data_len);
	if (!set)
		return -ENOMEM;
	*set = (struct vfio_irq_set){
		.argsz = (uint32_t)(sizeof(*set) + data_len), .flags = flags, .index = index,
		.start = start, .count = count,
	};
	if (data_len)
		memcpy(set->data, data, data_len);
	err = xioctl(to_kernel(c)->device, VFIO_DEVICE_SET_IRQS, set);
	free(set);
	return err < 0 ? err : 0;
}

/*
 * The file offset of an access: offsets and counts are left for the kernel to
 * judge (EINVAL, EFAULT, a short count), as a program using the device fd
 * directly would see them.
 */
static int region_base(struct kernel_client *k, uint32_t index, uint64_t offset, off_t *pos)
{
	uint64_t base = index < KERNEL_MAX_REGIONS ? k->region_offset[index] : (uint64_t)index << 40;

	if (index >= (1u << 23) || offset > (uint64_t)LLONG_MAX - base)
		return -EINVAL;
	*pos = (off_t)(base + offset);
	return 0;
}

static ssize_t kernel_region_rw(struct vfpm_client *c, uint32_t index, uint64_t offset,
				void *buf, size_t count, bool write)
{
	struct kernel_client *k = to_kernel(c);
	ssize_t n;
	off_t pos;
	int err = region_base(k, index, offset, &pos);

	if (err)
		return err;
	do {
		n = write ? pwrite(k->device, buf, count, pos) : pread(k->device, buf, count, pos);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t kernel_region_read(struct vfpm_client *c, uint32_t index, uint64_t offset,
				  void *buf, size_t count)
{
	return kernel_region_rw(c, index, offset, buf, count, false);
}

static ssize_t kernel_region_write(struct vfpm_client *c, uint32_t index, uint64_t offset,
				   const void *buf, size_t count)
{
	return kernel_region_rw(c, index, offset, (void *)buf, count, true);
}

static int kernel_reset(struct vfpm_client *c)
{
	int err = xioctl(to_kernel(c)->device, VFIO_DEVICE_RESET, NULL);

	return err < 0 ? err : 0;
}

static int kernel_feature(struct vfpm_client *c, uint32_t flags, void *data, size_t len,
			  size_t cap, const int *fds, unsigned int nfds)
{
	size_t room = len > cap ? len : cap;
	struct vfio_device_feature *feat;
	int err;

	/* fds are named by their numbers inside data (vfpm_client_fd_arg). */
	(void)fds;
	(void)nfds;
	if (room > UINT32_MAX - sizeof(*feat))
		return -EINVAL;
	feat = calloc(1, sizeof(*feat) + room);
	if (!feat)
		return -ENOMEM;
	feat->argsz = (uint32_t)(sizeof(*feat) + room);
	feat->flags = flags;
	if (len)
		memcpy(feat->data, data, len);
	err = xioctl(to_kernel(c)->device, VFIO_DEVICE_FEATURE, feat);
	if (err >= 0 && (flags & VFIO_DEVICE_FEATURE_GET) && cap) {
		memcpy(data, feat->data, cap);
		err = (int)cap;
	} else if (err > 0) {
		err = 0;
	}
	free(feat);
	return err;
}

static int32_t kernel_fd_arg(const struct vfpm_client *c, const int *fds, unsigned int index)
{
	(void)c;
	return fds[index];
}

static int kernel_dma_map(struct vfpm_client *c, const struct vfpm_client_dma *map)
{
	struct vfio_iommu_type1_dma_map dm = {
		.argsz = sizeof(dm),
		.vaddr = (uint64_t)(uintptr_t)map->vaddr,
		.iova = map->iova,
		.size = map->size,
	};
	int err;

	if (!map->vaddr)
		return -EINVAL;
	if (map->flags & VFPM_CLIENT_DMA_READ)
		dm.flags |= VFIO_DMA_MAP_FLAG_READ;
	if (map->flags & VFPM_CLIENT_DMA_WRITE)
		dm.flags |= VFIO_DMA_MAP_FLAG_WRITE;
	err = xioctl(to_kernel(c)->grp->container, VFIO_IOMMU_MAP_DMA, &dm);
	return err < 0 ? err : 0;
}

static int kernel_dma_unmap(struct vfpm_client *c, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_unmap du = { .argsz = sizeof(du), .iova = iova, .size = size };
	int err = xioctl(to_kernel(c)->grp->container, VFIO_IOMMU_UNMAP_DMA, &du);

	if (err < 0)
		return err;
	/* Type1 reports what it unmapped; nothing there is the socket's ENOENT. */
	return du.size ? 0 : -ENOENT;
}

static void group_put(struct kernel_group *g)
{
	struct kernel_group **p;

	pthread_mutex_lock(&groups_lock);
	if (--g->refs) {
		pthread_mutex_unlock(&groups_lock);
		return;
	}
	for (p = &groups; *p != g; p = &(*p)->next)
		;
	*p = g->next;
	pthread_mutex_unlock(&groups_lock);
	close(g->group);
	close(g->container);
	free(g);
}

static void kernel_close(struct vfpm_client *c)
{
	struct kernel_client *k = to_kernel(c);

	if (k->device >= 0)
		close(k->device);
	if (k->grp)
		group_put(k->grp);
	free(k);
}

/* The kernel says it in sysfs, without waking the device. */
static int kernel_power_status(struct vfpm_client *c, struct vfpm_client_power *st)
{
	struct kernel_client *k = (struct kernel_client *)c;
	char path[128];
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/power/runtime_status", k->pci_addr);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(st->runtime_status, 1, sizeof(st->runtime_status) - 1, f);
	fclose(f);
	st->runtime_status[n] = '\0';
	st->runtime_status[strcspn(st->runtime_status, "\n")] = '\0';
	return 0;
}

static const struct vfpm_client_ops kernel_ops = {
	.name = "vfio",
	.close = kernel_close,
	.get_info = kernel_get_info,
	.get_region_info = kernel_get_region_info,
	.get_irq_info = kernel_get_irq_info,
	.set_irqs = kernel_set_irqs,
	.region_read = kernel_region_read,
	.region_write = kernel_region_write,
	.region_write_multi = NULL,
	.reset = kernel_reset,
	.power_status = kernel_power_status,
	.feature = kernel_feature,
	.fd_arg = kernel_fd_arg,
	.dma_map = kernel_dma_map,
	.dma_unmap = kernel_dma_unmap,
};

/* ---- opening ---- */

/* The IOMMU group number of a PCI device, from its sysfs iommu_group link. */
static int iommu_group_of(const char *pci_addr, unsigned long *group)
{
	char path[PATH_MAX], target[PATH_MAX];
	const char *base;
	char *end;
	ssize_t n;

	if (snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", pci_addr) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	errno = 0;
	*group = strtoul(base, &end, 10);
	if (errno || end == base || *end)
		return -EINVAL;
	return 0;
}

static int open_container(int *out)
{
	int fd = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	int err;

	if (fd < 0)
		return -errno;
	err = xioctl(fd, VFIO_GET_API_VERSION, NULL);
	if (err >= 0 && err != VFIO_API_VERSION)
		err = -EPROTO;
	if (err >= 0 && xioctl(fd, VFIO_CHECK_EXTENSION, (void *)(uintptr_t)VFIO_TYPE1_IOMMU) <= 0)
		err = -ENOTSUP;
	if (err < 0) {
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

/* Open the group, attach it to a new container and set the IOMMU (groups_lock held). */
static int group_open(unsigned long number, struct kernel_group **out)
{
	struct vfio_group_status status = { .argsz = sizeof(status) };
	struct kernel_group *g = calloc(1, sizeof(*g));
	char path[64];
	long iommu;
	int err;

	if (!g)
		return -ENOMEM;
	g->number = number;
	g->group = -1;
	err = open_container(&g->container);
	if (err) {
		free(g);
		return err;
	}
	snprintf(path, sizeof(path), "/dev/vfio/%lu", number);
	g->group = open(path, O_RDWR | O_CLOEXEC);
	err = g->group < 0 ? -errno : xioctl(g->group, VFIO_GROUP_GET_STATUS, &status);
	if (err >= 0 && !(status.flags & VFIO_GROUP_FLAGS_VIABLE))
		err = -EBUSY;	/* some device of the group is not bound to vfio */
	if (err >= 0)
		err = xioctl(g->group, VFIO_GROUP_SET_CONTAINER, &g->container);
	if (err >= 0) {
		iommu = xioctl(g->container, VFIO_CHECK_EXTENSION,
			       (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU) > 0 ?
			VFIO_TYPE1v2_IOMMU : VFIO_TYPE1_IOMMU;
		err = xioctl(g->container, VFIO_SET_IOMMU, (void *)(uintptr_t)iommu);
	}
	if (err < 0) {
		if (g->group >= 0)
			close(g->group);
		close(g->container);
		free(g);
		return err;
	}
	g->refs = 1;
	g->next = groups;
	groups = g;
	*out = g;
	return 0;
}

/* The process's handle on the group, opened on first use. */
static int group_get(unsigned long number, struct kernel_group **out)
{
	struct kernel_group *g;
	int err = 0;

	pthread_mutex_lock(&groups_lock);
	for (g = groups; g && g->number != number; g = g->next)
		;
	if (g)
		g->refs++;
	else
		err = group_open(number, &g);
	pthread_mutex_unlock(&groups_lock);
	if (!err)
		*out = g;
	return err;
}

static int kernel_attach(struct kernel_client *k, const char *pci_addr)
{
	struct vfio_device_info info;
	unsigned long group;
	int err;

	err = iommu_group_of(pci_addr, &group);
	if (err)
		return err;
	err = group_get(group, &k->grp);
	if (err)
		return err;
	k->device = xioctl(k->grp->group, VFIO_GROUP_GET_DEVICE_FD, (void *)pci_addr);
	if (k->device < 0)
		return k->device;

	err = kernel_get_info(&k->base, &info);
	if (err)
		return err;
	k->num_regions = info.num_regions < KERNEL_MAX_REGIONS ? info.num_regions :
								 KERNEL_MAX_REGIONS;
	for (unsigned int i = 0; i < KERNEL_MAX_REGIONS; i++) {
		struct vfio_region_info ri = { .argsz = sizeof(ri), .index = i };

		/*
		 * Where an index has no info (beyond num_regions, or VGA), use
		 * vfio-pci's fixed layout, so the kernel answers for it.
		 */
		k->region_offset[i] = (uint64_t)i << 40;
		if (i < k->num_regions && xioctl(k->device, VFIO_DEVICE_GET_REGION_INFO, &ri) >= 0)
			k->region_offset[i] = ri.offset;
	}
	return 0;
}

int vfpm_client_open_vfio(const char *pci_addr, struct vfpm_client **out)
{
	struct kernel_client *k;
	int err;

	if (!pci_addr || !out || strchr(pci_addr, '/'))
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->base.ops = &kernel_ops;
	k->device = -1;
	snprintf(k->pci_addr, sizeof(k->pci_addr), "%s", pci_addr);
	err = kernel_attach(k, pci_addr);
	if (err) {
		kernel_close(&k->base);
		return err;
	}
	*out = &k->base;
	return 0;
}
