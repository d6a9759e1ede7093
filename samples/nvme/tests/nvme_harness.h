/* SPDX-License-Identifier: MIT */
/*
 * The NVMe tests' harness: a controller on a temporary backing file, served
 * in-process over a real AF_UNIX socket, and a host made of the real client
 * library: guest memory (a memfd mapped for DMA), admin and I/O queues in
 * it, doorbells rung with REGION_WRITE, MSI-X vectors as eventfds.
 */
#ifndef VFPM_NVME_HARNESS_H
#define VFPM_NVME_HARNESS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <vfpm/client.h>
#include <vfpm/transport.h>

#include "nvme.h"
#include "nvme_dev.h"

#define H_TIMEOUT_MS 5000
#define H_BACKING_SIZE (4u << 20)	/* 8192 blocks of 512 bytes */
#define H_GUEST_IOVA 0x100000000ull	/* above 4 GiB: 64-bit addresses all the way */
#define H_GUEST_SIZE (4u << 20)
#define H_ADMIN_DEPTH 32u
#define H_IO_DEPTH 64u

/* Guest memory layout (offsets from H_GUEST_IOVA). */
#define H_ASQ 0x0000u
#define H_ACQ 0x1000u
#define H_IOSQ 0x2000u
#define H_IOCQ 0x4000u
#define H_PRP_LIST 0x8000u
#define H_DATA 0x10000u		/* 1 MiB of data buffers */
#define H_SCRATCH 0x200000u
/* PRP entries of the largest transfer (MDTS pages, plus one for an offset). */
#define H_MAX_PRPS (VFPM_NVME_MAX_TRANSFER / 4096 + 1)

struct hqueue {
	uint16_t qid;
	uint32_t depth;
	uint32_t sq_off, cq_off;	/* in guest memory */
	uint32_t sq_tail, cq_head;
	bool phase;
};

struct harness {
	char dir[64], sock[128], backing[128];
	unsigned int block_size;
	struct vfpm_pci_dev *pdev;
	struct vfpm_server *srv;
	struct vfpm_client *c;
	int guest_fd;
	uint8_t *guest;
	int msix_efd[VFPM_NVME_MSIX_VECTORS];
	uint16_t next_cid;
	struct hqueue admin, io;
	/* The doorbell page mapped as a VMM maps it (NULL: rung with REGION_WRITE). */
	volatile uint32_t *db_map;
};

/* cmocka setup / teardown (state: struct harness *); MSI-X eventfds installed. */
int h_setup(void **state);
int h_setup_4k(void **state);
int h_teardown(void **state);
/* The same without MSI-X eventfds (INTx). */
int h_setup_intx(void **state);

uint32_t h_reg32(struct harness *h, uint32_t off);
uint64_t h_reg64(struct harness *h, uint32_t off);
void h_reg_write32(struct harness *h, uint32_t off, uint32_t v);
void h_reg_write64(struct harness *h, uint32_t off, uint64_t v);
/* Wait until (CSTS & mask) == value; asserts within the timeout. */
void h_wait_csts(struct harness *h, uint32_t mask, uint32_t value);
/* Admin queues at H_ASQ / H_ACQ, CC.EN, CSTS.RDY: as Linux does. */
void h_enable(struct harness *h);
void h_disable(struct harness *h);
/* Set Features (Number of Queues), Create I/O CQ 1 (vector 1) and SQ 1. */
void h_create_io_queues(struct harness *h);

/*
 * Map BAR0's doorbell page from the fd GET_REGION_INFO hands out (its one
 * sparse-mmap area, asserted); doorbells then go through the mapping.
 */
void h_map_doorbells(struct harness *h);
uint8_t *h_mem(struct harness *h, uint64_t off);
uint64_t h_iova(uint64_t off);

/* Put a command in the queue (its cid assigned); ring the doorbell if ring. */
uint16_t h_submit(struct harness *h, struct hqueue *q, struct nvme_sqe *cmd, bool ring);
void h_ring(struct harness *h, struct hqueue *q);
/* The next completion (asserts it comes); consumes it and writes the CQ head. */
void h_wait_cqe(struct harness *h, struct hqueue *q, struct nvme_cqe *cqe);
/* The next completion within timeout_ms, or false; nothing consumed. */
bool h_peek_cqe(struct harness *h, struct hqueue *q, int timeout_ms, struct nvme_cqe *cqe);
/* Consume a peeked completion: advance the head (and write the doorbell if ring). */
void h_consume(struct harness *h, struct hqueue *q, bool ring);
/* Submit, wait: the status field (SCT << 8 | SC, DNR stripped); *dw0 if not NULL. */
uint16_t h_cmd(struct harness *h, struct hqueue *q, struct nvme_sqe *cmd, uint32_t *dw0);

struct nvme_sqe h_identify(uint32_t cns, uint32_t nsid, uint64_t buf_off);
struct nvme_sqe h_rw(uint8_t opcode, uint64_t slba, uint32_t nblocks, uint64_t prp1, uint64_t prp2);

/* Pseudo-random bytes from a seed (the same seed, the same bytes). */
void h_fill_pattern(uint8_t *p, size_t len, uint32_t seed);
/* The backing file's bytes at a block, as the host would find them on disk. */
void h_backing_read(struct harness *h, uint64_t lba, void *buf, size_t len);
bool h_is_zero(const uint8_t *p, size_t len);
/* The pieces of the host buffer that PRP1 / PRP2 describe (lists and chains followed). */
unsigned int h_host_prps(struct harness *h, uint64_t prp1, uint64_t prp2, uint32_t len,
			 uint64_t *addr, uint32_t *plen);
/*
 * Write len bytes at lba on the I/O queue from the host buffer these PRPs
 * describe (filled with a pattern), check the backing file, read them back
 * into a fresh buffer and compare (asserts).
 */
void h_write_read(struct harness *h, uint64_t lba, uint32_t len, uint64_t prp1, uint64_t prp2,
		  uint32_t seed);

/* An eventfd's counter (non-blocking; 0 when unsignalled), or wait for it. */
uint64_t h_eventfd_read(int efd);
bool h_eventfd_wait(int efd, int timeout_ms);
/* Threads of this process (/proc/self/task). */
int h_thread_count(void);
/* Poll the device's runtime PM status through the client until it is status. */
void h_wait_power(struct harness *h, const char *status);
/* The poller thread has ended (it ends just after CSTS says CFS or shutdown). */
void h_wait_not_polling(struct harness *h);
/* Offset of a PCI capability in config space (0: none). */
unsigned int h_find_cap(struct harness *h, uint8_t id);
uint16_t h_cfg16(struct harness *h, unsigned int off);
void h_cfg_write16(struct harness *h, unsigned int off, uint16_t v);

#endif /* VFPM_NVME_HARNESS_H */
