/* SPDX-License-Identifier: MIT */
/*
 * The parts of the NVM Express 1.4 base specification this controller
 * speaks: register offsets and fields, the submission and completion queue
 * entries, status codes, opcodes, feature and log page identifiers, and the
 * data structures that Identify and Get Log Page return.  Written from the
 * specification's figures; every structure is the wire layout, little-endian
 * (fields are filled with htole and read with letoh), its size checked.
 */
#ifndef VFPM_NVME_SPEC_H
#define VFPM_NVME_SPEC_H

#include <stddef.h>
#include <stdint.h>

/* ---- controller registers (BAR0), section 3.1 ---- */

#define NVME_REG_CAP 0x00	/* 64-bit: controller capabilities */
#define NVME_REG_VS 0x08	/* version */
#define NVME_REG_INTMS 0x0c	/* interrupt mask set (RW1S) */
#define NVME_REG_INTMC 0x10	/* interrupt mask clear (RW1C) */
#define NVME_REG_CC 0x14	/* controller configuration */
#define NVME_REG_CSTS 0x1c	/* controller status */
#define NVME_REG_NSSR 0x20	/* NVM subsystem reset (not supported: reads 0) */
#define NVME_REG_AQA 0x24	/* admin queue attributes */
#define NVME_REG_ASQ 0x28	/* 64-bit: admin submission queue base */
#define NVME_REG_ACQ 0x30	/* 64-bit: admin completion queue base */
#define NVME_REG_END 0x38	/* CMBLOC and after: no CMB, no boot partitions, no PMR */
#define NVME_REG_DBS 0x1000	/* doorbells: SQ y tail at DBS + 8y, CQ y head at DBS + 8y + 4 */

#define NVME_CAP_MQES(x) ((uint64_t)(x) << 0)		/* max queue entries, 0-based */
#define NVME_CAP_CQR (1ull << 16)			/* contiguous queues required */
#define NVME_CAP_TO(x) ((uint64_t)(x) << 24)		/* ready timeout, 500 ms units */
#define NVME_CAP_CSS_NVM (1ull << 37)			/* NVM command set */
#define NVME_CAP_MPSMIN(x) ((uint64_t)(x) << 48)	/* 2^(12 + x) bytes */
#define NVME_CAP_MPSMAX(x) ((uint64_t)(x) << 52)

#define NVME_VS_1_4 0x00010400u

#define NVME_CC_EN (1u << 0)
#define NVME_CC_CSS(cc) (((cc) >> 4) & 0x7)
#define NVME_CC_MPS(cc) (((cc) >> 7) & 0xf)
#define NVME_CC_AMS(cc) (((cc) >> 11) & 0x7)
#define NVME_CC_SHN(cc) (((cc) >> 14) & 0x3)
#define NVME_CC_IOSQES(cc) (((cc) >> 16) & 0xf)
#define NVME_CC_IOCQES(cc) (((cc) >> 20) & 0xf)
#define NVME_CC_WRITABLE 0x00fffff1u	/* EN, CSS, MPS, AMS, SHN, IOSQES, IOCQES */

#define NVME_CSTS_RDY (1u << 0)
#define NVME_CSTS_CFS (1u << 1)
#define NVME_CSTS_SHST_MASK (3u << 2)
#define NVME_CSTS_SHST_OCCURRING (1u << 2)
#define NVME_CSTS_SHST_COMPLETE (2u << 2)

#define NVME_AQA_ASQS(aqa) ((aqa) & 0xfff)		/* 0-based */
#define NVME_AQA_ACQS(aqa) (((aqa) >> 16) & 0xfff)
#define NVME_AQA_WRITABLE 0x0fff0fffu

/* ---- queue entries, section 4.2 and 4.6 ---- */

struct nvme_sqe {
	uint8_t opcode;
	uint8_t flags;		/* FUSE 1:0, PSDT 7:6 */
	uint16_t cid;
	uint32_t nsid;
	uint32_t cdw2, cdw3;
	uint64_t mptr;
	uint64_t prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_sqe) == 64, "NVMe SQE is 64 bytes");
_Static_assert(offsetof(struct nvme_sqe, prp1) == 24, "PRP1 at byte 24");
_Static_assert(offsetof(struct nvme_sqe, cdw10) == 40, "CDW10 at byte 40");

#define NVME_SQE_FUSE(flags) ((flags) & 0x3)
#define NVME_SQE_PSDT(flags) (((flags) >> 6) & 0x3)

struct nvme_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;	/* phase tag in bit 0, the status field in 15:1 */
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_cqe) == 16, "NVMe CQE is 16 bytes");

#define NVME_SQES_LOG2 6
#define NVME_CQES_LOG2 4

/* ---- status field: SC 7:0, SCT 10:8, DNR 14 (bit 1 upwards of the CQE's status) ---- */

#define NVME_SCT_GENERIC 0x0
#define NVME_SCT_COMMAND 0x1
#define NVME_SCT_MEDIA 0x2
#define NVME_STATUS(sct, sc) ((uint16_t)(((sct) << 8) | (sc)))
#define NVME_STATUS_DNR (1u << 14)

enum {
	NVME_SC_SUCCESS = NVME_STATUS(NVME_SCT_GENERIC, 0x00),
	NVME_SC_INVALID_OPCODE = NVME_STATUS(NVME_SCT_GENERIC, 0x01),
	NVME_SC_INVALID_FIELD = NVME_STATUS(NVME_SCT_GENERIC, 0x02),
	NVME_SC_DATA_XFER_ERROR = NVME_STATUS(NVME_SCT_GENERIC, 0x04),
	NVME_SC_INTERNAL = NVME_STATUS(NVME_SCT_GENERIC, 0x06),
	NVME_SC_INVALID_NS = NVME_STATUS(NVME_SCT_GENERIC, 0x0b),
	NVME_SC_CMD_SEQ_ERROR = NVME_STATUS(NVME_SCT_GENERIC, 0x0c),
	NVME_SC_PRP_OFFSET_INVALID = NVME_STATUS(NVME_SCT_GENERIC, 0x13),
	NVME_SC_LBA_RANGE = NVME_STATUS(NVME_SCT_GENERIC, 0x80),
	NVME_SC_CQ_INVALID = NVME_STATUS(NVME_SCT_COMMAND, 0x00),
	NVME_SC_QID_INVALID = NVME_STATUS(NVME_SCT_COMMAND, 0x01),
	NVME_SC_QUEUE_SIZE = NVME_STATUS(NVME_SCT_COMMAND, 0x02),
	NVME_SC_AER_LIMIT = NVME_STATUS(NVME_SCT_COMMAND, 0x05),
	NVME_SC_INVALID_VECTOR = NVME_STATUS(NVME_SCT_COMMAND, 0x08),
	NVME_SC_INVALID_LOG_PAGE = NVME_STATUS(NVME_SCT_COMMAND, 0x09),
	NVME_SC_INVALID_QUEUE_DELETION = NVME_STATUS(NVME_SCT_COMMAND, 0x0c),
	NVME_SC_FEATURE_NOT_SAVEABLE = NVME_STATUS(NVME_SCT_COMMAND, 0x0d),
	NVME_SC_WRITE_FAULT = NVME_STATUS(NVME_SCT_MEDIA, 0x80),
	NVME_SC_UNRECOVERED_READ = NVME_STATUS(NVME_SCT_MEDIA, 0x81),
};

/* ---- opcodes ---- */

enum nvme_admin_opcode {
	NVME_ADMIN_DELETE_SQ = 0x00,
	NVME_ADMIN_CREATE_SQ = 0x01,
	NVME_ADMIN_GET_LOG_PAGE = 0x02,
	NVME_ADMIN_DELETE_CQ = 0x04,
	NVME_ADMIN_CREATE_CQ = 0x05,
	NVME_ADMIN_IDENTIFY = 0x06,
	NVME_ADMIN_ABORT = 0x08,
	NVME_ADMIN_SET_FEATURES = 0x09,
	NVME_ADMIN_GET_FEATURES = 0x0a,
	NVME_ADMIN_ASYNC_EVENT = 0x0c,
};

enum nvme_io_opcode {
	NVME_IO_FLUSH = 0x00,
	NVME_IO_WRITE = 0x01,
	NVME_IO_READ = 0x02,
	NVME_IO_WRITE_ZEROES = 0x08,
};

/* Create I/O queues: CDW11 bits. */
#define NVME_QUEUE_PC (1u << 0)		/* physically contiguous */
#define NVME_CQ_IEN (1u << 1)		/* interrupts enabled */

/* Read / Write / Write Zeroes: CDW12 bits. */
#define NVME_RW_NLB(cdw12) ((cdw12) & 0xffff)	/* 0-based */
#define NVME_RW_FUA (1u << 30)

/* ---- Identify, section 5.15 ---- */

enum nvme_identify_cns {
	NVME_CNS_NS = 0x00,
	NVME_CNS_CTRL = 0x01,
	NVME_CNS_ACTIVE_NS_LIST = 0x02,
	NVME_CNS_NS_DESC_LIST = 0x03,
};

#define NVME_IDENTIFY_SIZE 4096

struct nvme_power_state {
	uint16_t mp;		/* maximum power, centiwatts */
	uint8_t rsvd2;
	uint8_t flags;		/* MXPS bit 0, NOPS bit 1 */
	uint32_t enlat, exlat;	/* microseconds */
	uint8_t rrt, rrl, rwt, rwl;
	uint16_t idlp;
	uint8_t ips;
	uint8_t rsvd19;
	uint16_t actp;
	uint8_t apw_aps;
	uint8_t rsvd23[9];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_power_state) == 32, "power state descriptor is 32 bytes");

struct nvme_id_ctrl {
	uint16_t vid, ssvid;
	char sn[20], mn[40], fr[8];
	uint8_t rab;
	uint8_t ieee[3];
	uint8_t cmic, mdts;
	uint16_t cntlid;
	uint32_t ver, rtd3r, rtd3e, oaes, ctratt;
	uint16_t rrls;
	uint8_t rsvd102[9];
	uint8_t cntrltype;
	uint8_t fguid[16];
	uint16_t crdt1, crdt2, crdt3;
	uint8_t rsvd134[106];
	uint8_t nvme_mi[16];
	uint16_t oacs;
	uint8_t acl, aerl, frmw, lpa, elpe, npss, avscc, apsta;
	uint16_t wctemp, cctemp, mtfa;
	uint32_t hmpre, hmmin;
	uint8_t tnvmcap[16], unvmcap[16];
	uint32_t rpmbs;
	uint16_t edstt;
	uint8_t dsto, fwug;
	uint16_t kas, hctma, mntmt, mxtmt;
	uint32_t sanicap, hmminds;
	uint16_t hmmaxd, nsetidmax, endgidmax;
	uint8_t anatt, anacap;
	uint32_t anagrpmax, nanagrpid, pels;
	uint8_t rsvd356[156];
	uint8_t sqes, cqes;
	uint16_t maxcmd;
	uint32_t nn;
	uint16_t oncs, fuses;
	uint8_t fna, vwc;
	uint16_t awun, awupf;
	uint8_t nvscc, nwpc;
	uint16_t acwu;
	uint8_t rsvd534[2];
	uint32_t sgls, mnan;
	uint8_t rsvd544[224];
	char subnqn[256];
	uint8_t rsvd1024[768];
	uint8_t nvmeof[256];
	struct nvme_power_state psd[32];
	uint8_t vs[1024];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_id_ctrl) == NVME_IDENTIFY_SIZE, "Identify Controller is 4 KiB");
_Static_assert(offsetof(struct nvme_id_ctrl, cntrltype) == 111, "CNTRLTYPE at byte 111");
_Static_assert(offsetof(struct nvme_id_ctrl, oacs) == 256, "OACS at byte 256");
_Static_assert(offsetof(struct nvme_id_ctrl, pels) == 352, "PELS at byte 352");
_Static_assert(offsetof(struct nvme_id_ctrl, sqes) == 512, "SQES at byte 512");
_Static_assert(offsetof(struct nvme_id_ctrl, sgls) == 536, "SGLS at byte 536");
_Static_assert(offsetof(struct nvme_id_ctrl, subnqn) == 768, "SUBNQN at byte 768");
_Static_assert(offsetof(struct nvme_id_ctrl, psd) == 2048, "PSD0 at byte 2048");

#define NVME_CTRL_ONCS_WRITE_ZEROES (1u << 3)
#define NVME_CTRL_VWC_PRESENT (1u << 0)
#define NVME_CTRL_CNTRLTYPE_IO 1

struct nvme_lbaf {
	uint16_t ms;		/* metadata bytes per block */
	uint8_t lbads;		/* log2 of the block size */
	uint8_t rp;
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_lbaf) == 4, "LBA format is 4 bytes");

struct nvme_id_ns {
	uint64_t nsze, ncap, nuse;
	uint8_t nsfeat, nlbaf, flbas, mc, dpc, dps, nmic, rescap, fpi, dlfeat;
	uint16_t nawun, nawupf, nacwu, nabsn, nabo, nabspf, noiob;
	uint8_t nvmcap[16];
	uint16_t npwg, npwa, npdg, npda, nows;
	uint8_t rsvd74[18];
	uint32_t anagrpid;
	uint8_t rsvd96[3];
	uint8_t nsattr;
	uint16_t nvmsetid, endgid;
	uint8_t nguid[16];
	uint8_t eui64[8];
	struct nvme_lbaf lbaf[16];
	uint8_t rsvd192[192];
	uint8_t vs[3712];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_id_ns) == NVME_IDENTIFY_SIZE, "Identify Namespace is 4 KiB");
_Static_assert(offsetof(struct nvme_id_ns, nvmcap) == 48, "NVMCAP at byte 48");
_Static_assert(offsetof(struct nvme_id_ns, anagrpid) == 92, "ANAGRPID at byte 92");
_Static_assert(offsetof(struct nvme_id_ns, nguid) == 104, "NGUID at byte 104");
_Static_assert(offsetof(struct nvme_id_ns, lbaf) == 128, "LBAF0 at byte 128");

/* Namespace Identification Descriptor (CNS 03h): a header, then NIDL bytes. */
struct nvme_ns_id_desc {
	uint8_t nidt, nidl;
	uint8_t rsvd[2];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_ns_id_desc) == 4, "descriptor header is 4 bytes");

#define NVME_NIDT_EUI64 1	/* 8 bytes */
#define NVME_NIDT_NGUID 2	/* 16 bytes */
#define NVME_NIDT_UUID 3	/* 16 bytes */

/* ---- Get Log Page, section 5.14 ---- */

enum nvme_log_id {
	NVME_LOG_ERROR = 0x01,
	NVME_LOG_SMART = 0x02,
	NVME_LOG_FW_SLOT = 0x03,
};

struct nvme_error_log_entry {
	uint64_t error_count;
	uint16_t sqid, cid, status, param_error_location;
	uint64_t lba;
	uint32_t nsid;
	uint8_t vs_info, trtype;
	uint8_t rsvd30[2];
	uint64_t cs_info;
	uint16_t trtype_info;
	uint8_t rsvd42[22];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_error_log_entry) == 64, "error log entry is 64 bytes");

struct nvme_smart_log {
	uint8_t critical_warning;
	uint16_t temperature;		/* kelvin */
	uint8_t avail_spare, spare_thresh, percent_used, endu_grp_crit_warn;
	uint8_t rsvd7[25];
	uint8_t data_units_read[16];	/* 128-bit counters, little-endian */
	uint8_t data_units_written[16];
	uint8_t host_reads[16];
	uint8_t host_writes[16];
	uint8_t ctrl_busy_time[16];
	uint8_t power_cycles[16];
	uint8_t power_on_hours[16];
	uint8_t unsafe_shutdowns[16];
	uint8_t media_errors[16];
	uint8_t num_err_log_entries[16];
	uint32_t warning_temp_time, critical_comp_time;
	uint16_t temp_sensor[8];
	uint32_t thm_temp1_trans_count, thm_temp2_trans_count;
	uint32_t thm_temp1_total_time, thm_temp2_total_time;
	uint8_t rsvd232[280];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_smart_log) == 512, "SMART / Health log is 512 bytes");
_Static_assert(offsetof(struct nvme_smart_log, data_units_read) == 32, "data units read at 32");
_Static_assert(offsetof(struct nvme_smart_log, temp_sensor) == 200, "sensors at 200");

#define NVME_SMART_CRIT_TEMPERATURE (1u << 1)

struct nvme_fw_slot_log {
	uint8_t afi;			/* active slot in 2:0 */
	uint8_t rsvd1[7];
	char frs[7][8];
	uint8_t rsvd64[448];
} __attribute__((packed));
_Static_assert(sizeof(struct nvme_fw_slot_log) == 512, "firmware slot log is 512 bytes");

/* ---- features, section 5.21.1 ---- */

enum nvme_feature_id {
	NVME_FEAT_ARBITRATION = 0x01,
	NVME_FEAT_POWER_MGMT = 0x02,
	NVME_FEAT_TEMP_THRESH = 0x04,
	NVME_FEAT_ERR_RECOVERY = 0x05,
	NVME_FEAT_VOLATILE_WC = 0x06,
	NVME_FEAT_NUM_QUEUES = 0x07,
	NVME_FEAT_IRQ_COALESCE = 0x08,
	NVME_FEAT_IRQ_CONFIG = 0x09,
	NVME_FEAT_WRITE_ATOMIC = 0x0a,
	NVME_FEAT_ASYNC_EVENT = 0x0b,
};

/* ---- asynchronous events, section 5.2 ---- */

enum nvme_aen_type {
	NVME_AEN_TYPE_ERROR = 0,
	NVME_AEN_TYPE_SMART = 1,
};

#define NVME_AEN_ERR_INVALID_DB_VALUE 0x01
#define NVME_AEN_SMART_TEMPERATURE 0x01
/* The completion's DW0: type 2:0, information 15:8, the log page to read 23:16. */
#define NVME_AEN_DW0(type, info, lid) ((uint32_t)(type) | (uint32_t)(info) << 8 | \
				       (uint32_t)(lid) << 16)

#endif /* VFPM_NVME_SPEC_H */
