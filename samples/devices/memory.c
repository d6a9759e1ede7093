// SPDX-License-Identifier: MIT
/*
 * The memory device and its opt-out variant: RAM in BAR0 (mmap-able), a
 * small trapped register file in BAR2, INTx and MSI-X.
 */
#include "devices.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/pci_regs.h>

#define MEMDEV_ID 0x4d454d30u /* "MEM0" */

struct memdev {
	bool optout;			/* immutable */
	struct vfpm_pci_dev *pdev;	/* set at creation, before any access */
	pthread_mutex_t lock;		/* protects regs, slow_reads and the engine's state */
	uint8_t regs[VFPM_MEMDEV_BAR2_SIZE];
	uint32_t slow_reads;

	/*
	 * The DMA engine: its thread waits on dma_cond for a command (dma_cmd
	 * set), moves the data through a bounce buffer (never holding the
	 * memory lock while the user's memory is reached: a DMA message to a
	 * VMM may wait for the VMM) and holds a runtime PM reference while busy.
	 */
	pthread_cond_t dma_cond;
	pthread_t dma_thread;
	bool dma_thread_running;
	bool dma_stop;
	uint32_t dma_cmd;		/* 0: nothing queued */
};

static uint32_t memdev_reg32(struct memdev *md, unsigned int reg)
{
	uint32_t v;

	memcpy(&v, md->regs + reg, sizeof(v));
	return v;
}

/* A read of REG_SLOW: takes DELAY_MS (without holding the lock), counts itself. */
static uint32_t memdev_slow_read(struct memdev *md)
{
	struct timespec ts;
	uint32_t delay, seen;

	pthread_mutex_lock(&md->lock);
	delay = memdev_reg32(md, VFPM_MEMDEV_REG_DELAY_MS);
	seen = md->slow_reads++;
	pthread_mutex_unlock(&md->lock);
	if (delay > VFPM_MEMDEV_MAX_DELAY_MS)
		delay = VFPM_MEMDEV_MAX_DELAY_MS;
	ts.tv_sec = delay / 1000;
	ts.tv_nsec = (long)(delay % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return seen;
}

static void memdev_ring_doorbell(struct vfpm_pci_dev *pdev, uint32_t value)
{
	if (value == 1)
		vfpm_pci_intx_assert(pdev);
	else if (value == 0)
		vfpm_pci_intx_deassert(pdev);
	else if (value >= 2)
		vfpm_pci_msix_signal(pdev, value - 2);
}

static void memdev_set_reg32(struct memdev *md, unsigned int reg, uint32_t v)
{
	memcpy(md->regs + reg, &v, sizeof(v));
}

/* One transfer (md->lock not held): 0 or -errno. */
static int memdev_dma_run(struct memdev *md, uint32_t cmd, uint64_t addr, uint32_t len,
			  uint32_t off)
{
	uint8_t *bar0 = vfpm_pci_bar_mem(md->pdev, 0);
	uint8_t *bounce;
	int err;

	if (off > VFPM_MEMDEV_BAR0_SIZE || len > VFPM_MEMDEV_BAR0_SIZE - off)
		return -EINVAL;
	if (!len)
		return 0;
	bounce = malloc(len);
	if (!bounce)
		return -ENOMEM;
	if (cmd == VFPM_MEMDEV_DMA_TO_BAR) {
		err = vfpm_pci_dma_read(md->pdev, addr, bounce, len);
		if (!err) {
			vfpm_pci_mem_lock(md->pdev);
			memcpy(bar0 + off, bounce, len);
			vfpm_pci_mem_unlock(md->pdev);
		}
	} else {
		vfpm_pci_mem_lock(md->pdev);
		memcpy(bounce, bar0 + off, len);
		vfpm_pci_mem_unlock(md->pdev);
		err = vfpm_pci_dma_write(md->pdev, addr, bounce, len);
	}
	free(bounce);
	return err;
}

static void *memdev_dma_main(void *arg)
{
	struct memdev *md = arg;

	pthread_mutex_lock(&md->lock);
	for (;;) {
		uint32_t cmd, len, off;
		uint64_t addr;
		int err;

		while (!md->dma_cmd && !md->dma_stop)
			pthread_cond_wait(&md->dma_cond, &md->lock);
		if (md->dma_stop)
			break;
		cmd = md->dma_cmd;
		addr = memdev_reg32(md, VFPM_MEMDEV_REG_DMA_ADDR) |
		       (uint64_t)memdev_reg32(md, VFPM_MEMDEV_REG_DMA_ADDR + 4) << 32;
		len = memdev_reg32(md, VFPM_MEMDEV_REG_DMA_LEN);
		off = memdev_reg32(md, VFPM_MEMDEV_REG_DMA_OFF);
		pthread_mutex_unlock(&md->lock);

		err = memdev_dma_run(md, cmd & ~VFPM_MEMDEV_DMA_IRQ, addr, len, off);

		pthread_mutex_lock(&md->lock);
		md->dma_cmd = 0;
		memdev_set_reg32(md, VFPM_MEMDEV_REG_DMA_STATUS, (uint32_t)err);
		memdev_set_reg32(md, VFPM_MEMDEV_REG_DMA_COUNT,
				 memdev_reg32(md, VFPM_MEMDEV_REG_DMA_COUNT) + 1);
		pthread_mutex_unlock(&md->lock);
		if (cmd & VFPM_MEMDEV_DMA_IRQ)
			vfpm_pci_msix_signal(md->pdev, 0);
		/* The reference the command took: the device may sleep again. */
		vfpm_pm_put(vfpm_pci_pm(md->pdev));
		pthread_mutex_lock(&md->lock);
	}
	pthread_mutex_unlock(&md->lock);
	return NULL;
}

/* A DMA command (md->lock held): start it, or refuse it while one runs. */
static void memdev_dma_start(struct memdev *md, uint32_t cmd)
{
	uint32_t dir = cmd & ~VFPM_MEMDEV_DMA_IRQ;

	if (md->dma_cmd) {
		return;	/* busy: the running transfer's status stands */
	}
	if (dir != VFPM_MEMDEV_DMA_TO_BAR && dir != VFPM_MEMDEV_DMA_FROM_BAR) {
		memdev_set_reg32(md, VFPM_MEMDEV_REG_DMA_STATUS, (uint32_t)-EINVAL);
		return;
	}
	if (!md->dma_thread_running) {
		int err = pthread_create(&md->dma_thread, NULL, memdev_dma_main, md);

		if (err) {
			memdev_set_reg32(md, VFPM_MEMDEV_REG_DMA_STATUS, (uint32_t)-err);
			return;
		}
		md->dma_thread_running = true;
	}
	/* The request holds the device up now; the engine holds it until done. */
	vfpm_pm_get_noresume(vfpm_pci_pm(md->pdev));
	md->dma_cmd = cmd;
	memdev_set_reg32(md, VFPM_MEMDEV_REG_DMA_STATUS, VFPM_MEMDEV_DMA_BUSY);
	pthread_cond_signal(&md->dma_cond);
}

static void memdev_dma_stop(struct memdev *md)
{
	pthread_mutex_lock(&md->lock);
	md->dma_stop = true;
	pthread_cond_signal(&md->dma_cond);
	pthread_mutex_unlock(&md->lock);
	if (md->dma_thread_running)
		pthread_join(md->dma_thread, NULL);
	md->dma_thread_running = false;
}

static ssize_t memdev_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst,
			     unsigned int bar, uint64_t offset, void *buf, size_t count,
			     bool write)
{
	struct memdev *md = vfpm_pci_model(pdev);
	uint32_t doorbell = 0;
	bool ring = false;

	if (bar != 2)
		return -EINVAL;
	if (!write && offset == VFPM_MEMDEV_REG_SLOW && count == 4) {
		uint32_t seen = memdev_slow_read(md);

		memcpy(buf, &seen, sizeof(seen));
		return 4;
	}
	pthread_mutex_lock(&md->lock);
	if (write) {
		/* The ID is read-only; the doorbell is write-only and not stored. */
		for (size_t i = 0; i < count; i++) {
			uint64_t at = offset + i;

			if (at >= VFPM_MEMDEV_REG_SCRATCH ||
			    (at >= VFPM_MEMDEV_REG_DELAY_MS && at < VFPM_MEMDEV_REG_DELAY_MS + 4) ||
			    (at >= VFPM_MEMDEV_REG_DMA_ADDR && at < VFPM_MEMDEV_REG_DMA_CMD))
				md->regs[at] = ((const uint8_t *)buf)[i];
			else if (at >= VFPM_MEMDEV_REG_DOORBELL && at < VFPM_MEMDEV_REG_DOORBELL + 4)
				doorbell |= (uint32_t)((const uint8_t *)buf)[i]
					    << (8 * (at - VFPM_MEMDEV_REG_DOORBELL));
		}
		ring = offset <= VFPM_MEMDEV_REG_DOORBELL &&
		       offset + count >= VFPM_MEMDEV_REG_DOORBELL + 4;
		if (offset == VFPM_MEMDEV_REG_DMA_CMD && count == 4) {
			uint32_t cmd;

			memcpy(&cmd, buf, 4);
			memdev_dma_start(md, cmd);
		}
	} else {
		memcpy(buf, md->regs + offset, count);
	}
	pthread_mutex_unlock(&md->lock);
	if (ring)
		memdev_ring_doorbell(pdev, doorbell);
	return (ssize_t)count;
}

static void memdev_reset(struct vfpm_pci_dev *pdev)
{
	struct memdev *md = vfpm_pci_model(pdev);
	uint32_t id = MEMDEV_ID;

	pthread_mutex_lock(&md->lock);
	/* A transfer under way finishes; its status lands after the reset. */
	memset(md->regs, 0, sizeof(md->regs));
	memcpy(md->regs + VFPM_MEMDEV_REG_ID, &id, sizeof(id));
	md->slow_reads = 0;
	pthread_mutex_unlock(&md->lock);
}

/* The opt-out: a runtime PM reference held for as long as the device is open. */
static int memdev_optout_open(struct vfpm_pci_dev *pdev)
{
	vfpm_pm_get_noresume(vfpm_pci_pm(pdev));
	return 0;
}

static void memdev_optout_close(struct vfpm_pci_dev *pdev)
{
	vfpm_pm_put_noidle(vfpm_pci_pm(pdev));
}

/* Runtime PM is off: the engine's thread goes (a transfer under way finishes first). */
static void memdev_remove(struct vfpm_pci_dev *pdev)
{
	memdev_dma_stop(vfpm_pci_model(pdev));
}

static const struct vfpm_pci_model_ops memdev_ops = {
	.remove = memdev_remove,
	.bar_rw = memdev_bar_rw,
	.reset = memdev_reset,
};

static const struct vfpm_pci_model_ops memdev_optout_ops = {
	.remove = memdev_remove,
	.open = memdev_optout_open,
	.close = memdev_optout_close,
	.bar_rw = memdev_bar_rw,
	.reset = memdev_reset,
};

int vfpm_memdev_create(bool optout, struct vfpm_pci_dev **out)
{
	struct vfpm_pci_desc desc = {
		.vendor_id = 0x1b36, .device_id = optout ? 0x00f1 : 0x00f0,
		.subsystem_vendor_id = 0x1b36, .subsystem_id = 0x0001,
		.class_code = 0x050000, /* memory controller, RAM */
		.interrupt_pin = 1,
		.bars = {
			[0] = { .type = VFPM_PCI_BAR_MEM32, .size = VFPM_MEMDEV_BAR0_SIZE,
				.mappable = true },
			[2] = { .type = VFPM_PCI_BAR_MEM32, .size = VFPM_MEMDEV_BAR2_SIZE },
			/* The MSI-X table in its first page, the second one mappable. */
			[4] = { .type = VFPM_PCI_BAR_MEM64, .size = 8192, .mappable = true },
		},
		.pm_cap = true,
		.msix_vectors = 4,
		.msix_bar = 4,
		.pcie_cap = true,
	};
	struct memdev *md = calloc(1, sizeof(*md));
	int err;

	if (!md)
		return -ENOMEM;
	md->optout = optout;
	pthread_mutex_init(&md->lock, NULL);
	pthread_cond_init(&md->dma_cond, NULL);
	err = vfpm_pci_dev_create(&desc, optout ? &memdev_optout_ops : &memdev_ops, md, out);
	if (err) {
		pthread_cond_destroy(&md->dma_cond);
		pthread_mutex_destroy(&md->lock);
		free(md);
		return err;
	}
	md->pdev = *out;
	memdev_reset(*out);
	return 0;
}

void vfpm_memdev_destroy(struct vfpm_pci_dev *pdev)
{
	struct memdev *md;

	if (!pdev)
		return;
	md = vfpm_pci_model(pdev);
	vfpm_pci_dev_destroy(pdev);
	pthread_cond_destroy(&md->dma_cond);
	pthread_mutex_destroy(&md->lock);
	free(md);
}
