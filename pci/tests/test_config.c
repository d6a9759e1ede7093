// SPDX-License-Identifier: MIT
/*
 * Tests of the PCI configuration space, seen as a guest driver sees it:
 * through config reads and writes (plus the few queries the PCI core uses).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>

#include "config.h"

/* The device every test starts from; see build_device(). */
struct fixture {
	struct vfpm_pcicfg cfg;
	uint16_t pm, msi, msix, pcie;
};

#define MSIX_BAR 2
#define MSIX_VECTORS 8
#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
/* A macro, so that a failure names the line of the test. */
#define assert_reg(cfg, off, size, value) \
	assert_int_equal(rd((cfg), (off), (size)), (value))

static const struct vfpm_pcicfg_ids test_ids = {
	.vendor_id = 0x1b36, .device_id = 0x0010,
	.subsystem_vendor_id = 0x1af4, .subsystem_id = 0x1100,
	.revision = 0x02, .class_code = 0x010802, .interrupt_pin = 1,
};

static uint32_t rd(const struct vfpm_pcicfg *cfg, uint64_t off,
		   unsigned int size)
{
	uint32_t v = 0xdeadbeef;

	assert_int_equal(vfpm_pcicfg_guest_read(cfg, off, size, &v), 0);
	return v;
}

/* A guest write; returns the events it reported. */
static unsigned int wr(struct vfpm_pcicfg *cfg, uint64_t off,
		       unsigned int size, uint32_t value)
{
	unsigned int events = ~0u;

	assert_int_equal(vfpm_pcicfg_guest_write(cfg, off, size, value,
						 &events), 0);
	return events;
}

static void host_wr(struct vfpm_pcicfg *cfg, uint64_t off, unsigned int size,
		    uint32_t value)
{
	assert_int_equal(vfpm_pcicfg_host_write(cfg, off, size, value), 0);
}

static void snapshot(const struct vfpm_pcicfg *cfg, uint8_t *out)
{
	assert_int_equal(vfpm_pcicfg_guest_read_buf(cfg, 0, out,
						    VFPM_PCICFG_SIZE), 0);
}

static int declare_bar(struct vfpm_pcicfg *cfg, unsigned int index,
		       enum vfpm_pcicfg_bar_type type, uint64_t size,
		       bool prefetchable)
{
	struct vfpm_pcicfg_bar_desc desc = {
		.type = type, .size = size, .prefetchable = prefetchable,
	};

	return vfpm_pcicfg_set_bar(cfg, index, &desc);
}

static struct vfpm_pcicfg *new_bare_device(void)
{
	struct vfpm_pcicfg *cfg = test_calloc(1, sizeof(*cfg));

	assert_int_equal(vfpm_pcicfg_init(cfg, &test_ids), 0);
	return cfg;
}

/*
 * BAR0/1: 64-bit 16 KiB; BAR2: 32-bit 4 KiB (MSI-X table and PBA);
 * BAR3: I/O 32 B; BAR4: 32-bit prefetchable 1 MiB; BAR5: unimplemented.
 * Capabilities PM, MSI (4 vectors, masking), MSI-X (8), PCIe (FLR).
 */
static int build_device(void **state, bool no_soft_reset)
{
	struct vfpm_pcicfg_pm_params pm = {
		.no_soft_reset = no_soft_reset,
		.pme_support = PCI_PM_CAP_PME_D0 | PCI_PM_CAP_PME_D3hot,
	};
	struct vfpm_pcicfg_msi_params msi = { 4, true };
	struct vfpm_pcicfg_msix_params msix = {
		.vectors = MSIX_VECTORS, .table_bir = MSIX_BAR,
		.pba_bir = MSIX_BAR, .pba_offset = 0x800,
	};
	struct vfpm_pcicfg_pcie_params pcie = { .flr = true, .max_payload = 1 };
	struct fixture *f = test_calloc(1, sizeof(*f));
	struct vfpm_pcicfg *cfg = &f->cfg;

	assert_int_equal(vfpm_pcicfg_init(cfg, &test_ids), 0);
	assert_int_equal(declare_bar(cfg, 0, VFPM_PCICFG_BAR_MEM64, 16384, 0), 0);
	assert_int_equal(declare_bar(cfg, 2, VFPM_PCICFG_BAR_MEM32, 4096, 0), 0);
	assert_int_equal(declare_bar(cfg, 3, VFPM_PCICFG_BAR_IO, 32, 0), 0);
	assert_int_equal(declare_bar(cfg, 4, VFPM_PCICFG_BAR_MEM32, 1 << 20, 1),
			 0);
	assert_int_equal(vfpm_pcicfg_add_pm_cap(cfg, &pm, &f->pm), 0);
	assert_int_equal(vfpm_pcicfg_add_msi_cap(cfg, &msi, &f->msi), 0);
	assert_int_equal(vfpm_pcicfg_add_msix_cap(cfg, &msix, &f->msix), 0);
	assert_int_equal(vfpm_pcicfg_add_pcie_cap(cfg, &pcie, &f->pcie), 0);
	*state = f;
	return 0;
}

static int setup_soft_reset(void **state)
{
	return build_device(state, false);
}

static int setup_no_soft_reset(void **state)
{
	return build_device(state, true);
}

static int teardown(void **state)
{
	vfpm_pcicfg_release(&((struct fixture *)*state)->cfg);
	test_free(*state);
	return 0;
}

/* Programs BARs, Command and the interrupt enables as a driver would. */
static void configure_function(struct fixture *f)
{
	struct vfpm_pcicfg *cfg = &f->cfg;

	wr(cfg, PCI_BASE_ADDRESS_0, 4, 0xfe000000);
	wr(cfg, PCI_BASE_ADDRESS_2, 4, 0xfe100000);
	wr(cfg, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	wr(cfg, f->msi + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE);
	wr(cfg, f->msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	wr(cfg, f->pm + PCI_PM_CTRL, 2, PCI_PM_CTRL_PME_ENABLE);
}

/* ---- header and capability list ---- */

static void test_header_identity_is_read_only(void **state)
{
	static const uint16_t ro[] = {
		PCI_VENDOR_ID, PCI_DEVICE_ID, PCI_CLASS_REVISION,
		PCI_CLASS_DEVICE, PCI_HEADER_TYPE, PCI_SUBSYSTEM_VENDOR_ID,
		PCI_SUBSYSTEM_ID, PCI_CARDBUS_CIS, PCI_CARDBUS_CIS + 2,
	};
	struct vfpm_pcicfg *cfg = &((struct fixture *)*state)->cfg;

	assert_reg(cfg, PCI_VENDOR_ID, 4, 0x00101b36);
	assert_reg(cfg, PCI_CLASS_REVISION, 4, 0x01080202);
	assert_reg(cfg, PCI_HEADER_TYPE, 1, PCI_HEADER_TYPE_NORMAL);
	assert_reg(cfg, PCI_SUBSYSTEM_VENDOR_ID, 4, 0x11001af4);
	assert_reg(cfg, PCI_INTERRUPT_PIN, 1, 1);
	assert_reg(cfg, PCI_COMMAND, 2, 0);
	/* Nothing in the extended space without extended capabilities. */
	assert_reg(cfg, 0x100, 4, 0);
	for (size_t i = 0; i < N_ELEMS(ro); i++) {
		uint32_t before = rd(cfg, ro[i], 2);

		assert_int_equal(wr(cfg, ro[i], 2, 0xffff), 0);
		assert_int_equal(wr(cfg, ro[i], 2, 0x0000), 0);
		assert_reg(cfg, ro[i], 2, before);
	}
	wr(cfg, PCI_VENDOR_ID, 4, 0x12345678);
	assert_reg(cfg, PCI_VENDOR_ID, 4, 0x00101b36);
	/* Interrupt Line is scratch for software; the pin is not. */
	wr(cfg, PCI_INTERRUPT_LINE, 2, 0x040b);
	assert_reg(cfg, PCI_INTERRUPT_LINE, 2, 0x010b);
}

static void test_capability_list_walk(void **state)
{
	static const uint8_t ids[] = {
		PCI_CAP_ID_PM, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, PCI_CAP_ID_EXP,
	};
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	uint16_t offsets[] = { f->pm, f->msi, f->msix, f->pcie }, found;
	unsigned int n = 0, off;

	assert_true(rd(cfg, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	for (off = rd(cfg, PCI_CAPABILITY_LIST, 1); off;
	     off = rd(cfg, off + PCI_CAP_LIST_NEXT, 1), n++) {
		assert_true(n < N_ELEMS(ids));
		assert_in_range(off, PCI_STD_HEADER_SIZEOF, PCI_CFG_SPACE_SIZE - 4);
		assert_int_equal(off & 3, 0);
		assert_int_equal(off, offsets[n]);
		assert_reg(cfg, off + PCI_CAP_LIST_ID, 1, ids[n]);
		assert_int_equal(vfpm_pcicfg_find_cap(cfg, ids[n], &found), 0);
		assert_int_equal(found, off);
	}
	assert_int_equal(n, N_ELEMS(ids));
	assert_int_equal(vfpm_pcicfg_find_cap(cfg, PCI_CAP_ID_VNDR, NULL),
			 -ENOENT);
	/* The list pointers are read-only. */
	wr(cfg, PCI_CAPABILITY_LIST, 1, 0);
	wr(cfg, f->pm, 4, 0);
	assert_reg(cfg, PCI_CAPABILITY_LIST, 1, f->pm);
	assert_reg(cfg, f->pm, 2, f->msi << 8 | PCI_CAP_ID_PM);
}

static void test_build_rejects_bad_declarations(void **state)
{
	static const struct vfpm_pcicfg_bar_desc bad_bars[] = {
		{ VFPM_PCICFG_BAR_MEM32, 3 * 4096, false },	/* not 2^n */
		{ VFPM_PCICFG_BAR_MEM32, 8, false },		/* under 16 B */
		{ VFPM_PCICFG_BAR_MEM32, UINT64_C(4) << 30, false },
		{ VFPM_PCICFG_BAR_IO, 512, false },		/* over 256 B */
		{ VFPM_PCICFG_BAR_IO, 64, true },
		{ VFPM_PCICFG_BAR_MEM64_HIGH, 4096, false },
	};
	/* Table: 64 entries, 1 KiB at BAR0 offset 0.  BAR1 is BAR0's top. */
	static const struct { uint8_t bir; uint32_t offset; } bad_pba[] = {
		{ 0, 0x200 }, { 0, 0x1000 }, { 0, 0x404 }, { 1, 0 }, { 2, 0 },
	};
	struct vfpm_pcicfg *cfg = new_bare_device();
	struct vfpm_pcicfg_pm_params pm = { .pme_support = PCI_PM_CAP_PME_D3cold };
	struct vfpm_pcicfg_msi_params msi = { .vectors = 3 };
	struct vfpm_pcicfg_msix_params msix = { .vectors = 64, .pba_offset = 0x400 };
	struct vfpm_pcicfg_ids bad_ids = test_ids;

	(void)state;
	for (size_t i = 0; i < N_ELEMS(bad_bars); i++)
		assert_int_equal(vfpm_pcicfg_set_bar(cfg, 0, &bad_bars[i]), -EINVAL);
	assert_int_equal(declare_bar(cfg, 5, VFPM_PCICFG_BAR_MEM64, 4096, 0),
			 -EINVAL);
	assert_int_equal(declare_bar(cfg, 6, VFPM_PCICFG_BAR_MEM32, 4096, 0),
			 -EINVAL);
	/* MSI-X before its BAR exists. */
	assert_int_equal(vfpm_pcicfg_add_msix_cap(cfg, &msix, NULL), -EINVAL);
	assert_int_equal(declare_bar(cfg, 0, VFPM_PCICFG_BAR_MEM64, 4096, 0), 0);
	assert_int_equal(declare_bar(cfg, 1, VFPM_PCICFG_BAR_MEM32, 4096, 0),
			 -EBUSY);
	assert_int_equal(declare_bar(cfg, 2, VFPM_PCICFG_BAR_IO, 256, 0), 0);
	for (size_t i = 0; i < N_ELEMS(bad_pba); i++) {
		msix.pba_bir = bad_pba[i].bir;
		msix.pba_offset = bad_pba[i].offset;
		assert_int_equal(vfpm_pcicfg_add_msix_cap(cfg, &msix, NULL), -EINVAL);
	}
	msix.pba_bir = 0;
	msix.pba_offset = 0xff8;
	assert_int_equal(vfpm_pcicfg_add_msix_cap(cfg, &msix, NULL), 0);

	assert_int_equal(vfpm_pcicfg_add_pm_cap(cfg, &pm, NULL), -EINVAL);
	pm.pme_support = 0;
	assert_int_equal(vfpm_pcicfg_add_pm_cap(cfg, &pm, NULL), 0);
	assert_int_equal(vfpm_pcicfg_add_pm_cap(cfg, &pm, NULL), -EEXIST);
	assert_int_equal(vfpm_pcicfg_add_msi_cap(cfg, &msi, NULL), -EINVAL);
	msi.vectors = 64;
	assert_int_equal(vfpm_pcicfg_add_msi_cap(cfg, &msi, NULL), -EINVAL);
	bad_ids.vendor_id = 0xffff;
	assert_int_equal(vfpm_pcicfg_init(cfg, &bad_ids), -EINVAL);
	vfpm_pcicfg_release(cfg);
	test_free(cfg);
}

/* A function with no capabilities, then no I/O BAR, PME, FLR or MSI. */
static void test_minimal_device_hardwires_optional_bits(void **state)
{
	struct vfpm_pcicfg *cfg = new_bare_device();
	struct vfpm_pcicfg_pm_params pm = { .no_soft_reset = true };
	struct vfpm_pcicfg_pcie_params pcie = { .flr = false };
	uint16_t pmc, exp;
	uint64_t addr;
	uint32_t data;

	(void)state;
	assert_false(rd(cfg, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_reg(cfg, PCI_CAPABILITY_LIST, 1, 0);
	assert_int_equal(vfpm_pcicfg_find_cap(cfg, PCI_CAP_ID_PM, NULL), -ENOENT);
	/* Without a PM capability a function is always in D0. */
	assert_int_equal(vfpm_pcicfg_set_power_state(cfg, 3, NULL), -EOPNOTSUPP);
	assert_int_equal(vfpm_pcicfg_set_power_state(cfg, 0, NULL), 0);

	assert_int_equal(declare_bar(cfg, 0, VFPM_PCICFG_BAR_MEM32, 4096, 0), 0);
	assert_int_equal(vfpm_pcicfg_add_pm_cap(cfg, &pm, &pmc), 0);
	assert_int_equal(vfpm_pcicfg_add_pcie_cap(cfg, &pcie, &exp), 0);
	wr(cfg, PCI_COMMAND, 2, 0xffff);
	assert_true(vfpm_pcicfg_memory_enabled(cfg));
	assert_false(vfpm_pcicfg_io_enabled(cfg));
	/* PME_En and PME_Status stay 0. */
	wr(cfg, pmc + PCI_PM_CTRL, 2, 0xffff);
	assert_reg(cfg, pmc + PCI_PM_CTRL, 2,
		   PCI_PM_CTRL_NO_SOFT_RESET | VFPM_PCI_D3HOT);
	assert_int_equal(vfpm_pcicfg_set_pme_status(cfg), -EOPNOTSUPP);
	/* Initiate FLR does nothing. */
	assert_false(rd(cfg, exp + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR);
	assert_int_equal(wr(cfg, exp + PCI_EXP_DEVCTL + 1, 1,
			    PCI_EXP_DEVCTL_BCR_FLR >> 8), 0);
	assert_true(vfpm_pcicfg_memory_enabled(cfg));
	assert_int_equal(vfpm_pcicfg_msi_vectors(cfg), 0);
	assert_int_equal(vfpm_pcicfg_msi_message(cfg, 0, &addr, &data), -ENOENT);
	assert_false(vfpm_pcicfg_msix_enabled(cfg));
	vfpm_pcicfg_release(cfg);
	test_free(cfg);
}

static void test_command_register(void **state)
{
	struct vfpm_pcicfg *cfg = &((struct fixture *)*state)->cfg;

	assert_int_equal(wr(cfg, PCI_COMMAND, 2, 0xffff), VFPM_PCICFG_EV_COMMAND);
	assert_reg(cfg, PCI_COMMAND, 2,
		   PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
		   PCI_COMMAND_PARITY | PCI_COMMAND_SERR |
		   PCI_COMMAND_INTX_DISABLE);
	assert_true(vfpm_pcicfg_memory_enabled(cfg));
	assert_true(vfpm_pcicfg_io_enabled(cfg));
	assert_true(vfpm_pcicfg_bus_master(cfg));
	assert_true(vfpm_pcicfg_intx_disabled(cfg));
	/* Same value again: nothing changed, no event. */
	assert_int_equal(wr(cfg, PCI_COMMAND, 2, 0xffff), 0);
	assert_int_equal(wr(cfg, PCI_COMMAND, 2, PCI_COMMAND_MEMORY),
			 VFPM_PCICFG_EV_COMMAND);
	assert_true(vfpm_pcicfg_memory_enabled(cfg));
	assert_false(vfpm_pcicfg_io_enabled(cfg));
	assert_false(vfpm_pcicfg_bus_master(cfg));
	assert_false(vfpm_pcicfg_intx_disabled(cfg));
}

static void test_status_rw1c(void **state)
{
	struct vfpm_pcicfg *cfg = &((struct fixture *)*state)->cfg;
	const uint16_t errors = PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT |
				PCI_STATUS_REC_TARGET_ABORT |
				PCI_STATUS_REC_MASTER_ABORT |
				PCI_STATUS_SIG_SYSTEM_ERROR |
				PCI_STATUS_DETECTED_PARITY;
	const uint16_t ro = PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT;

	/* Guests cannot set error bits. */
	wr(cfg, PCI_STATUS, 2, 0xffff);
	assert_reg(cfg, PCI_STATUS, 2, PCI_STATUS_CAP_LIST);

	/* The device model raises them (and the interrupt status). */
	host_wr(cfg, PCI_STATUS, 2, ro | errors);
	wr(cfg, PCI_STATUS, 2, 0);
	assert_reg(cfg, PCI_STATUS, 2, ro | errors);
	wr(cfg, PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT);
	assert_reg(cfg, PCI_STATUS, 2, ro | (errors & ~PCI_STATUS_REC_MASTER_ABORT));
	/* A byte write to the high half clears only the bits written. */
	wr(cfg, PCI_STATUS + 1, 1, PCI_STATUS_DETECTED_PARITY >> 8);
	assert_reg(cfg, PCI_STATUS, 2,
		   ro | (errors & ~(PCI_STATUS_REC_MASTER_ABORT |
				    PCI_STATUS_DETECTED_PARITY)));
	/* A dword write to Command leaves Status alone when its half is 0. */
	wr(cfg, PCI_COMMAND, 4, PCI_COMMAND_MASTER);
	assert_true(rd(cfg, PCI_STATUS, 2) & PCI_STATUS_PARITY);
	wr(cfg, PCI_COMMAND, 4, 0xffff0000u);
	assert_reg(cfg, PCI_STATUS, 2, ro);
	assert_reg(cfg, PCI_COMMAND, 2, 0);
}

/* ---- BARs ---- */

static uint32_t size_bar(struct vfpm_pcicfg *cfg, unsigned int reg)
{
	wr(cfg, reg, 4, 0xffffffff);
	return rd(cfg, reg, 4);
}

static void test_bar_sizing_32bit(void **state)
{
	struct vfpm_pcicfg *cfg = &((struct fixture *)*state)->cfg;
	struct vfpm_pcicfg_bar_desc desc;
	uint64_t addr;

	assert_reg(cfg, PCI_BASE_ADDRESS_2, 4, 0);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_2), 0xfffff000);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_4),
			 0xfff00000 | PCI_BASE_ADDRESS_MEM_PREFETCH);
	assert_int_equal(wr(cfg, PCI_BASE_ADDRESS_2, 4, 0xfebf1234),
			 VFPM_PCICFG_EV_BAR);
	assert_reg(cfg, PCI_BASE_ADDRESS_2, 4, 0xfebf1000);
	assert_int_equal(vfpm_pcicfg_get_bar(cfg, 2, &desc, &addr), 0);
	assert_int_equal(desc.type, VFPM_PCICFG_BAR_MEM32);
	assert_int_equal(desc.size, 4096);
	assert_int_equal(addr, 0xfebf1000);
	/* Byte-wise sizing works as well. */
	wr(cfg, PCI_BASE_ADDRESS_4, 4, 0);
	for (unsigned int i = 0; i < 4; i++)
		wr(cfg, PCI_BASE_ADDRESS_4 + i, 1, 0xff);
	assert_reg(cfg, PCI_BASE_ADDRESS_4, 4,
		   0xfff00000 | PCI_BASE_ADDRESS_MEM_PREFETCH);
}

static void test_bar_sizing_io_and_unimplemented(void **state)
{
	struct vfpm_pcicfg *cfg = &((struct fixture *)*state)->cfg;
	uint64_t addr;

	assert_reg(cfg, PCI_BASE_ADDRESS_3, 4, PCI_BASE_ADDRESS_SPACE_IO);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_3),
			 0xffffffe0 | PCI_BASE_ADDRESS_SPACE_IO);
	wr(cfg, PCI_BASE_ADDRESS_3, 4, 0xc040);
	assert_int_equal(vfpm_pcicfg_get_bar(cfg, 3, NULL, &addr), 0);
	assert_int_equal(addr, 0xc040);
	/* BAR5 and the expansion ROM are not implemented. */
	assert_reg(cfg, PCI_BASE_ADDRESS_5, 4, 0);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_5), 0);
	assert_int_equal(size_bar(cfg, PCI_ROM_ADDRESS), 0);
}

static void test_bar_sizing_64bit(void **state)
{
	struct vfpm_pcicfg *cfg = &((struct fixture *)*state)->cfg;
	struct vfpm_pcicfg_bar_desc desc;
	uint64_t addr;

	wr(cfg, PCI_BASE_ADDRESS_0, 4, 0xffffffff);
	wr(cfg, PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	assert_reg(cfg, PCI_BASE_ADDRESS_0, 4,
		   0xffffc000 | PCI_BASE_ADDRESS_MEM_TYPE_64);
	assert_reg(cfg, PCI_BASE_ADDRESS_1, 4, 0xffffffff);
	wr(cfg, PCI_BASE_ADDRESS_0, 4, 0xe0000000);
	wr(cfg, PCI_BASE_ADDRESS_1, 4, 0x00000008);
	assert_int_equal(vfpm_pcicfg_get_bar(cfg, 0, &desc, &addr), 0);
	assert_int_equal(desc.type, VFPM_PCICFG_BAR_MEM64);
	assert_int_equal(addr, UINT64_C(0x8e0000000));
	assert_int_equal(vfpm_pcicfg_get_bar(cfg, 1, &desc, NULL), 0);
	assert_int_equal(desc.type, VFPM_PCICFG_BAR_MEM64_HIGH);

	/* Above 4 GiB the size shows in the upper dword only. */
	struct vfpm_pcicfg *big = new_bare_device();

	assert_int_equal(declare_bar(big, 4, VFPM_PCICFG_BAR_MEM64,
				     UINT64_C(8) << 30, 1), 0);
	assert_int_equal(size_bar(big, PCI_BASE_ADDRESS_4),
			 PCI_BASE_ADDRESS_MEM_TYPE_64 |
			 PCI_BASE_ADDRESS_MEM_PREFETCH);
	assert_int_equal(size_bar(big, PCI_BASE_ADDRESS_5), 0xfffffffe);
	vfpm_pcicfg_release(big);
	test_free(big);
}

/* ---- power management ---- */

static void test_pmcsr_d3hot_roundtrip_no_soft_reset(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	uint64_t addr;

	assert_true(rd(cfg, f->pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_NO_SOFT_RESET);
	configure_function(f);
	assert_int_equal(wr(cfg, f->pm + PCI_PM_CTRL, 2,
			    PCI_PM_CTRL_PME_ENABLE | VFPM_PCI_D3HOT),
			 VFPM_PCICFG_EV_POWER_STATE);
	assert_int_equal(vfpm_pcicfg_power_state(cfg), VFPM_PCI_D3HOT);
	assert_reg(cfg, f->pm + PCI_PM_CTRL, 1, PCI_PM_CTRL_NO_SOFT_RESET | 3);
	/* Writing the same state again is not a transition. */
	assert_int_equal(wr(cfg, f->pm + PCI_PM_CTRL, 1, VFPM_PCI_D3HOT), 0);

	assert_int_equal(wr(cfg, f->pm + PCI_PM_CTRL, 2, PCI_PM_CTRL_PME_ENABLE),
			 VFPM_PCICFG_EV_POWER_STATE);
	assert_int_equal(vfpm_pcicfg_power_state(cfg), VFPM_PCI_D0);
	assert_reg(cfg, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(vfpm_pcicfg_get_bar(cfg, 0, NULL, &addr), 0);
	assert_int_equal(addr, 0xfe000000);
	assert_reg(cfg, PCI_BASE_ADDRESS_2, 4, 0xfe100000);
	assert_true(vfpm_pcicfg_msi_enabled(cfg));
	assert_true(vfpm_pcicfg_msix_enabled(cfg));
}

static void test_pmcsr_d3hot_to_d0_soft_reset(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	uint8_t power_on[VFPM_PCICFG_SIZE], now[VFPM_PCICFG_SIZE];
	unsigned int pmcsr = f->pm + PCI_PM_CTRL;

	snapshot(cfg, power_on);
	assert_false(rd(cfg, pmcsr, 2) & PCI_PM_CTRL_NO_SOFT_RESET);
	configure_function(f);
	assert_int_equal(wr(cfg, pmcsr, 2, PCI_PM_CTRL_PME_ENABLE | 3),
			 VFPM_PCICFG_EV_POWER_STATE);
	/* Configuration state survives in D3hot itself. */
	assert_reg(cfg, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(vfpm_pcicfg_set_pme_status(cfg), 0);

	assert_int_equal(wr(cfg, pmcsr, 2, PCI_PM_CTRL_PME_ENABLE),
			 VFPM_PCICFG_EV_POWER_STATE | VFPM_PCICFG_EV_SOFT_RESET);
	assert_int_equal(vfpm_pcicfg_power_state(cfg), VFPM_PCI_D0);
	assert_reg(cfg, PCI_COMMAND, 2, 0);
	assert_false(vfpm_pcicfg_memory_enabled(cfg));
	assert_false(vfpm_pcicfg_bus_master(cfg));
	assert_reg(cfg, PCI_BASE_ADDRESS_0, 4, PCI_BASE_ADDRESS_MEM_TYPE_64);
	assert_reg(cfg, PCI_BASE_ADDRESS_2, 4, 0);
	assert_false(vfpm_pcicfg_msi_enabled(cfg));
	assert_false(vfpm_pcicfg_msix_enabled(cfg));
	/* The PME context is all that is left of the old state. */
	assert_reg(cfg, pmcsr, 2, PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS);
	snapshot(cfg, now);
	memcpy(&now[pmcsr], &power_on[pmcsr], 2);
	assert_memory_equal(now, power_on, VFPM_PCICFG_SIZE);
}

static void test_host_set_power_state(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	unsigned int events = ~0u;

	configure_function(f);
	wr(cfg, f->pm + PCI_PM_CTRL, 1, VFPM_PCI_D3HOT);
	/* The PCI core puts the function back in D0 before suspending. */
	assert_int_equal(vfpm_pcicfg_set_power_state(cfg, VFPM_PCI_D0, &events), 0);
	assert_int_equal(events, VFPM_PCICFG_EV_POWER_STATE |
				 VFPM_PCICFG_EV_SOFT_RESET);
	assert_reg(cfg, PCI_COMMAND, 2, 0);
	assert_int_equal(vfpm_pcicfg_set_power_state(cfg, VFPM_PCI_D0, &events), 0);
	assert_int_equal(events, 0);
	assert_int_equal(vfpm_pcicfg_set_power_state(cfg, VFPM_PCI_D3HOT, &events),
			 0);
	assert_int_equal(events, VFPM_PCICFG_EV_POWER_STATE);
	assert_int_equal(vfpm_pcicfg_power_state(cfg), VFPM_PCI_D3HOT);
	assert_int_equal(vfpm_pcicfg_set_power_state(cfg, 1, NULL), -EINVAL);
	assert_int_equal(vfpm_pcicfg_power_state(cfg), VFPM_PCI_D3HOT);
}

static void test_pmcsr_fields_and_unsupported_states(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	unsigned int pmcsr = f->pm + PCI_PM_CTRL;
	uint32_t pmc = rd(cfg, f->pm + PCI_PM_PMC, 2);

	/* PM 1.2, D3hot only (no D1/D2), PME from D0 and D3hot. */
	assert_int_equal(pmc, 3 | PCI_PM_CAP_PME_D0 | PCI_PM_CAP_PME_D3hot);
	wr(cfg, f->pm + PCI_PM_PMC, 2, 0);
	assert_reg(cfg, f->pm + PCI_PM_PMC, 2, pmc);
	/* Everything but PowerState and PME_En is read-only or reserved. */
	wr(cfg, pmcsr, 2, 0x7ffc);
	assert_reg(cfg, pmcsr, 4, PCI_PM_CTRL_PME_ENABLE);
	wr(cfg, pmcsr, 2, 0);

	for (uint32_t s = 1; s <= 2; s++) {
		assert_int_equal(wr(cfg, pmcsr, 2, s), 0);
		assert_int_equal(vfpm_pcicfg_power_state(cfg), VFPM_PCI_D0);
		assert_reg(cfg, pmcsr, 2, 0);
	}
	wr(cfg, pmcsr, 2, VFPM_PCI_D3HOT);
	for (uint32_t s = 1; s <= 2; s++) {
		/* The rest of the write still lands. */
		assert_int_equal(wr(cfg, pmcsr, 2, PCI_PM_CTRL_PME_ENABLE | s), 0);
		assert_int_equal(vfpm_pcicfg_power_state(cfg), VFPM_PCI_D3HOT);
		assert_reg(cfg, pmcsr, 2, PCI_PM_CTRL_PME_ENABLE | VFPM_PCI_D3HOT);
	}
	/* A dword write over PMCSR and the read-only bytes after it too. */
	assert_int_equal(wr(cfg, pmcsr, 4, 0xffff0002), 0);
	assert_int_equal(vfpm_pcicfg_power_state(cfg), VFPM_PCI_D3HOT);
	assert_reg(cfg, pmcsr, 4, VFPM_PCI_D3HOT);
}

static void test_pme_status_rw1c(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	unsigned int pmcsr = f->pm + PCI_PM_CTRL;

	wr(cfg, pmcsr, 2, PCI_PM_CTRL_PME_STATUS);
	assert_reg(cfg, pmcsr, 2, 0);
	wr(cfg, pmcsr, 2, PCI_PM_CTRL_PME_ENABLE);
	assert_true(vfpm_pcicfg_pme_enabled(cfg));
	assert_int_equal(vfpm_pcicfg_set_pme_status(cfg), 0);
	assert_reg(cfg, pmcsr, 2, PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS);
	wr(cfg, pmcsr, 2, PCI_PM_CTRL_PME_ENABLE);
	assert_true(rd(cfg, pmcsr, 2) & PCI_PM_CTRL_PME_STATUS);
	wr(cfg, pmcsr + 1, 1, PCI_PM_CTRL_PME_STATUS >> 8);
	assert_reg(cfg, pmcsr, 2, 0);
	assert_false(vfpm_pcicfg_pme_enabled(cfg));
}

/* ---- MSI, MSI-X, PCI Express ---- */

static void test_msi_enable_and_mask(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	const uint32_t caps = PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT |
			      2 << 1;	/* 4 vectors */
	unsigned int flags = f->msi + PCI_MSI_FLAGS;
	uint64_t addr;
	uint32_t data;

	assert_reg(cfg, flags, 2, caps);
	assert_false(vfpm_pcicfg_msi_enabled(cfg));
	assert_int_equal(vfpm_pcicfg_msi_vectors(cfg), 1);

	wr(cfg, f->msi + PCI_MSI_ADDRESS_LO, 4, 0xfee00003);
	wr(cfg, f->msi + PCI_MSI_ADDRESS_HI, 4, 0x1);
	wr(cfg, f->msi + PCI_MSI_DATA_64, 2, 0x4023);
	/* Asking for 32 vectors gets the 4 the function can send. */
	assert_int_equal(wr(cfg, flags, 2, PCI_MSI_FLAGS_ENABLE |
					   PCI_MSI_FLAGS_QSIZE),
			 VFPM_PCICFG_EV_MSI);
	assert_true(vfpm_pcicfg_msi_enabled(cfg));
	assert_int_equal(vfpm_pcicfg_msi_vectors(cfg), 4);
	assert_reg(cfg, flags, 2, caps | PCI_MSI_FLAGS_ENABLE | 2 << 4);
	assert_int_equal(vfpm_pcicfg_msi_message(cfg, 2, &addr, &data), 0);
	assert_int_equal(addr, UINT64_C(0x1fee00000));
	assert_int_equal(data, 0x4022);
	assert_int_equal(vfpm_pcicfg_msi_message(cfg, 4, &addr, &data), -EINVAL);

	/* Mask bits exist for the capable vectors; pending is read-only. */
	assert_int_equal(wr(cfg, f->msi + PCI_MSI_MASK_64, 4, 0xffffffff),
			 VFPM_PCICFG_EV_MSI);
	assert_reg(cfg, f->msi + PCI_MSI_MASK_64, 4, 0xf);
	wr(cfg, f->msi + PCI_MSI_MASK_64, 4, 0x2);
	assert_false(vfpm_pcicfg_msi_vector_masked(cfg, 0));
	assert_true(vfpm_pcicfg_msi_vector_masked(cfg, 1));
	wr(cfg, f->msi + PCI_MSI_PENDING_64, 4, 0xffffffff);
	assert_reg(cfg, f->msi + PCI_MSI_PENDING_64, 4, 0);

	assert_int_equal(wr(cfg, flags, 2, 0), VFPM_PCICFG_EV_MSI);
	assert_false(vfpm_pcicfg_msi_enabled(cfg));
	assert_reg(cfg, flags, 2, caps);
}

static void test_msix_enable_and_function_mask(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	unsigned int flags = f->msix + PCI_MSIX_FLAGS;

	assert_reg(cfg, flags, 2, MSIX_VECTORS - 1);
	assert_reg(cfg, f->msix + PCI_MSIX_TABLE, 4, MSIX_BAR);
	assert_reg(cfg, f->msix + PCI_MSIX_PBA, 4, 0x800 | MSIX_BAR);
	wr(cfg, f->msix + PCI_MSIX_TABLE, 4, 0xffffffff);
	assert_reg(cfg, f->msix + PCI_MSIX_TABLE, 4, MSIX_BAR);

	assert_int_equal(wr(cfg, flags, 2, PCI_MSIX_FLAGS_ENABLE |
					   PCI_MSIX_FLAGS_MASKALL),
			 VFPM_PCICFG_EV_MSIX);
	assert_true(vfpm_pcicfg_msix_enabled(cfg));
	assert_true(vfpm_pcicfg_msix_function_masked(cfg));
	/* Table size is read-only. */
	assert_reg(cfg, flags, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL |
				  (MSIX_VECTORS - 1));
	assert_int_equal(wr(cfg, flags + 1, 1, PCI_MSIX_FLAGS_ENABLE >> 8),
			 VFPM_PCICFG_EV_MSIX);
	assert_true(vfpm_pcicfg_msix_enabled(cfg));
	assert_false(vfpm_pcicfg_msix_function_masked(cfg));
	assert_int_equal(wr(cfg, flags, 2, 0xffff & ~PCI_MSIX_FLAGS_ENABLE),
			 VFPM_PCICFG_EV_MSIX);
	assert_false(vfpm_pcicfg_msix_enabled(cfg));
	assert_true(vfpm_pcicfg_msix_function_masked(cfg));
}

static void test_pcie_capability_and_flr(void **state)
{
	const uint32_t devctl_default = PCI_EXP_DEVCTL_RELAX_EN |
					PCI_EXP_DEVCTL_NOSNOOP_EN |
					PCI_EXP_DEVCTL_READRQ_512B;
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	unsigned int devctl = f->pcie + PCI_EXP_DEVCTL;
	unsigned int devsta = f->pcie + PCI_EXP_DEVSTA;

	assert_reg(cfg, f->pcie + PCI_EXP_FLAGS, 2, 2 | PCI_EXP_TYPE_ENDPOINT << 4);
	assert_true(rd(cfg, f->pcie + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR);
	assert_reg(cfg, devctl, 2, devctl_default);
	wr(cfg, devctl, 2, 0x7fff);
	assert_reg(cfg, devctl, 2, 0x7fff & ~(PCI_EXP_DEVCTL_EXT_TAG |
					      PCI_EXP_DEVCTL_PHANTOM |
					      PCI_EXP_DEVCTL_AUX_PME));
	host_wr(cfg, devsta, 2, PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_URD);
	wr(cfg, devsta, 2, PCI_EXP_DEVSTA_URD);
	assert_reg(cfg, devsta, 2, PCI_EXP_DEVSTA_CED);

	/* Initiate FLR resets the function and always reads 0 ... */
	configure_function(f);
	wr(cfg, f->pcie + PCI_EXP_LNKCTL, 2, PCI_EXP_LNKCTL_CCC);
	assert_int_equal(wr(cfg, devctl, 2, PCI_EXP_DEVCTL_BCR_FLR |
					    PCI_EXP_DEVCTL_PAYLOAD_256B),
			 VFPM_PCICFG_EV_FLR);
	assert_reg(cfg, PCI_COMMAND, 2, 0);
	assert_reg(cfg, PCI_BASE_ADDRESS_2, 4, 0);
	assert_false(vfpm_pcicfg_msix_enabled(cfg));
	assert_false(vfpm_pcicfg_pme_enabled(cfg));
	assert_reg(cfg, devsta, 2, 0);
	/* ... except the link fields, Max_Payload_Size included. */
	assert_reg(cfg, devctl, 2, devctl_default | PCI_EXP_DEVCTL_PAYLOAD_256B);
	assert_reg(cfg, f->pcie + PCI_EXP_LNKCTL, 2, PCI_EXP_LNKCTL_CCC);
}

/* ---- access checking ---- */

static void test_bad_accesses_rejected(void **state)
{
	static const struct { uint64_t off; unsigned int size; } bad[] = {
		{ 0, 0 }, { 0, 3 }, { 0, 8 }, { 1, 4 }, { 2, 4 }, { 3, 2 },
		{ 0x3f, 2 }, { VFPM_PCICFG_SIZE, 1 }, { VFPM_PCICFG_SIZE - 2, 4 },
		{ VFPM_PCICFG_SIZE + 4, 4 }, { UINT64_MAX, 1 },
		{ UINT64_MAX - 3, 4 }, { UINT64_C(1) << 32, 4 },
	};
	static const struct { uint64_t off; size_t count; } bad_buf[] = {
		{ VFPM_PCICFG_SIZE - 4, 5 }, { VFPM_PCICFG_SIZE + 1, 0 },
		{ 1, VFPM_PCICFG_SIZE }, { UINT64_MAX, 2 }, { 2, SIZE_MAX },
		{ UINT64_MAX - 1, 4 },
	};
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	uint8_t before[VFPM_PCICFG_SIZE], after[VFPM_PCICFG_SIZE];
	uint8_t buf[VFPM_PCICFG_SIZE + 8];
	unsigned int events = 0x5a;
	uint32_t v = 0x12345678;

	configure_function(f);
	snapshot(cfg, before);
	for (size_t i = 0; i < N_ELEMS(bad); i++) {
		uint64_t off = bad[i].off;
		unsigned int n = bad[i].size;

		assert_int_equal(vfpm_pcicfg_guest_read(cfg, off, n, &v), -EINVAL);
		assert_int_equal(vfpm_pcicfg_host_read(cfg, off, n, &v), -EINVAL);
		assert_int_equal(vfpm_pcicfg_host_write(cfg, off, n, 0), -EINVAL);
		assert_int_equal(vfpm_pcicfg_guest_write(cfg, off, n, ~0u, &events),
				 -EINVAL);
	}
	for (size_t i = 0; i < N_ELEMS(bad_buf); i++) {
		uint64_t off = bad_buf[i].off;
		size_t count = bad_buf[i].count;

		memset(buf, 0xff, sizeof(buf));
		assert_int_equal(vfpm_pcicfg_guest_write_buf(cfg, off, buf, count,
							     &events), -EINVAL);
		memset(buf, 0xee, sizeof(buf));
		assert_int_equal(vfpm_pcicfg_guest_read_buf(cfg, off, buf, count),
				 -EINVAL);
		/* A rejected read leaves the caller's buffer alone. */
		for (size_t j = 0; j < sizeof(buf); j++)
			assert_int_equal(buf[j], 0xee);
	}
	assert_int_equal(vfpm_pcicfg_guest_read_buf(cfg, 0, NULL, 4), -EINVAL);
	/* Nothing was read, written or reported. */
	assert_int_equal(v, 0x12345678);
	assert_int_equal(events, 0x5a);
	snapshot(cfg, after);
	assert_memory_equal(before, after, VFPM_PCICFG_SIZE);

	/* The edges themselves are fine. */
	assert_reg(cfg, VFPM_PCICFG_SIZE - 4, 4, 0);
	assert_reg(cfg, 1, 2, 0x101b);
	assert_int_equal(vfpm_pcicfg_guest_read_buf(cfg, 4096, buf, 0), 0);
}

static void test_arbitrary_length_reads(void **state)
{
	static const size_t lens[] = { 1, 2, 3, 5, 6, 7, 9, 63, 255, 256, 4095 };
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	uint8_t expect[VFPM_PCICFG_SIZE], got[VFPM_PCICFG_SIZE];

	configure_function(f);
	for (unsigned int i = 0; i < VFPM_PCICFG_SIZE; i++)
		expect[i] = (uint8_t)rd(cfg, i, 1);
	for (uint64_t start = 0; start < 8; start++) {
		for (size_t i = 0; i < N_ELEMS(lens); i++) {
			uint64_t off = start + (i * 0x13) % 0x60;

			if (off + lens[i] > VFPM_PCICFG_SIZE)
				off = VFPM_PCICFG_SIZE - lens[i];
			memset(got, 0xcc, sizeof(got));
			assert_int_equal(vfpm_pcicfg_guest_read_buf(cfg, off, got,
								    lens[i]), 0);
			assert_memory_equal(got, &expect[off], lens[i]);
			assert_int_equal(got[lens[i]], 0xcc);
		}
	}
	assert_int_equal(vfpm_pcicfg_guest_read_buf(cfg, 0, got, sizeof(got)), 0);
	assert_memory_equal(got, expect, sizeof(got));
	/* Little-endian on the wire: the low byte comes first. */
	assert_int_equal(expect[PCI_VENDOR_ID], 0x36);
	assert_int_equal(expect[PCI_VENDOR_ID + 1], 0x1b);
	assert_int_equal(expect[PCI_BASE_ADDRESS_2 + 2], 0x10);
	assert_int_equal(expect[PCI_BASE_ADDRESS_2 + 3], 0xfe);
}

static void test_arbitrary_length_writes(void **state)
{
	static const uint8_t cmd_status[] = { 0x06, 0x00, 0x00, 0x00 };
	static const uint8_t bar[] = { 0x00, 0x10, 0xfe, 0x01, 0x00, 0x00 };
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	uint8_t space[VFPM_PCICFG_SIZE];
	unsigned int events = 0;
	uint64_t addr;

	assert_int_equal(vfpm_pcicfg_guest_write_buf(cfg, PCI_COMMAND, cmd_status,
						     4, &events), 0);
	assert_int_equal(events, VFPM_PCICFG_EV_COMMAND);
	assert_true(vfpm_pcicfg_memory_enabled(cfg));
	assert_true(vfpm_pcicfg_bus_master(cfg));
	/* Six bytes from an odd offset, split 1 + 2 + 2 + 1. */
	assert_int_equal(vfpm_pcicfg_guest_write_buf(cfg, PCI_BASE_ADDRESS_0 + 1,
						     bar, sizeof(bar), &events), 0);
	assert_int_equal(events, VFPM_PCICFG_EV_BAR);
	assert_int_equal(vfpm_pcicfg_get_bar(cfg, 0, NULL, &addr), 0);
	assert_int_equal(addr, UINT64_C(0x1fe100000));
	/* The whole space at once: PMCSR and MSI-X control change together. */
	snapshot(cfg, space);
	space[f->pm + PCI_PM_CTRL] |= VFPM_PCI_D3HOT;
	space[f->msix + PCI_MSIX_FLAGS + 1] |= PCI_MSIX_FLAGS_ENABLE >> 8;
	assert_int_equal(vfpm_pcicfg_guest_write_buf(cfg, 0, space, sizeof(space),
						     &events), 0);
	assert_int_equal(events, VFPM_PCICFG_EV_POWER_STATE | VFPM_PCICFG_EV_MSIX);
	assert_int_equal(vfpm_pcicfg_power_state(cfg), VFPM_PCI_D3HOT);
	assert_true(vfpm_pcicfg_msix_enabled(cfg));
	assert_int_equal(vfpm_pcicfg_guest_write_buf(cfg, 7, space, 0, &events), 0);
	assert_int_equal(events, 0);
}

static void test_reset_restores_power_on_state(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pcicfg *cfg = &f->cfg;
	uint8_t power_on[VFPM_PCICFG_SIZE], now[VFPM_PCICFG_SIZE];

	snapshot(cfg, power_on);
	configure_function(f);
	host_wr(cfg, PCI_STATUS, 2, PCI_STATUS_CAP_LIST | PCI_STATUS_PARITY);
	wr(cfg, f->pm + PCI_PM_CTRL, 2, VFPM_PCI_D3HOT);
	assert_int_equal(vfpm_pcicfg_set_pme_status(cfg), 0);
	snapshot(cfg, now);
	assert_memory_not_equal(now, power_on, VFPM_PCICFG_SIZE);
	vfpm_pcicfg_reset(cfg);
	snapshot(cfg, now);
	assert_memory_equal(now, power_on, VFPM_PCICFG_SIZE);
	assert_int_equal(vfpm_pcicfg_power_state(cfg), VFPM_PCI_D0);
	assert_false(vfpm_pcicfg_pme_enabled(cfg));
	/* Masks survive the reset: BARs still size. */
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_2), 0xfffff000);
}

/* Spaces built alike hold one layout; each keeps its own live bytes and outlives the others. */
static void test_spaces_built_alike_share_layout(void **state)
{
	struct vfpm_pcicfg *a = new_bare_device(), *b = new_bare_device(), *c = new_bare_device();

	(void)state;
	assert_int_equal(declare_bar(a, 0, VFPM_PCICFG_BAR_MEM32, 4096, 0), 0);
	assert_int_equal(declare_bar(b, 0, VFPM_PCICFG_BAR_MEM32, 4096, 0), 0);
	assert_int_equal(declare_bar(c, 0, VFPM_PCICFG_BAR_MEM32, 8192, 0), 0);
	vfpm_pcicfg_share(a);
	vfpm_pcicfg_share(b);
	vfpm_pcicfg_share(c);
	assert_ptr_equal(a->power_on, b->power_on);
	assert_ptr_not_equal(a->power_on, c->power_on);

	wr(a, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_true(vfpm_pcicfg_memory_enabled(a));
	assert_false(vfpm_pcicfg_memory_enabled(b));
	vfpm_pcicfg_release(a);
	test_free(a);
	assert_int_equal(size_bar(b, PCI_BASE_ADDRESS_0), 0xfffff000);
	wr(b, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	vfpm_pcicfg_reset(b);
	assert_false(vfpm_pcicfg_memory_enabled(b));
	assert_int_equal(size_bar(c, PCI_BASE_ADDRESS_0), 0xffffe000);
	vfpm_pcicfg_release(b);
	vfpm_pcicfg_release(c);
	test_free(b);
	test_free(c);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_soft_reset, teardown)
#define T_NSR(fn) \
	cmocka_unit_test_setup_teardown(fn, setup_no_soft_reset, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_header_identity_is_read_only),
		T(test_capability_list_walk),
		cmocka_unit_test(test_build_rejects_bad_declarations),
		cmocka_unit_test(test_minimal_device_hardwires_optional_bits),
		T(test_command_register),
		T(test_status_rw1c),
		T(test_bar_sizing_32bit),
		T(test_bar_sizing_64bit),
		T(test_bar_sizing_io_and_unimplemented),
		T_NSR(test_pmcsr_d3hot_roundtrip_no_soft_reset),
		T(test_pmcsr_d3hot_to_d0_soft_reset),
		T(test_host_set_power_state),
		T(test_pmcsr_fields_and_unsupported_states),
		T(test_pme_status_rw1c),
		T(test_msi_enable_and_mask),
		T(test_msix_enable_and_function_mask),
		T(test_pcie_capability_and_flr),
		T(test_bad_accesses_rejected),
		T(test_arbitrary_length_reads),
		T(test_arbitrary_length_writes),
		T(test_reset_restores_power_on_state),
		cmocka_unit_test(test_spaces_built_alike_share_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
