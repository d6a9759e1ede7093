// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the NVMe controller's command engine (samples/nvme), fed
 * arbitrary commands, registers, doorbells and guest memory.
 *
 * The controller runs in manual mode (no poller thread: each "poll" is one
 * pass of the engine on this thread, so a run is deterministic) on a memfd
 * backing file of 1 MiB, opened as a device instance in-process with a DMA
 * provider over 1 MiB of "guest memory" at FZ_IOVA; nothing outside it is
 * reachable.  Each input starts from a function reset, then the bring-up a
 * driver does (admin queues, Number of Queues, I/O CQ 1 and SQ 1), then:
 *
 *   u8 op, then the op's bytes:
 *     0  admin SQE: 64 bytes, queued and rung, then a poll
 *     1  I/O SQE: 64 bytes, queued and rung, then a poll
 *     2  register write: u16 offset (in the register page), u32 value
 *     3  doorbell write: u8 index (of the first 32), u32 value
 *     4  guest memory: u16 offset (in 64 KiB of it), u8 len, len bytes
 *     5  poll: u8 n, n + 1 passes
 *     6  config: u8 COMMAND bits (memory, bus master), or PMCSR D3hot / D0
 *     7  register read: u16 offset
 *
 * Checked: nothing crashes, hangs or leaks (ASan, UBSan, libFuzzer's
 * timeout); a command's completion lands only in its completion queue's
 * memory; CSTS never reads all ones.
 *
 * Build: meson with -Dfuzz=true builds it beside the others
 * (fuzz/meson.build); by hand, link it with libFuzzer, samples/nvme's
 * library and libvfpm.  samples/nvme/tests runs it without libFuzzer over
 * pseudo-random inputs (the fuzz-nvme-smoke test).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <vfpm/device.h>
#include <vfpm/pci.h>

#include "nvme.h"
#include "nvme_dev.h"

#define FZ_IOVA 0x40000000ull
#define FZ_MEM_SIZE (1u << 20)
#define FZ_BACKING_SIZE (1u << 20)
#define FZ_ASQ 0x0000u
#define FZ_ACQ 0x1000u
#define FZ_IOSQ 0x2000u
#define FZ_IOCQ 0x3000u
#define FZ_DEPTH 16u
#define FZ_POLL_MAX 16u

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
	struct vfpm_pci_dev *pdev;
	struct vfpm_instance *inst;
	uint8_t *mem;
	unsigned int pm_cap;
	uint32_t sq_tail[2];
	uint16_t cid;
} fz;

/* ---- the host's memory ---- */

static int mem_rw(uint64_t iova, void *buf, size_t len, bool write)
{
	if (iova < FZ_IOVA || iova - FZ_IOVA > FZ_MEM_SIZE || len > FZ_MEM_SIZE - (iova - FZ_IOVA))
		return -EFAULT;
	if (write)
		memcpy(fz.mem + (iova - FZ_IOVA), buf, len);
	else
		memcpy(buf, fz.mem + (iova - FZ_IOVA), len);
	return 0;
}

static int mem_read(void *opaque, uint64_t iova, void *buf, size_t len)
{
	(void)opaque;
	return mem_rw(iova, buf, len, false);
}

static int mem_write(void *opaque, uint64_t iova, const void *buf, size_t len)
{
	(void)opaque;
	return mem_rw(iova, (void *)buf, len, true);
}

static const struct vfpm_dma_ops mem_ops = { .read = mem_read, .write = mem_write };

/* ---- device access, as a client's requests ---- */

static void cfg_write16(unsigned int off, uint16_t v)
{
	vfpm_instance_write(fz.inst, &v, 2, VFPM_REGION_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + off);
}

static uint16_t cfg_read16(unsigned int off)
{
	uint16_t v = 0;

	vfpm_instance_read(fz.inst, &v, 2, VFPM_REGION_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + off);
	return v;
}

static void bar_write32(uint64_t off, uint32_t v)
{
	vfpm_instance_write(fz.inst, &v, 4, VFPM_REGION_OFFSET(VFIO_PCI_BAR0_REGION_INDEX) + off);
}

static uint32_t bar_read32(uint64_t off)
{
	uint32_t v = 0;

	vfpm_instance_read(fz.inst, &v, 4, VFPM_REGION_OFFSET(VFIO_PCI_BAR0_REGION_INDEX) + off);
	return v;
}

static void poll_n(unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		vfpm_nvme_poll(fz.pdev);
	if (bar_read32(NVME_REG_CSTS) == 0xffffffffu)
		abort();	/* Linux takes all ones for a controller that went away */
}

static void submit(unsigned int q, const struct nvme_sqe *cmd)
{
	uint32_t base = q ? FZ_IOSQ : FZ_ASQ;

	memcpy(fz.mem + base + fz.sq_tail[q] * sizeof(*cmd), cmd, sizeof(*cmd));
	fz.sq_tail[q] = (fz.sq_tail[q] + 1) % FZ_DEPTH;
	bar_write32(VFPM_NVME_DOORBELLS + 8 * q, fz.sq_tail[q]);
	poll_n(2);
}

static void find_pm_cap(void)
{
	unsigned int at = cfg_read16(PCI_CAPABILITY_LIST) & 0xfc;

	for (int hops = 0; at && hops < 48; hops++) {
		uint16_t hdr = cfg_read16(at);

		if ((hdr & 0xff) == PCI_CAP_ID_PM) {
			fz.pm_cap = at;
			return;
		}
		at = (hdr >> 8) & 0xfc;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct vfpm_nvme_opts opts = { .block_size = 512, .manual_poll = true };
	char path[64];
	int fd = memfd_create("fuzz-nvme-backing", MFD_CLOEXEC);

	(void)argc;
	(void)argv;
	if (fd < 0 || ftruncate(fd, FZ_BACKING_SIZE))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	opts.backing_path = path;
	fz.mem = calloc(1, FZ_MEM_SIZE);
	if (!fz.mem || vfpm_nvme_create(&opts, &fz.pdev) ||
	    vfpm_device_open(vfpm_pci_device(fz.pdev), &fz.inst))
		abort();
	close(fd);	/* the controller has its own */
	vfpm_instance_set_dma(fz.inst, &mem_ops, NULL);
	find_pm_cap();
	return 0;
}

/* From a function reset to I/O queue 1, as a driver brings the controller up. */
static void bring_up(void)
{
	struct vfpm_ubuf none = { 0 };
	struct nvme_sqe cmd;

	vfpm_instance_ioctl(fz.inst, VFIO_DEVICE_RESET, &none, NULL, NULL);
	memset(fz.mem, 0, FZ_MEM_SIZE);
	fz.sq_tail[0] = fz.sq_tail[1] = 0;
	cfg_write16(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	bar_write32(NVME_REG_AQA, (FZ_DEPTH - 1) << 16 | (FZ_DEPTH - 1));
	bar_write32(NVME_REG_ASQ, (uint32_t)(FZ_IOVA + FZ_ASQ));
	bar_write32(NVME_REG_ASQ + 4, (uint32_t)((FZ_IOVA + FZ_ASQ) >> 32));
	bar_write32(NVME_REG_ACQ, (uint32_t)(FZ_IOVA + FZ_ACQ));
	bar_write32(NVME_REG_ACQ + 4, (uint32_t)((FZ_IOVA + FZ_ACQ) >> 32));
	bar_write32(NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20);
	poll_n(1);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_SET_FEATURES, .cdw10 = NVME_FEAT_NUM_QUEUES,
				 .cdw11 = 0x00030003 };
	submit(0, &cmd);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_CREATE_CQ, .prp1 = FZ_IOVA + FZ_IOCQ,
				 .cdw10 = (FZ_DEPTH - 1) << 16 | 1,
				 .cdw11 = 1u << 16 | NVME_CQ_IEN | NVME_QUEUE_PC };
	submit(0, &cmd);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_CREATE_SQ, .prp1 = FZ_IOVA + FZ_IOSQ,
				 .cdw10 = (FZ_DEPTH - 1) << 16 | 1, .cdw11 = 1u << 16 | NVME_QUEUE_PC };
	submit(0, &cmd);
}

/* Input bytes, read as the ops want them; zeros once they run out. */
struct input {
	const uint8_t *p;
	size_t left;
};

static void take(struct input *in, void *dst, size_t len)
{
	size_t n = len < in->left ? len : in->left;

	memcpy(dst, in->p, n);
	memset((uint8_t *)dst + n, 0, len - n);
	in->p += n;
	in->left -= n;
}

static uint8_t take8(struct input *in)
{
	uint8_t v;

	take(in, &v, 1);
	return v;
}

static uint16_t take16(struct input *in)
{
	uint16_t v;

	take(in, &v, 2);
	return v;
}

static uint32_t take32(struct input *in)
{
	uint32_t v;

	take(in, &v, 4);
	return v;
}

static void run_op(struct input *in)
{
	uint8_t op = take8(in) % 8;
	struct nvme_sqe cmd;

	switch (op) {
	case 0:
	case 1:
		take(in, &cmd, sizeof(cmd));
		cmd.cid = fz.cid++;
		submit(op, &cmd);
		break;
	case 2: {
		uint16_t off = take16(in) % 0x1000 & ~3u;

		bar_write32(off, take32(in));
		poll_n(1);
		break;
	}
	case 3: {
		uint8_t index = take8(in) % 32;

		bar_write32(VFPM_NVME_DOORBELLS + 4u * index, take32(in));
		poll_n(1);
		break;
	}
	case 4: {
		uint16_t off = take16(in);
		uint8_t len = take8(in);

		take(in, fz.mem + off, len);	/* off + len stays inside the first 64 KiB + 255 */
		break;
	}
	case 5:
		poll_n(take8(in) % FZ_POLL_MAX + 1u);
		break;
	case 6: {
		uint8_t v = take8(in);

		if (v & 0x80 && fz.pm_cap)
			cfg_write16(fz.pm_cap + PCI_PM_CTRL, v & 1 ? 3 : 0);
		else
			cfg_write16(PCI_COMMAND, v & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER));
		poll_n(1);
		break;
	}
	case 7:
		(void)bar_read32(take16(in) % VFPM_NVME_BAR0_SIZE & ~3u);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };

	bring_up();
	for (unsigned int ops = 0; in.left && ops < 256; ops++)
		run_op(&in);
	poll_n(4);
	return 0;
}
