// SPDX-License-Identifier: MIT
/*
 * Guarded memory: recovering from SIGBUS on mappings of files a client can
 * shrink (see base.h for the contract).
 *
 * The handler runs on whichever thread faulted, at any point, so it reads
 * the ranges without a lock: they live in chunks that are appended to a
 * list and never freed, and each slot is published by its state word (its
 * address and length are written before the state says LIVE, and the state
 * leaves LIVE before they change).  Adding and removing take add_lock, which
 * the handler never touches.
 */
#include "base.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK_SLOTS 256

enum { SLOT_FREE, SLOT_LIVE };

struct vfpm_memguard {
	atomic_int state;
	_Atomic uintptr_t start;
	_Atomic size_t len;
	atomic_int prot;
	atomic_uint faults;
};

struct guard_chunk {
	struct vfpm_memguard slots[CHUNK_SLOTS];
	struct guard_chunk *_Atomic next;
};

static struct guard_chunk *_Atomic chunks;
static atomic_ulong total_faults;
static uintptr_t page_size;

/*
 * Protects free_slots and the handler's installation; also serialises
 * appending chunks.
 */
static pthread_mutex_t add_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vfpm_memguard **free_slots;	/* room for every slot there is */
static size_t n_free, cap_free, n_slots;
static bool installed;
static struct sigaction previous;	/* written once, before the handler can run */

/* Hand the fault to whoever handled SIGBUS before us. */
static void chain_previous(int sig, siginfo_t *si, void *uc)
{
	if (previous.sa_flags & SA_SIGINFO) {
		previous.sa_sigaction(sig, si, uc);
		return;
	}
	if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
		return;
	}
	/* Default (or ignored, which a fault cannot be): die of it when the access repeats. */
	signal(SIGBUS, SIG_DFL);
}

static struct vfpm_memguard *find_live(uintptr_t addr)
{
	for (struct guard_chunk *c = atomic_load(&chunks); c; c = atomic_load(&c->next)) {
		for (unsigned int i = 0; i < CHUNK_SLOTS; i++) {
			struct vfpm_memguard *g = &c->slots[i];
			uintptr_t start;

			if (atomic_load(&g->state) != SLOT_LIVE)
				continue;
			start = atomic_load(&g->start);
			if (addr >= start && addr - start < atomic_load(&g->len))
				return g;
		}
	}
	return NULL;
}

static void memguard_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved_errno = errno;
	struct vfpm_memguard *g = NULL;

	/* BUS_ADRERR: an access past the end of the file behind a mapping. */
	if (si->si_code == BUS_ADRERR)
		g = find_live((uintptr_t)si->si_addr);
	if (g) {
		void *page = (void *)((uintptr_t)si->si_addr & ~(page_size - 1));

		/* mmap is a plain system call: safe here, whatever the thread was doing. */
		if (mmap(page, page_size, atomic_load(&g->prot),
			 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) {
			atomic_fetch_add(&g->faults, 1);
			atomic_fetch_add(&total_faults, 1);
			errno = saved_errno;
			return;
		}
	}
	errno = saved_errno;
	chain_previous(sig, si, uc);
}

static int install_handler_locked(bool again)
{
	struct sigaction sa = { .sa_sigaction = memguard_sigbus }, now;

	if (installed && !again)
		return 0;
	if (installed && (sigaction(SIGBUS, NULL, &now) < 0 ||
			  ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == memguard_sigbus)))
		return 0;	/* still ours */
	page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	if (sigaction(SIGBUS, &sa, &previous) < 0)
		return -errno;
	installed = true;
	return 0;
}

int vfpm_memguard_install(void)
{
	int err;

	pthread_mutex_lock(&add_lock);
	err = install_handler_locked(true);
	pthread_mutex_unlock(&add_lock);
	return err;
}

/* Another chunk of free slots (add_lock held). */
static int grow_locked(void)
{
	struct guard_chunk *c;
	struct vfpm_memguard **fs;
	struct guard_chunk *_Atomic *tail;

	if (cap_free < n_slots + CHUNK_SLOTS) {
		size_t cap = cap_free ? cap_free * 2 : CHUNK_SLOTS;

		while (cap < n_slots + CHUNK_SLOTS)
			cap *= 2;
		fs = realloc(free_slots, cap * sizeof(*fs));
		if (!fs)
			return -ENOMEM;
		free_slots = fs;
		cap_free = cap;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (unsigned int i = CHUNK_SLOTS; i-- > 0;)
		free_slots[n_free++] = &c->slots[i];
	n_slots += CHUNK_SLOTS;
	/* Published last: the handler may walk the list at any moment. */
	for (tail = &chunks; atomic_load(tail); tail = &atomic_load(tail)->next)
		;
	atomic_store(tail, c);
	return 0;
}

int vfpm_memguard_add(void *addr, size_t len, int prot, struct vfpm_memguard **out)
{
	struct vfpm_memguard *g;
	int err;

	if (!addr || !len || !out)
		return -EINVAL;
	pthread_mutex_lock(&add_lock);
	err = install_handler_locked(false);
	if (!err && !n_free)
		err = grow_locked();
	if (err) {
		pthread_mutex_unlock(&add_lock);
		return err;
	}
	g = free_slots[--n_free];
	atomic_store(&g->start, (uintptr_t)addr);
	atomic_store(&g->len, len);
	atomic_store(&g->prot, prot);
	atomic_store(&g->faults, 0);
	atomic_store(&g->state, SLOT_LIVE);
	pthread_mutex_unlock(&add_lock);
	*out = g;
	return 0;
}

void vfpm_memguard_remove(struct vfpm_memguard *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&add_lock);
	atomic_store(&g->state, SLOT_FREE);
	/* There is room: every slot had its place in free_slots when its chunk came. */
	free_slots[n_free++] = g;
	pthread_mutex_unlock(&add_lock);
}

unsigned int vfpm_memguard_faults(const struct vfpm_memguard *g)
{
	return g ? atomic_load(&g->faults) : 0;
}

void vfpm_memguard_rearm(struct vfpm_memguard *g, void *addr, size_t len)
{
	atomic_store(&g->state, SLOT_FREE);
	atomic_store(&g->start, (uintptr_t)addr);
	atomic_store(&g->len, len);
	atomic_store(&g->faults, 0);
	atomic_store(&g->state, SLOT_LIVE);
}

unsigned long vfpm_memguard_total_faults(void)
{
	return atomic_load(&total_faults);
}
