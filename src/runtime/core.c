/*
 * The process-wide state every layer of the runtime reads: the lock, the
 * global switches, the clock and the counters.  It sits at the bottom with
 * config.c, alloc.c and report's logging: it calls nothing above it, so
 * the mechanisms (registry, stubs, patcher, learning) and the policy can
 * read it without reaching up into the files that run epochs.
 *
 * rp_lock serialises everything but the recorder: epochs (worker thread or
 * inline on an application thread), module constructors and destructors,
 * fork, and every public API call.
 */
#include <string.h>
#include <time.h>
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

/* The thunks' flag byte every module should have now (under rp_lock). */
uint8_t rp_flags_wanted(void)
{
	uint8_t f = 0;
	if (rp_cfg.mode == RP_MODE_ON && rp_cfg.fallback == RP_FB_INDIRECT)
		f |= RP_F_INDIRECT;
	if (rp_enabled)
		f |= RP_F_LEARN;
	return f;
}

/* A consistent copy of the counters (takes rp_lock: not under it). */
void rp_stats_snapshot(struct relpoline_stats *out)
{
	pthread_mutex_lock(&rp_lock);
	*out = rp_stats;
	pthread_mutex_unlock(&rp_lock);
	out->size = sizeof(*out);
}
