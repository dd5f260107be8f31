/*
 * Indirect calls through sites that are being repatched, from a thread
 * whose signal mask blocks every signal (SIGTRAP included), set in ways no
 * library can interpose:
 *   t_sigblock handler      SIGUSR1 and SIGALRM handlers installed with
 *                           sigfillset(&sa.sa_mask) (the kernel blocks every
 *                           signal while they run) make indirect calls; a
 *                           second thread sends SIGUSR1 with tgkill as fast as
 *                           it can and an interval timer sends SIGALRM, so
 *                           the main thread spends most of its time in them
 *   t_sigblock rawmask      syscall(SYS_rt_sigprocmask, SIG_BLOCK, all, NULL, 8)
 *   t_sigblock swapcontext  swapcontext() into a context whose uc_sigmask is full
 *   t_sigblock sigsetmask   sigsetmask(~0)
 *   t_sigblock unblocked    (not in run.sh) the same window with nothing blocked,
 *                           as a control: prints passes and traps_emulated
 * run.sh runs it with the worker (RELPOLINE_THREAD=on, EPOCH_MS=1) and, for
 * handler and rawmask, with epochs on the program's own thread (THREAD=off):
 * PROMOTE_MIN=8, MAX_TARGETS=2, MIN_COVERAGE=1 and a
 * small RELEARN_MISSES: the targets shift every 3 ms, so sites keep getting
 * new stubs while the mask blocks everything.
 * Asserts: no wrong result; the mask really blocked SIGTRAP (read back with
 * the raw syscall); patch passes happened during the blocked window (stats
 * before/after it) and a call site's destination was seen to change while
 * the mask was blocking (inside a handler, for the handler mode).
 * A runtime that patches with INT3 kills the process here (a synchronous
 * SIGTRAP that is blocked is fatal).
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <ucontext.h>

/* Eight targets, six call sites (site_addr[] below) and four tail sites. */
#define WL_NCALL 6
#include "workload.h"

#define PHASE_US 3000   /* the targets shift every 3 ms */

/* REPS rounds over every site; the number of wrong results.  Async-signal-safe. */
static long work(int reps)
{
	return wl_calls_now(PHASE_US, reps, 0);
}

/* The call sites' addresses: the return address a target sees, minus 5. */
static const unsigned char *site_addr[WL_NCALL];
static const void *captured;
NOINLINE long capture(long x)
{
	captured = __builtin_return_address(0);
	return x;
}

static void find_sites(void)
{
	for (int s = 0; s < WL_NCALL; s++) {
		captured = NULL;
		wl_one(s, capture, 0);
		site_addr[s] = (const unsigned char *)captured - 5;
		if (!captured || site_addr[s][0] != 0xe8)
			DIE("call site %d: no e8 call before return address %p", s, captured);
	}
}

static void snapshot(const void **d)
{
	for (int s = 0; s < WL_NCALL; s++)
		d[s] = t_site_dest(site_addr[s], NULL);
}

static int changed(const void **a, const void **b)
{
	for (int s = 0; s < WL_NCALL; s++)
		if (a[s] != b[s])
			return 1;
	return 0;
}

/* The calling thread's mask, from the kernel. */
static uint64_t raw_mask(void)
{
	uint64_t m = 0;
	syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &m, 8);
	return m;
}
#define BIT(sig) (1ull << ((sig) - 1))

static const char *mode;
static volatile int keep_going = 1;

/* ---- blocked window for the mask modes ---- */

struct window {
	uint64_t mask_in, mask_out;
	long wrong, calls, changes;
	struct relpoline_stats before, after;
};
static struct window win;

static void blocked_window(void)
{
	win.mask_in = raw_mask();
	const void *prev[WL_NCALL], *cur[WL_NCALL];
	snapshot(prev);
	uint64_t t0 = wl_now_us(), last = t0;
	while (wl_now_us() - t0 < 1500000) {
		win.wrong += work(64);
		win.calls += 64 * WL_NS;
		if (wl_now_us() - last >= 500) {
			last = wl_now_us();
			snapshot(cur);
			win.changes += changed(prev, cur);
			memcpy(prev, cur, sizeof prev);
		}
	}
	win.mask_out = raw_mask();
}

static void nothing(void) {}

static void run_window(void (*block)(void), void (*unblock)(void))
{
	win.before = t_stats();
	block();
	unblock();
	win.after = t_stats();
}

static void rawmask_block(void)
{
	uint64_t all = ~0ull;
	if (syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 8) < 0)
		DIE("rt_sigprocmask: %s", strerror(errno));
	blocked_window();
}
static void rawmask_unblock(void)
{
	uint64_t all = ~0ull;
	syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &all, NULL, 8);
}

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static int old_mask;
static void sigsetmask_block(void)
{
	old_mask = sigsetmask(~0);
	blocked_window();
}
static void sigsetmask_unblock(void) { sigsetmask(old_mask); }

static ucontext_t main_ctx, blocked_ctx;
static void ctx_fn(void) { blocked_window(); }
static void swapcontext_block(void)
{
	static char *stack;
	size_t size = 1 << 20;
	stack = malloc(size);
	if (!stack || getcontext(&blocked_ctx) < 0)
		DIE("getcontext");
	blocked_ctx.uc_stack.ss_sp = stack;
	blocked_ctx.uc_stack.ss_size = size;
	blocked_ctx.uc_link = &main_ctx;
	sigfillset(&blocked_ctx.uc_sigmask);
	makecontext(&blocked_ctx, ctx_fn, 0);
	if (swapcontext(&main_ctx, &blocked_ctx) < 0)
		DIE("swapcontext: %s", strerror(errno));
	/* Back here through uc_link: main_ctx's mask is restored. */
}


/* ---- handler mode ---- */

static atomic_long h_count, h_wrong, h_mask_bad, h_changed;
static pid_t main_tid;

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	uint64_t m = raw_mask();
	if (!(m & BIT(SIGTRAP)) || !(m & BIT(SIGUSR1)) || !(m & BIT(SIGALRM)) || !(m & BIT(SIGSEGV)))
		h_mask_bad++;
	const void *a[WL_NCALL], *b[WL_NCALL];
	snapshot(a);
	h_wrong += work(100);
	snapshot(b);
	h_changed += changed(a, b);
	h_count++;
	errno = saved;
}

static void *sender(void *arg)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pid_t pid = getpid();
	while (keep_going) {
		syscall(SYS_tgkill, pid, main_tid, SIGUSR1);
		struct timespec ts = { 0, 20000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int handler_mode(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || sigaction(SIGALRM, &sa, NULL) < 0)
		DIE("sigaction");
	main_tid = (pid_t)syscall(SYS_gettid);
	struct relpoline_stats before = t_stats();
	pthread_t th;
	if (pthread_create(&th, NULL, sender, NULL))
		DIE("pthread_create");
	struct itimerval it = { { 0, 300 }, { 0, 300 } };
	setitimer(ITIMER_REAL, &it, NULL);
	long wrong = 0, calls = 0;
	uint64_t t0 = wl_now_us();
	while (wl_now_us() - t0 < 1500000) {
		wrong += work(16);
		calls += 16 * WL_NS;
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	keep_going = 0;
	pthread_join(th, NULL);
	struct relpoline_stats after = t_stats();
	t_print_stats("after", &after);
	printf("handler: %ld handlers, %ld with a site repatched inside, %ld wrong, mask not full %ld;"
	       " main: %ld calls %ld wrong\n", (long)h_count, (long)h_changed, (long)h_wrong,
	       (long)h_mask_bad, calls, wrong);
	CHECK(wrong == 0, "main thread: %ld wrong results", wrong);
	CHECK(h_wrong == 0, "handlers: %ld wrong results", (long)h_wrong);
	CHECK(h_count >= 500, "only %ld signal handlers ran", (long)h_count);
	CHECK(h_mask_bad == 0, "%ld handlers ran without every signal blocked", (long)h_mask_bad);
	CHECK(after.patch_passes >= before.patch_passes + 3, "patch passes %" PRIu64 " -> %" PRIu64,
	      before.patch_passes, after.patch_passes);
	CHECK(after.stubs_emitted > before.stubs_emitted, "no new stub during the signal storm");
	CHECK(h_changed > 0, "no handler saw a site repatched while it ran (all signals blocked)");
	wl_check_thread_setting();
	return t_finish("t_sigblock handler");
}

int main(int argc, char **argv)
{
	t_default_env(argv, wl_busy_env);
	mode = argc > 1 ? argv[1] : "rawmask";
	find_sites();
	/* Warm up: sites promoted before the blocked window starts. */
	wl_warm_up(PHASE_US);
	struct relpoline_stats w = t_stats();
	t_print_stats("warm", &w);
	CHECK(w.sites_promoted > 0, "nothing promoted after warming up");

	if (strcmp(mode, "handler") == 0)
		return handler_mode();
	if (strcmp(mode, "rawmask") == 0)
		run_window(rawmask_block, rawmask_unblock);
	else if (strcmp(mode, "sigsetmask") == 0)
		run_window(sigsetmask_block, sigsetmask_unblock);
	else if (strcmp(mode, "unblocked") == 0)   /* control: the same window, nothing blocked */
		run_window(blocked_window, nothing);
	else if (strcmp(mode, "swapcontext") == 0)
		run_window(swapcontext_block, nothing);
	else
		DIE("unknown mode %s", mode);

	uint64_t now = raw_mask();
	t_print_stats("after", &win.after);
	printf("%s: mask in window %#" PRIx64 ", at its end %#" PRIx64 ", after %#" PRIx64
	       "; %ld calls, %ld wrong, %ld site changes seen\n", mode, win.mask_in, win.mask_out, now,
	       win.calls, win.wrong, win.changes);
	printf("%s: %" PRIu64 " patch passes, %" PRIu64 " traps_emulated in the window\n", mode,
	       win.after.patch_passes - win.before.patch_passes,
	       win.after.traps_emulated - win.before.traps_emulated);
	if (strcmp(mode, "unblocked") == 0)
		return t_finish("t_sigblock unblocked");
	uint64_t need = BIT(SIGTRAP) | BIT(SIGUSR1) | BIT(SIGALRM) | BIT(SIGSEGV) | BIT(SIGINT);
	CHECK((win.mask_in & need) == need, "%s: the window's mask %#" PRIx64 " does not block "
	      "SIGTRAP/SIGUSR1/SIGALRM/SIGSEGV/SIGINT", mode, win.mask_in);
	CHECK((win.mask_out & need) == need, "%s: the mask changed during the window: %#" PRIx64,
	      mode, win.mask_out);
	CHECK(!(now & BIT(SIGTRAP)) && !(now & BIT(SIGUSR1)), "%s: still blocked after the window",
	      mode);
	CHECK(win.wrong == 0, "%s: %ld wrong results of %ld calls", mode, win.wrong, win.calls);
	CHECK(win.after.patch_passes >= win.before.patch_passes + 3,
	      "%s: patch passes %" PRIu64 " -> %" PRIu64 " during the blocked window", mode,
	      win.before.patch_passes, win.after.patch_passes);
	CHECK(win.after.stubs_emitted > win.before.stubs_emitted,
	      "%s: no new stub during the blocked window", mode);
	CHECK(win.changes > 0, "%s: no call site's destination changed during the blocked window",
	      mode);
	CHECK(work(100) == 0, "%s: wrong results after the window", mode);
	wl_check_thread_setting();
	char name[64];
	snprintf(name, sizeof name, "t_sigblock %s", mode);
	return t_finish(name);
}
