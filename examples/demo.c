/*
 * relpoline demo: what one indirect call costs, and what relpoline does
 * about it.  examples/demo.mk builds this file three ways:
 *
 *   demo-plain      gcc -O2                      indirect calls are `call *%reg`
 *   demo-retpoline  gcc -O2 -mindirect-branch=thunk
 *                                                every indirect call goes through
 *                                                a retpoline (Spectre v2 mitigation)
 *   demo-relpoline  relpoline-cc -O2             retpolines too, but the runtime
 *                                                learns the hot target and patches
 *                                                the call site to a cmp/je stub
 *
 * The program is a tiny "plugin" pattern, as in a filesystem or driver ops
 * table: the code calls ops->step() through a function pointer, and in
 * practice one implementation is always installed.  It times, in interleaved
 * batches, a direct call to the implementation and the indirect call through
 * the ops table, and prints "RESULT <what> <ns per call>" lines that
 * examples/demo.sh turns into a table.
 *
 * The relpoline build runs with the default settings: the background worker
 * learns and promotes the site by itself; the program only waits for it
 * (polling relpoline_stats_get) and reports how long that took.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef DEMO_RELPOLINE
#include <relpoline.h>
#endif

#define NOI __attribute__((noinline, noipa))

struct checksum_ops {
	const char *name;
	long (*step)(long state);
};

/* The one implementation that is ever installed (a tiny bit of work). */
NOI long fletcher_step(long s) { return (s ^ 0x5bd1e995) + 1; }
NOI long adler_step(long s) { return (s ^ 0x3c6ef372) + 3; }

static const struct checksum_ops fletcher = { "fletcher", fletcher_step };
static const struct checksum_ops adler = { "adler", adler_step };
/* volatile: the compiler must not see which ops are installed */
static const struct checksum_ops *volatile installed = &fletcher;
static volatile long sink;

NOI long run_direct(long n)
{
	long s = 0;
	for (long i = 0; i < n; i++)
		s = fletcher_step(s);
	return s;
}

NOI long run_indirect(const struct checksum_ops *ops, long n)
{
	long s = 0;
	for (long i = 0; i < n; i++)
		s = ops->step(s);          /* the indirect call site */
	return s;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(void)
{
	const long n = 2000000;
	enum { BATCHES = 5 };
	double d[BATCHES], ind[BATCHES];
	const struct checksum_ops *ops = installed;
	(void)adler;

#ifdef DEMO_RELPOLINE
	/* Let the runtime do its job: call the site until the worker promotes it. */
	struct relpoline_stats st;
	uint64_t t0 = now_ns(), t;
	long calls = 0;
	for (;;) {
		sink = run_indirect(ops, 1000);
		calls += 1000;
		memset(&st, 0, sizeof(st));
		st.size = sizeof(st);
		relpoline_stats_get(&st);
		t = now_ns();
		if (st.sites_promoted || t - t0 > 1000000000ull)
			break;
	}
	if (st.sites_promoted)
		printf("RESULT promoted_after_ms %.3f\nRESULT promoted_after_calls %ld\n",
		       (t - t0) / 1e6, calls);
	else
		printf("RESULT promoted_after_ms none\n");
#endif
	sink = run_direct(n / 10);
	sink = run_indirect(ops, n / 10);
	for (int b = 0; b < BATCHES; b++) {
		uint64_t a = now_ns();
		sink = run_direct(n);
		uint64_t m = now_ns();
		sink = run_indirect(ops, n);
		uint64_t z = now_ns();
		d[b] = (double)(m - a) / n;
		ind[b] = (double)(z - m) / n;
	}
	qsort(d, BATCHES, sizeof(double), cmp_d);
	qsort(ind, BATCHES, sizeof(double), cmp_d);
	printf("RESULT direct %.3f\nRESULT indirect %.3f\n", d[BATCHES / 2], ind[BATCHES / 2]);
	return 0;
}
