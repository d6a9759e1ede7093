// SPDX-License-Identifier: MIT
/*
 * What the configuration space says now: capabilities, power state, command
 * bits, BARs, MSI and MSI-X state (queries of the live bytes, no side effects).
 */
#include "config.h"

#include <errno.h>

int vfpm_pcicfg_find_cap(const struct vfpm_pcicfg *cfg, uint8_t cap_id,
			 uint16_t *offset)
{
	unsigned int off, hops = 0;

	if (!cfg)
		return -EINVAL;
	if (!(get16(&cfg->live[PCI_STATUS]) & PCI_STATUS_CAP_LIST))
		return -ENOENT;
	/* Bounded walk: at most one hop per possible dword position. */
	for (off = cfg->live[PCI_CAPABILITY_LIST] & ~3u;
	     off >= PCI_STD_HEADER_SIZEOF && hops < PCI_CFG_SPACE_SIZE / 4;
	     off = cfg->live[off + PCI_CAP_LIST_NEXT] & ~3u, hops++) {
		if (cfg->live[off + PCI_CAP_LIST_ID] == cap_id) {
			if (offset)
				*offset = (uint16_t)off;
			return 0;
		}
	}
	return -ENOENT;
}

enum vfpm_pci_power vfpm_pcicfg_power_state(const struct vfpm_pcicfg *cfg)
{
	return cfg->pm_cap && (cfg->live[cfg->pm_cap + PCI_PM_CTRL] &
			       PCI_PM_CTRL_STATE_MASK) == VFPM_PCI_D3HOT ?
	       VFPM_PCI_D3HOT : VFPM_PCI_D0;
}

bool vfpm_pcicfg_pme_enabled(const struct vfpm_pcicfg *cfg)
{
	return cfg->pm_cap && (get16(&cfg->live[cfg->pm_cap + PCI_PM_CTRL]) &
			       PCI_PM_CTRL_PME_ENABLE);
}

static bool command_has(const struct vfpm_pcicfg *cfg, uint16_t bit)
{
	return get16(&cfg->live[PCI_COMMAND]) & bit;
}

bool vfpm_pcicfg_memory_enabled(const struct vfpm_pcicfg *cfg)
{
	return command_has(cfg, PCI_COMMAND_MEMORY);
}

bool vfpm_pcicfg_io_enabled(const struct vfpm_pcicfg *cfg)
{
	return command_has(cfg, PCI_COMMAND_IO);
}

bool vfpm_pcicfg_bus_master(const struct vfpm_pcicfg *cfg)
{
	return command_has(cfg, PCI_COMMAND_MASTER);
}

bool vfpm_pcicfg_intx_disabled(const struct vfpm_pcicfg *cfg)
{
	return command_has(cfg, PCI_COMMAND_INTX_DISABLE);
}

void vfpm_pcicfg_set_intx_status(struct vfpm_pcicfg *cfg, bool asserted)
{
	uint16_t status = get16(&cfg->live[PCI_STATUS]);

	status = asserted ? status | PCI_STATUS_INTERRUPT : status & ~PCI_STATUS_INTERRUPT;
	put16(&cfg->live[PCI_STATUS], status);
}

int vfpm_pcicfg_get_bar(const struct vfpm_pcicfg *cfg, unsigned int index,
			struct vfpm_pcicfg_bar_desc *desc, uint64_t *address)
{
	const struct vfpm_pcicfg_bar *bar;
	const uint8_t *reg;
	uint64_t addr = 0;

	if (!cfg || index >= PCI_STD_NUM_BARS)
		return -EINVAL;
	bar = &cfg->bars[index];
	reg = &cfg->live[PCI_BASE_ADDRESS_0 + 4 * index];
	if (bar->type == VFPM_PCICFG_BAR_IO)
		addr = get_le32(reg) & (uint32_t)PCI_BASE_ADDRESS_IO_MASK;
	else if (bar->type == VFPM_PCICFG_BAR_MEM32 ||
		 bar->type == VFPM_PCICFG_BAR_MEM64)
		addr = get_le32(reg) & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK;
	if (bar->type == VFPM_PCICFG_BAR_MEM64)
		addr |= (uint64_t)get_le32(reg + 4) << 32;
	if (desc)
		*desc = (struct vfpm_pcicfg_bar_desc){
			.type = bar->type,
			.size = bar->size,
			.prefetchable = bar->prefetchable,
		};
	if (address)
		*address = addr;
	return 0;
}

static uint16_t msi_flags(const struct vfpm_pcicfg *cfg)
{
	return cfg->msi_cap ? get16(&cfg->live[cfg->msi_cap + PCI_MSI_FLAGS]) : 0;
}

bool vfpm_pcicfg_msi_enabled(const struct vfpm_pcicfg *cfg)
{
	return msi_flags(cfg) & PCI_MSI_FLAGS_ENABLE;
}

unsigned int vfpm_pcicfg_msi_vectors(const struct vfpm_pcicfg *cfg)
{
	return cfg->msi_cap ?
	       1u << ((msi_flags(cfg) & PCI_MSI_FLAGS_QSIZE) >> 4) : 0;
}

int vfpm_pcicfg_msi_message(const struct vfpm_pcicfg *cfg, unsigned int vector,
			    uint64_t *address, uint32_t *data)
{
	unsigned int vectors;
	const uint8_t *cap;
	uint32_t base;

	if (!cfg || !address || !data)
		return -EINVAL;
	if (!cfg->msi_cap)
		return -ENOENT;
	vectors = vfpm_pcicfg_msi_vectors(cfg);
	if (vector >= vectors)
		return -EINVAL;
	cap = &cfg->live[cfg->msi_cap];
	*address = get_le32(cap + PCI_MSI_ADDRESS_LO) |
		   (uint64_t)get_le32(cap + PCI_MSI_ADDRESS_HI) << 32;
	/* With n vectors the function owns the low log2(n) data bits. */
	base = get16(cap + PCI_MSI_DATA_64);
	*data = (base & ~(vectors - 1)) | vector;
	return 0;
}

bool vfpm_pcicfg_msi_vector_masked(const struct vfpm_pcicfg *cfg,
				   unsigned int vector)
{
	if (!(msi_flags(cfg) & PCI_MSI_FLAGS_MASKBIT))
		return false;
	if (vector >= MSI_MAX_VECTORS)
		return true;
	return (get_le32(&cfg->live[cfg->msi_cap + PCI_MSI_MASK_64]) >> vector) & 1;
}

static uint16_t msix_flags(const struct vfpm_pcicfg *cfg)
{
	return cfg->msix_cap ?
	       get16(&cfg->live[cfg->msix_cap + PCI_MSIX_FLAGS]) : 0;
}

bool vfpm_pcicfg_msix_enabled(const struct vfpm_pcicfg *cfg)
{
	return msix_flags(cfg) & PCI_MSIX_FLAGS_ENABLE;
}

bool vfpm_pcicfg_msix_function_masked(const struct vfpm_pcicfg *cfg)
{
	return msix_flags(cfg) & PCI_MSIX_FLAGS_MASKALL;
}
