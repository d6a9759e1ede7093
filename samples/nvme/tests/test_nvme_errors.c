// SPDX-License-Identifier: MIT
/*
 * What the host gets wrong, and what the controller answers: the error
 * statuses, log pages and asynchronous events, random bytes as commands and
 * registers, an unreachable queue (CFS), shutdown, function reset and FLR.
 */
#include "nvme_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <vfpm/log.h>

#define ID_BUF 0x100000u	/* where Identify and log data land in guest memory */

static struct harness *H(void **state)
{
	return *state;
}

/* ---- errors ---- */

/* Log lines saying the controller set CSTS.CFS (the log function is serialised). */
static int fatal_lines;

static void count_fatal(enum vfpm_log_level level, const char *msg, void *opaque)
{
	(void)level;
	(void)opaque;
	if (strstr(msg, "controller fatal status"))
		fatal_lines++;
}

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
	h_write_read(h, 0, 512, h_iova(H_DATA), 0, 9);
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
	h_write_read(h, 0, 8192, h_iova(H_DATA), h_iova(H_DATA + 0x1000), 10);

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
	assert_true(h_is_zero(h_mem(h, ID_BUF), 4096));
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
	h_write_read(h, 5, 1024, h_iova(H_DATA), 0, 11);

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
	h_write_read(h, 6, 512, h_iova(H_DATA), 0, 12);

	/* An admin queue the controller cannot reach: CFS, and a reset clears it. */
	fatal_lines = 0;
	vfpm_log_set(count_fatal, NULL, VFPM_LOG_WARNING);
	/* A new second: the garbage above may have logged a CFS in this one. */
	for (time_t t0 = time(NULL); time(NULL) == t0;)
		usleep(10000);
	h_disable(h);
	h_reg_write64(h, NVME_REG_ASQ, 0xdead0000);
	h_reg_write32(h, NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20);
	h_wait_csts(h, NVME_CSTS_RDY, NVME_CSTS_RDY);
	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	h_submit(h, &h->admin, &cmd, true);
	h_wait_csts(h, NVME_CSTS_CFS, NVME_CSTS_CFS);
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_non_null(st.fatal_reason);
	/* Nothing more is processed: the poller ends (CFS is set just before it does). */
	h_wait_not_polling(h);
	/* The log says why, once however often the guest makes it happen. */
	vfpm_log_set(NULL, NULL, VFPM_LOG_WARNING);
	assert_int_equal(fatal_lines, 1);
	vfpm_log_set(count_fatal, NULL, VFPM_LOG_WARNING);
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
	vfpm_log_set(NULL, NULL, VFPM_LOG_WARNING);
	/* Three CFS in quick succession: one line a second at most. */
	assert_true(fatal_lines >= 1 && fatal_lines <= 3);
}

/* ---- shutdown, reset ---- */

static void test_shutdown(void **state)
{
	struct harness *h = H(state);
	struct nvme_sqe cmd;
	struct nvme_cqe cqe;

	h_enable(h);
	h_create_io_queues(h);
	h_write_read(h, 1, 512, h_iova(H_DATA), 0, 13);
	/* Linux deletes its I/O queues, then asks for a normal shutdown. */
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_SQ, .cdw10 = 1 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_DELETE_CQ, .cdw10 = 1 };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	h_reg_write32(h, NVME_REG_CC, h_reg32(h, NVME_REG_CC) | 1u << 14);
	h_wait_csts(h, NVME_CSTS_SHST_MASK, NVME_CSTS_SHST_COMPLETE);
	assert_int_equal(h_reg32(h, NVME_REG_CSTS) & NVME_CSTS_RDY, NVME_CSTS_RDY);
	h_wait_not_polling(h);
	/* Shut down: a command is not processed. */
	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	h_submit(h, &h->admin, &cmd, true);
	assert_false(h_peek_cqe(h, &h->admin, 50, &cqe));
	/* A controller reset and it works again. */
	h_reg_write32(h, NVME_REG_CC, 0);
	h_wait_csts(h, ~0u, 0);
	h_enable(h);
	h_create_io_queues(h);
	h_write_read(h, 2, 512, h_iova(H_DATA), 0, 14);
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
	h_write_read(h, 3, 512, h_iova(H_DATA), 0, 15);

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
		h_write_read(h, 4, 512, h_iova(H_DATA), 0, 21);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_error_statuses, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_logs_and_events, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_garbage, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_function_reset, h_setup, h_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
