/*
 * C-level calling-convention checks through compiled thunk sites: 8 integer
 * + 10 double arguments (stack arguments beyond the sixth integer and the
 * eighth vector register), varargs with doubles (al = vector count), a
 * struct returned through the hidden pointer, small structs returned in
 * rax:rdx and xmm0:xmm1, long double (x87, passed on the stack).
 * Each call site goes through learn -> promote (hit) -> miss -> disabled ->
 * re-enabled, and every result is compared with the direct call.
 */
#include "common.h"
#include <math.h>

/* Direct (non-thunk) call of A or B: the reference result. */
#define DIRECT(which, A, B, args) ((which) ? B args : A args)

/* ---- 8 ints + 10 doubles + a float ---- */
typedef double (*big_fn)(long, long, long, long, long, long, long, long, double, double,
			 double, double, double, double, double, double, double, double, float);

#define BIG_BODY(K)                                                                        \
	{                                                                                      \
		double s = 0;                                                                      \
		long iv[8] = { a1, a2, a3, a4, a5, a6, a7, a8 };                                   \
		double dv[10] = { d1, d2, d3, d4, d5, d6, d7, d8, d9, d10 };                       \
		for (int i = 0; i < 8; i++)                                                        \
			s = s * 1.0001 + (double)iv[i] * (i + 1);                                      \
		for (int i = 0; i < 10; i++)                                                       \
			s = s * 1.0003 + dv[i] * (i + 3);                                              \
		return s + f1 * 7 + K;                                                             \
	}
NOINLINE double bigA(long a1, long a2, long a3, long a4, long a5, long a6, long a7, long a8,
		     double d1, double d2, double d3, double d4, double d5, double d6, double d7,
		     double d8, double d9, double d10, float f1) BIG_BODY(0)
NOINLINE double bigB(long a1, long a2, long a3, long a4, long a5, long a6, long a7, long a8,
		     double d1, double d2, double d3, double d4, double d5, double d6, double d7,
		     double d8, double d9, double d10, float f1) BIG_BODY(1e6)

NOINLINE double site_big(big_fn f, long k)
{
	return f(k + 1, k + 2, -(k + 3), k * 4, 5, 6, 0x7777777777L + k, -8, 1.5 + k, 2.25, 3.125,
		 -4.5, 5.75, 6.0625, 7.5 * k, 8.875, 9.5, -10.25, 11.5f) + 0.5;
}
NOINLINE double direct_big(int which, long k)
{
	return DIRECT(which, bigA, bigB, (k + 1, k + 2, -(k + 3), k * 4, 5, 6, 0x7777777777L + k,
					 -8, 1.5 + k, 2.25, 3.125, -4.5, 5.75, 6.0625, 7.5 * k, 8.875,
					 9.5, -10.25, 11.5f)) + 0.5;
}

/* ---- varargs with doubles ---- */
typedef double (*va_fn)(int n, ...);
#define VA_BODY(K)                                                                        \
	{                                                                                     \
		va_list ap;                                                                       \
		va_start(ap, n);                                                                  \
		double s = K;                                                                     \
		for (int i = 0; i < n; i++) {                                                     \
			if (i % 3 == 2)                                                               \
				s = s * 1.5 + va_arg(ap, int);                                            \
			else                                                                          \
				s = s * 1.25 + va_arg(ap, double);                                        \
		}                                                                                 \
		va_end(ap);                                                                       \
		return s;                                                                         \
	}
NOINLINE double vaA(int n, ...) VA_BODY(0)
NOINLINE double vaB(int n, ...) VA_BODY(100)

NOINLINE double site_va(va_fn f, int k)
{
	/* 10 doubles (8 in xmm0-7, 2 on the stack) and 5 ints. */
	return f(15, 1.0 + k, 2.0, 3, 4.0, 5.5, 6, 7.0, 8.0, 9, 10.0, 11.0, 12, 13.0, -14.0, 15);
}
NOINLINE double direct_va(int which, int k)
{
	return DIRECT(which, vaA, vaB, (15, 1.0 + k, 2.0, 3, 4.0, 5.5, 6, 7.0, 8.0, 9, 10.0, 11.0,
					12, 13.0, -14.0, 15));
}

/* ---- struct returns ---- */
struct big { long v[7]; };
struct pair { long a, b; };
struct dpair { double x, y; };
typedef struct big (*sbig_fn)(long, double, long, long, long, long, long);
typedef struct pair (*spair_fn)(long, long);
typedef struct dpair (*sdp_fn)(double, double);
typedef long double (*ld_fn)(long double, int, long double);

NOINLINE struct big sbigA(long a, double d, long c, long e, long f, long g, long h)
{
	struct big r = { { a, (long)(d * 4), c, e, f, g, h } };
	return r;
}
NOINLINE struct big sbigB(long a, double d, long c, long e, long f, long g, long h)
{
	struct big r = { { -a, (long)(d * 8), c + 1, e + 2, f + 3, g + 4, h + 5 } };
	return r;
}
NOINLINE struct pair spA(long a, long b) { return (struct pair){ a * 3, b - 7 }; }
NOINLINE struct pair spB(long a, long b) { return (struct pair){ b, a }; }
NOINLINE struct dpair sdA(double x, double y) { return (struct dpair){ x + y, x * y }; }
NOINLINE struct dpair sdB(double x, double y) { return (struct dpair){ x - y, y / 2 }; }
NOINLINE long double ldA(long double x, int i, long double y) { return x * i + y; }
NOINLINE long double ldB(long double x, int i, long double y) { return x - i - y; }

NOINLINE struct big site_sbig(sbig_fn f, long k) { return f(k, 0.5 * k, 3, 4, 5, 6, 7 * k); }
NOINLINE struct pair site_sp(spair_fn f, long k) { return f(k, k * k); }
NOINLINE struct dpair site_sd(sdp_fn f, double k) { return f(k, 0.25 + k); }
NOINLINE long double site_ld(ld_fn f, int k) { return f(1.0L / 3 + k, k, 1e300L * 1e10L); }

static void check_all(int which, long k, const char *phase)
{
	double r = site_big(which ? bigB : bigA, k), w = direct_big(which, k);
	CHECK(r == w, "%s: big args %d k=%ld: %.17g want %.17g", phase, which, k, r, w);

	r = site_va(which ? vaB : vaA, (int)k);
	w = direct_va(which, (int)k);
	CHECK(r == w, "%s: varargs %d k=%ld: %.17g want %.17g", phase, which, k, r, w);

	struct big b = site_sbig(which ? sbigB : sbigA, k);
	struct big bw = DIRECT(which, sbigA, sbigB, (k, 0.5 * k, 3, 4, 5, 6, 7 * k));
	CHECK(memcmp(&b, &bw, sizeof b) == 0, "%s: struct big return %d k=%ld: v0=%ld v6=%ld",
	      phase, which, k, b.v[0], b.v[6]);

	struct pair p = site_sp(which ? spB : spA, k), pw = DIRECT(which, spA, spB, (k, k * k));
	CHECK(p.a == pw.a && p.b == pw.b, "%s: struct pair return %d", phase, which);

	struct dpair d = site_sd(which ? sdB : sdA, (double)k);
	struct dpair dw = DIRECT(which, sdA, sdB, ((double)k, 0.25 + k));
	CHECK(d.x == dw.x && d.y == dw.y, "%s: struct dpair return %d", phase, which);

	long double l = site_ld(which ? ldB : ldA, (int)k);
	long double lw = DIRECT(which, ldA, ldB, (1.0L / 3 + k, (int)k, 1e300L * 1e10L));
	CHECK(l == lw, "%s: long double %d", phase, which);
}

#define NSITES 6

int main(int argc, char **argv)
{
	t_deterministic(argv);
	for (long k = 0; k < 5; k++)
		check_all(0, k, "learn");
	struct relpoline_stats s0 = t_stats();
	for (long k = 0; k < 40; k++)
		check_all(0, k, "learn");
	t_epoch();
	struct relpoline_stats s1 = t_stats();
	t_print_stats("promoted", &s1);
	CHECK(s1.sites_promoted >= s0.sites_promoted + NSITES,
	      "sites_promoted %" PRIu64 " -> %" PRIu64 " want +%d", s0.sites_promoted,
	      s1.sites_promoted, NSITES);
	for (long k = 0; k < 50; k++)
		check_all(0, k, "hit");
	for (long k = 0; k < 50; k++)
		check_all(1, k, "miss");
	t_epoch();
	struct relpoline_stats s2 = t_stats();
	CHECK(s2.misses >= s1.misses + NSITES, "misses %" PRIu64 " -> %" PRIu64, s1.misses,
	      s2.misses);
	for (long k = 0; k < 50; k++)
		check_all(k & 1, k, "mixed");
	t_epoch();
	for (long k = 0; k < 50; k++)
		check_all(k % 3 == 0, k, "mixed2");
	CHECK(relpoline_disable() == 0);
	for (long k = 0; k < 20; k++)
		check_all(k & 1, k, "disabled");
	CHECK(relpoline_enable() == 0);
	for (long k = 0; k < 40; k++)
		check_all(1, k, "enabled");
	t_epoch();
	for (long k = 0; k < 20; k++)
		check_all(k & 1, k, "re-promoted");
	struct relpoline_stats s3 = t_stats();
	t_print_stats("end", &s3);
	CHECK(s3.sites_promoted >= NSITES, "sites_promoted %" PRIu64 " after enable",
	      s3.sites_promoted);
	return t_finish("t_abi");
}
