/*
 * fork: the child inherits the patched code and the runtime state.
 *   t_fork         (RELPOLINE_EPOCH_MS=0) parent promotes sites 0-3 and
 *                  forks; the child hits, misses, promotes sites 4-7 with
 *                  relpoline_epoch(), relearns, disables/enables.  The
 *                  child sends its own stats and what its sites point to
 *                  through a pipe: the parent checks that the child
 *                  started from the parent's state and really promoted
 *                  sites 4-7 itself (its stats and its site bytes), and
 *                  that none of it shows in the parent: the parent's stub
 *                  arena is byte for byte what it was before the fork, its
 *                  sites 0-3 are on the same stubs, 4-7 on none.  The parent
 *                  carries on afterwards; then a grandchild does the same.
 *   t_fork worker  (RELPOLINE_EPOCH_MS=1) the background worker and a busy
 *                  thread keep patching while the main thread forks 20
 *                  times; every child must run relpoline_epoch() and its
 *                  calls without deadlock (alarm) and correctly.
 */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include "sites.h"

typedef long (*fn_t)(long);
NOINLINE long fa(long x) { return x + 1000; }
NOINLINE long fb(long x) { return x + 2000; }
NOINLINE long fc(long x) { return x + 3000; }
static fn_t const fns[3] = { fa, fb, fc };
#define SITE(n) NOINLINE long site_##n(fn_t f, long x) { return f(x) * 3 + n; }
#define TSITE(n) NOINLINE long site_##n(fn_t f, long x) { return f(x + n) ; }
SITE(0) SITE(1) SITE(2) TSITE(3) SITE(4) SITE(5) SITE(6) TSITE(7)
static void *const site_fns[8] = { (void *)site_0, (void *)site_1, (void *)site_2, (void *)site_3,
				    (void *)site_4, (void *)site_5, (void *)site_6, (void *)site_7 };
static struct ts_site ts[8];

/* Which of the 8 sites are on a stub of their own (bit mask), and where they go. */
static unsigned on_stubs(const void *dest[8])
{
	unsigned m = 0;
	for (int k = 0; k < 8; k++) {
		const void *d = t_site_dest(ts[k].addr, NULL);
		if (dest)
			dest[k] = d;
		if (ts_is_stub_for(d, ts[k].addr))
			m |= 1u << k;
	}
	return m;
}

/* What a child tells the parent, through a pipe. */
struct report {
	uint32_t magic;
	int fails;
	struct relpoline_stats c0, c1, c2;   /* at start, after promoting 4-7, at the end */
	unsigned stubs_at_start, stubs_after; /* on_stubs() masks */
	const void *dest_after[8];
};
#define REPORT_MAGIC 0x52505254u
static int report_fd = -1;

/* The executable views of this process's stub arenas, copied. */
struct arena_copy { uintptr_t lo, hi; unsigned char *bytes; };
static int arena_snapshot(struct arena_copy *a, int max)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;
	while (f && fgets(line, sizeof line, f) && n < max) {
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[2] == 'x' &&
		    ts_in_arena((void *)lo)) {
			a[n].lo = lo;
			a[n].hi = hi;
			a[n].bytes = malloc(hi - lo);
			if (a[n].bytes)
				memcpy(a[n].bytes, (void *)lo, hi - lo);
			n++;
		}
	}
	if (f)
		fclose(f);
	return n;
}

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
	struct report rep;
	memset(&rep, 0, sizeof rep);
	rep.magic = REPORT_MAGIC;
	rep.stubs_at_start = on_stubs(NULL);
	struct relpoline_stats c0 = t_stats();
	calls(0, 3, 20, 0, "child-hit");
	calls(0, 3, 20, 1, "child-miss");
	calls(4, 7, 40, 2, "child-learn");
	t_epoch();
	struct relpoline_stats c1 = t_stats();
	rep.stubs_after = on_stubs(rep.dest_after);
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
	rep.c0 = c0;
	rep.c1 = c1;
	rep.c2 = c2;
	rep.fails = t_fails;
	if (report_fd >= 0)
		CHECK(write(report_fd, &rep, sizeof rep) == (ssize_t)sizeof rep, "child: report not sent");
	return t_fails ? 1 : 0;
}

/* The parent's view of a child's report (P1: the parent's stats and stubs when it forked). */
static void check_report(int fd, const char *who, const struct relpoline_stats *p1,
			 const void *const pdest[8], unsigned parent_mask)
{
	struct report r;
	ssize_t n = read(fd, &r, sizeof r);
	if (n != (ssize_t)sizeof r || r.magic != REPORT_MAGIC) {
		CHECK(0, "%s: no report from the child (read %zd)", who, n);
		return;
	}
	printf("[%s report] promoted %" PRIu64 " -> %" PRIu64 " -> %" PRIu64 ", stubs_emitted %" PRIu64
	       " -> %" PRIu64 ", misses %" PRIu64 " -> %" PRIu64 ", on stubs %#x -> %#x\n", who,
	       r.c0.sites_promoted, r.c1.sites_promoted, r.c2.sites_promoted, r.c0.stubs_emitted,
	       r.c1.stubs_emitted, r.c0.misses, r.c1.misses, r.stubs_at_start, r.stubs_after);
	CHECK(r.fails == 0, "%s: %d checks failed in the child", who, r.fails);
	/* The child starts from the parent's state... */
	CHECK(r.c0.sites_promoted == p1->sites_promoted && r.c0.stubs_emitted == p1->stubs_emitted,
	      "%s: child started with promoted %" PRIu64 " stubs %" PRIu64 ", the parent had %" PRIu64
	      " %" PRIu64, who, r.c0.sites_promoted, r.c0.stubs_emitted, p1->sites_promoted,
	      p1->stubs_emitted);
	CHECK(r.stubs_at_start == 0x0f, "%s: child started with sites %#x on stubs, want 0x0f (0-3, "
	      "the parent's)", who, r.stubs_at_start);
	/* ...and promotes 4-7 itself. */
	CHECK(r.c1.sites_promoted >= r.c0.sites_promoted + 4, "%s: child sites_promoted %" PRIu64
	      " -> %" PRIu64 ", want +4", who, r.c0.sites_promoted, r.c1.sites_promoted);
	CHECK(r.c1.stubs_emitted >= r.c0.stubs_emitted + 4, "%s: child emitted %" PRIu64
	      " stubs, want >= 4 of its own", who, r.c1.stubs_emitted - r.c0.stubs_emitted);
	CHECK(r.c1.misses > r.c0.misses, "%s: the child's misses did not grow", who);
	CHECK(r.stubs_after == 0xff, "%s: in the child, sites %#x on stubs after its epoch, want 0xff",
	      who, r.stubs_after);
	CHECK(r.c2.sites_promoted >= 8, "%s: child sites_promoted %" PRIu64 " at its end", who,
	      r.c2.sites_promoted);
	/* None of it shows in the parent. */
	const void *d[8];
	unsigned m = on_stubs(d);
	CHECK(m == parent_mask, "%s: after the child, the parent's sites %#x are on stubs, want %#x",
	      who, m, parent_mask);
	for (int k = 0; k < 8; k++) {
		CHECK(d[k] == pdest[k], "%s: parent's site %d moved from %p to %p while the child ran", who,
		      k, pdest[k], d[k]);
		if (k >= 4 && !(parent_mask & (1u << k)))
			CHECK(d[k] != r.dest_after[k], "%s: parent's site %d goes to the child's stub %p", who,
			      k, d[k]);
	}
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
	CHECK(bad == 0, "%d of 20 children failed", bad);
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
	for (int k = 0; k < 8; k++) {
		ts[k] = ts_one_site(site_fns[k], "site function");
		if (!ts[k].addr)
			DIE("site %d: no thunk site found in the executable", k);
	}
	calls(0, 3, 40, 0, "parent-learn");
	t_epoch();
	struct relpoline_stats p1 = t_stats();
	t_print_stats("parent", &p1);
	CHECK(p1.sites_promoted >= 4, "parent: sites_promoted %" PRIu64, p1.sites_promoted);
	const void *pdest[8];
	CHECK(on_stubs(pdest) == 0x0f, "parent: sites %#x on stubs, want 0x0f", on_stubs(NULL));
	struct arena_copy arenas[8];
	int narenas = arena_snapshot(arenas, 8);
	CHECK(narenas >= 1, "parent: no stub arena found in /proc/self/maps");
	int fds[2];
	if (pipe(fds) < 0)
		DIE("pipe");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		report_fd = fds[1];
		_exit(child_main());
	}
	close(fds[1]);
	CHECK(pid > 0, "fork failed");
	if (pid > 0)
		wait_child(pid, "first");
	check_report(fds[0], "child", &p1, pdest, 0x0f);
	close(fds[0]);
	/* The parent is unaffected by what the child did: not one byte of its arenas changed. */
	for (int i = 0; i < narenas; i++) {
		size_t len = arenas[i].hi - arenas[i].lo, first = len;
		for (size_t j = 0; arenas[i].bytes && j < len; j++)
			if (((unsigned char *)arenas[i].lo)[j] != arenas[i].bytes[j]) {
				first = j;
				break;
			}
		CHECK(first == len, "parent's arena %#lx-%#lx changed at +%#zx while the child ran",
		      (unsigned long)arenas[i].lo, (unsigned long)arenas[i].hi, first);
		free(arenas[i].bytes);
	}
	struct relpoline_stats p2 = t_stats();
	CHECK(p2.sites_promoted == p1.sites_promoted, "parent: sites_promoted %" PRIu64
	      " -> %" PRIu64 " because of the child", p1.sites_promoted, p2.sites_promoted);
	CHECK(p2.stubs_emitted == p1.stubs_emitted, "parent: stubs_emitted %" PRIu64
	      " -> %" PRIu64 " because of the child", p1.stubs_emitted, p2.stubs_emitted);
	calls(0, 3, 20, 0, "parent-hit");
	calls(4, 7, 40, 1, "parent-learn2");
	t_epoch();
	CHECK(on_stubs(NULL) == 0xff, "parent: sites %#x on stubs after promoting 4-7", on_stubs(NULL));
	calls(0, 7, 20, 1, "parent-end");
	t_epoch();   /* the misses of 0-3 are aggregated here, not in the next child */
	/* A child of a child. */
	const void *pdest2[8];
	on_stubs(pdest2);
	if (pipe(fds) < 0)
		DIE("pipe");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		alarm(20);
		/* The middle child relearns everything first: the grandchild starts from 0-3 promoted. */
		CHECK(relpoline_relearn() == 0);
		calls(0, 3, 40, 0, "middle-learn");
		t_epoch();
		struct relpoline_stats m = t_stats();
		if (write(fds[1], &m, sizeof m) != (ssize_t)sizeof m)
			_exit(4);
		pid_t g = fork();
		if (g == 0) {
			report_fd = fds[1];
			_exit(child_main());
		}
		int r = wait_child(g, "grandchild");
		_exit(r || t_fails ? 1 : 0);
	}
	close(fds[1]);
	if (pid > 0)
		wait_child(pid, "second");
	struct relpoline_stats mid;
	if (read(fds[0], &mid, sizeof mid) == (ssize_t)sizeof mid)
		check_report(fds[0], "grandchild", &mid, pdest2, 0xff);
	else
		CHECK(0, "no stats from the middle child");
	close(fds[0]);
	calls(0, 7, 20, 1, "parent-after-grandchild");
	return t_finish("t_fork");
}
