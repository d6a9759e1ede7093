// SPDX-License-Identifier: MIT
/*
 * The doorbell device driven as a VMM drives it, over vfio-user with the
 * client library: find the doorbell page in the region info and map it,
 * give the device memory to DMA into, program the vendor capability, ring
 * through the mapping and through a region write, and ring once more while
 * the device sleeps.  Prints one line per step; returns 0 when all held.
 */
#include "doorbell.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <vfpm/client.h>

#define IOVA 0x100000u
#define MEM_SIZE 0x10000u
#define DATA_OFF 0x1000u

struct check {
	struct vfpm_client *c;
	uint8_t *mem;			/* the "guest memory" the device DMAs into */
	volatile uint32_t *doorbell;	/* the mapped doorbell page */
	int efd;			/* MSI-X vector 0 */
	uint32_t ring;
	int failures;
};

static void step(struct check *k, bool ok, const char *what)
{
	printf("doorbell: %s %s\n", ok ? "ok  " : "FAIL", what);
	if (!ok)
		k->failures++;
}

static uint32_t cfg_read(struct check *k, unsigned int off, unsigned int size)
{
	uint32_t v = 0;

	vfpm_client_region_read(k->c, VFIO_PCI_CONFIG_REGION_INDEX, off, &v, size);
	return v;
}

static void cfg_write(struct check *k, unsigned int off, unsigned int size, uint32_t v)
{
	vfpm_client_region_write(k->c, VFIO_PCI_CONFIG_REGION_INDEX, off, &v, size);
}

static uint32_t reg(struct check *k, unsigned int off)
{
	uint32_t v = 0;

	vfpm_client_region_read(k->c, VFIO_PCI_BAR0_REGION_INDEX, off, &v, 4);
	return v;
}

static unsigned int find_cap(struct check *k, uint8_t id)
{
	for (unsigned int off = cfg_read(k, PCI_CAPABILITY_LIST, 1), n = 0; off && n < 48;
	     off = cfg_read(k, off + PCI_CAP_LIST_NEXT, 1), n++)
		if (cfg_read(k, off, 1) == id)
			return off;
	return 0;
}

/* Map the doorbell page: the one sparse-mmap area of BAR0. */
static int map_doorbell(struct check *k)
{
	uint8_t buf[sizeof(struct vfio_region_info) + 64] = { 0 };
	struct vfio_region_info *info = (struct vfio_region_info *)buf;
	struct vfio_region_info_cap_sparse_mmap *cap;
	void *map;
	int fd = -1;

	if (vfpm_client_get_region_info(k->c, VFIO_PCI_BAR0_REGION_INDEX, info, sizeof(buf), &fd) ||
	    fd < 0 || !(info->flags & VFIO_REGION_INFO_FLAG_CAPS) || !info->cap_offset)
		return -EINVAL;
	cap = (struct vfio_region_info_cap_sparse_mmap *)(buf + info->cap_offset);
	if (cap->header.id != VFIO_REGION_INFO_CAP_SPARSE_MMAP || cap->nr_areas != 1 ||
	    cap->areas[0].offset != DB_DOORBELL) {
		close(fd);
		return -EINVAL;
	}
	map = mmap(NULL, cap->areas[0].size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   (off_t)(info->offset + cap->areas[0].offset));
	close(fd);
	if (map == MAP_FAILED)
		return -errno;
	k->doorbell = map;
	return 0;
}

/* Put data in "guest memory", point a descriptor at it; returns the expected sum. */
static uint32_t prepare(struct check *k, unsigned int len, uint8_t seed)
{
	struct db_descriptor d = { .data = IOVA + DATA_OFF, .len = len };
	uint32_t sum = 0;

	for (unsigned int i = 0; i < len; i++) {
		k->mem[DATA_OFF + i] = (uint8_t)(seed + i * 7);
		sum += k->mem[DATA_OFF + i];
	}
	memcpy(k->mem, &d, sizeof(d));
	return sum;
}

/* Wait for the interrupt, then check what the device wrote back. */
static bool served(struct check *k, uint32_t sum, int timeout_ms)
{
	struct pollfd p = { .fd = k->efd, .events = POLLIN };
	struct db_descriptor d;
	uint64_t n;

	if (poll(&p, 1, timeout_ms) != 1 || read(k->efd, &n, sizeof(n)) != sizeof(n))
		return false;
	memcpy(&d, k->mem, sizeof(d));
	return (d.flags & DB_DESC_DONE) && d.sum == sum;
}

static bool poller_is(struct vfpm_pci_dev *pdev, bool running)
{
	for (int i = 0; i < 200; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (db_poller_running(pdev) == running)
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

static void check_all(struct check *k, struct vfpm_pci_dev *pdev)
{
	int memfd = memfd_create("doorbell-guest", MFD_CLOEXEC);
	struct vfpm_client_dma dma = {
		.iova = IOVA, .size = MEM_SIZE, .fd = memfd,
		.flags = VFPM_CLIENT_DMA_READ | VFPM_CLIENT_DMA_WRITE,
	};
	unsigned int vndr, msix;
	uint32_t sum;

	cfg_write(k, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	step(k, reg(k, DB_REG_ID) == DB_ID, "register page trapped: ID");
	step(k, map_doorbell(k) == 0, "doorbell page found in the sparse-mmap capability and mapped");

	vndr = find_cap(k, PCI_CAP_ID_VNDR);
	step(k, vndr && cfg_read(k, vndr + 2, 1) == 8 && cfg_read(k, vndr + 3, 1) == DB_CAP_VERSION,
	     "vendor capability: length 8, version 1");
	cfg_write(k, vndr + DB_CAP_POLL_US, 4, 20);
	step(k, cfg_read(k, vndr + DB_CAP_POLL_US, 4) == 20, "poll interval set to 20 us");

	msix = find_cap(k, PCI_CAP_ID_MSIX);
	k->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cfg_write(k, msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	step(k, msix && k->efd >= 0 &&
		vfpm_client_set_irqs(k->c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				     VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &k->efd) == 0,
	     "MSI-X vector 0 on an eventfd");

	step(k, memfd >= 0 && ftruncate(memfd, MEM_SIZE) == 0 &&
		(k->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0)) !=
		MAP_FAILED && vfpm_client_dma_map(k->c, &dma) == 0,
	     "64 KiB of guest memory DMA-mapped (by fd)");
	if (k->failures)
		return;
	vfpm_client_region_write(k->c, VFIO_PCI_BAR0_REGION_INDEX, DB_REG_DESC_LO,
				 &(uint32_t){ IOVA }, 4);
	vfpm_client_region_write(k->c, VFIO_PCI_BAR0_REGION_INDEX, DB_REG_DESC_HI,
				 &(uint32_t){ 0 }, 4);

	sum = prepare(k, 3000, 1);
	*k->doorbell = ++k->ring;
	step(k, served(k, sum, 2000), "ring through the mapping: descriptor read, 3000 bytes "
	     "summed in place, sum written back, interrupt");
	step(k, reg(k, DB_REG_DONE) == 1 && reg(k, DB_REG_STATUS) == DB_STATUS_OK,
	     "DONE 1, STATUS ok");

	sum = prepare(k, 100, 9);
	++k->ring;
	vfpm_client_region_write(k->c, VFIO_PCI_BAR0_REGION_INDEX, DB_DOORBELL, &k->ring, 4);
	step(k, served(k, sum, 2000), "ring through a region write (the trapped path)");

	step(k, vfpm_client_low_power_entry(k->c) == 0 && poller_is(pdev, false),
	     "low power: the polling thread stops");
	sum = prepare(k, 64, 3);
	++k->ring;
	vfpm_client_region_write(k->c, VFIO_PCI_BAR0_REGION_INDEX, DB_DOORBELL, &k->ring, 4);
	step(k, served(k, sum, 2000), "a ring while asleep wakes it and is served");
	step(k, vfpm_client_low_power_exit(k->c) == 0 && poller_is(pdev, true),
	     "low power exit: polling again");
	sum = prepare(k, 10, 5);
	*k->doorbell = ++k->ring;
	step(k, served(k, sum, 2000), "the mapping works again");
	step(k, reg(k, DB_REG_DONE) == 4, "DONE 4");

	vfpm_client_dma_unmap(k->c, IOVA, MEM_SIZE);
	munmap(k->mem, MEM_SIZE);
	close(memfd);
}

int db_check(const char *path, struct vfpm_pci_dev *pdev)
{
	struct check k = { .efd = -1 };
	int err = vfpm_client_connect(path, &k.c);

	if (err) {
		fprintf(stderr, "doorbell: cannot connect to %s: %s\n", path, strerror(-err));
		return err;
	}
	check_all(&k, pdev);
	if (k.doorbell)
		munmap((void *)k.doorbell, 0x1000);
	if (k.efd >= 0)
		close(k.efd);
	vfpm_client_close(k.c);
	printf("doorbell: %s\n", k.failures ? "FAILED" : "all ok");
	return k.failures ? -EIO : 0;
}
