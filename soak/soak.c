// SPDX-License-Identifier: MIT
/*
 * vfpm-soak: many clients against one server for a long time.
 *
 * The server runs in this process on the tests' device model (tests/model),
 * which counts every broken promise of the core: an access to its trapped
 * BARs made while the device is not ACTIVE or its backend stopped, a runtime
 * callback out of turn.  Each client thread has its own connection and, for the whole run,
 * picks at random: valid requests (config and BAR accesses, info commands,
 * interrupts, POWER_STATUS), invalid ones (bad offsets, flags, feature
 * indexes, fd indexes, fds of the wrong kind, garbage on a raw connection),
 * low-power transitions (ENTRY, ENTRY_WITH_WAKEUP with a fresh eventfd per
 * arming, EXIT), pauses that let the device suspend, and reconnects.
 *
 * Invariants, checked throughout and at the end:
 *  - no device access while the device is not ACTIVE (the model's count of
 *    violations);
 *  - every valid request succeeds, every invalid one fails with its errno;
 *  - every armed eventfd is signalled at most once per arming;
 *  - at the end, with every client gone: the device suspended, usage count
 *    0, low power disengaged, no instance open, no fd leaked.
 *
 *   vfpm-soak [--seconds N] [--clients N] [--seed N]
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include <vfpm/client.h>
#include <vfpm/transport.h>

#include "test_model.h"

#define MAX_CLIENTS 64

enum op_kind {
	OP_VALID, OP_INVALID, OP_ENTRY, OP_ENTRY_WAKEUP, OP_EXIT, OP_PAUSE, OP_RECONNECT,
	OP_GARBAGE, OP_KINDS
};
static const char *const op_names[OP_KINDS] = {
	"valid requests", "invalid requests", "ENTRY", "ENTRY_WITH_WAKEUP", "EXIT", "pauses",
	"reconnects", "garbage connections",
};

struct soak {
	const char *path;
	struct test_model *model;
	struct vfpm_server *srv;
	atomic_bool stop;
	atomic_ulong ops[OP_KINDS];
	atomic_ulong failures;		/* a request did not do what it should */
	atomic_ulong armings;		/* ENTRY_WITH_WAKEUP accepted */
	atomic_ulong signals;		/* wakeup eventfd signals seen */
	atomic_ulong double_signals;	/* an arming signalled more than once */
	atomic_ulong entry_refused;	/* ENTRY while engaged: EINVAL, as it should */
};

struct client {
	struct soak *s;
	unsigned int id;
	uint64_t rng;
	struct vfpm_client *c;
	int armed_efd;			/* the eventfd of this client's last arming, or -1 */
};

static uint64_t rnd(struct client *cl)
{
	/* xorshift64* */
	cl->rng ^= cl->rng >> 12;
	cl->rng ^= cl->rng << 25;
	cl->rng ^= cl->rng >> 27;
	return cl->rng * 0x2545f4914f6cdd1dull;
}

static void failure(struct client *cl, const char *what, long got)
{
	atomic_fetch_add(&cl->s->failures, 1);
	fprintf(stderr, "soak: client %u: %s: got %ld (%s)\n", cl->id, what, got,
		got < 0 ? strerror((int)-got) : "-");
}

#define EXPECT(cl, cond, what, got) do { if (!(cond)) failure((cl), (what), (long)(got)); } while (0)

/* The eventfd of the previous arming has fired at most once; then it is dropped. */
static void retire_eventfd(struct client *cl)
{
	uint64_t v = 0;

	if (cl->armed_efd < 0)
		return;
	if (read(cl->armed_efd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
		atomic_fetch_add(&cl->s->signals, v);
		if (v > 1)
			atomic_fetch_add(&cl->s->double_signals, 1);
	}
	close(cl->armed_efd);
	cl->armed_efd = -1;
}

static ssize_t bar2_rw(struct client *cl, uint64_t off, void *buf, bool write)
{
	ssize_t n = write ? vfpm_client_region_write(cl->c, VFIO_PCI_BAR2_REGION_INDEX, off, buf, 4)
			  : vfpm_client_region_read(cl->c, VFIO_PCI_BAR2_REGION_INDEX, off, buf, 4);

	if (n != 4) {
		/* Memory decoding is off after the device was reset by a last close: turn it on. */
		uint16_t cmd = PCI_COMMAND_MEMORY;

		vfpm_client_region_write(cl->c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd, 2);
		n = write ? vfpm_client_region_write(cl->c, VFIO_PCI_BAR2_REGION_INDEX, off, buf, 4)
			  : vfpm_client_region_read(cl->c, VFIO_PCI_BAR2_REGION_INDEX, off, buf, 4);
	}
	return n;
}

static void op_valid(struct client *cl)
{
	struct vfio_device_info info;
	struct vfio_irq_info irq;
	struct vfpm_client_power st;
	uint8_t rbuf[256];
	struct vfio_region_info *ri = (void *)rbuf;
	uint32_t v, id = 0;
	uint16_t vendor = 0;
	static const uint32_t regions[4] = {
		VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_BAR4_REGION_INDEX,
		VFIO_PCI_CONFIG_REGION_INDEX,
	};
	int efd[2];
	long r;

	switch (rnd(cl) % 7) {
	case 0:
		r = vfpm_client_region_read(cl->c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_VENDOR_ID,
					    &vendor, 2);
		EXPECT(cl, r == 2 && vendor == TM_VENDOR_ID, "config read", r);
		break;
	case 1:
		r = bar2_rw(cl, TM_REG_ID, &id, false);
		EXPECT(cl, r == 4 && id == TM_ID, "BAR2 read", r);
		break;
	case 2:
		/* Each client owns one word of BAR2 past the registers. */
		v = (uint32_t)rnd(cl);
		r = bar2_rw(cl, 0x100 + 4 * cl->id, &v, true);
		EXPECT(cl, r == 4, "BAR2 write", r);
		id = 0;
		r = bar2_rw(cl, 0x100 + 4 * cl->id, &id, false);
		EXPECT(cl, r == 4 && id == v, "BAR2 read back", r);
		break;
	case 3:
		r = vfpm_client_get_info(cl->c, &info);
		EXPECT(cl, r == 0 && info.num_regions == VFIO_PCI_NUM_REGIONS, "GET_INFO", r);
		break;
	case 4:
		r = vfpm_client_get_region_info(cl->c, regions[rnd(cl) % 4], ri, sizeof(rbuf), NULL);
		EXPECT(cl, r == 0, "GET_REGION_INFO", r);
		r = vfpm_client_get_irq_info(cl->c, (uint32_t)(rnd(cl) % VFIO_PCI_NUM_IRQS), &irq);
		EXPECT(cl, r == 0, "GET_IRQ_INFO", r);
		break;
	case 5:
		r = vfpm_client_power_status(cl->c, &st);
		EXPECT(cl, r == 0 && st.have_counts, "POWER_STATUS", r);
		break;
	default:
		/* Two MSI-X vectors on eventfds, fire them through the model, release them. */
		efd[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		efd[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		r = vfpm_client_set_irqs(cl->c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					 VFIO_PCI_MSIX_IRQ_INDEX, 2, 2, efd);
		EXPECT(cl, r == 0, "SET_IRQS assign", r);
		close(efd[0]);
		close(efd[1]);
		efd[0] = efd[1] = -1;
		r = vfpm_client_set_irqs(cl->c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					 VFIO_PCI_MSIX_IRQ_INDEX, 2, 2, efd);
		EXPECT(cl, r == 0, "SET_IRQS de-assign", r);
		break;
	}
}

static void op_invalid(struct client *cl)
{
	struct {
		int32_t wakeup_eventfd;
		uint32_t reserved;
	} wake = { 0, 0 };
	uint8_t buf[8];
	int fd;
	long r;

	switch (rnd(cl) % 6) {
	case 0:
		r = vfpm_client_region_read(cl->c, VFIO_PCI_CONFIG_REGION_INDEX, 4096, buf, 4);
		EXPECT(cl, r < 0, "config read past the end", r);
		break;
	case 1:
		r = vfpm_client_feature(cl->c, VFIO_DEVICE_FEATURE_SET | 0x7777, NULL, 0, 0, NULL, 0);
		EXPECT(cl, r == -ENOTTY, "unknown feature", r);
		break;
	case 2:
		r = vfpm_client_feature(cl->c, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET |
					VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, NULL, 0, 0, NULL, 0);
		EXPECT(cl, r == -EINVAL, "GET|SET without PROBE", r);
		break;
	case 3:
		/* An fd index past the message's fds. */
		wake.wakeup_eventfd = 3;
		fd = eventfd(0, EFD_CLOEXEC);
		r = vfpm_client_feature(cl->c, VFIO_DEVICE_FEATURE_SET |
					VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, &wake,
					sizeof(wake), sizeof(wake), &fd, 1);
		EXPECT(cl, r == -EBADF, "wakeup fd index out of range", r);
		close(fd);
		break;
	case 4:
		/* Not an eventfd. */
		fd = memfd_create("soak", MFD_CLOEXEC);
		r = vfpm_client_feature(cl->c, VFIO_DEVICE_FEATURE_SET |
					VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, &wake,
					sizeof(wake), sizeof(wake), &fd, 1);
		EXPECT(cl, r == -EINVAL, "wakeup fd not an eventfd", r);
		close(fd);
		break;
	default:
		r = vfpm_client_set_irqs(cl->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
					 VFIO_PCI_NUM_IRQS + 3, 0, 1, NULL);
		EXPECT(cl, r == -EINVAL, "SET_IRQS bad index", r);
		break;
	}
}

/* A raw connection that sends random bytes and goes away. */
static void op_garbage(struct client *cl)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	uint8_t junk[256];
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	size_t len = 1 + rnd(cl) % sizeof(junk);

	for (size_t i = 0; i < len; i++)
		junk[i] = (uint8_t)rnd(cl);
	strncpy(addr.sun_path, cl->s->path, sizeof(addr.sun_path) - 1);
	if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		failure(cl, "garbage connect", -errno);
	} else {
		if (send(sock, junk, len, MSG_NOSIGNAL) < 0)
			failure(cl, "garbage send", -errno);
	}
	if (sock >= 0)
		close(sock);
}

static void do_op(struct client *cl)
{
	unsigned int dice = (unsigned int)(rnd(cl) % 100);
	enum op_kind k = dice < 55 ? OP_VALID : dice < 70 ? OP_INVALID : dice < 78 ? OP_ENTRY :
			 dice < 86 ? OP_ENTRY_WAKEUP : dice < 94 ? OP_EXIT : dice < 97 ? OP_PAUSE :
			 dice < 99 ? OP_RECONNECT : OP_GARBAGE;
	struct timespec ts;
	int efd;
	long r;

	atomic_fetch_add(&cl->s->ops[k], 1);
	switch (k) {
	case OP_VALID:
		op_valid(cl);
		break;
	case OP_INVALID:
		op_invalid(cl);
		break;
	case OP_ENTRY:
		r = vfpm_client_low_power_entry(cl->c);
		EXPECT(cl, r == 0 || r == -EINVAL, "ENTRY", r);
		if (r == -EINVAL)
			atomic_fetch_add(&cl->s->entry_refused, 1);
		break;
	case OP_ENTRY_WAKEUP:
		retire_eventfd(cl);
		efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		r = vfpm_client_low_power_entry_with_wakeup(cl->c, efd);
		EXPECT(cl, r == 0 || r == -EINVAL, "ENTRY_WITH_WAKEUP", r);
		if (r == 0) {
			atomic_fetch_add(&cl->s->armings, 1);
			cl->armed_efd = efd;
		} else {
			atomic_fetch_add(&cl->s->entry_refused, 1);
			close(efd);
		}
		break;
	case OP_EXIT:
		r = vfpm_client_low_power_exit(cl->c);
		EXPECT(cl, r == 0, "EXIT", r);
		break;
	case OP_PAUSE:
		/* Long enough for the device to suspend when low power is engaged. */
		ts = (struct timespec){ .tv_nsec = (long)(1 + rnd(cl) % 20) * 1000000L };
		nanosleep(&ts, NULL);
		break;
	case OP_RECONNECT:
		vfpm_client_close(cl->c);
		r = vfpm_client_connect(cl->s->path, &cl->c);
		if (r) {
			failure(cl, "reconnect", r);
			cl->c = NULL;
		}
		break;
	default:
		op_garbage(cl);
		break;
	}
}

static void *client_thread(void *arg)
{
	struct client *cl = arg;

	while (!atomic_load(&cl->s->stop) && cl->c)
		do_op(cl);
	retire_eventfd(cl);
	return NULL;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The transport tests' device: BAR2's registers, BAR4 mappable, FLR. */
static const struct tm_config model_config = {
	.registers = true, .msix_mappable = true, .flr = true,
};

int main(int argc, char **argv)
{
	unsigned int seconds = 600, nclients = 16;
	unsigned long seed = (unsigned long)time(NULL);
	struct client cl[MAX_CLIENTS];
	pthread_t t[MAX_CLIENTS];
	struct soak s = { .path = NULL };
	struct vfpm_server_opts opts = {
		.on_connect = tm_on_connect, .on_disconnect = tm_on_disconnect,
	};
	char dir[] = "/tmp/vfpm-soak-XXXXXX", path[64];
	struct vfpm_pm_dev *pm;
	int fds_before, fds_after, bad = 0, bad_usage = 0;
	unsigned long total = 0;
	double start, last;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--seconds"))
			seconds = (unsigned int)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--clients"))
			nclients = (unsigned int)strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoul(argv[i + 1], NULL, 10);
	}
	if (nclients < 1 || nclients > MAX_CLIENTS) {
		fprintf(stderr, "soak: 1 to %d clients\n", MAX_CLIENTS);
		return 2;
	}
	/* The process's reserve fd stays from the first server on: count it in. */
	vfpm_transport_get_limits(&(struct vfpm_transport_limits){ 0 });
	fds_before = count_fds();
	if (!mkdtemp(dir))
		return 2;
	snprintf(path, sizeof(path), "%s/dev.sock", dir);
	s.path = path;
	if (tm_create(&model_config, &s.model))
		return 2;
	opts.opaque = s.model;
	pm = vfpm_pci_pm(s.model->pdev);
	if (vfpm_server_create(vfpm_pci_device(s.model->pdev), path, &opts, &s.srv) ||
	    vfpm_server_start(s.srv))
		return 2;
	printf("soak: %u clients for %u s against %s (seed %lu)\n", nclients, seconds, path, seed);
	for (unsigned int i = 0; i < nclients; i++) {
		cl[i] = (struct client){ .s = &s, .id = i, .rng = (seed + 1) * 0x9e3779b97f4a7c15ull + i,
					 .armed_efd = -1 };
		if (vfpm_client_connect(path, &cl[i].c)) {
			fprintf(stderr, "soak: cannot connect\n");
			return 2;
		}
	}
	start = last = now();
	for (unsigned int i = 0; i < nclients; i++)
		pthread_create(&t[i], NULL, client_thread, &cl[i]);
	while (now() - start < seconds) {
		usleep(200000);
		if (atomic_load(&s.model->violations) && !bad) {
			bad = 1;
			fprintf(stderr, "soak: the model saw a violation (above)\n");
		}
		/* Each client holds at most one reference at a time, plus the open one. */
		int u = vfpm_pm_usage_count(pm);

		if ((u < 0 || u > (int)nclients + 1) && !bad_usage) {
			bad_usage = 1;
			fprintf(stderr, "soak: usage count %d with %u clients\n", u, nclients);
		}
		if (now() - last >= 10) {
			last = now();
			total = 0;
			for (int k = 0; k < OP_KINDS; k++)
				total += atomic_load(&s.ops[k]);
			printf("soak: %4.0f s  %lu operations, %lu failures, %u suspends, "
			       "%u resumes, status %s\n", now() - start, total,
			       atomic_load(&s.failures), atomic_load(&s.model->suspends),
			       atomic_load(&s.model->resumes), vfpm_pm_status_name(vfpm_pm_status(pm)));
			fflush(stdout);
		}
	}
	atomic_store(&s.stop, true);
	for (unsigned int i = 0; i < nclients; i++) {
		pthread_join(t[i], NULL);
		if (cl[i].c)
			vfpm_client_close(cl[i].c);
	}

	/* Everyone has left: the device must be idle, balanced and suspended. */
	int conns = vfpm_server_wait_connections(s.srv, 0, 10000);
	int suspended = vfpm_pm_wait_status(pm, VFPM_PM_SUSPENDED, 10000);
	int usage = vfpm_pm_usage_count(pm);
	bool engaged = vfpm_pci_low_power_engaged(s.model->pdev);
	unsigned int open = vfpm_device_open_count(vfpm_pci_device(s.model->pdev));
	unsigned int suspends = atomic_load(&s.model->suspends);
	unsigned int resumes = atomic_load(&s.model->resumes);
	unsigned int violations = atomic_load(&s.model->violations);

	vfpm_server_destroy(s.srv);
	tm_destroy(s.model);
	rmdir(dir);
	fds_after = count_fds();

	total = 0;
	for (int k = 0; k < OP_KINDS; k++)
		total += atomic_load(&s.ops[k]);
	printf("soak: summary after %.0f s, %u clients, seed %lu\n", now() - start, nclients, seed);
	printf("  operations            %lu (%.0f/s)\n", total, (double)total / (now() - start));
	for (int k = 0; k < OP_KINDS; k++)
		printf("    %-20s %lu\n", op_names[k], atomic_load(&s.ops[k]));
	printf("  ENTRY refused (engaged already)  %lu\n", atomic_load(&s.entry_refused));
	printf("  runtime suspends / resumes       %u / %u\n", suspends, resumes);
	printf("  wakeup armings / signals         %lu / %lu\n", atomic_load(&s.armings),
	       atomic_load(&s.signals));
	printf("invariants:\n");
	int ok = 1;
#define CHECK(cond, fmt, ...) do { \
		bool c_ = (cond); \
		printf("  [%s] " fmt "\n", c_ ? "ok" : "FAIL", __VA_ARGS__); \
		ok &= c_; \
	} while (0)
	CHECK(violations == 0, "model violations (device touched while not ACTIVE): %u",
	      violations);
	CHECK(!bad_usage, "usage count within [0, clients + 1] throughout: %s",
	      bad_usage ? "no" : "yes");
	CHECK(atomic_load(&s.failures) == 0, "requests that did not behave: %lu",
	      atomic_load(&s.failures));
	CHECK(atomic_load(&s.double_signals) == 0, "armings signalled more than once: %lu",
	      atomic_load(&s.double_signals));
	CHECK(atomic_load(&s.signals) <= atomic_load(&s.armings), "signals %lu <= armings %lu",
	      atomic_load(&s.signals), atomic_load(&s.armings));
	CHECK(conns == 0, "connections left: %s", conns ? "some" : "none");
	CHECK(suspended == 0 && usage == 0 && !engaged && open == 0,
	      "at the end: %s, usage count %d, low power %s, open instances %u",
	      suspended ? "NOT suspended" : "suspended", usage, engaged ? "engaged" : "off", open);
	CHECK(fds_after == fds_before, "fds: %d before, %d after", fds_before, fds_after);
	CHECK(total > nclients, "progress: %lu operations", total);
	printf("soak: %s\n", ok ? "PASS" : "FAIL");
	return ok ? 0 : 1;
}
