// SPDX-License-Identifier: MIT
/* The tests' device model (see test_model.h). */
#include "test_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vfpm/transport.h>

/*
 * The instance whose BAR access the calling thread serves (tm_bar_rw): its
 * connection is the one whose instance it is.  A thread serves many
 * connections in turn (the server's event loop), so the connection is
 * found from the request, never from the thread.
 */
static _Thread_local struct vfpm_instance *cur_inst;

static struct test_model *to_model(struct vfpm_pci_dev *pdev)
{
	return vfpm_pci_model(pdev);
}

static void violation(struct test_model *m, const char *what)
{
	atomic_fetch_add(&m->violations, 1);
	fprintf(stderr, "test model: %s\n", what);
	if (m->config.abort_on_violation)
		abort();
}

/*
 * Only an ACTIVE device may be touched.  The callbacks go by pdev: the
 * first runtime suspend may come before vfpm_pci_dev_create has returned
 * (and set m->pdev and m->pm).
 */
static void check_active(struct vfpm_pci_dev *pdev, const char *where)
{
	struct test_model *m = to_model(pdev);
	enum vfpm_pm_status status = vfpm_pm_status(vfpm_pci_pm(pdev));
	char msg[128];

	if (status != VFPM_PM_ACTIVE) {
		snprintf(msg, sizeof(msg), "%s with runtime PM status %s", where,
			 vfpm_pm_status_name(status));
		violation(m, msg);
	}
}

/* ... and only while its backend runs. */
static void check_powered(struct vfpm_pci_dev *pdev, const char *where)
{
	struct test_model *m = to_model(pdev);
	char msg[128];

	if (atomic_load(&m->suspended)) {
		snprintf(msg, sizeof(msg), "%s while the backend is suspended", where);
		violation(m, msg);
	}
	check_active(pdev, where);
}

uint8_t tm_bar2_pattern(uint64_t offset)
{
	return (uint8_t)(offset * 7 + 0x5a);
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

/* Wait while *closed, counted in *waiting; called with m->gate_lock held. */
static void gate_pass(struct test_model *m, const bool *closed, unsigned int *waiting)
{
	(*waiting)++;
	pthread_cond_broadcast(&m->gate_cond);
	while (*closed)
		pthread_cond_wait(&m->gate_cond, &m->gate_lock);
	(*waiting)--;
	pthread_cond_broadcast(&m->gate_cond);
}

static void gate_set(struct test_model *m, bool *closed, bool close)
{
	pthread_mutex_lock(&m->gate_lock);
	*closed = close;
	pthread_cond_broadcast(&m->gate_cond);
	pthread_mutex_unlock(&m->gate_lock);
}

static int gate_wait(struct test_model *m, const unsigned int *waiting, unsigned int n,
		     int timeout_ms)
{
	struct timespec deadline;
	int err = 0;

	deadline_after(&deadline, timeout_ms);
	pthread_mutex_lock(&m->gate_lock);
	while (*waiting != n && !err)
		err = pthread_cond_timedwait(&m->gate_cond, &m->gate_lock, &deadline);
	err = *waiting == n ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&m->gate_lock);
	return err;
}

void tm_read_gate_close(struct test_model *m)
{
	gate_set(m, &m->read_gate_closed, true);
}

void tm_read_gate_close_deferred(struct test_model *m)
{
	pthread_mutex_lock(&m->gate_lock);
	m->read_gate_defers = true;
	pthread_mutex_unlock(&m->gate_lock);
	gate_set(m, &m->read_gate_closed, true);
}

static ssize_t bar2_access(struct test_model *m, uint64_t offset, void *buf, size_t count,
			   bool write);

void tm_read_gate_open(struct test_model *m)
{
	struct tm_deferred d[TM_MAX_CONNS];
	unsigned int n;

	pthread_mutex_lock(&m->gate_lock);
	n = m->ndeferred;
	memcpy(d, m->deferred, n * sizeof(d[0]));
	m->ndeferred = 0;
	m->read_gate_defers = false;
	m->read_gate_closed = false;
	pthread_cond_broadcast(&m->gate_cond);
	pthread_mutex_unlock(&m->gate_lock);
	/* The deferred reads are done now, on this thread, and completed. */
	for (unsigned int i = 0; i < n; i++) {
		check_powered(m->pdev, "deferred BAR read");
		vfpm_request_complete(d[i].req, bar2_access(m, d[i].offset, d[i].buf,
							    d[i].count, false));
		pthread_mutex_lock(&m->gate_lock);
		m->at_read_gate--;
		pthread_cond_broadcast(&m->gate_cond);
		pthread_mutex_unlock(&m->gate_lock);
	}
}

int tm_read_gate_wait(struct test_model *m, unsigned int n, int timeout_ms)
{
	return gate_wait(m, &m->at_read_gate, n, timeout_ms);
}

void tm_resume_gate_close(struct test_model *m)
{
	gate_set(m, &m->resume_gate_closed, true);
}

void tm_resume_gate_open(struct test_model *m)
{
	gate_set(m, &m->resume_gate_closed, false);
}

int tm_resume_gate_wait(struct test_model *m, unsigned int n, int timeout_ms)
{
	return gate_wait(m, &m->at_resume_gate, n, timeout_ms);
}

/* ---- BAR2's register file; called with m->lock held ---- */

/* TM_REG_DMA_CMD: 4 bytes between TM_REG_DMA_DATA and TM_REG_DMA_ADDR. */
static int reg_dma(struct test_model *m, uint32_t cmd)
{
	uint64_t addr = m->regs[TM_REG_DMA_ADDR / 4] |
			(uint64_t)m->regs[TM_REG_DMA_ADDR / 4 + 1] << 32;
	void *data = &m->regs[TM_REG_DMA_DATA / 4];

	/* Through the device (the PCI core's DMA), as a model should. */
	if (cmd == TM_DMA_DEV_READ)
		return vfpm_pci_dma_read(m->pdev, addr, data, 4);
	if (cmd == TM_DMA_DEV_WRITE)
		return vfpm_pci_dma_write(m->pdev, addr, data, 4);
	if (!m->last_conn)
		return -ENOTCONN;
	if (cmd == TM_DMA_READ)
		return vfpm_server_dma_read(m->last_conn, addr, data, 4);
	if (cmd == TM_DMA_WRITE)
		return vfpm_server_dma_write(m->last_conn, addr, data, 4);
	return -EINVAL;
}

/* TM_REG_BULK_DMA: the register file from offset 0, errors ignored. */
static void bulk_dma(struct test_model *m, uint32_t cmd)
{
	struct vfpm_server_conn *conn = NULL, *own_conn = NULL;
	size_t len = cmd & 0xfff;
	uint64_t addr;

	/* m->lock is held: a connection found here stays until the DMA is done. */
	for (unsigned int i = 0; cur_inst && i < TM_MAX_CONNS; i++) {
		if (m->conns[i] && vfpm_server_conn_instance(m->conns[i]) == cur_inst)
			own_conn = m->conns[i];
	}
	conn = own_conn;
	memcpy(&addr, m->bar2 + TM_REG_BULK_DMA_ADDR, sizeof(addr));
	if (cmd & TM_BULK_DEVICE) {
		if (cmd & TM_BULK_TO_CLIENT)
			vfpm_pci_dma_write(m->pdev, addr, m->bar2, len);
		else
			vfpm_pci_dma_read(m->pdev, addr, m->bar2, len);
		return;
	}
	for (unsigned int i = 0; (cmd & TM_BULK_OTHER_CONN) && i < TM_MAX_CONNS; i++) {
		if (m->conns[i] && m->conns[i] != own_conn) {
			conn = m->conns[i];
			break;
		}
	}
	if (!conn)
		return;
	if (cmd & TM_BULK_TO_CLIENT)
		vfpm_server_dma_write(conn, addr, m->bar2, len);
	else
		vfpm_server_dma_read(conn, addr, m->bar2, len);
}

static uint32_t reg_read(struct test_model *m, uint64_t offset)
{
	switch (offset) {
	case TM_REG_ID:
		return TM_ID;
	case TM_REG_SLOW:
		return TM_SLOW_VALUE;
	default:
		return m->regs[offset / 4];
	}
}

static void reg_write(struct test_model *m, uint64_t offset, uint32_t v)
{
	switch (offset) {
	case TM_REG_ID:
	case TM_REG_SLOW:
		break;
	case TM_REG_DMA_CMD:
		m->regs[TM_REG_DMA_STATUS / 4] = (uint32_t)reg_dma(m, v);
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
	case TM_REG_BULK_DMA:
		bulk_dma(m, v);
		break;
	default:
		m->regs[offset / 4] = v;
		break;
	}
}

/* ---- model ops ---- */

static ssize_t bar2_rw(struct test_model *m, struct vfpm_instance *inst, uint64_t offset,
		       void *buf, size_t count, bool write)
{
	if (offset > TM_BAR2_SIZE || count > TM_BAR2_SIZE - offset) {
		violation(m, "BAR2 access beyond the BAR reached the model");
		return -EINVAL;
	}
	if (!write) {
		pthread_mutex_lock(&m->gate_lock);
		if (m->read_gate_closed && m->read_gate_defers && m->ndeferred < TM_MAX_CONNS) {
			struct vfpm_request *req = vfpm_request_defer(inst);

			if (req) {
				m->deferred[m->ndeferred++] = (struct tm_deferred){
					.req = req, .offset = offset, .buf = buf, .count = count,
				};
				m->at_read_gate++;
				pthread_cond_broadcast(&m->gate_cond);
				pthread_mutex_unlock(&m->gate_lock);
				return -EINPROGRESS;
			}
		}
		gate_pass(m, &m->read_gate_closed, &m->at_read_gate);
		pthread_mutex_unlock(&m->gate_lock);
	}
	return bar2_access(m, offset, buf, count, write);
}

static ssize_t bar2_access(struct test_model *m, uint64_t offset, void *buf, size_t count,
			   bool write)
{
	uint32_t v;

	pthread_mutex_lock(&m->lock);
	if (m->config.registers && count == 4 && !(offset & 3)) {
		if (write) {
			memcpy(&v, buf, 4);
			reg_write(m, offset, v);
		} else {
			v = reg_read(m, offset);
			memcpy(buf, &v, 4);
		}
	} else if (write) {
		memcpy(m->bar2 + offset, buf, count);
	} else {
		memcpy(buf, m->bar2 + offset, count);
	}
	pthread_mutex_unlock(&m->lock);
	return (ssize_t)count;
}

static ssize_t tm_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst,
			 unsigned int bar, uint64_t offset, void *buf, size_t count, bool write)
{
	struct test_model *m = to_model(pdev);
	ssize_t ret = (ssize_t)count;

	check_powered(pdev, write ? "BAR write" : "BAR read");
	atomic_fetch_add(&m->bar_accesses, 1);
	switch (bar) {
	case 2:
		cur_inst = inst;
		ret = bar2_rw(m, inst, offset, buf, count, write);
		cur_inst = NULL;
		break;
	case 4:
		/* Trapped (not mappable): beyond the MSI-X table, nothing. */
		if (offset > TM_BAR4_SIZE || count > TM_BAR4_SIZE - offset) {
			violation(m, "BAR4 access beyond the BAR reached the model");
			return -EINVAL;
		}
		if (!write)
			memset(buf, 0, count);
		break;
	default:
		violation(m, "access to a BAR the model does not trap");
		ret = -EINVAL;
		break;
	}
	/* Still powered when the access completes (a long access included). */
	check_powered(pdev, write ? "end of BAR write" : "end of BAR read");
	return ret;
}

static int tm_open(struct vfpm_pci_dev *pdev)
{
	struct test_model *m = to_model(pdev);

	check_powered(pdev, "open");
	atomic_fetch_add(&m->opens, 1);
	if (m->config.opt_out)
		vfpm_pm_get_noresume(vfpm_pci_pm(pdev));
	return 0;
}

static void tm_close(struct vfpm_pci_dev *pdev)
{
	struct test_model *m = to_model(pdev);

	atomic_fetch_add(&m->closes, 1);
	if (m->config.opt_out)
		vfpm_pm_put_noidle(vfpm_pci_pm(pdev));
}

static void tm_reset(struct vfpm_pci_dev *pdev)
{
	struct test_model *m = to_model(pdev);

	check_active(pdev, "reset");
	atomic_fetch_add(&m->resets, 1);
	if (m->config.registers) {
		pthread_mutex_lock(&m->lock);
		m->regs[TM_REG_SCRATCH / 4] = 0;
		pthread_mutex_unlock(&m->lock);
	}
}

static int tm_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	struct test_model *m = to_model(pdev);
	enum vfpm_pm_status status = vfpm_pm_status(vfpm_pci_pm(pdev));
	int err = atomic_load(&m->suspend_error);

	/* Runtime suspend, or the function going to D3hot while ACTIVE. */
	if (status != VFPM_PM_SUSPENDING &&
	    !(status == VFPM_PM_ACTIVE && vfpm_pci_power_state(pdev) == 3))
		violation(m, "runtime_suspend while not SUSPENDING nor going to D3hot");
	if (atomic_load(&m->suspended))
		violation(m, "runtime_suspend of a suspended backend");
	atomic_fetch_add(&m->suspends, 1);
	if (err)
		return err;
	atomic_store(&m->suspended, true);
	return 0;
}

static int tm_runtime_resume(struct vfpm_pci_dev *pdev)
{
	struct test_model *m = to_model(pdev);
	enum vfpm_pm_status status = vfpm_pm_status(vfpm_pci_pm(pdev));
	int err;

	/* Runtime resume, or the function back in D0 from D3hot while ACTIVE. */
	if (status != VFPM_PM_RESUMING &&
	    !(status == VFPM_PM_ACTIVE && vfpm_pci_power_state(pdev) == 0))
		violation(m, "runtime_resume while not RESUMING nor back in D0");
	atomic_fetch_add(&m->resumes, 1);
	pthread_mutex_lock(&m->gate_lock);
	gate_pass(m, &m->resume_gate_closed, &m->at_resume_gate);
	pthread_mutex_unlock(&m->gate_lock);
	err = atomic_load(&m->resume_error);
	if (err)
		return err;
	if (!atomic_load(&m->suspended))
		violation(m, "runtime_resume of a running backend");
	atomic_store(&m->suspended, false);
	return 0;
}

static const struct vfpm_pci_model_ops tm_ops = {
	.open = tm_open,
	.close = tm_close,
	.bar_rw = tm_bar_rw,
	.reset = tm_reset,
	.runtime_suspend = tm_runtime_suspend,
	.runtime_resume = tm_runtime_resume,
};

int tm_create(const struct tm_config *config, struct test_model **out)
{
	struct test_model *m = calloc(1, sizeof(*m));
	struct vfpm_pci_desc desc = {
		.vendor_id = TM_VENDOR_ID,
		.device_id = TM_DEVICE_ID,
		.subsystem_vendor_id = TM_VENDOR_ID,
		.subsystem_id = 0x0001,
		.revision = 0x01,
		.class_code = 0xff0000,
		.interrupt_pin = 1,
		.bars = {
			[0] = { .type = VFPM_PCI_BAR_MEM32, .size = TM_BAR0_SIZE, .mappable = true },
			[2] = { .type = VFPM_PCI_BAR_MEM32, .size = TM_BAR2_SIZE },
			[4] = { .type = VFPM_PCI_BAR_MEM64, .size = TM_BAR4_SIZE },
		},
		.pm_cap = true,
		.msi_vectors = 1,
		.msix_vectors = TM_MSIX_VECTORS,
		.msix_bar = 4,
		.pcie_cap = true,
	};
	pthread_condattr_t attr;
	int err;

	if (!m)
		return -ENOMEM;
	if (config)
		m->config = *config;
	desc.bars[4].mappable = m->config.msix_mappable;
	desc.flr = m->config.flr;
	desc.no_soft_reset = m->config.no_soft_reset;
	if (m->config.msi_vectors)
		desc.msi_vectors = m->config.msi_vectors;
	for (unsigned int i = 0; i < TM_BAR2_SIZE; i++)
		m->bar2[i] = tm_bar2_pattern(i);
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->gate_lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&m->gate_cond, &attr);
	pthread_condattr_destroy(&attr);

	err = vfpm_pci_dev_create(&desc, &tm_ops, m, &m->pdev);
	if (err) {
		pthread_cond_destroy(&m->gate_cond);
		pthread_mutex_destroy(&m->gate_lock);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return err;
	}
	m->pm = vfpm_pci_pm(m->pdev);
	*out = m;
	return 0;
}

void tm_destroy(struct test_model *m)
{
	if (!m)
		return;
	vfpm_pci_dev_destroy(m->pdev);
	pthread_cond_destroy(&m->gate_cond);
	pthread_mutex_destroy(&m->gate_lock);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void tm_on_connect(struct vfpm_server_conn *conn, void *opaque)
{
	struct test_model *m = opaque;

	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < TM_MAX_CONNS; i++) {
		if (!m->conns[i]) {
			m->conns[i] = conn;
			break;
		}
	}
	m->last_conn = conn;
	pthread_mutex_unlock(&m->lock);
}

void tm_on_disconnect(struct vfpm_server_conn *conn, void *opaque)
{
	struct test_model *m = opaque;

	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < TM_MAX_CONNS; i++) {
		if (m->conns[i] == conn)
			m->conns[i] = NULL;
	}
	if (m->last_conn == conn)
		m->last_conn = NULL;
	pthread_mutex_unlock(&m->lock);
}

int tm_wait(struct test_model *m, enum vfpm_pm_status status, int timeout_ms)
{
	return vfpm_pm_wait_status(m->pm, status, timeout_ms);
}

bool tm_stays_active(struct test_model *m, int quiet_ms)
{
	vfpm_pm_barrier(m->pm);
	if (vfpm_pm_status(m->pm) != VFPM_PM_ACTIVE)
		return false;
	/* Holding a reference, the device refuses an idle check. */
	if (vfpm_pm_idle(m->pm) >= 0 || vfpm_pm_status(m->pm) != VFPM_PM_ACTIVE)
		return false;
	if (quiet_ms > 0 && vfpm_pm_wait_status(m->pm, VFPM_PM_SUSPENDED, quiet_ms) != -ETIMEDOUT)
		return false;
	return vfpm_pm_status(m->pm) == VFPM_PM_ACTIVE;
}
