// SPDX-License-Identifier: MIT
/*
 * Admin commands: queue creation and deletion with the specification's
 * checks, Identify (controller, namespace, active namespace list, namespace
 * identification descriptors), features, log pages, Asynchronous Event
 * Requests and Abort.  Run by the engine's owner (nvme_ctrl.h).
 */
#include "nvme_ctrl.h"

#include <endian.h>
#include <string.h>
#include <time.h>

#define NVME_NSID_ALL 0xffffffffu
#define NVME_MODEL "vfpm NVMe controller"
#define NVME_FIRMWARE "vfpm0.1"
#define NVME_SUBNQN_PREFIX "nqn.2024-01.invalid.vfpm:nvme:"
#define NVME_VENDOR_ID 0x1b36

/* ---- queues ---- */

static uint16_t qid_of(const struct nvme_sqe *cmd)
{
	return (uint16_t)(le32toh(cmd->cdw10) & 0xffff);
}

static uint32_t qsize_of(const struct nvme_sqe *cmd)
{
	return (le32toh(cmd->cdw10) >> 16) + 1;
}

static uint16_t queue_base_check(const struct nvme_sqe *cmd, uint32_t cdw11, uint32_t qsize)
{
	if (qsize < 2 || qsize > VFPM_NVME_MAX_QUEUE_ENTRIES)
		return NVME_SC_QUEUE_SIZE;
	if (!(cdw11 & NVME_QUEUE_PC))
		return NVME_SC_INVALID_FIELD;	/* CAP.CQR: physically contiguous only */
	if (le64toh(cmd->prp1) & (NVME_PAGE_SIZE - 1))
		return NVME_SC_PRP_OFFSET_INVALID;	/* a contiguous queue is page-aligned */
	return NVME_SC_SUCCESS;
}

static uint16_t create_cq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	struct nvme_engine *e = &c->eng;
	uint32_t cdw11 = le32toh(cmd->cdw11), qsize = qsize_of(cmd);
	uint16_t qid = qid_of(cmd), iv = (uint16_t)(cdw11 >> 16), status;

	if (qid == 0 || qid > e->feat.nr_io_cqs || e->cq[qid].live)
		return NVME_SC_QID_INVALID;
	status = queue_base_check(cmd, cdw11, qsize);
	if (status)
		return status;
	if (iv >= VFPM_NVME_MSIX_VECTORS)
		return NVME_SC_INVALID_VECTOR;
	e->cq[qid] = (struct nvme_cq){
		.live = true, .ien = cdw11 & NVME_CQ_IEN, .phase = true, .iv = iv, .size = qsize,
		.base = le64toh(cmd->prp1),
	};
	nvme_doorbell_clear(c, 2 * qid + 1);
	return NVME_SC_SUCCESS;
}

static uint16_t create_sq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	struct nvme_engine *e = &c->eng;
	uint32_t cdw11 = le32toh(cmd->cdw11), qsize = qsize_of(cmd);
	uint16_t qid = qid_of(cmd), cqid = (uint16_t)(cdw11 >> 16), status;

	if (qid == 0 || qid > e->feat.nr_io_sqs || e->sq[qid].live)
		return NVME_SC_QID_INVALID;
	status = queue_base_check(cmd, cdw11, qsize);
	if (status)
		return status;
	if (cqid == 0 || cqid >= NVME_NR_QIDS || !e->cq[cqid].live)
		return NVME_SC_CQ_INVALID;
	/* QPRIO is accepted and ignored: arbitration is round robin. */
	e->sq[qid] = (struct nvme_sq){
		.live = true, .cqid = cqid, .size = qsize, .base = le64toh(cmd->prp1),
	};
	e->cq[cqid].nr_sqs++;
	nvme_doorbell_clear(c, 2 * qid);
	return NVME_SC_SUCCESS;
}

/* Nothing of a deleted queue is in flight: every command it gave ran to completion. */
static uint16_t delete_sq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	struct nvme_engine *e = &c->eng;
	uint16_t qid = qid_of(cmd);

	if (qid == 0 || qid >= NVME_NR_QIDS || !e->sq[qid].live)
		return NVME_SC_QID_INVALID;
	e->cq[e->sq[qid].cqid].nr_sqs--;
	e->sq[qid] = (struct nvme_sq){ .live = false };
	nvme_doorbell_clear(c, 2 * qid);
	return NVME_SC_SUCCESS;
}

static uint16_t delete_cq(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	struct nvme_engine *e = &c->eng;
	uint16_t qid = qid_of(cmd);

	if (qid == 0 || qid >= NVME_NR_QIDS || !e->cq[qid].live)
		return NVME_SC_QID_INVALID;
	if (e->cq[qid].nr_sqs)
		return NVME_SC_INVALID_QUEUE_DELETION;
	e->cq[qid] = (struct nvme_cq){ .live = false };
	nvme_doorbell_clear(c, 2 * qid + 1);
	return NVME_SC_SUCCESS;
}

/* ---- Identify ---- */

static void copy_padded(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	memset(dst, ' ', size);
	memcpy(dst, src, n < size ? n : size);
}

static void identify_ctrl(struct nvme_ctrl *c, struct nvme_id_ctrl *id)
{
	size_t sn_len = sizeof(c->serial);

	id->vid = htole16(NVME_VENDOR_ID);
	id->ssvid = htole16(NVME_VENDOR_ID);
	memcpy(id->sn, c->serial, sizeof(id->sn));
	copy_padded(id->mn, NVME_MODEL, sizeof(id->mn));
	copy_padded(id->fr, NVME_FIRMWARE, sizeof(id->fr));
	id->rab = 6;
	id->mdts = NVME_MDTS_LOG2;
	id->ver = htole32(NVME_VS_1_4);
	id->cntrltype = NVME_CTRL_CNTRLTYPE_IO;
	id->acl = 3;				/* 4 Aborts at once (0-based) */
	id->aerl = VFPM_NVME_AER_LIMIT - 1;
	id->frmw = 1u << 1 | 1u;		/* one slot, read-only */
	id->lpa = 1u << 2;			/* extended data: NUMDU and the offset */
	id->elpe = 0;				/* one error log entry */
	id->npss = 0;				/* one power state */
	id->wctemp = htole16(NVME_WCTEMP_K);
	id->cctemp = htole16(NVME_CCTEMP_K);
	id->sqes = NVME_SQES_LOG2 << 4 | NVME_SQES_LOG2;
	id->cqes = NVME_CQES_LOG2 << 4 | NVME_CQES_LOG2;
	id->nn = htole32(1);
	id->oncs = htole16(NVME_CTRL_ONCS_WRITE_ZEROES);
	id->vwc = NVME_CTRL_VWC_PRESENT;
	while (sn_len && c->serial[sn_len - 1] == ' ')
		sn_len--;
	memcpy(id->subnqn, NVME_SUBNQN_PREFIX, strlen(NVME_SUBNQN_PREFIX));
	memcpy(id->subnqn + strlen(NVME_SUBNQN_PREFIX), c->serial, sn_len);
	id->psd[0].mp = htole16(1000);		/* 10 W */
}

static void identify_ns(struct nvme_ctrl *c, struct nvme_id_ns *ns)
{
	ns->nsze = ns->ncap = ns->nuse = htole64(c->nblocks);
	ns->nlbaf = 0;				/* one format (0-based) */
	ns->flbas = 0;
	ns->lbaf[0].lbads = (uint8_t)c->block_shift;
	memcpy(ns->nguid, c->nguid, sizeof(ns->nguid));
	memcpy(ns->eui64, c->eui64, sizeof(ns->eui64));
}

static size_t ns_desc_add(uint8_t *p, uint8_t type, const void *id, uint8_t len)
{
	struct nvme_ns_id_desc d = { .nidt = type, .nidl = len };

	memcpy(p, &d, sizeof(d));
	memcpy(p + sizeof(d), id, len);
	return sizeof(d) + len;
}

static uint16_t identify(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint8_t *page = c->eng.buf;
	uint32_t nsid = le32toh(cmd->nsid);
	size_t at = 0;

	memset(page, 0, NVME_IDENTIFY_SIZE);
	switch (le32toh(cmd->cdw10) & 0xff) {
	case NVME_CNS_NS:
		if (nsid != 1)
			return NVME_SC_INVALID_NS;
		identify_ns(c, (struct nvme_id_ns *)page);
		break;
	case NVME_CNS_CTRL:
		identify_ctrl(c, (struct nvme_id_ctrl *)page);
		break;
	case NVME_CNS_ACTIVE_NS_LIST:
		/* The active namespaces above nsid: ours is 1. */
		if (nsid >= NVME_NSID_ALL - 1)
			return NVME_SC_INVALID_NS;
		if (nsid < 1) {
			uint32_t one = htole32(1);

			memcpy(page, &one, sizeof(one));
		}
		break;
	case NVME_CNS_NS_DESC_LIST:
		if (nsid != 1)
			return NVME_SC_INVALID_NS;
		at += ns_desc_add(page + at, NVME_NIDT_EUI64, c->eui64, sizeof(c->eui64));
		at += ns_desc_add(page + at, NVME_NIDT_NGUID, c->nguid, sizeof(c->nguid));
		ns_desc_add(page + at, NVME_NIDT_UUID, c->uuid, sizeof(c->uuid));
		break;
	default:
		return NVME_SC_INVALID_FIELD;
	}
	return nvme_prp_write(c, le64toh(cmd->prp1), le64toh(cmd->prp2), page, NVME_IDENTIFY_SIZE);
}

/* ---- asynchronous events ---- */

void nvme_aen_raise(struct nvme_ctrl *c, uint32_t event)
{
	struct nvme_engine *e = &c->eng;
	uint32_t type_bit = 1u << (event & 7);

	/* One event of a type until the host reads its log page: the rest coalesce. */
	if ((e->aen_masked & type_bit) || e->nr_aens == NVME_AEN_QUEUE)
		return;
	e->aen_masked |= type_bit;
	e->aens[e->nr_aens++] = event;
}

static uint16_t async_event_request(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	struct nvme_engine *e = &c->eng;

	if (e->nr_aers == VFPM_NVME_AER_LIMIT)
		return NVME_SC_AER_LIMIT;
	/* Kept until an event comes; a controller reset ends it without a completion. */
	e->aer_cids[e->nr_aers++] = cmd->cid;
	return NVME_NO_COMPLETION;
}

/* The composite temperature against its thresholds: SMART critical warning, event. */
static void temperature_check(struct nvme_ctrl *c)
{
	struct nvme_engine *e = &c->eng;
	bool beyond = NVME_TEMPERATURE_K > e->feat.temp_over ||
		      NVME_TEMPERATURE_K < e->feat.temp_under;

	if (!beyond) {
		e->critical_warning &= (uint8_t)~NVME_SMART_CRIT_TEMPERATURE;
		return;
	}
	if (!(e->critical_warning & NVME_SMART_CRIT_TEMPERATURE) &&
	    (e->feat.async_event_cfg & NVME_SMART_CRIT_TEMPERATURE))
		nvme_aen_raise(c, NVME_AEN_DW0(NVME_AEN_TYPE_SMART, NVME_AEN_SMART_TEMPERATURE,
					       NVME_LOG_SMART));
	e->critical_warning |= NVME_SMART_CRIT_TEMPERATURE;
}

/* ---- features ---- */

void nvme_features_default(struct nvme_features *feat)
{
	*feat = (struct nvme_features){
		.temp_over = NVME_WCTEMP_K,
		.write_cache = true,
		.nr_io_sqs = VFPM_NVME_MAX_IO_QUEUES,
		.nr_io_cqs = VFPM_NVME_MAX_IO_QUEUES,
	};
}

static bool io_queues_exist(const struct nvme_engine *e)
{
	for (unsigned int q = 1; q < NVME_NR_QIDS; q++) {
		if (e->sq[q].live || e->cq[q].live)
			return true;
	}
	return false;
}

static uint32_t nr_queues_dw0(const struct nvme_features *feat)
{
	return (uint32_t)(feat->nr_io_cqs - 1) << 16 | (uint32_t)(feat->nr_io_sqs - 1);
}

static uint16_t set_features(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
	struct nvme_features *feat = &c->eng.feat;
	uint32_t cdw10 = le32toh(cmd->cdw10), v = le32toh(cmd->cdw11);

	if (cdw10 & (1u << 31))
		return NVME_SC_FEATURE_NOT_SAVEABLE;
	switch (cdw10 & 0xff) {
	case NVME_FEAT_ARBITRATION:
		feat->arbitration = v & 0xffff0007u;
		break;
	case NVME_FEAT_POWER_MGMT:
		if ((v & 0x1f) != 0)
			return NVME_SC_INVALID_FIELD;	/* power state 0 is the only one */
		feat->power_mgmt = v & 0xff;
		break;
	case NVME_FEAT_TEMP_THRESH: {
		unsigned int tmpsel = (v >> 16) & 0xf, thsel = (v >> 20) & 0x3;

		/* The composite temperature only (0), or every sensor there is (0xf). */
		if ((tmpsel != 0 && tmpsel != 0xf) || thsel > 1)
			return NVME_SC_INVALID_FIELD;
		if (thsel == 0)
			feat->temp_over = (uint16_t)v;
		else
			feat->temp_under = (uint16_t)v;
		temperature_check(c);
		break;
	}
	case NVME_FEAT_ERR_RECOVERY:
		if (v & (1u << 16))
			return NVME_SC_INVALID_FIELD;	/* no deallocated-block errors */
		feat->err_recovery = v & 0xffff;
		break;
	case NVME_FEAT_VOLATILE_WC:
		feat->write_cache = v & 1;
		break;
	case NVME_FEAT_NUM_QUEUES: {
		uint32_t nsqr = v & 0xffff, ncqr = v >> 16;

		if (nsqr == 0xffff || ncqr == 0xffff)
			return NVME_SC_INVALID_FIELD;
		if (io_queues_exist(&c->eng))
			return NVME_SC_CMD_SEQ_ERROR;	/* only before I/O queues exist */
		feat->nr_io_sqs = (uint16_t)(nsqr < VFPM_NVME_MAX_IO_QUEUES ? nsqr + 1
									     : VFPM_NVME_MAX_IO_QUEUES);
		feat->nr_io_cqs = (uint16_t)(ncqr < VFPM_NVME_MAX_IO_QUEUES ? ncqr + 1
									     : VFPM_NVME_MAX_IO_QUEUES);
		*dw0 = nr_queues_dw0(feat);
		break;
	}
	case NVME_FEAT_IRQ_COALESCE:
		feat->irq_coalesce = v & 0xffff;	/* accepted; every completion interrupts */
		break;
	case NVME_FEAT_IRQ_CONFIG:
		if ((v & 0xffff) >= VFPM_NVME_MSIX_VECTORS)
			return NVME_SC_INVALID_FIELD;
		if (v & (1u << 16))
			feat->irq_no_coalesce |= (uint16_t)(1u << (v & 0xffff));
		else
			feat->irq_no_coalesce &= (uint16_t)~(1u << (v & 0xffff));
		break;
	case NVME_FEAT_WRITE_ATOMIC:
		feat->write_atomic = v & 1;
		break;
	case NVME_FEAT_ASYNC_EVENT:
		feat->async_event_cfg = v & 0xff;	/* SMART warnings; no notices (OAES 0) */
		temperature_check(c);
		break;
	default:
		return NVME_SC_INVALID_FIELD;
	}
	return NVME_SC_SUCCESS;
}

static uint16_t get_features(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
	struct nvme_features defaults, *feat = &c->eng.feat;
	uint32_t cdw10 = le32toh(cmd->cdw10), v = le32toh(cmd->cdw11);
	unsigned int sel = (cdw10 >> 8) & 7;

	switch (cdw10 & 0xff) {
	case NVME_FEAT_ARBITRATION: case NVME_FEAT_POWER_MGMT: case NVME_FEAT_TEMP_THRESH:
	case NVME_FEAT_ERR_RECOVERY: case NVME_FEAT_VOLATILE_WC: case NVME_FEAT_NUM_QUEUES:
	case NVME_FEAT_IRQ_COALESCE: case NVME_FEAT_IRQ_CONFIG: case NVME_FEAT_WRITE_ATOMIC:
	case NVME_FEAT_ASYNC_EVENT:
		break;
	default:
		return NVME_SC_INVALID_FIELD;
	}
	/* Select: current, default, saved (nothing is saveable: the default), capabilities. */
	if (sel == 3) {
		*dw0 = 1u << 2;	/* changeable, not saveable, not namespace-specific */
		return NVME_SC_SUCCESS;
	}
	if (sel > 3)
		return NVME_SC_INVALID_FIELD;
	if (sel != 0) {
		nvme_features_default(&defaults);
		feat = &defaults;
	}
	switch (cdw10 & 0xff) {
	case NVME_FEAT_ARBITRATION:
		*dw0 = feat->arbitration;
		break;
	case NVME_FEAT_POWER_MGMT:
		*dw0 = feat->power_mgmt;
		break;
	case NVME_FEAT_TEMP_THRESH:
		if (((v >> 16) & 0xf) != 0 || ((v >> 20) & 0x3) > 1)
			return NVME_SC_INVALID_FIELD;
		*dw0 = ((v >> 20) & 0x3) ? feat->temp_under : feat->temp_over;
		break;
	case NVME_FEAT_ERR_RECOVERY:
		*dw0 = feat->err_recovery;
		break;
	case NVME_FEAT_VOLATILE_WC:
		*dw0 = feat->write_cache;
		break;
	case NVME_FEAT_NUM_QUEUES:
		*dw0 = nr_queues_dw0(feat);
		break;
	case NVME_FEAT_IRQ_COALESCE:
		*dw0 = feat->irq_coalesce;
		break;
	case NVME_FEAT_IRQ_CONFIG:
		if ((v & 0xffff) >= VFPM_NVME_MSIX_VECTORS)
			return NVME_SC_INVALID_FIELD;
		*dw0 = (v & 0xffff) | (uint32_t)((feat->irq_no_coalesce >> (v & 0xffff)) & 1) << 16;
		break;
	case NVME_FEAT_WRITE_ATOMIC:
		*dw0 = feat->write_atomic;
		break;
	case NVME_FEAT_ASYNC_EVENT:
		*dw0 = feat->async_event_cfg;
		break;
	}
	return NVME_SC_SUCCESS;
}

/* ---- log pages ---- */

static void put_le128(uint8_t dst[16], uint64_t v)
{
	uint64_t lo = htole64(v);

	memset(dst, 0, 16);
	memcpy(dst, &lo, sizeof(lo));
}

static uint64_t monotonic_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

static void smart_log(struct nvme_ctrl *c, struct nvme_smart_log *log)
{
	struct nvme_engine *e = &c->eng;

	log->critical_warning = e->critical_warning;
	log->temperature = htole16(NVME_TEMPERATURE_K);
	log->avail_spare = 100;
	log->spare_thresh = 10;
	/* Data units are thousands of 512-byte units, rounded up. */
	put_le128(log->data_units_read, (e->units_read + 999) / 1000);
	put_le128(log->data_units_written, (e->units_written + 999) / 1000);
	put_le128(log->host_reads, e->host_reads);
	put_le128(log->host_writes, e->host_writes);
	put_le128(log->power_cycles, 1);
	put_le128(log->power_on_hours, (monotonic_s() - c->created_s) / 3600);
}

static uint16_t get_log_page(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	struct nvme_engine *e = &c->eng;
	uint32_t cdw10 = le32toh(cmd->cdw10), nsid = le32toh(cmd->nsid);
	uint64_t numd = ((uint64_t)(le32toh(cmd->cdw11) & 0xffff) << 16 | cdw10 >> 16) + 1;
	uint64_t len = numd * 4, offset = le32toh(cmd->cdw12) | (uint64_t)le32toh(cmd->cdw13) << 32;
	bool retain = cdw10 & (1u << 15);
	union {
		struct nvme_error_log_entry error;
		struct nvme_smart_log smart;
		struct nvme_fw_slot_log fw;
	} log;
	size_t size;
	unsigned int unmask = 0;
	uint16_t status;

	memset(&log, 0, sizeof(log));
	switch (cdw10 & 0xff) {
	case NVME_LOG_ERROR:
		/* No error is ever logged: one entry, its error count 0 (invalid). */
		size = sizeof(log.error);
		unmask = 1u << NVME_AEN_TYPE_ERROR;
		break;
	case NVME_LOG_SMART:
		if (nsid != 0 && nsid != NVME_NSID_ALL)
			return NVME_SC_INVALID_FIELD;	/* LPA: no per-namespace SMART */
		smart_log(c, &log.smart);
		size = sizeof(log.smart);
		unmask = 1u << NVME_AEN_TYPE_SMART;
		break;
	case NVME_LOG_FW_SLOT:
		log.fw.afi = 1;
		copy_padded(log.fw.frs[0], NVME_FIRMWARE, sizeof(log.fw.frs[0]));
		size = sizeof(log.fw);
		break;
	default:
		return NVME_SC_INVALID_LOG_PAGE;
	}
	if (len > VFPM_NVME_MAX_TRANSFER || (offset & 3) || offset >= size)
		return NVME_SC_INVALID_FIELD;
	/* Past the log's end the host reads zeros. */
	memset(e->buf, 0, len);
	memcpy(e->buf, (uint8_t *)&log + offset,
	       len < size - offset ? len : size - offset);
	status = nvme_prp_write(c, le64toh(cmd->prp1), le64toh(cmd->prp2), e->buf, (uint32_t)len);
	if (!status && !retain)
		e->aen_masked &= ~unmask;
	return status;
}

/* ---- dispatch ---- */

uint16_t nvme_admin_exec(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint32_t *dw0)
{
	switch (cmd->opcode) {
	case NVME_ADMIN_DELETE_SQ:
		return delete_sq(c, cmd);
	case NVME_ADMIN_CREATE_SQ:
		return create_sq(c, cmd);
	case NVME_ADMIN_GET_LOG_PAGE:
		return get_log_page(c, cmd);
	case NVME_ADMIN_DELETE_CQ:
		return delete_cq(c, cmd);
	case NVME_ADMIN_CREATE_CQ:
		return create_cq(c, cmd);
	case NVME_ADMIN_IDENTIFY:
		return identify(c, cmd);
	case NVME_ADMIN_ABORT:
		*dw0 = 1;	/* not aborted: every command completes as soon as it is fetched */
		return NVME_SC_SUCCESS;
	case NVME_ADMIN_SET_FEATURES:
		return set_features(c, cmd, dw0);
	case NVME_ADMIN_GET_FEATURES:
		return get_features(c, cmd, dw0);
	case NVME_ADMIN_ASYNC_EVENT:
		return async_event_request(c, cmd);
	default:
		return NVME_SC_INVALID_OPCODE;
	}
}
