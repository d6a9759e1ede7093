// SPDX-License-Identifier: MIT
/*
 * The model's own configuration capabilities (desc.caps): building them
 * into the space, and running their hooks on the user's accesses.
 */
#include "pci_internal.h"

#include <errno.h>
#include <string.h>

static int pci_cap_refused(struct vfpm_pci_dev *pdev, unsigned int i, int err, const char *why)
{
	vfpm_logf(VFPM_LOG_ERR, "%s: capability %u (id %#x) refused: %s", pdev->name, i,
		  pdev->desc.caps ? pdev->desc.caps[i].id : 0, why);
	return err;
}

int pci_caps_build(struct vfpm_pci_dev *pdev)
{
	const struct vfpm_pci_desc *d = &pdev->desc;

	if (d->nr_caps > VFPM_PCI_CAPS_MAX || (d->nr_caps && !d->caps)) {
		vfpm_logf(VFPM_LOG_ERR, "%s: %u capabilities, at most %u, in desc.caps",
			  pdev->name, d->nr_caps, VFPM_PCI_CAPS_MAX);
		return -EINVAL;
	}
	for (unsigned int i = 0; i < d->nr_caps; i++) {
		const struct vfpm_pci_cap_desc *c = &d->caps[i];
		struct pci_model_cap *mc = &pdev->caps[i];
		uint16_t off = 0;
		int err;

		if (c->size % 4 || c->size < 4)
			return pci_cap_refused(pdev, i, -EINVAL, "its size is not a multiple "
					       "of 4 bytes");
		if (c->extended && !d->pcie_cap)
			return pci_cap_refused(pdev, i, -EINVAL, "an extended capability needs "
					       "the PCI Express capability (pcie_cap)");
		if (!c->extended && c->id > 0xff)
			return pci_cap_refused(pdev, i, -EINVAL, "a standard capability ID is "
					       "8 bits");
		if (c->extended)
			err = vfpm_pcicfg_add_ext_cap(&pdev->cfg, c->id, c->version, c->size,
						      c->data, c->wmask, &off);
		else
			err = vfpm_pcicfg_add_model_cap(&pdev->cfg, (uint8_t)c->id, c->size,
							c->data, c->wmask, &off);
		if (err)
			return pci_cap_refused(pdev, i, err, err == -ENOSPC ?
					       "no room left in the configuration space" :
					       "a bad version or size");
		mc->desc = *c;
		mc->desc.data = mc->desc.wmask = NULL;	/* the caller's, not kept */
		mc->offset = off;
	}
	pdev->nr_caps = d->nr_caps;
	pdev->desc.caps = NULL;
	pdev->desc.nr_caps = 0;
	return 0;
}

bool pci_caps_hooked(struct vfpm_pci_dev *pdev, uint64_t pos, size_t count, bool write)
{
	for (unsigned int i = 0; i < pdev->nr_caps; i++) {
		const struct pci_model_cap *mc = &pdev->caps[i];

		if ((write ? !!mc->desc.write : !!mc->desc.read) &&
		    pos < (uint64_t)mc->offset + mc->desc.size && pos + count > mc->offset)
			return true;
	}
	return false;
}

/*
 * Run the read or write hooks on the part of [pos, pos + count) each hooked
 * capability covers, in pieces that never cross a dword; buf holds the
 * bytes of the whole range.  The first error ends it.
 */
int pci_caps_run_hooks(struct vfpm_pci_dev *pdev, struct vfpm_instance *inst, uint64_t pos,
		       uint8_t *buf, size_t count, bool write)
{
	for (unsigned int i = 0; i < pdev->nr_caps; i++) {
		const struct pci_model_cap *mc = &pdev->caps[i];
		uint64_t start = pos > mc->offset ? pos : mc->offset;
		uint64_t end = pos + count;

		if (write ? !mc->desc.write : !mc->desc.read)
			continue;
		if (end > (uint64_t)mc->offset + mc->desc.size)
			end = (uint64_t)mc->offset + mc->desc.size;
		while (start < end) {
			unsigned int n = 4 - (unsigned int)(start & 3);
			unsigned int rel = (unsigned int)(start - mc->offset);
			int err;

			if (n > end - start)
				n = (unsigned int)(end - start);
			if (write)
				err = mc->desc.write(pdev, inst, mc->desc.opaque, rel,
						     buf + (start - pos), n);
			else
				err = mc->desc.read(pdev, inst, mc->desc.opaque, rel,
						    buf + (start - pos), n);
			if (err)
				return err < 0 ? err : -EIO;
			start += n;
		}
	}
	return 0;
}

unsigned int vfpm_pci_cap_offset(struct vfpm_pci_dev *pdev, unsigned int i)
{
	return i < pdev->nr_caps ? pdev->caps[i].offset : 0;
}

int vfpm_pci_cfg_raw_read(struct vfpm_pci_dev *pdev, unsigned int offset, unsigned int size,
			  uint32_t *value)
{
	return vfpm_pcicfg_host_read(&pdev->cfg, offset, size, value);
}

int vfpm_pci_cfg_raw_write(struct vfpm_pci_dev *pdev, unsigned int offset, unsigned int size,
			   uint32_t value)
{
	return vfpm_pcicfg_host_write(&pdev->cfg, offset, size, value);
}
