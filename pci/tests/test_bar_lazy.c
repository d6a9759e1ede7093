// SPDX-License-Identifier: MIT
/*
 * A BAR's file is made when a client first asks for it: a device no client
 * asked about holds no fd for its memory, and what the model wrote before
 * survives, whether the file is born live or revoked, and whatever the
 * model's threads do meanwhile under vfpm_pci_mem_lock.  After the last
 * close the file goes again, and the contents stay.
 *
 * The function here (its own model):
 *  - BAR0, 256 KiB MEM32, mappable, in a memfd of the core's;
 *  - BAR2, 64 KiB MEM32, mappable, in the model's own memfd.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "pci_test_util.h"

#define PAGE 0x1000u
#define BAR0_SIZE 0x40000u
#define BAR2_SIZE 0x10000u

static ssize_t lz_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, unsigned int bar,
			 uint64_t offset, void *buf, size_t count, bool write)
{
	(void)pdev, (void)inst, (void)bar, (void)offset, (void)buf, (void)count, (void)write;
	return -EINVAL;		/* nothing traps */
}

static int lz_runtime_pm(struct vfpm_pci_dev *pdev)
{
	(void)pdev;
	return 0;
}

static const struct vfpm_pci_model_ops lz_ops = {
	.bar_rw = lz_bar_rw,
	.runtime_suspend = lz_runtime_pm,
	.runtime_resume = lz_runtime_pm,
};

struct fixture {
	struct vfpm_pci_dev *pdev;
	struct vfpm_instance *inst;
	int own_fd;			/* the model's file behind BAR2 */
	int fds_before;			/* the process's fds before the device */
	int fd;				/* the user's fd of BAR0, or -1 */
	uint8_t *map;			/* the user's mapping of it, or NULL */
	uint8_t want[BAR0_SIZE];	/* what BAR0 must hold */
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct vfpm_pci_desc d = {
		.name = "lazy", .vendor_id = 0x1af4, .device_id = 0x10fa, .class_code = 0xff0000,
		.pm_cap = true, .no_soft_reset = true,
		.bars = {
			[0] = { .type = VFPM_PCI_BAR_MEM32, .size = BAR0_SIZE, .mappable = true },
			[2] = { .type = VFPM_PCI_BAR_MEM32, .size = BAR2_SIZE, .mappable = true,
				.own_fd = true },
		},
	};

	if (!fx)
		return -1;
	fx->fd = -1;
	fx->own_fd = memfd_create("lazy-own", MFD_CLOEXEC);
	if (fx->own_fd < 0 || ftruncate(fx->own_fd, BAR2_SIZE) < 0)
		return -1;
	d.bars[2].fd = fx->own_fd;
	fx->fds_before = tm_count_fds();
	if (vfpm_pci_dev_create(&d, &lz_ops, NULL, &fx->pdev) ||
	    vfpm_device_open(vfpm_pci_device(fx->pdev), &fx->inst))
		return -1;
	*state = fx;
	return 0;
}

static void unmap_bar0(struct fixture *fx)
{
	if (fx->map)
		munmap(fx->map, BAR0_SIZE);
	if (fx->fd >= 0)
		close(fx->fd);
	fx->map = NULL;
	fx->fd = -1;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	unmap_bar0(fx);
	if (fx->inst)
		vfpm_instance_close(fx->inst);
	vfpm_pci_dev_destroy(fx->pdev);
	close(fx->own_fd);
	free(fx);
	return 0;
}

/* GET_REGION_INFO of BAR0 and the user's mapping of its fd. */
static void map_bar0(struct fixture *fx)
{
	struct vfio_region_info info;

	assert_int_equal(tm_region_info(fx->inst, VFIO_PCI_BAR0_REGION_INDEX, sizeof(info), &info,
					&fx->fd), 0);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_true(fx->fd >= 0);
	fx->map = mmap(NULL, BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fx->fd, 0);
	assert_true(fx->map != MAP_FAILED);
}

/* The model writes a page of BAR0 through its own view, as a backend does. */
static void model_fill(struct fixture *fx, uint64_t page, uint8_t seed)
{
	uint8_t *mem = vfpm_pci_bar_mem(fx->pdev, 0);

	vfpm_pci_mem_lock(fx->pdev);
	for (unsigned int i = 0; i < PAGE; i++)
		mem[page * PAGE + i] = fx->want[page * PAGE + i] = (uint8_t)(seed + i * 7);
	vfpm_pci_mem_unlock(fx->pdev);
}

/* BAR0 as the model, the user's mapping and the file see it (mapping live). */
static void assert_contents(struct fixture *fx)
{
	uint8_t *file = malloc(BAR0_SIZE);

	assert_non_null(file);
	assert_memory_equal(vfpm_pci_bar_mem(fx->pdev, 0), fx->want, BAR0_SIZE);
	assert_memory_equal(fx->map, fx->want, BAR0_SIZE);
	assert_int_equal(pread(fx->fd, file, BAR0_SIZE, 0), (ssize_t)BAR0_SIZE);
	assert_memory_equal(file, fx->want, BAR0_SIZE);
	free(file);
}

static off_t file_size(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

/* Pages of the file that hold data. */
static long file_pages(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (long)(st.st_blocks * 512 / PAGE);
}

/*
 * Created and opened, BAR0 holds no fd (the model's own file is its
 * duplicate, as before); the first region info makes one; the last close
 * lets it go.
 */
static void test_no_fd_until_asked(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(tm_count_fds(), fx->fds_before + 1);
	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	model_fill(fx, 5, 1);
	assert_int_equal(tm_count_fds(), fx->fds_before + 1);

	map_bar0(fx);
	/* The core's file and the user's duplicate. */
	assert_int_equal(tm_count_fds(), fx->fds_before + 3);
	assert_contents(fx);
	unmap_bar0(fx);
	/* A second client's question reuses the same file. */
	map_bar0(fx);
	assert_int_equal(tm_count_fds(), fx->fds_before + 3);
	unmap_bar0(fx);

	vfpm_instance_close(fx->inst);
	fx->inst = NULL;
	assert_int_equal(tm_count_fds(), fx->fds_before + 1);
	/* The contents stay with the device. */
	assert_memory_equal(vfpm_pci_bar_mem(fx->pdev, 0), fx->want, BAR0_SIZE);
}

/* Only pages that hold data go to the new file; the mapping sees them all. */
static void test_model_data_survive_first_region_info(void **state)
{
	struct fixture *fx = *state;
	uint8_t *mem = vfpm_pci_bar_mem(fx->pdev, 0), sum = 0;

	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	model_fill(fx, 0, 2);
	model_fill(fx, 17, 3);
	model_fill(fx, BAR0_SIZE / PAGE - 1, 4);
	/* A page read, and a page written then zeroed: neither is data. */
	vfpm_pci_mem_lock(fx->pdev);
	sum = mem[30 * PAGE];
	memset(mem + 31 * PAGE, 0x5a, PAGE);
	memset(mem + 31 * PAGE, 0, PAGE);
	vfpm_pci_mem_unlock(fx->pdev);
	assert_int_equal(sum, 0);

	map_bar0(fx);
	assert_int_equal(file_pages(fx->fd), 3);
	assert_contents(fx);
	/* From now on the model and the user share the memory. */
	model_fill(fx, 9, 5);
	assert_memory_equal(fx->map + 9 * PAGE, fx->want + 9 * PAGE, PAGE);
	memset(fx->map + 10 * PAGE, 0x77, PAGE);
	memset(fx->want + 10 * PAGE, 0x77, PAGE);
	assert_contents(fx);
}

/* Revocation and restoration after the file was made keep every byte. */
static void test_revocation_after_lazy_creation(void **state)
{
	struct fixture *fx = *state;
	const unsigned int pmcsr = tm_find_cap(fx->inst, PCI_CAP_ID_PM) + PCI_PM_CTRL;

	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	model_fill(fx, 1, 6);
	map_bar0(fx);
	memset(fx->map + 2 * PAGE, 0x33, PAGE);
	memset(fx->want + 2 * PAGE, 0x33, PAGE);

	assert_int_equal(tm_entry(fx->inst), 0);
	assert_int_equal(file_size(fx->fd), 0);
	model_fill(fx, 3, 7);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_contents(fx);

	assert_int_equal(tm_set_memory(fx->inst, false), 0);
	assert_int_equal(file_size(fx->fd), 0);
	model_fill(fx, 4, 8);
	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	assert_contents(fx);

	assert_int_equal(tm_cfg_write(fx->inst, pmcsr, 2, 3 /* D3hot */), 0);
	model_fill(fx, 1, 9);
	assert_int_equal(tm_cfg_write(fx->inst, pmcsr, 2, 0 /* D0 */), 0);
	assert_contents(fx);
}

/*
 * Asked for in low power (or with memory off), the file is born revoked:
 * empty, so the user's mapping faults, until the device is live again.
 */
static void test_region_info_while_revoked(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	model_fill(fx, 6, 10);
	assert_int_equal(tm_entry(fx->inst), 0);
	map_bar0(fx);
	assert_int_equal(file_size(fx->fd), 0);
	model_fill(fx, 7, 11);
	assert_int_equal(tm_exit(fx->inst), 0);
	assert_int_equal(file_size(fx->fd), BAR0_SIZE);
	assert_contents(fx);
	unmap_bar0(fx);

	/* Closed and opened again: the file went with the last close. */
	vfpm_instance_close(fx->inst);
	assert_int_equal(vfpm_device_open(vfpm_pci_device(fx->pdev), &fx->inst), 0);
	model_fill(fx, 8, 12);
	map_bar0(fx);		/* memory off after the open's reset */
	assert_int_equal(file_size(fx->fd), 0);
	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	assert_contents(fx);
}

/*
 * After the last close a former client's file stays empty: the next client
 * gets a new one, with the device's bytes, which the old fd never sees.
 */
static void test_former_client_file_stays_empty(void **state)
{
	struct fixture *fx = *state;
	struct stat old_st, new_st;
	int old_fd;

	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	model_fill(fx, 2, 13);
	map_bar0(fx);
	munmap(fx->map, BAR0_SIZE);
	fx->map = NULL;
	old_fd = fx->fd;
	fx->fd = -1;
	vfpm_instance_close(fx->inst);
	assert_int_equal(file_size(old_fd), 0);

	assert_int_equal(vfpm_device_open(vfpm_pci_device(fx->pdev), &fx->inst), 0);
	assert_int_equal(tm_set_memory(fx->inst, true), 0);
	model_fill(fx, 3, 14);
	map_bar0(fx);
	assert_int_equal(fstat(old_fd, &old_st), 0);
	assert_int_equal(fstat(fx->fd, &new_st), 0);
	assert_true(old_st.st_ino != new_st.st_ino);
	assert_int_equal(old_st.st_size, 0);
	assert_contents(fx);
	/* The old client grows its file: the device never sees it. */
	assert_int_equal(ftruncate(old_fd, BAR0_SIZE), 0);
	assert_int_equal(pwrite(old_fd, "x", 1, 2 * PAGE), 1);
	assert_contents(fx);
	close(old_fd);
}

struct writer {
	struct fixture *fx;
	atomic_bool stop;
	atomic_uint rounds;
};

/* A backend thread storing into BAR0 under the memory lock, page after page. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct fixture *fx = w->fx;
	uint8_t *mem = vfpm_pci_bar_mem(fx->pdev, 0);
	unsigned int n = 0;

	while (!atomic_load(&w->stop) || n < 64) {
		uint64_t at = (uint64_t)(n % (BAR0_SIZE / PAGE)) * PAGE + (n / 64) % PAGE;

		vfpm_pci_mem_lock(fx->pdev);
		mem[at] = fx->want[at] = (uint8_t)(n | 1);
		vfpm_pci_mem_unlock(fx->pdev);
		atomic_store(&w->rounds, ++n);
	}
	return NULL;
}

/* The model's stores while a client asks for the file are all in it. */
static void test_concurrent_model_writes(void **state)
{
	struct fixture *fx = *state;

	for (unsigned int round = 0; round < 20; round++) {
		struct writer w = { .fx = fx };
		pthread_t thread;
		unsigned int seen;

		assert_int_equal(tm_set_memory(fx->inst, true), 0);
		assert_int_equal(pthread_create(&thread, NULL, writer_main, &w), 0);
		while (atomic_load(&w.rounds) < 16 * round + 1)
			sched_yield();
		map_bar0(fx);
		seen = atomic_load(&w.rounds);
		while (atomic_load(&w.rounds) < seen + 100)
			sched_yield();
		atomic_store(&w.stop, true);
		assert_int_equal(pthread_join(thread, NULL), 0);
		assert_contents(fx);
		unmap_bar0(fx);
		/* Let the file go, so that the next round makes it again. */
		vfpm_instance_close(fx->inst);
		assert_int_equal(vfpm_device_open(vfpm_pci_device(fx->pdev), &fx->inst), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_fd_until_asked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_data_survive_first_region_info, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_revocation_after_lazy_creation, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_region_info_while_revoked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_former_client_file_stays_empty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_model_writes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
