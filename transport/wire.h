/* SPDX-License-Identifier: MIT */
/*
 * vfio-user wire format (QEMU's docs/interop/vfio-user.rst), private to the
 * transport and the socket client, which are the two ends of the same wire.
 *
 * The specification says "the endianness of the host system" and the vfpm
 * design says little-endian; the two agree on little-endian hosts only, so
 * building for a big-endian host is refused rather than silently speaking a
 * different protocol.  Every struct is packed and its size checked.
 */
#ifndef VFPM_TRANSPORT_WIRE_H
#define VFPM_TRANSPORT_WIRE_H

#include <stddef.h>
#include <stdint.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "vfio-user messages are little-endian; big-endian hosts are not supported");

#define VFIO_USER_MAJOR 0
#define VFIO_USER_MINOR 1

enum vfio_user_command {
	VFIO_USER_VERSION = 1,
	VFIO_USER_DMA_MAP = 2,
	VFIO_USER_DMA_UNMAP = 3,
	VFIO_USER_DEVICE_GET_INFO = 4,
	VFIO_USER_DEVICE_GET_REGION_INFO = 5,
	VFIO_USER_DEVICE_GET_REGION_IO_FDS = 6,
	VFIO_USER_DEVICE_GET_IRQ_INFO = 7,
	VFIO_USER_DEVICE_SET_IRQS = 8,
	VFIO_USER_REGION_READ = 9,
	VFIO_USER_REGION_WRITE = 10,
	VFIO_USER_DMA_READ = 11,	/* server -> client */
	VFIO_USER_DMA_WRITE = 12,	/* server -> client */
	VFIO_USER_DEVICE_RESET = 13,
	/* 14 is unassigned in the specification. */
	VFIO_USER_REGION_WRITE_MULTI = 15,
	VFIO_USER_DEVICE_FEATURE = 16,
	VFIO_USER_MIG_DATA_READ = 17,
	VFIO_USER_MIG_DATA_WRITE = 18,
	/*
	 * vfpm's extension (docs/vfio-user-power.md): the device's power state,
	 * answered without waking the device.  Far from the specification's
	 * numbers so that a future command cannot collide with it.
	 */
	VFPM_USER_POWER_STATUS = 0x7f01,
};

/* Header flags. */
#define VFIO_USER_F_TYPE_MASK 0xfu
#define VFIO_USER_F_TYPE_COMMAND 0x0u
#define VFIO_USER_F_TYPE_REPLY 0x1u
#define VFIO_USER_F_NO_REPLY (1u << 4)
#define VFIO_USER_F_ERROR (1u << 5)

struct vfio_user_header {
	uint16_t msg_id;
	uint16_t command;
	uint32_t msg_size;	/* whole message, header included */
	uint32_t flags;
	uint32_t error_no;	/* positive errno in an error reply */
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_header) == 16, "vfio-user header");

#define VFIO_USER_HDR_SIZE sizeof(struct vfio_user_header)

/* VERSION: followed by optional NUL-terminated JSON. */
struct vfio_user_version {
	uint16_t major;
	uint16_t minor;
	char data[];
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_version) == 4, "vfio-user version");

/* Capability defaults when the peer does not state them. */
#define VFIO_USER_DEF_MAX_MSG_FDS 1u
#define VFIO_USER_DEF_MAX_DATA_XFER (1u << 20)
#define VFIO_USER_DEF_MAX_DMA_MAPS 65535u
#define VFIO_USER_DEF_PGSIZES 4096u

/* DMA_MAP: the fd (if any) travels by SCM_RIGHTS; no reply payload. */
#define VFIO_USER_DMA_F_READ (1u << 0)
#define VFIO_USER_DMA_F_WRITE (1u << 1)
struct vfio_user_dma_map {
	uint32_t argsz;
	uint32_t flags;
	uint64_t offset;	/* file offset in the fd */
	uint64_t addr;
	uint64_t size;
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_dma_map) == 32, "vfio-user dma map");

/* DMA_UNMAP: the reply echoes this struct. */
struct vfio_user_dma_unmap {
	uint32_t argsz;
	uint32_t flags;		/* unused in this version: must be 0 */
	uint64_t addr;
	uint64_t size;
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_dma_unmap) == 24, "vfio-user dma unmap");

/* DEVICE_GET_INFO: the first 16 bytes of struct vfio_device_info. */
struct vfio_user_device_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t num_regions;
	uint32_t num_irqs;
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_device_info) == 16, "vfio-user device info");

/* DEVICE_GET_REGION_INFO: struct vfio_region_info, then capabilities. */
struct vfio_user_region_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t cap_offset;
	uint64_t size;
	uint64_t offset;
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_region_info) == 32, "vfio-user region info");

/* DEVICE_GET_IRQ_INFO: struct vfio_irq_info. */
struct vfio_user_irq_info {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t count;
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_irq_info) == 16, "vfio-user irq info");

/*
 * DEVICE_SET_IRQS: struct vfio_irq_set.  DATA_BOOL carries count bytes after
 * it; DATA_EVENTFD carries nothing, the eventfds travel by SCM_RIGHTS (none:
 * de-assign).
 */
struct vfio_user_irq_set {
	uint32_t argsz;
	uint32_t flags;
	uint32_t index;
	uint32_t start;
	uint32_t count;
	uint8_t data[];
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_irq_set) == 20, "vfio-user irq set");

/* REGION_READ / REGION_WRITE: request and reply share this header. */
struct vfio_user_region_access {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	uint8_t data[];
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_region_access) == 16, "vfio-user region access");

/*
 * DMA_READ / DMA_WRITE (server -> client).  The specification's DMA_WRITE
 * reply table gives count 4 bytes, unlike every other table; a reader accepts
 * a 12- or 16-byte DMA_WRITE reply.
 */
struct vfio_user_dma_access {
	uint64_t addr;
	uint64_t count;
	uint8_t data[];
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_dma_access) == 16, "vfio-user dma access");

/* REGION_WRITE_MULTI: wr_cnt, then wr_cnt fixed-size writes of at most 8 bytes. */
#define VFIO_USER_MULTI_DATA 8
#define VFIO_USER_MULTI_MAX 2048
struct vfio_user_write_multi_hdr {
	uint64_t wr_cnt;
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_write_multi_hdr) == 8, "vfio-user write multi");

struct vfio_user_write_multi_entry {
	uint64_t offset;
	uint32_t region;
	uint32_t count;
	uint8_t data[VFIO_USER_MULTI_DATA];
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_write_multi_entry) == 24, "vfio-user write multi entry");

/* DEVICE_FEATURE: struct vfio_device_feature, then the feature's data. */
struct vfio_user_device_feature {
	uint32_t argsz;
	uint32_t flags;
	uint8_t data[];
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_device_feature) == 8, "vfio-user device feature");

/*
 * Feature 4's data (struct vfio_device_low_power_entry_with_wakeup): over
 * vfio-user, wakeup_eventfd is the index of the eventfd among the message's
 * SCM_RIGHTS fds (docs/vfio-user-power.md).
 */
struct vfio_user_low_power_entry_with_wakeup {
	int32_t wakeup_eventfd;
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct vfio_user_low_power_entry_with_wakeup) == 8,
	       "vfio-user low power entry with wakeup");

/*
 * Room for the fixed part of any message next to max_data_xfer_size bytes of
 * data: a message larger than max_data_xfer_size + VFIO_USER_MSG_SLACK is a
 * lie about its size.
 */
/* VFPM_USER_POWER_STATUS reply (the request has no payload). */
#define VFPM_USER_POWER_F_RUNTIME_PM (1u << 0)
#define VFPM_USER_POWER_F_LOW_POWER (1u << 1)
#define VFPM_USER_POWER_F_WAKEUP_ARMED (1u << 2)
struct vfpm_user_power_status {
	uint32_t runtime_status;	/* 0 active, 1 resuming, 2 suspended, 3 suspending */
	int32_t usage_count;
	uint32_t flags;			/* VFPM_USER_POWER_F_* */
	uint32_t reserved;
	uint64_t suspends;
	uint64_t resumes;
} __attribute__((packed));
_Static_assert(sizeof(struct vfpm_user_power_status) == 32, "power status");

#define VFIO_USER_MSG_SLACK 4096u

#endif /* VFPM_TRANSPORT_WIRE_H */
