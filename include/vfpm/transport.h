/* SPDX-License-Identifier: MIT */
/*
 * vfpm transport (layer 5): a vfpm device served over vfio-user (QEMU's
 * docs/interop/vfio-user.rst) on an AF_UNIX stream socket.
 *
 * One listening socket per device.  Every accepted connection is one open
 * instance of the device (vfpm_device_open).  Sockets are non-blocking and
 * one epoll loop serves every listening socket and connection: the
 * process's loop, on a pool of two threads (vfpm_server_start), or a loop
 * the caller drives (vfpm_server_attach, below).  No device and no
 * connection has a thread of its own; each connection's requests are
 * served one at a time, in order.  A request that blocks (a slow trapped
 * access, a resume) holds up only its own connection: when every pool
 * thread is stuck in a handler for 2 ms a watchdog adds one (up to 256 in
 * all).  A client that stops reading its replies stops being read, and
 * stalls nobody else.
 * When a client goes away its DMA mappings are unmapped and its instance is
 * closed, which is the kernel's close of a device fd: low power dropped
 * without signalling on the last close, interrupt eventfds released.
 *
 * The low power features (VFIO_DEVICE_FEATURE 3, 4, 5) travel in
 * VFIO_USER_DEVICE_FEATURE; the wakeup eventfd of feature 4 travels by
 * SCM_RIGHTS and its wakeup_eventfd field is the eventfd's index among the
 * message's fds.  docs/vfio-user-power.md describes the extension, the
 * errors and the wire decisions.
 *
 * Functions return 0 or a negative errno.
 */
#ifndef VFPM_TRANSPORT_H
#define VFPM_TRANSPORT_H

#include <vfpm/export.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <vfpm/device.h>

#ifdef __cplusplus
extern "C" {
#endif

struct vfpm_server;
/* One client connection (one open instance of the device). */
struct vfpm_server_conn;

struct vfpm_server_opts {
	/* Permissions of the socket file; 0 means 0600.  Set whatever the umask. */
	mode_t socket_mode;
	/*
	 * Capabilities the server states in VERSION, and holds clients to; 0
	 * means the default.  A message with more fds than max_msg_fds is
	 * refused with EINVAL, and the fds beyond it are never installed in
	 * the process (they are dropped as they arrive).
	 */
	uint32_t max_msg_fds;		/* default 16 (at most 253) */
	uint32_t max_data_xfer_size;	/* default 1 MiB */
	uint32_t max_dma_maps;		/* per connection; default 16384 */
	/*
	 * Limits on what one client can hold (0: the default).  A client over
	 * one is disconnected, or its connection refused, and the log says
	 * who and why (<vfpm/log.h>).
	 *  max_connections: live connections to this device (default 64); one
	 *    more is accepted and closed at once.  The process has its own
	 *    budget over all devices (vfpm_transport_set_limits).
	 *  version_timeout_ms: a client must have completed VERSION this long
	 *    after it connected (default 5000).
	 *  msg_timeout_ms: once a message's first byte is in, the rest of it
	 *    must follow within this (default 10000).  An idle connection
	 *    between two messages is never timed out.
	 */
	unsigned int max_connections;
	unsigned int version_timeout_ms;
	unsigned int msg_timeout_ms;
	/*
	 * Who may connect, beyond the socket file's permissions: when
	 * n_allowed_uids is not 0, only a peer whose uid (SO_PEERCRED, as it
	 * was when it connected) is one of allowed_uids[0 .. n_allowed_uids)
	 * is served; root is not special.  Anyone else is closed at once,
	 * before a byte is read and without opening the device.  0: anyone
	 * who can open the socket.  The server keeps its own copy.
	 */
	const uid_t *allowed_uids;
	unsigned int n_allowed_uids;
	/*
	 * Called on the thread serving the connection once its instance is
	 * open, and when it goes away (before its DMA mappings are unmapped
	 * and its instance closed).  After on_disconnect returns the conn
	 * must not be used again.  A thread serves many connections in turn:
	 * a model finds the connection of a request from its instance
	 * (vfpm_server_conn_instance), never from the thread.  Either may be
	 * NULL.
	 */
	void (*on_connect)(struct vfpm_server_conn *conn, void *opaque);
	void (*on_disconnect)(struct vfpm_server_conn *conn, void *opaque);
	void *opaque;
};

/*
 * Budgets of the whole process, shared by every server in it (the fd table
 * and vm.max_map_count are the process's, whichever device uses them up).
 *  max_connections: live connections over all servers.  Default: what the
 *    fd limit (RLIMIT_NOFILE, as it is when first needed) leaves room for,
 *    (limit - 64) / 4.  A connection over it is accepted and closed at once.
 *    When the fd table is full all the same, a reserve fd is given up for a
 *    moment to accept and close the newest connection, so that every
 *    device's listening socket keeps being served.
 *  max_dma_maps: DMA windows over all connections.  Default: half of
 *    vm.max_map_count, so that thread stacks and libraries still find room.
 *    A DMA_MAP over it fails with ENOSPC.
 * 0 in a field selects its default.  New values apply to what comes next.
 * The process keeps one fd for the reserve (/dev/null) from the first call
 * that needs the budgets on: vfpm_transport_get_limits or _set_limits, or
 * the first server created.
 */
struct vfpm_transport_limits {
	unsigned int max_connections;
	unsigned int max_dma_maps;
};

/* The budgets in force. */
VFPM_API void vfpm_transport_get_limits(struct vfpm_transport_limits *lim);
/* Set the budgets; -EINVAL for NULL. */
VFPM_API int vfpm_transport_set_limits(const struct vfpm_transport_limits *lim);

/*
 * Create the listening socket at socket_path for dev (opts may be NULL).  A
 * stale socket file nobody listens on is replaced; -EADDRINUSE when a server
 * listens there or the path is some other kind of file.  Nothing is accepted
 * until vfpm_server_run / vfpm_server_start.
 */
VFPM_API int vfpm_server_create(struct vfpm_device *dev, const char *socket_path,
		       const struct vfpm_server_opts *opts, struct vfpm_server **out);
/*
 * The same around a listening AF_UNIX stream socket the caller already has
 * (systemd socket activation).  The server owns it from then on (it makes it
 * non-blocking) and closes it; it does not know or remove any socket file.  -EINVAL when the fd is not
 * a listening stream socket.  listen_fd -1 makes a server without one, which
 * serves only the connections given to vfpm_server_serve_fd (run and start
 * then return -EINVAL).
 */
VFPM_API int vfpm_server_create_fd(struct vfpm_device *dev, int listen_fd,
			  const struct vfpm_server_opts *opts, struct vfpm_server **out);
/*
 * Serve connections until vfpm_server_stop, as vfpm_server_start does, and
 * return only then (the calling thread just waits).  0 once stopped; -EBUSY
 * when the server is already run or started, -EINVAL without a listening
 * socket.
 */
VFPM_API int vfpm_server_run(struct vfpm_server *srv);
/*
 * Serve connections in the background until vfpm_server_stop, on the
 * process's event loop: one epoll set and a pool of two threads and a
 * watchdog for every started server, which start with the first and end
 * with the last one stopped (four fds meanwhile).
 * -EBUSY when the server is already started, run or stopped, -EINVAL
 * without a listening socket.
 */
VFPM_API int vfpm_server_start(struct vfpm_server *srv);
/*
 * Serve one already-connected AF_UNIX stream socket (an inetd-style
 * connection, one end of a socketpair) until the client goes away or
 * vfpm_server_stop, exactly as an accepted connection is served (in the
 * server's loop, or the process's when it has none): one open instance,
 * the same limits and allowed_uids.  The call returns when it is torn down.  The
 * server owns sock from the call on and closes it, whatever the outcome.
 * Any number of threads may do this at once, with or without
 * vfpm_server_run.  0 once the connection is torn down; -EACCES when the
 * peer's uid is not allowed, -EUSERS when a connection limit is reached,
 * -ESHUTDOWN when the server is stopping, -EINVAL / -ENOTSOCK when sock
 * is not a stream socket, -ENOMEM (nothing is served then).
 * Not from a server or device callback.
 */
VFPM_API int vfpm_server_serve_fd(struct vfpm_server *srv, int sock);
/*
 * Stop accepting, disconnect every client (their sockets are shut down) and
 * wait until every connection is torn down, vfpm_server_run has returned
 * (on whichever thread runs it) and so has every vfpm_server_serve_fd.  A
 * request in flight completes first.  Not from a server callback or a device
 * callback running a request.
 */
VFPM_API void vfpm_server_stop(struct vfpm_server *srv);
/*
 * A loop the caller drives, for reactors (SPDK-style): servers attached to
 * it are served only when the caller asks, on the caller's thread, and the
 * library starts no thread for them.  vfpm_loop_fd is an epoll fd: when it
 * is readable (the caller polls it, or adds it to its own epoll set),
 * vfpm_loop_process handles everything that is ready (accepts, requests,
 * replies, completions of deferred requests, timeouts) without waiting and
 * returns how many events it handled (0 or more) or -errno.  Device models
 * run inside it, on the caller's thread.  A model should not block there:
 * a trapped access it cannot finish at once is deferred
 * (vfpm_request_defer, <vfpm/device.h>) and completed from any thread; the
 * completion makes the fd readable.  DMA over the main socket (QEMU's
 * clients) from inside vfpm_loop_process is -EDEADLK, as from a request.
 *
 * The runtime PM core's timers and asynchronous work run in the same loop
 * when vfpm_pm_worker_set_external(true) was called before the loop was
 * created (<vfpm/pm.h>); then no thread of the library's exists at all.
 * Deadlines (version_timeout_ms, msg_timeout_ms) are checked every 20 ms
 * while a connection has one, and the fd is not readable at all while
 * nothing happens.
 */
struct vfpm_loop;

VFPM_API int vfpm_loop_create(struct vfpm_loop **out);
/* -EBUSY while a server is attached (vfpm_server_stop or _destroy it first). */
VFPM_API int vfpm_loop_destroy(struct vfpm_loop *loop);
VFPM_API int vfpm_loop_fd(const struct vfpm_loop *loop);
VFPM_API int vfpm_loop_process(struct vfpm_loop *loop);
/*
 * Listen in loop instead of the process's threaded loop; otherwise as
 * vfpm_server_start (-EBUSY, -EINVAL alike).  vfpm_server_stop then
 * drives loop itself until every connection is torn down, so it may be
 * called from the caller's loop thread (not from inside a callback).  A
 * request the model deferred completes first: a model that completes
 * from the caller's own loop (a timerfd of the caller's, say) must do so
 * before the caller stops the server, since stop runs only the vfpm
 * loop's own work.
 */
VFPM_API int vfpm_server_attach(struct vfpm_server *srv, struct vfpm_loop *loop);

/* Stop if needed, remove the socket file and free.  The device is not touched. */
VFPM_API void vfpm_server_destroy(struct vfpm_server *srv);

/* Live connections (accepted and not yet torn down). */
VFPM_API unsigned int vfpm_server_connection_count(struct vfpm_server *srv);
/*
 * Wait until exactly count connections are live (e.g. 0 after clients left:
 * their instances are then closed), at most timeout_ms (negative: no limit).
 * 0 or -ETIMEDOUT.
 */
VFPM_API
int vfpm_server_wait_connections(struct vfpm_server *srv, unsigned int count, int timeout_ms);

/* The connection's device instance, and the user pointer it carries. */
VFPM_API struct vfpm_instance *vfpm_server_conn_instance(struct vfpm_server_conn *conn);
VFPM_API void vfpm_server_conn_set_priv(struct vfpm_server_conn *conn, void *priv);
VFPM_API void *vfpm_server_conn_priv(struct vfpm_server_conn *conn);

/*
 * DMA for device models: copy len bytes from / to the client's memory at DMA
 * address addr (models should use vfpm_pci_dma_read/write, which need no
 * connection).  The range must lie in windows the client made with
 * VFIO_USER_DMA_MAP (it may span adjacent ones) that allow the access
 * (readable for dma_read, writeable for dma_write): -EFAULT when it does
 * not, -EACCES when a window forbids it; this is checked before a byte
 * moves.  Windows the client backed with an fd are accessed through their
 * mmap (guarded: when the client has truncated the file under the window,
 * the access fails with -EFAULT, as does every later one to that window,
 * and the log says so; the process is never hurt).  The others are reached
 * with VFIO_USER_DMA_READ / DMA_WRITE messages: on the twin socket when the
 * client negotiated one, else on the main socket (QEMU), whose replies the
 * connection's handler hands over.  Over the main socket a DMA from inside
 * one of that connection's requests, or from inside vfpm_loop_process, is
 * -EDEADLK: the reply could not be read, and QEMU answers only once our
 * reply has come; run such DMA on a thread of the model's (the memory
 * device's engine does).  A client that does not answer within msg_timeout_ms gives
 * -ETIMEDOUT; a client error or a lost socket is returned as is.  Safe
 * from any thread until on_disconnect; an unmap waits for the accesses in
 * progress.
 */
VFPM_API
int vfpm_server_dma_read(struct vfpm_server_conn *conn, uint64_t addr, void *buf, size_t len);
VFPM_API int vfpm_server_dma_write(struct vfpm_server_conn *conn, uint64_t addr, const void *buf,
			  size_t len);

#ifdef __cplusplus
}
#endif

#endif /* VFPM_TRANSPORT_H */
