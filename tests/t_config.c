/*
 * Configuration.
 *   t_config api        relpoline_config_set/get: -ENOENT, -EINVAL (value
 *                       kept), case-insensitive names, truncation, version.
 *   t_config work MODE  a small workload; MODE "promoted": sites must get
 *                       promoted, "none": sites_promoted must stay 0.
 *                       run.sh runs it with bad environment values (and
 *                       checks the warning on stderr) and with MODE=off.
 */
#include "common.h"

typedef int (*fn_t)(int);
NOINLINE int fa(int x) { return x ^ 0x100; }
NOINLINE int fb(int x) { return x ^ 0x200; }
#define SITE(n) NOINLINE int site_##n(fn_t f, int x) { return f(x) + n; }
SITE(0) SITE(1) SITE(2) SITE(3)

static void work(int n, int which)
{
	fn_t f = which ? fb : fa;
	for (int i = 0; i < n; i++) {
		int want = i ^ (which ? 0x200 : 0x100);
		CHECK(site_0(f, i) == want && site_1(f, i) == want + 1 && site_2(f, i) == want + 2 &&
			      site_3(f, i) == want + 3,
		      "wrong result i=%d which=%d", i, which);
	}
}

static void get(const char *name, char *buf, size_t len)
{
	int r = relpoline_config_get(name, buf, len);
	CHECK(r == 0, "config_get(%s) = %d", name, r);
}

static int api(void)
{
	char buf[128], old[128];
	int r;

	CHECK(strcmp(relpoline_version(), "0.1.0") == 0, "version \"%s\"", relpoline_version());

	r = relpoline_config_set("no_such_key", "1");
	CHECK(r == -ENOENT, "set(no_such_key) = %d want -ENOENT", r);
	r = relpoline_config_get("no_such_key", buf, sizeof buf);
	CHECK(r == -ENOENT, "get(no_such_key) = %d want -ENOENT", r);
	r = relpoline_config_set("RELPOLINE_MODE", "on");
	CHECK(r == -ENOENT, "set(RELPOLINE_MODE) = %d: the name has no prefix, want -ENOENT", r);

	/* Every documented key exists. */
	static const char *const keys[] = { "mode", "fallback", "stats", "epoch_ms", "promote_min",
					    "max_targets", "min_coverage", "relearn_misses",
					    "max_versions" };
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		r = relpoline_config_get(keys[i], buf, sizeof buf);
		CHECK(r == 0, "get(%s) = %d", keys[i], r);
	}

	get("mode", buf, sizeof buf);
	CHECK(strcmp(buf, "on") == 0, "mode = \"%s\" want \"on\"", buf);
	r = relpoline_config_set("mode", "bogus");
	CHECK(r == -EINVAL, "set(mode, bogus) = %d want -EINVAL", r);
	get("mode", buf, sizeof buf);
	CHECK(strcmp(buf, "on") == 0, "mode = \"%s\" after a bad set", buf);

	r = relpoline_config_set("fallback", "sideways");
	CHECK(r == -EINVAL, "set(fallback, sideways) = %d want -EINVAL", r);

	get("promote_min", old, sizeof old);
	static const char *const bad_num[] = { "abc", "", "-5", "12x", "99999999999999999999999" };
	for (size_t i = 0; i < sizeof bad_num / sizeof bad_num[0]; i++) {
		r = relpoline_config_set("promote_min", bad_num[i]);
		CHECK(r == -EINVAL, "set(promote_min, \"%s\") = %d want -EINVAL", bad_num[i], r);
		get("promote_min", buf, sizeof buf);
		CHECK(strcmp(buf, old) == 0, "promote_min changed to \"%s\" by a bad set", buf);
	}
	r = relpoline_config_set("min_coverage", "101");
	CHECK(r == -EINVAL, "set(min_coverage, 101) = %d want -EINVAL (percent)", r);

	r = relpoline_config_set("PROMOTE_MIN", "32");
	CHECK(r == 0, "set(PROMOTE_MIN, 32) = %d (names are case-insensitive)", r);
	get("promote_min", buf, sizeof buf);
	CHECK(strcmp(buf, "32") == 0, "promote_min = \"%s\" want 32", buf);
	r = relpoline_config_set("Promote_Min", "16");
	CHECK(r == 0, "set(Promote_Min, 16) = %d", r);

	/* Truncation: at most LEN bytes, NUL-terminated, nothing beyond. */
	memset(buf, 'X', sizeof buf);
	r = relpoline_config_get("fallback", buf, 4);
	CHECK(r == 0 || r == -ERANGE || r == -ENOSPC, "get(fallback, len 4) = %d", r);
	CHECK(memchr(buf, 0, 4) != NULL, "get(fallback, len 4) did not NUL-terminate within 4");
	CHECK(buf[4] == 'X' && buf[5] == 'X', "get(fallback, len 4) wrote beyond 4 bytes");

	r = relpoline_config_set("fallback", "indirect");
	CHECK(r == 0, "set(fallback, indirect) = %d", r);
	get("fallback", buf, sizeof buf);
	CHECK(strcmp(buf, "indirect") == 0, "fallback = \"%s\"", buf);
	work(50, 0);
	t_epoch();
	work(50, 1);
	r = relpoline_config_set("fallback", "retpoline");
	CHECK(r == 0, "set(fallback, retpoline) = %d", r);
	work(50, 0);

	struct relpoline_stats s = t_stats();
	CHECK(s.sites_promoted >= 4, "sites_promoted %" PRIu64, s.sites_promoted);

	/* Stats: fields beyond the caller's size are not written. */
	struct {
		struct relpoline_stats st;
		uint64_t canary;
	} big;
	memset(&big, 0xAB, sizeof big);
	big.st.size = offsetof(struct relpoline_stats, sites_seen) + sizeof(uint64_t);
	r = relpoline_stats_get(&big.st);
	CHECK(r == 0, "stats_get(small size) = %d", r);
	CHECK(big.st.modules >= 1 && big.st.modules != 0xABABABABABABABABull, "modules not filled");
	CHECK(big.st.sites_call == 0xABABABABABABABABull, "stats_get wrote beyond size");
	CHECK(big.canary == 0xABABABABABABABABull, "stats_get wrote beyond the struct");
	return t_finish("t_config api");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "api") == 0) {
		t_deterministic(argv);
		return api();
	}
	const char *expect = argc > 2 ? argv[2] : "promoted";
	t_epoch(); /* as the worker's first epoch: tail sites learn from here on */
	/*
	 * A background worker may be running (these runs use the default
	 * RELPOLINE_EPOCH_MS), and samples stored while it aggregates can be
	 * lost (src/learn.c), so repeat until promoted, a bounded number of times.
	 */
	for (int round = 0; round < 20; round++) {
		work(300, 0);
		t_epoch();
		struct relpoline_stats s = t_stats();
		if (s.sites_promoted >= 4)
			break;
	}
	work(100, 0);
	work(100, 1);
	t_epoch();
	work(100, 0);
	struct relpoline_stats s = t_stats();
	t_print_stats("work", &s);
	if (strcmp(expect, "none") == 0)
		CHECK(s.sites_promoted == 0 && s.stubs_emitted == 0,
		      "promoted %" PRIu64 " stubs %" PRIu64 " want 0", s.sites_promoted,
		      s.stubs_emitted);
	else
		CHECK(s.sites_promoted >= 4, "sites_promoted %" PRIu64 " want >= 4",
		      s.sites_promoted);
	return t_finish("t_config work");
}
