// SPDX-License-Identifier: MIT
/* The fuzz targets' PCI device model (see fuzz_model.h). */
#include "fuzz_model.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FM_BAR2_SIZE 4096u
#define FM_MAX_CONNS 8

struct fuzz_model {
	/*
	 * Protects regs and conns.  Held across a DMA, so a connection's
	 * on_disconnect (which takes it) waits until no DMA uses that
	 * connection any more.
	 */
	pthread_mutex_t lock;
	uint8_t regs[FM_BAR2_SIZE];
	struct vfpm_server_conn *conns[FM_MAX_CONNS];	/* live ones, NULL: free slot */
};

/*
 * The connection whose request the calling thread serves: the server calls
 * on_connect, and every request of that connection, on the connection's
 * thread.
 */
static _Thread_local struct vfpm_server_conn *own_conn;

/* Called with m->lock held: DMA between the register file and a client. */
static void fm_dma(struct vfpm_pci_dev *pdev, struct fuzz_model *m, uint32_t cmd)
{
	struct vfpm_server_conn *conn = own_conn;
	uint64_t addr;
	size_t len = cmd & 0xfff;

	memcpy(&addr, m->regs + FM_REG_DMA_ADDR, sizeof(addr));
	if (cmd & FM_DMA_DEVICE) {
		if (cmd & FM_DMA_TO_CLIENT)
			vfpm_pci_dma_write(pdev, addr, m->regs, len);
		else
			vfpm_pci_dma_read(pdev, addr, m->regs, len);
		return;
	}
	for (unsigned int i = 0; (cmd & FM_DMA_OTHER_CONN) && i < FM_MAX_CONNS; i++) {
		if (m->conns[i] && m->conns[i] != own_conn) {
			conn = m->conns[i];
			break;
		}
	}
	if (!conn)
		return;
	if (cmd & FM_DMA_TO_CLIENT)
		vfpm_server_dma_write(conn, addr, m->regs, len);
	else
		vfpm_server_dma_read(conn, addr, m->regs, len);
}

static ssize_t fm_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst,
			 unsigned int bar, uint64_t offset, void *buf, size_t count, bool write)
{
	struct fuzz_model *m = vfpm_pci_model(pdev);
	enum vfpm_pm_status st = vfpm_pm_status(vfpm_pci_pm(pdev));

	if (st != VFPM_PM_ACTIVE) {
		fprintf(stderr, "fuzz model: BAR%u accessed while %s\n", bar,
			vfpm_pm_status_name(st));
		abort();
	}
	if (bar != 2 || offset > FM_BAR2_SIZE || count > FM_BAR2_SIZE - offset)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (write && offset == FM_REG_DMA && count == 4) {
		uint32_t cmd;

		memcpy(&cmd, buf, 4);
		fm_dma(pdev, m, cmd);
	} else if (write) {
		memcpy(m->regs + offset, buf, count);
	} else {
		memcpy(buf, m->regs + offset, count);
	}
	pthread_mutex_unlock(&m->lock);
	return (ssize_t)count;
}

static void fm_reset(struct vfpm_pci_dev *pdev)
{
	struct fuzz_model *m = vfpm_pci_model(pdev);

	pthread_mutex_lock(&m->lock);
	memset(m->regs, 0, sizeof(m->regs));
	pthread_mutex_unlock(&m->lock);
}

static int fm_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	(void)pdev;
	return 0;
}

static int fm_runtime_resume(struct vfpm_pci_dev *pdev)
{
	(void)pdev;
	return 0;
}

static const struct vfpm_pci_model_ops fm_ops = {
	.bar_rw = fm_bar_rw,
	.reset = fm_reset,
	.runtime_suspend = fm_runtime_suspend,
	.runtime_resume = fm_runtime_resume,
};

int fuzz_model_create(struct vfpm_pci_dev **out)
{
	struct vfpm_pci_desc desc = {
		.vendor_id = 0x1b36, .device_id = 0x00f1,
		.subsystem_vendor_id = 0x1b36, .subsystem_id = 1,
		.class_code = 0xff0000, .interrupt_pin = 1,
		.bars = {
			[0] = { .type = VFPM_PCI_BAR_MEM32, .size = 16384, .mappable = true },
			[2] = { .type = VFPM_PCI_BAR_MEM32, .size = FM_BAR2_SIZE },
			[4] = { .type = VFPM_PCI_BAR_MEM64, .size = 8192, .mappable = true },
		},
		.pm_cap = true, .msi_vectors = 4, .msix_vectors = 4, .msix_bar = 4,
		.pcie_cap = true, .flr = true,
	};
	struct fuzz_model *m = calloc(1, sizeof(*m));
	int err;

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	err = vfpm_pci_dev_create(&desc, &fm_ops, m, out);
	if (err) {
		pthread_mutex_destroy(&m->lock);
		free(m);
	}
	return err;
}

void fuzz_model_destroy(struct vfpm_pci_dev *pdev)
{
	struct fuzz_model *m = vfpm_pci_model(pdev);

	vfpm_pci_dev_destroy(pdev);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void fuzz_model_wait_idle(struct vfpm_pci_dev *pdev)
{
	struct vfpm_pm_dev *pm = vfpm_pci_pm(pdev);

	if (vfpm_pm_wait_status(pm, VFPM_PM_SUSPENDED, 10000) ||
	    vfpm_pm_usage_count(pm) != 0 || vfpm_pci_low_power_engaged(pdev)) {
		fprintf(stderr, "fuzz model: not idle after the last close: %s, usage %d%s\n",
			vfpm_pm_status_name(vfpm_pm_status(pm)), vfpm_pm_usage_count(pm),
			vfpm_pci_low_power_engaged(pdev) ? ", low power engaged" : "");
		abort();
	}
}

void fuzz_model_on_connect(struct vfpm_server_conn *conn, void *opaque)
{
	struct fuzz_model *m = vfpm_pci_model(opaque);

	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < FM_MAX_CONNS; i++) {
		if (!m->conns[i]) {
			m->conns[i] = conn;
			break;
		}
	}
	own_conn = conn;
	pthread_mutex_unlock(&m->lock);
}

void fuzz_model_on_disconnect(struct vfpm_server_conn *conn, void *opaque)
{
	struct fuzz_model *m = vfpm_pci_model(opaque);

	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < FM_MAX_CONNS; i++) {
		if (m->conns[i] == conn)
			m->conns[i] = NULL;
	}
	if (own_conn == conn)
		own_conn = NULL;
	pthread_mutex_unlock(&m->lock);
}
