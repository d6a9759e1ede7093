/* SPDX-License-Identifier: MIT */
/*
 * Server internals shared by server.c (lifecycle, connections, VERSION),
 * server_cmds.c (device commands) and server_dma.c (DMA mappings).
 */
#ifndef VFPM_TRANSPORT_SERVER_INTERNAL_H
#define VFPM_TRANSPORT_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <vfpm/device.h>
#include <vfpm/transport.h>

#include "base.h"
#include "loop.h"
#include "negotiate.h"
#include "tran_sock.h"
#include "wire.h"

#define SRV_DEF_MAX_MSG_FDS 16u
/* Defaults of the per-device limits (struct vfpm_server_opts). */
/* DMA page sizes the server accepts: every power of two from 4 KiB. */
#define SRV_PGSIZES (~(uint64_t)0xfff)
#define SRV_DEF_MAX_DMA_MAPS 16384u
#define SRV_DEF_MAX_CONNECTIONS 64u
#define SRV_DEF_VERSION_TIMEOUT_MS 5000u
#define SRV_DEF_MSG_TIMEOUT_MS 10000u

/*
 * The mmap of a window's fd (server_dma_map.c), shared by the window's
 * table entry and the model's holds on it (vfpm_pci_dma_map): the table
 * holds one reference and each hold one.  The last one unmaps it, removes
 * its guard and gives its place back to the process's DMA window budget,
 * so a window a model holds still counts after the client unmapped it.
 */
struct dma_mapping {
	atomic_uint refs;
	void *addr;		/* immutable */
	size_t size;		/* immutable */
	/* addr is guarded: the client can shrink the file under it (base.h). */
	struct vfpm_memguard *guard;	/* immutable */
};

/* One DMA_MAP window. */
struct dma_region {
	uint64_t addr;
	uint64_t size;
	uint64_t offset;	/* in the client's fd */
	uint32_t flags;		/* VFIO_USER_DMA_F_* */
	struct dma_mapping *mapping;	/* the table's reference; NULL when no fd was given */
	atomic_bool loss_logged;	/* a fault in it was reported */
};

struct dma_table {
	/*
	 * Protects regions and count.  Model copies (vfpm_server_dma_*,
	 * vfpm_pci_dma_read/write) hold it for reading across the copy, so an
	 * unmap (write side) waits for copies in progress before it returns,
	 * as the specification asks.  Holds (vfpm_pci_dma_map) take a
	 * reference on the window's mapping instead and are not waited for:
	 * a client must not be able to stall on a model, nor a model on it.
	 */
	pthread_rwlock_t lock;
	struct dma_region *regions;	/* sorted by addr, never overlapping */
	unsigned int count;
	unsigned int cap;
	uint32_t max;			/* immutable: the server's max_dma_maps */
	uint64_t min_pgsize;		/* set once by VERSION, before any map */
};

/* A reply payload: up to two pieces and the fds that go with it. */
struct srv_reply {
	struct iovec iov[2];
	unsigned int iovcnt;
	void *alloc;			/* freed after sending */
	struct vfpm_fds_out fds;	/* closed after sending */
};

/* A reply that the socket could not take whole yet (conn->send_lock). */
struct out_chunk {
	struct out_chunk *next;
	size_t len, off;		/* bytes at data, and how many are sent */
	unsigned int nfds;		/* fds to send with the first byte (ours: dups) */
	int *fds;
	unsigned char *data;
};

/* Why the tick ended a connection (conn->expired). */
enum conn_expiry {
	CONN_EXP_NONE,
	CONN_EXP_VERSION,		/* VERSION not done within version_timeout_ms */
	CONN_EXP_MSG,			/* a begun message not finished within msg_timeout_ms */
	CONN_EXP_OUT,			/* replies not read within msg_timeout_ms */
};

/* A region access the model completes later (vfpm_request_defer). */
struct conn_pending {
	bool active;			/* handler: a request is out with the model */
	struct vfpm_msg m;		/* its message (a write's data stays here) */
	struct srv_reply r;		/* its reply */
	/* lock protects done and result (the completing thread writes them). */
	pthread_mutex_t lock;
	bool done;
	ssize_t result;
};

struct vfpm_server_conn {
	struct vfpm_server *srv;	/* immutable */
	struct loop_src src;		/* in srv->loop; its handler serves the connection */
	struct vfpm_instance *inst;	/* set by the handler before on_connect */
	void *priv;			/* the model's; set and read by the model */

	/* Immutable once accepted: who the peer is, for the log. */
	pid_t peer_pid;
	uid_t peer_uid;
	char who[160];			/* "SERVER: client pid P uid U" */
	int64_t accepted_ms;		/* vfpm_sock_now_ms() at accept */

	/* The handler's (one thread at a time). */
	bool negotiated;
	bool close_after_reply;
	bool readable;			/* the socket may hold bytes not read yet */
	bool peer_hup;			/* epoll said the client hung up */
	bool hup_read;			/* this run has read on after a short read for it */
	bool first_run;			/* its first handler run serves one message */
	bool ending;			/* over, waiting for a pending request to come back */
	int end_err;			/* what ended it */
	uint32_t bad_msg_size;		/* the msg_size that ended the connection */
	struct vfpm_caps peer;		/* the client's capabilities */
	struct dma_table dma;
	struct vfpm_sock_rx rx;		/* what the client sent and was not served yet */
	/* Commands that came while a request was pending, oldest first (malloc'd while any). */
	struct vfpm_msg *held;
	unsigned int nheld;
	size_t held_bytes;
	struct conn_pending pend;
	struct vfpm_async async;	/* immutable: srv_conn_async_done, the conn */

	/* Deadlines the tick checks (ms, 0: none) and what it found. */
	_Atomic int64_t dl_version;	/* until VERSION is done */
	_Atomic int64_t dl_msg;		/* a begun message's rest */
	_Atomic int64_t dl_out;		/* queued output */
	atomic_int expired;		/* enum conn_expiry */

	/*
	 * The twin socket of server-to-client DMA messages (-1: none).
	 * Written by the handler under srv->lock (vfpm_server_stop shuts it
	 * down): at VERSION, before any DMA_MAP, so DMA callers, who read it
	 * without srv->lock, see it through the table lock; and at teardown,
	 * after on_disconnect, when there are no DMA callers left.
	 */
	int dma_sock;
	/*
	 * Server-to-client DMA messages on the main socket (no twin socket:
	 * QEMU).  One exchange at a time; the handler, the socket's only
	 * reader, hands the reply over.  lock protects the rest.
	 */
	struct {
		pthread_mutex_t lock;
		pthread_cond_t cond;
		bool busy;		/* a request is out */
		bool closed;		/* the connection is ending: no more exchanges */
		bool have_reply;
		uint16_t msg_id, command, next_id;
		struct vfpm_msg *reply;	/* malloc'd, set with have_reply */
	} main_dma;
	/*
	 * Serialises sends on sock (replies and main-socket DMA requests) and
	 * protects the output queue: what the non-blocking socket did not take
	 * waits there, in order, until the client reads (EPOLLOUT).
	 */
	pthread_mutex_t send_lock;
	struct out_chunk *outq_head, *outq_tail;
	bool out_armed;			/* EPOLLOUT is in the socket's events */
	bool send_closed;		/* no more sends: the connection is going */
	/* The thread in the handler (0: none), for main-socket DMA's EDEADLK. */
	atomic_ulong serving_tid;

	/* One DMA message in flight on dma_sock: protects dma_msg_id and the exchange. */
	pthread_mutex_t dma_sock_lock;
	uint16_t dma_msg_id;
	bool dma_sock_broken;		/* dma_sock_lock: an exchange failed, it is shut down */

	/* vfpm_server_serve_fd's: set under srv->lock when the connection is gone. */
	bool *gone;

	/* Protected by srv->lock (and written only by the handler). */
	int sock;			/* -1 once closed */
	struct vfpm_server_conn *next;
};

struct vfpm_server {
	struct vfpm_device *dev;	/* immutable */
	char *path;			/* immutable */
	int listen_fd;			/* immutable; non-blocking */
	struct vfpm_server_opts opts;	/* immutable; allowed_uids points to our own copy,
					   and every limit has its value (no 0) */
	char name[112];			/* immutable: the socket path, for the log */
	struct vfpm_caps caps;		/* immutable: what the server states */
	size_t max_msg_size;		/* immutable */

	/*
	 * The loop its connections (and its listening socket, once started)
	 * are in, while loop_users > 0: start, run, attach and each
	 * serve_fd call are users.  loop_lock protects the four; it is taken
	 * before lock, never in a handler.
	 */
	pthread_mutex_t loop_lock;
	struct vfpm_loop *loop;
	bool loop_global;		/* the process's loop: a reference of ours */
	unsigned int loop_users;
	struct loop_node node;		/* in the loop's list, for the tick */
	struct loop_src listen_src;	/* accepting, once started */

	/* Protects everything below; cond signals changes of live, running and conns. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct vfpm_server_conn *conns;
	unsigned int live;		/* conns not torn down */
	unsigned int on_caller;		/* vfpm_server_serve_fd calls not returned yet */
	bool stopping;
	bool running;			/* listening in a loop: started, run or attached */
	bool run_waiting;		/* vfpm_server_run is waiting for stop */
	bool starting;			/* running, but the listener is not in its loop yet */
	bool accept_paused;		/* out of fds or memory: the tick retries */
	/* srv->loop when the caller drives it (stop and serve_fd drive it then), else NULL. */
	struct vfpm_loop *caller_loop;
};


/*
 * Sends on a client's sockets give up after msg_timeout_ms (a client that
 * does not read is dropped, not waited for).
 */
void srv_sock_set_send_timeout(int sock, unsigned int timeout_ms);

/* Set the reply payload to len bytes of buf, which the reply now owns. */
void srv_reply_own(struct srv_reply *r, void *buf, size_t len);
/* Largest reply payload the server builds (max_data_xfer_size + slack). */
size_t srv_reply_max(const struct vfpm_server_conn *conn);

/* A negotiated command (not VERSION). */
/*
 * Open the connection's device instance if it is not open yet.  A connection
 * opens the device with its first device command, not when it is accepted:
 * VERSION, DMA_MAP/UNMAP and vfpm's POWER_STATUS need no instance, so a
 * management query can look at a sleeping device without waking it (as
 * reading sysfs does for a kernel device, where opening the device fd would
 * wake it).
 */
int srv_conn_open_instance(struct vfpm_server_conn *conn);
int srv_dispatch_command(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r);

/* Connections (server_conn.c). */
/* A connection around sock (not linked, not in a loop yet); NULL when out of memory. */
struct vfpm_server_conn *srv_conn_new(struct vfpm_server *srv, int sock);
void srv_conn_free(struct vfpm_server_conn *conn);
/*
 * Put a linked connection in srv->loop: 0, or -errno (then it is freed and
 * unlinked).  With serve_now, what it has sent is served on this thread.
 * Either way conn may be gone when it returns.
 */
int srv_conn_start(struct vfpm_server_conn *conn, bool serve_now);
/*
 * Send one message on the connection's socket (any thread), in order with
 * every other: what the socket does not take now is queued and sent when
 * the client reads.  0 or -errno (-ECONNRESET once it is going).
 */
int srv_conn_send(struct vfpm_server_conn *conn, struct vfio_user_header *hdr,
		  const struct iovec *iov, unsigned int iovcnt, const int *fds, unsigned int nfds);
/* A reply from the client answers a DMA message of ours: handed over (and m released), true. */
bool srv_deliver_reply(struct vfpm_server_conn *conn, struct vfpm_msg *m);
/* Serve one whole message the handler received (server.c): as the handler's loop expects. */
int srv_serve_msg(struct vfpm_server_conn *conn, struct vfpm_msg *m);
/* Send the error reply to req. */
int srv_send_error(struct vfpm_server_conn *conn, const struct vfio_user_header *req, int err);
/* Why a connection is dropped, for the log: NULL for an ordinary goodbye. */
const char *srv_drop_reason(struct vfpm_server_conn *conn, int err, char *buf, size_t len);
/* The connection has been torn down (the handler, srv->lock held). */
void srv_conn_gone_locked(struct vfpm_server_conn *conn);
/* Finish a request the model completed later: 0 (reply sent) or -errno to end. */
int srv_finish_pending(struct vfpm_server_conn *conn);
/* A deferred region access completed (any thread): the handler is kicked. */
void srv_conn_async_done(void *opaque, ssize_t result);
/* Make the reply of a deferred REGION_READ / _WRITE from its result: 0 or -errno. */
int srv_region_finish(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r,
		      ssize_t result);

/* Process-wide budgets and the reserve fd (server_limits.c). */
/*
 * A place in the process's connection budget for a device that has
 * device_live connections.  The last quarter of the budget (at most
 * SRV_CONN_RESERVE_MAX) is kept for devices with fewer than SRV_CONN_FLOOR
 * connections, so that one device's flood never locks the others out.
 */
#define SRV_CONN_FLOOR 4u
#define SRV_CONN_RESERVE_MAX 256u
bool srv_budget_take_connection(unsigned int device_live);
void srv_budget_put_connection(void);
bool srv_budget_take_dma_map(void);
void srv_budget_put_dma_maps(unsigned int n);
/* Hold the reserve fd (once per process). */
void srv_reserve_fd_init(void);
/*
 * Out of fds: give up the reserve for a moment to accept and close the
 * connection that is waiting on srv, then take the reserve back.  1 when
 * one was dropped (who says whose), 0 when none was waiting any more, -1
 * when it could not be done (no reserve, or its fd was taken meanwhile).
 */
int srv_drop_with_reserve(const struct vfpm_server *srv, char *who, size_t len);
/* Take the reserve fd back if an earlier try found no fd free (a connection ended). */
void srv_reserve_fd_refill(void);
/* Who is at the other end of sock: pid, uid, and "SERVER: client pid P uid U" in who. */
void srv_describe_peer(const struct vfpm_server *srv, int sock, pid_t *pid, uid_t *uid,
		       char *who, size_t len);

/* DMA mappings (server_dma.c). */
int srv_dma_init(struct dma_table *t, uint32_t max);
void srv_dma_destroy(struct dma_table *t);
int srv_dma_map(struct vfpm_server_conn *conn, struct vfpm_msg *m);
int srv_dma_unmap(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r);
/* The DMA provider every connection's instance gets (opaque: the conn). */
extern const struct vfpm_dma_ops srv_conn_dma_ops;
/* The window holding addr, or NULL (read side held). */
struct dma_region *srv_dma_find(const struct dma_table *t, uint64_t addr);
/* The client shrank reg's file: log it (once) and return -EFAULT. */
int srv_dma_window_lost(struct vfpm_server_conn *conn, struct dma_region *reg);

/* Window mappings and holds on them (server_dma_map.c). */
/* mmap [offset, offset + size) of fd with prot and guard it: one reference, the caller's. */
int srv_dma_mapping_create(int fd, uint64_t offset, uint64_t size, int prot,
			   struct dma_mapping **out);
/* Drop a reference; the last one unmaps and puts one DMA window back in the budget. */
void srv_dma_mapping_put(struct dma_mapping *m);
/* The provider's map and release ops (struct vfpm_dma_ops). */
int srv_conn_dma_map(void *opaque, uint64_t iova, size_t len, int prot, struct iovec *seg,
		     void **hold);
int srv_conn_dma_release(void *hold);
/* Main-socket DMA: set up, end (wakes a waiter), and hand over a reply (the conn thread). */
void srv_main_dma_init(struct vfpm_server_conn *conn);
void srv_main_dma_destroy(struct vfpm_server_conn *conn);
void srv_main_dma_close(struct vfpm_server_conn *conn);
/* A reply from the client: the DMA exchange's (0, m taken) or a stray one (-ENOENT). */
int srv_main_dma_deliver(struct vfpm_server_conn *conn, struct vfpm_msg *m);
/* VERSION granted twin-socket mode: the server's end of the DMA socket. */
void srv_dma_set_twin_socket(struct vfpm_server_conn *conn, int sock);

#endif /* VFPM_TRANSPORT_SERVER_INTERNAL_H */
