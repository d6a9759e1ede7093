// SPDX-License-Identifier: MIT
/*
 * Tests of the interrupt layer as a VFIO user sees it: GET_IRQ_INFO and
 * SET_IRQS return values, and what arrives on real eventfds (read without
 * blocking).  Every test ends with vfpm_pci_irqs_disable_all() and checks
 * that /proc/self/fd holds exactly what it held before the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "irq.h"

#define MSI_VECTORS 4
#define MSIX_VECTORS 8
#define MAX_TEST_FDS 32
#define WAIT_MS 5000

#define INTX VFIO_PCI_INTX_IRQ_INDEX
#define MSI VFIO_PCI_MSI_IRQ_INDEX
#define MSIX VFIO_PCI_MSIX_IRQ_INDEX
#define ERR VFIO_PCI_ERR_IRQ_INDEX
#define REQ VFIO_PCI_REQ_IRQ_INDEX

#define D_NONE VFIO_IRQ_SET_DATA_NONE
#define D_BOOL VFIO_IRQ_SET_DATA_BOOL
#define D_EFD VFIO_IRQ_SET_DATA_EVENTFD
#define A_MASK VFIO_IRQ_SET_ACTION_MASK
#define A_UNMASK VFIO_IRQ_SET_ACTION_UNMASK
#define A_TRIG VFIO_IRQ_SET_ACTION_TRIGGER

struct fixture {
	struct vfpm_pci_irqs irqs;
	int fds[MAX_TEST_FDS];		/* the test's own fds, closed by teardown */
	unsigned int nfds;
	int fds_before;
};

static int count_open_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(dir);
	while ((e = readdir(dir)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dir);
	return n - 1;	/* the directory's own fd */
}

static int track_fd(struct fixture *f, int fd)
{
	assert_true(fd >= 0);
	assert_true(f->nfds < MAX_TEST_FDS);
	f->fds[f->nfds++] = fd;
	return fd;
}

static int new_eventfd(struct fixture *f)
{
	return track_fd(f, eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
}

/* What the user reads from its eventfd now: the counter, 0 when nothing came. */
static uint64_t efd_take(int fd)
{
	uint64_t v = 0;
	ssize_t n = read(fd, &v, sizeof(v));

	if (n < 0) {
		assert_int_equal(errno, EAGAIN);
		return 0;
	}
	assert_int_equal(n, sizeof(v));
	return v;
}

static void efd_poke(int fd)
{
	assert_int_equal(eventfd_write(fd, 1), 0);
}

/* Block until the eventfd has a count (or the deadline passes), then take it. */
static uint64_t efd_wait(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, WAIT_MS) != 1)
		return 0;
	return efd_take(fd);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Poll a state with a deadline; the short pause only spaces the checks. */
static bool wait_for_masked(struct vfpm_pci_irqs *irqs, bool masked)
{
	uint64_t deadline = now_ms() + WAIT_MS;
	const struct timespec pause = { .tv_nsec = 1000000 };

	while (vfpm_pci_irq_intx_masked(irqs) != masked) {
		if (now_ms() > deadline)
			return false;
		nanosleep(&pause, NULL);
	}
	return true;
}

static int fixture_setup(void **state, const struct vfpm_pci_irq_counts *counts)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->fds_before = count_open_fds();
	if (vfpm_pci_irqs_init(&f->irqs, counts)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int setup(void **state)
{
	const struct vfpm_pci_irq_counts counts = {
		.intx = 1, .msi = MSI_VECTORS, .msix = MSIX_VECTORS, .err = 1,
	};

	return fixture_setup(state, &counts);
}

/* A conventional PCI function without a pin, MSI or MSI-X. */
static int setup_bare(void **state)
{
	const struct vfpm_pci_irq_counts counts = { 0 };

	return fixture_setup(state, &counts);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int leaked;

	vfpm_pci_irqs_disable_all(&f->irqs);
	assert_int_equal(vfpm_pci_irq_type(&f->irqs), VFPM_PCI_IRQ_NONE);
	for (unsigned int i = 0; i < f->nfds; i++)
		close(f->fds[i]);
	leaked = count_open_fds() - f->fds_before;
	vfpm_pci_irqs_destroy(&f->irqs);
	free(f);
	assert_int_equal(leaked, 0);
	return 0;
}

/* ---- ioctl helpers ---- */

static int set_irqs_raw(struct vfpm_pci_irqs *irqs, uint32_t argsz, uint32_t flags,
			uint32_t index, uint32_t start, uint32_t count, const void *data,
			size_t data_len, size_t in_len, const struct vfpm_fds *fds)
{
	unsigned char buf[sizeof(struct vfio_irq_set) + 64 * sizeof(int32_t)];
	struct vfio_irq_set hdr = {
		.argsz = argsz, .flags = flags, .index = index, .start = start, .count = count,
	};
	struct vfpm_ubuf u = { .data = buf, .in_len = in_len, .cap = in_len };

	assert_true(sizeof(hdr) + data_len <= sizeof(buf));
	memset(buf, 0, sizeof(buf));
	memcpy(buf, &hdr, sizeof(hdr));
	if (data_len)
		memcpy(buf + sizeof(hdr), data, data_len);
	return vfpm_pci_irqs_set(irqs, &u, fds);
}

static size_t data_len_of(uint32_t flags, uint32_t count)
{
	if (flags & D_BOOL)
		return count;
	if (flags & D_EFD)
		return count * sizeof(int32_t);
	return 0;
}

static int set_irqs(struct vfpm_pci_irqs *irqs, uint32_t flags, uint32_t index,
		    uint32_t start, uint32_t count, const void *data)
{
	size_t len = data_len_of(flags, count);

	return set_irqs_raw(irqs, sizeof(struct vfio_irq_set) + len, flags, index, start,
			    count, data, len, sizeof(struct vfio_irq_set) + len, NULL);
}

static int set_fd(struct vfpm_pci_irqs *irqs, uint32_t action, uint32_t index, int32_t fd)
{
	return set_irqs(irqs, D_EFD | action, index, 0, 1, &fd);
}

static int set_bool(struct vfpm_pci_irqs *irqs, uint32_t action, uint32_t index, uint8_t b)
{
	return set_irqs(irqs, D_BOOL | action, index, 0, 1, &b);
}

static int set_none(struct vfpm_pci_irqs *irqs, uint32_t action, uint32_t index,
		    uint32_t count)
{
	return set_irqs(irqs, D_NONE | action, index, 0, count, NULL);
}

static int get_info(struct vfpm_pci_irqs *irqs, uint32_t argsz, uint32_t index,
		    struct vfio_irq_info *out)
{
	struct vfio_irq_info info = { .argsz = argsz, .index = index };
	struct vfpm_ubuf u = { .data = &info, .in_len = sizeof(info), .cap = sizeof(info) };
	int ret = vfpm_pci_irqs_get_info(irqs, &u);

	*out = info;
	return ret;
}

/* ---- GET_IRQ_INFO ---- */

static void test_get_irq_info(void **state)
{
	struct fixture *f = *state;
	struct vfio_irq_info info;
	const struct {
		uint32_t index, flags, count;
	} want[] = {
		{ INTX, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED, 1 },
		{ MSI, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, MSI_VECTORS },
		{ MSIX, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, MSIX_VECTORS },
		{ ERR, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, 1 },
		{ REQ, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE, 1 },
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(get_info(&f->irqs, sizeof(info), want[i].index, &info), 0);
		assert_int_equal(info.flags, want[i].flags);
		assert_int_equal(info.count, want[i].count);
		assert_int_equal(info.index, want[i].index);
		assert_int_equal(vfpm_pci_irq_count(&f->irqs, want[i].index), want[i].count);
	}
	/* A larger argsz is fine; it stays as the user wrote it. */
	assert_int_equal(get_info(&f->irqs, 64, MSI, &info), 0);
	assert_int_equal(info.argsz, 64);

	assert_int_equal(get_info(&f->irqs, 15, INTX, &info), -EINVAL);
	assert_int_equal(get_info(&f->irqs, sizeof(info), VFIO_PCI_NUM_IRQS, &info), -EINVAL);
	assert_int_equal(get_info(&f->irqs, sizeof(info), 0xffffffffu, &info), -EINVAL);
}

static void test_get_irq_info_faults(void **state)
{
	struct fixture *f = *state;
	struct vfio_irq_info info = { .argsz = sizeof(info), .index = MSIX };
	struct vfpm_ubuf u = { .data = &info, .in_len = 15, .cap = sizeof(info) };

	assert_int_equal(vfpm_pci_irqs_get_info(&f->irqs, &u), -EFAULT);
	u = (struct vfpm_ubuf){ .data = &info, .in_len = sizeof(info), .cap = 15 };
	assert_int_equal(vfpm_pci_irqs_get_info(&f->irqs, &u), -EFAULT);
	u = (struct vfpm_ubuf){ .data = &info, .in_len = sizeof(info), .cap = sizeof(info) };
	assert_int_equal(vfpm_pci_irqs_get_info(&f->irqs, &u), 0);
	assert_int_equal(u.out_len, 16);
}

static void test_get_irq_info_bare_function(void **state)
{
	struct fixture *f = *state;
	struct vfio_irq_info info;

	assert_int_equal(get_info(&f->irqs, sizeof(info), INTX, &info), 0);
	assert_int_equal(info.count, 0);
	assert_int_equal(get_info(&f->irqs, sizeof(info), MSI, &info), 0);
	assert_int_equal(info.count, 0);
	assert_int_equal(get_info(&f->irqs, sizeof(info), MSIX, &info), 0);
	assert_int_equal(info.count, 0);
	/* vfio-pci hides ERR on a function that is not PCI Express. */
	assert_int_equal(get_info(&f->irqs, sizeof(info), ERR, &info), -EINVAL);
	assert_int_equal(get_info(&f->irqs, sizeof(info), REQ, &info), 0);
	assert_int_equal(info.count, 1);
}

/* ---- SET_IRQS validation ---- */

static void test_set_irqs_validation(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pci_irqs *irqs = &f->irqs;
	int32_t fds[2] = { -1, -1 };
	uint8_t one = 1;

	/* The header cannot even be read. */
	assert_int_equal(set_irqs_raw(irqs, 20, D_NONE | A_TRIG, REQ, 0, 1, NULL, 0, 19, NULL),
			 -EFAULT);
	assert_int_equal(set_irqs_raw(irqs, 19, D_NONE | A_TRIG, REQ, 0, 1, NULL, 0, 20, NULL),
			 -EINVAL);
	assert_int_equal(set_none(irqs, A_TRIG, VFIO_PCI_NUM_IRQS, 1), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, MSIX, 1, 0xfffffffeu, NULL), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, MSIX, 0, 0xffffffffu, NULL), -EINVAL);
	assert_int_equal(set_none(irqs, A_TRIG | (1u << 6), REQ, 1), -EINVAL);
	assert_int_equal(set_none(irqs, A_TRIG | (1u << 31), REQ, 1), -EINVAL);
	/* start and count against the index's vectors */
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, MSI, MSI_VECTORS, 0, NULL), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, MSI, 2, 3, NULL), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, INTX, 0, 2, NULL), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, REQ, 1, 0, NULL), -EINVAL);
	/* exactly one data type */
	assert_int_equal(set_irqs(irqs, A_TRIG, REQ, 0, 1, NULL), -EINVAL);
	assert_int_equal(set_irqs_raw(irqs, 24, D_NONE | D_BOOL | A_TRIG, REQ, 0, 1, &one, 1,
				      24, NULL), -EINVAL);
	assert_int_equal(set_irqs_raw(irqs, 24, D_BOOL | D_EFD | A_TRIG, REQ, 0, 1, fds, 4,
				      24, NULL), -EINVAL);
	/* the action is looked up by the driver: none or several match nothing */
	assert_int_equal(set_irqs(irqs, D_NONE, REQ, 0, 1, NULL), -ENOTTY);
	assert_int_equal(set_none(irqs, A_MASK | A_TRIG, INTX, 1), -ENOTTY);
	assert_int_equal(set_none(irqs, A_MASK | A_UNMASK | A_TRIG, REQ, 1), -ENOTTY);
	/* argsz must cover count * size of the data */
	assert_int_equal(set_irqs_raw(irqs, 27, D_EFD | A_TRIG, MSI, 0, 2, fds, 8, 28, NULL),
			 -EINVAL);
	assert_int_equal(set_irqs_raw(irqs, 20, D_BOOL | A_TRIG, REQ, 0, 1, &one, 1, 21, NULL),
			 -EINVAL);
	/* ... and must be readable */
	assert_int_equal(set_irqs_raw(irqs, 28, D_EFD | A_TRIG, MSI, 0, 2, fds, 8, 27, NULL),
			 -EFAULT);
	/* actions the index does not have */
	assert_int_equal(set_none(irqs, A_MASK, MSI, 1), -ENOTTY);
	assert_int_equal(set_none(irqs, A_UNMASK, MSIX, 1), -ENOTTY);
	assert_int_equal(set_none(irqs, A_MASK, ERR, 1), -ENOTTY);
	assert_int_equal(set_none(irqs, A_UNMASK, REQ, 1), -ENOTTY);
	/* INTx mask/unmask need INTx enabled */
	assert_int_equal(set_none(irqs, A_MASK, INTX, 1), -EINVAL);
	assert_int_equal(set_none(irqs, A_UNMASK, INTX, 1), -EINVAL);

	assert_int_equal(vfpm_pci_irq_type(irqs), VFPM_PCI_IRQ_NONE);
}

static void test_set_irqs_bare_function(void **state)
{
	struct fixture *f = *state;
	int efd = new_eventfd(f);

	/* An index without vectors fails validation, whatever the action. */
	assert_int_equal(set_fd(&f->irqs, A_TRIG, INTX, efd), -EINVAL);
	assert_int_equal(set_fd(&f->irqs, A_TRIG, MSI, efd), -EINVAL);
	assert_int_equal(set_fd(&f->irqs, A_TRIG, MSIX, efd), -EINVAL);
	assert_int_equal(set_fd(&f->irqs, A_TRIG, ERR, efd), -EINVAL);
	assert_int_equal(set_none(&f->irqs, A_MASK, ERR, 0), -EINVAL);
	assert_int_equal(set_fd(&f->irqs, A_TRIG, REQ, efd), 0);
	assert_int_equal(vfpm_pci_irq_req_signal(&f->irqs), 0);
	assert_int_equal(efd_take(efd), 1);
}

/* ---- INTx ---- */

static void test_intx_trigger_automask_and_refire(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pci_irqs *irqs = &f->irqs;
	int efd = new_eventfd(f);
	int before = count_open_fds();

	assert_int_equal(set_fd(irqs, A_TRIG, INTX, efd), 0);
	assert_int_equal(vfpm_pci_irq_type(irqs), INTX);
	assert_false(vfpm_pci_irq_intx_masked(irqs));
	assert_int_equal(count_open_fds(), before + 1);	/* our own copy */

	/* The line fires once and masks itself. */
	vfpm_pci_irq_intx_assert(irqs);
	assert_int_equal(efd_take(efd), 1);
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	vfpm_pci_irq_intx_assert(irqs);
	assert_int_equal(efd_take(efd), 0);

	/* Unmasking a line that is still high delivers it again. */
	assert_int_equal(set_none(irqs, A_UNMASK, INTX, 1), 0);
	assert_int_equal(efd_take(efd), 1);
	assert_true(vfpm_pci_irq_intx_masked(irqs));

	/* Once the model lowers it, unmask just unmasks. */
	vfpm_pci_irq_intx_deassert(irqs);
	assert_int_equal(set_none(irqs, A_UNMASK, INTX, 1), 0);
	assert_int_equal(efd_take(efd), 0);
	assert_false(vfpm_pci_irq_intx_masked(irqs));
	vfpm_pci_irq_intx_assert(irqs);
	assert_int_equal(efd_take(efd), 1);
	vfpm_pci_irq_intx_deassert(irqs);

	/* The trigger works on our copy: the user may close its own. */
	{
		int mine = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		uint8_t yes = 1;

		assert_int_equal(set_fd(irqs, A_TRIG, INTX, mine), 0);
		close(mine);
		assert_int_equal(set_irqs(irqs, D_BOOL | A_TRIG, INTX, 0, 1, &yes), 0);
		assert_int_equal(count_open_fds(), before + 1);
		assert_int_equal(set_fd(irqs, A_TRIG, INTX, efd), 0);
		assert_int_equal(count_open_fds(), before + 1);
	}

	/* count 0 with DATA_NONE disables INTx and closes the trigger. */
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 0), 0);
	assert_int_equal(vfpm_pci_irq_type(irqs), VFPM_PCI_IRQ_NONE);
	assert_int_equal(count_open_fds(), before);
	vfpm_pci_irq_intx_assert(irqs);
	assert_int_equal(efd_take(efd), 0);
	vfpm_pci_irq_intx_deassert(irqs);
}

static void test_intx_loopback(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pci_irqs *irqs = &f->irqs;
	int efd = new_eventfd(f);
	int efd2 = new_eventfd(f);

	/* Loopback needs INTx enabled. */
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 1), -EINVAL);
	assert_int_equal(set_bool(irqs, A_TRIG, INTX, 1), -EINVAL);

	assert_int_equal(set_fd(irqs, A_TRIG, INTX, efd), 0);
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 1), 0);
	assert_int_equal(efd_take(efd), 1);
	assert_int_equal(set_bool(irqs, A_TRIG, INTX, 1), 0);
	assert_int_equal(efd_take(efd), 1);
	assert_int_equal(set_bool(irqs, A_TRIG, INTX, 0), 0);
	assert_int_equal(efd_take(efd), 0);
	/* As in 6.1's vfio_send_intx_eventfd: loopback ignores the mask. */
	assert_false(vfpm_pci_irq_intx_masked(irqs));
	assert_int_equal(set_none(irqs, A_MASK, INTX, 1), 0);
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 1), 0);
	assert_int_equal(efd_take(efd), 1);
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	assert_int_equal(set_none(irqs, A_UNMASK, INTX, 1), 0);

	/* fd -1 drops the trigger but INTx stays enabled. */
	assert_int_equal(set_fd(irqs, A_TRIG, INTX, -1), 0);
	assert_int_equal(vfpm_pci_irq_type(irqs), INTX);
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 1), 0);
	assert_int_equal(efd_take(efd), 0);
	vfpm_pci_irq_intx_assert(irqs);
	assert_int_equal(efd_take(efd), 0);
	/* A new trigger gets the line that is still high. */
	assert_int_equal(set_fd(irqs, A_TRIG, INTX, efd2), 0);
	assert_int_equal(efd_take(efd2), 1);
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	vfpm_pci_irq_intx_deassert(irqs);

	/* Replacing a trigger: only the new one hears. */
	assert_int_equal(set_none(irqs, A_UNMASK, INTX, 1), 0);
	assert_int_equal(set_fd(irqs, A_TRIG, INTX, efd), 0);
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 1), 0);
	assert_int_equal(efd_take(efd), 1);
	assert_int_equal(efd_take(efd2), 0);

	/* fd -1 on a disabled INTx enables it without a trigger. */
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 0), 0);
	assert_int_equal(set_fd(irqs, A_TRIG, INTX, -1), 0);
	assert_int_equal(vfpm_pci_irq_type(irqs), INTX);
}

static void test_intx_mask_unmask_bool(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pci_irqs *irqs = &f->irqs;
	int efd = new_eventfd(f);
	int32_t fd = efd;

	assert_false(vfpm_pci_irq_intx_mask(irqs));	/* not enabled */
	assert_int_equal(set_fd(irqs, A_TRIG, INTX, efd), 0);

	assert_int_equal(set_bool(irqs, A_MASK, INTX, 0), 0);
	assert_false(vfpm_pci_irq_intx_masked(irqs));
	assert_int_equal(set_bool(irqs, A_MASK, INTX, 1), 0);
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	vfpm_pci_irq_intx_assert(irqs);
	assert_int_equal(efd_take(efd), 0);	/* held back by the mask */
	assert_int_equal(set_bool(irqs, A_UNMASK, INTX, 0), 0);
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	assert_int_equal(set_bool(irqs, A_UNMASK, INTX, 1), 0);
	assert_int_equal(efd_take(efd), 1);	/* delivered on unmask, masked again */
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	vfpm_pci_irq_intx_deassert(irqs);
	assert_int_equal(set_bool(irqs, A_UNMASK, INTX, 1), 0);
	assert_false(vfpm_pci_irq_intx_masked(irqs));

	/* No mask eventfd in vfio-pci; start/count checked first. */
	assert_int_equal(set_irqs(irqs, D_EFD | A_MASK, INTX, 0, 1, &fd), -ENOTTY);
	assert_int_equal(set_irqs(irqs, D_NONE | A_MASK, INTX, 0, 0, NULL), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_NONE | A_UNMASK, INTX, 0, 0, NULL), -EINVAL);

	/* The PM side: true only when it did the masking. */
	assert_true(vfpm_pci_irq_intx_mask(irqs));
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	assert_false(vfpm_pci_irq_intx_mask(irqs));
	vfpm_pci_irq_intx_unmask(irqs);
	assert_false(vfpm_pci_irq_intx_masked(irqs));
	/* PM unmask of a line that went high meanwhile delivers it. */
	assert_true(vfpm_pci_irq_intx_mask(irqs));
	vfpm_pci_irq_intx_assert(irqs);
	assert_int_equal(efd_take(efd), 0);
	vfpm_pci_irq_intx_unmask(irqs);
	assert_int_equal(efd_take(efd), 1);
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	vfpm_pci_irq_intx_deassert(irqs);

	/* Re-enabling starts unmasked. */
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 0), 0);
	assert_int_equal(set_fd(irqs, A_TRIG, INTX, efd), 0);
	assert_false(vfpm_pci_irq_intx_masked(irqs));
}

static void test_intx_unmask_eventfd(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pci_irqs *irqs = &f->irqs;
	int trig = new_eventfd(f);
	int unmask = new_eventfd(f);
	int other = new_eventfd(f);
	int before;

	/* Not while INTx is disabled. */
	assert_int_equal(set_fd(irqs, A_UNMASK, INTX, unmask), -EINVAL);
	assert_int_equal(set_fd(irqs, A_TRIG, INTX, trig), 0);
	before = count_open_fds();
	assert_int_equal(set_fd(irqs, A_UNMASK, INTX, unmask), 0);
	/* A second one is refused while the first is set. */
	assert_int_equal(set_fd(irqs, A_UNMASK, INTX, other), -EBUSY);
	assert_int_equal(count_open_fds(), before + 2);	/* our copy + the watcher's stop fd */

	/* Masked by delivery; the user's signal unmasks. */
	vfpm_pci_irq_intx_assert(irqs);
	assert_int_equal(efd_take(trig), 1);
	vfpm_pci_irq_intx_deassert(irqs);
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	efd_poke(unmask);
	assert_true(wait_for_masked(irqs, false));

	/* With the line still high, the unmask re-delivers it. */
	vfpm_pci_irq_intx_assert(irqs);
	assert_int_equal(efd_take(trig), 1);
	efd_poke(unmask);
	assert_int_equal(efd_wait(trig), 1);
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	vfpm_pci_irq_intx_deassert(irqs);
	efd_poke(unmask);
	assert_true(wait_for_masked(irqs, false));
	/* The watcher consumed every signal. */
	assert_int_equal(efd_take(unmask), 0);

	/* Removal joins the watcher: later signals stay with the user. */
	assert_int_equal(set_fd(irqs, A_UNMASK, INTX, -1), 0);
	assert_int_equal(count_open_fds(), before);
	assert_int_equal(set_none(irqs, A_MASK, INTX, 1), 0);
	efd_poke(unmask);
	assert_int_equal(efd_take(unmask), 1);
	assert_true(vfpm_pci_irq_intx_masked(irqs));
	/* Removing when none is set is fine. */
	assert_int_equal(set_fd(irqs, A_UNMASK, INTX, -5), 0);

	/* An eventfd already signalled when it is set unmasks at once. */
	efd_poke(other);
	assert_int_equal(set_fd(irqs, A_UNMASK, INTX, other), 0);
	assert_true(wait_for_masked(irqs, false));

	/* Disabling INTx takes the watcher down with it. */
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 0), 0);
	assert_int_equal(count_open_fds(), before - 1);
}

/* ---- MSI / MSI-X ---- */

static void msi_scenario(struct fixture *f, unsigned int index, unsigned int max)
{
	struct vfpm_pci_irqs *irqs = &f->irqs;
	int a = new_eventfd(f), b = new_eventfd(f), c = new_eventfd(f);
	int32_t block[2] = { a, b };
	int32_t one[1] = { c };
	int32_t clear[1] = { -1 };
	uint8_t bools[2] = { 0, 1 };
	int before = count_open_fds();

	/* Loopback and partial sets need the type enabled. */
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, index, 0, 1, NULL), -EINVAL);

	/* Enable with a block of two: nvec = start + count. */
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 0, 2, block), 0);
	assert_int_equal(vfpm_pci_irq_type(irqs), index);
	assert_int_equal(count_open_fds(), before + 2);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index, 0), 0);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index, 1), 0);
	assert_int_equal(efd_take(a), 1);
	assert_int_equal(efd_take(b), 1);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index, 2), -ENODEV);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index, max), -EINVAL);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index == MSI ? MSIX : MSI, 0), -ENODEV);

	/* Partial set inside nvec; beyond nvec is refused. */
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 1, 1, one), 0);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index, 1), 0);
	assert_int_equal(efd_take(c), 1);
	assert_int_equal(efd_take(b), 0);
	assert_int_equal(count_open_fds(), before + 2);
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 2, 1, one), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 1, 2, block), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 1, 0, NULL), 0);
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 2, 0, NULL), -EINVAL);

	/* Clear vector 0. */
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 0, 1, clear), 0);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index, 0), -ENODEV);
	assert_int_equal(count_open_fds(), before + 1);

	/* Loopback: NONE signals every vector with a trigger; BOOL the chosen ones. */
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, index, 0, 2, NULL), 0);
	assert_int_equal(efd_take(a), 0);
	assert_int_equal(efd_take(c), 1);
	assert_int_equal(set_irqs(irqs, D_BOOL | A_TRIG, index, 0, 2, bools), 0);
	assert_int_equal(efd_take(c), 1);
	bools[1] = 0;
	assert_int_equal(set_irqs(irqs, D_BOOL | A_TRIG, index, 0, 2, bools), 0);
	assert_int_equal(efd_take(c), 0);
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, index, 1, 2, NULL), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_BOOL | A_TRIG, index, 1, 0, NULL), 0);

	/* Only one type at a time. */
	assert_int_equal(set_fd(irqs, A_TRIG, INTX, a), -EINVAL);
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 0), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index == MSI ? MSIX : MSI, 0, 1, one),
			 -EINVAL);
	assert_int_equal(vfpm_pci_irq_type(irqs), index);

	/* Disable closes everything. */
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, index, 0, 0, NULL), 0);
	assert_int_equal(vfpm_pci_irq_type(irqs), VFPM_PCI_IRQ_NONE);
	assert_int_equal(count_open_fds(), before);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index, 1), -ENODEV);

	/* Enable at an offset: the vectors below start have no trigger. */
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 2, 2, block), 0);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index, 0), -ENODEV);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index, 3), 0);
	assert_int_equal(efd_take(b), 1);
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 0, 1, one), 0);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, index, 0), 0);
	assert_int_equal(efd_take(c), 1);
	assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, index, 0, 0, NULL), 0);

	/* The whole range; then an empty block enables nothing. */
	{
		int32_t all[MSIX_VECTORS];

		for (unsigned int i = 0; i < max; i++)
			all[i] = i % 2 ? -1 : a;
		assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 0, max, all), 0);
		assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, index, 0, max, NULL), 0);
		assert_int_equal(efd_take(a), (max + 1) / 2);
		assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, index, 0, 0, NULL), 0);
	}
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 0, 0, NULL), -ERANGE);
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 1, 0, NULL), -EINVAL);
	assert_int_equal(vfpm_pci_irq_type(irqs), VFPM_PCI_IRQ_NONE);
	assert_int_equal(count_open_fds(), before);
}

static void test_msi(void **state)
{
	msi_scenario(*state, MSI, MSI_VECTORS);
}

static void test_msix(void **state)
{
	msi_scenario(*state, MSIX, MSIX_VECTORS);
}

static void test_intx_blocks_msi(void **state)
{
	struct fixture *f = *state;
	int efd = new_eventfd(f);
	int32_t fd = efd;

	assert_int_equal(set_fd(&f->irqs, A_TRIG, INTX, efd), 0);
	assert_int_equal(set_irqs(&f->irqs, D_EFD | A_TRIG, MSI, 0, 1, &fd), -EINVAL);
	assert_int_equal(set_irqs(&f->irqs, D_EFD | A_TRIG, MSIX, 0, 1, &fd), -EINVAL);
	/* A disable of a type that is not enabled is not a disable. */
	assert_int_equal(set_irqs(&f->irqs, D_NONE | A_TRIG, MSI, 0, 0, NULL), -EINVAL);
	assert_int_equal(vfpm_pci_irq_type(&f->irqs), INTX);
}

/* ---- ERR / REQ ---- */

static void ctx_trigger_scenario(struct fixture *f, unsigned int index,
				 int (*model_signal)(struct vfpm_pci_irqs *))
{
	struct vfpm_pci_irqs *irqs = &f->irqs;
	int a = new_eventfd(f), b = new_eventfd(f);
	int before = count_open_fds();

	assert_int_equal(model_signal(irqs), -ENODEV);
	/* NONE without a trigger falls through to -EINVAL; BOOL is harmless. */
	assert_int_equal(set_none(irqs, A_TRIG, index, 1), -EINVAL);
	assert_int_equal(set_none(irqs, A_TRIG, index, 0), -EINVAL);
	assert_int_equal(set_bool(irqs, A_TRIG, index, 1), 0);

	assert_int_equal(set_fd(irqs, A_TRIG, index, a), 0);
	assert_int_equal(count_open_fds(), before + 1);
	assert_int_equal(model_signal(irqs), 0);
	assert_int_equal(efd_take(a), 1);
	assert_int_equal(set_none(irqs, A_TRIG, index, 1), 0);
	assert_int_equal(efd_take(a), 1);
	assert_int_equal(set_bool(irqs, A_TRIG, index, 1), 0);
	assert_int_equal(efd_take(a), 1);
	assert_int_equal(set_bool(irqs, A_TRIG, index, 0), 0);
	assert_int_equal(efd_take(a), 0);
	assert_int_equal(set_irqs(irqs, D_BOOL | A_TRIG, index, 0, 0, NULL), -EINVAL);
	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, index, 0, 0, NULL), -EINVAL);
	/* Negative fds other than -1 change nothing. */
	assert_int_equal(set_fd(irqs, A_TRIG, index, -2), 0);
	assert_int_equal(model_signal(irqs), 0);
	assert_int_equal(efd_take(a), 1);
	/* Replace. */
	assert_int_equal(set_fd(irqs, A_TRIG, index, b), 0);
	assert_int_equal(count_open_fds(), before + 1);
	assert_int_equal(model_signal(irqs), 0);
	assert_int_equal(efd_take(a), 0);
	assert_int_equal(efd_take(b), 1);
	/* -1 removes; so does NONE with count 0. */
	assert_int_equal(set_fd(irqs, A_TRIG, index, -1), 0);
	assert_int_equal(model_signal(irqs), -ENODEV);
	assert_int_equal(count_open_fds(), before);
	assert_int_equal(set_fd(irqs, A_TRIG, index, a), 0);
	assert_int_equal(set_none(irqs, A_TRIG, index, 0), 0);
	assert_int_equal(model_signal(irqs), -ENODEV);
	assert_int_equal(count_open_fds(), before);
	/* Independent of the interrupt type. */
	assert_int_equal(vfpm_pci_irq_type(irqs), VFPM_PCI_IRQ_NONE);
	assert_int_equal(set_fd(irqs, A_TRIG, index, a), 0);
}

static void test_err_trigger(void **state)
{
	ctx_trigger_scenario(*state, ERR, vfpm_pci_irq_err_signal);
}

static void test_req_trigger(void **state)
{
	ctx_trigger_scenario(*state, REQ, vfpm_pci_irq_req_signal);
}

/* ---- bad file descriptors leave everything as it was ---- */

static void test_bad_fds(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pci_irqs *irqs = &f->irqs;
	int good = new_eventfd(f), good2 = new_eventfd(f);
	int pipefd[2];
	/* Far above anything this process opens: never an open fd. */
	const int closed = 1000000;
	int before;

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	track_fd(f, pipefd[0]);
	track_fd(f, pipefd[1]);
	assert_true(fcntl(closed, F_GETFD) < 0 && errno == EBADF);
	before = count_open_fds();

	const struct {
		int32_t fd;
		int err;
	} bad[] = { { closed, -EBADF }, { pipefd[0], -EINVAL } };

	for (size_t i = 0; i < 2; i++) {
		int32_t fd = bad[i].fd, err = bad[i].err;
		int32_t block[3] = { good, fd, good2 };

		/* Nothing enabled: stays so. */
		assert_int_equal(set_fd(irqs, A_TRIG, INTX, fd), err);
		assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, MSI, 0, 3, block), err);
		assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, MSIX, 0, 3, block), err);
		assert_int_equal(vfpm_pci_irq_type(irqs), VFPM_PCI_IRQ_NONE);
		assert_int_equal(set_fd(irqs, A_TRIG, ERR, fd), err);
		assert_int_equal(set_fd(irqs, A_TRIG, REQ, fd), err);
		assert_int_equal(vfpm_pci_irq_err_signal(irqs), -ENODEV);
		assert_int_equal(count_open_fds(), before);

		/* INTx with a trigger: the old trigger and the mask state stay. */
		assert_int_equal(set_fd(irqs, A_TRIG, INTX, good), 0);
		assert_int_equal(set_fd(irqs, A_TRIG, INTX, fd), err);
		assert_int_equal(set_fd(irqs, A_UNMASK, INTX, fd), err);
		assert_int_equal(vfpm_pci_irq_type(irqs), INTX);
		vfpm_pci_irq_intx_assert(irqs);
		assert_int_equal(efd_take(good), 1);
		vfpm_pci_irq_intx_deassert(irqs);
		assert_int_equal(count_open_fds(), before + 1);
		assert_int_equal(set_none(irqs, A_TRIG, INTX, 0), 0);

		/* MSI-X enabled: a failing block changes no vector. */
		block[1] = good2;
		assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, MSIX, 0, 3, block), 0);
		block[0] = good2;
		block[1] = good;
		block[2] = fd;
		assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, MSIX, 0, 3, block), err);
		assert_int_equal(count_open_fds(), before + 3);
		assert_int_equal(set_irqs(irqs, D_NONE | A_TRIG, MSIX, 0, 3, NULL), 0);
		assert_int_equal(efd_take(good), 1);
		assert_int_equal(efd_take(good2), 2);
		assert_int_equal(set_none(irqs, A_TRIG, MSIX, 0), 0);

		/* ERR/REQ with a trigger keep it. */
		assert_int_equal(set_fd(irqs, A_TRIG, REQ, good), 0);
		assert_int_equal(set_fd(irqs, A_TRIG, REQ, fd), err);
		assert_int_equal(vfpm_pci_irq_req_signal(irqs), 0);
		assert_int_equal(efd_take(good), 1);
		assert_int_equal(set_fd(irqs, A_TRIG, REQ, -1), 0);
		assert_int_equal(count_open_fds(), before);
	}
}

/* vfio-user: an argument's fd number indexes the fds that came with the message. */
static void test_message_fds(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pci_irqs *irqs = &f->irqs;
	int a = new_eventfd(f), b = new_eventfd(f);
	const int table[2] = { a, b };
	const struct vfpm_fds fds = { .fd = table, .count = 2 };
	int32_t idx[2] = { 1, 0 };
	int32_t out_of_range = 2;

	assert_int_equal(set_irqs_raw(irqs, 28, D_EFD | A_TRIG, MSIX, 0, 2, idx, 8, 28, &fds), 0);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, MSIX, 0), 0);
	assert_int_equal(efd_take(b), 1);
	assert_int_equal(efd_take(a), 0);
	assert_int_equal(set_irqs_raw(irqs, 24, D_EFD | A_TRIG, MSIX, 1, 1, &out_of_range, 4,
				      24, &fds), -EBADF);
	assert_int_equal(vfpm_pci_irq_msi_signal(irqs, MSIX, 1), 0);
	assert_int_equal(efd_take(a), 1);
}

/* ---- last close ---- */

static void test_disable_all(void **state)
{
	struct fixture *f = *state;
	struct vfpm_pci_irqs *irqs = &f->irqs;
	int trig = new_eventfd(f), unmask = new_eventfd(f), err = new_eventfd(f);
	int32_t block[2] = { trig, trig };
	int before = count_open_fds();

	assert_int_equal(set_fd(irqs, A_TRIG, INTX, trig), 0);
	assert_int_equal(set_fd(irqs, A_UNMASK, INTX, unmask), 0);
	assert_int_equal(set_fd(irqs, A_TRIG, ERR, err), 0);
	assert_int_equal(set_fd(irqs, A_TRIG, REQ, err), 0);
	vfpm_pci_irq_intx_assert(irqs);
	assert_int_equal(efd_take(trig), 1);
	vfpm_pci_irqs_disable_all(irqs);
	assert_int_equal(vfpm_pci_irq_type(irqs), VFPM_PCI_IRQ_NONE);
	assert_false(vfpm_pci_irq_intx_masked(irqs));
	assert_int_equal(vfpm_pci_irq_err_signal(irqs), -ENODEV);
	assert_int_equal(vfpm_pci_irq_req_signal(irqs), -ENODEV);
	assert_int_equal(count_open_fds(), before);
	efd_poke(unmask);
	assert_int_equal(efd_take(unmask), 1);	/* nobody watches it any more */
	vfpm_pci_irq_intx_deassert(irqs);

	assert_int_equal(set_irqs(irqs, D_EFD | A_TRIG, MSI, 0, 2, block), 0);
	vfpm_pci_irqs_disable_all(irqs);
	assert_int_equal(vfpm_pci_irq_type(irqs), VFPM_PCI_IRQ_NONE);
	assert_int_equal(count_open_fds(), before);
	/* And the device can be used again. */
	assert_int_equal(set_fd(irqs, A_TRIG, INTX, trig), 0);
	assert_int_equal(set_none(irqs, A_TRIG, INTX, 1), 0);
	assert_int_equal(efd_take(trig), 1);
}

/* ---- concurrency (also run under TSan) ---- */

struct race {
	struct vfpm_pci_irqs *irqs;
	int unmask;
	atomic_bool stop;
};

static void *race_model(void *opaque)
{
	struct race *r = opaque;

	while (!atomic_load(&r->stop)) {
		vfpm_pci_irq_intx_assert(r->irqs);
		if (vfpm_pci_irq_intx_mask(r->irqs))
			vfpm_pci_irq_intx_unmask(r->irqs);
		vfpm_pci_irq_intx_deassert(r->irqs);
	}
	return NULL;
}

static void *race_user(void *opaque)
{
	struct race *r = opaque;

	while (!atomic_load(&r->stop))
		efd_poke(r->unmask);
	return NULL;
}

static void test_unmask_watcher_races(void **state)
{
	struct fixture *f = *state;
	struct race r = { .irqs = &f->irqs, .unmask = new_eventfd(f) };
	int trig = new_eventfd(f);
	pthread_t model, user;

	atomic_init(&r.stop, false);
	assert_int_equal(set_fd(&f->irqs, A_TRIG, INTX, trig), 0);
	assert_int_equal(pthread_create(&model, NULL, race_model, &r), 0);
	assert_int_equal(pthread_create(&user, NULL, race_user, &r), 0);
	for (int i = 0; i < 200; i++) {
		assert_int_equal(set_fd(&f->irqs, A_UNMASK, INTX, r.unmask), 0);
		assert_int_equal(set_none(&f->irqs, A_UNMASK, INTX, 1), 0);
		efd_take(trig);
		assert_int_equal(set_fd(&f->irqs, A_UNMASK, INTX, -1), 0);
		if (i % 50 == 49) {
			assert_int_equal(set_none(&f->irqs, A_TRIG, INTX, 0), 0);
			assert_int_equal(set_fd(&f->irqs, A_TRIG, INTX, trig), 0);
		}
	}
	assert_int_equal(set_fd(&f->irqs, A_UNMASK, INTX, r.unmask), 0);
	atomic_store(&r.stop, true);
	pthread_join(user, NULL);
	pthread_join(model, NULL);
	/* A last user signal still reaches the watcher. */
	vfpm_pci_irq_intx_deassert(&f->irqs);
	vfpm_pci_irq_intx_mask(&f->irqs);
	efd_poke(r.unmask);
	assert_true(wait_for_masked(&f->irqs, false));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define T_BARE(fn) cmocka_unit_test_setup_teardown(fn, setup_bare, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_get_irq_info),
		T(test_get_irq_info_faults),
		T_BARE(test_get_irq_info_bare_function),
		T(test_set_irqs_validation),
		T_BARE(test_set_irqs_bare_function),
		T(test_intx_trigger_automask_and_refire),
		T(test_intx_loopback),
		T(test_intx_mask_unmask_bool),
		T(test_intx_unmask_eventfd),
		T(test_msi),
		T(test_msix),
		T(test_intx_blocks_msi),
		T(test_err_trigger),
		T(test_req_trigger),
		T(test_bad_fds),
		T(test_message_fds),
		T(test_disable_all),
		T(test_unmask_watcher_races),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
