/*
 * Process exit and thread churn while the runtime is busy.
 *   t_exit              spawns itself 16 times as "t_exit child MS"; each child
 *                       runs 4 threads calling through promoted/relearning sites
 *                       (RELPOLINE_EPOCH_MS=1) and calls exit(0) from main after
 *                       MS ms, while the other threads are still calling (and, in
 *                       half of the runs, RELPOLINE_STATS=1 prints at exit).  Every
 *                       child must exit 0: no crash, no hang, no wrong result.
 *   t_exit churn        creates and joins 1500 short-lived threads, 8 at a time,
 *                       each making slow-path calls (per-thread tables are created
 *                       and, once the threads are gone, reclaimed by the worker).
 */
#include "common.h"
#include <pthread.h>
#include <dlfcn.h>
#include <signal.h>
#include <spawn.h>
#include <ucontext.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;
typedef long (*fn_t)(long);
NOINLINE long fa(long x) { return x + 1; }
NOINLINE long fb(long x) { return x + 2; }
NOINLINE long fc(long x) { return x + 3; }
static fn_t const fns[3] = { fa, fb, fc };
#define SITE(n) NOINLINE long site_##n(fn_t f, long x) { return f(x) * 5 + n; }
#define TSITE(n) NOINLINE long site_##n(fn_t f, long x) { return f(x + n); }
SITE(0) SITE(1) SITE(2) SITE(3) TSITE(4) TSITE(5) TSITE(6) TSITE(7)

static long one(int s, int w, long x)
{
	fn_t f = fns[w];
	switch (s) {
	case 0: return site_0(f, x);
	case 1: return site_1(f, x);
	case 2: return site_2(f, x);
	case 3: return site_3(f, x);
	case 4: return site_4(f, x);
	case 5: return site_5(f, x);
	case 6: return site_6(f, x);
	default: return site_7(f, x);
	}
}
static long want(int s, int w, long x) { return s < 4 ? (x + w + 1) * 5 + s : x + s + w + 1; }

static void *hammer(void *arg)
{
	uint64_t n = 0, limit = (uintptr_t)arg;
	for (;;) {
		int w = (int)((n >> 12) % 3);
		for (int s = 0; s < 8; s++) {
			long r = one(s, (s & 1) ? w : (w + (int)(n & 1)) % 3, (long)n);
			long x = want(s, (s & 1) ? w : (w + (int)(n & 1)) % 3, (long)n);
			if (r != x) {
				fprintf(stderr, "check failed: site %d: %ld want %ld\n", s, r, x);
				_exit(3);
			}
		}
		if (limit && ++n >= limit)
			return NULL;
		if (!limit)
			n++;
	}
}

/* Say where a crash happened (the parent reports the first line). */
static void on_segv(int sig, siginfo_t *si, void *uc)
{
	ucontext_t *u = uc;
	void *rip = (void *)u->uc_mcontext.gregs[REG_RIP];
	Dl_info di;
	const char *where = dladdr(rip, &di) && di.dli_sname ? di.dli_sname : "?";
	const char *obj = dladdr(rip, &di) && di.dli_fname ? di.dli_fname : "(no module)";
	char buf[512];
	int n = snprintf(buf, sizeof buf,
			 "check failed: signal %d in exit: rip %p (%s in %s) fault address %p\n", sig,
			 rip, where, obj, si->si_addr);
	if (write(2, buf, (size_t)n) < 0)
		_exit(1);
	signal(sig, SIG_DFL);
	raise(sig);
}

static int child(int ms)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_segv;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	pthread_t th;
	for (int i = 0; i < 4; i++)
		pthread_create(&th, NULL, hammer, NULL);
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
	exit(0);
}

static int churn(void)
{
	for (int round = 0; round < 1500 / 8; round++) {
		pthread_t th[8];
		for (int i = 0; i < 8; i++)
			if (pthread_create(&th[i], NULL, hammer, (void *)(uintptr_t)(20 + round % 50)))
				DIE("pthread_create");
		for (int i = 0; i < 8; i++)
			pthread_join(th[i], NULL);
		if (round % 16 == 0)
			t_epoch();
	}
	struct relpoline_stats s = t_stats();
	t_print_stats("churn", &s);
	CHECK(s.sites_promoted + s.sites_pinned >= 4, "nothing decided during churn");
	return t_finish("t_exit churn");
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "child") == 0)
		return child(atoi(argv[2]));
	if (argc > 1 && strcmp(argv[1], "churn") == 0)
		return churn();
	for (int i = 0; i < 16; i++) {
		char ms[16];
		snprintf(ms, sizeof ms, "%d", 5 + (i * 7) % 60);
		char *args[] = { "/proc/self/exe", "child", ms, NULL };
		if (i & 1)
			setenv("RELPOLINE_STATS", "1", 1);
		else
			unsetenv("RELPOLINE_STATS");
		pid_t pid;
		int r = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, environ);
		if (r)
			DIE("posix_spawn: %s", strerror(r));
		int st;
		alarm(30);
		if (waitpid(pid, &st, 0) != pid)
			DIE("waitpid");
		alarm(0);
		if (WIFSIGNALED(st) || WEXITSTATUS(st))
			fprintf(stderr, "    (repro: RELPOLINE_EPOCH_MS=%s RELPOLINE_PROMOTE_MIN=%s "
				"RELPOLINE_RELEARN_MISSES=%s%s %s child %s)\n",
				getenv("RELPOLINE_EPOCH_MS"), getenv("RELPOLINE_PROMOTE_MIN"),
				getenv("RELPOLINE_RELEARN_MISSES"), (i & 1) ? " RELPOLINE_STATS=1" : "",
				argv[0], ms);
		if (WIFSIGNALED(st))
			CHECK(0, "child %d (exit after %s ms) killed by signal %d", i, ms, WTERMSIG(st));
		else
			CHECK(WEXITSTATUS(st) == 0, "child %d (exit after %s ms) exit status %d", i, ms,
			      WEXITSTATUS(st));
	}
	return t_finish("t_exit");
}
