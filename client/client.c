// SPDX-License-Identifier: MIT
/*
 * The device handle: argument checks common to both backends, then the
 * backend's ops.  Feature helpers are written once on top of the raw calls.
 */
#include "client_internal.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

/* dddd:bb:dd.f */
static bool is_pci_addr(const char *s)
{
	static const char pattern[] = "xxxx:xx:xx.x";

	if (strlen(s) != sizeof(pattern) - 1)
		return false;
	for (size_t i = 0; pattern[i]; i++) {
		if (pattern[i] == 'x' ? !isxdigit((unsigned char)s[i]) : s[i] != pattern[i])
			return false;
	}
	return true;
}

int vfpm_client_open(const char *target, struct vfpm_client **out)
{
	if (!target || !out)
		return -EINVAL;
	if (!strncmp(target, "vfio:", 5))
		return vfpm_client_open_vfio(target + 5, out);
	if (is_pci_addr(target))
		return vfpm_client_open_vfio(target, out);
	if (!strncmp(target, "vfio-user:", 10))
		target += 10;
	return vfpm_client_connect(target, out);
}

void vfpm_client_close(struct vfpm_client *c)
{
	if (c)
		c->ops->close(c);
}

const char *vfpm_client_backend(const struct vfpm_client *c)
{
	return c->ops->name;
}

int vfpm_client_get_info(struct vfpm_client *c, struct vfio_device_info *info)
{
	if (!info)
		return -EINVAL;
	return c->ops->get_info(c, info);
}

int vfpm_client_get_region_info(struct vfpm_client *c, uint32_t index,
				struct vfio_region_info *info, size_t size, int *fd)
{
	int local_fd = -1;
	int err;

	if (fd)
		*fd = -1;
	if (!info || size < sizeof(*info) || size > UINT32_MAX)
		return -EINVAL;
	err = c->ops->get_region_info(c, index, info, size, &local_fd);
	if (fd)
		*fd = local_fd;
	else if (local_fd >= 0)
		close(local_fd);
	return err;
}

int vfpm_client_get_irq_info(struct vfpm_client *c, uint32_t index, struct vfio_irq_info *info)
{
	if (!info)
		return -EINVAL;
	return c->ops->get_irq_info(c, index, info);
}

int vfpm_client_set_irqs(struct vfpm_client *c, uint32_t flags, uint32_t index, uint32_t start,
			 uint32_t count, const void *data)
{
	size_t len;

	switch (flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
	case VFIO_IRQ_SET_DATA_BOOL:
		len = count;
		break;
	case VFIO_IRQ_SET_DATA_EVENTFD:
		len = (size_t)count * sizeof(int32_t);
		break;
	default:
		len = 0;
		break;
	}
	if (len && !data)
		return -EINVAL;
	return c->ops->set_irqs(c, flags, index, start, count, data, len);
}

ssize_t vfpm_client_region_read(struct vfpm_client *c, uint32_t index, uint64_t offset,
				void *buf, size_t count)
{
	if (count && !buf)
		return -EINVAL;
	return c->ops->region_read(c, index, offset, buf, count);
}

ssize_t vfpm_client_region_write(struct vfpm_client *c, uint32_t index, uint64_t offset,
				 const void *buf, size_t count)
{
	if (count && !buf)
		return -EINVAL;
	return c->ops->region_write(c, index, offset, buf, count);
}

int vfpm_client_region_write_multi(struct vfpm_client *c, const struct vfpm_client_write *w,
				   unsigned int n)
{
	if (!w || !n)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		if (w[i].count == 0 || w[i].count > sizeof(w[i].data))
			return -EINVAL;
	}
	if (c->ops->region_write_multi)
		return c->ops->region_write_multi(c, w, n);
	for (unsigned int i = 0; i < n; i++) {
		ssize_t done = c->ops->region_write(c, w[i].index, w[i].offset, w[i].data,
						    w[i].count);

		if (done < 0)
			return (int)done;
		if ((size_t)done != w[i].count)
			return -EIO;
	}
	return 0;
}

int vfpm_client_reset(struct vfpm_client *c)
{
	return c->ops->reset(c);
}

int vfpm_client_power_status(struct vfpm_client *c, struct vfpm_client_power *st)
{
	if (!st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	return c->ops->power_status(c, st);
}

int vfpm_client_feature(struct vfpm_client *c, uint32_t flags, void *data, size_t len,
			size_t cap, const int *fds, unsigned int nfds)
{
	if (((len || cap) && !data) || (nfds && !fds))
		return -EINVAL;
	return c->ops->feature(c, flags, data, len, cap, fds, nfds);
}

int32_t vfpm_client_fd_arg(const struct vfpm_client *c, const int *fds, unsigned int index)
{
	return c->ops->fd_arg(c, fds, index);
}

static int low_power_set(struct vfpm_client *c, uint32_t feature)
{
	int ret = vfpm_client_feature(c, VFIO_DEVICE_FEATURE_SET | feature, NULL, 0, 0, NULL, 0);

	return ret < 0 ? ret : 0;
}

int vfpm_client_low_power_entry(struct vfpm_client *c)
{
	return low_power_set(c, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY);
}

int vfpm_client_low_power_entry_with_wakeup(struct vfpm_client *c, int eventfd)
{
	struct vfio_device_low_power_entry_with_wakeup entry = {
		.wakeup_eventfd = vfpm_client_fd_arg(c, &eventfd, 0),
	};
	int ret = vfpm_client_feature(c, VFIO_DEVICE_FEATURE_SET |
				      VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
				      &entry, sizeof(entry), 0, &eventfd, 1);

	return ret < 0 ? ret : 0;
}

int vfpm_client_low_power_exit(struct vfpm_client *c)
{
	return low_power_set(c, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
}

int vfpm_client_dma_map(struct vfpm_client *c, const struct vfpm_client_dma *map)
{
	if (!map)
		return -EINVAL;
	return c->ops->dma_map(c, map);
}

int vfpm_client_dma_unmap(struct vfpm_client *c, uint64_t iova, uint64_t size)
{
	return c->ops->dma_unmap(c, iova, size);
}
