// SPDX-License-Identifier: MIT
/*
 * The device of docs/device-model.md, written from the guide alone against
 * the installed library (pkg-config vfpm): a checksum engine with
 *  - BAR0 (8 KiB): page 0 registers, trapped; page 1 a doorbell page the
 *    VMM maps, polled by the device's own thread;
 *  - a vendor-specific capability whose writable dword sets the poll
 *    interval;
 *  - DMA: a ring of the doorbell makes the device read a descriptor from
 *    guest memory, sum the bytes it points to (mapped in place), write the
 *    sum back into the descriptor, and raise MSI-X vector 0.
 * The polling thread stops when the device sleeps and restarts when it
 * wakes.
 *
 *   cc doorbell.c check.c $(pkg-config --cflags --libs vfpm) -o doorbell
 *   ./doorbell SOCKET            serve until SIGINT/SIGTERM
 *   ./doorbell --check SOCKET    serve, drive it as a client (check.c), exit
 */
#include "doorbell.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/pci_regs.h>

#include <vfpm/log.h>
#include <vfpm/pci.h>
#include <vfpm/transport.h>

struct doorbell {
	struct vfpm_pci_dev *pdev;
	/* The device's registers; lock protects them and the thread fields. */
	pthread_mutex_t lock;
	uint64_t desc_addr;
	uint32_t done;
	uint32_t status;
	uint32_t last_ring;		/* the doorbell value last served */
	pthread_t thread;
	bool running;			/* the poller runs (not suspended) */
	atomic_bool stop;
	atomic_uint poll_us;		/* set through the vendor capability */
};

/* ---- the work: one descriptor ---- */

static uint32_t db_serve_descriptor(struct doorbell *db, uint64_t desc_addr)
{
	struct db_descriptor d;
	struct iovec iov[4];
	struct vfpm_dma_sg sg;
	uint32_t sum = 0;
	int err;

	err = vfpm_pci_dma_read(db->pdev, desc_addr, &d, sizeof(d));
	if (err)
		return DB_STATUS_DMA_ERROR;
	if (d.len > DB_MAX_LEN)
		return DB_STATUS_TOO_LONG;
	/* The data, in place: no copy of the guest's bytes. */
	err = vfpm_pci_dma_map(db->pdev, d.data, d.len, PROT_READ, iov, 4, &sg);
	if (err)
		return DB_STATUS_DMA_ERROR;
	for (unsigned int i = 0; i < sg.nr_iov; i++)
		for (size_t j = 0; j < iov[i].iov_len; j++)
			sum += ((const uint8_t *)iov[i].iov_base)[j];
	if (vfpm_pci_dma_unmap(db->pdev, &sg))
		return DB_STATUS_DMA_ERROR;
	d.sum = sum;
	d.flags |= DB_DESC_DONE;
	if (vfpm_pci_dma_write(db->pdev, desc_addr, &d, sizeof(d)))
		return DB_STATUS_DMA_ERROR;
	return DB_STATUS_OK;
}

/* Serve the doorbell if it rang since last time: true when it had. */
static bool db_poll_once(struct doorbell *db)
{
	const uint8_t *mem = vfpm_pci_bar_mem(db->pdev, 0);
	uint32_t ring, status;
	uint64_t desc;

	/* The doorbell page is BAR memory: read it under the memory lock. */
	vfpm_pci_mem_lock(db->pdev);
	memcpy(&ring, mem + DB_DOORBELL, sizeof(ring));
	vfpm_pci_mem_unlock(db->pdev);
	pthread_mutex_lock(&db->lock);
	desc = db->desc_addr;
	if (ring == db->last_ring) {
		pthread_mutex_unlock(&db->lock);
		return false;
	}
	db->last_ring = ring;
	pthread_mutex_unlock(&db->lock);

	status = db_serve_descriptor(db, desc);
	pthread_mutex_lock(&db->lock);
	db->status = status;
	db->done++;
	pthread_mutex_unlock(&db->lock);
	vfpm_pci_msix_signal(db->pdev, 0);
	return true;
}

/* The poller: watch the doorbell page; each new value is one ring. */
static void *db_poller(void *arg)
{
	struct doorbell *db = arg;

	while (!atomic_load(&db->stop)) {
		struct timespec ts = { 0, (long)atomic_load(&db->poll_us) * 1000 };

		if (!db_poll_once(db))
			nanosleep(&ts, NULL);
	}
	return NULL;
}

static int db_start(struct doorbell *db)
{
	int err = 0;

	pthread_mutex_lock(&db->lock);
	if (!db->running) {
		atomic_store(&db->stop, false);
		err = -pthread_create(&db->thread, NULL, db_poller, db);
		db->running = !err;
	}
	pthread_mutex_unlock(&db->lock);
	return err;
}

static void db_stop(struct doorbell *db)
{
	bool was_running;

	pthread_mutex_lock(&db->lock);
	was_running = db->running;
	db->running = false;
	pthread_mutex_unlock(&db->lock);
	if (was_running) {
		atomic_store(&db->stop, true);
		pthread_join(db->thread, NULL);
	}
}

/* ---- the ops ---- */

static ssize_t db_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, unsigned int bar,
			 uint64_t offset, void *buf, size_t count, bool write)
{
	struct doorbell *db = vfpm_pci_model(pdev);
	uint32_t v = 0;

	(void)inst;
	/* Page 0 only (page 1 is memory); aligned dwords only. */
	if (bar != 0 || count != 4 || offset % 4)
		return -EINVAL;
	pthread_mutex_lock(&db->lock);
	if (write) {
		memcpy(&v, buf, 4);
		if (offset == DB_REG_DESC_LO)
			db->desc_addr = (db->desc_addr & ~0xffffffffull) | v;
		else if (offset == DB_REG_DESC_HI)
			db->desc_addr = (db->desc_addr & 0xffffffffull) | (uint64_t)v << 32;
	} else {
		switch (offset) {
		case DB_REG_ID: v = DB_ID; break;
		case DB_REG_DESC_LO: v = (uint32_t)db->desc_addr; break;
		case DB_REG_DESC_HI: v = (uint32_t)(db->desc_addr >> 32); break;
		case DB_REG_DONE: v = db->done; break;
		case DB_REG_STATUS: v = db->status; break;
		default: v = 0; break;
		}
		memcpy(buf, &v, 4);
	}
	pthread_mutex_unlock(&db->lock);
	return 4;
}

/* The vendor capability's dword 1: the poll interval, in microseconds. */
static int db_cap_write(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, void *opaque,
			unsigned int offset, const void *buf, unsigned int count)
{
	struct doorbell *db = opaque;
	uint32_t us;

	(void)pdev;
	(void)inst;
	if (offset != DB_CAP_POLL_US || count != 4)
		return 0;	/* the guest wrote part of it: wait for the whole dword */
	memcpy(&us, buf, 4);
	atomic_store(&db->poll_us, us ? us : DB_DEFAULT_POLL_US);
	return 0;
}

static void db_reset(struct vfpm_pci_dev *pdev)
{
	struct doorbell *db = vfpm_pci_model(pdev);

	pthread_mutex_lock(&db->lock);
	db->desc_addr = 0;
	db->done = db->status = 0;
	pthread_mutex_unlock(&db->lock);
}

static int db_probe(struct vfpm_pci_dev *pdev)
{
	struct doorbell *db = vfpm_pci_model(pdev);

	/* Before vfpm_pci_dev_create returns it: the poller needs it now. */
	db->pdev = pdev;
	return db_start(db);
}

static void db_remove(struct vfpm_pci_dev *pdev)
{
	db_stop(vfpm_pci_model(pdev));
}

/*
 * Stop polling; a ring the poller had not seen yet is served first, as a
 * device finishes the work it accepted before it sleeps (a ring that woke
 * the device may be followed by a suspend at once).
 */
static int db_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	struct doorbell *db = vfpm_pci_model(pdev);

	db_stop(db);
	db_poll_once(db);
	return 0;
}

static int db_runtime_resume(struct vfpm_pci_dev *pdev)
{
	return db_start(vfpm_pci_model(pdev));
}

static const struct vfpm_pci_model_ops db_ops = {
	.probe = db_probe,
	.remove = db_remove,
	.bar_rw = db_bar_rw,
	.reset = db_reset,
	.runtime_suspend = db_runtime_suspend,
	.runtime_resume = db_runtime_resume,
};

int db_create(struct vfpm_pci_dev **out)
{
	static const uint8_t cap_data[6] = { 0, DB_CAP_VERSION };
	static const uint8_t cap_wmask[6] = { 0, 0, 0xff, 0xff, 0xff, 0xff };
	struct doorbell *db = calloc(1, sizeof(*db));
	struct vfpm_pci_cap_desc cap = {
		.id = PCI_CAP_ID_VNDR, .size = 8, .data = cap_data, .wmask = cap_wmask,
		.write = db_cap_write, .opaque = db,
	};
	struct vfpm_pci_desc desc = {
		.name = "doorbell", .vendor_id = DB_VENDOR_ID, .device_id = DB_DEVICE_ID,
		.class_code = 0xff0000, .interrupt_pin = 1,
		.bars = {
			[0] = { .type = VFPM_PCI_BAR_MEM32, .size = DB_BAR0_SIZE, .nr_areas = 1,
				.areas = { { .offset = DB_DOORBELL, .size = 0x1000 } } },
			[4] = { .type = VFPM_PCI_BAR_MEM32, .size = 0x1000 },
		},
		.pm_cap = true, .msix_vectors = 1, .msix_bar = 4, .pcie_cap = true,
		.nr_caps = 1, .caps = &cap,
	};
	int err;

	if (!db)
		return -ENOMEM;
	pthread_mutex_init(&db->lock, NULL);
	atomic_store(&db->poll_us, DB_DEFAULT_POLL_US);
	err = vfpm_pci_dev_create(&desc, &db_ops, db, &db->pdev);
	if (err) {
		pthread_mutex_destroy(&db->lock);
		free(db);
		return err;
	}
	*out = db->pdev;
	return 0;
}

void db_destroy(struct vfpm_pci_dev *pdev)
{
	struct doorbell *db = vfpm_pci_model(pdev);

	vfpm_pci_dev_destroy(pdev);
	pthread_mutex_destroy(&db->lock);
	free(db);
}

bool db_poller_running(struct vfpm_pci_dev *pdev)
{
	struct doorbell *db = vfpm_pci_model(pdev);
	bool running;

	pthread_mutex_lock(&db->lock);
	running = db->running;
	pthread_mutex_unlock(&db->lock);
	return running;
}

int main(int argc, char **argv)
{
	bool check = argc == 3 && !strcmp(argv[1], "--check");
	const char *path = argv[argc - 1];
	struct vfpm_pci_dev *pdev;
	struct vfpm_server *srv;
	sigset_t sigs;
	int err, sig;

	if (argc != 2 && !check) {
		fprintf(stderr, "usage: doorbell [--check] SOCKET\n");
		return 2;
	}
	/* Before the first device: vfpm's threads inherit the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	vfpm_log_set(vfpm_log_stderr, NULL, VFPM_LOG_WARNING);

	err = db_create(&pdev);
	if (!err)
		err = vfpm_server_create(vfpm_pci_device(pdev), path, NULL, &srv);
	if (!err)
		err = vfpm_server_start(srv);
	if (err) {
		fprintf(stderr, "doorbell: cannot serve on %s: %s\n", path, strerror(-err));
		return 1;
	}
	if (check) {
		err = db_check(path, pdev);
	} else {
		printf("doorbell: serving on %s\n", path);
		fflush(stdout);
		sigwait(&sigs, &sig);
	}
	vfpm_server_destroy(srv);
	db_destroy(pdev);
	return err ? 1 : 0;
}
