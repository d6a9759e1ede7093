// SPDX-License-Identifier: MIT
/*
 * The NVMe controller through a real server and the real client library,
 * brought up as Linux's nvme driver brings it up: identification, queues,
 * I/O on the backing file with every PRP shape, the error statuses, a
 * shutdown, and the reason it exists: the poller thread goes away in runtime
 * suspend and a doorbell written while asleep is still served.
 */
#include "nvme_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#define ID_BUF 0x100000u	/* where Identify data lands in guest memory */

static struct harness *H(void **state)
{
	return *state;
}

static void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* The backing file's bytes at a block, as the host would find them on disk. */
static void backing_read(struct harness *h, uint64_t lba, void *buf, size_t len)
{
	int fd = open(h->backing, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)(lba * h->block_size)), (ssize_t)len);
	close(fd);
}

static bool is_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

/* ---- identification ---- */

static void test_registers_and_identify(void **state)
{
	struct harness *h = H(state);
	uint64_t cap = h_reg64(h, NVME_REG_CAP);
	struct nvme_id_ctrl *id = (struct nvme_id_ctrl *)h_mem(h, ID_BUF);
	struct nvme_id_ns *ns = (struct nvme_id_ns *)h_mem(h, ID_BUF);
	struct nvme_sqe cmd;
	uint8_t eui64[8], nguid[16];
	const uint8_t *d = h_mem(h, ID_BUF);

	/* What Linux reads first: CAP (two halves), VS, CSTS not all ones. */
	assert_int_equal(cap & 0xffff, VFPM_NVME_MAX_QUEUE_ENTRIES - 1);
	assert_true(cap & NVME_CAP_CQR);
	assert_true(cap & NVME_CAP_CSS_NVM);
	assert_int_equal((cap >> 32) & 0xf, 0);		/* DSTRD: doorbells 4 bytes apart */
	assert_int_equal((cap >> 48) & 0xff, 0);	/* MPSMIN = MPSMAX = 4 KiB */
	assert_true(((cap >> 24) & 0xff) > 0);		/* a timeout */
	assert_int_equal(h_reg32(h, NVME_REG_CAP) | (uint64_t)h_reg32(h, NVME_REG_CAP + 4) << 32, cap);
	assert_int_equal(h_reg32(h, NVME_REG_VS), NVME_VS_1_4);
	assert_int_equal(h_reg32(h, NVME_REG_CSTS), 0);
	assert_int_equal(h_cfg16(h, PCI_CLASS_DEVICE), 0x0108);

	h_enable(h);
	assert_int_equal(h_reg64(h, NVME_REG_ASQ), h_iova(H_ASQ));
	assert_int_equal(h_reg32(h, NVME_REG_AQA), (H_ADMIN_DEPTH - 1) * 0x10001u);

	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_int_equal(id->vid, 0x1b36);
	assert_int_equal(id->ssvid, 0x1b36);
	assert_memory_equal(id->sn, "VFPM", 4);
	assert_memory_equal(id->mn, "vfpm NVMe controller    ", 24);
	assert_memory_equal(id->fr, "vfpm0.1 ", 8);
	assert_int_equal(id->mdts, 5);
	assert_int_equal(id->ver, NVME_VS_1_4);
	assert_int_equal(id->cntrltype, NVME_CTRL_CNTRLTYPE_IO);
	assert_int_equal(id->aerl, VFPM_NVME_AER_LIMIT - 1);
	assert_int_equal(id->oacs, 0);
	assert_int_equal(id->npss, 0);
	assert_int_equal(id->sqes, 0x66);
	assert_int_equal(id->cqes, 0x44);
	assert_int_equal(id->nn, 1);
	assert_int_equal(id->oncs, NVME_CTRL_ONCS_WRITE_ZEROES);
	assert_int_equal(id->vwc & NVME_CTRL_VWC_PRESENT, NVME_CTRL_VWC_PRESENT);
	assert_int_equal(id->sgls, 0);
	assert_int_equal(id->kas, 0);
	assert_int_equal(id->wctemp, 343);
	assert_int_equal(strncmp(id->subnqn, "nqn.2024-01.invalid.vfpm:nvme:VFPM", 34), 0);
	assert_int_equal(id->psd[0].mp, 1000);

	cmd = h_identify(NVME_CNS_NS, 1, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_int_equal(ns->nsze, H_BACKING_SIZE / 512);
	assert_int_equal(ns->ncap, H_BACKING_SIZE / 512);
	assert_int_equal(ns->nuse, H_BACKING_SIZE / 512);
	assert_int_equal(ns->nlbaf, 0);
	assert_int_equal(ns->flbas, 0);
	assert_int_equal(ns->lbaf[0].lbads, 9);
	assert_int_equal(ns->lbaf[0].ms, 0);
	assert_false(is_zero(ns->nguid, 16));
	assert_false(is_zero(ns->eui64, 8));
	memcpy(eui64, ns->eui64, 8);
	memcpy(nguid, ns->nguid, 16);

	/* The namespace identification descriptors agree with Identify Namespace. */
	cmd = h_identify(NVME_CNS_NS_DESC_LIST, 1, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_int_equal(d[0], NVME_NIDT_EUI64);
	assert_int_equal(d[1], 8);
	assert_memory_equal(d + 4, eui64, 8);
	assert_int_equal(d[12], NVME_NIDT_NGUID);
	assert_int_equal(d[13], 16);
	assert_memory_equal(d + 16, nguid, 16);
	assert_int_equal(d[32], NVME_NIDT_UUID);
	assert_int_equal(d[33], 16);
	assert_int_equal(d[36 + 6] >> 4, 4);		/* a version 4 UUID */
	assert_int_equal(d[52], 0);			/* the end of the list */

	/* The active namespace list: 1, then nothing; nothing above 1. */
	cmd = h_identify(NVME_CNS_ACTIVE_NS_LIST, 0, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_int_equal(*(uint32_t *)d, 1);
	assert_true(is_zero(d + 4, 4092));
	cmd = h_identify(NVME_CNS_ACTIVE_NS_LIST, 1, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_true(is_zero(d, 4096));

	/* Other CNS values, other namespaces. */
	cmd = h_identify(0x10, 0, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);
	cmd = h_identify(NVME_CNS_NS, 2, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_NS);
	cmd = h_identify(NVME_CNS_NS, 0xffffffff, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_NS);
	cmd = h_identify(NVME_CNS_NS_DESC_LIST, 0, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_NS);
}

static void test_identify_4k_blocks(void **state)
{
	struct harness *h = H(state);
	struct nvme_id_ns *ns = (struct nvme_id_ns *)h_mem(h, ID_BUF);
	struct nvme_sqe cmd = h_identify(NVME_CNS_NS, 1, ID_BUF);

	h_enable(h);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_int_equal(ns->nsze, H_BACKING_SIZE / 4096);
	assert_int_equal(ns->lbaf[0].lbads, 12);
}

/* ---- features, queues, interrupts ---- */

static void test_features(void **state)
{
	struct harness *h = H(state);
	struct nvme_sqe cmd;
	uint32_t dw0;

	h_enable(h);
	/* Number of Queues: 200 asked, 64 granted, 0-based. */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_NUM_QUEUES,
				 .cdw11 = 199u << 16 | 199u };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, &dw0), NVME_SC_SUCCESS);
	assert_int_equal(dw0, 63u << 16 | 63u);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_NUM_QUEUES,
				 .cdw11 = 0xffff };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);
	h_create_io_queues(h);	/* asks for 4 and 4 */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_GET_FEATURES, .cdw10 = NVME_FEAT_NUM_QUEUES };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, &dw0), NVME_SC_SUCCESS);
	assert_int_equal(dw0, 3u << 16 | 3u);
	/* Once I/O queues exist it may not change. */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_NUM_QUEUES,
				 .cdw11 = 1u << 16 | 1u };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_CMD_SEQ_ERROR);

	/* Volatile write cache: on by default, off and on again. */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_GET_FEATURES, .cdw10 = NVME_FEAT_VOLATILE_WC };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, &dw0), NVME_SC_SUCCESS);
	assert_int_equal(dw0, 1);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_VOLATILE_WC };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_GET_FEATURES, .cdw10 = NVME_FEAT_VOLATILE_WC };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, &dw0), NVME_SC_SUCCESS);
	assert_int_equal(dw0, 0);

	/* Temperature threshold (composite), read back; a sensor we lack is refused. */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_TEMP_THRESH,
				 .cdw11 = 350 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_GET_FEATURES, .cdw10 = NVME_FEAT_TEMP_THRESH };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, &dw0), NVME_SC_SUCCESS);
	assert_int_equal(dw0, 350);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_TEMP_THRESH,
				 .cdw11 = 3u << 16 | 350 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);

	/* The others are answered; a power state past NPSS, a vector past ours are not. */
	for (uint32_t fid = NVME_FEAT_ARBITRATION; fid <= NVME_FEAT_ASYNC_EVENT; fid++) {
		if (fid == 3)
			continue;	/* LBA Range Type: not supported */
		cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_GET_FEATURES, .cdw10 = fid };
		assert_int_equal(h_cmd(h, &h->admin, &cmd, &dw0), NVME_SC_SUCCESS);
	}
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_GET_FEATURES, .cdw10 = 3 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_POWER_MGMT,
				 .cdw11 = 1 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_IRQ_CONFIG,
				 .cdw11 = 1u << 16 | 16 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_IRQ_CONFIG,
				 .cdw11 = 1u << 16 | 2 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_GET_FEATURES, .cdw10 = NVME_FEAT_IRQ_CONFIG,
				 .cdw11 = 2 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, &dw0), NVME_SC_SUCCESS);
	assert_int_equal(dw0, 1u << 16 | 2);
	/* Saving is refused: nothing is saveable. */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES,
				 .cdw10 = 1u << 31 | NVME_FEAT_ARBITRATION };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_FEATURE_NOT_SAVEABLE);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = 0x0c };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);
}

static void test_queue_checks(void **state)
{
	struct harness *h = H(state);
	struct nvme_sqe cmd;

	h_enable(h);
	h_create_io_queues(h);	/* 4 I/O queues granted; CQ 1, SQ 1 */
#define CREATE_CQ(id, entries, dw11) ((struct nvme_sqe){ .opcode = NVME_ADMIN_CREATE_CQ, \
	.prp1 = h_iova(H_SCRATCH), .cdw10 = (uint32_t)((entries) - 1) << 16 | (id), .cdw11 = (dw11) })
#define CREATE_SQ(id, entries, cq) ((struct nvme_sqe){ .opcode = NVME_ADMIN_CREATE_SQ, \
	.prp1 = h_iova(H_SCRATCH + 0x10000), .cdw10 = (uint32_t)((entries) - 1) << 16 | (id), \
	.cdw11 = (uint32_t)(cq) << 16 | NVME_QUEUE_PC })
	cmd = CREATE_CQ(0, 16, NVME_QUEUE_PC);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QID_INVALID);
	cmd = CREATE_CQ(1, 16, NVME_QUEUE_PC);		/* exists */
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QID_INVALID);
	cmd = CREATE_CQ(5, 16, NVME_QUEUE_PC);		/* past the 4 granted */
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QID_INVALID);
	cmd = CREATE_CQ(2, 1, NVME_QUEUE_PC);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QUEUE_SIZE);
	cmd = CREATE_CQ(2, 1025, NVME_QUEUE_PC);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QUEUE_SIZE);
	cmd = CREATE_CQ(2, 16, 0);			/* not physically contiguous */
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);
	cmd = CREATE_CQ(2, 16, 16u << 16 | NVME_QUEUE_PC);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_VECTOR);
	cmd = CREATE_CQ(2, 16, NVME_QUEUE_PC);
	cmd.prp1 += 0x200;
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_PRP_OFFSET_INVALID);
	cmd = CREATE_CQ(2, 16, 2u << 16 | NVME_QUEUE_PC | NVME_CQ_IEN);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);

	cmd = CREATE_SQ(2, 16, 3);			/* no CQ 3 */
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_CQ_INVALID);
	cmd = CREATE_SQ(2, 16, 0);			/* the admin CQ */
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_CQ_INVALID);
	cmd = CREATE_SQ(1, 16, 2);			/* exists */
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QID_INVALID);
	cmd = CREATE_SQ(0xffff, 16, 2);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QID_INVALID);
	cmd = CREATE_SQ(2, 0x10000, 2);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QUEUE_SIZE);
	cmd = CREATE_SQ(2, 16, 2);
	cmd.cdw11 &= ~NVME_QUEUE_PC;
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);
	cmd = CREATE_SQ(2, 16, 2);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);

	/* A CQ with an SQ on it stays; SQ then CQ go; the admin queue and strangers never. */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_CQ, .cdw10 = 2 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_QUEUE_DELETION);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_SQ, .cdw10 = 2 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QID_INVALID);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_CQ, .cdw10 = 2 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_SQ, .cdw10 = 0 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QID_INVALID);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_CQ, .cdw10 = 0 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QID_INVALID);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_CQ, .cdw10 = 7 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QID_INVALID);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_SQ, .cdw10 = 999 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_QID_INVALID);
#undef CREATE_CQ
#undef CREATE_SQ
}

/* ---- I/O ---- */

/* The host's side of PRP1 / PRP2: the pieces of its buffer, lists and chains followed. */
static unsigned int host_prps(struct harness *h, uint64_t prp1, uint64_t prp2, uint32_t len,
			      uint64_t *addr, uint32_t *plen)
{
	uint32_t first = 4096 - (uint32_t)(prp1 & 4095);
	uint64_t list = prp2;
	unsigned int n = 0;

	first = first < len ? first : len;
	addr[n] = prp1;
	plen[n++] = first;
	len -= first;
	if (len && len <= 4096) {
		addr[n] = prp2;
		plen[n++] = len;
		return n;
	}
	while (len) {
		uint32_t room = (4096 - (uint32_t)(list & 4095)) / 8;
		uint32_t need = (len + 4095) / 4096;
		const uint64_t *ents = (const uint64_t *)h_mem(h, list - H_GUEST_IOVA);

		for (uint32_t i = 0; i < (need <= room ? need : room - 1); i++) {
			addr[n] = ents[i];
			plen[n] = len < 4096 ? len : 4096;
			len -= plen[n++];
		}
		if (len)
			list = ents[room - 1];
	}
	return n;
}

/* Write len bytes at lba from the host buffer these PRPs describe, read them back. */
static void write_read(struct harness *h, uint64_t lba, uint32_t len, uint64_t prp1,
		       uint64_t prp2, uint32_t seed)
{
	uint8_t *expect = malloc(len), *disk = malloc(len);
	uint32_t nblocks = len / h->block_size, plen[64];
	uint64_t addr[64];
	unsigned int n = host_prps(h, prp1, prp2, len, addr, plen);
	struct nvme_sqe cmd;

	assert_non_null(expect);
	assert_non_null(disk);
	fill_pattern(expect, len, seed);
	for (unsigned int i = 0, done = 0; i < n; done += plen[i++])
		memcpy(h_mem(h, addr[i] - H_GUEST_IOVA), expect + done, plen[i]);
	cmd = h_rw(NVME_IO_WRITE, lba, nblocks, prp1, prp2);
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);
	backing_read(h, lba, disk, len);
	assert_memory_equal(disk, expect, len);

	/* Read into a fresh contiguous buffer through a PRP list of our own. */
	memset(h_mem(h, H_SCRATCH), 0, len + 4096);
	if (len <= 4096) {
		cmd = h_rw(NVME_IO_READ, lba, nblocks, h_iova(H_SCRATCH), 0);
	} else if (len <= 8192) {
		cmd = h_rw(NVME_IO_READ, lba, nblocks, h_iova(H_SCRATCH), h_iova(H_SCRATCH + 4096));
	} else {
		uint64_t *list = (uint64_t *)h_mem(h, H_PRP_LIST + 0x800);

		for (uint32_t i = 1; i * 4096 < len; i++)
			list[i - 1] = h_iova(H_SCRATCH + i * 4096);
		cmd = h_rw(NVME_IO_READ, lba, nblocks, h_iova(H_SCRATCH), h_iova(H_PRP_LIST + 0x800));
	}
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);
	assert_memory_equal(h_mem(h, H_SCRATCH), expect, len);
	free(expect);
	free(disk);
}

static void test_io(void **state)
{
	struct harness *h = H(state);
	uint64_t *list = (uint64_t *)h_mem(h, H_PRP_LIST);
	uint8_t zeros[8192] = { 0 }, disk[8192];
	struct nvme_sqe cmd;

	h_enable(h);
	h_create_io_queues(h);
	h_eventfd_read(h->msix_efd[1]);

	/* PRP1 only: one block in the middle of a page. */
	write_read(h, 7, 512, h_iova(H_DATA + 0x200), 0, 1);
	assert_true(h_eventfd_read(h->msix_efd[1]) > 0);	/* the I/O CQ's vector */
	/* PRP1 with an offset and PRP2: 4 KiB over two pages. */
	write_read(h, 100, 4096, h_iova(H_DATA + 0x1e00), h_iova(H_DATA + 0x3000), 2);
	/* PRP1 + PRP2, both whole pages. */
	write_read(h, 200, 8192, h_iova(H_DATA + 0x4000), h_iova(H_DATA + 0x6000), 3);
	/* A PRP list: 64 KiB in 16 scattered pages, PRP1 with an offset. */
	for (unsigned int i = 0; i < 16; i++)
		list[i] = h_iova(H_DATA + 0x20000 + (15 - i) * 0x2000);
	write_read(h, 1000, 64 * 1024, h_iova(H_DATA + 0x8800), h_iova(H_PRP_LIST), 4);
	/* The largest transfer (MDTS), its list not at a page start. */
	for (unsigned int i = 0; i < 32; i++)
		list[64 + i] = h_iova(H_DATA + 0x40000 + i * 0x1000);
	write_read(h, 2000, VFPM_NVME_MAX_TRANSFER, h_iova(H_DATA + 0x3f000), h_iova(H_PRP_LIST + 512),
		   5);
	/* A PRP list that chains to a second list page. */
	list = (uint64_t *)h_mem(h, H_PRP_LIST + 0x1000 - 16);
	list[0] = h_iova(H_DATA + 0x70000);
	list[1] = h_iova(H_PRP_LIST + 0x2000);	/* the chain */
	((uint64_t *)h_mem(h, H_PRP_LIST + 0x2000))[0] = h_iova(H_DATA + 0x71000);
	((uint64_t *)h_mem(h, H_PRP_LIST + 0x2000))[1] = h_iova(H_DATA + 0x72000);
	write_read(h, 3000, 16384, h_iova(H_DATA + 0x6f000), h_iova(H_PRP_LIST + 0x1000 - 16), 6);

	/* Flush; Flush of every namespace. */
	cmd = (struct nvme_sqe){ .opcode = NVME_IO_FLUSH, .nsid = 1 };
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = (struct nvme_sqe){ .opcode = NVME_IO_FLUSH, .nsid = 0xffffffff };
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);

	/* Write Zeroes over what the 8 KiB write left, and the last block of the disk. */
	cmd = h_rw(NVME_IO_WRITE_ZEROES, 200, 16, 0, 0);
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);
	backing_read(h, 200, disk, sizeof(disk));
	assert_memory_equal(disk, zeros, sizeof(disk));
	cmd = h_rw(NVME_IO_WRITE_ZEROES, H_BACKING_SIZE / 512 - 1, 1, 0, 0);
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);
	/* FUA write with the cache off. */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_VOLATILE_WC };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = h_rw(NVME_IO_WRITE, 9, 1, h_iova(H_DATA), 0);
	cmd.cdw12 |= NVME_RW_FUA;
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);
}

static void test_io_4k_blocks(void **state)
{
	struct harness *h = H(state);

	h_enable(h);
	h_create_io_queues(h);
	write_read(h, 3, 4096, h_iova(H_DATA), 0, 7);
	write_read(h, 10, 4096, h_iova(H_DATA + 0x10), h_iova(H_DATA + 0x2000), 8);
}

/* ---- errors ---- */

static void test_error_statuses(void **state)
{
	struct harness *h = H(state);
	uint64_t nblocks = H_BACKING_SIZE / 512;
	struct nvme_sqe cmd;

	h_enable(h);
	h_create_io_queues(h);

	cmd = (struct nvme_sqe){ .opcode = 0x7f };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_OPCODE);
	cmd = (struct nvme_sqe){ .opcode = 0x0d };	/* Namespace Management: not here */
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_OPCODE);
	cmd = (struct nvme_sqe){ .opcode = 0x7f, .nsid = 1 };
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_INVALID_OPCODE);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_IDENTIFY, .nsid = 1 };	/* and the reverse */
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_INVALID_OPCODE);

	/* LBA Out of Range: past the end, across it, a wrapping 64-bit start. */
	cmd = h_rw(NVME_IO_READ, nblocks, 1, h_iova(H_DATA), 0);
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_LBA_RANGE);
	cmd = h_rw(NVME_IO_WRITE, nblocks - 1, 2, h_iova(H_DATA), 0);
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_LBA_RANGE);
	cmd = h_rw(NVME_IO_WRITE_ZEROES, ~0ull, 2, 0, 0);
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_LBA_RANGE);
	cmd = h_rw(NVME_IO_READ, 0, 65536, h_iova(H_DATA), 0);	/* 32 MiB: the whole disk is 4 */
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_LBA_RANGE);

	/* Invalid Field: over MDTS, SGLs, fused commands. */
	cmd = h_rw(NVME_IO_READ, 0, VFPM_NVME_MAX_TRANSFER / 512 + 1, h_iova(H_DATA), 0);
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_INVALID_FIELD);
	cmd = h_rw(NVME_IO_READ, 0, 1, h_iova(H_DATA), 0);
	cmd.flags = 1u << 6;
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_INVALID_FIELD);
	cmd = h_rw(NVME_IO_WRITE, 0, 1, h_iova(H_DATA), 0);
	cmd.flags = 1;
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_INVALID_FIELD);
	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	cmd.flags = 2u << 6;
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);

	/* Namespaces: only 1 (and "all" for a flush). */
	cmd = h_rw(NVME_IO_READ, 0, 1, h_iova(H_DATA), 0);
	cmd.nsid = 2;
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_INVALID_NS);
	cmd = (struct nvme_sqe){ .opcode = NVME_IO_FLUSH, .nsid = 0 };
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_INVALID_NS);

	/* PRPs: offsets where none may be, data outside the host's memory. */
	cmd = h_rw(NVME_IO_READ, 0, 8, h_iova(H_DATA + 0x200), h_iova(H_DATA + 0x1100));
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_PRP_OFFSET_INVALID);
	cmd = h_rw(NVME_IO_READ, 0, 1, h_iova(H_DATA + 2), 0);
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_PRP_OFFSET_INVALID);
	((uint64_t *)h_mem(h, H_PRP_LIST))[1] = h_iova(H_DATA + 0x2008);
	cmd = h_rw(NVME_IO_READ, 0, 24, h_iova(H_DATA), h_iova(H_PRP_LIST));
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_PRP_OFFSET_INVALID);
	cmd = h_rw(NVME_IO_READ, 0, 24, h_iova(H_DATA), h_iova(H_PRP_LIST + 4));
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_PRP_OFFSET_INVALID);
	cmd = h_rw(NVME_IO_WRITE, 0, 1, 0x1000, 0);			/* not mapped */
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_DATA_XFER_ERROR);
	cmd = h_rw(NVME_IO_READ, 0, 24, h_iova(H_DATA), 0xdead0000);	/* the list itself */
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_DATA_XFER_ERROR);
	cmd = h_rw(NVME_IO_READ, 0, 16, h_iova(H_GUEST_SIZE - 0x1000), h_iova(H_GUEST_SIZE));
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_DATA_XFER_ERROR);
	cmd = h_identify(NVME_CNS_CTRL, 0, 0);
	cmd.prp1 = 0x2000;
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_DATA_XFER_ERROR);

	/* Abort: never aborted, every command completes when fetched. */
	{
		uint32_t dw0 = 0;

		cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_ABORT, .cdw10 = 5u << 16 | 1 };
		assert_int_equal(h_cmd(h, &h->admin, &cmd, &dw0), NVME_SC_SUCCESS);
		assert_int_equal(dw0 & 1, 1);
	}
	/* And the controller is still fine. */
	write_read(h, 0, 512, h_iova(H_DATA), 0, 9);
	assert_int_equal(h_reg32(h, NVME_REG_CSTS), NVME_CSTS_RDY);
}

static struct nvme_sqe get_log(uint8_t lid, uint32_t nsid, uint32_t bytes, uint64_t offset,
			       bool rae)
{
	uint32_t numd = bytes / 4 - 1;

	return (struct nvme_sqe){ .opcode = NVME_ADMIN_GET_LOG_PAGE, .nsid = nsid,
				  .prp1 = h_iova(ID_BUF),
				  .cdw10 = lid | (rae ? 1u << 15 : 0) | (numd & 0xffff) << 16,
				  .cdw11 = numd >> 16, .cdw12 = (uint32_t)offset,
				  .cdw13 = (uint32_t)(offset >> 32) };
}

static void test_logs_and_events(void **state)
{
	struct harness *h = H(state);
	struct nvme_smart_log *smart = (struct nvme_smart_log *)h_mem(h, ID_BUF);
	struct nvme_fw_slot_log *fw = (struct nvme_fw_slot_log *)h_mem(h, ID_BUF);
	struct nvme_sqe cmd;
	struct nvme_cqe cqe;
	uint16_t aer_cids[4];

	h_enable(h);
	h_create_io_queues(h);
	write_read(h, 0, 8192, h_iova(H_DATA), h_iova(H_DATA + 0x1000), 10);

	cmd = get_log(NVME_LOG_SMART, 0xffffffff, 512, 0, false);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_int_equal(smart->critical_warning, 0);
	assert_int_equal(smart->temperature, 310);
	assert_int_equal(smart->avail_spare, 100);
	assert_int_equal(smart->host_writes[0], 1);
	assert_int_equal(smart->host_reads[0], 1);
	assert_int_equal(smart->data_units_written[0], 1);	/* 16 units, rounded up */
	assert_int_equal(smart->power_cycles[0], 1);
	cmd = get_log(NVME_LOG_FW_SLOT, 0, 512, 0, false);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_int_equal(fw->afi, 1);
	assert_memory_equal(fw->frs[0], "vfpm0.1 ", 8);
	/* The error log: one entry, empty; an offset into a log; a long read is zero-filled. */
	memset(h_mem(h, ID_BUF), 0xaa, 8192);
	cmd = get_log(NVME_LOG_ERROR, 0, 4096, 0, false);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_true(is_zero(h_mem(h, ID_BUF), 4096));
	cmd = get_log(NVME_LOG_SMART, 0, 8, 2, false);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);	/* unaligned */
	cmd = get_log(NVME_LOG_SMART, 0, 4, 512, false);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);	/* past it */
	cmd = get_log(NVME_LOG_SMART, 1, 512, 0, false);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_FIELD);	/* per NS */
	cmd = get_log(0x70, 0, 512, 0, false);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_INVALID_LOG_PAGE);

	/* Asynchronous Event Requests wait; one past the limit is refused. */
	for (unsigned int i = 0; i < VFPM_NVME_AER_LIMIT; i++) {
		cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_ASYNC_EVENT };
		aer_cids[i] = h_submit(h, &h->admin, &cmd, true);
	}
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_ASYNC_EVENT };
	h_submit(h, &h->admin, &cmd, true);
	h_wait_cqe(h, &h->admin, &cqe);
	assert_int_equal((cqe.status >> 1) & 0x7ff, NVME_SC_AER_LIMIT);
	assert_false(h_peek_cqe(h, &h->admin, 50, &cqe));

	/* A doorbell value past the queue's end: ignored, and told through the first AER. */
	h_reg_write32(h, VFPM_NVME_DOORBELLS + 8, 5000);
	h_wait_cqe(h, &h->admin, &cqe);
	assert_int_equal(cqe.cid, aer_cids[0]);
	assert_int_equal(cqe.status >> 1, 0);
	assert_int_equal(cqe.dw0, NVME_AEN_DW0(NVME_AEN_TYPE_ERROR, NVME_AEN_ERR_INVALID_DB_VALUE,
					       NVME_LOG_ERROR));
	/* Until the error log is read, more of the same are not reported. */
	h_reg_write32(h, VFPM_NVME_DOORBELLS + 8 + 4, 4000);
	assert_false(h_peek_cqe(h, &h->admin, 50, &cqe));
	h_reg_write32(h, VFPM_NVME_DOORBELLS + 8 + 4, h->io.cq_head);
	h_ring(h, &h->io);	/* a valid tail again */
	cmd = get_log(NVME_LOG_ERROR, 0, 64, 0, true);		/* RAE: still masked */
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	h_reg_write32(h, VFPM_NVME_DOORBELLS + 8, 6000);
	assert_false(h_peek_cqe(h, &h->admin, 50, &cqe));
	h_ring(h, &h->io);
	cmd = get_log(NVME_LOG_ERROR, 0, 64, 0, false);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	h_reg_write32(h, VFPM_NVME_DOORBELLS + 8, 6000);
	h_wait_cqe(h, &h->admin, &cqe);
	assert_int_equal(cqe.cid, aer_cids[1]);
	h_ring(h, &h->io);

	/* A temperature threshold below the sensor: SMART warning and event when enabled. */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_ASYNC_EVENT,
				 .cdw11 = NVME_SMART_CRIT_TEMPERATURE };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_TEMP_THRESH,
				 .cdw11 = 300 };
	h_submit(h, &h->admin, &cmd, true);
	/* Two completions: the Set Features, and the AER, in either order. */
	for (int i = 0; i < 2; i++) {
		h_wait_cqe(h, &h->admin, &cqe);
		if (cqe.cid == aer_cids[2])
			assert_int_equal(cqe.dw0, NVME_AEN_DW0(NVME_AEN_TYPE_SMART,
							       NVME_AEN_SMART_TEMPERATURE,
							       NVME_LOG_SMART));
		else
			assert_int_equal(cqe.status >> 1, 0);
	}
	cmd = get_log(NVME_LOG_SMART, 0, 512, 0, false);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_int_equal(smart->critical_warning, NVME_SMART_CRIT_TEMPERATURE);

	/* The controller reset ends the last AER without a completion. */
	h_disable(h);
	assert_false(h_peek_cqe(h, &h->admin, 50, &cqe));
	h_enable(h);
	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
}

/* ---- garbage ---- */

static uint32_t rng_state = 0x12345678u;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

/*
 * Random bytes as commands: every one completes (but the AERs it may hold,
 * up to the limit) or the controller reports CFS; the server stays alive.
 * Returns how many completed.
 */
static unsigned int submit_garbage(struct harness *h, struct hqueue *q, unsigned int n,
				   bool admin)
{
	unsigned int expect = n, aers = 0, seen = 0;
	struct nvme_cqe cqe;

	for (unsigned int i = 0; i < n; i++) {
		struct nvme_sqe cmd;

		for (unsigned int b = 0; b < sizeof(cmd); b += 4) {
			uint32_t r = rng();

			memcpy((uint8_t *)&cmd + b, &r, 4);
		}
		if (i % 3 == 0)
			cmd.opcode &= 0x0f;	/* real opcodes more often */
		if (i % 5 == 0)
			cmd.flags = 0;
		if (i % 4 == 0)
			cmd.nsid = 1;
		if (admin && cmd.opcode == NVME_ADMIN_ASYNC_EVENT && !cmd.flags &&
		    aers < VFPM_NVME_AER_LIMIT) {
			aers++;
			expect--;
		}
		h_submit(h, q, &cmd, false);
		if ((i + 1) % (q->depth / 2) == 0 || i + 1 == n) {
			h_ring(h, q);
			while (seen < expect && seen <= i && h_peek_cqe(h, q, 2000, &cqe)) {
				h_consume(h, q, true);
				seen++;
			}
		}
	}
	while (seen < expect && h_peek_cqe(h, q, 500, &cqe)) {
		h_consume(h, q, true);
		seen++;
	}
	if (seen < expect)
		assert_true(h_reg32(h, NVME_REG_CSTS) & NVME_CSTS_CFS);
	return seen;
}

static void test_garbage(void **state)
{
	struct harness *h = H(state);
	struct vfpm_nvme_stats st;
	struct nvme_sqe cmd;

	h_enable(h);
	h_create_io_queues(h);
	/* The I/O queue: all 512 complete, whatever their bytes. */
	assert_int_equal(submit_garbage(h, &h->io, 512, false), 512);
	assert_int_equal(h_reg32(h, NVME_REG_CSTS), NVME_CSTS_RDY);
	write_read(h, 5, 1024, h_iova(H_DATA), 0, 11);

	/* The admin queue: the garbage may create and delete queues, ask for events. */
	submit_garbage(h, &h->admin, 256, true);
	assert_int_equal(h_reg32(h, NVME_REG_VS), NVME_VS_1_4);	/* the server is alive */

	/* Garbage in the registers, then a clean reset brings it back. */
	for (unsigned int i = 0; i < 200; i++) {
		uint32_t off = rng() % 0x60 & ~3u, v = rng();

		if (i % 2)
			h_reg_write32(h, off, v);
		else
			(void)h_reg32(h, off);
	}
	h_reg_write32(h, NVME_REG_CC, 0);
	h_wait_csts(h, NVME_CSTS_RDY | NVME_CSTS_CFS, 0);
	h_enable(h);
	h_create_io_queues(h);
	write_read(h, 6, 512, h_iova(H_DATA), 0, 12);

	/* An admin queue the controller cannot reach: CFS, and a reset clears it. */
	h_disable(h);
	h_reg_write64(h, NVME_REG_ASQ, 0xdead0000);
	h_reg_write32(h, NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20);
	h_wait_csts(h, NVME_CSTS_RDY, NVME_CSTS_RDY);
	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	h_submit(h, &h->admin, &cmd, true);
	h_wait_csts(h, NVME_CSTS_CFS, NVME_CSTS_CFS);
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_non_null(st.fatal_reason);
	assert_false(st.polling);	/* nothing more is processed */
	h_disable(h);
	assert_int_equal(h_reg32(h, NVME_REG_CSTS), 0);
	/* An invalid configuration at enable: CFS without RDY. */
	h_reg_write32(h, NVME_REG_AQA, 0);
	h_reg_write32(h, NVME_REG_CC, NVME_CC_EN);
	h_wait_csts(h, NVME_CSTS_CFS, NVME_CSTS_CFS);
	assert_int_equal(h_reg32(h, NVME_REG_CSTS) & NVME_CSTS_RDY, 0);
	h_reg_write32(h, NVME_REG_CC, 0);
	h_wait_csts(h, ~0u, 0);
	h_enable(h);
	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	/* Bus Master Enable off under an enabled controller: it fails, it does not crash. */
	h_cfg_write16(h, PCI_COMMAND, PCI_COMMAND_MEMORY);
	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	h_submit(h, &h->admin, &cmd, true);
	h_wait_csts(h, NVME_CSTS_CFS, NVME_CSTS_CFS);
}

/* ---- shutdown, reset ---- */

static void test_shutdown(void **state)
{
	struct harness *h = H(state);
	struct vfpm_nvme_stats st;
	struct nvme_sqe cmd;
	struct nvme_cqe cqe;

	h_enable(h);
	h_create_io_queues(h);
	write_read(h, 1, 512, h_iova(H_DATA), 0, 13);
	/* Linux deletes its I/O queues, then asks for a normal shutdown. */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_SQ, .cdw10 = 1 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_CQ, .cdw10 = 1 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	h_reg_write32(h, NVME_REG_CC, h_reg32(h, NVME_REG_CC) | 1u << 14);
	h_wait_csts(h, NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_COMPLETE);
	assert_int_equal(h_reg32(h, NVME_REG_CSTS) & NVME_CSTS_RDY, NVME_CSTS_RDY);
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_false(st.polling);
	/* Shut down: a command is not processed. */
	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	h_submit(h, &h->admin, &cmd, true);
	assert_false(h_peek_cqe(h, &h->admin, 50, &cqe));
	/* A controller reset and it works again. */
	h_reg_write32(h, NVME_REG_CC, 0);
	h_wait_csts(h, ~0u, 0);
	h_enable(h);
	h_create_io_queues(h);
	write_read(h, 2, 512, h_iova(H_DATA), 0, 14);
}

static void test_function_reset(void **state)
{
	struct harness *h = H(state);
	struct vfpm_nvme_stats st;
	uint16_t cmd_reg = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;

	h_enable(h);
	h_create_io_queues(h);
	h_reg_write32(h, NVME_REG_INTMS, 1);
	assert_int_equal(vfpm_client_reset(h->c), 0);
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_false(st.polling);
	h_cfg_write16(h, PCI_COMMAND, cmd_reg);
	/* Power-on values, AQA/ASQ/ACQ included. */
	assert_int_equal(h_reg32(h, NVME_REG_CSTS), 0);
	assert_int_equal(h_reg32(h, NVME_REG_CC), 0);
	assert_int_equal(h_reg32(h, NVME_REG_AQA), 0);
	assert_int_equal(h_reg64(h, NVME_REG_ASQ), 0);
	assert_int_equal(h_reg32(h, NVME_REG_INTMS), 0);
	h_enable(h);
	h_create_io_queues(h);
	write_read(h, 3, 512, h_iova(H_DATA), 0, 15);

	/* Function Level Reset, as a PCIe function has it: the same power-on state. */
	{
		unsigned int exp = h_find_cap(h, PCI_CAP_ID_EXP);

		assert_true(exp != 0);
		h_cfg_write16(h, exp + PCI_EXP_DEVCTL,
			      (uint16_t)(h_cfg16(h, exp + PCI_EXP_DEVCTL) | PCI_EXP_DEVCTL_BCR_FLR));
		vfpm_nvme_get_stats(h->pdev, &st);
		assert_false(st.polling);
		h_cfg_write16(h, PCI_COMMAND, cmd_reg);
		assert_int_equal(h_reg32(h, NVME_REG_CSTS), 0);
		assert_int_equal(h_reg32(h, NVME_REG_AQA), 0);
		h_enable(h);
		h_create_io_queues(h);
		write_read(h, 4, 512, h_iova(H_DATA), 0, 21);
	}
}

/* ---- power ---- */

static void test_runtime_suspend(void **state)
{
	struct harness *h = H(state);
	struct vfpm_nvme_stats st;
	struct nvme_sqe cmd;
	struct nvme_cqe cqe;
	uint64_t suspends;
	int threads;

	h_enable(h);
	h_create_io_queues(h);
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_true(st.polling);
	suspends = st.suspends;
	threads = h_thread_count();

	/* Commands rung for just before the suspend complete before it is done. */
	for (unsigned int i = 0; i < 32; i++) {
		cmd = h_rw(NVME_IO_WRITE, 100 + i, 1, h_iova(H_DATA + i * 512), 0);
		h_submit(h, &h->io, &cmd, false);
	}
	h_ring(h, &h->io);
	assert_int_equal(vfpm_client_low_power_entry(h->c), 0);
	h_wait_power(h, "suspended");
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_false(st.polling);
	assert_int_equal(st.suspends, suspends + 1);
	assert_int_equal(h_thread_count(), threads - 1);	/* the poller thread is gone */
	for (unsigned int i = 0; i < 32; i++) {
		assert_true(h_peek_cqe(h, &h->io, 0, &cqe));
		assert_int_equal(cqe.status >> 1, 0);
		h_consume(h, &h->io, false);
	}
	/* Asleep, nothing polls: the pass count stands still. */
	{
		uint64_t passes = st.passes;

		usleep(20000);
		vfpm_nvme_get_stats(h->pdev, &st);
		assert_int_equal(st.passes, passes);
	}

	/*
	 * A doorbell written while asleep: the REGION_WRITE resumes the device
	 * before the write lands, the poller (or the next suspend's drain)
	 * sees it, and the device goes back to sleep.
	 */
	cmd = h_rw(NVME_IO_READ, 100, 32, h_iova(H_SCRATCH), h_iova(H_PRP_LIST));
	((uint64_t *)h_mem(h, H_PRP_LIST))[0] = h_iova(H_SCRATCH + 0x1000);
	((uint64_t *)h_mem(h, H_PRP_LIST))[1] = h_iova(H_SCRATCH + 0x2000);
	((uint64_t *)h_mem(h, H_PRP_LIST))[2] = h_iova(H_SCRATCH + 0x3000);
	h_submit(h, &h->io, &cmd, true);
	h_wait_cqe(h, &h->io, &cqe);
	assert_int_equal(cqe.status >> 1, 0);
	assert_memory_equal(h_mem(h, H_SCRATCH), h_mem(h, H_DATA), 32 * 512);
	h_wait_power(h, "suspended");
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_true(st.resumes >= 1);
	assert_false(st.polling);

	/* Out of low power: the poller is back, on the same queues. */
	assert_int_equal(vfpm_client_low_power_exit(h->c), 0);
	h_wait_power(h, "active");
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_true(st.polling);
	assert_int_equal(h_thread_count(), threads);
	write_read(h, 50, 2048, h_iova(H_DATA), 0, 16);
}

static void test_d3hot(void **state)
{
	struct harness *h = H(state);
	unsigned int pm = h_find_cap(h, PCI_CAP_ID_PM);
	struct vfpm_nvme_stats st;
	uint64_t suspends, resumes;
	uint16_t pmcsr;

	assert_true(pm != 0);
	h_enable(h);
	h_create_io_queues(h);
	vfpm_nvme_get_stats(h->pdev, &st);
	suspends = st.suspends;
	resumes = st.resumes;
	/* D3hot stops the poller, as a runtime suspend does; D0 brings a soft reset. */
	pmcsr = h_cfg16(h, pm + PCI_PM_CTRL);
	h_cfg_write16(h, pm + PCI_PM_CTRL, (uint16_t)((pmcsr & ~PCI_PM_CTRL_STATE_MASK) | 3));
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_false(st.polling);
	assert_int_equal(st.suspends, suspends + 1);
	h_cfg_write16(h, pm + PCI_PM_CTRL, (uint16_t)(pmcsr & ~PCI_PM_CTRL_STATE_MASK));
	h_cfg_write16(h, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_int_equal(st.resumes, resumes + 1);
	assert_int_equal(h_reg32(h, NVME_REG_CSTS), 0);
	assert_int_equal(h_reg32(h, NVME_REG_CC), 0);
	h_enable(h);
	h_create_io_queues(h);
	write_read(h, 4, 512, h_iova(H_DATA), 0, 17);
}

/*
 * The doorbells as a VMM rings them: through its mapping of the doorbell
 * page, never reaching the socket.  Low power revokes the mapping; after it
 * the same mapping works again.
 */
static void test_mapped_doorbells(void **state)
{
	struct harness *h = H(state);
	struct vfpm_nvme_stats st;

	h_map_doorbells(h);
	h_enable(h);
	h_create_io_queues(h);
	write_read(h, 20, 4096, h_iova(H_DATA + 0x800), h_iova(H_DATA + 0x2000), 18);
	for (unsigned int i = 0; i < 7; i++)
		((uint64_t *)h_mem(h, H_PRP_LIST + 0x100))[i] = h_iova(H_DATA + 0x4000 + i * 0x1000);
	write_read(h, 40, 32768, h_iova(H_DATA), h_iova(H_PRP_LIST + 0x100), 19);
	/* Registers stay trapped: beyond the doorbell page, reserved space reads 0. */
	assert_int_equal(h_reg32(h, 0x2000), 0);
	assert_int_equal(h_reg32(h, VFPM_NVME_BAR0_SIZE - 4), 0);

	assert_int_equal(vfpm_client_low_power_entry(h->c), 0);
	h_wait_power(h, "suspended");
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_false(st.polling);
	assert_int_equal(vfpm_client_low_power_exit(h->c), 0);
	h_wait_power(h, "active");
	write_read(h, 60, 8192, h_iova(H_DATA), h_iova(H_DATA + 0x1000), 20);
}

/* ---- INTx ---- */

static void test_intx(void **state)
{
	struct harness *h = H(state);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int32_t fd32 = efd;
	struct nvme_sqe cmd;
	struct nvme_cqe cqe;

	assert_true(efd >= 0);
	assert_int_equal(vfpm_client_set_irqs(h->c, VFIO_IRQ_SET_DATA_EVENTFD |
					      VFIO_IRQ_SET_ACTION_TRIGGER,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd32), 0);
	h_enable(h);
	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	h_submit(h, &h->admin, &cmd, true);
	assert_true(h_eventfd_wait(efd, H_TIMEOUT_MS));
	h_eventfd_read(efd);
	assert_true(h_cfg16(h, PCI_STATUS) & PCI_STATUS_INTERRUPT);
	h_wait_cqe(h, &h->admin, &cqe);		/* consumed: the line drops */
	for (int i = 0; i < 500 && (h_cfg16(h, PCI_STATUS) & PCI_STATUS_INTERRUPT); i++)
		usleep(1000);
	assert_false(h_cfg16(h, PCI_STATUS) & PCI_STATUS_INTERRUPT);

	/* INTMS masks the line, INTMC lets it through. */
	assert_int_equal(vfpm_client_set_irqs(h->c, VFIO_IRQ_SET_DATA_NONE |
					      VFIO_IRQ_SET_ACTION_UNMASK,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, NULL), 0);
	h_reg_write32(h, NVME_REG_INTMS, 1);
	assert_int_equal(h_reg32(h, NVME_REG_INTMS), 1);
	h_submit(h, &h->admin, &cmd, true);
	assert_true(h_peek_cqe(h, &h->admin, H_TIMEOUT_MS, &cqe));
	assert_false(h_eventfd_wait(efd, 50));
	h_reg_write32(h, NVME_REG_INTMC, 1);
	assert_int_equal(h_reg32(h, NVME_REG_INTMC), 0);
	assert_true(h_eventfd_wait(efd, H_TIMEOUT_MS));
	h_consume(h, &h->admin, true);
	close(efd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_registers_and_identify, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_identify_4k_blocks, h_setup_4k, h_teardown),
		cmocka_unit_test_setup_teardown(test_features, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_queue_checks, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_io, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_io_4k_blocks, h_setup_4k, h_teardown),
		cmocka_unit_test_setup_teardown(test_error_statuses, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_logs_and_events, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_garbage, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_function_reset, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_runtime_suspend, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_d3hot, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_mapped_doorbells, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_intx, h_setup_intx, h_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
