/*
 * Tail-call sites from compiled C.  With -O2, `return f(x);` through a
 * pointer compiles to `jmp __x86_indirect_thunk_<reg>` (e9 rel32) with both
 * gcc and clang; run.sh checks the bytes with objdump.
 *
 * jcc (0f 8x rel32) to a thunk: clang 14 does not emit it.  LLVM only turns
 * a tail call into a conditional branch for direct callees (the indirect
 * callee must first be moved into r11, so the tail-call block is never a
 * lone jump); `if (c) return f(a); return g(a);` becomes cmov + one jmp (see
 * tail_sel below), and gcc emits two separate e9 sites.  jcc sites are
 * therefore tested with hand-written assembly in regs.S (regs_jcc_*), for
 * every thunk register.
 *
 * Here: tail sites with integer and vector arguments are learned, promoted,
 * hit and missed; sites_tail must count them and the results must match the
 * direct calls.
 */
#include "common.h"

typedef long (*f1_t)(long);
typedef double (*f8_t)(long, long, long, long, long, long, double, double, double, double,
		       double, double, double, double);

NOINLINE long ta(long x) { return x * 3 + 1; }
NOINLINE long tb(long x) { return x * 5 - 2; }
NOINLINE double va(long a, long b, long c, long d, long e, long f, double x0, double x1,
		   double x2, double x3, double x4, double x5, double x6, double x7)
{
	return (double)(a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f) + x0 + 2 * x1 + 3 * x2 +
	       4 * x3 + 5 * x4 + 6 * x5 + 7 * x6 + 8 * x7;
}
NOINLINE double vb(long a, long b, long c, long d, long e, long f, double x0, double x1,
		   double x2, double x3, double x4, double x5, double x6, double x7)
{
	return va(a, b, c, d, e, f, x0, x1, x2, x3, x4, x5, x6, x7) * -1.5;
}

/* Eight distinct tail sites (one per function) and one with two. */
#define TS(n) NOINLINE long tail_site_##n(f1_t f, long x) { return f(x + n); }
TS(0) TS(1) TS(2) TS(3) TS(4) TS(5) TS(6) TS(7)
NOINLINE long tail_sel(int c, f1_t f, f1_t g, long x)
{
	if (c)
		return f(x);
	return g(x);
}
NOINLINE double tail_vec(f8_t f, long k)
{
	return f(k, k + 1, k + 2, k + 3, k + 4, k + 5, 0.5 * k, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5,
		 7.5 * k);
}
#define NTAIL 10 /* at least: 8 + tail_sel (1 or 2) + tail_vec */

static long ref1(int which, long x) { return which ? tb(x) : ta(x); }

static void run(int which, int n, const char *phase)
{
	f1_t f = which ? tb : ta;
	for (int i = 0; i < n; i++) {
		long x = i * 7 - 3;
		long r[8] = { tail_site_0(f, x), tail_site_1(f, x), tail_site_2(f, x),
			      tail_site_3(f, x), tail_site_4(f, x), tail_site_5(f, x),
			      tail_site_6(f, x), tail_site_7(f, x) };
		for (int k = 0; k < 8; k++)
			CHECK(r[k] == ref1(which, x + k), "%s: tail_site_%d(%d) = %ld want %ld", phase,
			      k, which, r[k], ref1(which, x + k));
		long s1 = tail_sel(i & 1, f, which ? ta : tb, x);
		long w1 = (i & 1) ? ref1(which, x) : ref1(!which, x);
		CHECK(s1 == w1, "%s: tail_sel = %ld want %ld", phase, s1, w1);
		double d = tail_vec(which ? vb : va, i);
		double dw = which ? vb(i, i + 1, i + 2, i + 3, i + 4, i + 5, 0.5 * i, 1.5, 2.5, 3.5,
				       4.5, 5.5, 6.5, 7.5 * i)
				  : va(i, i + 1, i + 2, i + 3, i + 4, i + 5, 0.5 * i, 1.5, 2.5, 3.5,
				       4.5, 5.5, 6.5, 7.5 * i);
		CHECK(d == dw, "%s: tail_vec(%d) = %.17g want %.17g", phase, which, d, dw);
	}
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	struct relpoline_stats s0 = t_stats();
	run(0, 40, "learn");
	t_epoch();
	struct relpoline_stats s1 = t_stats();
	t_print_stats("promoted", &s1);
	CHECK(s1.sites_tail >= NTAIL, "sites_tail %" PRIu64 " < %d", s1.sites_tail, NTAIL);
	CHECK(s1.sites_promoted >= s0.sites_promoted + NTAIL, "sites_promoted %" PRIu64
	      " -> %" PRIu64 " want +%d", s0.sites_promoted, s1.sites_promoted, NTAIL);
	run(0, 40, "hit");
	t_epoch();
	struct relpoline_stats s2 = t_stats();
	CHECK(s2.misses == s1.misses, "hits counted as misses: %" PRIu64 " -> %" PRIu64,
	      s1.misses, s2.misses);
	run(1, 40, "miss");
	t_epoch();
	struct relpoline_stats s3 = t_stats();
	CHECK(s3.misses >= s2.misses + NTAIL, "misses %" PRIu64 " -> %" PRIu64 " want +%d",
	      s2.misses, s3.misses, NTAIL);
	for (int k = 0; k < 6; k++) {
		run(k & 1, 30, "alternate");
		t_epoch();
	}
	CHECK(relpoline_disable() == 0);
	run(1, 10, "disabled");
	CHECK(relpoline_enable() == 0);
	run(1, 40, "enabled");
	t_epoch();
	run(0, 10, "re-promoted");
	struct relpoline_stats s4 = t_stats();
	t_print_stats("end", &s4);
	CHECK(s4.sites_tail >= NTAIL, "sites_tail %" PRIu64 " after enable", s4.sites_tail);
	return t_finish("t_tail");
}
