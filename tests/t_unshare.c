/*
 * RELPOLINE_THREAD=off: no runtime thread at all; epochs run on the
 * application's own threads, from the slow path, when due.  A
 * single-threaded program stays single-threaded, so what only a
 * single-threaded process may do keeps working: unshare(CLONE_NEWUSER)
 * fails with EINVAL in a multithreaded process.
 *   t_unshare env   RELPOLINE_THREAD=off in the environment (run.sh)
 *   t_unshare api   started with RELPOLINE_THREAD=on (a worker);
 *                   relpoline_config_set("thread", "off") first thing in main:
 *                   the worker must go away
 * The program never calls relpoline_epoch(): it calls through its sites
 * until they are promoted (at most 5 s), then asserts sites promoted > 0 and
 * epochs > 0, /proc/self/status "Threads: 1", and unshare(CLONE_NEWUSER)
 * not failing with EINVAL (EPERM, ENOSPC, EUSERS... are a container's
 * refusal: printed, not a failure).  Then the targets change: new stubs
 * must come (still without a thread), with Threads: 1 at the end.
 */
#include "common.h"
#include <sched.h>

/* Four targets, three call sites and three tail sites. */
#define WL_NTARGETS 4
#define WL_NCALL 3
#define WL_NTAIL 3
#include "workload.h"

/* REPS rounds over every site, all with target T (no phase: one target per call_until). */
static long calls(int t, int reps)
{
	long wrong = 0;
	for (int r = 0; r < reps; r++)
		for (int s = 0; s < WL_NS; s++)
			if (wl_one(s, wl_tg[t], r) != wl_want(s, t, r))
				wrong++;
	return wrong;
}

/* Call until stubs_emitted reaches WANT (epochs must come from the slow path). */
static long call_until(int t, uint64_t want_stubs, uint64_t want_promoted, const char *what)
{
	long wrong = 0;
	uint64_t t0 = wl_now_ms();
	struct relpoline_stats s;
	do {
		uint64_t t1 = wl_now_ms();
		while (wl_now_ms() == t1)   /* stats about once a millisecond */
			wrong += calls(t, 64);
		s = t_stats();
	} while ((s.stubs_emitted < want_stubs || s.sites_promoted < want_promoted) &&
		 wl_now_ms() - t0 < 5000);
	CHECK(s.stubs_emitted >= want_stubs && s.sites_promoted >= want_promoted,
	      "%s: after %" PRIu64 " ms: stubs_emitted %" PRIu64 " (want %" PRIu64 "), sites_promoted %"
	      PRIu64 " (want %" PRIu64 ")", what, wl_now_ms() - t0, s.stubs_emitted, want_stubs,
	      s.sites_promoted, want_promoted);
	return wrong;
}

int main(int argc, char **argv)
{
	int api = argc > 1 && strcmp(argv[1], "api") == 0;
	/* The api mode starts with a worker (RELPOLINE_THREAD=on); env mode asks for no thread. */
	static const char *const kv_api[] = { "RELPOLINE_EPOCH_MS", "1", "RELPOLINE_PROMOTE_MIN", "8",
					      "RELPOLINE_RELEARN_MISSES", "20", "RELPOLINE_THREAD", "on",
					      NULL, NULL };
	static const char *const kv_env[] = { "RELPOLINE_EPOCH_MS", "1", "RELPOLINE_PROMOTE_MIN", "8",
					      "RELPOLINE_RELEARN_MISSES", "20", "RELPOLINE_THREAD", "off",
					      NULL, NULL };
	t_default_env(argv, api ? kv_api : kv_env);
	char buf[32] = "";
	if (api) {
		int r = relpoline_config_set("thread", "off");
		CHECK(r == 0, "relpoline_config_set(\"thread\", \"off\") = %d", r);
		/* A worker started before may take a moment to go. */
		(void)WL_WAIT_MS(wl_threads() == 1, 2000);
	}
	int r = relpoline_config_get("thread", buf, sizeof buf);
	CHECK(r == 0 && strcmp(buf, "off") == 0, "config_get(thread) = %d \"%s\", want \"off\"", r, buf);

	struct relpoline_stats a = t_stats();
	long wrong = call_until(0, a.stubs_emitted + 1, 1, "promotion without a thread");
	struct relpoline_stats b = t_stats();
	t_print_stats("promoted", &b);
	CHECK(b.sites_promoted > 0, "no site promoted with RELPOLINE_THREAD=off");
	CHECK(b.epochs > a.epochs, "no epoch ran (the program never calls relpoline_epoch)");
	int n = wl_threads();
	CHECK(n == 1, "/proc/self/status: Threads: %d after promotion, want 1", n);

	errno = 0;
	r = unshare(CLONE_NEWUSER);
	int e = errno;
	if (r == 0)
		printf("unshare(CLONE_NEWUSER): ok\n");
	else if (e == EINVAL)
		CHECK(0, "unshare(CLONE_NEWUSER): EINVAL: the process is multithreaded (Threads: %d)",
		      wl_threads());
	else
		printf("unshare(CLONE_NEWUSER) refused here, not by relpoline: %s\n", strerror(e));

	/* Keep working: a phase change gets new stubs, still single-threaded. */
	struct relpoline_stats c = t_stats();
	for (int t = 1; t < 4; t++)
		wrong += call_until(t, c.stubs_emitted + (uint64_t)t, 1, "phase change");
	struct relpoline_stats d = t_stats();
	t_print_stats("end", &d);
	CHECK(d.epochs > c.epochs, "no epoch after unshare");
	CHECK(d.stubs_emitted > c.stubs_emitted, "no new stub after the targets changed");
	CHECK(wrong == 0, "%ld wrong results", wrong);
	n = wl_threads();
	CHECK(n == 1, "/proc/self/status: Threads: %d at the end, want 1", n);
	return t_finish(api ? "t_unshare api" : "t_unshare env");
}
