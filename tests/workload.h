/*
 * The workload of the guest tests (t_gdb, t_int3app, t_rwx, t_sigblock,
 * t_malloc, t_unshare, t_exitplain_lib; t_fds and t_tailsteady use the
 * helpers only, their sites are laid out differently): a set of call sites
 * and tail sites in the including file, targets for them, and the loops
 * that call through them while the targets shift.  C only (t_cxx.cc has
 * its own workload).  Include it after common.h, or (t_exitplain_lib.c, a
 * library without common.h) after defining NOINLINE: the parts that need
 * common.h (CHECK, t_stats) are left out then.
 *
 * The sites are defined in the including file, so they are that module's
 * thunk sites.  Before including, a test may set
 *   WL_MUL       target n returns x * WL_MUL + n              (default 16)
 *   WL_NTARGETS  targets wl_tg0 ..                            (1..8, default 8)
 *   WL_NCALL     call sites wl_cs0 .. (f(x) + 1000000 * n)    (1..8, default 4)
 *   WL_NTAIL     tail sites wl_ts0 .. (return f(x + n))       (1..8, default 4)
 *   WL_LINKAGE   storage class of those functions (static in a library,
 *                so nothing outside can interpose them; default none)
 *   WL_NO_SITES  none of them (t_fds, t_tailsteady): only the helpers that
 *                do not call through the sites
 * Site s (0 .. WL_NS-1) is call site s below WL_NCALL, then tail site
 * s - WL_NCALL.
 *
 *   wl_tg[t], wl_one(s, f, x)   target t; a call through site s to F with X
 *   wl_want(s, t, x)            what wl_one(s, wl_tg[t], x) must return
 *   wl_target(phase, r, s)      the moving target of site s in round r of a
 *                               phase: odd sites change target every round
 *   wl_calls(phase, reps, salt) REPS rounds over every site (argument
 *                               r + SALT); the number of wrong results
 *   wl_calls_now(period_us, reps, salt)  the same in the clock's phase: the
 *                               targets shift every PERIOD_US
 *   wl_warm_up(period_us)       wl_calls_now() until every site is promoted
 *                               (needs common.h)
 * and with or without the sites:
 *   wl_now_us(), wl_now_ms()    CLOCK_MONOTONIC
 *   WL_WAIT_MS(cond, ms)        poll COND every millisecond for at most MS
 *                               ms; the ms it took
 *   wl_threads()                "Threads:" of /proc/self/status
 * and with common.h:
 *   wl_busy_env                 run.sh's BUSY settings, for t_default_env()
 *   wl_check_thread_setting()   the runtime runs with the RELPOLINE_THREAD
 *                               the run asked for
 */
#ifndef RP_TEST_WORKLOAD_H
#define RP_TEST_WORKLOAD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef NOINLINE
#error "workload.h: include common.h (or define NOINLINE) first"
#endif
#ifndef WL_MUL
#define WL_MUL 16
#endif
#ifndef WL_NTARGETS
#define WL_NTARGETS 8
#endif
#ifndef WL_NCALL
#define WL_NCALL 4
#endif
#ifndef WL_NTAIL
#define WL_NTAIL 4
#endif
#ifndef WL_LINKAGE
#define WL_LINKAGE
#endif
#define WL_NS (WL_NCALL + WL_NTAIL)
#define WL_UNUSED __attribute__((unused))

static WL_UNUSED uint64_t wl_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static WL_UNUSED uint64_t wl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Evaluate COND about once a millisecond until it holds or MS ms have
 * passed; the ms it took.  The caller checks COND again: the time limit
 * only keeps a broken runtime from hanging the test.
 */
#define WL_WAIT_MS(cond, ms)                                                          \
	__extension__({                                                               \
		uint64_t wl_t0_ = wl_now_ms();                                        \
		while (!(cond) && wl_now_ms() - wl_t0_ < (uint64_t)(ms))              \
			usleep(1000);                                                 \
		wl_now_ms() - wl_t0_;                                                 \
	})

/* The process's thread count from /proc/self/status, -1 if unreadable. */
static WL_UNUSED int wl_threads(void)
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

#ifndef WL_NO_SITES
/* WL_SEQ(n, X): X(0) X(1) .. X(n-1), for n from 1 to 8. */
#define WL_SEQ_1(X) X(0)
#define WL_SEQ_2(X) WL_SEQ_1(X) X(1)
#define WL_SEQ_3(X) WL_SEQ_2(X) X(2)
#define WL_SEQ_4(X) WL_SEQ_3(X) X(3)
#define WL_SEQ_5(X) WL_SEQ_4(X) X(4)
#define WL_SEQ_6(X) WL_SEQ_5(X) X(5)
#define WL_SEQ_7(X) WL_SEQ_6(X) X(6)
#define WL_SEQ_8(X) WL_SEQ_7(X) X(7)
#define WL_SEQ_(n, X) WL_SEQ_##n(X)
#define WL_SEQ(n, X) WL_SEQ_(n, X)

typedef long (*wl_fn_t)(long);

/* Targets, and the sites: call sites (result used after the call) and tail sites (return f(...)). */
#define WL_TG(n) NOINLINE WL_LINKAGE long wl_tg##n(long x) { return x * WL_MUL + n; }
#define WL_CS(n) NOINLINE WL_LINKAGE long wl_cs##n(wl_fn_t f, long x) { return f(x) + 1000000 * n; }
#define WL_TS(n) NOINLINE WL_LINKAGE long wl_ts##n(wl_fn_t f, long x) { return f(x + n); }
WL_SEQ(WL_NTARGETS, WL_TG)
WL_SEQ(WL_NCALL, WL_CS)
WL_SEQ(WL_NTAIL, WL_TS)
#undef WL_TG
#undef WL_CS
#undef WL_TS

#define WL_TGPTR(n) wl_tg##n,
static wl_fn_t const wl_tg[WL_NTARGETS] WL_UNUSED = { WL_SEQ(WL_NTARGETS, WL_TGPTR) };
#undef WL_TGPTR

/* Direct calls of the site functions: the only indirect calls are the sites' own. */
static WL_UNUSED long wl_one(int s, wl_fn_t f, long x)
{
#define WL_CASE_CS(n) case n: return wl_cs##n(f, x);
#define WL_CASE_TS(n) case WL_NCALL + n: return wl_ts##n(f, x);
	switch (s) {
	WL_SEQ(WL_NCALL, WL_CASE_CS)
	WL_SEQ(WL_NTAIL, WL_CASE_TS)
	}
#undef WL_CASE_CS
#undef WL_CASE_TS
	abort();   /* no such site: a bug in the test */
}

static WL_UNUSED long wl_want(int s, int t, long x)
{
	return s < WL_NCALL ? x * WL_MUL + t + 1000000L * s : (x + (s - WL_NCALL)) * WL_MUL + t;
}

/*
 * The target of site S in round R of PHASE: every site moves on with the
 * phase, and the odd sites alternate between two targets within it, so a
 * promoted site keeps seeing more than one target.
 */
static inline WL_UNUSED int wl_target(int phase, long r, int s)
{
	return (phase + s + (int)(r & 1) * (s & 1)) % WL_NTARGETS;
}

/* REPS rounds over every site in PHASE, argument r + SALT; returns the wrong count.  Async-signal-safe. */
static WL_UNUSED long wl_calls(int phase, int reps, long salt)
{
	long wrong = 0;
	for (int r = 0; r < reps; r++)
		for (int s = 0; s < WL_NS; s++) {
			int t = wl_target(phase, r, s);
			if (wl_one(s, wl_tg[t], r + salt) != wl_want(s, t, r + salt))
				wrong++;
		}
	return wrong;
}

/* wl_calls() in the phase of the clock: the targets shift every PERIOD_US.  Async-signal-safe. */
static WL_UNUSED long wl_calls_now(uint64_t period_us, int reps, long salt)
{
	return wl_calls((int)(wl_now_us() / period_us), reps, salt);
}

#ifdef RP_TEST_COMMON_H
/*
 * Warm up: wl_calls_now(PERIOD_US, 64, 0) until every site is promoted, at
 * most 3 s (the caller checks what it got).  Wrong results are not counted
 * here: the test's own window counts them.
 */
static WL_UNUSED void wl_warm_up(uint64_t period_us)
{
	uint64_t t0 = wl_now_us();
	for (uint64_t t1 = t0; wl_now_us() - t0 < 3000000; t1 = wl_now_us()) {
		while (wl_now_us() - t1 < 1000)   /* the stats (a lock) about once a millisecond */
			wl_calls_now(period_us, 64, 0);
		if (t_stats().sites_promoted >= WL_NS)
			break;
	}
}
#endif
#endif /* !WL_NO_SITES */

#ifdef RP_TEST_COMMON_H
/*
 * run.sh's BUSY settings (MOVING, with the worker): targets that move every
 * few ms and stubs that keep being replaced.  run.sh sets them anyway; these
 * are for a run by hand.
 */
static const char *const wl_busy_env[] WL_UNUSED = {
	"RELPOLINE_EPOCH_MS", "1", "RELPOLINE_PROMOTE_MIN", "8",
	"RELPOLINE_RELEARN_MISSES", "10", "RELPOLINE_MAX_TARGETS", "2",
	"RELPOLINE_MAX_VERSIONS", "1000",
	"RELPOLINE_PIN_EPOCHS", "20", "RELPOLINE_MIN_COVERAGE", "1",
	"RELPOLINE_THREAD", "on", NULL, NULL
};

/* The run asked for RELPOLINE_THREAD=on or off: the runtime must be running that way. */
static WL_UNUSED void wl_check_thread_setting(void)
{
	const char *want = getenv("RELPOLINE_THREAD");
	if (!want)
		return;
	char buf[16] = "";
	int r = relpoline_config_get("thread", buf, sizeof buf);
	CHECK(r == 0 && strcmp(buf, want) == 0,
	      "config_get(thread) = %d \"%s\": the runtime does not run with RELPOLINE_THREAD=%s", r,
	      buf, want);
}
#endif

#endif
