/* SPDX-License-Identifier: MIT */
/*
 * A small PCI device model for the transport tests.
 *
 * BAR0: 16 KiB memory, mappable (memfd).
 * BAR2: 4 KiB memory, trapped; its registers are below.  A read of
 *       TM_REG_SLOW blocks while the test holds the gate closed, which makes
 *       "a request in flight" something the test controls without sleeping.
 * BAR4: 8 KiB memory, mappable, MSI-X table (4 vectors) in its first page
 *       (so its region info carries a sparse mmap capability).
 * PM, MSI (1 vector), MSI-X, PCIe with FLR, INTx pin A.
 */
#ifndef VFPM_TRANSPORT_TEST_MODEL_H
#define VFPM_TRANSPORT_TEST_MODEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <vfpm/pci.h>
#include <vfpm/transport.h>

#define TM_VENDOR 0x1b36
#define TM_DEVICE 0x00f0
#define TM_BAR0_SIZE 16384u
#define TM_BAR2_SIZE 4096u
#define TM_BAR4_SIZE 8192u
#define TM_MSIX_VECTORS 4u

/* BAR2 registers (32-bit). */
#define TM_REG_SCRATCH 0x00	/* read/write */
#define TM_REG_ID 0x04		/* reads TM_ID */
#define TM_REG_DMA_ADDR 0x08	/* 64-bit, two registers */
#define TM_REG_DMA_DATA 0x10	/* DMA_READ fills it, DMA_WRITE sends it */
#define TM_REG_DMA_CMD 0x14	/* write TM_DMA_READ or TM_DMA_WRITE: 4 bytes at DMA_ADDR */
#define TM_REG_DMA_STATUS 0x18	/* 0 or the negative errno, as int32 */
#define TM_REG_SLOW 0x1c	/* a read blocks while the gate is closed; reads 0x5104 */
#define TM_REG_MSIX 0x20	/* write a vector: signal it */
#define TM_REG_INTX 0x24	/* write 1: assert INTx, 0: deassert */
#define TM_ID 0x7e570001u
#define TM_SLOW_VALUE 0x5104u
#define TM_DMA_READ 1u
#define TM_DMA_WRITE 2u
#define TM_DMA_DEV_READ 3u	/* the same through vfpm_pci_dma_read (Bus Master Enable) */
#define TM_DMA_DEV_WRITE 4u

struct tmodel {
	struct vfpm_pci_dev *pdev;

	/* Protects the fields below and the gate; cond signals their changes. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t regs[TM_BAR2_SIZE / 4];
	bool gate_closed;
	unsigned int in_slow;			/* accesses waiting at the gate */
	struct vfpm_server_conn *conn;		/* the last client connected, for DMA */

	atomic_uint suspends;
	atomic_uint resumes;
	atomic_uint resets;
	atomic_uint bad_accesses;		/* BAR2 touched while not ACTIVE */
};

int tmodel_create(struct tmodel **out);
void tmodel_destroy(struct tmodel *m);

/* Server callbacks: remember the connection for DMA. */
void tmodel_on_connect(struct vfpm_server_conn *conn, void *opaque);
void tmodel_on_disconnect(struct vfpm_server_conn *conn, void *opaque);

/* The slow register's gate. */
void tmodel_close_gate(struct tmodel *m);
void tmodel_open_gate(struct tmodel *m);
/* Wait until n accesses wait at the gate (timeout_ms); 0 or -ETIMEDOUT. */
int tmodel_wait_in_slow(struct tmodel *m, unsigned int n, int timeout_ms);

#endif /* VFPM_TRANSPORT_TEST_MODEL_H */
