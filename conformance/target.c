// SPDX-License-Identifier: MIT
/*
 * The target side of the engine: instances, power status, mmap touches and
 * the parked request.  Everything goes through the client library
 * (<vfpm/client.h>): one handle per instance on either target.
 */
#include "engine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/userfaultfd.h>

#include <vfpm/client.h>

/* ---------------------------------------------------------------- helpers */

static const char *ename(int e)
{
	static const struct {
		int e;
		const char *n;
	} t[] = {
		{ EINVAL, "EINVAL" }, { ENOTTY, "ENOTTY" }, { EBADF, "EBADF" },
		{ EFAULT, "EFAULT" }, { EIO, "EIO" }, { EPERM, "EPERM" }, { EBUSY, "EBUSY" },
		{ ENODEV, "ENODEV" }, { ENOSPC, "ENOSPC" }, { EAGAIN, "EAGAIN" },
		{ ENOTSUP, "ENOTSUP" }, { ENXIO, "ENXIO" }, { EACCES, "EACCES" },
		{ ENOMEM, "ENOMEM" }, { EPROTO, "EPROTO" }, { ENOENT, "ENOENT" },
		{ ECONNRESET, "ECONNRESET" }, { EPIPE, "EPIPE" }, { ETIMEDOUT, "ETIMEDOUT" },
	};
	static __thread char buf[32];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].e == e)
			return t[i].n;
	snprintf(buf, sizeof(buf), "E%d", e);
	return buf;
}

void set_res(char *res, size_t len, long r)
{
	if (r < 0)
		snprintf(res, len, "%s", ename((int)-r));
	else
		snprintf(res, len, "ok");
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void pause_us(long us)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = us * 1000 };

	nanosleep(&ts, NULL);
}

bool parse_u64(const char *s, uint64_t *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	return !errno && end != s && !*end;
}

/* ----------------------------------------------------- instance operations */

int inst_open(struct ctx *x, struct inst *in)
{
	int err;

	memset(in, 0, sizeof(*in));
	in->uffd = -1;
	err = vfpm_client_open(x->target, &in->c);
	if (err)
		return err;
	in->open = true;
	return 0;
}

void inst_unmap(struct inst *in)
{
	if (in->map)
		munmap(in->map, in->maplen);
	in->map = NULL;
}

void inst_close(struct inst *in)
{
	inst_unmap(in);
	if (in->c)
		vfpm_client_close(in->c);
	in->c = NULL;
	in->open = false;
}

/*
 * Close an instance as the kernel's close() does: done when it returns.  A
 * vfio-user client's close is only the socket's, and the server tears the
 * instance down when it sees it; so after the last instance of an engaged
 * device closes, wait until POWER_STATUS shows low power dropped (the
 * teardown's first effect), or a new connection could race the old one's
 * teardown.
 */
void inst_close_synced(struct ctx *x, struct inst *in)
{
	struct vfpm_client_power st;
	bool last = true, engaged = false;
	double t0;

	for (int i = 1; i <= MAX_INST; i++)
		if (&x->in[i] != in && x->in[i].open)
			last = false;
	if (!x->kernel && last && x->status && !vfpm_client_power_status(x->status, &st))
		engaged = st.low_power || st.wakeup_armed;
	inst_close(in);
	for (t0 = now_ms(); engaged && now_ms() - t0 < WAIT_MS; pause_us(200))
		engaged = !vfpm_client_power_status(x->status, &st) &&
			  (st.low_power || st.wakeup_armed);
}

int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

int inst_info(struct inst *in, struct vfio_device_info *info)
{
	return vfpm_client_get_info(in->c, info);
}

int inst_region_info(struct inst *in, uint32_t index, struct vfio_region_info *ri)
{
	return vfpm_client_get_region_info(in->c, index, ri, sizeof(*ri), NULL);
}

int inst_feature(struct inst *in, uint32_t flags, void *data, size_t len, const int *fds,
			unsigned int nfds)
{
	return vfpm_client_feature(in->c, flags, data, len, 0, fds, nfds);
}

int32_t inst_fd_arg(struct inst *in, const int *fds, unsigned int i)
{
	return vfpm_client_fd_arg(in->c, fds, i);
}

/* Bytes done or -errno: the target's own answer, offsets and counts unchecked here. */
ssize_t inst_rw(struct ctx *x, struct inst *in, uint32_t index, uint64_t off, void *buf,
		       size_t count, bool write)
{
	(void)x;
	return write ? vfpm_client_region_write(in->c, index, off, buf, count) :
		       vfpm_client_region_read(in->c, index, off, buf, count);
}

int cfg_read(struct ctx *x, struct inst *in, unsigned int off, unsigned int len,
		    uint32_t *v)
{
	ssize_t n;

	*v = 0;
	n = inst_rw(x, in, CFG, off, v, len, false);
	return n == (ssize_t)len ? 0 : n < 0 ? (int)n : -EIO;
}

int cfg_write(struct ctx *x, struct inst *in, unsigned int off, unsigned int len,
		     uint32_t v)
{
	ssize_t n = inst_rw(x, in, CFG, off, &v, len, true);

	return n == (ssize_t)len ? 0 : n < 0 ? (int)n : -EIO;
}

/* ------------------------------------------------------------ power status */

int status_now(struct ctx *x, char *out, size_t len)
{
	struct vfpm_client_power st;
	struct vfpm_client *c = x->status;
	int err;

	for (int i = 1; !c && i <= MAX_INST; i++)
		if (x->in[i].open && x->in[i].c)
			c = x->in[i].c;
	if (!c && x->kernel) {
		/* No handle open: the same sysfs file the library reads. */
		char path[160];
		FILE *f;
		size_t n;

		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/power/runtime_status",
			 x->bdf);
		f = fopen(path, "re");
		if (!f)
			return -errno;
		n = fread(out, 1, len - 1, f);
		fclose(f);
		out[n] = '\0';
		out[strcspn(out, "\n")] = '\0';
		return 0;
	}
	if (!c)
		return -ENODEV;
	err = vfpm_client_power_status(c, &st);
	if (!err)
		snprintf(out, len, "%s", st.runtime_status);
	return err;
}

static int usage_now(struct ctx *x)
{
	struct vfpm_client_power st;

	if (!x->status || vfpm_client_power_status(x->status, &st) || !st.have_counts)
		return -1;
	return st.usage_count;
}

/* Poll until the status is want: "want" or "timeout:NOW". */
void wait_status(struct ctx *x, const char *want, int timeout_ms, char *res, size_t len)
{
	double t0 = now_ms();
	char s[32] = "?";

	for (;;) {
		if (status_now(x, s, sizeof(s)) == 0 && !strcmp(s, want)) {
			snprintf(res, len, "%s", want);
			return;
		}
		if (now_ms() - t0 > timeout_ms)
			break;
		pause_us(200);
	}
	snprintf(res, len, "timeout:%s", s);
}

/* Poll for ms: "active" if the device never suspended meanwhile, else what it did. */
void stays_active(struct ctx *x, int ms, char *res, size_t len)
{
	double t0 = now_ms();
	char s[32] = "?";

	while (now_ms() - t0 < ms) {
		if (status_now(x, s, sizeof(s)) || strcmp(s, "active")) {
			snprintf(res, len, "%s", s);
			return;
		}
		pause_us(500);
	}
	snprintf(res, len, "active");
}

/* ------------------------------------------------------------ mmap touch */

static sigjmp_buf touch_jb;
static volatile sig_atomic_t touching;

static void on_sigbus(int sig)
{
	(void)sig;
	if (touching)
		siglongjmp(touch_jb, 1);
	_exit(99);
}

const char *touch(volatile uint32_t *p)
{
	static volatile uint32_t sink;

	if (sigsetjmp(touch_jb, 1)) {
		touching = 0;
		return "SIGBUS";
	}
	touching = 1;
	sink = *p;
	touching = 0;
	(void)sink;
	return "ok";
}

/* ------------------------------------------------------ the parked request */

static void *park_thread(void *arg)
{
	struct inst *in = arg;

	if (in->uffd >= 0) {
		/* kernel: a config read whose user buffer faults into userfaultfd */
		in->park_ret = vfpm_client_region_read(in->c, CFG, 0, in->page, 4);
	} else {
		uint32_t v;

		in->park_ret = vfpm_client_region_read(in->c, MEMDEV_BAR, MEMDEV_REG_SLOW, &v, 4);
	}
	return NULL;
}

int park(struct ctx *x, struct inst *in, char *res, size_t len)
{
	if (x->kernel) {
		struct uffdio_api api = { .api = UFFD_API };
		struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
		struct pollfd pfd;
		struct uffd_msg msg;

		in->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
		if (in->uffd < 0) {
			/* Kernel-mode faults need root (or vm.unprivileged_userfaultfd). */
			snprintf(res, len, "n/a:userfaultfd unavailable (%s), so no request can "
				 "be parked", strerror(errno));
			return 1;
		}
		in->page = mmap(NULL, (size_t)x->page, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		reg.range.start = (uintptr_t)in->page;
		reg.range.len = (uint64_t)x->page;
		if (in->page == MAP_FAILED || xioctl(in->uffd, UFFDIO_API, &api) ||
		    xioctl(in->uffd, UFFDIO_REGISTER, &reg) ||
		    pthread_create(&in->th, NULL, park_thread, in)) {
			if (in->page != MAP_FAILED)
				munmap(in->page, (size_t)x->page);
			close(in->uffd);
			in->uffd = -1;
			return -EIO;
		}
		in->parked = true;
		pfd = (struct pollfd){ .fd = in->uffd, .events = POLLIN };
		if (poll(&pfd, 1, 5000) != 1 || read(in->uffd, &msg, sizeof(msg)) != sizeof(msg))
			return -ETIMEDOUT;
	} else {
		uint32_t delay = PARK_MS, cmd;
		int before;
		double t0;

		if (!x->have_slow) {
			snprintf(res, len, "n/a:%s", x->why_no_park);
			return 1;
		}
		/* BAR access needs memory decoding on (it is off after a reset). */
		if (cfg_read(x, in, PCI_COMMAND, 2, &cmd) ||
		    cfg_write(x, in, PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY) ||
		    vfpm_client_region_write(in->c, MEMDEV_BAR, MEMDEV_REG_DELAY, &delay, 4) != 4)
			return -EIO;
		before = usage_now(x);
		if (pthread_create(&in->th, NULL, park_thread, in))
			return -EAGAIN;
		in->parked = true;
		/* In the request: the wrapper's reference shows in the usage count. */
		for (t0 = now_ms(); usage_now(x) <= before; pause_us(200))
			if (now_ms() - t0 > 5000)
				return -ETIMEDOUT;
	}
	return 0;
}

int release(struct ctx *x, struct inst *in)
{
	if (!in->parked)
		return -EINVAL;
	if (in->uffd >= 0) {
		struct uffdio_copy cp = { .dst = (uintptr_t)in->page, .len = (uint64_t)x->page };
		void *src = calloc(1, (size_t)x->page);

		cp.src = (uintptr_t)src;
		if (!src || xioctl(in->uffd, UFFDIO_COPY, &cp)) {
			free(src);
			return -EIO;
		}
		free(src);
	}
	pthread_join(in->th, NULL);
	in->parked = false;
	if (in->uffd >= 0) {
		close(in->uffd);
		munmap(in->page, (size_t)x->page);
		in->uffd = -1;
	}
	return in->park_ret == 4 ? 0 : in->park_ret < 0 ? (int)in->park_ret : -EIO;
}

/* ------------------------------------------------------------- discovery */

int discover(struct ctx *x, char *err, size_t errlen)
{
	struct inst *in = &x->in[1];
	struct vfio_device_info di;
	struct vfio_region_info ri;
	uint32_t v, pos, bar_flags = 0;
	int rc;

	rc = inst_open(x, in);
	if (!rc)
		rc = inst_info(in, &di);
	if (rc) {
		snprintf(err, errlen, "cannot open %s: %s", x->target, strerror(-rc));
		return rc;
	}
	x->num_regions = di.num_regions;
	for (uint32_t i = 0; i < di.num_regions && i < MAX_REGIONS; i++)
		if (!inst_region_info(in, i, &ri))
			x->region_size[i] = ri.size;
	if (!inst_region_info(in, CFG, &ri))
		x->cfg_size = ri.size;
	/*
	 * The first mmap-able memory BAR without a capability chain: a BAR that
	 * holds the MSI-X table has sparse-mmap caps, and the kernel emulates
	 * the table's range (reads there never reach the device, so they are
	 * not refused in D3hot).  Else the first mmap-able memory BAR.
	 */
	x->bar = UINT32_MAX;
	for (uint32_t i = VFIO_PCI_BAR0_REGION_INDEX; i <= VFIO_PCI_BAR5_REGION_INDEX; i++) {
		if (inst_region_info(in, i, &ri) || !ri.size || !(ri.flags & VFIO_REGION_INFO_FLAG_MMAP))
			continue;
		if (cfg_read(x, in, PCI_BASE_ADDRESS_0 + 4 * i, 4, &v) || (v & PCI_BASE_ADDRESS_SPACE_IO))
			continue;
		if (x->bar == UINT32_MAX || ((ri.flags & VFIO_REGION_INFO_FLAG_CAPS) == 0 &&
					     (bar_flags & VFIO_REGION_INFO_FLAG_CAPS))) {
			x->bar = i;
			x->bar_size = ri.size;
			bar_flags = ri.flags;
		}
	}
	if (x->bar == UINT32_MAX) {
		inst_close(in);
		snprintf(err, errlen, "%s has no mmap-able memory BAR", x->target);
		return -ENODEV;
	}
	/* The PM capability, by walking the list. */
	if (!cfg_read(x, in, PCI_STATUS, 2, &v) && (v & PCI_STATUS_CAP_LIST) &&
	    !cfg_read(x, in, PCI_CAPABILITY_LIST, 1, &pos)) {
		for (int hops = 0; (pos &= ~3u) && hops < 48; hops++) {
			if (cfg_read(x, in, pos, 1, &v))
				break;
			if (v == PCI_CAP_ID_PM) {
				x->pm_cap = pos;
				break;
			}
			if (cfg_read(x, in, pos + 1, 1, &pos))
				break;
		}
	}
	x->why_no_park = "no long request to park on this device (vfpm's memory device "
			 "has one: a slow register in BAR2)";
	if (!x->kernel && !inst_region_info(in, MEMDEV_BAR, &ri) && ri.size >= 16 &&
	    !cfg_read(x, in, PCI_COMMAND, 2, &v) &&
	    !cfg_write(x, in, PCI_COMMAND, 2, v | PCI_COMMAND_MEMORY) &&
	    vfpm_client_region_read(in->c, MEMDEV_BAR, 0, &v, 4) == 4 && v == MEMDEV_ID)
		x->have_slow = true;
	inst_close(in);
	return 0;
}


void catch_sigbus(void)
{
	struct sigaction sa = { .sa_handler = on_sigbus };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}
