/*
 * A site promoted right after learning, whose targets never change, must
 * not get a second stub.  Tail (jmp) sites learn through a per-site entry
 * that carries the site word, as a stub's miss path does: samples that
 * threads record through it between the epoch that decides the site and
 * the pass that installs the stub must not be taken for misses of the new
 * stub (they would "relearn" the site with the very same targets).
 *
 * Six tail sites and two call sites, each with its own fixed set of 1-3
 * targets used round-robin, hammered by two threads while epochs run
 * (run.sh: RELPOLINE_EPOCH_MS=1, a small RELEARN_MISSES; by the worker, and
 * by the hammering threads themselves with RELPOLINE_THREAD=off).  Once
 * every site is promoted the threads keep calling for a steady 150 ms; then
 *   sites_promoted == 8, stubs emitted == sites promoted, no relearn and
 *   (almost) no miss: every target is in its stub.  Eight rounds: the first
 *   from the start, seven more after relpoline_relearn() (the same targets).
 * And no wrong result.
 */
#include "common.h"
#define WL_NO_SITES   /* the helpers only: this test's sites are laid out below */
#include "workload.h"
#include <pthread.h>
#include <stdatomic.h>

typedef long (*fn_t)(long);
#define T(n) NOINLINE long tg##n(long x) { return x * 32 + n; }
T(0) T(1) T(2) T(3) T(4) T(5) T(6) T(7) T(8) T(9) T(10) T(11) T(12) T(13) T(14) T(15)
static fn_t const tg[16] = { tg0, tg1, tg2, tg3, tg4, tg5, tg6, tg7,
			     tg8, tg9, tg10, tg11, tg12, tg13, tg14, tg15 };
#define TS(n) NOINLINE long ts##n(fn_t f, long x) { return f(x + n); }
#define CS(n) NOINLINE long cs##n(fn_t f, long x) { return f(x) + 1000000 * n; }
TS(0) TS(1) TS(2) TS(3) TS(4) TS(5) CS(6) CS(7)
#define NS 8
#define NTAIL 6

/* Site s uses targets first[s] .. first[s] + count[s] - 1, round-robin. */
static const int first[NS] = { 0, 1, 3, 6, 7, 9, 12, 13 };
static const int count[NS] = { 1, 2, 3, 1, 2, 3, 1, 3 };

static long one(int s, fn_t f, long x)
{
	switch (s) {
	case 0: return ts0(f, x);
	case 1: return ts1(f, x);
	case 2: return ts2(f, x);
	case 3: return ts3(f, x);
	case 4: return ts4(f, x);
	case 5: return ts5(f, x);
	case 6: return cs6(f, x);
	default: return cs7(f, x);
	}
}
static long want(int s, int t, long x)
{
	return s < NTAIL ? (x + s) * 32 + t : x * 32 + t + 1000000L * s;
}

static atomic_int stop;
static atomic_long wrong, ncalls;

static void *hammer(void *arg)
{
	long w = 0, n = 0;
	unsigned k = (unsigned)(uintptr_t)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (int r = 0; r < 64; r++, k++)
			for (int s = 0; s < NS; s++) {
				int t = first[s] + (int)(k % (unsigned)count[s]);
				if (one(s, tg[t], r) != want(s, t, r))
					w++;
			}
		n += 64 * NS;
	}
	wrong += w;
	ncalls += n;
	return NULL;
}

int main(int argc, char **argv)
{
	static const char *const kv[] = { "RELPOLINE_EPOCH_MS", "1", "RELPOLINE_PROMOTE_MIN", "64",
					  "RELPOLINE_RELEARN_MISSES", "50",
					  "RELPOLINE_THREAD", "on", NULL, NULL };
	t_default_env(argv, kv);
	struct relpoline_stats a = t_stats();
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		if (pthread_create(&th[i], NULL, hammer, (void *)(uintptr_t)(i * 7)))
			DIE("pthread_create");
	/*
	 * Eight rounds: promotion from the start, then seven times after
	 * relpoline_relearn() (every site back to learning, the same targets).
	 * Each round: wait for all sites to be promoted, 150 ms steady.
	 */
	for (int round = 0; round < 8; round++) {
		if (round)
			CHECK(relpoline_relearn() == 0, "relearn");
		/* Wait (at most 5 s) until all NS sites are promoted. */
		uint64_t ms = WL_WAIT_MS(t_stats().sites_promoted >= NS, 5000);
		usleep(150000);
		struct relpoline_stats b = t_stats();
		printf("round %d: all promoted after %" PRIu64 " ms; promoted %" PRIu64 ", stubs +%" PRIu64
		       ", relearns +%" PRIu64 ", misses +%" PRIu64 ", traps +%" PRIu64 "\n", round, ms,
		       b.sites_promoted, b.stubs_emitted - a.stubs_emitted, b.relearns - a.relearns,
		       b.misses - a.misses, b.traps_emulated - a.traps_emulated);
		CHECK(b.sites_promoted == NS, "round %d: sites_promoted = %" PRIu64 ", want %d", round,
		      b.sites_promoted, NS);
		/* After a relearn a runtime could reuse an identical stub: at most one each then. */
		uint64_t stubs = b.stubs_emitted - a.stubs_emitted;
		CHECK(round ? stubs <= b.sites_promoted : stubs == b.sites_promoted,
		      "round %d: %" PRIu64 " stubs emitted for %" PRIu64 " promoted sites whose targets "
		      "never changed: a site got a second stub", round, stubs, b.sites_promoted);
		CHECK(b.relearns == a.relearns, "round %d: relearns %" PRIu64 " -> %" PRIu64 ", want no "
		      "change", round, a.relearns, b.relearns);
		/*
		 * A call already past the learning entry when the stub goes in may
		 * record one late sample; a handful is tolerable (fewer than
		 * RELEARN_MISSES), hundreds are the learning entry's traffic taken for
		 * misses.
		 */
		CHECK(b.misses - a.misses < 16, "round %d: misses %" PRIu64 " -> %" PRIu64 ": every "
		      "target is in its site's stub", round, a.misses, b.misses);
		a = b;
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	relpoline_epoch();   /* aggregate whatever the threads recorded last */
	struct relpoline_stats s = t_stats();
	t_print_stats("end", &s);
	printf("%ld calls\n", (long)ncalls);
	CHECK(wrong == 0, "%ld wrong results", (long)wrong);
	CHECK(s.sites_tail >= NTAIL, "sites_tail = %" PRIu64 ", want %d", s.sites_tail, NTAIL);
	CHECK(s.sites_promoted == NS, "sites_promoted = %" PRIu64 " at the end, want %d",
	      s.sites_promoted, NS);
	CHECK(s.misses - a.misses < 16, "misses %" PRIu64 " -> %" PRIu64 " after the threads stopped",
	      a.misses, s.misses);
	uint64_t want_hist[17] = { 0 };
	for (int i = 0; i < NS; i++)
		want_hist[count[i]]++;
	for (int k = 1; k <= 3; k++)
		CHECK(s.stub_hist[k] == want_hist[k], "stub_hist[%d] = %" PRIu64 ", want %" PRIu64, k,
		      s.stub_hist[k], want_hist[k]);
	wl_check_thread_setting();
	return t_finish("t_tailsteady");
}
