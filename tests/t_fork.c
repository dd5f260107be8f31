/*
 * fork: the child inherits the patched code and the runtime state.
 *   t_fork         (RELPOLINE_EPOCH_MS=0) parent promotes some sites and
 *                  forks; the child hits, misses, promotes new sites with
 *                  relpoline_epoch(), relearns, disables/enables.  The
 *                  parent carries on afterwards.
 *   t_fork worker  (RELPOLINE_EPOCH_MS=1) the background worker and a busy
 *                  thread keep patching while the main thread forks 20
 *                  times; every child must run relpoline_epoch() and its
 *                  calls without deadlock (alarm) and correctly.
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

typedef long (*fn_t)(long);
NOINLINE long fa(long x) { return x + 1000; }
NOINLINE long fb(long x) { return x + 2000; }
NOINLINE long fc(long x) { return x + 3000; }
static fn_t const fns[3] = { fa, fb, fc };
#define SITE(n) NOINLINE long site_##n(fn_t f, long x) { return f(x) * 3 + n; }
#define TSITE(n) NOINLINE long site_##n(fn_t f, long x) { return f(x + n) ; }
SITE(0) SITE(1) SITE(2) TSITE(3) SITE(4) SITE(5) SITE(6) TSITE(7)

static long want(int s, int w, long x)
{
	long b = 1000 * (w + 1);
	return (s == 3 || s == 7) ? x + s + b : (x + b) * 3 + s;
}

/* Sites 0-3 are "old" (promoted in the parent), 4-7 "new". */
static void calls(int first, int last, int n, int w, const char *phase)
{
	fn_t f = fns[w];
	for (long i = 0; i < n; i++)
		for (int s = first; s <= last; s++) {
			long r;
			switch (s) {
			case 0: r = site_0(f, i); break;
			case 1: r = site_1(f, i); break;
			case 2: r = site_2(f, i); break;
			case 3: r = site_3(f, i); break;
			case 4: r = site_4(f, i); break;
			case 5: r = site_5(f, i); break;
			case 6: r = site_6(f, i); break;
			default: r = site_7(f, i); break;
			}
			CHECK(r == want(s, w, i), "%s: site %d fn %d: %ld want %ld", phase, s, w, r,
			      want(s, w, i));
		}
}

static int wait_child(pid_t pid, const char *what)
{
	int st;
	if (waitpid(pid, &st, 0) != pid) {
		CHECK(0, "waitpid %s", what);
		return 1;
	}
	if (WIFSIGNALED(st)) {
		CHECK(0, "%s child killed by signal %d", what, WTERMSIG(st));
		return 1;
	}
	CHECK(WEXITSTATUS(st) == 0, "%s child exited %d", what, WEXITSTATUS(st));
	return WEXITSTATUS(st) != 0;
}

static int child_main(void)
{
	alarm(20);
	struct relpoline_stats c0 = t_stats();
	calls(0, 3, 20, 0, "child-hit");
	calls(0, 3, 20, 1, "child-miss");
	calls(4, 7, 40, 2, "child-learn");
	t_epoch();
	struct relpoline_stats c1 = t_stats();
	t_print_stats("child", &c1);
	CHECK(c1.sites_promoted >= 8, "child: sites_promoted %" PRIu64 " -> %" PRIu64
	      " want 8 (4 inherited + 4 new)", c0.sites_promoted, c1.sites_promoted);
	CHECK(c1.misses > c0.misses, "child: misses did not grow");
	calls(0, 7, 20, 2, "child-after");
	CHECK(relpoline_relearn() == 0);
	calls(0, 7, 40, 1, "child-relearn");
	t_epoch();
	calls(0, 7, 20, 1, "child-repromoted");
	CHECK(relpoline_disable() == 0);
	calls(0, 7, 5, 0, "child-disabled");
	CHECK(relpoline_enable() == 0);
	calls(0, 7, 40, 0, "child-enabled");
	t_epoch();
	calls(0, 7, 5, 0, "child-end");
	struct relpoline_stats c2 = t_stats();
	CHECK(c2.sites_promoted >= 8, "child: sites_promoted %" PRIu64 " at end", c2.sites_promoted);
	return t_fails ? 1 : 0;
}

static volatile int busy_stop;
static void *busy(void *arg)
{
	unsigned k = 0;
	while (!busy_stop) {
		int w = (k / 64) % 3;
		calls(0, 7, 1, w, "busy");
		if (++k % 4096 == 0)
			relpoline_relearn();
	}
	return NULL;
}

static int worker_mode(void)
{
	pthread_t th;
	pthread_create(&th, NULL, busy, NULL);
	usleep(20000);
	int bad = 0;
	for (int i = 0; i < 20; i++) {
		usleep(3000 + 1000 * (i % 5));
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			alarm(20);
			calls(0, 7, 200, i % 3, "wchild");
			if (relpoline_epoch() != 0)
				_exit(3);
			calls(0, 7, 200, (i + 1) % 3, "wchild-after");
			relpoline_relearn();
			calls(0, 7, 50, i % 3, "wchild-relearn");
			_exit(t_fails ? 1 : 0);
		}
		CHECK(pid > 0, "fork failed");
		if (pid > 0)
			bad += wait_child(pid, "worker-mode");
	}
	busy_stop = 1;
	pthread_join(th, NULL);
	struct relpoline_stats s = t_stats();
	t_print_stats("parent", &s);
	CHECK(s.stubs_emitted > 0, "nothing was promoted in the parent");
	return t_finish("t_fork worker");
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "worker") == 0) {
		static const char *const kv[] = { "RELPOLINE_EPOCH_MS", "1", "RELPOLINE_PROMOTE_MIN",
						  "16", "RELPOLINE_RELEARN_MISSES", "20", NULL, NULL };
		t_default_env(argv, kv);
		return worker_mode();
	}
	t_deterministic(argv);
	calls(0, 3, 40, 0, "parent-learn");
	t_epoch();
	struct relpoline_stats p1 = t_stats();
	t_print_stats("parent", &p1);
	CHECK(p1.sites_promoted >= 4, "parent: sites_promoted %" PRIu64, p1.sites_promoted);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(child_main());
	CHECK(pid > 0, "fork failed");
	if (pid > 0)
		wait_child(pid, "first");
	/* The parent is unaffected by what the child did. */
	struct relpoline_stats p2 = t_stats();
	CHECK(p2.sites_promoted == p1.sites_promoted, "parent: sites_promoted %" PRIu64
	      " -> %" PRIu64 " because of the child", p1.sites_promoted, p2.sites_promoted);
	calls(0, 3, 20, 0, "parent-hit");
	calls(4, 7, 40, 1, "parent-learn2");
	t_epoch();
	calls(0, 7, 20, 1, "parent-end");
	/* A child of a child. */
	pid = fork();
	if (pid == 0) {
		alarm(20);
		pid_t g = fork();
		if (g == 0)
			_exit(child_main());
		int r = wait_child(g, "grandchild");
		_exit(r || t_fails ? 1 : 0);
	}
	if (pid > 0)
		wait_child(pid, "second");
	return t_finish("t_fork");
}
