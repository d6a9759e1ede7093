// SPDX-License-Identifier: MIT
/*
 * Capabilities a device model adds to its configuration space: standard
 * ones after the core's (vendor-specific ones may repeat, as virtio's do),
 * and PCI Express extended ones in the list at 0x100.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

/* Power-on bytes and write masks of a capability's body, byte by byte. */
static void define_body(struct vfpm_pcicfg *cfg, unsigned int off, unsigned int len,
			const void *data, const void *wmask)
{
	const uint8_t *d = data, *w = wmask;

	for (unsigned int i = 0; i < len; i++)
		vfpm_pcicfg_define_reg(cfg, off + i, 1, d ? d[i] : 0, w ? w[i] : 0, 0);
}

int vfpm_pcicfg_add_model_cap(struct vfpm_pcicfg *cfg, uint8_t cap_id, unsigned int size,
			      const void *data, const void *wmask, uint16_t *offset)
{
	uint16_t off;
	int err;

	if (!cfg || size < 4 || size % 4 || size > PCI_CFG_SPACE_SIZE)
		return -EINVAL;
	err = vfpm_pcicfg_link_cap(cfg, cap_id, size, &off);
	if (err < 0)
		return err;
	define_body(cfg, off + 2, size - 2, data, wmask);
	/* A vendor-specific capability states its length in its third byte. */
	if (cap_id == PCI_CAP_ID_VNDR && !cfg->power_on[off + PCI_CAP_FLAGS])
		vfpm_pcicfg_define_reg(cfg, off + PCI_CAP_FLAGS, 1, size, 0, 0);
	if (offset)
		*offset = off;
	return 0;
}

int vfpm_pcicfg_add_ext_cap(struct vfpm_pcicfg *cfg, uint16_t cap_id, uint8_t version,
			    unsigned int size, const void *data, const void *wmask,
			    uint16_t *offset)
{
	unsigned int off;

	if (!cfg || size < 4 || size % 4 || version > 0xf)
		return -EINVAL;
	off = cfg->ext_free ? cfg->ext_free : PCI_CFG_SPACE_SIZE;
	if (off + size > VFPM_PCICFG_SIZE)
		return -ENOSPC;
	/* Header: ID, version, next (0: the end of the list). */
	vfpm_pcicfg_define_reg(cfg, off, 4, cap_id | (uint32_t)version << 16, 0, 0);
	define_body(cfg, off + 4, size - 4, data, wmask);
	if (cfg->ext_last) {
		unsigned int prev = cfg->ext_last;
		uint32_t header = cfg->power_on[prev] | cfg->power_on[prev + 1] << 8 |
				  (uint32_t)cfg->power_on[prev + 2] << 16 |
				  (uint32_t)cfg->power_on[prev + 3] << 24;

		vfpm_pcicfg_define_reg(cfg, prev, 4, (header & 0xfffffu) | off << 20, 0, 0);
	}
	cfg->ext_last = (uint16_t)off;
	cfg->ext_free = (uint16_t)(off + size);
	if (offset)
		*offset = (uint16_t)off;
	return 0;
}
