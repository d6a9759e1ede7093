// SPDX-License-Identifier: MIT
/*
 * guest-check: runs inside the Linux guest (static, no libc needed there)
 * and looks at vfpm's memory device as QEMU's vfio-user client presents it,
 * through sysfs only: no driver is bound.
 *
 *   guest-check [--d3-bar0] [--no-d3hot] [--dma] [--poller-act SECONDS] [VVVV:DDDD]
 *
 * --dma: the memory device's DMA engine copies a page of the guest's RAM
 * into BAR0 and back out into another page.
 *
 * --poller-act: the polling device (1b36:00f2) in D0, D3hot and D0 again,
 * SECONDS each, between @@PHASE NAME@@ lines for the host's CPU figures.
 *                                (default 1b36:00f0, the memory device)
 *
 * Steps, each printed as "check: NAME: ok|FAIL ...":
 *   enumerate  every PCI function, lspci -nn style; the device is found
 *   config     config space read (size, header, capability lists)
 *   command    COMMAND.MEM set through the sysfs config file
 *   bar0       mmap of resource0: a pattern written and read back, and read
 *              again through a second mapping
 *   bar2       mmap of resource2: the ID register is "MEM0", the scratch
 *              register keeps a write
 *   d3hot      PMCSR written to D3hot and read back, BAR2's ID register
 *              read (QEMU 11.1 disables the BARs in D3hot: it reads 0
 *              without asking the server), back to D0, both BARs again
 * --no-d3hot leaves the d3hot step out. With --d3-bar0 it then puts the
 * device in D3hot once more and touches BAR0 through a mapping (what a guest
 * that touches a sleeping device does to QEMU; run last, in case it ends the
 * VM).
 *
 * The last line is "guest-check: PASS" or "guest-check: FAIL (N failed)";
 * the exit status is 0 or 1.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "guest-pci.h"
#include "guest-report.h"

#define SYS_PCI "/sys/bus/pci/devices"

/* Config space offsets and bits, spelled out to keep the program standalone. */
#define CFG_COMMAND 0x04
#define CFG_COMMAND_MEMORY 0x2
#define CFG_STATUS 0x06
#define CFG_STATUS_CAP_LIST 0x10

/* The memory device's DMA engine (samples/devices/devices.h). */
#define MEMDEV_REG_DMA_ADDR 0x20
#define MEMDEV_REG_DMA_LEN 0x28
#define MEMDEV_REG_DMA_OFF 0x2c
#define MEMDEV_REG_DMA_CMD 0x30
#define MEMDEV_REG_DMA_STATUS 0x34
#define MEMDEV_DMA_TO_BAR 1u
#define MEMDEV_DMA_FROM_BAR 2u
#define CFG_COMMAND_MASTER 0x4
#define POLLER_MAGIC 0x4d504656u	/* "VFPM": the polling device's register 0 in BAR0 */
#define MEMDEV_REG_ID 0x00
#define MEMDEV_ID 0x4d454d30u /* "MEM0" */
#define MEMDEV_REG_SCRATCH 0x100

static char dev_dir[512];

/* A sysfs attribute holding one hex number ("0x1b36\n"); -1 if unreadable. */
static long read_hex_attr(const char *dir, const char *attr)
{
	char path[1024], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 16);
}

/* A sysfs attribute as a string without its newline; "?" if unreadable. */
static void read_str_attr(const char *dir, const char *attr, char *out, size_t len)
{
	char path[1024];
	ssize_t n;
	int fd;

	snprintf(out, len, "?");
	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	n = read(fd, out, len - 1);
	close(fd);
	if (n <= 0) {
		snprintf(out, len, "?");
		return;
	}
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Every function, lspci -nn style; remembers the one with VENDOR:DEVICE. */
static void step_enumerate(long vendor, long device)
{
	struct dirent **names;
	int n = scandir(SYS_PCI, &names, NULL, alphasort);
	bool found = false;

	if (n < 0) {
		check("enumerate", false, "cannot list %s: %s", SYS_PCI, strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		char dir[512], link[1024], target[1024];
		const char *driver = "-";
		ssize_t len;
		long v, d, cls, sv, sd;

		if (names[i]->d_name[0] == '.')
			goto next;
		snprintf(dir, sizeof(dir), "%s/%s", SYS_PCI, names[i]->d_name);
		v = read_hex_attr(dir, "vendor");
		d = read_hex_attr(dir, "device");
		cls = read_hex_attr(dir, "class");
		sv = read_hex_attr(dir, "subsystem_vendor");
		sd = read_hex_attr(dir, "subsystem_device");
		snprintf(link, sizeof(link), "%s/driver", dir);
		len = readlink(link, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = '\0';
			const char *slash = strrchr(target, '/');

			driver = slash ? slash + 1 : target;
		}
		note("%s [%04lx]: [%04lx:%04lx] subsys [%04lx:%04lx] driver %s", names[i]->d_name,
		     cls >> 8, v, d, sv, sd, driver);
		if (v == vendor && d == device && !found) {
			snprintf(dev_dir, sizeof(dev_dir), "%s", dir);
			found = true;
		}
next:
		free(names[i]);
	}
	free(names);
	check("enumerate", found, found ? "%04lx:%04lx at %s" : "no %04lx:%04lx", vendor, device,
	      found ? strrchr(dev_dir, '/') + 1 : "");
}

static void step_config(long vendor, long device)
{
	uint8_t cfg[4096];
	char path[1024];
	ssize_t size;
	unsigned int pos, guard;

	snprintf(path, sizeof(path), "%s/config", dev_dir);
	cfg_fd = open(path, O_RDWR);
	if (cfg_fd < 0) {
		check("config", false, "open %s: %s", path, strerror(errno));
		return;
	}
	size = pread(cfg_fd, cfg, sizeof(cfg), 0);
	if (size < 64) {
		check("config", false, "read %zd bytes", size);
		return;
	}
	for (int row = 0; row < 64; row += 16) {
		char line[80];
		int at = 0;

		for (int i = 0; i < 16; i++)
			at += snprintf(line + at, sizeof(line) - at, " %02x", cfg[row + i]);
		note("%02x:%s", row, line);
	}
	note("config space %zd bytes; header type %#x, class %02x%02x%02x, irq pin %u",
	     size, cfg[0x0e], cfg[0x0b], cfg[0x0a], cfg[0x09], cfg[0x3d]);
	for (int bar = 0; bar < 6; bar++) {
		uint32_t v;

		memcpy(&v, cfg + 0x10 + 4 * bar, 4);
		if (v)
			note("BAR%d = 0x%08x", bar, v);
	}
	if (cfg[CFG_STATUS] & CFG_STATUS_CAP_LIST) {
		char list[200] = "";
		int at = 0;

		for (pos = cfg[CFG_CAP_PTR] & ~3u, guard = 0; pos && pos < 256 && guard < 48;
		     pos = cfg[pos + 1] & ~3u, guard++)
			at += snprintf(list + at, sizeof(list) - at, " 0x%02x@0x%02x", cfg[pos], pos);
		note("capabilities:%s", list);
	}
	if (size > 256) {
		char list[200] = "";
		int at = 0;
		uint32_t hdr;

		for (pos = 0x100, guard = 0; pos >= 0x100 && pos < (unsigned int)size - 4 &&
		     guard < 64; pos = (hdr >> 20) & ~3u, guard++) {
			memcpy(&hdr, cfg + pos, 4);
			if (!hdr || hdr == 0xffffffffu)
				break;
			at += snprintf(list + at, sizeof(list) - at, " 0x%04x@0x%03x", hdr & 0xffff, pos);
		}
		note("extended capabilities:%s", *list ? list : " none");
	}
	check("config", (cfg[0] | cfg[1] << 8) == vendor && (cfg[2] | cfg[3] << 8) == device,
	      "%zd bytes, ids %02x%02x:%02x%02x", size, cfg[1], cfg[0], cfg[3], cfg[2]);
}

static void step_command(void)
{
	uint16_t before = cfg16(CFG_COMMAND), after;

	if (!(before & CFG_COMMAND_MEMORY) &&
	    cfg_write16(CFG_COMMAND, before | CFG_COMMAND_MEMORY) < 0) {
		check("command", false, "write COMMAND: %s", strerror(errno));
		return;
	}
	after = cfg16(CFG_COMMAND);
	check("command", after & CFG_COMMAND_MEMORY, "COMMAND 0x%04x -> 0x%04x", before, after);
}

/* BAR's size from the sysfs resource file ("start end flags" per line); 0 if none. */
static size_t bar_size(int bar)
{
	unsigned long long start, end, flags;
	char path[1024];
	size_t size = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/resource", dev_dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	for (int line = 0; line <= bar; line++) {
		if (fscanf(f, "%llx %llx %llx", &start, &end, &flags) != 3)
			break;
		if (line == bar && end > start)
			size = (size_t)(end - start + 1);
	}
	fclose(f);
	return size;
}

/* Map resourceN whole; NULL on failure (reported). */
static volatile uint32_t *map_bar(int bar, size_t *size)
{
	char path[1024];
	void *p;
	int fd;

	*size = bar_size(bar);
	if (!*size) {
		note("BAR%d has no size in %s/resource", bar, dev_dir);
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/resource%d", dev_dir, bar);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0) {
		note("open %s: %s", path, strerror(errno));
		return NULL;
	}
	p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		note("mmap %s: %s", path, strerror(errno));
		return NULL;
	}
	return p;
}

static uint32_t pattern(size_t i)
{
	return (uint32_t)(i * 0x9e3779b1u) ^ 0xa5a5f00du;
}

/* Words of BAR0 that differ from the pattern; -1 if it cannot be mapped. */
static long bar0_mismatches(bool write_first, size_t *size)
{
	volatile uint32_t *bar0 = map_bar(0, size);
	long bad = 0;

	if (!bar0)
		return -1;
	if (write_first)
		for (size_t i = 0; i < *size / 4; i++)
			bar0[i] = pattern(i);
	for (size_t i = 0; i < *size / 4; i++)
		if (bar0[i] != pattern(i)) {
			if (!bad)
				note("BAR0 word %zu: 0x%08x, expected 0x%08x", i, bar0[i], pattern(i));
			bad++;
		}
	munmap((void *)bar0, *size);
	return bad;
}

static void step_bar0(void)
{
	size_t size = 0;
	long bad = bar0_mismatches(true, &size);

	check("bar0", bad == 0, "%zu bytes written and read back, %ld words differ", size, bad);
	bad = bar0_mismatches(false, &size);
	check("bar0-remap", bad == 0, "read through a new mapping, %ld words differ", bad);
}

/* BAR2 register REG through a fresh mapping (each access is a REGION_READ). */
static uint32_t bar2_read(unsigned int reg)
{
	size_t size;
	volatile uint32_t *bar2 = map_bar(2, &size);
	uint32_t v;

	if (!bar2)
		return 0xffffffffu;
	v = bar2[reg / 4];
	munmap((void *)bar2, size);
	return v;
}

static void step_bar2(void)
{
	size_t size;
	volatile uint32_t *bar2 = map_bar(2, &size);
	uint32_t id, scratch;

	if (!bar2) {
		check("bar2", false, "cannot map resource2");
		return;
	}
	id = bar2[MEMDEV_REG_ID / 4];
	bar2[MEMDEV_REG_SCRATCH / 4] = 0xfeedc0deu;
	scratch = bar2[MEMDEV_REG_SCRATCH / 4];
	munmap((void *)bar2, size);
	check("bar2-id", id == MEMDEV_ID, "register 0 = 0x%08x, expected 0x%08x \"MEM0\"", id,
	      MEMDEV_ID);
	check("bar2-scratch", scratch == 0xfeedc0deu, "scratch = 0x%08x", scratch);
}

static void print_power_state(const char *when)
{
	char ps[32];

	read_str_attr(dev_dir, "power_state", ps, sizeof(ps));
	note("%s: sysfs power_state %s", when, ps);
}

static void step_d3hot(void)
{
	unsigned int pm = find_pm_cap();
	uint16_t pmcsr_d3, pmcsr_d0;
	uint32_t id_d3, id_d0;
	size_t size;
	long bad;

	if (!pm) {
		check("d3hot", false, "no PM capability");
		return;
	}
	note("PM capability at %#x: PMC 0x%04x PMCSR 0x%04x", pm, cfg16(pm + PM_PMC),
	     cfg16(pm + PM_PMCSR));
	if (set_power_state(pm, PMCSR_D3HOT) < 0) {
		check("d3hot", false, "write PMCSR: %s", strerror(errno));
		return;
	}
	sleep_ms(10);	/* PCI PM: 10 ms after a move to or from D3hot */
	pmcsr_d3 = cfg16(pm + PM_PMCSR);
	print_power_state("after writing D3hot");
	note("in D3hot: COMMAND 0x%04x", cfg16(CFG_COMMAND));
	id_d3 = bar2_read(MEMDEV_REG_ID);
	note("in D3hot: BAR2 register 0 reads 0x%08x", id_d3);
	check("d3hot", (pmcsr_d3 & PMCSR_STATE_MASK) == PMCSR_D3HOT, "PMCSR reads 0x%04x", pmcsr_d3);

	if (set_power_state(pm, 0) < 0) {
		check("d0", false, "write PMCSR: %s", strerror(errno));
		return;
	}
	sleep_ms(10);
	pmcsr_d0 = cfg16(pm + PM_PMCSR);
	print_power_state("after writing D0");
	note("back in D0: COMMAND 0x%04x", cfg16(CFG_COMMAND));
	check("d0", (pmcsr_d0 & PMCSR_STATE_MASK) == 0, "PMCSR reads 0x%04x", pmcsr_d0);
	/* A D3hot -> D0 move without NoSoftReset resets the function: MEM back on. */
	if (!(cfg16(CFG_COMMAND) & CFG_COMMAND_MEMORY))
		cfg_write16(CFG_COMMAND, cfg16(CFG_COMMAND) | CFG_COMMAND_MEMORY);
	id_d0 = bar2_read(MEMDEV_REG_ID);
	check("d0-bar2-id", id_d0 == MEMDEV_ID, "register 0 = 0x%08x", id_d0);
	bad = bar0_mismatches(false, &size);
	note("BAR0 after D3hot -> D0: %ld of %zu words differ from the pattern written before"
	     " (%s)", bad, size / 4,
	     (pmcsr_d3 & 0x8) ? "NoSoftReset set: kept" : "NoSoftReset clear: a reset may clear it");
	check("d0-bar0", bad >= 0, "BAR0 mappable again");
}

/* Last and optional: BAR0 through a mapping while the device is in D3hot. */
static void step_d3_bar0(void)
{
	unsigned int pm = find_pm_cap();
	volatile uint32_t *bar0;
	size_t size;
	uint32_t v;

	if (!pm)
		return;
	bar0 = map_bar(0, &size);
	if (!bar0) {
		check("d3-bar0", false, "cannot map resource0");
		return;
	}
	set_power_state(pm, PMCSR_D3HOT);
	sleep_ms(10);
	note("reading BAR0 word 0 in D3hot");
	v = bar0[0];
	note("BAR0 word 0 in D3hot reads 0x%08x", v);
	bar0[1] = 0x12345678u;
	note("BAR0 word 1 written in D3hot, reads 0x%08x", bar0[1]);
	munmap((void *)bar0, size);
	set_power_state(pm, 0);
	sleep_ms(10);
	check("d3-bar0", true, "QEMU survived");
}

/* The physical address of a resident page of ours (/proc/self/pagemap), or 0. */
static uint64_t phys_addr(const void *p)
{
	uint64_t entry = 0, page = (uint64_t)sysconf(_SC_PAGESIZE);
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	off_t at = (off_t)((uintptr_t)p / page * sizeof(entry));

	if (fd < 0)
		return 0;
	if (pread(fd, &entry, sizeof(entry), at) != (ssize_t)sizeof(entry))
		entry = 0;
	close(fd);
	if (!(entry & (1ull << 63)))
		return 0;
	return (entry & ((1ull << 55) - 1)) * page + (uintptr_t)p % page;
}

/* One transfer of the memory device's DMA engine: its final status. */
static int32_t memdev_dma(volatile uint32_t *bar2, uint32_t cmd, uint64_t addr, uint32_t len)
{
	uint32_t status = 1;

	bar2[MEMDEV_REG_DMA_ADDR / 4] = (uint32_t)addr;
	bar2[MEMDEV_REG_DMA_ADDR / 4 + 1] = (uint32_t)(addr >> 32);
	bar2[MEMDEV_REG_DMA_LEN / 4] = len;
	bar2[MEMDEV_REG_DMA_OFF / 4] = 0;
	bar2[MEMDEV_REG_DMA_CMD / 4] = cmd;
	for (int i = 0; i < 5000 && status == 1; i++) {
		status = bar2[MEMDEV_REG_DMA_STATUS / 4];
		if (status == 1)
			sleep_ms(1);
	}
	return (int32_t)status;
}

/*
 * DMA by the device into this guest's RAM and out of it: the memory
 * device's engine copies a page of ours into BAR0, then BAR0 into another
 * page.  Without a vIOMMU the DMA address is the guest-physical one.  With
 * guest RAM a shared memfd, the server reaches it through its mapping; with
 * ordinary RAM, through DMA_READ/DMA_WRITE messages on the main socket.
 */
static void step_dma(void)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), size0, size2;
	uint8_t *mem = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
	volatile uint32_t *bar2, *bar0;
	uint64_t src, dst;
	int32_t st;
	long bad = 0;

	if (mem == MAP_FAILED) {
		check("dma", false, "no buffer: %s", strerror(errno));
		return;
	}
	for (size_t i = 0; i < page; i++)
		mem[i] = (uint8_t)(i * 7 + 3);
	memset(mem + page, 0, page);
	src = phys_addr(mem);
	dst = phys_addr(mem + page);
	cfg_write16(CFG_COMMAND, cfg16(CFG_COMMAND) | CFG_COMMAND_MEMORY | CFG_COMMAND_MASTER);
	bar2 = map_bar(2, &size2);
	bar0 = map_bar(0, &size0);
	if (!src || !dst || !bar2 || !bar0) {
		check("dma", false, "no physical address or BAR mapping");
		return;
	}
	st = memdev_dma(bar2, MEMDEV_DMA_TO_BAR, src, (uint32_t)page);
	for (size_t i = 0; i < page / 4; i++)
		bad += bar0[i] != ((uint32_t *)mem)[i];
	check("dma-to-bar", st == 0 && bad == 0, "guest page at %#llx into BAR0: status %d, "
	      "%ld words differ", (unsigned long long)src, st, bad);
	if (bad)
		note("BAR0 starts %08x %08x %08x, the page %08x %08x %08x", bar0[0], bar0[1],
		     bar0[2], ((uint32_t *)mem)[0], ((uint32_t *)mem)[1], ((uint32_t *)mem)[2]);
	st = memdev_dma(bar2, MEMDEV_DMA_FROM_BAR, dst, (uint32_t)page);
	bad = memcmp(mem, mem + page, page) != 0;
	check("dma-from-bar", st == 0 && !bad, "BAR0 into the guest page at %#llx: status %d, %s",
	      (unsigned long long)dst, st, bad ? "differs" : "same bytes");
	munmap((void *)bar2, size2);
	munmap((void *)bar0, size0);
	munmap(mem, 2 * page);
}

/* Register 0 of the polling device's BAR0, through a fresh mapping. */
static uint32_t poller_magic(void)
{
	size_t size;
	volatile uint32_t *bar0 = map_bar(0, &size);
	uint32_t v;

	if (!bar0)
		return 0;
	v = bar0[0];
	munmap((void *)bar0, size);
	return v;
}

/*
 * The polling device's act: SECONDS in D0 (its backend polls), SECONDS in
 * D3hot (written by this guest, as a driver would), SECONDS in D0 again.
 * The host measures the server's CPU between the @@PHASE@@ lines.
 */
static void step_poller_act(unsigned int seconds)
{
	unsigned int pm = find_pm_cap();
	uint16_t pmcsr;

	if (!pm) {
		check("poller-pm", false, "no PM capability");
		return;
	}
	check("poller-magic", poller_magic() == POLLER_MAGIC, "BAR0 register 0 reads 0x%08x",
	      poller_magic());
	printf("@@PHASE d0@@\n");
	sleep_ms(seconds * 1000L);
	set_power_state(pm, PMCSR_D3HOT);
	sleep_ms(10);
	pmcsr = cfg16(pm + PM_PMCSR);
	check("poller-d3hot", (pmcsr & PMCSR_STATE_MASK) == PMCSR_D3HOT, "PMCSR reads 0x%04x",
	      pmcsr);
	printf("@@PHASE d3hot@@\n");
	sleep_ms(seconds * 1000L);
	set_power_state(pm, 0);
	sleep_ms(10);
	/* Without NoSoftReset the move to D0 reset the function: memory decode back on. */
	if (!(cfg16(CFG_COMMAND) & CFG_COMMAND_MEMORY))
		cfg_write16(CFG_COMMAND, cfg16(CFG_COMMAND) | CFG_COMMAND_MEMORY);
	check("poller-d0-magic", poller_magic() == POLLER_MAGIC, "back in D0, register 0 reads "
	      "0x%08x", poller_magic());
	printf("@@PHASE d0-again@@\n");
	sleep_ms(seconds * 1000L);
	printf("@@PHASE end@@\n");
}

int main(int argc, char **argv)
{
	long vendor = 0x1b36, device = 0x00f0;
	bool d3_bar0 = false, d3hot = true;
	unsigned int poller_act = 0;
	bool dma = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--d3-bar0"))
			d3_bar0 = true;
		else if (!strcmp(argv[i], "--no-d3hot"))
			d3hot = false;
		else if (!strcmp(argv[i], "--dma"))
			dma = true;
		else if (!strcmp(argv[i], "--poller-act") && i + 1 < argc)
			poller_act = (unsigned int)strtoul(argv[++i], NULL, 10);
		else if (sscanf(argv[i], "%lx:%lx", &vendor, &device) != 2) {
			fprintf(stderr, "usage: guest-check [--d3-bar0] [--no-d3hot] [--poller-act SECONDS] "
				"[VVVV:DDDD]\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	step_enumerate(vendor, device);
	if (*dev_dir) {
		step_config(vendor, device);
		if (cfg_fd >= 0) {
			step_command();
			if (poller_act) {
				step_poller_act(poller_act);
				d3hot = false;
			} else {
				step_bar0();
				step_bar2();
				if (dma)
					step_dma();
			}
			if (d3hot)
				step_d3hot();
			if (d3_bar0)
				step_d3_bar0();
		}
	}
	if (failures)
		printf("guest-check: FAIL (%u failed)\n", failures);
	else
		printf("guest-check: PASS\n");
	return failures ? 1 : 0;
}
