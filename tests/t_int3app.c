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
#include "workload.h"   /* its default sites: 8 targets, 4 call and 4 tail sites */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#define PHASE_US 3000   /* the targets shift every 3 ms */

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
	uint64_t t0 = wl_now_us();
	int msgs = 0;
	while (wl_now_us() - t0 < DURATION_US) {
		r->wrong += wl_calls_now(PHASE_US, 32, salt);
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

int main(int argc, char **argv)
{
	t_default_env(argv, wl_busy_env);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_trap;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	if (sigaction(SIGTRAP, &sa, NULL) < 0)
		DIE("sigaction: %s", strerror(errno));

	/* Warm up: sites promoted before the int3s start. */
	wl_warm_up(PHASE_US);
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
	wl_check_thread_setting();
	return t_finish("t_int3app");
}
