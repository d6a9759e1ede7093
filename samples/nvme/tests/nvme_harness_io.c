// SPDX-License-Identifier: MIT
/* The harness's data helpers: patterns, the backing file, PRPs as a host builds them. */
#include "nvme_harness.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void h_fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* The backing file's bytes at a block, as the host would find them on disk. */
void h_backing_read(struct harness *h, uint64_t lba, void *buf, size_t len)
{
	int fd = open(h->backing, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)(lba * h->block_size)), (ssize_t)len);
	close(fd);
}

bool h_is_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

/* The host's side of PRP1 / PRP2: the pieces of its buffer, lists and chains followed. */
unsigned int h_host_prps(struct harness *h, uint64_t prp1, uint64_t prp2, uint32_t len,
			 uint64_t *addr, uint32_t *plen)
{
	uint32_t first = 4096 - (uint32_t)(prp1 & 4095);
	uint64_t list = prp2;
	unsigned int n = 0;

	first = first < len ? first : len;
	addr[n] = prp1;
	plen[n++] = first;
	len -= first;
	if (len && len <= 4096) {
		addr[n] = prp2;
		plen[n++] = len;
		return n;
	}
	while (len) {
		uint32_t room = (4096 - (uint32_t)(list & 4095)) / 8;
		uint32_t need = (len + 4095) / 4096;
		const uint64_t *ents = (const uint64_t *)h_mem(h, list - H_GUEST_IOVA);

		for (uint32_t i = 0; i < (need <= room ? need : room - 1); i++) {
			addr[n] = ents[i];
			plen[n] = len < 4096 ? len : 4096;
			len -= plen[n++];
		}
		if (len)
			list = ents[room - 1];
	}
	return n;
}

/* Write len bytes at lba from the host buffer these PRPs describe, read them back. */
void h_write_read(struct harness *h, uint64_t lba, uint32_t len, uint64_t prp1, uint64_t prp2,
		  uint32_t seed)
{
	uint8_t *expect = malloc(len), *disk = malloc(len);
	uint32_t nblocks = len / h->block_size, plen[H_MAX_PRPS];
	uint64_t addr[H_MAX_PRPS];
	unsigned int n = h_host_prps(h, prp1, prp2, len, addr, plen);
	struct nvme_sqe cmd;

	assert_non_null(expect);
	assert_non_null(disk);
	h_fill_pattern(expect, len, seed);
	for (unsigned int i = 0, done = 0; i < n; done += plen[i++])
		memcpy(h_mem(h, addr[i] - H_GUEST_IOVA), expect + done, plen[i]);
	cmd = h_rw(NVME_IO_WRITE, lba, nblocks, prp1, prp2);
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);
	h_backing_read(h, lba, disk, len);
	assert_memory_equal(disk, expect, len);

	/* Read into a fresh contiguous buffer through a PRP list of our own. */
	memset(h_mem(h, H_SCRATCH), 0, len + 4096);
	if (len <= 4096) {
		cmd = h_rw(NVME_IO_READ, lba, nblocks, h_iova(H_SCRATCH), 0);
	} else if (len <= 8192) {
		cmd = h_rw(NVME_IO_READ, lba, nblocks, h_iova(H_SCRATCH), h_iova(H_SCRATCH + 4096));
	} else {
		uint64_t *list = (uint64_t *)h_mem(h, H_PRP_LIST + 0x800);

		for (uint32_t i = 1; i * 4096 < len; i++)
			list[i - 1] = h_iova(H_SCRATCH + i * 4096);
		cmd = h_rw(NVME_IO_READ, lba, nblocks, h_iova(H_SCRATCH), h_iova(H_PRP_LIST + 0x800));
	}
	assert_int_equal(h_cmd(h, &h->io, &cmd, NULL), NVME_SC_SUCCESS);
	assert_memory_equal(h_mem(h, H_SCRATCH), expect, len);
	free(expect);
	free(disk);
}

