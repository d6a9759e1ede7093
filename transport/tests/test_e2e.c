// SPDX-License-Identifier: MIT
/*
 * End to end over real AF_UNIX sockets: every command through the client
 * library against the in-process server and the test device model.
 */
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "negotiate.h"

static uint32_t bar2_read(struct vfpm_client *c, uint64_t reg)
{
	uint32_t v = 0;

	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR2_REGION_INDEX, reg, &v, 4), 4);
	return v;
}

static void bar2_write(struct vfpm_client *c, uint64_t reg, uint32_t v)
{
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_BAR2_REGION_INDEX, reg, &v, 4), 4);
}

/* VERSION by hand: the reply's numbers and capabilities; unknown ones are ignored. */
static void test_version_negotiation(void **state)
{
	static const char json[] =
		"{\"capabilities\":{\"max_msg_fds\":4,\"max_data_xfer_size\":4096,"
		"\"pgsizes\":12288,\"write_multiple\":true,\"migration\":{\"pgsize\":4096},"
		"\"twin_socket\":{\"supported\":false},\"future_cap\":[1,2,3]},\"other\":1}";
	struct tfix *f = *state;
	uint8_t buf[sizeof(struct vfio_user_version) + sizeof(json)];
	struct vfio_user_version ver = { .major = 0, .minor = 7 };
	struct vfpm_caps caps;
	struct vfpm_msg m;
	int sock = raw_connect(f->path);

	memcpy(buf, &ver, sizeof(ver));
	memcpy(buf + sizeof(ver), json, sizeof(json));
	assert_int_equal(raw_send(sock, 1, VFIO_USER_VERSION, 0, buf, sizeof(buf), NULL, 0), 0);
	raw_recv(sock, &m);
	assert_int_equal(m.hdr.flags, VFIO_USER_F_TYPE_REPLY);
	assert_true(m.len > sizeof(ver));
	memcpy(&ver, m.payload, sizeof(ver));
	assert_int_equal(ver.major, 0);
	assert_int_equal(ver.minor, VFIO_USER_MINOR);
	/* NUL-terminated JSON. */
	assert_int_equal(((char *)m.payload)[m.len - 1], '\0');
	vfpm_caps_defaults(&caps);
	assert_int_equal(vfpm_caps_parse((char *)m.payload + sizeof(ver), m.len - sizeof(ver),
					 &caps), 0);
	assert_int_equal(caps.max_msg_fds, T_MAX_FDS);
	assert_int_equal(caps.max_data_xfer_size, T_MAX_XFER);
	assert_int_equal(caps.max_dma_maps, T_MAX_DMA_MAPS);
	assert_int_equal(caps.pgsizes, 12288);
	assert_true(caps.write_multiple);
	vfpm_msg_release(&m);
	close(sock);

	/* An older minor is answered with itself; no JSON at all means defaults. */
	sock = raw_connect(f->path);
	ver = (struct vfio_user_version){ .major = 0, .minor = 0 };
	assert_int_equal(raw_send(sock, 2, VFIO_USER_VERSION, 0, &ver, sizeof(ver), NULL, 0), 0);
	raw_recv(sock, &m);
	assert_int_equal(m.hdr.flags, VFIO_USER_F_TYPE_REPLY);
	memcpy(&ver, m.payload, sizeof(ver));
	assert_int_equal(ver.minor, 0);
	vfpm_caps_defaults(&caps);
	assert_int_equal(vfpm_caps_parse((char *)m.payload + sizeof(ver), m.len - sizeof(ver),
					 &caps), 0);
	assert_int_equal(caps.pgsizes, 4096);
	assert_false(caps.write_multiple);	/* not proposed, not granted */
	assert_false(caps.twin_socket);
	assert_int_equal(m.nfds, 0);
	vfpm_msg_release(&m);
	close(sock);

	/* Twin-socket mode: the reply carries the client's end of a socket pair. */
	static const char twin[] = "{\"capabilities\":{\"twin_socket\":{\"supported\":true}}}";
	uint8_t tbuf[sizeof(ver) + sizeof(twin)];

	sock = raw_connect(f->path);
	ver = (struct vfio_user_version){ .major = 0, .minor = 1 };
	memcpy(tbuf, &ver, sizeof(ver));
	memcpy(tbuf + sizeof(ver), twin, sizeof(twin));
	assert_int_equal(raw_send(sock, 3, VFIO_USER_VERSION, 0, tbuf, sizeof(tbuf), NULL, 0), 0);
	raw_recv(sock, &m);
	assert_int_equal(m.hdr.flags, VFIO_USER_F_TYPE_REPLY);
	vfpm_caps_defaults(&caps);
	assert_int_equal(vfpm_caps_parse((char *)m.payload + sizeof(ver), m.len - sizeof(ver),
					 &caps), 0);
	assert_true(caps.twin_socket);
	assert_int_equal(caps.twin_fd_index, 0);
	assert_int_equal(m.nfds, 1);
	vfpm_msg_release(&m);
	close(sock);
}

static void send_version_json(int sock, uint16_t id, uint16_t major, const char *json)
{
	size_t jlen = json ? strlen(json) + 1 : 0;
	uint8_t *buf = malloc(sizeof(struct vfio_user_version) + jlen);
	struct vfio_user_version ver = { .major = major, .minor = 1 };

	assert_non_null(buf);
	memcpy(buf, &ver, sizeof(ver));
	if (jlen)
		memcpy(buf + sizeof(ver), json, jlen);
	assert_int_equal(raw_send(sock, id, VFIO_USER_VERSION, 0, buf, sizeof(ver) + jlen, NULL, 0),
			 0);
	free(buf);
}

static void test_version_errors(void **state)
{
	struct tfix *f = *state;
	int sock = raw_connect(f->path);

	/* Bad JSON, wrong types, no acceptable page size: refused, the connection stays. */
	send_version_json(sock, 1, 0, "{\"capabilities\":");
	raw_expect_error(sock, 1, VFIO_USER_VERSION, EINVAL);
	send_version_json(sock, 2, 0, "{\"capabilities\":{\"max_msg_fds\":\"many\"}}");
	raw_expect_error(sock, 2, VFIO_USER_VERSION, EINVAL);
	send_version_json(sock, 3, 0, "{\"capabilities\":{\"max_data_xfer_size\":-1}}");
	raw_expect_error(sock, 3, VFIO_USER_VERSION, EINVAL);
	send_version_json(sock, 4, 0, "{\"capabilities\":{\"pgsizes\":2048}}");
	raw_expect_error(sock, 4, VFIO_USER_VERSION, EINVAL);
	send_version_json(sock, 5, 0, "[1]");
	raw_expect_error(sock, 5, VFIO_USER_VERSION, EINVAL);
	/* Then a good one, and a second VERSION is a protocol error. */
	send_version_json(sock, 6, 0, "{\"capabilities\":{\"write_multiple\":false}}");
	assert_true(raw_expect_ok(sock, 6, VFIO_USER_VERSION) > 4);
	send_version_json(sock, 7, 0, NULL);
	raw_expect_error(sock, 7, VFIO_USER_VERSION, EPROTO);
	close(sock);

	/* An unknown major: refused and closed, as the specification says. */
	sock = raw_connect(f->path);
	send_version_json(sock, 8, 1, NULL);
	raw_expect_error(sock, 8, VFIO_USER_VERSION, ENOTSUP);
	raw_expect_closed(sock);
	close(sock);
}

static void test_get_info(void **state)
{
	struct vfpm_client *c = tfix_connect(*state);
	struct vfio_device_info info;

	assert_string_equal(vfpm_client_backend(c), "vfio-user");
	assert_int_equal(vfpm_client_get_info(c, &info), 0);
	assert_int_equal(info.argsz, 16);
	assert_int_equal(info.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
	assert_int_equal(info.num_regions, VFIO_PCI_NUM_REGIONS);
	assert_int_equal(info.num_irqs, VFIO_PCI_NUM_IRQS);
	vfpm_client_close(c);
}

static void test_region_info(void **state)
{
	struct vfpm_client *c = tfix_connect(*state);
	union {
		struct vfio_region_info info;
		uint8_t raw[256];
	} u;
	struct vfio_region_info_cap_sparse_mmap *sparse;
	struct vfio_region_info info;
	uint32_t pattern = 0xfeedf00d, back = 0;
	uint8_t *map;
	int fd;

	/* Config space: trapped, no fd. */
	assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_CONFIG_REGION_INDEX, &info,
						     sizeof(info), &fd), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(info.size, 4096);
	assert_int_equal(info.flags, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE);
	assert_int_equal(info.argsz, sizeof(info));

	/* BAR2 is trapped, BAR1 does not exist, index 42 is not a region. */
	assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_BAR2_REGION_INDEX, &info,
						     sizeof(info), &fd), 0);
	assert_int_equal(fd, -1);
	assert_int_equal(info.size, TM_BAR2_SIZE);
	assert_false(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_BAR1_REGION_INDEX, &info,
						     sizeof(info), &fd), 0);
	assert_int_equal(info.size, 0);
	assert_int_equal(vfpm_client_get_region_info(c, 42, &info, sizeof(info), &fd), -EINVAL);

	/* BAR0: mappable, its fd comes by SCM_RIGHTS and maps the BAR from offset 0. */
	assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_BAR0_REGION_INDEX, &info,
						     sizeof(info), &fd), 0);
	assert_true(fd >= 0);
	assert_int_equal(info.size, TM_BAR0_SIZE);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_int_equal(info.offset, 0);
	t_enable_memory(c);
	map = mmap(NULL, TM_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)info.offset);
	assert_true(map != MAP_FAILED);
	close(fd);
	memcpy(map + 0x100, &pattern, 4);
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, 0x100, &back, 4),
			 4);
	assert_int_equal(back, pattern);
	pattern = 0x12345678;
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_BAR0_REGION_INDEX, 0x200, &pattern,
						  4), 4);
	assert_memory_equal(map + 0x200, &pattern, 4);
	munmap(map, TM_BAR0_SIZE);

	/*
	 * BAR4 holds the MSI-X table: a sparse capability.  Too small an argsz
	 * says the need, and unlike the ioctl (CAPS set, cap_offset 0), with
	 * CAPS clear and no fd: QEMU rejects CAPS with cap_offset 0, and asks
	 * again with the argsz it is told, as libvfio-user answers.
	 */
	assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_BAR4_REGION_INDEX, &info,
						     sizeof(info), &fd), 0);
	assert_int_equal(fd, -1);
	assert_false(info.flags & VFIO_REGION_INFO_FLAG_CAPS);
	assert_true(info.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_int_equal(info.argsz, sizeof(info) + sizeof(*sparse) +
				     sizeof(struct vfio_region_sparse_mmap_area));
	assert_int_equal(info.cap_offset, 0);
	assert_int_equal(vfpm_client_get_region_info(c, VFIO_PCI_BAR4_REGION_INDEX, &u.info,
						     sizeof(u), &fd), 0);
	assert_true(fd >= 0);
	close(fd);
	assert_true(u.info.flags & VFIO_REGION_INFO_FLAG_CAPS);
	assert_int_equal(u.info.argsz, info.argsz);
	assert_int_equal(u.info.cap_offset, sizeof(info));
	sparse = (void *)(u.raw + u.info.cap_offset);
	assert_int_equal(sparse->header.id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
	assert_int_equal(sparse->nr_areas, 1);
	assert_int_equal(sparse->areas[0].offset, 4096);
	assert_int_equal(sparse->areas[0].size, TM_BAR4_SIZE - 4096);
	vfpm_client_close(c);
}

static uint16_t cfg_read16(struct vfpm_client *c, unsigned int off)
{
	uint16_t v = 0;

	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, off, &v, 2), 2);
	return v;
}

/*
 * The INTx line shows in STATUS.Interrupt_Status (a guest driver masking
 * with COMMAND.INTX_DISABLE claims an interrupt only when it is set), and
 * INTX_DISABLE masks and unmasks the line, as vfio-pci virtualizes it.
 */
static void test_intx_status_and_disable(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	const uint32_t trigger = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD;
	int intx = t_eventfd();
	uint16_t cmd;

	t_enable_memory(c);
	assert_int_equal(vfpm_client_set_irqs(c, trigger, VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &intx), 0);
	assert_false(cfg_read16(c, PCI_STATUS) & PCI_STATUS_INTERRUPT);
	bar2_write(c, TM_REG_INTX, 1);
	assert_int_equal(t_eventfd_read(intx), 1);
	assert_true(cfg_read16(c, PCI_STATUS) & PCI_STATUS_INTERRUPT);
	bar2_write(c, TM_REG_INTX, 0);
	assert_false(cfg_read16(c, PCI_STATUS) & PCI_STATUS_INTERRUPT);
	/* Unmask (the automask), then the driver's own mask: COMMAND.INTX_DISABLE. */
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, NULL), 0);
	cmd = cfg_read16(c, PCI_COMMAND) | PCI_COMMAND_INTX_DISABLE;
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						  &cmd, 2), 2);
	bar2_write(c, TM_REG_INTX, 1);
	assert_int_equal(t_eventfd_read(intx), 0);	/* disabled: not delivered */
	assert_true(cfg_read16(c, PCI_STATUS) & PCI_STATUS_INTERRUPT);	/* but shown */
	cmd &= (uint16_t)~PCI_COMMAND_INTX_DISABLE;
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						  &cmd, 2), 2);
	assert_int_equal(t_eventfd_read(intx), 1);	/* enabled again: the line fires */
	bar2_write(c, TM_REG_INTX, 0);
	close(intx);
	vfpm_client_close(c);
}

/* The model raises ERR and REQ; the user hears them on the eventfds it set. */
static void test_err_req_interrupts(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	const uint32_t trigger = VFIO_IRQ_SET_ACTION_TRIGGER | VFIO_IRQ_SET_DATA_EVENTFD;
	int err_efd = t_eventfd(), req_efd = t_eventfd();

	t_check_client(c);
	assert_int_equal(vfpm_pci_err_signal(f->model->pdev), -ENODEV);
	assert_int_equal(vfpm_client_set_irqs(c, trigger, VFIO_PCI_ERR_IRQ_INDEX, 0, 1, &err_efd),
			 0);
	assert_int_equal(vfpm_client_set_irqs(c, trigger, VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &req_efd),
			 0);
	assert_int_equal(vfpm_pci_err_signal(f->model->pdev), 0);
	assert_int_equal(t_eventfd_read(err_efd), 1);
	assert_int_equal(t_eventfd_read(req_efd), 0);
	assert_int_equal(vfpm_pci_req_signal(f->model->pdev), 0);
	assert_int_equal(t_eventfd_read(req_efd), 1);
	close(err_efd);
	close(req_efd);
	vfpm_client_close(c);
}

static void test_irq_info(void **state)
{
	struct vfpm_client *c = tfix_connect(*state);
	struct vfio_irq_info irq;

	assert_int_equal(vfpm_client_get_irq_info(c, VFIO_PCI_INTX_IRQ_INDEX, &irq), 0);
	assert_int_equal(irq.argsz, sizeof(irq));
	assert_int_equal(irq.count, 1);
	assert_true(irq.flags & VFIO_IRQ_INFO_EVENTFD);
	assert_true(irq.flags & VFIO_IRQ_INFO_MASKABLE);
	assert_true(irq.flags & VFIO_IRQ_INFO_AUTOMASKED);
	assert_int_equal(vfpm_client_get_irq_info(c, VFIO_PCI_MSIX_IRQ_INDEX, &irq), 0);
	assert_int_equal(irq.count, TM_MSIX_VECTORS);
	assert_true(irq.flags & VFIO_IRQ_INFO_EVENTFD);
	assert_int_equal(vfpm_client_get_irq_info(c, VFIO_PCI_NUM_IRQS, &irq), -EINVAL);
	vfpm_client_close(c);
}

static void test_set_irqs(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	const uint32_t trigger = VFIO_IRQ_SET_ACTION_TRIGGER;
	int32_t efd[TM_MSIX_VECTORS];
	uint8_t which[2] = { 0, 1 };
	struct pollfd pfd;
	int intx, unmask;

	t_enable_memory(c);
	for (unsigned int i = 0; i < TM_MSIX_VECTORS; i++)
		efd[i] = t_eventfd();
	/* A hole in the middle: vector 2 gets no eventfd. */
	int32_t set[TM_MSIX_VECTORS] = { efd[0], efd[1], -1, efd[3] };

	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | trigger,
					      VFIO_PCI_MSIX_IRQ_INDEX, 0, TM_MSIX_VECTORS, set), 0);
	for (unsigned int v = 0; v < TM_MSIX_VECTORS; v++)
		bar2_write(c, TM_REG_MSIX, v);
	assert_int_equal(t_eventfd_read(efd[0]), 1);
	assert_int_equal(t_eventfd_read(efd[1]), 1);
	assert_int_equal(t_eventfd_read(efd[2]), 0);
	assert_int_equal(t_eventfd_read(efd[3]), 1);

	/* Loopback triggers: DATA_BOOL picks vector 1 of 0..1, DATA_NONE fires vector 3. */
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_BOOL | trigger,
					      VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, which), 0);
	assert_int_equal(t_eventfd_read(efd[0]), 0);
	assert_int_equal(t_eventfd_read(efd[1]), 1);
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_NONE | trigger,
					      VFIO_PCI_MSIX_IRQ_INDEX, 3, 1, NULL), 0);
	assert_int_equal(t_eventfd_read(efd[3]), 1);

	/* De-assign one vector (no fds), then disable the index (count 0). */
	int32_t none = -1;

	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | trigger,
					      VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &none), 0);
	bar2_write(c, TM_REG_MSIX, 0);
	assert_int_equal((int32_t)bar2_read(c, TM_REG_DMA_STATUS), -ENODEV);
	assert_int_equal(t_eventfd_read(efd[0]), 0);
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_NONE | trigger,
					      VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL), 0);
	bar2_write(c, TM_REG_MSIX, 1);
	assert_int_equal(t_eventfd_read(efd[1]), 0);

	/* INTx: the model asserts the line, the eventfd fires. */
	intx = t_eventfd();
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | trigger,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &intx), 0);
	bar2_write(c, TM_REG_INTX, 1);
	assert_int_equal(t_eventfd_read(intx), 1);
	/* Automasked; the line is still up, so an UNMASK (DATA_NONE) delivers again. */
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_NONE |
					      VFIO_IRQ_SET_ACTION_UNMASK,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, NULL), 0);
	assert_int_equal(t_eventfd_read(intx), 1);
	/* An unmask eventfd, by SCM_RIGHTS: signalling it unmasks, and the line fires again. */
	unmask = t_eventfd();
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD |
					      VFIO_IRQ_SET_ACTION_UNMASK,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &unmask), 0);
	assert_int_equal(eventfd_write(unmask, 1), 0);
	pfd = (struct pollfd){ .fd = intx, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, T_TIMEOUT_MS), 1);
	assert_int_equal(t_eventfd_read(intx), 1);
	/*
	 * Re-armed with a new unmask eventfd, as QEMU does after closing its
	 * old one (which a server cannot see): the new one replaces it, where
	 * the kernel's ioctl says EBUSY.
	 */
	int unmask2 = t_eventfd();

	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD |
					      VFIO_IRQ_SET_ACTION_UNMASK,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &unmask2), 0);
	assert_int_equal(eventfd_write(unmask, 1), 0);	/* the old one unmasks nothing */
	assert_int_equal(poll(&pfd, 1, 200), 0);
	assert_int_equal(eventfd_write(unmask2, 1), 0);
	assert_int_equal(poll(&pfd, 1, T_TIMEOUT_MS), 1);
	assert_int_equal(t_eventfd_read(intx), 1);
	close(unmask2);
	/* MASK with DATA_BOOL: a new edge stays pending. */
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, which + 1), 0);
	bar2_write(c, TM_REG_INTX, 0);
	bar2_write(c, TM_REG_INTX, 1);
	assert_int_equal(t_eventfd_read(intx), 0);
	bar2_write(c, TM_REG_INTX, 0);

	/* A bad index is the device's EINVAL, carried back. */
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_NONE | trigger, 99, 0, 0, NULL),
			 -EINVAL);

	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
	for (unsigned int i = 0; i < TM_MSIX_VECTORS; i++)
		close(efd[i]);
	close(intx);
	close(unmask);
}

static void test_region_read_write(void **state)
{
	struct vfpm_client *c = tfix_connect(*state);
	uint16_t ids[2];
	static uint8_t big[TM_BAR0_SIZE], back[TM_BAR0_SIZE];
	struct vfpm_client_write w[3] = {
		{ .index = VFIO_PCI_BAR2_REGION_INDEX, .offset = TM_REG_SCRATCH, .count = 4 },
		{ .index = VFIO_PCI_BAR2_REGION_INDEX, .offset = 0x40, .count = 2 },
		{ .index = VFIO_PCI_BAR2_REGION_INDEX, .offset = 0x48, .count = 8 },
	};

	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID,
						 ids, sizeof(ids)), sizeof(ids));
	assert_int_equal(ids[0], TM_VENDOR_ID);
	assert_int_equal(ids[1], TM_DEVICE_ID);

	/* Trapped BAR2 needs memory decoding, as a real BAR. */
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR2_REGION_INDEX, TM_REG_ID, ids, 4),
			 -EIO);
	t_enable_memory(c);
	assert_int_equal(bar2_read(c, TM_REG_ID), TM_ID);
	bar2_write(c, TM_REG_SCRATCH, 0xa5a5a5a5);
	assert_int_equal(bar2_read(c, TM_REG_SCRATCH), 0xa5a5a5a5);

	/* REGION_WRITE_MULTI. */
	memcpy(w[0].data, "\x01\x02\x03\x04", 4);
	memcpy(w[1].data, "\xaa\xbb", 2);
	memcpy(w[2].data, "ABCDEFGH", 8);
	assert_int_equal(vfpm_client_region_write_multi(c, w, 3), 0);
	assert_int_equal(bar2_read(c, TM_REG_SCRATCH), 0x04030201);
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR2_REGION_INDEX, 0x40, back, 2), 2);
	assert_memory_equal(back, "\xaa\xbb", 2);
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR2_REGION_INDEX, 0x48, back, 8), 8);
	assert_memory_equal(back, "ABCDEFGH", 8);

	/* Larger than max_data_xfer_size: the client splits it (BAR0 is 16 KiB). */
	for (size_t i = 0; i < TM_BAR0_SIZE; i++)
		big[i] = (uint8_t)(i * 7);
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_BAR0_REGION_INDEX, 0, big,
						  TM_BAR0_SIZE), TM_BAR0_SIZE);
	memset(back, 0, sizeof(back));
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, 0, back,
						 TM_BAR0_SIZE), TM_BAR0_SIZE);
	assert_memory_equal(back, big, TM_BAR0_SIZE);

	/* A read past the BAR's end is cut short; a region the device lacks is EINVAL. */
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_BAR0_REGION_INDEX, TM_BAR0_SIZE - 8,
						 back, 64), 8);
	assert_int_equal(vfpm_client_region_read(c, VFIO_PCI_ROM_REGION_INDEX, 0, back, 4),
			 -EINVAL);
	assert_int_equal(vfpm_client_region_read(c, 1000, 0, back, 4), -EINVAL);
	vfpm_client_close(c);
}

static void test_reset(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	int resets;

	t_enable_memory(c);
	bar2_write(c, TM_REG_SCRATCH, 77);
	resets = f->model->resets;
	assert_int_equal(vfpm_client_reset(c), 0);
	assert_int_equal(f->model->resets, resets + 1);
	/* The reset also cleared COMMAND.MEM. */
	t_enable_memory(c);
	assert_int_equal(bar2_read(c, TM_REG_SCRATCH), 0);
	vfpm_client_close(c);
}

static void test_feature_probe(void **state)
{
	struct vfpm_client *c = tfix_connect(*state);
	const uint32_t probe = VFIO_DEVICE_FEATURE_PROBE;

	for (uint32_t feat = 3; feat <= 5; feat++) {
		assert_int_equal(vfpm_client_feature(c, probe | VFIO_DEVICE_FEATURE_SET | feat, NULL,
						     0, 0, NULL, 0), 0);
		assert_int_equal(vfpm_client_feature(c, probe | VFIO_DEVICE_FEATURE_GET | feat, NULL,
						     0, 0, NULL, 0), -EINVAL);
		assert_int_equal(vfpm_client_feature(c, VFIO_DEVICE_FEATURE_GET | feat, NULL, 0, 0,
						     NULL, 0), -EINVAL);
	}
	assert_int_equal(vfpm_client_feature(c, probe | VFIO_DEVICE_FEATURE_SET | 0x7fff, NULL, 0,
					     0, NULL, 0), -ENOTTY);
	assert_int_equal(vfpm_client_feature(c, probe | VFIO_DEVICE_FEATURE_GET |
					     VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0, 0, NULL, 0),
			 -ENOTTY);
	/* Unknown flag bits, and GET with SET without PROBE. */
	assert_int_equal(vfpm_client_feature(c, (1u << 20) | VFIO_DEVICE_FEATURE_SET | 3, NULL, 0,
					     0, NULL, 0), -EINVAL);
	assert_int_equal(vfpm_client_feature(c, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET |
					     3, NULL, 0, 0, NULL, 0), -EINVAL);
	vfpm_client_close(c);
}

static int guest_memfd(size_t size, uint8_t **map)
{
	int fd = memfd_create("guest", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(*map != MAP_FAILED);
	return fd;
}

static int32_t model_dma(struct vfpm_client *c, uint32_t cmd, uint64_t addr)
{
	bar2_write(c, TM_REG_DMA_ADDR, (uint32_t)addr);
	bar2_write(c, TM_REG_DMA_ADDR + 4, (uint32_t)(addr >> 32));
	bar2_write(c, TM_REG_DMA_CMD, cmd);
	return (int32_t)bar2_read(c, TM_REG_DMA_STATUS);
}

static void test_dma(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	const uint32_t rw = VFPM_CLIENT_DMA_READ | VFPM_CLIENT_DMA_WRITE;
	uint8_t *mem;
	int fd = guest_memfd(0x3000, &mem);
	struct vfpm_client_dma map = {
		.iova = 0x10000, .size = 0x2000, .flags = rw, .fd = fd, .offset = 0x1000,
	};
	uint32_t v = 0xcafe0001;
	uint8_t *sockmem, *libview;
	int sfd;

	t_enable_memory(c);
	assert_int_equal(vfpm_client_dma_map(c, &map), 0);
	close(fd);	/* the server holds its own mapping */

	/* Overlaps, bad alignment, no access, too many. */
	map = (struct vfpm_client_dma){ .iova = 0x11000, .size = 0x1000, .flags = rw, .fd = -1 };
	assert_int_equal(vfpm_client_dma_map(c, &map), -EEXIST);
	map.iova = 0xf000;
	map.size = 0x2000;
	assert_int_equal(vfpm_client_dma_map(c, &map), -EEXIST);
	map = (struct vfpm_client_dma){ .iova = 0x20800, .size = 0x1000, .flags = rw, .fd = -1 };
	assert_int_equal(vfpm_client_dma_map(c, &map), -EINVAL);
	map = (struct vfpm_client_dma){ .iova = 0x20000, .size = 0x1000, .flags = 0, .fd = -1 };
	assert_int_equal(vfpm_client_dma_map(c, &map), -EINVAL);
	/*
	 * Windows without an fd: the model's DMA travels as DMA_READ / DMA_WRITE
	 * messages on the twin socket, answered by the client library from
	 * vaddr, while this client waits for the reply to the BAR write that
	 * started it.
	 */
	/*
	 * Guest memory seen at two addresses, as a VMM's RAM: the library
	 * serves libview, the test looks at sockmem (the synchronisation runs
	 * through the sockets, which ThreadSanitizer does not see).
	 */
	sfd = guest_memfd(0x2000, &sockmem);
	libview = mmap(NULL, 0x2000, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
	assert_true(libview != MAP_FAILED);
	close(sfd);
	map.flags = VFPM_CLIENT_DMA_READ;
	map.vaddr = libview;
	assert_int_equal(vfpm_client_dma_map(c, &map), 0);
	map = (struct vfpm_client_dma){ .iova = 0x30000, .size = 0x1000, .flags = rw, .fd = -1,
					.vaddr = libview + 0x1000 };
	assert_int_equal(vfpm_client_dma_map(c, &map), 0);
	/* No fd and no vaddr: the server may map it, the client cannot serve it. */
	map = (struct vfpm_client_dma){ .iova = 0x40000, .size = 0x1000, .flags = rw, .fd = -1 };
	assert_int_equal(vfpm_client_dma_map(c, &map), 0);

	/* The model reads and writes guest memory through the fd's mapping. */
	memcpy(mem + 0x1000 + 0x100, &v, 4);
	assert_int_equal(model_dma(c, TM_DMA_READ, 0x10100), 0);
	assert_int_equal(bar2_read(c, TM_REG_DMA_DATA), v);
	bar2_write(c, TM_REG_DMA_DATA, 0xbeef);
	assert_int_equal(model_dma(c, TM_DMA_WRITE, 0x11ffe), -EFAULT);	/* runs off the end */
	assert_int_equal(*(uint32_t *)(mem + 0x1000 + 0x1ffc), 0);	/* nothing written */
	assert_int_equal(model_dma(c, TM_DMA_WRITE, 0x11ff0), 0);
	assert_int_equal(*(uint32_t *)(mem + 0x1000 + 0x1ff0), 0xbeef);

	/* And through the twin socket. */
	v = 0x50c4e7;
	memcpy(sockmem + 0x10, &v, 4);
	assert_int_equal(model_dma(c, TM_DMA_READ, 0x20010), 0);
	assert_int_equal(bar2_read(c, TM_REG_DMA_DATA), v);
	assert_int_equal(model_dma(c, TM_DMA_WRITE, 0x20010), -EACCES);	/* read-only window */
	bar2_write(c, TM_REG_DMA_DATA, 0xd00d);
	assert_int_equal(model_dma(c, TM_DMA_WRITE, 0x30ffc), 0);
	assert_int_equal(*(uint32_t *)(sockmem + 0x1ffc), 0xd00d);
	assert_int_equal(model_dma(c, TM_DMA_READ, 0x40000), -EFAULT);	/* the client says */
	assert_int_equal(model_dma(c, TM_DMA_READ, 0x50000), -EFAULT);	/* no window */
	assert_int_equal(vfpm_client_dma_unmap(c, 0x40000, 0x1000), 0);

	/* Unmap takes whole windows: half of one is EINVAL, none is ENOENT. */
	assert_int_equal(vfpm_client_dma_unmap(c, 0x10000, 0x1000), -EINVAL);
	assert_int_equal(vfpm_client_dma_unmap(c, 0x50000, 0x1000), -ENOENT);
	assert_int_equal(vfpm_client_dma_unmap(c, 0x10000, 0x2000), 0);
	assert_int_equal(vfpm_client_dma_unmap(c, 0x10000, 0x2000), -ENOENT);
	assert_int_equal(model_dma(c, TM_DMA_READ, 0x10100), -EFAULT);
	/* A range over several windows (and the holes between) unmaps them all. */
	for (unsigned int i = 0; i < 3; i++) {
		map = (struct vfpm_client_dma){ .iova = 0x200000 + i * 0x2000, .size = 0x1000,
						.flags = rw, .fd = -1 };
		assert_int_equal(vfpm_client_dma_map(c, &map), 0);
	}
	assert_int_equal(vfpm_client_dma_unmap(c, 0x1ff000, 0x8000), 0);
	assert_int_equal(vfpm_client_dma_unmap(c, 0x200000, 0x1000), -ENOENT);

	/* max_dma_maps: two windows are left (0x20000, 0x30000), T_MAX_DMA_MAPS in all. */
	for (unsigned int i = 2; i < T_MAX_DMA_MAPS; i++) {
		map = (struct vfpm_client_dma){ .iova = 0x100000 + i * 0x1000, .size = 0x1000,
						.flags = rw, .fd = -1 };
		assert_int_equal(vfpm_client_dma_map(c, &map), 0);
	}
	map.iova = 0x900000;
	assert_int_equal(vfpm_client_dma_map(c, &map), -ENOSPC);

	vfpm_client_close(c);
	munmap(mem, 0x3000);
	munmap(sockmem, 0x2000);
	munmap(libview, 0x2000);
}

/* A client that did not ask for twin-socket mode: fd-less windows are out of reach. */
/*
 * DMA through the device: refused until Bus Master Enable, then into the
 * memory of the connection that turned it on, whoever else connects; gone
 * with that connection.
 */
static void test_dma_through_device(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f), *other;
	uint8_t *mem;
	int fd = guest_memfd(0x1000, &mem);
	struct vfpm_client_dma map = {
		.iova = 0x80000, .size = 0x1000,
		.flags = VFPM_CLIENT_DMA_READ | VFPM_CLIENT_DMA_WRITE, .fd = fd,
	};
	uint16_t cmd = PCI_COMMAND_MEMORY;
	uint32_t v = 0x0dd0beef;

	t_enable_memory(c);
	assert_int_equal(vfpm_client_dma_map(c, &map), 0);
	close(fd);
	memcpy(mem + 0x40, &v, 4);
	assert_int_equal(model_dma(c, TM_DMA_DEV_READ, 0x80040), -EPERM);
	cmd |= PCI_COMMAND_MASTER;
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						  &cmd, 2), 2);
	assert_int_equal(model_dma(c, TM_DMA_DEV_READ, 0x80040), 0);
	assert_int_equal(bar2_read(c, TM_REG_DMA_DATA), v);
	bar2_write(c, TM_REG_DMA_DATA, 0x600dd0d0);
	assert_int_equal(model_dma(c, TM_DMA_DEV_WRITE, 0x80ffc), 0);
	assert_int_equal(*(uint32_t *)(mem + 0xffc), 0x600dd0d0);
	assert_int_equal(model_dma(c, TM_DMA_DEV_WRITE, 0x81000), -EFAULT);

	/* A second client (a management tool) does not take the device's DMA over. */
	other = tfix_connect(f);
	t_check_client(other);
	assert_int_equal(model_dma(other, TM_DMA_DEV_READ, 0x80040), 0);
	assert_int_equal(bar2_read(other, TM_REG_DMA_DATA), v);
	vfpm_client_close(c);
	tfix_wait_conns(f, 1);
	/* Its memory went with it. */
	assert_int_equal(model_dma(other, TM_DMA_DEV_READ, 0x80040), -EFAULT);
	vfpm_client_close(other);
	munmap(mem, 0x1000);
}

/* A client without a twin socket answers the server's DMA on its main socket. */
struct main_dma_peer {
	int sock;
	uint32_t word;		/* what a DMA_READ finds */
	uint32_t written;	/* what a DMA_WRITE brought */
	uint64_t addr;
	int requests;
};

static void *main_dma_answer(void *arg)
{
	struct main_dma_peer *p = arg;
	struct vfpm_msg m;

	raw_recv(p->sock, &m);
	assert_int_equal(m.hdr.flags & VFIO_USER_F_TYPE_MASK, VFIO_USER_F_TYPE_COMMAND);
	p->requests++;
	memcpy(&p->addr, m.payload, 8);
	if (m.hdr.command == VFIO_USER_DMA_READ) {
		/* The specification's layout: address (8), count (8), the data. */
		uint8_t reply[8 + 8 + 4] = { 0 };
		uint64_t count = 4;

		assert_int_equal(m.len, 16);
		memcpy(reply, &p->addr, 8);
		memcpy(reply + 8, &count, 8);
		memcpy(reply + 16, &p->word, 4);
		assert_int_equal(raw_send(p->sock, m.hdr.msg_id, m.hdr.command,
					  VFIO_USER_F_TYPE_REPLY, reply, sizeof(reply), NULL, 0), 0);
	} else {
		assert_int_equal(m.hdr.command, VFIO_USER_DMA_WRITE);
		assert_int_equal(m.len, 16 + 4);
		memcpy(&p->written, (uint8_t *)m.payload + 16, 4);
		assert_int_equal(raw_send(p->sock, m.hdr.msg_id, m.hdr.command,
					  VFIO_USER_F_TYPE_REPLY, NULL, 0, NULL, 0), 0);
	}
	vfpm_msg_release(&m);
	return NULL;
}

static void test_dma_without_twin_socket(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	struct vfio_user_dma_map map = {
		.argsz = sizeof(map), .flags = VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE,
		.addr = 0x20000, .size = 0x1000,
	};
	/* The model's DMA goes to the client that opened the device last. */
	struct main_dma_peer peer = { .sock = raw_connect(f->path), .word = 0x5eedf00d };
	struct vfio_user_device_info info = { .argsz = sizeof(info) };
	pthread_t t;

	raw_version(peer.sock);
	assert_int_equal(raw_send(peer.sock, 1, VFIO_USER_DMA_MAP, 0, &map, sizeof(map), NULL, 0),
			 0);
	assert_int_equal(raw_expect_ok(peer.sock, 1, VFIO_USER_DMA_MAP), 0);
	/* Its first device command opens its instance. */
	assert_int_equal(raw_send(peer.sock, 2, VFIO_USER_DEVICE_GET_INFO, 0, &info, sizeof(info),
				  NULL, 0), 0);
	assert_int_equal(raw_expect_ok(peer.sock, 2, VFIO_USER_DEVICE_GET_INFO), sizeof(info));
	t_enable_memory(c);

	if (t_caller_loop()) {
		/*
		 * One thread serves every connection: the peer's reply could
		 * never be read while the request that waits for it runs there.
		 * A reactor's model defers such an access and does its DMA
		 * from a thread of its own.
		 */
		assert_int_equal(model_dma(c, TM_DMA_READ, 0x20010), -EDEADLK);
		assert_int_equal(peer.requests, 0);
		close(peer.sock);
		vfpm_client_close(c);
		return;
	}
	/* No twin socket: DMA_READ on the peer's main socket, which it answers. */
	assert_int_equal(pthread_create(&t, NULL, main_dma_answer, &peer), 0);
	assert_int_equal(model_dma(c, TM_DMA_READ, 0x20010), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(peer.addr, 0x20010);
	assert_int_equal(bar2_read(c, TM_REG_DMA_DATA), 0x5eedf00d);
	/* And DMA_WRITE. */
	bar2_write(c, TM_REG_DMA_DATA, 0xfeedbeef);
	assert_int_equal(pthread_create(&t, NULL, main_dma_answer, &peer), 0);
	assert_int_equal(model_dma(c, TM_DMA_WRITE, 0x20ffc), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(peer.written, 0xfeedbeef);
	assert_int_equal(peer.requests, 2);

	/*
	 * From inside one of the peer's own requests the reply could never be
	 * read (the connection thread is busy with that request): EDEADLK.
	 */
	{
		uint8_t w[sizeof(struct vfio_user_region_access) + 4];
		struct vfio_user_region_access *acc = (void *)w;
		uint32_t regs[3][2] = {
			{ TM_REG_DMA_ADDR, 0x20010 }, { TM_REG_DMA_ADDR + 4, 0 },
			{ TM_REG_DMA_CMD, TM_DMA_READ },
		};

		for (int i = 0; i < 3; i++) {
			*acc = (struct vfio_user_region_access){
				.offset = regs[i][0], .region = VFIO_PCI_BAR2_REGION_INDEX, .count = 4,
			};
			memcpy(acc->data, &regs[i][1], 4);
			assert_int_equal(raw_send(peer.sock, (uint16_t)(10 + i), VFIO_USER_REGION_WRITE,
						  0, w, sizeof(w), NULL, 0), 0);
			raw_expect_ok(peer.sock, (uint16_t)(10 + i), VFIO_USER_REGION_WRITE);
		}
	}
	assert_int_equal((int32_t)bar2_read(c, TM_REG_DMA_STATUS), -EDEADLK);
	close(peer.sock);
	vfpm_client_close(c);
}

struct dma_reader {
	struct vfpm_server_conn *conn;
	int err;
};

static void *dma_reader_thread(void *arg)
{
	struct dma_reader *r = arg;
	uint8_t buf[8];

	r->err = vfpm_server_dma_read(r->conn, 0x10000, buf, sizeof(buf));
	return NULL;
}

/*
 * A request the model deferred is pending and the client (QEMU-style, no
 * twin socket) has sent another command behind it: a model thread's DMA
 * over the main socket still gets its reply (reading goes on, the command
 * waits), and the command is served after the deferred one, in order.
 */
static void test_dma_reply_behind_held_command(void **state)
{
	struct vfio_user_dma_map map = {
		.argsz = sizeof(map), .flags = VFIO_USER_DMA_F_READ | VFIO_USER_DMA_F_WRITE,
		.addr = 0x10000, .size = 0x1000,
	};
	struct vfio_user_region_access slow = {
		.offset = TM_REG_SLOW, .region = VFIO_PCI_BAR2_REGION_INDEX, .count = 4,
	};
	struct vfio_user_region_access cfg = {
		.offset = 0, .region = VFIO_PCI_CONFIG_REGION_INDEX, .count = 2,
	};
	struct tfix *f = *state;
	struct vfpm_client *c0 = tfix_connect(f);
	struct dma_reader r = { .err = 1 };
	uint8_t reply[16 + 8] = { 0 };
	struct vfpm_msg m;
	pthread_t t;
	int a;

	t_enable_memory(c0);
	a = raw_connect(f->path);
	raw_version(a);
	assert_int_equal(raw_send(a, 2, VFIO_USER_DMA_MAP, 0, &map, sizeof(map), NULL, 0), 0);
	raw_expect_ok(a, 2, VFIO_USER_DMA_MAP);
	/* Its first device command opens its instance. */
	assert_int_equal(raw_send(a, 3, VFIO_USER_REGION_READ, 0, &cfg, sizeof(cfg), NULL, 0), 0);
	raw_expect_ok(a, 3, VFIO_USER_REGION_READ);
	r.conn = f->model->last_conn;
	tm_read_gate_close_deferred(f->model);
	assert_int_equal(raw_send(a, 4, VFIO_USER_REGION_READ, 0, &slow, sizeof(slow), NULL, 0), 0);
	assert_int_equal(tm_read_gate_wait(f->model, 1, T_TIMEOUT_MS), 0);
	assert_int_equal(raw_send(a, 5, VFIO_USER_REGION_READ, 0, &cfg, sizeof(cfg), NULL, 0), 0);

	assert_int_equal(pthread_create(&t, NULL, dma_reader_thread, &r), 0);
	raw_recv(a, &m);
	assert_int_equal(m.hdr.command, VFIO_USER_DMA_READ);
	memcpy(reply, m.payload, 16);
	assert_int_equal(raw_send(a, m.hdr.msg_id, VFIO_USER_DMA_READ, VFIO_USER_F_TYPE_REPLY,
				  reply, sizeof(reply), NULL, 0), 0);
	vfpm_msg_release(&m);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(r.err, 0);

	/* Then the deferred read completes, and the held command is served after it. */
	tm_read_gate_open(f->model);
	raw_expect_ok(a, 4, VFIO_USER_REGION_READ);
	raw_expect_ok(a, 5, VFIO_USER_REGION_READ);
	close(a);
	vfpm_client_close(c0);
}

/* The socket file is 0600 whatever the umask, or the mode asked for. */
static void test_socket_mode(void **state)
{
	struct tfix *f = *state;
	struct vfpm_device *dev = vfpm_pci_device(f->model->pdev);
	struct vfpm_server_opts opts = { .socket_mode = 0660 };
	struct vfpm_server *srv;
	struct stat st;
	char path[160];
	mode_t old;

	snprintf(path, sizeof(path), "%s/mode.sock", f->dir);
	old = umask(0);
	assert_int_equal(vfpm_server_create(dev, path, NULL, &srv), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* A live server's path is not taken over. */
	assert_int_equal(vfpm_server_create(dev, path, NULL, &(struct vfpm_server *){ NULL }),
			 -EADDRINUSE);
	vfpm_server_destroy(srv);
	assert_int_equal(stat(path, &st), -1);

	old = umask(0077);
	assert_int_equal(vfpm_server_create(dev, path, &opts, &srv), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	vfpm_server_destroy(srv);
}

/* A socket file left behind by a dead server is replaced. */
static void test_stale_socket(void **state)
{
	struct tfix *f = *state;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct vfpm_server *srv;
	struct vfpm_client *c;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/stale.sock", f->dir);
	assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(fd);
	assert_int_equal(vfpm_server_create(vfpm_pci_device(f->model->pdev), addr.sun_path, NULL,
					    &srv), 0);
	assert_int_equal(t_server_start(srv), 0);
	assert_int_equal(vfpm_client_connect(addr.sun_path, &c), 0);
	t_check_client(c);
	vfpm_client_close(c);
	vfpm_server_destroy(srv);
}

/* After clients leave, the server holds no fd of theirs: the count is back. */
static void test_fds_back_to_baseline(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c[3];
	struct vfio_region_info info;
	int before = t_count_fds();
	uint8_t *mem;

	for (unsigned int i = 0; i < 3; i++) {
		int efd = t_eventfd(), wake = t_eventfd(), rfd;
		int gfd = guest_memfd(0x1000, &mem);
		struct vfpm_client_dma map = {
			.iova = 0x1000, .size = 0x1000, .flags = VFPM_CLIENT_DMA_READ, .fd = gfd,
		};

		c[i] = tfix_connect(f);
		assert_int_equal(vfpm_client_get_region_info(c[i], VFIO_PCI_BAR0_REGION_INDEX, &info,
							     sizeof(info), &rfd), 0);
		close(rfd);
		assert_int_equal(vfpm_client_set_irqs(c[i], VFIO_IRQ_SET_DATA_EVENTFD |
						      VFIO_IRQ_SET_ACTION_TRIGGER,
						      VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &efd), 0);
		assert_int_equal(vfpm_client_dma_map(c[i], &map), 0);
		if (i == 2)
			assert_int_equal(vfpm_client_low_power_entry_with_wakeup(c[i], wake), 0);
		close(efd);
		close(wake);
		close(gfd);
		munmap(mem, 0x1000);
	}
	for (unsigned int i = 0; i < 3; i++)
		vfpm_client_close(c[i]);
	tfix_wait_conns(f, 0);
	assert_int_equal(t_count_fds(), before);
}

/*
 * A client stuck in the middle of a message, and one that never reads its
 * replies, hold up only their own connections.
 */
static void test_stuck_clients_do_not_stall_others(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	struct vfio_user_header hdr = {
		.msg_id = 1, .command = VFIO_USER_DEVICE_GET_INFO, .msg_size = 16 + 16,
	};
	struct vfio_user_region_access rd = {
		.region = VFIO_PCI_CONFIG_REGION_INDEX, .count = 4096,
	};
	int half = raw_connect(f->path), deaf = raw_connect(f->path);
	unsigned int sent = 0;

	raw_version(half);
	assert_int_equal(vfpm_sock_write_all(half, &hdr, sizeof(hdr)), 0);

	/* Flood requests without reading until the socket is full both ways. */
	raw_version(deaf);
	for (;;) {
		struct vfio_user_header h = {
			.msg_id = (uint16_t)sent, .command = VFIO_USER_REGION_READ,
			.msg_size = sizeof(h) + sizeof(rd),
		};
		uint8_t buf[sizeof(h) + sizeof(rd)];
		ssize_t n;

		memcpy(buf, &h, sizeof(h));
		memcpy(buf + sizeof(h), &rd, sizeof(rd));
		n = send(deaf, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			assert_int_equal(errno, EAGAIN);
			break;
		}
		assert_int_equal(n, sizeof(buf));
		sent++;
	}
	assert_true(sent > 10);

	t_check_client(c);
	vfpm_client_close(c);
	close(half);
	close(deaf);
	tfix_wait_conns(f, 0);
}

/* Opening by target string; failures leave nothing open. */
static void test_client_open(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = NULL;
	char target[200];
	int before = t_count_fds();

	snprintf(target, sizeof(target), "vfio-user:%s", f->path);
	assert_int_equal(vfpm_client_open(target, &c), 0);
	assert_string_equal(vfpm_client_backend(c), "vfio-user");
	t_check_client(c);
	vfpm_client_close(c);
	assert_int_equal(vfpm_client_open(f->path, &c), 0);
	vfpm_client_close(c);

	snprintf(target, sizeof(target), "%s/missing.sock", f->dir);
	assert_int_equal(vfpm_client_connect(target, &c), -ENOENT);
	/* No VFIO here: the kernel backend fails cleanly (it is exercised under QEMU). */
	assert_true(vfpm_client_open("0000:00:00.0", &c) < 0);
	assert_true(vfpm_client_open("vfio:0000:ff:1f.7", &c) < 0);
	assert_int_equal(vfpm_client_open_vfio("../../etc", &c), -EINVAL);
	tfix_wait_conns(f, 0);
	assert_int_equal(t_count_fds(), before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_version_negotiation, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_version_errors, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_get_info, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_region_info, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_irq_info, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_set_irqs, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_intx_status_and_disable, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_err_req_interrupts, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_region_read_write, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_reset, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_feature_probe, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_dma, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_dma_through_device, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_dma_reply_behind_held_command, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_dma_without_twin_socket, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_socket_mode, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_stale_socket, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_fds_back_to_baseline, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_stuck_clients_do_not_stall_others, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_client_open, tfix_setup, tfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
