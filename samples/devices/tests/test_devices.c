// SPDX-License-Identifier: MIT
/*
 * The sample device models, driven in-process through the device core as a
 * client would drive them: register access, interrupts, the opt-out, and
 * the polling device moving data, sleeping and waking on backend traffic.
 */
#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#define WAIT_MS 5000

static long do_ioctl(struct vfpm_instance *inst, unsigned int cmd, void *arg, size_t len,
		     const struct vfpm_fds *fds, struct vfpm_fds_out *out)
{
	struct vfpm_ubuf u = { .data = arg, .in_len = len, .cap = len };

	return vfpm_instance_ioctl(inst, cmd, &u, fds, out);
}

static long feature(struct vfpm_instance *inst, uint32_t flags, const void *payload, size_t len,
		    const struct vfpm_fds *fds)
{
	uint8_t buf[64] = { 0 };
	struct vfio_device_feature *f = (struct vfio_device_feature *)buf;

	f->argsz = (uint32_t)(sizeof(*f) + len);
	f->flags = flags;
	if (len)
		memcpy(f->data, payload, len);
	return do_ioctl(inst, VFIO_DEVICE_FEATURE, buf, sizeof(*f) + len, fds, NULL);
}

static long enter_with_wakeup(struct vfpm_instance *inst, int efd)
{
	struct vfio_device_low_power_entry_with_wakeup entry = { .wakeup_eventfd = efd };

	return feature(inst, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
		       &entry, sizeof(entry), NULL);
}

static uint32_t cfg_read16(struct vfpm_instance *inst, unsigned int off)
{
	uint16_t v = 0;

	assert_int_equal(vfpm_instance_read(inst, &v, 2,
					    VFPM_REGION_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + off), 2);
	return v;
}

static void enable_memory(struct vfpm_instance *inst)
{
	uint16_t cmd = PCI_COMMAND_MEMORY;

	assert_int_equal(vfpm_instance_write(inst, &cmd, 2,
					     VFPM_REGION_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) +
						     PCI_COMMAND), 2);
}

/* Map a BAR through its region info, as a client does with the fd it is sent. */
static uint8_t *map_bar(struct vfpm_instance *inst, unsigned int index, size_t *size)
{
	struct vfio_region_info info = { .argsz = sizeof(info), .index = index };
	struct vfpm_fds_out out = { .count = 0 };
	void *map;

	assert_int_equal(do_ioctl(inst, VFIO_DEVICE_GET_REGION_INFO, &info, sizeof(info), NULL, &out), 0);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_int_equal(out.count, 1);
	map = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, out.fd[0], 0);
	close(out.fd[0]);
	assert_true(map != MAP_FAILED);
	*size = info.size;
	return map;
}

static uint64_t eventfd_count(int efd)
{
	uint64_t v = 0;

	if (read(efd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

static bool eventfd_wait(int efd, int timeout_ms)
{
	struct pollfd pfd = { .fd = efd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

/* ---- memory device ---- */

static void test_memdev_registers_and_interrupts(void **state)
{
	struct vfpm_pci_dev *pdev;
	struct vfpm_instance *inst;
	uint32_t id = 0, scratch = 0xcafef00d, back = 0, doorbell;
	uint64_t bar2 = VFPM_REGION_OFFSET(VFIO_PCI_BAR2_REGION_INDEX);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	uint8_t irq[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	struct vfio_irq_set hdr = {
		.argsz = sizeof(irq), .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 1, .count = 1,
		.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
	};
	int32_t fd32 = efd;

	memcpy(irq, &hdr, sizeof(hdr));
	memcpy(irq + sizeof(hdr), &fd32, sizeof(fd32));
	(void)state;
	assert_int_equal(vfpm_memdev_create(false, &pdev), 0);
	assert_int_equal(vfpm_device_open(vfpm_pci_device(pdev), &inst), 0);
	assert_int_equal(cfg_read16(inst, PCI_VENDOR_ID), 0x1b36);
	enable_memory(inst);

	assert_int_equal(vfpm_instance_read(inst, &id, 4, bar2 + VFPM_MEMDEV_REG_ID), 4);
	assert_int_equal(id, 0x4d454d30);
	assert_int_equal(vfpm_instance_write(inst, &scratch, 4, bar2 + VFPM_MEMDEV_REG_SCRATCH), 4);
	assert_int_equal(vfpm_instance_read(inst, &back, 4, bar2 + VFPM_MEMDEV_REG_SCRATCH), 4);
	assert_int_equal(back, scratch);
	/* The ID is read-only. */
	assert_int_equal(vfpm_instance_write(inst, &scratch, 4, bar2 + VFPM_MEMDEV_REG_ID), 4);
	assert_int_equal(vfpm_instance_read(inst, &id, 4, bar2 + VFPM_MEMDEV_REG_ID), 4);
	assert_int_equal(id, 0x4d454d30);

	/* Doorbell 2 + 1 raises MSI-X vector 1. */
	assert_int_equal(do_ioctl(inst, VFIO_DEVICE_SET_IRQS, irq, sizeof(irq), NULL, NULL), 0);
	doorbell = 3;
	assert_int_equal(vfpm_instance_write(inst, &doorbell, 4, bar2 + VFPM_MEMDEV_REG_DOORBELL), 4);
	assert_int_equal(eventfd_count(efd), 1);

	/* The slow register holds a request in flight for DELAY_MS, then counts it. */
	{
		uint32_t delay = 100, seen = 99;
		struct timespec t0, t1;

		assert_int_equal(vfpm_instance_write(inst, &delay, 4, bar2 + VFPM_MEMDEV_REG_DELAY_MS), 4);
		assert_int_equal(vfpm_instance_read(inst, &back, 4, bar2 + VFPM_MEMDEV_REG_DELAY_MS), 4);
		assert_int_equal(back, 100);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(vfpm_instance_read(inst, &seen, 4, bar2 + VFPM_MEMDEV_REG_SLOW), 4);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_int_equal(seen, 0);
		assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 100);
		delay = 0;
		assert_int_equal(vfpm_instance_write(inst, &delay, 4, bar2 + VFPM_MEMDEV_REG_DELAY_MS), 4);
		assert_int_equal(vfpm_instance_read(inst, &seen, 4, bar2 + VFPM_MEMDEV_REG_SLOW), 4);
		assert_int_equal(seen, 1);
	}

	vfpm_instance_close(inst);
	assert_int_equal(vfpm_pm_wait_status(vfpm_pci_pm(pdev), VFPM_PM_SUSPENDED, WAIT_MS), 0);
	vfpm_memdev_destroy(pdev);
	close(efd);
}

/* The user's memory for the DMA engine's test: a plain buffer at IOVA 0x100000. */
#define TEST_IOVA 0x100000u
static uint8_t user_mem[8192];

static int user_mem_rw(uint64_t iova, void *buf, size_t len, bool write)
{
	if (iova < TEST_IOVA || iova - TEST_IOVA > sizeof(user_mem) ||
	    len > sizeof(user_mem) - (iova - TEST_IOVA))
		return -EFAULT;
	if (write)
		memcpy(user_mem + (iova - TEST_IOVA), buf, len);
	else
		memcpy(buf, user_mem + (iova - TEST_IOVA), len);
	return 0;
}

static int user_mem_read(void *opaque, uint64_t iova, void *buf, size_t len)
{
	(void)opaque;
	return user_mem_rw(iova, buf, len, false);
}

static int user_mem_write(void *opaque, uint64_t iova, const void *buf, size_t len)
{
	(void)opaque;
	return user_mem_rw(iova, (void *)buf, len, true);
}

static const struct vfpm_dma_ops user_mem_ops = { .read = user_mem_read, .write = user_mem_write };

static void bar2_write32(struct vfpm_instance *inst, unsigned int reg, uint32_t v)
{
	assert_int_equal(vfpm_instance_write(inst, &v, 4,
					     VFPM_REGION_OFFSET(VFIO_PCI_BAR2_REGION_INDEX) + reg), 4);
}

static uint32_t bar2_read32(struct vfpm_instance *inst, unsigned int reg)
{
	uint32_t v = 0;

	assert_int_equal(vfpm_instance_read(inst, &v, 4,
					    VFPM_REGION_OFFSET(VFIO_PCI_BAR2_REGION_INDEX) + reg), 4);
	return v;
}

/* Start a transfer and wait for its status (busy while it runs). */
static int32_t memdev_dma(struct vfpm_instance *inst, uint32_t cmd, uint64_t iova, uint32_t len,
			  uint32_t off)
{
	uint32_t status;

	bar2_write32(inst, VFPM_MEMDEV_REG_DMA_ADDR, (uint32_t)iova);
	bar2_write32(inst, VFPM_MEMDEV_REG_DMA_ADDR + 4, (uint32_t)(iova >> 32));
	bar2_write32(inst, VFPM_MEMDEV_REG_DMA_LEN, len);
	bar2_write32(inst, VFPM_MEMDEV_REG_DMA_OFF, off);
	bar2_write32(inst, VFPM_MEMDEV_REG_DMA_CMD, cmd);
	for (int i = 0; i < WAIT_MS; i++) {
		status = bar2_read32(inst, VFPM_MEMDEV_REG_DMA_STATUS);
		if (status != VFPM_MEMDEV_DMA_BUSY)
			return (int32_t)status;
		usleep(1000);
	}
	fail_msg("the DMA engine never finished");
	return 0;
}

/* The memory device's DMA engine, between BAR0 and the user's memory. */
static void test_memdev_dma_engine(void **state)
{
	struct vfpm_pci_dev *pdev;
	struct vfpm_instance *inst;
	uint16_t cmd = PCI_COMMAND_MEMORY;
	static uint8_t expect[4096];
	size_t size;
	uint8_t *bar0;

	(void)state;
	for (size_t i = 0; i < sizeof(user_mem); i++)
		user_mem[i] = (uint8_t)(i * 13 + 5);
	assert_int_equal(vfpm_memdev_create(false, &pdev), 0);
	assert_int_equal(vfpm_device_open(vfpm_pci_device(pdev), &inst), 0);
	vfpm_instance_set_dma(inst, &user_mem_ops, NULL);
	enable_memory(inst);
	bar0 = map_bar(inst, VFIO_PCI_BAR0_REGION_INDEX, &size);

	/* Bus mastering off: refused. */
	assert_int_equal(memdev_dma(inst, VFPM_MEMDEV_DMA_TO_BAR, TEST_IOVA, 256, 0), -EPERM);
	cmd |= PCI_COMMAND_MASTER;
	assert_int_equal(vfpm_instance_write(inst, &cmd, 2,
					     VFPM_REGION_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) +
						     PCI_COMMAND), 2);
	/* Into BAR0, and back out elsewhere. */
	memcpy(expect, user_mem + 100, sizeof(expect));
	assert_int_equal(memdev_dma(inst, VFPM_MEMDEV_DMA_TO_BAR, TEST_IOVA + 100, 4096, 512), 0);
	assert_memory_equal(bar0 + 512, expect, 4096);
	assert_int_equal(memdev_dma(inst, VFPM_MEMDEV_DMA_FROM_BAR, TEST_IOVA + 4096, 4000, 512),
			 0);
	assert_memory_equal(user_mem + 4096, expect, 4000);
	/* Outside the user's memory, outside BAR0, a bad command. */
	assert_int_equal(memdev_dma(inst, VFPM_MEMDEV_DMA_TO_BAR, 0x5000, 16, 0), -EFAULT);
	assert_int_equal(memdev_dma(inst, VFPM_MEMDEV_DMA_TO_BAR, TEST_IOVA, 16,
				    VFPM_MEMDEV_BAR0_SIZE - 8), -EINVAL);
	assert_int_equal(memdev_dma(inst, 7, TEST_IOVA, 16, 0), -EINVAL);
	assert_int_equal(bar2_read32(inst, VFPM_MEMDEV_REG_DMA_COUNT), 5);
	munmap(bar0, size);
	vfpm_instance_close(inst);
	assert_int_equal(vfpm_pm_wait_status(vfpm_pci_pm(pdev), VFPM_PM_SUSPENDED, WAIT_MS), 0);
	vfpm_memdev_destroy(pdev);
}

static void test_memdev_ram_survives_low_power(void **state)
{
	struct vfpm_pci_dev *pdev;
	struct vfpm_instance *inst;
	struct vfpm_pm_dev *pm;
	uint8_t *ram;
	size_t size;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	uint64_t pos = VFPM_REGION_OFFSET(VFIO_PCI_BAR0_REGION_INDEX) + 100;
	char text[16] = { 0 };

	(void)state;
	assert_int_equal(vfpm_memdev_create(false, &pdev), 0);
	pm = vfpm_pci_pm(pdev);
	assert_int_equal(vfpm_device_open(vfpm_pci_device(pdev), &inst), 0);
	enable_memory(inst);
	ram = map_bar(inst, VFIO_PCI_BAR0_REGION_INDEX, &size);
	assert_int_equal(size, VFPM_MEMDEV_BAR0_SIZE);
	memcpy(ram + 100, "sleep well", 11);

	assert_int_equal(enter_with_wakeup(inst, efd), 0);
	assert_int_equal(vfpm_pm_wait_status(pm, VFPM_PM_SUSPENDED, WAIT_MS), 0);
	/* A region read wakes it and sees what was written through the mapping. */
	assert_int_equal(vfpm_instance_read(inst, text, 11, pos), 11);
	assert_string_equal(text, "sleep well");
	assert_int_equal(eventfd_count(efd), 1);
	assert_int_equal(vfpm_pm_status(pm), VFPM_PM_ACTIVE);
	assert_int_equal(memcmp(ram + 100, "sleep well", 11), 0);

	munmap(ram, size);
	vfpm_instance_close(inst);
	vfpm_memdev_destroy(pdev);
	close(efd);
}

static void test_optout_never_suspends_while_open(void **state)
{
	struct vfpm_pci_dev *pdev;
	struct vfpm_instance *inst;
	struct vfpm_pm_dev *pm;

	(void)state;
	assert_int_equal(vfpm_memdev_create(true, &pdev), 0);
	pm = vfpm_pci_pm(pdev);
	assert_int_equal(vfpm_pm_wait_status(pm, VFPM_PM_SUSPENDED, WAIT_MS), 0);
	assert_int_equal(vfpm_device_open(vfpm_pci_device(pdev), &inst), 0);
	assert_int_equal(feature(inst, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
				 NULL, 0, NULL), 0);
	vfpm_pm_barrier(pm);
	assert_int_equal(vfpm_pm_wait_status(pm, VFPM_PM_SUSPENDED, 200), -ETIMEDOUT);
	assert_int_equal(vfpm_pm_usage_count(pm), 1);
	assert_int_equal(feature(inst, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
				 NULL, 0, NULL), 0);
	vfpm_instance_close(inst);
	/* Closed, it is an ordinary unused device again. */
	assert_int_equal(vfpm_pm_wait_status(pm, VFPM_PM_SUSPENDED, WAIT_MS), 0);
	assert_int_equal(vfpm_pm_usage_count(pm), 0);
	vfpm_memdev_destroy(pdev);
}

/* ---- polling device ---- */

struct poller_fixture {
	char dir[64], backend[128];
	struct vfpm_pci_dev *pdev;
	struct vfpm_pm_dev *pm;
	struct vfpm_instance *inst;
	uint8_t *bar;
	size_t size;
	int peer;
};

static bool stats_peer_connected(const struct vfpm_poller_stats *st)
{
	return st->peer;
}

static bool stats_peer_gone(const struct vfpm_poller_stats *st)
{
	return !st->peer;
}

static bool stats_rx_done_and_asleep(const struct vfpm_poller_stats *st)
{
	return st->rx_bytes == 7 && !st->polling;
}

/* Wait (with the test's own deadline) until the stats satisfy a condition. */
static bool wait_stats(struct poller_fixture *f, bool (*cond)(const struct vfpm_poller_stats *))
{
	struct vfpm_poller_stats st;
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		vfpm_poller_get_stats(f->pdev, &st);
		if (cond(&st))
			return true;
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 <
		 WAIT_MS);
	return false;
}

static int poller_setup(void **state)
{
	struct poller_fixture *f = calloc(1, sizeof(*f));
	struct vfpm_poller_opts opts;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	strcpy(f->dir, "/tmp/vfpm-poller-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->backend, sizeof(f->backend), "%s/backend", f->dir);
	opts.backend_path = f->backend;
	assert_int_equal(vfpm_poller_create(&opts, &f->pdev), 0);
	f->pm = vfpm_pci_pm(f->pdev);
	assert_int_equal(vfpm_device_open(vfpm_pci_device(f->pdev), &f->inst), 0);
	enable_memory(f->inst);
	f->bar = map_bar(f->inst, VFIO_PCI_BAR0_REGION_INDEX, &f->size);

	f->peer = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(addr.sun_path, f->backend);
	assert_int_equal(connect(f->peer, (struct sockaddr *)&addr, sizeof(addr)), 0);
	/*
	 * Until the device accepts it, a pending peer is itself a wake event:
	 * let the active device take it before the tests put it to sleep.
	 */
	assert_true(wait_stats(f, stats_peer_connected));
	*state = f;
	return 0;
}

static int poller_teardown(void **state)
{
	struct poller_fixture *f = *state;

	munmap(f->bar, f->size);
	close(f->peer);
	vfpm_instance_close(f->inst);
	assert_int_equal(vfpm_pm_wait_status(f->pm, VFPM_PM_SUSPENDED, WAIT_MS), 0);
	vfpm_poller_destroy(f->pdev);
	rmdir(f->dir);
	free(f);
	return 0;
}

static uint32_t reg(struct poller_fixture *f, unsigned int off)
{
	return __atomic_load_n((uint32_t *)(f->bar + off), __ATOMIC_ACQUIRE);
}

static void set_reg(struct poller_fixture *f, unsigned int off, uint32_t v)
{
	__atomic_store_n((uint32_t *)(f->bar + off), v, __ATOMIC_RELEASE);
}

/* Spin (the test's own clock, not a fixed sleep) until the register reaches want. */
static bool wait_reg(struct poller_fixture *f, unsigned int off, uint32_t want)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		if (reg(f, off) == want)
			return true;
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 <
		 WAIT_MS);
	return false;
}

static void recv_all(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		assert_true(n > 0);
		got += (size_t)n;
	}
}

static void test_poller_moves_data_both_ways(void **state)
{
	struct poller_fixture *f = *state;
	const char msg[] = "to the backend";
	char got[sizeof(msg)] = { 0 };

	assert_int_equal(reg(f, VFPM_POLLER_REG_MAGIC), VFPM_POLLER_MAGIC);
	assert_int_equal(reg(f, VFPM_POLLER_REG_RING_SIZE), VFPM_POLLER_RING_SIZE);
	/* TX: write into the ring, then ring the doorbell. */
	memcpy(f->bar + VFPM_POLLER_TX_RING, msg, sizeof(msg));
	set_reg(f, VFPM_POLLER_REG_TX_PROD, sizeof(msg));
	recv_all(f->peer, got, sizeof(msg));
	assert_string_equal(got, msg);
	assert_true(wait_reg(f, VFPM_POLLER_REG_TX_CONS, sizeof(msg)));
	/* RX: the backend's bytes land in the RX ring. */
	assert_int_equal(send(f->peer, "from it", 8, 0), 8);
	assert_true(wait_reg(f, VFPM_POLLER_REG_RX_PROD, 8));
	assert_string_equal((char *)f->bar + VFPM_POLLER_RX_RING, "from it");
}

static void test_poller_sleeps_and_wakes_on_backend_data(void **state)
{
	struct poller_fixture *f = *state;
	struct vfpm_poller_stats before, after;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	char text[32] = { 0 };
	uint64_t rx = VFPM_REGION_OFFSET(VFIO_PCI_BAR0_REGION_INDEX) + VFPM_POLLER_RX_RING;

	uint64_t suspends;

	vfpm_poller_get_stats(f->pdev, &before);
	assert_true(before.polling);
	suspends = before.suspends; /* the registration's, if it came before the open */
	assert_int_equal(enter_with_wakeup(f->inst, efd), 0);
	assert_int_equal(vfpm_pm_wait_status(f->pm, VFPM_PM_SUSPENDED, WAIT_MS), 0);

	/* Asleep: the polling loop has stopped. */
	vfpm_poller_get_stats(f->pdev, &before);
	assert_false(before.polling);
	assert_int_equal(before.suspends, suspends + 1);
	vfpm_poller_get_stats(f->pdev, &after);
	assert_int_equal(after.polls, before.polls);

	/* Traffic at the backend wakes it and the VMM hears of it. */
	assert_int_equal(send(f->peer, "wake up", 8, 0), 8);
	assert_true(eventfd_wait(efd, WAIT_MS));
	/* By the time the VMM hears of the wake, its mapping is back (no SIGBUS). */
	assert_int_equal(reg(f, VFPM_POLLER_REG_MAGIC), VFPM_POLLER_MAGIC);
	assert_int_equal(eventfd_count(efd), 1);
	assert_int_equal(vfpm_pm_wait_status(f->pm, VFPM_PM_ACTIVE, WAIT_MS), 0);
	assert_true(wait_reg(f, VFPM_POLLER_REG_RX_PROD, 8));
	assert_int_equal(vfpm_instance_read(f->inst, text, 8, rx), 8);
	assert_string_equal(text, "wake up");
	vfpm_poller_get_stats(f->pdev, &after);
	assert_true(after.wakes >= 1);
	assert_true(after.polling);
	/*
	 * Woken with an eventfd armed, it stays awake for the user: once the
	 * backend has been quiet a moment, the wake's reference goes and the
	 * open one (taken back by the wake) holds it.
	 */
	for (int i = 0; i < WAIT_MS && vfpm_pm_usage_count(f->pm) != 1; i++)
		usleep(1000);
	vfpm_pm_barrier(f->pm);
	assert_int_equal(vfpm_pm_status(f->pm), VFPM_PM_ACTIVE);
	assert_int_equal(vfpm_pm_usage_count(f->pm), 1);
	close(efd);
}

static void test_poller_plain_entry_wakes_then_sleeps(void **state)
{
	struct poller_fixture *f = *state;
	struct vfpm_poller_stats st;
	char text[16] = { 0 };
	uint64_t wakes;

	assert_int_equal(feature(f->inst, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
				 NULL, 0, NULL), 0);
	assert_int_equal(vfpm_pm_wait_status(f->pm, VFPM_PM_SUSPENDED, WAIT_MS), 0);
	vfpm_poller_get_stats(f->pdev, &st);
	wakes = st.wakes;
	assert_false(st.polling);
	assert_int_equal(send(f->peer, "queued", 7, 0), 7);
	/* It wakes for the data, moves it, and goes back to sleep. */
	assert_true(wait_stats(f, stats_rx_done_and_asleep));
	assert_int_equal(vfpm_pm_wait_status(f->pm, VFPM_PM_SUSPENDED, WAIT_MS), 0);
	vfpm_poller_get_stats(f->pdev, &st);
	assert_true(st.wakes > wakes);
	/* The data waited in BAR0; after EXIT the user sees it. */
	assert_int_equal(feature(f->inst, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
				 NULL, 0, NULL), 0);
	assert_int_equal(reg(f, VFPM_POLLER_REG_RX_PROD), 7);
	memcpy(text, f->bar + VFPM_POLLER_RX_RING, 7);
	assert_string_equal(text, "queued");
}

static void cfg_write16(struct vfpm_instance *inst, unsigned int off, uint16_t v)
{
	assert_int_equal(vfpm_instance_write(inst, &v, 2,
					     VFPM_REGION_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + off), 2);
}

static bool stats_stopped(const struct vfpm_poller_stats *st)
{
	return !st->polling;
}

static bool stats_polling(const struct vfpm_poller_stats *st)
{
	return st->polling;
}

/* The PM capability's offset, from the capability list. */
static unsigned int pm_cap(struct vfpm_instance *inst)
{
	unsigned int pos = cfg_read16(inst, PCI_CAPABILITY_LIST) & 0xff;

	while (pos && (cfg_read16(inst, pos) & 0xff) != PCI_CAP_ID_PM)
		pos = cfg_read16(inst, pos) >> 8;
	assert_true(pos != 0);
	return pos;
}

/*
 * The guest's own D3hot (a PMCSR write, no low power request): the polling
 * loop stops while runtime PM stays ACTIVE; backend data meanwhile sets
 * PME_Status and waits; D0 restarts the loop and the data arrives.
 */
static void test_poller_d3hot_stops_it(void **state)
{
	struct poller_fixture *f = *state;
	unsigned int pm = pm_cap(f->inst);
	struct vfpm_poller_stats before, after;
	char text[16] = { 0 };
	uint16_t pmcsr;

	assert_true(cfg_read16(f->inst, pm + PCI_PM_PMC) & PCI_PM_CAP_PME_D3hot);
	cfg_write16(f->inst, pm + PCI_PM_CTRL, PCI_PM_CTRL_PME_ENABLE | 3);
	assert_true(wait_stats(f, stats_stopped));
	/* Not a runtime suspend: the device is open and ACTIVE, only the function sleeps. */
	assert_int_equal(vfpm_pm_status(f->pm), VFPM_PM_ACTIVE);
	vfpm_poller_get_stats(f->pdev, &before);
	usleep(50 * 1000);
	vfpm_poller_get_stats(f->pdev, &after);
	assert_int_equal(after.polls, before.polls);

	/* Data at the backend: PME, and nothing moves yet. */
	assert_int_equal(send(f->peer, "in d3", 6, 0), 6);
	for (int i = 0; i < WAIT_MS / 10; i++) {
		if (cfg_read16(f->inst, pm + PCI_PM_CTRL) & PCI_PM_CTRL_PME_STATUS)
			break;
		usleep(10 * 1000);
	}
	pmcsr = (uint16_t)cfg_read16(f->inst, pm + PCI_PM_CTRL);
	assert_true(pmcsr & PCI_PM_CTRL_PME_STATUS);
	assert_int_equal(pmcsr & PCI_PM_CTRL_STATE_MASK, 3);
	vfpm_poller_get_stats(f->pdev, &after);
	assert_false(after.polling);
	assert_int_equal(after.rx_bytes, before.rx_bytes);

	/* The guest clears PME_Status and goes back to D0 (a soft reset: memory off). */
	cfg_write16(f->inst, pm + PCI_PM_CTRL, PCI_PM_CTRL_PME_STATUS);
	assert_false(cfg_read16(f->inst, pm + PCI_PM_CTRL) & PCI_PM_CTRL_PME_STATUS);
	assert_true(wait_stats(f, stats_polling));
	enable_memory(f->inst);
	assert_true(wait_reg(f, VFPM_POLLER_REG_RX_PROD, 6));
	memcpy(text, f->bar + VFPM_POLLER_RX_RING, 6);
	assert_string_equal(text, "in d3");
}

/* A peer hanging up is no reason to wake; a new peer is. */
static void test_poller_hangup_is_not_a_wake(void **state)
{
	struct poller_fixture *f = *state;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct vfpm_poller_stats st;
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	assert_int_equal(enter_with_wakeup(f->inst, efd), 0);
	assert_int_equal(vfpm_pm_wait_status(f->pm, VFPM_PM_SUSPENDED, WAIT_MS), 0);
	close(f->peer);
	assert_true(wait_stats(f, stats_peer_gone));
	vfpm_poller_get_stats(f->pdev, &st);
	assert_int_equal(st.wakes, 0);
	assert_false(eventfd_wait(efd, 100));
	assert_int_equal(vfpm_pm_status(f->pm), VFPM_PM_SUSPENDED);

	f->peer = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	strcpy(addr.sun_path, f->backend);
	assert_int_equal(connect(f->peer, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_true(eventfd_wait(efd, WAIT_MS));
	assert_int_equal(eventfd_count(efd), 1);
	assert_true(wait_stats(f, stats_peer_connected));
	close(efd);
}

static void test_poller_rejects_bad_backend(void **state)
{
	struct vfpm_poller_opts opts = { .backend_path = "/nonexistent-dir/backend" };
	struct vfpm_pci_dev *pdev = NULL;

	(void)state;
	assert_true(vfpm_poller_create(&opts, &pdev) < 0);
	assert_null(pdev);
	opts.backend_path = NULL;
	assert_int_equal(vfpm_poller_create(&opts, &pdev), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memdev_dma_engine),
		cmocka_unit_test(test_memdev_registers_and_interrupts),
		cmocka_unit_test(test_memdev_ram_survives_low_power),
		cmocka_unit_test(test_optout_never_suspends_while_open),
		cmocka_unit_test_setup_teardown(test_poller_moves_data_both_ways, poller_setup,
						poller_teardown),
		cmocka_unit_test_setup_teardown(test_poller_sleeps_and_wakes_on_backend_data,
						poller_setup, poller_teardown),
		cmocka_unit_test_setup_teardown(test_poller_d3hot_stops_it, poller_setup,
						poller_teardown),
		cmocka_unit_test_setup_teardown(test_poller_plain_entry_wakes_then_sleeps,
						poller_setup, poller_teardown),
		cmocka_unit_test_setup_teardown(test_poller_hangup_is_not_a_wake, poller_setup,
						poller_teardown),
		cmocka_unit_test(test_poller_rejects_bad_backend),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
