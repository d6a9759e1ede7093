// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: PCI configuration space accesses (pci/config.h, the PCI
 * core's private API), on a space built from the input.
 *
 * Input: a build description (BAR types and sizes, which capabilities, MSI
 * and MSI-X vector counts), then operations, each u8 op, u16 offset,
 * u8 size, u32 value: guest and host reads and writes (single and buffer,
 * offsets and sizes at and past every bound), reset, power state changes,
 * PME, and the state queries.
 *
 * Checked, as long as no raw host write has happened: the read-only
 * identity registers and the capability list never change whatever the
 * guest writes (resets included); a failed access changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"

static const uint64_t bar_sizes[] = { 16, 256, 4096, 65536, 1u << 20, 1ull << 31, 1ull << 32 };

/* The registers a guest can never change (they only ever go back to power-on). */
static const struct { uint16_t off, size; } ro_regs[] = {
	{ PCI_VENDOR_ID, 2 }, { PCI_DEVICE_ID, 2 }, { PCI_CLASS_REVISION, 4 },
	{ PCI_HEADER_TYPE, 1 }, { PCI_CAPABILITY_LIST, 1 }, { PCI_SUBSYSTEM_VENDOR_ID, 2 },
	{ PCI_SUBSYSTEM_ID, 2 }, { PCI_INTERRUPT_PIN, 1 },
};

static void fail(const char *what, uint64_t off)
{
	fprintf(stderr, "fuzz_config: %s (offset %#llx)\n", what, (unsigned long long)off);
	abort();
}

static int build(struct vfpm_pcicfg *cfg, struct fuzz_in *in)
{
	struct vfpm_pcicfg_ids ids = {
		.vendor_id = 0x1b36, .device_id = fuzz_u16(in),
		.subsystem_vendor_id = 0x1b36, .subsystem_id = 1,
		.revision = fuzz_u8(in), .class_code = 0xff0000,
		.interrupt_pin = fuzz_u8(in) % 5,
	};
	uint8_t caps = fuzz_u8(in);
	int err = vfpm_pcicfg_init(cfg, &ids);

	if (err)
		return err;
	for (unsigned int i = 0; i < PCI_STD_NUM_BARS; i++) {
		uint8_t b = fuzz_u8(in);
		struct vfpm_pcicfg_bar_desc bar = {
			.type = b % 4,	/* NONE, MEM32, MEM64, IO */
			.size = bar_sizes[(b >> 2) % (sizeof(bar_sizes) / sizeof(bar_sizes[0]))],
			.prefetchable = b & 0x80,
		};

		if (bar.type == VFPM_PCICFG_BAR_IO)
			bar.size = 4u << ((b >> 2) % 7);
		if (bar.type != VFPM_PCICFG_BAR_NONE)
			vfpm_pcicfg_set_bar(cfg, i, &bar);	/* a refused BAR is fine */
	}
	if (caps & 1) {
		struct vfpm_pcicfg_pm_params pm = {
			.no_soft_reset = caps & 2,
			.pme_support = (caps & 4) ? PCI_PM_CAP_PME_D0 | PCI_PM_CAP_PME_D3hot : 0,
		};

		vfpm_pcicfg_add_pm_cap(cfg, &pm, NULL);
	}
	if (caps & 8) {
		struct vfpm_pcicfg_msi_params msi = {
			.vectors = 1u << (fuzz_u8(in) % 6), .per_vector_mask = caps & 0x10,
		};

		vfpm_pcicfg_add_msi_cap(cfg, &msi, NULL);
	}
	if (caps & 0x20) {
		struct vfpm_pcicfg_msix_params msix = {
			.vectors = 1 + fuzz_u16(in) % 2048,
			.table_bir = fuzz_u8(in) % 6, .table_offset = 0,
		};

		msix.pba_bir = msix.table_bir;
		msix.pba_offset = (msix.vectors * 16 + 7) & ~7u;
		vfpm_pcicfg_add_msix_cap(cfg, &msix, NULL);
	}
	if (caps & 0x40) {
		struct vfpm_pcicfg_pcie_params pcie = {
			.flr = caps & 0x80, .max_payload = fuzz_u8(in) % 6,
		};

		vfpm_pcicfg_add_pcie_cap(cfg, &pcie, NULL);
	}
	return 0;
}

static void check_ro(const struct vfpm_pcicfg *cfg, const uint16_t caps[4])
{
	static const uint8_t ids[4] = { PCI_CAP_ID_PM, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX,
					PCI_CAP_ID_EXP };

	for (unsigned int i = 0; i < sizeof(ro_regs) / sizeof(ro_regs[0]); i++) {
		if (memcmp(cfg->live + ro_regs[i].off, cfg->power_on + ro_regs[i].off,
			   ro_regs[i].size))
			fail("a read-only register changed", ro_regs[i].off);
	}
	for (unsigned int i = 0; i < 4; i++) {
		uint16_t off = 0;

		vfpm_pcicfg_find_cap(cfg, ids[i], &off);
		if (off != caps[i])
			fail("the capability list changed", off);
	}
}

static void one_op(struct vfpm_pcicfg *cfg, struct fuzz_in *in, bool *raw)
{
	static const unsigned int sizes[] = { 1, 2, 4, 0, 3, 8 };
	static uint8_t before[VFPM_PCICFG_SIZE];
	uint8_t op = fuzz_u8(in);
	/* Offsets reach past the space, and sometimes far past it. */
	uint64_t off = fuzz_u16(in);
	uint8_t sz = fuzz_u8(in);
	uint32_t value = fuzz_u32(in);
	unsigned int size = sizes[sz % 6];
	size_t count = (size_t)sz * 17;
	uint8_t buf[4096 + 64];
	unsigned int events = 0;
	uint64_t a;
	uint32_t d;
	int err;

	if (op & 0x80)
		off = (off << 48) | value;
	memcpy(before, cfg->live, sizeof(before));
	switch (op % 12) {
	case 0:
	case 1:
		err = vfpm_pcicfg_guest_write(cfg, off, size, value, &events);
		if (err && memcmp(before, cfg->live, sizeof(before)))
			fail("a failed guest write changed the space", off);
		break;
	case 2:
		err = vfpm_pcicfg_guest_read(cfg, off, size, &value);
		if (!err && memcmp(before, cfg->live, sizeof(before)))
			fail("a guest read changed the space", off);
		break;
	case 3:
		memset(buf, (int)value, sizeof(buf));
		err = vfpm_pcicfg_guest_write_buf(cfg, off, buf, count, &events);
		if (err && memcmp(before, cfg->live, sizeof(before)))
			fail("a failed buffer write changed the space", off);
		break;
	case 4:
		if (count <= sizeof(buf))
			vfpm_pcicfg_guest_read_buf(cfg, off, buf, count);
		break;
	case 5:
		/* Raw writes may break anything the checks look at. */
		if (!vfpm_pcicfg_host_write(cfg, off, size, value))
			*raw = true;
		break;
	case 6:
		vfpm_pcicfg_host_read(cfg, off, size, &value);
		break;
	case 7:
		vfpm_pcicfg_reset(cfg);
		break;
	case 8:
		vfpm_pcicfg_set_power_state(cfg, (value & 1) ? VFPM_PCI_D3HOT : VFPM_PCI_D0, &events);
		break;
	case 9:
		vfpm_pcicfg_set_pme_status(cfg);
		break;
	case 10:
		vfpm_pcicfg_msi_message(cfg, value % 40, &a, &d);
		vfpm_pcicfg_msi_vector_masked(cfg, value % 40);
		vfpm_pcicfg_msi_vectors(cfg);
		vfpm_pcicfg_msix_enabled(cfg);
		vfpm_pcicfg_msix_function_masked(cfg);
		break;
	default: {
		struct vfpm_pcicfg_bar_desc bar;

		vfpm_pcicfg_get_bar(cfg, value % 8, &bar, &a);
		vfpm_pcicfg_power_state(cfg);
		vfpm_pcicfg_pme_enabled(cfg);
		vfpm_pcicfg_memory_enabled(cfg);
		vfpm_pcicfg_io_enabled(cfg);
		vfpm_pcicfg_bus_master(cfg);
		vfpm_pcicfg_intx_disabled(cfg);
		vfpm_pcicfg_find_cap(cfg, (uint8_t)value, NULL);
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vfpm_pcicfg cfg;
	struct fuzz_in in = { .p = data, .left = size };
	uint16_t caps[4] = { 0 };
	bool raw = false;

	if (build(&cfg, &in))
		return 0;
	vfpm_pcicfg_share(&cfg);
	vfpm_pcicfg_find_cap(&cfg, PCI_CAP_ID_PM, &caps[0]);
	vfpm_pcicfg_find_cap(&cfg, PCI_CAP_ID_MSI, &caps[1]);
	vfpm_pcicfg_find_cap(&cfg, PCI_CAP_ID_MSIX, &caps[2]);
	vfpm_pcicfg_find_cap(&cfg, PCI_CAP_ID_EXP, &caps[3]);
	while (in.left) {
		one_op(&cfg, &in, &raw);
		if (!raw)
			check_ro(&cfg, caps);
	}
	vfpm_pcicfg_release(&cfg);
	return 0;
}
