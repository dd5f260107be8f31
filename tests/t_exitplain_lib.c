/*
 * The library half of t_exitplain: built with relpoline-cc -shared -fPIC,
 * linked by a main program built with the plain compiler (no relpoline
 * module in the executable).  xp_hammer() calls through the library's own
 * sites (call and tail sites, targets in the library) with targets that
 * shift every 4 ms, forever; xp_promoted() reads the runtime's stats.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <relpoline.h>

#define NOINLINE __attribute__((noinline))
#define EXPORT __attribute__((visibility("default")))

/* The default sites (8 targets, 4 call and 4 tail sites), static: the library's own. */
#define WL_LINKAGE static
#include "workload.h"

/* Never returns; a wrong result ends the process with status 3. */
EXPORT void xp_hammer(long salt)
{
	int phase = 0;
	for (unsigned long n = 0;; n++) {
		if ((n & 255) == 0)   /* targets shift every 4 ms */
			phase = (int)(wl_now_ms() / 4 + (uint64_t)salt);
		for (int s = 0; s < WL_NS; s++) {
			int t = wl_target(phase, (long)n, s);
			long x = (long)(n & 0xffff);
			long r = wl_one(s, wl_tg[t], x);
			if (r != wl_want(s, t, x)) {
				char buf[128];
				int k = snprintf(buf, sizeof buf,
						 "check failed: lib site %d target %d: %ld want %ld\n", s, t,
						 r, wl_want(s, t, x));
				if (write(2, buf, (size_t)k) < 0) {
				}
				_exit(3);
			}
		}
	}
}

/* Sites currently promoted and stubs emitted, from the runtime. */
EXPORT long xp_promoted(long *stubs)
{
	struct relpoline_stats st;
	memset(&st, 0, sizeof st);
	st.size = sizeof st;
	if (relpoline_stats_get(&st) != 0)
		return -1;
	if (stubs)
		*stubs = (long)st.stubs_emitted;
	return (long)st.sites_promoted;
}
