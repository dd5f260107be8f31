/*
 * The application owns SIGTRAP.  The program installs its own SIGTRAP
 * handler (SA_SIGINFO, with SIGUSR2 in sa_mask, no SA_NODEFER) and executes
 * `int3` itself thousands of times, from the main thread and a second
 * thread, while both make indirect calls whose targets shift every few
 * milliseconds and epochs (RELPOLINE_EPOCH_MS=1; run.sh: by the worker, and
 * on the program's own threads with RELPOLINE_THREAD=off) keep repatching.
 * Asserts:
 *   - every int3 was seen exactly once by the application's handler, with
 *     si_code SI_KERNEL and the saved rip right after that int3 (no trap
 *     of anyone else's reached it, none of its own was swallowed);
 *   - the handler ran with the mask its sigaction asked for (SIGUSR2 and
 *     SIGTRAP blocked): it was called by the kernel, not chained from
 *     someone else's handler;
 *   - sigaction(SIGTRAP) still returns the application's handler;
 *   - no wrong result, and patching happened while the int3s ran (patch
 *     passes and new stubs during the window).
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>

typedef long (*fn_t)(long);
#define T(n) NOINLINE long tg##n(long x) { return x * 16 + n; }
T(0) T(1) T(2) T(3) T(4) T(5) T(6) T(7)
static fn_t const tg[8] = { tg0, tg1, tg2, tg3, tg4, tg5, tg6, tg7 };
#define CS(n) NOINLINE long cs##n(fn_t f, long x) { return f(x) + 1000000 * n; }
#define TS(n) NOINLINE long ts##n(fn_t f, long x) { return f(x + n); }
CS(0) CS(1) CS(2) CS(3) TS(0) TS(1) TS(2) TS(3)
#define NS 8

static long one(int s, fn_t f, long x)
{
	switch (s) {
	case 0: return cs0(f, x);
	case 1: return cs1(f, x);
	case 2: return cs2(f, x);
	case 3: return cs3(f, x);
	case 4: return ts0(f, x);
	case 5: return ts1(f, x);
	case 6: return ts2(f, x);
	default: return ts3(f, x);
	}
}
static long want(int s, int t, long x)
{
	return s < 4 ? x * 16 + t + 1000000L * s : (x + (s - 4)) * 16 + t;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static long work(int reps, long salt)
{
	long wrong = 0;
	int phase = (int)(now_us() / 3000);
	for (int r = 0; r < reps; r++)
		for (int s = 0; s < NS; s++) {
			int t = (phase + s + (r & 1) * (s & 1)) % 8;
			if (one(s, tg[t], r + salt) != want(s, t, r + salt))
				wrong++;
		}
	return wrong;
}

/* One int3; the kernel reports rip = t_int3_after. */
extern const char t_int3_after[];
NOINLINE void do_int3(void)
{
	__asm__ volatile("int3\n\t.globl t_int3_after\n\tt_int3_after:\n\tnop" ::: "memory");
}

static __thread volatile long seen_here;         /* traps this thread's handler saw */
static atomic_long seen_total, bad_code, bad_rip, bad_mask;

static void on_trap(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	seen_here++;
	seen_total++;
	if (sig != SIGTRAP || si->si_code != SI_KERNEL)
		bad_code++;
	if ((const char *)uc->uc_mcontext.gregs[REG_RIP] != t_int3_after)
		bad_rip++;
	uint64_t m = 0;
	syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &m, 8);
	if (!(m & (1ull << (SIGUSR2 - 1))) || !(m & (1ull << (SIGTRAP - 1))))
		bad_mask++;
}

#define DURATION_US 1500000
struct result { long int3s, seen, wrong; };

static void run(struct result *r, long salt)
{
	uint64_t t0 = now_us();
	int msgs = 0;
	while (now_us() - t0 < DURATION_US) {
		r->wrong += work(32, salt);
		for (int k = 0; k < 4; k++) {
			long before = seen_here;
			do_int3();
			r->int3s++;
			if (seen_here != before + 1 && msgs++ < 5)
				fprintf(stderr, "check failed: int3 #%ld: handler count %ld -> %ld\n",
					r->int3s, before, seen_here);
		}
	}
	r->seen = seen_here;
}

static void *second(void *arg)
{
	run(arg, 7);
	return NULL;
}

static int is_mine(void)
{
	struct sigaction cur;
	if (sigaction(SIGTRAP, NULL, &cur) < 0)
		return 0;
	return (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_trap;
}

/* The run asked for RELPOLINE_THREAD=on or off: the runtime must be running that way. */
static void check_thread_setting(void)
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

int main(int argc, char **argv)
{
	static const char *const kv[] = { "RELPOLINE_EPOCH_MS", "1", "RELPOLINE_PROMOTE_MIN", "8",
					  "RELPOLINE_RELEARN_MISSES", "10", "RELPOLINE_MAX_TARGETS", "2",
					  "RELPOLINE_MAX_VERSIONS", "1000",
					  "RELPOLINE_PIN_EPOCHS", "20", "RELPOLINE_MIN_COVERAGE", "1",
					  "RELPOLINE_THREAD", "on", NULL, NULL };
	t_default_env(argv, kv);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_trap;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	if (sigaction(SIGTRAP, &sa, NULL) < 0)
		DIE("sigaction: %s", strerror(errno));

	/* Warm up: sites promoted before the int3s start. */
	uint64_t t0 = now_us();
	for (uint64_t t1 = t0; now_us() - t0 < 3000000; t1 = now_us()) {
		while (now_us() - t1 < 1000)   /* the stats (a lock) about once a millisecond */
			work(64, 0);
		if (t_stats().sites_promoted >= NS)
			break;
	}
	struct relpoline_stats a = t_stats();
	t_print_stats("warm", &a);
	CHECK(a.sites_promoted > 0, "nothing promoted after warming up");
	CHECK(is_mine(), "SIGTRAP is not the application's handler after warming up");

	struct result rm = { 0 }, rt = { 0 };
	pthread_t th;
	if (pthread_create(&th, NULL, second, &rt))
		DIE("pthread_create");
	run(&rm, 0);
	pthread_join(th, NULL);
	struct relpoline_stats b = t_stats();
	t_print_stats("after", &b);
	printf("int3: main %ld executed %ld seen; thread %ld executed %ld seen; total seen %ld; "
	       "bad si_code %ld, bad rip %ld, handler without its sa_mask %ld; wrong %ld+%ld\n",
	       rm.int3s, rm.seen, rt.int3s, rt.seen, (long)seen_total, (long)bad_code,
	       (long)bad_rip, (long)bad_mask, rm.wrong, rt.wrong);
	CHECK(rm.int3s >= 1000 && rt.int3s >= 1000, "too few int3s: %ld + %ld", rm.int3s, rt.int3s);
	CHECK(rm.seen == rm.int3s, "main thread: %ld int3s, its handler saw %ld", rm.int3s, rm.seen);
	CHECK(rt.seen == rt.int3s, "second thread: %ld int3s, its handler saw %ld", rt.int3s,
	      rt.seen);
	CHECK(seen_total == rm.int3s + rt.int3s, "handler ran %ld times for %ld int3s",
	      (long)seen_total, rm.int3s + rt.int3s);
	CHECK(bad_code == 0, "%ld traps with si_code other than SI_KERNEL", (long)bad_code);
	CHECK(bad_rip == 0, "%ld traps whose rip is not right after the program's int3",
	      (long)bad_rip);
	CHECK(bad_mask == 0, "%ld handler calls without the sa_mask of the program's sigaction "
	      "(SIGUSR2, SIGTRAP blocked): someone else's handler called it", (long)bad_mask);
	CHECK(is_mine(), "sigaction(SIGTRAP) no longer returns the program's handler");
	CHECK(rm.wrong == 0 && rt.wrong == 0, "wrong results: %ld + %ld", rm.wrong, rt.wrong);
	CHECK(b.patch_passes >= a.patch_passes + 3, "patch passes %" PRIu64 " -> %" PRIu64
	      " while the int3s ran", a.patch_passes, b.patch_passes);
	CHECK(b.stubs_emitted > a.stubs_emitted, "no new stub while the int3s ran");
	check_thread_setting();
	return t_finish("t_int3app");
}
