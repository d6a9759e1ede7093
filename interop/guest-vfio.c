// SPDX-License-Identifier: MIT
/*
 * guest-vfio: runs inside the Linux guest (static) after guest-init.sh has
 * bound vfpm's memory device to the guest's own vfio-pci (under QEMU's
 * emulated intel-iommu), and drives it the way a VMM would: through the
 * VFIO group API (/dev/vfio/vfio, /dev/vfio/N, VFIO_GROUP_SET_CONTAINER,
 * VFIO_SET_IOMMU type1v2).
 *
 *   guest-vfio [--no-intx] [--no-dma] [--rounds N] DDDD:BB:DD.F
 *
 * The interrupt path checked end to end, for each MSI-X vector n:
 *   this program pwrite()s 2+n to BAR2's doorbell (offset 0x04) through the
 *   device fd -> the guest's vfio-pci -> QEMU (vfio-user REGION_WRITE) ->
 *   vfpm rings vector n (the eventfd QEMU gave it in SET_IRQS) -> QEMU
 *   raises the MSI-X message the guest kernel programmed -> the guest's
 *   vfio-pci handler -> the eventfd this program gave to SET_IRQS.
 *
 * Steps, each printed as "check: NAME: ok|FAIL (...)":
 *   vfio-open      container, group, type1v2 IOMMU, device fd, device info
 *   vfio-bar2-id   memory decode on (COMMAND through the config region),
 *                  BAR2's ID register read through the device fd: "MEM0"
 *   msix-info      GET_IRQ_INFO for MSI-X: 4 vectors, eventfd signalling
 *   msix-enable    SET_IRQS, an eventfd per vector
 *   msix-vector-N  doorbell 2+N: vector N's eventfd fires (within 2 s), once,
 *                  and no other one does; --rounds times, in alternating
 *                  order (0..3, 3..0, ...)
 *   msix-disable   SET_IRQS with count 0
 *   intx           (unless --no-intx) doorbell 1: the INTx eventfd fires;
 *                  doorbell 0 (deassert), UNMASK, doorbell 1: fires again.
 *                  STATUS is printed while the line is asserted: with
 *                  vfio-pci's default PCI 2.3 masking its handler claims the
 *                  interrupt only if STATUS.Interrupt_Status is set (else the
 *                  line storms until the kernel disables the IRQ, ~4 s under
 *                  TCG); nointxmask=1 masks at the interrupt controller
 *   dma-map        (unless --no-dma) VFIO_IOMMU_MAP_DMA of a buffer of this
 *                  program at an IOVA, then UNMAP_DMA of it: the calls only,
 *                  the memory device has no DMA engine to use the mapping
 *
 * The last line is "guest-vfio: PASS" or "guest-vfio: FAIL (N failed)"; the
 * exit status is 0 or 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "guest-report.h"

#define CFG_COMMAND 0x04
#define CFG_COMMAND_MEMORY 0x2
#define CFG_COMMAND_MASTER 0x4
#define CFG_COMMAND_INTX_DISABLE 0x400
#define CFG_STATUS 0x06
#define CFG_STATUS_INTERRUPT 0x08

#define MEMDEV_REG_ID 0x00
#define MEMDEV_REG_DOORBELL 0x04	/* 1 = assert INTx, 0 = deassert, 2 + n = MSI-X vector n */
#define MEMDEV_ID 0x4d454d30u		/* "MEM0" */
#define MEMDEV_MSIX_VECTORS 4

#define IRQ_WAIT_MS 2000	/* how long an interrupt may take (TCG, a busy host) */
#define QUIET_MS 50		/* then how long the other eventfds must stay quiet */

#define DMA_IOVA 0x10000000ull
#define DMA_SIZE (64u * 1024)

static int container = -1, group = -1, device = -1;
static struct vfio_region_info cfg_region, bar2_region;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A sysfs attribute as a string without its newline; "?" if unreadable. */
static void read_attr(const char *bdf, const char *attr, char *out, size_t len)
{
	char path[512];
	ssize_t n;
	int fd;

	snprintf(out, len, "?");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	n = read(fd, out, len - 1);
	close(fd);
	if (n > 0) {
		out[n] = '\0';
		out[strcspn(out, "\n")] = '\0';
	} else {
		snprintf(out, len, "?");
	}
}

static void print_pm(const char *bdf, const char *when)
{
	char status[32], state[32];

	read_attr(bdf, "power/runtime_status", status, sizeof(status));
	read_attr(bdf, "power_state", state, sizeof(state));
	note("%s: runtime_status %s, power_state %s", when, status, state);
}

/* ---------------------------------------------------------------- setup */

static bool open_device(const char *bdf)
{
	struct vfio_group_status gs = { .argsz = sizeof(gs) };
	struct vfio_device_info di = { .argsz = sizeof(di) };
	char path[512], link[512];
	const char *grp;
	ssize_t n;
	int api;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		check("vfio-open", false, "readlink %s: %s", path, strerror(errno));
		return false;
	}
	link[n] = '\0';
	grp = strrchr(link, '/') + 1;
	container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (container < 0) {
		check("vfio-open", false, "open /dev/vfio/vfio: %s", strerror(errno));
		return false;
	}
	api = ioctl(container, VFIO_GET_API_VERSION);
	if (api != VFIO_API_VERSION) {
		check("vfio-open", false, "VFIO API version %d", api);
		return false;
	}
	if (ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1) {
		check("vfio-open", false, "no VFIO_TYPE1v2_IOMMU");
		return false;
	}
	snprintf(path, sizeof(path), "/dev/vfio/%s", grp);
	group = open(path, O_RDWR | O_CLOEXEC);
	if (group < 0) {
		check("vfio-open", false, "open %s: %s", path, strerror(errno));
		return false;
	}
	if (ioctl(group, VFIO_GROUP_GET_STATUS, &gs) < 0 || !(gs.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		check("vfio-open", false, "group %s: status %s, flags %#x", grp, strerror(errno),
		      gs.flags);
		return false;
	}
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) < 0) {
		check("vfio-open", false, "VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));
		return false;
	}
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
		check("vfio-open", false, "VFIO_SET_IOMMU type1v2: %s", strerror(errno));
		return false;
	}
	device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (device < 0) {
		check("vfio-open", false, "VFIO_GROUP_GET_DEVICE_FD %s: %s", bdf, strerror(errno));
		return false;
	}
	if (ioctl(device, VFIO_DEVICE_GET_INFO, &di) < 0) {
		check("vfio-open", false, "VFIO_DEVICE_GET_INFO: %s", strerror(errno));
		return false;
	}
	check("vfio-open", (di.flags & VFIO_DEVICE_FLAGS_PCI) &&
	      di.num_regions > VFIO_PCI_CONFIG_REGION_INDEX &&
	      di.num_irqs > VFIO_PCI_MSIX_IRQ_INDEX,
	      "group %s, type1v2, device flags %#x, %u regions, %u irq indexes", grp, di.flags,
	      di.num_regions, di.num_irqs);
	return true;
}

static int region_info(uint32_t index, struct vfio_region_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	ri->argsz = sizeof(*ri);
	ri->index = index;
	return ioctl(device, VFIO_DEVICE_GET_REGION_INFO, ri) < 0 ? -errno : 0;
}

static int cfg_read16(unsigned int off, uint16_t *v)
{
	return pread(device, v, 2, (off_t)(cfg_region.offset + off)) == 2 ? 0 : -errno;
}

static int cfg_write16(unsigned int off, uint16_t v)
{
	return pwrite(device, &v, 2, (off_t)(cfg_region.offset + off)) == 2 ? 0 : -errno;
}

static int bar2_read32(unsigned int off, uint32_t *v)
{
	return pread(device, v, 4, (off_t)(bar2_region.offset + off)) == 4 ? 0 : -errno;
}

static int doorbell(uint32_t value)
{
	return pwrite(device, &value, 4, (off_t)(bar2_region.offset + MEMDEV_REG_DOORBELL)) == 4 ?
	       0 : -errno;
}

static bool step_bar2(void)
{
	uint16_t before = 0, after = 0;
	uint32_t id = 0;
	int err;

	if ((err = region_info(VFIO_PCI_CONFIG_REGION_INDEX, &cfg_region)) ||
	    (err = region_info(VFIO_PCI_BAR2_REGION_INDEX, &bar2_region))) {
		check("vfio-bar2-id", false, "GET_REGION_INFO: %s", strerror(-err));
		return false;
	}
	note("config region: offset %#llx size %#llx; BAR2 region: offset %#llx size %#llx flags %#x",
	     (unsigned long long)cfg_region.offset, (unsigned long long)cfg_region.size,
	     (unsigned long long)bar2_region.offset, (unsigned long long)bar2_region.size,
	     bar2_region.flags);
	/* Memory decode, and Bus Master: an MSI-X message is a memory write by the device. */
	if ((err = cfg_read16(CFG_COMMAND, &before)) ||
	    (err = cfg_write16(CFG_COMMAND, before | CFG_COMMAND_MEMORY | CFG_COMMAND_MASTER)) ||
	    (err = cfg_read16(CFG_COMMAND, &after))) {
		check("vfio-bar2-id", false, "COMMAND through the config region: %s", strerror(-err));
		return false;
	}
	err = bar2_read32(MEMDEV_REG_ID, &id);
	check("vfio-bar2-id", !err && id == MEMDEV_ID && (after & CFG_COMMAND_MEMORY),
	      "COMMAND 0x%04x -> 0x%04x, BAR2 register 0 = 0x%08x%s%s", before, after, id,
	      err ? ", " : "", err ? strerror(-err) : "");
	return !err && id == MEMDEV_ID;
}

/* ------------------------------------------------------------ interrupts */

static int set_irqs(uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
		    const int32_t *fds)
{
	size_t sz = sizeof(struct vfio_irq_set) + (fds ? count * sizeof(int32_t) : 0);
	struct vfio_irq_set *set = calloc(1, sz);
	int ret;

	if (!set)
		return -ENOMEM;
	set->argsz = (uint32_t)sz;
	set->flags = flags;
	set->index = index;
	set->start = start;
	set->count = count;
	if (fds)
		memcpy(set->data, fds, count * sizeof(int32_t));
	ret = ioctl(device, VFIO_DEVICE_SET_IRQS, set) < 0 ? -errno : 0;
	free(set);
	return ret;
}

/* Take what an eventfd holds (0 if nothing). */
static uint64_t drain(int fd)
{
	uint64_t v = 0;

	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

/*
 * Wait up to IRQ_WAIT_MS for any of the N eventfds; then QUIET_MS more for
 * stragglers. counts[i] gets what eventfd i held; returns the ms until the
 * first one fired, or -1 if none did.
 */
static double wait_irqs(const int *fds, unsigned int n, uint64_t *counts)
{
	struct pollfd pfd[8];
	double t0 = now_ms(), first = -1;
	int left = IRQ_WAIT_MS;

	for (unsigned int i = 0; i < n; i++)
		counts[i] = 0;
	for (;;) {
		int r;

		for (unsigned int i = 0; i < n; i++)
			pfd[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
		r = poll(pfd, n, left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (unsigned int i = 0; i < n; i++)
			if (pfd[i].revents & POLLIN)
				counts[i] += drain(fds[i]);
		if (first < 0) {
			first = now_ms() - t0;
			left = QUIET_MS;	/* now only stragglers */
		}
	}
	return first;
}

static void step_msix(unsigned int rounds)
{
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_MSIX_IRQ_INDEX };
	int fds[MEMDEV_MSIX_VECTORS];
	int32_t fds32[MEMDEV_MSIX_VECTORS];
	unsigned int bad[MEMDEV_MSIX_VECTORS] = { 0 };
	double worst[MEMDEV_MSIX_VECTORS] = { 0 };
	char why[MEMDEV_MSIX_VECTORS][160];
	int err;

	if (ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0) {
		check("msix-info", false, "GET_IRQ_INFO: %s", strerror(errno));
		return;
	}
	check("msix-info", ii.count == MEMDEV_MSIX_VECTORS && (ii.flags & VFIO_IRQ_INFO_EVENTFD),
	      "%u vectors, flags %#x", ii.count, ii.flags);
	if (ii.count < MEMDEV_MSIX_VECTORS)
		return;
	for (unsigned int i = 0; i < MEMDEV_MSIX_VECTORS; i++) {
		fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		fds32[i] = fds[i];
		why[i][0] = '\0';
	}
	err = set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD |
		       VFIO_IRQ_SET_ACTION_TRIGGER, 0, MEMDEV_MSIX_VECTORS, fds32);
	check("msix-enable", !err, "SET_IRQS MSI-X, %u eventfds: %s", MEMDEV_MSIX_VECTORS,
	      err ? strerror(-err) : "ok");
	if (err)
		goto out;
	for (unsigned int round = 0; round < rounds; round++) {
		for (unsigned int k = 0; k < MEMDEV_MSIX_VECTORS; k++) {
			unsigned int v = round % 2 ? MEMDEV_MSIX_VECTORS - 1 - k : k;
			uint64_t counts[MEMDEV_MSIX_VECTORS];
			double ms;
			bool ok;

			err = doorbell(2 + v);
			if (err) {
				if (!bad[v]++)
					snprintf(why[v], sizeof(why[v]), "round %u: doorbell write: %s",
						 round, strerror(-err));
				continue;
			}
			ms = wait_irqs(fds, MEMDEV_MSIX_VECTORS, counts);
			ok = ms >= 0 && counts[v] == 1;
			for (unsigned int i = 0; i < MEMDEV_MSIX_VECTORS; i++)
				if (i != v && counts[i])
					ok = false;
			if (ms > worst[v])
				worst[v] = ms;
			if (!ok && !bad[v]++)
				snprintf(why[v], sizeof(why[v]), "round %u: %s; eventfd counts %llu %llu"
					 " %llu %llu", round, ms < 0 ? "nothing within 2000 ms" :
					 "wrong eventfds", (unsigned long long)counts[0],
					 (unsigned long long)counts[1], (unsigned long long)counts[2],
					 (unsigned long long)counts[3]);
		}
	}
	for (unsigned int v = 0; v < MEMDEV_MSIX_VECTORS; v++) {
		char name[32];

		snprintf(name, sizeof(name), "msix-vector-%u", v);
		if (bad[v])
			check(name, false, "doorbell %u: %u of %u rounds wrong, first: %s", 2 + v, bad[v],
			      rounds, why[v]);
		else
			check(name, true, "doorbell %u: only eventfd %u fired, once, in each of %u "
			      "rounds; slowest %.1f ms", 2 + v, v, rounds, worst[v]);
	}
	err = set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		       0, 0, NULL);
	check("msix-disable", !err, "SET_IRQS MSI-X count 0: %s", err ? strerror(-err) : "ok");
out:
	for (unsigned int i = 0; i < MEMDEV_MSIX_VECTORS; i++)
		close(fds[i]);
}

/* INTx: one interrupt, then (deassert, unmask) another. */
static void step_intx(void)
{
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_INTX_IRQ_INDEX };
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int32_t fd32 = fd;
	uint64_t count[2] = { 0, 0 };
	uint16_t status[2] = { 0, 0 }, command[2] = { 0, 0 };
	double ms[2] = { -1, -1 };
	bool ok;
	int err;

	if (ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0 || ii.count != 1) {
		check("intx", false, "GET_IRQ_INFO INTx: %s, count %u", strerror(errno), ii.count);
		goto out;
	}
	err = set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_EVENTFD |
		       VFIO_IRQ_SET_ACTION_TRIGGER, 0, 1, &fd32);
	if (err) {
		check("intx", false, "SET_IRQS INTx: %s", strerror(-err));
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		err = doorbell(1);
		if (err)
			break;
		ms[i] = wait_irqs(&fd, 1, &count[i]);
		/*
		 * With PCI 2.3 INTx masking (vfio-pci's default when COMMAND's
		 * Interrupt Disable bit is writable) the guest's handler claims
		 * the interrupt only if STATUS's Interrupt Status bit is set.
		 */
		if (!cfg_read16(CFG_STATUS, &status[i]) && !cfg_read16(CFG_COMMAND, &command[i]))
			note("INTx %d: asserted: STATUS 0x%04x (Interrupt Status %s), COMMAND 0x%04x",
			     i + 1, status[i], status[i] & CFG_STATUS_INTERRUPT ? "set" : "clear",
			     command[i]);
		/* The line down, then unmask (vfio-pci masked it when it fired). */
		doorbell(0);
		err = set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE |
			       VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, NULL);
		if (err)
			break;
	}
	ok = !err && count[0] == 1 && count[1] == 1;
	check("intx", ok, "flags %#x; doorbell 1: fired %llu after %.1f ms; deassert, unmask, "
	      "doorbell 1: fired %llu after %.1f ms%s%s%s", ii.flags, (unsigned long long)count[0],
	      ms[0], (unsigned long long)count[1], ms[1], err ? "; " : "", err ? strerror(-err) : "",
	      !ok && !(status[0] & CFG_STATUS_INTERRUPT) ?
	      "; STATUS.Interrupt_Status stayed clear while the line was asserted, so the guest's"
	      " vfio-pci (PCI 2.3 INTx masking) did not claim it: try --nointxmask" : "");
	set_irqs(VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0,
		 NULL);
out:
	close(fd);
}

/* ------------------------------------------------------------------ DMA */

static void step_dma(void)
{
	void *buf = mmap(NULL, DMA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)buf, .iova = DMA_IOVA, .size = DMA_SIZE,
	};
	struct vfio_iommu_type1_dma_unmap unmap = {
		.argsz = sizeof(unmap), .iova = DMA_IOVA, .size = DMA_SIZE,
	};
	int merr = 0, uerr = 0;

	if (buf == MAP_FAILED) {
		check("dma-map", false, "mmap: %s", strerror(errno));
		return;
	}
	memset(buf, 0x5a, DMA_SIZE);
	if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map) < 0)
		merr = errno;
	if (!merr && ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) < 0)
		uerr = errno;
	check("dma-map", !merr && !uerr && unmap.size == DMA_SIZE,
	      "MAP_DMA %u KiB at IOVA %#llx: %s, UNMAP_DMA: %s, %llu bytes unmapped; mapping only:"
	      " the memory device has no DMA engine", DMA_SIZE / 1024,
	      (unsigned long long)DMA_IOVA, merr ? strerror(merr) : "ok",
	      merr ? "-" : uerr ? strerror(uerr) : "ok", (unsigned long long)unmap.size);
	munmap(buf, DMA_SIZE);
}

int main(int argc, char **argv)
{
	bool intx = true, dma = true;
	unsigned int rounds = 2;
	const char *bdf = NULL;
	double t0 = now_ms();

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--no-intx"))
			intx = false;
		else if (!strcmp(argv[i], "--no-dma"))
			dma = false;
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = (unsigned int)strtoul(argv[++i], NULL, 10);
		else if (argv[i][0] != '-' && !bdf)
			bdf = argv[i];
		else {
			fprintf(stderr, "usage: guest-vfio [--no-intx] [--no-dma] [--rounds N] "
				"DDDD:BB:DD.F\n");
			return 2;
		}
	}
	if (!bdf || !rounds) {
		fprintf(stderr, "guest-vfio: no device given\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	print_pm(bdf, "before open");
	if (open_device(bdf)) {
		print_pm(bdf, "device fd open");
		if (step_bar2()) {
			step_msix(rounds);
			if (intx)
				step_intx();
		}
		if (dma)
			step_dma();
	}
	if (device >= 0)
		close(device);
	if (group >= 0)
		close(group);
	if (container >= 0)
		close(container);
	note("guest-vfio took %.0f ms", now_ms() - t0);
	if (failures)
		printf("guest-vfio: FAIL (%u failed)\n", failures);
	else
		printf("guest-vfio: PASS\n");
	return failures ? 1 : 0;
}
