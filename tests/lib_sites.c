/*
 * Shared library with its own thunk sites (built with relpoline-cc -shared
 * -fPIC).  Linked by t_shlib (libtsites.so) and, compiled with -DDL_LIB,
 * loaded with dlopen by t_shlib (tdl.so).  Its targets are its own
 * functions (stubs of a module are only within rel32 reach of that module),
 * plus lib_call_ext() whose targets the caller passes in.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>

#ifdef DL_LIB
#define P(name) dl_##name
#else
#define P(name) lib_##name
#endif
#define NOINLINE __attribute__((noinline))
#define EXPORT __attribute__((visibility("default")))

typedef long (*fn_t)(long);
NOINLINE static long t0(long x) { return x + 10; }
NOINLINE static long t1(long x) { return x + 20; }
NOINLINE static long t2(long x) { return x + 30; }
static fn_t const tab[3] = { t0, t1, t2 };

NOINLINE static long site_a(fn_t f, long x) { return f(x) * 2; }
NOINLINE static long site_b(fn_t f, long x) { return f(x) * 3; }
NOINLINE static long site_t(fn_t f, long x) { return f(x + 1); } /* tail site */

/* n calls at each of the three sites with target WHICH; returns the wrong count. */
EXPORT long P(run)(int which, long n)
{
	long wrong = 0;
	fn_t f = tab[which % 3];
	long add = 10 * (which % 3 + 1);
	for (long i = 0; i < n; i++) {
		if (site_a(f, i) != (i + add) * 2)
			wrong++;
		if (site_b(f, i) != (i + add) * 3)
			wrong++;
		if (site_t(f, i) != i + 1 + add)
			wrong++;
	}
	return wrong;
}

NOINLINE EXPORT long P(call_ext)(fn_t f, long x) { return f(x) + 7; }

/* A target for another module's sites (t_profile depart: a site of one library calling into another). */
NOINLINE EXPORT long P(inc)(long x) { return x + 1; }

EXPORT const void *P(address)(void) { return (const void *)site_a; }
