/*
 * probe.c — asks Linux 6.1's vfio-pci concrete questions about runtime PM.
 *
 * Runs inside the reference VM (see run.sh) as a static binary, against one
 * PCI device already bound to vfio-pci. Uses the VFIO group API and reads the
 * device's runtime PM state from sysfs. Prints one line per observation:
 *
 *   <section>.<step> key=value ...
 *
 * Errors are printed as NAME(number); "ok" means the call returned 0 (or the
 * full count for read/write). Runtime status is followed by polling sysfs with
 * a timeout, never by sleeping a fixed time. "trace=" is what a watcher thread
 * saw of runtime_status while the call ran (first state, then each change with
 * the time in ms since the call began). "resumed=" says whether the device
 * left SUSPENDED during the step (runtime_active_time grew, or the watcher saw
 * a non-suspended state).
 *
 * usage: probe [BDF]   (default: $VFPM_BDF)
 * exit status: 0 when every step could be carried out (whatever it observed),
 * 1 on a setup failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/syscall.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ util */

static char g_bdf[64];
static char g_sys[256];
static int g_container = -1, g_group = -1;

static void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void die(const char *fmt, ...)
{
	va_list ap;
	int e = errno;
	va_start(ap, fmt);
	printf("FATAL: ");
	vprintf(fmt, ap);
	va_end(ap);
	printf(" (errno %d %s)\n", e, strerror(e));
	fflush(stdout);
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *ename(int e)
{
	static char buf[8][32];
	static int slot;
	const char *n;
	switch (e) {
	case 0: return "ok";
	case EINVAL: n = "EINVAL"; break;
	case ENOTTY: n = "ENOTTY"; break;
	case EBADF: n = "EBADF"; break;
	case EFAULT: n = "EFAULT"; break;
	case EIO: n = "EIO"; break;
	case EPERM: n = "EPERM"; break;
	case EBUSY: n = "EBUSY"; break;
	case ENODEV: n = "ENODEV"; break;
	case ENOSPC: n = "ENOSPC"; break;
	case EAGAIN: n = "EAGAIN"; break;
	case EOPNOTSUPP: n = "EOPNOTSUPP"; break;
	case ENXIO: n = "ENXIO"; break;
	case EACCES: n = "EACCES"; break;
	case ENOMEM: n = "ENOMEM"; break;
	default: n = "E?"; break;
	}
	slot = (slot + 1) % 8;
	snprintf(buf[slot], sizeof buf[slot], "%s(%d)", n, e);
	return buf[slot];
}

static int read_sys(const char *attr, char *buf, size_t len)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", g_sys, attr);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = 0;
	return 0;
}

/* Thread-local buffers: the watcher thread and the main thread both call this. */
static const char *rstatus(void)
{
	static __thread char b[4][32];
	static __thread int slot;
	slot = (slot + 1) % 4;
	if (read_sys("power/runtime_status", b[slot], sizeof b[slot]))
		strcpy(b[slot], "?");
	return b[slot];
}

static long sys_long(const char *attr)
{
	char b[64];
	if (read_sys(attr, b, sizeof b))
		return -1;
	return strtol(b, NULL, 10);
}

static long usage(void) { return sys_long("power/runtime_usage"); }

/* Write power/control ("on" forbids runtime suspend, "auto" allows it). */
static void set_control(const char *v)
{
	char path[512];
	snprintf(path, sizeof path, "%s/power/control", g_sys);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, v, strlen(v)) != (ssize_t)strlen(v)) {
		fprintf(stdout, "FATAL: write %s to %s failed\n", v, path);
		exit(1);
	}
	close(fd);
}
static long active_ms(void) { return sys_long("power/runtime_active_time"); }

static const char *dstate(void)
{
	static char b[4][32];
	static int slot;
	slot = (slot + 1) % 4;
	if (read_sys("power_state", b[slot], sizeof b[slot]))
		strcpy(b[slot], "?");
	return b[slot];
}

/* Poll runtime_status until it equals want; returns ms waited or -1 on timeout. */
static double wait_status(const char *want, int timeout_ms)
{
	double t0 = now_ms();
	for (;;) {
		if (!strcmp(rstatus(), want))
			return now_ms() - t0;
		if (now_ms() - t0 > timeout_ms)
			return -1;
		usleep(200);
	}
}

/* Print the outcome of waiting for a status as key=value text. */
static const char *waitfmt(const char *want, int timeout_ms)
{
	static char b[4][64];
	static int slot;
	slot = (slot + 1) % 4;
	double ms = wait_status(want, timeout_ms);
	if (ms < 0)
		snprintf(b[slot], sizeof b[slot], "not-%s-within-%dms(now %s)", want,
			 timeout_ms, rstatus());
	else
		snprintf(b[slot], sizeof b[slot], "%s-after-%.1fms", want, ms);
	return b[slot];
}

/* ---------------------------------------------------------- status watcher */

struct watch {
	pthread_t th;
	volatile int stop;
	double t0;
	char trace[512];
	bool saw_not_suspended;
	long active0;
};
static struct watch g_w;

static void *watch_fn(void *arg)
{
	struct watch *w = arg;
	char last[32] = "";
	size_t off = 0;
	while (!w->stop) {
		const char *s = rstatus();
		if (strcmp(s, last)) {
			double t = now_ms() - w->t0;
			int n = snprintf(w->trace + off, sizeof w->trace - off, "%s%s@%.1f",
					 off ? ">" : "", s, t);
			if (n > 0 && (size_t)n < sizeof w->trace - off)
				off += n;
			snprintf(last, sizeof last, "%s", s);
			if (strcmp(s, "suspended"))
				w->saw_not_suspended = true;
		}
	}
	return NULL;
}

static void watch_start(void)
{
	memset(&g_w, 0, sizeof g_w);
	g_w.active0 = active_ms();
	g_w.t0 = now_ms();
	if (pthread_create(&g_w.th, NULL, watch_fn, &g_w))
		die("pthread_create");
	/* let the watcher take its first sample */
	while (!g_w.trace[0])
		sched_yield();
}

/* Stop watching after the device settled (or timeout); returns "trace=.. resumed=.." */
static const char *watch_stop(void)
{
	static char b[640];
	g_w.stop = 1;
	pthread_join(g_w.th, NULL);
	long a1 = active_ms();
	bool resumed = g_w.saw_not_suspended || a1 > g_w.active0;
	snprintf(b, sizeof b, "trace=%s resumed=%s", g_w.trace, resumed ? "yes" : "no");
	return b;
}

/* -------------------------------------------------------------- vfio setup */

static void setup_container(void)
{
	char link[512], path[300];
	snprintf(path, sizeof path, "%s/iommu_group", g_sys);
	ssize_t n = readlink(path, link, sizeof link - 1);
	if (n < 0)
		die("readlink %s", path);
	link[n] = 0;
	const char *grp = strrchr(link, '/') + 1;

	g_container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (g_container < 0)
		die("open /dev/vfio/vfio");
	int api = ioctl(g_container, VFIO_GET_API_VERSION);
	if (api != VFIO_API_VERSION)
		die("VFIO API version %d", api);
	if (ioctl(g_container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1)
		die("no VFIO_TYPE1v2_IOMMU");
	snprintf(path, sizeof path, "/dev/vfio/%s", grp);
	g_group = open(path, O_RDWR | O_CLOEXEC);
	if (g_group < 0)
		die("open %s", path);
	struct vfio_group_status gs = { .argsz = sizeof gs };
	if (ioctl(g_group, VFIO_GROUP_GET_STATUS, &gs))
		die("VFIO_GROUP_GET_STATUS");
	if (!(gs.flags & VFIO_GROUP_FLAGS_VIABLE))
		die("group %s not viable", grp);
	if (ioctl(g_group, VFIO_GROUP_SET_CONTAINER, &g_container))
		die("VFIO_GROUP_SET_CONTAINER");
	if (ioctl(g_container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		die("VFIO_SET_IOMMU");
	out("setup.group group=%s container=ok iommu=type1v2", grp);
}

static int dev_open(void)
{
	int fd = ioctl(g_group, VFIO_GROUP_GET_DEVICE_FD, g_bdf);
	if (fd < 0)
		die("VFIO_GROUP_GET_DEVICE_FD %s", g_bdf);
	return fd;
}

/* Settle: wait until the (closed or engaged) device is suspended again. */
static void settle(const char *tag)
{
	double ms = wait_status("suspended", 3000);
	if (ms < 0)
		out("%s.settle WARNING still %s after 3000ms", tag, rstatus());
}

/* ------------------------------------------------------------ vfio helpers */

/* DEVICE_FEATURE with an explicit argsz and payload; returns 0 or errno. */
static int feat(int fd, uint32_t argsz, uint32_t flags, const void *pl, size_t plen)
{
	union {
		struct vfio_device_feature f;
		unsigned char raw[256];
	} u;
	memset(&u, 0, sizeof u);
	u.f.argsz = argsz;
	u.f.flags = flags;
	if (plen)
		memcpy(u.f.data, pl, plen);
	return ioctl(fd, VFIO_DEVICE_FEATURE, &u) ? errno : 0;
}

#define F_SET (VFIO_DEVICE_FEATURE_SET)
#define F_GET (VFIO_DEVICE_FEATURE_GET)
#define F_PROBE (VFIO_DEVICE_FEATURE_PROBE)
#define FS sizeof(struct vfio_device_feature)

static int entry(int fd) { return feat(fd, FS, F_SET | 3, NULL, 0); }
static int exit_lp(int fd) { return feat(fd, FS, F_SET | 5, NULL, 0); }
static int entry_wake(int fd, int32_t efd)
{
	struct vfio_device_low_power_entry_with_wakeup w = { .wakeup_eventfd = efd };
	return feat(fd, FS + sizeof w, F_SET | 4, &w, sizeof w);
}

static int get_info(int fd, struct vfio_device_info *di)
{
	memset(di, 0, sizeof *di);
	di->argsz = sizeof *di;
	return ioctl(fd, VFIO_DEVICE_GET_INFO, di) ? errno : 0;
}

static int region_info(int fd, uint32_t index, struct vfio_region_info *ri)
{
	memset(ri, 0, sizeof *ri);
	ri->argsz = sizeof *ri;
	ri->index = index;
	return ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, ri) ? errno : 0;
}

static uint64_t region_off(uint32_t index) { return (uint64_t)index << 40; }

/* pread/pwrite returning count or -errno */
static long rd(int fd, void *buf, size_t n, uint64_t off)
{
	ssize_t r = pread(fd, buf, n, (off_t)off);
	return r < 0 ? -errno : r;
}
static long wr(int fd, const void *buf, size_t n, uint64_t off)
{
	ssize_t r = pwrite(fd, buf, n, (off_t)off);
	return r < 0 ? -errno : r;
}
static const char *rres(long r)
{
	static char b[8][32];
	static int slot;
	slot = (slot + 1) % 8;
	if (r < 0)
		return ename((int)-r);
	snprintf(b[slot], sizeof b[slot], "count=%ld", r);
	return b[slot];
}

static const uint64_t CFG = (uint64_t)VFIO_PCI_CONFIG_REGION_INDEX << 40;

static uint32_t cfg_read(int fd, unsigned off, unsigned len)
{
	uint32_t v = 0;
	long r = rd(fd, &v, len, CFG + off);
	if (r != (long)len)
		die("config read off %#x len %u -> %ld", off, len, r);
	return v;
}
static void cfg_write(int fd, unsigned off, unsigned len, uint32_t v)
{
	long r = wr(fd, &v, len, CFG + off);
	if (r != (long)len)
		die("config write off %#x len %u -> %ld", off, len, r);
}

static void enable_mem(int fd)
{
	uint16_t cmd = (uint16_t)cfg_read(fd, PCI_COMMAND, 2);
	cfg_write(fd, PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static unsigned find_pm_cap(int fd)
{
	if (!(cfg_read(fd, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return 0;
	unsigned pos = cfg_read(fd, PCI_CAPABILITY_LIST, 1) & ~3u;
	for (int i = 0; pos && i < 48; i++) {
		unsigned id = cfg_read(fd, pos, 1);
		if (id == PCI_CAP_ID_PM)
			return pos;
		pos = cfg_read(fd, pos + 1, 1) & ~3u;
	}
	return 0;
}

static const char *pmstate_name(uint16_t pmcsr)
{
	static const char *n[] = { "D0", "D1", "D2", "D3hot" };
	return n[pmcsr & PCI_PM_CTRL_STATE_MASK];
}

static const char *efd_count(int efd)
{
	static char b[4][32];
	static int slot;
	slot = (slot + 1) % 4;
	uint64_t v = 0;
	ssize_t r = read(efd, &v, sizeof v);
	if (r == sizeof v)
		snprintf(b[slot], sizeof b[slot], "%llu", (unsigned long long)v);
	else if (r < 0 && errno == EAGAIN)
		snprintf(b[slot], sizeof b[slot], "0");
	else
		snprintf(b[slot], sizeof b[slot], "read-%s", ename(errno));
	return b[slot];
}

/* One line: what a call returned, how long it took, and what the device did. */
#define STEP_BEGIN()            \
	double _t0;             \
	watch_start();          \
	_t0 = now_ms()
#define STEP_END(tag, fmt, ...)                                                         \
	do {                                                                            \
		double _dt = now_ms() - _t0;                                            \
		const char *_st = rstatus();                                            \
		long _u = usage();                                                      \
		const char *_ds = dstate();                                             \
		const char *_w = watch_stop();                                          \
		out("%s " fmt " took=%.1fms status_after=%s usage=%ld dstate=%s %s", tag, \
		    ##__VA_ARGS__, _dt, _st, _u, _ds, _w);                              \
	} while (0)

/* ---------------------------------------------------------- SIGBUS catching */

static sigjmp_buf g_jb;
static volatile sig_atomic_t g_in_touch;
static void on_sigbus(int sig)
{
	(void)sig;
	if (g_in_touch)
		siglongjmp(g_jb, 1);
	_exit(99);
}

/* Read a 32-bit word through a mapping; returns "value=0x.." or "SIGBUS". */
static const char *touch(volatile uint32_t *p)
{
	static char b[4][48];
	static int slot;
	slot = (slot + 1) % 4;
	if (sigsetjmp(g_jb, 1)) {
		g_in_touch = 0;
		snprintf(b[slot], sizeof b[slot], "SIGBUS");
		return b[slot];
	}
	g_in_touch = 1;
	uint32_t v = *p;
	g_in_touch = 0;
	snprintf(b[slot], sizeof b[slot], "value=%#x", v);
	return b[slot];
}

/* ================================================================= tests */

static struct vfio_region_info g_bar0; /* the first memory BAR */
static uint32_t g_bari;

/* a. baseline */
static void t_a(void)
{
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("a.unopened status=%s usage=%ld dstate=%s wait=%s", rstatus(), usage(), dstate(),
		    _wf);
	}
	watch_start();
	double t0 = now_ms();
	int fd = dev_open();
	double dt = now_ms() - t0;
	out("a.open took=%.1fms status_after=%s usage=%ld dstate=%s %s", dt, rstatus(), usage(),
	    dstate(), watch_stop());
	{
		const char *_wf = waitfmt("suspended", 500);
		out("a.open_held wait=%s usage=%ld", _wf, usage());
	}
	int fd2 = dev_open();
	out("a.second_open ok usage=%ld status=%s", usage(), rstatus());
	close(fd2);
	{
		const char *_wf = waitfmt("suspended", 300);
		out("a.close_second status=%s usage=%ld wait=%s", rstatus(), usage(),
		    _wf);
	}
	t0 = now_ms();
	close(fd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("a.close took=%.1fms wait=%s usage=%ld dstate=%s", now_ms() - t0,
		    _wf, usage(), dstate());
	}
}

/* b. ENTRY, then GET_INFO while engaged, then EXIT */
static void t_b(void)
{
	struct vfio_device_info di;
	int fd = dev_open();
	int r;
	{
		STEP_BEGIN();
		r = entry(fd);
		STEP_END("b.entry", "ret=%s", ename(r));
	}
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("b.after_entry wait=%s usage=%ld dstate=%s", _wf, usage(),
		    dstate());
	}
	{
		STEP_BEGIN();
		r = get_info(fd, &di);
		STEP_END("b.get_info", "ret=%s", ename(r));
	}
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("b.after_get_info wait=%s usage=%ld dstate=%s", _wf, usage(),
		    dstate());
	}
	{
		STEP_BEGIN();
		r = get_info(fd, &di);
		STEP_END("b.get_info_again", "ret=%s", ename(r));
	}
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("b.after_get_info_again wait=%s", _wf);
	}
	{
		STEP_BEGIN();
		r = exit_lp(fd);
		STEP_END("b.exit", "ret=%s", ename(r));
	}
	{
		const char *_wf = waitfmt("suspended", 500);
		out("b.after_exit stays=%s usage=%ld dstate=%s", _wf, usage(),
		    dstate());
	}
	{
		STEP_BEGIN();
		r = exit_lp(fd);
		STEP_END("b.exit_again", "ret=%s", ename(r));
	}
	close(fd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("b.close wait=%s", _wf);
	}
}

/* c. region accesses while engaged and suspended */
static void t_c(void)
{
	int fd = dev_open();
	enable_mem(fd);
	uint32_t v = 0;
	long r = rd(fd, &v, 4, region_off(g_bari));
	out("c.active_bar0_read ret=%s value=%#x", rres(r), v);
	r = rd(fd, &v, 4, region_off(20));
	out("c.active_invalid_index20_read ret=%s", rres(r));
	int e = entry(fd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("c.entry ret=%s wait=%s", ename(e), _wf);
	}

	struct {
		const char *tag;
		uint64_t off;
		bool write;
		unsigned len;
	} cases[] = {
		{ "c.susp_invalid_index20_read", region_off(20), false, 4 },
		{ "c.susp_invalid_index9_read", region_off(9), false, 4 },
		{ "c.susp_bar0_beyond_read", region_off(g_bari) + g_bar0.size + 16, false, 4 },
		{ "c.susp_bar0_read", region_off(g_bari), false, 4 },
		{ "c.susp_bar0_write_status", region_off(g_bari) + 8, true, 4 },
		{ "c.susp_config_read_vendor", CFG, false, 4 },
		{ "c.susp_config_write_cmd", CFG + PCI_COMMAND, true, 2 },
		{ "c.susp_config_read_beyond", CFG + 4096, false, 4 },
		{ "c.susp_rom_read", region_off(VFIO_PCI_ROM_REGION_INDEX), false, 4 },
		{ "c.susp_bar1_read", region_off(1), false, 4 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		settle(cases[i].tag);
		uint32_t buf = 0;
		if (cases[i].write && cases[i].off == CFG + PCI_COMMAND) {
			/* writing back what the user last wrote (from vconfig) */
			buf = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
		} else if (cases[i].write) {
			/* e1000e STATUS (0x8) is read-only; nvme 0x8 is INTMS (RW1S, 0 = no-op) */
			buf = 0;
		}
		STEP_BEGIN();
		r = cases[i].write ? wr(fd, &buf, cases[i].len, cases[i].off)
				   : rd(fd, &buf, cases[i].len, cases[i].off);
		STEP_END(cases[i].tag, "ret=%s value=%#x", rres(r), buf);
	}
	settle("c.ioctl");
	{
		STEP_BEGIN();
		int rr = ioctl(fd, _IO(VFIO_TYPE, VFIO_BASE + 60)) ? errno : 0;
		STEP_END("c.susp_unknown_ioctl", "ret=%s", ename(rr));
	}
	settle("c.probe");
	{
		STEP_BEGIN();
		int rr = feat(fd, FS, F_PROBE | F_SET | 3, NULL, 0);
		STEP_END("c.susp_feature_probe", "ret=%s", ename(rr));
	}
	settle("c.badfeat");
	{
		STEP_BEGIN();
		int rr = feat(fd, 4, F_SET | 3, NULL, 0);
		STEP_END("c.susp_feature_argsz4", "ret=%s", ename(rr));
	}
	settle("c.badregion");
	{
		struct vfio_region_info ri;
		STEP_BEGIN();
		int rr = region_info(fd, 20, &ri);
		STEP_END("c.susp_region_info_20", "ret=%s", ename(rr));
	}
	settle("c.exit");
	e = exit_lp(fd);
	out("c.exit ret=%s", ename(e));
	close(fd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("c.close wait=%s", _wf);
	}
}

/* d. user D3hot via PMCSR, then ENTRY_WITH_WAKEUP, then an access */
static void t_d(void)
{
	int fd = dev_open();
	enable_mem(fd);
	unsigned pm = find_pm_cap(fd);
	out("d.pm_cap offset=%#x", pm);

	/* d0: plain WITH_WAKEUP (no D3hot written) */
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int r = entry_wake(fd, efd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("d0.entry_wake ret=%s wait=%s efd=%s usage=%ld", ename(r), _wf,
		    efd_count(efd), usage());
	}
	struct vfio_device_info di;
	{
		STEP_BEGIN();
		r = get_info(fd, &di);
		STEP_END("d0.get_info", "ret=%s", ename(r));
	}
	{
		const char *_wf = waitfmt("suspended", 1000);
		out("d0.after_get_info efd=%s stays=%s", efd_count(efd), _wf);
	}
	r = get_info(fd, &di);
	out("d0.get_info_again ret=%s efd=%s status=%s", ename(r), efd_count(efd), rstatus());
	r = exit_lp(fd);
	out("d0.exit_after_wake ret=%s efd=%s status=%s usage=%ld", ename(r), efd_count(efd),
	    rstatus(), usage());

	/* d1: EXIT while suspended with the wakeup armed */
	r = entry_wake(fd, efd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("d1.entry_wake ret=%s wait=%s", ename(r), _wf);
	}
	{
		STEP_BEGIN();
		r = exit_lp(fd);
		STEP_END("d1.exit_while_suspended", "ret=%s", ename(r));
	}
	{
		const char *_wf = waitfmt("suspended", 500);
		out("d1.after_exit efd=%s stays=%s", efd_count(efd), _wf);
	}

	/* d2: ENTRY_WITH_WAKEUP then EXIT before it suspended? (races; skipped) */

	if (!pm) {
		out("d.pmcsr skipped=no-pm-capability");
		close(efd);
		close(fd);
		settle("d");
		return;
	}
	uint16_t pmcsr = (uint16_t)cfg_read(fd, pm + PCI_PM_CTRL, 2);
	out("d.pmcsr_initial value=%#x state=%s dstate=%s", pmcsr, pmstate_name(pmcsr), dstate());
	uint16_t w = (uint16_t)((pmcsr & ~PCI_PM_CTRL_STATE_MASK & ~PCI_PM_CTRL_PME_STATUS) | 3);
	cfg_write(fd, pm + PCI_PM_CTRL, 2, w);
	pmcsr = (uint16_t)cfg_read(fd, pm + PCI_PM_CTRL, 2);
	out("d.pmcsr_after_d3hot_write value=%#x state=%s dstate=%s status=%s usage=%ld", pmcsr,
	    pmstate_name(pmcsr), dstate(), rstatus(), usage());

	/* BAR access while the user's PMCSR says D3hot */
	uint32_t v = 0;
	long rr = rd(fd, &v, 4, region_off(g_bari));
	out("d.d3hot_bar0_read ret=%s value=%#x", rres(rr), v);
	void *m = MAP_FAILED;
	if (g_bar0.flags & VFIO_REGION_INFO_FLAG_MMAP) {
		m = mmap(NULL, g_bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, g_bar0.offset);
		out("d.d3hot_bar0_mmap %s touch=%s", m == MAP_FAILED ? ename(errno) : "ok",
		    m == MAP_FAILED ? "-" : touch(m));
	}

	r = entry_wake(fd, efd);
	out("d.entry_wake ret=%s", ename(r));
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("d.after_entry_wake wait=%s usage=%ld dstate=%s efd=%s", _wf,
		    usage(), dstate(), efd_count(efd));
	}
	{
		STEP_BEGIN();
		r = get_info(fd, &di);
		STEP_END("d.get_info", "ret=%s", ename(r));
	}
	out("d.after_get_info efd=%s", efd_count(efd));
	pmcsr = (uint16_t)cfg_read(fd, pm + PCI_PM_CTRL, 2);
	out("d.pmcsr_readback value=%#x state=%s dstate=%s status=%s usage=%ld", pmcsr,
	    pmstate_name(pmcsr), dstate(), rstatus(), usage());
	rr = rd(fd, &v, 4, region_off(g_bari));
	out("d.after_wake_bar0_read ret=%s value=%#x", rres(rr), v);
	if (m != MAP_FAILED)
		out("d.after_wake_bar0_touch %s", touch(m));
	{
		const char *_wf = waitfmt("suspended", 1000);
		out("d.after_1s stays=%s status=%s efd=%s", _wf, rstatus(),
		    efd_count(efd));
	}
	r = exit_lp(fd);
	out("d.exit ret=%s efd=%s status=%s usage=%ld", ename(r), efd_count(efd), rstatus(),
	    usage());
	if (m != MAP_FAILED)
		munmap(m, g_bar0.size);
	close(efd);
	close(fd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("d.close wait=%s", _wf);
	}
}

/* e. feature validation matrix */
static void t_e(void)
{
	int fd = dev_open();
	int r, r3;
	/* Forbid runtime suspend (power/control=on) so that nothing here depends on
	 * whether the device managed to suspend between two calls. */
	set_control("on");
#define E(tag, argsz, flags)                                               \
	do {                                                                 \
		r = feat(fd, argsz, flags, NULL, 0);                         \
		out("e.%s ret=%s status=%s usage=%ld", tag, ename(r), rstatus(), usage()); \
		if (!r && ((flags) & 0xffff) >= 3 && ((flags) & 0xffff) <= 4 && \
		    ((flags) & F_SET) && !((flags) & F_PROBE))               \
			out("e.%s.cleanup exit=%s", tag, ename(exit_lp(fd)));    \
	} while (0)

	E("argsz4_set3", 4, F_SET | 3);
	E("argsz0_set3", 0, F_SET | 3);
	E("argsz4_set100", 4, F_SET | 100);
	E("unknown_flag_1<<20_set3", FS, F_SET | 3 | (1u << 20));
	E("unknown_flag_1<<20_feature100", FS, F_SET | 100 | (1u << 20));
	E("unknown_flag_1<<31_set3", FS, F_SET | 3 | (1u << 31));
	E("get_set_3", FS, F_GET | F_SET | 3);
	E("get_set_100", FS, F_GET | F_SET | 100);
	E("probe_get_set_3", FS, F_PROBE | F_GET | F_SET | 3);
	E("probe_set_0_vf_token", FS + 16, F_PROBE | F_SET | 0);
	E("probe_0_vf_token", FS, F_PROBE | 0);
	E("set_0_vf_token", FS + 16, F_SET | 0);
	unsigned others[] = { 1, 2, 6, 7, 8, 9, 100, 0xffff };
	for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
		char tag[32];
		snprintf(tag, sizeof tag, "set_%u", others[i]);
		r = feat(fd, FS + 64, F_SET | others[i], NULL, 0);
		out("e.%s ret=%s", tag, ename(r));
		snprintf(tag, sizeof tag, "probe_%u", others[i]);
		r = feat(fd, FS, F_PROBE | others[i], NULL, 0);
		out("e.%s ret=%s", tag, ename(r));
		snprintf(tag, sizeof tag, "get_%u", others[i]);
		r = feat(fd, FS + 64, F_GET | others[i], NULL, 0);
		out("e.%s ret=%s", tag, ename(r));
	}
	for (unsigned f = 3; f <= 5; f++) {
		uint32_t sz = FS + (f == 4 ? 8 : 0);
		char tag[40];
#define EF(name, argsz, flags)                                                       \
	snprintf(tag, sizeof tag, "f%u_%s", f, name);                              \
	r = feat(fd, argsz, flags, NULL, 0);                                       \
	out("e.%s ret=%s status=%s usage=%ld", tag, ename(r), rstatus(), usage()); \
	if (!r && f != 5 && ((flags) & F_SET) && !((flags) & F_PROBE))             \
		out("e.%s.cleanup exit=%s", tag, ename(exit_lp(fd)));
		EF("get", sz, F_GET | f);
		EF("probe", FS, F_PROBE | f);
		EF("probe_argsz8_only", FS, F_PROBE | F_SET | f);
		EF("probe_set", sz, F_PROBE | F_SET | f);
		EF("probe_get", sz, F_PROBE | F_GET | f);
		EF("neither", sz, f);
		EF("set_argsz_short_by_1", sz - 1 < FS ? FS - 1 : sz - 1, F_SET | f);
	}
	/* did any PROBE engage low power? (device must stay active: it is open) */
	{
		const char *_wf = waitfmt("suspended", 300);
		out("e.after_probes stays=%s usage=%ld", _wf, usage());
	}

	/* feature 4 payload size */
	struct vfio_device_low_power_entry_with_wakeup wk = { .wakeup_eventfd = -1 };
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	wk.wakeup_eventfd = efd;
	r = feat(fd, FS + 4, F_SET | 4, &wk, sizeof wk);
	out("e.f4_argsz_8+4 ret=%s", ename(r));
	if (!r)
		exit_lp(fd);
	r = feat(fd, FS + 0, F_SET | 4, &wk, sizeof wk);
	out("e.f4_argsz_8+0 ret=%s", ename(r));
	if (!r)
		exit_lp(fd);
	r = feat(fd, FS + 8 + 64, F_SET | 4, &wk, sizeof wk);
	out("e.f4_argsz_8+72 ret=%s", ename(r));
	if (!r)
		exit_lp(fd);
	r = feat(fd, FS + 64, F_SET | 3, NULL, 0);
	out("e.f3_argsz_8+64 ret=%s", ename(r));
	if (!r)
		exit_lp(fd);
	r = feat(fd, FS + 64, F_SET | 5, NULL, 0);
	out("e.f5_argsz_8+64 ret=%s", ename(r));
	wk.reserved = 0xdeadbeef;
	r = feat(fd, FS + 8, F_SET | 4, &wk, sizeof wk);
	out("e.f4_reserved_nonzero ret=%s", ename(r));
	if (!r)
		exit_lp(fd);
	wk.reserved = 0;

	/* sequences */
	r = entry(fd);
	int r2 = entry(fd);
	out("e.entry_twice first=%s second=%s usage=%ld", ename(r), ename(r2), usage());
	out("e.entry_twice.cleanup exit=%s usage=%ld", ename(exit_lp(fd)), usage());
	r = entry(fd);
	r2 = entry_wake(fd, efd);
	out("e.entry_then_wake first=%s second=%s usage=%ld", ename(r), ename(r2), usage());
	r3 = exit_lp(fd);
	out("e.entry_then_wake.cleanup exit=%s efd=%s", ename(r3), efd_count(efd));
	r = entry_wake(fd, efd);
	r2 = entry(fd);
	out("e.wake_then_entry first=%s second=%s", ename(r), ename(r2));
	r3 = exit_lp(fd);
	out("e.wake_then_entry.cleanup exit=%s efd=%s", ename(r3), efd_count(efd));
	r = entry_wake(fd, efd);
	r2 = entry_wake(fd, efd);
	out("e.wake_twice first=%s second=%s", ename(r), ename(r2));
	r3 = exit_lp(fd);
	out("e.wake_twice.cleanup exit=%s efd=%s", ename(r3), efd_count(efd));

	r = entry_wake(fd, -1);
	out("e.wake_efd_-1 ret=%s", ename(r));
	if (!r)
		exit_lp(fd);
	r = entry_wake(fd, -5);
	out("e.wake_efd_-5 ret=%s", ename(r));
	if (!r)
		exit_lp(fd);
	close(900);
	r = entry_wake(fd, 900);
	out("e.wake_efd_unopened_900 ret=%s", ename(r));
	if (!r)
		exit_lp(fd);
	int p[2];
	if (pipe(p))
		die("pipe");
	r = entry_wake(fd, p[0]);
	out("e.wake_efd_pipe ret=%s usage=%ld", ename(r), usage());
	if (!r)
		exit_lp(fd);
	r = entry_wake(fd, fd);
	out("e.wake_efd_devicefd ret=%s", ename(r));
	if (!r)
		exit_lp(fd);
	close(p[0]);
	close(p[1]);
	/* failed WITH_WAKEUP must not have engaged: ENTRY now succeeds */
	r = entry(fd);
	out("e.entry_after_failed_wakes ret=%s", ename(r));
	out("e.entry_after_failed_wakes.cleanup exit=%s", ename(exit_lp(fd)));

	r = exit_lp(fd);
	r2 = exit_lp(fd);
	out("e.exit_without_entry first=%s second=%s usage=%ld status=%s", ename(r), ename(r2),
	    usage(), rstatus());
	r = entry(fd);
	r2 = exit_lp(fd);
	r3 = exit_lp(fd);
	out("e.entry_exit_exit entry=%s exit=%s exit2=%s usage=%ld", ename(r), ename(r2),
	    ename(r3), usage());
	{
		const char *_wf = waitfmt("suspended", 300);
		out("e.final stays=%s usage=%ld", _wf, usage());
	}
	set_control("auto");

	/* the same sequences, letting the device suspend in between */
	efd_count(efd);
	r = entry_wake(fd, efd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		r2 = entry(fd);
		out("e.wake_suspend_then_entry first=%s %s second=%s efd=%s usage=%ld", ename(r), _wf,
		    ename(r2), efd_count(efd), usage());
	}
	r3 = exit_lp(fd);
	out("e.wake_suspend_then_entry.cleanup exit=%s efd=%s", ename(r3), efd_count(efd));
	r = entry_wake(fd, efd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		r2 = entry_wake(fd, efd);
		out("e.wake_suspend_then_wake first=%s %s second=%s efd=%s usage=%ld", ename(r), _wf,
		    ename(r2), efd_count(efd), usage());
	}
	r3 = exit_lp(fd);
	out("e.wake_suspend_then_wake.cleanup exit=%s efd=%s", ename(r3), efd_count(efd));
	r = entry(fd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		r2 = entry(fd);
		out("e.entry_suspend_then_entry first=%s %s second=%s usage=%ld", ename(r), _wf,
		    ename(r2), usage());
	}
	r3 = exit_lp(fd);
	out("e.entry_suspend_then_entry.cleanup exit=%s", ename(r3));
	close(efd);
	close(fd);
	settle("e");
}

/* f. device info */
static void t_f(void)
{
	int fd = dev_open();
	struct vfio_device_info di;
	int r = get_info(fd, &di);
	out("f.device_info ret=%s flags=%#x(reset=%d pci=%d) num_regions=%u num_irqs=%u", ename(r),
	    di.flags, !!(di.flags & VFIO_DEVICE_FLAGS_RESET), !!(di.flags & VFIO_DEVICE_FLAGS_PCI),
	    di.num_regions, di.num_irqs);
	struct vfio_device_info small = { .argsz = 8 };
	r = ioctl(fd, VFIO_DEVICE_GET_INFO, &small) ? errno : 0;
	out("f.device_info_argsz8 ret=%s", ename(r));
	for (uint32_t i = 0; i <= di.num_regions + 1; i++) {
		struct vfio_region_info ri;
		r = region_info(fd, i, &ri);
		if (r)
			out("f.region index=%u ret=%s", i, ename(r));
		else
			out("f.region index=%u ret=ok size=%#llx offset=%#llx flags=%#x(read=%d write=%d mmap=%d caps=%d) argsz=%u",
			    i, (unsigned long long)ri.size, (unsigned long long)ri.offset, ri.flags,
			    !!(ri.flags & VFIO_REGION_INFO_FLAG_READ),
			    !!(ri.flags & VFIO_REGION_INFO_FLAG_WRITE),
			    !!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP),
			    !!(ri.flags & VFIO_REGION_INFO_FLAG_CAPS), ri.argsz);
	}
	struct vfio_region_info ri = { .argsz = 8, .index = 0 };
	r = ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri) ? errno : 0;
	out("f.region_argsz8 ret=%s", ename(r));
	for (uint32_t i = 0; i <= di.num_irqs; i++) {
		struct vfio_irq_info ii = { .argsz = sizeof ii, .index = i };
		r = ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, &ii) ? errno : 0;
		if (r)
			out("f.irq index=%u ret=%s", i, ename(r));
		else
			out("f.irq index=%u ret=ok flags=%#x(eventfd=%d maskable=%d automasked=%d noresize=%d) count=%u",
			    i, ii.flags, !!(ii.flags & VFIO_IRQ_INFO_EVENTFD),
			    !!(ii.flags & VFIO_IRQ_INFO_MASKABLE),
			    !!(ii.flags & VFIO_IRQ_INFO_AUTOMASKED),
			    !!(ii.flags & VFIO_IRQ_INFO_NORESIZE), ii.count);
	}
	uint32_t id = cfg_read(fd, 0, 4);
	out("f.config_id vendor=%#06x device=%#06x", id & 0xffff, id >> 16);
	close(fd);
	settle("f");
}

/* g. region boundaries */
static void t_g(void)
{
	int fd = dev_open();
	enable_mem(fd);
	unsigned char b[16];
	struct {
		const char *tag;
		uint64_t off;
		size_t len;
	} cases[] = {
		{ "config_4095_2", CFG + 4095, 2 },
		{ "config_4096_1", CFG + 4096, 1 },
		{ "config_4094_2", CFG + 4094, 2 },
		{ "config_4092_8", CFG + 4092, 8 },
		{ "config_0_8", CFG + 0, 8 },
		{ "config_1_4", CFG + 1, 4 },
		{ "config_255_2", CFG + 255, 2 },
		{ "config_256_4", CFG + 256, 4 },
		{ "config_0_0", CFG + 0, 0 },
		{ "bar0_end-2_4", region_off(g_bari) + g_bar0.size - 2, 4 },
		{ "bar0_end-4_8", region_off(g_bari) + g_bar0.size - 4, 8 },
		{ "bar0_end_1", region_off(g_bari) + g_bar0.size, 1 },
		{ "bar0_end+16_4", region_off(g_bari) + g_bar0.size + 16, 4 },
		{ "bar0_0_8", region_off(g_bari), 8 },
		{ "bar0_1_2", region_off(g_bari) + 1, 2 },
		{ "bar0_2_4", region_off(g_bari) + 2, 4 },
		{ "bar0_0_3", region_off(g_bari), 3 },
		{ "bar0_0_0", region_off(g_bari), 0 },
		{ "index9", region_off(9), 4 },
		{ "index_max", region_off(0xffffff) , 4 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memset(b, 0, sizeof b);
		long r = rd(fd, b, cases[i].len, cases[i].off);
		out("g.%s ret=%s", cases[i].tag, rres(r));
	}
	/* writes at boundaries (config: vendor ID is read-only to the user) */
	uint32_t z = 0xffffffff;
	out("g.write_config_4095_2 ret=%s", rres(wr(fd, &z, 2, CFG + 4095)));
	out("g.write_config_4096_1 ret=%s", rres(wr(fd, &z, 1, CFG + 4096)));
	z = 0;
	out("g.write_bar0_end_4 ret=%s", rres(wr(fd, &z, 4, region_off(g_bari) + g_bar0.size)));
	out("g.write_index20 ret=%s", rres(wr(fd, &z, 4, region_off(20))));
	/* memory decode off: BAR access refused? */
	uint16_t cmd = (uint16_t)cfg_read(fd, PCI_COMMAND, 2);
	cfg_write(fd, PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MEMORY);
	out("g.mem_disabled_bar0_read ret=%s", rres(rd(fd, b, 4, region_off(g_bari))));
	cfg_write(fd, PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY);
	out("g.mem_enabled_bar0_read ret=%s", rres(rd(fd, b, 4, region_off(g_bari))));
	close(fd);
	settle("g");
}

/* h. mmap of BAR0 vs low power */
static void t_h(void)
{
	if (!(g_bar0.flags & VFIO_REGION_INFO_FLAG_MMAP)) {
		out("h.skipped bar0-not-mmappable flags=%#x", g_bar0.flags);
		return;
	}
	int fd = dev_open();
	enable_mem(fd);
	volatile uint32_t *m =
		mmap(NULL, g_bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, g_bar0.offset);
	if (m == MAP_FAILED)
		die("mmap bar0");
	out("h.active_touch %s", touch(m));
	int r = entry(fd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("h.entry ret=%s wait=%s", ename(r), _wf);
	}
	{
		STEP_BEGIN();
		const char *t = touch(m);
		STEP_END("h.susp_touch_old_mapping", "%s", t);
	}
	settle("h.new");
	volatile uint32_t *m2 =
		mmap(NULL, g_bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, g_bar0.offset);
	out("h.susp_mmap_new ret=%s", m2 == MAP_FAILED ? ename(errno) : "ok");
	if (m2 != MAP_FAILED) {
		STEP_BEGIN();
		const char *t = touch(m2);
		STEP_END("h.susp_touch_new_mapping", "%s", t);
	}
	settle("h.exit");
	r = exit_lp(fd);
	out("h.exit ret=%s status=%s", ename(r), rstatus());
	out("h.after_exit_touch old=%s new=%s status=%s", touch(m),
	    m2 == MAP_FAILED ? "-" : touch(m2), rstatus());

	/* engaged but kept active (power/control=on): does the mapping still fault? */
	set_control("on");
	r = entry(fd);
	out("h.entry_forbidden ret=%s usage=%ld status=%s", ename(r), usage(), rstatus());
	out("h.engaged_active_touch %s status=%s", touch(m), rstatus());
	r = exit_lp(fd);
	out("h.engaged_active_exit ret=%s touch=%s", ename(r), touch(m));
	r = entry(fd);
	set_control("auto");
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("h.entry_then_auto wait=%s touch=%s status=%s", _wf, touch(m), rstatus());
	}

	/* WITH_WAKEUP: touch does not wake; an ioctl does; then the mapping works */
	r = exit_lp(fd);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	r = entry_wake(fd, efd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("h.entry_wake ret=%s wait=%s", ename(r), _wf);
	}
	{
		STEP_BEGIN();
		const char *t = touch(m);
		STEP_END("h.wake_susp_touch", "%s efd=%s", t, efd_count(efd));
	}
	struct vfio_device_info di;
	r = get_info(fd, &di);
	out("h.wake_get_info ret=%s efd=%s status=%s", ename(r), efd_count(efd), rstatus());
	out("h.after_wake_touch %s status=%s", touch(m), rstatus());
	r = exit_lp(fd);
	out("h.exit ret=%s", ename(r));
	munmap((void *)m, g_bar0.size);
	if (m2 != MAP_FAILED)
		munmap((void *)m2, g_bar0.size);
	close(efd);
	close(fd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("h.close wait=%s", _wf);
	}
}

/* i. last close while engaged */
static void t_i(void)
{
	int fd = dev_open();
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	int r = entry_wake(fd, efd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("i.entry_wake ret=%s wait=%s", ename(r), _wf);
	}
	{
		STEP_BEGIN();
		close(fd);
		double ms = wait_status("suspended", 3000);
		STEP_END("i.close_wake_armed", "suspended_after=%.1fms efd=%s", ms, efd_count(efd));
	}
	out("i.after_close efd=%s status=%s", efd_count(efd), rstatus());
	close(efd);

	fd = dev_open();
	r = entry(fd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("i.entry ret=%s wait=%s", ename(r), _wf);
	}
	{
		STEP_BEGIN();
		close(fd);
		double ms = wait_status("suspended", 3000);
		STEP_END("i.close_plain_entry", "suspended_after=%.1fms", ms);
	}
	/* engaged from one fd, last close from another order */
	fd = dev_open();
	int fd2 = dev_open();
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	r = entry_wake(fd2, efd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("i.two_fds_entry_wake_on_second ret=%s wait=%s", ename(r), _wf);
	}
	{
		STEP_BEGIN();
		close(fd2);
		double ms = wait_status("suspended", 1000);
		STEP_END("i.close_engaging_fd_not_last", "suspended_wait=%.1fms efd=%s", ms,
			 efd_count(efd));
	}
	{
		struct vfio_device_info di;
		STEP_BEGIN();
		r = get_info(fd, &di);
		STEP_END("i.remaining_fd_get_info", "ret=%s efd=%s", ename(r), efd_count(efd));
	}
	{
		const char *_wf = waitfmt("suspended", 500);
		out("i.remaining_fd stays=%s usage=%ld", _wf, usage());
	}
	r = exit_lp(fd);
	out("i.remaining_fd_exit ret=%s usage=%ld efd=%s", ename(r), usage(), efd_count(efd));
	close(fd);
	close(efd);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("i.close wait=%s", _wf);
	}
}

/* j. timings, repeated */
static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}
static void t_j(void)
{
	enum { N = 7 };
	double sus[N], res[N], ex[N];
	int fd = dev_open();
	struct vfio_device_info di;
	for (int i = 0; i < N; i++) {
		entry(fd);
		double t0 = now_ms();
		if (wait_status("suspended", 3000) < 0)
			die("no suspend");
		sus[i] = now_ms() - t0;
		t0 = now_ms();
		get_info(fd, &di); /* resume + suspend again after */
		res[i] = now_ms() - t0;
		if (wait_status("suspended", 3000) < 0)
			die("no resuspend");
		t0 = now_ms();
		exit_lp(fd);
		ex[i] = now_ms() - t0;
	}
	/* a no-op ioctl on an active device, for comparison */
	double t0 = now_ms();
	for (int i = 0; i < 100; i++)
		get_info(fd, &di);
	double act = (now_ms() - t0) / 100;
	qsort(sus, N, sizeof(double), cmp_d);
	qsort(res, N, sizeof(double), cmp_d);
	qsort(ex, N, sizeof(double), cmp_d);
	out("j.suspend_ms (ENTRY return -> runtime_status=suspended) min=%.1f median=%.1f max=%.1f",
	    sus[0], sus[N / 2], sus[N - 1]);
	out("j.resume_ms (GET_INFO on a suspended device, wall time of the ioctl) min=%.1f median=%.1f max=%.1f",
	    res[0], res[N / 2], res[N - 1]);
	out("j.exit_ms (EXIT on a suspended device) min=%.1f median=%.1f max=%.1f", ex[0],
	    ex[N / 2], ex[N - 1]);
	out("j.get_info_active_ms %.3f", act);
	close(fd);
	settle("j");
}

/* k. two instances: a long request on one, ENTRY on the other */
struct reset_arg {
	int fd;
	double t_begin, t_end;
	int ret;
};
static void *reset_thread(void *p)
{
	struct reset_arg *a = p;
	a->t_begin = now_ms();
	a->ret = ioctl(a->fd, VFIO_DEVICE_RESET) ? errno : 0;
	a->t_end = now_ms();
	return NULL;
}
static void t_k(void)
{
	int fd1 = dev_open();
	int fd2 = dev_open();
	double t0 = now_ms();
	int r = ioctl(fd1, VFIO_DEVICE_RESET) ? errno : 0;
	out("k.reset_alone ret=%s took=%.1fms", ename(r), now_ms() - t0);
	struct reset_arg a = { .fd = fd1 };
	pthread_t th;
	double base = now_ms();
	pthread_create(&th, NULL, reset_thread, &a);
	while (!a.t_begin)
		sched_yield();
	usleep(2000);
	double te = now_ms();
	r = entry(fd2);
	double te2 = now_ms();
	/* sample the status while the reset runs */
	char seen[256] = "";
	size_t off = 0;
	char last[32] = "";
	while (!a.t_end) {
		const char *s = rstatus();
		if (strcmp(s, last)) {
			int n = snprintf(seen + off, sizeof seen - off, "%s%s@%.1f", off ? ">" : "", s,
					 now_ms() - base);
			if (n > 0 && (size_t)n < sizeof seen - off)
				off += n;
			snprintf(last, sizeof last, "%s", s);
		}
	}
	pthread_join(th, NULL);
	double ws = wait_status("suspended", 3000);
	out("k.race reset_ret=%s reset=[%.1f,%.1f]ms entry_ret=%s entry=[%.1f,%.1f]ms during_reset=%s suspended_after_reset_end=%.1fms",
	    ename(a.ret), a.t_begin - base, a.t_end - base, ename(r), te - base, te2 - base, seen,
	    ws < 0 ? -1.0 : (now_ms() - base) - (a.t_end - base));
	/* reset while engaged and suspended */
	{
		STEP_BEGIN();
		r = ioctl(fd1, VFIO_DEVICE_RESET) ? errno : 0;
		STEP_END("k.reset_while_suspended", "ret=%s", ename(r));
	}
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("k.after_reset wait=%s", _wf);
	}
	r = exit_lp(fd1);
	out("k.exit_from_other_fd ret=%s usage=%ld status=%s", ename(r), usage(), rstatus());
	close(fd1);
	close(fd2);
	{
		const char *_wf = waitfmt("suspended", 3000);
		out("k.close wait=%s", _wf);
	}
}

/*
 * k2. the race without lock contention: instance 1 is parked inside a
 * VFIO_DEVICE_GET_INFO (its argument page is registered with userfaultfd, so
 * the kernel's copy_from_user waits until we supply the page) — the request
 * wrapper has resumed the device and holds a usage reference. Instance 2 calls
 * ENTRY meanwhile. When does the device suspend?
 */
struct uf_arg {
	int fd;
	void *page;
	int ret;
	volatile int done;
	double t_end;
};
static void *uf_thread(void *p)
{
	struct uf_arg *a = p;
	a->ret = ioctl(a->fd, VFIO_DEVICE_GET_INFO, a->page) ? errno : 0;
	a->t_end = now_ms();
	a->done = 1;
	return NULL;
}
static void t_k2(const char *tag, bool engaged_first)
{
	long pg = sysconf(_SC_PAGESIZE);
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0) {
		out("%s skipped=userfaultfd-%s", tag, ename(errno));
		return;
	}
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(uffd, UFFDIO_API, &api))
		die("UFFDIO_API");
	void *page = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffdio_register reg = { .range = { (uintptr_t)page, pg },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER");

	int fd1 = dev_open(), fd2 = dev_open();
	if (engaged_first) {
		int r0 = entry(fd2);
		const char *_wf = waitfmt("suspended", 3000);
		out("%s.pre_entry ret=%s wait=%s", tag, ename(r0), _wf);
	}
	struct uf_arg a = { .fd = fd1, .page = page };
	pthread_t th;
	double base = now_ms();
	pthread_create(&th, NULL, uf_thread, &a);
	struct pollfd pf = { .fd = uffd, .events = POLLIN };
	if (poll(&pf, 1, 5000) != 1)
		die("no userfault within 5s");
	struct uffd_msg msg;
	if (read(uffd, &msg, sizeof msg) != sizeof msg || msg.event != UFFD_EVENT_PAGEFAULT)
		die("uffd read");
	double t_parked = now_ms() - base;
	const char *st_parked = rstatus();
	long u_parked = usage();
	int r = 0;
	double te0 = now_ms();
	if (!engaged_first)
		r = entry(fd2);
	else
		r = exit_lp(fd2);
	double te1 = now_ms();
	const char *st_after_call = rstatus();
	long u_after_call = usage();
	double w = wait_status("suspended", 300);
	out("%s parked_at=%.1fms status_parked=%s usage_parked=%ld %s_on_fd2=%s took=%.1fms status_after=%s usage=%ld held_300ms=%s",
	    tag, t_parked, st_parked, u_parked, engaged_first ? "exit" : "entry", ename(r),
	    te1 - te0, st_after_call, u_after_call, w < 0 ? "active(no suspend)" : "SUSPENDED",
	    a.done ? 1 : 0);
	/* release the parked request */
	static char src[65536] __attribute__((aligned(65536)));
	struct vfio_device_info *di = (void *)src;
	di->argsz = sizeof *di;
	struct uffdio_copy cp = { .dst = (uintptr_t)page, .src = (uintptr_t)src, .len = pg };
	double tr = now_ms();
	if (ioctl(uffd, UFFDIO_COPY, &cp))
		die("UFFDIO_COPY");
	pthread_join(th, NULL);
	double ws = wait_status("suspended", engaged_first ? 300 : 3000);
	char then[48];
	if (ws < 0)
		snprintf(then, sizeof then, "not-suspended(now %s)", rstatus());
	else
		snprintf(then, sizeof then, "suspended-after-%.1fms", ws);
	out("%s.released get_info=%s returned_after=%.1fms then=%s usage=%ld", tag, ename(a.ret),
	    a.t_end - tr, then, usage());
	if (!engaged_first)
		exit_lp(fd2);
	close(fd1);
	close(fd2);
	munmap(page, pg);
	close(uffd);
	settle(tag);
}

int main(int argc, char **argv)
{
	double t_start = now_ms();
	const char *bdf = argc > 1 ? argv[1] : getenv("VFPM_BDF");
	if (!bdf || !*bdf)
		die("usage: probe BDF (or set VFPM_BDF)");
	snprintf(g_bdf, sizeof g_bdf, "%s", bdf);
	snprintf(g_sys, sizeof g_sys, "/sys/bus/pci/devices/%s", g_bdf);
	char b[64];
	read_sys("vendor", b, sizeof b);
	char d[64];
	read_sys("device", d, sizeof d);
	char drv[256] = "", p[300];
	snprintf(p, sizeof p, "%s/driver", g_sys);
	ssize_t n = readlink(p, drv, sizeof drv - 1);
	if (n > 0)
		drv[n] = 0;
	out("setup.device bdf=%s vendor=%s device=%s driver=%s", g_bdf, b, d,
	    n > 0 ? strrchr(drv, '/') + 1 : "none");
	struct sigaction sa = { .sa_handler = on_sigbus };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);

	/* a runs first: it needs the never-opened device */
	setup_container();
	t_a();
	{
		int fd = dev_open();
		/* The first memory BAR without capabilities (i.e. not holding the
		 * MSI-X table, whose range vfio emulates), else the first memory BAR. */
		g_bari = 99;
		uint32_t first = 99;
		for (uint32_t i = VFIO_PCI_BAR0_REGION_INDEX; i <= VFIO_PCI_BAR5_REGION_INDEX; i++) {
			struct vfio_region_info ri;
			uint32_t bar = cfg_read(fd, PCI_BASE_ADDRESS_0 + 4 * i, 4);
			if (region_info(fd, i, &ri) || !ri.size || (bar & PCI_BASE_ADDRESS_SPACE_IO))
				continue;
			if (first == 99)
				first = i;
			if (!(ri.flags & VFIO_REGION_INFO_FLAG_CAPS)) {
				g_bari = i;
				break;
			}
		}
		if (g_bari == 99)
			g_bari = first;
		if (g_bari == 99 || region_info(fd, g_bari, &g_bar0))
			die("no memory BAR");
		out("setup.bar index=%u size=%#llx flags=%#x (called \"bar0\" below)", g_bari,
		    (unsigned long long)g_bar0.size, g_bar0.flags);
		close(fd);
		settle("setup");
	}
	t_b();
	t_c();
	t_d();
	t_e();
	t_f();
	t_g();
	t_h();
	t_i();
	t_j();
	t_k();
	t_k2("k2.race_entry_during_parked_request", false);
	t_k2("k3.exit_during_parked_request_while_engaged", true);
	out("done probe_ms=%.0f", now_ms() - t_start);
	return 0;
}
