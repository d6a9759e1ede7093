// SPDX-License-Identifier: MIT
/*
 * I/O commands on the namespace's backing file: Read, Write, Flush and
 * Write Zeroes.  The file's page cache is the controller's volatile write
 * cache (VWC present): Flush and FUA reach stable storage with fdatasync,
 * and so does every write while the host has turned the cache off.
 */
#include "nvme_ctrl.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define NVME_NSID 1u
#define NVME_NSID_ALL 0xffffffffu

int nvme_io_sync(struct nvme_ctrl *c)
{
	return fdatasync(c->fd) ? -errno : 0;
}

/* Move the head of an iovec array on by n bytes. */
static void iov_advance(struct iovec **iov, unsigned int *cnt, size_t n)
{
	while (*cnt && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt && n) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

/* The file's bytes at off into the iovecs; past the end of the file, zeros. */
static int readv_full(int fd, struct iovec *iov, unsigned int cnt, uint64_t off)
{
	while (cnt) {
		ssize_t n = preadv(fd, iov, (int)cnt, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			for (unsigned int i = 0; i < cnt; i++)
				memset(iov[i].iov_base, 0, iov[i].iov_len);
			return 0;
		}
		iov_advance(&iov, &cnt, (size_t)n);
		off += (uint64_t)n;
	}
	return 0;
}

static int writev_full(int fd, struct iovec *iov, unsigned int cnt, uint64_t off)
{
	while (cnt) {
		ssize_t n = pwritev(fd, iov, (int)cnt, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		iov_advance(&iov, &cnt, (size_t)n);
		off += (uint64_t)n;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* The LBA range of a Read, Write or Write Zeroes: 0, or LBA Out of Range. */
static uint16_t lba_range(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint64_t *off,
			  uint64_t *bytes)
{
	uint64_t slba = le32toh(cmd->cdw10) | (uint64_t)le32toh(cmd->cdw11) << 32;
	uint64_t nlb = (uint64_t)NVME_RW_NLB(le32toh(cmd->cdw12)) + 1;

	if (slba >= c->nblocks || nlb > c->nblocks - slba)
		return NVME_SC_LBA_RANGE;
	*off = slba << c->block_shift;
	*bytes = nlb << c->block_shift;
	return NVME_SC_SUCCESS;
}

/* A Read or Write's range, and no more data than MDTS allows. */
static uint16_t transfer_range(struct nvme_ctrl *c, const struct nvme_sqe *cmd, uint64_t *off,
			       uint64_t *bytes)
{
	uint16_t status = lba_range(c, cmd, off, bytes);

	if (!status && *bytes > VFPM_NVME_MAX_TRANSFER)
		status = NVME_SC_INVALID_FIELD;	/* over MDTS */
	return status;
}

static uint16_t write_done(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	bool fua = le32toh(cmd->cdw12) & NVME_RW_FUA;

	if ((fua || !c->eng.feat.write_cache) && nvme_io_sync(c))
		return NVME_SC_WRITE_FAULT;
	return NVME_SC_SUCCESS;
}

/*
 * A Read's or Write's data, moved between the file and the guest's memory
 * mapped in place; *bytes gets its size.
 */
static uint16_t io_transfer(struct nvme_ctrl *c, const struct nvme_sqe *cmd, bool to_guest,
			    uint64_t *bytes)
{
	struct nvme_prp_iov *m = &c->eng.prp_iov;
	uint64_t off;
	uint16_t status = transfer_range(c, cmd, &off, bytes);

	if (status)
		return status;
	/* A Read writes the guest's memory, a Write reads it. */
	status = nvme_prp_map_iov(c, le64toh(cmd->prp1), le64toh(cmd->prp2), (uint32_t)*bytes,
				  to_guest ? PROT_WRITE : PROT_READ, m);
	if (status)
		return status;
	if (to_guest && readv_full(c->fd, m->iov, m->nr_iov, off))
		status = NVME_SC_UNRECOVERED_READ;
	else if (!to_guest && writev_full(c->fd, m->iov, m->nr_iov, off))
		status = NVME_SC_WRITE_FAULT;
	if (nvme_prp_unmap_iov(c, m) && !status)
		status = NVME_SC_DATA_XFER_ERROR;
	return status;
}

static uint16_t io_read(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint64_t bytes;
	uint16_t status = io_transfer(c, cmd, true, &bytes);

	if (!status) {
		c->eng.host_reads++;
		c->eng.units_read += bytes >> 9;
	}
	return status;
}

static uint16_t io_write(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint64_t bytes;
	uint16_t status = io_transfer(c, cmd, false, &bytes);

	if (status)
		return status;
	c->eng.host_writes++;
	c->eng.units_written += bytes >> 9;
	return write_done(c, cmd);
}

/* No data moves: up to 65536 blocks of zeros, by the file system when it can. */
static uint16_t io_write_zeroes(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint64_t off, bytes;
	uint16_t status = lba_range(c, cmd, &off, &bytes);

	if (status)
		return status;
	if (fallocate(c->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)bytes) &&
	    fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)bytes)) {
		memset(c->eng.buf, 0, VFPM_NVME_MAX_TRANSFER);
		while (bytes) {
			size_t n = bytes < VFPM_NVME_MAX_TRANSFER ? bytes : VFPM_NVME_MAX_TRANSFER;

			if (write_full(c->fd, c->eng.buf, n, off))
				return NVME_SC_WRITE_FAULT;
			off += n;
			bytes -= n;
		}
	}
	return write_done(c, cmd);
}

uint16_t nvme_io_exec(struct nvme_ctrl *c, const struct nvme_sqe *cmd)
{
	uint32_t nsid = le32toh(cmd->nsid);

	switch (cmd->opcode) {
	case NVME_IO_FLUSH:
		if (nsid != NVME_NSID && nsid != NVME_NSID_ALL)
			return NVME_SC_INVALID_NS;
		return nvme_io_sync(c) ? NVME_SC_WRITE_FAULT : NVME_SC_SUCCESS;
	case NVME_IO_WRITE:
	case NVME_IO_READ:
	case NVME_IO_WRITE_ZEROES:
		break;
	default:
		return NVME_SC_INVALID_OPCODE;
	}
	if (nsid != NVME_NSID)
		return NVME_SC_INVALID_NS;
	if (cmd->opcode == NVME_IO_READ)
		return io_read(c, cmd);
	if (cmd->opcode == NVME_IO_WRITE)
		return io_write(c, cmd);
	return io_write_zeroes(c, cmd);
}
