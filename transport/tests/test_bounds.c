// SPDX-License-Identifier: MIT
/*
 * The bad-input catalogue, continued from test_malformed.c: sizes, offsets
 * and counts at and one past every bound, and values whose sums overflow,
 * fds of the wrong kind.  Each case checks the error (or the exact partial
 * result at a bound) and that the device state did not change: config
 * space, BAR2 contents, low power, and the connection keeps serving.
 */
#include "test_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

struct bfix {
	struct tfix *f;
	int sock;
	uint16_t id;
	uint8_t config[256];		/* the state every case must leave as it was */
	uint8_t bar2[64];
};

static void snapshot(struct tfix *f, uint8_t *config, uint8_t *bar2)
{
	struct vfpm_client *c = tfix_connect(f);

	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, 0, config, 256),
			 256);
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR2_REGION_INDEX, 0x100, bar2, 64),
			 64);
	vfpm_client_close(c);
	tfix_wait_conns(f, 1);
}

static int bfix_setup(void **state)
{
	struct bfix *b = calloc(1, sizeof(*b));
	uint32_t v = 0x5eed;

	assert_non_null(b);
	tfix_setup((void **)&b->f);
	b->sock = raw_connect(b->f->path);
	raw_version(b->sock);
	b->id = 100;
	/* Its first device command opens the device: it stays open, and configured, throughout. */
	struct vfio_user_device_info info = { .argsz = sizeof(info) };

	assert_int_equal(raw_send(b->sock, 99, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info),
				  NULL, 0), 0);
	assert_int_equal(raw_expect_ok(b->sock, 99, VFIO_USER_DEVICE_GET_INFO), sizeof(info));
	/* Memory on, a known word in BAR2. */
	struct vfpm_client *c = tfix_connect(b->f);

	t_enable_memory(c);
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_BAR2_REGION_INDEX, 0x100, &v, 4), 4);
	vfpm_client_close(c);
	tfix_wait_conns(b->f, 1);
	snapshot(b->f, b->config, b->bar2);
	*state = b;
	return 0;
}

/* Nothing changed, and the connection still serves. */
static void unchanged(struct bfix *b)
{
	uint8_t config[256], bar2[64];
	struct vfio_user_device_info info = { .argsz = sizeof(info) };

	assert_false(vfpm_pci_low_power_engaged(b->f->model->pdev));
	snapshot(b->f, config, bar2);
	assert_memory_equal(config, b->config, sizeof(config));
	assert_memory_equal(bar2, b->bar2, sizeof(bar2));
	assert_int_equal(raw_send(b->sock, 9999, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info),
				  NULL, 0), 0);
	assert_int_equal(raw_expect_ok(b->sock, 9999, VFIO_USER_DEVICE_GET_INFO), sizeof(info));
}

static int bfix_teardown(void **state)
{
	struct bfix *b = *state;

	unchanged(b);
	close(b->sock);
	tfix_wait_conns(b->f, 0);
	tfix_teardown((void **)&b->f);
	free(b);
	return 0;
}

/* Send a request and expect the error reply err (0: success, its payload length returned). */
static size_t req(struct bfix *b, uint16_t cmd, const void *payload, size_t len, const int *fds,
		  unsigned int nfds, int err)
{
	uint16_t id = b->id++;

	assert_int_equal(raw_send(b->sock, id, cmd, 0, payload, len, fds, nfds), 0);
	if (err) {
		raw_expect_error(b->sock, id, cmd, err);
		return 0;
	}
	return raw_expect_ok(b->sock, id, cmd);
}

static size_t region_read(struct bfix *b, uint32_t region, uint64_t offset, uint32_t count,
			  int err)
{
	struct vfio_user_region_access a = { .offset = offset, .region = region, .count = count };

	return req(b, VFIO_USER_REGION_READ, &a, sizeof(a), NULL, 0, err);
}

static void region_write(struct bfix *b, uint32_t region, uint64_t offset, uint32_t count,
			 int err)
{
	uint8_t buf[sizeof(struct vfio_user_region_access) + 64] = { 0 };
	struct vfio_user_region_access a = { .offset = offset, .region = region, .count = count };

	assert_true(count <= 64);
	memcpy(buf, &a, sizeof(a));
	memset(buf + sizeof(a), 0xee, count);
	req(b, VFIO_USER_REGION_WRITE, buf, sizeof(a) + count, NULL, 0, err);
}

/* Region offsets and counts at and past the config space, BARs and the 40-bit space. */
static void test_region_bounds(void **state)
{
	struct bfix *b = *state;
	const size_t hdr = sizeof(struct vfio_user_region_access);

	/* Config space: the last dword reads, one byte further does not. */
	assert_int_equal(region_read(b, VFIO_PCI_CONFIG_REGION_INDEX, 4092, 4, 0), hdr + 4);
	region_read(b, VFIO_PCI_CONFIG_REGION_INDEX, 4093, 4, EFAULT);
	region_read(b, VFIO_PCI_CONFIG_REGION_INDEX, 4096, 1, EFAULT);
	region_write(b, VFIO_PCI_CONFIG_REGION_INDEX, 4094, 4, EFAULT);
	/* A BAR access running off the end is cut at the end (vfio-pci's short read). */
	assert_int_equal(region_read(b, VFIO_PCI_BAR2_REGION_INDEX, TM_BAR2_SIZE - 2, 4, 0),
			 hdr + 2);
	region_read(b, VFIO_PCI_BAR2_REGION_INDEX, TM_BAR2_SIZE, 4, EINVAL);
	region_write(b, VFIO_PCI_BAR2_REGION_INDEX, TM_BAR2_SIZE, 4, EINVAL);
	/* Unimplemented BARs, ROM, VGA, the largest index, past it. */
	region_read(b, VFIO_PCI_BAR1_REGION_INDEX, 0, 4, EINVAL);
	region_read(b, VFIO_PCI_ROM_REGION_INDEX, 0, 4, EINVAL);
	region_read(b, VFIO_PCI_VGA_REGION_INDEX, 0, 4, EINVAL);
	region_read(b, (1u << 24) - 1, 0, 4, EINVAL);
	region_read(b, UINT32_MAX, 0, 4, EINVAL);
	/* The 40-bit offset space: the last bytes, across its end, and wrapping 64 bits. */
	region_read(b, VFIO_PCI_BAR0_REGION_INDEX, (1ull << 40) - 4, 4, EINVAL);
	region_read(b, VFIO_PCI_BAR0_REGION_INDEX, (1ull << 40) - 2, 4, EINVAL);
	region_read(b, VFIO_PCI_BAR0_REGION_INDEX, UINT64_MAX - 1, 4, EINVAL);
	region_write(b, VFIO_PCI_BAR2_REGION_INDEX, UINT64_MAX - 1, 4, EINVAL);
	/* Count at max_data_xfer_size reads; zero-length accesses do nothing. */
	assert_int_equal(region_read(b, VFIO_PCI_BAR0_REGION_INDEX, 0, T_MAX_XFER, 0),
			 hdr + T_MAX_XFER);
	assert_int_equal(region_read(b, VFIO_PCI_CONFIG_REGION_INDEX, 0, 0, 0), hdr);
	region_write(b, VFIO_PCI_CONFIG_REGION_INDEX, 0, 0, 0);
}

static void test_write_multi_bounds(void **state)
{
	struct bfix *b = *state;
	struct {
		struct vfio_user_write_multi_hdr h;
		struct vfio_user_write_multi_entry e[2];
	} __attribute__((packed)) wm = { .h = { .wr_cnt = 2 } };

	/* The first write is valid, the second not: neither happens. */
	wm.e[0] = (struct vfio_user_write_multi_entry){
		.offset = 0x100, .region = VFIO_PCI_BAR2_REGION_INDEX, .count = 4, .data = { 1, 2 } };
	wm.e[1] = wm.e[0];
	wm.e[1].count = VFIO_USER_MULTI_DATA + 1;
	req(b, VFIO_USER_REGION_WRITE_MULTI, &wm, sizeof(wm), NULL, 0, EINVAL);
	wm.e[1].count = 0;
	req(b, VFIO_USER_REGION_WRITE_MULTI, &wm, sizeof(wm), NULL, 0, EINVAL);
	wm.e[1].count = 4;
	wm.e[1].offset = 1ull << 40;
	req(b, VFIO_USER_REGION_WRITE_MULTI, &wm, sizeof(wm), NULL, 0, EINVAL);
	wm.e[1].offset = 0;
	wm.e[1].region = 1u << 24;
	req(b, VFIO_USER_REGION_WRITE_MULTI, &wm, sizeof(wm), NULL, 0, EINVAL);
	/* Counts: 0, more than the entries sent, past the maximum, and one that wraps 24 * n. */
	wm.e[1] = wm.e[0];
	static const uint64_t counts[] = {
		0, 3, VFIO_USER_MULTI_MAX + 1, (UINT64_MAX / 24) + 1, UINT64_MAX,
		0x2000000000000002ull,	/* 24 * this wraps to 48: the bytes of the two entries */
	};
	for (unsigned int i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		wm.h.wr_cnt = counts[i];
		req(b, VFIO_USER_REGION_WRITE_MULTI, &wm, sizeof(wm), NULL, 0, EINVAL);
	}
}

static void test_set_irqs_bounds(void **state)
{
	struct bfix *b = *state;
	int efd = t_eventfd(), memfd = memfd_create("wrong-kind", MFD_CLOEXEC);
	struct vfio_user_irq_set set = {
		.argsz = sizeof(set), .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX,
	};

	assert_true(memfd >= 0);
	/* start + count past the vectors, and wrapping 32 bits. */
	set.start = TM_MSIX_VECTORS - 1;
	set.count = 2;
	req(b, VFIO_USER_DEVICE_SET_IRQS, &set, sizeof(set), NULL, 0, EINVAL);
	set.start = UINT32_MAX;
	set.count = 2;
	req(b, VFIO_USER_DEVICE_SET_IRQS, &set, sizeof(set), NULL, 0, EINVAL);
	/* Eventfd data: a count the server will not build, an fd that is not an eventfd. */
	set.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	set.start = 0;
	set.count = 65537;
	req(b, VFIO_USER_DEVICE_SET_IRQS, &set, sizeof(set), NULL, 0, EINVAL);
	set.count = 1;
	req(b, VFIO_USER_DEVICE_SET_IRQS, &set, sizeof(set), &memfd, 1, EINVAL);
	/* Index past the last, and a vector past the last with a real eventfd. */
	set.index = VFIO_PCI_NUM_IRQS;
	req(b, VFIO_USER_DEVICE_SET_IRQS, &set, sizeof(set), &efd, 1, EINVAL);
	set.index = VFIO_PCI_MSIX_IRQ_INDEX;
	set.start = TM_MSIX_VECTORS;
	req(b, VFIO_USER_DEVICE_SET_IRQS, &set, sizeof(set), &efd, 1, EINVAL);
	/* Bool data with a count larger than its bytes, and one that wraps. */
	set.flags = VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER;
	set.start = 0;
	set.count = UINT32_MAX;
	req(b, VFIO_USER_DEVICE_SET_IRQS, &set, sizeof(set), NULL, 0, EINVAL);
	close(efd);
	close(memfd);
}

static void test_info_bounds(void **state)
{
	struct bfix *b = *state;
	struct vfio_user_region_info ri = { .argsz = sizeof(ri) };
	struct vfio_user_irq_info ii = { .argsz = sizeof(ii) };

	ri.index = VFIO_PCI_NUM_REGIONS;
	req(b, VFIO_USER_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0, EINVAL);
	ri.index = UINT32_MAX;
	req(b, VFIO_USER_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0, EINVAL);
	/* A huge argsz is room, not a size: the reply is what the region needs. */
	ri.index = VFIO_PCI_BAR2_REGION_INDEX;
	ri.argsz = UINT32_MAX;
	assert_int_equal(req(b, VFIO_USER_DEVICE_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0, 0),
			 sizeof(ri));
	ii.index = VFIO_PCI_NUM_IRQS;
	req(b, VFIO_USER_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), NULL, 0, EINVAL);
	ii.index = UINT32_MAX;
	req(b, VFIO_USER_DEVICE_GET_IRQ_INFO, &ii, sizeof(ii), NULL, 0, EINVAL);
}

/* Feature 4's request: header and data in one buffer. */
struct feature4 {
	struct {
		uint32_t argsz;
		uint32_t flags;
	} f;
	struct vfio_user_low_power_entry_with_wakeup w;
};

static size_t feature4_req(struct bfix *b, const struct feature4 *ft, size_t len, const int *fds,
			   unsigned int nfds, int err)
{
	uint8_t buf[sizeof(ft->f) + sizeof(ft->w)];

	memcpy(buf, &ft->f, sizeof(ft->f));
	memcpy(buf + sizeof(ft->f), &ft->w, sizeof(ft->w));
	assert_true(len <= sizeof(buf));
	return req(b, VFIO_USER_DEVICE_FEATURE, buf, len, fds, nfds, err);
}

static void test_feature_bounds(void **state)
{
	struct bfix *b = *state;
	const size_t full = sizeof(struct feature4);
	struct feature4 ft = {
		.f = { .flags = VFIO_DEVICE_FEATURE_SET |
		       VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP },
	};
	int efd = t_eventfd(), memfd = memfd_create("wrong-kind", MFD_CLOEXEC);

	/* argsz one short of the header, one short of feature 4's data. */
	ft.f.argsz = 7;
	feature4_req(b, &ft, full, &efd, 1, EINVAL);
	ft.f.argsz = 15;
	feature4_req(b, &ft, full, &efd, 1, EINVAL);
	/* argsz promising data the message does not carry. */
	ft.f.argsz = UINT32_MAX;
	feature4_req(b, &ft, sizeof(ft.f), &efd, 1, EFAULT);
	/* The index at the fd count, the largest index, an fd of the wrong kind. */
	ft.f.argsz = (uint32_t)full;
	ft.w.wakeup_eventfd = 1;
	feature4_req(b, &ft, full, &efd, 1, EBADF);
	ft.w.wakeup_eventfd = INT32_MAX;
	feature4_req(b, &ft, full, &efd, 1, EBADF);
	ft.w.wakeup_eventfd = INT32_MIN;
	feature4_req(b, &ft, full, &efd, 1, EINVAL);
	ft.w.wakeup_eventfd = 0;
	feature4_req(b, &ft, full, &memfd, 1, EINVAL);
	/* The highest feature index, and flag bits just past PROBE. */
	ft.f.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MASK;
	feature4_req(b, &ft, full, NULL, 0, ENOTTY);
	ft.f.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY |
		     (VFIO_DEVICE_FEATURE_PROBE << 1);
	feature4_req(b, &ft, full, NULL, 0, EINVAL);
	/* A payload larger than any reply the server builds. */
	static uint8_t big[T_MAX_XFER + 1];

	memcpy(big, &ft.f, sizeof(ft.f));
	req(b, VFIO_USER_DEVICE_FEATURE, big, sizeof(big), NULL, 0, EINVAL);
	close(efd);
	close(memfd);
}

static void test_dma_bounds(void **state)
{
	struct bfix *b = *state;
	struct vfio_user_dma_map map = {
		.argsz = sizeof(map), .flags = VFIO_USER_DMA_F_READ,
	};
	struct vfio_user_dma_unmap um = { .argsz = sizeof(um) };

	/* Wrapping the 64-bit space, ending exactly at it, zero size. */
	map.addr = UINT64_MAX - 0xfff;
	map.size = 0x2000;
	req(b, VFIO_USER_DMA_MAP, &map, sizeof(map), NULL, 0, EINVAL);
	map.size = 0;
	req(b, VFIO_USER_DMA_MAP, &map, sizeof(map), NULL, 0, EINVAL);
	map.addr = 0x1000;
	map.size = 0x1000;
	map.flags = VFIO_USER_DMA_F_READ | 4;
	req(b, VFIO_USER_DMA_MAP, &map, sizeof(map), NULL, 0, EINVAL);
	um.addr = UINT64_MAX - 0xfff;
	um.size = 0x2000;
	req(b, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0, EINVAL);
	um.addr = 0x1000;
	um.size = 0x1000;
	um.argsz = sizeof(um) - 1;
	req(b, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0, EINVAL);
	um.argsz = sizeof(um);
	um.flags = 1;	/* GET_DIRTY_BITMAP: no dirty tracking here */
	req(b, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0, EINVAL);
	um.flags = 4;	/* VADDR */
	req(b, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0, EINVAL);
	/* ALL (2) goes with address and size 0 only. */
	um.flags = 2;
	req(b, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0, EINVAL);
	um.addr = um.size = 0;
	req(b, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0, 0);
	/* A range to the very end of the 64-bit space is a range (with nothing in it). */
	um.flags = 0;
	um.addr = UINT64_MAX - 0xfff;
	um.size = 0x1000;
	req(b, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0, ENOENT);
	um.addr = 0x1000;
	um.size = 0 - um.addr;
	req(b, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0, ENOENT);
}

/* Write a BAR2 register of the test model through the raw connection. */
static void bar2_write(struct bfix *b, uint64_t off, uint32_t v)
{
	uint8_t buf[sizeof(struct vfio_user_region_access) + 4];
	struct vfio_user_region_access a = {
		.offset = off, .region = VFIO_PCI_BAR2_REGION_INDEX, .count = 4,
	};

	memcpy(buf, &a, sizeof(a));
	memcpy(buf + sizeof(a), &v, 4);
	req(b, VFIO_USER_REGION_WRITE, buf, sizeof(buf), NULL, 0, 0);
}

/*
 * A window longer than the file behind it (or at an offset past its end):
 * the model's DMA into the part past the end would fault (SIGBUS) and kill
 * the server, so the map is refused.  Found by fuzz/fuzz_server.
 */
static void test_dma_window_past_file(void **state)
{
	struct bfix *b = *state;
	struct vfio_user_dma_map map = {
		.argsz = sizeof(map), .flags = VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE,
		.addr = 0x100000, .size = 0x2000,
	};
	struct vfio_user_dma_unmap um = { .argsz = sizeof(um), .addr = 0x100000, .size = 0x1000 };
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	int fd = memfd_create("guest", MFD_CLOEXEC);
	int keep = b->sock;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 0x1000), 0);
	/* A connection of its own: its open makes it the one the model does DMA for. */
	b->sock = raw_connect(b->f->path);
	raw_version(b->sock);
	req(b, VFIO_USER_DEVICE_GET_INFO, &info, sizeof(info), NULL, 0, 0);
	req(b, VFIO_USER_DMA_MAP, &map, sizeof(map), &fd, 1, EINVAL);
	map.size = 0x1000;
	map.offset = 0x1000;
	req(b, VFIO_USER_DMA_MAP, &map, sizeof(map), &fd, 1, EINVAL);
	map.offset = UINT64_MAX & ~0xfffull;
	req(b, VFIO_USER_DMA_MAP, &map, sizeof(map), &fd, 1, EINVAL);
	/* Exactly the file: mapped, and the model reaches its last word. */
	map.offset = 0;
	req(b, VFIO_USER_DMA_MAP, &map, sizeof(map), &fd, 1, 0);
	bar2_write(b, TM_REG_DMA_ADDR, 0x100ffc);
	bar2_write(b, TM_REG_DMA_ADDR + 4, 0);
	bar2_write(b, TM_REG_DMA_CMD, TM_DMA_READ);
	assert_int_equal(b->f->model->regs[TM_REG_DMA_STATUS / 4], 0);
	req(b, VFIO_USER_DMA_UNMAP, &um, sizeof(um), NULL, 0, 0);
	close(fd);
	close(b->sock);
	b->sock = keep;
	tfix_wait_conns(b->f, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_region_bounds, bfix_setup, bfix_teardown),
		cmocka_unit_test_setup_teardown(test_write_multi_bounds, bfix_setup, bfix_teardown),
		cmocka_unit_test_setup_teardown(test_set_irqs_bounds, bfix_setup, bfix_teardown),
		cmocka_unit_test_setup_teardown(test_info_bounds, bfix_setup, bfix_teardown),
		cmocka_unit_test_setup_teardown(test_feature_bounds, bfix_setup, bfix_teardown),
		cmocka_unit_test_setup_teardown(test_dma_bounds, bfix_setup, bfix_teardown),
		cmocka_unit_test_setup_teardown(test_dma_window_past_file, bfix_setup, bfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
