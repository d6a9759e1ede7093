/* SPDX-License-Identifier: MIT */
/*
 * vfpm sample device models (layer 4), built on <vfpm/pci.h>.
 *
 * memory  - BAR0: 64 KiB of RAM the user may mmap; BAR2: 4 KiB of trapped
 *           registers (scratch space, a doorbell that raises an interrupt,
 *           and a deliberately slow register, to hold a request in flight);
 *           PM capability, INTx, MSI-X (4 vectors, table in BAR4).
 * optout  - the memory device with runtime PM refused: it takes a runtime PM
 *           reference when it is opened, so it never suspends while open
 *           (the low-power features still answer as the kernel does).
 * poller  - the reason vfpm exists: while ACTIVE a backend thread busy-polls
 *           a doorbell in BAR0 (as SPDK-style emulators do) and moves bytes
 *           between two rings in BAR0 and a backend UNIX socket the device
 *           listens on.  In runtime suspend the thread stops and a watcher
 *           sleeps in poll(2) on the backend; data arriving there is a wake
 *           event (like PME): the device resumes, the user's wakeup eventfd
 *           fires, and the data reaches the RX ring.
 *
 * Poller BAR0 layout (little-endian u32 registers, free-running byte counts):
 *   0x00 magic "VFPM"   0x04 ring size (bytes)
 *   0x08 tx_prod (user) 0x0c tx_cons (device)  TX ring: user -> backend
 *   0x10 rx_prod (dev)  0x14 rx_cons (user)    RX ring: backend -> user
 *   0x18 irq_enable (user: nonzero raises MSI-X vector 0 when RX data lands)
 *   0x1000 TX ring, 0x1000 + ring size: RX ring
 */
#ifndef VFPM_DEVICES_H
#define VFPM_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include <vfpm/pci.h>

#ifdef __cplusplus
extern "C" {
#endif

/* memory / optout */
#define VFPM_MEMDEV_BAR0_SIZE (64u * 1024)
#define VFPM_MEMDEV_BAR2_SIZE 4096u
/* BAR2 registers */
#define VFPM_MEMDEV_REG_ID 0x00		/* RO: 0x4d454d30 "MEM0" */
#define VFPM_MEMDEV_REG_DOORBELL 0x04	/* WO: 1 = INTx, 2 + n = MSI-X vector n */
#define VFPM_MEMDEV_REG_DELAY_MS 0x08	/* RW: how long a read of REG_SLOW takes (max 10000) */
#define VFPM_MEMDEV_REG_SLOW 0x0c	/* RO: a read waits DELAY_MS, then returns how many came before */
#define VFPM_MEMDEV_MAX_DELAY_MS 10000u
/*
 * A DMA engine between BAR0 and the user's memory (the guest's RAM), run on
 * a thread of its own after the register write that starts it returns:
 * write the address, length and BAR0 offset, then the command; poll the
 * status (or take MSI-X vector 0 when bit 31 of the command asks for it).
 * Bus Master Enable must be on.
 */
#define VFPM_MEMDEV_REG_DMA_ADDR 0x20	/* RW: 64-bit DMA address (0x20 low, 0x24 high) */
#define VFPM_MEMDEV_REG_DMA_LEN 0x28	/* RW: bytes, at most the rest of BAR0 */
#define VFPM_MEMDEV_REG_DMA_OFF 0x2c	/* RW: offset in BAR0 */
#define VFPM_MEMDEV_REG_DMA_CMD 0x30	/* WO: 1 user memory -> BAR0, 2 BAR0 -> user memory */
#define VFPM_MEMDEV_DMA_TO_BAR 1u
#define VFPM_MEMDEV_DMA_FROM_BAR 2u
#define VFPM_MEMDEV_DMA_IRQ (1u << 31)	/* with the command: MSI-X vector 0 when done */
#define VFPM_MEMDEV_REG_DMA_STATUS 0x34	/* RO: 0 done, 1 busy, or a negative errno */
#define VFPM_MEMDEV_REG_DMA_COUNT 0x38	/* RO: transfers completed */
#define VFPM_MEMDEV_DMA_BUSY 1u
#define VFPM_MEMDEV_REG_SCRATCH 0x100	/* RW: 0x100 .. end */

int vfpm_memdev_create(bool optout, struct vfpm_pci_dev **out);
void vfpm_memdev_destroy(struct vfpm_pci_dev *pdev);

/* poller */
#define VFPM_POLLER_MAGIC 0x4d504656u	/* "VFPM" */
#define VFPM_POLLER_REG_MAGIC 0x00
#define VFPM_POLLER_REG_RING_SIZE 0x04
#define VFPM_POLLER_REG_TX_PROD 0x08
#define VFPM_POLLER_REG_TX_CONS 0x0c
#define VFPM_POLLER_REG_RX_PROD 0x10
#define VFPM_POLLER_REG_RX_CONS 0x14
#define VFPM_POLLER_REG_IRQ_ENABLE 0x18
#define VFPM_POLLER_TX_RING 0x1000u
#define VFPM_POLLER_RING_SIZE 16384u
#define VFPM_POLLER_RX_RING (VFPM_POLLER_TX_RING + VFPM_POLLER_RING_SIZE)
#define VFPM_POLLER_BAR0_SIZE (64u * 1024)

struct vfpm_poller_opts {
	/* The backend: a UNIX stream socket the device listens on (one peer at a time). */
	const char *backend_path;
};

struct vfpm_poller_stats {
	uint64_t polls;		/* passes of the polling loop */
	uint64_t tx_bytes;	/* user -> backend */
	uint64_t rx_bytes;	/* backend -> user */
	uint64_t suspends;	/* runtime suspends (backend stopped) */
	uint64_t resumes;
	uint64_t wakes;		/* wake events seen while suspended */
	bool polling;		/* the polling thread is running now */
	bool peer;		/* a backend peer is connected (accepted) */
};

int vfpm_poller_create(const struct vfpm_poller_opts *opts, struct vfpm_pci_dev **out);
void vfpm_poller_destroy(struct vfpm_pci_dev *pdev);
void vfpm_poller_get_stats(struct vfpm_pci_dev *pdev, struct vfpm_poller_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* VFPM_DEVICES_H */
