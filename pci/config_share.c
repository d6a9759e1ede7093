// SPDX-License-Identifier: MIT
/*
 * Configuration space layouts shared by the functions built alike: the
 * power-on bytes and the write masks are 12 KiB a function and never change
 * once it is built, while a process may serve thousands of identical
 * devices.  A built layout joins the list of shared ones, or drops itself
 * for an equal one already there.
 */
#include "config.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Protects shared_layouts and every shared layout's users and next. */
static pthread_mutex_t share_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vfpm_pcicfg_layout *shared_layouts;

/* The bytes two layouts must have equal to be one. */
#define LAYOUT_BYTES offsetof(struct vfpm_pcicfg_layout, shared)

/* FNV-1a over the arrays: most layouts differ early, only equal ones are compared whole. */
static uint64_t layout_hash(const struct vfpm_pcicfg_layout *l)
{
	const uint8_t *p = (const uint8_t *)l;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < LAYOUT_BYTES; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

static void point_at(struct vfpm_pcicfg *cfg, struct vfpm_pcicfg_layout *l)
{
	cfg->layout = l;
	cfg->power_on = l->power_on;
	cfg->wmask = l->wmask;
	cfg->w1cmask = l->w1cmask;
}

void vfpm_pcicfg_share(struct vfpm_pcicfg *cfg)
{
	struct vfpm_pcicfg_layout *own = cfg->layout, *l;

	if (!own || own->shared)
		return;
	own->hash = layout_hash(own);
	pthread_mutex_lock(&share_lock);
	for (l = shared_layouts; l; l = l->next)
		if (l->hash == own->hash && !memcmp(l, own, LAYOUT_BYTES))
			break;
	if (l) {
		l->users++;
		point_at(cfg, l);
	} else {
		own->shared = true;
		own->users = 1;
		own->next = shared_layouts;
		shared_layouts = own;
	}
	pthread_mutex_unlock(&share_lock);
	if (l)
		free(own);
}

void vfpm_pcicfg_release(struct vfpm_pcicfg *cfg)
{
	struct vfpm_pcicfg_layout *l = cfg->layout, **link;
	bool last = true;

	if (!l)
		return;
	if (l->shared) {
		pthread_mutex_lock(&share_lock);
		last = --l->users == 0;
		for (link = &shared_layouts; last && *link; link = &(*link)->next)
			if (*link == l) {
				*link = l->next;
				break;
			}
		pthread_mutex_unlock(&share_lock);
	}
	if (last)
		free(l);
	cfg->layout = NULL;
	cfg->power_on = cfg->wmask = cfg->w1cmask = NULL;
}
