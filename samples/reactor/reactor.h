/* SPDX-License-Identifier: MIT */
/*
 * The register page of the reactor's device, shared by the reactor
 * (reactor.c) and its check (check.c): BAR0, 4 KiB, every dword trapped.
 */
#ifndef VFPM_SAMPLE_REACTOR_H
#define VFPM_SAMPLE_REACTOR_H

#define RX_VENDOR_ID 0x1b36
#define RX_DEVICE_ID 0x00fc
#define RX_BAR0_SIZE 0x1000u

#define RX_REG_ID 0x00		/* RO: RX_ID */
#define RX_REG_INDEX 0x04	/* RO: the device's number, N of devN.sock */
#define RX_REG_SCRATCH 0x08	/* RW */
#define RX_REG_SUSPENDS 0x0c	/* RO: runtime suspends so far */
#define RX_REG_RESUMES 0x10	/* RO: runtime resumes so far */
/*
 * RO: ~SCRATCH, answered RX_SLOW_MS later from the reactor's own timer:
 * the read is deferred (vfpm_request_defer), the reactor keeps serving
 * every other device meanwhile.
 */
#define RX_REG_SLOW 0x14
#define RX_REG_DEFERRED 0x18	/* RO: reads of RX_REG_SLOW completed later */

#define RX_ID 0x52454143u	/* "REAC" */
#define RX_SLOW_MS 2

#endif /* VFPM_SAMPLE_REACTOR_H */
