// SPDX-License-Identifier: MIT
/*
 * The engine: it reads the doorbells of the live queues, fetches commands,
 * runs them, posts their completions and raises interrupts.  Whoever owns
 * the engine (nvme_ctrl.h) calls it; it never blocks on a lock of ours.
 *
 * What the host may get wrong, and what happens then:
 *  - a doorbell value past the queue's end: ignored, and an asynchronous
 *    event (Invalid Doorbell Write Value) is raised;
 *  - an entry or a completion the controller cannot reach (outside the
 *    host's DMA windows, Bus Master Enable off): the controller fails
 *    (CSTS.CFS) and processes nothing more until a reset;
 *  - a command's data it cannot reach, bad PRPs: that command fails
 *    (Data Transfer Error, PRP Offset Invalid);
 *  - a full completion queue: the submission queue waits, its commands
 *    stay unfetched.
 */
#include "nvme_ctrl.h"

#include <endian.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include <vfpm/log.h>

/* Commands one pass takes from a queue, so that one busy queue starves no other. */
#define NVME_ADMIN_BUDGET 16u
#define NVME_IO_BUDGET 64u

/* ---- doorbells ---- */

/* The doorbell page is BAR memory: revocation moves it under the write side. */
static void doorbells_lock(struct nvme_ctrl *c)
{
	vfpm_pci_mem_lock(c->pdev);
}

static void doorbells_unlock(struct nvme_ctrl *c)
{
	vfpm_pci_mem_unlock(c->pdev);
}

void nvme_doorbell_clear(struct nvme_ctrl *c, unsigned int index)
{
	doorbells_lock(c);
	__atomic_store_n(&c->db_mem[index], 0, __ATOMIC_RELAXED);
	doorbells_unlock(c);
}

static void doorbells_clear_all(struct nvme_ctrl *c)
{
	doorbells_lock(c);
	for (unsigned int i = 0; i < NVME_PAGE_SIZE / 4; i++)
		__atomic_store_n(&c->db_mem[i], 0, __ATOMIC_RELAXED);
	doorbells_unlock(c);
}

/*
 * The live queues' doorbells, read once per pass.  Acquire: the entries the
 * host wrote before ringing are visible once its doorbell value is.
 */
static void doorbells_snapshot(struct nvme_ctrl *c, uint32_t *db)
{
	struct nvme_engine *e = &c->eng;

	doorbells_lock(c);
	for (unsigned int q = 0; q < NVME_NR_QIDS; q++) {
		if (e->sq[q].live)
			db[2 * q] = __atomic_load_n(&c->db_mem[2 * q], __ATOMIC_ACQUIRE);
		if (e->cq[q].live)
			db[2 * q + 1] = __atomic_load_n(&c->db_mem[2 * q + 1], __ATOMIC_ACQUIRE);
	}
	doorbells_unlock(c);
}

static void doorbell_invalid(struct nvme_ctrl *c)
{
	nvme_aen_raise(c, NVME_AEN_DW0(NVME_AEN_TYPE_ERROR, NVME_AEN_ERR_INVALID_DB_VALUE,
				       NVME_LOG_ERROR));
}

/* ---- interrupts ---- */

void nvme_irq_update_intx(struct nvme_ctrl *c)
{
	bool want;

	pthread_mutex_lock(&c->irq_lock);
	want = atomic_load(&c->intx_mode) && atomic_load(&c->intx_pending) &&
	       !(atomic_load(&c->intms) & 1);
	if (want != c->intx_asserted) {
		c->intx_asserted = want;
		if (want)
			vfpm_pci_intx_assert(c->pdev);
		else
			vfpm_pci_intx_deassert(c->pdev);
	}
	pthread_mutex_unlock(&c->irq_lock);
}

/*
 * MSI-X when the host set an eventfd for the vector; without one the host
 * is using INTx (a VMM sets MSI-X eventfds once its guest enabled MSI-X).
 */
static void irq_signal(struct nvme_ctrl *c, const struct nvme_cq *cq)
{
	int err = vfpm_pci_msix_signal(c->pdev, cq->iv);

	atomic_store(&c->intx_mode, err == -ENODEV);
}

static void irqs_deliver(struct nvme_ctrl *c)
{
	struct nvme_engine *e = &c->eng;
	bool pending = false, signalled = false;

	for (unsigned int q = 0; q < NVME_NR_QIDS; q++) {
		struct nvme_cq *cq = &e->cq[q];

		if (!cq->live || !cq->ien)
			continue;
		if (cq->posted) {
			cq->posted = false;
			irq_signal(c, cq);
			signalled = true;
		}
		pending |= cq->head != cq->tail;
	}
	if (signalled || pending != atomic_load(&c->intx_pending)) {
		atomic_store(&c->intx_pending, pending);
		nvme_irq_update_intx(c);
	}
}

/* ---- completions ---- */

static bool cq_full(const struct nvme_cq *cq)
{
	return (cq->tail + 1) % cq->size == cq->head;
}

/* 0, or -errno when the entry could not be written (the controller has failed). */
static int cq_post(struct nvme_ctrl *c, struct nvme_cq *cq, uint16_t sqid, uint16_t sqhd,
		   uint16_t cid_le, uint16_t status, uint32_t dw0)
{
	struct nvme_cqe cqe = {
		.dw0 = htole32(dw0),
		.sqhd = htole16(sqhd),
		.sqid = htole16(sqid),
		.cid = cid_le,
	};
	int err;

	if (status != NVME_SC_SUCCESS)
		status |= NVME_STATUS_DNR;	/* nothing here succeeds when tried again */
	cqe.status = htole16((uint16_t)(status << 1 | cq->phase));
	err = vfpm_pci_dma_write(c->pdev, cq->base + (uint64_t)cq->tail * sizeof(cqe), &cqe,
				 sizeof(cqe));
	if (err) {
		nvme_engine_fatal(c, "a completion queue entry could not be written");
		return err;
	}
	cq->tail = (cq->tail + 1) % cq->size;
	if (cq->tail == 0)
		cq->phase = !cq->phase;
	cq->posted = true;
	atomic_fetch_add(&c->commands, 1);
	return 0;
}

/* Waiting events go to waiting Asynchronous Event Requests, when the admin CQ has room. */
static void aens_deliver(struct nvme_ctrl *c)
{
	struct nvme_engine *e = &c->eng;

	while (e->nr_aers && e->nr_aens && nvme_engine_running(c) && !cq_full(&e->cq[0])) {
		uint16_t cid = e->aer_cids[0];
		uint32_t event = e->aens[0];

		memmove(e->aer_cids, e->aer_cids + 1, --e->nr_aers * sizeof(e->aer_cids[0]));
		memmove(e->aens, e->aens + 1, --e->nr_aens * sizeof(e->aens[0]));
		if (cq_post(c, &e->cq[0], 0, (uint16_t)e->sq[0].head, cid, NVME_SC_SUCCESS, event))
			break;
	}
}

/* ---- commands ---- */

static uint16_t command_exec(struct nvme_ctrl *c, unsigned int qid, const struct nvme_sqe *cmd,
			     uint32_t *dw0)
{
	*dw0 = 0;
	/* No fused operations (FUSES 0), no SGLs (SGLS 0): PRPs only. */
	if (NVME_SQE_FUSE(cmd->flags) || NVME_SQE_PSDT(cmd->flags))
		return NVME_SC_INVALID_FIELD;
	if (qid == 0)
		return nvme_admin_exec(c, cmd, dw0);
	return nvme_io_exec(c, cmd);
}

/* Up to budget commands of one submission queue; returns how many ran. */
static unsigned int sq_process(struct nvme_ctrl *c, unsigned int qid, unsigned int budget)
{
	struct nvme_engine *e = &c->eng;
	struct nvme_sq *sq = &e->sq[qid];
	unsigned int done = 0;

	while (done < budget && sq->live && sq->head != sq->tail && nvme_engine_running(c)) {
		struct nvme_cq *cq = &e->cq[sq->cqid];
		struct nvme_sqe cmd;
		uint16_t status;
		uint32_t dw0;

		if (cq_full(cq))
			break;	/* the host has not consumed its completions yet */
		if (vfpm_pci_dma_read(c->pdev, sq->base + (uint64_t)sq->head * sizeof(cmd), &cmd,
				      sizeof(cmd))) {
			nvme_engine_fatal(c, "a submission queue entry could not be read");
			break;
		}
		sq->head = (sq->head + 1) % sq->size;
		status = command_exec(c, qid, &cmd, &dw0);
		done++;
		if (status == NVME_NO_COMPLETION)
			continue;
		if (cq_post(c, cq, (uint16_t)qid, (uint16_t)sq->head, cmd.cid, status, dw0))
			break;
	}
	return done;
}

unsigned int nvme_engine_pass(struct nvme_ctrl *c)
{
	struct nvme_engine *e = &c->eng;
	uint32_t db[NVME_NR_DOORBELLS];
	unsigned int done = 0;

	if (!nvme_engine_running(c))
		return 0;
	atomic_fetch_add(&c->passes, 1);
	doorbells_snapshot(c, db);
	for (unsigned int q = 0; q < NVME_NR_QIDS; q++) {
		if (e->cq[q].live) {
			if (db[2 * q + 1] < e->cq[q].size)
				e->cq[q].head = db[2 * q + 1];
			else
				doorbell_invalid(c);
		}
		if (e->sq[q].live) {
			if (db[2 * q] < e->sq[q].size)
				e->sq[q].tail = db[2 * q];
			else
				doorbell_invalid(c);
		}
	}
	/* The admin queue first: it may create or delete the queues that follow. */
	for (unsigned int q = 0; q < NVME_NR_QIDS && nvme_engine_running(c); q++) {
		if (e->sq[q].live)
			done += sq_process(c, q, q ? NVME_IO_BUDGET : NVME_ADMIN_BUDGET);
	}
	aens_deliver(c);
	irqs_deliver(c);
	return done;
}

/* ---- controller state ---- */

bool nvme_engine_running(const struct nvme_ctrl *c)
{
	return c->eng.enabled && !c->eng.shutdown && !c->eng.fatal;
}

void nvme_engine_fatal(struct nvme_ctrl *c, const char *why)
{
	int64_t now_s = (int64_t)time(NULL);

	if (c->eng.fatal)
		return;
	c->eng.fatal = true;
	atomic_store(&c->fatal_reason, why);
	atomic_fetch_or(&c->csts, NVME_CSTS_CFS);
	/* A guest can make this happen at will (reset, repeat): a line a second at most. */
	if (now_s != atomic_exchange(&c->fatal_logged_s, now_s))
		vfpm_logf(VFPM_LOG_WARNING, "nvme: controller fatal status (CSTS.CFS): %s; it stops "
			  "until the host resets it", why);
}

void nvme_engine_reset(struct nvme_ctrl *c)
{
	struct nvme_engine *e = &c->eng;

	memset(e->sq, 0, sizeof(e->sq));
	memset(e->cq, 0, sizeof(e->cq));
	e->enabled = e->shutdown = e->fatal = false;
	nvme_features_default(&e->feat);
	/* Outstanding Asynchronous Event Requests end with the admin queue, uncompleted. */
	e->nr_aers = e->nr_aens = 0;
	e->aen_masked = 0;
	e->critical_warning = 0;
	doorbells_clear_all(c);
	atomic_store(&c->intms, 0);
	atomic_store(&c->csts, 0);
	atomic_store(&c->fatal_reason, NULL);
	atomic_store(&c->intx_pending, false);
	nvme_irq_update_intx(c);
}

/* CC.EN 0 -> 1: the admin queues from AQA, ASQ and ACQ, then CSTS.RDY. */
static void engine_enable(struct nvme_ctrl *c, uint32_t cc)
{
	struct nvme_engine *e = &c->eng;
	uint32_t aqa = atomic_load(&c->aqa);

	if (NVME_CC_CSS(cc) != 0 || NVME_CC_MPS(cc) != 0 || NVME_CC_AMS(cc) != 0) {
		nvme_engine_fatal(c, "CC asks for a command set, page size or arbitration "
				     "the controller does not have");
		return;
	}
	if (NVME_AQA_ASQS(aqa) == 0 || NVME_AQA_ACQS(aqa) == 0) {
		nvme_engine_fatal(c, "AQA: an admin queue of one entry");
		return;
	}
	e->sq[0] = (struct nvme_sq){
		.live = true, .cqid = 0, .size = NVME_AQA_ASQS(aqa) + 1, .base = atomic_load(&c->asq),
	};
	e->cq[0] = (struct nvme_cq){
		.live = true, .ien = true, .phase = true, .iv = 0, .size = NVME_AQA_ACQS(aqa) + 1,
		.nr_sqs = 1, .base = atomic_load(&c->acq),
	};
	nvme_doorbell_clear(c, 0);
	nvme_doorbell_clear(c, 1);
	e->enabled = true;
	atomic_fetch_or(&c->csts, NVME_CSTS_RDY);
}

/* CC.SHN: the cache to stable storage, then nothing more is processed. */
static void engine_shutdown(struct nvme_ctrl *c)
{
	uint32_t csts = atomic_load(&c->csts) & ~NVME_CSTS_SHST_MASK;

	atomic_store(&c->csts, csts | NVME_CSTS_SHST_OCCURRING);
	nvme_io_sync(c);
	c->eng.shutdown = true;
	atomic_store(&c->csts, csts | NVME_CSTS_SHST_COMPLETE);
}

void nvme_engine_apply_cc(struct nvme_ctrl *c)
{
	struct nvme_engine *e = &c->eng;
	uint32_t cc = atomic_load(&c->cc), old = e->cc_applied;

	if (cc == old)
		return;
	e->cc_applied = cc;
	if (!(cc & NVME_CC_EN)) {
		/* A controller reset: queues deleted, commands abandoned, registers cleared. */
		if (old & NVME_CC_EN)
			nvme_engine_reset(c);
		return;
	}
	if (!(old & NVME_CC_EN))
		engine_enable(c, cc);
	/* SHN going back to 0 does not undo a shutdown: only a reset does. */
	if (nvme_engine_running(c) && NVME_CC_SHN(cc))
		engine_shutdown(c);
}

/* ---- data: PRP1, PRP2 and PRP lists ---- */

struct prp_seg {
	uint64_t addr;
	uint32_t len;
};

static void seg_add(struct prp_seg *segs, unsigned int *n, uint64_t addr, uint32_t len)
{
	if (*n && segs[*n - 1].addr + segs[*n - 1].len == addr) {
		segs[*n - 1].len += len;	/* contiguous with the one before */
		return;
	}
	segs[(*n)++] = (struct prp_seg){ addr, len };
}

/*
 * The PRP list at list (section 4.3): entries fill the rest of its page; when
 * more are needed than fit, the page's last entry points to the next list.
 */
static uint16_t prp_list_walk(struct nvme_ctrl *c, uint64_t list, uint32_t len,
			      struct prp_seg *segs, unsigned int *n)
{
	uint64_t ents[NVME_MAX_PRPS];

	if (list & 7)
		return NVME_SC_PRP_OFFSET_INVALID;
	while (len) {
		uint32_t room = (NVME_PAGE_SIZE - (uint32_t)(list & (NVME_PAGE_SIZE - 1))) / 8;
		uint32_t need = (len + NVME_PAGE_SIZE - 1) / NVME_PAGE_SIZE;
		uint32_t nread = need <= room ? need : room;
		uint32_t ndata = need <= room ? need : room - 1;

		if (nread > NVME_MAX_PRPS)
			return NVME_SC_INVALID_FIELD;	/* cannot happen under MDTS */
		if (vfpm_pci_dma_read(c->pdev, list, ents, nread * sizeof(ents[0])))
			return NVME_SC_DATA_XFER_ERROR;
		for (uint32_t i = 0; i < ndata; i++) {
			uint64_t addr = le64toh(ents[i]);
			uint32_t seg = len < NVME_PAGE_SIZE ? len : NVME_PAGE_SIZE;

			if (addr & (NVME_PAGE_SIZE - 1))
				return NVME_SC_PRP_OFFSET_INVALID;
			seg_add(segs, n, addr, seg);
			len -= seg;
		}
		if (len) {
			/* The next list is page-aligned, so every hop moves data on. */
			list = le64toh(ents[nread - 1]);
			if (list & (NVME_PAGE_SIZE - 1))
				return NVME_SC_PRP_OFFSET_INVALID;
		}
	}
	return NVME_SC_SUCCESS;
}

static uint16_t prp_map(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2, uint32_t len,
			struct prp_seg *segs, unsigned int *n)
{
	uint32_t first = NVME_PAGE_SIZE - (uint32_t)(prp1 & (NVME_PAGE_SIZE - 1));

	*n = 0;
	if (len > VFPM_NVME_MAX_TRANSFER)
		return NVME_SC_INVALID_FIELD;
	if (prp1 & 3)
		return NVME_SC_PRP_OFFSET_INVALID;	/* dword-aligned */
	if (first > len)
		first = len;
	seg_add(segs, n, prp1, first);
	len -= first;
	if (!len)
		return NVME_SC_SUCCESS;	/* PRP2 is not used */
	if (len <= NVME_PAGE_SIZE) {
		if (prp2 & (NVME_PAGE_SIZE - 1))
			return NVME_SC_PRP_OFFSET_INVALID;
		seg_add(segs, n, prp2, len);
		return NVME_SC_SUCCESS;
	}
	return prp_list_walk(c, prp2, len, segs, n);
}

static uint16_t prp_transfer(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2, void *buf,
			     uint32_t len, bool to_host)
{
	struct prp_seg segs[NVME_MAX_PRPS];
	unsigned int n;
	uint16_t status = prp_map(c, prp1, prp2, len, segs, &n);
	uint8_t *p = buf;

	if (status)
		return status;
	for (unsigned int i = 0; i < n; i++) {
		int err = to_host ? vfpm_pci_dma_write(c->pdev, segs[i].addr, p, segs[i].len)
				  : vfpm_pci_dma_read(c->pdev, segs[i].addr, p, segs[i].len);

		if (err)
			return NVME_SC_DATA_XFER_ERROR;
		p += segs[i].len;
	}
	return NVME_SC_SUCCESS;
}

uint16_t nvme_prp_map_iov(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2, uint32_t len,
			  int prot, struct nvme_prp_iov *m)
{
	struct prp_seg segs[NVME_MAX_PRPS];
	unsigned int n;
	uint16_t status = prp_map(c, prp1, prp2, len, segs, &n);

	m->nr_sg = m->nr_iov = 0;
	if (status)
		return status;
	for (unsigned int i = 0; i < n; i++) {
		struct vfpm_dma_sg *sg = &m->sg[m->nr_sg];

		if (vfpm_pci_dma_map(c->pdev, segs[i].addr, segs[i].len, prot, m->iov + m->nr_iov,
				     NVME_PRP_IOV_MAX - m->nr_iov, sg)) {
			nvme_prp_unmap_iov(c, m);
			return NVME_SC_DATA_XFER_ERROR;
		}
		m->nr_sg++;
		m->nr_iov += sg->nr_iov;
	}
	return NVME_SC_SUCCESS;
}

int nvme_prp_unmap_iov(struct nvme_ctrl *c, struct nvme_prp_iov *m)
{
	int ret = 0;

	for (unsigned int i = 0; i < m->nr_sg; i++) {
		int err = vfpm_pci_dma_unmap(c->pdev, &m->sg[i]);

		if (err && !ret)
			ret = err;
	}
	m->nr_sg = m->nr_iov = 0;
	return ret;
}

uint16_t nvme_prp_read(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2, void *buf, uint32_t len)
{
	return prp_transfer(c, prp1, prp2, buf, len, false);
}

uint16_t nvme_prp_write(struct nvme_ctrl *c, uint64_t prp1, uint64_t prp2, const void *buf,
			uint32_t len)
{
	return prp_transfer(c, prp1, prp2, (void *)buf, len, true);
}
