/* SPDX-License-Identifier: MIT */
/*
 * PCI configuration space of one emulated function (private to the pci layer).
 *
 * A device model builds the space once, before any user can see it:
 * vfpm_pcicfg_init() with the identity of the function, vfpm_pcicfg_set_bar()
 * for each BAR, then the vfpm_pcicfg_add_*_cap() functions in the order the
 * capability list should have.  Everything those functions write is the
 * power-on state, which a reset brings back.
 *
 * Two kinds of access then follow:
 *  - guest accesses (the vfio-user client or VMM): writes honour the per-bit
 *    masks (read-only, read-write, write-1-to-clear) and the side effects of
 *    the registers (PMCSR power state, FLR, MSI multiple-message clamp); they
 *    report what changed as VFPM_PCICFG_EV_* flags;
 *  - host accesses (the device model itself): raw bytes, no masks, no side
 *    effects, e.g. to raise the Interrupt Status bit or MSI pending bits.
 *
 * All accesses are bounds-checked: an access of size 1, 2 or 4 must lie in
 * the 4 KiB space and must not cross a dword boundary (so a dword access is
 * aligned); otherwise -EINVAL and nothing changes.  Multi-byte registers are
 * little-endian in the space; the value arguments are host integers.
 *
 * No locking here: the owner serialises every call on one config space.
 * Functions return 0 or a negative errno unless they return a plain query.
 */
#ifndef VFPM_PCI_CONFIG_H
#define VFPM_PCI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/pci_regs.h>

#define VFPM_PCICFG_SIZE PCI_CFG_SPACE_EXP_SIZE

/* The power states the PM capability supports (PMC advertises no D1/D2). */
enum vfpm_pci_power {
	VFPM_PCI_D0 = 0,
	VFPM_PCI_D3HOT = 3,
};

struct vfpm_pcicfg_ids {
	uint16_t vendor_id;
	uint16_t device_id;
	uint16_t subsystem_vendor_id;
	uint16_t subsystem_id;
	uint8_t revision;
	uint32_t class_code;	/* 24 bits: base class, sub-class, prog-if */
	uint8_t interrupt_pin;	/* 0 = no INTx, 1..4 = INTA..INTD */
};

enum vfpm_pcicfg_bar_type {
	VFPM_PCICFG_BAR_NONE = 0,	/* unimplemented: reads 0 */
	VFPM_PCICFG_BAR_MEM32,
	VFPM_PCICFG_BAR_MEM64,		/* takes this slot and the next */
	VFPM_PCICFG_BAR_IO,
	VFPM_PCICFG_BAR_MEM64_HIGH,	/* upper half of the previous BAR */
};

/*
 * size is a power of two: memory 16 B .. 2 GiB (32-bit) or .. 2^63 (64-bit),
 * I/O 4 .. 256 B.  prefetchable applies to memory BARs only.
 */
struct vfpm_pcicfg_bar_desc {
	enum vfpm_pcicfg_bar_type type;
	uint64_t size;
	bool prefetchable;
};

struct vfpm_pcicfg_pm_params {
	/* PMCSR NoSoftReset: D3hot -> D0 keeps the configuration state. */
	bool no_soft_reset;
	/*
	 * States the function can signal PME from: 0, or any of
	 * PCI_PM_CAP_PME_D0 | PCI_PM_CAP_PME_D3hot.  With 0, PME_En and
	 * PME_Status are hardwired to 0.  No D3cold: vfpm has no aux power,
	 * so no PM bit is sticky across a conventional reset.
	 */
	uint16_t pme_support;
};

struct vfpm_pcicfg_msi_params {
	unsigned int vectors;	/* multiple message capable: 1, 2, 4, .. 32 */
	bool per_vector_mask;	/* adds the Mask and Pending registers */
};

/* Table and PBA must fit, without overlapping, in declared memory BARs. */
struct vfpm_pcicfg_msix_params {
	unsigned int vectors;	/* 1 .. 2048 */
	uint8_t table_bir;
	uint32_t table_offset;	/* 8-byte aligned */
	uint8_t pba_bir;
	uint32_t pba_offset;	/* 8-byte aligned */
};

/* A version 2 PCI Express endpoint on a 2.5 GT/s x1 link. */
struct vfpm_pcicfg_pcie_params {
	bool flr;		/* Function Level Reset capable */
	uint8_t max_payload;	/* PCI_EXP_DEVCAP_PAYLOAD encoding, 0 (128 B) .. 5 */
};

/* What a guest write did; several may be set at once. */
enum vfpm_pcicfg_event {
	VFPM_PCICFG_EV_COMMAND = 1u << 0,	/* Command register changed */
	VFPM_PCICFG_EV_BAR = 1u << 1,		/* a BAR register changed */
	VFPM_PCICFG_EV_MSI = 1u << 2,		/* MSI control/address/data/mask */
	VFPM_PCICFG_EV_MSIX = 1u << 3,		/* MSI-X Enable or Function Mask */
	VFPM_PCICFG_EV_POWER_STATE = 1u << 4,	/* PMCSR PowerState changed */
	/*
	 * D3hot -> D0 with NoSoftReset clear: the function's configuration
	 * was reset (PME context kept); the model must reset its own state.
	 * Any register may have changed.  This is what the hardware does;
	 * Linux's vfio-pci hides it from the user by saving the state before
	 * D3hot and restoring it after D0 (needs_pm_restore), which a caller
	 * can mirror with guest_read_buf() and host_write().
	 */
	VFPM_PCICFG_EV_SOFT_RESET = 1u << 5,
	/* Initiate FLR was written: configuration reset to power-on values. */
	VFPM_PCICFG_EV_FLR = 1u << 6,
};

struct vfpm_pcicfg_bar {
	enum vfpm_pcicfg_bar_type type;
	uint64_t size;		/* 0 when unimplemented or MEM64_HIGH */
	bool prefetchable;
};

/*
 * What a function's space is built to be: written while it is built, then
 * immutable.  Functions built alike share one (vfpm_pcicfg_share): a
 * thousand memory devices hold one copy, not a thousand.
 */
struct vfpm_pcicfg_layout {
	uint8_t power_on[VFPM_PCICFG_SIZE];	/* what a reset restores */
	uint8_t wmask[VFPM_PCICFG_SIZE];	/* guest-writable bits */
	uint8_t w1cmask[VFPM_PCICFG_SIZE];	/* guest write-1-to-clear bits */
	/* config_share.c's lock, once shared (the arrays are then read without one). */
	bool shared;
	unsigned int users;
	uint64_t hash;
	struct vfpm_pcicfg_layout *next;
};

struct vfpm_pcicfg {
	uint8_t live[VFPM_PCICFG_SIZE];		/* what reads return */
	/* The layout's arrays, written only before vfpm_pcicfg_share. */
	uint8_t *power_on, *wmask, *w1cmask;
	struct vfpm_pcicfg_layout *layout;
	struct vfpm_pcicfg_bar bars[PCI_STD_NUM_BARS];
	uint16_t cap_free;	/* first byte free for the next capability */
	uint16_t cap_last;	/* last capability in the list, 0 if none */
	uint16_t pm_cap;	/* capability offsets, 0 when absent */
	uint16_t msi_cap;
	uint16_t msi_len;
	uint16_t msix_cap;
	uint16_t pcie_cap;
	uint16_t ext_free;	/* first byte free for the next extended capability, 0: none yet */
	uint16_t ext_last;	/* last extended capability, 0 if none */
};

/* MSI: Multiple Message Capable tops out at 32 vectors. */
#define MSI_MAX_VECTORS 32

/* Little-endian register bytes, for config*.c. */
static inline uint32_t get_le(const uint8_t *p, unsigned int size)
{
	uint32_t v = 0;

	for (unsigned int i = 0; i < size; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static inline void put_le(uint8_t *p, unsigned int size, uint32_t v)
{
	for (unsigned int i = 0; i < size; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)get_le(p, 2);
}

static inline void put16(uint8_t *p, uint16_t v)
{
	put_le(p, 2, v);
}

#define get_le32(p) get_le((p), 4)

/*
 * Building (before the space is exposed).  init allocates the layout:
 * vfpm_pcicfg_release frees it, whatever came after.
 */
int vfpm_pcicfg_init(struct vfpm_pcicfg *cfg, const struct vfpm_pcicfg_ids *ids);
/* Built: from here on the layout is shared with every space built alike. */
void vfpm_pcicfg_share(struct vfpm_pcicfg *cfg);
/* Drop the space's layout (its share of it); the space is unusable after. */
void vfpm_pcicfg_release(struct vfpm_pcicfg *cfg);
/* Declares BAR index (0..5); MEM64 also claims index + 1.  -EBUSY if taken. */
int vfpm_pcicfg_set_bar(struct vfpm_pcicfg *cfg, unsigned int index,
			const struct vfpm_pcicfg_bar_desc *desc);
/* Each appends its capability to the list; offset (may be NULL) gets its place. */
int vfpm_pcicfg_add_pm_cap(struct vfpm_pcicfg *cfg,
			   const struct vfpm_pcicfg_pm_params *params,
			   uint16_t *offset);
int vfpm_pcicfg_add_msi_cap(struct vfpm_pcicfg *cfg,
			    const struct vfpm_pcicfg_msi_params *params,
			    uint16_t *offset);
int vfpm_pcicfg_add_msix_cap(struct vfpm_pcicfg *cfg,
			     const struct vfpm_pcicfg_msix_params *params,
			     uint16_t *offset);
int vfpm_pcicfg_add_pcie_cap(struct vfpm_pcicfg *cfg,
			     const struct vfpm_pcicfg_pcie_params *params,
			     uint16_t *offset);

/*
 * Capabilities of the model's own (config_caps.c): a standard one (any ID,
 * repeats allowed, as vendor-specific ones are) appended to the list, or a
 * PCI Express extended one appended to the list at 0x100.  size counts the
 * header; data and wmask (either may be NULL: zeros, read-only) cover the
 * bytes after it.  *offset gets the place.  -ENOSPC when it does not fit.
 */
int vfpm_pcicfg_add_model_cap(struct vfpm_pcicfg *cfg, uint8_t cap_id, unsigned int size,
			      const void *data, const void *wmask, uint16_t *offset);
int vfpm_pcicfg_add_ext_cap(struct vfpm_pcicfg *cfg, uint16_t cap_id, uint8_t version,
			    unsigned int size, const void *data, const void *wmask,
			    uint16_t *offset);
/* For config_caps.c: a register's power-on value and masks; link a capability (no ID check). */
void vfpm_pcicfg_define_reg(struct vfpm_pcicfg *cfg, unsigned int off, unsigned int size,
			    uint32_t value, uint32_t wmask, uint32_t w1c);
int vfpm_pcicfg_link_cap(struct vfpm_pcicfg *cfg, uint8_t cap_id, unsigned int len,
			 uint16_t *offset);

/* Guest side: masked, with register side effects.  events may be NULL. */
int vfpm_pcicfg_guest_read(const struct vfpm_pcicfg *cfg, uint64_t offset,
			   unsigned int size, uint32_t *value);
int vfpm_pcicfg_guest_write(struct vfpm_pcicfg *cfg, uint64_t offset,
			    unsigned int size, uint32_t value,
			    unsigned int *events);
/*
 * Any byte count within the space (a VFIO-style region access), split into
 * naturally aligned pieces; buf holds the bytes as on the wire.
 */
int vfpm_pcicfg_guest_read_buf(const struct vfpm_pcicfg *cfg, uint64_t offset,
			       void *buf, size_t count);
int vfpm_pcicfg_guest_write_buf(struct vfpm_pcicfg *cfg, uint64_t offset,
				const void *buf, size_t count,
				unsigned int *events);

/* Host side: raw, no masks and no side effects. */
int vfpm_pcicfg_host_read(const struct vfpm_pcicfg *cfg, uint64_t offset,
			  unsigned int size, uint32_t *value);
int vfpm_pcicfg_host_write(struct vfpm_pcicfg *cfg, uint64_t offset,
			   unsigned int size, uint32_t value);

/* Conventional reset: every register back to its power-on value (D0). */
void vfpm_pcicfg_reset(struct vfpm_pcicfg *cfg);
/*
 * Moves PMCSR to state as a guest write would (D3hot -> D0 with NoSoftReset
 * clear resets the configuration).  -EOPNOTSUPP for D3hot without a PM cap.
 */
int vfpm_pcicfg_set_power_state(struct vfpm_pcicfg *cfg,
				enum vfpm_pci_power state,
				unsigned int *events);
/* Sets PME_Status; -EOPNOTSUPP if PME is not supported in the current state. */
int vfpm_pcicfg_set_pme_status(struct vfpm_pcicfg *cfg);

/* Queries of the current state. */
int vfpm_pcicfg_find_cap(const struct vfpm_pcicfg *cfg, uint8_t cap_id,
			 uint16_t *offset);
enum vfpm_pci_power vfpm_pcicfg_power_state(const struct vfpm_pcicfg *cfg);
bool vfpm_pcicfg_pme_enabled(const struct vfpm_pcicfg *cfg);
bool vfpm_pcicfg_memory_enabled(const struct vfpm_pcicfg *cfg);
bool vfpm_pcicfg_io_enabled(const struct vfpm_pcicfg *cfg);
bool vfpm_pcicfg_bus_master(const struct vfpm_pcicfg *cfg);
bool vfpm_pcicfg_intx_disabled(const struct vfpm_pcicfg *cfg);
/* STATUS.Interrupt_Status: the function's INTx line, as hardware shows it (read-only to the user). */
void vfpm_pcicfg_set_intx_status(struct vfpm_pcicfg *cfg, bool asserted);
/* Declared BAR and the base address the guest programmed into it. */
int vfpm_pcicfg_get_bar(const struct vfpm_pcicfg *cfg, unsigned int index,
			struct vfpm_pcicfg_bar_desc *desc, uint64_t *address);
bool vfpm_pcicfg_msi_enabled(const struct vfpm_pcicfg *cfg);
/* Vectors the guest allocated (Multiple Message Enable); 0 without MSI. */
unsigned int vfpm_pcicfg_msi_vectors(const struct vfpm_pcicfg *cfg);
/* Address and data of one allocated vector.  -ENOENT without MSI. */
int vfpm_pcicfg_msi_message(const struct vfpm_pcicfg *cfg, unsigned int vector,
			    uint64_t *address, uint32_t *data);
bool vfpm_pcicfg_msi_vector_masked(const struct vfpm_pcicfg *cfg,
				   unsigned int vector);
bool vfpm_pcicfg_msix_enabled(const struct vfpm_pcicfg *cfg);
bool vfpm_pcicfg_msix_function_masked(const struct vfpm_pcicfg *cfg);

#endif /* VFPM_PCI_CONFIG_H */
