/* SPDX-License-Identifier: MIT */
/*
 * fuzz_server's input format, shared with gen_seeds: what the bits of a
 * message's msg_id make the clients do (fuzz_server.c says how).
 */
#ifndef VFPM_FUZZ_SERVER_INPUT_H
#define VFPM_FUZZ_SERVER_INPUT_H

#include <stdint.h>

/* Bit 15: the message goes to connection B (clear: A). */
#define FZ_CONN_B 0x8000u
/* Bits 12-13: how many fds go with the message (0-3). */
#define FZ_FDS(n) ((uint16_t)(((n) & 3u) << 12))
#define FZ_NFDS(id) (((id) >> 12) & 3u)
/* Bit 11: fz_max_msg_fds + 1 + 5 * n fds instead (over the server's limit). */
#define FZ_MANY 0x0800u
/* Bits 8-10 and 14: the fds' kind, (bits 8-10) << 1 | bit 14. */
#define FZ_KIND(k) ((uint16_t)((((k) >> 1) & 7u) << 8 | ((k) & 1u) << 14))
#define FZ_KIND_OF(id) ((((id) >> 8) & 7u) << 1 | (((id) >> 14) & 1u))
/*
 * Bits 6-7: the action on the fds of the reply (which echoes the msg_id);
 * a message with one waits for its reply before the next is sent.
 */
#define FZ_ACTION(a) ((uint16_t)(((a) & 3u) << 6))
#define FZ_ACTION_OF(id) (((id) >> 6) & 3u)
/*
 * On a message whose reply carries no fds an action does nothing but that
 * wait: what the other connection sends next comes after this message is
 * done (without it, the two connections' messages are served in parallel).
 */
#define FZ_SYNC FZ_ACTION(1)
/*
 * Bits 0-7 all set on a last piece that is not a whole message: the clients
 * stall before they hang up, so that the server's deadlines expire.
 */
#define FZ_STALL 0x00ffu
/* Bits 0-5 are the id proper: free. */
#define FZ_ID_MAX 0x3fu

/* The server's max_msg_fds in fuzz_server. */
#define FZ_MAX_MSG_FDS 4

/* Actions on a reply's memfd (a BAR's): kept until the session ends, after being... */
enum fz_bar_action {
	FZ_BAR_KEEP,
	FZ_BAR_TRUNCATE,	/* truncated to 0 */
	FZ_BAR_SHRINK,		/* shrunk to 4 KiB */
	FZ_BAR_GROW,		/* grown to twice its size */
};

/* Actions on the twin socket VERSION hands out. */
enum fz_twin_action {
	FZ_TWIN_CLOSE,		/* closed at once: the server's DMA messages fail */
	FZ_TWIN_ANSWER,		/* DMA_READ / DMA_WRITE answered correctly */
	FZ_TWIN_ERROR,		/* answered with error replies */
	FZ_TWIN_HOSTILE,	/* wrong msg_id, data one byte short, not a reply (in turn) */
};

enum fz_fd_kind {
	FZ_EVENTFD,		/* 0: the original encoding */
	FZ_MEMFD,		/* 1: 64 KiB, the original encoding */
	FZ_MEMFD_TRUNC_NOW,	/* truncated to 0 right after sending: races the map */
	FZ_MEMFD_TRUNC_AFTER,	/* truncated to 0 after the reply (DMA_MAP has mapped it) */
	FZ_MEMFD_SHRINK_AFTER,	/* shrunk to 32 KiB after the reply */
	FZ_MEMFD_SEALED,	/* 64 KiB, F_SEAL_SHRINK | F_SEAL_GROW */
	FZ_MEMFD_SMALL,		/* 4 KiB */
	FZ_PIPE_READ,
	FZ_PIPE_WRITE,		/* its read end closed: a write would raise SIGPIPE */
	FZ_SOCKET,		/* one end of a socketpair (the other closed) */
	FZ_DEVNULL,
	FZ_BAR,			/* a BAR memfd a client got (a 64 KiB memfd when none) */
	FZ_MEMFD_RDONLY,	/* 64 KiB, opened read-only: a writable map fails */
	FZ_MIX,			/* fd i: eventfd, memfd, pipe, socket, /dev/null in turn */
	FZ_EVENTFD_FULL,	/* its counter at the maximum: a signal cannot go in */
	FZ_MEMFD_GROW_AFTER,	/* grown to 128 KiB after the reply */
};

#endif /* VFPM_FUZZ_SERVER_INPUT_H */
