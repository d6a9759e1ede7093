// SPDX-License-Identifier: MIT
/*
 * The polling device.  While ACTIVE, a thread busy-polls the TX doorbell in
 * BAR0 and the backend socket, moving bytes between the rings and the
 * backend; it burns a core, as SPDK-style emulators do.  In runtime suspend
 * that thread is stopped and a watcher sleeps in poll(2) on the backend: data
 * (or a new peer) arriving there takes a runtime PM reference and requests a
 * resume, and the polling thread drops that reference once it has drained
 * the backend into the RX ring.  Nothing is lost: bytes wait in the socket
 * while the device sleeps.
 */
#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* How long the backend stays quiet before a wake is over. */
#define POLLER_WAKE_QUIET_MS 100

struct poller {
	/* Set by probe, before any thread starts and any callback runs. */
	struct vfpm_pci_dev *pdev;
	int listen_fd;			/* immutable */
	char *backend_path;		/* immutable */

	/*
	 * The backend peer.  Owned by whichever of the polling thread and
	 * the watcher runs (never both: the PM core serialises suspend and
	 * resume, which hand it over by joining one before starting the other).
	 */
	int peer_fd;
	atomic_bool peer_connected;	/* for the stats: peer_fd >= 0 */

	/* Touched only from the runtime PM callbacks and destroy (serialised). */
	pthread_t poll_thread;
	atomic_bool poll_running;	/* atomic: also read by the stats */
	pthread_t watch_thread;
	bool watch_running;
	int watch_stop_efd;

	atomic_bool poll_stop;
	atomic_bool wake_ref;		/* a reference taken by a wake event is held */

	_Atomic uint64_t polls, tx_bytes, rx_bytes, suspends, resumes, wakes;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* ---- the rings, in BAR0 (shared with the user's mapping: access by atomics) ---- */

static uint32_t reg_load(uint8_t *bar, unsigned int reg)
{
	return __atomic_load_n((uint32_t *)(bar + reg), __ATOMIC_ACQUIRE);
}

static void reg_store(uint8_t *bar, unsigned int reg, uint32_t value)
{
	__atomic_store_n((uint32_t *)(bar + reg), value, __ATOMIC_RELEASE);
}

/* Send what the user produced in the TX ring. */
static void poller_move_tx(struct poller *p, uint8_t *bar)
{
	uint32_t prod = reg_load(bar, VFPM_POLLER_REG_TX_PROD);
	uint32_t cons = reg_load(bar, VFPM_POLLER_REG_TX_CONS);

	while (p->peer_fd >= 0 && prod != cons) {
		uint32_t at = cons % VFPM_POLLER_RING_SIZE;
		uint32_t len = prod - cons;
		ssize_t n;

		if (len > VFPM_POLLER_RING_SIZE - at)
			len = VFPM_POLLER_RING_SIZE - at;
		n = send(p->peer_fd, bar + VFPM_POLLER_TX_RING + at, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n <= 0)
			break;
		cons += (uint32_t)n;
		atomic_fetch_add(&p->tx_bytes, (uint64_t)n);
	}
	reg_store(bar, VFPM_POLLER_REG_TX_CONS, cons);
}

/* Receive into the RX ring; true when the backend has nothing more for us now. */
static bool poller_move_rx(struct poller *p, uint8_t *bar, bool *moved)
{
	uint32_t prod = reg_load(bar, VFPM_POLLER_REG_RX_PROD);
	uint32_t cons = reg_load(bar, VFPM_POLLER_REG_RX_CONS);
	bool drained = p->peer_fd < 0;

	while (p->peer_fd >= 0) {
		uint32_t room = VFPM_POLLER_RING_SIZE - (prod - cons);
		uint32_t at = prod % VFPM_POLLER_RING_SIZE;
		ssize_t n;

		if (room == 0)
			break; /* the user has not made room yet */
		if (room > VFPM_POLLER_RING_SIZE - at)
			room = VFPM_POLLER_RING_SIZE - at;
		n = recv(p->peer_fd, bar + VFPM_POLLER_RX_RING + at, room, MSG_DONTWAIT);
		if (n > 0) {
			prod += (uint32_t)n;
			atomic_fetch_add(&p->rx_bytes, (uint64_t)n);
			*moved = true;
			continue;
		}
		if (n == 0) {
			close(p->peer_fd); /* the peer went away; wait for the next one */
			p->peer_fd = -1;
			atomic_store(&p->peer_connected, false);
		}
		drained = true;
		break;
	}
	reg_store(bar, VFPM_POLLER_REG_RX_PROD, prod);
	return drained;
}

static void poller_accept(struct poller *p)
{
	if (p->peer_fd < 0) {
		p->peer_fd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		atomic_store(&p->peer_connected, p->peer_fd >= 0);
	}
}

static uint64_t poller_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *poller_poll_main(void *arg)
{
	struct poller *p = arg;
	uint8_t *bar = vfpm_pci_bar_mem(p->pdev, 0);
	uint64_t quiet_since = 0;	/* when the backend last went quiet, 0: busy */

	while (!atomic_load(&p->poll_stop)) {
		bool moved = false, drained;

		atomic_fetch_add(&p->polls, 1);
		poller_accept(p);
		vfpm_pci_mem_lock(p->pdev);
		poller_move_tx(p, bar);
		drained = poller_move_rx(p, bar, &moved);
		if (moved && reg_load(bar, VFPM_POLLER_REG_IRQ_ENABLE))
			vfpm_pci_msix_signal(p->pdev, 0);
		vfpm_pci_mem_unlock(p->pdev);

		/*
		 * The wake that brought us here is served once the backend has
		 * been quiet for a while: a peer's connect wakes the device and
		 * its data follows a moment later, which is one burst, not two
		 * wakes.  Then the device may sleep again.
		 */
		if (!drained || moved)
			quiet_since = 0;
		else if (!quiet_since)
			quiet_since = poller_now_ms();
		if (quiet_since && poller_now_ms() - quiet_since >= POLLER_WAKE_QUIET_MS &&
		    atomic_exchange(&p->wake_ref, false))
			vfpm_pci_wake_put(p->pdev);
		cpu_relax();
	}
	return NULL;
}

/* ---- asleep: wait for the backend without burning a core ---- */

/*
 * A wake event is data from the peer, or a new peer; a peer that hangs up is
 * not (the watcher closes it and waits for the next one).  The watcher owns
 * peer_fd while it runs: the polling thread is stopped.
 */
static bool poller_peer_has_data(struct poller *p)
{
	char byte;
	ssize_t n = recv(p->peer_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0)
		return true;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	close(p->peer_fd);
	p->peer_fd = -1;
	atomic_store(&p->peer_connected, false);
	return false;
}

static void *poller_watch_main(void *arg)
{
	struct poller *p = arg;
	struct pollfd fds[2] = { { .fd = p->watch_stop_efd, .events = POLLIN } };
	bool woke = false;

	for (;;) {
		fds[1] = (struct pollfd){ .fd = p->peer_fd >= 0 ? p->peer_fd : p->listen_fd,
					  .events = POLLIN };
		if (poll(fds, woke ? 1 : 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[0].revents)
			break;
		if (woke || !fds[1].revents)
			continue;
		if (fds[1].fd == p->peer_fd && !poller_peer_has_data(p))
			continue;
		/* A wake event: hold the device up until the data is in. */
		woke = true;
		atomic_fetch_add(&p->wakes, 1);
		if (!atomic_exchange(&p->wake_ref, true) && vfpm_pci_wake_get(p->pdev))
			atomic_store(&p->wake_ref, false);
	}
	return NULL;
}

static void poller_stop_polling(struct poller *p)
{
	if (!p->poll_running)
		return;
	atomic_store(&p->poll_stop, true);
	pthread_join(p->poll_thread, NULL);
	p->poll_running = false;
}

static int poller_start_polling(struct poller *p)
{
	int err;

	atomic_store(&p->poll_stop, false);
	err = pthread_create(&p->poll_thread, NULL, poller_poll_main, p);
	p->poll_running = !err;
	return -err;
}

static void poller_stop_watching(struct poller *p)
{
	uint64_t one = 1;

	if (!p->watch_running)
		return;
	if (write(p->watch_stop_efd, &one, sizeof(one)) < 0)
		abort(); /* an eventfd write of 1 cannot fail here */
	pthread_join(p->watch_thread, NULL);
	close(p->watch_stop_efd);
	p->watch_stop_efd = -1;
	p->watch_running = false;
}

static int poller_start_watching(struct poller *p)
{
	int err;

	p->watch_stop_efd = eventfd(0, EFD_CLOEXEC);
	if (p->watch_stop_efd < 0)
		return -errno;
	err = pthread_create(&p->watch_thread, NULL, poller_watch_main, p);
	if (err) {
		close(p->watch_stop_efd);
		p->watch_stop_efd = -1;
		return -err;
	}
	p->watch_running = true;
	return 0;
}

/* ---- runtime PM ---- */

static int poller_runtime_suspend(struct vfpm_pci_dev *pdev)
{
	struct poller *p = vfpm_pci_model(pdev);
	int err;

	poller_stop_polling(p);
	err = poller_start_watching(p);
	if (err) {
		poller_start_polling(p);
		return -EBUSY; /* not now; the device stays active */
	}
	atomic_fetch_add(&p->suspends, 1);
	return 0;
}

static int poller_runtime_resume(struct vfpm_pci_dev *pdev)
{
	struct poller *p = vfpm_pci_model(pdev);
	int err;

	poller_stop_watching(p);
	err = poller_start_polling(p);
	if (err)
		return err;
	atomic_fetch_add(&p->resumes, 1);
	return 0;
}

static void poller_reset(struct vfpm_pci_dev *pdev)
{
	uint8_t *bar = vfpm_pci_bar_mem(pdev, 0);

	vfpm_pci_mem_lock(pdev);
	for (unsigned int reg = 0; reg <= VFPM_POLLER_REG_IRQ_ENABLE; reg += 4)
		reg_store(bar, reg, 0);
	reg_store(bar, VFPM_POLLER_REG_MAGIC, VFPM_POLLER_MAGIC);
	reg_store(bar, VFPM_POLLER_REG_RING_SIZE, VFPM_POLLER_RING_SIZE);
	vfpm_pci_mem_unlock(pdev);
}

/* Registered and active: start polling (the registration's idle then suspends it). */
static int poller_probe(struct vfpm_pci_dev *pdev)
{
	struct poller *p = vfpm_pci_model(pdev);

	p->pdev = pdev;
	poller_reset(pdev);
	return poller_start_polling(p);
}

/* Runtime PM is off: stop whichever thread runs, and give back a wake's reference. */
static void poller_remove(struct vfpm_pci_dev *pdev)
{
	struct poller *p = vfpm_pci_model(pdev);

	poller_stop_polling(p);
	poller_stop_watching(p);
	if (atomic_exchange(&p->wake_ref, false))
		vfpm_pm_put_noidle(vfpm_pci_pm(pdev));
}

static const struct vfpm_pci_model_ops poller_ops = {
	.probe = poller_probe,
	.remove = poller_remove,
	.reset = poller_reset,
	.runtime_suspend = poller_runtime_suspend,
	.runtime_resume = poller_runtime_resume,
};

/* ---- lifecycle ---- */

static int poller_listen(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 4) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int vfpm_poller_create(const struct vfpm_poller_opts *opts, struct vfpm_pci_dev **out)
{
	struct vfpm_pci_desc desc = {
		.vendor_id = 0x1b36, .device_id = 0x00f2,
		.subsystem_vendor_id = 0x1b36, .subsystem_id = 0x0002,
		.class_code = 0x020000, /* network controller */
		.interrupt_pin = 1,
		.bars = {
			[0] = { .type = VFPM_PCI_BAR_MEM32, .size = VFPM_POLLER_BAR0_SIZE,
				.mappable = true },
			[4] = { .type = VFPM_PCI_BAR_MEM64, .size = 4096 },
		},
		.pm_cap = true,
		.pme_d3hot = true,
		.msix_vectors = 2,
		.msix_bar = 4,
		.pcie_cap = true,
	};
	struct vfpm_pci_dev *pdev;
	struct poller *p;
	int err;

	if (!opts || !opts->backend_path || !out)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->peer_fd = -1;
	p->watch_stop_efd = -1;
	p->backend_path = strdup(opts->backend_path);
	p->listen_fd = p->backend_path ? poller_listen(opts->backend_path) : -ENOMEM;
	if (p->listen_fd < 0) {
		err = p->listen_fd;
		free(p->backend_path);
		free(p);
		return err;
	}
	err = vfpm_pci_dev_create(&desc, &poller_ops, p, &pdev);
	if (err) {
		close(p->listen_fd);
		unlink(p->backend_path);
		free(p->backend_path);
		free(p);
		return err;
	}
	*out = pdev;
	return 0;
}

void vfpm_poller_destroy(struct vfpm_pci_dev *pdev)
{
	struct poller *p;

	if (!pdev)
		return;
	p = vfpm_pci_model(pdev);
	vfpm_pci_dev_destroy(pdev);
	if (p->peer_fd >= 0)
		close(p->peer_fd);
	close(p->listen_fd);
	unlink(p->backend_path);
	free(p->backend_path);
	free(p);
}

void vfpm_poller_get_stats(struct vfpm_pci_dev *pdev, struct vfpm_poller_stats *stats)
{
	struct poller *p = vfpm_pci_model(pdev);

	stats->polls = atomic_load(&p->polls);
	stats->tx_bytes = atomic_load(&p->tx_bytes);
	stats->rx_bytes = atomic_load(&p->rx_bytes);
	stats->suspends = atomic_load(&p->suspends);
	stats->resumes = atomic_load(&p->resumes);
	stats->wakes = atomic_load(&p->wakes);
	stats->polling = atomic_load(&p->poll_running);
	stats->peer = atomic_load(&p->peer_connected);
}
