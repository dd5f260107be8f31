/*
 * A relpoline program under gdb with gdb's default settings (gdb -nx: no
 * init file, no "handle SIGTRAP" recipe).  The driver (no argument) runs
 *   1. gdb -nx -batch -ex run --args ./t_gdb inner
 *   2. gdb -nx -batch -ex 'break t_gdb_ready' -ex run -ex 'break bp_target'
 *          -ex continue -ex continue --args ./t_gdb inner
 * and requires "exited normally" from both, no "received signal", and in
 * the second exactly one stop at the breakpoint on bp_target, which the
 * program reaches through a promoted site.
 *
 * "t_gdb inner" (the debuggee): two threads call through sites whose
 * targets shift every 2 ms while epochs repatch them (run.sh:
 * RELPOLINE_EPOCH_MS=1, small RELEARN_MISSES and MAX_TARGETS; the worker with
 * RELPOLINE_THREAD=on, the calling threads with =off), and checks
 * that patch passes happened; then it promotes gsite with target bp_target,
 * calls t_gdb_ready(), and calls bp_target once through the promoted site:
 * the site's destination must have changed at promotion and stay put, the
 * call must not miss, and the result must be right.  Exit 0 iff all held.
 * A runtime that patches with INT3 makes gdb stop with SIGTRAP.
 */
#include "common.h"
#include "workload.h"   /* its default sites: 8 targets, 4 call and 4 tail sites */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

static atomic_long wrong;
static uint64_t t_end;

static void *hammer(void *arg)
{
	long w = 0;
	while (wl_now_us() < t_end)
		w += wl_calls_now(2000, 32, 0);   /* targets shift every 2 ms */
	wrong += w;
	return NULL;
}

/* The breakpoint target, and the site that reaches it. */
static const void *volatile bp_ret;
static volatile long bp_hits;
NOINLINE long bp_target(long x)
{
	bp_ret = __builtin_return_address(0);
	bp_hits++;
	return x * 3;
}
NOINLINE long gsite(wl_fn_t f, long x) { return f(x) + 5; }

/* gdb stops here in the second session, then sets the breakpoint on bp_target. */
NOINLINE void t_gdb_ready(void) { __asm__ volatile("" ::: "memory"); }

static int inner(void)
{
	/* 1. Repatching under gdb, with two threads running through the sites. */
	struct relpoline_stats a = t_stats();
	t_end = wl_now_us() + 1200000;
	pthread_t th;
	if (pthread_create(&th, NULL, hammer, NULL))
		DIE("pthread_create");
	hammer(NULL);
	pthread_join(th, NULL);
	struct relpoline_stats b = t_stats();
	t_print_stats("after the threads", &b);
	CHECK(wrong == 0, "%ld wrong results", (long)wrong);
	CHECK(b.patch_passes >= a.patch_passes + 3, "patch passes %" PRIu64 " -> %" PRIu64,
	      a.patch_passes, b.patch_passes);
	CHECK(b.sites_promoted > 0, "nothing promoted");

	/* 2. Promote gsite -> bp_target. */
	CHECK(gsite(bp_target, 1) == 8, "gsite learning");
	const unsigned char *site = (const unsigned char *)bp_ret - 5;
	CHECK(site[0] == 0xe8, "no call before bp_target's return address %p", (const void *)bp_ret);
	const void *learning = t_site_dest(site, NULL);
	uint64_t t0 = wl_now_us();
	while (t_site_dest(site, NULL) == learning && wl_now_us() - t0 < 3000000) {
		for (int i = 0; i < 64; i++)
			CHECK(gsite(bp_target, i) == i * 3 + 5, "gsite(%d)", i);
		relpoline_epoch();
	}
	const void *promoted = t_site_dest(site, NULL);
	CHECK(promoted != learning, "gsite's site %p was not repatched (still -> %p)",
	      (const void *)site, learning);
	relpoline_epoch();
	struct relpoline_stats c = t_stats();
	long hits = bp_hits;
	printf("gsite's site %p: learning -> %p, promoted -> %p\n", (const void *)site, learning,
	       promoted);
	fflush(stdout);

	/* 3. The breakpoint: one call through the promoted site. */
	t_gdb_ready();
	long r = gsite(bp_target, 41);
	relpoline_epoch();
	struct relpoline_stats d = t_stats();
	CHECK(r == 41 * 3 + 5, "gsite(bp_target, 41) = %ld", r);
	CHECK(bp_hits == hits + 1, "bp_target ran %ld times, want 1", bp_hits - hits);
	CHECK(t_site_dest(site, NULL) == promoted, "gsite's site moved during the call");
	CHECK(d.misses == c.misses, "the call through the promoted site missed (%" PRIu64 " -> %"
	      PRIu64 ")", c.misses, d.misses);
	wl_check_thread_setting();
	return t_finish("t_gdb inner");
}

/* ---- the driver ---- */

static char out[1 << 20];

/* Run gdb with ARGS; its stdout+stderr into out[].  Returns the exit status. */
static int run_gdb(char *const args[], int timeout_s)
{
	int p[2];
	if (pipe(p) < 0)
		DIE("pipe");
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, 0);
		execvp(args[0], args);
		fprintf(stderr, "exec %s: %s\n", args[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	uint64_t deadline = wl_now_us() + (uint64_t)timeout_s * 1000000;
	int timed_out = 0;
	for (;;) {
		int left = (int)((deadline - wl_now_us()) / 1000);
		if (wl_now_us() >= deadline) {
			timed_out = 1;
			kill(-pid, SIGKILL);
			break;
		}
		struct pollfd pf = { .fd = p[0], .events = POLLIN };
		if (poll(&pf, 1, left) <= 0)
			continue;
		ssize_t k = read(p[0], out + n, sizeof out - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		if (n >= sizeof out - 1)
			break;
	}
	out[n] = 0;
	close(p[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	printf("---- gdb output ----\n%s---- end (%s) ----\n", out, timed_out ? "timed out" : "done");
	fflush(stdout);
	if (timed_out)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void first_line_with(const char *needle, char *buf, size_t len)
{
	const char *p = strstr(out, needle);
	buf[0] = 0;
	if (!p)
		return;
	while (p > out && p[-1] != '\n')
		p--;
	size_t k = strcspn(p, "\n");
	if (k >= len)
		k = len - 1;
	memcpy(buf, p, k);
	buf[k] = 0;
}

static void check_session(const char *what, int rc)
{
	char line[256];
	CHECK(rc != 127, "%s: gdb not found (scripts/install-deps.sh installs it)", what);
	CHECK(rc != -1, "%s: gdb did not finish within the time limit", what);
	first_line_with("received signal", line, sizeof line);
	CHECK(!line[0], "%s: the program stopped under gdb: %s", what, line);
	first_line_with("check failed", line, sizeof line);
	CHECK(!line[0], "%s: the program under gdb: %s", what, line);
	if (!strstr(out, "exited normally")) {
		first_line_with("exited with code", line, sizeof line);
		CHECK(0, "%s: no \"exited normally\" from gdb%s%s", what, line[0] ? ": " : "", line);
	}
}

int main(int argc, char **argv)
{
	t_default_env(argv, wl_busy_env);
	if (argc > 1 && strcmp(argv[1], "inner") == 0)
		return inner();
	char exe[4096];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (k <= 0)
		DIE("readlink /proc/self/exe");
	exe[k] = 0;

	char *run1[] = { "gdb", "-nx", "-batch", "-ex", "run", "--args", exe, "inner", NULL };
	int rc = run_gdb(run1, 90);
	check_session("gdb -ex run", rc);

	char *run2[] = { "gdb", "-nx", "-batch", "-ex", "break t_gdb_ready", "-ex", "run",
			 "-ex", "break bp_target", "-ex", "continue", "-ex", "continue",
			 "--args", exe, "inner", NULL };
	rc = run_gdb(run2, 90);
	check_session("gdb break bp_target", rc);
	CHECK(count(out, "Breakpoint 1, ") == 1 && strstr(out, "t_gdb_ready"),
	      "gdb break bp_target: did not stop once at t_gdb_ready");
	int n = count(out, "Breakpoint 2, ");
	CHECK(n == 1 && strstr(out, "bp_target ("),
	      "gdb break bp_target: %d stops at the breakpoint on bp_target, want 1", n);
	return t_finish("t_gdb");
}
