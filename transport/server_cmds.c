// SPDX-License-Identifier: MIT
/*
 * vfio-user device commands, mapped onto the device core: the info and
 * SET_IRQS commands and DEVICE_FEATURE become vfpm_instance_ioctl calls with
 * the kernel's argument structs, REGION_READ / WRITE become instance reads
 * and writes at the vfio-pci region offsets.
 *
 * Every payload is checked against the command's fixed size before the
 * device sees it (-EINVAL), so the device core's -EFAULT ("user memory" too
 * short) only ever means a field inside the payload points past it.
 */
#include "server_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/vfio.h>

/* The wire structs are the kernel's structs (or their leading part). */
_Static_assert(offsetof(struct vfio_device_info, num_irqs) == 12, "device info");
_Static_assert(sizeof(struct vfio_region_info) == sizeof(struct vfio_user_region_info),
	       "region info");
_Static_assert(offsetof(struct vfio_region_info, offset) == 24, "region info offset");
_Static_assert(sizeof(struct vfio_irq_info) == sizeof(struct vfio_user_irq_info), "irq info");
_Static_assert(sizeof(struct vfio_irq_set) == sizeof(struct vfio_user_irq_set), "irq set");
_Static_assert(sizeof(struct vfio_device_feature) == sizeof(struct vfio_user_device_feature),
	       "device feature");
_Static_assert(sizeof(struct vfio_device_low_power_entry_with_wakeup) ==
	       sizeof(struct vfio_user_low_power_entry_with_wakeup), "low power entry");

/* Region index and offset to the device core's position (vfio-pci layout). */
static int region_pos(uint32_t region, uint64_t offset, uint64_t count, uint64_t *pos)
{
	if (region > VFPM_REGION_INDEX(UINT64_MAX) || offset > VFPM_REGION_OFFSET_MASK ||
	    count > VFPM_REGION_OFFSET_MASK + 1 - offset)
		return -EINVAL;
	*pos = VFPM_REGION_OFFSET(region) + offset;
	return 0;
}

/* A copy of the payload in a buffer of at least size bytes (zero-filled beyond it). */
static void *payload_copy(const struct vfpm_msg *m, size_t size)
{
	void *buf = calloc(1, size > m->len ? size : m->len);

	if (buf && m->len)
		memcpy(buf, m->payload, m->len);
	return buf;
}

static size_t clamp_size(size_t v, size_t lo, size_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* GET_INFO and GET_IRQ_INFO: a 16-byte struct in, the same struct out. */
static int cmd_info16(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r,
		      unsigned int ioctl_cmd)
{
	const size_t size = 16;
	struct vfpm_ubuf arg;
	uint32_t *argsz;
	void *buf;
	long ret;

	if (m->len < size)
		return -EINVAL;
	buf = payload_copy(m, size);
	if (!buf)
		return -ENOMEM;
	arg = (struct vfpm_ubuf){ .data = buf, .in_len = size, .cap = size };
	ret = vfpm_instance_ioctl(conn->inst, ioctl_cmd, &arg, NULL, NULL);
	if (ret < 0) {
		free(buf);
		return (int)ret;
	}
	argsz = buf;
	*argsz = (uint32_t)size;	/* the full reply size */
	srv_reply_own(r, buf, size);
	return 0;
}

static int cmd_get_region_info(struct vfpm_server_conn *conn, struct vfpm_msg *m,
			       struct srv_reply *r)
{
	const size_t minsz = sizeof(struct vfio_user_region_info);
	struct vfio_user_region_info req, *info;
	struct vfpm_ubuf arg;
	size_t cap, len;
	long ret;

	if (m->len < minsz)
		return -EINVAL;
	memcpy(&req, m->payload, minsz);
	/* argsz is the room the client has for the reply: capabilities included. */
	cap = clamp_size(req.argsz, minsz, srv_reply_max(conn));
	info = calloc(1, cap);
	if (!info)
		return -ENOMEM;
	memcpy(info, &req, minsz);
	arg = (struct vfpm_ubuf){ .data = info, .in_len = minsz, .cap = cap };
	ret = vfpm_instance_ioctl(conn->inst, VFIO_DEVICE_GET_REGION_INFO, &arg, NULL, &r->fds);
	if (ret < 0) {
		free(info);
		return (int)ret;
	}
	len = arg.out_len > minsz ? arg.out_len : minsz;
	/*
	 * The device says how much room its capabilities need by raising
	 * argsz above the client's; otherwise everything fitted and the reply
	 * states its own size.
	 */
	if (info->argsz <= req.argsz) {
		info->argsz = (uint32_t)len;
	} else {
		/*
		 * The capabilities did not fit.  The ioctl sets CAPS with
		 * cap_offset 0 here; vfio-user clients (QEMU) reject that and
		 * retry with the larger argsz only when CAPS is clear, as
		 * libvfio-user answers.  The fd comes with the full answer.
		 */
		info->flags &= ~(uint32_t)VFIO_REGION_INFO_FLAG_CAPS;
		info->cap_offset = 0;
		for (unsigned int i = 0; i < r->fds.count; i++)
			close(r->fds.fd[i]);
		r->fds.count = 0;
	}
	/*
	 * The device core gives the kernel's offset into the device fd
	 * (index << 40); over vfio-user every region comes with its own fd,
	 * and the offset is where the region starts in it (a model's own file
	 * may hold it further in), which is where the client maps it from;
	 * region accesses name the index, and sparse areas are relative to it.
	 */
	info->offset = r->fds.count ? r->fds.offset[0] : 0;
	if (r->fds.count > conn->peer.max_msg_fds) {
		/* The client cannot take the fd, so it cannot mmap. */
		for (unsigned int i = 0; i < r->fds.count; i++)
			close(r->fds.fd[i]);
		r->fds.count = 0;
		info->flags &= ~(uint32_t)VFIO_REGION_INFO_FLAG_MMAP;
	}
	srv_reply_own(r, info, len);
	return 0;
}

static bool is_intx_unmask_eventfd(const struct vfio_user_irq_set *req, unsigned int nfds)
{
	return req->index == VFIO_PCI_INTX_IRQ_INDEX && req->count == 1 && nfds == 1 &&
	       (req->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) == VFIO_IRQ_SET_ACTION_UNMASK &&
	       (req->flags & VFIO_IRQ_SET_DATA_TYPE_MASK) == VFIO_IRQ_SET_DATA_EVENTFD;
}

/*
 * A second INTx unmask eventfd while one is set: the kernel says EBUSY, but
 * it also drops the old one by itself when the user closes it (the virqfd
 * sees the eventfd's last close).  A vfio-user server holds its own copy of
 * the fd and never sees the client's close, so a client that re-arms the
 * unmask this way (QEMU does, after closing its old eventfd) would be
 * refused for good.  The new fd passed every check (EBUSY comes last), so
 * the old one goes and the new one takes its place.
 */
static long replace_intx_unmask_eventfd(struct vfpm_server_conn *conn,
					struct vfio_user_irq_set *set, size_t size,
					const struct vfpm_fds *fds)
{
	int32_t none = -1, number;
	struct vfpm_ubuf arg = { .data = set, .in_len = size, .cap = size };
	long ret;

	memcpy(&number, set->data, sizeof(number));
	memcpy(set->data, &none, sizeof(none));
	ret = vfpm_instance_ioctl(conn->inst, VFIO_DEVICE_SET_IRQS, &arg, fds, NULL);
	memcpy(set->data, &number, sizeof(number));
	if (!ret)
		ret = vfpm_instance_ioctl(conn->inst, VFIO_DEVICE_SET_IRQS, &arg, fds, NULL);
	vfpm_logf(VFPM_LOG_DEBUG, "%s: INTx unmask eventfd replaced by a new one (%s)", conn->who,
		  ret ? strerror((int)-ret) : "ok");
	return ret;
}

static int cmd_set_irqs(struct vfpm_server_conn *conn, struct vfpm_msg *m)
{
	const size_t minsz = sizeof(struct vfio_user_irq_set);
	struct vfpm_fds fds = { .fd = m->fds, .count = m->nfds };
	struct vfio_user_irq_set req, *set;
	struct vfpm_ubuf arg;
	size_t size;
	long ret;

	if (m->len < minsz)
		return -EINVAL;
	memcpy(&req, m->payload, minsz);

	switch (req.flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
	case VFIO_IRQ_SET_DATA_EVENTFD:
		/* The eventfds are the message's fds; none at all de-assigns. */
		if (m->nfds && m->nfds != req.count)
			return -EINVAL;
		if (req.count > 65536)
			return -EINVAL;
		size = minsz + sizeof(int32_t) * (size_t)req.count;
		set = calloc(1, size);
		if (!set)
			return -ENOMEM;
		memcpy(set, &req, minsz);
		for (uint32_t i = 0; i < req.count; i++) {
			int32_t number = m->nfds ? (int32_t)i : -1;

			memcpy(set->data + i * sizeof(number), &number, sizeof(number));
		}
		break;
	case VFIO_IRQ_SET_DATA_BOOL:
		if (m->nfds || m->len - minsz < req.count)
			return -EINVAL;
		size = minsz + req.count;
		set = payload_copy(m, size);
		if (!set)
			return -ENOMEM;
		break;
	default:
		/* DATA_NONE, or flags the device core will refuse. */
		if (m->nfds)
			return -EINVAL;
		size = minsz;
		set = payload_copy(m, size);
		if (!set)
			return -ENOMEM;
		break;
	}
	/* The request's size comes from the message, not from the client's argsz. */
	set->argsz = (uint32_t)size;
	arg = (struct vfpm_ubuf){ .data = set, .in_len = size, .cap = size };
	ret = vfpm_instance_ioctl(conn->inst, VFIO_DEVICE_SET_IRQS, &arg, &fds, NULL);
	if (ret == -EBUSY && is_intx_unmask_eventfd(&req, m->nfds))
		ret = replace_intx_unmask_eventfd(conn, set, size, &fds);
	free(set);
	return ret < 0 ? (int)ret : 0;
}

/* The fixed part of REGION_READ / REGION_WRITE: its header, size limit and position. */
static int region_access(struct vfpm_server_conn *conn, struct vfpm_msg *m,
			 struct vfio_user_region_access *req, uint64_t *pos)
{
	if (m->len < sizeof(*req))
		return -EINVAL;
	memcpy(req, m->payload, sizeof(*req));
	if (req->count > conn->srv->caps.max_data_xfer_size)
		return -EINVAL;
	return region_pos(req->region, req->offset, req->count, pos);
}

static int cmd_region_read(struct vfpm_server_conn *conn, struct vfpm_msg *m,
			   struct srv_reply *r)
{
	struct vfio_user_region_access req, *out;
	uint64_t pos;
	ssize_t n;
	int err = region_access(conn, m, &req, &pos);

	if (err)
		return err;
	out = malloc(sizeof(*out) + req.count);
	if (!out)
		return -ENOMEM;
	n = vfpm_instance_read_async(conn->inst, out->data, req.count, pos, &conn->async);
	if (n == -EINPROGRESS) {
		/* The model completes it later (srv_region_finish). */
		*out = req;
		srv_reply_own(r, out, sizeof(*out) + req.count);
		return -EINPROGRESS;
	}
	if (n < 0) {
		free(out);
		return (int)n;
	}
	*out = req;
	out->count = (uint32_t)n;
	srv_reply_own(r, out, sizeof(*out) + (size_t)n);
	return 0;
}

static int cmd_region_write(struct vfpm_server_conn *conn, struct vfpm_msg *m,
			    struct srv_reply *r)
{
	struct vfio_user_region_access req, *out;
	uint64_t pos;
	ssize_t n;
	int err = region_access(conn, m, &req, &pos);

	if (err)
		return err;
	if (m->len - sizeof(req) != req.count)
		return -EINVAL;
	/* The data stays in m until a deferred write completes. */
	n = vfpm_instance_write_async(conn->inst, (const uint8_t *)m->payload + sizeof(req),
				      req.count, pos, &conn->async);
	if (n == -EINPROGRESS)
		return -EINPROGRESS;
	if (n < 0)
		return (int)n;
	out = malloc(sizeof(*out));
	if (!out)
		return -ENOMEM;
	*out = req;
	out->count = (uint32_t)n;
	srv_reply_own(r, out, sizeof(*out));
	return 0;
}

int srv_region_finish(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r,
		      ssize_t result)
{
	struct vfio_user_region_access req, *out;

	(void)conn;
	if (result < 0)
		return (int)result;
	if (m->hdr.command == VFIO_USER_REGION_READ) {
		/* The reply was made when the read was deferred: its data is in. */
		out = r->alloc;
		out->count = (uint32_t)result;
		r->iov[0].iov_len = sizeof(*out) + (size_t)result;
		return 0;
	}
	memcpy(&req, m->payload, sizeof(req));
	out = malloc(sizeof(*out));
	if (!out)
		return -ENOMEM;
	*out = req;
	out->count = (uint32_t)result;
	srv_reply_own(r, out, sizeof(*out));
	return 0;
}

void srv_conn_async_done(void *opaque, ssize_t result)
{
	struct vfpm_server_conn *conn = opaque;

	/*
	 * Its handler sends the reply and goes on with the connection.  The
	 * kick is made under the lock: the handler may see done at once, end
	 * the connection and free it, but not before it has had the lock.
	 */
	pthread_mutex_lock(&conn->pend.lock);
	conn->pend.result = result;
	conn->pend.done = true;
	loop_src_kick(&conn->src);
	pthread_mutex_unlock(&conn->pend.lock);
}

/*
 * REGION_WRITE_MULTI: every write is checked before any is done; the writes
 * are then done in order and the first failure is the reply's error (the
 * writes before it have happened).  A short write is -EIO.
 */
static int cmd_region_write_multi(struct vfpm_server_conn *conn, struct vfpm_msg *m,
				  struct srv_reply *r)
{
	const struct vfio_user_write_multi_entry *wr;
	struct vfio_user_write_multi_hdr hdr, *out;
	uint64_t pos;

	if (m->len < sizeof(hdr))
		return -EINVAL;
	memcpy(&hdr, m->payload, sizeof(hdr));
	if (hdr.wr_cnt == 0 || hdr.wr_cnt > VFIO_USER_MULTI_MAX ||
	    m->len - sizeof(hdr) != hdr.wr_cnt * sizeof(*wr))
		return -EINVAL;
	wr = (const void *)((const uint8_t *)m->payload + sizeof(hdr));
	for (uint64_t i = 0; i < hdr.wr_cnt; i++) {
		struct vfio_user_write_multi_entry e;

		memcpy(&e, &wr[i], sizeof(e));
		if (e.count == 0 || e.count > VFIO_USER_MULTI_DATA ||
		    region_pos(e.region, e.offset, e.count, &pos))
			return -EINVAL;
	}
	for (uint64_t i = 0; i < hdr.wr_cnt; i++) {
		struct vfio_user_write_multi_entry e;
		ssize_t n;

		memcpy(&e, &wr[i], sizeof(e));
		region_pos(e.region, e.offset, e.count, &pos);
		n = vfpm_instance_write(conn->inst, e.data, e.count, pos);
		if (n < 0)
			return (int)n;
		if ((size_t)n != e.count)
			return -EIO;
	}
	out = malloc(sizeof(*out));
	if (!out)
		return -ENOMEM;
	*out = hdr;
	srv_reply_own(r, out, sizeof(*out));
	return 0;
}

static int cmd_reset(struct vfpm_server_conn *conn)
{
	struct vfpm_ubuf arg = { .data = NULL };
	long ret = vfpm_instance_ioctl(conn->inst, VFIO_DEVICE_RESET, &arg, NULL, NULL);

	return ret < 0 ? (int)ret : 0;
}

/*
 * DEVICE_FEATURE: the payload is struct vfio_device_feature and its data, as
 * the kernel ioctl takes it; fd numbers in the data are indexes into the
 * message's fds.  The reply echoes the request (SET, PROBE) or carries what
 * the device wrote (GET), with argsz set to the reply's size.
 */
static int cmd_device_feature(struct vfpm_server_conn *conn, struct vfpm_msg *m,
			      struct srv_reply *r)
{
	const size_t minsz = sizeof(struct vfio_user_device_feature);
	struct vfpm_fds fds = { .fd = m->fds, .count = m->nfds };
	struct vfio_user_device_feature req, *feat;
	struct vfpm_ubuf arg;
	size_t cap, len;
	long ret;

	if (m->len < minsz)
		return -EINVAL;
	memcpy(&req, m->payload, minsz);
	if (m->len > srv_reply_max(conn))
		return -EINVAL;
	cap = clamp_size(req.argsz, m->len, srv_reply_max(conn));
	feat = payload_copy(m, cap);
	if (!feat)
		return -ENOMEM;
	arg = (struct vfpm_ubuf){ .data = feat, .in_len = m->len, .cap = cap };
	ret = vfpm_instance_ioctl(conn->inst, VFIO_DEVICE_FEATURE, &arg, &fds, NULL);
	if (ret < 0) {
		free(feat);
		return (int)ret;
	}
	len = arg.out_len > m->len ? arg.out_len : m->len;
	feat->argsz = (uint32_t)len;
	srv_reply_own(r, feat, len);
	return 0;
}

/* vfpm's POWER_STATUS: from the device core, not through the request wrapper. */
static int cmd_power_status(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r)
{
	struct vfpm_user_power_status *st;
	struct vfpm_power_info info;

	if (m->len != 0)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	vfpm_device_power_info(conn->srv->dev, &info);
	st->runtime_status = (uint32_t)info.status;
	st->usage_count = info.usage_count;
	st->flags = (info.runtime_pm ? VFPM_USER_POWER_F_RUNTIME_PM : 0) |
		    (info.low_power ? VFPM_USER_POWER_F_LOW_POWER : 0) |
		    (info.wakeup_armed ? VFPM_USER_POWER_F_WAKEUP_ARMED : 0);
	st->suspends = info.suspends;
	st->resumes = info.resumes;
	srv_reply_own(r, st, sizeof(*st));
	return 0;
}

/* How many fds a command may carry (beyond the server's max_msg_fds check). */
static unsigned int cmd_max_fds(uint16_t command)
{
	switch (command) {
	case VFIO_USER_DMA_MAP:
		return 1;
	case VFIO_USER_DEVICE_SET_IRQS:
	case VFIO_USER_DEVICE_FEATURE:
		return VFPM_SOCK_MAX_FDS;
	default:
		return 0;
	}
}

int srv_dispatch_command(struct vfpm_server_conn *conn, struct vfpm_msg *m, struct srv_reply *r)
{
	int err;

	if (m->nfds > cmd_max_fds(m->hdr.command))
		return -EINVAL;

	switch (m->hdr.command) {
	case VFIO_USER_DMA_MAP:
	case VFIO_USER_DMA_UNMAP:
	case VFPM_USER_POWER_STATUS:
		break;
	default:
		err = srv_conn_open_instance(conn);
		if (err)
			return err;
	}

	switch (m->hdr.command) {
	case VFIO_USER_DMA_MAP:
		return srv_dma_map(conn, m);
	case VFIO_USER_DMA_UNMAP:
		return srv_dma_unmap(conn, m, r);
	case VFIO_USER_DEVICE_GET_INFO:
		return cmd_info16(conn, m, r, VFIO_DEVICE_GET_INFO);
	case VFIO_USER_DEVICE_GET_REGION_INFO:
		return cmd_get_region_info(conn, m, r);
	case VFIO_USER_DEVICE_GET_IRQ_INFO:
		return cmd_info16(conn, m, r, VFIO_DEVICE_GET_IRQ_INFO);
	case VFIO_USER_DEVICE_SET_IRQS:
		return cmd_set_irqs(conn, m);
	case VFIO_USER_REGION_READ:
		return cmd_region_read(conn, m, r);
	case VFIO_USER_REGION_WRITE:
		return cmd_region_write(conn, m, r);
	case VFIO_USER_REGION_WRITE_MULTI:
		return cmd_region_write_multi(conn, m, r);
	case VFIO_USER_DEVICE_RESET:
		return cmd_reset(conn);
	case VFIO_USER_DEVICE_FEATURE:
		return cmd_device_feature(conn, m, r);
	case VFPM_USER_POWER_STATUS:
		return cmd_power_status(conn, m, r);
	case VFIO_USER_DMA_READ:
	case VFIO_USER_DMA_WRITE:
		return -EPROTO;		/* server-to-client commands */
	case VFIO_USER_DEVICE_GET_REGION_IO_FDS:
	case VFIO_USER_MIG_DATA_READ:
	case VFIO_USER_MIG_DATA_WRITE:
		return -ENOTSUP;	/* in the specification, not implemented */
	default:
		return -ENOTTY;		/* as an unknown ioctl */
	}
}
