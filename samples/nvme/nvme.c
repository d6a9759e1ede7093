// SPDX-License-Identifier: MIT
/*
 * The NVMe controller as a PCI function: its description, the registers
 * (trapped, in BAR0's first page), the poller thread and the lifecycle the
 * PCI core drives (probe, reset, runtime suspend and resume, remove).
 *
 * The poller thread exists while the controller is enabled and the device
 * awake.  It stops on runtime suspend (and D3hot, which the core turns into
 * the same call), after finishing the command it is on; the suspend then
 * drains what the host had submitted before the device went to sleep, so
 * that every command the host rang for completes before runtime_suspend
 * returns.  Resume starts it again on the same queues; it reads the
 * doorbells afresh, so a doorbell written while the device slept (the write's
 * request resumed it first) is seen.
 */
#include "nvme_ctrl.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/fs.h>

#define NVME_VENDOR_ID 0x1b36		/* Red Hat's, as vfpm's other samples */
#define NVME_DEVICE_ID 0x00f3
#define NVME_SUBSYSTEM_ID 0x0003
#define NVME_CLASS_CODE 0x010802	/* mass storage, non-volatile memory, NVM Express */
#define NVME_READY_TIMEOUT 15		/* CAP.TO: 7.5 s */
#define NVME_DRAIN_PASSES 4096		/* a suspend's drain ends well before this */

static const uint64_t nvme_cap =
	NVME_CAP_MQES(VFPM_NVME_MAX_QUEUE_ENTRIES - 1) | NVME_CAP_CQR |
	NVME_CAP_TO(NVME_READY_TIMEOUT) | NVME_CAP_CSS_NVM | NVME_CAP_MPSMIN(0) |
	NVME_CAP_MPSMAX(0);

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* ---- the poller thread ---- */

static void *poller_main(void *arg)
{
	struct nvme_ctrl *c = arg;

	for (;;) {
		while (!atomic_load(&c->poller.stop)) {
			nvme_engine_apply_cc(c);
			if (!nvme_engine_running(c))
				break;
			if (!nvme_engine_pass(c))
				cpu_relax();
		}
		/*
		 * Disabled, shut down or failed: say so, then look at CC once
		 * more.  A register write stores CC before it looks at exited,
		 * so either it saw us exit (and applies CC itself) or we see
		 * its CC here.  Until we return, a joiner waits: the engine is
		 * still ours.
		 */
		atomic_store(&c->poller.exited, true);
		if (atomic_load(&c->poller.stop))
			break;
		nvme_engine_apply_cc(c);
		if (!nvme_engine_running(c))
			break;
		atomic_store(&c->poller.exited, false);
	}
	return NULL;
}

/* c->lock held.  Ends the thread; the engine is the lock holder's from here. */
static void poller_stop_locked(struct nvme_ctrl *c)
{
	if (!c->poller.started)
		return;
	atomic_store(&c->poller.stop, true);
	pthread_join(c->poller.thread, NULL);
	c->poller.started = false;
}

static void poller_start_locked(struct nvme_ctrl *c)
{
	atomic_store(&c->poller.stop, false);
	atomic_store(&c->poller.exited, false);
	if (pthread_create(&c->poller.thread, NULL, poller_main, c)) {
		nvme_engine_fatal(c, "the poller thread could not be started");
		return;
	}
	pthread_setname_np(c->poller.thread, "nvme-poller");
	c->poller.started = true;
}

/*
 * c->lock held: bring the engine up to date with the registers.  A running
 * poller does that itself; one that exited is joined, and then the lock
 * holder applies CC and starts a poller when there is something to poll.
 */
static void ctrl_sync_locked(struct nvme_ctrl *c)
{
	if (c->poller.started) {
		if (!atomic_load(&c->poller.exited))
			return;
		poller_stop_locked(c);
	}
	nvme_engine_apply_cc(c);
	if (!c->manual_poll && !c->suspended && nvme_engine_running(c))
		poller_start_locked(c);
}

/* c->lock held: every register and the engine back to power-on values. */
static void ctrl_power_on_locked(struct nvme_ctrl *c)
{
	atomic_store(&c->cc, 0);
	atomic_store(&c->aqa, 0);
	atomic_store(&c->asq, 0);
	atomic_store(&c->acq, 0);
	c->eng.cc_applied = 0;
	nvme_engine_reset(c);
}

/* ---- registers ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static void regs_read(struct nvme_ctrl *c, uint64_t offset, uint8_t *buf, size_t count)
{
	uint8_t img[NVME_REG_END] = { 0 };

	put_le64(img + NVME_REG_CAP, nvme_cap);
	put_le32(img + NVME_REG_VS, NVME_VS_1_4);
	put_le32(img + NVME_REG_INTMS, atomic_load(&c->intms));
	put_le32(img + NVME_REG_INTMC, atomic_load(&c->intms));
	put_le32(img + NVME_REG_CC, atomic_load(&c->cc));
	put_le32(img + NVME_REG_CSTS, atomic_load(&c->csts));
	put_le32(img + NVME_REG_AQA, atomic_load(&c->aqa));
	put_le64(img + NVME_REG_ASQ, atomic_load(&c->asq));
	put_le64(img + NVME_REG_ACQ, atomic_load(&c->acq));
	for (size_t i = 0; i < count; i++)
		buf[i] = offset + i < sizeof(img) ? img[offset + i] : 0;
}

static uint64_t merge_dword(uint64_t old, unsigned int shift, uint32_t val, uint32_t mask)
{
	return (old & ~((uint64_t)mask << shift)) | (uint64_t)(val & mask) << shift;
}

/* One dword register: the bytes written (mask) of val.  Read-only ones ignore it. */
static void reg_write32(struct nvme_ctrl *c, uint64_t reg, uint32_t val, uint32_t mask,
			bool *cc_written, bool *intms_written)
{
	switch (reg) {
	case NVME_REG_INTMS:
		atomic_fetch_or(&c->intms, val & mask);
		*intms_written = true;
		break;
	case NVME_REG_INTMC:
		atomic_fetch_and(&c->intms, ~(val & mask));
		*intms_written = true;
		break;
	case NVME_REG_CC:
		atomic_store(&c->cc, (uint32_t)merge_dword(atomic_load(&c->cc), 0, val, mask) &
				     NVME_CC_WRITABLE);
		*cc_written = true;
		break;
	case NVME_REG_AQA:
		atomic_store(&c->aqa, (uint32_t)merge_dword(atomic_load(&c->aqa), 0, val, mask) &
				      NVME_AQA_WRITABLE);
		break;
	case NVME_REG_ASQ:
	case NVME_REG_ASQ + 4:
	case NVME_REG_ACQ:
	case NVME_REG_ACQ + 4: {
		_Atomic uint64_t *base = reg < NVME_REG_ACQ ? &c->asq : &c->acq;
		unsigned int shift = reg & 4 ? 32 : 0;

		/* Page-aligned: the low 12 bits are reserved. */
		atomic_store(base, merge_dword(atomic_load(base), shift, val, mask) &
				   ~(uint64_t)(NVME_PAGE_SIZE - 1));
		break;
	}
	default:
		break;	/* CAP, VS, CSTS, NSSR (no subsystem reset) and the rest */
	}
}

static void regs_write(struct nvme_ctrl *c, uint64_t offset, const uint8_t *buf, size_t count)
{
	bool cc_written = false, intms_written = false;

	for (uint64_t reg = offset & ~3ull; reg < offset + count; reg += 4) {
		uint32_t val = 0, mask = 0;

		for (unsigned int b = 0; b < 4; b++) {
			if (reg + b >= offset && reg + b < offset + count) {
				val |= (uint32_t)buf[reg + b - offset] << (8 * b);
				mask |= 0xffu << (8 * b);
			}
		}
		reg_write32(c, reg, val, mask, &cc_written, &intms_written);
	}
	if (cc_written)
		ctrl_sync_locked(c);
	if (intms_written)
		nvme_irq_update_intx(c);
}

static ssize_t nvme_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst,
			   unsigned int bar, uint64_t offset, void *buf, size_t count, bool write)
{
	struct nvme_ctrl *c = vfpm_pci_model(pdev);
	uint8_t *p = buf;
	size_t done = 0;

	if (bar == VFPM_NVME_MSIX_BAR) {
		/* Past the MSI-X table (the core's): the PBA, never pending here. */
		if (!write)
			memset(buf, 0, count);
		return (ssize_t)count;
	}
	if (bar != 0 || offset >= VFPM_NVME_BAR0_SIZE)
		return -EINVAL;
	while (done < count && offset + done < VFPM_NVME_BAR0_SIZE) {
		uint64_t at = offset + done;
		uint64_t page_end = (at & ~(uint64_t)(NVME_PAGE_SIZE - 1)) + NVME_PAGE_SIZE;
		size_t n = count - done < page_end - at ? count - done : (size_t)(page_end - at);

		if (at < VFPM_NVME_DOORBELLS) {
			pthread_mutex_lock(&c->lock);
			ctrl_sync_locked(c);
			if (write)
				regs_write(c, at, p + done, n);
			else
				regs_read(c, at, p + done, n);
			pthread_mutex_unlock(&c->lock);
		} else if (!write) {
			memset(p + done, 0, n);	/* reserved (the doorbells are memory) */
		}
		done += n;
	}
	return (ssize_t)done;
}

/* ---- lifecycle ---- */

static int nvme_probe(struct vfpm_pci_dev *pdev)
{
	struct nvme_ctrl *c = vfpm_pci_model(pdev);
	uint8_t *bar0 = vfpm_pci_bar_mem(pdev, 0);

	if (!bar0)
		return -ENODEV;	/* a library that maps no areas */
	c->pdev = pdev;
	c->db_mem = (uint32_t *)(bar0 + VFPM_NVME_DOORBELLS);
	pthread_mutex_lock(&c->lock);
	ctrl_power_on_locked(c);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void nvme_remove(struct vfpm_pci_dev *pdev)
{
	struct nvme_ctrl *c = vfpm_pci_model(pdev);

	pthread_mutex_lock(&c->lock);
	poller_stop_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* Function reset, FLR, D3hot -> D0 soft reset: the controller as at power-on. */
static void nvme_reset(struct vfpm_pci_dev *pdev)
{
	struct nvme_ctrl *c = vfpm_pci_model(pdev);

	pthread_mutex_lock(&c->lock);
	poller_stop_locked(c);
	ctrl_power_on_locked(c);
	pthread_mutex_unlock(&c->lock);
}

static int nvme_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	struct nvme_ctrl *c = vfpm_pci_model(pdev);
	unsigned int drained = 0, n = 0;

	pthread_mutex_lock(&c->lock);
	c->suspended = true;
	poller_stop_locked(c);
	/* The commands rung for before the suspend complete now, queues stay as they are. */
	nvme_engine_apply_cc(c);
	for (unsigned int i = 0; i < NVME_DRAIN_PASSES && (n = nvme_engine_pass(c)); i++)
		drained += n;
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&c->drained, drained);
	atomic_fetch_add(&c->suspends, 1);
	return 0;
}

static int nvme_runtime_resume(struct vfpm_pci_dev *pdev)
{
	struct nvme_ctrl *c = vfpm_pci_model(pdev);

	pthread_mutex_lock(&c->lock);
	c->suspended = false;
	ctrl_sync_locked(c);
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&c->resumes, 1);
	return 0;
}

static const struct vfpm_pci_model_ops nvme_ops = {
	.probe = nvme_probe,
	.remove = nvme_remove,
	.bar_rw = nvme_bar_rw,
	.reset = nvme_reset,
	.runtime_suspend = nvme_runtime_suspend,
	.runtime_resume = nvme_runtime_resume,
};

/* ---- creation ---- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Names that stay the same for the same file: serial, EUI-64, NGUID, UUID. */
static void ctrl_make_ids(struct nvme_ctrl *c, const struct stat *st)
{
	uint64_t h1 = fnv1a(0xcbf29ce484222325ull, &st->st_dev, sizeof(st->st_dev));
	uint64_t h2;
	char serial[21];

	h1 = fnv1a(h1, &st->st_ino, sizeof(st->st_ino));
	h2 = fnv1a(h1 ^ 0x5646504d4e564d45ull, &c->block_shift, sizeof(c->block_shift));
	snprintf(serial, sizeof(serial), "VFPM%016llx", (unsigned long long)h1);
	memcpy(c->serial, serial, sizeof(c->serial));
	memcpy(c->eui64, &h1, sizeof(c->eui64));
	c->eui64[0] = (uint8_t)((c->eui64[0] | 0x02) & ~0x01);	/* locally administered */
	memcpy(c->nguid, &h1, 8);
	memcpy(c->nguid + 8, &h2, 8);
	memcpy(c->uuid, &h2, 8);
	memcpy(c->uuid + 8, &h1, 8);
	c->uuid[6] = (uint8_t)((c->uuid[6] & 0x0f) | 0x40);	/* version 4 */
	c->uuid[8] = (uint8_t)((c->uuid[8] & 0x3f) | 0x80);	/* RFC 4122 variant */
}

static int backing_open(struct nvme_ctrl *c, const char *path, unsigned int block_size)
{
	struct stat st;
	uint64_t size;

	c->fd = open(path, O_RDWR | O_CLOEXEC);
	if (c->fd < 0)
		return -errno;
	if (fstat(c->fd, &st))
		return -errno;
	if (S_ISREG(st.st_mode))
		size = (uint64_t)st.st_size;
	else if (!S_ISBLK(st.st_mode))
		return -EINVAL;
	else if (ioctl(c->fd, BLKGETSIZE64, &size))
		return -errno;
	c->block_shift = block_size == 4096 ? 12 : 9;
	c->nblocks = size >> c->block_shift;
	if (!c->nblocks)
		return -ENOSPC;
	ctrl_make_ids(c, &st);
	return 0;
}

static void ctrl_free(struct nvme_ctrl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->eng.buf);
	pthread_mutex_destroy(&c->irq_lock);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

int vfpm_nvme_create(const struct vfpm_nvme_opts *opts, struct vfpm_pci_dev **out)
{
	struct vfpm_pci_desc desc = {
		.name = "nvme",
		.vendor_id = NVME_VENDOR_ID, .device_id = NVME_DEVICE_ID,
		.subsystem_vendor_id = NVME_VENDOR_ID, .subsystem_id = NVME_SUBSYSTEM_ID,
		.class_code = NVME_CLASS_CODE,
		.interrupt_pin = 1,
		.bars = {
			/* Registers trapped, the doorbell page mapped by the VMM. */
			[0] = { .type = VFPM_PCI_BAR_MEM64, .size = VFPM_NVME_BAR0_SIZE,
				.nr_areas = 1,
				.areas = { { VFPM_NVME_DOORBELLS, NVME_PAGE_SIZE } } },
			[VFPM_NVME_MSIX_BAR] = { .type = VFPM_PCI_BAR_MEM32, .size = NVME_PAGE_SIZE },
		},
		.pm_cap = true,
		.msix_vectors = VFPM_NVME_MSIX_VECTORS,
		.msix_bar = VFPM_NVME_MSIX_BAR,
		.pcie_cap = true,
		.flr = true,
	};
	struct timespec now;
	struct nvme_ctrl *c;
	int err;

	if (!opts || !opts->backing_path || !out)
		return -EINVAL;
	if (opts->block_size && opts->block_size != 512 && opts->block_size != 4096)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->irq_lock, NULL);
	c->manual_poll = opts->manual_poll;
	clock_gettime(CLOCK_MONOTONIC, &now);
	c->created_s = (uint64_t)now.tv_sec;
	c->eng.buf = aligned_alloc(NVME_PAGE_SIZE, VFPM_NVME_MAX_TRANSFER);
	err = c->eng.buf ? backing_open(c, opts->backing_path, opts->block_size) : -ENOMEM;
	if (!err)
		err = vfpm_pci_dev_create(&desc, &nvme_ops, c, out);
	if (err) {
		ctrl_free(c);
		return err;
	}
	return 0;
}

void vfpm_nvme_destroy(struct vfpm_pci_dev *pdev)
{
	struct nvme_ctrl *c;

	if (!pdev)
		return;
	c = vfpm_pci_model(pdev);
	vfpm_pci_dev_destroy(pdev);
	ctrl_free(c);
}

int vfpm_nvme_poll(struct vfpm_pci_dev *pdev)
{
	struct nvme_ctrl *c = vfpm_pci_model(pdev);

	if (!c->manual_poll)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ctrl_sync_locked(c);
	if (!c->suspended)
		nvme_engine_pass(c);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

void vfpm_nvme_get_stats(struct vfpm_pci_dev *pdev, struct vfpm_nvme_stats *st)
{
	struct nvme_ctrl *c = vfpm_pci_model(pdev);

	pthread_mutex_lock(&c->lock);
	st->polling = c->poller.started && !atomic_load(&c->poller.exited);
	pthread_mutex_unlock(&c->lock);
	st->csts = atomic_load(&c->csts);
	st->blocks = c->nblocks;
	st->passes = atomic_load(&c->passes);
	st->commands = atomic_load(&c->commands);
	st->drained = atomic_load(&c->drained);
	st->suspends = atomic_load(&c->suspends);
	st->resumes = atomic_load(&c->resumes);
	st->fatal_reason = atomic_load(&c->fatal_reason);
}
