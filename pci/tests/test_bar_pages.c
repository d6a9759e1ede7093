// SPDX-License-Identifier: MIT
/*
 * What a revoked BAR costs and keeps: its contents survive a revocation and
 * a restoration exactly, wherever its data lies, and only the pages that
 * hold data take memory, in the anonymous copy while revoked and in the
 * file once restored.
 *
 * The function here (its own model):
 *  - BAR0, 1 MiB MEM32, mappable, in a memfd of the core's;
 *  - BAR2, 64 KiB MEM32, mappable, in the model's own memfd at 0x3000,
 *    behind bytes of the model's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "base.h"
#include "pci_test_util.h"

#define PAGE 0x1000u
#define BAR0_SIZE 0x100000u
#define BAR2_SIZE 0x10000u
#define BAR2_FD_OFFSET 0x3000u
#define OWN_BYTES "the model's own bytes"

struct pages_model {
	struct vfpm_pci_dev *pdev;
	int own_fd;			/* the model's file behind BAR2 */
};

static ssize_t pm_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, unsigned int bar,
			 uint64_t offset, void *buf, size_t count, bool write)
{
	(void)pdev, (void)inst, (void)bar, (void)offset, (void)buf, (void)count, (void)write;
	return -EINVAL;		/* nothing traps */
}

static int pm_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	(void)pdev;
	return 0;
}

static int pm_runtime_resume(struct vfpm_pci_dev *pdev)
{
	(void)pdev;
	return 0;
}

static const struct vfpm_pci_model_ops pm_ops = {
	.bar_rw = pm_bar_rw,
	.runtime_suspend = pm_runtime_suspend,
	.runtime_resume = pm_runtime_resume,
};

struct fixture {
	struct pages_model pm;
	struct vfpm_instance *inst;
	int fd[6];			/* the user's fds of the BARs */
	uint8_t *map[6];		/* the user's mappings of them */
	uint8_t *want[6];		/* what each BAR must hold */
};

static const size_t bar_size[6] = { [0] = BAR0_SIZE, [2] = BAR2_SIZE };
static const uint64_t bar_fd_offset[6] = { [2] = BAR2_FD_OFFSET };

/* GET_REGION_INFO: the BAR's fd, mapped by the user from where the BAR starts. */
static int map_bar(struct fixture *fx, unsigned int index)
{
	uint64_t storage[32] = { 0 };
	struct vfio_region_info *info = (struct vfio_region_info *)storage;
	struct vfpm_ubuf u = { .data = storage, .in_len = sizeof(*info), .cap = sizeof(storage) };
	struct vfpm_fds_out out = { .count = 0 };

	info->argsz = sizeof(storage);
	info->index = index;
	if (vfpm_instance_ioctl(fx->inst, VFIO_DEVICE_GET_REGION_INFO, &u, NULL, &out) ||
	    out.count != 1 || out.offset[0] != bar_fd_offset[index])
		return -1;
	fx->fd[index] = out.fd[0];
	fx->map[index] = mmap(NULL, bar_size[index], PROT_READ | PROT_WRITE, MAP_SHARED,
			      out.fd[0], (off_t)out.offset[0]);
	fx->want[index] = calloc(1, bar_size[index]);
	return fx->map[index] == MAP_FAILED || !fx->want[index] ? -1 : 0;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct vfpm_pci_desc d = {
		.name = "pages", .vendor_id = 0x1af4, .device_id = 0x10f9, .class_code = 0xff0000,
		.pm_cap = true, .no_soft_reset = true,
		.bars = {
			[0] = { .type = VFPM_PCI_BAR_MEM32, .size = BAR0_SIZE, .mappable = true },
			[2] = { .type = VFPM_PCI_BAR_MEM32, .size = BAR2_SIZE, .mappable = true,
				.own_fd = true, .fd_offset = BAR2_FD_OFFSET },
		},
	};

	if (!fx)
		return -1;
	fx->pm.own_fd = memfd_create("pages-own", MFD_CLOEXEC);
	if (fx->pm.own_fd < 0 || ftruncate(fx->pm.own_fd, BAR2_FD_OFFSET) < 0 ||
	    pwrite(fx->pm.own_fd, OWN_BYTES, sizeof(OWN_BYTES), 0) != (ssize_t)sizeof(OWN_BYTES))
		return -1;
	d.bars[2].fd = fx->pm.own_fd;
	if (vfpm_pci_dev_create(&d, &pm_ops, &fx->pm, &fx->pm.pdev) ||
	    vfpm_device_open(vfpm_pci_device(fx->pm.pdev), &fx->inst) ||
	    tm_set_memory(fx->inst, true) || map_bar(fx, 0) || map_bar(fx, 2))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	vfpm_instance_close(fx->inst);
	vfpm_pci_dev_destroy(fx->pm.pdev);
	for (unsigned int i = 0; i < 6; i += 2) {
		if (!bar_size[i])
			continue;
		munmap(fx->map[i], bar_size[i]);
		close(fx->fd[i]);
		free(fx->want[i]);
	}
	close(fx->pm.own_fd);
	free(fx);
	return 0;
}

/* The model writes a page of its BAR through its own view, as a backend does. */
static void model_fill(struct fixture *fx, unsigned int bar, uint64_t page, uint8_t seed)
{
	uint8_t *mem = vfpm_pci_bar_mem(fx->pm.pdev, bar);

	vfpm_pci_mem_lock(fx->pm.pdev);
	for (unsigned int i = 0; i < PAGE; i++)
		mem[page * PAGE + i] = fx->want[bar][page * PAGE + i] = (uint8_t)(seed + i * 7);
	vfpm_pci_mem_unlock(fx->pm.pdev);
}

/* The client stores into a page through its own mapping. */
static void client_fill(struct fixture *fx, unsigned int bar, uint64_t page, uint8_t seed)
{
	for (unsigned int i = 0; i < PAGE; i++)
		fx->map[bar][page * PAGE + i] = fx->want[bar][page * PAGE + i] =
			(uint8_t)(seed ^ (i * 13));
}

/*
 * Every byte, as the model, the client's mapping and the file see it.  A read
 * through a shared mapping allocates the file's holes: count pages before.
 */
static void assert_contents(struct fixture *fx, unsigned int bar)
{
	uint8_t *mem = vfpm_pci_bar_mem(fx->pm.pdev, bar), *file = malloc(bar_size[bar]);

	assert_non_null(file);
	assert_memory_equal(mem, fx->want[bar], bar_size[bar]);
	assert_memory_equal(fx->map[bar], fx->want[bar], bar_size[bar]);
	assert_int_equal(pread(fx->fd[bar], file, bar_size[bar], (off_t)bar_fd_offset[bar]),
			 (ssize_t)bar_size[bar]);
	assert_memory_equal(file, fx->want[bar], bar_size[bar]);
	free(file);
}

/* Pages of [off, off + len) of a file that hold data (SEEK_DATA / SEEK_HOLE). */
static size_t data_pages(int fd, uint64_t off, uint64_t len)
{
	size_t pages = 0;
	off_t pos = (off_t)off, end = (off_t)(off + len);

	while (pos < end) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0 || data >= end)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > end)
			hole = end;
		pages += (size_t)((hole - data + PAGE - 1) / PAGE);
		pos = hole;
	}
	return pages;
}

/* Pages of a range of our memory that are resident (mincore). */
static size_t resident_pages(const void *addr, size_t len)
{
	unsigned char vec[BAR0_SIZE / PAGE];
	size_t n = 0;

	assert_true(len / PAGE <= sizeof(vec));
	assert_int_equal(mincore((void *)addr, len, vec), 0);
	for (size_t i = 0; i < len / PAGE; i++)
		n += vec[i] & 1;
	return n;
}

static long file_blocks_pages(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (long)(st.st_blocks * 512 / PAGE);
}

/* Data in scattered pages, written every way there is, around every kind of revocation. */
static void test_contents_survive_revocation(void **state)
{
	struct fixture *fx = *state;
	const uint64_t last0 = BAR0_SIZE / PAGE - 1, last2 = BAR2_SIZE / PAGE - 1;
	uint8_t *mem0 = vfpm_pci_bar_mem(fx->pm.pdev, 0), sum = 0, page[PAGE];
	char own[sizeof(OWN_BYTES)] = { 0 };

	model_fill(fx, 0, 0, 1);
	model_fill(fx, 0, last0 / 2, 2);
	model_fill(fx, 0, last0, 3);
	model_fill(fx, 2, 0, 4);
	model_fill(fx, 2, last2, 5);
	/* Through a region write too: the core stores into the same memory. */
	memset(page, 0xa5, sizeof(page));
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 9 * PAGE + 100, page,
				  200), 200);
	memset(fx->want[0] + 9 * PAGE + 100, 0xa5, 200);
	/* The client's stores just before the revocation. */
	client_fill(fx, 0, 77, 6);
	client_fill(fx, 2, 7, 7);
	/* A page that held data and holds zeros again. */
	client_fill(fx, 0, 100, 8);
	memset(fx->map[0] + 100 * PAGE, 0, PAGE);
	memset(fx->want[0] + 100 * PAGE, 0, PAGE);

	assert_int_equal(tm_entry(fx->inst), 0);
	/* Revoked: the model still works on its memory, any page of it. */
	model_fill(fx, 0, 200, 9);
	model_fill(fx, 0, 77, 10);	/* over what the client wrote */
	model_fill(fx, 2, 3, 11);
	vfpm_pci_mem_lock(fx->pm.pdev);
	for (uint64_t off = 0; off < BAR0_SIZE; off += PAGE)
		sum ^= mem0[off + 5];	/* reading a page stores nothing */
	vfpm_pci_mem_unlock(fx->pm.pdev);
	(void)sum;
	/* The client grows the file and writes into it: restoring drops that. */
	assert_int_equal(ftruncate(fx->fd[0], BAR0_SIZE), 0);
	memset(page, 0xee, sizeof(page));
	assert_int_equal(pwrite(fx->fd[0], page, PAGE, 300 * PAGE), PAGE);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_contents(fx, 0);
	assert_contents(fx, 2);
	assert_int_equal(pread(fx->pm.own_fd, own, sizeof(own), 0), (ssize_t)sizeof(own));
	assert_string_equal(own, OWN_BYTES);

	/* Memory decode off and on again, then D3hot and back: the same bytes. */
	client_fill(fx, 0, 150, 12);
	assert_int_equal(tm_set_memory(fx->inst, false), 0);
	model_fill(fx, 0, 151, 13);
	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	assert_contents(fx, 0);
	assert_contents(fx, 2);
	assert_int_equal(tm_cfg_write(fx->inst, tm_find_cap(fx->inst, PCI_CAP_ID_PM) + PCI_PM_CTRL,
				      2, 3 /* D3hot */), 0);
	model_fill(fx, 2, 8, 14);
	assert_int_equal(tm_cfg_write(fx->inst, tm_find_cap(fx->inst, PCI_CAP_ID_PM) + PCI_PM_CTRL,
				      2, 0 /* D0 */), 0);
	assert_contents(fx, 0);
	assert_contents(fx, 2);
}

/* A 1 MiB BAR with two dirty pages: two pages in the copy, two in the file. */
static void test_only_dirty_pages_take_memory(void **state)
{
	struct fixture *fx = *state;
	const uint8_t *mem0 = vfpm_pci_bar_mem(fx->pm.pdev, 0);

	/* Created revoked (memory off), then restored: nothing was ever written. */
	assert_int_equal(data_pages(fx->fd[0], 0, BAR0_SIZE), 0);
	assert_int_equal(file_blocks_pages(fx->fd[0]), 0);

	client_fill(fx, 0, 3, 21);
	model_fill(fx, 0, 180, 22);
	assert_int_equal(file_blocks_pages(fx->fd[0]), 2);

	assert_int_equal(tm_entry(fx->inst), 0);
	assert_int_equal(resident_pages(mem0, BAR0_SIZE), 2);
	assert_int_equal(file_blocks_pages(fx->fd[0]), 0);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(data_pages(fx->fd[0], 0, BAR0_SIZE), 2);
	assert_int_equal(file_blocks_pages(fx->fd[0]), 2);
	assert_contents(fx, 0);
}

/* Reading a revoked BAR, or zeroing a page, stores nothing. */
static void test_zero_pages_take_no_memory(void **state)
{
	struct fixture *fx = *state;
	const uint8_t *mem2 = vfpm_pci_bar_mem(fx->pm.pdev, 2);
	unsigned int sum = 0;

	client_fill(fx, 2, 1, 31);
	memset(fx->map[2] + PAGE, 0, PAGE);
	memset(fx->want[2] + PAGE, 0, PAGE);
	assert_int_equal(data_pages(fx->pm.own_fd, BAR2_FD_OFFSET, BAR2_SIZE), 1);

	assert_int_equal(tm_entry(fx->inst), 0);
	assert_int_equal(resident_pages(mem2, BAR2_SIZE), 0);
	vfpm_pci_mem_lock(fx->pm.pdev);
	for (uint64_t off = 0; off < BAR2_SIZE; off += PAGE)
		sum += mem2[off];
	vfpm_pci_mem_unlock(fx->pm.pdev);
	assert_int_equal(sum, 0);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(data_pages(fx->pm.own_fd, BAR2_FD_OFFSET, BAR2_SIZE), 0);
	assert_contents(fx, 2);
}

/*
 * A client cuts the file in half; the model then writes into the half that
 * is gone (the guard gives it a page of its own).  That page, and the half
 * the file kept, survive the revocation; the rest reads zeros.
 */
static void test_truncated_by_client(void **state)
{
	struct fixture *fx = *state;
	const uint64_t half = BAR0_SIZE / PAGE / 2;

	/* cmocka installs a SIGBUS handler of its own for every test. */
	assert_int_equal(vfpm_memguard_install(), 0);
	client_fill(fx, 0, 1, 41);
	client_fill(fx, 0, half + 1, 42);
	client_fill(fx, 0, half + 2, 43);
	assert_int_equal(ftruncate(fx->fd[0], (off_t)(half * PAGE)), 0);
	memset(fx->want[0] + half * PAGE, 0, BAR0_SIZE - half * PAGE);
	model_fill(fx, 0, half + 2, 44);

	assert_int_equal(tm_entry(fx->inst), 0);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(data_pages(fx->fd[0], 0, BAR0_SIZE), 2);
	assert_contents(fx, 0);
}

/* Fill every free fd below the limit, then lower the limit to them: the next open fails. */
static int exhaust_fds(int *fds, int max, struct rlimit *saved)
{
	struct rlimit low;
	int n = 0, top = 0;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, saved), 0);
	for (int fd = 0; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			top = fd;
	low = (struct rlimit){ (rlim_t)top + 1, saved->rlim_max };
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < max) {
		int fd = dup(0);

		if (fd < 0)
			break;
		fds[n++] = fd;
	}
	assert_true(n < max);
	return n;
}

/* Without /proc/self/pagemap (no fd left to open it) every page is looked at. */
static void test_restored_without_pagemap(void **state)
{
	struct fixture *fx = *state;
	struct rlimit saved;
	int fds[4096], n;

	client_fill(fx, 0, 10, 51);
	assert_int_equal(tm_entry(fx->inst), 0);
	model_fill(fx, 0, 11, 52);
	n = exhaust_fds(fds, 4096, &saved);
	assert_true(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) < 0);
	assert_int_equal(tm_exit(fx->inst), 0);
	while (n > 0)
		close(fds[--n]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_int_equal(data_pages(fx->fd[0], 0, BAR0_SIZE), 2);
	assert_contents(fx, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_contents_survive_revocation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_only_dirty_pages_take_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_pages_take_no_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_by_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restored_without_pagemap, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
