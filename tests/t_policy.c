/*
 * Promotion policy and the stubs it produces (run with RELPOLINE_EPOCH_MS=0,
 * PROMOTE_MIN=16, MAX_TARGETS=16, MIN_COVERAGE=75, RELEARN_MISSES=100,
 * MAX_VERSIONS=3):
 *  - 16 uniform targets: one 16-target stub; all 16 dispatch right, a 17th misses;
 *  - 17 targets, the 17th rarer: 16-target stub (97% coverage), the 17th misses;
 *  - misses are counted exactly, and a stub really hits: with the same
 *    stable mix after promotion, fewer than 5% of the calls of a site whose
 *    targets are all in its stub miss (a stub that always misses, or hits
 *    only its first target, fails this), and every call to a target left
 *    out of the stub misses;
 *  - 40 uniform targets: pinned (40% < 75%); pinned sites stop recording;
 *  - a far target (libc's labs): counted in far_targets, calls correct;
 *  - relearn after RELEARN_MISSES misses in an epoch, re-promotion to the new target;
 *  - MAX_VERSIONS: a site flipping between targets gets at most 3 stubs (then
 *    it is decided for good, on its last stub or pinned: no more relearns,
 *    no more stubs), still correct.
 */
#include "common.h"

typedef long (*fn_t)(long);
#define T(n) NOINLINE long tg_##n(long x) { return x * 64 + n; }
#define T8(a) T(a##0) T(a##1) T(a##2) T(a##3) T(a##4) T(a##5) T(a##6) T(a##7)
T8(1) T8(2) T8(3) T8(4) T8(5)
#define R8(a) tg_##a##0, tg_##a##1, tg_##a##2, tg_##a##3, tg_##a##4, tg_##a##5, tg_##a##6, tg_##a##7
static fn_t const tg[40] = { R8(1), R8(2), R8(3), R8(4), R8(5) };
static long tg_id(int i) { return (i / 8 + 1) * 10 + i % 8; }

/* "+ 1" is the result; the volatile K keeps the bodies distinct (gcc folds identical functions). */
#define SITE(name, K) NOINLINE long name(fn_t f, long x) \
	{ volatile long k = K; return f(x) + 1 + (k - K); }
SITE(site16, 1) SITE(site17, 2) SITE(site40, 3) SITE(site_far, 4) SITE(site_rl, 5) SITE(site_mv, 6)
SITE(site_far2, 7)

/* always_inline: SITE is a constant, so the calls below are direct (not one more thunk site) */
static inline __attribute__((always_inline)) void use(long (*site)(fn_t, long), const char *name,
						     int first, int n, int reps)
{
	for (int r = 0; r < reps; r++)
		for (int i = first; i < first + n; i++) {
			long got = site(tg[i], r), want = r * 64 + tg_id(i) + 1;
			CHECK(got == want, "%s target %d: %ld want %ld", name, i, got, want);
		}
}

static void use_far(int reps)
{
	for (int r = 0; r < reps; r++) {
		long got = site_far(labs, -r - 5);
		CHECK(got == r + 6, "site_far(labs): %ld want %d", got, r + 6);
		got = site_far(tg[0], r);
		CHECK(got == r * 64 + 10 + 1, "site_far(tg0): %ld", got);
	}
}

/* site_far2: 9 calls to tg0 for each call to labs (out of reach). */
static void use_far2(int reps, int labs_calls)
{
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < 9; i++) {
			long got = site_far2(tg[0], r);
			CHECK(got == r * 64 + 10 + 1, "site_far2(tg0): %ld", got);
		}
		for (int i = 0; i < labs_calls; i++) {
			long got = site_far2(labs, -r - 5);
			CHECK(got == r + 6, "site_far2(labs): %ld want %d", got, r + 6);
		}
	}
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	struct relpoline_stats s0 = t_stats();
	use(site16, "site16", 0, 16, 8);
	use(site17, "site17", 0, 16, 8);
	use(site17, "site17", 16, 1, 4);   /* the 17th is rarer: it is the one left out */
	use(site40, "site40", 0, 40, 8);
	use_far(40);
	use_far2(10, 1);
	t_epoch();
	struct relpoline_stats s1 = t_stats();
	t_print_stats("decided", &s1);
	CHECK(s1.stub_hist[16] >= s0.stub_hist[16] + 2, "stub_hist[16] %" PRIu64 " want 2 (16 and 17 targets)",
	      s1.stub_hist[16]);
	CHECK(s1.sites_pinned >= s0.sites_pinned + 1, "sites_pinned %" PRIu64 " want +1 (40 targets)",
	      s1.sites_pinned);
	CHECK(s1.far_targets >= 1, "far_targets %" PRIu64 " want >= 1 (labs)", s1.far_targets);

	/*
	 * The same stable mix after promotion: every target of site16's stub,
	 * the 16 of site17's; then the ones left out.  Each phase is one epoch,
	 * so its misses are its own.  A working stub misses none of its
	 * targets (the bound is 5% of the calls); one that always misses, or
	 * that only ever matches its first target, misses >= 15/16 of them.
	 */
	struct relpoline_stats m0 = t_stats();
	use(site16, "site16-hit", 0, 16, 20);
	t_epoch();
	struct relpoline_stats m1 = t_stats();
	uint64_t miss16 = m1.misses - m0.misses;
	printf("site16, stable mix of its 16 targets: %" PRIu64 " misses in 320 calls\n", miss16);
	CHECK(miss16 * 20 < 320, "site16: %" PRIu64 " misses in 320 calls to the 16 targets of its "
	      "stub, want < 5%%", miss16);
	use(site17, "site17-hit", 0, 16, 20);
	t_epoch();
	struct relpoline_stats m2 = t_stats();
	uint64_t miss17 = m2.misses - m1.misses;
	printf("site17, stable mix of its 16 hot targets: %" PRIu64 " misses in 320 calls\n", miss17);
	CHECK(miss17 * 20 < 320, "site17: %" PRIu64 " misses in 320 calls to the 16 targets of its "
	      "stub, want < 5%%", miss17);
	use(site17, "site17-rare", 16, 1, 30);
	t_epoch();
	struct relpoline_stats m3 = t_stats();
	CHECK(m3.misses - m2.misses == 30, "site17: %" PRIu64 " misses in 30 calls to the target "
	      "left out of its stub, want 30", m3.misses - m2.misses);
	use(site16, "site16-miss", 16, 10, 3);
	t_epoch();
	struct relpoline_stats m4 = t_stats();
	CHECK(m4.misses - m3.misses == 30, "site16: %" PRIu64 " misses in 30 calls to 10 targets "
	      "not in its stub, want 30", m4.misses - m3.misses);
	/*
	 * site_far: labs is out of reach, so a stub could hold tg0 only, which
	 * covers 50% of its calls: under MIN_COVERAGE (75), the site is pinned
	 * (coverage is judged on what a stub really compares) and counts no miss.
	 */
	use_far(10);
	t_epoch();
	struct relpoline_stats s1a = t_stats();
	CHECK(s1a.misses == m4.misses, "site_far: %" PRIu64 " misses: it should be pinned (tg0 alone "
	      "covers 50%%)", s1a.misses - m4.misses);
	/*
	 * site_far2: tg0 covers 90%: promoted with tg0 alone.  Every call to labs
	 * misses (it is not in the stub), no call to tg0 does.
	 */
	use_far2(10, 0);
	t_epoch();
	struct relpoline_stats s1c = t_stats();
	CHECK(s1c.misses == s1a.misses, "site_far2: %" PRIu64 " misses in 90 calls to tg0, its promoted "
	      "target", s1c.misses - s1a.misses);
	use_far2(10, 1);
	t_epoch();
	struct relpoline_stats s1b = t_stats();
	CHECK(s1b.misses - s1c.misses == 10, "site_far2: %" PRIu64 " misses for 10 calls to labs (out of "
	      "reach) and 90 to tg0, want 10", s1b.misses - s1c.misses);
	/* 160 misses on labs in one epoch (RELEARN_MISSES is 100): no new stub could hold it, so no relearn. */
	use_far2(40, 4);
	t_epoch();
	struct relpoline_stats s1d = t_stats();
	CHECK(s1d.misses - s1b.misses == 160, "site_far2: %" PRIu64 " misses for 160 calls to labs",
	      s1d.misses - s1b.misses);
	CHECK(s1d.relearns == s1b.relearns && s1d.stubs_emitted == s1b.stubs_emitted,
	      "site_far2: misses on an unreachable target made %" PRIu64 " relearns, %" PRIu64 " stubs",
	      s1d.relearns - s1b.relearns, s1d.stubs_emitted - s1b.stubs_emitted);
	s1b = s1d;
	use(site40, "site40-pinned", 0, 40, 3);
	t_epoch();
	struct relpoline_stats s2 = t_stats();
	CHECK(s2.misses == s1b.misses, "the pinned site counted %" PRIu64 " misses",
	      s2.misses - s1b.misses);
	CHECK(s2.relearns == s1.relearns, "%" PRIu64 " relearns during the stable phases",
	      s2.relearns - s1.relearns);

	/* A pinned site is on the plain fallback: it records nothing. */
	use(site40, "site40-pinned", 0, 40, 5);
	t_epoch();
	struct relpoline_stats s3 = t_stats();
	CHECK(s3.records == s2.records, "pinned site still records (%" PRIu64 " -> %" PRIu64 ")",
	      s2.records, s3.records);

	/* Relearn by misses. */
	use(site_rl, "site_rl", 0, 1, 40);
	t_epoch();
	struct relpoline_stats a = t_stats();
	use(site_rl, "site_rl-miss", 1, 1, 300);
	t_epoch();
	struct relpoline_stats b = t_stats();
	CHECK(b.relearns == a.relearns + 1, "relearns %" PRIu64 " -> %" PRIu64 " want +1 after 300 misses",
	      a.relearns, b.relearns);
	use(site_rl, "site_rl-new", 1, 1, 40);
	t_epoch();
	struct relpoline_stats c = t_stats();
	use(site_rl, "site_rl-hit", 1, 1, 40);
	t_epoch();
	struct relpoline_stats d = t_stats();
	CHECK(d.misses == c.misses, "site_rl not re-promoted to its new target (misses %" PRIu64
	      " -> %" PRIu64 ")", c.misses, d.misses);
	CHECK(d.sites_promoted == a.sites_promoted, "sites_promoted %" PRIu64 " want %" PRIu64,
	      d.sites_promoted, a.sites_promoted);

	/*
	 * MAX_VERSIONS=3: move to a new target each time (a new stub keeps the
	 * old targets behind the new ones, so returning to an old one would not
	 * miss); after 3 stubs the site stays on the last.
	 */
	struct relpoline_stats e0 = t_stats();
	for (int v = 0; v < 6; v++) {
		use(site_mv, "site_mv", v, 1, 300);
		t_epoch();
		use(site_mv, "site_mv", v, 1, 40);
		t_epoch();
	}
	struct relpoline_stats e1 = t_stats();
	t_print_stats("end", &e1);
	CHECK(e1.stubs_emitted - e0.stubs_emitted == 3, "site_mv got %" PRIu64 " stubs, want 3 "
	      "(MAX_VERSIONS)", e1.stubs_emitted - e0.stubs_emitted);
	CHECK(e1.relearns - e0.relearns == 2, "site_mv: %" PRIu64 " relearns, want 2",
	      e1.relearns - e0.relearns);
	/*
	 * Capped, the site is decided for good: it keeps its last stub or is
	 * pinned.  Which one depends on how its last stub's (stale) rates compare
	 * with the newest target's, a wall-clock ratio that sits right at
	 * MIN_COVERAGE=75 here (3 old targets against 1 new), so either is
	 * right; what must hold is that it is in exactly one of the two states
	 * and that further changes of mix move it no more.
	 */
	CHECK(e1.sites_promoted + e1.sites_pinned == e0.sites_promoted + e0.sites_pinned + 1,
	      "site_mv neither promoted nor pinned at the end (promoted %" PRIu64 " -> %" PRIu64
	      ", pinned %" PRIu64 " -> %" PRIu64 ")", e0.sites_promoted, e1.sites_promoted,
	      e0.sites_pinned, e1.sites_pinned);
	for (int v = 6; v < 8; v++) {
		use(site_mv, "site_mv", v, 1, 300);
		t_epoch();
	}
	struct relpoline_stats e2 = t_stats();
	CHECK(e2.stubs_emitted == e1.stubs_emitted && e2.relearns == e1.relearns &&
	      e2.sites_promoted == e1.sites_promoted && e2.sites_pinned == e1.sites_pinned,
	      "capped site_mv moved again: stubs +%" PRIu64 ", relearns +%" PRIu64,
	      e2.stubs_emitted - e1.stubs_emitted, e2.relearns - e1.relearns);
	use(site_mv, "site_mv-last", 0, 8, 20);
	return t_finish("t_policy");
}
