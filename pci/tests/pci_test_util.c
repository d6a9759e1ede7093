// SPDX-License-Identifier: MIT
/* The PCI core's tests' user-side helpers and fixture (see pci_test_util.h). */
#include "pci_test_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/pci_regs.h>

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

/* ---- fixture ---- */

int tm_fixture_setup(void **state, bool open)
{
	const struct tm_config *config = *state;
	struct tm_fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	if (tm_create(config, &fx->m)) {
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
	tm_read_gate_open(fx->m);
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
