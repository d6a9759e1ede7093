/* SPDX-License-Identifier: MIT */
/*
 * The guest programs' view of their function's configuration space, through
 * sysfs's config file (cfg_fd, opened by the program): reads, a 16-bit
 * write, the PM capability and a PMCSR power-state change.  Header-only,
 * like guest-report.h: each guest program is one static binary.
 */
#ifndef VFPM_INTEROP_GUEST_PCI_H
#define VFPM_INTEROP_GUEST_PCI_H

#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#define CFG_CAP_PTR 0x34
#define CAP_ID_PM 0x01
#define PM_PMC 2
#define PM_PMCSR 4
#define PMCSR_STATE_MASK 0x3
#define PMCSR_D3HOT 0x3
#define PMCSR_NO_SOFT_RESET 0x8
#define PMCSR_PME_STATUS 0x8000

static int cfg_fd = -1;

static inline int cfg_read(unsigned int off, void *buf, size_t len)
{
	return pread(cfg_fd, buf, len, off) == (ssize_t)len ? 0 : -1;
}

/* All ones when the read fails, as an absent function reads. */
static inline uint8_t cfg8(unsigned int off)
{
	uint8_t v = 0xff;

	cfg_read(off, &v, 1);
	return v;
}

static inline uint16_t cfg16(unsigned int off)
{
	uint16_t v = 0xffff;

	cfg_read(off, &v, 2);
	return v;
}

static inline int cfg_write16(unsigned int off, uint16_t v)
{
	return pwrite(cfg_fd, &v, 2, off) == 2 ? 0 : -1;
}

/* The PM capability's offset, or 0 (a bounded walk of the list). */
static inline unsigned int find_pm_cap(void)
{
	unsigned int pos = cfg8(CFG_CAP_PTR) & ~3u;

	for (int guard = 0; pos && pos < 256 && guard < 48; guard++, pos = cfg8(pos + 1) & ~3u)
		if (cfg8(pos) == CAP_ID_PM)
			return pos;
	return 0;
}

/* PMCSR's state field to STATE, keeping the rest (PME_Status is write-1-to-clear). */
static inline int set_power_state(unsigned int pm, unsigned int state)
{
	uint16_t v = cfg16(pm + PM_PMCSR);

	v = (uint16_t)((v & ~(PMCSR_STATE_MASK | PMCSR_PME_STATUS)) | state);
	return cfg_write16(pm + PM_PMCSR, v);
}

#endif /* VFPM_INTEROP_GUEST_PCI_H */
