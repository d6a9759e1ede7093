// SPDX-License-Identifier: MIT
#include "fuzz_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "test_model.h"

/* Fds may grow by this much for reasons of the process (libFuzzer's own files). */
#define FD_SLACK 32

struct test_model *fuzz_model_create(void)
{
	static const struct tm_config config = {
		.registers = true, .msix_mappable = true, .flr = true, .msi_vectors = 4,
		.abort_on_violation = true,
	};
	struct test_model *m;
	int err = tm_create(&config, &m);

	if (err) {
		fprintf(stderr, "fuzz: cannot create the device model: %s\n", strerror(-err));
		abort();
	}
	return m;
}

void fuzz_model_wait_idle(struct test_model *m)
{
	struct vfpm_pm_dev *pm = m->pm;

	if (vfpm_pm_wait_status(pm, VFPM_PM_SUSPENDED, 10000) ||
	    vfpm_pm_usage_count(pm) != 0 || vfpm_pci_low_power_engaged(m->pdev)) {
		fprintf(stderr, "fuzz model: not idle after the last close: %s, usage %d%s\n",
			vfpm_pm_status_name(vfpm_pm_status(pm)), vfpm_pm_usage_count(pm),
			vfpm_pci_low_power_engaged(m->pdev) ? ", low power engaged" : "");
		abort();
	}
}

void fuzz_drain(int sock)
{
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * 253)];
			struct cmsghdr align;
		} ctl;
		char buf[65536];
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
		};
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);

		if (n < 0 && errno == EINTR)
			continue;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); n >= 0 && c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
		if (n <= 0)
			return;
	}
}

void fuzz_check_fds(int *baseline)
{
	int fd = dup(0);

	if (fd < 0)
		abort();
	close(fd);
	if (*baseline < 0)
		*baseline = fd;
	else if (fd > *baseline + FD_SLACK) {
		fprintf(stderr, "fuzz: fds leak: lowest free fd %d, was %d\n", fd, *baseline);
		abort();
	}
}

int fuzz_count_maps(const char *const *needles, unsigned int n, int *counts)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[1024];
	bool whole = true;
	int lines = 0;

	for (unsigned int i = 0; i < n; i++)
		counts[i] = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* A long line comes in pieces: count its first piece only. */
		if (whole) {
			lines++;
			for (unsigned int i = 0; i < n; i++)
				counts[i] += strstr(line, needles[i]) != NULL;
		}
		whole = strchr(line, '\n') != NULL;
	}
	fclose(f);
	return lines;
}

int fuzz_count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

void fuzz_check_threads(int *baseline)
{
	int n = fuzz_count_threads();

	if (n < 0)
		abort();
	if (*baseline < 0) {
		*baseline = n;
		return;
	}
	/*
	 * A thread that was joined a moment ago can still be listed until the
	 * kernel has reaped it: give it a second.
	 */
	for (int i = 0; n > *baseline && i < 200; i++) {
		fuzz_sleep_ms(5);
		n = fuzz_count_threads();
	}
	if (n > *baseline) {
		fprintf(stderr, "fuzz: threads leak: %d threads, were %d\n", n, *baseline);
		abort();
	}
}

void fuzz_sleep_ms(unsigned int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

uint8_t fuzz_u8(struct fuzz_in *in)
{
	uint8_t v = 0;

	fuzz_bytes(in, &v, 1);
	return v;
}

uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t v = 0;

	fuzz_bytes(in, &v, 2);
	return v;
}

uint32_t fuzz_u32(struct fuzz_in *in)
{
	uint32_t v = 0;

	fuzz_bytes(in, &v, 4);
	return v;
}

size_t fuzz_bytes(struct fuzz_in *in, void *buf, size_t len)
{
	size_t n = len < in->left ? len : in->left;

	memcpy(buf, in->p, n);
	memset((uint8_t *)buf + n, 0, len - n);
	in->p += n;
	in->left -= n;
	return n;
}
