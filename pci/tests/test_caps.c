// SPDX-License-Identifier: MIT
/*
 * The model's own configuration capabilities, as a user (a guest driver
 * walking the lists) sees them: two vendor-specific ones after the core's,
 * and two PCI Express extended ones at 0x100, with the model's hooks.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <vfpm/log.h>

#include "pci_test_util.h"

/* What the model's hooks saw and do. */
struct caps_model {
	struct vfpm_pci_dev *pdev;
	unsigned int reads;		/* read hook calls */
	unsigned int last_offset, last_count;
	uint8_t last_bytes[4];
	unsigned int writes;
	int fail;			/* what the hooks return */
	struct vfpm_instance *last_inst;	/* whose access the last hook saw */
};

/* Vendor cap 0: a "virtio"-style structure; byte 3 is a type, 4..7 writable. */
static const uint8_t vndr0_data[14] = { 0, 0x05, 0xaa, 0xbb, 0xcc, 0xdd };
static const uint8_t vndr0_wmask[14] = { 0, 0, 0xff, 0xff, 0xff, 0xff };
/* Vendor cap 1: its own length byte (8), then a counter the read hook supplies. */
static const uint8_t vndr1_data[6] = { 8 };
/* Extended cap: a vendor-specific one (ID 0x0b), 12 bytes, dword 1 writable. */
static const uint8_t ext_data[8] = { 0x0c, 0x10, 0x00, 0x00, 1, 2, 3, 4 };
static const uint8_t ext_wmask[8] = { 0xff, 0xff, 0xff, 0xff };

static int counter_read(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, void *opaque,
			unsigned int offset, void *buf, unsigned int count)
{
	struct caps_model *cm = opaque;

	cm->last_inst = inst;
	cm->reads++;
	cm->last_offset = offset;
	cm->last_count = count;
	if (cm->fail)
		return cm->fail;
	/* Bytes 4..7 of the capability: how many reads so far. */
	for (unsigned int i = 0; i < count; i++)
		if (offset + i >= 4)
			((uint8_t *)buf)[i] = (uint8_t)(cm->reads >> (8 * (offset + i - 4)));
	return 0;
}

static int ext_write(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, void *opaque,
		     unsigned int offset, const void *buf, unsigned int count)
{
	struct caps_model *cm = opaque;
	uint32_t v;

	cm->last_inst = inst;
	cm->writes++;
	cm->last_offset = offset;
	cm->last_count = count;
	memcpy(cm->last_bytes, buf, count);
	if (cm->fail)
		return cm->fail;
	/* The model answers in dword 2: the raw access, no masks. */
	if (vfpm_pci_cfg_raw_read(pdev, vfpm_pci_cap_offset(pdev, 2) + 4, 4, &v))
		return -EIO;
	return vfpm_pci_cfg_raw_write(pdev, vfpm_pci_cap_offset(pdev, 2) + 8, 4, ~v);
}

struct fixture {
	struct caps_model cm;
	struct vfpm_instance *inst;
};

static struct vfpm_pci_cap_desc caps_of(struct caps_model *cm, unsigned int i)
{
	const struct vfpm_pci_cap_desc caps[] = {
		{ .id = PCI_CAP_ID_VNDR, .size = 16, .data = vndr0_data, .wmask = vndr0_wmask },
		{ .id = PCI_CAP_ID_VNDR, .size = 8, .data = vndr1_data, .read = counter_read,
		  .opaque = cm },
		{ .extended = true, .id = PCI_EXT_CAP_ID_VNDR, .version = 1, .size = 12,
		  .data = ext_data, .wmask = ext_wmask, .write = ext_write, .opaque = cm },
		{ .extended = true, .id = PCI_EXT_CAP_ID_DSN, .version = 1, .size = 12 },
	};
	return caps[i];
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct vfpm_pci_cap_desc caps[4];
	struct vfpm_pci_desc d = {
		.name = "caps", .vendor_id = 0x1af4, .device_id = 0x10f9, .class_code = 0xff0000,
		.pm_cap = true, .pcie_cap = true, .msix_vectors = 2, .msix_bar = 4,
		.bars = { [4] = { .type = VFPM_PCI_BAR_MEM32, .size = 0x1000 } },
		.nr_caps = 4, .caps = caps,
	};

	if (!fx)
		return -1;
	for (unsigned int i = 0; i < 4; i++)
		caps[i] = caps_of(&fx->cm, i);
	if (vfpm_pci_dev_create(&d, NULL, &fx->cm, &fx->cm.pdev))
		return -1;
	/* The description was copied: the core keeps nothing of the caller's. */
	memset(caps, 0, sizeof(caps));
	if (vfpm_device_open(vfpm_pci_device(fx->cm.pdev), &fx->inst))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	vfpm_instance_close(fx->inst);
	vfpm_pci_dev_destroy(fx->cm.pdev);
	free(fx);
	return 0;
}

static uint32_t cfg(struct vfpm_instance *inst, unsigned int off, unsigned int size)
{
	uint32_t v = 0;

	assert_int_equal(tm_cfg_read(inst, off, size, &v), 0);
	return v;
}

static void test_standard_list(void **state)
{
	struct fixture *fx = *state;
	struct vfpm_pci_dev *pdev = fx->cm.pdev;
	unsigned int ids[8], offs[8], n = 0;

	/* The guest's walk: the core's capabilities, then the model's two. */
	for (unsigned int off = cfg(fx->inst, PCI_CAPABILITY_LIST, 1); off && n < 8;
	     off = cfg(fx->inst, off + PCI_CAP_LIST_NEXT, 1)) {
		ids[n] = cfg(fx->inst, off, 1);
		offs[n++] = off;
	}
	assert_int_equal(n, 5);
	assert_int_equal(ids[0], PCI_CAP_ID_PM);
	assert_int_equal(ids[1], PCI_CAP_ID_MSIX);
	assert_int_equal(ids[2], PCI_CAP_ID_EXP);
	assert_int_equal(ids[3], PCI_CAP_ID_VNDR);
	assert_int_equal(ids[4], PCI_CAP_ID_VNDR);
	assert_int_equal(vfpm_pci_cap_offset(pdev, 0), offs[3]);
	assert_int_equal(vfpm_pci_cap_offset(pdev, 1), offs[4]);
	assert_int_equal(vfpm_pci_cap_offset(pdev, 4), 0);
	assert_int_equal(offs[3] % 4, 0);

	/* Vendor cap 0: the core filled its length byte; the data follows. */
	assert_int_equal(cfg(fx->inst, offs[3] + 2, 1), 16);
	assert_int_equal(cfg(fx->inst, offs[3] + 3, 1), 0x05);
	assert_int_equal(cfg(fx->inst, offs[3] + 4, 4), 0xddccbbaa);
	/* Vendor cap 1 states its own length. */
	assert_int_equal(cfg(fx->inst, offs[4] + 2, 1), 8);
}

static void test_masks_and_reset(void **state)
{
	struct fixture *fx = *state;
	unsigned int off = vfpm_pci_cap_offset(fx->cm.pdev, 0);

	/* Only the bits wmask allows change: bytes 4..7, not the type at 3. */
	assert_int_equal(tm_cfg_write(fx->inst, off, 4, 0xffffffff), 0);
	assert_int_equal(cfg(fx->inst, off, 4), 0x0510u << 16 | PCI_CAP_ID_VNDR |
					       (cfg(fx->inst, off + 1, 1) << 8));
	assert_int_equal(tm_cfg_write(fx->inst, off + 4, 4, 0x12345678), 0);
	assert_int_equal(cfg(fx->inst, off + 4, 4), 0x12345678);
	/* A reset brings back the power-on bytes. */
	{
		struct vfpm_ubuf none = { 0 };

		assert_int_equal(vfpm_instance_ioctl(fx->inst, VFIO_DEVICE_RESET, &none, NULL, NULL),
				 0);
	}
	assert_int_equal(cfg(fx->inst, off + 4, 4), 0xddccbbaa);
}

static void test_read_hook(void **state)
{
	struct fixture *fx = *state;
	struct caps_model *cm = &fx->cm;
	unsigned int off = vfpm_pci_cap_offset(cm->pdev, 1);
	uint8_t bytes[12];
	uint32_t v;

	cm->reads = 0;
	assert_int_equal(cfg(fx->inst, off + 4, 4), 1);
	assert_ptr_equal(cm->last_inst, fx->inst);
	assert_int_equal(cm->last_offset, 4);
	assert_int_equal(cm->last_count, 4);
	assert_int_equal(cfg(fx->inst, off + 4, 4), 2);
	/* A read of a wider range calls the hook per dword of the capability only. */
	cm->reads = 0;
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, off - 2, bytes, 12), 12);
	assert_int_equal(cm->reads, 2);
	assert_int_equal(cm->last_offset, 4);
	assert_int_equal(bytes[2], PCI_CAP_ID_VNDR);
	assert_int_equal(bytes[6], 2);
	/* A failing hook fails the user's read. */
	cm->fail = -EIO;
	assert_int_equal(tm_cfg_read(fx->inst, off + 4, 4, &v), -EIO);
	cm->fail = 0;
}

static void test_extended_list_and_write_hook(void **state)
{
	struct fixture *fx = *state;
	struct caps_model *cm = &fx->cm;
	unsigned int ext = vfpm_pci_cap_offset(cm->pdev, 2);
	unsigned int dsn = vfpm_pci_cap_offset(cm->pdev, 3);
	uint32_t hdr = cfg(fx->inst, PCI_CFG_SPACE_SIZE, 4);

	/* The guest's walk of the extended list. */
	assert_int_equal(ext, PCI_CFG_SPACE_SIZE);
	assert_int_equal(PCI_EXT_CAP_ID(hdr), PCI_EXT_CAP_ID_VNDR);
	assert_int_equal(PCI_EXT_CAP_VER(hdr), 1);
	assert_int_equal(PCI_EXT_CAP_NEXT(hdr), dsn);
	hdr = cfg(fx->inst, dsn, 4);
	assert_int_equal(PCI_EXT_CAP_ID(hdr), PCI_EXT_CAP_ID_DSN);
	assert_int_equal(PCI_EXT_CAP_NEXT(hdr), 0);
	assert_int_equal(cfg(fx->inst, ext + 4, 4), 0x0000100c);
	/* The header is read-only; dword 1 is writable and the hook sees what landed. */
	assert_int_equal(tm_cfg_write(fx->inst, ext, 4, 0), 0);
	assert_int_equal(cfg(fx->inst, ext, 4), cfg(fx->inst, PCI_CFG_SPACE_SIZE, 4));
	cm->writes = 0;
	assert_int_equal(tm_cfg_write(fx->inst, ext + 4, 2, 0xbeef), 0);
	assert_int_equal(cm->writes, 1);
	assert_ptr_equal(cm->last_inst, fx->inst);
	assert_int_equal(cm->last_offset, 4);
	assert_int_equal(cm->last_count, 2);
	assert_int_equal(cm->last_bytes[0], 0xef);
	assert_int_equal(cm->last_bytes[1], 0xbe);
	/* Its raw write answered in dword 2, which the user cannot write. */
	assert_int_equal(cfg(fx->inst, ext + 8, 4), ~0x0000beefu);
	/* Dword 2 is read-only to the user, and no hook runs for it. */
	assert_int_equal(tm_cfg_write(fx->inst, ext + 8, 4, 0), 0);
	assert_int_equal(cfg(fx->inst, ext + 8, 4), ~0x0000beefu);
	assert_int_equal(cm->writes, 2);
	cm->fail = -EINVAL;
	assert_int_equal(tm_cfg_write(fx->inst, ext + 4, 4, 1), -EINVAL);
	cm->fail = 0;
}

/* ---- descriptions the core refuses ---- */

static char last_log[512];

static void capture_log(enum vfpm_log_level level, const char *msg, void *opaque)
{
	(void)opaque;
	if (level <= VFPM_LOG_ERR && !last_log[0])
		snprintf(last_log, sizeof(last_log), "%s", msg);
}

static void expect_refused(struct vfpm_pci_cap_desc *caps, unsigned int n, bool pcie, int err,
			   const char *why)
{
	struct vfpm_pci_desc d = {
		.vendor_id = 0x1af4, .device_id = 0x10f9, .pcie_cap = pcie,
		.nr_caps = n, .caps = caps,
	};
	struct vfpm_pci_dev *pdev = NULL;

	last_log[0] = '\0';
	vfpm_log_set(capture_log, NULL, VFPM_LOG_ERR);
	assert_int_equal(vfpm_pci_dev_create(&d, NULL, NULL, &pdev), err);
	vfpm_log_set(NULL, NULL, VFPM_LOG_ERR);
	assert_null(pdev);
	if (!strstr(last_log, why))
		fail_msg("log '%s' lacks '%s'", last_log, why);
}

static void test_bad_capabilities(void **state)
{
	struct vfpm_pci_cap_desc c[VFPM_PCI_CAPS_MAX + 1] = { 0 };

	(void)state;
	c[0] = (struct vfpm_pci_cap_desc){ .id = PCI_CAP_ID_VNDR, .size = 6 };
	expect_refused(c, 1, false, -EINVAL, "multiple of 4");
	c[0] = (struct vfpm_pci_cap_desc){ .extended = true, .id = 0x0b, .size = 8 };
	expect_refused(c, 1, false, -EINVAL, "needs the PCI Express capability");
	c[0] = (struct vfpm_pci_cap_desc){ .id = 0x109, .size = 8 };
	expect_refused(c, 1, false, -EINVAL, "8 bits");
	c[0] = (struct vfpm_pci_cap_desc){ .extended = true, .id = 0x0b, .version = 16, .size = 8 };
	expect_refused(c, 1, true, -EINVAL, "bad version");
	/* More than the standard space holds. */
	c[0] = (struct vfpm_pci_cap_desc){ .id = PCI_CAP_ID_VNDR, .size = 200 };
	expect_refused(c, 1, false, -ENOSPC, "no room");
	c[0] = (struct vfpm_pci_cap_desc){ .extended = true, .id = 0x0b, .size = 4000 };
	expect_refused(c, 1, true, -ENOSPC, "no room");
	expect_refused(c, VFPM_PCI_CAPS_MAX + 1, true, -EINVAL, "at most");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_standard_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_masks_and_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_hook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_extended_list_and_write_hook, setup, teardown),
		cmocka_unit_test(test_bad_capabilities),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
