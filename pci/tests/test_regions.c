// SPDX-License-Identifier: MIT
/*
 * BAR and config regions of a PCI device under runtime power management
 * (issue 3): revocation of the user's BAR mappings in low power, with
 * memory space disabled and in D3hot, the power state across a runtime
 * suspend, bad region and info arguments, and host-side config access.
 * Expected results are Linux 6.1 vfio-pci's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "pci_test_util.h"

static int setup_open(void **state)
{
	return tm_fixture_setup(state, true);
}

static int teardown(void **state)
{
	return tm_fixture_teardown(state);
}

/* ---- touching a mapping that may be revoked ---- */

static sigjmp_buf fault_jump;
static volatile sig_atomic_t fault_armed;

static void on_sigbus(int sig)
{
	(void)sig;
	if (fault_armed)
		siglongjmp(fault_jump, 1);
	abort();
}

/* Read (or write `value` to) one byte of a mapping; true when that raised SIGBUS. */
static bool touch_faults(volatile uint8_t *p, bool write, uint8_t value)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	volatile bool faulted = false;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(fault_jump, 1) == 0) {
		fault_armed = 1;
		if (write)
			*p = value;
		else
			(void)*p;
	} else {
		faulted = true;
	}
	fault_armed = 0;
	sigaction(SIGBUS, &old, NULL);
	return faulted;
}

static bool mapping_faults(uint8_t *map, size_t size)
{
	/* First and last byte, read and write (writing back what must be there). */
	return touch_faults(map, false, 0) && touch_faults(map + size - 1, false, 0) &&
	       touch_faults(map, true, 0) && touch_faults(map + size - 1, true, 0);
}

static uint8_t bar0_pattern(size_t i)
{
	return (uint8_t)(i * 13 + 1);
}

/* The mapping works again and still holds the pattern written earlier. */
static void assert_mapping_intact(uint8_t *map)
{
	assert_false(touch_faults(map, false, 0));
	for (size_t i = 0; i < TM_BAR0_SIZE; i++)
		if (map[i] != bar0_pattern(i))
			fail_msg("BAR0 byte %zu is %#x, not %#x", i, map[i], bar0_pattern(i));
}

/* Region info of BAR0, memory enabled, mapped, a pattern written through the mapping. */
static uint8_t *map_bar0(struct tm_fixture *fx, int *memfd_out)
{
	struct vfio_region_info info;
	uint8_t check[16];
	uint8_t *map;
	int memfd = -1;

	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, sizeof(info), &info,
					&memfd), 0);
	assert_true(memfd >= 0);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_READ);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_WRITE);
	assert_int_equal(info.size, TM_BAR0_SIZE);
	assert_int_equal(info.offset, VFPM_REGION_OFFSET(VFIO_PCI_BAR0_REGION_INDEX));

	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	map = mmap(NULL, TM_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(map != MAP_FAILED);
	assert_false(touch_faults(map, false, 0));
	for (size_t i = 0; i < TM_BAR0_SIZE; i++)
		map[i] = bar0_pattern(i);
	/* The region read sees what the mapping wrote: same memory. */
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0x100, check,
				 sizeof(check)), sizeof(check));
	for (size_t i = 0; i < sizeof(check); i++)
		assert_int_equal(check[i], bar0_pattern(0x100 + i));
	*memfd_out = memfd;
	return map;
}

static void unmap_bar0(uint8_t *map, int memfd)
{
	munmap(map, TM_BAR0_SIZE);
	close(memfd);
}

/* ---- low power revokes the mappings ---- */

static void test_mmap_revoked_in_low_power(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int memfd, resumes;
	uint8_t *map = map_bar0(fx, &memfd);
	uint32_t value = 0;

	assert_int_equal(tm_entry(fx->inst), 0);
	/* Revoked by ENTRY itself, before the suspend. */
	assert_true(touch_faults(map, false, 0));
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);

	resumes = atomic_load(&m->resumes);
	assert_true(mapping_faults(map, TM_BAR0_SIZE));
	/* A faulting access never wakes the device. */
	vfpm_pm_barrier(m->pm);
	assert_int_equal(atomic_load(&m->resumes), resumes);
	assert_int_equal(vfpm_pm_status(m->pm), VFPM_PM_SUSPENDED);

	/* A request wakes it, but with plain ENTRY the mapping stays revoked. */
	assert_int_equal(tm_cfg_read(fx->inst, PCI_VENDOR_ID, 2, &value), 0);
	assert_int_equal(atomic_load(&m->resumes), resumes + 1);
	assert_true(mapping_faults(map, TM_BAR0_SIZE));
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);

	assert_int_equal(tm_exit(fx->inst), 0);
	assert_mapping_intact(map);
	/* And it is the live BAR again: the region read sees a new write. */
	map[0x200] = 0xa5;
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0x200, &value, 1), 1);
	assert_int_equal(value & 0xff, 0xa5);
	map[0x200] = bar0_pattern(0x200);
	unmap_bar0(map, memfd);
}

static void test_mmap_revoked_until_wakeup(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int memfd, resumes;
	uint8_t *map = map_bar0(fx, &memfd);
	int efd = tm_eventfd_new();

	assert_true(efd >= 0);
	assert_int_equal(tm_entry_wakeup(fx->inst, efd, NULL), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	resumes = atomic_load(&m->resumes);
	assert_true(mapping_faults(map, TM_BAR0_SIZE));
	vfpm_pm_barrier(m->pm);
	assert_int_equal(atomic_load(&m->resumes), resumes);
	assert_int_equal(vfpm_pm_status(m->pm), VFPM_PM_SUSPENDED);
	assert_int_equal(tm_eventfd_take(efd), 0);	/* a fault is no wakeup either */

	/* A request wakes it and leaves low power: the mapping works again. */
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(tm_eventfd_take(efd), 1);
	assert_mapping_intact(map);
	assert_true(tm_stays_active(m, 0));

	close(efd);
	unmap_bar0(map, memfd);
}

/* ---- memory space disabled ---- */

static void test_mmap_and_read_refused_without_memory_space(void **state)
{
	struct tm_fixture *fx = *state;
	struct vfio_region_info info;
	uint8_t buf[8];
	uint8_t *map;
	int memfd;

	/* Open resets the function: memory space is off. */
	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, sizeof(info), &info,
					&memfd), 0);
	assert_true(memfd >= 0);
	map = mmap(NULL, TM_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	assert_true(map != MAP_FAILED);
	assert_true(mapping_faults(map, TM_BAR0_SIZE));
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, 0, buf, sizeof(buf)), -EIO);

	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	assert_false(touch_faults(map, true, 0x3c));
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0, buf, sizeof(buf)),
			 sizeof(buf));
	assert_int_equal(buf[0], 0x3c);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, 0, buf, sizeof(buf)),
			 sizeof(buf));
	assert_int_equal(buf[0], tm_bar2_pattern(0));

	assert_int_equal(tm_set_memory(fx->inst, false), 0);
	assert_true(mapping_faults(map, TM_BAR0_SIZE));
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0, buf, sizeof(buf)), -EIO);
	/* No power management involved: the device stayed awake throughout. */
	assert_true(tm_stays_active(fx->m, 0));

	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	assert_false(touch_faults(map, false, 0));
	assert_int_equal(map[0], 0x3c);
	munmap(map, TM_BAR0_SIZE);
	close(memfd);
}

/* ---- D3hot ---- */

static unsigned int pmcsr_offset(struct tm_fixture *fx)
{
	unsigned int pm = tm_find_cap(fx->inst, PCI_CAP_ID_PM);

	assert_true(pm >= PCI_STD_HEADER_SIZEOF);
	return pm + PCI_PM_CTRL;
}

static void set_power_state(struct tm_fixture *fx, unsigned int state)
{
	unsigned int off = pmcsr_offset(fx);
	uint32_t pmcsr;

	assert_int_equal(tm_cfg_read(fx->inst, off, 2, &pmcsr), 0);
	pmcsr = (pmcsr & ~(uint32_t)PCI_PM_CTRL_STATE_MASK) | state;
	assert_int_equal(tm_cfg_write(fx->inst, off, 2, pmcsr), 0);
	assert_int_equal(tm_cfg_read(fx->inst, off, 2, &pmcsr), 0);
	assert_int_equal(pmcsr & PCI_PM_CTRL_STATE_MASK, state);
}

static void test_d3hot_refuses_bar_memory(void **state)
{
	struct tm_fixture *fx = *state;
	int memfd;
	uint8_t *map = map_bar0(fx, &memfd);
	uint8_t buf[8];
	uint32_t cmd;

	set_power_state(fx, 3);
	assert_int_equal(vfpm_pci_power_state(fx->m->pdev), 3);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, 0, buf, sizeof(buf)), -EIO);
	assert_true(mapping_faults(map, TM_BAR0_SIZE));
	/* Config space still answers. */
	assert_int_equal(tm_cfg_read(fx->inst, PCI_VENDOR_ID, 2, &cmd), 0);
	assert_int_equal(cmd, TM_VENDOR_ID);

	set_power_state(fx, 0);
	assert_int_equal(vfpm_pci_power_state(fx->m->pdev), 0);
	/* vfio-pci restores the state saved on D3hot entry: memory is still on. */
	assert_int_equal(tm_cfg_read(fx->inst, PCI_COMMAND, 2, &cmd), 0);
	assert_true(cmd & PCI_COMMAND_MEMORY);
	assert_false(touch_faults(map, true, 0x77));
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0, buf, sizeof(buf)),
			 sizeof(buf));
	assert_int_equal(buf[0], 0x77);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, 8, buf, sizeof(buf)),
			 sizeof(buf));
	assert_int_equal(buf[0], tm_bar2_pattern(8));
	assert_true(tm_stays_active(fx->m, 0));
	unmap_bar0(map, memfd);
}

static void test_d3hot_then_low_power_wakes_in_d0(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	int memfd;
	uint8_t *map = map_bar0(fx, &memfd);
	uint8_t buf[4];
	uint32_t pmcsr;
	int resumes;

	set_power_state(fx, 3);
	assert_int_equal(tm_entry(fx->inst), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	/* The runtime suspend put the function back in D0 first. */
	assert_int_equal(vfpm_pci_power_state(m->pdev), 0);

	resumes = atomic_load(&m->resumes);
	assert_int_equal(tm_get_info(fx->inst, sizeof(struct vfio_device_info)), 0);
	assert_int_equal(atomic_load(&m->resumes), resumes + 1);
	assert_int_equal(tm_cfg_read(fx->inst, pmcsr_offset(fx), 2, &pmcsr), 0);
	assert_int_equal(pmcsr & PCI_PM_CTRL_STATE_MASK, 0);

	assert_int_equal(tm_exit(fx->inst), 0);
	/* D0 with memory on: BAR memory is usable again. */
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0, buf, sizeof(buf)),
			 sizeof(buf));
	assert_false(touch_faults(map, false, 0));
	unmap_bar0(map, memfd);
}

/* ---- the MSI-X BAR ---- */

static void test_msix_bar_region(void **state)
{
	struct tm_fixture *fx = *state;
	struct vfio_region_info info;
	uint8_t buf[8];
	int memfd = -1;

	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_BAR4_REGION_INDEX, sizeof(info), &info,
					&memfd), 0);
	assert_int_equal(info.size, TM_BAR4_SIZE);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_READ);
	if (fx->m->config.msix_mappable) {
		/* Mappable except the table: a sparse mmap capability, which needs room. */
		assert_true(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
		assert_true(info.flags & VFIO_REGION_INFO_FLAG_CAPS);
		assert_true(info.argsz > sizeof(info));
		assert_true(memfd >= 0);
		close(memfd);
	} else {
		assert_false(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
		assert_int_equal(memfd, -1);
	}
	/* The table is the VMM's to emulate: reads give ones. */
	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR4_REGION_INDEX, 0, buf, sizeof(buf)),
			 sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xff);
	/* The MEM64's upper half is no region of its own. */
	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_BAR5_REGION_INDEX, sizeof(info), &info,
					NULL), 0);
	assert_int_equal(info.size, 0);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR5_REGION_INDEX, 0, buf, sizeof(buf)),
			 -EINVAL);
}

/* ---- bad input ---- */

static void test_bad_region_index_does_not_resume(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	const unsigned int bad[] = { VFIO_PCI_NUM_REGIONS, VFIO_PCI_NUM_REGIONS + 1, 0xffffff };
	uint8_t buf[8] = { 0 };
	int resumes;

	assert_int_equal(tm_entry(fx->inst), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	resumes = atomic_load(&m->resumes);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(tm_read(fx->inst, bad[i], 0, buf, sizeof(buf)), -EINVAL);
		assert_int_equal(tm_write(fx->inst, bad[i], 0, buf, sizeof(buf)), -EINVAL);
	}
	vfpm_pm_barrier(m->pm);
	assert_int_equal(atomic_load(&m->resumes), resumes);
	assert_int_equal(vfpm_pm_status(m->pm), VFPM_PM_SUSPENDED);
	assert_int_equal(tm_exit(fx->inst), 0);
}

static void test_bad_bar_offsets(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	uint8_t buf[16];
	uint8_t one = 0x42;
	long accesses;

	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	accesses = atomic_load(&m->bar_accesses);

	/* At or beyond the end of the BAR. */
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, TM_BAR2_SIZE, buf, 1),
			 -EINVAL);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, TM_BAR2_SIZE, buf, 1),
			 -EINVAL);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX,
				 VFPM_REGION_OFFSET_MASK, buf, 1), -EINVAL);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, TM_BAR0_SIZE, buf, 1),
			 -EINVAL);
	/* BARs the function does not have, no ROM, no VGA. */
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR1_REGION_INDEX, 0, buf, 4), -EINVAL);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR3_REGION_INDEX, 0, buf, 4), -EINVAL);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_ROM_REGION_INDEX, 0, buf, 4), -EINVAL);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_VGA_REGION_INDEX, 0, buf, 4), -EINVAL);
	assert_int_equal(atomic_load(&m->bar_accesses), accesses);

	/* Crossing the end: the part inside is done. */
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, TM_BAR2_SIZE - 6, buf,
				 sizeof(buf)), 6);
	for (unsigned int i = 0; i < 6; i++)
		assert_int_equal(buf[i], tm_bar2_pattern(TM_BAR2_SIZE - 6 + i));
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, TM_BAR0_SIZE - 4, buf,
				 sizeof(buf)), 4);

	/* offset + count overflows: clamped to the one byte left. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, TM_BAR2_SIZE - 1, buf,
				 SIZE_MAX), 1);
	assert_int_equal(buf[0], tm_bar2_pattern(TM_BAR2_SIZE - 1));
	assert_int_equal(buf[1], 0);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, TM_BAR2_SIZE - 1, &one,
				  SIZE_MAX), 1);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, TM_BAR2_SIZE - 1, buf, 1),
			 1);
	assert_int_equal(buf[0], 0x42);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, TM_BAR0_SIZE - 1, buf,
				 SIZE_MAX), 1);
	assert_true(tm_stays_active(m, 0));
}

static void test_bad_config_offsets(void **state)
{
	struct tm_fixture *fx = *state;
	uint8_t buf[8] = { 0 };
	uint32_t vendor;

	assert_int_equal(tm_read(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, 4096, buf, 4), -EFAULT);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, 4096, buf, 1), -EFAULT);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, 4094, buf, 4), -EFAULT);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, 0x100000, buf, 4),
			 -EFAULT);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, 4095, buf, SIZE_MAX),
			 -EFAULT);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, 4094, buf, 4), -EFAULT);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, 4096, buf, 4), -EFAULT);
	/* The last dword is fine. */
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, 4092, buf, 4), 4);
	assert_int_equal(tm_cfg_read(fx->inst, PCI_VENDOR_ID, 2, &vendor), 0);
	assert_int_equal(vendor, TM_VENDOR_ID);
	assert_true(tm_stays_active(fx->m, 0));
}

static void test_region_info_errors(void **state)
{
	struct tm_fixture *fx = *state;
	struct vfio_region_info info;
	int memfd;

	assert_int_equal(tm_region_info(fx->inst, 0, 0, &info, NULL), -EINVAL);
	assert_int_equal(tm_region_info(fx->inst, 0, sizeof(info) - 1, &info, NULL), -EINVAL);
	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 16, &info, &memfd),
			 -EINVAL);
	assert_int_equal(memfd, -1);
	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_NUM_REGIONS, sizeof(info), &info, NULL),
			 -EINVAL);
	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_VGA_REGION_INDEX, sizeof(info), &info,
					NULL), -EINVAL);
	assert_int_equal(tm_region_info(fx->inst, 0xffffffffu, sizeof(info), &info, NULL), -EINVAL);

	/* What the valid indexes say. */
	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_CONFIG_REGION_INDEX, sizeof(info),
					&info, &memfd), 0);
	assert_int_equal(info.size, 4096);
	assert_int_equal(info.offset, VFPM_REGION_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX));
	assert_int_equal(info.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
	assert_int_equal(memfd, -1);
	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, sizeof(info), &info,
					&memfd), 0);
	assert_int_equal(info.size, TM_BAR2_SIZE);
	assert_int_equal(info.offset, VFPM_REGION_OFFSET(VFIO_PCI_BAR2_REGION_INDEX));
	assert_int_equal(info.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
	assert_int_equal(memfd, -1);
	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_BAR1_REGION_INDEX, sizeof(info), &info,
					NULL), 0);
	assert_int_equal(info.size, 0);
	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_ROM_REGION_INDEX, sizeof(info), &info,
					NULL), 0);
	assert_int_equal(info.size, 0);
	assert_true(tm_stays_active(fx->m, 0));
}

static long irq_info(struct vfpm_instance *inst, uint32_t argsz, uint32_t index,
		     struct vfio_irq_info *out)
{
	struct vfio_irq_info info = { .argsz = argsz, .index = index };
	struct vfpm_ubuf u = { .data = &info, .in_len = sizeof(info), .cap = sizeof(info) };
	long ret = vfpm_instance_ioctl(inst, VFIO_DEVICE_GET_IRQ_INFO, &u, NULL, NULL);

	if (out)
		*out = info;
	return ret;
}

/* A raw SET_IRQS header with this argsz and no more user memory than that. */
static long set_irqs_raw(struct vfpm_instance *inst, uint32_t argsz, uint32_t flags,
			 uint32_t index, uint32_t start, uint32_t count)
{
	uint64_t storage[8] = { 0 };
	struct vfio_irq_set hdr = {
		.argsz = argsz, .flags = flags, .index = index, .start = start, .count = count,
	};
	struct vfpm_ubuf u = { .data = storage };

	memcpy(storage, &hdr, sizeof(hdr));
	u.in_len = u.cap = argsz < sizeof(storage) ? (argsz > sizeof(hdr) ? argsz : sizeof(hdr))
						   : sizeof(storage);
	return vfpm_instance_ioctl(inst, VFIO_DEVICE_SET_IRQS, &u, NULL, NULL);
}

static void test_irq_info_and_set_irqs_errors(void **state)
{
	struct tm_fixture *fx = *state;
	struct vfio_irq_info info;
	const uint32_t ev_trigger = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	const uint32_t hdr = sizeof(struct vfio_irq_set);
	int32_t bad_fd;
	int efd;

	/* GET_IRQ_INFO */
	assert_int_equal(irq_info(fx->inst, 0, VFIO_PCI_INTX_IRQ_INDEX, NULL), -EINVAL);
	assert_int_equal(irq_info(fx->inst, sizeof(info) - 1, VFIO_PCI_INTX_IRQ_INDEX, NULL),
			 -EINVAL);
	assert_int_equal(irq_info(fx->inst, sizeof(info), VFIO_PCI_NUM_IRQS, NULL), -EINVAL);
	assert_int_equal(irq_info(fx->inst, sizeof(info), 0xffffffffu, NULL), -EINVAL);
	assert_int_equal(irq_info(fx->inst, sizeof(info), VFIO_PCI_INTX_IRQ_INDEX, &info), 0);
	assert_int_equal(info.count, 1);
	assert_int_equal(info.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
				     VFIO_IRQ_INFO_AUTOMASKED);
	assert_int_equal(irq_info(fx->inst, sizeof(info), VFIO_PCI_MSI_IRQ_INDEX, &info), 0);
	assert_int_equal(info.count, 1);
	assert_int_equal(info.flags, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE);
	assert_int_equal(irq_info(fx->inst, sizeof(info), VFIO_PCI_MSIX_IRQ_INDEX, &info), 0);
	assert_int_equal(info.count, TM_MSIX_VECTORS);
	assert_int_equal(irq_info(fx->inst, sizeof(info), VFIO_PCI_ERR_IRQ_INDEX, &info), 0);
	assert_int_equal(info.count, 1);
	assert_int_equal(irq_info(fx->inst, sizeof(info), VFIO_PCI_REQ_IRQ_INDEX, &info), 0);
	assert_int_equal(info.count, 1);

	/* SET_IRQS */
	assert_int_equal(set_irqs_raw(fx->inst, hdr - 1, ev_trigger, VFIO_PCI_INTX_IRQ_INDEX, 0, 0),
			 -EINVAL);
	assert_int_equal(set_irqs_raw(fx->inst, hdr, VFIO_IRQ_SET_DATA_NONE |
				      VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_NUM_IRQS, 0, 0),
			 -EINVAL);
	assert_int_equal(set_irqs_raw(fx->inst, hdr, VFIO_IRQ_SET_DATA_NONE |
				      VFIO_IRQ_SET_ACTION_TRIGGER | (1u << 6),
				      VFIO_PCI_INTX_IRQ_INDEX, 0, 0), -EINVAL);
	/* INTx has one vector. */
	assert_int_equal(set_irqs_raw(fx->inst, hdr, VFIO_IRQ_SET_DATA_NONE |
				      VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 1, 1),
			 -EINVAL);
	assert_int_equal(set_irqs_raw(fx->inst, hdr, VFIO_IRQ_SET_DATA_NONE |
				      VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_PCI_INTX_IRQ_INDEX, 0, 2),
			 -EINVAL);
	/* Two data types at once. */
	assert_int_equal(set_irqs_raw(fx->inst, hdr + 4, VFIO_IRQ_SET_DATA_NONE |
				      VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
				      VFIO_PCI_INTX_IRQ_INDEX, 0, 1), -EINVAL);
	/* An eventfd per vector, but argsz has no room for it. */
	assert_int_equal(set_irqs_raw(fx->inst, hdr, ev_trigger, VFIO_PCI_INTX_IRQ_INDEX, 0, 1),
			 -EINVAL);
	assert_int_equal(set_irqs_raw(fx->inst, hdr + 4, ev_trigger, VFIO_PCI_MSIX_IRQ_INDEX, 0,
				      2), -EINVAL);
	/* Not an open fd. */
	bad_fd = 1 << 20;
	assert_int_equal(tm_set_irqs(fx->inst, ev_trigger, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &bad_fd,
				     NULL), -EBADF);

	/* Nothing was enabled by all that: a trigger still sets up and fires. */
	efd = tm_eventfd_new();
	assert_true(efd >= 0);
	assert_int_equal(tm_set_irqs(fx->inst, ev_trigger, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &efd,
				     NULL), 0);
	vfpm_pci_intx_assert(fx->m->pdev);
	assert_int_equal(tm_eventfd_take(efd), 1);
	vfpm_pci_intx_deassert(fx->m->pdev);
	close(efd);
	assert_true(tm_stays_active(fx->m, 0));
}

/* ---- host-side access ---- */

static void test_host_cfg_access_resumes(void **state)
{
	struct tm_fixture *fx = *state;
	struct test_model *m = fx->m;
	uint32_t value = 0;
	int resumes;

	assert_int_equal(tm_entry(fx->inst), 0);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	resumes = atomic_load(&m->resumes);
	assert_int_equal(vfpm_pci_host_cfg_read(m->pdev, PCI_VENDOR_ID, 2, &value), 0);
	assert_int_equal(value, TM_VENDOR_ID);
	assert_int_equal(atomic_load(&m->resumes), resumes + 1);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);

	assert_int_equal(vfpm_pci_host_cfg_write(m->pdev, PCI_INTERRUPT_LINE, 1, 0x0b), 0);
	assert_int_equal(atomic_load(&m->resumes), resumes + 2);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);
	assert_int_equal(vfpm_pci_host_cfg_read(m->pdev, 4096, 4, &value), -EINVAL);
	assert_int_equal(tm_wait(m, VFPM_PM_SUSPENDED, TM_SOON_MS), 0);

	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(tm_cfg_read(fx->inst, PCI_INTERRUPT_LINE, 1, &value), 0);
	assert_int_equal(value, 0x0b);
}

static const struct tm_config mappable_msix = { .msix_mappable = true };
static const struct tm_config no_soft_reset = { .no_soft_reset = true };

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_open, teardown)
#define T_WITH(fn, config) \
	cmocka_unit_test_prestate_setup_teardown(fn, setup_open, teardown, (void *)&(config))

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_mmap_revoked_in_low_power),
		T(test_mmap_revoked_until_wakeup),
		T(test_mmap_and_read_refused_without_memory_space),
		T(test_d3hot_refuses_bar_memory),
		T_WITH(test_d3hot_refuses_bar_memory, no_soft_reset),
		T(test_d3hot_then_low_power_wakes_in_d0),
		T_WITH(test_d3hot_then_low_power_wakes_in_d0, no_soft_reset),
		T(test_msix_bar_region),
		T_WITH(test_msix_bar_region, mappable_msix),
		T(test_bad_region_index_does_not_resume),
		T(test_bad_bar_offsets),
		T(test_bad_config_offsets),
		T(test_region_info_errors),
		T(test_irq_info_and_set_irqs_errors),
		T(test_host_cfg_access_resumes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
