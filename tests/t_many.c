/*
 * Many sites: 1024 distinct call sites (and 1024 tail sites), each with its
 * own pair of targets, so stubs fill many arena pages and the site map
 * grows.  All promoted, then all missed, relearned, disabled and enabled;
 * every result checked.
 */
#include "common.h"

typedef unsigned (*fn_t)(unsigned);
NOINLINE unsigned ta(unsigned x) { return x * 3u; }
NOINLINE unsigned tb(unsigned x) { return x * 5u; }
NOINLINE unsigned tc(unsigned x) { return x * 7u; }

#define S1(n) NOINLINE unsigned cs_##n(fn_t f, unsigned x) { return f(x) + (n); } \
	NOINLINE unsigned ts_##n(fn_t f, unsigned x) { return f(x + (n)); }
#define S4(n) S1(n##0) S1(n##1) S1(n##2) S1(n##3)
#define S16(n) S4(n##0) S4(n##1) S4(n##2) S4(n##3)
#define S64(n) S16(n##0) S16(n##1) S16(n##2) S16(n##3)
#define S256(n) S64(n##0) S64(n##1) S64(n##2) S64(n##3)
/* base-4 digit names: 1000..13333 */
S256(10) S256(11) S256(12) S256(13)

typedef unsigned (*site_t)(fn_t, unsigned);
#define P1(n) { cs_##n, ts_##n, n },
#define P4(n) P1(n##0) P1(n##1) P1(n##2) P1(n##3)
#define P16(n) P4(n##0) P4(n##1) P4(n##2) P4(n##3)
#define P64(n) P16(n##0) P16(n##1) P16(n##2) P16(n##3)
#define P256(n) P64(n##0) P64(n##1) P64(n##2) P64(n##3)
static const struct { site_t c, t; unsigned n; } sites[] = { P256(10) P256(11) P256(12) P256(13) };
#define NS (sizeof sites / sizeof sites[0])

/* The site functions are reached through an asm-free direct-call shim: a
 * table call would be one more (megamorphic) thunk site, which is fine too. */
static void round_(fn_t f, unsigned mul, unsigned reps, const char *phase)
{
	for (unsigned r = 0; r < reps; r++)
		for (size_t i = 0; i < NS; i++) {
			unsigned x = r * 11 + (unsigned)i;
			unsigned a = sites[i].c(f, x), b = sites[i].t(f, x);
			if (a != x * mul + sites[i].n || b != (x + sites[i].n) * mul) {
				CHECK(0, "%s: site %zu: %u %u want %u %u", phase, i, a, b,
				      x * mul + sites[i].n, (x + sites[i].n) * mul);
				return;
			}
		}
}

/*
 * A thread's sample table holds 1024 (site, target) pairs per epoch
 * (RP_TTAB_SIZE); 2048 sites plus the dispatch site overflow it, so
 * promotion takes a few epochs (the overflow shows in records_dropped).
 * Returns the number of epochs it took (99: never).
 */
static int promote_all(fn_t f, unsigned mul, uint64_t want, const char *phase)
{
	for (int e = 1; e <= 12; e++) {
		round_(f, mul, 20, phase);
		t_epoch();
		if (t_stats().sites_promoted >= want)
			return e;
	}
	return 99;
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	struct relpoline_stats s0 = t_stats();
	int ne = promote_all(ta, 3, s0.sites_promoted + 2 * NS, "learn");
	struct relpoline_stats s1 = t_stats();
	printf("promoted %zu sites in %d epochs\n", 2 * NS, ne);
	t_print_stats("promoted", &s1);
	CHECK(s1.sites_promoted >= s0.sites_promoted + 2 * NS, "sites_promoted %" PRIu64 " -> %" PRIu64
	      " want +%zu", s0.sites_promoted, s1.sites_promoted, 2 * NS);
	CHECK(s1.arena_bytes >= 2 * NS * 16, "arena_bytes %" PRIu64 " for %zu stubs", s1.arena_bytes,
	      2 * NS);
	round_(ta, 3, 5, "hit");
	round_(tb, 5, 5, "miss");
	CHECK(relpoline_relearn() == 0);
	promote_all(tc, 7, 2 * NS, "relearn");
	round_(tc, 7, 3, "re-hit");
	round_(ta, 3, 3, "re-miss");
	struct relpoline_stats s2 = t_stats();
	CHECK(s2.sites_promoted >= 2 * NS, "sites_promoted %" PRIu64 " after relearn", s2.sites_promoted);
	CHECK(relpoline_disable() == 0);
	round_(tb, 5, 3, "disabled");
	CHECK(relpoline_enable() == 0);
	promote_all(tb, 5, 2 * NS, "enabled");
	round_(tb, 5, 3, "end");
	struct relpoline_stats s3 = t_stats();
	t_print_stats("end", &s3);
	CHECK(s3.sites_promoted >= 2 * NS, "sites_promoted %" PRIu64 " at end", s3.sites_promoted);
	return t_finish("t_many");
}
