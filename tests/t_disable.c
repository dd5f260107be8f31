/*
 * relpoline_disable(): every site back on its thunk, sites_promoted 0,
 * calls still correct, no promotion while disabled (even with epochs), both
 * idempotent; relpoline_enable(): learning restarts and sites are promoted
 * again with new stubs (retired stubs are never reused).
 */
#include "common.h"

typedef long (*fn_t)(long);
NOINLINE long fa(long x) { return x * 11; }
NOINLINE long fb(long x) { return x * 13; }
#define SITE(n) NOINLINE long site_##n(fn_t f, long x) { return f(x) - n; }
#define TSITE(n) NOINLINE long tsite_##n(fn_t f, long x) { return f(x - n); }
SITE(0) SITE(1) SITE(2) SITE(3) TSITE(4) TSITE(5)
#define NS 6

static void calls(int n, int which, const char *phase)
{
	fn_t f = which ? fb : fa;
	long m = which ? 13 : 11;
	for (long i = 0; i < n; i++) {
		long r[NS] = { site_0(f, i), site_1(f, i), site_2(f, i), site_3(f, i),
			       tsite_4(f, i), tsite_5(f, i) };
		long w[NS] = { i * m, i * m - 1, i * m - 2, i * m - 3, (i - 4) * m, (i - 5) * m };
		for (int k = 0; k < NS; k++)
			CHECK(r[k] == w[k], "%s: site %d which %d: %ld want %ld", phase, k, which, r[k],
			      w[k]);
	}
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	calls(40, 0, "learn");
	t_epoch();
	struct relpoline_stats s1 = t_stats();
	t_print_stats("promoted", &s1);
	CHECK(s1.sites_promoted >= NS, "sites_promoted %" PRIu64 " want >= %d", s1.sites_promoted,
	      NS);
	calls(20, 0, "hit");
	calls(20, 1, "miss");

	CHECK(relpoline_disable() == 0);
	struct relpoline_stats s2 = t_stats();
	t_print_stats("disabled", &s2);
	CHECK(s2.sites_promoted == 0, "sites_promoted %" PRIu64 " after disable", s2.sites_promoted);
	CHECK(s2.stub_targets == 0, "stub_targets %" PRIu64 " after disable", s2.stub_targets);
	for (int k = 1; k <= 16; k++)
		CHECK(s2.stub_hist[k] == 0, "stub_hist[%d] = %" PRIu64 " after disable", k,
		      s2.stub_hist[k]);
	CHECK(s2.patch_passes > s1.patch_passes, "disable made no patch pass");
	CHECK(s2.membarriers > s1.membarriers, "disable issued no membarrier");
	CHECK(relpoline_disable() == 0, "second disable");
	calls(60, 0, "disabled");
	calls(60, 1, "disabled");
	t_epoch();
	t_epoch();
	struct relpoline_stats s3 = t_stats();
	CHECK(s3.sites_promoted == 0, "promoted %" PRIu64 " while disabled", s3.sites_promoted);
	CHECK(s3.stubs_emitted == s2.stubs_emitted, "stubs emitted while disabled");
	calls(10, 0, "disabled");

	CHECK(relpoline_enable() == 0);
	CHECK(relpoline_enable() == 0, "second enable");
	calls(40, 1, "relearn");
	t_epoch();
	struct relpoline_stats s4 = t_stats();
	t_print_stats("enabled", &s4);
	CHECK(s4.sites_promoted >= NS, "sites_promoted %" PRIu64 " after enable", s4.sites_promoted);
	CHECK(s4.stubs_emitted >= s3.stubs_emitted + NS, "stubs_emitted %" PRIu64 " -> %" PRIu64
	      ": new stubs expected", s3.stubs_emitted, s4.stubs_emitted);
	calls(20, 1, "hit");
	calls(20, 0, "miss");

	/*
	 * Quick cycles.  Each cycle re-promotes every site once more; sites are
	 * pinned after RELPOLINE_MAX_VERSIONS (8) promotions, and enable() does
	 * not reset that count, so stay below it: 2 promotions so far + 5.
	 */
	for (int k = 0; k < 5; k++) {
		CHECK(relpoline_disable() == 0);
		calls(3, k & 1, "cycle-disabled");
		CHECK(relpoline_enable() == 0);
		calls(20, k & 1, "cycle-enabled");
		t_epoch();
		calls(3, !(k & 1), "cycle-promoted");
	}
	struct relpoline_stats s5 = t_stats();
	t_print_stats("end", &s5);
	CHECK(s5.sites_promoted >= NS, "sites_promoted %" PRIu64 " at end", s5.sites_promoted);
	return t_finish("t_disable");
}
