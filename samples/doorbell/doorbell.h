/* SPDX-License-Identifier: MIT */
/*
 * The doorbell device's interface: what a driver (here check.c) programs.
 *
 * BAR0, 8 KiB:
 *   0x000 ID        ro  DB_ID
 *   0x008 DESC_LO   rw  the descriptor's DMA address, low dword
 *   0x00c DESC_HI   rw  high dword
 *   0x010 DONE      ro  descriptors served since reset
 *   0x014 STATUS    ro  the last one's DB_STATUS_*
 *   0x1000 DOORBELL     memory the VMM maps: write a new value to ring
 * Vendor capability (8 bytes): byte 3 the version, dword 1 the poll interval
 * in microseconds (writable; 0 is the default).
 * MSI-X (BAR4), vector 0: a descriptor was served.
 */
#ifndef DOORBELL_H
#define DOORBELL_H

#include <stdbool.h>
#include <stdint.h>

#include <vfpm/pci.h>

#define DB_VENDOR_ID 0x1b36
#define DB_DEVICE_ID 0x00fd
#define DB_ID 0xdb000001u
#define DB_BAR0_SIZE 0x2000u
#define DB_REG_ID 0x00
#define DB_REG_DESC_LO 0x08
#define DB_REG_DESC_HI 0x0c
#define DB_REG_DONE 0x10
#define DB_REG_STATUS 0x14
#define DB_DOORBELL 0x1000u
#define DB_CAP_VERSION 1
#define DB_CAP_POLL_US 4
#define DB_DEFAULT_POLL_US 100u
#define DB_MAX_LEN (1u << 20)

enum {
	DB_STATUS_OK = 1,
	DB_STATUS_DMA_ERROR = 2,
	DB_STATUS_TOO_LONG = 3,
};

/* In guest memory, little-endian. */
struct db_descriptor {
	uint64_t data;		/* DMA address of the bytes to sum */
	uint32_t len;
	uint32_t sum;		/* written by the device */
	uint32_t flags;		/* DB_DESC_DONE set by the device */
	uint32_t reserved;
};
#define DB_DESC_DONE 1u
_Static_assert(sizeof(struct db_descriptor) == 24, "descriptor layout");

int db_create(struct vfpm_pci_dev **out);
void db_destroy(struct vfpm_pci_dev *pdev);
/* The polling thread runs (the device is awake). */
bool db_poller_running(struct vfpm_pci_dev *pdev);

/* check.c: drive the device at path as a client; 0 when all is as it should be. */
int db_check(const char *path, struct vfpm_pci_dev *pdev);

#endif /* DOORBELL_H */
