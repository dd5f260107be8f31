/*
 * Out of memory: under an address-space limit (RLIMIT_AS, what `ulimit -v`
 * sets) relpoline never crashes, every call stays correct, and it says
 * what happened in at most one warning line per process, an accurate one:
 * "out of memory (ENOMEM) mapping N KiB of ...".  Where it is the stub
 * memory that cannot be mapped, the line is
 *   out of memory (ENOMEM) mapping N KiB of stub memory for MODULE: its
 *   sites stay on the fallback
 * and none of the module's sites is promoted.
 *
 * Which mapping fails first depends on how much room is left, and that
 * differs between builds (compiler, libc, sanitizers).  So the test does
 * not guess a limit: it sweeps them, one child process per limit, and
 * judges every child:
 *
 *   t_oom start DLPATH    children re-executed with RLIMIT_AS set before
 *                         exec (as under `ulimit -v`), from well below the
 *                         room the program needs up to enough for all of
 *                         it, 64 KiB apart: the main program's arena,
 *                         cells, the runtime's memory, the worker's stack
 *                         and the private stack each fail somewhere in it
 *   t_oom dlopen DLPATH   children that set RLIMIT_AS themselves (their
 *                         size plus 0..1 MiB) after their own sites are
 *                         promoted, then dlopen DLPATH and call its sites
 *   t_oom hot DLPATH      children that set RLIMIT_AS themselves (their
 *                         size plus 0..1 MiB) before any site is called:
 *                         the arena is there, the runtime's memory for
 *                         site records and stubs' bookkeeping is not (or
 *                         not even the recorder's per-thread table: then
 *                         nothing is learned, silently; see below)
 *
 * Both with RELPOLINE_THREAD=off and =on.  Every child that reached main
 * must exit 0 with correct results; none may be killed by a signal; none
 * may print more than one "relpoline: warning" line, nor one that is not
 * an out-of-memory line; at least one child per sweep must print the
 * stub-memory line for the module whose arena failed (the program, or
 * DLPATH) and promote none of that module's sites; the child with the
 * most room must print no warning and promote its sites.
 *
 * Children whose loader could not map libc (they never reach main) are not
 * judged: nothing of relpoline ran in them.
 *
 * Not covered by a warning: a thread whose sample table (record.c, about
 * 80 KiB, mapped by the thread itself on its first slow-path call) cannot
 * be mapped records nothing, and tries again every 4096 slow-path calls
 * (t_ttabfail); the recorder calls no libc and cannot say so.
 */
#include "common.h"
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

typedef long (*fn_t)(long);
NOINLINE long fa(long x) { return x + 1; }
NOINLINE long fb(long x) { return x + 2; }
NOINLINE long site_a(fn_t f, long x) { return f(x) * 7; }
NOINLINE long site_b(fn_t f, long x) { return f(x) * 11; }

#define MARK_MAIN "t_oom child: main\n"

/* Calls at both sites with two targets, N rounds; the wrong results. */
static long calls(int n)
{
	long wrong = 0;
	for (long i = 0; i < n; i++) {
		fn_t f = i & 1 ? fa : fb;
		long v = f(i);
		wrong += site_a(f, i) != v * 7;
		wrong += site_b(f, i) != v * 11;
	}
	return wrong;
}

static uint64_t promoted(void)
{
	struct relpoline_stats s;
	memset(&s, 0, sizeof s);
	s.size = sizeof s;
	return relpoline_stats_get(&s) == 0 ? s.sites_promoted : 0;
}

/* Write a line with one syscall, no stdio (whose buffer could need memory we do not have). */
static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* VmSize in KiB: what RLIMIT_AS is checked against. */
static long vm_kib(void)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	char *p = strstr(buf, "VmSize:");
	return p ? atol(p + 7) : -1;
}

/* ---------------- the children ---------------- */

/* Ten rounds of the main program's calls, each followed by an epoch: wrong results. */
static long warm_calls(void)
{
	long wrong = 0;
	for (int r = 0; r < 10; r++) {
		wrong += calls(200);
		relpoline_epoch();
	}
	return wrong;
}

/* Warm the main sites, call them once more, report: the exit status of a child. */
static int main_sites(void)
{
	long wrong = warm_calls();
	wrong += calls(200);
	say("t_oom child: promoted=%" PRIu64 " wrong=%ld\n", promoted(), wrong);
	return wrong ? 3 : 0;
}

static int child_start(void)
{
	say(MARK_MAIN);
	return main_sites();
}

/* RLIMIT_AS at this process's size plus SLACK_KIB; false if it cannot be set. */
static int limit_self(long slack_kib)
{
	long vm = vm_kib();
	struct rlimit rl = { (rlim_t)(vm + slack_kib) * 1024, RLIM_INFINITY };
	if (vm < 0 || setrlimit(RLIMIT_AS, &rl) != 0) {
		say("t_oom child: setrlimit: %s\n", strerror(errno));
		return 0;
	}
	return 1;
}

static int child_hot(long slack_kib)
{
	say(MARK_MAIN);
	if (!limit_self(slack_kib))
		return 4;
	return main_sites();
}

typedef long (*run_fn)(int, long);

static int child_dlopen(const char *dlpath, long slack_kib)
{
	say(MARK_MAIN);
	long wrong = warm_calls();
	uint64_t p0 = promoted();
	if (!limit_self(slack_kib))
		return 4;
	void *h = dlopen(dlpath, RTLD_NOW);
	if (!h) {
		/* The loader itself out of room: relpoline never saw the library. */
		say("t_oom child: dlopen failed\n");
		return 0;
	}
	run_fn dl_run = (run_fn)dlsym(h, "dl_run");
	if (!dl_run) {
		say("t_oom child: dlsym failed\n");
		return 4;
	}
	for (int r = 0; r < 10; r++) {
		for (int k = 0; k < 3; k++)
			wrong += dl_run(k, 100);
		wrong += calls(100);
		relpoline_epoch();
	}
	say("t_oom child: promoted=%" PRIu64 " before=%" PRIu64 " wrong=%ld dlopened\n", promoted(), p0,
	    wrong);
	return wrong ? 3 : 0;
}

/* ---------------- the sweeps ---------------- */

struct result {
	int reached_main, signal, status, warnings, oom_lines, stub_line, dlopened;
	long promoted, before;
	char first_warning[200];
};

/* Run this program as a child: MODE with ARG, RLIMIT_AS at LIMIT_KIB (0: none) before exec. */
static void run_child(char **argv, const char *mode, const char *arg, long limit_kib, const char *thread,
		      const char *module, struct result *res)
{
	memset(res, 0, sizeof *res);
	res->promoted = -1;
	int p[2];
	if (pipe(p) < 0)
		DIE("pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		DIE("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		setenv("RELPOLINE_THREAD", thread, 1);
		setenv("RELPOLINE_EPOCH_MS", "1", 1);
		setenv("RELPOLINE_PROMOTE_MIN", "16", 1);
		if (limit_kib) {
			struct rlimit rl = { (rlim_t)limit_kib * 1024, (rlim_t)limit_kib * 1024 };
			setrlimit(RLIMIT_AS, &rl);
		}
		char *args[] = { argv[0], (char *)mode, (char *)arg, NULL };
		execv("/proc/self/exe", args);
		_exit(127);
	}
	close(p[1]);
	char out[16384];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(p[0], out + len, sizeof out - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof out - 1)
			break;
	}
	out[len] = 0;
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(st))
		res->signal = WTERMSIG(st);
	else
		res->status = WEXITSTATUS(st);
	for (char *line = out, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (!strcmp(line, "t_oom child: main"))
			res->reached_main = 1;
		if (!strncmp(line, "relpoline: warning", 18)) {
			if (!res->warnings++)
				snprintf(res->first_warning, sizeof res->first_warning, "%s", line);
			if (strstr(line, "out of memory (ENOMEM) mapping ") && strstr(line, " KiB of "))
				res->oom_lines++;
			char want[300];
			snprintf(want, sizeof want, " KiB of stub memory for %s: its sites stay on the fallback",
				 module);
			if (strstr(line, want))
				res->stub_line = 1;
		}
		const char *pr = strstr(line, "t_oom child: promoted=");
		if (pr) {
			res->promoted = atol(pr + 22);
			const char *b = strstr(line, "before=");
			res->before = b ? atol(b + 7) : 0;
			res->dlopened = strstr(line, "dlopened") != NULL;
		}
	}
}

static int judge(const char *what, long limit, const struct result *r, int stub_sweep_dlopen)
{
	int bad = 0;
	if (r->signal) {
		CHECK(0, "%s %ld KiB: child killed by signal %d (%s)", what, limit, r->signal,
		      strsignal(r->signal));
		return 1;
	}
	if (!r->reached_main)
		return 0;
	if (r->status != 0) {
		CHECK(0, "%s %ld KiB: child exit %d (%s)", what, limit, r->status,
		      r->status == 3 ? "wrong results" : "failed");
		bad++;
	}
	if (r->warnings > 1) {
		CHECK(0, "%s %ld KiB: %d relpoline warning lines, want at most 1; first: %s", what, limit,
		      r->warnings, r->first_warning);
		bad++;
	}
	if (r->warnings && !r->oom_lines) {
		CHECK(0, "%s %ld KiB: a warning that does not say out of memory: %s", what, limit,
		      r->first_warning);
		bad++;
	}
	if (r->stub_line) {
		/*
		 * The module whose arena failed has no promoted site.  The program
		 * has 3 sites (site_a, site_b and the call in calls()); after a
		 * dlopen its call of dl_run is a 4th, which may be promoted (its
		 * target is within reach or not): the library's 3 are not.
		 */
		long lo = stub_sweep_dlopen ? r->before : 0, hi = stub_sweep_dlopen ? r->before + 1 : 0;
		if (r->promoted < lo || r->promoted > hi) {
			CHECK(0, "%s %ld KiB: stub memory failed, yet %ld sites promoted (want %ld..%ld)",
			      what, limit, r->promoted, lo, hi);
			bad++;
		}
	}
	return bad;
}

static int sweep_start(char **argv, const char *thread)
{
	/* Room the program needs with everything mapped: this process's size is a bound above. */
	long top = vm_kib() + 1024;
	long lo = top - 16 * 1024 < 1024 ? 1024 : top - 16 * 1024;
	int runs = 0, judged = 0, stub_lines = 0, oom_lines = 0, bad = 0;
	struct result r, best;
	memset(&best, 0, sizeof best);
	for (long lim = lo; lim <= top; lim += 64) {
		run_child(argv, "child-start", "-", lim, thread, "/proc/self/exe", &r);
		runs++;
		judged += r.reached_main;
		stub_lines += r.stub_line;
		oom_lines += r.oom_lines > 0;
		bad += judge("start", lim, &r, 0);
		if (lim + 64 > top)
			best = r;
	}
	printf("start sweep (thread %s): %d limits from %ld to %ld KiB, %d reached main, %d with an "
	       "out-of-memory line, %d of them for stub memory\n", thread, runs, lo, top, judged,
	       oom_lines, stub_lines);
	CHECK(stub_lines > 0, "start sweep (thread %s): no limit gave the stub memory warning", thread);
	CHECK(best.reached_main && best.warnings == 0 && best.promoted >= 3,
	      "start sweep (thread %s): with %ld KiB: %d warnings, %ld promoted; want 0 and 3", thread,
	      top, best.warnings, best.promoted);
	return bad;
}

static int sweep_dlopen(char **argv, const char *dlpath, const char *thread)
{
	int runs = 0, judged = 0, stub_lines = 0, dlopened = 0, bad = 0;
	struct result r;
	char arg[64];
	for (long slack = 0; slack <= 1024; slack += 32) {
		snprintf(arg, sizeof arg, "%ld", slack);
		run_child(argv, "child-dlopen", arg, 0, thread, dlpath, &r);
		runs++;
		judged += r.reached_main;
		stub_lines += r.stub_line;
		dlopened += r.dlopened;
		bad += judge("dlopen slack", slack, &r, 1);
	}
	printf("dlopen sweep (thread %s): %d slacks from 0 to 1024 KiB, %d reached main, %d dlopened, %d "
	       "with the stub memory line\n", thread, runs, judged, dlopened, stub_lines);
	CHECK(stub_lines > 0, "dlopen sweep (thread %s): no slack gave the stub memory warning for %s",
	      thread, dlpath);
	/* With the full slack the library gets its small arena (its sites need far less than 1 MiB). */
	run_child(argv, "child-dlopen", "16384", 0, thread, dlpath, &r);
	bad += judge("dlopen slack", 16384, &r, 1);
	CHECK(r.warnings == 0 && r.promoted >= r.before + 3, "dlopen with 16 MiB to spare (thread %s): "
	      "%d warnings, promoted %ld -> %ld, want the library's 3 sites more", thread, r.warnings,
	      r.before, r.promoted);
	return bad;
}

static int sweep_hot(char **argv, const char *thread)
{
	int runs = 0, judged = 0, oom_lines = 0, bad = 0;
	struct result r;
	char arg[64];
	for (long slack = 0; slack <= 1024; slack += 32) {
		snprintf(arg, sizeof arg, "%ld", slack);
		run_child(argv, "child-hot", arg, 0, thread, "/proc/self/exe", &r);
		runs++;
		judged += r.reached_main;
		oom_lines += r.oom_lines > 0;
		bad += judge("hot slack", slack, &r, 0);
	}
	printf("hot sweep (thread %s): %d slacks from 0 to 1024 KiB, %d reached main, %d with an "
	       "out-of-memory line\n", thread, runs, judged, oom_lines);
	run_child(argv, "child-hot", "16384", 0, thread, "/proc/self/exe", &r);
	bad += judge("hot slack", 16384, &r, 0);
	CHECK(r.warnings == 0 && r.promoted >= 3, "hot calls with 16 MiB to spare (thread %s): %d "
	      "warnings, %ld promoted, want 0 and 3", thread, r.warnings, r.promoted);
	return bad;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "child-start"))
		return child_start();
	if (argc > 2 && !strcmp(argv[1], "child-hot"))
		return child_hot(atol(argv[2]));
	if (argc > 2 && !strcmp(argv[1], "child-dlopen")) {
		const char *dl = getenv("T_OOM_DLPATH");
		return child_dlopen(dl ? dl : "./tdl.so", atol(argv[2]));
	}
	if (argc < 3)
		DIE("usage: t_oom start|hot|dlopen DLPATH");
	char dlpath[512];
	if (!realpath(argv[2], dlpath))
		DIE("%s: %s", argv[2], strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	setenv("T_OOM_DLPATH", dlpath, 1);
	static const char *const threads[] = { "off", "on" };
	for (int t = 0; t < 2; t++) {
		if (!strcmp(argv[1], "start"))
			sweep_start(argv, threads[t]);
		else if (!strcmp(argv[1], "hot"))
			sweep_hot(argv, threads[t]);
		else if (!strcmp(argv[1], "dlopen"))
			sweep_dlopen(argv, dlpath, threads[t]);
		else
			DIE("usage: t_oom start|hot|dlopen DLPATH");
	}
	return t_finish("t_oom");
}
