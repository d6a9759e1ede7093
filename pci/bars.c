// SPDX-License-Identifier: MIT
/*
 * BAR memory and the revocation of the user's mappings.
 *
 * A mappable BAR is a memfd: the user maps it, and the model works on its own
 * mapping (`host`).  To revoke the user's mappings (low power, memory
 * disabled, D3hot) the memfd is truncated to zero, so every user access
 * faults with SIGBUS, while the contents move to anonymous memory mapped at
 * the same `host` address, so the model's pointer stays valid.  Restoring
 * grows the memfd again, copies the contents back and maps the memfd at
 * `host` again; the user's old mappings see the same bytes as before.
 */
#include "pci_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

bool pci_memory_enabled(struct vfpm_pci_dev *pdev)
{
	return vfpm_pcicfg_memory_enabled(&pdev->cfg) &&
	       vfpm_pcicfg_power_state(&pdev->cfg) == VFPM_PCI_D0;
}

static int bar_map_memfd(struct pci_bar *bar)
{
	char name[32];

	snprintf(name, sizeof(name), "vfpm-bar");
	bar->memfd = memfd_create(name, MFD_CLOEXEC);
	if (bar->memfd < 0)
		return -errno;
	if (ftruncate(bar->memfd, (off_t)bar->desc.size) < 0)
		return -errno;
	bar->host = mmap(NULL, bar->desc.size, PROT_READ | PROT_WRITE, MAP_SHARED, bar->memfd, 0);
	if (bar->host == MAP_FAILED) {
		bar->host = NULL;
		return -errno;
	}
	return 0;
}

int pci_bars_init(struct vfpm_pci_dev *pdev)
{
	for (unsigned int i = 0; i < 6; i++) {
		struct pci_bar *bar = &pdev->bars[i];
		int err;

		bar->memfd = -1;
		if (bar->desc.type == VFPM_PCI_BAR_NONE || !bar->desc.mappable)
			continue;
		err = bar_map_memfd(bar);
		if (err)
			return err;
	}
	return 0;
}

void pci_bars_release(struct vfpm_pci_dev *pdev)
{
	for (unsigned int i = 0; i < 6; i++) {
		struct pci_bar *bar = &pdev->bars[i];

		if (bar->host)
			munmap(bar->host, bar->desc.size);
		if (bar->memfd >= 0)
			close(bar->memfd);
		bar->host = NULL;
		bar->memfd = -1;
	}
}

/* Move the contents to anonymous memory at host, then empty the memfd. */
static int bar_revoke(struct pci_bar *bar)
{
	size_t size = bar->desc.size;
	void *anon = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (anon == MAP_FAILED)
		return -errno;
	memcpy(anon, bar->host, size);
	if (mremap(anon, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, bar->host) == MAP_FAILED) {
		int err = -errno;

		munmap(anon, size);
		return err;
	}
	if (ftruncate(bar->memfd, 0) < 0)
		return -errno;
	bar->revoked = true;
	return 0;
}

/* Grow the memfd, copy the contents back and map it at host again. */
static int bar_restore(struct pci_bar *bar)
{
	size_t size = bar->desc.size;
	void *file;

	if (ftruncate(bar->memfd, (off_t)size) < 0)
		return -errno;
	file = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, bar->memfd, 0);
	if (file == MAP_FAILED)
		return -errno;
	memcpy(file, bar->host, size);
	if (mremap(file, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, bar->host) == MAP_FAILED) {
		int err = -errno;

		munmap(file, size);
		return err;
	}
	bar->revoked = false;
	return 0;
}

int pci_bars_sync_mmap(struct vfpm_pci_dev *pdev)
{
	bool live = !pdev->pm_runtime_engaged && pci_memory_enabled(pdev);
	int ret = 0;

	for (unsigned int i = 0; i < 6; i++) {
		struct pci_bar *bar = &pdev->bars[i];
		int err = 0;

		if (bar->memfd < 0 || bar->revoked == !live)
			continue;
		err = live ? bar_restore(bar) : bar_revoke(bar);
		if (err && !ret)
			ret = err;
	}
	return ret;
}

void *vfpm_pci_bar_mem(struct vfpm_pci_dev *pdev, unsigned int bar)
{
	return bar < 6 ? pdev->bars[bar].host : NULL;
}

void vfpm_pci_mem_lock(struct vfpm_pci_dev *pdev)
{
	pthread_rwlock_rdlock(&pdev->memory_lock);
}

void vfpm_pci_mem_unlock(struct vfpm_pci_dev *pdev)
{
	pthread_rwlock_unlock(&pdev->memory_lock);
}
