// SPDX-License-Identifier: MIT
/*
 * Zero-copy DMA (vfpm_pci_dma_map/_unmap) through a real server and the
 * client library: the test thread plays the model's own DMA thread, the
 * client maps its memory with and without an fd.
 */
#include "test_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "base.h"

#define RW (VFPM_CLIENT_DMA_READ | VFPM_CLIENT_DMA_WRITE)
#define PG 0x1000u

/* A memfd of size bytes, mapped by the client side (the "guest RAM") at *map. */
static int guest_memfd(const char *name, size_t size, uint8_t **map)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	*map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(*map != MAP_FAILED);
	return fd;
}

/* A window of fd from its start, or without an fd (served from vaddr). */
static void map_window(struct vfpm_client *c, uint64_t iova, uint64_t size, uint32_t flags,
		       int fd, void *vaddr)
{
	struct vfpm_client_dma map = {
		.iova = iova, .size = size, .flags = flags, .fd = fd, .vaddr = vaddr,
	};

	assert_int_equal(vfpm_client_dma_map(c, &map), 0);
}

static void set_command(struct vfpm_client *c, uint16_t cmd)
{
	assert_int_equal(vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						  &cmd, 2), 2);
}

/* Memory decode and Bus Master Enable: the device DMAs into c's memory. */
static void bus_master(struct vfpm_client *c)
{
	set_command(c, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

/* Mappings of the memfd called name in this process (the client's and the server's). */
static unsigned int maps_of(const char *name)
{
	char line[512], needle[80];
	unsigned int n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	assert_non_null(f);
	snprintf(needle, sizeof(needle), "/memfd:%s ", name);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct vfpm_pci_dev *dev_of(struct tfix *f)
{
	return f->model->pdev;
}

/*
 * Two fd windows side by side, from two files: a range across their border
 * is two iovecs into the client's memory itself, both ways, at once.
 */
static void test_fd_windows_in_place(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	uint8_t *a, *b;
	int fa = guest_memfd("sgdma-a", PG, &a), fb = guest_memfd("sgdma-b", 2 * PG, &b);
	struct iovec iov[4];
	struct vfpm_dma_sg sg;
	struct vfpm_client_dma second = {
		.iova = 0x11000, .size = PG, .flags = RW, .fd = fb, .offset = PG,
	};

	map_window(c, 0x10000, PG, RW, fa, NULL);
	assert_int_equal(vfpm_client_dma_map(c, &second), 0);	/* b's second page */
	close(fa);
	close(fb);
	bus_master(c);
	memset(a + 0x800, 0xa5, 0x800);

	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x10800, PG, PROT_READ | PROT_WRITE, iov, 4,
					  &sg), 0);
	assert_int_equal(sg.nr_iov, 2);
	assert_ptr_equal(sg.iov, iov);
	assert_int_equal(iov[0].iov_len, 0x800);
	assert_int_equal(iov[1].iov_len, 0x800);
	/* The device reads what the client wrote, even after the map. */
	for (size_t i = 0; i < 0x800; i++)
		assert_int_equal(((uint8_t *)iov[0].iov_base)[i], 0xa5);
	a[0xfff] = 0x3c;
	assert_int_equal(((uint8_t *)iov[0].iov_base)[0x7ff], 0x3c);
	/* And its writes land in the client's memory at once, no copy at unmap. */
	memset(iov[1].iov_base, 0x5a, 0x800);
	for (size_t i = 0; i < 0x800; i++)
		assert_int_equal(b[PG + i], 0x5a);
	assert_int_equal(b[PG + 0x800], 0);
	assert_int_equal(b[PG - 1], 0);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), 0);
	assert_int_equal(sg.nr_iov, 0);
	assert_null(sg.priv);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), -EINVAL);	/* already released */

	/* Exactly max iovecs is enough; a range inside one window is one. */
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x10000, 2 * PG, PROT_READ, iov, 2, &sg), 0);
	assert_int_equal(sg.nr_iov, 2);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), 0);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x11010, 16, PROT_WRITE, iov, 1, &sg), 0);
	assert_int_equal(sg.nr_iov, 1);
	memcpy(iov[0].iov_base, "sixteen bytes!!", 16);
	assert_memory_equal(b + PG + 0x10, "sixteen bytes!!", 16);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), 0);

	vfpm_client_close(c);
	munmap(a, PG);
	munmap(b, 2 * PG);
}

/*
 * Windows without an fd (the client answers DMA messages from vaddr) are
 * bounced: PROT_READ sees the client's bytes as they were at map time,
 * PROT_WRITE reaches the client at unmap.  A range over an fd window and
 * an fd-less one gets one iovec of each kind.
 */
static void test_fdless_windows_bounced(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	uint8_t *mem, *fdmem;
	int fd = guest_memfd("sgdma-plain", 2 * PG, &mem);
	int ffd = guest_memfd("sgdma-fd", PG, &fdmem);
	struct iovec iov[2];
	struct vfpm_dma_sg sg;

	close(fd);	/* the client library serves mem: an ordinary process's memory */
	map_window(c, 0x20000, 2 * PG, RW, -1, mem);
	map_window(c, 0x1f000, PG, RW, ffd, NULL);
	close(ffd);
	bus_master(c);
	for (size_t i = 0; i < 2 * PG; i++)
		mem[i] = (uint8_t)i;

	/* Read: the bytes are there at map time; later changes are not seen. */
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x20100, 0x1800, PROT_READ, iov, 2, &sg), 0);
	assert_int_equal(sg.nr_iov, 1);
	assert_int_equal(iov[0].iov_len, 0x1800);
	assert_memory_equal(iov[0].iov_base, mem + 0x100, 0x1800);
	mem[0x100] ^= 0xff;
	assert_int_equal(((uint8_t *)iov[0].iov_base)[0], 0);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), 0);	/* nothing written back */
	assert_int_equal(mem[0x100], 0xff);

	/* Write: the client sees nothing until the unmap, then all of it. */
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x20ff0, 0x20, PROT_WRITE, iov, 2, &sg), 0);
	assert_int_equal(sg.nr_iov, 1);
	memset(iov[0].iov_base, 0xee, 0x20);
	assert_int_equal(mem[0xff0], 0xf0);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), 0);
	for (size_t i = 0xff0; i < 0x1010; i++)
		assert_int_equal(mem[i], 0xee);
	assert_int_equal(mem[0x1010], 0x10);

	/* Across the border of an fd window and an fd-less one: in place, then bounced. */
	memset(fdmem, 0x11, PG);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x1fff0, 0x20, PROT_READ | PROT_WRITE, iov,
					  2, &sg), 0);
	assert_int_equal(sg.nr_iov, 2);
	assert_int_equal(iov[0].iov_len, 0x10);
	assert_int_equal(iov[1].iov_len, 0x10);
	assert_int_equal(((uint8_t *)iov[0].iov_base)[0], 0x11);
	assert_memory_equal(iov[1].iov_base, mem, 0x10);
	memset(iov[0].iov_base, 0x22, 0x10);
	memset(iov[1].iov_base, 0x33, 0x10);
	assert_int_equal(fdmem[0xff0], 0x22);	/* in place: at once */
	assert_int_equal(mem[0], 0x00);		/* bounced: at unmap */
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), 0);
	assert_int_equal(mem[0], 0x33);
	assert_int_equal(mem[0xf], 0x33);
	assert_int_equal(mem[0x10], 0x10);

	vfpm_client_close(c);
	munmap(mem, 2 * PG);
	munmap(fdmem, PG);
}

/* The rules of the copies, and the map's own; a refused map holds nothing. */
static void test_map_errors(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	uint8_t *mem, *ro;
	int fd = guest_memfd("sgdma-err", 3 * PG, &mem);
	int rfd = guest_memfd("sgdma-ro", PG, &ro);
	struct iovec iov[4];
	struct vfpm_dma_sg sg = { 0 };

	map_window(c, 0x30000, PG, RW, fd, NULL);
	map_window(c, 0x31000, PG, RW, fd, NULL);
	map_window(c, 0x32000, PG, RW, fd, NULL);
	map_window(c, 0x40000, PG, VFPM_CLIENT_DMA_READ, rfd, NULL);
	map_window(c, 0x50000, PG, VFPM_CLIENT_DMA_WRITE, -1, mem);
	close(fd);
	close(rfd);
	assert_int_equal(maps_of("sgdma-err"), 4);	/* the client's, and one per window */

	/* Bus Master Enable off: the function issues no memory requests. */
	set_command(c, PCI_COMMAND_MEMORY);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x30000, 16, PROT_READ, iov, 4, &sg), -EPERM);
	assert_int_equal(sg.nr_iov, 0);
	assert_null(sg.priv);
	bus_master(c);

	/* Outside the windows, in part or at all. */
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x60000, 16, PROT_READ, iov, 4, &sg),
			 -EFAULT);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x32ff0, 0x20, PROT_READ, iov, 4, &sg),
			 -EFAULT);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), UINT64_MAX - 8, 16, PROT_READ, iov, 4, &sg),
			 -EFAULT);
	assert_null(sg.priv);
	/* A window that forbids the direction, also behind one that allows it. */
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x40000, 16, PROT_WRITE, iov, 4, &sg),
			 -EACCES);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x40000, 16, PROT_READ | PROT_WRITE, iov, 4,
					  &sg), -EACCES);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x50000, 16, PROT_READ, iov, 4, &sg),
			 -EACCES);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x40000, 16, PROT_READ, iov, 4, &sg), 0);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), 0);
	/* More windows than iovecs. */
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x30ff0, 0x1020, PROT_READ, iov, 2, &sg),
			 -ENOSPC);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x30000, 16, PROT_READ, iov, 0, &sg),
			 -ENOSPC);
	/* Bad arguments. */
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x30000, 0, PROT_READ, iov, 4, &sg), -EINVAL);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x30000, 16, PROT_NONE, iov, 4, &sg),
			 -EINVAL);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x30000, 16, PROT_EXEC, iov, 4, &sg),
			 -EINVAL);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x30000, 16, PROT_READ, NULL, 4, &sg),
			 -EINVAL);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x30000, 16, PROT_READ, iov, 4, NULL),
			 -EINVAL);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), NULL), -EINVAL);
	assert_null(sg.priv);

	/* Nothing was left held: the windows go with their unmap. */
	assert_int_equal(vfpm_client_dma_unmap(c, 0x30000, 3 * PG), 0);
	assert_int_equal(maps_of("sgdma-err"), 1);
	/* No window at all. */
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x30000, 16, PROT_READ, iov, 4, &sg),
			 -EFAULT);

	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
	/* The last close reset the function: no Bus Master Enable, no DMA. */
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x40000, 16, PROT_READ, iov, 4, &sg),
			 -EPERM);
	munmap(mem, 3 * PG);
	munmap(ro, PG);
}

/*
 * The client unmaps a window the model holds: DMA_UNMAP answers at once,
 * the held memory stays the model's to use, and the server's mapping (and
 * its place in the process's budget of DMA windows) goes at the model's
 * unmap.  A bounced range whose window went fails its write-back.
 */
static void test_hold_survives_dma_unmap(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	struct vfpm_transport_limits saved, lim;
	uint8_t *mem, *plain;
	int fd = guest_memfd("sgdma-hold", PG, &mem);
	int pfd = guest_memfd("sgdma-hold-plain", PG, &plain);
	struct iovec iov[2], piov[1];
	struct vfpm_dma_sg sg, psg, none;
	uint8_t byte;
	int64_t t0;

	vfpm_transport_get_limits(&saved);
	lim = saved;
	lim.max_dma_maps = 2;	/* the held window, and the fd-less one */
	assert_int_equal(vfpm_transport_set_limits(&lim), 0);
	close(pfd);
	map_window(c, 0x10000, PG, RW, fd, NULL);
	map_window(c, 0x20000, PG, RW, -1, plain);
	bus_master(c);
	mem[0x10] = 0x77;
	assert_int_equal(maps_of("sgdma-hold"), 2);

	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x10000, PG, PROT_READ | PROT_WRITE, iov, 2,
					  &sg), 0);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x20000, 0x10, PROT_WRITE, piov, 1, &psg), 0);
	/* This very thread holds both ranges: waiting for it would never end. */
	t0 = now_ms();
	assert_int_equal(vfpm_client_dma_unmap(c, 0x10000, PG), 0);
	assert_int_equal(vfpm_client_dma_unmap(c, 0x20000, PG), 0);
	assert_true(now_ms() - t0 < 1000);
	/* The window is gone for the copies and new maps ... */
	assert_int_equal(vfpm_pci_dma_read(dev_of(f), 0x10010, &byte, 1), -EFAULT);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x10000, 16, PROT_READ, iov + 1, 1, &none),
			 -EFAULT);
	/* ... but not for the hold, which still reaches the same memory. */
	assert_int_equal(((uint8_t *)iov[0].iov_base)[0x10], 0x77);
	((uint8_t *)iov[0].iov_base)[0x20] = 0x99;
	assert_int_equal(mem[0x20], 0x99);
	assert_int_equal(maps_of("sgdma-hold"), 2);
	/* Its place in the process's budget is still taken: one window more is too many. */
	map_window(c, 0x30000, PG, RW, -1, plain);
	{
		struct vfpm_client_dma one = { .iova = 0x40000, .size = PG, .flags = RW, .fd = -1,
					       .vaddr = plain };

		assert_int_equal(vfpm_client_dma_map(c, &one), -ENOSPC);
		assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), 0);
		assert_int_equal(maps_of("sgdma-hold"), 1);	/* the client's own */
		assert_int_equal(vfpm_client_dma_map(c, &one), 0);
	}
	/* The bounced range has nowhere to go back to. */
	memset(piov[0].iov_base, 0x44, 0x10);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &psg), -EFAULT);
	assert_int_equal(plain[0], 0);

	vfpm_client_close(c);
	assert_int_equal(vfpm_transport_set_limits(&saved), 0);
	close(fd);
	munmap(mem, PG);
	munmap(plain, PG);
}

/*
 * Another client taking the device's DMA over (Bus Master Enable through
 * it) and the holder's client going away do not wait for the hold; the
 * hold stays good until the model's unmap.  A bounced range of a client
 * that went away fails its write-back.
 */
static void test_hold_survives_disconnect(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f), *other;
	uint8_t *mem, *plain;
	int fd = guest_memfd("sgdma-gone", 2 * PG, &mem);
	int pfd = guest_memfd("sgdma-gone-plain", PG, &plain);
	struct iovec iov[1], piov[1];
	struct vfpm_dma_sg sg, psg;

	close(pfd);
	map_window(c, 0x10000, 2 * PG, RW, fd, NULL);
	map_window(c, 0x20000, PG, RW, -1, plain);
	close(fd);
	bus_master(c);
	plain[0] = 0x5e;
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x11000, PG, PROT_WRITE, iov, 1, &sg), 0);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x20000, PG, PROT_READ | PROT_WRITE, piov, 1,
					  &psg), 0);
	assert_int_equal(((uint8_t *)piov[0].iov_base)[0], 0x5e);

	/*
	 * A second client turns Bus Master Enable off and on again, which
	 * makes the device DMA into its memory: the switch does not wait.
	 */
	other = tfix_connect(f);
	set_command(other, PCI_COMMAND_MEMORY);
	bus_master(other);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x11000, PG, PROT_READ, iov, 1,
					  &(struct vfpm_dma_sg){ 0 }), -EFAULT);	/* its memory */
	vfpm_client_close(other);

	/* The holder's client goes: its connection is torn down under the hold. */
	vfpm_client_close(c);
	tfix_wait_conns(f, 0);
	memset(iov[0].iov_base, 0xc3, PG);
	assert_int_equal(mem[PG], 0xc3);
	assert_int_equal(mem[2 * PG - 1], 0xc3);
	assert_int_equal(maps_of("sgdma-gone"), 2);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), 0);
	assert_int_equal(maps_of("sgdma-gone"), 1);
	/* The bounced one's memory went with its client. */
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &psg), -EFAULT);
	munmap(mem, 2 * PG);
	munmap(plain, PG);
}

/*
 * The client truncates the window's file while the model holds it: the
 * model's accesses do not fault (lost pages read as zeros), the window is
 * lost for the copies, and the unmap says so.
 */
static void test_truncated_during_hold(void **state)
{
	struct tfix *f = *state;
	struct vfpm_client *c = tfix_connect(f);
	int fd = memfd_create("sgdma-trunc", MFD_CLOEXEC);
	struct iovec iov[1];
	struct vfpm_dma_sg sg;
	uint8_t *p, sum = 0;

	/* cmocka installs a SIGBUS handler of its own for every test. */
	assert_int_equal(vfpm_memguard_install(), 0);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 2 * PG), 0);
	assert_int_equal(pwrite(fd, "\x42", 1, PG), 1);
	map_window(c, 0x10000, 2 * PG, RW, fd, NULL);
	bus_master(c);
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x10000, 2 * PG, PROT_READ | PROT_WRITE, iov,
					  1, &sg), 0);
	p = iov[0].iov_base;
	assert_int_equal(p[PG], 0x42);
	/* The first page stays; the second one goes. */
	assert_int_equal(ftruncate(fd, PG), 0);
	p[0] = 1;
	for (size_t i = PG; i < 2 * PG; i++)
		sum |= p[i];
	assert_int_equal(sum, 0);
	p[PG] = 0x24;	/* lands nowhere the client sees */
	assert_int_equal(vfpm_pci_dma_read(dev_of(f), 0x10000, &sum, 1), -EFAULT);
	assert_int_equal(vfpm_pci_dma_unmap(dev_of(f), &sg), -EFAULT);
	/* A lost window is not mapped again. */
	assert_int_equal(vfpm_pci_dma_map(dev_of(f), 0x10000, 16, PROT_READ, iov, 1, &sg),
			 -EFAULT);
	assert_int_equal(pread(fd, &sum, 1, 0), 1);
	assert_int_equal(sum, 1);

	assert_int_equal(vfpm_client_dma_unmap(c, 0x10000, 2 * PG), 0);
	assert_int_equal(maps_of("sgdma-trunc"), 0);
	vfpm_client_close(c);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fd_windows_in_place, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_fdless_windows_bounced, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_map_errors, tfix_setup, tfix_teardown),
		cmocka_unit_test_setup_teardown(test_hold_survives_dma_unmap, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_hold_survives_disconnect, tfix_setup,
						tfix_teardown),
		cmocka_unit_test_setup_teardown(test_truncated_during_hold, tfix_setup,
						tfix_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
