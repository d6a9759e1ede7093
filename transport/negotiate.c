// SPDX-License-Identifier: MIT
/*
 * VERSION capability negotiation with json-c.
 */
#include "negotiate.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "wire.h"

void vfpm_caps_defaults(struct vfpm_caps *caps)
{
	*caps = (struct vfpm_caps){
		.max_msg_fds = VFIO_USER_DEF_MAX_MSG_FDS,
		.max_data_xfer_size = VFIO_USER_DEF_MAX_DATA_XFER,
		.max_dma_maps = VFIO_USER_DEF_MAX_DMA_MAPS,
		.pgsizes = VFIO_USER_DEF_PGSIZES,
		.write_multiple = false,
		.twin_socket = false,
		.twin_fd_index = -1,
	};
}

/* A non-negative JSON integer no larger than max. */
static int json_get_uint(struct json_object *obj, const char *name, uint64_t max, uint64_t *out)
{
	struct json_object *v;
	uint64_t u;

	if (!json_object_object_get_ex(obj, name, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return -EINVAL;
	u = json_object_get_uint64(v);
	if (u > max)
		return -EINVAL;
	*out = u;
	return 1;
}

static int parse_twin_socket(struct json_object *t, struct vfpm_caps *caps)
{
	struct json_object *v;
	uint64_t u;
	int ret;

	if (!json_object_is_type(t, json_type_object))
		return -EINVAL;
	if (json_object_object_get_ex(t, "supported", &v)) {
		if (!json_object_is_type(v, json_type_boolean))
			return -EINVAL;
		caps->twin_socket = json_object_get_boolean(v);
	}
	ret = json_get_uint(t, "fd_index", INT32_MAX, &u);
	if (ret < 0)
		return ret;
	if (ret)
		caps->twin_fd_index = (int32_t)u;
	return 0;
}

static int parse_capabilities(struct json_object *c, struct vfpm_caps *caps)
{
	struct json_object *v;
	uint64_t u;
	int ret;

	ret = json_get_uint(c, "max_msg_fds", UINT32_MAX, &u);
	if (ret < 0)
		return ret;
	if (ret)
		caps->max_msg_fds = (uint32_t)u;

	ret = json_get_uint(c, "max_data_xfer_size", UINT32_MAX, &u);
	if (ret < 0 || (ret && u == 0))
		return -EINVAL;
	if (ret)
		caps->max_data_xfer_size = (uint32_t)u;

	ret = json_get_uint(c, "max_dma_maps", UINT32_MAX, &u);
	if (ret < 0)
		return ret;
	if (ret)
		caps->max_dma_maps = (uint32_t)u;

	ret = json_get_uint(c, "pgsizes", UINT64_MAX, &u);
	if (ret < 0)
		return ret;
	if (ret)
		caps->pgsizes = u;

	if (json_object_object_get_ex(c, "write_multiple", &v)) {
		if (!json_object_is_type(v, json_type_boolean))
			return -EINVAL;
		caps->write_multiple = json_object_get_boolean(v);
	}
	if (json_object_object_get_ex(c, "twin_socket", &v))
		return parse_twin_socket(v, caps);
	return 0;
}

int vfpm_caps_parse(const void *data, size_t len, struct vfpm_caps *caps)
{
	struct json_tokener *tok;
	struct json_object *root, *c;
	int err = 0;

	len = strnlen(data ? data : "", len);
	if (!len)
		return 0;
	if (len > INT_MAX)
		return -EINVAL;
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
	root = json_tokener_parse_ex(tok, data, (int)len);
	if (!root || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		err = -EINVAL;
	} else if (!json_object_is_type(root, json_type_object)) {
		err = -EINVAL;
	} else if (json_object_object_get_ex(root, "capabilities", &c)) {
		if (!json_object_is_type(c, json_type_object))
			err = -EINVAL;
		else
			err = parse_capabilities(c, caps);
	}
	json_object_put(root);
	json_tokener_free(tok);
	return err;
}

char *vfpm_caps_format(const struct vfpm_caps *caps)
{
	struct json_object *root = json_object_new_object();
	struct json_object *c = json_object_new_object();
	char *text = NULL;

	if (!root || !c) {
		json_object_put(root);
		json_object_put(c);
		return NULL;
	}
	json_object_object_add(c, "max_msg_fds", json_object_new_int64(caps->max_msg_fds));
	json_object_object_add(c, "max_data_xfer_size",
			       json_object_new_int64(caps->max_data_xfer_size));
	json_object_object_add(c, "max_dma_maps", json_object_new_int64(caps->max_dma_maps));
	json_object_object_add(c, "pgsizes", json_object_new_uint64(caps->pgsizes));
	if (caps->write_multiple)
		json_object_object_add(c, "write_multiple", json_object_new_boolean(1));
	if (caps->twin_socket) {
		struct json_object *t = json_object_new_object();

		if (!t) {
			json_object_put(root);
			json_object_put(c);
			return NULL;
		}
		json_object_object_add(t, "supported", json_object_new_boolean(1));
		if (caps->twin_fd_index >= 0)
			json_object_object_add(t, "fd_index",
					       json_object_new_int64(caps->twin_fd_index));
		json_object_object_add(c, "twin_socket", t);
	}
	json_object_object_add(root, "capabilities", c);
	text = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return text;
}
