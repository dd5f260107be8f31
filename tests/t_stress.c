/*
 * Multi-threaded stress: NTHREADS threads call through NSITES distinct
 * compiled thunk sites (call sites, tail-call sites, sites whose pointer
 * lives in a callee-saved register across two calls, and one megamorphic
 * dispatch site) with targets chosen from NTARGETS functions.  The target
 * mix of every site changes with a global phase, so sites are promoted,
 * miss, get relearned and re-promoted while other threads run through them.
 * A control thread advances the phase and calls relpoline_relearn(),
 * relpoline_epoch(), relpoline_disable()/enable() now and then; a profiling
 * timer signal makes indirect calls from signal handlers.
 *
 * Every call checks that it reached the target the plain indirect call
 * would have reached (each target returns its own id mixed with the
 * argument and the site's salt).  Wrong results must be 0.
 *
 * And the run must really have promoted and re-patched sites while the
 * threads ran, not merely survived: the control thread samples the stats
 * and the site bytes (every thunk site of the test, found in the
 * executable, followed with ts_dest through its cell) during the run.
 * Checked: sites_promoted > 0 at some sample and many sites seen on stubs
 * of their own in the code at once; sites seen moving from one
 * destination to another; patch_passes, stubs_emitted and relearns grew
 * between the first and the last sample and still grew in the second half
 * of the run.  ABI 3 contract: no INT3 trap (traps_emulated 0), no
 * mprotect of code (protect_changes 0), at most one membarrier per pass.
 *
 * Environment: STRESS_CALLS (total, default 3e8), STRESS_THREADS (8),
 * RELPOLINE_ARENA_KB (65536 unless set; see main),
 * STRESS_SECONDS (stop early after this many seconds, default 240),
 * STRESS_BLOCK_SIGNALS=1 (the calling threads block every signal, SIGTRAP
 * included, as many programs' helper threads do).
 */
#include "common.h"
#include "sites.h"
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>

typedef unsigned (*fn_t)(unsigned);

#define NTARGETS 64
#define NSITES 48

/* Targets: result = id << 24 ^ x (x < 2^24). */
#define T(n) NOINLINE unsigned tgt_##n(unsigned x) { return ((unsigned)(n) << 24) ^ x; }
#define T8(n) T(n##0) T(n##1) T(n##2) T(n##3) T(n##4) T(n##5) T(n##6) T(n##7)
T8(1) T8(2) T8(3) T8(4) T8(5) T8(6) T8(7) T8(8)
#define R8(n) tgt_##n##0, tgt_##n##1, tgt_##n##2, tgt_##n##3, tgt_##n##4, tgt_##n##5, \
	tgt_##n##6, tgt_##n##7
static fn_t const targets[NTARGETS] = { R8(1), R8(2), R8(3), R8(4), R8(5), R8(6), R8(7), R8(8) };
static unsigned target_id(int t) { return (unsigned)((t / 8 + 1) * 10 + t % 8); }

static unsigned salt(int s) { return ((unsigned)s * 0x9E3779u) & 0xFFFFFF; }

/*
 * Site kinds by s % 3:
 *   0: call site      f(x ^ salt) ^ 0x5A5A  (not a tail call)
 *   1: tail site      return f(x ^ salt)    (jmp to the thunk with -O2)
 *   2: two calls      f(x ^ salt) + f(x ^ salt ^ 1): f kept in a callee-saved register
 */
#define SITE0(s) NOINLINE unsigned site_##s(fn_t f, unsigned x) \
	{ return f(x ^ (((unsigned)(s) * 0x9E3779u) & 0xFFFFFF)) ^ 0x5A5A; }
#define SITE1(s) NOINLINE unsigned site_##s(fn_t f, unsigned x) \
	{ return f(x ^ (((unsigned)(s) * 0x9E3779u) & 0xFFFFFF)); }
#define SITE2(s) NOINLINE unsigned site_##s(fn_t f, unsigned x) \
	{ unsigned y = x ^ (((unsigned)(s) * 0x9E3779u) & 0xFFFFFF); return f(y) + f(y ^ 1); }
#define SITES3(a, b, c) SITE0(a) SITE1(b) SITE2(c)
SITES3(0, 1, 2) SITES3(3, 4, 5) SITES3(6, 7, 8) SITES3(9, 10, 11) SITES3(12, 13, 14)
SITES3(15, 16, 17) SITES3(18, 19, 20) SITES3(21, 22, 23) SITES3(24, 25, 26)
SITES3(27, 28, 29) SITES3(30, 31, 32) SITES3(33, 34, 35) SITES3(36, 37, 38)
SITES3(39, 40, 41) SITES3(42, 43, 44) SITES3(45, 46, 47)

typedef unsigned (*site_fn)(fn_t, unsigned);
#define S3(a, b, c) site_##a, site_##b, site_##c
static site_fn const sites[NSITES] = {
	S3(0, 1, 2), S3(3, 4, 5), S3(6, 7, 8), S3(9, 10, 11), S3(12, 13, 14), S3(15, 16, 17),
	S3(18, 19, 20), S3(21, 22, 23), S3(24, 25, 26), S3(27, 28, 29), S3(30, 31, 32),
	S3(33, 34, 35), S3(36, 37, 38), S3(39, 40, 41), S3(42, 43, 44), S3(45, 46, 47)
};

static unsigned expect(int s, int t, unsigned x)
{
	unsigned y = x ^ salt(s), id = target_id(t) << 24;
	switch (s % 3) {
	case 0: return (id ^ y) ^ 0x5A5A;
	case 1: return id ^ y;
	default: return (id ^ y) + (id ^ y ^ 1);
	}
}

/* Direct dispatch (no thunk): a switch over the sites. */
#define C3(a, b, c) case a: return site_##a(f, x); case b: return site_##b(f, x); \
	case c: return site_##c(f, x);
static unsigned call_direct(int s, fn_t f, unsigned x)
{
	switch (s) {
	C3(0, 1, 2) C3(3, 4, 5) C3(6, 7, 8) C3(9, 10, 11) C3(12, 13, 14) C3(15, 16, 17)
	C3(18, 19, 20) C3(21, 22, 23) C3(24, 25, 26) C3(27, 28, 29) C3(30, 31, 32)
	C3(33, 34, 35) C3(36, 37, 38) C3(39, 40, 41) C3(42, 43, 44) C3(45, 46, 47)
	}
	abort();
}

/* The megamorphic dispatch site: 48 sites as targets (one thunk site). */
NOINLINE unsigned call_dispatch(int s, fn_t f, unsigned x)
{
	site_fn const *volatile tab = sites;
	return tab[s](f, x); /* a tail site too */
}

static volatile unsigned phase;
static volatile int stop;
static uint64_t per_thread;
static uint64_t wrong_total, calls_total, sig_calls, sig_wrong;
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

/* Which target site S uses in phase P, for random R. */
static int pick(int s, unsigned p, uint64_t r)
{
	static const int widths[6] = { 1, 2, 3, 5, 8, 20 };
	int w = widths[(p + (unsigned)s) % 6];
	int base = (int)(((unsigned)s * 7 + p * 13) % NTARGETS);
	int j = (r & 7) < 5 ? 0 : (int)((r >> 3) % (unsigned)w);
	return (base + j * 5) % NTARGETS;
}

static void report(const char *who, int s, int t, unsigned x, unsigned got, unsigned want)
{
	pthread_mutex_lock(&report_lock);
	if (reported++ < 20)
		fprintf(stderr, "check failed: %s: site %d (kind %d) target %d x=%#x: got %#x want %#x\n",
			who, s, s % 3, t, x, got, want);
	pthread_mutex_unlock(&report_lock);
}

static int block_signals;

static void *worker(void *arg)
{
	if (block_signals) {
		/* Many programs run helper threads with every signal blocked. */
		sigset_t all;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, NULL);
	}
	uint64_t st = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1), wrong = 0, n;
	for (n = 0; n < per_thread && !stop; n++) {
		uint64_t r = xs(&st);
		int s = (int)(r % NSITES);
		r >>= 6;
		int t = pick(s, phase, r);
		unsigned x = (unsigned)(r >> 20) & 0xFFFFFF;
		unsigned got = (r & 0x1f000) == 0 ? call_dispatch(s, targets[t], x)
						   : call_direct(s, targets[t], x);
		unsigned want = expect(s, t, x);
		if (__builtin_expect(got != want, 0)) {
			wrong++;
			report("worker", s, t, x, got, want);
		}
	}
	__atomic_add_fetch(&wrong_total, wrong, __ATOMIC_RELAXED);
	__atomic_add_fetch(&calls_total, n, __ATOMIC_RELAXED);
	return NULL;
}

/* Indirect calls from a signal handler, possibly on top of a record or a trap. */
static void on_prof(int sig)
{
	static __thread uint64_t st = 88172645463325252ull;
	int saved = errno;
	uint64_t r = xs(&st);
	int s = (int)(r % NSITES), t = pick(s, phase, r >> 6);
	unsigned x = (unsigned)(r >> 30) & 0xFFFFFF;
	unsigned got = call_direct(s, targets[t], x);
	__atomic_add_fetch(&sig_calls, 1, __ATOMIC_RELAXED);
	if (got != expect(s, t, x))
		__atomic_add_fetch(&sig_wrong, 1, __ATOMIC_RELAXED);
	errno = saved;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static int ctl_errors;

/* ---- watching the run: stats and site bytes, sampled by the control thread ---- */
#define MAXTS 128
static struct ts_site tss[MAXTS];
static int ntss;
static const unsigned char *last_dest[MAXTS];

struct sample { uint64_t passes, stubs, relearns; };
#define MAXSAMPLES 65536
static struct {
	int samples;
	uint64_t max_promoted;              /* stats.sites_promoted, max over samples */
	int max_on_stubs;                   /* sites seen on a stub of their own in one sample */
	uint64_t moves;                     /* a site's destination changed between samples */
	struct sample s[MAXSAMPLES];
} watch;

static void find_sites(void)
{
	for (int s = 0; s < NSITES; s++) {
		int n = ts_find_sites((const void *)sites[s], tss + ntss, MAXTS - ntss);
		CHECK(n == (s % 3 == 2 ? 2 : 1), "site_%d: %d thunk sites found in the executable", s, n);
		if (n > 0)
			ntss += n;
	}
	int n = ts_find_sites((const void *)call_dispatch, tss + ntss, MAXTS - ntss);
	CHECK(n == 1, "call_dispatch: %d thunk sites", n);
	if (n > 0)
		ntss += n;
}

static void sample(void)
{
	struct relpoline_stats st = t_stats();
	if (watch.samples < MAXSAMPLES)
		watch.s[watch.samples++] = (struct sample){ st.patch_passes, st.stubs_emitted, st.relearns };
	if (st.sites_promoted > watch.max_promoted)
		watch.max_promoted = st.sites_promoted;
	int on = 0;
	for (int i = 0; i < ntss; i++) {
		const unsigned char *d = ts_dest(tss[i].addr, NULL);
		if (!d)
			continue;   /* caught mid-write */
		if (ts_stub_header_for(d, tss[i].addr))
			on++;
		if (last_dest[i] && d != last_dest[i])
			watch.moves++;
		last_dest[i] = d;
	}
	if (on > watch.max_on_stubs)
		watch.max_on_stubs = on;
}

static void *control(void *arg)
{
	double limit = *(double *)arg, t0 = now();
	unsigned k = 0;
	while (!stop) {
		msleep(2);
		k++;
		if (k % 5 == 0)
			phase++;
		if (k % 17 == 0 && relpoline_relearn() != 0)
			ctl_errors++;
		if (k % 7 == 0 && relpoline_epoch() != 0)
			ctl_errors++;
		if (k % 97 == 0) {
			if (relpoline_disable() != 0)
				ctl_errors++;
			msleep(3);
			if (relpoline_enable() != 0)
				ctl_errors++;
		}
		if (k % 5 == 0)
			sample();
		if (now() - t0 > limit) {
			fprintf(stderr, "stress: time limit %.0fs reached, stopping early\n", limit);
			stop = 1;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static const char *const kv[] = {
		"RELPOLINE_EPOCH_MS", "1",
		"RELPOLINE_PROMOTE_MIN", "32",
		"RELPOLINE_RELEARN_MISSES", "50",
		"RELPOLINE_MAX_VERSIONS", "1000",
		/*
		 * 18,000 stubs fill the default 4 MiB arena about half-way through
		 * the default run; after that no site can be promoted any more and
		 * the rest of the run only moves sites between thunks and the
		 * fallback.  A larger arena keeps the whole run promoting.
		 */
		"RELPOLINE_ARENA_KB", "65536",
		NULL, NULL,
	};
	t_default_env(argv, kv);
	uint64_t total = t_env_u64("STRESS_CALLS", 300000000ull);
	int nthreads = (int)t_env_u64("STRESS_THREADS", 8);
	double limit = (double)t_env_u64("STRESS_SECONDS", 240);
	block_signals = (int)t_env_u64("STRESS_BLOCK_SIGNALS", 0);
	if (nthreads < 1 || nthreads > 256)
		nthreads = 8;
	per_thread = total / (uint64_t)nthreads;

	find_sites();
	/* Sanity: every site and target, single-threaded, before anything is promoted. */
	for (int s = 0; s < NSITES; s++)
		for (int t = 0; t < NTARGETS; t++) {
			unsigned got = call_direct(s, targets[t], 12345), want = expect(s, t, 12345);
			CHECK(got == want, "site %d target %d: %#x want %#x", s, t, got, want);
		}

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_prof;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGPROF, &sa, NULL);
	struct itimerval it = { { 0, 1000 }, { 0, 1000 } };
	setitimer(ITIMER_PROF, &it, NULL);

	double t0 = now();
	pthread_t th[256], ctl;
	pthread_create(&ctl, NULL, control, &limit);
	for (int i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	stop = 1;
	pthread_join(ctl, NULL);
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_PROF, &off, NULL);
	double dt = now() - t0;

	/* Settle, then every site x target once more. */
	t_epoch();
	for (int s = 0; s < NSITES; s++)
		for (int t = 0; t < NTARGETS; t++) {
			unsigned got = call_direct(s, targets[t], 777), want = expect(s, t, 777);
			CHECK(got == want, "final: site %d target %d: %#x want %#x", s, t, got, want);
		}

	struct relpoline_stats st = t_stats();
	printf("stress: threads=%d calls=%" PRIu64 " wrong=%" PRIu64 " signal_calls=%" PRIu64
	       " signal_wrong=%" PRIu64 " time=%.2fs (%.1f Mcalls/s)\n",
	       nthreads, calls_total, wrong_total, sig_calls, sig_wrong, dt,
	       calls_total / dt / 1e6);
	printf("stress: promoted_now=%" PRIu64 " stubs_emitted=%" PRIu64 " relearns=%" PRIu64
	       " traps_emulated=%" PRIu64 " patch_passes=%" PRIu64 " empty_passes=%" PRIu64
	       " sites_patched=%" PRIu64 " epochs=%" PRIu64 " misses=%" PRIu64 "\n",
	       st.sites_promoted, st.stubs_emitted, st.relearns, st.traps_emulated,
	       st.patch_passes, st.patch_passes_empty, st.sites_patched, st.epochs, st.misses);
	t_print_stats("end", &st);

	CHECK(wrong_total == 0, "%" PRIu64 " wrong results", wrong_total);
	CHECK(sig_wrong == 0, "%" PRIu64 " wrong results in signal handlers", sig_wrong);
	CHECK(ctl_errors == 0, "%d control calls failed", ctl_errors);
	if (calls_total < total - (uint64_t)nthreads)
		fprintf(stderr, "note: stopped after %" PRIu64 " of %" PRIu64 " calls\n", calls_total,
			total);
	/* The run must actually have exercised the runtime, while the threads ran. */
	int ns = watch.samples;
	const struct sample none = { 0, 0, 0 }, *a = ns ? &watch.s[0] : &none,
			    *m = ns ? &watch.s[ns / 2] : &none, *z = ns ? &watch.s[ns - 1] : &none;
	printf("stress: watched %d samples over %d sites: max sites_promoted %" PRIu64
	       ", max sites on their stubs in the code %d, destination changes seen %" PRIu64
	       "; first->mid->last: patch_passes %" PRIu64 "->%" PRIu64 "->%" PRIu64
	       " stubs_emitted %" PRIu64 "->%" PRIu64 "->%" PRIu64 " relearns %" PRIu64 "->%" PRIu64
	       "->%" PRIu64 "\n", watch.samples, ntss, watch.max_promoted, watch.max_on_stubs,
	       watch.moves, a->passes, m->passes, z->passes, a->stubs, m->stubs, z->stubs,
	       a->relearns, m->relearns, z->relearns);
	CHECK(ns >= 4, "only %d samples during the run", ns);
	CHECK(watch.max_promoted >= NSITES / 4, "sites_promoted was at most %" PRIu64
	      " during the run, want >= %d", watch.max_promoted, NSITES / 4);
	CHECK(watch.max_on_stubs >= NSITES / 4, "at most %d sites were seen on stubs of their own "
	      "in the code during the run, want >= %d", watch.max_on_stubs, NSITES / 4);
	CHECK(watch.moves >= 20, "only %" PRIu64 " site destination changes seen during the run",
	      watch.moves);
	CHECK(z->stubs >= a->stubs + NSITES, "stubs_emitted %" PRIu64 " -> %" PRIu64
	      " during the run, want +%d", a->stubs, z->stubs, NSITES);
	CHECK(z->relearns > a->relearns, "no relearn during the run (%" PRIu64 ")", z->relearns);
	CHECK(z->passes >= a->passes + 10, "patch_passes %" PRIu64 " -> %" PRIu64
	      " during the run", a->passes, z->passes);
	if (z->stubs == m->stubs)
		fprintf(stderr, "note: arena_bytes %" PRIu64 " at the end (RELPOLINE_ARENA_KB full?)\n",
			st.arena_bytes);
	CHECK(z->passes > m->passes && z->stubs > m->stubs,
	      "no re-patching in the second half of the run (passes %" PRIu64 " -> %" PRIu64
	      ", stubs %" PRIu64 " -> %" PRIu64 ")", m->passes, z->passes, m->stubs, z->stubs);
	CHECK(st.sites_tail >= NSITES / 3, "sites_tail %" PRIu64, st.sites_tail);
	/* The ABI 3 contract: cells retargeted by one aligned store. */
	CHECK(st.traps_emulated == 0, "traps_emulated %" PRIu64 ": no INT3 traps since ABI 3",
	      st.traps_emulated);
	CHECK(st.protect_changes == 0, "protect_changes %" PRIu64 ": no mprotect of code since ABI 3",
	      st.protect_changes);
	CHECK(st.membarriers <= st.patch_passes, "%" PRIu64 " membarriers for %" PRIu64
	      " patch passes: at most one per pass", st.membarriers, st.patch_passes);
	return t_finish("t_stress");
}
