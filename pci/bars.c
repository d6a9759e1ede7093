// SPDX-License-Identifier: MIT
/*
 * BAR memory and the revocation of the user's mappings.
 *
 * A BAR with mappable areas (the whole BAR, or pages of a BAR whose
 * registers trap) is a memfd, or the model's own file from fd_offset on: the
 * user maps its areas, and the model works on its own mapping (`host`) of the
 * whole BAR.  The memfd is made when a client first asks for it (region
 * info) and closed after the last close, so that an idle device holds no fd
 * for its memory: without it, `host` is private anonymous memory, exactly
 * what a revoked BAR keeps its contents in, and making the file is a
 * restoration (bar_file_create).  Accesses outside the areas go to the model's bar_rw.  To revoke
 * the user's mappings (low power, memory disabled, D3hot) the file is
 * truncated to where the BAR starts, so every user access faults with
 * SIGBUS, while the contents move to anonymous memory mapped at the same
 * `host` address, so the model's pointer stays valid.  Restoring empties the
 * file, grows it again, writes the contents back and maps it at `host`
 * again; the user's old mappings see the same bytes as before.
 *
 * A sleeping device must not cost more than an awake one, so only pages that
 * hold something move: a page of zeros is the same as a hole in the file or
 * an untouched anonymous page, and is never stored.  The revocation copies
 * the file's data pages (SEEK_DATA finds them, swapped out ones too) that are
 * not all zeros into a private anonymous mapping, whose other pages stay
 * unallocated; the restoration writes back the pages of that mapping that
 * were ever touched (the copied ones and any the model wrote while revoked,
 * present or swapped in /proc/self/pagemap; every page when that cannot be
 * read) and are not all zeros.  A BAR whose memory was never written costs
 * no page, awake or asleep.
 *
 * The user holds a writable fd of the memfd, so it can truncate the file
 * too.  `host` is guarded memory (base.h): an access by the model or the
 * core to a page the user truncated away reads zeros instead of killing the
 * process, and the fault is counted.  pci_bars_repair then logs it and
 * rebuilds the file (a revoke and a restore); a revocation after such a fault
 * reads the whole BAR through `host`, since the guard's pages are not in the
 * file.  A user that grows the file while the BAR is revoked sees only its
 * own writes: the device's bytes are in host, and restoring empties the file
 * before writing them back.
 */
#include "pci_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

bool pci_memory_enabled(struct vfpm_pci_dev *pdev)
{
	return vfpm_pcicfg_memory_enabled(&pdev->cfg) &&
	       vfpm_pcicfg_power_state(&pdev->cfg) == VFPM_PCI_D0;
}

static uint64_t page_size(void)
{
	return (uint64_t)sysconf(_SC_PAGESIZE);
}

static int bar_desc_error(struct vfpm_pci_dev *pdev, unsigned int index, const char *why)
{
	vfpm_logf(VFPM_LOG_ERR, "%s: BAR%u cannot have mappable memory: %s", pdev->name, index,
		  why);
	return -EINVAL;
}

int pci_bar_check_desc(struct vfpm_pci_dev *pdev, unsigned int index)
{
	struct pci_bar *bar = &pdev->bars[index];
	const struct vfpm_pci_bar_desc *d = bar->desc;
	uint64_t page = page_size(), end = 0;
	struct stat st;

	bar->nr_areas = 0;
	if (!d->mappable && !d->nr_areas) {
		if (d->own_fd)
			return bar_desc_error(pdev, index, "own_fd without mappable memory");
		return 0;
	}
	if (d->type == VFPM_PCI_BAR_IO)
		return bar_desc_error(pdev, index, "an I/O BAR");
	if (d->size % page)
		return bar_desc_error(pdev, index, "its size is not a multiple of the page size");
	if (d->mappable) {
		bar->nr_areas = 1;
		bar->areas[0] = (struct vfpm_pci_bar_area){ 0, d->size };
	} else {
		if (d->nr_areas > VFPM_PCI_BAR_AREAS_MAX)
			return bar_desc_error(pdev, index, "more than VFPM_PCI_BAR_AREAS_MAX areas");
		for (unsigned int i = 0; i < d->nr_areas; i++) {
			const struct vfpm_pci_bar_area *a = &d->areas[i];

			if (!a->size || a->offset % page || a->size % page)
				return bar_desc_error(pdev, index, "an area is empty or not "
						      "page-aligned");
			if (a->offset < end || a->offset > d->size || a->size > d->size - a->offset)
				return bar_desc_error(pdev, index, "areas overlap, are out of order "
						      "or leave the BAR");
			end = a->offset + a->size;
			bar->areas[bar->nr_areas++] = *a;
		}
	}
	if (d->own_fd) {
		if (d->fd_offset % page || d->fd_offset > (uint64_t)INT64_MAX - d->size)
			return bar_desc_error(pdev, index, "fd_offset is not page-aligned");
		if (fstat(d->fd, &st) < 0 || !S_ISREG(st.st_mode))
			return bar_desc_error(pdev, index, "own fd is not an open regular file "
					      "(a memfd or a tmpfs file)");
	}
	return 0;
}

bool pci_bar_piece(const struct pci_bar *bar, uint64_t offset, size_t *count)
{
	for (unsigned int i = 0; i < bar->nr_areas; i++) {
		const struct vfpm_pci_bar_area *a = &bar->areas[i];

		if (offset < a->offset) {
			/* Trapped up to this area. */
			if (*count > a->offset - offset)
				*count = a->offset - offset;
			return false;
		}
		if (offset < a->offset + a->size) {
			if (*count > a->offset + a->size - offset)
				*count = a->offset + a->size - offset;
			return true;
		}
	}
	return false;
}

/*
 * The memory of a BAR: the model's file from fd_offset on, or until a client
 * asks for the file, private anonymous memory at host (the memfd comes later,
 * bar_file_create).  Private rather than MAP_SHARED|MAP_ANONYMOUS: that is
 * the state a revoked BAR is in, so creating the file is a restoration, and
 * the pagemap says which of its pages were ever touched (swapped ones too).
 */
static int bar_map_memory(struct pci_bar *bar)
{
	size_t size = bar->desc->size;
	off_t end;

	if (!bar->desc->own_fd) {
		bar->fd_offset = 0;
		bar->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				 -1, 0);
		if (bar->host == MAP_FAILED) {
			bar->host = NULL;
			return -errno;
		}
		/* One page of data must not take a huge page; failing only costs memory. */
		(void)madvise(bar->host, size, MADV_NOHUGEPAGE);
		return vfpm_memguard_add(bar->host, size, PROT_READ | PROT_WRITE, &bar->guard);
	}
	bar->memfd = fcntl(bar->desc->fd, F_DUPFD_CLOEXEC, 0);
	bar->fd_offset = bar->desc->fd_offset;
	if (bar->memfd < 0)
		return -errno;
	end = (off_t)(bar->fd_offset + size);
	if (ftruncate(bar->memfd, end) < 0)
		return -errno;
	bar->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, bar->memfd,
			 (off_t)bar->fd_offset);
	if (bar->host == MAP_FAILED) {
		bar->host = NULL;
		return -errno;
	}
	return vfpm_memguard_add(bar->host, size, PROT_READ | PROT_WRITE, &bar->guard);
}

int pci_bars_init(struct vfpm_pci_dev *pdev)
{
	for (unsigned int i = 0; i < 6; i++) {
		struct pci_bar *bar = &pdev->bars[i];
		int err;

		bar->memfd = -1;
		if (bar->desc->type == VFPM_PCI_BAR_NONE || !bar->nr_areas)
			continue;
		err = bar_map_memory(bar);
		if (err)
			return err;
	}
	return 0;
}

void pci_bars_release(struct vfpm_pci_dev *pdev)
{
	for (unsigned int i = 0; i < 6; i++) {
		struct pci_bar *bar = &pdev->bars[i];

		vfpm_memguard_remove(bar->guard);
		bar->guard = NULL;
		if (bar->host)
			munmap(bar->host, bar->desc->size);
		if (bar->memfd >= 0)
			close(bar->memfd);
		bar->host = NULL;
		bar->memfd = -1;
	}
}

static bool page_is_zero(const uint8_t *p, size_t len)
{
	return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

/*
 * Copy the pages of [from, to) (BAR offsets, page-aligned) of host that are
 * not all zeros to anon; the others stay untouched there, never allocated.
 * host is guarded: a page the user truncated away reads as zeros.
 */
static void copy_nonzero_pages(uint8_t *anon, const uint8_t *host, uint64_t from, uint64_t to)
{
	uint64_t page = page_size();

	for (uint64_t off = from; off < to; off += page)
		if (!page_is_zero(host + off, page))
			memcpy(anon + off, host + off, page);
}

/*
 * Copy what the BAR holds to anon (the size of the BAR, all of it untouched).
 * Holes of the file hold nothing to copy.  When the guard patched pages of
 * host (their bytes are not in the file) or the file is short, the whole BAR
 * is read through host instead.
 */
static void bar_copy_contents(struct pci_bar *bar, uint8_t *anon)
{
	uint64_t page = page_size(), start = bar->fd_offset, end = start + bar->desc->size;
	uint64_t pos = start;
	struct stat st;

	if (vfpm_memguard_faults(bar->guard) || fstat(bar->memfd, &st) < 0 ||
	    (uint64_t)st.st_size < end) {
		copy_nonzero_pages(anon, bar->host, 0, bar->desc->size);
		return;
	}
	while (pos < end) {
		off_t data = lseek(bar->memfd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;		/* nothing but holes from pos on */
		if (data < 0) {
			/* No SEEK_DATA here: take the rest as data. */
			data = (off_t)pos;
			hole = (off_t)end;
		} else {
			hole = lseek(bar->memfd, data, SEEK_HOLE);
			if (hole <= data || (uint64_t)hole > end)
				hole = (off_t)end;
		}
		if ((uint64_t)data >= end)
			break;
		copy_nonzero_pages(anon, bar->host, ((uint64_t)data - start) & ~(page - 1),
				   ((uint64_t)hole - start + page - 1) & ~(page - 1));
		pos = start + (((uint64_t)hole - start + page - 1) & ~(page - 1));
	}
}

/* Move the contents to anonymous memory at host, then empty the memfd. */
static int bar_revoke(struct pci_bar *bar)
{
	size_t size = bar->desc->size;
	void *anon = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (anon == MAP_FAILED)
		return -errno;
	/* One page of data must not take a huge page; failing only costs memory. */
	(void)madvise(anon, size, MADV_NOHUGEPAGE);
	bar_copy_contents(bar, anon);
	if (mremap(anon, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, bar->host) == MAP_FAILED) {
		int err = -errno;

		munmap(anon, size);
		return err;
	}
	if (ftruncate(bar->memfd, (off_t)bar->fd_offset) < 0)
		return -errno;
	bar->revoked = true;
	return 0;
}

/*
 * The revocation's last resort, when the contents cannot be moved (out of
 * memory): the user's mappings must go all the same (a promise the device
 * made: no access while revoked), so the file is emptied where it is and its
 * contents are lost.  The model's accesses to host then read zeros (guarded).
 */
static int bar_revoke_losing_contents(struct pci_bar *bar)
{
	if (ftruncate(bar->memfd, (off_t)bar->fd_offset) < 0)
		return -errno;
	bar->revoked = true;
	bar->contents_lost = true;
	return 0;
}

#define PAGEMAP_PRESENT (1ull << 63)
#define PAGEMAP_SWAPPED (1ull << 62)
#define PAGEMAP_CHUNK 512
/*
 * The restorations of one pass over the BARs share one open of
 * /proc/self/pagemap (an open costs as much as the rest of a small BAR's
 * restoration): an fd, or one of these.
 */
#define PAGEMAP_NOT_OPEN (-1)
#define PAGEMAP_UNAVAILABLE (-2)

static void pagemap_close(int pagemap)
{
	if (pagemap >= 0)
		close(pagemap);
}

/*
 * Write [off, off + len) of host to the file with pwrite, not through a
 * mapping of ours: the user may truncate the file again at any moment, and
 * a write never faults.
 */
static int bar_pwrite(struct pci_bar *bar, uint64_t off, uint64_t len)
{
	const uint8_t *src = (const uint8_t *)bar->host + off;
	uint64_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(bar->memfd, src + done, len - done,
				   (off_t)(bar->fd_offset + off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (uint64_t)n;
	}
	return 0;
}

/*
 * Was each of the n pages from addr on ever touched (present or swapped out
 * in the page tables)?  A page never touched is none, and reads as zeros.
 * Without a pagemap, every page may have been.
 */
static void pages_touched(int pagemap, const uint8_t *addr, size_t n, bool *touched)
{
	uint64_t page = page_size(), entries[PAGEMAP_CHUNK];
	size_t got = 0;

	if (pagemap >= 0) {
		off_t at = (off_t)((uintptr_t)addr / page * sizeof(entries[0]));
		ssize_t r;

		do
			r = pread(pagemap, entries, n * sizeof(entries[0]), at);
		while (r < 0 && errno == EINTR);
		if (r > 0)
			got = (size_t)r / sizeof(entries[0]);
	}
	for (size_t i = 0; i < n; i++)
		touched[i] = i >= got || (entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED));
}

/*
 * Write back the pages of the anonymous copy at host that were touched and
 * are not all zeros (the file is all holes): the copied pages and whatever
 * the model wrote while revoked.
 */
static int bar_write_back(struct pci_bar *bar, int *pagemap)
{
	uint64_t page = page_size(), size = bar->desc->size, run = 0, run_len = 0;
	const uint8_t *host = bar->host;
	bool touched[PAGEMAP_CHUNK];
	int err = 0;

	if (*pagemap == PAGEMAP_NOT_OPEN) {
		*pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		if (*pagemap < 0)
			*pagemap = PAGEMAP_UNAVAILABLE;
	}

	for (uint64_t off = 0; off < size && !err;) {
		size_t n = (size_t)((size - off) / page < PAGEMAP_CHUNK ? (size - off) / page :
				   PAGEMAP_CHUNK);

		pages_touched(*pagemap, host + off, n, touched);
		for (size_t i = 0; i < n && !err; i++, off += page) {
			if (touched[i] && !page_is_zero(host + off, page)) {
				if (!run_len)
					run = off;
				run_len += page;
				continue;
			}
			if (run_len)
				err = bar_pwrite(bar, run, run_len);
			run_len = 0;
		}
	}
	if (!err && run_len)
		err = bar_pwrite(bar, run, run_len);
	return err;
}

/*
 * Empty the file (whatever a user wrote to it while revoked goes), grow it
 * again, write the contents back and map it at host again.
 */
static int bar_restore(struct pci_bar *bar, int *pagemap)
{
	size_t size = bar->desc->size;
	int err;

	if (ftruncate(bar->memfd, (off_t)bar->fd_offset) < 0 ||
	    ftruncate(bar->memfd, (off_t)(bar->fd_offset + size)) < 0)
		return -errno;
	/* Revoked in place: nothing to write back, the file is all zeros. */
	if (!bar->contents_lost) {
		err = bar_write_back(bar, pagemap);
		if (err)
			return err;
	}
	/* Over whatever is at host: the anonymous copy, or pages the guard patched. */
	if (mmap(bar->host, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, bar->memfd,
		 (off_t)bar->fd_offset) == MAP_FAILED)
		return -errno;
	if (bar->contents_lost)
		vfpm_memguard_rearm(bar->guard, bar->host, size);
	bar->contents_lost = false;
	bar->revoked = false;
	return 0;
}

/* Did a user shrink the file under a live BAR? */
static bool bar_lost(struct pci_bar *bar)
{
	struct stat st;

	if (bar->memfd < 0 || bar->revoked)
		return false;
	if (vfpm_memguard_faults(bar->guard))
		return true;
	return fstat(bar->memfd, &st) == 0 &&
	       (uint64_t)st.st_size != bar->fd_offset + bar->desc->size;
}

void pci_bars_repair_locked(struct vfpm_pci_dev *pdev)
{
	int pagemap = PAGEMAP_NOT_OPEN;

	for (unsigned int i = 0; i < 6; i++) {
		struct pci_bar *bar = &pdev->bars[i];
		unsigned int faults;
		int err;

		if (!bar_lost(bar))
			continue;
		faults = vfpm_memguard_faults(bar->guard);
		err = bar_revoke(bar);
		if (!err)
			err = bar_restore(bar, &pagemap);
		vfpm_memguard_rearm(bar->guard, bar->host, bar->desc->size);
		if (err)
			vfpm_logf(VFPM_LOG_ERR, "%s: BAR%u: a client truncated its memory file and "
				  "rebuilding it failed (%s); the BAR stays revoked", pdev->name, i,
				  strerror(-err));
		else
			vfpm_logf(VFPM_LOG_NOTICE, "%s: BAR%u: a client truncated its memory file "
				  "(%u page faults recovered, those pages read as zeros); "
				  "the file is rebuilt", pdev->name, i, faults);
	}
	pagemap_close(pagemap);
}

void pci_bars_repair(struct vfpm_pci_dev *pdev)
{
	bool lost = false;

	pthread_rwlock_rdlock(&pdev->memory_lock);
	for (unsigned int i = 0; i < 6 && !lost; i++)
		lost = bar_lost(&pdev->bars[i]);
	pthread_rwlock_unlock(&pdev->memory_lock);
	if (!lost)
		return;
	pthread_rwlock_wrlock(&pdev->memory_lock);
	pci_bars_repair_locked(pdev);
	pthread_rwlock_unlock(&pdev->memory_lock);
}

/* May the user's mappings be live (memory_lock held)? */
static bool bars_live(struct vfpm_pci_dev *pdev)
{
	return !pdev->pm_runtime_engaged && pci_memory_enabled(pdev);
}

int pci_bars_sync_mmap(struct vfpm_pci_dev *pdev)
{
	bool live = bars_live(pdev);
	int ret = 0, pagemap = PAGEMAP_NOT_OPEN;

	pci_bars_repair_locked(pdev);
	for (unsigned int i = 0; i < 6; i++) {
		struct pci_bar *bar = &pdev->bars[i];
		int err = 0;

		if (bar->memfd < 0 || bar->revoked == !live)
			continue;
		if (live && vfpm_memguard_faults(bar->guard) && !bar->contents_lost) {
			/* Pages a client cut off before the revocation: zeros in the copy. */
			vfpm_logf(VFPM_LOG_NOTICE, "%s: BAR%u: a client truncated its memory file "
				  "(%u page faults recovered, those pages read as zeros)", pdev->name,
				  i, vfpm_memguard_faults(bar->guard));
			vfpm_memguard_rearm(bar->guard, bar->host, bar->desc->size);
		}
		err = live ? bar_restore(bar, &pagemap) : bar_revoke(bar);
		if (err && !live) {
			vfpm_logf(VFPM_LOG_ERR, "%s: BAR%u: cannot keep its contents while revoking "
				  "the user's mappings (%s); revoked all the same, the contents are "
				  "lost", pdev->name, i, strerror(-err));
			err = bar_revoke_losing_contents(bar);
		} else if (err) {
			/* Fail-safe: the user's mappings stay revoked (SIGBUS), never stale. */
			vfpm_logf(VFPM_LOG_ERR, "%s: BAR%u: cannot give the user's mappings back "
				  "(%s); they stay revoked", pdev->name, i, strerror(-err));
		}
		if (err && !ret)
			ret = err;
	}
	pagemap_close(pagemap);
	return ret;
}

/*
 * The first client that asks for a BAR's file makes it (memory_lock held for
 * writing, so neither the core nor a model under vfpm_pci_mem_lock touches
 * host meanwhile).  Until then host is private anonymous memory, the very
 * state a revoked BAR keeps its contents in: the file is born empty and
 * revoked, and when the user's mappings may be live it is restored like any
 * revoked BAR (the touched pages that hold data are written to it, and it is
 * mapped at host).  When that fails, host is still the anonymous memory and
 * the file goes again.
 */
static int bar_file_create(struct vfpm_pci_dev *pdev, struct pci_bar *bar)
{
	int pagemap = PAGEMAP_NOT_OPEN, err = 0;

	bar->memfd = memfd_create("vfpm-bar", MFD_CLOEXEC);
	if (bar->memfd < 0) {
		err = -errno;
		bar->memfd = -1;
		return err;
	}
	bar->revoked = true;
	if (bars_live(pdev))
		err = bar_restore(bar, &pagemap);
	pagemap_close(pagemap);
	if (err) {
		close(bar->memfd);
		bar->memfd = -1;
		bar->revoked = false;
	}
	return err;
}

int pci_bar_file_dup(struct vfpm_pci_dev *pdev, unsigned int index, int *fd)
{
	struct pci_bar *bar = &pdev->bars[index];
	int err = 0;

	*fd = -1;
	pthread_rwlock_rdlock(&pdev->memory_lock);
	if (bar->memfd >= 0) {
		*fd = fcntl(bar->memfd, F_DUPFD_CLOEXEC, 0);
		err = *fd < 0 ? -errno : 0;
		pthread_rwlock_unlock(&pdev->memory_lock);
		return err;
	}
	pthread_rwlock_unlock(&pdev->memory_lock);

	pthread_rwlock_wrlock(&pdev->memory_lock);
	if (bar->memfd < 0)
		err = bar_file_create(pdev, bar);
	if (!err) {
		*fd = fcntl(bar->memfd, F_DUPFD_CLOEXEC, 0);
		err = *fd < 0 ? -errno : 0;
	}
	pthread_rwlock_unlock(&pdev->memory_lock);
	return err;
}

void pci_bars_drop_files_locked(struct vfpm_pci_dev *pdev)
{
	for (unsigned int i = 0; i < 6; i++) {
		struct pci_bar *bar = &pdev->bars[i];

		/*
		 * Only a file of ours, revoked with its contents kept at host
		 * and nothing cut off by a client: then host already is what a
		 * BAR without a file is.
		 */
		if (bar->desc->own_fd || bar->memfd < 0 || !bar->revoked || bar->contents_lost ||
		    vfpm_memguard_faults(bar->guard))
			continue;
		close(bar->memfd);
		bar->memfd = -1;
		bar->revoked = false;
	}
}

void *vfpm_pci_bar_mem(struct vfpm_pci_dev *pdev, unsigned int bar)
{
	return bar < 6 ? pdev->bars[bar].host : NULL;
}

void vfpm_pci_mem_lock(struct vfpm_pci_dev *pdev)
{
	pthread_rwlock_rdlock(&pdev->memory_lock);
}

void vfpm_pci_mem_unlock(struct vfpm_pci_dev *pdev)
{
	pthread_rwlock_unlock(&pdev->memory_lock);
}
