// SPDX-License-Identifier: MIT
/*
 * Runtime power management of a PCI device: the low power features
 * (VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, _ENTRY_WITH_WAKEUP, _EXIT) and the
 * runtime suspend / resume callbacks, as vfio-pci-core has them in Linux 6.1.
 *
 * ENTRY only drops the reference the open took (put_noidle); it never
 * suspends by itself.  The suspend happens when the request wrapper drops the
 * request's own reference, so a device with a request in flight on another
 * instance stays ACTIVE until that request returns.
 */
#include "pci_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

static struct vfpm_pci_dev *to_pci(struct vfpm_device *vdev)
{
	return vfpm_device_priv(vdev);
}

/* Engage low power: revoke the mappings, keep the eventfd, drop the open reference. */
static int pci_runtime_pm_entry(struct vfpm_pci_dev *pdev, int wake_eventfd)
{
	pthread_rwlock_wrlock(&pdev->memory_lock);
	if (pdev->pm_runtime_engaged) {
		pthread_rwlock_unlock(&pdev->memory_lock);
		return -EINVAL;
	}
	pdev->pm_runtime_engaged = true;
	pdev->pm_wake_eventfd = wake_eventfd;
	pci_bars_sync_mmap(pdev);
	vfpm_pm_put_noidle(vfpm_pci_pm(pdev));
	pthread_rwlock_unlock(&pdev->memory_lock);
	return 0;
}

/*
 * Leave low power: mappings restored, the open reference taken back.  The
 * armed eventfd is handed to the caller (or -1), who signals it or not and
 * closes it: only once the mappings are back may the user hear of the wake,
 * or a VMM reacting at once would touch a mapping still revoked.
 */
static int pci_runtime_pm_disengage(struct vfpm_pci_dev *pdev)
{
	int efd = pdev->pm_wake_eventfd;

	if (!pdev->pm_runtime_engaged)
		return -1;
	pdev->pm_runtime_engaged = false;
	pdev->pm_wake_eventfd = -1;
	vfpm_pm_get_noresume(vfpm_pci_pm(pdev));
	pci_bars_sync_mmap(pdev);
	return efd;
}

void pci_runtime_pm_exit_locked(struct vfpm_pci_dev *pdev)
{
	int efd = pci_runtime_pm_disengage(pdev);

	if (efd >= 0)
		close(efd);
}

static int pci_feature_pm_entry(struct vfpm_pci_dev *pdev, uint32_t flags, size_t argsz)
{
	int ret = vfpm_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);

	if (ret != 1)
		return ret;
	return pci_runtime_pm_entry(pdev, -1);
}

static int pci_feature_pm_entry_with_wakeup(struct vfpm_pci_dev *pdev, uint32_t flags,
					    struct vfpm_ubuf *data, size_t argsz,
					    const struct vfpm_fds *in)
{
	struct vfio_device_low_power_entry_with_wakeup entry;
	int efd;
	int ret;

	ret = vfpm_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, sizeof(entry));
	if (ret != 1)
		return ret;
	ret = vfpm_ubuf_read(data, 0, &entry, sizeof(entry));
	if (ret)
		return ret;
	if (entry.wakeup_eventfd < 0)
		return -EINVAL;
	/* reserved is not checked, as in the kernel. */
	efd = vfpm_eventfd_get(in, entry.wakeup_eventfd);
	if (efd < 0)
		return efd;
	ret = pci_runtime_pm_entry(pdev, efd);
	if (ret)
		close(efd);
	return ret;
}

static int pci_feature_pm_exit(struct vfpm_pci_dev *pdev, uint32_t flags, size_t argsz)
{
	int ret = vfpm_check_feature(flags, argsz, VFIO_DEVICE_FEATURE_SET, 0);

	if (ret != 1)
		return ret;
	/*
	 * The wrapper has resumed the device; if it had suspended with a
	 * wakeup eventfd armed, the resume already signalled it and left low
	 * power, and this is a no-op.
	 */
	pthread_rwlock_wrlock(&pdev->memory_lock);
	pci_runtime_pm_exit_locked(pdev);
	pthread_rwlock_unlock(&pdev->memory_lock);
	return 0;
}

int pci_feature(struct vfpm_device *vdev, uint32_t flags, struct vfpm_ubuf *data, size_t argsz,
		const struct vfpm_fds *in)
{
	struct vfpm_pci_dev *pdev = to_pci(vdev);

	switch (flags & VFIO_DEVICE_FEATURE_MASK) {
	case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY:
		return pci_feature_pm_entry(pdev, flags, argsz);
	case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP:
		return pci_feature_pm_entry_with_wakeup(pdev, flags, data, argsz, in);
	case VFIO_DEVICE_FEATURE_LOW_POWER_EXIT:
		return pci_feature_pm_exit(pdev, flags, argsz);
	default:
		/* Includes PCI_VF_TOKEN: no vfpm device is an SR-IOV PF. */
		return -ENOTTY;
	}
}

void pci_restore_config_keeping_pmcsr(struct vfpm_pci_dev *pdev, const uint8_t *saved)
{
	uint32_t pmcsr;

	vfpm_pcicfg_host_read(&pdev->cfg, pdev->cfg.pm_cap + PCI_PM_CTRL, 2, &pmcsr);
	memcpy(pdev->cfg.live, saved, VFPM_PCICFG_SIZE);
	vfpm_pcicfg_host_write(&pdev->cfg, pdev->cfg.pm_cap + PCI_PM_CTRL, 2, pmcsr);
}

void pci_set_d0_preserving(struct vfpm_pci_dev *pdev)
{
	uint8_t saved[VFPM_PCICFG_SIZE];
	unsigned int events = 0;

	if (vfpm_pcicfg_power_state(&pdev->cfg) == VFPM_PCI_D0)
		return;
	/* vfio-pci restores the state it saved on D3hot entry; so do we. */
	memcpy(saved, pdev->cfg.live, sizeof(saved));
	vfpm_pcicfg_set_power_state(&pdev->cfg, VFPM_PCI_D0, &events);
	if (events & VFPM_PCICFG_EV_SOFT_RESET)
		pci_restore_config_keeping_pmcsr(pdev, saved);
	pci_bars_sync_mmap(pdev);
}

void pci_backend_follow_power_state(struct vfpm_pci_dev *pdev)
{
	bool d3;
	int err = 0;

	pthread_mutex_lock(&pdev->backend_lock);
	pthread_rwlock_rdlock(&pdev->memory_lock);
	d3 = vfpm_pcicfg_power_state(&pdev->cfg) == VFPM_PCI_D3HOT;
	pthread_rwlock_unlock(&pdev->memory_lock);
	if (d3 && !pdev->d3_stopped) {
		if (pdev->ops.runtime_suspend)
			err = pdev->ops.runtime_suspend(pdev);
		pdev->d3_stopped = !err;
		if (err)
			vfpm_logf(VFPM_LOG_WARNING, "%s: the model would not stop for D3hot (%s); "
				  "its backend goes on running", pdev->name, strerror(-err));
		else
			vfpm_logf(VFPM_LOG_DEBUG, "%s: D3hot: backend stopped", pdev->name);
	} else if (!d3 && pdev->d3_stopped) {
		if (pdev->ops.runtime_resume)
			err = pdev->ops.runtime_resume(pdev);
		pdev->d3_stopped = false;
		if (err)
			vfpm_logf(VFPM_LOG_ERR, "%s: the model did not restart in D0 (%s)",
				  pdev->name, strerror(-err));
		else
			vfpm_logf(VFPM_LOG_DEBUG, "%s: D0: backend restarted", pdev->name);
	}
	pthread_mutex_unlock(&pdev->backend_lock);
}

int pci_runtime_suspend(struct vfpm_device *vdev)
{
	struct vfpm_pci_dev *pdev = to_pci(vdev);
	int ret = 0;

	pthread_mutex_lock(&pdev->backend_lock);
	/* The user may have put the function in D3hot before asking for low power. */
	pthread_rwlock_wrlock(&pdev->memory_lock);
	pci_set_d0_preserving(pdev);
	pthread_rwlock_unlock(&pdev->memory_lock);

	/* Mask INTx across the suspend only if it is we who mask it. */
	pdev->pm_intx_masked = vfpm_pci_irq_type(&pdev->irqs) == VFIO_PCI_INTX_IRQ_INDEX &&
			       vfpm_pci_irq_intx_mask(&pdev->irqs);

	/* A backend D3hot stopped is stopped already: it now sleeps for runtime PM. */
	if (pdev->d3_stopped)
		pdev->d3_stopped = false;
	else if (pdev->ops.runtime_suspend)
		ret = pdev->ops.runtime_suspend(pdev);
	pthread_mutex_unlock(&pdev->backend_lock);
	if (ret && pdev->pm_intx_masked) {
		vfpm_pci_irq_intx_unmask(&pdev->irqs);
		pdev->pm_intx_masked = false;
	}
	return ret;
}

int pci_runtime_resume(struct vfpm_device *vdev)
{
	struct vfpm_pci_dev *pdev = to_pci(vdev);
	int ret = 0;

	pthread_mutex_lock(&pdev->backend_lock);
	if (pdev->ops.runtime_resume)
		ret = pdev->ops.runtime_resume(pdev);
	pthread_mutex_unlock(&pdev->backend_lock);
	if (ret)
		return ret;

	/* A resume with a wakeup eventfd armed tells the user and leaves low power. */
	pthread_rwlock_wrlock(&pdev->memory_lock);
	if (pdev->pm_wake_eventfd >= 0) {
		int efd = pci_runtime_pm_disengage(pdev);

		vfpm_eventfd_signal(efd);
		close(efd);
	}
	pthread_rwlock_unlock(&pdev->memory_lock);

	if (pdev->pm_intx_masked) {
		vfpm_pci_irq_intx_unmask(&pdev->irqs);
		pdev->pm_intx_masked = false;
	}
	return 0;
}

bool vfpm_pci_low_power_engaged(struct vfpm_pci_dev *pdev)
{
	bool engaged;

	pthread_rwlock_rdlock(&pdev->memory_lock);
	engaged = pdev->pm_runtime_engaged;
	pthread_rwlock_unlock(&pdev->memory_lock);
	return engaged;
}

int vfpm_pci_wake(struct vfpm_pci_dev *pdev)
{
	int ret = vfpm_pm_request_resume(vfpm_pci_pm(pdev));

	return ret < 0 ? ret : 0;
}

/* A backend event in D3hot: PME_Status, when the user enabled PME. */
static void pci_signal_pme(struct vfpm_pci_dev *pdev)
{
	bool set = false;

	pthread_rwlock_wrlock(&pdev->memory_lock);
	if (vfpm_pcicfg_power_state(&pdev->cfg) == VFPM_PCI_D3HOT &&
	    vfpm_pcicfg_pme_enabled(&pdev->cfg))
		set = vfpm_pcicfg_set_pme_status(&pdev->cfg) == 0;
	pthread_rwlock_unlock(&pdev->memory_lock);
	if (set)
		vfpm_logf(VFPM_LOG_DEBUG, "%s: backend event in D3hot: PME_Status set", pdev->name);
}

int vfpm_pci_wake_get(struct vfpm_pci_dev *pdev)
{
	int ret;

	pci_signal_pme(pdev);
	ret = vfpm_pm_get(vfpm_pci_pm(pdev));
	return ret < 0 ? ret : 0;
}

void vfpm_pci_wake_put(struct vfpm_pci_dev *pdev)
{
	vfpm_pm_put(vfpm_pci_pm(pdev));
}

void pci_power_info(struct vfpm_device *vdev, struct vfpm_power_info *info)
{
	struct vfpm_pci_dev *pdev = to_pci(vdev);

	pthread_rwlock_rdlock(&pdev->memory_lock);
	info->low_power = pdev->pm_runtime_engaged;
	info->wakeup_armed = pdev->pm_wake_eventfd >= 0;
	pthread_rwlock_unlock(&pdev->memory_lock);
}
