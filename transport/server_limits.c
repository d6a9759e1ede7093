// SPDX-License-Identifier: MIT
/*
 * What one process grants all its clients together: live connections and
 * DMA windows, and the reserve fd that keeps accepting alive at the fd limit.
 *
 * The budgets are process-wide because the resources are: the fd table and
 * vm.max_map_count are shared by every device the process serves, and one
 * device's clients must not use them up for the others.
 */
#include "server_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* fds kept back from the connection budget: listening sockets, logs, the model's own. */
#define FD_HEADROOM 64u
/*
 * fds one connection may hold at a time: its socket, its twin socket, a
 * message's fds on their way in, the fds of a reply on their way out.
 */
#define FDS_PER_CONN 4u

/*
 * The reserve: one fd held open (/dev/null) and given up for a moment when
 * the process runs out, to accept and close the connection that is waiting,
 * so that a full fd table never leaves connections queued forever.
 * Protects reserve_fd.
 */
static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;
static int reserve_fd = -1;

static pthread_once_t limits_once = PTHREAD_ONCE_INIT;
static atomic_uint max_connections;	/* written by set_limits, read when accepting */
static atomic_uint max_dma_maps;
static atomic_uint live_connections;
static atomic_uint live_dma_maps;

static unsigned int default_max_connections(void)
{
	struct rlimit rl;
	rlim_t n;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 4096;
	n = rl.rlim_cur > FD_HEADROOM ? (rl.rlim_cur - FD_HEADROOM) / FDS_PER_CONN : 0;
	if (n < 4)
		n = 4;
	return n > 1000000 ? 1000000 : (unsigned int)n;
}

/* Half of vm.max_map_count: the rest stays for thread stacks, libraries and BARs. */
static unsigned int default_max_dma_maps(void)
{
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
	unsigned long count = 0;

	if (f) {
		if (fscanf(f, "%lu", &count) != 1)
			count = 0;
		fclose(f);
	}
	if (!count)
		count = 65530;	/* the kernel's default */
	count /= 2;
	return count > 1000000 ? 1000000 : (unsigned int)count;
}

static void limits_init(void)
{
	atomic_store(&max_connections, default_max_connections());
	atomic_store(&max_dma_maps, default_max_dma_maps());
	pthread_mutex_lock(&reserve_lock);
	reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pthread_mutex_unlock(&reserve_lock);
}

void vfpm_transport_get_limits(struct vfpm_transport_limits *lim)
{
	pthread_once(&limits_once, limits_init);
	lim->max_connections = atomic_load(&max_connections);
	lim->max_dma_maps = atomic_load(&max_dma_maps);
}

int vfpm_transport_set_limits(const struct vfpm_transport_limits *lim)
{
	if (!lim)
		return -EINVAL;
	pthread_once(&limits_once, limits_init);
	atomic_store(&max_connections, lim->max_connections ? lim->max_connections :
					default_max_connections());
	atomic_store(&max_dma_maps, lim->max_dma_maps ? lim->max_dma_maps :
				     default_max_dma_maps());
	return 0;
}

/* Take one unit of a budget: false when it is spent. */
static bool budget_take(atomic_uint *used, atomic_uint *max)
{
	unsigned int n = atomic_load(used);

	pthread_once(&limits_once, limits_init);
	do {
		if (n >= atomic_load(max))
			return false;
	} while (!atomic_compare_exchange_weak(used, &n, n + 1));
	return true;
}

bool srv_budget_take_connection(unsigned int device_live)
{
	unsigned int max, reserve, n;

	if (device_live < SRV_CONN_FLOOR)
		return budget_take(&live_connections, &max_connections);
	/* A device past its floor leaves the reserve to the devices below theirs. */
	max = atomic_load(&max_connections);
	reserve = max / 4 < SRV_CONN_RESERVE_MAX ? max / 4 : SRV_CONN_RESERVE_MAX;
	n = atomic_load(&live_connections);
	do {
		if (n >= max - reserve)
			return false;
	} while (!atomic_compare_exchange_weak(&live_connections, &n, n + 1));
	return true;
}

void srv_budget_put_connection(void)
{
	atomic_fetch_sub(&live_connections, 1);
}

bool srv_budget_take_dma_map(void)
{
	return budget_take(&live_dma_maps, &max_dma_maps);
}

void srv_budget_put_dma_maps(unsigned int n)
{
	atomic_fetch_sub(&live_dma_maps, n);
}

void srv_reserve_fd_init(void)
{
	pthread_once(&limits_once, limits_init);
}

int srv_drop_with_reserve(const struct vfpm_server *srv, char *who, size_t len)
{
	int ret = -1;
	int sock;

	pthread_mutex_lock(&reserve_lock);
	if (reserve_fd >= 0) {
		close(reserve_fd);
		sock = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (sock >= 0) {
			pid_t pid;
			uid_t uid;

			srv_describe_peer(srv, sock, &pid, &uid, who, len);
			/* Closed before the reserve is taken back: it needs that fd. */
			close(sock);
			ret = 1;
		} else if (errno == EAGAIN || errno == ECONNABORTED) {
			ret = 0;	/* the client gave up meanwhile */
		}
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	pthread_mutex_unlock(&reserve_lock);
	return ret;
}

void srv_reserve_fd_refill(void)
{
	pthread_mutex_lock(&reserve_lock);
	if (reserve_fd < 0)
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pthread_mutex_unlock(&reserve_lock);
}

/* ---- who is at the other end ---- */

void srv_describe_peer(const struct vfpm_server *srv, int sock, pid_t *pid, uid_t *uid,
		       char *who, size_t len)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0 && clen == sizeof(cred)) {
		*pid = cred.pid;
		*uid = cred.uid;
		snprintf(who, len, "%s: client pid %ld uid %lu", srv->name, (long)cred.pid,
			 (unsigned long)cred.uid);
	} else {
		*pid = 0;
		*uid = (uid_t)-1;
		snprintf(who, len, "%s: client (credentials unknown)", srv->name);
	}
}
