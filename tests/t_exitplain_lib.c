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
#include <time.h>
#include <unistd.h>
#include <relpoline.h>

#define NOINLINE __attribute__((noinline))
#define EXPORT __attribute__((visibility("default")))

typedef long (*fn_t)(long);
#define T(n) NOINLINE static long tg##n(long x) { return x * 16 + n; }
T(0) T(1) T(2) T(3) T(4) T(5) T(6) T(7)
static fn_t const tg[8] = { tg0, tg1, tg2, tg3, tg4, tg5, tg6, tg7 };
#define CS(n) NOINLINE static long cs##n(fn_t f, long x) { return f(x) + 1000000 * n; }
#define TS(n) NOINLINE static long ts##n(fn_t f, long x) { return f(x + n); }
CS(0) CS(1) CS(2) CS(3) TS(0) TS(1) TS(2) TS(3)
#define NS 8

static long one(int s, fn_t f, long x)
{
	switch (s) {
	case 0: return cs0(f, x);
	case 1: return cs1(f, x);
	case 2: return cs2(f, x);
	case 3: return cs3(f, x);
	case 4: return ts0(f, x);
	case 5: return ts1(f, x);
	case 6: return ts2(f, x);
	default: return ts3(f, x);
	}
}
static long want(int s, int t, long x)
{
	return s < 4 ? x * 16 + t + 1000000L * s : (x + (s - 4)) * 16 + t;
}

/* Never returns; a wrong result ends the process with status 3. */
EXPORT void xp_hammer(long salt)
{
	int phase = 0;
	for (unsigned long n = 0;; n++) {
		if ((n & 255) == 0) {   /* targets shift every 4 ms */
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			phase = (int)((ts.tv_sec * 1000 + ts.tv_nsec / 1000000) / 4 + salt);
		}
		for (int s = 0; s < NS; s++) {
			int t = (phase + s + (int)(n & 1) * (s & 1)) % 8;
			long x = (long)(n & 0xffff);
			long r = one(s, tg[t], x);
			if (r != want(s, t, x)) {
				char buf[128];
				int k = snprintf(buf, sizeof buf,
						 "check failed: lib site %d target %d: %ld want %ld\n", s, t,
						 r, want(s, t, x));
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
