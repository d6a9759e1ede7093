// SPDX-License-Identifier: MIT
/*
 * Writes the fuzz targets' seed corpora: valid sessions, built from the
 * wire structs, in the input formats the targets describe.
 *   gen_seeds DIR  writes DIR/server, DIR/feature and DIR/config
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "fuzz_server_input.h"
#include "test_model.h"
#include "wire.h"

/* Fd bits of a msg_id in fuzz_server's input format (fuzz_server_input.h). */
#define FDS(n) FZ_FDS(n)
#define MEMFD FZ_KIND(FZ_MEMFD)
#define KIND(k) FZ_KIND(k)
#define B FZ_CONN_B

struct seed {
	uint8_t buf[16384];
	size_t len;
	uint16_t id;	/* the last id proper nid gave */
};

/* The next id proper (1 .. FZ_ID_MAX, round and round). */
static uint16_t nid(struct seed *s)
{
	s->id = (uint16_t)(s->id % FZ_ID_MAX + 1);
	return s->id;
}

static void put(struct seed *s, const void *p, size_t len)
{
	if (s->len + len > sizeof(s->buf)) {
		fprintf(stderr, "gen_seeds: seed too large\n");
		exit(1);
	}
	memcpy(s->buf + s->len, p, len);
	s->len += len;
}

static void msg(struct seed *s, uint16_t id, uint16_t cmd, uint32_t flags, const void *p,
		size_t len)
{
	struct vfio_user_header h = {
		.msg_id = id, .command = cmd, .msg_size = (uint32_t)(16 + len), .flags = flags,
	};

	put(s, &h, sizeof(h));
	if (len)
		put(s, p, len);
}

static void save(const char *dir, const char *name, const struct seed *s)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f)) {
		fprintf(stderr, "gen_seeds: %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static void version(struct seed *s, const char *json)
{
	uint8_t buf[512];
	struct vfio_user_version v = { .major = VFIO_USER_MAJOR, .minor = VFIO_USER_MINOR };
	size_t jl = strlen(json) + 1;

	memcpy(buf, &v, sizeof(v));
	memcpy(buf + sizeof(v), json, jl);
	msg(s, 1, VFIO_USER_VERSION, 0, buf, sizeof(v) + jl);
}

static void region_read(struct seed *s, uint16_t id, uint32_t region, uint64_t off, uint32_t count)
{
	struct vfio_user_region_access a = { .offset = off, .region = region, .count = count };

	msg(s, id, VFIO_USER_REGION_READ, 0, &a, sizeof(a));
}

static void region_write(struct seed *s, uint16_t id, uint32_t region, uint64_t off,
			 const void *data, uint32_t count)
{
	uint8_t buf[64];
	struct vfio_user_region_access a = { .offset = off, .region = region, .count = count };

	memcpy(buf, &a, sizeof(a));
	memcpy(buf + sizeof(a), data, count);
	msg(s, id, VFIO_USER_REGION_WRITE, 0, buf, sizeof(a) + count);
}

static void feature(struct seed *s, uint16_t id, uint32_t flags, const void *data, size_t len)
{
	uint8_t buf[64];
	struct vfio_user_device_feature f = { .argsz = (uint32_t)(8 + len), .flags = flags };

	memcpy(buf, &f, sizeof(f));
	if (len)
		memcpy(buf + sizeof(f), data, len);
	msg(s, id, VFIO_USER_DEVICE_FEATURE, 0, buf, sizeof(f) + len);
}

static void hostile_seeds(const char *dir, const char *caps);

static void server_seeds(const char *dir)
{
	static const char caps[] = "{\"capabilities\":{\"max_msg_fds\":8,\"pgsizes\":4096,"
				   "\"write_multiple\":true,\"twin_socket\":{\"supported\":true}}}";
	const uint16_t mem = PCI_COMMAND_MEMORY;
	const uint32_t v = 0x12345678;
	struct seed s = { .len = 0 };

	/* Every info command, config and BAR accesses, write multi, reset. */
	version(&s, caps);
	struct vfio_user_device_info di = { .argsz = sizeof(di) };
	msg(&s, 2, VFIO_USER_DEVICE_GET_INFO, 0, &di, sizeof(di));
	for (uint32_t i = 0; i < VFIO_PCI_NUM_REGIONS; i++) {
		struct vfio_user_region_info ri = { .argsz = 256, .index = i };

		msg(&s, (uint16_t)(3 + i), VFIO_USER_DEVICE_GET_REGION_INFO, 0, &ri, sizeof(ri));
	}
	for (uint32_t i = 0; i < VFIO_PCI_NUM_IRQS; i++) {
		struct vfio_user_irq_info ii = { .argsz = sizeof(ii), .index = i };

		msg(&s, (uint16_t)(20 + i), VFIO_USER_DEVICE_GET_IRQ_INFO, 0, &ii, sizeof(ii));
	}
	region_read(&s, 30, VFIO_PCI_CONFIG_REGION_INDEX, 0, 256);
	region_write(&s, 31, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &mem, 2);
	region_write(&s, 32, VFIO_PCI_BAR2_REGION_INDEX, 0, &v, 4);
	region_read(&s, 33, VFIO_PCI_BAR2_REGION_INDEX, 0, 16);
	region_read(&s, 34, VFIO_PCI_BAR0_REGION_INDEX, 0, 64);
	struct {
		struct vfio_user_write_multi_hdr h;
		struct vfio_user_write_multi_entry e[2];
	} wm = { .h = { .wr_cnt = 2 }, .e = {
		{ .offset = 8, .region = VFIO_PCI_BAR2_REGION_INDEX, .count = 4, .data = { 1 } },
		{ .offset = 0x40, .region = VFIO_PCI_CONFIG_REGION_INDEX, .count = 1 } } };
	msg(&s, 35, VFIO_USER_REGION_WRITE_MULTI, 0, &wm, sizeof(wm));
	msg(&s, 36, VFIO_USER_DEVICE_RESET, 0, NULL, 0);
	msg(&s, 37, VFPM_USER_POWER_STATUS, 0, NULL, 0);
	save(dir, "info-and-access", &s);

	/* Low power: probe, entry, a waking access, exit; then with wakeup. */
	s.len = 0;
	version(&s, caps);
	feature(&s, 2, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
		       VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, NULL, 0);
	feature(&s, 3, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, NULL, 0);
	msg(&s, 4, VFPM_USER_POWER_STATUS, 0, NULL, 0);
	region_read(&s, 5, VFIO_PCI_CONFIG_REGION_INDEX, 0, 4);
	feature(&s, 6, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL, 0);
	struct vfio_user_low_power_entry_with_wakeup w = { .wakeup_eventfd = 0 };
	feature(&s, 7 | FDS(1), VFIO_DEVICE_FEATURE_SET |
		VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, &w, sizeof(w));
	region_read(&s, 8, VFIO_PCI_BAR2_REGION_INDEX, 0, 4);
	feature(&s, 9, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL, 0);
	feature(&s, 10 | FDS(1), VFIO_DEVICE_FEATURE_SET |
		VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, &w, sizeof(w));
	save(dir, "low-power", &s);

	/* Interrupts: MSI-X eventfds, trigger, bool, de-assign; INTx mask. */
	s.len = 0;
	version(&s, caps);
	struct vfio_user_irq_set set = {
		.argsz = sizeof(set), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 2,
	};
	msg(&s, 2 | FDS(2), VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set));
	set.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	set.count = 1;
	msg(&s, 3, VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set));
	uint8_t sb[sizeof(set) + 2];
	set.flags = VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER;
	set.count = 2;
	memcpy(sb, &set, sizeof(set));
	sb[sizeof(set)] = 1;
	sb[sizeof(set) + 1] = 0;
	msg(&s, 4, VFIO_USER_DEVICE_SET_IRQS, 0, sb, sizeof(sb));
	set = (struct vfio_user_irq_set){
		.argsz = sizeof(set), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_INTX_IRQ_INDEX, .count = 1,
	};
	msg(&s, 5 | FDS(1), VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set));
	set.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK;
	msg(&s, 6, VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set));
	set.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set.index = VFIO_PCI_MSIX_IRQ_INDEX;
	set.count = 2;
	msg(&s, 7, VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set));
	save(dir, "irqs", &s);

	/* DMA: map with a memfd and without, unmap, a no-reply command. */
	s.len = 0;
	version(&s, caps);
	struct vfio_user_dma_map map = {
		.argsz = sizeof(map), .flags = VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE,
		.offset = 0, .addr = 0x100000, .size = 0x10000,
	};
	msg(&s, 2 | FDS(1) | MEMFD, VFIO_USER_DMA_MAP, 0, &map, sizeof(map));
	map.addr = 0x200000;
	msg(&s, 3, VFIO_USER_DMA_MAP, 0, &map, sizeof(map));
	struct vfio_user_dma_unmap um = { .argsz = sizeof(um), .addr = 0x100000, .size = 0x10000 };
	msg(&s, 4, VFIO_USER_DMA_UNMAP, 0, &um, sizeof(um));
	msg(&s, 5, VFIO_USER_DEVICE_RESET, VFIO_USER_F_NO_REPLY, NULL, 0);
	save(dir, "dma", &s);

	/* The model's bulk DMA (test_model.h): through a memfd window, then a window without fd. */
	s.len = 0;
	version(&s, caps);
	map.addr = 0x100000;
	msg(&s, 2 | FDS(1) | MEMFD, VFIO_USER_DMA_MAP, 0, &map, sizeof(map));
	map.addr = 0x200000;
	msg(&s, 3, VFIO_USER_DMA_MAP, 0, &map, sizeof(map));
	region_write(&s, 4, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &mem, 2);
	const uint64_t dma_addr = 0x100ff0;
	region_write(&s, 5, VFIO_PCI_BAR2_REGION_INDEX, 0xff0, &dma_addr, 8);
	const uint32_t dma_read = 16, dma_write = 0x80000000u | 16;
	region_write(&s, 6, VFIO_PCI_BAR2_REGION_INDEX, 0xff8, &dma_read, 4);
	region_write(&s, 7, VFIO_PCI_BAR2_REGION_INDEX, 0xff8, &dma_write, 4);
	const uint64_t dma_addr2 = 0x200000;
	region_write(&s, 8, VFIO_PCI_BAR2_REGION_INDEX, 0xff0, &dma_addr2, 8);
	region_write(&s, 9, VFIO_PCI_BAR2_REGION_INDEX, 0xff8, &dma_read, 4);
	save(dir, "model-dma", &s);

	/* A version without JSON, then a bare header. */
	s.len = 0;
	struct vfio_user_version bare = { .major = 0, .minor = 0 };
	msg(&s, 1, VFIO_USER_VERSION, 0, &bare, sizeof(bare));
	msg(&s, 2, VFIO_USER_DEVICE_GET_INFO, 0, &di, sizeof(di));
	save(dir, "bare-version", &s);

	hostile_seeds(dir, caps);
}

static void dma_map(struct seed *s, uint16_t id, uint64_t addr, uint64_t size, uint32_t flags)
{
	struct vfio_user_dma_map map = {
		.argsz = sizeof(map), .flags = flags, .offset = 0, .addr = addr, .size = size,
	};

	msg(s, id, VFIO_USER_DMA_MAP, 0, &map, sizeof(map));
}

static void dma_unmap(struct seed *s, uint16_t id, uint64_t addr, uint64_t size)
{
	struct vfio_user_dma_unmap um = { .argsz = sizeof(um), .addr = addr, .size = size };

	msg(s, id, VFIO_USER_DMA_UNMAP, 0, &um, sizeof(um));
}

/* The model's bulk DMA (test_model.h): its address, then the command; conn: B, FZ_SYNC or 0. */
static void model_dma(struct seed *s, uint16_t conn, uint64_t addr, uint32_t cmd)
{
	region_write(s, nid(s) | conn, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_BULK_DMA_ADDR, &addr, 8);
	region_write(s, nid(s) | conn, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_BULK_DMA, &cmd, 4);
}

static void memory_on(struct seed *s, uint16_t conn)
{
	const uint16_t mem = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;

	/* Synchronous: the other connection's accesses come after it. */
	region_write(s, nid(s) | conn | FZ_SYNC, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &mem,
		     2);
}

static void region_info(struct seed *s, uint16_t id, uint32_t index)
{
	struct vfio_user_region_info ri = { .argsz = 256, .index = index };

	msg(s, id, VFIO_USER_DEVICE_GET_REGION_INFO, 0, &ri, sizeof(ri));
}

static void low_power(struct seed *s, uint16_t id, uint32_t which)
{
	struct vfio_user_low_power_entry_with_wakeup w = { .wakeup_eventfd = 0 };

	feature(s, id, VFIO_DEVICE_FEATURE_SET | which, &w,
		which == VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP ? sizeof(w) : 0);
}

/* Seeds of hostile sessions: fds the client attacks, two clients, DMA answered. */
static void hostile_seeds(const char *dir, const char *caps)
{
	static const char small_xfer[] = "{\"capabilities\":{\"max_msg_fds\":8,"
					 "\"max_data_xfer_size\":16,\"twin_socket\":{\"supported\":true}}}";
	const uint32_t rd = 16, wr = TM_BULK_TO_CLIENT | 16;
	const uint32_t rw = VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE;
	const uint64_t cfg = 0x12345678;
	struct seed s = { .len = 0 };

	/*
	 * The client truncates the memfds behind its DMA windows: after the
	 * map (to 0, to half), before it (a race), and the kinds of fd that
	 * cannot be mapped at all.
	 */
	version(&s, caps);
	memory_on(&s, 0);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_MEMFD_TRUNC_AFTER), 0x100000, 0x10000, rw);
	model_dma(&s, 0, 0x100000, rd);
	model_dma(&s, 0, 0x100ff0, wr);
	dma_unmap(&s, nid(&s), 0x100000, 0x10000);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_MEMFD_SHRINK_AFTER), 0x200000, 0x10000, rw);
	model_dma(&s, 0, 0x200000, rd);
	model_dma(&s, 0, 0x208000, rd);
	model_dma(&s, 0, 0x207ff8, wr);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_MEMFD_TRUNC_NOW), 0x300000, 0x10000, rw);
	model_dma(&s, 0, 0x300000, rd);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_MEMFD_SEALED), 0x400000, 0x10000, rw);
	model_dma(&s, 0, 0x40fff0, wr);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_MEMFD_RDONLY), 0x500000, 0x10000, rw);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_MEMFD_RDONLY), 0x500000, 0x10000,
		VFIO_USER_DMA_F_READ);
	model_dma(&s, 0, 0x500000, rd);
	model_dma(&s, 0, 0x500000, wr);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_MEMFD_SMALL), 0x600000, 0x10000, rw);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_MEMFD_GROW_AFTER), 0x700000, 0x10000, rw);
	model_dma(&s, 0, 0x70fff0, wr);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_DEVNULL), 0x800000, 0x10000, rw);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_PIPE_READ), 0x900000, 0x10000, rw);
	dma_map(&s, nid(&s) | FDS(2) | MEMFD, 0xa00000, 0x10000, rw);
	save(dir, "dma-truncate", &s);

	/*
	 * The client truncates the BARs' memfds it got from GET_REGION_INFO,
	 * then the server reads and writes them; the BAR's memfd as a DMA
	 * window, which the server itself empties on low power entry.
	 */
	s.len = 0;
	version(&s, caps);
	memory_on(&s, 0);
	region_info(&s, nid(&s) | FZ_ACTION(FZ_BAR_TRUNCATE), VFIO_PCI_BAR0_REGION_INDEX);
	region_read(&s, nid(&s), VFIO_PCI_BAR0_REGION_INDEX, 0, 64);
	region_read(&s, nid(&s), VFIO_PCI_BAR0_REGION_INDEX, 0x3000, 64);
	region_write(&s, nid(&s), VFIO_PCI_BAR0_REGION_INDEX, 0x10, &cfg, 8);
	region_info(&s, nid(&s) | FZ_ACTION(FZ_BAR_SHRINK), VFIO_PCI_BAR4_REGION_INDEX);
	region_write(&s, nid(&s), VFIO_PCI_BAR4_REGION_INDEX, 0x1000, &cfg, 8);
	region_read(&s, nid(&s), VFIO_PCI_BAR4_REGION_INDEX, 0x1ff0, 16);
	region_info(&s, nid(&s) | FZ_ACTION(FZ_BAR_GROW), VFIO_PCI_BAR0_REGION_INDEX);
	region_read(&s, nid(&s), VFIO_PCI_BAR0_REGION_INDEX, 0x3ff0, 16);
	low_power(&s, nid(&s), VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY);
	region_info(&s, nid(&s) | FZ_ACTION(FZ_BAR_GROW), VFIO_PCI_BAR0_REGION_INDEX);
	low_power(&s, nid(&s), VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
	region_read(&s, nid(&s), VFIO_PCI_BAR0_REGION_INDEX, 0, 64);
	region_info(&s, nid(&s) | FZ_ACTION(FZ_BAR_TRUNCATE), VFIO_PCI_BAR0_REGION_INDEX);
	low_power(&s, nid(&s), VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY);
	low_power(&s, nid(&s), VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
	region_read(&s, nid(&s), VFIO_PCI_BAR0_REGION_INDEX, 0, 64);
	region_info(&s, nid(&s), VFIO_PCI_BAR0_REGION_INDEX);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_BAR), 0x100000, 0x4000, rw);
	dma_map(&s, nid(&s) | FDS(1) | KIND(FZ_BAR), 0x200000, 0x10000, rw);
	model_dma(&s, 0, 0x100000, rd);
	model_dma(&s, 0, 0x103ff0, wr);
	low_power(&s, nid(&s), VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY);
	model_dma(&s, 0, 0x100000, rd);
	low_power(&s, nid(&s), VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
	model_dma(&s, 0, 0x100000, rd);
	region_read(&s, nid(&s), VFIO_PCI_BAR0_REGION_INDEX, 0, 64);
	save(dir, "bar-truncate", &s);

	/*
	 * Two clients: B maps a window, A's request does DMA into it; A enters
	 * low power while B reads; B unmaps under A's DMA; B arms a wakeup A
	 * sets off.
	 */
	s.len = 0;
	version(&s, caps);
	s.buf[0] |= FZ_SYNC;
	msg(&s, 1 | B | FZ_SYNC, VFIO_USER_VERSION, 0, s.buf + 16, s.len - 16);
	memory_on(&s, 0);
	dma_map(&s, nid(&s) | B | FDS(1) | MEMFD | FZ_SYNC, 0x100000, 0x10000, rw);
	model_dma(&s, 0, 0x100000, wr | TM_BULK_OTHER_CONN);
	model_dma(&s, B, 0x100000, rd);
	low_power(&s, nid(&s) | FZ_SYNC, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY);
	region_read(&s, nid(&s) | B, VFIO_PCI_BAR2_REGION_INDEX, 0, 4);
	region_read(&s, nid(&s) | B, VFIO_PCI_CONFIG_REGION_INDEX, 0, 4);
	region_read(&s, nid(&s) | B, VFIO_PCI_BAR0_REGION_INDEX, 0, 16);
	msg(&s, nid(&s) | B | FZ_SYNC, VFPM_USER_POWER_STATUS, 0, NULL, 0);
	low_power(&s, nid(&s) | FZ_SYNC, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
	dma_unmap(&s, nid(&s) | B | FZ_SYNC, 0x100000, 0x10000);
	model_dma(&s, 0, 0x100000, rd | TM_BULK_OTHER_CONN);
	/* Without a wait: B's unmap and map race A's DMA into B's windows. */
	dma_map(&s, nid(&s) | B | FDS(1) | MEMFD, 0x100000, 0x10000, rw);
	model_dma(&s, 0, 0x100000, rd | TM_BULK_OTHER_CONN);
	dma_unmap(&s, nid(&s) | B, 0x100000, 0x10000);
	model_dma(&s, 0, 0x100000, wr | TM_BULK_OTHER_CONN);
	low_power(&s, nid(&s) | B | FDS(1) | FZ_SYNC, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP);
	region_read(&s, nid(&s) | FZ_SYNC, VFIO_PCI_BAR0_REGION_INDEX, 0, 16);
	low_power(&s, nid(&s) | B | FZ_SYNC, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
	/* Both fill their windows: 8 for A (its max_dma_maps), the rest of the budget for B. */
	for (uint64_t i = 0; i < 9; i++)
		dma_map(&s, nid(&s) | FDS(1) | MEMFD | FZ_SYNC, 0x1000000 + i * 0x10000, 0x10000,
			rw);
	for (uint64_t i = 0; i < 6; i++)
		dma_map(&s, nid(&s) | B | FDS(1) | MEMFD | FZ_SYNC, 0x1000000 + i * 0x10000,
			0x10000, rw);
	dma_unmap(&s, nid(&s) | FZ_SYNC, 0x1000000, 0x10000);
	dma_map(&s, nid(&s) | B, 0x2000000, 0x10000, rw);
	save(dir, "two-clients", &s);

	/*
	 * The device's own DMA (vfpm_pci_dma_*): into the memory of the client
	 * that last turned Bus Master Enable on, while that client truncates,
	 * unmaps, turns it off, goes away.
	 */
	s.len = 0;
	version(&s, caps);
	s.buf[0] |= FZ_SYNC;
	msg(&s, 1 | B | FZ_SYNC, VFIO_USER_VERSION, 0, s.buf + 16, s.len - 16);
	memory_on(&s, 0);
	dma_map(&s, nid(&s) | FDS(1) | MEMFD, 0x100000, 0x10000, rw);
	model_dma(&s, 0, 0x100000, rd | TM_BULK_DEVICE);
	model_dma(&s, FZ_SYNC, 0x100ff0, wr | TM_BULK_DEVICE);
	dma_map(&s, nid(&s) | B | FDS(1) | KIND(FZ_MEMFD_TRUNC_AFTER), 0x100000, 0x10000, rw);
	memory_on(&s, B);
	model_dma(&s, 0, 0x100000, rd | TM_BULK_DEVICE);
	model_dma(&s, FZ_SYNC, 0x100000, wr | TM_BULK_DEVICE);
	dma_unmap(&s, nid(&s) | B | FZ_SYNC, 0x100000, 0x10000);
	model_dma(&s, FZ_SYNC, 0x100000, rd | TM_BULK_DEVICE);
	const uint16_t no_master = PCI_COMMAND_MEMORY;
	region_write(&s, nid(&s) | B | FZ_SYNC, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
		     &no_master, 2);
	model_dma(&s, FZ_SYNC, 0x100000, rd | TM_BULK_DEVICE);
	dma_map(&s, nid(&s) | B | FDS(1) | MEMFD, 0x200000, 0x10000, rw);
	memory_on(&s, B);
	/* Without waits: B goes away (its input ends) under A's DMA into its memory. */
	for (unsigned int i = 0; i < 4; i++)
		model_dma(&s, 0, 0x200000, (i & 1 ? wr : rd) | TM_BULK_DEVICE);
	save(dir, "device-dma", &s);

	/*
	 * DMA through the twin socket: A answers correctly in 16-byte pieces,
	 * B with hostile replies; then A with error replies.
	 */
	s.len = 0;
	version(&s, small_xfer);
	s.buf[0] |= FZ_ACTION(FZ_TWIN_ANSWER);
	msg(&s, 1 | B | FZ_ACTION(FZ_TWIN_HOSTILE), VFIO_USER_VERSION, 0, s.buf + 16, s.len - 16);
	dma_map(&s, nid(&s), 0x100000, 0x10000, rw);
	dma_map(&s, nid(&s) | B | FZ_SYNC, 0x100000, 0x10000, rw);
	memory_on(&s, 0);
	model_dma(&s, 0, 0x100000, 40);
	model_dma(&s, FZ_SYNC, 0x100000, TM_BULK_TO_CLIENT | 40);
	for (unsigned int i = 0; i < 3; i++) {
		model_dma(&s, B, 0x100000, rd);
		model_dma(&s, B, 0x100000, wr);
	}
	model_dma(&s, 0, 0x100000, rd | TM_BULK_OTHER_CONN);
	model_dma(&s, 0, 0x100000, rd | TM_BULK_DEVICE);
	model_dma(&s, 0, 0x100000, wr | TM_BULK_DEVICE);
	save(dir, "twin-dma", &s);

	s.len = 0;
	version(&s, caps);
	s.buf[0] |= FZ_ACTION(FZ_TWIN_ERROR);
	dma_map(&s, nid(&s), 0x100000, 0x10000, rw);
	memory_on(&s, 0);
	for (unsigned int i = 0; i < 4; i++)
		model_dma(&s, 0, 0x100000, i & 1 ? wr : rd);
	save(dir, "twin-error", &s);

	/*
	 * Fds the commands do not expect: more than max_msg_fds, fds that are
	 * not eventfds, full eventfds the device signals.
	 */
	s.len = 0;
	version(&s, caps);
	dma_map(&s, nid(&s) | FZ_MANY | MEMFD, 0x100000, 0x10000, rw);
	struct vfio_user_irq_set set = {
		.argsz = sizeof(set), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 3,
	};
	msg(&s, nid(&s) | FDS(3) | KIND(FZ_MIX), VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set));
	set.count = 2;
	msg(&s, nid(&s) | FDS(2) | KIND(FZ_EVENTFD_FULL), VFIO_USER_DEVICE_SET_IRQS, 0, &set,
	    sizeof(set));
	set.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	msg(&s, nid(&s), VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set));
	set = (struct vfio_user_irq_set){
		.argsz = sizeof(set), .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_INTX_IRQ_INDEX, .count = 1,
	};
	msg(&s, nid(&s) | FDS(1) | KIND(FZ_SOCKET), VFIO_USER_DEVICE_SET_IRQS, 0, &set, sizeof(set));
	set.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK;
	msg(&s, nid(&s) | FDS(1) | KIND(FZ_EVENTFD_FULL), VFIO_USER_DEVICE_SET_IRQS, 0, &set,
	    sizeof(set));
	low_power(&s, nid(&s) | FDS(1) | KIND(FZ_PIPE_WRITE),
		  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP);
	low_power(&s, nid(&s) | FDS(1) | KIND(FZ_DEVNULL),
		  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP);
	low_power(&s, nid(&s) | FZ_MANY | FDS(3), VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP);
	low_power(&s, nid(&s) | FDS(1) | KIND(FZ_EVENTFD_FULL),
		  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP);
	region_read(&s, nid(&s), VFIO_PCI_CONFIG_REGION_INDEX, 0, 4);
	msg(&s, nid(&s) | FZ_MANY | FDS(2) | KIND(FZ_MIX), VFIO_USER_DEVICE_RESET, 0, NULL, 0);
	save(dir, "odd-fds", &s);

	/*
	 * Deadlines: A begins a message and stops (the stall bits), B never
	 * says VERSION at all.
	 */
	s.len = 0;
	version(&s, caps);
	struct vfio_user_header half = {
		.msg_id = FZ_STALL, .command = VFIO_USER_REGION_READ, .msg_size = 32,
	};
	put(&s, &half, sizeof(half));
	save(dir, "deadlines", &s);
}

/* fuzz_feature's format: u8 op, u8 fd spec, u16 in_len, u16 cap, arg. */
static void fop(struct seed *s, uint8_t op, uint8_t spec, const void *arg, uint16_t len,
		uint16_t cap)
{
	put(s, &op, 1);
	put(s, &spec, 1);
	put(s, &len, 2);
	put(s, &cap, 2);
	if (len)
		put(s, arg, len);
}

static void ffeature(struct seed *s, uint8_t spec, uint32_t flags, const void *data, size_t len)
{
	uint8_t buf[64];
	struct vfio_device_feature f = { .argsz = (uint32_t)(sizeof(f) + len), .flags = flags };

	memcpy(buf, &f, sizeof(f));
	memset(buf + sizeof(f), 0, len);
	if (data)
		memcpy(buf + sizeof(f), data, len);
	fop(s, 0, spec, buf, (uint16_t)(sizeof(f) + len), (uint16_t)(sizeof(f) + len));
}

static void feature_seeds(const char *dir)
{
	/* Op numbers: 0-3 FEATURE, 4 SET_IRQS, 5 REGION_INFO, 6 IRQ_INFO, 7 INFO, 8 RESET, 9 wait. */
	struct vfio_device_low_power_entry_with_wakeup w = { .wakeup_eventfd = 0 };
	struct seed s = { .len = 0 };

	ffeature(&s, 0, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
		 VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, NULL, 0);
	ffeature(&s, 0, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, NULL, 0);
	fop(&s, 9, 0, NULL, 0, 0);
	ffeature(&s, 0, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL, 0);
	save(dir, "entry-exit", &s);

	s.len = 0;
	ffeature(&s, 1, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
		 &w, sizeof(w));
	fop(&s, 9, 0, NULL, 0, 0);
	struct vfio_device_info di = { .argsz = sizeof(di) };
	fop(&s, 7, 0, &di, sizeof(di), sizeof(di));
	ffeature(&s, 1, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
		 &w, sizeof(w));
	w.wakeup_eventfd = 1;
	ffeature(&s, 2 | (2 << 4), VFIO_DEVICE_FEATURE_SET |
		 VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, &w, sizeof(w));
	save(dir, "wakeup", &s);

	s.len = 0;
	ffeature(&s, 0, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 8);
	ffeature(&s, 0, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET |
		 VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, NULL, 16);
	struct vfio_irq_set set = {
		.argsz = sizeof(set) + 8, .flags = VFIO_IRQ_SET_DATA_EVENTFD |
		VFIO_IRQ_SET_ACTION_TRIGGER, .index = VFIO_PCI_MSIX_IRQ_INDEX, .count = 2,
	};
	const int32_t fdnums[2] = { 0, 1 };
	uint8_t setbuf[sizeof(set) + sizeof(fdnums)];

	memcpy(setbuf, &set, sizeof(set));
	memcpy(setbuf + sizeof(set), fdnums, sizeof(fdnums));
	fop(&s, 4, 2, setbuf, sizeof(setbuf), sizeof(setbuf));
	struct vfio_region_info ri = { .argsz = 256, .index = VFIO_PCI_BAR4_REGION_INDEX };
	fop(&s, 5, 0, &ri, sizeof(ri), 256);
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_MSI_IRQ_INDEX };
	fop(&s, 6, 0, &ii, sizeof(ii), sizeof(ii));
	fop(&s, 8, 0, NULL, 0, 0);
	save(dir, "other-ioctls", &s);
}

/* fuzz_config's format: build bytes, then u8 op, u16 offset, u8 size, u32 value. */
static void cop(struct seed *s, uint8_t op, uint16_t off, uint8_t size, uint32_t value)
{
	put(s, &op, 1);
	put(s, &off, 2);
	put(s, &size, 1);
	put(s, &value, 4);
}

static void config_seeds(const char *dir)
{
	/* device id, revision, pin, caps (all but NoSoftReset), 6 BARs, msi, msix x3, pcie. */
	static const uint8_t build[] = {
		0xf1, 0x00, 1, 1, 0xfd,
		1 | (2 << 2), 0, 1 | (2 << 2), 0, 2 | (3 << 2), 0,
		2, 4, 0, 4, 5,
	};
	struct seed s = { .len = 0 };
	/* sizes: index 0:1, 1:2, 2:4 */

	put(&s, build, sizeof(build));
	cop(&s, 0, PCI_COMMAND, 1, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cop(&s, 0, PCI_BASE_ADDRESS_0, 2, 0xffffffff);
	cop(&s, 2, PCI_BASE_ADDRESS_0, 2, 0);
	cop(&s, 0, PCI_BASE_ADDRESS_0, 2, 0xfe000000);
	cop(&s, 0, PCI_STATUS, 1, 0xffff);
	cop(&s, 3, 0x40, 3, 0xff);
	cop(&s, 4, 0, 15, 0);
	cop(&s, 10, 0, 0, 0);
	cop(&s, 11, 0, 0, 0);
	save(dir, "header", &s);

	s.len = 0;
	put(&s, build, sizeof(build));
	/* The PM capability comes first, at 0x40: PMCSR D3hot and back. */
	cop(&s, 0, 0x44, 1, 3);
	cop(&s, 2, 0x44, 1, 0);
	cop(&s, 0, 0x44, 1, 0x100);
	cop(&s, 9, 0, 0, 0);
	cop(&s, 0, 0x44, 1, 0x8100);
	cop(&s, 8, 0, 0, 1);
	cop(&s, 8, 0, 0, 0);
	cop(&s, 7, 0, 0, 0);
	save(dir, "power", &s);

	s.len = 0;
	put(&s, build, sizeof(build));
	/* MSI at 0x48: control, address, data; MSI-X after it; PCIe FLR. */
	cop(&s, 0, 0x4a, 1, 0x71);
	cop(&s, 0, 0x4c, 2, 0xfee00000);
	cop(&s, 0, 0x54, 1, 0x4041);
	cop(&s, 10, 0, 0, 0);
	cop(&s, 0, 0x5e, 1, 0xc000);
	cop(&s, 0, 0x6c, 1, 0x8000);
	cop(&s, 5, 0x06, 1, 0x10);
	save(dir, "msi-msix-pcie", &s);
}

int main(int argc, char **argv)
{
	char path[512];

	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds DIR\n");
		return 2;
	}
	const char *names[] = { "server", "feature", "config" };
	for (unsigned int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", argv[1], names[i]);
		mkdir(argv[1], 0755);
		if (mkdir(path, 0755) && errno != EEXIST) {
			perror(path);
			return 1;
		}
	}
	snprintf(path, sizeof(path), "%s/server", argv[1]);
	server_seeds(path);
	snprintf(path, sizeof(path), "%s/feature", argv[1]);
	feature_seeds(path);
	snprintf(path, sizeof(path), "%s/config", argv[1]);
	config_seeds(path);
	return 0;
}
