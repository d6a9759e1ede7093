// SPDX-License-Identifier: MIT
/*
 * The process's acceptor: one thread and one epoll set accept on the
 * listening socket of every server started with vfpm_server_start, so that N
 * idle devices cost one thread, not N.  A server whose loop its caller runs
 * (vfpm_server_run) is not in it.
 *
 * The thread exists while at least one server is attached: the first attach
 * starts it, the last detach joins it and closes its two fds, so a process
 * that serves nothing holds nothing for it.
 *
 * What it does for a server is what vfpm_server_run does: accept one
 * connection per readiness report (srv_accept_one hands it to its own
 * thread), pause all accepting when the process is out of fds or memory, and
 * join the threads of connections that have finished (srv_reap).
 *
 * Detach synchronises with the thread through acc.lock, which the thread
 * holds while it handles one batch of epoll events: once detach has the lock
 * and has taken the socket out of the set, the thread is not touching the
 * server and never will again.  An event for it may still be in a batch
 * fetched before the removal; the thread drops every batch during which some
 * server left (the detach count moved) and asks epoll again, which, being
 * level-triggered, reports the remaining servers' sockets once more.
 */
#include "server_internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* How long accepting pauses when the process is out of fds or memory. */
#define ACCEPTOR_RETRY_MS 100
#define ACCEPTOR_BATCH 64
/* It accepts and starts threads; it runs no device code. */
#define ACCEPTOR_STACK (256u * 1024u)

static struct {
	/*
	 * Serialises attach and detach, so that the thread's start (first
	 * attach) and its end (last detach) never overlap.  Protects epfd,
	 * wake_fd, thread, running and servers, which the thread itself only
	 * reads while it runs.  Taken before lock, and never with a server's
	 * lock held (the thread takes servers' locks under lock).
	 */
	pthread_mutex_t life_lock;
	int epfd;
	int wake_fd;			/* eventfd: a connection finished, or quit */
	pthread_t thread;
	bool running;
	unsigned int servers;		/* attached */

	/* Held by the thread while it handles a batch.  Protects quit and detaches. */
	pthread_mutex_t lock;
	bool quit;
	unsigned long detaches;		/* a change voids the batch in flight */

	/*
	 * Servers with finished connections to join, linked through
	 * srv->acc_reap_next.  reap_lock protects the list and every server's
	 * acc_attached, acc_reap_queued and acc_reap_next.  Taken after lock,
	 * and alone by connection threads (never with srv->lock held).
	 */
	pthread_mutex_t reap_lock;
	struct vfpm_server *reap_head;
} acc = {
	.life_lock = PTHREAD_MUTEX_INITIALIZER,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.reap_lock = PTHREAD_MUTEX_INITIALIZER,
	.epfd = -1,
	.wake_fd = -1,
};

/* Join the finished connections of the servers that reported some (acc.lock held). */
static void acceptor_reap_queued(void)
{
	for (;;) {
		struct vfpm_server *srv;

		/* One at a time: once off the list, a server can be queued again at once. */
		pthread_mutex_lock(&acc.reap_lock);
		srv = acc.reap_head;
		if (srv) {
			acc.reap_head = srv->acc_reap_next;
			srv->acc_reap_queued = false;
		}
		pthread_mutex_unlock(&acc.reap_lock);
		if (!srv)
			return;
		/*
		 * Still attached: a detach takes a server off the list under
		 * acc.lock, which we hold, and it cannot be freed before that.
		 */
		srv_reap(srv, false);
	}
}

static void *acceptor_thread(void *arg)
{
	struct epoll_event ev[ACCEPTOR_BATCH];
	bool paused = false;

	pthread_mutex_lock(&acc.lock);
	while (!acc.quit) {
		unsigned long detaches = acc.detaches;
		eventfd_t v;
		int n;

		pthread_mutex_unlock(&acc.lock);
		if (paused) {
			/* Out of fds or memory: wait for a connection to end, or a while. */
			struct pollfd pfd = { .fd = acc.wake_fd, .events = POLLIN };

			n = poll(&pfd, 1, ACCEPTOR_RETRY_MS);
			n = n < 0 ? n : 0;
		} else {
			n = epoll_wait(acc.epfd, ev, ACCEPTOR_BATCH, -1);
		}
		pthread_mutex_lock(&acc.lock);
		paused = false;
		eventfd_read(acc.wake_fd, &v);	/* non-blocking: clears a wake-up if any */
		if (acc.quit)
			break;
		acceptor_reap_queued();
		if (n <= 0 || acc.detaches != detaches)
			continue;
		for (int i = 0; i < n && !paused; i++) {
			if (ev[i].data.ptr)
				paused = !srv_accept_one(ev[i].data.ptr);
		}
	}
	pthread_mutex_unlock(&acc.lock);
	return arg;
}

/* Start the thread and its fds (life_lock held). */
static int acceptor_start(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	pthread_attr_t attr;
	int err;

	acc.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (acc.epfd < 0)
		return -errno;
	acc.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (acc.wake_fd < 0 || epoll_ctl(acc.epfd, EPOLL_CTL_ADD, acc.wake_fd, &ev) < 0) {
		err = -errno;
		goto fail;
	}
	acc.quit = false;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, ACCEPTOR_STACK);
	err = -pthread_create(&acc.thread, &attr, acceptor_thread, NULL);
	pthread_attr_destroy(&attr);
	if (err)
		goto fail;
	pthread_setname_np(acc.thread, "vfpm-accept");
	acc.running = true;
	return 0;
fail:
	if (acc.wake_fd >= 0)
		close(acc.wake_fd);
	close(acc.epfd);
	acc.wake_fd = acc.epfd = -1;
	return err;
}

/* End the thread and close its fds (life_lock held, no server attached). */
static void acceptor_end(void)
{
	pthread_mutex_lock(&acc.lock);
	acc.quit = true;
	pthread_mutex_unlock(&acc.lock);
	eventfd_write(acc.wake_fd, 1);
	pthread_join(acc.thread, NULL);
	close(acc.wake_fd);
	close(acc.epfd);
	acc.wake_fd = acc.epfd = -1;
	acc.running = false;
}

int srv_acceptor_attach(struct vfpm_server *srv)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = srv };
	int err = 0;

	pthread_mutex_lock(&acc.life_lock);
	if (!acc.running)
		err = acceptor_start();
	if (!err) {
		/* Before the socket is watched: its connections' ends must be heard. */
		pthread_mutex_lock(&acc.reap_lock);
		srv->acc_attached = true;
		pthread_mutex_unlock(&acc.reap_lock);
		if (epoll_ctl(acc.epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev) < 0) {
			err = -errno;
			pthread_mutex_lock(&acc.reap_lock);
			srv->acc_attached = false;
			pthread_mutex_unlock(&acc.reap_lock);
		} else {
			acc.servers++;
		}
	}
	if (err && acc.running && !acc.servers)
		acceptor_end();
	pthread_mutex_unlock(&acc.life_lock);
	return err;
}

void srv_acceptor_detach(struct vfpm_server *srv)
{
	pthread_mutex_lock(&acc.life_lock);
	/* The thread is between two batches, and drops the one it fetches next. */
	pthread_mutex_lock(&acc.lock);
	epoll_ctl(acc.epfd, EPOLL_CTL_DEL, srv->listen_fd, NULL);
	acc.detaches++;
	pthread_mutex_lock(&acc.reap_lock);
	srv->acc_attached = false;
	if (srv->acc_reap_queued) {
		struct vfpm_server **pp = &acc.reap_head;

		while (*pp != srv)
			pp = &(*pp)->acc_reap_next;
		*pp = srv->acc_reap_next;
		srv->acc_reap_queued = false;
	}
	pthread_mutex_unlock(&acc.reap_lock);
	pthread_mutex_unlock(&acc.lock);
	if (--acc.servers == 0)
		acceptor_end();
	pthread_mutex_unlock(&acc.life_lock);
}

void srv_acceptor_conn_finished(struct vfpm_server *srv)
{
	pthread_mutex_lock(&acc.reap_lock);
	if (srv->acc_attached && !srv->acc_reap_queued) {
		srv->acc_reap_queued = true;
		srv->acc_reap_next = acc.reap_head;
		acc.reap_head = srv;
		/* Under reap_lock: the fd outlives every attached server. */
		eventfd_write(acc.wake_fd, 1);
	}
	pthread_mutex_unlock(&acc.reap_lock);
}
