// SPDX-License-Identifier: MIT
/*
 * Zero-copy DMA (vfpm_pci_dma_map/_unmap) over a DMA provider that can only
 * copy (no map op), as a user of the device core would give one: the core
 * bounces the whole range, and writes it back to the instance it came from.
 * The transport's in-place maps are tested in transport/tests/test_sgdma.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/pci_regs.h>

#include "pci_test_util.h"

#define MEM_BASE 0x10000u
#define MEM_SIZE 0x2000u

/* A user's memory: MEM_SIZE bytes at DMA address MEM_BASE, reached by copying. */
struct user_mem {
	uint8_t bytes[MEM_SIZE];
	unsigned int reads, writes;
};

static int user_mem_check(uint64_t iova, size_t len)
{
	if (iova < MEM_BASE || len > MEM_SIZE || iova - MEM_BASE > MEM_SIZE - len)
		return -EFAULT;
	return 0;
}

static int user_mem_read(void *opaque, uint64_t iova, void *buf, size_t len)
{
	struct user_mem *u = opaque;
	int err = user_mem_check(iova, len);

	if (err)
		return err;
	memcpy(buf, u->bytes + (iova - MEM_BASE), len);
	u->reads++;
	return 0;
}

static int user_mem_write(void *opaque, uint64_t iova, const void *buf, size_t len)
{
	struct user_mem *u = opaque;
	int err = user_mem_check(iova, len);

	if (err)
		return err;
	memcpy(u->bytes + (iova - MEM_BASE), buf, len);
	u->writes++;
	return 0;
}

static const struct vfpm_dma_ops copy_only_ops = {
	.read = user_mem_read, .write = user_mem_write,
};

static int setup(void **state)
{
	return tm_fixture_setup(state, true);
}

static int teardown(void **state)
{
	return tm_fixture_teardown(state);
}

static void bus_master(struct vfpm_instance *inst, bool on)
{
	assert_int_equal(tm_cfg_write(inst, PCI_COMMAND, 2, PCI_COMMAND_MEMORY |
				      (on ? PCI_COMMAND_MASTER : 0)), 0);
}

/* One bounce buffer for the whole range: read at map, written back at unmap. */
static void test_copy_only_provider_bounces(void **state)
{
	struct tm_fixture *fx = *state;
	struct vfpm_pci_dev *pdev = fx->m->pdev;
	static struct user_mem mem;
	struct iovec iov[2];
	struct vfpm_dma_sg sg;

	for (size_t i = 0; i < MEM_SIZE; i++)
		mem.bytes[i] = (uint8_t)(i * 7);
	vfpm_instance_set_dma(fx->inst, &copy_only_ops, &mem);
	assert_int_equal(vfpm_pci_dma_map(pdev, MEM_BASE, 16, PROT_READ, iov, 2, &sg), -EPERM);
	bus_master(fx->inst, true);

	assert_int_equal(vfpm_pci_dma_map(pdev, MEM_BASE + 0x100, 0x1000, PROT_READ | PROT_WRITE,
					  iov, 2, &sg), 0);
	assert_int_equal(sg.nr_iov, 1);
	assert_int_equal(iov[0].iov_len, 0x1000);
	assert_memory_equal(iov[0].iov_base, mem.bytes + 0x100, 0x1000);
	memset(iov[0].iov_base, 0xab, 8);
	assert_int_equal(mem.bytes[0x100], 0);	/* (0x100 * 7) & 0xff */
	assert_int_equal(vfpm_pci_dma_unmap(pdev, &sg), 0);
	assert_int_equal(mem.bytes[0x100], 0xab);
	assert_int_equal(mem.bytes[0x107], 0xab);
	assert_int_equal(mem.bytes[0x108], (uint8_t)(0x108 * 7));

	/* PROT_WRITE alone: the buffer starts as zeros and goes back whole. */
	assert_int_equal(vfpm_pci_dma_map(pdev, MEM_BASE, 0x10, PROT_WRITE, iov, 1, &sg), 0);
	assert_int_equal(((uint8_t *)iov[0].iov_base)[1], 0);
	((uint8_t *)iov[0].iov_base)[0] = 0x5c;
	assert_int_equal(vfpm_pci_dma_unmap(pdev, &sg), 0);
	assert_int_equal(mem.bytes[0], 0x5c);
	assert_int_equal(mem.bytes[1], 0);

	/* Outside the memory: PROT_READ is refused at once ... */
	mem.writes = 0;
	assert_int_equal(vfpm_pci_dma_map(pdev, MEM_BASE + MEM_SIZE - 8, 16, PROT_READ, iov, 1,
					  &sg), -EFAULT);
	/* ... PROT_WRITE alone, with nothing to check it against, at the write-back. */
	assert_int_equal(vfpm_pci_dma_map(pdev, MEM_BASE + MEM_SIZE - 8, 16, PROT_WRITE, iov, 1,
					  &sg), 0);
	assert_int_equal(vfpm_pci_dma_unmap(pdev, &sg), -EFAULT);
	assert_int_equal(mem.writes, 0);
}

/*
 * The write-back goes to the instance the range was mapped from, even when
 * another one has taken the device's DMA over meanwhile; once that instance
 * is closed, it fails.
 */
static void test_write_back_to_its_instance(void **state)
{
	struct tm_fixture *fx = *state;
	struct vfpm_pci_dev *pdev = fx->m->pdev;
	static struct user_mem a, b;
	struct vfpm_instance *other;
	struct iovec iov[1];
	struct vfpm_dma_sg sg, sg2;

	vfpm_instance_set_dma(fx->inst, &copy_only_ops, &a);
	assert_int_equal(vfpm_device_open(vfpm_pci_device(pdev), &other), 0);
	vfpm_instance_set_dma(other, &copy_only_ops, &b);
	bus_master(fx->inst, true);
	assert_int_equal(vfpm_pci_dma_map(pdev, MEM_BASE, 4, PROT_WRITE, iov, 1, &sg), 0);
	memcpy(iov[0].iov_base, "AAAA", 4);
	assert_int_equal(vfpm_pci_dma_map(pdev, MEM_BASE + 4, 4, PROT_WRITE, iov, 1, &sg2), 0);
	memcpy(iov[0].iov_base, "aaaa", 4);

	/* The other instance turns Bus Master Enable off and on: the device DMAs into b now. */
	bus_master(other, false);
	bus_master(other, true);
	assert_int_equal(vfpm_pci_dma_unmap(pdev, &sg), 0);
	assert_memory_equal(a.bytes, "AAAA", 4);
	assert_int_equal(b.writes, 0);

	/* a's instance closes under the hold: the write-back has nowhere to go. */
	vfpm_instance_close(fx->inst);
	fx->inst = NULL;
	assert_int_equal(vfpm_pci_dma_unmap(pdev, &sg2), -EFAULT);
	assert_int_equal(a.bytes[4], 0);
	assert_int_equal(b.writes, 0);
	vfpm_instance_close(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_copy_only_provider_bounces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_back_to_its_instance, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
