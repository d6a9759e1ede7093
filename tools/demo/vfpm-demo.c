// SPDX-License-Identifier: MIT
/*
 * The vfpm demo client: walks a polling device through traffic, low power,
 * a wake from its backend, and the two-instance race, printing a timeline
 * with what it measures.  tools/demo/demo.sh starts the server and runs it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
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

#include <vfpm/client.h>
#include "devices.h"

#define WAIT_MS 5000

static double t0_ms;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	printf("[%7.3f s] ", (now_ms() - t0_ms) / 1e3);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "vfpm-demo: %s%s%s\n", what, err ? ": " : "", err ? strerror(-err) : "");
	exit(1);
}

static void check(int err, const char *what)
{
	if (err < 0)
		die(what, err);
}

/* ---- what the demo measures ---- */

/* CPU time (user + system, seconds) the server process has used so far. */
static double server_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long utime = 0, stime = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		die("cannot read the server's /proc stat", -errno);
	fclose(f);
	/* Fields after the command name (which may hold spaces): state is the 3rd. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &utime, &stime) != 2)
		die("cannot parse the server's /proc stat", 0);
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The server's CPU use over a window of `seconds`, in percent of one core. */
static double server_cpu_percent(pid_t pid, double seconds)
{
	double c0 = server_cpu_s(pid), w0 = now_ms(), c1, w1;
	struct timespec ts = { .tv_sec = (time_t)seconds,
			       .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	c1 = server_cpu_s(pid);
	w1 = now_ms();
	return 100.0 * (c1 - c0) / ((w1 - w0) / 1e3);
}

/* Poll the power state (which never wakes the device) until it is `want`. */
static double wait_power(struct vfpm_client *watcher, const char *want)
{
	double start = now_ms();
	struct vfpm_client_power st;

	for (;;) {
		check(vfpm_client_power_status(watcher, &st), "POWER_STATUS");
		if (!strcmp(st.runtime_status, want))
			return now_ms() - start;
		if (now_ms() - start > WAIT_MS)
			die("the device did not reach the expected power state", -ETIMEDOUT);
		usleep(200);
	}
}

/* ---- the polling device's rings ---- */

struct ring_dev {
	struct vfpm_client *c;
	uint8_t *bar;
	size_t size;
};

static uint32_t reg(struct ring_dev *d, unsigned int off)
{
	return __atomic_load_n((uint32_t *)(d->bar + off), __ATOMIC_ACQUIRE);
}

static void set_reg(struct ring_dev *d, unsigned int off, uint32_t v)
{
	__atomic_store_n((uint32_t *)(d->bar + off), v, __ATOMIC_RELEASE);
}

static void enable_memory(struct vfpm_client *c)
{
	uint16_t cmd = PCI_COMMAND_MEMORY;

	if (vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, PCI_COMMAND, &cmd, 2) != 2)
		die("cannot enable memory space", 0);
}

static void map_bar0(struct ring_dev *d)
{
	union {
		struct vfio_region_info info;
		uint8_t room[256];
	} r = { .info = { .argsz = sizeof(r) } };
	int fd = -1;

	check(vfpm_client_get_region_info(d->c, VFIO_PCI_BAR0_REGION_INDEX, &r.info, sizeof(r), &fd),
	      "BAR0 region info");
	if (fd < 0)
		die("BAR0 is not mmap-able", 0);
	d->size = r.info.size;
	d->bar = mmap(NULL, d->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)r.info.offset);
	close(fd);
	if (d->bar == MAP_FAILED)
		die("cannot mmap BAR0", -errno);
}

static int backend_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("cannot connect to the backend", -errno);
	return fd;
}

static void wait_reg(struct ring_dev *d, unsigned int off, uint32_t want)
{
	double start = now_ms();

	while (reg(d, off) != want) {
		if (now_ms() - start > WAIT_MS)
			die("the device did not move the data", -ETIMEDOUT);
		usleep(100);
	}
}

/* ---- act 1: a polling device that sleeps ---- */

struct figures {
	double cpu_active, cpu_suspended, suspend_ms, wake_ms;
	double race_entry_ms, race_read_ms, race_suspend_ms;
};

static void act_polling_device(const char *sock, const char *backend, pid_t server,
			       struct figures *fig)
{
	struct ring_dev d = { 0 };
	struct vfpm_client *watcher;
	const char tx[] = "hello, backend";
	const char rx[] = "data that arrived while it slept";
	char got[64] = { 0 };
	int peer, efd;
	double sent;
	uint64_t count = 0;
	struct pollfd pfd;

	say("act 1: the polling device (%s)", sock);
	check(vfpm_client_connect(sock, &watcher), "connect (watcher)");
	wait_power(watcher, "suspended");
	say("  unused, the device is suspended: nothing polls");

	check(vfpm_client_connect(sock, &d.c), "connect");
	enable_memory(d.c);
	map_bar0(&d);
	say("  opened it: the device resumed, its backend thread polls the doorbell in BAR0");
	if (reg(&d, VFPM_POLLER_REG_MAGIC) != VFPM_POLLER_MAGIC)
		die("BAR0 does not hold the poller's registers", 0);

	peer = backend_connect(backend);
	memcpy(d.bar + VFPM_POLLER_TX_RING, tx, sizeof(tx));
	set_reg(&d, VFPM_POLLER_REG_TX_PROD, sizeof(tx));
	if (recv(peer, got, sizeof(tx), MSG_WAITALL) != (ssize_t)sizeof(tx) || strcmp(got, tx))
		die("the backend did not get the TX data", 0);
	say("  traffic: \"%s\" went out through the TX ring to the backend", tx);

	fig->cpu_active = server_cpu_percent(server, 2.0);
	say("  active and idle, the server burns %.0f%% of a core polling", fig->cpu_active);

	efd = eventfd(0, EFD_CLOEXEC);
	check(vfpm_client_low_power_entry_with_wakeup(d.c, efd), "LOW_POWER_ENTRY_WITH_WAKEUP");
	say("  LOW_POWER_ENTRY_WITH_WAKEUP with an eventfd (sent by SCM_RIGHTS)");
	fig->suspend_ms = wait_power(watcher, "suspended");
	say("  suspended %.1f ms later: the backend thread has stopped", fig->suspend_ms);

	fig->cpu_suspended = server_cpu_percent(server, 2.0);
	say("  suspended, the server uses %.1f%% of a core", fig->cpu_suspended);

	sent = now_ms();
	if (send(peer, rx, sizeof(rx), 0) != (ssize_t)sizeof(rx))
		die("cannot send to the backend", -errno);
	pfd = (struct pollfd){ .fd = efd, .events = POLLIN };
	if (poll(&pfd, 1, WAIT_MS) != 1 || read(efd, &count, sizeof(count)) != sizeof(count))
		die("the wakeup eventfd did not fire", -ETIMEDOUT);
	fig->wake_ms = now_ms() - sent;
	say("  traffic at the backend woke it: the eventfd fired %.2f ms after the data arrived "
	    "(count %llu)", fig->wake_ms, (unsigned long long)count);
	wait_reg(&d, VFPM_POLLER_REG_RX_PROD, sizeof(rx));
	if (memcmp(d.bar + VFPM_POLLER_RX_RING, rx, sizeof(rx)))
		die("the RX data is not intact", 0);
	say("  the data is intact in the RX ring: \"%s\"", (char *)d.bar + VFPM_POLLER_RX_RING);
	wait_power(watcher, "active");
	say("  and the device stays active for the VMM, until it asks for low power again");

	close(efd);
	close(peer);
	munmap(d.bar, d.size);
	vfpm_client_close(d.c);
	vfpm_client_close(watcher);
}

/* ---- act 2: the race ---- */

struct slow_read {
	struct vfpm_client *c;
	uint32_t value;
	ssize_t ret;
	double done_ms;
};

static void *slow_reader(void *arg)
{
	struct slow_read *s = arg;

	s->ret = vfpm_client_region_read(s->c, VFIO_PCI_BAR2_REGION_INDEX, VFPM_MEMDEV_REG_SLOW,
					 &s->value, 4);
	s->done_ms = now_ms();
	return NULL;
}

static void act_race(const char *sock, struct figures *fig)
{
	struct vfpm_client *watcher, *other;
	struct vfpm_client_power st;
	struct slow_read slow = { 0 };
	uint32_t delay = 800;
	pthread_t thread;
	double start, entered;

	say("act 2: the race, on the memory device (%s)", sock);
	check(vfpm_client_connect(sock, &watcher), "connect (watcher)");
	check(vfpm_client_connect(sock, &slow.c), "connect (instance 1)");
	check(vfpm_client_connect(sock, &other), "connect (instance 2)");
	enable_memory(slow.c);
	if (vfpm_client_region_write(slow.c, VFIO_PCI_BAR2_REGION_INDEX, VFPM_MEMDEV_REG_DELAY_MS,
				     &delay, 4) != 4)
		die("cannot set the slow register's delay", 0);
	check(vfpm_client_get_info(other, &(struct vfio_device_info){ .argsz = 16 }), "GET_INFO");

	start = now_ms();
	pthread_create(&thread, NULL, slow_reader, &slow);
	/* Instance 1's request holds a reference: usage 2 with the open one. */
	do {
		check(vfpm_client_power_status(watcher, &st), "POWER_STATUS");
	} while (st.usage_count < 2 && now_ms() - start < WAIT_MS);
	say("  instance 1 is inside a slow register read (%u ms)", delay);

	check(vfpm_client_low_power_entry(other), "LOW_POWER_ENTRY");
	entered = now_ms();
	fig->race_entry_ms = entered - start;
	check(vfpm_client_power_status(watcher, &st), "POWER_STATUS");
	say("  instance 2 asked for low power: ENTRY returned 0 at once; the device is %s "
	    "(usage %d: instance 1's request)", st.runtime_status, st.usage_count);
	if (strcmp(st.runtime_status, "active"))
		die("the device left ACTIVE under a request in flight", 0);

	pthread_join(thread, NULL);
	if (slow.ret != 4)
		die("instance 1's read failed", (int)slow.ret);
	fig->race_read_ms = slow.done_ms - start;
	say("  instance 1's read returned after %.0f ms, untouched by the suspend", fig->race_read_ms);
	wait_power(watcher, "suspended");
	fig->race_suspend_ms = now_ms() - slow.done_ms;
	say("  only then did the device suspend (%.1f ms after the read returned)",
	    fig->race_suspend_ms);

	check(vfpm_client_low_power_exit(other), "LOW_POWER_EXIT");
	vfpm_client_close(other);
	vfpm_client_close(slow.c);
	vfpm_client_close(watcher);
}

int main(int argc, char **argv)
{
	struct figures fig = { 0 };

	if (argc != 5) {
		fprintf(stderr, "Usage: vfpm-demo POLLER-SOCKET BACKEND-SOCKET MEMORY-SOCKET SERVER-PID\n"
				"(tools/demo/demo.sh starts the server and runs this)\n");
		return 2;
	}
	t0_ms = now_ms();
	act_polling_device(argv[1], argv[2], (pid_t)atoi(argv[4]), &fig);
	act_race(argv[3], &fig);

	printf("\nWhat was measured\n");
	printf("  CPU of the server, polling device active and idle : %6.1f %% of a core\n",
	       fig.cpu_active);
	printf("  CPU of the server, polling device suspended       : %6.1f %% of a core\n",
	       fig.cpu_suspended);
	printf("  LOW_POWER_ENTRY to SUSPENDED                       : %6.1f ms\n", fig.suspend_ms);
	printf("  backend data to wakeup eventfd                     : %6.2f ms\n", fig.wake_ms);
	printf("  race: ENTRY returned (request in flight)           : %6.1f ms after the read began\n",
	       fig.race_entry_ms);
	printf("  race: the in-flight read completed                 : %6.1f ms after it began\n",
	       fig.race_read_ms);
	printf("  race: read returned to SUSPENDED                   : %6.1f ms\n",
	       fig.race_suspend_ms);
	return 0;
}
