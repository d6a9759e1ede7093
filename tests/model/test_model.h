/* SPDX-License-Identifier: MIT */
/*
 * The device model every test program serves: the PCI core's tests, the
 * transport's tests and their hostile server, the soak and the fuzz
 * targets.  One PCI function with everything the core has:
 *
 *   BAR0  16 KiB MEM32, mappable (memfd).
 *   BAR2  4 KiB MEM32, trapped: plain memory holding tm_bar2_pattern()
 *         until written, or (config.registers) the register file below.
 *   BAR4  8 KiB MEM64 holding the MSI-X table (4 vectors) in its first
 *         page; trapped, or mappable around the table (config.msix_mappable:
 *         a sparse mmap capability).  Trapped, reads past the table are 0.
 *   INTx pin A, PM, MSI (1 vector, or config.msi_vectors), MSI-X, PCIe
 *   (with FLR: config.flr).
 *
 * The model checks from inside that the core keeps its promises: no
 * trapped BAR access, open or reset while the runtime PM status is not
 * ACTIVE; no BAR access or open while the backend is stopped (its own flag,
 * set by runtime_suspend and cleared by runtime_resume); runtime_suspend
 * and runtime_resume only from SUSPENDING / RESUMING (or a D-state change
 * while ACTIVE); no access beyond a BAR, nor to a BAR the core maps.  Any
 * thread may break a promise, so a broken one is counted in violations and
 * printed; a test asserts the count is zero, a fuzzer (config.abort_on_
 * violation) gets a crash.
 *
 * The test holds two gates: while the read gate is closed, every BAR2 read
 * waits at it ("a request in flight" that the test controls without
 * sleeping); while the resume gate is closed, runtime_resume waits at it
 * (the device stays RESUMING).  A read gate closed with
 * tm_read_gate_close_deferred parks reads without a thread: a read that
 * can be completed later (vfpm_request_defer) is deferred, and opening the
 * gate completes it from the test's thread (the reactor's way); one that
 * cannot waits at the gate as before.
 */
#ifndef VFPM_TEST_MODEL_H
#define VFPM_TEST_MODEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <vfpm/pci.h>
#include <vfpm/pm.h>

#define TM_VENDOR_ID 0x1b36
#define TM_DEVICE_ID 0x00f0
#define TM_BAR0_SIZE 0x4000u
#define TM_BAR2_SIZE 0x1000u
#define TM_BAR4_SIZE 0x2000u
#define TM_MSIX_VECTORS 4u

/* Generous bound for asynchronous work, sanitizers included. */
#define TM_SOON_MS 5000
/* How long "stays" is checked for when something must not happen. */
#define TM_QUIET_MS 100

/*
 * BAR2's register file (config.registers).  A 4-byte aligned access of 4
 * bytes to a register below does what it says; any other access, and any
 * other offset, is plain memory over the file.
 */
#define TM_REG_SCRATCH 0x00	/* read/write; a reset clears it */
#define TM_REG_ID 0x04		/* reads TM_ID */
#define TM_REG_DMA_ADDR 0x08	/* 64-bit, two registers */
#define TM_REG_DMA_DATA 0x10	/* DMA_READ fills it, DMA_WRITE sends it */
#define TM_REG_DMA_CMD 0x14	/* write a TM_DMA_* command: 4 bytes at DMA_ADDR */
#define TM_REG_DMA_STATUS 0x18	/* 0 or the negative errno, as int32 */
#define TM_REG_SLOW 0x1c	/* reads TM_SLOW_VALUE (the read tests park at the gate) */
#define TM_REG_MSIX 0x20	/* write a vector: signal it; the result in DMA_STATUS */
#define TM_REG_INTX 0x24	/* write 1: assert INTx, 0: deassert */
#define TM_ID 0x7e570001u
#define TM_SLOW_VALUE 0x5104u
/* TM_REG_DMA_CMD: through the connection that connected last ... */
#define TM_DMA_READ 1u
#define TM_DMA_WRITE 2u
/* ... or through the device (vfpm_pci_dma_*, Bus Master Enable). */
#define TM_DMA_DEV_READ 3u
#define TM_DMA_DEV_WRITE 4u

/*
 * Bulk DMA (config.registers), for the fuzzers: a write of 4 bytes to
 * TM_REG_BULK_DMA moves the register file from offset 0, as many bytes as
 * the value's low 12 bits say, from or (TM_BULK_TO_CLIENT) to the address
 * in TM_REG_BULK_DMA_ADDR (64-bit), through the connection whose request
 * this is, another live one (TM_BULK_OTHER_CONN, when there is one: one
 * client's request does DMA into another client's windows while that one
 * maps, unmaps or goes away) or the device (TM_BULK_DEVICE, vfpm_pci_dma_*,
 * into the memory of the client that last turned Bus Master Enable on).
 * Errors are not reported.
 */
#define TM_REG_BULK_DMA_ADDR 0xff0
#define TM_REG_BULK_DMA 0xff8
#define TM_BULK_TO_CLIENT 0x80000000u
#define TM_BULK_OTHER_CONN 0x40000000u
#define TM_BULK_DEVICE 0x20000000u

/* Connections tm_on_connect remembers for TM_BULK_OTHER_CONN (more go unnoticed). */
#define TM_MAX_CONNS 8

struct vfpm_server_conn;

/* What differs between the model's users; all zero is the PCI tests' device. */
struct tm_config {
	bool registers;		/* BAR2 is the register file above */
	bool msix_mappable;	/* BAR4 backed by a memfd */
	bool flr;		/* PCIe Function Level Reset */
	bool no_soft_reset;	/* PMCSR NoSoftReset */
	unsigned int msi_vectors;	/* MSI vectors (0: 1) */
	bool opt_out;		/* open holds a runtime PM reference */
	bool abort_on_violation;	/* abort() on a broken promise (fuzzers) */
};

struct test_model {
	struct vfpm_pci_dev *pdev;
	struct vfpm_pm_dev *pm;
	struct tm_config config;

	/* What happened. */
	atomic_int opens;
	atomic_int closes;
	atomic_int resets;
	atomic_int suspends;		/* runtime_suspend calls (failed ones included) */
	atomic_int resumes;		/* runtime_resume calls (failed ones included) */
	atomic_bool suspended;		/* the backend is stopped */
	atomic_long bar_accesses;
	atomic_int violations;

	/* Behaviour, for the test to set at any time. */
	atomic_int resume_error;	/* what runtime_resume returns when not 0 */
	atomic_int suspend_error;	/* what runtime_suspend returns when not 0 */

	/*
	 * Protects regs and the connections.  Held across a DMA, so that a
	 * connection's tm_on_disconnect waits until no DMA uses it any more.
	 */
	pthread_mutex_t lock;
	union {
		uint8_t bar2[TM_BAR2_SIZE];
		uint32_t regs[TM_BAR2_SIZE / 4];
	};
	struct vfpm_server_conn *last_conn;		/* the one connected last */
	struct vfpm_server_conn *conns[TM_MAX_CONNS];	/* live ones, NULL: free slot */

	/* Protects the gates; gate_cond signals their changes. */
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	bool read_gate_closed;
	bool read_gate_defers;		/* closed with tm_read_gate_close_deferred */
	unsigned int at_read_gate;	/* BAR2 reads waiting (deferred ones included) */
	unsigned int ndeferred;
	struct tm_deferred {
		struct vfpm_request *req;
		uint64_t offset;
		void *buf;
		size_t count;
	} deferred[TM_MAX_CONNS];
	bool resume_gate_closed;
	unsigned int at_resume_gate;	/* runtime_resume calls waiting */
};

/* config NULL: all zero.  0 or the negative errno. */
int tm_create(const struct tm_config *config, struct test_model **out);
/* Destroys the device (all instances closed) and frees the model. */
void tm_destroy(struct test_model *m);

/* BAR2's byte at offset before any write. */
uint8_t tm_bar2_pattern(uint64_t offset);

/*
 * Server callbacks (struct vfpm_server_opts, opaque: the model): they keep
 * the connections the register file's DMA goes through.
 */
void tm_on_connect(struct vfpm_server_conn *conn, void *opaque);
void tm_on_disconnect(struct vfpm_server_conn *conn, void *opaque);

/* The gates; a wait is for exactly n waiters, 0 or -ETIMEDOUT. */
void tm_read_gate_close(struct test_model *m);
void tm_read_gate_close_deferred(struct test_model *m);
void tm_read_gate_open(struct test_model *m);
int tm_read_gate_wait(struct test_model *m, unsigned int n, int timeout_ms);
void tm_resume_gate_close(struct test_model *m);
void tm_resume_gate_open(struct test_model *m);
int tm_resume_gate_wait(struct test_model *m, unsigned int n, int timeout_ms);

/* Waits with the library's own wait. */
int tm_wait(struct test_model *m, enum vfpm_pm_status status, int timeout_ms);
/*
 * "The device stays ACTIVE": flush pending requests (vfpm_pm_barrier), then
 * check it is ACTIVE, that an idle check run now refuses to suspend it (the
 * barrier cancels a queued idle request, which could otherwise hide a
 * missing reference), and, when quiet_ms > 0, that it does not reach
 * SUSPENDED within quiet_ms.  True when all of that holds.
 */
bool tm_stays_active(struct test_model *m, int quiet_ms);

#endif /* VFPM_TEST_MODEL_H */
