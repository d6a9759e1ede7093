// SPDX-License-Identifier: MIT
/*
 * Interrupts of one emulated PCI function: VFIO_DEVICE_GET_IRQ_INFO and
 * VFIO_DEVICE_SET_IRQS with Linux 6.1 vfio-pci semantics, and the model-side
 * INTx line and MSI/MSI-X/ERR/REQ signalling.  See irq.h.
 *
 * Where the kernel would leave a half-applied change behind on an error (it
 * drops the old eventfd before looking up the new one), every error here
 * leaves the state exactly as it was: all new eventfds are looked up first,
 * and only then is anything replaced.
 *
 * The INTx unmask eventfd (the kernel's virqfd) is watched by a thread that
 * takes irqs->lock.  Such a thread is therefore only ever joined with the lock
 * dropped: the locked code detaches it into a struct irq_teardown, and the
 * public entry point finishes the teardown after unlocking.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "irq.h"

#define IRQ_SET_MINSZ (offsetof(struct vfio_irq_set, count) + sizeof(uint32_t))
#define IRQ_INFO_MINSZ (offsetof(struct vfio_irq_info, count) + sizeof(uint32_t))

_Static_assert(IRQ_SET_MINSZ == 20, "vfio_irq_set header is 20 bytes");
_Static_assert(IRQ_INFO_MINSZ == 16, "vfio_irq_info is 16 bytes");

/* A detached unmask watcher, to be stopped and joined once the lock is dropped. */
struct irq_teardown {
	bool join;
	pthread_t thread;
	int unmask_fd;
	int stop_fd;
};

/* What the watcher thread owns; freed by the thread when it exits. */
struct unmask_watch {
	struct vfpm_pci_irqs *irqs;
	int unmask_fd;
	int stop_fd;
};

/* The arguments of one SET_IRQS after validation. */
struct irq_set_req {
	uint32_t flags;
	unsigned int index;
	unsigned int start;
	unsigned int count;
	const void *data;		/* count bools or s32 fds, NULL for DATA_NONE */
	const struct vfpm_fds *fds;
};

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static int32_t req_fd(const struct irq_set_req *req, unsigned int i)
{
	int32_t fd;

	memcpy(&fd, (const char *)req->data + (size_t)i * sizeof(fd), sizeof(fd));
	return fd;
}

static uint8_t req_bool(const struct irq_set_req *req, unsigned int i)
{
	return ((const uint8_t *)req->data)[i];
}

/* ---- INTx ---- */

static bool intx_enabled(const struct vfpm_pci_irqs *irqs)
{
	return irqs->type == VFIO_PCI_INTX_IRQ_INDEX;
}

/*
 * The level-triggered line reaches the user: an asserted, unmasked line with
 * a trigger is delivered and masks itself, as vfio-pci's INTx handler does.
 */
static void intx_deliver_locked(struct vfpm_pci_irqs *irqs)
{
	if (!intx_enabled(irqs) || !irqs->intx_asserted)
		return;
	if (irqs->intx_masked) {
		irqs->intx_pending = true;
		return;
	}
	if (irqs->intx_trigger < 0)
		return;
	irqs->intx_masked = true;
	irqs->intx_pending = false;
	vfpm_eventfd_signal(irqs->intx_trigger);
}

static bool intx_mask_locked(struct vfpm_pci_irqs *irqs)
{
	if (!intx_enabled(irqs) || irqs->intx_masked)
		return false;
	irqs->intx_masked = true;
	if (irqs->intx_asserted)
		irqs->intx_pending = true;
	return true;
}

static void intx_unmask_locked(struct vfpm_pci_irqs *irqs)
{
	if (!intx_enabled(irqs) || !irqs->intx_masked)
		return;
	irqs->intx_masked = false;
	irqs->intx_pending = false;
	intx_deliver_locked(irqs);
}

/* Take 1..n off the eventfd without ever blocking; false if there was nothing. */
static bool eventfd_consume(int fd)
{
	uint64_t value;
	struct iovec iov = { .iov_base = &value, .iov_len = sizeof(value) };
	ssize_t n;

	/*
	 * The file description is shared with the user's copy, so O_NONBLOCK
	 * cannot be set on it; RWF_NOWAIT makes just this read non-blocking.
	 */
	do {
		n = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EOPNOTSUPP || errno == EINVAL)) {
		/* Older kernels: poll() said readable, so this read returns at once. */
		do {
			n = read(fd, &value, sizeof(value));
		} while (n < 0 && errno == EINTR);
	}
	return n == (ssize_t)sizeof(value);
}

static void *unmask_watcher(void *opaque)
{
	struct unmask_watch *w = opaque;
	struct vfpm_pci_irqs *irqs = w->irqs;
	struct pollfd pfd[2] = {
		{ .fd = w->unmask_fd, .events = POLLIN },
		{ .fd = w->stop_fd, .events = POLLIN },
	};

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN)) {
			if (pfd[0].revents)
				break;	/* not an event we can consume: do not spin */
			continue;
		}
		if (!eventfd_consume(w->unmask_fd))
			continue;
		pthread_mutex_lock(&irqs->lock);
		/*
		 * Our fd stays open until we are joined, so its number cannot
		 * have been reused: a mismatch means we were detached.
		 */
		if (irqs->intx_unmask == w->unmask_fd)
			intx_unmask_locked(irqs);
		pthread_mutex_unlock(&irqs->lock);
	}
	free(w);
	return NULL;
}

/* Takes ownership of unmask_fd on success. */
static int unmask_watcher_start_locked(struct vfpm_pci_irqs *irqs, int unmask_fd)
{
	struct unmask_watch *w;
	sigset_t all, old;
	int stop_fd, err;

	stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (stop_fd < 0)
		return -errno;
	w = malloc(sizeof(*w));
	if (!w) {
		close(stop_fd);
		return -ENOMEM;
	}
	*w = (struct unmask_watch){ .irqs = irqs, .unmask_fd = unmask_fd, .stop_fd = stop_fd };
	/* The application's signals are not for this thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&irqs->unmask_thread, NULL, unmask_watcher, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		free(w);
		close(stop_fd);
		return -err;
	}
	irqs->intx_unmask = unmask_fd;
	irqs->unmask_stop = stop_fd;
	irqs->unmask_thread_running = true;
	return 0;
}

/* The kernel's vfio_virqfd_disable: the watcher goes, joined later by td. */
static void unmask_watcher_detach_locked(struct vfpm_pci_irqs *irqs, struct irq_teardown *td)
{
	if (!irqs->unmask_thread_running)
		return;
	vfpm_eventfd_signal(irqs->unmask_stop);
	*td = (struct irq_teardown){
		.join = true,
		.thread = irqs->unmask_thread,
		.unmask_fd = irqs->intx_unmask,
		.stop_fd = irqs->unmask_stop,
	};
	irqs->unmask_thread_running = false;
	irqs->intx_unmask = -1;
	irqs->unmask_stop = -1;
}

static void irq_teardown_finish(struct irq_teardown *td)
{
	if (!td->join)
		return;
	pthread_join(td->thread, NULL);
	close_fd(&td->unmask_fd);
	close_fd(&td->stop_fd);
	td->join = false;
}

static void intx_disable_locked(struct vfpm_pci_irqs *irqs, struct irq_teardown *td)
{
	unmask_watcher_detach_locked(irqs, td);
	close_fd(&irqs->intx_trigger);
	irqs->intx_masked = false;
	irqs->intx_pending = false;
	irqs->type = VFPM_PCI_IRQ_NONE;
}

/* Takes ownership of trigger (an eventfd, or -1 to remove the trigger only). */
static void intx_set_signal_locked(struct vfpm_pci_irqs *irqs, int trigger)
{
	close_fd(&irqs->intx_trigger);
	irqs->intx_trigger = trigger;
	/* A line that is already high fires as soon as it has somewhere to go. */
	intx_deliver_locked(irqs);
}

static int intx_set_mask(struct vfpm_pci_irqs *irqs, const struct irq_set_req *req)
{
	if (!intx_enabled(irqs) || req->start != 0 || req->count != 1)
		return -EINVAL;
	if (req->flags & VFIO_IRQ_SET_DATA_NONE) {
		intx_mask_locked(irqs);
	} else if (req->flags & VFIO_IRQ_SET_DATA_BOOL) {
		if (req_bool(req, 0))
			intx_mask_locked(irqs);
	} else if (req->flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		return -ENOTTY;	/* vfio-pci has no mask eventfd either */
	}
	return 0;
}

static int intx_set_unmask(struct vfpm_pci_irqs *irqs, const struct irq_set_req *req,
			   struct irq_teardown *td)
{
	int32_t fd;
	int efd, err;

	if (!intx_enabled(irqs) || req->start != 0 || req->count != 1)
		return -EINVAL;
	if (req->flags & VFIO_IRQ_SET_DATA_NONE) {
		intx_unmask_locked(irqs);
	} else if (req->flags & VFIO_IRQ_SET_DATA_BOOL) {
		if (req_bool(req, 0))
			intx_unmask_locked(irqs);
	} else if (req->flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		fd = req_fd(req, 0);
		if (fd < 0) {
			unmask_watcher_detach_locked(irqs, td);
			return 0;
		}
		/* As vfio_virqfd_enable: the fd is checked before the slot. */
		efd = vfpm_eventfd_get(req->fds, fd);
		if (efd < 0)
			return efd;
		if (irqs->unmask_thread_running) {
			close(efd);
			return -EBUSY;
		}
		err = unmask_watcher_start_locked(irqs, efd);
		if (err) {
			close(efd);
			return err;
		}
	}
	return 0;
}

static int intx_set_trigger(struct vfpm_pci_irqs *irqs, const struct irq_set_req *req,
			    struct irq_teardown *td)
{
	int32_t fd;
	int efd = -1;

	if (intx_enabled(irqs) && req->count == 0 && (req->flags & VFIO_IRQ_SET_DATA_NONE)) {
		intx_disable_locked(irqs, td);
		return 0;
	}
	if (!(intx_enabled(irqs) || irqs->type == VFPM_PCI_IRQ_NONE) || req->start != 0 ||
	    req->count != 1)
		return -EINVAL;

	if (req->flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		fd = req_fd(req, 0);
		if (fd >= 0) {
			efd = vfpm_eventfd_get(req->fds, fd);
			if (efd < 0)
				return efd;
		}
		if (!intx_enabled(irqs)) {
			irqs->type = VFIO_PCI_INTX_IRQ_INDEX;
			irqs->intx_masked = false;
			irqs->intx_pending = false;
		}
		/* Any negative fd drops the trigger but leaves INTx enabled. */
		intx_set_signal_locked(irqs, efd);
		return 0;
	}

	if (!intx_enabled(irqs))
		return -EINVAL;
	/*
	 * Loopback: 6.1's vfio_send_intx_eventfd only signals; it neither
	 * looks at nor changes the mask.
	 */
	if ((req->flags & VFIO_IRQ_SET_DATA_NONE) ||
	    ((req->flags & VFIO_IRQ_SET_DATA_BOOL) && req_bool(req, 0))) {
		if (irqs->intx_trigger >= 0)
			vfpm_eventfd_signal(irqs->intx_trigger);
	}
	return 0;
}

/* ---- MSI / MSI-X ---- */

static void msi_disable_locked(struct vfpm_pci_irqs *irqs)
{
	for (unsigned int i = 0; i < irqs->nvec; i++)
		close_fd(&irqs->vectors[i].trigger);
	free(irqs->vectors);
	irqs->vectors = NULL;
	irqs->nvec = 0;
	irqs->type = VFPM_PCI_IRQ_NONE;
}

/* Look up every fd of the request; on error nothing stays open. */
static int msi_get_eventfds(const struct irq_set_req *req, int *efds)
{
	for (unsigned int i = 0; i < req->count; i++) {
		int32_t fd = req_fd(req, i);

		int efd = fd < 0 ? -1 : vfpm_eventfd_get(req->fds, fd);

		if (fd >= 0 && efd < 0) {
			while (i--)
				close_fd(&efds[i]);
			return efd;
		}
		efds[i] = efd;
	}
	return 0;
}

static int msi_set_eventfds(struct vfpm_pci_irqs *irqs, const struct irq_set_req *req)
{
	bool enable = irqs->type != req->index;
	struct vfpm_pci_irq_vector *vectors = irqs->vectors;
	unsigned int nvec = irqs->nvec;
	int *efds;
	int err;

	if (enable) {
		nvec = req->start + req->count;
		/* pci_alloc_irq_vectors(1, 0) is -ERANGE; an empty block past it, -EINVAL. */
		if (req->count == 0)
			return nvec == 0 ? -ERANGE : -EINVAL;
	} else if (req->start >= nvec || req->start + req->count > nvec) {
		return -EINVAL;
	}
	if (req->count == 0)
		return 0;

	efds = calloc(req->count, sizeof(*efds));
	if (!efds)
		return -ENOMEM;
	err = msi_get_eventfds(req, efds);
	if (err) {
		free(efds);
		return err;
	}
	if (enable) {
		vectors = calloc(nvec, sizeof(*vectors));
		if (!vectors) {
			for (unsigned int i = 0; i < req->count; i++)
				close_fd(&efds[i]);
			free(efds);
			return -ENOMEM;
		}
		for (unsigned int i = 0; i < nvec; i++)
			vectors[i].trigger = -1;
		irqs->vectors = vectors;
		irqs->nvec = nvec;
		irqs->type = req->index;
	}
	for (unsigned int i = 0; i < req->count; i++) {
		close_fd(&vectors[req->start + i].trigger);
		vectors[req->start + i].trigger = efds[i];
	}
	free(efds);
	return 0;
}

static int msi_set_trigger(struct vfpm_pci_irqs *irqs, const struct irq_set_req *req)
{
	bool enabled = irqs->type == req->index;

	if (enabled && req->count == 0 && (req->flags & VFIO_IRQ_SET_DATA_NONE)) {
		msi_disable_locked(irqs);
		return 0;
	}
	if (!(enabled || irqs->type == VFPM_PCI_IRQ_NONE))
		return -EINVAL;
	if (req->flags & VFIO_IRQ_SET_DATA_EVENTFD)
		return msi_set_eventfds(irqs, req);

	/* Loopback of the vectors that have a trigger. */
	if (!enabled || req->start + req->count > irqs->nvec)
		return -EINVAL;
	for (unsigned int i = 0; i < req->count; i++) {
		int trigger = irqs->vectors[req->start + i].trigger;

		if (trigger < 0)
			continue;
		if ((req->flags & VFIO_IRQ_SET_DATA_NONE) || req_bool(req, i))
			vfpm_eventfd_signal(trigger);
	}
	return 0;
}

/* ---- ERR / REQ ---- */

/* vfio_pci_set_ctx_trigger_single, including its fall-through to -EINVAL. */
static int ctx_trigger_single(int *slot, const struct irq_set_req *req)
{
	if (req->start != 0 || req->count > 1)
		return -EINVAL;

	if (req->flags & VFIO_IRQ_SET_DATA_NONE) {
		if (*slot < 0)
			return -EINVAL;
		if (req->count)
			vfpm_eventfd_signal(*slot);
		else
			close_fd(slot);
		return 0;
	}
	if (req->flags & VFIO_IRQ_SET_DATA_BOOL) {
		if (!req->count)
			return -EINVAL;
		if (req_bool(req, 0) && *slot >= 0)
			vfpm_eventfd_signal(*slot);
		return 0;
	}
	if (req->flags & VFIO_IRQ_SET_DATA_EVENTFD) {
		int32_t fd;

		if (!req->count)
			return -EINVAL;
		fd = req_fd(req, 0);
		if (fd == -1) {
			close_fd(slot);
		} else if (fd >= 0) {
			int efd = vfpm_eventfd_get(req->fds, fd);

			if (efd < 0)
				return efd;
			close_fd(slot);
			*slot = efd;
		}
		return 0;
	}
	return -EINVAL;
}

/* ---- SET_IRQS ---- */

static int irqs_dispatch_locked(struct vfpm_pci_irqs *irqs, const struct irq_set_req *req,
				struct irq_teardown *td)
{
	uint32_t action = req->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;

	/* More than one action bit matches no case: -ENOTTY, as in the kernel. */
	switch (req->index) {
	case VFIO_PCI_INTX_IRQ_INDEX:
		switch (action) {
		case VFIO_IRQ_SET_ACTION_MASK:
			return intx_set_mask(irqs, req);
		case VFIO_IRQ_SET_ACTION_UNMASK:
			return intx_set_unmask(irqs, req, td);
		case VFIO_IRQ_SET_ACTION_TRIGGER:
			return intx_set_trigger(irqs, req, td);
		}
		break;
	case VFIO_PCI_MSI_IRQ_INDEX:
	case VFIO_PCI_MSIX_IRQ_INDEX:
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			return msi_set_trigger(irqs, req);
		break;
	case VFIO_PCI_ERR_IRQ_INDEX:
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER && irqs->counts.err)
			return ctx_trigger_single(&irqs->err_trigger, req);
		break;
	case VFIO_PCI_REQ_IRQ_INDEX:
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			return ctx_trigger_single(&irqs->req_trigger, req);
		break;
	}
	return -ENOTTY;
}

/* vfio_set_irqs_validate_and_prepare; *data_size is what follows the header. */
static int irqs_validate(const struct vfio_irq_set *hdr, unsigned int num_irqs,
			 size_t *data_size)
{
	size_t size;

	*data_size = 0;
	if (hdr->argsz < IRQ_SET_MINSZ || hdr->index >= VFIO_PCI_NUM_IRQS ||
	    hdr->count >= UINT32_MAX - hdr->start ||
	    (hdr->flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)))
		return -EINVAL;
	if (hdr->start >= num_irqs || hdr->start + hdr->count > num_irqs)
		return -EINVAL;

	switch (hdr->flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
	case VFIO_IRQ_SET_DATA_NONE:
		size = 0;
		break;
	case VFIO_IRQ_SET_DATA_BOOL:
		size = sizeof(uint8_t);
		break;
	case VFIO_IRQ_SET_DATA_EVENTFD:
		size = sizeof(int32_t);
		break;
	default:
		return -EINVAL;
	}
	if (size && hdr->argsz - IRQ_SET_MINSZ < (size_t)hdr->count * size)
		return -EINVAL;
	*data_size = (size_t)hdr->count * size;
	return 0;
}

int vfpm_pci_irqs_set(struct vfpm_pci_irqs *irqs, struct vfpm_ubuf *arg,
		      const struct vfpm_fds *fds)
{
	struct irq_teardown td = { .join = false, .unmask_fd = -1, .stop_fd = -1 };
	struct vfio_irq_set hdr;
	struct irq_set_req req;
	void *data = NULL;
	size_t data_size;
	int ret;

	ret = vfpm_ubuf_read(arg, 0, &hdr, IRQ_SET_MINSZ);
	if (ret)
		return ret;
	ret = irqs_validate(&hdr, vfpm_pci_irq_count(irqs, hdr.index), &data_size);
	if (ret)
		return ret;
	if (data_size) {
		data = malloc(data_size);
		if (!data)
			return -ENOMEM;
		ret = vfpm_ubuf_read(arg, IRQ_SET_MINSZ, data, data_size);
		if (ret) {
			free(data);
			return ret;
		}
	}
	req = (struct irq_set_req){
		.flags = hdr.flags,
		.index = hdr.index,
		.start = hdr.start,
		.count = hdr.count,
		.data = data,
		.fds = fds,
	};

	pthread_mutex_lock(&irqs->lock);
	ret = irqs_dispatch_locked(irqs, &req, &td);
	pthread_mutex_unlock(&irqs->lock);

	irq_teardown_finish(&td);
	free(data);
	return ret;
}

/* ---- GET_IRQ_INFO ---- */

int vfpm_pci_irqs_get_info(struct vfpm_pci_irqs *irqs, struct vfpm_ubuf *arg)
{
	struct vfio_irq_info info;
	int ret;

	ret = vfpm_ubuf_read(arg, 0, &info, IRQ_INFO_MINSZ);
	if (ret)
		return ret;
	if (info.argsz < IRQ_INFO_MINSZ || info.index >= VFIO_PCI_NUM_IRQS)
		return -EINVAL;
	/* vfio-pci hides the ERR index of a function that is not PCI Express. */
	if (info.index == VFIO_PCI_ERR_IRQ_INDEX && !irqs->counts.err)
		return -EINVAL;

	info.flags = VFIO_IRQ_INFO_EVENTFD;
	if (info.index == VFIO_PCI_INTX_IRQ_INDEX)
		info.flags |= VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
	else
		info.flags |= VFIO_IRQ_INFO_NORESIZE;
	info.count = vfpm_pci_irq_count(irqs, info.index);
	return vfpm_ubuf_write(arg, 0, &info, IRQ_INFO_MINSZ);
}

/* ---- lifecycle and queries ---- */

int vfpm_pci_irqs_init(struct vfpm_pci_irqs *irqs, const struct vfpm_pci_irq_counts *counts)
{
	int err;

	memset(irqs, 0, sizeof(*irqs));
	err = pthread_mutex_init(&irqs->lock, NULL);
	if (err)
		return -err;
	irqs->counts = *counts;
	irqs->type = VFPM_PCI_IRQ_NONE;
	irqs->intx_trigger = -1;
	irqs->intx_unmask = -1;
	irqs->err_trigger = -1;
	irqs->req_trigger = -1;
	irqs->unmask_stop = -1;
	return 0;
}

static void irqs_disable_all_locked(struct vfpm_pci_irqs *irqs, struct irq_teardown *td)
{
	/* The unmask watcher and the INTx trigger only exist while INTx is enabled. */
	if (intx_enabled(irqs))
		intx_disable_locked(irqs, td);
	else if (irqs->type != VFPM_PCI_IRQ_NONE)
		msi_disable_locked(irqs);
	close_fd(&irqs->err_trigger);
	close_fd(&irqs->req_trigger);
	irqs->virq_disabled = false;	/* a reset clears COMMAND */
}

void vfpm_pci_irqs_disable_all(struct vfpm_pci_irqs *irqs)
{
	struct irq_teardown td = { .join = false, .unmask_fd = -1, .stop_fd = -1 };

	pthread_mutex_lock(&irqs->lock);
	irqs_disable_all_locked(irqs, &td);
	pthread_mutex_unlock(&irqs->lock);
	irq_teardown_finish(&td);
}

void vfpm_pci_irqs_destroy(struct vfpm_pci_irqs *irqs)
{
	vfpm_pci_irqs_disable_all(irqs);
	pthread_mutex_destroy(&irqs->lock);
}

unsigned int vfpm_pci_irq_count(struct vfpm_pci_irqs *irqs, unsigned int index)
{
	switch (index) {
	case VFIO_PCI_INTX_IRQ_INDEX:
		return irqs->counts.intx;
	case VFIO_PCI_MSI_IRQ_INDEX:
		return irqs->counts.msi;
	case VFIO_PCI_MSIX_IRQ_INDEX:
		return irqs->counts.msix;
	case VFIO_PCI_ERR_IRQ_INDEX:
		return irqs->counts.err;
	case VFIO_PCI_REQ_IRQ_INDEX:
		return 1;
	default:
		return 0;
	}
}

unsigned int vfpm_pci_irq_type(struct vfpm_pci_irqs *irqs)
{
	unsigned int type;

	pthread_mutex_lock(&irqs->lock);
	type = irqs->type;
	pthread_mutex_unlock(&irqs->lock);
	return type;
}

bool vfpm_pci_irq_intx_mask(struct vfpm_pci_irqs *irqs)
{
	bool masked_now;

	pthread_mutex_lock(&irqs->lock);
	masked_now = intx_mask_locked(irqs);
	pthread_mutex_unlock(&irqs->lock);
	return masked_now;
}

void vfpm_pci_irq_intx_unmask(struct vfpm_pci_irqs *irqs)
{
	pthread_mutex_lock(&irqs->lock);
	intx_unmask_locked(irqs);
	pthread_mutex_unlock(&irqs->lock);
}

bool vfpm_pci_irq_intx_masked(struct vfpm_pci_irqs *irqs)
{
	bool masked;

	pthread_mutex_lock(&irqs->lock);
	masked = irqs->intx_masked;
	pthread_mutex_unlock(&irqs->lock);
	return masked;
}

/* ---- the model's side ---- */

void vfpm_pci_irq_intx_assert(struct vfpm_pci_irqs *irqs)
{
	pthread_mutex_lock(&irqs->lock);
	irqs->intx_asserted = true;
	intx_deliver_locked(irqs);
	pthread_mutex_unlock(&irqs->lock);
}

void vfpm_pci_irq_intx_deassert(struct vfpm_pci_irqs *irqs)
{
	pthread_mutex_lock(&irqs->lock);
	irqs->intx_asserted = false;
	irqs->intx_pending = false;
	pthread_mutex_unlock(&irqs->lock);
}

void vfpm_pci_irq_intx_set_virq_disabled(struct vfpm_pci_irqs *irqs, bool disabled)
{
	pthread_mutex_lock(&irqs->lock);
	if (disabled != irqs->virq_disabled) {
		irqs->virq_disabled = disabled;
		if (disabled)
			intx_mask_locked(irqs);
		else
			intx_unmask_locked(irqs);
	}
	pthread_mutex_unlock(&irqs->lock);
}

int vfpm_pci_irq_msi_signal(struct vfpm_pci_irqs *irqs, unsigned int index, unsigned int vector)
{
	int ret = -ENODEV;

	if (index != VFIO_PCI_MSI_IRQ_INDEX && index != VFIO_PCI_MSIX_IRQ_INDEX)
		return -EINVAL;
	if (vector >= vfpm_pci_irq_count(irqs, index))
		return -EINVAL;
	pthread_mutex_lock(&irqs->lock);
	if (irqs->type == index && vector < irqs->nvec && irqs->vectors[vector].trigger >= 0)
		ret = vfpm_eventfd_signal(irqs->vectors[vector].trigger);
	pthread_mutex_unlock(&irqs->lock);
	return ret;
}

static int signal_slot(struct vfpm_pci_irqs *irqs, const int *slot)
{
	int ret = -ENODEV;

	pthread_mutex_lock(&irqs->lock);
	if (*slot >= 0)
		ret = vfpm_eventfd_signal(*slot);
	pthread_mutex_unlock(&irqs->lock);
	return ret;
}

int vfpm_pci_irq_err_signal(struct vfpm_pci_irqs *irqs)
{
	return signal_slot(irqs, &irqs->err_trigger);
}

int vfpm_pci_irq_req_signal(struct vfpm_pci_irqs *irqs)
{
	return signal_slot(irqs, &irqs->req_trigger);
}
