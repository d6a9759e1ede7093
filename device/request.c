// SPDX-License-Identifier: MIT
/*
 * Region accesses, and the ones a driver completes later (vfpm_request):
 * what lets a reactor serve a device whose model must not block.
 *
 * An access runs the driver's op with a context on the thread's stack
 * naming the instance and, for the _async calls, where the completion goes.
 * Only a driver that defers costs an allocation: vfpm_request_defer makes
 * the request then.  From there two parties race to the end: the call that
 * ran the op returning, and the driver completing (from any thread).
 * Whoever comes second finishes the request (drops what the driver hung on
 * it, works out the result) and either returns it (the call) or hands it to
 * the completion callback (the driver's thread).
 */
#include "device_internal.h"

#include "base.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

/* vfpm_request.state: which of the two parties has arrived. */
#define REQ_RETURNED	1u	/* the op has returned to the core */
#define REQ_COMPLETED	2u	/* the driver has called vfpm_request_complete */

struct vfpm_request {
	/*
	 * Set on the deferring thread before REQ_RETURNED is published (the
	 * release of the state change), read by whoever finishes after it.
	 */
	struct vfpm_instance *inst;	/* held (vfpm_instance_hold) until the end */
	struct vfpm_async async;
	struct vfpm_device *put_dev;	/* a PM usage reference to drop, or NULL */
	bool split;			/* done applies (vfpm_request_set_done) */
	size_t done;
	bool abandoned;			/* the op returned a result after all */

	/* Set by the completing thread before REQ_COMPLETED is published. */
	ssize_t result;

	atomic_uint state;
};

/* The access running on this thread. */
struct access_ctx {
	struct vfpm_instance *inst;
	const struct vfpm_async *async;	/* NULL: the caller cannot wait */
	struct vfpm_request *req;	/* deferred in this access, or NULL */
};

/*
 * Saved and restored around each access: a driver may make an access of
 * another device from inside its own (synchronously), which must neither
 * see nor disturb the outer one.
 */
static _Thread_local struct access_ctx *current_access;

/* A driver's bug repeats on every access: say so, but not every time. */
static struct vfpm_ratelimit stray_einprogress_rl, abandoned_rl;

struct vfpm_request *vfpm_request_defer(struct vfpm_instance *inst)
{
	struct access_ctx *ctx = current_access;
	struct vfpm_request *req;

	if (!ctx || ctx->inst != inst || !ctx->async || ctx->req)
		return NULL;
	req = calloc(1, sizeof(*req));
	if (!req)
		return NULL;	/* the driver completes inline: slower, never wrong */
	req->inst = inst;
	req->async = *ctx->async;
	atomic_init(&req->state, 0);
	vfpm_instance_hold(inst);
	ctx->req = req;
	return req;
}

struct vfpm_request *vfpm_request_deferred(struct vfpm_instance *inst)
{
	struct access_ctx *ctx = current_access;

	return ctx && ctx->inst == inst ? ctx->req : NULL;
}

void vfpm_request_add_put(struct vfpm_request *req, struct vfpm_device *dev)
{
	req->put_dev = dev;
}

void vfpm_request_set_done(struct vfpm_request *req, size_t done)
{
	req->split = true;
	req->done = done;
}

/* The access's result, as the driver would have returned it inline. */
static ssize_t request_result(const struct vfpm_request *req)
{
	ssize_t r = req->result;

	if (!req->split)
		return r;
	if (req->done)
		return r > 0 ? (ssize_t)req->done + r : (ssize_t)req->done;
	return r ? r : -EIO;
}

/* Both parties have arrived: undo what the request holds and free it. */
static ssize_t request_finish(struct vfpm_request *req)
{
	ssize_t r = request_result(req);

	/* As the kernel's ioctl wrapper: the reference goes before the reply. */
	if (req->put_dev)
		vfpm_device_pm_put(req->put_dev);
	vfpm_instance_release(req->inst);
	free(req);
	return r;
}

/*
 * The op returned ret after deferring req: its party's arrival.  Returns
 * what the _async call returns.
 */
static ssize_t request_returned(struct vfpm_request *req, ssize_t ret)
{
	bool abandoned = ret != -EINPROGRESS;
	unsigned int state;
	ssize_t r;

	if (abandoned) {
		/* The driver's bug; its return is what the caller gets, once. */
		vfpm_logf_rl(&abandoned_rl, VFPM_LOG_ERR, "instance %llu: the driver deferred "
			     "an access, then returned %zd: its completion is ignored",
			     (unsigned long long)vfpm_instance_id(req->inst), ret);
		req->abandoned = true;
	}
	state = atomic_fetch_or_explicit(&req->state, REQ_RETURNED, memory_order_acq_rel);
	if (!(state & REQ_COMPLETED))
		return ret;	/* the completion finishes it */
	/* Completed on another thread before we got here: the caller gets it now. */
	r = request_finish(req);
	return abandoned ? ret : r;
}

void vfpm_request_complete(struct vfpm_request *req, ssize_t result)
{
	struct vfpm_async async;
	unsigned int state;
	ssize_t r;

	req->result = result;
	state = atomic_fetch_or_explicit(&req->state, REQ_COMPLETED, memory_order_acq_rel);
	if (!(state & REQ_RETURNED))
		return;	/* the _async call has not returned yet: it returns the result */
	async = req->async;
	if (req->abandoned) {
		request_finish(req);
		return;
	}
	r = request_finish(req);
	async.complete(async.opaque, r);
}

/*
 * Run the driver's op as one access; async NULL for the plain calls.  A
 * driver that returns -EINPROGRESS without having deferred would leave the
 * caller waiting for a completion that never comes: that is an error.
 */
static ssize_t access_run(struct vfpm_instance *inst, void *buf, size_t count, uint64_t pos,
			  bool write, const struct vfpm_async *async)
{
	struct access_ctx ctx = { .inst = inst, .async = async };
	struct access_ctx *outer = current_access;
	ssize_t ret;

	current_access = &ctx;
	ret = vfpm_device_region_op(inst, buf, count, pos, write);
	current_access = outer;
	if (ctx.req)
		return request_returned(ctx.req, ret);
	if (ret == -EINPROGRESS) {
		vfpm_logf_rl(&stray_einprogress_rl, VFPM_LOG_ERR, "instance %llu: the driver "
			     "returned -EINPROGRESS without deferring the access",
			     (unsigned long long)vfpm_instance_id(inst));
		return -EIO;
	}
	return ret;
}

ssize_t vfpm_instance_read(struct vfpm_instance *inst, void *buf, size_t count, uint64_t pos)
{
	return access_run(inst, buf, count, pos, false, NULL);
}

ssize_t vfpm_instance_write(struct vfpm_instance *inst, const void *buf, size_t count,
			    uint64_t pos)
{
	return access_run(inst, (void *)buf, count, pos, true, NULL);
}

ssize_t vfpm_instance_read_async(struct vfpm_instance *inst, void *buf, size_t count,
				 uint64_t pos, const struct vfpm_async *async)
{
	if (!async || !async->complete)
		return -EINVAL;
	return access_run(inst, buf, count, pos, false, async);
}

ssize_t vfpm_instance_write_async(struct vfpm_instance *inst, const void *buf, size_t count,
				  uint64_t pos, const struct vfpm_async *async)
{
	if (!async || !async->complete)
		return -EINVAL;
	return access_run(inst, (void *)buf, count, pos, true, async);
}
