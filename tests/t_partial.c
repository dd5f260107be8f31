/*
 * Partial link.  run.sh builds
 *   relpoline-cc -c -DPART_A t_partial.c -o t_partial_a.o
 *   relpoline-cc -c -DPART_B t_partial.c -o t_partial_b.o
 *   relpoline-cc -r t_partial_a.o t_partial_b.o -o t_partial_ab.o
 *   relpoline-cc t_partial_ab.o t_partial.c -o t_partial
 * A "-r" step only links objects together: it must not add the module
 * object or the runtime (the final link adds them once).  The program
 * registers exactly one module, and the call and tail sites that came
 * through the partial link are found, promoted (relpoline_epoch(),
 * RELPOLINE_EPOCH_MS=0), hit without misses, and give right results.
 */
#include "common.h"

typedef long (*fn_t)(long);

#if defined(PART_A)
NOINLINE long pa_t0(long x) { return x * 10 + 1; }
NOINLINE long pa_t1(long x) { return x * 10 + 2; }
NOINLINE long pa_call(fn_t f, long x) { return f(x) * 2; }
NOINLINE long pa_tail(fn_t f, long x) { return f(x + 3); }
#elif defined(PART_B)
NOINLINE long pb_t0(long x) { return x * 100 + 5; }
NOINLINE long pb_t1(long x) { return x * 100 + 6; }
NOINLINE long pb_call(fn_t f, long x) { return f(x) * 3; }
NOINLINE long pb_tail(fn_t f, long x) { return f(x + 7); }
#else
long pa_t0(long), pa_t1(long), pa_call(fn_t, long), pa_tail(fn_t, long);
long pb_t0(long), pb_t1(long), pb_call(fn_t, long), pb_tail(fn_t, long);
NOINLINE long m_t0(long x) { return x - 1; }
NOINLINE long m_call(fn_t f, long x) { return f(x) * 5; }
#define NSITES 5

static long run(int which, int n)
{
	long wrong = 0;
	for (long i = 0; i < n; i++) {
		fn_t fa = which ? pa_t1 : pa_t0, fb = which ? pb_t1 : pb_t0;
		long ka = which ? 2 : 1, kb = which ? 6 : 5;
		wrong += pa_call(fa, i) != (i * 10 + ka) * 2;
		wrong += pa_tail(fa, i) != (i + 3) * 10 + ka;
		wrong += pb_call(fb, i) != (i * 100 + kb) * 3;
		wrong += pb_tail(fb, i) != (i + 7) * 100 + kb;
		wrong += m_call(m_t0, i) != (i - 1) * 5;
	}
	return wrong;
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	struct relpoline_stats s0 = t_stats();
	CHECK(s0.modules == 1, "modules = %" PRIu64 ", want 1 (the -r object must not bring "
	      "a module of its own)", s0.modules);
	CHECK(run(0, 40) == 0, "wrong results while learning");
	t_epoch();
	struct relpoline_stats s1 = t_stats();
	t_print_stats("promoted", &s1);
	CHECK(s1.sites_promoted >= s0.sites_promoted + NSITES, "sites_promoted %" PRIu64 " -> %" PRIu64
	      " want +%d (call and tail sites of both partially linked objects + main's)",
	      s0.sites_promoted, s1.sites_promoted, NSITES);
	CHECK(s1.sites_tail >= 2, "sites_tail = %" PRIu64 ": the tail sites of the -r object were "
	      "not found", s1.sites_tail);
	CHECK(s1.sites_rejected == 0, "sites_rejected = %" PRIu64, s1.sites_rejected);
	CHECK(run(0, 40) == 0, "wrong results on the stubs");
	t_epoch();
	struct relpoline_stats s2 = t_stats();
	CHECK(s2.misses == s1.misses, "hits counted as misses: %" PRIu64 " -> %" PRIu64, s1.misses,
	      s2.misses);
	CHECK(run(1, 40) == 0, "wrong results on misses");
	t_epoch();
	struct relpoline_stats s3 = t_stats();
	CHECK(s3.misses >= s2.misses + 4 * 40, "misses %" PRIu64 " -> %" PRIu64, s2.misses, s3.misses);
	t_print_stats("end", &s3);
	return t_finish("t_partial");
}
#endif
