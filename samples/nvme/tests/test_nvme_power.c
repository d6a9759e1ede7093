// SPDX-License-Identifier: MIT
/*
 * The reason the controller exists: its poller thread is gone in runtime
 * suspend (commands rung before it complete first), a doorbell written while
 * asleep is still served, D3hot stops it as a suspend does and D0 brings a
 * soft reset; the doorbells as a VMM rings them (its mapping of the page);
 * INTx with INTMS / INTMC when the host uses no MSI-X.
 */
#include "nvme_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#define ID_BUF 0x100000u	/* where Identify and log data land in guest memory */

static struct harness *H(void **state)
{
	return *state;
}

/* ---- power ---- */

static void test_runtime_suspend(void **state)
{
	struct harness *h = H(state);
	struct vfpm_nvme_stats st;
	struct nvme_sqe cmd;
	struct nvme_cqe cqe;
	uint64_t suspends;
	int threads;

	h_enable(h);
	h_create_io_queues(h);
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_true(st.polling);
	suspends = st.suspends;
	threads = h_thread_count();

	/* Commands rung for just before the suspend complete before it is done. */
	for (unsigned int i = 0; i < 32; i++) {
		cmd = h_rw(NVME_IO_WRITE, 100 + i, 1, h_iova(H_DATA + i * 512), 0);
		h_submit(h, &h->io, &cmd, false);
	}
	h_ring(h, &h->io);
	assert_int_equal(vfpm_client_low_power_entry(h->c), 0);
	h_wait_power(h, "suspended");
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_false(st.polling);
	assert_int_equal(st.suspends, suspends + 1);
	assert_int_equal(h_thread_count(), threads - 1);	/* the poller thread is gone */
	for (unsigned int i = 0; i < 32; i++) {
		assert_true(h_peek_cqe(h, &h->io, 0, &cqe));
		assert_int_equal(cqe.status >> 1, 0);
		h_consume(h, &h->io, false);
	}
	/* Asleep, nothing polls: the pass count stands still. */
	{
		uint64_t passes = st.passes;

		usleep(20000);
		vfpm_nvme_get_stats(h->pdev, &st);
		assert_int_equal(st.passes, passes);
	}

	/*
	 * A doorbell written while asleep: the REGION_WRITE resumes the device
	 * before the write lands, the poller (or the next suspend's drain)
	 * sees it, and the device goes back to sleep.
	 */
	cmd = h_rw(NVME_IO_READ, 100, 32, h_iova(H_SCRATCH), h_iova(H_PRP_LIST));
	((uint64_t *)h_mem(h, H_PRP_LIST))[0] = h_iova(H_SCRATCH + 0x1000);
	((uint64_t *)h_mem(h, H_PRP_LIST))[1] = h_iova(H_SCRATCH + 0x2000);
	((uint64_t *)h_mem(h, H_PRP_LIST))[2] = h_iova(H_SCRATCH + 0x3000);
	h_submit(h, &h->io, &cmd, true);
	h_wait_cqe(h, &h->io, &cqe);
	assert_int_equal(cqe.status >> 1, 0);
	assert_memory_equal(h_mem(h, H_SCRATCH), h_mem(h, H_DATA), 32 * 512);
	h_wait_power(h, "suspended");
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_true(st.resumes >= 1);
	assert_false(st.polling);

	/* Out of low power: the poller is back, on the same queues. */
	assert_int_equal(vfpm_client_low_power_exit(h->c), 0);
	h_wait_power(h, "active");
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_true(st.polling);
	assert_int_equal(h_thread_count(), threads);
	h_write_read(h, 50, 2048, h_iova(H_DATA), 0, 16);
}

static void test_d3hot(void **state)
{
	struct harness *h = H(state);
	unsigned int pm = h_find_cap(h, PCI_CAP_ID_PM);
	struct vfpm_nvme_stats st;
	uint64_t suspends, resumes;
	uint16_t pmcsr;

	assert_true(pm != 0);
	h_enable(h);
	h_create_io_queues(h);
	vfpm_nvme_get_stats(h->pdev, &st);
	suspends = st.suspends;
	resumes = st.resumes;
	/* D3hot stops the poller, as a runtime suspend does; D0 brings a soft reset. */
	pmcsr = h_cfg16(h, pm + PCI_PM_CTRL);
	h_cfg_write16(h, pm + PCI_PM_CTRL, (uint16_t)((pmcsr & ~PCI_PM_CTRL_STATE_MASK) | 3));
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_false(st.polling);
	assert_int_equal(st.suspends, suspends + 1);
	h_cfg_write16(h, pm + PCI_PM_CTRL, (uint16_t)(pmcsr & ~PCI_PM_CTRL_STATE_MASK));
	h_cfg_write16(h, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_int_equal(st.resumes, resumes + 1);
	assert_int_equal(h_reg32(h, NVME_REG_CSTS), 0);
	assert_int_equal(h_reg32(h, NVME_REG_CC), 0);
	h_enable(h);
	h_create_io_queues(h);
	h_write_read(h, 4, 512, h_iova(H_DATA), 0, 17);
}

/*
 * The doorbells as a VMM rings them: through its mapping of the doorbell
 * page, never reaching the socket.  Low power revokes the mapping; after it
 * the same mapping works again.
 */
static void test_mapped_doorbells(void **state)
{
	struct harness *h = H(state);
	struct vfpm_nvme_stats st;

	h_map_doorbells(h);
	h_enable(h);
	h_create_io_queues(h);
	h_write_read(h, 20, 4096, h_iova(H_DATA + 0x800), h_iova(H_DATA + 0x2000), 18);
	for (unsigned int i = 0; i < 7; i++)
		((uint64_t *)h_mem(h, H_PRP_LIST + 0x100))[i] = h_iova(H_DATA + 0x4000 + i * 0x1000);
	h_write_read(h, 40, 32768, h_iova(H_DATA), h_iova(H_PRP_LIST + 0x100), 19);
	/* Registers stay trapped: beyond the doorbell page, reserved space reads 0. */
	assert_int_equal(h_reg32(h, 0x2000), 0);
	assert_int_equal(h_reg32(h, VFPM_NVME_BAR0_SIZE - 4), 0);

	assert_int_equal(vfpm_client_low_power_entry(h->c), 0);
	h_wait_power(h, "suspended");
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_false(st.polling);
	assert_int_equal(vfpm_client_low_power_exit(h->c), 0);
	h_wait_power(h, "active");
	h_write_read(h, 60, 8192, h_iova(H_DATA), h_iova(H_DATA + 0x1000), 20);
}

/*
 * The wake case with the doorbell page mapped: low power revokes the VMM's
 * mapping, so a store to it is a SIGBUS for the VMM (the device does not
 * wake: vfio-pci's mapping of a device in low power faults the same way).
 * The VMM rings through the socket instead (REGION_WRITE to the doorbell),
 * which wakes the device, fires the wakeup eventfd and is served.
 */
static void test_mapped_doorbell_while_revoked(void **state)
{
	struct harness *h = H(state);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	volatile uint32_t *map;
	struct vfpm_nvme_stats st;
	uint64_t wakes = 0;
	int status = 0;
	pid_t child;

	assert_true(efd >= 0);
	h_map_doorbells(h);
	h_enable(h);
	h_create_io_queues(h);
	h_write_read(h, 80, 4096, h_iova(H_DATA), 0, 21);

	assert_int_equal(vfpm_client_low_power_entry_with_wakeup(h->c, efd), 0);
	h_wait_power(h, "suspended");
	vfpm_nvme_get_stats(h->pdev, &st);
	assert_false(st.polling);

	/* A store through the revoked mapping: SIGBUS in the VMM, nothing woken. */
	map = h->db_map;
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* The VMM has no handler of vfpm's (and this one's locks stay in the parent). */
		signal(SIGBUS, SIG_DFL);
		alarm(10);
		map[2] = 1;	/* SQ 1 tail */
		_exit(0);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGBUS);
	assert_int_equal(read(efd, &wakes, sizeof(wakes)), -1);
	assert_int_equal(errno, EAGAIN);
	h_wait_power(h, "suspended");

	/* Through the socket: wakes the device, tells the VMM, is served. */
	h->db_map = NULL;
	h_write_read(h, 90, 4096, h_iova(H_DATA), 0, 22);
	assert_int_equal(read(efd, &wakes, sizeof(wakes)), sizeof(wakes));
	assert_true(wakes >= 1);

	/* Out of low power the mapping works again. */
	assert_int_equal(vfpm_client_low_power_exit(h->c), 0);
	h_wait_power(h, "active");
	h->db_map = map;
	h_write_read(h, 100, 4096, h_iova(H_DATA), 0, 23);
	close(efd);
}

/* ---- INTx ---- */

static void test_intx(void **state)
{
	struct harness *h = H(state);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int32_t fd32 = efd;
	struct nvme_sqe cmd;
	struct nvme_cqe cqe;

	assert_true(efd >= 0);
	assert_int_equal(vfpm_client_set_irqs(h->c, VFIO_IRQ_SET_DATA_EVENTFD |
					      VFIO_IRQ_SET_ACTION_TRIGGER,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd32), 0);
	h_enable(h);
	cmd = h_identify(NVME_CNS_CTRL, 0, ID_BUF);
	h_submit(h, &h->admin, &cmd, true);
	assert_true(h_eventfd_wait(efd, H_TIMEOUT_MS));
	h_eventfd_read(efd);
	assert_true(h_cfg16(h, PCI_STATUS) & PCI_STATUS_INTERRUPT);
	h_wait_cqe(h, &h->admin, &cqe);		/* consumed: the line drops */
	for (int i = 0; i < 500 && (h_cfg16(h, PCI_STATUS) & PCI_STATUS_INTERRUPT); i++)
		usleep(1000);
	assert_false(h_cfg16(h, PCI_STATUS) & PCI_STATUS_INTERRUPT);

	/* INTMS masks the line, INTMC lets it through. */
	assert_int_equal(vfpm_client_set_irqs(h->c, VFIO_IRQ_SET_DATA_NONE |
					      VFIO_IRQ_SET_ACTION_UNMASK,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, NULL), 0);
	h_reg_write32(h, NVME_REG_INTMS, 1);
	assert_int_equal(h_reg32(h, NVME_REG_INTMS), 1);
	h_submit(h, &h->admin, &cmd, true);
	assert_true(h_peek_cqe(h, &h->admin, H_TIMEOUT_MS, &cqe));
	assert_false(h_eventfd_wait(efd, 50));
	h_reg_write32(h, NVME_REG_INTMC, 1);
	assert_int_equal(h_reg32(h, NVME_REG_INTMC), 0);
	assert_true(h_eventfd_wait(efd, H_TIMEOUT_MS));
	h_consume(h, &h->admin, true);
	close(efd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_runtime_suspend, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_d3hot, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_mapped_doorbells, h_setup, h_teardown),
		cmocka_unit_test_setup_teardown(test_mapped_doorbell_while_revoked, h_setup,
						h_teardown),
		cmocka_unit_test_setup_teardown(test_intx, h_setup_intx, h_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
