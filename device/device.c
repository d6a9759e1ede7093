// SPDX-License-Identifier: MIT
/*
 * Device core: devices, their open instances, the runtime PM request wrapper
 * and VFIO_DEVICE_FEATURE validation (the kernel's vfio_main.c).
 */
#include "device_internal.h"

#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/vfio.h>

struct vfpm_device {
	/* Immutable after creation. */
	struct vfpm_device_ops ops;
	void *priv;
	struct vfpm_pm_dev *pm;		/* NULL: no runtime PM callbacks, no wrapper */

	/* Successful runtime transitions (for management queries). */
	_Atomic uint64_t suspends, resumes;

	/* Serialises open_device/close_device and guards open_count. */
	pthread_mutex_t open_lock;
	unsigned int open_count;

	/*
	 * Protects dma_inst and the list of open instances.  DMA holds the
	 * read side across the provider's calls, so that an instance is never
	 * closed under a DMA through it.
	 */
	pthread_rwlock_t dma_lock;
	struct vfpm_instance *dma_inst;	/* whose memory the device reaches, or NULL */
	struct vfpm_instance *instances;	/* open ones, for bounced write-backs */
};

struct vfpm_instance {
	struct vfpm_device *dev;	/* immutable */
	uint64_t id;			/* immutable: vfpm_instance_id */
	/* Set once, before the instance's first request (vfpm_instance_set_dma). */
	const struct vfpm_dma_ops *dma_ops;
	void *dma_opaque;
	struct vfpm_instance *next;	/* dev->dma_lock */
	/* The open one and one per deferred request on it: the last frees it. */
	atomic_uint refs;
};

/* vfpm_instance_id: numbers handed out so far, in the whole process. */
static atomic_uint_fast64_t instance_ids;

/* ---- user buffers and fds ---- */

int vfpm_ubuf_read(const struct vfpm_ubuf *u, size_t offset, void *dst, size_t len)
{
	if (offset > u->in_len || len > u->in_len - offset)
		return -EFAULT;
	memcpy(dst, (const char *)u->data + offset, len);
	return 0;
}

int vfpm_ubuf_write(struct vfpm_ubuf *u, size_t offset, const void *src, size_t len)
{
	if (offset > u->cap || len > u->cap - offset)
		return -EFAULT;
	memcpy((char *)u->data + offset, src, len);
	if (offset + len > u->out_len)
		u->out_len = offset + len;
	return 0;
}

int vfpm_fds_lookup(const struct vfpm_fds *fds, int32_t number)
{
	if (number < 0)
		return -EBADF;
	if (fds) {
		if ((uint32_t)number >= fds->count)
			return -EBADF;
		number = fds->fd[number];
	}
	if (fcntl(number, F_GETFD) < 0)
		return -EBADF;
	return number;
}

static bool fd_is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") == 0;
}

int vfpm_eventfd_get(const struct vfpm_fds *fds, int32_t number)
{
	int fd = vfpm_fds_lookup(fds, number);
	int dup;

	if (fd < 0)
		return fd;
	if (!fd_is_eventfd(fd))
		return -EINVAL;
	dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return dup < 0 ? -errno : dup;
}

int vfpm_eventfd_signal(int efd)
{
	struct pollfd pfd = { .fd = efd, .events = POLLOUT };
	uint64_t one = 1;
	ssize_t n;

	/*
	 * Never block, as the kernel's eventfd_signal never does: the fd may be
	 * the user's blocking eventfd (we share its file description, so cannot
	 * make it non-blocking), and a full counter must not hang the device.
	 */
	if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLOUT))
		return -EAGAIN;
	do {
		n = write(efd, &one, sizeof(one));
	} while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(one) ? 0 : -errno;
}

int vfpm_fds_out_add_at(struct vfpm_fds_out *out, int fd, uint64_t offset)
{
	if (!out || out->count >= VFPM_FDS_OUT_MAX)
		return -ENOSPC;
	out->offset[out->count] = offset;
	out->fd[out->count++] = fd;
	return 0;
}

int vfpm_fds_out_add(struct vfpm_fds_out *out, int fd)
{
	return vfpm_fds_out_add_at(out, fd, 0);
}

/* ---- runtime PM glue ---- */

static int device_runtime_suspend(struct vfpm_pm_dev *pm, void *opaque)
{
	struct vfpm_device *dev = opaque;
	int ret = dev->ops.runtime_suspend ? dev->ops.runtime_suspend(dev) : 0;

	(void)pm;
	if (!ret)
		atomic_fetch_add(&dev->suspends, 1);
	return ret;
}

static int device_runtime_resume(struct vfpm_pm_dev *pm, void *opaque)
{
	struct vfpm_device *dev = opaque;
	int ret = dev->ops.runtime_resume ? dev->ops.runtime_resume(dev) : 0;

	(void)pm;
	if (!ret)
		atomic_fetch_add(&dev->resumes, 1);
	return ret;
}

void vfpm_device_power_info(struct vfpm_device *dev, struct vfpm_power_info *info)
{
	*info = (struct vfpm_power_info){
		.runtime_pm = dev->pm != NULL,
		.status = dev->pm ? vfpm_pm_status(dev->pm) : VFPM_PM_ACTIVE,
		.usage_count = dev->pm ? vfpm_pm_usage_count(dev->pm) : 0,
		.suspends = atomic_load(&dev->suspends),
		.resumes = atomic_load(&dev->resumes),
	};
	if (dev->ops.power_info)
		dev->ops.power_info(dev, info);
}

static const struct vfpm_pm_ops device_pm_ops = {
	.runtime_suspend = device_runtime_suspend,
	.runtime_resume = device_runtime_resume,
};

int vfpm_device_pm_get(struct vfpm_device *dev)
{
	if (dev->pm && vfpm_pm_resume_and_get(dev->pm) < 0)
		return -EIO;
	return 0;
}

void vfpm_device_pm_put(struct vfpm_device *dev)
{
	if (dev->pm)
		vfpm_pm_put(dev->pm);
}

/* ---- devices and instances ---- */

int vfpm_device_create(const struct vfpm_device_ops *ops, void *priv, struct vfpm_device **out)
{
	struct vfpm_device *dev;
	int err;

	if (!ops || !out)
		return -EINVAL;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->ops = *ops;
	dev->priv = priv;
	pthread_mutex_init(&dev->open_lock, NULL);
	pthread_rwlock_init(&dev->dma_lock, NULL);

	if (ops->runtime_suspend || ops->runtime_resume) {
		err = vfpm_pm_dev_create(&device_pm_ops, dev, &dev->pm);
		if (err) {
			pthread_mutex_destroy(&dev->open_lock);
			free(dev);
			return err;
		}
		/* As a bound kernel device: active, enabled, held by the probe. */
		vfpm_pm_set_active(dev->pm);
		vfpm_pm_get_noresume(dev->pm);
		vfpm_pm_enable(dev->pm);
	}
	*out = dev;
	return 0;
}

void vfpm_device_destroy(struct vfpm_device *dev)
{
	if (!dev)
		return;
	vfpm_pm_dev_destroy(dev->pm);
	pthread_mutex_destroy(&dev->open_lock);
	pthread_rwlock_destroy(&dev->dma_lock);
	free(dev);
}

void *vfpm_device_priv(const struct vfpm_device *dev)
{
	return dev->priv;
}

struct vfpm_pm_dev *vfpm_device_pm(const struct vfpm_device *dev)
{
	return dev->pm;
}

unsigned int vfpm_device_open_count(struct vfpm_device *dev)
{
	unsigned int n;

	pthread_mutex_lock(&dev->open_lock);
	n = dev->open_count;
	pthread_mutex_unlock(&dev->open_lock);
	return n;
}

int vfpm_device_open(struct vfpm_device *dev, struct vfpm_instance **out)
{
	struct vfpm_instance *inst = calloc(1, sizeof(*inst));
	int err = 0;

	if (!inst)
		return -ENOMEM;
	inst->dev = dev;
	inst->id = atomic_fetch_add(&instance_ids, 1) + 1;
	atomic_init(&inst->refs, 1);
	pthread_mutex_lock(&dev->open_lock);
	if (dev->open_count == 0 && dev->ops.open_device)
		err = dev->ops.open_device(dev);
	if (!err)
		dev->open_count++;
	pthread_mutex_unlock(&dev->open_lock);
	if (err) {
		free(inst);
		return err;
	}
	pthread_rwlock_wrlock(&dev->dma_lock);
	inst->next = dev->instances;
	dev->instances = inst;
	pthread_rwlock_unlock(&dev->dma_lock);
	*out = inst;
	return 0;
}

void vfpm_instance_close(struct vfpm_instance *inst)
{
	struct vfpm_device *dev;

	if (!inst)
		return;
	dev = inst->dev;
	/* Waits for DMA in progress through it (not for holds: they need no instance). */
	pthread_rwlock_wrlock(&dev->dma_lock);
	if (dev->dma_inst == inst)
		dev->dma_inst = NULL;
	for (struct vfpm_instance **p = &dev->instances; *p; p = &(*p)->next) {
		if (*p == inst) {
			*p = inst->next;
			break;
		}
	}
	pthread_rwlock_unlock(&dev->dma_lock);
	pthread_mutex_lock(&dev->open_lock);
	if (--dev->open_count == 0 && dev->ops.close_device)
		dev->ops.close_device(dev);
	pthread_mutex_unlock(&dev->open_lock);
	/* A racing completion may make this line a false alarm, never a missed one. */
	if (atomic_load(&inst->refs) > 1)
		vfpm_logf(VFPM_LOG_ERR, "instance %llu closed with an access pending: the "
			  "transport must wait for its completion", (unsigned long long)inst->id);
	vfpm_instance_release(inst);
}

void vfpm_instance_hold(struct vfpm_instance *inst)
{
	atomic_fetch_add(&inst->refs, 1);
}

void vfpm_instance_release(struct vfpm_instance *inst)
{
	if (atomic_fetch_sub(&inst->refs, 1) == 1)
		free(inst);
}

struct vfpm_device *vfpm_instance_device(const struct vfpm_instance *inst)
{
	return inst->dev;
}

uint64_t vfpm_instance_id(const struct vfpm_instance *inst)
{
	return inst->id;
}

/* ---- DMA ---- */

void vfpm_instance_set_dma(struct vfpm_instance *inst, const struct vfpm_dma_ops *ops,
			   void *opaque)
{
	inst->dma_ops = ops;
	inst->dma_opaque = opaque;
}

void vfpm_device_set_dma_instance(struct vfpm_device *dev, struct vfpm_instance *inst)
{
	if (inst && !inst->dma_ops)
		return;	/* nothing to reach through it: keep what there is */
	pthread_rwlock_wrlock(&dev->dma_lock);
	dev->dma_inst = inst;
	pthread_rwlock_unlock(&dev->dma_lock);
}

int vfpm_device_dma(struct vfpm_device *dev, uint64_t iova, void *buf, size_t len, bool write)
{
	struct vfpm_instance *inst;
	int err;

	pthread_rwlock_rdlock(&dev->dma_lock);
	inst = dev->dma_inst;
	if (!inst)
		err = -EFAULT;	/* no user memory to reach: an IOMMU fault */
	else if (write)
		err = inst->dma_ops->write(inst->dma_opaque, iova, buf, len);
	else
		err = inst->dma_ops->read(inst->dma_opaque, iova, buf, len);
	pthread_rwlock_unlock(&dev->dma_lock);
	return err;
}

/* ---- zero-copy DMA: holds ---- */

/* One piece of a held range: mapped in place by the provider, or bounced. */
struct dma_hold_seg {
	uint64_t iova;
	struct iovec iov;	/* what the caller gets */
	bool bounced;		/* iov is a buffer of ours */
	void *provider_hold;	/* in place: for the provider's release */
};

/* Owned by the caller between vfpm_device_dma_map and _unmap. */
struct vfpm_dma_hold {
	struct vfpm_device *dev;
	uint64_t inst_id;		/* whose memory: bounced pieces go back there */
	const struct vfpm_dma_ops *ops;	/* static (vfpm_instance_set_dma): outlives us */
	int prot;
	unsigned int nr, cap;
	struct dma_hold_seg *seg;
};

/* Release what the provider holds and free the buffers, without a write-back. */
static int dma_hold_free(struct vfpm_dma_hold *h)
{
	int err = 0;

	for (unsigned int i = 0; i < h->nr; i++) {
		struct dma_hold_seg *s = &h->seg[i];
		int e = 0;

		if (s->bounced)
			free(s->iov.iov_base);
		else
			e = h->ops->release(s->provider_hold);
		if (e && !err)
			err = e;
	}
	free(h->seg);
	free(h);
	return err;
}

/* Add a piece; on failure it is undone (released or freed). */
static int dma_hold_append(struct vfpm_dma_hold *h, const struct dma_hold_seg *s)
{
	if (h->nr == h->cap) {
		unsigned int cap = h->cap ? h->cap * 2 : 4;
		struct dma_hold_seg *n = realloc(h->seg, cap * sizeof(*n));

		if (!n) {
			if (s->bounced)
				free(s->iov.iov_base);
			else
				h->ops->release(s->provider_hold);
			return -ENOMEM;
		}
		h->seg = n;
		h->cap = cap;
	}
	h->seg[h->nr++] = *s;
	return 0;
}

/*
 * Split [iova, iova + len) into pieces the provider maps in place or we
 * bounce (dma_lock read side held).  No data moves yet, so a range that
 * fails halfway has touched nothing.
 */
static int dma_hold_pieces(struct vfpm_dma_hold *h, struct vfpm_instance *inst, uint64_t iova,
			   size_t len, unsigned int max)
{
	while (len) {
		struct dma_hold_seg s = { .iova = iova };
		int err = -EOPNOTSUPP;

		if (h->nr == max)
			return -ENOSPC;
		if (h->ops->map && h->ops->release)
			err = h->ops->map(inst->dma_opaque, iova, len, h->prot, &s.iov,
					  &s.provider_hold);
		else
			s.iov.iov_len = len;	/* no map op: one bounce for the rest */
		if (err && err != -EOPNOTSUPP)
			return err;
		if (!s.iov.iov_len || s.iov.iov_len > len) {
			/* A provider that makes no progress would have us loop forever. */
			if (!err)
				h->ops->release(s.provider_hold);
			return -EIO;
		}
		if (err) {
			/* Zeroed: a PROT_WRITE piece is written back whole. */
			s.bounced = true;
			s.iov.iov_base = calloc(1, s.iov.iov_len);
			if (!s.iov.iov_base)
				return -ENOMEM;
		}
		err = dma_hold_append(h, &s);
		if (err)
			return err;
		iova += s.iov.iov_len;
		len -= s.iov.iov_len;
	}
	return 0;
}

/* Fill the bounced pieces from the user's memory (dma_lock read side held). */
static int dma_hold_bounce_in(struct vfpm_dma_hold *h, struct vfpm_instance *inst)
{
	for (unsigned int i = 0; i < h->nr; i++) {
		const struct dma_hold_seg *s = &h->seg[i];
		int err;

		if (!s->bounced)
			continue;
		err = inst->dma_ops->read(inst->dma_opaque, s->iova, s->iov.iov_base,
					  s->iov.iov_len);
		if (err)
			return err;
	}
	return 0;
}

/* Write the bounced pieces back to the instance they came from, if it is still open. */
static int dma_hold_bounce_out(struct vfpm_dma_hold *h)
{
	struct vfpm_device *dev = h->dev;
	struct vfpm_instance *inst;
	unsigned int i;
	int err = 0;

	for (i = 0; i < h->nr && !h->seg[i].bounced; i++)
		;
	if (i == h->nr)
		return 0;	/* all in place: nothing to write back */
	pthread_rwlock_rdlock(&dev->dma_lock);
	for (inst = dev->instances; inst && inst->id != h->inst_id; inst = inst->next)
		;
	for (; i < h->nr; i++) {
		const struct dma_hold_seg *s = &h->seg[i];
		int e;

		if (!s->bounced)
			continue;
		/* Its user and its memory are gone: as an IOMMU fault. */
		e = inst ? inst->dma_ops->write(inst->dma_opaque, s->iova, s->iov.iov_base,
						s->iov.iov_len) : -EFAULT;
		if (e && !err)
			err = e;
	}
	pthread_rwlock_unlock(&dev->dma_lock);
	return err;
}

int vfpm_device_dma_map(struct vfpm_device *dev, uint64_t iova, size_t len, int prot,
			struct iovec *iov, unsigned int max, unsigned int *nr_iov,
			struct vfpm_dma_hold **hold)
{
	struct vfpm_instance *inst;
	struct vfpm_dma_hold *h;
	int err;

	if (!dev || !len || !iov || !nr_iov || !hold || !prot ||
	    (prot & ~(PROT_READ | PROT_WRITE)))
		return -EINVAL;
	if (iova + len < iova)
		return -EFAULT;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->dev = dev;
	h->prot = prot;

	pthread_rwlock_rdlock(&dev->dma_lock);
	inst = dev->dma_inst;
	if (!inst) {
		err = -EFAULT;	/* no user memory to reach: an IOMMU fault */
	} else {
		h->inst_id = inst->id;
		h->ops = inst->dma_ops;
		err = dma_hold_pieces(h, inst, iova, len, max);
		if (!err && (prot & PROT_READ))
			err = dma_hold_bounce_in(h, inst);
	}
	pthread_rwlock_unlock(&dev->dma_lock);
	if (err) {
		dma_hold_free(h);
		return err;
	}
	for (unsigned int i = 0; i < h->nr; i++)
		iov[i] = h->seg[i].iov;
	*nr_iov = h->nr;
	*hold = h;
	return 0;
}

int vfpm_device_dma_unmap(struct vfpm_device *dev, struct vfpm_dma_hold *hold)
{
	int err = 0, e;

	if (!hold || hold->dev != dev)
		return -EINVAL;
	if (hold->prot & PROT_WRITE)
		err = dma_hold_bounce_out(hold);
	e = dma_hold_free(hold);
	return err ? err : e;
}

/* ---- requests ---- */

int vfpm_check_feature(uint32_t flags, size_t argsz, uint32_t supported_ops, size_t minsz)
{
	if ((flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) & ~supported_ops)
		return -EINVAL;
	if (flags & VFIO_DEVICE_FEATURE_PROBE)
		return 0;
	/* Without PROBE, one of GET or SET must be asked for. */
	if (!(flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)))
		return -EINVAL;
	if (argsz < minsz)
		return -EINVAL;
	return 1;
}

/* VFIO_DEVICE_FEATURE: the core's checks, in the kernel's order, then the driver. */
static int device_feature(struct vfpm_device *dev, struct vfpm_ubuf *arg, const struct vfpm_fds *in)
{
	const size_t minsz = sizeof(struct vfio_device_feature);
	const uint32_t known = VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_SET |
			       VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_PROBE;
	struct vfio_device_feature feature;
	struct vfpm_ubuf data;
	int err;

	err = vfpm_ubuf_read(arg, 0, &feature, minsz);
	if (err)
		return err;
	if (feature.argsz < minsz)
		return -EINVAL;
	if (feature.flags & ~known)
		return -EINVAL;
	/* GET and SET are mutually exclusive except with PROBE. */
	if (!(feature.flags & VFIO_DEVICE_FEATURE_PROBE) &&
	    (feature.flags & VFIO_DEVICE_FEATURE_SET) && (feature.flags & VFIO_DEVICE_FEATURE_GET))
		return -EINVAL;

	switch (feature.flags & VFIO_DEVICE_FEATURE_MASK) {
	case VFIO_DEVICE_FEATURE_MIGRATION:
	case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
		return -ENOTTY; /* no vfpm driver implements migration */
	default:
		if (!dev->ops.device_feature)
			return -EINVAL;
		data = (struct vfpm_ubuf){
			.data = (char *)arg->data + minsz,
			.in_len = arg->in_len > minsz ? arg->in_len - minsz : 0,
			.cap = arg->cap > minsz ? arg->cap - minsz : 0,
		};
		err = dev->ops.device_feature(dev, feature.flags, &data, feature.argsz - minsz, in);
		if (data.out_len && data.out_len + minsz > arg->out_len)
			arg->out_len = data.out_len + minsz;
		return err;
	}
}

long vfpm_instance_ioctl(struct vfpm_instance *inst, unsigned int cmd, struct vfpm_ubuf *arg,
			 const struct vfpm_fds *in, struct vfpm_fds_out *out)
{
	struct vfpm_device *dev = inst->dev;
	long ret;

	/* The device is resumed before the argument is even read. */
	ret = vfpm_device_pm_get(dev);
	if (ret)
		return ret;
	if (cmd == VFIO_DEVICE_FEATURE)
		ret = device_feature(dev, arg, in);
	else if (dev->ops.ioctl)
		ret = dev->ops.ioctl(dev, cmd, arg, in, out);
	else
		ret = -EINVAL;
	vfpm_device_pm_put(dev);
	return ret;
}

ssize_t vfpm_device_region_op(struct vfpm_instance *inst, void *buf, size_t count, uint64_t pos,
			      bool write)
{
	const struct vfpm_device_ops *ops = &inst->dev->ops;

	if (write)
		return ops->write ? ops->write(inst, buf, count, pos) : -EINVAL;
	return ops->read ? ops->read(inst, buf, count, pos) : -EINVAL;
}
