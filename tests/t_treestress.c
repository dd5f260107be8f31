/*
 * Megamorphic sites on tree stubs, under threads, while the trees are
 * rebuilt all the time.  Run with RELPOLINE_EPOCH_MS=1 PROMOTE_MIN=8
 * RELEARN_MISSES=16 MAX_VERSIONS=1000 and STUB=tree or auto, THREAD on or
 * off (tests/run.sh).
 *
 * NSITES compiled thunk sites (call and tail sites) dispatch to NTARGETS
 * (400) functions.  Each of TS_THREADS (8) threads calls the sites in
 * random order; at each site it walks a window of 40-100 targets in a fixed
 * order (stride 7: a patterned stream, which the cost model prices as a
 * tree), the window sliding over the 400 targets as a global phase advances
 * (every 2 ms) and its width drifting; one call in 64 goes to a random
 * target of the 400 instead.  So the sites keep meeting targets their
 * current tree does not have, miss, and get new trees while other threads
 * run through the old ones.
 *
 * Every call checks that it reached the function a plain indirect call
 * would have reached (each target returns its id mixed with the argument,
 * each site mixes in its own salt): 0 wrong results allowed.
 *
 * And the stressed thing must have happened, while the threads ran (a
 * control thread samples the stats and the site bytes every 2 ms):
 * sites_tree > 0 at some sample and a site seen on a tree stub in the code;
 * stubs_emitted grew by at least TS_MIN_STUBS (20) between the first and
 * the last sample; every site called at least 200 distinct targets.
 *
 * Environment: TS_CALLS (total calls, default 1e8), TS_THREADS (8),
 * TS_SECONDS (stop after this many seconds: then fewer calls than TS_CALLS
 * is a failure), TS_MIN_STUBS (20).
 */
#include "common.h"
#include "sites.h"
#include <pthread.h>
#include <time.h>

typedef unsigned (*fn_t)(unsigned);

#define NTARGETS 400
#define NSITES 4

/* Target i (0..399) has id 100 + i and returns id << 20 ^ x, x < 2^20. */
#define T(n) NOINLINE unsigned tt_##n(unsigned x) { return ((unsigned)(n) << 20) ^ x; }
#define T10(a) T(a##0) T(a##1) T(a##2) T(a##3) T(a##4) T(a##5) T(a##6) T(a##7) T(a##8) T(a##9)
#define T100(a) T10(a##0) T10(a##1) T10(a##2) T10(a##3) T10(a##4) T10(a##5) T10(a##6) \
	T10(a##7) T10(a##8) T10(a##9)
T100(1) T100(2) T100(3) T100(4)
#define R10(a) tt_##a##0, tt_##a##1, tt_##a##2, tt_##a##3, tt_##a##4, tt_##a##5, tt_##a##6, \
	tt_##a##7, tt_##a##8, tt_##a##9
#define R100(a) R10(a##0), R10(a##1), R10(a##2), R10(a##3), R10(a##4), R10(a##5), R10(a##6), \
	R10(a##7), R10(a##8), R10(a##9)
static fn_t const targets[NTARGETS] = { R100(1), R100(2), R100(3), R100(4) };

/* Sites 0 and 2: calls (the result is changed after the call); 1 and 3: tail calls. */
NOINLINE unsigned site0(fn_t f, unsigned x) { return f(x ^ 0x13579) ^ 0xA5A5A5A5u; }
NOINLINE unsigned site1(fn_t f, unsigned x) { return f(x ^ 0x2468A); }
NOINLINE unsigned site2(fn_t f, unsigned x) { return f(x ^ 0x0F0F0) + 0x11111111u; }
NOINLINE unsigned site3(fn_t f, unsigned x) { return f(x ^ 0xCAFE1); }
static unsigned (*const sitefn[NSITES])(fn_t, unsigned) = { site0, site1, site2, site3 };

static unsigned expect(int s, int k, unsigned x)
{
	unsigned id = (unsigned)(100 + k) << 20;
	switch (s) {
	case 0: return (id ^ x ^ 0x13579) ^ 0xA5A5A5A5u;
	case 1: return id ^ x ^ 0x2468A;
	case 2: return (id ^ x ^ 0x0F0F0) + 0x11111111u;
	default: return id ^ x ^ 0xCAFE1;
	}
}

/* The sites called directly (a switch, no thunk of its own). */
static inline unsigned call_site(int s, fn_t f, unsigned x)
{
	switch (s) {
	case 0: return site0(f, x);
	case 1: return site1(f, x);
	case 2: return site2(f, x);
	default: return site3(f, x);
	}
}

static volatile unsigned phase;
static volatile int stop;
static uint64_t per_thread, wrong_total, calls_total;
static unsigned char seen[NSITES][NTARGETS];   /* targets called per site (racy flags: only set) */
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static int reported;

static inline uint64_t xs(uint64_t *st)
{
	uint64_t x = *st;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *st = x;
}

static void *worker(void *arg)
{
	unsigned tid = (unsigned)(uintptr_t)arg;
	uint64_t st = 0x9E3779B97F4A7C15ull * (tid + 1), wrong = 0, n;
	uint64_t pos[NSITES] = { 0 };
	unsigned char mine[NSITES][NTARGETS];
	memset(mine, 0, sizeof mine);
	for (n = 0; n < per_thread && !stop; n++) {
		uint64_t r = xs(&st);
		int s = (int)(r % NSITES);
		unsigned ph = phase, k;
		if (((r >> 8) & 63) == 0) {
			k = (unsigned)((r >> 16) % NTARGETS);            /* now and then, anything */
		} else {
			unsigned w = 40 + (tid * 17 + ph / 16) % 61;      /* 40-100, drifting */
			unsigned start = (unsigned)s * 97 + tid * 8 + ph * 2;   /* sliding */
			k = (start + (unsigned)((pos[s]++ * 7) % w)) % NTARGETS;
		}
		unsigned x = (unsigned)(r >> 40) & 0xFFFFF;
		unsigned got = call_site(s, targets[k], x);
		mine[s][k] = 1;
		if (__builtin_expect(got != expect(s, (int)k, x), 0)) {
			wrong++;
			pthread_mutex_lock(&report_lock);
			if (reported++ < 20)
				fprintf(stderr, "check failed: thread %u site %d target %u x=%#x: got %#x want %#x\n",
					tid, s, k, x, got, expect(s, (int)k, x));
			pthread_mutex_unlock(&report_lock);
		}
	}
	pthread_mutex_lock(&report_lock);
	for (int s = 0; s < NSITES; s++)
		for (int k = 0; k < NTARGETS; k++)
			seen[s][k] |= mine[s][k];
	pthread_mutex_unlock(&report_lock);
	__atomic_add_fetch(&wrong_total, wrong, __ATOMIC_RELAXED);
	__atomic_add_fetch(&calls_total, n, __ATOMIC_RELAXED);
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the control thread: advances the phase, samples the stats and the sites ---- */
static struct ts_site tss[NSITES];
static struct {
	int samples;
	uint64_t first_stubs, last_stubs, max_tree, max_promoted, min_tree_stubs;
	int max_on_trees;        /* sites seen on a tree stub of their own in the code, in one sample */
	uint64_t tree_samples;   /* samples with sites_tree > 0 */
	uint64_t moves;          /* a site's destination changed between samples */
} watch;
static const unsigned char *last_dest[NSITES];

static void sample(void)
{
	struct relpoline_stats st = t_stats();
	if (!watch.samples++)
		watch.first_stubs = st.stubs_emitted;
	watch.last_stubs = st.stubs_emitted;
	if (st.sites_tree > watch.max_tree)
		watch.max_tree = st.sites_tree;
	if (st.sites_promoted > watch.max_promoted)
		watch.max_promoted = st.sites_promoted;
	if (st.sites_tree)
		watch.tree_samples++;
	int on = 0;
	for (int i = 0; i < NSITES; i++) {
		const unsigned char *d = ts_dest(tss[i].addr, NULL);
		if (!d)
			continue;
		if (ts_stub_kind(d, tss[i].addr, NULL, NULL) == 't')
			on++;
		if (last_dest[i] && d != last_dest[i])
			watch.moves++;
		last_dest[i] = d;
	}
	if (on > watch.max_on_trees)
		watch.max_on_trees = on;
}

static void *control(void *arg)
{
	double limit = *(double *)arg, t0 = now();
	struct timespec ts = { 0, 2000000 };
	while (!stop) {
		nanosleep(&ts, NULL);
		phase++;
		sample();
		if (now() - t0 > limit) {
			fprintf(stderr, "treestress: time limit %.0fs reached, stopping\n", limit);
			stop = 1;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const char *const kv[] = {
		"RELPOLINE_EPOCH_MS", "1",
		"RELPOLINE_PROMOTE_MIN", "8",
		"RELPOLINE_RELEARN_MISSES", "16",
		"RELPOLINE_MAX_VERSIONS", "1000",
		"RELPOLINE_STUB", "tree",
		"RELPOLINE_ARENA_KB", "65536",
		NULL, NULL,
	};
	t_default_env(argv, kv);
	uint64_t total = t_env_u64("TS_CALLS", 100000000ull);
	int nthreads = (int)t_env_u64("TS_THREADS", 8);
	double limit = (double)t_env_u64("TS_SECONDS", 60);
	uint64_t min_stubs = t_env_u64("TS_MIN_STUBS", 20);
	if (nthreads < 1 || nthreads > 64)
		nthreads = 8;
	per_thread = total / (uint64_t)nthreads;
	char stub[16] = "", thr[16] = "";
	relpoline_config_get("stub", stub, sizeof stub);
	relpoline_config_get("thread", thr, sizeof thr);

	for (int s = 0; s < NSITES; s++) {
		int n = ts_find_sites((const void *)sitefn[s], &tss[s], 1);
		CHECK(n == 1, "site%d: %d thunk sites found in the executable, want 1", s, n);
	}
	/*
	 * Every site and target once, single-threaded, on the plain fallback:
	 * learnt, 400 uniform targets would pin the sites (no 256 of them cover
	 * MIN_COVERAGE), and with RELPOLINE_THREAD=off a program whose sites
	 * are all pinned runs no epoch again.
	 */
	CHECK(relpoline_disable() == 0, "relpoline_disable failed");
	for (int s = 0; s < NSITES; s++)
		for (int k = 0; k < NTARGETS; k++) {
			unsigned got = call_site(s, targets[k], 0x12345), want = expect(s, k, 0x12345);
			CHECK(got == want, "site %d target %d: %#x want %#x", s, k, got, want);
		}
	CHECK(relpoline_enable() == 0, "relpoline_enable failed");
	if (t_fails)
		return t_finish("t_treestress");

	double t0 = now();
	pthread_t th[64], ctl;
	pthread_create(&ctl, NULL, control, &limit);
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	stop = 1;
	pthread_join(ctl, NULL);
	double dt = now() - t0;

	/* Settle, then every site x target once more. */
	t_epoch();
	for (int s = 0; s < NSITES; s++)
		for (int k = 0; k < NTARGETS; k++) {
			unsigned got = call_site(s, targets[k], 777), want = expect(s, k, 777);
			CHECK(got == want, "final: site %d target %d: %#x want %#x", s, k, got, want);
		}
	struct relpoline_stats st = t_stats();
	int min_seen = NTARGETS;
	for (int s = 0; s < NSITES; s++) {
		int c = 0;
		for (int k = 0; k < NTARGETS; k++)
			c += seen[s][k];
		if (c < min_seen)
			min_seen = c;
	}
	printf("treestress: stub=%s thread=%s threads=%d calls=%" PRIu64 " wrong=%" PRIu64
	       " time=%.2fs (%.1f Mcalls/s) phases=%u\n", stub, thr, nthreads, calls_total, wrong_total,
	       dt, calls_total / dt / 1e6, phase);
	printf("treestress: during the run (%d samples): max sites_tree %" PRIu64 " (in %" PRIu64
	       " samples), max promoted %" PRIu64 ", max sites seen on trees in the code %d, "
	       "destination changes %" PRIu64 ", stubs_emitted %" PRIu64 " -> %" PRIu64
	       "; fewest targets called at a site %d\n", watch.samples, watch.max_tree,
	       watch.tree_samples, watch.max_promoted, watch.max_on_trees, watch.moves,
	       watch.first_stubs, watch.last_stubs, min_seen);
	printf("treestress: at the end: tree=%" PRIu64 " chain=%" PRIu64 " pinned=%" PRIu64
	       " stubs=%" PRIu64 " relearns=%" PRIu64 " misses=%" PRIu64 " epochs=%" PRIu64
	       " arena=%" PRIu64 " hist_log2=", st.sites_tree, st.sites_chain, st.sites_pinned,
	       st.stubs_emitted, st.relearns, st.misses, st.epochs, st.arena_bytes);
	for (int i = 0; i < 9; i++)
		printf("%s%" PRIu64, i ? "," : "", st.stub_hist_log2[i]);
	printf("\n");

	CHECK(wrong_total == 0, "%" PRIu64 " wrong results in %" PRIu64 " calls", wrong_total,
	      calls_total);
	CHECK(calls_total >= total - (uint64_t)nthreads, "only %" PRIu64 " of %" PRIu64 " calls ran "
	      "before the time limit", calls_total, total);
	CHECK(watch.samples >= 4, "only %d samples during the run", watch.samples);
	CHECK(watch.max_tree > 0, "sites_tree was never > 0 during the run");
	CHECK(watch.max_on_trees > 0, "no site was ever seen on a tree stub in the code during the run");
	CHECK(watch.last_stubs >= watch.first_stubs + min_stubs, "stubs_emitted %" PRIu64 " -> %"
	      PRIu64 " during the run, want +%" PRIu64, watch.first_stubs, watch.last_stubs, min_stubs);
	CHECK(min_seen >= 200, "a site called only %d distinct targets, want >= 200", min_seen);
	CHECK(st.traps_emulated == 0 && st.protect_changes == 0, "traps %" PRIu64 ", mprotect %" PRIu64,
	      st.traps_emulated, st.protect_changes);
	return t_finish("t_treestress");
}
