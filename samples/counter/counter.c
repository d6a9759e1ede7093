// SPDX-License-Identifier: MIT
/*
 * A device built outside the vfpm tree, against the installed library only
 * (pkg-config vfpm): one trapped BAR whose register 0 counts its reads.  It
 * serves the device on a socket and, as its own first client, reads the
 * counter over vfio-user, then says "counter: ok".
 *
 *   cc counter.c $(pkg-config --cflags --libs vfpm) -o counter
 *   ./counter /tmp/counter.sock
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <vfpm/client.h>
#include <vfpm/log.h>
#include <vfpm/pci.h>
#include <vfpm/transport.h>

static atomic_uint reads;

/* Trapped BAR0: register 0 counts its reads; nothing else is there. */
static ssize_t counter_bar_rw(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst,
			      unsigned int bar, uint64_t offset, void *buf, size_t count,
			      bool write)
{
	uint32_t v;

	(void)pdev;
	(void)inst;
	if (bar != 0 || offset != 0 || count != 4)
		return -EINVAL;
	if (write)
		return 4;
	v = atomic_fetch_add(&reads, 1) + 1;
	memcpy(buf, &v, 4);
	return 4;
}

static int counter_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	(void)pdev;
	return 0;	/* nothing runs in the background to stop */
}

static int counter_runtime_resume(struct vfpm_pci_dev *pdev)
{
	(void)pdev;
	return 0;
}

int main(int argc, char **argv)
{
	const struct vfpm_pci_desc desc = {
		.name = "counter", .vendor_id = 0x1b36, .device_id = 0x00fe,
		.class_code = 0xff0000,
		.bars = { [0] = { .type = VFPM_PCI_BAR_MEM32, .size = 4096 } },
		.pm_cap = true,
	};
	const struct vfpm_pci_model_ops ops = {
		.bar_rw = counter_bar_rw,
		.runtime_suspend = counter_runtime_suspend,
		.runtime_resume = counter_runtime_resume,
	};
	struct vfpm_pci_dev *pdev;
	struct vfpm_server *srv;
	struct vfpm_client *c;
	uint16_t cmd = PCI_COMMAND_MEMORY;
	uint32_t first = 0, second = 0;
	int err;

	if (argc != 2) {
		fprintf(stderr, "usage: counter SOCKET\n");
		return 2;
	}
	vfpm_log_set(vfpm_log_stderr, NULL, VFPM_LOG_WARNING);
	err = vfpm_pci_dev_create(&desc, &ops, NULL, &pdev);
	if (!err)
		err = vfpm_server_create(vfpm_pci_device(pdev), argv[1], NULL, &srv);
	if (!err)
		err = vfpm_server_start(srv);
	if (err) {
		fprintf(stderr, "counter: cannot serve: %s\n", strerror(-err));
		return 1;
	}
	err = vfpm_client_connect(argv[1], &c);
	if (!err && vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd,
					     2) != 2)
		err = -EIO;
	if (!err && (vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, 0, &first, 4) != 4 ||
		     vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, 0, &second, 4) != 4))
		err = -EIO;
	if (!err)
		vfpm_client_close(c);
	vfpm_server_destroy(srv);
	vfpm_pci_dev_destroy(pdev);
	if (err || first != 1 || second != 2) {
		fprintf(stderr, "counter: FAIL (%s, read %u then %u)\n", strerror(-err), first,
			second);
		return 1;
	}
	printf("counter: ok (read %u, then %u)\n", first, second);
	return 0;
}
