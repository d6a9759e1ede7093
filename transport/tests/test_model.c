// SPDX-License-Identifier: MIT
/*
 * The transport tests' PCI device model (see test_model.h).
 */
#include "test_model.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct tmodel *to_model(struct vfpm_pci_dev *pdev)
{
	return vfpm_pci_model(pdev);
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Called with m->lock held. */
static void model_dma(struct tmodel *m, uint32_t cmd)
{
	uint64_t addr = m->regs[TM_REG_DMA_ADDR / 4] |
			(uint64_t)m->regs[TM_REG_DMA_ADDR / 4 + 1] << 32;
	int err = -ENOTCONN;

	/* Through the device (the PCI core's DMA), as a model should. */
	if (cmd == TM_DMA_DEV_READ || cmd == TM_DMA_DEV_WRITE) {
		if (cmd == TM_DMA_DEV_READ)
			err = vfpm_pci_dma_read(m->pdev, addr, &m->regs[TM_REG_DMA_DATA / 4], 4);
		else
			err = vfpm_pci_dma_write(m->pdev, addr, &m->regs[TM_REG_DMA_DATA / 4], 4);
		m->regs[TM_REG_DMA_STATUS / 4] = (uint32_t)err;
		return;
	}
	if (m->conn && cmd == TM_DMA_READ)
		err = vfpm_server_dma_read(m->conn, addr, &m->regs[TM_REG_DMA_DATA / 4], 4);
	else if (m->conn && cmd == TM_DMA_WRITE)
		err = vfpm_server_dma_write(m->conn, addr, &m->regs[TM_REG_DMA_DATA / 4], 4);
	else if (m->conn)
		err = -EINVAL;
	m->regs[TM_REG_DMA_STATUS / 4] = (uint32_t)err;
}

static uint32_t reg_read(struct tmodel *m, uint64_t offset)
{
	uint32_t v;

	pthread_mutex_lock(&m->lock);
	switch (offset) {
	case TM_REG_ID:
		v = TM_ID;
		break;
	case TM_REG_SLOW:
		m->in_slow++;
		pthread_cond_broadcast(&m->cond);
		while (m->gate_closed)
			pthread_cond_wait(&m->cond, &m->lock);
		m->in_slow--;
		pthread_cond_broadcast(&m->cond);
		v = TM_SLOW_VALUE;
		break;
	default:
		v = m->regs[offset / 4];
		break;
	}
	pthread_mutex_unlock(&m->lock);
	return v;
}

static void reg_write(struct tmodel *m, uint64_t offset, uint32_t v)
{
	pthread_mutex_lock(&m->lock);
	switch (offset) {
	case TM_REG_ID:
	case TM_REG_SLOW:
		break;
	case TM_REG_DMA_CMD:
		model_dma(m, v);
		break;
	case TM_REG_MSIX:
		m->regs[TM_REG_DMA_STATUS / 4] = (uint32_t)vfpm_pci_msix_signal(m->pdev, v);
		break;
	case TM_REG_INTX:
		if (v)
			vfpm_pci_intx_assert(m->pdev);
		else
			vfpm_pci_intx_deassert(m->pdev);
		break;
	default:
		m->regs[offset / 4] = v;
		break;
	}
	pthread_mutex_unlock(&m->lock);
}

static ssize_t model_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst,
			    unsigned int bar, uint64_t offset, void *buf, size_t count, bool write)
{
	struct tmodel *m = to_model(pdev);
	uint32_t v;

	if (vfpm_pm_status(vfpm_pci_pm(pdev)) != VFPM_PM_ACTIVE)
		atomic_fetch_add(&m->bad_accesses, 1);
	if (bar != 2)
		return -EINVAL;
	if (count == 4 && !(offset & 3)) {
		if (write) {
			memcpy(&v, buf, 4);
			reg_write(m, offset, v);
		} else {
			v = reg_read(m, offset);
			memcpy(buf, &v, 4);
		}
		return 4;
	}
	/* Any other access is plain memory over the register file. */
	pthread_mutex_lock(&m->lock);
	if (write)
		memcpy((uint8_t *)m->regs + offset, buf, count);
	else
		memcpy(buf, (uint8_t *)m->regs + offset, count);
	pthread_mutex_unlock(&m->lock);
	return (ssize_t)count;
}

static void model_reset(struct vfpm_pci_dev *pdev)
{
	struct tmodel *m = to_model(pdev);

	atomic_fetch_add(&m->resets, 1);
	pthread_mutex_lock(&m->lock);
	m->regs[TM_REG_SCRATCH / 4] = 0;
	pthread_mutex_unlock(&m->lock);
}

static int model_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	atomic_fetch_add(&to_model(pdev)->suspends, 1);
	return 0;
}

static int model_runtime_resume(struct vfpm_pci_dev *pdev)
{
	atomic_fetch_add(&to_model(pdev)->resumes, 1);
	return 0;
}

static const struct vfpm_pci_model_ops model_ops = {
	.bar_rw = model_bar_rw,
	.reset = model_reset,
	.runtime_suspend = model_runtime_suspend,
	.runtime_resume = model_runtime_resume,
};

int tmodel_create(struct tmodel **out)
{
	struct vfpm_pci_desc desc = {
		.vendor_id = TM_VENDOR, .device_id = TM_DEVICE,
		.subsystem_vendor_id = TM_VENDOR, .subsystem_id = 1,
		.class_code = 0xff0000, .interrupt_pin = 1,
		.bars = {
			[0] = { .type = VFPM_PCI_BAR_MEM32, .size = TM_BAR0_SIZE, .mappable = true },
			[2] = { .type = VFPM_PCI_BAR_MEM32, .size = TM_BAR2_SIZE },
			[4] = { .type = VFPM_PCI_BAR_MEM32, .size = TM_BAR4_SIZE, .mappable = true },
		},
		.pm_cap = true, .msi_vectors = 1, .msix_vectors = TM_MSIX_VECTORS, .msix_bar = 4,
		.pcie_cap = true, .flr = true,
	};
	pthread_condattr_t attr;
	struct tmodel *m = calloc(1, sizeof(*m));
	int err;

	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &attr);
	pthread_condattr_destroy(&attr);
	err = vfpm_pci_dev_create(&desc, &model_ops, m, &m->pdev);
	if (err) {
		pthread_cond_destroy(&m->cond);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

void tmodel_destroy(struct tmodel *m)
{
	if (!m)
		return;
	vfpm_pci_dev_destroy(m->pdev);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void tmodel_on_connect(struct vfpm_server_conn *conn, void *opaque)
{
	struct tmodel *m = opaque;

	pthread_mutex_lock(&m->lock);
	m->conn = conn;
	pthread_mutex_unlock(&m->lock);
}

void tmodel_on_disconnect(struct vfpm_server_conn *conn, void *opaque)
{
	struct tmodel *m = opaque;

	pthread_mutex_lock(&m->lock);
	if (m->conn == conn)
		m->conn = NULL;
	pthread_mutex_unlock(&m->lock);
}

void tmodel_close_gate(struct tmodel *m)
{
	pthread_mutex_lock(&m->lock);
	m->gate_closed = true;
	pthread_mutex_unlock(&m->lock);
}

void tmodel_open_gate(struct tmodel *m)
{
	pthread_mutex_lock(&m->lock);
	m->gate_closed = false;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

int tmodel_wait_in_slow(struct tmodel *m, unsigned int n, int timeout_ms)
{
	struct timespec deadline;
	int err = 0;

	deadline_after(&deadline, timeout_ms);
	pthread_mutex_lock(&m->lock);
	while (m->in_slow != n && !err)
		err = pthread_cond_timedwait(&m->cond, &m->lock, &deadline);
	err = m->in_slow == n ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&m->lock);
	return err;
}
