// SPDX-License-Identifier: MIT
/*
 * BARs that mix trapped registers and mappable memory, memory the model
 * supplies itself, and trapped accesses to mappable memory: what a user
 * sees through the region info, region accesses and its mmap of the fd.
 *
 * The function here (its own model, for the descriptions under test):
 *  - BAR0, 16 KiB MEM64: registers trapped, memory at 0x1000 and 0x3000
 *    (NVMe's layout: registers, then doorbells);
 *  - BAR2, 8 KiB MEM32, mappable, in the model's own memfd at 0x2000 behind
 *    bytes of the model's own;
 *  - BAR3, 4 KiB MEM32, mappable, trapped accesses to it reach the model.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <vfpm/log.h>

#include "pci_test_util.h"

#define PAGE 0x1000u
#define BAR0_SIZE 0x4000u
#define BAR2_SIZE 0x2000u
#define BAR2_FD_OFFSET 0x2000u
#define BAR3_SIZE 0x1000u

struct access {
	unsigned int bar;
	uint64_t offset;
	size_t count;
	bool write;
	struct vfpm_instance *inst;
};

struct areas_model {
	struct vfpm_pci_dev *pdev;
	int own_fd;			/* the model's file behind BAR2 */
	pthread_mutex_t lock;		/* protects log and regs */
	struct access log[16];
	unsigned int logged;
	uint8_t regs[PAGE];		/* BAR0's trapped registers */
};

static ssize_t am_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, unsigned int bar,
			 uint64_t offset, void *buf, size_t count, bool write)
{
	struct areas_model *am = vfpm_pci_model(pdev);
	uint8_t *mem;

	pthread_mutex_lock(&am->lock);
	if (am->logged < 16)
		am->log[am->logged++] = (struct access){ bar, offset, count, write, inst };
	pthread_mutex_unlock(&am->lock);
	if (bar == 0) {
		if (offset + count > PAGE && offset < 0x1000)
			return -EFAULT;	/* the core must have split it at the area */
		pthread_mutex_lock(&am->lock);
		if (offset >= 0x2000 && offset + count <= 0x3000) {
			/* Trapped, between the two areas: reads 0x5a. */
			if (!write)
				memset(buf, 0x5a, count);
		} else if (write) {
			memcpy(am->regs + offset, buf, count);
		} else {
			memcpy(buf, am->regs + offset, count);
		}
		pthread_mutex_unlock(&am->lock);
		return (ssize_t)count;
	}
	if (bar != 3)
		return -EINVAL;
	/* The mapped memory, reached by the model itself (a doorbell it hears). */
	vfpm_pci_mem_lock(pdev);
	mem = vfpm_pci_bar_mem(pdev, 3);
	if (write)
		memcpy(mem + offset, buf, count);
	else
		memcpy(buf, mem + offset, count);
	vfpm_pci_mem_unlock(pdev);
	return (ssize_t)count;
}

static int am_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	return 0;
}

static int am_runtime_resume(struct vfpm_pci_dev *pdev)
{
	return 0;
}

static const struct vfpm_pci_model_ops am_ops = {
	.bar_rw = am_bar_rw,
	.runtime_suspend = am_runtime_suspend,
	.runtime_resume = am_runtime_resume,
};

static struct vfpm_pci_desc am_desc(int own_fd)
{
	struct vfpm_pci_desc d = {
		.name = "areas", .vendor_id = 0x1af4, .device_id = 0x10f8, .class_code = 0xff0000,
		.pm_cap = true,
		.bars = {
			[0] = { .type = VFPM_PCI_BAR_MEM64, .size = BAR0_SIZE, .nr_areas = 2,
				.areas = { { 0x1000, PAGE }, { 0x3000, PAGE } } },
			[2] = { .type = VFPM_PCI_BAR_MEM32, .size = BAR2_SIZE, .mappable = true,
				.own_fd = true, .fd = own_fd, .fd_offset = BAR2_FD_OFFSET },
			[3] = { .type = VFPM_PCI_BAR_MEM32, .size = BAR3_SIZE, .mappable = true,
				.trap_mapped = true },
		},
	};
	return d;
}

struct fixture {
	struct areas_model am;
	struct vfpm_instance *inst;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct vfpm_pci_desc desc;
	const char own[] = "the model's own bytes";

	if (!fx)
		return -1;
	pthread_mutex_init(&fx->am.lock, NULL);
	fx->am.own_fd = memfd_create("areas-own", MFD_CLOEXEC);
	if (fx->am.own_fd < 0 || ftruncate(fx->am.own_fd, BAR2_FD_OFFSET) < 0 ||
	    pwrite(fx->am.own_fd, own, sizeof(own), 0) != (ssize_t)sizeof(own))
		return -1;
	desc = am_desc(fx->am.own_fd);
	if (vfpm_pci_dev_create(&desc, &am_ops, &fx->am, &fx->am.pdev) ||
	    vfpm_device_open(vfpm_pci_device(fx->am.pdev), &fx->inst) ||
	    tm_set_memory(fx->inst, true))
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	vfpm_instance_close(fx->inst);
	vfpm_pci_dev_destroy(fx->am.pdev);
	close(fx->am.own_fd);
	pthread_mutex_destroy(&fx->am.lock);
	free(fx);
	return 0;
}

static unsigned int logged(struct areas_model *am, struct access *last)
{
	unsigned int n;

	pthread_mutex_lock(&am->lock);
	n = am->logged;
	if (n && last)
		*last = am->log[n - 1];
	pthread_mutex_unlock(&am->lock);
	return n;
}

/* GET_REGION_INFO as the device core answers it: the info, its caps, the fd and its offset. */
static long region_info(struct vfpm_instance *inst, unsigned int index, uint8_t *buf, size_t size,
			int *fd, uint64_t *fd_offset)
{
	struct vfio_region_info *info = (struct vfio_region_info *)buf;
	struct vfpm_fds_out out = { .count = 0 };
	struct vfpm_ubuf arg = { .data = buf, .in_len = sizeof(*info), .cap = size };
	long ret;

	memset(buf, 0, size);
	info->argsz = (uint32_t)size;
	info->index = index;
	ret = vfpm_instance_ioctl(inst, VFIO_DEVICE_GET_REGION_INFO, &arg, NULL, &out);
	*fd = out.count ? out.fd[0] : -1;
	*fd_offset = out.count ? out.offset[0] : 0;
	return ret;
}

static void test_mixed_bar_region_info(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[256];
	struct vfio_region_info *info = (struct vfio_region_info *)buf;
	struct vfio_region_info_cap_sparse_mmap *cap;
	uint64_t fd_offset;
	int fd;

	assert_int_equal(region_info(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, buf, sizeof(buf), &fd,
				     &fd_offset), 0);
	assert_true(fd >= 0);
	assert_int_equal(fd_offset, 0);
	assert_int_equal(info->size, BAR0_SIZE);
	assert_true(info->flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_true(info->flags & VFIO_REGION_INFO_FLAG_CAPS);
	assert_int_equal(info->cap_offset, sizeof(*info));
	cap = (struct vfio_region_info_cap_sparse_mmap *)(buf + info->cap_offset);
	assert_int_equal(cap->header.id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
	assert_int_equal(cap->header.next, 0);
	assert_int_equal(cap->nr_areas, 2);
	assert_int_equal(cap->areas[0].offset, 0x1000);
	assert_int_equal(cap->areas[0].size, PAGE);
	assert_int_equal(cap->areas[1].offset, 0x3000);
	assert_int_equal(cap->areas[1].size, PAGE);
	close(fd);

	/* Too little room: the size the capability needs, no fd. */
	memset(buf, 0, sizeof(buf));
	{
		struct vfpm_fds_out out = { .count = 0 };
		struct vfpm_ubuf arg = { .data = buf, .in_len = sizeof(*info),
					 .cap = sizeof(*info) };

		info->argsz = sizeof(*info);
		info->index = VFIO_PCI_BAR0_REGION_INDEX;
		assert_int_equal(vfpm_instance_ioctl(fx->inst, VFIO_DEVICE_GET_REGION_INFO, &arg,
						     NULL, &out), 0);
		assert_int_equal(info->argsz, sizeof(*info) + sizeof(*cap) +
					      2 * sizeof(cap->areas[0]));
		for (unsigned int i = 0; i < out.count; i++)
			close(out.fd[i]);
	}

	/* A whole-BAR mappable region has no sparse capability, as in vfio-pci. */
	assert_int_equal(region_info(fx->inst, VFIO_PCI_BAR3_REGION_INDEX, buf, sizeof(buf), &fd,
				     &fd_offset), 0);
	assert_true(info->flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_false(info->flags & VFIO_REGION_INFO_FLAG_CAPS);
	close(fd);
}

static void test_mixed_bar_accesses(void **state)
{
	struct fixture *fx = *state;
	struct areas_model *am = &fx->am;
	uint8_t buf[256], *map, *mem = vfpm_pci_bar_mem(am->pdev, 0);
	static uint8_t big[0x1020];
	struct access last = { 0 };
	uint32_t v = 0x11223344, got = 0;
	uint64_t fd_offset;
	unsigned int n;
	int fd;

	assert_non_null(mem);
	/* A register: trapped, told which instance made it. */
	n = logged(am, NULL);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0x14, &v, 4), 4);
	assert_int_equal(logged(am, &last), n + 1);
	assert_int_equal(last.bar, 0);
	assert_int_equal(last.offset, 0x14);
	assert_true(last.write);
	assert_ptr_equal(last.inst, fx->inst);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0x14, &got, 4), 4);
	assert_int_equal(got, v);

	/* A doorbell: memory, never the model; the user's mapping sees it. */
	n = logged(am, NULL);
	v = 0xdb;
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0x1008, &v, 4), 4);
	assert_int_equal(logged(am, NULL), n);
	assert_int_equal(memcmp(mem + 0x1008, &v, 4), 0);
	assert_int_equal(region_info(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, buf, sizeof(buf), &fd,
				     &fd_offset), 0);
	map = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0x1000);
	assert_true(map != MAP_FAILED);
	assert_int_equal(memcmp(map + 8, &v, 4), 0);
	map[0x10] = 0x77;	/* the VMM's store, the model's view */
	assert_int_equal(mem[0x1010], 0x77);
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0x1010, &got, 1), 1);
	assert_int_equal(got & 0xff, 0x77);

	/* Across the edge: the register half to the model, the doorbell half to memory. */
	memset(buf, 0xee, 8);
	n = logged(am, NULL);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0xffc, buf, 8), 8);
	assert_int_equal(logged(am, &last), n + 1);
	assert_int_equal(last.offset, 0xffc);
	assert_int_equal(last.count, 4);
	assert_int_equal(map[0] & 0xff, 0xee);
	assert_int_equal(map[3] & 0xff, 0xee);
	assert_int_equal(map[4] & 0xff, 0);

	/* One read over memory, registers and memory again. */
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, 0x1ff0, big, 0x1020),
			 0x1020);
	assert_int_equal(big[0], mem[0x1ff0]);
	for (unsigned int i = 0x10; i < 0x1010; i += 0x100)
		assert_int_equal(big[i], 0x5a);
	assert_int_equal(logged(am, &last), n + 2);
	assert_int_equal(last.offset, 0x2000);
	assert_int_equal(last.count, 0x1000);
	munmap(map, PAGE);
	close(fd);
}

static void test_own_fd_memory(void **state)
{
	struct fixture *fx = *state;
	uint8_t buf[256], *map;
	char own[32] = { 0 };
	uint64_t fd_offset;
	uint32_t v = 0xcafef00d, got = 0;
	struct stat st;
	int fd;

	/* The region's fd is the model's file, mapped from where the BAR starts. */
	assert_int_equal(region_info(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, buf, sizeof(buf), &fd,
				     &fd_offset), 0);
	assert_int_equal(fd_offset, BAR2_FD_OFFSET);
	map = mmap(NULL, BAR2_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)fd_offset);
	assert_true(map != MAP_FAILED);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR2_REGION_INDEX, 0x100, &v, 4), 4);
	assert_int_equal(memcmp(map + 0x100, &v, 4), 0);
	assert_int_equal(pread(fx->am.own_fd, &got, 4, BAR2_FD_OFFSET + 0x100), 4);
	assert_int_equal(got, v);

	/* Low power revokes it (the file ends where the BAR began), exit restores it. */
	assert_int_equal(tm_entry(fx->inst), 0);
	assert_int_equal(fstat(fx->am.own_fd, &st), 0);
	assert_int_equal(st.st_size, BAR2_FD_OFFSET);
	assert_int_equal(pread(fx->am.own_fd, own, sizeof(own) - 1, 0), sizeof(own) - 1);
	assert_string_equal(own, "the model's own bytes");
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(fstat(fx->am.own_fd, &st), 0);
	assert_int_equal(st.st_size, BAR2_FD_OFFSET + BAR2_SIZE);
	assert_int_equal(memcmp(map + 0x100, &v, 4), 0);
	munmap(map, BAR2_SIZE);
	close(fd);
}

static void test_trap_mapped_reaches_model(void **state)
{
	struct fixture *fx = *state;
	struct areas_model *am = &fx->am;
	uint8_t buf[256], *map;
	struct access last = { 0 };
	uint64_t fd_offset;
	uint32_t v = 0x600d, got = 0;
	unsigned int n;
	int fd;

	assert_int_equal(region_info(fx->inst, VFIO_PCI_BAR3_REGION_INDEX, buf, sizeof(buf), &fd,
				     &fd_offset), 0);
	map = mmap(NULL, BAR3_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	n = logged(am, NULL);
	assert_int_equal(tm_write(fx->inst, VFIO_PCI_BAR3_REGION_INDEX, 0x40, &v, 4), 4);
	assert_int_equal(logged(am, &last), n + 1);
	assert_int_equal(last.bar, 3);
	assert_int_equal(last.offset, 0x40);
	assert_true(last.write);
	/* The model wrote it into the memory the user maps. */
	assert_int_equal(memcmp(map + 0x40, &v, 4), 0);
	map[0x80] = 0x42;
	assert_int_equal(tm_read(fx->inst, VFIO_PCI_BAR3_REGION_INDEX, 0x80, &got, 1), 1);
	assert_int_equal(got & 0xff, 0x42);
	assert_int_equal(logged(am, NULL), n + 2);
	munmap(map, BAR3_SIZE);
	close(fd);
}

/* ---- descriptions the core refuses ---- */

static char last_log[512];

static void capture_log(enum vfpm_log_level level, const char *msg, void *opaque)
{
	(void)opaque;
	if (level <= VFPM_LOG_ERR && !strstr(last_log, "cannot have"))
		snprintf(last_log, sizeof(last_log), "%s", msg);
}

static void expect_refused(struct vfpm_pci_desc *d, const char *why)
{
	struct vfpm_pci_dev *pdev = NULL;

	last_log[0] = '\0';
	vfpm_log_set(capture_log, NULL, VFPM_LOG_ERR);
	assert_int_equal(vfpm_pci_dev_create(d, &am_ops, NULL, &pdev), -EINVAL);
	vfpm_log_set(NULL, NULL, VFPM_LOG_ERR);
	assert_null(pdev);
	if (!strstr(last_log, why))
		fail_msg("log '%s' lacks '%s'", last_log, why);
}

static void test_bad_descriptions(void **state)
{
	struct vfpm_pci_desc d;
	int fds[2];

	(void)state;
	d = am_desc(-1);
	d.bars[2] = (struct vfpm_pci_bar_desc){ 0 };
	d.bars[0].areas[0].offset = 0x800;
	expect_refused(&d, "page-aligned");
	d = am_desc(-1);
	d.bars[2] = (struct vfpm_pci_bar_desc){ 0 };
	d.bars[0].areas[1].offset = 0x1000;
	expect_refused(&d, "overlap");
	d = am_desc(-1);
	d.bars[2] = (struct vfpm_pci_bar_desc){ 0 };
	d.bars[0].areas[1] = (struct vfpm_pci_bar_area){ 0x3000, 2 * PAGE };
	expect_refused(&d, "leave the BAR");
	d = am_desc(-1);
	d.bars[2] = (struct vfpm_pci_bar_desc){ 0 };
	d.bars[0].nr_areas = VFPM_PCI_BAR_AREAS_MAX + 1;
	expect_refused(&d, "areas");
	d = am_desc(-1);
	d.bars[2] = (struct vfpm_pci_bar_desc){ 0 };
	d.bars[5] = (struct vfpm_pci_bar_desc){ .type = VFPM_PCI_BAR_IO, .size = 256,
						.nr_areas = 1, .areas = { { 0, 256 } } };
	expect_refused(&d, "I/O BAR");
	/* own_fd: not a file, an unaligned offset, without memory. */
	assert_int_equal(pipe(fds), 0);
	d = am_desc(fds[0]);
	expect_refused(&d, "regular file");
	d = am_desc(-1);
	expect_refused(&d, "regular file");
	close(fds[0]);
	close(fds[1]);
	d = am_desc(memfd_create("x", MFD_CLOEXEC));
	d.bars[2].fd_offset = 0x800;
	expect_refused(&d, "fd_offset");
	d.bars[2].fd_offset = 0;
	d.bars[2].mappable = false;
	expect_refused(&d, "own_fd without mappable memory");
	close(d.bars[2].fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mixed_bar_region_info, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mixed_bar_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_own_fd_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trap_mapped_reaches_model, setup, teardown),
		cmocka_unit_test(test_bad_descriptions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
