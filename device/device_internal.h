/* SPDX-License-Identifier: MIT */
/* Private to the device core and the drivers built on it (the PCI core). */
#ifndef VFPM_DEVICE_INTERNAL_H
#define VFPM_DEVICE_INTERNAL_H

#include <vfpm/device.h>

/*
 * An instance's memory outlives its close while a deferred request on it
 * holds it (request.c): a transport that broke the rule and closed it early
 * gets a log line, not a use after free at the completion.
 */
void vfpm_instance_hold(struct vfpm_instance *inst);
void vfpm_instance_release(struct vfpm_instance *inst);

/*
 * The driver's read (write: write) op, -EINVAL when it has none: request.c
 * runs it in the context of the access (vfpm_instance_read and the rest).
 */
ssize_t vfpm_device_region_op(struct vfpm_instance *inst, void *buf, size_t count, uint64_t pos,
			      bool write);

/*
 * The request a driver deferred in the access of inst running on this
 * thread, or NULL: how a driver's layers below the model (the PCI core)
 * find out that the -EINPROGRESS coming up from the model is a deferral.
 */
struct vfpm_request *vfpm_request_deferred(struct vfpm_instance *inst);
/*
 * What the completion must finish for the driver, set before its op
 * returns -EINPROGRESS.  add_put: drop a runtime PM usage reference of dev
 * (the access's, which keeps the device awake until then).  set_done: the
 * access was split and done bytes were done before the deferred piece; the
 * result becomes done plus the model's bytes, done alone when the model
 * failed (or returned 0), the model's error when done is 0, and -EIO for
 * a model's 0 with nothing done before (as a piece done inline).
 */
void vfpm_request_add_put(struct vfpm_request *req, struct vfpm_device *dev);
void vfpm_request_set_done(struct vfpm_request *req, size_t done);

#endif /* VFPM_DEVICE_INTERNAL_H */
