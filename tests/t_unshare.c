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
#include <time.h>

typedef long (*fn_t)(long);
#define T(n) NOINLINE long tg##n(long x) { return x * 16 + n; }
T(0) T(1) T(2) T(3)
static fn_t const tg[4] = { tg0, tg1, tg2, tg3 };
#define CS(n) NOINLINE long cs##n(fn_t f, long x) { return f(x) + 1000000 * n; }
#define TS(n) NOINLINE long ts##n(fn_t f, long x) { return f(x + n); }
CS(0) CS(1) CS(2) TS(0) TS(1) TS(2)
#define NS 6

static long one(int s, fn_t f, long x)
{
	switch (s) {
	case 0: return cs0(f, x);
	case 1: return cs1(f, x);
	case 2: return cs2(f, x);
	case 3: return ts0(f, x);
	case 4: return ts1(f, x);
	default: return ts2(f, x);
	}
}
static long want(int s, int t, long x)
{
	return s < 3 ? x * 16 + t + 1000000L * s : (x + (s - 3)) * 16 + t;
}

static long calls(int t, int reps)
{
	long wrong = 0;
	for (int r = 0; r < reps; r++)
		for (int s = 0; s < NS; s++)
			if (one(s, tg[t], r) != want(s, t, r))
				wrong++;
	return wrong;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

/* Call until stubs_emitted reaches WANT (epochs must come from the slow path). */
static long call_until(int t, uint64_t want_stubs, uint64_t want_promoted, const char *what)
{
	long wrong = 0;
	uint64_t t0 = now_ms();
	struct relpoline_stats s;
	do {
		uint64_t t1 = now_ms();
		while (now_ms() == t1)   /* stats about once a millisecond */
			wrong += calls(t, 64);
		s = t_stats();
	} while ((s.stubs_emitted < want_stubs || s.sites_promoted < want_promoted) &&
		 now_ms() - t0 < 5000);
	CHECK(s.stubs_emitted >= want_stubs && s.sites_promoted >= want_promoted,
	      "%s: after %" PRIu64 " ms: stubs_emitted %" PRIu64 " (want %" PRIu64 "), sites_promoted %"
	      PRIu64 " (want %" PRIu64 ")", what, now_ms() - t0, s.stubs_emitted, want_stubs,
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
		uint64_t t0 = now_ms();
		while (threads() != 1 && now_ms() - t0 < 2000)
			usleep(1000);
	}
	int r = relpoline_config_get("thread", buf, sizeof buf);
	CHECK(r == 0 && strcmp(buf, "off") == 0, "config_get(thread) = %d \"%s\", want \"off\"", r, buf);

	struct relpoline_stats a = t_stats();
	long wrong = call_until(0, a.stubs_emitted + 1, 1, "promotion without a thread");
	struct relpoline_stats b = t_stats();
	t_print_stats("promoted", &b);
	CHECK(b.sites_promoted > 0, "no site promoted with RELPOLINE_THREAD=off");
	CHECK(b.epochs > a.epochs, "no epoch ran (the program never calls relpoline_epoch)");
	int n = threads();
	CHECK(n == 1, "/proc/self/status: Threads: %d after promotion, want 1", n);

	errno = 0;
	r = unshare(CLONE_NEWUSER);
	int e = errno;
	if (r == 0)
		printf("unshare(CLONE_NEWUSER): ok\n");
	else if (e == EINVAL)
		CHECK(0, "unshare(CLONE_NEWUSER): EINVAL: the process is multithreaded (Threads: %d)",
		      threads());
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
	n = threads();
	CHECK(n == 1, "/proc/self/status: Threads: %d at the end, want 1", n);
	return t_finish(api ? "t_unshare api" : "t_unshare env");
}
