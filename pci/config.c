// SPDX-License-Identifier: MIT
/*
 * PCI configuration space of one emulated function (see config.h).  A guest
 * write is a per-byte merge through the write and write-1-to-clear masks,
 * then the side effects of the few registers that have any (PMCSR, MSI
 * control, PCIe Device Control).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Command bits a type 0 function implements whatever its BARs are. */
#define COMMAND_BASE_WMASK (PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | \
			    PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE)
/* Status error bits: set by the device, cleared by writing 1. */
#define STATUS_RW1C (PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | \
		     PCI_STATUS_REC_TARGET_ABORT | PCI_STATUS_REC_MASTER_ABORT | \
		     PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY)
/* PMC version field value for PCI Power Management spec 1.2. */
#define PM_CAP_VERSION_1_2 3
#define PM_PME_CONTEXT (PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS)
/* A 64-bit MSI capability, with or without Mask and Pending. */
#define MSI_LEN_NO_MASK (PCI_MSI_DATA_64 + 2)
#define MSI_LEN_MASK (PCI_MSI_PENDING_64 + 4)
#define MSIX_MAX_VECTORS 2048
/* The whole version 2 PCI Express capability, Slot Status 2 included. */
#define PCIE_V2_LEN (PCI_EXP_SLTSTA2 + 2)
#define PCIE_CAP_VERSION 2
#define PCIE_MAX_PAYLOAD_4096B 5
#define DEVCTL_WMASK (PCI_EXP_DEVCTL_CERE | PCI_EXP_DEVCTL_NFERE | \
		      PCI_EXP_DEVCTL_FERE | PCI_EXP_DEVCTL_URRE | \
		      PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_PAYLOAD | \
		      PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ)
/* Power-on Device Control values the PCIe spec gives. */
#define DEVCTL_DEFAULT (PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN | \
			PCI_EXP_DEVCTL_READRQ_512B)
#define DEVSTA_RW1C (PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_NFED | \
		     PCI_EXP_DEVSTA_FED | PCI_EXP_DEVSTA_URD)
#define LNKCTL_WMASK (PCI_EXP_LNKCTL_RCB | PCI_EXP_LNKCTL_CCC | \
		      PCI_EXP_LNKCTL_ES)
#define LNKCAP_MLW_X1 (1u << 4)

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Sets a register's power-on (and current) value and its guest masks. */
static void define_reg(struct vfpm_pcicfg *cfg, unsigned int off,
		       unsigned int size, uint32_t value, uint32_t wmask,
		       uint32_t w1c)
{
	vfpm_pcicfg_define_reg(cfg, off, size, value, wmask, w1c);
}

void vfpm_pcicfg_define_reg(struct vfpm_pcicfg *cfg, unsigned int off, unsigned int size,
			    uint32_t value, uint32_t wmask, uint32_t w1c)
{
	put_le(&cfg->power_on[off], size, value);
	put_le(&cfg->live[off], size, value);
	put_le(&cfg->wmask[off], size, wmask);
	put_le(&cfg->w1cmask[off], size, w1c);
}

/* ---- building ---- */

int vfpm_pcicfg_init(struct vfpm_pcicfg *cfg, const struct vfpm_pcicfg_ids *ids)
{
	struct vfpm_pcicfg_layout *layout;

	if (!cfg || !ids)
		return -EINVAL;
	/* 0xffff is what a read of an absent function returns. */
	if (ids->vendor_id == 0xffff || ids->class_code > 0xffffff ||
	    ids->interrupt_pin > 4)
		return -EINVAL;

	layout = calloc(1, sizeof(*layout));
	if (!layout)
		return -ENOMEM;
	memset(cfg, 0, sizeof(*cfg));
	cfg->layout = layout;
	cfg->power_on = layout->power_on;
	cfg->wmask = layout->wmask;
	cfg->w1cmask = layout->w1cmask;
	define_reg(cfg, PCI_VENDOR_ID, 2, ids->vendor_id, 0, 0);
	define_reg(cfg, PCI_DEVICE_ID, 2, ids->device_id, 0, 0);
	define_reg(cfg, PCI_COMMAND, 2, 0, COMMAND_BASE_WMASK, 0);
	define_reg(cfg, PCI_STATUS, 2, 0, 0, STATUS_RW1C);
	define_reg(cfg, PCI_CLASS_REVISION, 4,
		   ids->class_code << 8 | ids->revision, 0, 0);
	define_reg(cfg, PCI_CACHE_LINE_SIZE, 1, 0, 0xff, 0);
	define_reg(cfg, PCI_HEADER_TYPE, 1, PCI_HEADER_TYPE_NORMAL, 0, 0);
	define_reg(cfg, PCI_SUBSYSTEM_VENDOR_ID, 2, ids->subsystem_vendor_id,
		   0, 0);
	define_reg(cfg, PCI_SUBSYSTEM_ID, 2, ids->subsystem_id, 0, 0);
	define_reg(cfg, PCI_INTERRUPT_LINE, 1, 0, 0xff, 0);
	define_reg(cfg, PCI_INTERRUPT_PIN, 1, ids->interrupt_pin, 0, 0);
	cfg->cap_free = PCI_STD_HEADER_SIZEOF;
	return 0;
}

static int check_bar_desc(unsigned int index,
			  const struct vfpm_pcicfg_bar_desc *desc)
{
	uint64_t size = desc->size;

	if (!is_pow2(size))
		return -EINVAL;
	switch (desc->type) {
	case VFPM_PCICFG_BAR_IO:
		return size >= 4 && size <= 256 && !desc->prefetchable ?
		       0 : -EINVAL;
	case VFPM_PCICFG_BAR_MEM32:
		return size >= 16 && size <= (UINT64_C(1) << 31) ? 0 : -EINVAL;
	case VFPM_PCICFG_BAR_MEM64:
		return size >= 16 && size <= (UINT64_C(1) << 63) &&
		       index + 1 < PCI_STD_NUM_BARS ? 0 : -EINVAL;
	default:
		return -EINVAL;
	}
}

int vfpm_pcicfg_set_bar(struct vfpm_pcicfg *cfg, unsigned int index,
			const struct vfpm_pcicfg_bar_desc *desc)
{
	unsigned int reg = PCI_BASE_ADDRESS_0 + 4 * index;
	bool is64 = desc && desc->type == VFPM_PCICFG_BAR_MEM64;
	uint64_t addr_mask;
	uint32_t flags;
	uint16_t cmd_bit;
	int ret;

	if (!cfg || !desc || index >= PCI_STD_NUM_BARS)
		return -EINVAL;
	ret = check_bar_desc(index, desc);
	if (ret)
		return ret;
	if (cfg->bars[index].type != VFPM_PCICFG_BAR_NONE ||
	    (is64 && cfg->bars[index + 1].type != VFPM_PCICFG_BAR_NONE))
		return -EBUSY;

	/* The writable bits are the address bits above the size: sizing
	 * (write all ones, read back) then yields ~(size - 1) | flags. */
	addr_mask = ~(desc->size - 1);
	if (desc->type == VFPM_PCICFG_BAR_IO) {
		flags = PCI_BASE_ADDRESS_SPACE_IO;
		addr_mask &= (uint32_t)PCI_BASE_ADDRESS_IO_MASK;
		cmd_bit = PCI_COMMAND_IO;
	} else {
		flags = PCI_BASE_ADDRESS_SPACE_MEMORY |
			(is64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 :
				PCI_BASE_ADDRESS_MEM_TYPE_32) |
			(desc->prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
		addr_mask &= is64 ? ~UINT64_C(0xf) :
				    (uint32_t)PCI_BASE_ADDRESS_MEM_MASK;
		cmd_bit = PCI_COMMAND_MEMORY;
	}
	define_reg(cfg, reg, 4, flags, (uint32_t)addr_mask, 0);
	if (is64) {
		define_reg(cfg, reg + 4, 4, 0, (uint32_t)(addr_mask >> 32), 0);
		cfg->bars[index + 1].type = VFPM_PCICFG_BAR_MEM64_HIGH;
	}
	/* Command decode enables exist only for spaces the function has. */
	put16(&cfg->wmask[PCI_COMMAND],
	      get16(&cfg->wmask[PCI_COMMAND]) | cmd_bit);
	cfg->bars[index] = (struct vfpm_pcicfg_bar){
		.type = desc->type,
		.size = desc->size,
		.prefetchable = desc->prefetchable,
	};
	return 0;
}

/*
 * Reserves len bytes for a capability and links it at the end of the list.
 * Returns its offset (also stored in *offset when not NULL) or -errno.
 */
static int alloc_cap(struct vfpm_pcicfg *cfg, uint8_t cap_id, unsigned int len,
		     uint16_t *offset)
{
	if (vfpm_pcicfg_find_cap(cfg, cap_id, NULL) == 0)
		return -EEXIST;
	return vfpm_pcicfg_link_cap(cfg, cap_id, len, offset);
}

int vfpm_pcicfg_link_cap(struct vfpm_pcicfg *cfg, uint8_t cap_id, unsigned int len,
			 uint16_t *offset)
{
	unsigned int off = cfg->cap_free;

	if (off + len > PCI_CFG_SPACE_SIZE)
		return -ENOSPC;

	define_reg(cfg, off + PCI_CAP_LIST_ID, 1, cap_id, 0, 0);
	define_reg(cfg, off + PCI_CAP_LIST_NEXT, 1, 0, 0, 0);
	if (cfg->cap_last) {
		define_reg(cfg, cfg->cap_last + PCI_CAP_LIST_NEXT, 1, off, 0, 0);
	} else {
		define_reg(cfg, PCI_CAPABILITY_LIST, 1, off, 0, 0);
		define_reg(cfg, PCI_STATUS, 2, PCI_STATUS_CAP_LIST, 0,
			   STATUS_RW1C);
	}
	cfg->cap_last = (uint16_t)off;
	/* Capabilities start dword-aligned. */
	cfg->cap_free = (uint16_t)((off + len + 3) & ~3u);
	if (offset)
		*offset = (uint16_t)off;
	return (int)off;
}

int vfpm_pcicfg_add_pm_cap(struct vfpm_pcicfg *cfg,
			   const struct vfpm_pcicfg_pm_params *params,
			   uint16_t *offset)
{
	uint16_t pme, pmcsr, wmask, w1c;
	int off;

	if (!cfg || !params)
		return -EINVAL;
	pme = params->pme_support;
	if (pme & ~(PCI_PM_CAP_PME_D0 | PCI_PM_CAP_PME_D3hot))
		return -EINVAL;
	off = alloc_cap(cfg, PCI_CAP_ID_PM, PCI_PM_SIZEOF, offset);
	if (off < 0)
		return off;

	/* No D1/D2 support bits: those states are not implemented. */
	define_reg(cfg, off + PCI_PM_PMC, 2, PM_CAP_VERSION_1_2 | pme, 0, 0);
	pmcsr = params->no_soft_reset ? PCI_PM_CTRL_NO_SOFT_RESET : 0;
	wmask = PCI_PM_CTRL_STATE_MASK | (pme ? PCI_PM_CTRL_PME_ENABLE : 0);
	w1c = pme ? PCI_PM_CTRL_PME_STATUS : 0;
	define_reg(cfg, off + PCI_PM_CTRL, 2, pmcsr, wmask, w1c);
	cfg->pm_cap = off;
	return 0;
}

int vfpm_pcicfg_add_msi_cap(struct vfpm_pcicfg *cfg,
			    const struct vfpm_pcicfg_msi_params *params,
			    uint16_t *offset)
{
	unsigned int len, mmc;
	uint32_t vector_mask;
	uint16_t flags;
	int off;

	if (!cfg || !params)
		return -EINVAL;
	if (!is_pow2(params->vectors) || params->vectors > MSI_MAX_VECTORS)
		return -EINVAL;
	len = params->per_vector_mask ? MSI_LEN_MASK : MSI_LEN_NO_MASK;
	off = alloc_cap(cfg, PCI_CAP_ID_MSI, len, offset);
	if (off < 0)
		return off;

	mmc = (unsigned int)__builtin_ctz(params->vectors);	/* a power of 2 */
	flags = (uint16_t)(PCI_MSI_FLAGS_64BIT | mmc << 1 |
			   (params->per_vector_mask ? PCI_MSI_FLAGS_MASKBIT : 0));
	define_reg(cfg, off + PCI_MSI_FLAGS, 2, flags,
		   PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE, 0);
	/* The message address is dword-aligned. */
	define_reg(cfg, off + PCI_MSI_ADDRESS_LO, 4, 0, ~3u, 0);
	define_reg(cfg, off + PCI_MSI_ADDRESS_HI, 4, 0, ~0u, 0);
	define_reg(cfg, off + PCI_MSI_DATA_64, 2, 0, 0xffff, 0);
	if (params->per_vector_mask) {
		vector_mask = params->vectors == 32 ?
			      ~0u : (1u << params->vectors) - 1;
		define_reg(cfg, off + PCI_MSI_MASK_64, 4, 0, vector_mask, 0);
		/* Pending bits are set by the device only. */
		define_reg(cfg, off + PCI_MSI_PENDING_64, 4, 0, 0, 0);
	}
	cfg->msi_cap = off;
	cfg->msi_len = (uint16_t)len;
	return 0;
}

/* Whether [offset, offset + len) lies inside memory BAR bir. */
static bool fits_in_memory_bar(const struct vfpm_pcicfg *cfg, uint8_t bir,
			       uint32_t offset, uint64_t len)
{
	const struct vfpm_pcicfg_bar *bar;

	if (bir >= PCI_STD_NUM_BARS)
		return false;
	bar = &cfg->bars[bir];
	if (bar->type != VFPM_PCICFG_BAR_MEM32 &&
	    bar->type != VFPM_PCICFG_BAR_MEM64)
		return false;
	return offset <= bar->size && len <= bar->size - offset;
}

int vfpm_pcicfg_add_msix_cap(struct vfpm_pcicfg *cfg,
			     const struct vfpm_pcicfg_msix_params *params,
			     uint16_t *offset)
{
	uint64_t table_len, pba_len;
	int off;

	if (!cfg || !params)
		return -EINVAL;
	if (params->vectors < 1 || params->vectors > MSIX_MAX_VECTORS ||
	    (params->table_offset & PCI_MSIX_TABLE_BIR) ||
	    (params->pba_offset & PCI_MSIX_PBA_BIR))
		return -EINVAL;
	table_len = (uint64_t)params->vectors * PCI_MSIX_ENTRY_SIZE;
	pba_len = ((params->vectors + 63) / 64) * 8;
	if (!fits_in_memory_bar(cfg, params->table_bir, params->table_offset,
				table_len) ||
	    !fits_in_memory_bar(cfg, params->pba_bir, params->pba_offset,
				pba_len))
		return -EINVAL;
	if (params->table_bir == params->pba_bir &&
	    params->table_offset < params->pba_offset + pba_len &&
	    params->pba_offset < params->table_offset + table_len)
		return -EINVAL;
	off = alloc_cap(cfg, PCI_CAP_ID_MSIX, PCI_CAP_MSIX_SIZEOF, offset);
	if (off < 0)
		return off;

	define_reg(cfg, off + PCI_MSIX_FLAGS, 2, params->vectors - 1,
		   PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 0);
	define_reg(cfg, off + PCI_MSIX_TABLE, 4,
		   params->table_offset | params->table_bir, 0, 0);
	define_reg(cfg, off + PCI_MSIX_PBA, 4,
		   params->pba_offset | params->pba_bir, 0, 0);
	cfg->msix_cap = off;
	return 0;
}

int vfpm_pcicfg_add_pcie_cap(struct vfpm_pcicfg *cfg,
			     const struct vfpm_pcicfg_pcie_params *params,
			     uint16_t *offset)
{
	uint32_t devcap;
	int off;

	if (!cfg || !params || params->max_payload > PCIE_MAX_PAYLOAD_4096B)
		return -EINVAL;
	off = alloc_cap(cfg, PCI_CAP_ID_EXP, PCIE_V2_LEN, offset);
	if (off < 0)
		return off;

	define_reg(cfg, off + PCI_EXP_FLAGS, 2,
		   PCIE_CAP_VERSION | PCI_EXP_TYPE_ENDPOINT << 4, 0, 0);
	devcap = params->max_payload | PCI_EXP_DEVCAP_RBER |
		 (params->flr ? PCI_EXP_DEVCAP_FLR : 0);
	define_reg(cfg, off + PCI_EXP_DEVCAP, 4, devcap, 0, 0);
	/* Initiate FLR is not stored (it reads 0); the write is trapped. */
	define_reg(cfg, off + PCI_EXP_DEVCTL, 2, DEVCTL_DEFAULT, DEVCTL_WMASK, 0);
	define_reg(cfg, off + PCI_EXP_DEVSTA, 2, 0, 0, DEVSTA_RW1C);
	define_reg(cfg, off + PCI_EXP_LNKCAP, 4,
		   PCI_EXP_LNKCAP_SLS_2_5GB | LNKCAP_MLW_X1, 0, 0);
	define_reg(cfg, off + PCI_EXP_LNKCTL, 2, 0, LNKCTL_WMASK, 0);
	define_reg(cfg, off + PCI_EXP_LNKSTA, 2,
		   PCI_EXP_LNKSTA_CLS_2_5GB | PCI_EXP_LNKSTA_NLW_X1, 0, 0);
	define_reg(cfg, off + PCI_EXP_LNKCAP2, 4, PCI_EXP_LNKCAP2_SLS_2_5GB, 0, 0);
	define_reg(cfg, off + PCI_EXP_LNKCTL2, 2, PCI_EXP_LNKCTL2_TLS_2_5GT, 0, 0);
	cfg->pcie_cap = off;
	return 0;
}

/* ---- resets and power state ---- */

void vfpm_pcicfg_reset(struct vfpm_pcicfg *cfg)
{
	memcpy(cfg->live, cfg->power_on, sizeof(cfg->live));
}

/*
 * The internal reset of a D3hot -> D0 transition with NoSoftReset clear:
 * a conventional reset that keeps the PME context, so software can still
 * find out that this function signalled the wake-up.
 */
static void soft_reset(struct vfpm_pcicfg *cfg)
{
	uint8_t *pmcsr = &cfg->live[cfg->pm_cap + PCI_PM_CTRL];
	uint16_t pme_context = get16(pmcsr) & PM_PME_CONTEXT;

	vfpm_pcicfg_reset(cfg);
	put16(pmcsr, get16(pmcsr) | pme_context);
}

/*
 * Function Level Reset: a conventional reset except for the fields that
 * control the link, which the PCIe spec says FLR must leave alone.
 */
static void function_level_reset(struct vfpm_pcicfg *cfg)
{
	uint8_t *devctl = &cfg->live[cfg->pcie_cap + PCI_EXP_DEVCTL];
	uint8_t *lnkctl = &cfg->live[cfg->pcie_cap + PCI_EXP_LNKCTL];
	uint16_t payload = get16(devctl) & PCI_EXP_DEVCTL_PAYLOAD;
	uint16_t link = get16(lnkctl);

	vfpm_pcicfg_reset(cfg);
	put16(devctl, (uint16_t)((get16(devctl) & ~PCI_EXP_DEVCTL_PAYLOAD) |
				 payload));
	put16(lnkctl, link);
}

/* PMCSR already holds the new state; carry out the move from old_state. */
static unsigned int power_transition(struct vfpm_pcicfg *cfg,
				     unsigned int old_state)
{
	uint16_t pmcsr = get16(&cfg->live[cfg->pm_cap + PCI_PM_CTRL]);
	unsigned int new_state = pmcsr & PCI_PM_CTRL_STATE_MASK;

	if (new_state == old_state)
		return 0;
	if (old_state == VFPM_PCI_D3HOT && new_state == VFPM_PCI_D0 &&
	    !(pmcsr & PCI_PM_CTRL_NO_SOFT_RESET)) {
		soft_reset(cfg);
		return VFPM_PCICFG_EV_POWER_STATE | VFPM_PCICFG_EV_SOFT_RESET;
	}
	return VFPM_PCICFG_EV_POWER_STATE;
}

int vfpm_pcicfg_set_power_state(struct vfpm_pcicfg *cfg,
				enum vfpm_pci_power state,
				unsigned int *events)
{
	unsigned int old_state, ev = 0;
	uint8_t *pmcsr;

	if (!cfg || (state != VFPM_PCI_D0 && state != VFPM_PCI_D3HOT))
		return -EINVAL;
	if (cfg->pm_cap) {
		pmcsr = &cfg->live[cfg->pm_cap + PCI_PM_CTRL];
		old_state = *pmcsr & PCI_PM_CTRL_STATE_MASK;
		*pmcsr = (uint8_t)((*pmcsr & ~PCI_PM_CTRL_STATE_MASK) | state);
		ev = power_transition(cfg, old_state);
	} else if (state != VFPM_PCI_D0) {
		return -EOPNOTSUPP;
	}
	if (events)
		*events = ev;
	return 0;
}

int vfpm_pcicfg_set_pme_status(struct vfpm_pcicfg *cfg)
{
	uint16_t from_state;
	uint8_t *pmcsr;

	if (!cfg)
		return -EINVAL;
	from_state = vfpm_pcicfg_power_state(cfg) == VFPM_PCI_D0 ?
		     PCI_PM_CAP_PME_D0 : PCI_PM_CAP_PME_D3hot;
	if (!cfg->pm_cap ||
	    !(get16(&cfg->live[cfg->pm_cap + PCI_PM_PMC]) & from_state))
		return -EOPNOTSUPP;
	pmcsr = &cfg->live[cfg->pm_cap + PCI_PM_CTRL];
	put16(pmcsr, get16(pmcsr) | PCI_PM_CTRL_PME_STATUS);
	return 0;
}

/* ---- accesses ---- */

/* One register access: size 1, 2 or 4, inside the space, within a dword. */
static bool valid_access(uint64_t offset, unsigned int size)
{
	return (size == 1 || size == 2 || size == 4) &&
	       offset < VFPM_PCICFG_SIZE && offset <= VFPM_PCICFG_SIZE - size &&
	       (offset & 3) + size <= 4;
}

static bool covers(unsigned int off, unsigned int size, unsigned int byte)
{
	return byte >= off && byte < off + size;
}

/* Which event a guest-visible change of the byte at off stands for. */
static unsigned int event_of_byte(const struct vfpm_pcicfg *cfg,
				  unsigned int off)
{
	if (covers(PCI_COMMAND, 2, off))
		return VFPM_PCICFG_EV_COMMAND;
	if (off >= PCI_BASE_ADDRESS_0 && off < PCI_BASE_ADDRESS_5 + 4)
		return VFPM_PCICFG_EV_BAR;
	if (cfg->msi_cap && covers(cfg->msi_cap + PCI_MSI_FLAGS,
				   cfg->msi_len - PCI_MSI_FLAGS, off))
		return VFPM_PCICFG_EV_MSI;
	if (cfg->msix_cap && covers(cfg->msix_cap + PCI_MSIX_FLAGS, 2, off))
		return VFPM_PCICFG_EV_MSIX;
	return 0;
}

/* Software may not enable more MSI vectors than the function can send. */
static void clamp_msi_enabled_vectors(struct vfpm_pcicfg *cfg)
{
	uint8_t *reg = &cfg->live[cfg->msi_cap + PCI_MSI_FLAGS];
	uint16_t flags = get16(reg);
	unsigned int capable = (flags & PCI_MSI_FLAGS_QMASK) >> 1;
	unsigned int enabled = (flags & PCI_MSI_FLAGS_QSIZE) >> 4;

	if (enabled > capable)
		put16(reg, (uint16_t)((flags & ~PCI_MSI_FLAGS_QSIZE) |
				      capable << 4));
}

/* A checked guest write of one register piece; returns the events. */
static unsigned int guest_write_piece(struct vfpm_pcicfg *cfg, unsigned int off,
				      unsigned int size, uint32_t value)
{
	unsigned int pmcsr_off = cfg->pm_cap + PCI_PM_CTRL;
	unsigned int flr_off = cfg->pcie_cap + PCI_EXP_DEVCTL + 1;
	unsigned int events = 0, old_state = 0;
	uint8_t before[4];

	memcpy(before, &cfg->live[off], size);
	for (unsigned int i = 0; i < size; i++) {
		uint8_t in = (uint8_t)(value >> (8 * i));
		uint8_t *reg = &cfg->live[off + i];

		*reg = (uint8_t)((*reg & ~cfg->wmask[off + i]) |
				 (in & cfg->wmask[off + i]));
		*reg &= (uint8_t)~(in & cfg->w1cmask[off + i]);
	}

	if (cfg->msi_cap && covers(off, size, cfg->msi_cap + PCI_MSI_FLAGS))
		clamp_msi_enabled_vectors(cfg);
	for (unsigned int i = 0; i < size; i++)
		if (cfg->live[off + i] != before[i])
			events |= event_of_byte(cfg, off + i);

	if (cfg->pm_cap && covers(off, size, pmcsr_off)) {
		uint8_t *reg = &cfg->live[pmcsr_off];
		unsigned int wanted = *reg & PCI_PM_CTRL_STATE_MASK;

		old_state = before[pmcsr_off - off] & PCI_PM_CTRL_STATE_MASK;
		/* Unsupported states are discarded, as the PM spec requires. */
		if (wanted != VFPM_PCI_D0 && wanted != VFPM_PCI_D3HOT)
			*reg = (uint8_t)((*reg & ~PCI_PM_CTRL_STATE_MASK) |
					 old_state);
		events |= power_transition(cfg, old_state);
	}

	if (cfg->pcie_cap && covers(off, size, flr_off) &&
	    ((value >> (8 * (flr_off - off))) & (PCI_EXP_DEVCTL_BCR_FLR >> 8)) &&
	    (get_le32(&cfg->live[cfg->pcie_cap + PCI_EXP_DEVCAP]) &
	     PCI_EXP_DEVCAP_FLR)) {
		function_level_reset(cfg);
		events |= VFPM_PCICFG_EV_FLR;
	}
	return events;
}

int vfpm_pcicfg_host_read(const struct vfpm_pcicfg *cfg, uint64_t offset,
			  unsigned int size, uint32_t *value)
{
	if (!cfg || !value || !valid_access(offset, size))
		return -EINVAL;
	*value = get_le(&cfg->live[offset], size);
	return 0;
}

int vfpm_pcicfg_host_write(struct vfpm_pcicfg *cfg, uint64_t offset,
			   unsigned int size, uint32_t value)
{
	if (!cfg || !valid_access(offset, size))
		return -EINVAL;
	put_le(&cfg->live[offset], size, value);
	return 0;
}

/* Reads have no side effects, so the guest sees what the host sees. */
int vfpm_pcicfg_guest_read(const struct vfpm_pcicfg *cfg, uint64_t offset,
			   unsigned int size, uint32_t *value)
{
	return vfpm_pcicfg_host_read(cfg, offset, size, value);
}

int vfpm_pcicfg_guest_write(struct vfpm_pcicfg *cfg, uint64_t offset,
			    unsigned int size, uint32_t value,
			    unsigned int *events)
{
	unsigned int ev;

	if (!cfg || !valid_access(offset, size))
		return -EINVAL;
	if (size < 4)
		value &= (1u << (8 * size)) - 1;
	ev = guest_write_piece(cfg, (unsigned int)offset, size, value);
	if (events)
		*events = ev;
	return 0;
}

/* Any byte range inside the space; written so offset + count cannot wrap. */
static bool valid_range(uint64_t offset, const void *buf, size_t count)
{
	return (buf || !count) && offset <= VFPM_PCICFG_SIZE &&
	       count <= VFPM_PCICFG_SIZE - offset;
}

/* The largest naturally aligned access at off that count still allows. */
static unsigned int piece_size(uint64_t off, size_t count)
{
	if (!(off & 3) && count >= 4)
		return 4;
	if (!(off & 1) && count >= 2)
		return 2;
	return 1;
}

/*
 * Reads have no side effects, so copying the bytes is the same as reading
 * the range in naturally aligned register pieces.
 */
int vfpm_pcicfg_guest_read_buf(const struct vfpm_pcicfg *cfg, uint64_t offset,
			       void *buf, size_t count)
{
	if (!cfg || !valid_range(offset, buf, count))
		return -EINVAL;
	if (count)
		memcpy(buf, &cfg->live[offset], count);
	return 0;
}

int vfpm_pcicfg_guest_write_buf(struct vfpm_pcicfg *cfg, uint64_t offset,
				const void *buf, size_t count,
				unsigned int *events)
{
	const uint8_t *in = buf;
	unsigned int ev = 0;

	if (!cfg || !valid_range(offset, buf, count))
		return -EINVAL;
	/* The range is valid, so no piece can fail half-way through. */
	while (count) {
		unsigned int size = piece_size(offset, count);

		ev |= guest_write_piece(cfg, (unsigned int)offset, size,
					get_le(in, size));
		in += size;
		offset += size;
		count -= size;
	}
	if (events)
		*events = ev;
	return 0;
}
