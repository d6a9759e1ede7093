/* SPDX-License-Identifier: MIT */
/*
 * VFIO_USER_VERSION capabilities: the JSON object after the version numbers,
 * {"capabilities": {"max_msg_fds": N, "max_data_xfer_size": N,
 * "max_dma_maps": N, "pgsizes": N, "write_multiple": bool, ...}}.
 * Private to the transport and the socket client.
 */
#ifndef VFPM_TRANSPORT_NEGOTIATE_H
#define VFPM_TRANSPORT_NEGOTIATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vfpm_caps {
	uint32_t max_msg_fds;		/* fds the sender can receive in one message */
	uint32_t max_data_xfer_size;	/* largest count the sender accepts */
	uint32_t max_dma_maps;
	uint64_t pgsizes;		/* DMA page sizes or'ed together */
	bool write_multiple;		/* REGION_WRITE_MULTI understood */
	bool twin_socket;		/* twin_socket.supported */
	int32_t twin_fd_index;		/* twin_socket.fd_index, -1 when absent */
};

/* The specification's defaults for a peer that states nothing. */
void vfpm_caps_defaults(struct vfpm_caps *caps);

/*
 * Parse VERSION data (len bytes, NUL-terminated or not; empty means "no
 * capabilities").  caps holds the defaults on entry and the peer's values on
 * return.  Unknown names (including "migration") are ignored.  -EINVAL for malformed JSON, a non-object where an object is
 * expected, or a known capability of the wrong type or out of range.
 */
int vfpm_caps_parse(const void *data, size_t len, struct vfpm_caps *caps);

/* The JSON text for caps (malloc'd, NUL-terminated), or NULL without memory. */
char *vfpm_caps_format(const struct vfpm_caps *caps);

#endif /* VFPM_TRANSPORT_NEGOTIATE_H */
