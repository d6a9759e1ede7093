/* SPDX-License-Identifier: MIT */
/*
 * Whole vfio-user messages over an AF_UNIX stream socket, with their file
 * descriptors (SCM_RIGHTS).  Private to the transport and the socket client.
 *
 * Ownership rule: every fd received is either in struct vfpm_msg (and then
 * closed by vfpm_msg_release unless the caller took it with
 * vfpm_msg_take_fd) or already closed; no return path leaks one.  Received
 * fds are close-on-exec.
 */
#ifndef VFPM_TRANSPORT_TRAN_SOCK_H
#define VFPM_TRANSPORT_TRAN_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "wire.h"

/* The kernel's SCM_MAX_FD: no sender can attach more to one sendmsg. */
#define VFPM_SOCK_MAX_FDS 253

struct vfpm_msg {
	struct vfio_user_header hdr;
	void *payload;		/* hdr.msg_size - 16 bytes (malloc'd, NULL when empty) */
	size_t len;
	int fds[VFPM_SOCK_MAX_FDS];
	unsigned int nfds;
	bool fds_truncated;	/* the kernel dropped fds that did not fit */
};

void vfpm_msg_init(struct vfpm_msg *m);
/* Close the fds the message still owns and free the payload. */
void vfpm_msg_release(struct vfpm_msg *m);
/* Hand fd i to the caller (-1 if there is none); release will not close it. */
int vfpm_msg_take_fd(struct vfpm_msg *m, unsigned int i);

/*
 * Receive one whole message.  0 on success.  Errors, with the stream state:
 *  -ESHUTDOWN   the peer closed the connection between two messages;
 *  -ECONNRESET  it closed (or reset) it in the middle of one;
 *  -EBADMSG     msg_size is smaller than the header: m->hdr is valid, the
 *               stream cannot be trusted any more;
 *  -E2BIG       msg_size exceeds max_size: m->hdr is valid, the stream
 *               cannot be trusted any more (the payload is not read);
 *  other        an I/O error from the socket.
 * On every error the message owns nothing (its fds are closed).
 */
int vfpm_sock_recv_msg(int sock, struct vfpm_msg *m, size_t max_size);

/* What a receiver will put up with (the server's defence against its clients). */
struct vfpm_recv_limits {
	size_t max_size;		/* msg_size above it: -E2BIG */
	/*
	 * Fds kept for the message; further ones are never installed in the
	 * process (or closed at once) and the message is marked fds_truncated.
	 */
	unsigned int max_fds;
	/* Monotonic ms by which every byte must be in, the first one included; 0: none. */
	int64_t deadline_ms;
	/* Once the first byte is in, the rest must follow within this; 0: no limit. */
	unsigned int msg_timeout_ms;
};

/* vfpm_sock_recv_msg within limits; a deadline that passes is -ETIMEDOUT. */
int vfpm_sock_recv_msg_limited(int sock, struct vfpm_msg *m, const struct vfpm_recv_limits *lim);
/*
 * A connection's receive buffer (a server connection's, the client's main
 * socket's and its twin socket's).  vfpm_sock_rx_next returns the next
 * message: one already buffered without a syscall, else after one recvmsg
 * that takes whatever the socket has (header and payload together, and the
 * messages behind it); a message larger than the buffer has the rest of its
 * payload read directly into its own allocation.  Fds go with their message
 * (the rule is in tran_sock.c), at most max_fds per message, never more
 * installed.  Results, limits and deadlines as vfpm_sock_recv_msg_limited,
 * except that a begun message's msg_timeout_ms counts from when the
 * connection first waits for its rest.  After an error the stream is over:
 * vfpm_sock_rx_release closes the fds the buffer still holds.
 */
#define VFPM_SOCK_RX_BUF 4096u

struct vfpm_sock_rx {
	/* One reader at a time: its owner says which lock or thread that is. */
	size_t start, end;		/* the buffered bytes: buf[start, end) */
	int64_t head_deadline_ms;	/* for the begun message at start; 0: not set */
	/* Fds received for the message beginning at buf[fds_at] (only one holds any). */
	size_t fds_at;
	unsigned int nfds;
	bool fds_truncated;		/* some of that message's fds were dropped */
	int fds[VFPM_SOCK_MAX_FDS];
	/* vfpm_sock_rx_poll: a message larger than buf, being read into its own payload. */
	struct vfpm_msg *big;
	size_t big_have;		/* payload bytes in */
	unsigned char buf[VFPM_SOCK_RX_BUF];
};

void vfpm_sock_rx_init(struct vfpm_sock_rx *rx);
void vfpm_sock_rx_release(struct vfpm_sock_rx *rx);
int vfpm_sock_rx_next(struct vfpm_sock_rx *rx, int sock, struct vfpm_msg *m,
		      const struct vfpm_recv_limits *lim);

/*
 * vfpm_sock_rx_next for an event loop, on a socket it never waits on: the
 * next whole message (0), or -EAGAIN when none is whole yet.  *readable says
 * whether the socket may hold bytes; it is cleared when a read comes back
 * short or finds nothing (the socket is empty: the caller waits for its next
 * readiness edge and sets it again).  A message larger than the buffer is
 * kept between calls until it is whole.  rx->head_deadline_ms is non-zero
 * while a begun message waits for its rest: the caller times it out (the
 * deadlines in lim are not used).  Errors as vfpm_sock_rx_next.
 */
int vfpm_sock_rx_poll(struct vfpm_sock_rx *rx, int sock, struct vfpm_msg *m,
		      const struct vfpm_recv_limits *lim, bool *readable);

/*
 * The iovecs of a message: hdr (its msg_size set) then the non-empty ones of
 * iov, in v (room for iovcnt + 1), their number in *cnt: the message's size,
 * or -E2BIG.
 */
ssize_t vfpm_sock_msg_iov(struct vfio_user_header *hdr, const struct iovec *iov,
			  unsigned int iovcnt, struct iovec *v, unsigned int *cnt);

/*
 * One non-blocking sendmsg of iov (nfds fds with its first byte): the bytes
 * sent, -EAGAIN when none could be, or -errno.  SIGPIPE is never raised.
 */
ssize_t vfpm_sock_send_nb(int sock, const struct iovec *iov, unsigned int iovcnt, const int *fds,
			  unsigned int nfds);

/* Socket syscalls (recvmsg, sendmsg, send, poll) the calling thread made here: for tests. */
unsigned long vfpm_sock_thread_syscalls(void);

/* CLOCK_MONOTONIC in ms, the clock of the deadlines. */
int64_t vfpm_sock_now_ms(void);

/*
 * Send one message: hdr (its msg_size is set from the iovecs), the iovecs as
 * its payload and nfds fds as SCM_RIGHTS with the first byte.  Partial writes
 * are completed; SIGPIPE is never raised.  0 or a negative errno.
 */
int vfpm_sock_send_msgv(int sock, struct vfio_user_header *hdr, const struct iovec *iov,
			unsigned int iovcnt, const int *fds, unsigned int nfds);
int vfpm_sock_send_msg(int sock, struct vfio_user_header *hdr, const void *payload, size_t len,
		       const int *fds, unsigned int nfds);

/* Read / write exactly len bytes (no fds accepted: any received are closed). */
int vfpm_sock_read_all(int sock, void *buf, size_t len);
int vfpm_sock_write_all(int sock, const void *buf, size_t len);

#endif /* VFPM_TRANSPORT_TRAN_SOCK_H */
