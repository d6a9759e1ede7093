// SPDX-License-Identifier: MIT
#include "nvme_harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_msix(struct harness *h)
{
	int32_t fds[VFPM_NVME_MSIX_VECTORS];

	for (unsigned int i = 0; i < VFPM_NVME_MSIX_VECTORS; i++) {
		h->msix_efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		assert_true(h->msix_efd[i] >= 0);
		fds[i] = h->msix_efd[i];
	}
	assert_int_equal(vfpm_client_set_irqs(h->c, VFIO_IRQ_SET_DATA_EVENTFD |
					      VFIO_IRQ_SET_ACTION_TRIGGER,
					      VFIO_PCI_MSIX_IRQ_INDEX, 0, VFPM_NVME_MSIX_VECTORS,
					      fds), 0);
}

static int setup(void **state, unsigned int block_size, bool msix)
{
	struct harness *h = calloc(1, sizeof(*h));
	struct vfpm_nvme_opts opts = { .block_size = block_size };
	struct vfpm_client_dma map;
	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	int fd;

	assert_non_null(h);
	h->block_size = block_size;
	for (unsigned int i = 0; i < VFPM_NVME_MSIX_VECTORS; i++)
		h->msix_efd[i] = -1;
	strcpy(h->dir, "/tmp/vfpm-nvme-XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	snprintf(h->sock, sizeof(h->sock), "%s/nvme.sock", h->dir);
	snprintf(h->backing, sizeof(h->backing), "%s/disk.img", h->dir);
	fd = open(h->backing, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, H_BACKING_SIZE), 0);
	close(fd);

	opts.backing_path = h->backing;
	assert_int_equal(vfpm_nvme_create(&opts, &h->pdev), 0);
	assert_int_equal(vfpm_server_create(vfpm_pci_device(h->pdev), h->sock, NULL, &h->srv), 0);
	assert_int_equal(vfpm_server_start(h->srv), 0);
	assert_int_equal(vfpm_client_connect(h->sock, &h->c), 0);

	h->guest_fd = memfd_create("guest", MFD_CLOEXEC);
	assert_true(h->guest_fd >= 0);
	assert_int_equal(ftruncate(h->guest_fd, H_GUEST_SIZE), 0);
	h->guest = mmap(NULL, H_GUEST_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, h->guest_fd, 0);
	assert_true(h->guest != MAP_FAILED);
	map = (struct vfpm_client_dma){
		.iova = H_GUEST_IOVA, .size = H_GUEST_SIZE,
		.flags = VFPM_CLIENT_DMA_READ | VFPM_CLIENT_DMA_WRITE,
		.fd = h->guest_fd, .vaddr = h->guest,
	};
	assert_int_equal(vfpm_client_dma_map(h->c, &map), 0);
	assert_int_equal(vfpm_client_region_write(h->c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND,
						  &cmd, sizeof(cmd)), sizeof(cmd));
	if (msix)
		set_msix(h);
	h->admin = (struct hqueue){ .qid = 0, .depth = H_ADMIN_DEPTH, .sq_off = H_ASQ,
				    .cq_off = H_ACQ, .phase = true };
	h->io = (struct hqueue){ .qid = 1, .depth = H_IO_DEPTH, .sq_off = H_IOSQ,
				 .cq_off = H_IOCQ, .phase = true };
	*state = h;
	return 0;
}

int h_setup(void **state)
{
	return setup(state, 512, true);
}

int h_setup_4k(void **state)
{
	return setup(state, 4096, true);
}

int h_setup_intx(void **state)
{
	return setup(state, 512, false);
}

int h_teardown(void **state)
{
	struct harness *h = *state;

	if (h->db_map)
		munmap((void *)h->db_map, 4096);
	vfpm_client_close(h->c);
	vfpm_server_destroy(h->srv);
	vfpm_nvme_destroy(h->pdev);
	munmap(h->guest, H_GUEST_SIZE);
	close(h->guest_fd);
	for (unsigned int i = 0; i < VFPM_NVME_MSIX_VECTORS; i++) {
		if (h->msix_efd[i] >= 0)
			close(h->msix_efd[i]);
	}
	unlink(h->backing);
	rmdir(h->dir);
	free(h);
	return 0;
}

/* ---- registers ---- */

uint32_t h_reg32(struct harness *h, uint32_t off)
{
	uint32_t v = 0;

	assert_int_equal(vfpm_client_region_read(h->c, VFIO_PCI_BAR0_REGION_INDEX, off, &v, 4), 4);
	return v;
}

uint64_t h_reg64(struct harness *h, uint32_t off)
{
	uint64_t v = 0;

	assert_int_equal(vfpm_client_region_read(h->c, VFIO_PCI_BAR0_REGION_INDEX, off, &v, 8), 8);
	return v;
}

void h_reg_write32(struct harness *h, uint32_t off, uint32_t v)
{
	assert_int_equal(vfpm_client_region_write(h->c, VFIO_PCI_BAR0_REGION_INDEX, off, &v, 4), 4);
}

void h_reg_write64(struct harness *h, uint32_t off, uint64_t v)
{
	/* As Linux's lo_hi_writeq: the low half, then the high one. */
	h_reg_write32(h, off, (uint32_t)v);
	h_reg_write32(h, off + 4, (uint32_t)(v >> 32));
}

void h_wait_csts(struct harness *h, uint32_t mask, uint32_t value)
{
	int64_t deadline = now_ms() + H_TIMEOUT_MS;
	uint32_t csts;

	while (((csts = h_reg32(h, NVME_REG_CSTS)) & mask) != value && now_ms() < deadline)
		sleep_ms(1);
	if ((csts & mask) != value)
		fail_msg("CSTS %#x: wanted %#x under mask %#x", csts, value, mask);
}

void h_enable(struct harness *h)
{
	h->admin.sq_tail = h->admin.cq_head = 0;
	h->admin.phase = true;
	memset(h_mem(h, H_ACQ), 0, H_ADMIN_DEPTH * sizeof(struct nvme_cqe));
	h_reg_write32(h, NVME_REG_AQA, (H_ADMIN_DEPTH - 1) << 16 | (H_ADMIN_DEPTH - 1));
	h_reg_write64(h, NVME_REG_ASQ, h_iova(H_ASQ));
	h_reg_write64(h, NVME_REG_ACQ, h_iova(H_ACQ));
	h_reg_write32(h, NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20);
	h_wait_csts(h, NVME_CSTS_RDY, NVME_CSTS_RDY);
}

void h_disable(struct harness *h)
{
	h_reg_write32(h, NVME_REG_CC, h_reg32(h, NVME_REG_CC) & ~NVME_CC_EN);
	h_wait_csts(h, NVME_CSTS_RDY, 0);
}

void h_create_io_queues(struct harness *h)
{
	struct nvme_sqe cmd = { .opcode = NVME_ADMIN_SET_FEATURES,
				.cdw10 = NVME_FEAT_NUM_QUEUES, .cdw11 = 3u << 16 | 3u };
	uint32_t dw0 = 0;

	assert_int_equal(h_cmd(h, &h->admin, &cmd, &dw0), NVME_SC_SUCCESS);
	assert_int_equal(dw0, 3u << 16 | 3u);
	h->io.sq_tail = h->io.cq_head = 0;
	h->io.phase = true;
	memset(h_mem(h, H_IOCQ), 0, H_IO_DEPTH * sizeof(struct nvme_cqe));
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_CREATE_CQ, .prp1 = h_iova(H_IOCQ),
				 .cdw10 = (H_IO_DEPTH - 1) << 16 | 1,
				 .cdw11 = 1u << 16 | NVME_CQ_IEN | NVME_QUEUE_PC };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
	cmd = (struct nvme_sqe){ .opcode = NVME_ADMIN_CREATE_SQ, .prp1 = h_iova(H_IOSQ),
				 .cdw10 = (H_IO_DEPTH - 1) << 16 | 1,
				 .cdw11 = 1u << 16 | NVME_QUEUE_PC };
	assert_int_equal(h_cmd(h, &h->admin, &cmd, NULL), NVME_SC_SUCCESS);
}

void h_map_doorbells(struct harness *h)
{
	uint8_t buf[sizeof(struct vfio_region_info) + 64] = { 0 };
	struct vfio_region_info *info = (struct vfio_region_info *)buf;
	struct vfio_region_info_cap_sparse_mmap *cap;
	void *map;
	int fd = -1;

	assert_int_equal(vfpm_client_get_region_info(h->c, VFIO_PCI_BAR0_REGION_INDEX, info,
						     sizeof(buf), &fd), 0);
	assert_true(fd >= 0);
	assert_int_equal(info->size, VFPM_NVME_BAR0_SIZE);
	assert_true(info->flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_true(info->flags & VFIO_REGION_INFO_FLAG_CAPS);
	cap = (struct vfio_region_info_cap_sparse_mmap *)(buf + info->cap_offset);
	assert_int_equal(cap->header.id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
	assert_int_equal(cap->nr_areas, 1);
	assert_int_equal(cap->areas[0].offset, VFPM_NVME_DOORBELLS);
	assert_int_equal(cap->areas[0].size, 4096);
	map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		   (off_t)(info->offset + cap->areas[0].offset));
	close(fd);
	assert_true(map != MAP_FAILED);
	h->db_map = map;
}

static void doorbell_write(struct harness *h, unsigned int index, uint32_t v)
{
	if (h->db_map)
		__atomic_store_n(&h->db_map[index], v, __ATOMIC_RELEASE);
	else
		h_reg_write32(h, VFPM_NVME_DOORBELLS + 4 * index, v);
}

/* ---- queues ---- */

uint8_t *h_mem(struct harness *h, uint64_t off)
{
	assert_true(off < H_GUEST_SIZE);
	return h->guest + off;
}

uint64_t h_iova(uint64_t off)
{
	return H_GUEST_IOVA + off;
}

uint16_t h_submit(struct harness *h, struct hqueue *q, struct nvme_sqe *cmd, bool ring)
{
	cmd->cid = h->next_cid++;
	memcpy(h_mem(h, q->sq_off + q->sq_tail * sizeof(*cmd)), cmd, sizeof(*cmd));
	q->sq_tail = (q->sq_tail + 1) % q->depth;
	if (ring)
		h_ring(h, q);
	return cmd->cid;
}

void h_ring(struct harness *h, struct hqueue *q)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	doorbell_write(h, 2u * q->qid, q->sq_tail);
}

bool h_peek_cqe(struct harness *h, struct hqueue *q, int timeout_ms, struct nvme_cqe *cqe)
{
	int64_t deadline = now_ms() + timeout_ms;
	const uint8_t *at = h_mem(h, q->cq_off + q->cq_head * sizeof(*cqe));

	for (;;) {
		uint16_t status = __atomic_load_n((const uint16_t *)(at + 14), __ATOMIC_ACQUIRE);

		if ((status & 1) == q->phase) {
			memcpy(cqe, at, sizeof(*cqe));
			return true;
		}
		if (now_ms() >= deadline)
			return false;
		sleep_ms(1);
	}
}

void h_consume(struct harness *h, struct hqueue *q, bool ring)
{
	q->cq_head = (q->cq_head + 1) % q->depth;
	if (q->cq_head == 0)
		q->phase = !q->phase;
	if (ring)
		doorbell_write(h, 2u * q->qid + 1, q->cq_head);
}

void h_wait_cqe(struct harness *h, struct hqueue *q, struct nvme_cqe *cqe)
{
	if (!h_peek_cqe(h, q, H_TIMEOUT_MS, cqe)) {
		struct vfpm_nvme_stats st;

		vfpm_nvme_get_stats(h->pdev, &st);
		fail_msg("no completion on queue %u (CSTS %#x%s%s)", q->qid, st.csts,
			 st.fatal_reason ? ": " : "", st.fatal_reason ? st.fatal_reason : "");
	}
	h_consume(h, q, true);
}

uint16_t h_cmd(struct harness *h, struct hqueue *q, struct nvme_sqe *cmd, uint32_t *dw0)
{
	struct nvme_cqe cqe;
	uint16_t cid = h_submit(h, q, cmd, true);

	h_wait_cqe(h, q, &cqe);
	assert_int_equal(cqe.cid, cid);
	assert_int_equal(cqe.sqid, q->qid);
	assert_int_equal(cqe.sqhd, q->sq_tail);
	if (dw0)
		*dw0 = cqe.dw0;
	/* Every error says Do Not Retry. */
	if (cqe.status >> 1)
		assert_true(cqe.status >> 1 & NVME_STATUS_DNR);
	return (uint16_t)((cqe.status >> 1) & 0x7ff);
}

struct nvme_sqe h_identify(uint32_t cns, uint32_t nsid, uint64_t buf_off)
{
	return (struct nvme_sqe){ .opcode = NVME_ADMIN_IDENTIFY, .nsid = nsid,
				  .prp1 = h_iova(buf_off), .cdw10 = cns };
}

struct nvme_sqe h_rw(uint8_t opcode, uint64_t slba, uint32_t nblocks, uint64_t prp1, uint64_t prp2)
{
	return (struct nvme_sqe){ .opcode = opcode, .nsid = 1, .prp1 = prp1, .prp2 = prp2,
				  .cdw10 = (uint32_t)slba, .cdw11 = (uint32_t)(slba >> 32),
				  .cdw12 = nblocks - 1 };
}

/* ---- the rest ---- */

uint64_t h_eventfd_read(int efd)
{
	uint64_t v = 0;

	if (read(efd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}

bool h_eventfd_wait(int efd, int timeout_ms)
{
	struct pollfd pfd = { .fd = efd, .events = POLLIN };

	return poll(&pfd, 1, timeout_ms) == 1;
}

int h_thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

void h_wait_power(struct harness *h, const char *status)
{
	int64_t deadline = now_ms() + H_TIMEOUT_MS;
	struct vfpm_client_power st;

	for (;;) {
		assert_int_equal(vfpm_client_power_status(h->c, &st), 0);
		if (!strcmp(st.runtime_status, status))
			return;
		if (now_ms() >= deadline)
			fail_msg("runtime status %s, wanted %s", st.runtime_status, status);
		sleep_ms(2);
	}
}

uint16_t h_cfg16(struct harness *h, unsigned int off)
{
	uint16_t v = 0;

	assert_int_equal(vfpm_client_region_read(h->c, VFIO_PCI_CONFIG_REGION_INDEX, off, &v, 2), 2);
	return v;
}

void h_cfg_write16(struct harness *h, unsigned int off, uint16_t v)
{
	assert_int_equal(vfpm_client_region_write(h->c, VFIO_PCI_CONFIG_REGION_INDEX, off, &v, 2), 2);
}

unsigned int h_find_cap(struct harness *h, uint8_t id)
{
	unsigned int at = h_cfg16(h, PCI_CAPABILITY_LIST) & 0xfc;

	for (int hops = 0; at && hops < 48; hops++) {
		uint16_t hdr = h_cfg16(h, at);

		if ((hdr & 0xff) == id)
			return at;
		at = (hdr >> 8) & 0xfc;
	}
	return 0;
}

void h_wait_not_polling(struct harness *h)
{
	struct vfpm_nvme_stats st;

	vfpm_nvme_get_stats(h->pdev, &st);
	for (int ms = 0; st.polling && ms < H_TIMEOUT_MS; ms += 10) {
		usleep(10000);
		vfpm_nvme_get_stats(h->pdev, &st);
	}
	assert_false(st.polling);
}
