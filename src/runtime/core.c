/*
 * The process-wide state every layer of the runtime reads: the lock, the
 * global switches, the clock and the counters.  It sits at the very bottom
 * and calls nothing, so the mechanisms (registry, stubs, patcher,
 * learning) and the policy can read it without reaching up into the files
 * that run epochs.
 *
 * rp_lock serialises everything but the recorder: epochs (worker thread or
 * inline on an application thread), module constructors and destructors,
 * fork, and every public API call.
 */
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

pthread_mutex_t rp_lock = PTHREAD_MUTEX_INITIALIZER;
bool rp_enabled;
bool rp_exiting;
uint64_t rp_start_ns;
struct relpoline_stats rp_stats = { .size = sizeof(struct relpoline_stats) };

uint64_t rp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A consistent copy of the counters (takes rp_lock: not under it). */
void rp_stats_snapshot(struct relpoline_stats *out)
{
	pthread_mutex_lock(&rp_lock);
	*out = rp_stats;
	pthread_mutex_unlock(&rp_lock);
	out->size = sizeof(*out);
}

/* See internal.h.  Returns the new number, or FD itself if it cannot move. */
int rp_fd_park(int fd)
{
	if (fd < 0)
		return fd;
	struct rlimit rl;
	long floor = 900;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur <= floor)
		floor = (long)rl.rlim_cur / 2;
	RP_STAT_ADD(syscalls, 3);
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, (int)floor);
	if (hi < 0)
		return fd;
	close(fd);
	return hi;
}
