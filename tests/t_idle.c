/*
 * Seed-001 claim: once the sites are promoted, an epoch with nothing to
 * change does no patching work at all: membarriers, protect_changes,
 * syscalls, patch_passes, sites_patched and bytes_written stay put, and
 * patch_passes_empty grows.  Also with promoted sites being hit in
 * between (hits never reach the runtime), and with no calls at all.
 */
#include "common.h"

typedef int (*fn_t)(int);
NOINLINE int fa(int x) { return x + 1; }
NOINLINE int fb(int x) { return x + 2; }
NOINLINE int fc(int x) { return x + 3; }
#define SITE(n) NOINLINE int site_##n(fn_t f, int x) { return f(x) * 2 + n; }
SITE(0) SITE(1) SITE(2) SITE(3) SITE(4) SITE(5) SITE(6) SITE(7)
#define NS 8

static void calls(int n, int mix)
{
	fn_t fs[3] = { fa, fb, fc };
	for (int i = 0; i < n; i++) {
		fn_t f = fs[mix ? i % 3 : 0];
		int want = ((mix ? i % 3 : 0) + 1 + i) * 2;
		int r[NS] = { site_0(f, i), site_1(f, i), site_2(f, i), site_3(f, i),
			      site_4(f, i), site_5(f, i), site_6(f, i), site_7(f, i) };
		for (int k = 0; k < NS; k++)
			CHECK(r[k] == want + k, "site %d: %d want %d", k, r[k], want + k);
	}
}

static void idle_epoch(const char *what)
{
	struct relpoline_stats a = t_stats();
	t_epoch();
	struct relpoline_stats b = t_stats();
#define SAME(f) CHECK(b.f == a.f, "%s: idle epoch changed " #f ": %" PRIu64 " -> %" PRIu64, \
		      what, a.f, b.f)
	SAME(membarriers);
	SAME(protect_changes);
	SAME(syscalls);
	SAME(patch_passes);
	SAME(sites_patched);
	SAME(bytes_written);
	SAME(sites_promoted);
	SAME(stubs_emitted);
#undef SAME
	CHECK(b.patch_passes_empty > a.patch_passes_empty,
	      "%s: patch_passes_empty did not grow (%" PRIu64 ")", what, b.patch_passes_empty);
	CHECK(b.epochs > a.epochs, "%s: epochs did not grow", what);
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	calls(40, 0);
	struct relpoline_stats s0 = t_stats();
	t_epoch();
	struct relpoline_stats s1 = t_stats();
	t_print_stats("promoted", &s1);
	CHECK(s1.sites_promoted >= s0.sites_promoted + NS, "sites_promoted %" PRIu64 " -> %" PRIu64,
	      s0.sites_promoted, s1.sites_promoted);
	CHECK(s1.patch_passes > s0.patch_passes, "promotion made no patch pass");
	CHECK(s1.membarriers > s0.membarriers, "promotion issued no membarrier");

	idle_epoch("right after promotion");
	idle_epoch("second idle");
	calls(100, 0);
	idle_epoch("after hits");

	/* Relearn, promote three-target stubs, hit them, then idle again. */
	CHECK(relpoline_relearn() == 0);
	t_epoch();
	calls(60, 1);
	t_epoch();
	calls(60, 1);
	idle_epoch("after 3-target promotion");
	struct relpoline_stats e = t_stats();
	CHECK(e.stub_hist[3] >= NS, "stub_hist[3] = %" PRIu64 " want >= %d", e.stub_hist[3], NS);
	t_print_stats("end", &e);
	return t_finish("t_idle");
}
