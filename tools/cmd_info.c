// SPDX-License-Identifier: MIT
/* vfpm info: a device's info, regions, interrupts and power state. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vfpm/client.h>

static const char info_usage[] =
	"Usage: vfpm info TARGET\n"
	"\n"
	"Show a device's info, regions, interrupts and power state.\n"
	"TARGET is a vfio-user socket path, or vfio:PCI-ADDRESS for a kernel device.\n"
	"The power state is what the server reports without waking the device (the\n"
	"kernel's runtime_status for a kernel device); every other query is a\n"
	"request, which wakes a sleeping device as the kernel's ioctls do: to watch\n"
	"the state without waking it, use 'vfpm power TARGET status'.\n"
	"\n"
	"  -h, --help  this text\n";

static const char *const region_names[] = {
	"BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "config", "VGA",
};
static const char *const irq_names[] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };

static void info_print_power(struct vfpm_client *c)
{
	struct vfpm_client_power st;
	int err = vfpm_client_power_status(c, &st);

	if (err) {
		printf("power: unknown (%s)\n", strerror(-err));
		return;
	}
	printf("power: %s", st.runtime_status);
	if (st.have_counts)
		printf(", usage count %d, low power %s%s, %llu suspends, %llu resumes",
		       st.usage_count, st.low_power ? "engaged" : "not engaged",
		       st.wakeup_armed ? " (wakeup armed)" : "",
		       (unsigned long long)st.suspends, (unsigned long long)st.resumes);
	printf("\n");
}

static int info_print(struct vfpm_client *c)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	int err;

	/* Before anything else wakes it. */
	info_print_power(c);
	err = vfpm_client_get_info(c, &info);
	if (err)
		return cli_fail("info", err, "VFIO_DEVICE_GET_INFO failed");
	printf("device: %s, flags 0x%x%s%s, %u regions, %u irq indexes\n", vfpm_client_backend(c),
	       info.flags, info.flags & VFIO_DEVICE_FLAGS_PCI ? " (pci" : " (",
	       info.flags & VFIO_DEVICE_FLAGS_RESET ? ", reset)" : ")", info.num_regions,
	       info.num_irqs);

	for (uint32_t i = 0; i < info.num_regions; i++) {
		union {
			struct vfio_region_info info;
			uint8_t bytes[512];
		} r = { .info = { .argsz = sizeof(r) } };
		int fd = -1;

		err = vfpm_client_get_region_info(c, i, &r.info, sizeof(r), &fd);
		if (fd >= 0)
			close(fd);
		if (err == -EINVAL)
			continue; /* an index the device does not have (VGA) */
		if (err) {
			printf("region %u: %s\n", i, strerror(-err));
			continue;
		}
		if (!r.info.size)
			continue;
		printf("region %u (%s): size 0x%llx%s%s%s%s\n", i,
		       i < sizeof(region_names) / sizeof(region_names[0]) ? region_names[i] : "dev",
		       (unsigned long long)r.info.size,
		       r.info.flags & VFIO_REGION_INFO_FLAG_READ ? " read" : "",
		       r.info.flags & VFIO_REGION_INFO_FLAG_WRITE ? " write" : "",
		       r.info.flags & VFIO_REGION_INFO_FLAG_MMAP ? " mmap" : "",
		       r.info.flags & VFIO_REGION_INFO_FLAG_CAPS ? " caps" : "");
	}
	for (uint32_t i = 0; i < info.num_irqs; i++) {
		struct vfio_irq_info irq = { .argsz = sizeof(irq) };

		err = vfpm_client_get_irq_info(c, i, &irq);
		if (err || !irq.count)
			continue;
		printf("irq %u (%s): %u vector%s%s%s\n", i,
		       i < sizeof(irq_names) / sizeof(irq_names[0]) ? irq_names[i] : "dev", irq.count,
		       irq.count == 1 ? "" : "s",
		       irq.flags & VFIO_IRQ_INFO_MASKABLE ? ", maskable" : "",
		       irq.flags & VFIO_IRQ_INFO_AUTOMASKED ? ", automasked" : "");
	}
	return 0;
}

int cmd_info(int argc, char **argv)
{
	struct vfpm_client *c;
	int err, status;

	if (cli_wants_help(argc, argv)) {
		fputs(info_usage, stdout);
		return 0;
	}
	if (argc != 2)
		return cli_usage_error("info", argc < 2 ? "needs a TARGET" : "takes one TARGET");
	err = vfpm_client_open(argv[1], &c);
	if (err)
		return cli_fail("info", err, "cannot open %s", argv[1]);
	status = info_print(c);
	vfpm_client_close(c);
	return status;
}
