/*
 * perf's jitdump (RELPOLINE_JITDUMP=1): the runtime describes every cell
 * block, chain and tree it emits in $JITDUMPDIR/jit-PID.dump.
 *
 *   t_jitdump dump     a chain (site_a, 3 targets), then a tree (site_b,
 *                      24 targets), then fork: the child promotes a site of
 *                      its own (site_c).  Each process then leaves a
 *                      snapshot in $JITDUMPDIR for tests/jitdump_check.py:
 *                      snap-PID.info (pid, parent, stubs emitted, a
 *                      CLOCK_MONOTONIC time taken after the last record),
 *                      snap-PID.maps (its /proc/self/maps) and, per
 *                      executable arena view, snap-PID-LO.bin (the live
 *                      bytes).  The checker compares the dump with them.
 *   t_jitdump hot N    one site on a chain of 8 targets (RELPOLINE_STUB=chain)
 *                      called N times in a pseudo-random order, so that
 *                      most of the time goes to the chain's compares: run
 *                      under perf record by run.sh (perf report must name
 *                      relpoline_stub:...).
 */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

typedef long (*fn_t)(long);
#define T(n) NOINLINE long t##n(long x) { return x * 32 + n; }
T(0) T(1) T(2) T(3) T(4) T(5) T(6) T(7) T(8) T(9) T(10) T(11)
T(12) T(13) T(14) T(15) T(16) T(17) T(18) T(19) T(20) T(21) T(22) T(23)
static fn_t const tg[24] = { t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11,
			     t12, t13, t14, t15, t16, t17, t18, t19, t20, t21, t22, t23 };

NOINLINE long site_a(fn_t f, long x) { return f(x) + 1; }
NOINLINE long site_b(fn_t f, long x) { return f(x) + 2; }
NOINLINE long site_c(fn_t f, long x) { return f(x) + 3; }
NOINLINE long site_h(fn_t f, long x) { return f(x); }

/* N calls of SITE over its first K targets in turn; the number of wrong results. */
static long run(long (*site)(fn_t, long), long add, int k, int n)
{
	long wrong = 0;
	for (int i = 0; i < n; i++)
		wrong += site(tg[i % k], i) != i * 32L + i % k + add;
	return wrong;
}

static void set(const char *name, const char *value)
{
	int r = relpoline_config_set(name, value);
	CHECK(r == 0, "config_set(%s, %s) = %d", name, value, r);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "w");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0)
		DIE("cannot write %s", path);
}

/* The snapshot tests/jitdump_check.py compares this process's jitdump with. */
static void snapshot(const char *dir)
{
	struct relpoline_stats s = t_stats();
	uint64_t now = mono_ns();   /* after every record this process wrote */
	char path[512], line[512];
	int pid = (int)getpid();
	static char maps[1 << 20];
	size_t n = 0;
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		DIE("cannot read /proc/self/maps");
	n = fread(maps, 1, sizeof maps - 1, f);
	fclose(f);
	maps[n] = 0;
	snprintf(path, sizeof path, "%s/snap-%d.maps", dir, pid);
	write_file(path, maps, n);
	int arenas = 0;
	for (char *l = maps, *nl; l && *l; l = nl ? nl + 1 : NULL) {
		nl = strchr(l, '\n');
		snprintf(line, sizeof line, "%.*s", nl ? (int)(nl - l) : (int)strlen(l), l);
		unsigned long lo, hi;
		char perms[8];
		if (!strstr(line, "relpoline-arena") || sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 ||
		    perms[2] != 'x')
			continue;
		/* Up to the last page in use: the rest of the arena is zero. */
		const unsigned char *p = (const unsigned char *)lo;
		size_t len = hi - lo;
		static const unsigned char zero[4096];
		while (len > 4096 && !memcmp(p + len - 4096, zero, 4096))
			len -= 4096;
		snprintf(path, sizeof path, "%s/snap-%d-%lx.bin", dir, pid, lo);
		write_file(path, p, len);
		arenas++;
	}
	CHECK(arenas >= 1, "pid %d: no executable relpoline-arena mapping", pid);
	snprintf(path, sizeof path, "%s/snap-%d.info", dir, pid);
	n = (size_t)snprintf(line, sizeof line, "pid %d\nparent %d\nstubs_emitted %llu\nnow_ns %llu\n", pid,
			     (int)getppid(), (unsigned long long)s.stubs_emitted, (unsigned long long)now);
	write_file(path, line, n);
}

static int dump(const char *dir)
{
	set("stub", "chain");
	CHECK(run(site_a, 1, 3, 300) == 0, "site_a: wrong results");
	t_epoch();
	struct relpoline_stats s = t_stats();
	CHECK(s.sites_chain >= 1, "site_a is not on a chain (%llu chains)", (unsigned long long)s.sites_chain);
	set("stub", "tree");
	CHECK(run(site_b, 2, 24, 2400) == 0, "site_b: wrong results");
	t_epoch();
	s = t_stats();
	CHECK(s.sites_tree >= 1, "site_b is not on a tree (%llu trees)", (unsigned long long)s.sites_tree);
	CHECK(run(site_a, 1, 3, 300) == 0 && run(site_b, 2, 24, 2400) == 0, "wrong results once promoted");
	uint64_t before = s.stubs_emitted;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		set("stub", "chain");
		CHECK(run(site_c, 3, 4, 400) == 0, "child: site_c: wrong results");
		t_epoch();
		struct relpoline_stats c = t_stats();
		CHECK(c.stubs_emitted > before, "child: no new stub (%llu emitted, %llu at fork)",
		      (unsigned long long)c.stubs_emitted, (unsigned long long)before);
		CHECK(run(site_c, 3, 4, 400) == 0, "child: site_c: wrong results once promoted");
		snapshot(dir);
		fflush(NULL);
		_exit(t_fails ? 1 : 0);
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: status %#x", st);
	CHECK(t_stats().stubs_emitted == before, "the parent emitted stubs after the fork");
	snapshot(dir);
	return t_finish("t_jitdump dump");
}

static int hot(long n)
{
	set("stub", "chain");
	CHECK(run(site_h, 0, 8, 800) == 0, "site_h: wrong results");
	t_epoch();
	struct relpoline_stats s = t_stats();
	if (s.sites_chain < 1)
		DIE("site_h is not on a chain: nothing for perf to see in a stub");
	uint32_t x = 12345;
	long sum = 0;
	for (long i = 0; i < n; i++) {
		x = x * 1664525u + 1013904223u;
		sum += site_h(tg[x >> 29], i);
	}
	printf("hot: %ld calls, sum %ld\n", n, sum);
	return t_finish("t_jitdump hot");
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	const char *dir = getenv("JITDUMPDIR");
	char buf[16] = "";
	relpoline_config_get("jitdump", buf, sizeof buf);
	if (strcmp(buf, "on"))
		DIE("run with RELPOLINE_JITDUMP=1 (jitdump = \"%s\")", buf);
	if (argc > 2 && !strcmp(argv[1], "hot"))
		return hot(atol(argv[2]));
	if (!dir || !*dir)
		DIE("run with JITDUMPDIR set: the snapshot goes there");
	return dump(dir);
}
