// SPDX-License-Identifier: MIT
/* The PCI core's test device model and user-side helpers (see pci_test_model.h). */
#include "pci_test_model.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>

static struct test_model *to_model(struct vfpm_pci_dev *pdev)
{
	return vfpm_pci_model(pdev);
}

static void violation(struct test_model *m, const char *what)
{
	atomic_fetch_add(&m->violations, 1);
	fprintf(stderr, "test model: %s\n", what);
}

/* A device access is only allowed on a powered, ACTIVE device. */
static void check_powered(struct vfpm_pci_dev *pdev, const char *where)
{
	struct test_model *m = to_model(pdev);
	enum vfpm_pm_status status = vfpm_pm_status(vfpm_pci_pm(pdev));
	char msg[128];

	if (atomic_load(&m->suspended)) {
		snprintf(msg, sizeof(msg), "%s while the backend is suspended", where);
		violation(m, msg);
	}
	if (status != VFPM_PM_ACTIVE) {
		snprintf(msg, sizeof(msg), "%s with runtime PM status %s", where,
			 vfpm_pm_status_name(status));
		violation(m, msg);
	}
}

uint8_t tm_bar2_pattern(uint64_t offset)
{
	return (uint8_t)(offset * 7 + 0x5a);
}

/* ---- model ops ---- */

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
	atomic_fetch_add(&to_model(pdev)->resets, 1);
}

static void slow_read_park(struct test_model *m)
{
	/* m->lock held */
	m->entered = true;
	pthread_cond_broadcast(&m->cond);
	while (!m->released)
		pthread_cond_wait(&m->cond, &m->lock);
	m->slow = false;
	m->entered = false;
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
		if (offset > TM_BAR2_SIZE || count > TM_BAR2_SIZE - offset) {
			violation(m, "BAR2 access beyond the BAR reached the model");
			return -EINVAL;
		}
		pthread_mutex_lock(&m->lock);
		if (write) {
			memcpy(m->bar2 + offset, buf, count);
		} else {
			if (m->slow)
				slow_read_park(m);
			memcpy(buf, m->bar2 + offset, count);
		}
		pthread_mutex_unlock(&m->lock);
		break;
	case 4:
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

static int tm_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	struct test_model *m = to_model(pdev);
	enum vfpm_pm_status status = vfpm_pm_status(vfpm_pci_pm(pdev));

	/* Runtime suspend, or the function going to D3hot while ACTIVE. */
	if (status != VFPM_PM_SUSPENDING &&
	    !(status == VFPM_PM_ACTIVE && vfpm_pci_power_state(pdev) == 3))
		violation(m, "runtime_suspend while not SUSPENDING nor going to D3hot");
	if (atomic_load(&m->suspended))
		violation(m, "runtime_suspend of a suspended backend");
	atomic_fetch_add(&m->suspends, 1);
	atomic_store(&m->suspended, true);
	return 0;
}

static int tm_runtime_resume(struct vfpm_pci_dev *pdev)
{
	struct test_model *m = to_model(pdev);
	enum vfpm_pm_status status = vfpm_pm_status(vfpm_pci_pm(pdev));
	int ret = atomic_load(&m->resume_ret);

	/* Runtime resume, or the function back in D0 from D3hot while ACTIVE. */
	if (status != VFPM_PM_RESUMING &&
	    !(status == VFPM_PM_ACTIVE && vfpm_pci_power_state(pdev) == 0))
		violation(m, "runtime_resume while not RESUMING nor back in D0");
	atomic_fetch_add(&m->resumes, 1);
	if (ret)
		return ret;
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

struct test_model *tm_create(const struct tm_config *config)
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

	if (!m)
		return NULL;
	if (config)
		m->config = *config;
	desc.no_soft_reset = m->config.no_soft_reset;
	desc.bars[4].mappable = m->config.msix_mappable;
	for (unsigned int i = 0; i < TM_BAR2_SIZE; i++)
		m->bar2[i] = tm_bar2_pattern(i);
	pthread_mutex_init(&m->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &attr);
	pthread_condattr_destroy(&attr);

	if (vfpm_pci_dev_create(&desc, &tm_ops, m, &m->pdev)) {
		pthread_cond_destroy(&m->cond);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return NULL;
	}
	m->pm = vfpm_pci_pm(m->pdev);
	return m;
}

void tm_destroy(struct test_model *m)
{
	if (!m)
		return;
	vfpm_pci_dev_destroy(m->pdev);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void tm_slow_arm(struct test_model *m)
{
	pthread_mutex_lock(&m->lock);
	m->slow = true;
	m->entered = false;
	m->released = false;
	pthread_mutex_unlock(&m->lock);
}

int tm_slow_wait_entered(struct test_model *m, int timeout_ms)
{
	struct timespec deadline;
	int err = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&m->lock);
	while (!m->entered && !err)
		err = pthread_cond_timedwait(&m->cond, &m->lock, &deadline);
	err = m->entered ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&m->lock);
	return err;
}

void tm_slow_release(struct test_model *m)
{
	pthread_mutex_lock(&m->lock);
	m->released = true;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* ---- user-side helpers ---- */

long tm_feature(struct vfpm_instance *inst, uint32_t flags, uint32_t argsz,
		const void *payload, size_t payload_len, const struct vfpm_fds *fds)
{
	uint64_t storage[16] = { 0 };	/* aligned user memory */
	struct vfio_device_feature hdr = { .argsz = argsz, .flags = flags };
	struct vfpm_ubuf u = { .data = storage };

	if (payload_len > sizeof(storage) - sizeof(hdr))
		return -E2BIG;
	memcpy(storage, &hdr, sizeof(hdr));
	if (payload)	/* without one, payload_len zero bytes */
		memcpy((char *)storage + sizeof(hdr), payload, payload_len);
	u.in_len = u.cap = sizeof(hdr) + payload_len;
	return vfpm_instance_ioctl(inst, VFIO_DEVICE_FEATURE, &u, fds, NULL);
}

long tm_entry(struct vfpm_instance *inst)
{
	return tm_feature(inst, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
			  sizeof(struct vfio_device_feature), NULL, 0, NULL);
}

long tm_entry_wakeup(struct vfpm_instance *inst, int32_t efd, const struct vfpm_fds *fds)
{
	struct vfio_device_low_power_entry_with_wakeup entry = { .wakeup_eventfd = efd };

	return tm_feature(inst,
			  VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
			  sizeof(struct vfio_device_feature) + sizeof(entry), &entry,
			  sizeof(entry), fds);
}

long tm_exit(struct vfpm_instance *inst)
{
	return tm_feature(inst, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
			  sizeof(struct vfio_device_feature), NULL, 0, NULL);
}

long tm_get_info(struct vfpm_instance *inst, uint32_t argsz)
{
	struct vfio_device_info info = { .argsz = argsz };
	struct vfpm_ubuf u = { .data = &info, .in_len = sizeof(info), .cap = sizeof(info) };

	return vfpm_instance_ioctl(inst, VFIO_DEVICE_GET_INFO, &u, NULL, NULL);
}

long tm_region_info(struct vfpm_instance *inst, uint32_t index, uint32_t argsz,
		    struct vfio_region_info *info, int *memfd)
{
	uint64_t storage[32] = { 0 };
	struct vfio_region_info in = { .argsz = argsz, .index = index };
	struct vfpm_ubuf u = { .data = storage, .in_len = sizeof(storage), .cap = sizeof(storage) };
	struct vfpm_fds_out out = { .count = 0 };
	long ret;

	memcpy(storage, &in, sizeof(in));
	ret = vfpm_instance_ioctl(inst, VFIO_DEVICE_GET_REGION_INFO, &u, NULL, &out);
	if (info)
		memcpy(info, storage, sizeof(*info));
	for (unsigned int i = 0; i < out.count; i++) {
		if (i == 0 && memfd)
			*memfd = out.fd[0];
		else
			close(out.fd[i]);
	}
	if (memfd && out.count == 0)
		*memfd = -1;
	return ret;
}

ssize_t tm_read(struct vfpm_instance *inst, unsigned int index, uint64_t offset, void *buf,
		size_t count)
{
	return vfpm_instance_read(inst, buf, count, VFPM_REGION_OFFSET(index) + offset);
}

ssize_t tm_write(struct vfpm_instance *inst, unsigned int index, uint64_t offset,
		 const void *buf, size_t count)
{
	return vfpm_instance_write(inst, buf, count, VFPM_REGION_OFFSET(index) + offset);
}

int tm_cfg_read(struct vfpm_instance *inst, unsigned int offset, unsigned int size,
		uint32_t *value)
{
	uint8_t bytes[4] = { 0 };
	ssize_t n = tm_read(inst, VFIO_PCI_CONFIG_REGION_INDEX, offset, bytes, size);

	if (n < 0)
		return (int)n;
	if (n != (ssize_t)size)
		return -EIO;
	*value = 0;
	for (unsigned int i = 0; i < size; i++)
		*value |= (uint32_t)bytes[i] << (8 * i);
	return 0;
}

int tm_cfg_write(struct vfpm_instance *inst, unsigned int offset, unsigned int size,
		 uint32_t value)
{
	uint8_t bytes[4];
	ssize_t n;

	for (unsigned int i = 0; i < size; i++)
		bytes[i] = (uint8_t)(value >> (8 * i));
	n = tm_write(inst, VFIO_PCI_CONFIG_REGION_INDEX, offset, bytes, size);
	if (n < 0)
		return (int)n;
	return n == (ssize_t)size ? 0 : -EIO;
}

int tm_set_memory(struct vfpm_instance *inst, bool enable)
{
	uint32_t cmd = 0;
	int err = tm_cfg_read(inst, PCI_COMMAND, 2, &cmd);

	if (err)
		return err;
	cmd = enable ? cmd | PCI_COMMAND_MEMORY : cmd & ~(uint32_t)PCI_COMMAND_MEMORY;
	return tm_cfg_write(inst, PCI_COMMAND, 2, cmd);
}

unsigned int tm_find_cap(struct vfpm_instance *inst, uint8_t cap_id)
{
	uint32_t pos = 0, id = 0;

	if (tm_cfg_read(inst, PCI_CAPABILITY_LIST, 1, &pos))
		return 0;
	for (int hops = 0; hops < 48 && pos >= PCI_STD_HEADER_SIZEOF; hops++) {
		pos &= ~3u;
		if (tm_cfg_read(inst, pos + PCI_CAP_LIST_ID, 1, &id))
			return 0;
		if (id == cap_id)
			return pos;
		if (tm_cfg_read(inst, pos + PCI_CAP_LIST_NEXT, 1, &pos))
			return 0;
	}
	return 0;
}

long tm_set_irqs(struct vfpm_instance *inst, uint32_t flags, uint32_t index, uint32_t start,
		 uint32_t count, const int32_t *fds, const struct vfpm_fds *in)
{
	uint64_t storage[16] = { 0 };
	struct vfio_irq_set hdr = {
		.argsz = sizeof(hdr), .flags = flags, .index = index, .start = start,
		.count = count,
	};
	struct vfpm_ubuf u = { .data = storage };

	if (fds) {
		if (count > 16)
			return -E2BIG;
		hdr.argsz += count * sizeof(int32_t);
		memcpy((char *)storage + sizeof(hdr), fds, count * sizeof(int32_t));
	}
	memcpy(storage, &hdr, sizeof(hdr));
	u.in_len = u.cap = hdr.argsz;
	return vfpm_instance_ioctl(inst, VFIO_DEVICE_SET_IRQS, &u, in, NULL);
}

int64_t tm_eventfd_take(int efd)
{
	uint64_t value;
	ssize_t n = read(efd, &value, sizeof(value));

	if (n == (ssize_t)sizeof(value))
		return (int64_t)value;
	if (n < 0 && errno == EAGAIN)
		return 0;
	return n < 0 ? -errno : -EIO;
}

int tm_eventfd_new(void)
{
	return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

int tm_count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *entry;
	int n = 0;

	if (!dir)
		return -errno;
	while ((entry = readdir(dir)))
		if (entry->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1;	/* the directory's own fd */
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

/* ---- fixture ---- */

int tm_fixture_setup(void **state, bool open)
{
	const struct tm_config *config = *state;
	struct tm_fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	fx->m = tm_create(config);
	if (!fx->m) {
		fprintf(stderr, "fixture: cannot create the device\n");
		free(fx);
		return -1;
	}
	if (tm_wait(fx->m, VFPM_PM_SUSPENDED, TM_SOON_MS)) {
		fprintf(stderr, "fixture: the unused device did not suspend\n");
		tm_destroy(fx->m);
		free(fx);
		return -1;
	}
	if (open && vfpm_device_open(vfpm_pci_device(fx->m->pdev), &fx->inst)) {
		fprintf(stderr, "fixture: cannot open the device\n");
		tm_destroy(fx->m);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

int tm_fixture_teardown(void **state)
{
	struct tm_fixture *fx = *state;
	int violations;

	if (!fx)
		return 0;
	tm_slow_release(fx->m);
	if (fx->inst)
		vfpm_instance_close(fx->inst);
	violations = atomic_load(&fx->m->violations);
	tm_destroy(fx->m);
	free(fx);
	*state = NULL;
	if (violations) {
		fprintf(stderr, "fixture: the model saw %d violation(s)\n", violations);
		return -1;
	}
	return 0;
}
