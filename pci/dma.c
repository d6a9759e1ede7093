// SPDX-License-Identifier: MIT
/*
 * DMA on the device: the model reaches its user's memory (the guest's RAM)
 * through the device core's DMA provider, as a bus master does, and only
 * while Bus Master Enable is on.
 */
#include "pci_internal.h"

#include <errno.h>
#include <string.h>

#include <linux/pci_regs.h>

bool pci_bus_master(struct vfpm_pci_dev *pdev)
{
	uint32_t cmd = 0;

	pthread_rwlock_rdlock(&pdev->memory_lock);
	vfpm_pcicfg_host_read(&pdev->cfg, PCI_COMMAND, 2, &cmd);
	pthread_rwlock_unlock(&pdev->memory_lock);
	return cmd & PCI_COMMAND_MASTER;
}

/* 0, or -EPERM: a function without Bus Master Enable issues no memory requests. */
static int pci_dma_allowed(struct vfpm_pci_dev *pdev)
{
	static struct vfpm_ratelimit rl;

	if (pci_bus_master(pdev))
		return 0;
	vfpm_logf_rl(&rl, VFPM_LOG_DEBUG, "%s: DMA refused: Bus Master Enable is off", pdev->name);
	return -EPERM;
}

static int pci_dma(struct vfpm_pci_dev *pdev, uint64_t iova, void *buf, size_t len, bool write)
{
	int err = pci_dma_allowed(pdev);

	return err ? err : vfpm_device_dma(pdev->vdev, iova, buf, len, write);
}

int vfpm_pci_dma_read(struct vfpm_pci_dev *pdev, uint64_t iova, void *buf, size_t len)
{
	return pci_dma(pdev, iova, buf, len, false);
}

int vfpm_pci_dma_write(struct vfpm_pci_dev *pdev, uint64_t iova, const void *buf, size_t len)
{
	return pci_dma(pdev, iova, (void *)buf, len, true);
}

int vfpm_pci_dma_map(struct vfpm_pci_dev *pdev, uint64_t iova, size_t len, int prot,
		     struct iovec *iov, unsigned int max, struct vfpm_dma_sg *sg)
{
	struct vfpm_dma_hold *hold;
	unsigned int nr;
	int err;

	if (!pdev || !sg)
		return -EINVAL;
	*sg = (struct vfpm_dma_sg){ .iov = iov };
	if (!len || !iov || !prot || (prot & ~(PROT_READ | PROT_WRITE)))
		return -EINVAL;
	err = pci_dma_allowed(pdev);
	if (!err)
		err = vfpm_device_dma_map(pdev->vdev, iova, len, prot, iov, max, &nr, &hold);
	if (err)
		return err;
	sg->nr_iov = nr;
	sg->priv = hold;
	return 0;
}

int vfpm_pci_dma_unmap(struct vfpm_pci_dev *pdev, struct vfpm_dma_sg *sg)
{
	struct vfpm_dma_hold *hold;

	if (!pdev || !sg || !sg->priv)
		return -EINVAL;
	hold = sg->priv;
	*sg = (struct vfpm_dma_sg){ 0 };
	return vfpm_device_dma_unmap(pdev->vdev, hold);
}
