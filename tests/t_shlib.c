/*
 * Shared-library sites: libtsites.so (linked at start) and tdl.so (dlopen,
 * promoted, dlclose, and again, three times).  After dlclose the program
 * keeps working: its own sites and the linked library's are called,
 * epochs run, relearn/disable/enable run (and must not touch the unmapped
 * module), and promotion still works.
 */
#include "common.h"
#include <dlfcn.h>

long lib_run(int which, long n);
long lib_call_ext(long (*f)(long), long x);

typedef long (*fn_t)(long);
NOINLINE long ma(long x) { return x * 100; }
NOINLINE long mb(long x) { return x * 200; }
NOINLINE long main_site(fn_t f, long x) { return f(x) - 1; }

typedef long (*run_fn)(int, long);
typedef long (*ext_fn)(fn_t, long);

static void main_calls(int n, int which)
{
	for (long i = 0; i < n; i++) {
		long r = main_site(which ? mb : ma, i), w = i * (which ? 200 : 100) - 1;
		CHECK(r == w, "main_site: %ld want %ld", r, w);
		r = lib_call_ext(which ? mb : ma, i);
		w = i * (which ? 200 : 100) + 7;
		CHECK(r == w, "lib_call_ext: %ld want %ld", r, w);
	}
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	const char *dlpath = argc > 1 ? argv[1] : "./tdl.so";
	struct relpoline_stats s0 = t_stats();
	CHECK(s0.modules >= 2, "modules %" PRIu64 " want >= 2 (program + libtsites.so)", s0.modules);

	/* The linked library. */
	CHECK(lib_run(0, 40) == 0, "lib_run learn: wrong results");
	main_calls(40, 0);
	t_epoch();
	struct relpoline_stats s1 = t_stats();
	t_print_stats("linked", &s1);
	/* lib: site_a, site_b, site_t (own targets); main_site; lib_call_ext may be far. */
	CHECK(s1.sites_promoted >= s0.sites_promoted + 4, "sites_promoted %" PRIu64 " -> %" PRIu64
	      " want +4 (3 library sites + 1 program site)", s0.sites_promoted, s1.sites_promoted);
	CHECK(lib_run(0, 40) == 0, "lib_run hit: wrong results");
	CHECK(lib_run(1, 40) == 0, "lib_run miss: wrong results");
	main_calls(20, 1);
	t_epoch();
	struct relpoline_stats s2 = t_stats();
	CHECK(s2.misses >= s1.misses + 3 * 40, "misses %" PRIu64 " -> %" PRIu64, s1.misses,
	      s2.misses);

	for (int round = 0; round < 3; round++) {
		void *h = dlopen(dlpath, RTLD_NOW | RTLD_LOCAL);
		if (!h)
			DIE("dlopen %s: %s", dlpath, dlerror());
		run_fn dl_run = (run_fn)dlsym(h, "dl_run");
		ext_fn dl_ext = (ext_fn)dlsym(h, "dl_call_ext");
		if (!dl_run || !dl_ext)
			DIE("dlsym: %s", dlerror());
		/*
		 * A new module's relocation list is read at the next epoch; only
		 * then do its tail sites get learning entries (the worker would do
		 * it within RELPOLINE_EPOCH_MS).
		 */
		t_epoch();
		struct relpoline_stats a = t_stats();
		CHECK(a.modules == s0.modules + 1, "round %d: modules %" PRIu64 " after dlopen want %"
		      PRIu64, round, a.modules, s0.modules + 1);
		/* dl_run is called through a program site: that one goes far (no stub). */
		CHECK(dl_run(round, 40) == 0, "round %d: dl_run learn", round);
		CHECK(dl_ext(ma, 5) == 507, "round %d: dl_call_ext", round);
		struct relpoline_stats b0 = t_stats();
		t_epoch();
		struct relpoline_stats b = t_stats();
		CHECK(b.sites_promoted >= b0.sites_promoted + 3, "round %d: dlopened sites not promoted (%"
		      PRIu64 " -> %" PRIu64 ")", round, b0.sites_promoted, b.sites_promoted);
		CHECK(dl_run(round, 40) == 0, "round %d: dl_run hit", round);
		CHECK(dl_run(round + 1, 40) == 0, "round %d: dl_run miss", round);
		if (round == 1) {
			CHECK(relpoline_relearn() == 0);
			CHECK(dl_run(round, 40) == 0, "round %d: dl_run after relearn", round);
			t_epoch();
			CHECK(dl_run(round, 10) == 0, "round %d: dl_run re-promoted", round);
		}
		t_epoch();
		CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());

		struct relpoline_stats c = t_stats();
		CHECK(c.modules == s0.modules, "round %d: modules %" PRIu64 " after dlclose want %" PRIu64,
		      round, c.modules, s0.modules);
		/* Everything else keeps working, with the library gone. */
		main_calls(30, round & 1);
		CHECK(lib_run(round, 30) == 0, "round %d: lib_run after dlclose", round);
		t_epoch();
		CHECK(relpoline_relearn() == 0);
		main_calls(30, 0);
		CHECK(lib_run(0, 30) == 0, "round %d: lib_run after relearn", round);
		t_epoch();
		CHECK(relpoline_disable() == 0);
		main_calls(5, 1);
		CHECK(relpoline_enable() == 0);
		main_calls(30, 1);
		CHECK(lib_run(2, 30) == 0, "round %d: lib_run after enable", round);
		t_epoch();
		struct relpoline_stats d = t_stats();
		CHECK(d.sites_promoted >= 4, "round %d: sites_promoted %" PRIu64 " after dlclose+enable",
		      round, d.sites_promoted);
	}
	struct relpoline_stats e = t_stats();
	t_print_stats("end", &e);
	return t_finish("t_shlib");
}
