// SPDX-License-Identifier: MIT
/*
 * The NVMe controller through a real server and the real client library,
 * brought up as Linux's nvme driver brings it up: registers, Identify checked
 * field by field, features, queue creation with the specification's checks,
 * and I/O on the backing file with every PRP shape (PRP1 alone, PRP1 and
 * PRP2, lists, a chained list), Flush, Write Zeroes, both block sizes.
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

#define ID_BUF 0x100000u	/* where Identify and log data land in guest memory */

static struct harness *H(void **state)
{
	return *state;
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
	assert_int_equal(id->mdts, 7);
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
	assert_false(h_is_zero(ns->nguid, 16));
	assert_false(h_is_zero(ns->eui64, 8));
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
	assert_true(h_is_zero(d + 4, 4092));
	cmd = h_identify(NVME_CNS_ACTIVE_NS_LIST, 1, ID_BUF);
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	assert_true(h_is_zero(d, 4096));

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
	h_write_read(h, 7, 512, h_iova(H_DATA + 0x200), 0, 1);
	assert_true(h_eventfd_read(h->msix_efd[1]) > 0);	/* the I/O CQ's vector */
	/* PRP1 with an offset and PRP2: 4 KiB over two pages. */
	h_write_read(h, 100, 4096, h_iova(H_DATA + 0x1e00), h_iova(H_DATA + 0x3000), 2);
	/* PRP1 + PRP2, both whole pages. */
	h_write_read(h, 200, 8192, h_iova(H_DATA + 0x4000), h_iova(H_DATA + 0x6000), 3);
	/* A PRP list: 64 KiB in 16 scattered pages, PRP1 with an offset. */
	for (unsigned int i = 0; i < 16; i++)
		list[i] = h_iova(H_DATA + 0x20000 + (15 - i) * 0x2000);
	h_write_read(h, 1000, 64 * 1024, h_iova(H_DATA + 0x8800), h_iova(H_PRP_LIST), 4);
	/* The largest transfer (MDTS), its list not at a page start. */
	for (unsigned int i = 0; i < VFPM_NVME_MAX_TRANSFER / 0x1000; i++)
		list[64 + i] = h_iova(H_DATA + 0x40000 + i * 0x1000);
	h_write_read(h, 2000, VFPM_NVME_MAX_TRANSFER, h_iova(H_DATA + 0x3f000), h_iova(H_PRP_LIST + 512),
		   5);
	/* A PRP list that chains to a second list page. */
	list = (uint64_t *)h_mem(h, H_PRP_LIST + 0x1000 - 16);
	list[0] = h_iova(H_DATA + 0x70000);
	list[1] = h_iova(H_PRP_LIST + 0x2000);	/* the chain */
	((uint64_t *)h_mem(h, H_PRP_LIST + 0x2000))[0] = h_iova(H_DATA + 0x71000);
	((uint64_t *)h_mem(h, H_PRP_LIST + 0x2000))[1] = h_iova(H_DATA + 0x72000);
	h_write_read(h, 3000, 16384, h_iova(H_DATA + 0x6f000), h_iova(H_PRP_LIST + 0x1000 - 16), 6);

	/* Flush; Flush of every namespace. */
	cmd = (struct nvme_sqe){ .opcode = NVME_IO_FLUSH, .nsid = 1 };
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = (struct nvme_sqe){ .opcode = NVME_IO_FLUSH, .nsid = 0xffffffff };
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);

	/* Write Zeroes over what the 8 KiB write left, and the last block of the disk. */
	cmd = h_rw(NVME_IO_WRITE_ZEROES, 200, 16, 0, 0);
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);
	h_backing_read(h, 200, disk, sizeof(disk));
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
	h_write_read(h, 3, 4096, h_iova(H_DATA), 0, 7);
	h_write_read(h, 10, 4096, h_iova(H_DATA + 0x10), h_iova(H_DATA + 0x2000), 8);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
