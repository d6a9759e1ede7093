// SPDX-License-Identifier: MIT
/*
 * Carrying out scenarios: each step's command parsed and run against the
 * target (target.c), its observation compared with the scenario's.
 */
#include "engine_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/pci_regs.h>

/* ------------------------------------------------------------------ steps */

/* A step whose arguments the engine cannot read: its result is "bad-step". */
#define BAD_STEP (-100000)

struct step_ctx {
	struct ctx *x;
	const struct conf_step *st;
	char *res;
	size_t len;
};

static struct inst *inst_arg(struct step_ctx *s, int i)
{
	uint64_t n;

	if (i >= s->st->argc || !parse_u64(s->st->argv[i], &n) || n < 1 || n > MAX_INST)
		return NULL;
	return &s->x->in[n];
}

static int efd_arg(struct step_ctx *s, const char *a)
{
	uint64_t n;

	return parse_u64(a, &n) && n >= 1 && n <= MAX_EFD ? (int)n : -1;
}

/* cfg | bar | nreg | idx:K | K */
static bool region_arg(struct ctx *x, const char *a, uint32_t *index, uint64_t *size)
{
	uint64_t n;

	if (!strcmp(a, "cfg")) {
		*index = CFG;
		*size = x->cfg_size;
	} else if (!strcmp(a, "bar")) {
		*index = x->bar;
		*size = x->bar_size;
	} else if (!strcmp(a, "nreg")) {
		*index = x->num_regions;
		*size = 0;
	} else if (parse_u64(!strncmp(a, "idx:", 4) ? a + 4 : a, &n) && n < UINT32_MAX) {
		*index = (uint32_t)n;
		*size = 0;
	} else {
		return false;
	}
	return true;
}

/* N | end | end-N | end+N */
static bool offset_arg(const char *a, uint64_t size, uint64_t *off)
{
	uint64_t n = 0;

	if (strncmp(a, "end", 3))
		return parse_u64(a, off);
	if (a[3] && !parse_u64(a + 4, &n))
		return false;
	*off = a[3] == '-' ? size - n : size + n;
	return !a[3] || a[3] == '-' || a[3] == '+';
}

static int flags_arg(const char *a, uint32_t *flags)
{
	char buf[128], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", a);
	*flags = 0;
	for (tok = strtok_r(buf, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
		uint64_t n;

		if (!strcmp(tok, "GET"))
			*flags |= VFIO_DEVICE_FEATURE_GET;
		else if (!strcmp(tok, "SET"))
			*flags |= VFIO_DEVICE_FEATURE_SET;
		else if (!strcmp(tok, "PROBE"))
			*flags |= VFIO_DEVICE_FEATURE_PROBE;
		else if (parse_u64(tok, &n) && n <= UINT32_MAX)
			*flags |= (uint32_t)n;
		else
			return -1;
	}
	return 0;
}

/* feature N FLAGS [len=L] [wake=E|-1|-5|closed|pipe] [reserved=V] */
static int step_feature(struct step_ctx *s, struct inst *in)
{
	struct {
		int32_t fd;
		uint32_t reserved;
		uint8_t more[248];
	} data = { 0 };
	size_t len = 0;
	int fds[1] = { -1 }, pipefd[2] = { -1, -1 };
	unsigned int nfds = 0;
	uint32_t flags;
	int err;

	if (s->st->argc < 3 || flags_arg(s->st->argv[2], &flags))
		return BAD_STEP;
	for (int i = 3; i < s->st->argc; i++) {
		const char *a = s->st->argv[i];
		uint64_t n;

		if (!strncmp(a, "len=", 4) && parse_u64(a + 4, &n) && n <= sizeof(data)) {
			len = n;
		} else if (!strncmp(a, "reserved=", 9) && parse_u64(a + 9, &n)) {
			data.reserved = (uint32_t)n;
		} else if (!strncmp(a, "wake=", 5)) {
			const char *w = a + 5;
			int e = efd_arg(s, w);

			len = len ? len : 8;
			if (e > 0 && s->x->efd[e] >= 0) {
				fds[0] = s->x->efd[e];
				nfds = 1;
				data.fd = inst_fd_arg(in, fds, 0);
			} else if (!strcmp(w, "-1") || !strcmp(w, "-5")) {
				data.fd = atoi(w);
			} else if (!strcmp(w, "closed")) {
				/* kernel: an fd number nothing has open; vfio-user: index 0
				 * of a message without fds.  Both name no open file. */
				int t = open("/dev/null", O_RDONLY | O_CLOEXEC);

				if (t < 0)
					return -errno;
				close(t);
				fds[0] = t;
				data.fd = inst_fd_arg(in, fds, 0);
			} else if (!strcmp(w, "pipe")) {
				if (pipe(pipefd))
					return -errno;
				fds[0] = pipefd[0];
				nfds = 1;
				data.fd = inst_fd_arg(in, fds, 0);
			} else {
				return BAD_STEP;
			}
		} else {
			return BAD_STEP;
		}
	}
	err = inst_feature(in, flags, &data, len, fds, nfds);
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
	return err < 0 ? err : 0;
}

static int step_rw(struct step_ctx *s, struct inst *in, bool write)
{
	uint8_t buf[256];
	uint32_t index;
	uint64_t size, off, count, val = 0;
	ssize_t n;

	if (s->st->argc < 5 || !region_arg(s->x, s->st->argv[2], &index, &size) ||
	    !offset_arg(s->st->argv[3], size, &off) || !parse_u64(s->st->argv[4], &count) ||
	    count > sizeof(buf) || (s->st->argc > 5 && !parse_u64(s->st->argv[5], &val)))
		return BAD_STEP;
	memset(buf, (int)(val & 0xff), sizeof(buf));
	n = inst_rw(s->x, in, index, off, buf, (size_t)count, write);
	if (n < 0)
		return (int)n;
	snprintf(s->res, s->len, "count=%zd", n);
	return 1;
}

static int step_irq(struct step_ctx *s, struct inst *in)
{
	const char *what = s->st->argc > 2 ? s->st->argv[2] : "";
	uint32_t a = VFIO_IRQ_SET_ACTION_TRIGGER;
	int32_t fd;

	if (!strcmp(what, "intx-trigger") && s->st->argc > 3 && efd_arg(s, s->st->argv[3]) > 0) {
		fd = s->x->efd[efd_arg(s, s->st->argv[3])];
		return vfpm_client_set_irqs(in->c, VFIO_IRQ_SET_DATA_EVENTFD | a,
					    VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &fd);
	}
	if (!strcmp(what, "intx-mask"))
		a = VFIO_IRQ_SET_ACTION_MASK;
	else if (!strcmp(what, "intx-unmask"))
		a = VFIO_IRQ_SET_ACTION_UNMASK;
	else if (strcmp(what, "intx-off"))
		return BAD_STEP;
	return vfpm_client_set_irqs(in->c, VFIO_IRQ_SET_DATA_NONE | a, VFIO_PCI_INTX_IRQ_INDEX, 0,
				    strcmp(what, "intx-off") ? 1 : 0, NULL);
}

static int step_mmap(struct step_ctx *s, struct inst *in)
{
	struct vfio_region_info ri;
	int fd = -1, err;

	inst_unmap(in);
	err = vfpm_client_get_region_info(in->c, s->x->bar, &ri, sizeof(ri), &fd);
	if (err)
		return err;
	if (fd < 0)
		return -ENODEV;
	in->maplen = (size_t)s->x->page;
	in->map = mmap(NULL, in->maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)ri.offset);
	err = in->map == MAP_FAILED ? -errno : 0;
	if (err)
		in->map = NULL;
	close(fd);
	return err;
}

/*
 * The first BAR whose region info carries capabilities, asked again with
 * only the 32 bytes of struct vfio_region_info: "caps-set" when the answer
 * still says CAPS (the ioctl does, with cap_offset 0), "caps-clear" when it
 * does not (vfio-user clients need that to ask again), "n/a" without one.
 */
static int step_capsprobe(struct step_ctx *s, struct inst *in)
{
	union {
		struct vfio_region_info info;
		uint8_t raw[512];
	} big;
	struct vfio_region_info small;

	for (uint32_t i = VFIO_PCI_BAR0_REGION_INDEX; i <= VFIO_PCI_BAR5_REGION_INDEX; i++) {
		int fd = -1, err;

		err = vfpm_client_get_region_info(in->c, i, &big.info, sizeof(big), &fd);
		if (fd >= 0)
			close(fd);
		if (err || !(big.info.flags & VFIO_REGION_INFO_FLAG_CAPS))
			continue;
		err = vfpm_client_get_region_info(in->c, i, &small, sizeof(small), &fd);
		if (fd >= 0)
			close(fd);
		if (err)
			return err;
		snprintf(s->res, s->len, "%s%s",
			 small.flags & VFIO_REGION_INFO_FLAG_CAPS ? "caps-set" : "caps-clear",
			 small.argsz > sizeof(small) ? "" : " (argsz did not grow)");
		return 1;
	}
	snprintf(s->res, s->len, "n/a");
	return 1;
}

/* Runs one step: fills res; returns 0 when res is set. */
static void run_step(struct ctx *x, const struct conf_step *st, char *res, size_t len)
{
	struct step_ctx s = { x, st, res, len };
	const char *cmd = st->argv[0];
	struct inst *in = inst_arg(&s, 1);
	int r = BAD_STEP;

	res[0] = '\0';
	if (!strcmp(cmd, "status")) {
		r = status_now(x, res, len);
		r = r ? r : 1;
	} else if (!strcmp(cmd, "wait") && st->argc == 2) {
		wait_status(x, st->argv[1], WAIT_MS, res, len);
		r = 1;
	} else if (!strcmp(cmd, "stays-active") && st->argc == 2) {
		stays_active(x, atoi(st->argv[1]), res, len);
		r = 1;
	} else if (!strcmp(cmd, "eventfd") && st->argc == 2 && efd_arg(&s, st->argv[1]) > 0) {
		int e = efd_arg(&s, st->argv[1]);

		if (x->efd[e] >= 0)
			close(x->efd[e]);
		x->efd[e] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		r = x->efd[e] < 0 ? -errno : 0;
	} else if (!strcmp(cmd, "efd") && st->argc == 2 && efd_arg(&s, st->argv[1]) > 0) {
		uint64_t v = 0;
		int fd = x->efd[efd_arg(&s, st->argv[1])];

		if (fd >= 0 && read(fd, &v, sizeof(v)) != sizeof(v))
			v = 0;
		snprintf(res, len, "efd=%llu", (unsigned long long)v);
		r = 1;
	} else if (!strcmp(cmd, "unsupported")) {
		snprintf(res, len, "n/a");
		r = 1;
	} else if (!in) {
		r = BAD_STEP;
	} else if (!strcmp(cmd, "open")) {
		r = in->open ? -EEXIST : inst_open(x, in);
	} else if (!in->open) {
		r = -ENODEV;	/* a scenario that uses an instance it did not open */
	} else if (!strcmp(cmd, "close")) {
		inst_close_synced(x, in);
		r = 0;
	} else if (!strcmp(cmd, "info")) {
		struct vfio_device_info di;

		r = inst_info(in, &di);
	} else if (!strcmp(cmd, "rinfo") && st->argc == 3) {
		struct vfio_region_info ri;
		uint64_t size;
		uint32_t index;

		r = region_arg(x, st->argv[2], &index, &size) ? inst_region_info(in, index, &ri) :
								BAD_STEP;
	} else if (!strcmp(cmd, "irqinfo") && st->argc == 3) {
		struct vfio_irq_info ii = { .argsz = sizeof(ii) };
		uint64_t n;

		if (!parse_u64(st->argv[2], &n))
			r = BAD_STEP;
		else
			r = vfpm_client_get_irq_info(in->c, (uint32_t)n, &ii);
	} else if (!strcmp(cmd, "capsprobe")) {
		r = step_capsprobe(&s, in);
	} else if (!strcmp(cmd, "feature")) {
		r = step_feature(&s, in);
	} else if (!strcmp(cmd, "read") || !strcmp(cmd, "write")) {
		r = step_rw(&s, in, cmd[0] == 'w');
	} else if (!strcmp(cmd, "reset")) {
		r = vfpm_client_reset(in->c);
	} else if (!strcmp(cmd, "pmset") && st->argc == 3) {
		uint32_t v;

		if (!x->pm_cap)
			r = -ENOTSUP;
		else if (!(r = cfg_read(x, in, x->pm_cap + PCI_PM_CTRL, 2, &v)))
			r = cfg_write(x, in, x->pm_cap + PCI_PM_CTRL, 2,
				      (v & ~(uint32_t)PCI_PM_CTRL_STATE_MASK) |
				      (strcmp(st->argv[2], "D3hot") ? 0 : 3));
	} else if (!strcmp(cmd, "pmget")) {
		uint32_t v;

		r = x->pm_cap ? cfg_read(x, in, x->pm_cap + PCI_PM_CTRL, 2, &v) : -ENOTSUP;
		if (!r) {
			static const char *const names[] = { "D0", "D1", "D2", "D3hot" };

			snprintf(res, len, "%s", names[v & PCI_PM_CTRL_STATE_MASK]);
			r = 1;
		}
	} else if (!strcmp(cmd, "mem") && st->argc == 3) {
		uint32_t v;

		if (!(r = cfg_read(x, in, PCI_COMMAND, 2, &v)))
			r = cfg_write(x, in, PCI_COMMAND, 2,
				      strcmp(st->argv[2], "off") ? v | PCI_COMMAND_MEMORY :
								   v & ~(uint32_t)PCI_COMMAND_MEMORY);
	} else if (!strcmp(cmd, "mmap")) {
		r = step_mmap(&s, in);
	} else if (!strcmp(cmd, "touch")) {
		snprintf(res, len, "%s", in->map ? touch(in->map) : "ENODEV");
		r = 1;
	} else if (!strcmp(cmd, "munmap")) {
		inst_unmap(in);
		r = 0;
	} else if (!strcmp(cmd, "irq")) {
		r = step_irq(&s, in);
	} else if (!strcmp(cmd, "park")) {
		r = park(x, in, res, len);
	} else if (!strcmp(cmd, "release")) {
		r = release(x, in);
	}
	if (r == BAD_STEP)
		snprintf(res, len, "bad-step");
	else if (r <= 0)
		set_res(res, len, r);
}

/* ------------------------------------------------------------------- run */

static void cleanup(struct ctx *x, const char *id, FILE *results)
{
	char res[64];

	for (int i = 1; i <= MAX_INST; i++) {
		if (x->in[i].parked)
			release(x, &x->in[i]);
		if (x->in[i].open)
			inst_close_synced(x, &x->in[i]);
	}
	for (int e = 1; e <= MAX_EFD; e++) {
		if (x->efd[e] >= 0)
			close(x->efd[e]);
		x->efd[e] = -1;
	}
	wait_status(x, "suspended", WAIT_MS, res, sizeof(res));
	if (strcmp(res, "suspended") && results)
		fprintf(results, "C\t%s\tcleanup: device not suspended after the scenario (%s)\n", id,
			res);
}

int conf_run(const struct conf_set *set, const char *target, const struct conf_opts *opts,
	     struct conf_summary *sum, char *err, size_t errlen)
{
	struct ctx x = { .target = target };
	const char *who;
	int rc;

	memset(sum, 0, sizeof(*sum));
	x.page = sysconf(_SC_PAGESIZE);
	for (int e = 0; e <= MAX_EFD; e++)
		x.efd[e] = -1;
	if (!strncmp(target, "vfio:", 5)) {
		x.kernel = true;
		snprintf(x.bdf, sizeof(x.bdf), "%s", target + 5);
	} else if (strlen(target) == 12 && target[4] == ':' && target[7] == ':' && target[10] == '.') {
		x.kernel = true;
		snprintf(x.bdf, sizeof(x.bdf), "%s", target);
	}
	who = x.kernel ? "kernel" : "vfpm";
	catch_sigbus();
	if (!x.kernel) {
		struct vfpm_client_power ps;

		rc = vfpm_client_open(target, &x.status);
		if (rc) {
			snprintf(err, errlen, "cannot connect to %s: %s", target, strerror(-rc));
			return rc;
		}
		rc = vfpm_client_power_status(x.status, &ps);
		if (rc || !ps.have_counts) {
			snprintf(err, errlen,
				 "%s does not answer vfpm's POWER_STATUS (%s): the scenarios need "
				 "the device's power state without waking it",
				 target, rc ? strerror(-rc) : "no counts");
			vfpm_client_close(x.status);
			return rc ? rc : -ENOTSUP;
		}
	}
	rc = discover(&x, err, errlen);
	if (!rc) {
		char res[64];

		wait_status(&x, "suspended", WAIT_MS, res, sizeof(res));
	}
	for (unsigned int i = 0; !rc && i < set->n; i++) {
		const struct conf_scenario *sc = &set->sc[i];
		bool skip = sc->only && strcmp(sc->only, who);
		const char *skip_why = sc->only_why;
		unsigned int failed_at = 0;
		char got[160] = "", want[64] = "", cannot[192] = "";

		if (opts->only && !strstr(sc->id, opts->only))
			continue;
		sum->scenarios++;
		for (unsigned int j = 0; j < sc->nsteps; j++) {
			const struct conf_step *st = &sc->steps[j];
			const char *expect = x.kernel ? st->expect_kernel : st->expect_vfpm;
			char res[160];
			bool pass;

			if (skip) {
				snprintf(res, sizeof(res), "skip");
			} else {
				run_step(&x, st, res, sizeof(res));
				/* A step this target cannot do: the rest of the scenario is
				 * skipped here, and says why. */
				if (!strncmp(res, "n/a:", 4)) {
					snprintf(cannot, sizeof(cannot), "step %u: %s", j + 1, res + 4);
					snprintf(res, sizeof(res), "skip");
					skip = true;
					skip_why = cannot;
				}
			}
			pass = skip || !strcmp(res, expect);
			sum->steps++;
			if (!pass) {
				sum->steps_failed++;
				if (!failed_at) {
					failed_at = j + 1;
					snprintf(got, sizeof(got), "%s", res);
					snprintf(want, sizeof(want), "%s", expect);
				}
			}
			if (opts->results)
				fprintf(opts->results, "R\t%s\t%u\t%s\t%s\t%s\t%s\t%s\n", sc->id, j + 1,
					st->text, res, expect,
					skip ? (sc->only ? "skip" : "cannot") : pass ? "pass" : "FAIL",
					skip ? skip_why : st->why ? st->why : "");
			if (opts->report && opts->verbose)
				fprintf(opts->report, "    %2u %-44s %-12s %s\n", j + 1, st->text, res,
					skip ? "skip" : pass ? "" : "<- FAIL");
		}
		if (skip)
			sum->skipped++;
		else if (failed_at)
			sum->failed++;
		else
			sum->passed++;
		if (opts->report) {
			if (skip && !sc->only)
				fprintf(opts->report, "SKIP %-36s %s (this target cannot: %s)\n", sc->id,
					sc->title, skip_why);
			else if (skip)
				fprintf(opts->report, "SKIP %-36s %s (only %s: %s)\n", sc->id, sc->title,
					sc->only, sc->only_why);
			else if (failed_at)
				fprintf(opts->report, "FAIL %-36s step %u '%s': got %s, expected %s\n",
					sc->id, failed_at, sc->steps[failed_at - 1].text, got, want);
			else
				fprintf(opts->report, "pass %-36s %s\n", sc->id, sc->title);
			fflush(opts->report);
		}
		if (opts->results)
			fflush(opts->results);
		if (!skip || !sc->only)
			cleanup(&x, sc->id, opts->results);
	}
	if (x.status)
		vfpm_client_close(x.status);
	return rc;
}
