/*
 * The per-site view: RELPOLINE_STATS=sites, the JSON "sites" array,
 * relpoline-stubs on a live process, and sites that have used all their
 * stub versions.  Run with RELPOLINE_EPOCH_MS=0 RELPOLINE_PROMOTE_MIN=16
 * RELPOLINE_MAX_TARGETS=16 RELPOLINE_MIN_COVERAGE=90 (and more, per mode,
 * from run.sh).
 *
 *   report   known sites with known sample counts, decided by one epoch:
 *            site_two (call, fa 60% fb 40%, 500 samples, then 30 misses on fc),
 *            site_wide (call, 20 targets in turn, 400: pinned for coverage,
 *            as MAX_TARGETS=16 MIN_COVERAGE=90 leave 80% at best),
 *            site_tail (jmp, fc, 300), site_jcc (jcc, fd, 200), the three
 *            sites of libtsites.so (70 each, target t0), site_cold (fa,
 *            20) and site_libc (libc's labs, 18: out of reach of any stub,
 *            so pinned, and named from libc's .dynsym through
 *            /proc/self/maps).  The program only makes the calls; tests/check_sites.py
 *            reads the table or the JSON the runtime writes at exit.
 *   cap      site_cap is driven into RELPOLINE_MAX_VERSIONS=2 (one target,
 *            then another), then its mix keeps drifting over 40 targets
 *            for many epochs (PIN_EPOCHS=3): it must never be relearned
 *            (its cell never back on its learning entry, no new stub, no
 *            relearn counted), not even after relpoline_relearn() and
 *            pin_epochs on the fallback; every call stays right.
 *   stubs    site_two on a chain behind its cell, site_drift promoted to
 *            fa and then moved to a stub for fb (its first stub retired),
 *            the library's sites promoted; then relpoline-stubs (path in
 *            RP_STUBS_TOOL) runs on this process, and its listing must mark
 *            the live and retired stubs and name sites and targets.
 */
#include "common.h"
#include "sites.h"
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/wait.h>

long lib_run(int which, long n);

typedef long (*fn_t)(long);
NOINLINE long fa(long x) { return x + 1; }
NOINLINE long fb(long x) { return x + 2; }
NOINLINE long fc(long x) { return x + 3; }
NOINLINE long fd(long x) { return x + 4; }

#define T(n) NOINLINE long tg_##n(long x) { return x * 100 + n; }
#define T10(a) T(a##0) T(a##1) T(a##2) T(a##3) T(a##4) T(a##5) T(a##6) T(a##7) T(a##8) T(a##9)
T10(1) T10(2) T10(3) T10(4) T10(5) T10(6) T10(7) T10(8)
#define R10(a) tg_##a##0, tg_##a##1, tg_##a##2, tg_##a##3, tg_##a##4, tg_##a##5, tg_##a##6, \
	tg_##a##7, tg_##a##8, tg_##a##9
static fn_t const tg[80] = { R10(1), R10(2), R10(3), R10(4), R10(5), R10(6), R10(7), R10(8) };
static long tg_want(int i, long x) { return x * 100 + (i / 10 + 1) * 10 + i % 10; }

/* The volatile K keeps the bodies apart (compilers fold identical functions). */
#define SITE(name, K) NOINLINE long name(fn_t f, long x) \
	{ volatile long k = K; return f(x) * 2 + (k - K); }
SITE(site_two, 1) SITE(site_wide, 2) SITE(site_cold, 3) SITE(site_cap, 4) SITE(site_drift, 5)
SITE(site_libc, 6)
NOINLINE long site_tail(fn_t f, long x) { return f(x + 1); }

/* A conditional tail jump to the thunk: compilers do not emit one on demand, so it is written here. */
long site_jcc(long x, fn_t f);
__asm__(".text\n"
	".globl site_jcc\n"
	".type site_jcc, @function\n"
	"site_jcc:\n"
	"	movq %rsi, %rax\n"
	"	testq %rsi, %rsi\n"
	"	jne __x86_indirect_thunk_rax\n"
	"	xorl %eax, %eax\n"
	"	ret\n"
	".size site_jcc, .-site_jcc\n");

/* N calls through site_two, 3 in 5 to F, the others to G, which add DF and DG (no indirect call here). */
static void two(int n, fn_t f, long df, fn_t g, long dg)
{
	for (int i = 0; i < n; i++)
		CHECK(site_two(i % 5 < 3 ? f : g, i) == (i + (i % 5 < 3 ? df : dg)) * 2, "site_two");
}

static void report(void)
{
	two(500, fa, 1, fb, 2);
	for (int r = 0; r < 20; r++)
		for (int i = 0; i < 20; i++)
			CHECK(site_wide(tg[i], r) == tg_want(i, r) * 2, "site_wide %d", i);
	for (int i = 0; i < 300; i++)
		CHECK(site_tail(fc, i) == i + 4, "site_tail");
	for (int i = 0; i < 200; i++)
		CHECK(site_jcc(i, fd) == i + 4, "site_jcc");
	CHECK(lib_run(0, 70) == 0, "lib_run");
	for (int i = 0; i < 20; i++)
		CHECK(site_cold(fa, i) == 2 * (i + 1), "site_cold");
	for (int i = 0; i < 18; i++)
		CHECK(site_libc(labs, -i) == 2 * i, "site_libc");
	t_epoch();
	struct relpoline_stats s = t_stats();
	t_print_stats("report", &s);
	CHECK(s.sites_promoted >= 7, "sites_promoted %" PRIu64 " want >= 7", s.sites_promoted);
	CHECK(s.sites_pinned >= 1, "sites_pinned %" PRIu64 " want >= 1 (site_wide)", s.sites_pinned);
	two(30, fc, 3, fc, 3);   /* 30 misses */
	t_epoch();
}

/*
 * Before the epoch that promotes a site which is to miss next: policy.c
 * judges misses by rate against the rate its stub's targets had while it
 * learned, so a long learning window (a low rate) makes the misses that
 * follow count however slowly a loaded machine runs them.
 */
static void long_window(void)
{
	usleep(100000);
}

/* Where site_cap's cell sends it now, and whether that is its learning entry. */
static const void *cap_dest(const struct ts_site *ts, bool *learning)
{
	const unsigned char *cell;
	const unsigned char *d = ts_dest(ts->addr, &cell);
	CHECK(cell != NULL, "site_cap has no cell");
	*learning = cell && d == cell + 32;
	return d;
}

static void cap(void)
{
	struct ts_site ts = ts_one_site((const void *)site_cap, "site_cap");
	if (!ts.addr)
		return;
	struct relpoline_stats s0 = t_stats();
	for (int i = 0; i < 40; i++)
		CHECK(site_cap(tg[0], i) == tg_want(0, i) * 2, "site_cap v1");
	long_window();
	t_epoch();
	for (int i = 0; i < 300; i++)   /* RELEARN_MISSES=100: a window of misses on tg1 */
		CHECK(site_cap(tg[1], i) == tg_want(1, i) * 2, "site_cap v2");
	long_window();   /* and the second stub's targets a low rate: the drift below outruns it */
	t_epoch();
	struct relpoline_stats s1 = t_stats();
	CHECK(s1.stubs_emitted == s0.stubs_emitted + 2, "site_cap: %" PRIu64 " stubs, want 2 before "
	      "the cap", s1.stubs_emitted - s0.stubs_emitted);
	bool learning;
	cap_dest(&ts, &learning);
	CHECK(!learning, "site_cap learning after its second stub");
	/*
	 * Now capped.  A mix drifting over 40 targets, far more misses than
	 * RELEARN_MISSES per epoch, for more epochs than PIN_EPOCHS.
	 */
	for (int e = 0; e < 30; e++) {
		for (int r = 0; r < 8; r++)
			for (int i = 0; i < 40; i++) {
				int t = 2 + (e + i) % 78;
				CHECK(site_cap(tg[t], r) == tg_want(t, r) * 2, "site_cap drift %d", t);
			}
		t_epoch();
		cap_dest(&ts, &learning);
		CHECK(!learning, "epoch %d of the drift: site_cap is learning again although its stub "
		      "versions are exhausted", e);
	}
	struct relpoline_stats s2 = t_stats();
	CHECK(s2.stubs_emitted == s1.stubs_emitted, "site_cap: %" PRIu64 " stubs after the cap",
	      s2.stubs_emitted - s1.stubs_emitted);
	CHECK(s2.relearns == s1.relearns, "site_cap: %" PRIu64 " relearns after the cap",
	      s2.relearns - s1.relearns);
	/*
	 * relpoline_relearn() sends every site back to learning once; a
	 * capped one is then decided for good at its next decision (the
	 * fallback: no stub can be made), and stays there however many
	 * pin_epochs pass.
	 */
	CHECK(relpoline_relearn() == 0, "relearn");
	for (int i = 0; i < 40; i++)
		CHECK(site_cap(tg[0], i) == tg_want(0, i) * 2, "site_cap relearn");
	t_epoch();
	const void *pinned = cap_dest(&ts, &learning);
	CHECK(!learning, "site_cap still learning after relearn and an epoch");
	CHECK(!ts_in_arena(pinned), "site_cap on a stub after relearn, with its versions exhausted");
	for (int e = 0; e < 12; e++) {
		for (int i = 0; i < 40; i++)
			CHECK(site_cap(tg[e], i) == tg_want(e, i) * 2, "site_cap pinned");
		t_epoch();
		const void *d = cap_dest(&ts, &learning);
		CHECK(d == pinned && !learning, "epoch %d after relearn: site_cap moved (learning: %d)", e,
		      learning);
	}
	struct relpoline_stats s3 = t_stats();
	CHECK(s3.stubs_emitted == s2.stubs_emitted, "site_cap: new stubs after relearn");
	t_print_stats("cap", &s3);
}

/* Run relpoline-stubs on this process; its output into BUF. */
static int run_tool(const char *tool, const char *arg, char *buf, size_t len)
{
	int p[2];
	if (pipe(p) < 0)
		DIE("pipe");
	pid_t pid = fork();
	if (pid < 0)
		DIE("fork");
	if (!pid) {
		char me[32];
		snprintf(me, sizeof me, "%d", (int)getppid());
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(tool, tool, me, arg, (char *)NULL);
		_exit(127);
	}
	/* Where Yama restricts ptrace to descendants, the tool (our child) may still read us. */
	prctl(PR_SET_PTRACER, pid, 0, 0, 0);
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < len && (r = read(p[0], buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/*
 * How many stubs of relpoline-stubs' listing OUT are for a site in function
 * FN, marked STATE, with TEXT (if not NULL) in their block: the stub's
 * line and the indented lines under it (cell, targets, disassembly).
 */
static int count_stubs(const char *out, const char *fn, const char *state, const char *text)
{
	char key[64];
	snprintf(key, sizeof key, " %s+0x", fn);
	int n = 0;
	for (const char *l = out; *l;) {
		const char *e = strchr(l, '\n');
		const char *next = e ? e + 1 : l + strlen(l);
		if (strncmp(l, "  chain ", 8) && strncmp(l, "  tree ", 7)) {
			l = next;
			continue;
		}
		const char *end = next;
		while (!strncmp(end, "    ", 4)) {
			const char *ee = strchr(end, '\n');
			end = ee ? ee + 1 : end + strlen(end);
		}
		size_t head = (size_t)(next - l), len = (size_t)(end - l);
		char *block = strndup(l, len), *line = strndup(l, head);
		if (block && line && strstr(line, key) && strstr(line, state) && (!text || strstr(block, text)))
			n++;
		free(block);
		free(line);
		l = end;
	}
	return n;
}

static void stubs(void)
{
	const char *tool = getenv("RP_STUBS_TOOL");
	if (!tool)
		DIE("RP_STUBS_TOOL is not set (run.sh sets it to build/bin/relpoline-stubs)");
	two(100, fa, 1, fb, 2);
	for (int i = 0; i < 40; i++)
		CHECK(site_drift(fa, i) == 2 * (i + 1), "site_drift fa");
	CHECK(lib_run(1, 40) == 0, "lib_run");
	long_window();
	t_epoch();
	for (int i = 0; i < 300; i++)   /* a window of misses: a second stub, for fb */
		CHECK(site_drift(fb, i) == 2 * (i + 2), "site_drift fb");
	t_epoch();
	struct relpoline_stats s = t_stats();
	t_print_stats("stubs", &s);
	static char out[1 << 20];
	int rc = run_tool(tool, "", out, sizeof out);
	fputs(out, stdout);
	CHECK(rc == 0, "relpoline-stubs exit %d", rc);
	CHECK(count_stubs(out, "site_two", " live:", "1 target: fb (t_sites)") == 1,
	      "no live stub of site_two comparing fb");
	CHECK(strstr(out, "the cell compares fa (t_sites)") != NULL, "no cell comparing fa");
	CHECK(count_stubs(out, "site_drift", " retired:", NULL) == 1, "site_drift: want one retired stub");
	CHECK(count_stubs(out, "site_drift", " live:", "1 target: fb (t_sites)") == 1,
	      "site_drift: want one live stub comparing fb");
	CHECK(count_stubs(out, "site_a", " live:", "(libtsites.so)") >= 1, "no live stub of libtsites.so's "
	      "site_a named");
	int arenas = -1, n = -1, live = -1, retired = -1, bad = -1;
	const char *sum = strstr(out, " arenas, ");
	while (sum && sum > out && sum[-1] != '\n')
		sum--;
	CHECK(sum && sscanf(sum, "%d arenas, %d stubs (%d live, %d retired), %d malformed", &arenas, &n, &live,
			    &retired, &bad) == 5, "no summary line");
	CHECK(arenas >= 2 && bad == 0 && live + retired == n, "summary: %d arenas, %d stubs, %d live, "
	      "%d retired, %d malformed", arenas, n, live, retired, bad);
	/* Live: every promoted site's current stub, nothing else. */
	CHECK(live == (int)s.sites_promoted, "%d live stubs, %" PRIu64 " sites promoted", live,
	      s.sites_promoted);
	CHECK(retired >= 1 && n == (int)s.stubs_emitted, "%d retired of %d stubs, %" PRIu64 " emitted",
	      retired, n, s.stubs_emitted);
	rc = run_tool(tool, "--check", out, sizeof out);
	CHECK(rc == 0, "relpoline-stubs --check exit %d:\n%s", rc, out);
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	const char *mode = argc > 1 ? argv[1] : "report";
	if (!strcmp(mode, "report"))
		report();
	else if (!strcmp(mode, "cap"))
		cap();
	else if (!strcmp(mode, "stubs"))
		stubs();
	else
		DIE("unknown mode %s", mode);
	return t_finish("t_sites");
}
