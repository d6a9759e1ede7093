/* SPDX-License-Identifier: MIT */
/*
 * The NVMe controller's private state, shared by its files:
 *   nvme.c        the PCI function, registers, lifecycle, the poller thread
 *   nvme_queue.c  the engine: doorbells, queues, command fetch, completions,
 *                 interrupts, PRPs
 *   nvme_admin.c  admin commands
 *   nvme_io.c     I/O commands on the backing file
 *
 * Who owns what.  The registers the host writes are atomics, written under
 * ctrl->lock (the read-modify-write of a partial access) and read anywhere.
 * Everything in struct nvme_engine (the queues, the features, the pending
 * events) belongs to exactly one thread at a time: to the poller thread
 * while it exists, and otherwise to whoever holds ctrl->lock.  The poller
 * thread never takes ctrl->lock, so a holder may join it; it picks up a CC
 * the host wrote by itself, and it exits on its own when the controller is
 * disabled, shut down or has failed.  No DMA is ever done while ctrl->lock
 * is held on a connection's thread: a register access never waits for the
 * engine (a DMA over the main socket would wait for that very thread).
 */
#ifndef VFPM_NVME_CTRL_H
#define VFPM_NVME_CTRL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <vfpm/pci.h>

#include "nvme.h"
#include "nvme_dev.h"

#define NVME_PAGE_SIZE 4096u
#define NVME_NR_QIDS (VFPM_NVME_MAX_IO_QUEUES + 1)	/* the admin queue is qid 0 */
#define NVME_NR_DOORBELLS (2 * NVME_NR_QIDS)
#define NVME_MDTS_LOG2 7	/* VFPM_NVME_MAX_TRANSFER = NVME_PAGE_SIZE << 7 */
#define NVME_MAX_PRPS (VFPM_NVME_MAX_TRANSFER / NVME_PAGE_SIZE + 1)
#define NVME_AEN_QUEUE 8
#define NVME_TEMPERATURE_K 310	/* what the sensor always reads */
#define NVME_WCTEMP_K 343
#define NVME_CCTEMP_K 358

_Static_assert(VFPM_NVME_MAX_TRANSFER == NVME_PAGE_SIZE << NVME_MDTS_LOG2, "MDTS");

/* A completion that is not posted now (an Asynchronous Event Request waits). */
#define NVME_NO_COMPLETION 0xffffu

struct nvme_sq {
	bool live;
	uint16_t cqid;
	uint32_t size;		/* entries */
	uint32_t head;		/* next entry the controller fetches */
	uint32_t tail;		/* the last valid doorbell value */
	uint64_t base;
};

struct nvme_cq {
	bool live;
	bool ien;
	bool phase;		/* the phase tag the next entry gets */
	bool posted;		/* entries posted since the last interrupt */
	uint16_t iv;
	uint32_t size;
	uint32_t head;		/* the last valid doorbell value */
	uint32_t tail;		/* next entry the controller posts */
	unsigned int nr_sqs;	/* submission queues that complete here */
	uint64_t base;
};

struct nvme_features {
	uint32_t arbitration;
	uint32_t power_mgmt;
	uint16_t temp_over, temp_under;	/* composite temperature thresholds, kelvin */
	uint32_t err_recovery;
	bool write_cache;
	uint16_t nr_io_sqs, nr_io_cqs;	/* granted (1-based) */
	uint32_t irq_coalesce;
	uint16_t irq_no_coalesce;	/* Interrupt Vector Configuration CD, bit per vector */
	uint32_t write_atomic;
	uint32_t async_event_cfg;
};

/* See the ownership rule at the top. */
/* A command's PRPs mapped in place (nvme_prp_map_iov). */
#define NVME_PRP_IOV_MAX (2 * NVME_MAX_PRPS)
struct nvme_prp_iov {
	struct vfpm_dma_sg sg[NVME_MAX_PRPS];
	unsigned int nr_sg;
	struct iovec iov[NVME_PRP_IOV_MAX];
	unsigned int nr_iov;
};

struct nvme_engine {
	uint32_t cc_applied;	/* the CC the engine last acted on */
	bool enabled;		/* queues exist: CSTS.RDY */
	bool shutdown;		/* CSTS.SHST complete: nothing more is processed */
	bool fatal;		/* CSTS.CFS */
	struct nvme_sq sq[NVME_NR_QIDS];
	struct nvme_cq cq[NVME_NR_QIDS];
	struct nvme_features feat;

	/* Asynchronous events: requests waiting, events waiting for one. */
	uint16_t aer_cids[VFPM_NVME_AER_LIMIT];
	unsigned int nr_aers;
	uint32_t aens[NVME_AEN_QUEUE];
	unsigned int nr_aens;
	uint32_t aen_masked;	/* a bit per event type, until its log page is read */
	uint8_t critical_warning;

	/* SMART / Health counters. */
	uint64_t units_read, units_written;	/* 512-byte units */
	uint64_t host_reads, host_writes;

	/* The data of one command (MDTS bytes), and the page Identify & co. build. */
	uint8_t *buf;
	struct nvme_prp_iov prp_iov;	/* the I/O command's data, mapped in place */
};

struct nvme_ctrl {
	/* Set at creation, before the device exists, then immutable. */
	struct vfpm_pci_dev *pdev;
	int fd;				/* the backing file */
	uint64_t nblocks;
	unsigned int block_shift;
	bool manual_poll;
	char serial[20];		/* space-padded, not terminated */
	uint8_t eui64[8], nguid[16], uuid[16];
	uint64_t created_s;		/* CLOCK_MONOTONIC seconds, for power-on hours */
	/*
	 * The doorbell page: BAR0's memory after the registers, mapped by the
	 * VMM; read under vfpm_pci_mem_lock with __atomic loads (the guest
	 * writes it concurrently).  Set by probe.
	 */
	uint32_t *db_mem;

	/*
	 * Protects the read-modify-write of the registers, the poller's
	 * thread handle, suspended, and (when no poller thread exists) the
	 * engine.
	 */
	pthread_mutex_t lock;
	_Atomic uint32_t cc, csts, aqa, intms;
	_Atomic uint64_t asq, acq;
	bool suspended;			/* runtime suspended or in D3hot */
	struct {
		pthread_t thread;
		bool started;		/* a thread exists to join (it may have exited) */
		atomic_bool stop;	/* asked to exit */
		atomic_bool exited;	/* it did, on its own or asked */
	} poller;

	struct nvme_engine eng;

	/*
	 * INTx: the line follows "a completion queue with interrupts enabled
	 * holds entries the host has not consumed" while the host uses INTx
	 * (an MSI-X signal found no eventfd) and INTMS bit 0 is clear.
	 * irq_lock (a leaf) protects intx_asserted, and orders the asserts.
	 */
	pthread_mutex_t irq_lock;
	bool intx_asserted;
	atomic_bool intx_mode;
	atomic_bool intx_pending;

	const char *_Atomic fatal_reason;
	_Atomic int64_t fatal_logged_s;	/* when a CFS was last logged (time(NULL)) */
	_Atomic uint64_t passes, commands, drained, suspends, resumes;
};

/* ---- nvme_queue.c: the engine ---- */

/* Apply a CC the host wrote: enable, disable (a controller reset), shut down. */
void nvme_engine_apply_cc(struct nvme_ctrl *c);
/* The engine has work to poll for: enabled, not shut down, not failed. */
bool nvme_engine_running(const struct nvme_ctrl *c);
/* One pass over the doorbells; returns the commands it completed. */
unsigned int nvme_engine_pass(struct nvme_ctrl *c);
/* Power-on state: no queues, default features, no events, doorbells zero. */
void nvme_engine_reset(struct nvme_ctrl *c);
/* The controller failed: CSTS.CFS, nothing more is processed until a reset. */
void nvme_engine_fatal(struct nvme_ctrl *c, const char *why);
/* Zero a doorbell (a queue created or deleted: its old value means nothing). */
void nvme_doorbell_clear(struct nvme_ctrl *c, unsigned int index);

/* INTx: recompute the line (INTMS written, completions consumed). */
void nvme_irq_update_intx(struct nvme_ctrl *c);

/* Data described by PRP1 / PRP2 (section 4.3), moved to or from the host. */
uint16_t nvme_prp_read(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2, void *buf, uint32_t len);
/*
 * The guest memory a command's PRPs name, mapped in place (vfpm_pci_dma_map)
 * as iovecs, for one preadv / pwritev between the file and the guest's RAM
 * without a copy of ours.  prot: PROT_WRITE for a Read (the device writes the
 * guest's memory), PROT_READ for a Write.  unmap returns 0 or -errno (a page
 * the client took away, a bounced write-back that failed).
 */
uint16_t nvme_prp_map_iov(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2, uint32_t len,
			  int prot, struct nvme_prp_iov *m);
int nvme_prp_unmap_iov(struct nvme_ctrl *c, struct nvme_prp_iov *m);
uint16_t nvme_prp_write(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2, const void *buf,
			uint32_t len);

/* ---- nvme_admin.c ---- */

/* Status, or NVME_NO_COMPLETION; *dw0 is the completion's DW0. */
uint16_t nvme_admin_exec(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0);
void nvme_features_default(struct nvme_features *feat);
/* An asynchronous event (NVME_AEN_DW0), kept until a request takes it. */
void nvme_aen_raise(struct nvme_ctrl *c, uint32_t event);

/* ---- nvme_io.c ---- */

uint16_t nvme_io_exec(struct nvme_ctrl *c, const struct nvme_sqe *cmd);
/* The volatile write cache to stable storage (a flush, a shutdown). */
int nvme_io_sync(struct nvme_ctrl *c);

#endif /* VFPM_NVME_CTRL_H */
