/*
 * relpoline_disable() / relpoline_enable(), checked on the site bytes.
 *
 * Every site of this test is found in the executable file (sites.h), so its
 * register and its thunk __x86_indirect_thunk_<reg> are known whatever the
 * runtime did to it in memory.  Where each site really goes is read with
 * t_site_dest() (through its arena cell since ABI 3):
 *  - promoted: a stub of that site (RPLS header naming the site, compare
 *    chain, in a stub arena), never the thunk; a cell compare, if armed,
 *    goes to the site's hot target;
 *  - disabled: exactly its own thunk, for every site, call and tail alike,
 *    and the cell's own compare disarmed (an armed one would still send the
 *    hot target straight there); still so after calls and epochs while
 *    disabled (no promotion), and after a second disable;
 *  - enabled again and promoted: a stub again, and a NEW one: retired stubs
 *    are never reused, so a site never goes back to any earlier stub.
 * The stats agree (sites_promoted 0 while disabled, no stub emitted while
 * disabled, new stubs after enable) and every call returns the right value.
 */
#include "common.h"
#include "sites.h"

typedef long (*fn_t)(long);
NOINLINE long fa(long x) { return x * 11; }
NOINLINE long fb(long x) { return x * 13; }
#define SITE(n) NOINLINE long site_##n(fn_t f, long x) { return f(x) - n; }
#define TSITE(n) NOINLINE long tsite_##n(fn_t f, long x) { return f(x - n); }
SITE(0) SITE(1) SITE(2) SITE(3) TSITE(4) TSITE(5)
#define NS 6

static void *const site_fns[NS] = { (void *)site_0, (void *)site_1, (void *)site_2,
				     (void *)site_3, (void *)tsite_4, (void *)tsite_5 };
static struct ts_site ts[NS];

#define MAXSTUBS 16
static const unsigned char *stubs_seen[NS][MAXSTUBS];
static int nstubs_seen[NS];

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

/* The opcode never changes: only the rel32 of a site is ever rewritten. */
static void check_opcode(int k, const char *phase)
{
	CHECK(memcmp(ts[k].addr, ts[k].orig, (size_t)ts[k].len - 4) == 0,
	      "%s: site %d (%p): opcode %02x changed (linked %02x)", phase, k, (void *)ts[k].addr,
	      ts[k].addr[0], ts[k].orig[0]);
}

/* Every site goes to its own thunk. */
static void expect_thunks(const char *phase)
{
	for (int k = 0; k < NS; k++) {
		const void *cell;
		const void *d = t_site_dest(ts[k].addr, &cell);
		check_opcode(k, phase);
		CHECK(d == ts_thunks[ts[k].reg],
		      "%s: site %d (%c at %p) goes to %p, not its thunk __x86_indirect_thunk_%s %p%s", phase,
		      k, ts[k].kind, (void *)ts[k].addr, d, ts_regname[ts[k].reg],
		      (void *)ts_thunks[ts[k].reg], ts_is_stub_for(d, ts[k].addr) ? " (a stub)" : "");
		CHECK(!cell || ts_in_arena(cell), "%s: site %d: cell %p not in a stub arena", phase, k,
		      cell);
		const unsigned char *armed;
		ts_dest2(ts[k].addr, NULL, &armed);
		CHECK(armed == NULL, "%s: site %d: its cell's compare is still armed (to %p)", phase, k,
		      (void *)armed);
	}
}

/* Every site is on a stub of its own, and (NEW) on one it never had before; HOT its target. */
static void expect_stubs(const char *phase, int fresh, fn_t hot)
{
	int narmed = 0;
	for (int k = 0; k < NS; k++) {
		const unsigned char *armed;
		ts_dest2(ts[k].addr, NULL, &armed);
		narmed += armed != NULL;
		CHECK(armed == NULL || armed == (const unsigned char *)hot,
		      "%s: site %d: its cell's compare is armed to %p, not its one target %p", phase, k,
		      (void *)armed, (void *)hot);
		const void *cell;
		const unsigned char *d = (const unsigned char *)t_site_dest(ts[k].addr, &cell);
		check_opcode(k, phase);
		CHECK(ts_thunk_index(d) < 0, "%s: site %d (%c) still goes to thunk %s", phase, k,
		      ts[k].kind, ts_regname[ts_thunk_index(d)]);
		CHECK(ts_is_stub_for(d, ts[k].addr), "%s: site %d (%c at %p) goes to %p: not a stub of "
		      "that site in a stub arena", phase, k, ts[k].kind, (void *)ts[k].addr, (void *)d);
		int old = 0;
		for (int j = 0; j < nstubs_seen[k]; j++)
			old |= stubs_seen[k][j] == d;
		if (fresh)
			CHECK(!old, "%s: site %d is back on an earlier stub %p (retired stubs are never "
			      "reused)", phase, k, (void *)d);
		if (!old && nstubs_seen[k] < MAXSTUBS)
			stubs_seen[k][nstubs_seen[k]++] = d;
	}
	printf("%s: %d of %d sites on new stubs, %d cell compares armed\n", phase, NS, NS, narmed);
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	for (int k = 0; k < NS; k++) {
		ts[k] = ts_one_site(site_fns[k], "site function");
		if (!ts[k].addr)
			DIE("site %d: no thunk site found in the executable", k);
	}
	for (int k = 0; k < NS; k++)
		printf("site %d: %c at %p, register %s\n", k, ts[k].kind, (void *)ts[k].addr,
		       ts_regname[ts[k].reg]);
	/* site_0 is f(x) - 0: a tail call too */
	CHECK(ts[1].kind == 'c' && ts[2].kind == 'c' && ts[3].kind == 'c' && ts[4].kind == 'j' &&
	      ts[5].kind == 'j', "expected call sites 1-3 and tail (jmp) sites 4-5: %c%c%c %c%c",
	      ts[1].kind, ts[2].kind, ts[3].kind, ts[4].kind, ts[5].kind);

	calls(40, 0, "learn");
	t_epoch();
	struct relpoline_stats s1 = t_stats();
	t_print_stats("promoted", &s1);
	CHECK(s1.sites_promoted >= NS, "sites_promoted %" PRIu64 " want >= %d", s1.sites_promoted,
	      NS);
	expect_stubs("promoted", 1, fa);
	calls(20, 0, "hit");
	calls(20, 1, "miss");

	CHECK(relpoline_disable() == 0);
	struct relpoline_stats s2 = t_stats();
	t_print_stats("disabled", &s2);
	expect_thunks("disabled");
	CHECK(s2.sites_promoted == 0, "sites_promoted %" PRIu64 " after disable", s2.sites_promoted);
	CHECK(s2.stub_targets == 0, "stub_targets %" PRIu64 " after disable", s2.stub_targets);
	for (int k = 1; k <= 16; k++)
		CHECK(s2.stub_hist[k] == 0, "stub_hist[%d] = %" PRIu64 " after disable", k,
		      s2.stub_hist[k]);
	CHECK(s2.patch_passes > s1.patch_passes, "disable made no patch pass");
	CHECK(s2.stubs_emitted == s1.stubs_emitted, "disable emitted stubs");
	CHECK(s2.membarriers - s1.membarriers <= s2.patch_passes - s1.patch_passes,
	      "disable: %" PRIu64 " membarriers for %" PRIu64 " pass(es); at most one per pass",
	      s2.membarriers - s1.membarriers, s2.patch_passes - s1.patch_passes);
	CHECK(relpoline_disable() == 0, "second disable");
	expect_thunks("disabled twice");
	calls(60, 0, "disabled");
	calls(60, 1, "disabled");
	t_epoch();
	t_epoch();
	struct relpoline_stats s3 = t_stats();
	expect_thunks("disabled, after calls and epochs");
	CHECK(s3.sites_promoted == 0, "promoted %" PRIu64 " while disabled", s3.sites_promoted);
	CHECK(s3.stubs_emitted == s2.stubs_emitted, "stubs emitted while disabled");
	calls(10, 0, "disabled");

	CHECK(relpoline_enable() == 0);
	CHECK(relpoline_enable() == 0, "second enable");
	calls(40, 1, "relearn");
	t_epoch();
	struct relpoline_stats s4 = t_stats();
	t_print_stats("enabled", &s4);
	expect_stubs("enabled and promoted", 1, fb);
	CHECK(s4.sites_promoted >= NS, "sites_promoted %" PRIu64 " after enable", s4.sites_promoted);
	CHECK(s4.stubs_emitted >= s3.stubs_emitted + NS, "stubs_emitted %" PRIu64 " -> %" PRIu64
	      ": new stubs expected", s3.stubs_emitted, s4.stubs_emitted);
	calls(20, 1, "hit");
	calls(20, 0, "miss");

	/*
	 * Quick cycles.  Each cycle re-promotes every site once more; sites are
	 * pinned after RELPOLINE_MAX_VERSIONS (16) promotions, and enable() does
	 * not reset that count, so stay below it: 2 promotions so far + 5.
	 */
	for (int k = 0; k < 5; k++) {
		CHECK(relpoline_disable() == 0);
		expect_thunks("cycle, disabled");
		calls(3, k & 1, "cycle-disabled");
		CHECK(relpoline_enable() == 0);
		calls(20, k & 1, "cycle-enabled");
		t_epoch();
		expect_stubs("cycle, promoted", 1, (k & 1) ? fb : fa);
		calls(3, !(k & 1), "cycle-promoted");
	}
	struct relpoline_stats s5 = t_stats();
	t_print_stats("end", &s5);
	CHECK(s5.sites_promoted >= NS, "sites_promoted %" PRIu64 " at end", s5.sites_promoted);
	for (int k = 0; k < NS; k++)
		CHECK(nstubs_seen[k] == 7, "site %d was on %d distinct stubs, want 7", k, nstubs_seen[k]);
	return t_finish("t_disable");
}
