/* SPDX-License-Identifier: MIT */
/*
 * The fuzz targets' PCI device model: every capability the PCI core has
 * (PM, MSI, MSI-X, PCIe with FLR), INTx, a mappable BAR0 (16 KiB), a
 * trapped BAR2 (4 KiB register file, plain memory) and a mappable BAR4 with
 * the MSI-X table.  A write to BAR2's FM_REG_DMA does DMA through a client
 * connection (fuzz_model_on_connect / _on_disconnect keep track of them):
 * FM_REG_DMA_ADDR (64-bit) is the address, the value written the length
 * (low 12 bits), the direction (bit 31: to the client) and the connection
 * (bit 30 clear: the one whose request this is; set: another live one, when
 * there is one, so that one client's request does DMA into another client's
 * windows while that client maps, unmaps or goes away; bit 29 set: the
 * device's own DMA, vfpm_pci_dma_*, into the memory of whichever client last
 * turned Bus Master Enable on); the register file from offset 0 is the
 * buffer.  A trapped access while the device is not
 * ACTIVE is the bug the runtime PM core exists to prevent: the model aborts
 * on it, so the fuzzer reports it as a crash.
 */
#ifndef VFPM_FUZZ_MODEL_H
#define VFPM_FUZZ_MODEL_H

#include <vfpm/pci.h>
#include <vfpm/transport.h>

#define FM_REG_DMA_ADDR 0xff0
#define FM_REG_DMA 0xff8
#define FM_DMA_TO_CLIENT 0x80000000u
#define FM_DMA_OTHER_CONN 0x40000000u
#define FM_DMA_DEVICE 0x20000000u

int fuzz_model_create(struct vfpm_pci_dev **out);
void fuzz_model_destroy(struct vfpm_pci_dev *pdev);
/* Server callbacks (opaque: the pdev): the connection DMA goes through. */
void fuzz_model_on_connect(struct vfpm_server_conn *conn, void *opaque);
void fuzz_model_on_disconnect(struct vfpm_server_conn *conn, void *opaque);
/*
 * Wait until the device is idle again after its last close (suspended:
 * nothing holds it).  Aborts when it does not get there: a usage
 * reference leaked.
 */
void fuzz_model_wait_idle(struct vfpm_pci_dev *pdev);

#endif /* VFPM_FUZZ_MODEL_H */
