// SPDX-License-Identifier: MIT
/*
 * PCI device core: registration, open/close, the device ioctls and region
 * access (the kernel's vfio_pci_core.c, vfio_pci_rdwr.c and the config
 * region half of vfio_pci_config.c).
 */
#include "pci_internal.h"

#include "device_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

static struct vfpm_pci_dev *to_pci(struct vfpm_device *vdev)
{
	return vfpm_device_priv(vdev);
}

/* ---- building the function ---- */

static enum vfpm_pcicfg_bar_type cfg_bar_type(enum vfpm_pci_bar_type type)
{
	switch (type) {
	case VFPM_PCI_BAR_MEM32:
		return VFPM_PCICFG_BAR_MEM32;
	case VFPM_PCI_BAR_MEM64:
		return VFPM_PCICFG_BAR_MEM64;
	case VFPM_PCI_BAR_IO:
		return VFPM_PCICFG_BAR_IO;
	case VFPM_PCI_BAR_NONE:
		break;
	}
	return VFPM_PCICFG_BAR_NONE;
}

static int pci_build_config(struct vfpm_pci_dev *pdev)
{
	const struct vfpm_pci_desc *d = &pdev->desc;
	struct vfpm_pcicfg_ids ids = {
		.vendor_id = d->vendor_id, .device_id = d->device_id,
		.subsystem_vendor_id = d->subsystem_vendor_id, .subsystem_id = d->subsystem_id,
		.revision = d->revision, .class_code = d->class_code,
		.interrupt_pin = d->interrupt_pin,
	};
	int err = vfpm_pcicfg_init(&pdev->cfg, &ids);

	for (unsigned int i = 0; !err && i < 6; i++) {
		const struct vfpm_pci_bar_desc *bar = &d->bars[i];
		struct vfpm_pcicfg_bar_desc cbar = {
			.type = cfg_bar_type(bar->type), .size = bar->size,
			.prefetchable = bar->prefetchable,
		};

		if (bar->type == VFPM_PCI_BAR_NONE)
			continue;
		err = pci_bar_check_desc(pdev, i);
		if (err)
			return err;
		err = vfpm_pcicfg_set_bar(&pdev->cfg, i, &cbar);
		if (err)
			vfpm_logf(VFPM_LOG_ERR, "%s: BAR%u refused (%s): the size must be a power "
				  "of two (at least 16 bytes for memory, 4 for I/O), a 64-bit BAR "
				  "takes the next index too", pdev->name, i, strerror(-err));
	}
	if (!err && d->pm_cap) {
		struct vfpm_pcicfg_pm_params pm = {
			.no_soft_reset = d->no_soft_reset,
			.pme_support = d->pme_d3hot ? PCI_PM_CAP_PME_D3hot : 0,
		};

		err = vfpm_pcicfg_add_pm_cap(&pdev->cfg, &pm, NULL);
	}
	if (!err && d->msi_vectors) {
		struct vfpm_pcicfg_msi_params msi = { .vectors = d->msi_vectors };

		err = vfpm_pcicfg_add_msi_cap(&pdev->cfg, &msi, NULL);
	}
	if (!err && d->msix_vectors) {
		uint32_t table = d->msix_vectors * PCI_MSIX_ENTRY_SIZE;
		struct vfpm_pcicfg_msix_params msix = {
			.vectors = d->msix_vectors,
			.table_bir = d->msix_bar, .table_offset = 0,
			.pba_bir = d->msix_bar, .pba_offset = (table + 7) & ~7u,
		};

		pdev->msix_table_size = table;
		err = vfpm_pcicfg_add_msix_cap(&pdev->cfg, &msix, NULL);
	}
	if (!err && d->pcie_cap) {
		struct vfpm_pcicfg_pcie_params pcie = { .flr = d->flr };

		err = vfpm_pcicfg_add_pcie_cap(&pdev->cfg, &pcie, NULL);
	}
	if (!err)
		err = pci_caps_build(pdev);
	return err;
}


static bool pci_intx_disabled(struct vfpm_pci_dev *pdev)
{
	bool disabled;

	pthread_rwlock_rdlock(&pdev->memory_lock);
	disabled = vfpm_pcicfg_intx_disabled(&pdev->cfg);
	pthread_rwlock_unlock(&pdev->memory_lock);
	return disabled;
}

/* ---- open, close, reset ---- */

/* Function reset: configuration to power-on values, interrupts off, model reset. */
static void pci_reset_function_locked(struct vfpm_pci_dev *pdev)
{
	vfpm_pcicfg_reset(&pdev->cfg);
	pci_bars_sync_mmap(pdev);
}

static int pci_open_device(struct vfpm_device *vdev)
{
	struct vfpm_pci_dev *pdev = to_pci(vdev);
	int err;

	/* The open reference: held while the device is open, unless low power is engaged. */
	err = vfpm_pm_resume_and_get(vfpm_pci_pm(pdev));
	if (err < 0)
		return err;
	pthread_rwlock_wrlock(&pdev->memory_lock);
	pci_reset_function_locked(pdev);
	pthread_rwlock_unlock(&pdev->memory_lock);
	if (pdev->ops.reset)
		pdev->ops.reset(pdev);
	if (pdev->ops.open) {
		err = pdev->ops.open(pdev);
		if (err) {
			vfpm_pm_put(vfpm_pci_pm(pdev));
			return err;
		}
	}
	return 0;
}

static void pci_close_device(struct vfpm_device *vdev)
{
	struct vfpm_pci_dev *pdev = to_pci(vdev);
	struct vfpm_pm_dev *pm = vfpm_pci_pm(pdev);

	bool awake;

	/* Low power is dropped without signalling, then the device is woken to be torn down. */
	pthread_rwlock_wrlock(&pdev->memory_lock);
	pci_runtime_pm_exit_locked(pdev);
	pthread_rwlock_unlock(&pdev->memory_lock);
	/*
	 * A device that cannot be resumed (a sticky runtime error) is torn down
	 * without touching it: the model's reset would be an access while
	 * suspended.
	 */
	awake = vfpm_pm_resume(pm) >= 0;

	pthread_rwlock_wrlock(&pdev->memory_lock);
	pci_set_d0_preserving(pdev);
	pthread_rwlock_unlock(&pdev->memory_lock);
	if (awake)
		pci_backend_follow_power_state(pdev);
	vfpm_pci_irqs_disable_all(&pdev->irqs);
	if (pdev->ops.close)
		pdev->ops.close(pdev);
	pthread_rwlock_wrlock(&pdev->memory_lock);
	pci_reset_function_locked(pdev);
	/*
	 * The reset revoked the BARs and no instance is left: their files go
	 * (one a former client still holds stays empty for good) and the next
	 * client that asks gets a new one.
	 */
	pci_bars_drop_files_locked(pdev);
	pthread_rwlock_unlock(&pdev->memory_lock);
	if (awake && pdev->ops.reset)
		pdev->ops.reset(pdev);
	vfpm_pm_put(pm);
}

static int pci_ioctl_reset(struct vfpm_pci_dev *pdev)
{
	pthread_rwlock_wrlock(&pdev->memory_lock);
	pci_set_d0_preserving(pdev);
	pci_reset_function_locked(pdev);
	pthread_rwlock_unlock(&pdev->memory_lock);
	pci_backend_follow_power_state(pdev);
	vfpm_pci_irqs_disable_all(&pdev->irqs);
	if (pdev->ops.reset)
		pdev->ops.reset(pdev);
	return 0;
}

/* ---- info ioctls ---- */

static int pci_ioctl_get_info(struct vfpm_pci_dev *pdev, struct vfpm_ubuf *arg)
{
	const size_t minsz = offsetof(struct vfio_device_info, num_irqs) + sizeof(uint32_t);
	struct vfio_device_info info;
	int err = vfpm_ubuf_read(arg, 0, &info, minsz);

	(void)pdev;
	if (err)
		return err;
	if (info.argsz < minsz)
		return -EINVAL;
	info.flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
	info.num_regions = VFIO_PCI_NUM_REGIONS;
	info.num_irqs = VFIO_PCI_NUM_IRQS;
	return vfpm_ubuf_write(arg, 0, &info, minsz);
}

/*
 * The areas of a BAR the user may mmap: its memory areas, less the pages of
 * the MSI-X table (the VMM's to emulate).  Returns how many.
 */
static unsigned int pci_bar_mmap_areas(struct vfpm_pci_dev *pdev, unsigned int index,
				       struct vfio_region_sparse_mmap_area *areas)
{
	const struct pci_bar *bar = &pdev->bars[index];
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), table_end = 0;
	unsigned int n = 0;

	if (pdev->msix_table_size && index == pdev->desc.msix_bar)
		table_end = (pdev->msix_table_size + page - 1) & ~(page - 1);
	for (unsigned int i = 0; i < bar->nr_areas; i++) {
		uint64_t start = bar->areas[i].offset, end = start + bar->areas[i].size;

		if (start < table_end)
			start = table_end;
		if (start < end)
			areas[n++] = (struct vfio_region_sparse_mmap_area){ start, end - start };
	}
	return n;
}

/*
 * The sparse mmap capability, for a BAR whose mmap-able part is not the
 * whole BAR (mixed trapped and mapped areas, or the MSI-X table inside).
 */
static int pci_region_sparse_cap(struct vfpm_pci_dev *pdev, unsigned int index,
				 struct vfio_region_info *info, struct vfpm_ubuf *arg)
{
	struct vfio_region_sparse_mmap_area areas[VFPM_PCI_BAR_AREAS_MAX];
	struct vfio_region_info_cap_sparse_mmap hdr = {
		.header = { .id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1 },
	};
	size_t size;
	int err;

	hdr.nr_areas = pci_bar_mmap_areas(pdev, index, areas);
	if (hdr.nr_areas == 1 && areas[0].offset == 0 &&
	    areas[0].size == pdev->bars[index].desc->size)
		return 0;	/* the whole BAR: no capability, as vfio-pci */
	size = sizeof(hdr) + hdr.nr_areas * sizeof(areas[0]);
	info->flags |= VFIO_REGION_INFO_FLAG_CAPS;
	if (info->argsz < sizeof(*info) + size) {
		/* Tell the user how much room the capability needs. */
		info->argsz = (uint32_t)(sizeof(*info) + size);
		info->cap_offset = 0;
		return 0;
	}
	info->cap_offset = sizeof(*info);
	err = vfpm_ubuf_write(arg, sizeof(*info), &hdr, sizeof(hdr));
	if (!err && hdr.nr_areas)
		err = vfpm_ubuf_write(arg, sizeof(*info) + sizeof(hdr), areas,
				      hdr.nr_areas * sizeof(areas[0]));
	return err;
}

static int pci_ioctl_get_region_info(struct vfpm_pci_dev *pdev, struct vfpm_ubuf *arg,
				     struct vfpm_fds_out *out)
{
	const size_t minsz = offsetof(struct vfio_region_info, offset) + sizeof(uint64_t);
	struct vfio_region_info info;
	int err = vfpm_ubuf_read(arg, 0, &info, minsz);

	if (err)
		return err;
	if (info.argsz < minsz)
		return -EINVAL;
	info.cap_offset = 0;
	info.offset = VFPM_REGION_OFFSET(info.index);
	switch (info.index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		info.size = VFPM_PCICFG_SIZE;
		info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		break;
	case VFIO_PCI_BAR0_REGION_INDEX ... VFIO_PCI_BAR5_REGION_INDEX: {
		struct pci_bar *bar = &pdev->bars[info.index];

		info.size = bar->desc->type == VFPM_PCI_BAR_NONE ? 0 : bar->desc->size;
		info.flags = 0;
		if (!info.size)
			break;
		info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		if (bar->nr_areas) {
			/* Hand out a file of the right size, whatever a client did to it. */
			pci_bars_repair(pdev);
			info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
			err = pci_region_sparse_cap(pdev, info.index, &info, arg);
			if (!err && out) {
				int fd;

				err = pci_bar_file_dup(pdev, info.index, &fd);
				if (err)
					return err;
				err = vfpm_fds_out_add_at(out, fd, bar->fd_offset);
				if (err)
					close(fd);
			}
			if (err)
				return err;
		}
		break;
	}
	case VFIO_PCI_ROM_REGION_INDEX:
		info.size = 0;
		info.flags = 0;
		break;
	default:
		/* No VGA, no device-specific regions. */
		return -EINVAL;
	}
	return vfpm_ubuf_write(arg, 0, &info, minsz);
}

static long pci_ioctl(struct vfpm_device *vdev, unsigned int cmd, struct vfpm_ubuf *arg,
		      const struct vfpm_fds *in, struct vfpm_fds_out *out)
{
	struct vfpm_pci_dev *pdev = to_pci(vdev);

	switch (cmd) {
	case VFIO_DEVICE_GET_INFO:
		return pci_ioctl_get_info(pdev, arg);
	case VFIO_DEVICE_GET_REGION_INFO:
		return pci_ioctl_get_region_info(pdev, arg, out);
	case VFIO_DEVICE_GET_IRQ_INFO:
		return vfpm_pci_irqs_get_info(&pdev->irqs, arg);
	case VFIO_DEVICE_SET_IRQS:
		return vfpm_pci_irqs_set(&pdev->irqs, arg, in);
	case VFIO_DEVICE_RESET:
		return pci_ioctl_reset(pdev);
	default:
		return -ENOTTY;
	}
}

/* ---- region access ---- */

static ssize_t pci_config_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, void *buf,
			     size_t count, uint64_t pos, bool write)
{
	uint8_t saved[VFPM_PCICFG_SIZE];
	unsigned int events = 0;
	bool touches_pmcsr;
	int err;

	if (pos >= VFPM_PCICFG_SIZE || count > VFPM_PCICFG_SIZE - pos)
		return -EFAULT;
	if (!write) {
		/* The model's read hooks may change what they read: one at a time. */
		bool hooked = pci_caps_hooked(pdev, pos, count, false);

		if (hooked)
			pthread_rwlock_wrlock(&pdev->memory_lock);
		else
			pthread_rwlock_rdlock(&pdev->memory_lock);
		err = vfpm_pcicfg_guest_read_buf(&pdev->cfg, pos, buf, count);
		if (!err && hooked)
			err = pci_caps_run_hooks(pdev, inst, pos, buf, count, false);
		pthread_rwlock_unlock(&pdev->memory_lock);
		return err ? err : (ssize_t)count;
	}
	pthread_rwlock_wrlock(&pdev->memory_lock);
	touches_pmcsr = pdev->cfg.pm_cap && pos < pdev->cfg.pm_cap + PCI_PM_CTRL + 2u &&
			pos + count > pdev->cfg.pm_cap + (uint64_t)PCI_PM_CTRL;
	if (touches_pmcsr)
		memcpy(saved, pdev->cfg.live, sizeof(saved));
	err = vfpm_pcicfg_guest_write_buf(&pdev->cfg, pos, buf, count, &events);
	if (!err && pci_caps_hooked(pdev, pos, count, true)) {
		/* The model's write hooks see the bytes as the masks left them. */
		uint8_t landed[VFPM_PCICFG_SIZE];

		memcpy(landed, &pdev->cfg.live[pos], count);
		err = pci_caps_run_hooks(pdev, inst, pos, landed, count, true);
	}
	if (events & VFPM_PCICFG_EV_SOFT_RESET)
		pci_restore_config_keeping_pmcsr(pdev, saved);
	if (events & (VFPM_PCICFG_EV_COMMAND | VFPM_PCICFG_EV_POWER_STATE |
		      VFPM_PCICFG_EV_SOFT_RESET | VFPM_PCICFG_EV_FLR))
		pci_bars_sync_mmap(pdev);
	pthread_rwlock_unlock(&pdev->memory_lock);
	/* COMMAND.INTX_DISABLE masks and unmasks INTx, as vfio-pci virtualizes it. */
	if (events & (VFPM_PCICFG_EV_COMMAND | VFPM_PCICFG_EV_SOFT_RESET | VFPM_PCICFG_EV_FLR))
		vfpm_pci_irq_intx_set_virq_disabled(&pdev->irqs, pci_intx_disabled(pdev));
	/* Bus mastering turned on through inst: the device DMAs into its user's memory. */
	if ((events & VFPM_PCICFG_EV_COMMAND) && inst && pci_bus_master(pdev))
		vfpm_device_set_dma_instance(pdev->vdev, inst);
	/* D3hot stops the backend, D0 restarts it (an FLR leaves D3hot too). */
	if (events & (VFPM_PCICFG_EV_POWER_STATE | VFPM_PCICFG_EV_FLR))
		pci_backend_follow_power_state(pdev);
	/* The function's internal state is lost either way. */
	if (events & (VFPM_PCICFG_EV_SOFT_RESET | VFPM_PCICFG_EV_FLR)) {
		if (events & VFPM_PCICFG_EV_FLR)
			vfpm_pci_irqs_disable_all(&pdev->irqs);
		if (pdev->ops.reset)
			pdev->ops.reset(pdev);
	}
	return err ? err : (ssize_t)count;
}

/* Bytes of [offset, offset+count) that fall in the hidden MSI-X table. */
static bool pci_in_msix_table(struct vfpm_pci_dev *pdev, unsigned int bar, uint64_t offset)
{
	return pdev->msix_table_size && bar == pdev->desc.msix_bar &&
	       offset < pdev->msix_table_size;
}

/*
 * One piece of a BAR access, all trapped or all memory: bytes done or
 * -errno.  Called with the memory lock held for reading; returns without
 * it when *unlocked is set (the model's bar_rw runs unlocked).
 */
static ssize_t pci_bar_piece_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst,
				unsigned int index, void *buf, size_t count, uint64_t pos,
				bool write, bool *unlocked)
{
	struct pci_bar *bar = &pdev->bars[index];
	bool memory = pci_bar_piece(bar, pos, &count);

	if (pci_in_msix_table(pdev, index, pos)) {
		/* The table is the VMM's to emulate: reads see ones, writes vanish. */
		count = count < pdev->msix_table_size - pos ? count : pdev->msix_table_size - pos;
		if (!write)
			memset(buf, 0xff, count);
		return (ssize_t)count;
	}
	if (memory && !bar->desc->trap_mapped) {
		/* Under the lock: revocation moves these bytes. */
		if (write)
			memcpy((char *)bar->host + pos, buf, count);
		else
			memcpy(buf, (char *)bar->host + pos, count);
		if (vfpm_memguard_faults(bar->guard)) {
			/* A client truncated the memfd: this access touched lost pages. */
			pthread_rwlock_unlock(&pdev->memory_lock);
			*unlocked = true;
			pci_bars_repair(pdev);
			return -EIO;
		}
		return (ssize_t)count;
	}
	/*
	 * A trapped access may take the model a long time: it runs without
	 * the memory lock, so that low power entry or a config write on
	 * another instance is not held up behind it.  The request's runtime
	 * PM reference keeps the device awake.
	 */
	pthread_rwlock_unlock(&pdev->memory_lock);
	*unlocked = true;
	if (!pdev->ops.bar_rw)
		return -EINVAL;
	return pdev->ops.bar_rw(pdev, inst, index, pos, buf, count, write);
}

/*
 * A BAR access, split where it crosses between trapped registers, memory
 * and the MSI-X table; a piece that fails ends it (what was done before it
 * is reported, or the error when nothing was).  So does a piece the model
 * defers (-EINPROGRESS): the request reports the bytes done before it with
 * the model's result when it completes.
 */
static ssize_t pci_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, unsigned int index,
			  void *buf, size_t count, uint64_t pos, bool write)
{
	struct pci_bar *bar = &pdev->bars[index];
	bool is_mem = bar->desc->type != VFPM_PCI_BAR_IO;
	size_t done = 0;

	if (bar->desc->type == VFPM_PCI_BAR_NONE || pos >= bar->desc->size)
		return -EINVAL;
	if (count > bar->desc->size - pos)
		count = bar->desc->size - pos;

	while (done < count) {
		bool unlocked = false;
		ssize_t n;

		pthread_rwlock_rdlock(&pdev->memory_lock);
		if (is_mem && !pci_memory_enabled(pdev)) {
			pthread_rwlock_unlock(&pdev->memory_lock);
			return done ? (ssize_t)done : -EIO;
		}
		n = pci_bar_piece_rw(pdev, inst, index, (char *)buf + done, count - done,
				     pos + done, write, &unlocked);
		if (!unlocked)
			pthread_rwlock_unlock(&pdev->memory_lock);
		if (n == -EINPROGRESS && vfpm_request_deferred(inst)) {
			vfpm_request_set_done(vfpm_request_deferred(inst), done);
			return n;
		}
		if (n <= 0)
			return done ? (ssize_t)done : (n ? n : -EIO);
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static ssize_t pci_rw(struct vfpm_instance *inst, void *buf, size_t count, uint64_t pos,
		      bool write)
{
	struct vfpm_device *vdev = vfpm_instance_device(inst);
	struct vfpm_pci_dev *pdev = to_pci(vdev);
	unsigned int index = VFPM_REGION_INDEX(pos);
	uint64_t offset = pos & VFPM_REGION_OFFSET_MASK;
	ssize_t ret;

	if (index >= VFIO_PCI_NUM_REGIONS)
		return -EINVAL;
	/* As vfio-pci: the index is checked before the device is resumed. */
	if (vfpm_device_pm_get(vdev))
		return -EIO;
	switch (index) {
	case VFIO_PCI_CONFIG_REGION_INDEX:
		ret = pci_config_rw(pdev, inst, buf, count, offset, write);
		break;
	case VFIO_PCI_BAR0_REGION_INDEX ... VFIO_PCI_BAR5_REGION_INDEX:
		ret = pci_bar_rw(pdev, inst, index, buf, count, offset, write);
		break;
	default:
		ret = -EINVAL; /* no ROM, no VGA */
		break;
	}
	/* Deferred: the reference keeps the device awake until the model completes. */
	if (ret == -EINPROGRESS && vfpm_request_deferred(inst))
		vfpm_request_add_put(vfpm_request_deferred(inst), vdev);
	else
		vfpm_device_pm_put(vdev);
	return ret;
}

static ssize_t pci_read(struct vfpm_instance *inst, void *buf, size_t count, uint64_t pos)
{
	return pci_rw(inst, buf, count, pos, false);
}

static ssize_t pci_write(struct vfpm_instance *inst, const void *buf, size_t count, uint64_t pos)
{
	return pci_rw(inst, (void *)buf, count, pos, true);
}

static const struct vfpm_device_ops pci_device_ops = {
	.open_device = pci_open_device,
	.close_device = pci_close_device,
	.ioctl = pci_ioctl,
	.read = pci_read,
	.write = pci_write,
	.device_feature = pci_feature,
	.power_info = pci_power_info,
	.runtime_suspend = pci_runtime_suspend,
	.runtime_resume = pci_runtime_resume,
};

/* ---- lifecycle ---- */

static int pci_init_irqs(struct vfpm_pci_dev *pdev)
{
	struct vfpm_pci_irq_counts counts = {
		.intx = pdev->desc.interrupt_pin ? 1 : 0,
		.msi = pdev->desc.msi_vectors,
		.msix = pdev->desc.msix_vectors,
		.err = pdev->desc.pcie_cap ? 1 : 0,
	};

	return vfpm_pci_irqs_init(&pdev->irqs, &counts);
}

int vfpm_pci_dev_create(const struct vfpm_pci_desc *desc, const struct vfpm_pci_model_ops *ops,
			void *model, struct vfpm_pci_dev **out)
{
	pthread_rwlockattr_t lock_attr;
	struct vfpm_pci_dev *pdev;
	int err;

	if (!desc || !out)
		return -EINVAL;
	pdev = calloc(1, sizeof(*pdev));
	if (!pdev)
		return -ENOMEM;
	pdev->desc = *desc;
	if (ops)
		pdev->ops = *ops;
	pdev->model = model;
	pdev->pm_wake_eventfd = -1;
	if (desc->name)
		snprintf(pdev->name, sizeof(pdev->name), "%s", desc->name);
	else
		snprintf(pdev->name, sizeof(pdev->name), "pci %04x:%04x", desc->vendor_id,
			 desc->device_id);
	pdev->desc.name = pdev->name;
	/*
	 * Writers first: a backend thread that takes the read side in a tight
	 * loop must not starve low power entry or a config write.
	 */
	pthread_rwlockattr_init(&lock_attr);
	pthread_rwlockattr_setkind_np(&lock_attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&pdev->memory_lock, &lock_attr);
	pthread_rwlockattr_destroy(&lock_attr);
	pthread_mutex_init(&pdev->backend_lock, NULL);
	for (unsigned int i = 0; i < 6; i++) {
		pdev->bars[i].desc = &pdev->desc.bars[i];
		pdev->bars[i].memfd = -1;
	}

	err = pci_build_config(pdev);
	if (!err)
		vfpm_pcicfg_share(&pdev->cfg);
	if (!err)
		err = pci_bars_init(pdev);
	if (!err)
		err = pci_bars_sync_mmap(pdev);
	if (!err)
		err = pci_init_irqs(pdev);
	if (err) {
		vfpm_logf(VFPM_LOG_ERR, "%s: cannot create the device (%s)", pdev->name,
			  strerror(-err));
		pci_bars_release(pdev);
		pthread_rwlock_destroy(&pdev->memory_lock);
		pthread_mutex_destroy(&pdev->backend_lock);
		vfpm_pcicfg_release(&pdev->cfg);
		free(pdev);
		return err;
	}
	err = vfpm_device_create(&pci_device_ops, pdev, &pdev->vdev);
	if (err) {
		vfpm_pci_irqs_destroy(&pdev->irqs);
		pci_bars_release(pdev);
		pthread_rwlock_destroy(&pdev->memory_lock);
		pthread_mutex_destroy(&pdev->backend_lock);
		vfpm_pcicfg_release(&pdev->cfg);
		free(pdev);
		return err;
	}
	if (pdev->ops.probe) {
		err = pdev->ops.probe(pdev);
		if (err) {
			/* As the kernel: remove only follows a probe that succeeded. */
			vfpm_logf(VFPM_LOG_ERR, "%s: the model's probe failed (%s)", pdev->name,
				  strerror(-err));
			pdev->ops.remove = NULL;
			vfpm_pci_dev_destroy(pdev);
			return err;
		}
	}
	/* As vfio-pci's registration: allow runtime PM and let the unused device idle. */
	vfpm_pm_allow(vfpm_pci_pm(pdev));
	vfpm_pm_put(vfpm_pci_pm(pdev));
	*out = pdev;
	return 0;
}

void vfpm_pci_dev_destroy(struct vfpm_pci_dev *pdev)
{
	if (!pdev)
		return;
	/* No more callbacks from here on; then the model stops its threads. */
	vfpm_pm_disable(vfpm_pci_pm(pdev));
	if (pdev->ops.remove)
		pdev->ops.remove(pdev);
	vfpm_device_destroy(pdev->vdev);
	vfpm_pci_irqs_destroy(&pdev->irqs);
	pci_bars_release(pdev);
	pthread_rwlock_destroy(&pdev->memory_lock);
	pthread_mutex_destroy(&pdev->backend_lock);
	vfpm_pcicfg_release(&pdev->cfg);
	free(pdev);
}

struct vfpm_device *vfpm_pci_device(struct vfpm_pci_dev *pdev)
{
	return pdev->vdev;
}

struct vfpm_pm_dev *vfpm_pci_pm(struct vfpm_pci_dev *pdev)
{
	return vfpm_device_pm(pdev->vdev);
}

void *vfpm_pci_model(struct vfpm_pci_dev *pdev)
{
	return pdev->model;
}

int vfpm_pci_power_state(struct vfpm_pci_dev *pdev)
{
	int state;

	pthread_rwlock_rdlock(&pdev->memory_lock);
	state = (int)vfpm_pcicfg_power_state(&pdev->cfg);
	pthread_rwlock_unlock(&pdev->memory_lock);
	return state;
}

/* ---- host-side access ---- */

int vfpm_pci_host_cfg_read(struct vfpm_pci_dev *pdev, unsigned int offset, unsigned int size,
			   uint32_t *value)
{
	int err = vfpm_device_pm_get(pdev->vdev);

	if (err)
		return err;
	pthread_rwlock_rdlock(&pdev->memory_lock);
	err = vfpm_pcicfg_host_read(&pdev->cfg, offset, size, value);
	pthread_rwlock_unlock(&pdev->memory_lock);
	vfpm_device_pm_put(pdev->vdev);
	return err;
}

int vfpm_pci_host_cfg_write(struct vfpm_pci_dev *pdev, unsigned int offset, unsigned int size,
			    uint32_t value)
{
	int err = vfpm_device_pm_get(pdev->vdev);

	if (err)
		return err;
	pthread_rwlock_wrlock(&pdev->memory_lock);
	err = vfpm_pcicfg_host_write(&pdev->cfg, offset, size, value);
	pthread_rwlock_unlock(&pdev->memory_lock);
	vfpm_device_pm_put(pdev->vdev);
	return err;
}

/*
 * The line shows in STATUS.Interrupt_Status, whatever the masking: a
 * driver that masks with COMMAND.INTX_DISABLE (PCI 2.3, as Linux's vfio-pci
 * and many drivers do) claims an interrupt only when the bit is set.
 */
void vfpm_pci_intx_assert(struct vfpm_pci_dev *pdev)
{
	pthread_rwlock_wrlock(&pdev->memory_lock);
	vfpm_pcicfg_set_intx_status(&pdev->cfg, true);
	pthread_rwlock_unlock(&pdev->memory_lock);
	vfpm_pci_irq_intx_assert(&pdev->irqs);
}

void vfpm_pci_intx_deassert(struct vfpm_pci_dev *pdev)
{
	vfpm_pci_irq_intx_deassert(&pdev->irqs);
	pthread_rwlock_wrlock(&pdev->memory_lock);
	vfpm_pcicfg_set_intx_status(&pdev->cfg, false);
	pthread_rwlock_unlock(&pdev->memory_lock);
}

int vfpm_pci_err_signal(struct vfpm_pci_dev *pdev)
{
	return vfpm_pci_irq_err_signal(&pdev->irqs);
}

int vfpm_pci_req_signal(struct vfpm_pci_dev *pdev)
{
	return vfpm_pci_irq_req_signal(&pdev->irqs);
}

int vfpm_pci_msi_signal(struct vfpm_pci_dev *pdev, unsigned int vector)
{
	return vfpm_pci_irq_msi_signal(&pdev->irqs, VFIO_PCI_MSI_IRQ_INDEX, vector);
}

int vfpm_pci_msix_signal(struct vfpm_pci_dev *pdev, unsigned int vector)
{
	return vfpm_pci_irq_msi_signal(&pdev->irqs, VFIO_PCI_MSIX_IRQ_INDEX, vector);
}
