/*
 * Stats output.  Promotes a few sites, checks relpoline_stats_print() on a
 * pipe, and exits normally: run.sh runs it with RELPOLINE_STATS=1 (table
 * on stderr at exit) and RELPOLINE_STATS=json:PATH (valid JSON, checked
 * with python3 -m json.tool and for the sites_promoted value).
 */
#include "common.h"

typedef int (*fn_t)(int);
NOINLINE int fa(int x) { return x * 2; }
NOINLINE int fb(int x) { return x * 3; }
#define SITE(n) NOINLINE int site_##n(fn_t f, int x) { return f(x) + n; }
SITE(0) SITE(1) SITE(2)

int main(int argc, char **argv)
{
	t_deterministic(argv);
	for (int i = 0; i < 50; i++) {
		CHECK(site_0(fa, i) == 2 * i && site_1(fa, i) == 2 * i + 1 && site_2(fb, i) == 3 * i + 2);
	}
	t_epoch();
	for (int i = 0; i < 10; i++)
		CHECK(site_0(fb, i) == 3 * i && site_1(fa, i) == 2 * i + 1);
	t_epoch();
	struct relpoline_stats s = t_stats();
	t_print_stats("stats", &s);
	CHECK(s.sites_promoted >= 3, "sites_promoted %" PRIu64, s.sites_promoted);
	CHECK(s.modules >= 1, "modules %" PRIu64, s.modules);
	/* site_1 and site_2 are call sites; site_0 (f(x) + 0) compiles to a tail jump */
	CHECK(s.sites_seen >= 3 && s.sites_call >= 2, "seen %" PRIu64 " call %" PRIu64,
	      s.sites_seen, s.sites_call);
	CHECK(s.sites_call + s.sites_tail == s.sites_seen, "call %" PRIu64 " + tail %" PRIu64
	      " != seen %" PRIu64, s.sites_call, s.sites_tail, s.sites_seen);
	uint64_t h = 0, ht = 0;
	for (int k = 0; k <= 16; k++) {
		h += s.stub_hist[k];
		ht += s.stub_hist[k] * (uint64_t)k;
	}
	CHECK(h == s.sites_promoted, "sum(stub_hist) %" PRIu64 " != sites_promoted %" PRIu64, h,
	      s.sites_promoted);
	CHECK(ht == s.stub_targets, "stub_hist targets %" PRIu64 " != stub_targets %" PRIu64, ht,
	      s.stub_targets);
	CHECK(s.misses >= 10, "misses %" PRIu64 " want >= 10", s.misses);
	CHECK(s.arena_bytes > 0, "arena_bytes 0 with promoted sites");
	CHECK(s.first_promotion_ns > 0, "first_promotion_ns 0");
	CHECK(s.epochs >= 2, "epochs %" PRIu64, s.epochs);

	int fds[2];
	CHECK(pipe(fds) == 0);
	CHECK(relpoline_stats_print(fds[1]) == 0, "stats_print");
	close(fds[1]);
	char buf[65536];
	ssize_t n, tot = 0;
	while ((n = read(fds[0], buf + tot, sizeof buf - 1 - (size_t)tot)) > 0)
		tot += n;
	close(fds[0]);
	buf[tot] = 0;
	CHECK(tot > 100, "stats_print wrote %zd bytes", tot);
	CHECK(strstr(buf, "promot") != NULL, "stats_print output has no 'promot...'");
	int lines = 0;
	for (char *p = buf; *p; p++)
		lines += *p == '\n';
	CHECK(lines >= 5, "stats_print: %d lines", lines);
	return t_finish("t_stats");
}
