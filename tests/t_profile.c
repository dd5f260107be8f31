/*
 * Saved profiles (RELPOLINE_PROFILE, src/runtime/profile.c).  The program
 * drives itself: run.sh runs a parent (profiles off), which starts children
 * of this binary (or of another build of it) with RELPOLINE_PROFILE set to
 * a fresh directory, reads their stdout (stats lines) and stderr (warnings),
 * and reads the files with the tests' own reader of the format
 * (profile_fmt.h).
 *
 *   t_profile warm [DL]    a recording run, then a warm run: every site is
 *                          promoted before main's first indirect call, no
 *                          call reaches the slow path, no warning; a run
 *                          whose calls then miss relearns (and counts it)
 *   t_profile merge        two runs over different sites: the file holds both
 *   t_profile corrupt DL   random bytes, truncated, bad checksum, another
 *                          module's id, another version, reserved bits,
 *                          targets outside any object, offsets that are not
 *                          sites, and two bad files in one process: each at
 *                          most one warning, every call right, and the file
 *                          valid again after the run
 *   t_profile other B HEX  B is this program linked with build-id HEX: it
 *                          ignores this build's profile; given this build's
 *                          file under its own name, it rejects it
 *   t_profile writers      20 processes save into one directory at once, each
 *                          2 of the 8 sites: one valid file with all 8 (no
 *                          writer's sites lost), its lock file, nothing else
 *   t_profile held DL      the profile's lock held by another process: a save
 *                          at exit waits its bound once, then writes without
 *                          it; a periodic save waits for the lock's release
 *   t_profile periodic     a process that never exits saves from its epochs
 *   t_profile auto         RELPOLINE_PROFILE=auto: the per-user cache directory
 *   t_profile lazy DL      a warm start makes no site records (registry.c
 *                          makes one when needed): its sites are on stubs
 *                          of their own, a fork child's calls still hit
 *                          them, disable puts every site back on its thunk
 *                          and counts none promoted, enable learns again,
 *                          a miss gives the site a record that knows its
 *                          stub, and the per-site report lists them all
 *   t_profile depart A B   library B's site calls into library A; warm, B's
 *                          site has no record when A is dlclosed: it must
 *                          still go back to learning (its targets are gone)
 * DL: a relpoline-built library (tests/lib_sites.c -DDL_LIB) that the
 * children dlopen, so a process has two modules with profiles.
 */
#include "common.h"
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dlfcn.h>
#include <signal.h>
#include <spawn.h>
#include <time.h>
#include "profile_fmt.h"
#include "sites.h"

extern char **environ;

/* ---- the workload: 8 call sites, 6 targets ---- */
typedef long (*fn_t)(long);
#define TARGET(i) NOINLINE long f##i(long x) { return x * (i + 2) + i + 1; }
TARGET(0) TARGET(1) TARGET(2) TARGET(3) TARGET(4) TARGET(5)
static fn_t volatile fns[6] = { f0, f1, f2, f3, f4, f5 };
#define SITE(n) NOINLINE long site##n(fn_t f, long x) { return f(x) + n; }
SITE(1) SITE(2) SITE(3) SITE(4) SITE(5) SITE(6) SITE(7) SITE(8)

static long call_site(int s, fn_t f, long x)
{
	switch (s) {
	case 0: return site1(f, x);
	case 1: return site2(f, x);
	case 2: return site3(f, x);
	case 3: return site4(f, x);
	case 4: return site5(f, x);
	case 5: return site6(f, x);
	case 6: return site7(f, x);
	default: return site8(f, x);
	}
}

/* Site s's target in round r: sites 0-3 one each, 4-5 two, 6-7 three. */
static int target_of(int s, long r)
{
	if (s < 4)
		return s;
	if (s < 6)
		return 1 + (int)(r % 2);
	return 3 + (int)(r % 3);
}

/* REPS rounds over the sites in MASK; the number of wrong results. */
static long work(long reps, unsigned mask)
{
	long wrong = 0;
	for (long r = 0; r < reps; r++)
		for (int s = 0; s < 8; s++) {
			if (!(mask >> s & 1))
				continue;
			int t = target_of(s, r);
			if (call_site(s, fns[t], r) != r * (t + 2) + t + 1 + s + 1)
				wrong++;
		}
	return wrong;
}

/* ---- children ---- */

static long (*const site_fn[8])(fn_t, long) = { site1, site2, site3, site4, site5, site6, site7, site8 };

/* How many of the 8 sites' cells go to a stub of that site (chain, tree or the miss path alone). */
static int sites_on_stubs(const char *phase, int want_thunks)
{
	int on = 0;
	for (int k = 0; k < 8; k++) {
		struct ts_site t = ts_one_site((const void *)site_fn[k], "site function");
		if (!t.addr)
			DIE("site%d: no thunk site found", k + 1);
		const void *d = t_site_dest(t.addr, NULL);
		on += ts_is_stub_for(d, t.addr);
		if (want_thunks)
			CHECK(d == ts_thunks[t.reg], "%s: site%d goes to %p, not its thunk", phase, k + 1, d);
	}
	return on;
}

/* The checks of `t_profile lazy`, in a warm process (see the top). */
static long lazy_checks(void)
{
	long wrong = 0;
	struct relpoline_stats a = t_stats();
	CHECK(a.profile_sites >= 8 && a.sites_promoted >= a.profile_sites,
	      "start: %" PRIu64 " sites from the profile, %" PRIu64 " promoted", a.profile_sites,
	      a.sites_promoted);
	CHECK(sites_on_stubs("start", 0) == 8, "start: not every site is on a stub of its own");
	wrong += work(64, 0xff);
	t_epoch();
	struct relpoline_stats b = t_stats();
	CHECK(b.records - a.records < 16, "warm: %" PRIu64 " slow-path samples", b.records - a.records);

	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		/* The child rewrote its copy of every cell: a warm site's from its entry. */
		long w = work(64, 0xff);
		t_epoch();
		struct relpoline_stats c = t_stats();
		int on = sites_on_stubs("fork child", 0);
		if (w || c.records - b.records >= 16 || on != 8 || c.sites_promoted < 8) {
			fprintf(stderr, "fork child: %ld wrong, %" PRIu64 " slow-path samples, %d sites on stubs, "
				"%" PRIu64 " promoted\n", w, c.records - b.records, on, c.sites_promoted);
			_exit(1);
		}
		_exit(0);
	}
	int st;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the fork child failed (status %#x)", st);

	CHECK(relpoline_disable() == 0, "relpoline_disable");
	struct relpoline_stats d = t_stats();
	CHECK(d.sites_promoted == 0, "disabled: %" PRIu64 " sites still counted promoted", d.sites_promoted);
	sites_on_stubs("disabled", 1);
	wrong += work(16, 0xff);
	CHECK(relpoline_enable() == 0, "relpoline_enable");
	wrong += work(64, 0xff);
	t_epoch();
	wrong += work(16, 0xff);
	t_epoch();
	struct relpoline_stats e = t_stats();
	CHECK(e.sites_promoted >= 8 && sites_on_stubs("enabled again", 0) == 8,
	      "enabled again: %" PRIu64 " promoted", e.sites_promoted);
	return wrong;
}

static void print_stats(const char *tag)
{
	struct relpoline_stats s = t_stats();
	printf("%s promoted=%" PRIu64 " psites=%" PRIu64 " read=%" PRIu64 " rejected=%" PRIu64
	       " written=%" PRIu64 " relearned=%" PRIu64 " records=%" PRIu64 "\n",
	       tag, s.sites_promoted, s.profile_sites, s.profile_read, s.profile_rejected,
	       s.profile_written, s.profile_relearned, s.records);
	fflush(stdout);
}

/* The library's calls (DL_LIB build of lib_sites.c); the number of wrong results. */
static long dl_work(void)
{
	const char *dl = getenv("T_DL");
	if (!dl || !*dl)
		return 0;
	void *h = dlopen(dl, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		DIE("dlopen %s: %s", dl, dlerror());
	long (*run)(int, long) = (long (*)(int, long))dlsym(h, "dl_run");
	if (!run)
		DIE("dlsym dl_run");
	return run(1, 40);
}

/*
 * Library T_DL2's call_ext site calls T_DL's inc; then T_DL is dlclosed
 * (with CHECK: a warm run, where that site must relearn as T_DL leaves).
 */
static long depart_work(int check)
{
	void *a = dlopen(getenv("T_DL"), RTLD_NOW | RTLD_LOCAL);
	void *b = a ? dlopen(getenv("T_DL2"), RTLD_NOW | RTLD_LOCAL) : NULL;
	if (!a || !b)
		DIE("dlopen: %s", dlerror());
	fn_t inc_a = (fn_t)dlsym(a, "dl_inc"), inc_b = (fn_t)dlsym(b, "dl_inc");
	long (*ext)(fn_t, long) = (long (*)(fn_t, long))dlsym(b, "dl_call_ext");
	if (!inc_a || !inc_b || !ext)
		DIE("dlsym");
	long wrong = 0;
	struct relpoline_stats s0 = t_stats();
	for (int round = 0; round < 3; round++) {
		for (long r = 0; r < 4000; r++)
			wrong += ext(inc_a, r) != r + 8;
		t_epoch();
	}
	struct relpoline_stats s1 = t_stats();
	/* (main's own call of ext is a far target: it stays on the slow path, so records are no measure) */
	if (check)
		CHECK(s1.misses == s0.misses && s1.profile_sites >= 1,
		      "warm: %" PRIu64 " stub misses, %" PRIu64 " sites from profiles",
		      s1.misses - s0.misses, s1.profile_sites);
	dlclose(a);
	struct relpoline_stats s2 = t_stats();
	if (check)
		CHECK(s2.profile_relearned == s1.profile_relearned + 1,
		      "T_DL unloaded: %" PRIu64 " warm sites relearned, want 1 (the call into it)",
		      s2.profile_relearned - s1.profile_relearned);
	for (long r = 0; r < 4000; r++)
		wrong += ext(inc_b, r) != r + 8;
	dlclose(b);
	return wrong;
}

static int child(const char *mode)
{
	if (!strncmp(mode, "depart", 6)) {
		CHECK(depart_work(!strcmp(mode, "depart-check")) == 0, "wrong results");
		return t_finish(mode);
	}
	unsigned mask = (unsigned)t_env_u64("T_MASK", 0xff);
	long wrong = 0;
	if (!strcmp(mode, "check")) {
		t_only_std_fds("after the profile was read");
		print_stats("START");   /* before the first indirect call of main */
	}
	if (!strcmp(mode, "lazy"))
		wrong += lazy_checks();
	t_epoch();
	wrong += work(64, mask);
	wrong += dl_work();
	t_epoch();
	wrong += work(16, mask);
	t_epoch();
	print_stats("END");
	if (getenv("T_MISS")) {
		/* Site 5 learned targets 1 and 2; now it calls only 0: a window of misses. */
		for (long r = 0; r < 200000; r++)
			wrong += call_site(4, f0, r) != r * 2 + 1 + 5;
		t_epoch();
		print_stats("MISS");
	}
	CHECK(wrong == 0, "%ld wrong results", wrong);
	if (!strcmp(mode, "periodic")) {
		/* Never exits normally: the file must come from an epoch. */
		const char *dir = getenv("RELPOLINE_PROFILE");
		for (int i = 0; i < 600; i++) {
			t_epoch();
			DIR *d = opendir(dir);
			struct dirent *e;
			int found = 0;
			while (d && (e = readdir(d)))
				found |= strstr(e->d_name, ".rprof") && e->d_name[0] != '.';
			if (d)
				closedir(d);
			if (found) {
				printf("periodic: saved after %d epochs\n", i + 1);
				fflush(stdout);
				_exit(t_fails ? 1 : 0);
			}
			usleep(50000);
		}
		DIE("no profile saved by the epochs in 30 s");
	}
	const char *gate = getenv("T_GATE");
	if (gate) {
		/* Ready; exit (and save) only once the parent opens the gate, with the other writers. */
		printf("READY\n");
		fflush(stdout);
		for (int i = 0; i < 20000 && access(gate, F_OK); i++)
			usleep(500);
	}
	return t_finish(mode);
}

/* ---- the parent ---- */

static char base[512], pdir[600];
static int nrun;

struct result {
	int status;
	int warnings;
	char err[4096];
	long start[7], end[7], miss[7];   /* promoted psites read rejected written relearned records */
	int has_start, has_end, has_miss;
};

static void parse_line(const char *l, const char *tag, long *v, int *has)
{
	size_t n = strlen(tag);
	if (strncmp(l, tag, n) || l[n] != ' ')
		return;
	*has = sscanf(l + n, " promoted=%ld psites=%ld read=%ld rejected=%ld written=%ld relearned=%ld records=%ld",
		      &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) == 7;
}

/*
 * Start BIN as a child in MODE with the profile directory and EXTRA
 * (NAME=VALUE strings, NULL-terminated); returns its pid.  Its output goes
 * to base/run-N.out and .err.
 */
static pid_t start(const char *bin, const char *mode, const char *const *extra, int *id)
{
	char *envp[256];
	int n = 0;
	/* EXTRA's variables replace inherited ones of the same name. */
	for (char **e = environ; *e && n < 200; e++) {
		int replaced = 0;
		for (const char *const *x = extra; x && *x && !replaced; x++) {
			const char *eq = strchr(*x, '=');
			replaced = eq && !strncmp(*e, *x, (size_t)(eq - *x + 1));
		}
		if (strncmp(*e, "RELPOLINE_", 10) && strncmp(*e, "T_", 2) && !replaced)
			envp[n++] = *e;
	}
	static char penv[700];
	snprintf(penv, sizeof penv, "RELPOLINE_PROFILE=%s", pdir);
	int own = 1;
	for (const char *const *x = extra; x && *x; x++)
		own &= strncmp(*x, "RELPOLINE_PROFILE=", 18) != 0;
	if (own)
		envp[n++] = penv;
	envp[n++] = "RELPOLINE_EPOCH_MS=0";
	envp[n++] = "RELPOLINE_PROMOTE_MIN=16";
	envp[n++] = "RELPOLINE_RELEARN_MISSES=100";
	for (; extra && *extra && n < 250; extra++)
		envp[n++] = (char *)*extra;
	envp[n] = NULL;
	*id = nrun++;
	char out[700], err[700];
	snprintf(out, sizeof out, "%s/run-%d.out", base, *id);
	snprintf(err, sizeof err, "%s/run-%d.err", base, *id);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	char *argv[] = { (char *)bin, "child", (char *)mode, NULL };
	pid_t pid;
	if (posix_spawn(&pid, bin, &fa, NULL, argv, envp))
		DIE("posix_spawn %s", bin);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

/* Child ID's output into R (its status set already). */
static void read_output(int id, struct result *r)
{
	char path[700], line[1024];
	snprintf(path, sizeof path, "%s/run-%d.out", base, id);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f)) {
		parse_line(line, "START", r->start, &r->has_start);
		parse_line(line, "END", r->end, &r->has_end);
		parse_line(line, "MISS", r->miss, &r->has_miss);
	}
	if (f)
		fclose(f);
	snprintf(path, sizeof path, "%s/run-%d.err", base, id);
	f = fopen(path, "r");
	size_t n = 0;
	while (f && fgets(line, sizeof line, f)) {
		if (!strncmp(line, "relpoline: warning", 18))
			r->warnings++;
		size_t l = strlen(line);
		if (n + l < sizeof(r->err)) {
			memcpy(r->err + n, line, l);
			n += l;
		}
	}
	r->err[n] = 0;
	if (f)
		fclose(f);
}

static void collect(pid_t pid, int id, struct result *r)
{
	memset(r, 0, sizeof(*r));
	if (waitpid(pid, &r->status, 0) != pid)
		DIE("waitpid");
	read_output(id, r);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Collect PID as collect does, but kill it if it has not exited LIMIT
 * seconds after T0 (now_s() at its start).  Returns its run time in
 * seconds, or -1 if it had to be killed.
 */
static double collect_within(pid_t pid, int id, double t0, double limit, struct result *r)
{
	memset(r, 0, sizeof(*r));
	double t;
	pid_t w;
	while ((w = waitpid(pid, &r->status, WNOHANG)) == 0 && (t = now_s() - t0) < limit)
		usleep(2000);
	t = now_s() - t0;
	if (w == 0) {
		kill(pid, SIGKILL);
		if (waitpid(pid, &r->status, 0) != pid)
			DIE("waitpid");
		read_output(id, r);
		return -1;
	}
	if (w != pid)
		DIE("waitpid");
	read_output(id, r);
	return t;
}

/*
 * The lines of child ID's stderr that contain S followed by a number: how
 * many, and *SUM the sum of those numbers.
 */
static int err_count(int id, const char *s, long *sum)
{
	char path[700], line[2048];
	snprintf(path, sizeof path, "%s/run-%d.err", base, id);
	FILE *f = fopen(path, "r");
	int n = 0;
	*sum = 0;
	while (f && fgets(line, sizeof line, f)) {
		const char *p = strstr(line, s);
		if (p) {
			n++;
			*sum += strtol(p + strlen(s), NULL, 10);
		}
	}
	if (f)
		fclose(f);
	return n;
}

/* Does child ID's whole stderr (not only what struct result keeps) contain S? */
static int err_has(int id, const char *s)
{
	char path[700], line[2048];
	snprintf(path, sizeof path, "%s/run-%d.err", base, id);
	FILE *f = fopen(path, "r");
	int found = 0;
	while (f && !found && fgets(line, sizeof line, f))
		found = strstr(line, s) != NULL;
	if (f)
		fclose(f);
	return found;
}

static void run(const char *bin, const char *mode, const char *const *extra, struct result *r)
{
	int id;
	pid_t pid = start(bin, mode, extra, &id);
	collect(pid, id, r);
}

static int ok_exit(const struct result *r)
{
	return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

#define CHECK_RUN(r, what)                                                                      \
	CHECK(ok_exit(r), "%s: child status %#x; its stderr:\n%s", what, (r)->status, (r)->err)

/* Is NAME a profile's name, NAME.rprof? */
static int is_profile(const char *name, size_t l)
{
	return l > 6 && !memcmp(name + l - 6, ".rprof", 6) && name[0] != '.' && !memchr(name, '/', l);
}

/* Is NAME the lock file of a profile, .NAME.rprof.lock (writers serialise on it; never deleted)? */
static int is_lock(const char *name)
{
	size_t l = strlen(name);
	return l > 6 && name[0] == '.' && !strcmp(name + l - 5, ".lock") && is_profile(name + 1, l - 6);
}

static int nlocks;   /* lock files seen by the last list_dir */

/* Names in the profile directory: *.rprof files, lock files (counted in nlocks) and anything else. */
static int list_dir(char names[][300], int max, int *others)
{
	DIR *d = opendir(pdir);
	int n = 0;
	*others = 0;
	nlocks = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		size_t l = strlen(e->d_name);
		if (is_profile(e->d_name, l)) {
			if (n < max)
				snprintf(names[n++], 300, "%s", e->d_name);
		} else if (is_lock(e->d_name)) {
			nlocks++;
		} else {
			(*others)++;
			fprintf(stderr, "not a profile in %s: %s\n", pdir, e->d_name);
		}
	}
	if (d)
		closedir(d);
	return n;
}

/* The path of this build's executable file in the directory (its build-id, or its text hash). */
static void exe_file(char *out, size_t len)
{
	char hex[140];
	if (tpf_build_id("", hex)[0]) {
		snprintf(out, len, "%s/%s.rprof", pdir, hex);
		return;
	}
	char names[8][300];
	int others, n = list_dir(names, 8, &others);
	for (int i = 0; i < n; i++)
		if (!strncmp(names[i], "text-", 5)) {
			snprintf(out, len, "%s/%.299s", pdir, names[i]);
			return;
		}
	DIE("no text-*.rprof for an executable without a build-id");
}

static void fresh_dir(const char *tag)
{
	snprintf(pdir, sizeof pdir, "%s/%s", base, tag);
	if (mkdir(pdir, 0700))
		DIE("mkdir %s", pdir);
}

static void read_valid(const char *path, struct tpf *f, const char *what)
{
	const char *why = tpf_read(path, f);
	if (why)
		DIE("%s: %s is not valid by the spec: %s", what, path, why);
}

static const char *dl_env[2];

static int parent_warm(const char *self)
{
	struct result r;
	fresh_dir("warm");
	const char *rec[] = { dl_env[0], NULL };
	run(self, "record", rec, &r);
	CHECK_RUN(&r, "record");
	CHECK(r.warnings == 0, "record: %d warnings:\n%s", r.warnings, r.err);
	CHECK(r.has_end && r.end[0] >= 8 && r.end[1] == 0, "record: promoted %ld from profile %ld",
	      r.end[0], r.end[1]);
	long cold_records = r.end[6];
	char names[8][300], exe[1200];
	int others, n = list_dir(names, 8, &others);
	CHECK(n == (dl_env[0] ? 2 : 1) && others == 0, "%d profiles, %d other files", n, others);
	exe_file(exe, sizeof exe);
	struct tpf f;
	read_valid(exe, &f, "after the recording run");
	CHECK(f.nsites >= 8, "the executable's profile has %u sites, want >= 8", f.nsites);
	printf("profile: %u sites, %u targets, %u ids, %zu bytes\n", f.nsites, f.ntargets, f.nids, f.size);
	free(f.b);

	run(self, "check", rec, &r);
	CHECK_RUN(&r, "warm run");
	CHECK(r.warnings == 0, "warm run: %d warnings:\n%s", r.warnings, r.err);
	CHECK(r.has_start && r.start[1] >= 8 && r.start[0] >= 8 && r.start[2] == 1 && r.start[3] == 0,
	      "at the start of main: %ld sites promoted, %ld from the profile, %ld files read, %ld rejected",
	      r.start[0], r.start[1], r.start[2], r.start[3]);
	/* Nothing reached the slow path: every call hit a stub loaded from the profile. */
	CHECK(r.has_end && r.end[6] < 16 && cold_records >= 8 * 64,
	      "slow-path samples: %ld warm, %ld cold", r.end[6], cold_records);
	if (dl_env[0])
		CHECK(r.end[1] >= 11 && r.end[2] == 2, "the library: %ld sites from profiles, %ld files read",
		      r.end[1], r.end[2]);
	CHECK(r.end[4] == 0, "an unchanged warm run wrote %ld profiles", r.end[4]);
	printf("warm: %ld promoted at the start of main, %ld slow-path samples (cold: %ld)\n", r.start[0],
	       r.end[6], cold_records);

	const char *miss[] = { dl_env[0], "T_MISS=1", NULL };
	if (!dl_env[0])
		miss[0] = "T_MISS=1", miss[1] = NULL;
	run(self, "check", miss, &r);
	CHECK_RUN(&r, "miss run");
	CHECK(r.has_miss && r.miss[5] >= 1, "a profiled site that misses was not counted as relearned "
	      "(relearned %ld)", r.miss[5]);
	read_valid(exe, &f, "after the miss run");
	free(f.b);
	return t_finish("t_profile warm");
}

static int parent_lazy(const char *self)
{
	struct result r;
	fresh_dir("lazy");
	const char *rec[] = { dl_env[0], NULL };
	run(self, "record", rec, &r);
	CHECK_RUN(&r, "record");
	run(self, "lazy", rec, &r);
	CHECK_RUN(&r, "lazy run");
	CHECK(r.warnings == 0, "lazy run: %d warnings:\n%s", r.warnings, r.err);

	/* A miss makes the record: it must know the stub it came from (relearned counts only those). */
	const char *miss[] = { dl_env[0], "T_MISS=1", NULL };
	run(self, "check", miss, &r);
	CHECK_RUN(&r, "miss run");
	CHECK(r.has_miss && r.miss[5] >= 1, "a warm site that missed was not counted as relearned "
	      "(relearned %ld)", r.miss[5]);
	/* That run changed a site, so it saved: the seven sites it has no record of stay in the file. */
	char exe[1200];
	exe_file(exe, sizeof exe);
	struct tpf f;
	read_valid(exe, &f, "after the miss run");
	CHECK(f.nsites >= 8, "after the miss run: %u sites in the file", f.nsites);
	free(f.b);

	/* The per-site report names every site, the ones with no record yet included. */
	const char *rep[] = { dl_env[0], "RELPOLINE_STATS=sites", "RELPOLINE_STATS_TOP=0", NULL };
	run(self, "check", rep, &r);
	CHECK_RUN(&r, "report run");
	int listed = 0;
	for (int k = 1; k <= 8; k++) {
		char name[32];
		snprintf(name, sizeof name, "site%d+", k);
		listed += strstr(r.err, name) != NULL;
	}
	CHECK(listed == 8, "the per-site report names %d of the 8 sites:\n%s", listed, r.err);
	return t_finish("t_profile lazy");
}

static const char *dl2_env;

static int parent_depart(const char *self)
{
	struct result r;
	fresh_dir("depart");
	const char *env[] = { dl_env[0], dl2_env, NULL };
	run(self, "depart-record", env, &r);
	CHECK_RUN(&r, "record");
	run(self, "depart-check", env, &r);
	CHECK_RUN(&r, "warm run");
	CHECK(r.warnings == 0, "warm run: %d warnings:\n%s", r.warnings, r.err);
	return t_finish("t_profile depart");
}

/* Sites 0-3, then sites 4-7 in a second process: the file holds all eight. */
static int parent_merge(const char *self)
{
	struct result r;
	fresh_dir("merge");
	const char *a[] = { "T_MASK=0x0f", NULL }, *b[] = { "T_MASK=0xf0", NULL };
	run(self, "record", a, &r);
	CHECK_RUN(&r, "record 0-3");
	char exe[1200];
	exe_file(exe, sizeof exe);
	struct tpf f;
	read_valid(exe, &f, "first run");
	uint32_t first = f.nsites;
	free(f.b);
	run(self, "record", b, &r);
	CHECK_RUN(&r, "record 4-7");
	read_valid(exe, &f, "second run");
	CHECK(first >= 4 && f.nsites >= first + 4, "sites: %u after the first run, %u after the second", first,
	      f.nsites);
	free(f.b);
	run(self, "check", NULL, &r);
	CHECK_RUN(&r, "warm run");
	CHECK(r.has_start && r.start[1] >= 8, "warm run after the merge: %ld sites from the profile", r.start[1]);
	return t_finish("t_profile merge");
}

struct damage {
	const char *name;
	int invalid;       /* 1: the file must be rejected (one warning); 0: read, no warning */
	int both;          /* the library's file is damaged too */
	int promotes;      /* (valid files) its entries still fit this build: stubs that only miss */
};

static uint32_t lcg = 12345;
static uint8_t rnd(void)
{
	lcg = lcg * 1103515245u + 12345u;
	return (uint8_t)(lcg >> 16);
}

/* KIND applied to a copy of the valid file P (SIZE bytes) into OUT; returns the new size. */
static size_t damage(const char *kind, const uint8_t *p, size_t size, uint8_t *out)
{
	memcpy(out, p, size);
	struct tpf f = { out, size, 0, 0, 0, 0, 0, 0 };
	if (tpf_parse(&f))
		DIE("the pristine file does not parse");
	if (!strcmp(kind, "random")) {
		for (size_t i = 0; i < 4096; i++)
			out[i] = rnd();
		return 4096;
	}
	if (!strcmp(kind, "random-after-header")) {
		for (size_t i = 64; i < size; i++)
			out[i] = rnd();
		return size;
	}
	if (!strcmp(kind, "empty"))
		return 0;
	if (!strcmp(kind, "truncated"))
		return size - 24;
	if (!strcmp(kind, "truncated-half"))
		return size / 2;
	if (!strcmp(kind, "bad-checksum")) {
		f.sites[3] ^= 0x40;   /* an offset changed, the checksum not */
		return size;
	}
	if (!strcmp(kind, "other-build-id")) {
		f.ids[8] ^= 1;
		tpf_reseal(&f);
		return size;
	}
	if (!strcmp(kind, "version-2")) {
		out[8] = 2;
		tpf_reseal(&f);
		return size;
	}
	if (!strcmp(kind, "reserved-bits")) {
		f.sites[7] = 1;
		tpf_reseal(&f);
		return size;
	}
	if (!strcmp(kind, "target-ids-out-of-range")) {
		tpf_set32(f.targets, f.nids);
		tpf_reseal(&f);
		return size;
	}
	if (!strcmp(kind, "targets-outside-any-module")) {
		for (uint32_t i = 0; i < f.ntargets; i++)
			tpf_set64(f.targets + (size_t)i * TPF_TARGET + 8, 0x3fff00000000ull + 64 * i);
		tpf_reseal(&f);
		return size;
	}
	if (!strcmp(kind, "targets-off-by-one")) {
		/* Still inside the executable's code, but no target: a stub that only misses. */
		for (uint32_t i = 0; i < f.ntargets; i++) {
			uint8_t *x = f.targets + (size_t)i * TPF_TARGET + 8;
			tpf_set64(x, tpf_le64(x) + 1);
		}
		tpf_reseal(&f);
		return size;
	}
	if (!strcmp(kind, "offsets-not-sites")) {
		for (uint32_t i = 0; i < f.nsites; i++) {
			uint8_t *s = f.sites + (size_t)i * TPF_SITE;
			tpf_set32(s, tpf_le32(s) + 1);
		}
		tpf_reseal(&f);
		return size;
	}
	if (!strcmp(kind, "wrong-register")) {
		for (uint32_t i = 0; i < f.nsites; i++)
			f.sites[(size_t)i * TPF_SITE + 5] = (uint8_t)((f.sites[(size_t)i * TPF_SITE + 5] + 1) % 15);
		tpf_reseal(&f);
		return size;
	}
	DIE("unknown damage %s", kind);
}

static int parent_corrupt(const char *self)
{
	struct result r;
	fresh_dir("corrupt");
	const char *rec[] = { dl_env[0], NULL };
	run(self, "record", rec, &r);
	CHECK_RUN(&r, "record");
	char exe[1200], lib[1200], names[8][300];
	exe_file(exe, sizeof exe);
	int others, n = list_dir(names, 8, &others);
	lib[0] = 0;
	for (int i = 0; i < n; i++) {
		char p[1200];
		snprintf(p, sizeof p, "%s/%.299s", pdir, names[i]);
		if (strcmp(p, exe))
			snprintf(lib, sizeof lib, "%s", p);
	}
	if (n != 2 || !lib[0])
		DIE("want the executable's and the library's profiles, found %d files", n);
	struct tpf e, l;
	read_valid(exe, &e, "record");
	read_valid(lib, &l, "record");
	uint8_t *buf = malloc(e.size + 8192), *lbuf = malloc(l.size + 8192);
	static const struct damage kinds[] = {
		{ "random", 1, 0, 0 }, { "random-after-header", 1, 0, 0 }, { "empty", 1, 0, 0 },
		{ "truncated", 1, 0, 0 }, { "truncated-half", 1, 0, 0 }, { "bad-checksum", 1, 0, 0 },
		{ "other-build-id", 1, 0, 0 }, { "version-2", 1, 0, 0 }, { "reserved-bits", 1, 0, 0 },
		{ "target-ids-out-of-range", 1, 0, 0 },
		{ "targets-outside-any-module", 0, 0, 0 }, { "targets-off-by-one", 0, 0, 1 },
		{ "offsets-not-sites", 0, 0, 0 }, { "wrong-register", 0, 0, 0 },
		{ "bad-checksum", 1, 1, 0 }, { "random", 1, 1, 0 },
	};
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		const struct damage *d = &kinds[k];
		size_t sz = damage(d->name, e.b, e.size, buf);
		tpf_write(exe, buf, sz);
		if (d->both)
			tpf_write(lib, lbuf, damage(d->name, l.b, l.size, lbuf));
		else
			tpf_write(lib, l.b, l.size);
		const char *env[] = { dl_env[0], NULL };
		run(self, "check", env, &r);
		char what[100];
		snprintf(what, sizeof what, "%s%s", d->name, d->both ? " (both files)" : "");
		CHECK_RUN(&r, what);   /* every call's result is checked by the child */
		CHECK(r.warnings <= 1, "%s: %d warnings:\n%s", what, r.warnings, r.err);
		if (d->invalid) {
			CHECK(r.warnings == 1 && r.has_start && r.start[3] == 1 && r.start[2] == 0 && r.start[1] == 0,
			      "%s: want the file rejected with one warning: %d warnings, start: read %ld rejected %ld "
			      "from profile %ld", what, r.warnings, r.start[2], r.start[3], r.start[1]);
			CHECK(r.has_end && r.end[3] == 1 + d->both, "%s: %ld files rejected, want %d", what, r.end[3],
			      1 + d->both);
		} else {
			CHECK(r.warnings == 0 && r.has_start && r.start[2] == 1 && r.start[3] == 0,
			      "%s: want the file read without a warning: %d warnings, read %ld rejected %ld", what,
			      r.warnings, r.start[2], r.start[3]);
			if (d->promotes)
				CHECK(r.start[1] >= 8, "%s: %ld sites promoted, want >= 8", what, r.start[1]);
			else
				CHECK(r.start[1] == 0, "%s: %ld sites promoted from entries that do not fit", what,
				      r.start[1]);
		}
		struct tpf after;
		const char *why = tpf_read(exe, &after);
		CHECK(!why && after.nsites >= 8, "%s: after the run the file is %s with %u sites", what,
		      why ? why : "valid", why ? 0 : after.nsites);
		free(after.b);
		printf("%-30s warnings %d, read %ld, rejected %ld, sites from it %ld: ok\n", what, r.warnings,
		       r.start[2], r.start[3], r.start[1]);
	}
	free(buf);
	free(lbuf);
	free(e.b);
	free(l.b);
	return t_finish("t_profile corrupt");
}

static int parent_other(const char *self, const char *other, const char *hex)
{
	struct result r;
	fresh_dir("other");
	run(self, "record", NULL, &r);
	CHECK_RUN(&r, "record (this build)");
	char exe[1200], theirs[1200];
	exe_file(exe, sizeof exe);
	snprintf(theirs, sizeof theirs, "%s/%s.rprof", pdir, hex);
	CHECK(strcmp(exe, theirs), "both builds have the build-id %s", hex);
	struct tpf f, g;
	read_valid(exe, &f, "record");
	run(other, "check", NULL, &r);
	CHECK_RUN(&r, "the other build");
	CHECK(r.warnings == 0 && r.has_start && r.start[1] == 0 && r.start[2] == 0 && r.start[3] == 0,
	      "the other build: %d warnings, %ld sites from a profile, %ld read, %ld rejected", r.warnings,
	      r.start[1], r.start[2], r.start[3]);
	read_valid(exe, &g, "this build's file after the other build ran");
	CHECK(g.size == f.size && !memcmp(g.b, f.b, f.size), "the other build changed this build's profile");
	free(g.b);
	read_valid(theirs, &g, "the other build's own file");
	free(g.b);
	/* This build's profile under the other build's name: same code, same offsets, another id. */
	tpf_write(theirs, f.b, f.size);
	run(other, "check", NULL, &r);
	CHECK_RUN(&r, "the other build with this build's file");
	CHECK(r.warnings == 1 && r.has_start && r.start[1] == 0 && r.start[3] == 1,
	      "this build's profile under the other build's name: %d warnings, %ld sites from it, %ld rejected",
	      r.warnings, r.start[1], r.start[3]);
	free(f.b);
	return t_finish("t_profile other");
}

/*
 * Which of site1-site8 (0-7) the site at OFF from the executable's base
 * lies in, or -1.  The runtime's module base is __ehdr_start as well
 * (src/module/module_ctor.c); each siteN is a few instructions, its one
 * indirect call well inside 64 bytes of its start.
 */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));

static int site_index(uint64_t off)
{
	int best = -1;
	uint64_t at = 0;
	for (int i = 0; i < 8; i++) {
		uint64_t a = (uint64_t)(uintptr_t)site_fn[i] - (uint64_t)(uintptr_t)__ehdr_start;
		if (a <= off && (best < 0 || a > at)) {
			best = i;
			at = a;
		}
	}
	return best >= 0 && off - at < 64 ? best : -1;
}

/* The sites (bit N: siteN+1) the file F holds; *STRAY: its records that are none of them. */
static unsigned sites_in(const struct tpf *f, int *stray)
{
	unsigned got = 0;
	*stray = 0;
	for (uint32_t i = 0; i < f->nsites; i++) {
		int k = site_index(tpf_le32(f->sites + (size_t)i * TPF_SITE));
		if (k < 0)
			(*stray)++;
		else
			got |= 1u << k;
	}
	return got;
}

/* The lock files after list_dir found the N profiles NAMES: one each, a regular file, empty. */
static void check_locks(char names[][300], int n, const char *what)
{
	CHECK(nlocks == n, "%s: %d lock files for %d profiles", what, nlocks, n);
	for (int i = 0; i < n; i++) {
		char lk[1000];
		struct stat st;
		snprintf(lk, sizeof lk, "%s/.%s.lock", pdir, names[i]);
		CHECK(stat(lk, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0,
		      "%s: %s is missing or not an empty regular file", what, lk);
	}
}

/*
 * 20 processes save into one directory at once (they wait at a gate to
 * exit together), each with 2 of the 8 sites (together all 8): saves are
 * serialised by the profile's lock, so the file holds the union - every
 * writer's sites, no site lost - and no temporary file is left; the lock
 * file stays.
 */
static int parent_writers(const char *self)
{
	enum { N = 20 };
	fresh_dir("writers");
	pid_t pid[N];
	int id[N];
	static char masks[N][32], gate[700], gate_env[720];
	unsigned want = 0;
	snprintf(gate, sizeof gate, "%s/writers-gate", base);
	snprintf(gate_env, sizeof gate_env, "T_GATE=%s", gate);
	for (int i = 0; i < N; i++) {
		unsigned m = 1u << (i % 8) | 1u << ((i + 3) % 8);
		want |= m;
		snprintf(masks[i], sizeof masks[i], "T_MASK=%#x", m);
		const char *env[] = { masks[i], gate_env, NULL };
		pid[i] = start(self, "record", env, &id[i]);
	}
	/*
	 * All of them learned their sites (none read a file: none was saved
	 * yet); now they exit, and save, at once.
	 */
	for (int i = 0; i < N; i++) {
		char path[700], line[64];
		snprintf(path, sizeof path, "%s/run-%d.out", base, id[i]);
		int ready = 0;
		for (int k = 0; k < 20000 && !ready; k++) {
			FILE *f = fopen(path, "r");
			while (f && !ready && fgets(line, sizeof line, f))
				ready = !strcmp(line, "READY\n");
			if (f)
				fclose(f);
			if (!ready)
				usleep(500);
		}
		if (!ready)
			DIE("writer %d never got ready", i);
	}
	int g = open(gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (g < 0)
		DIE("cannot create %s", gate);
	close(g);
	for (int i = 0; i < N; i++) {
		struct result r;
		collect(pid[i], id[i], &r);
		CHECK_RUN(&r, "writer");
		CHECK(r.warnings == 0, "writer %d: %d warnings:\n%s", i, r.warnings, r.err);
		/* Its own two sites at least (a writer that read a saved file may hold more). */
		CHECK(r.has_end && r.end[0] >= 2, "writer %d (%s): %ld sites promoted, want its 2", i, masks[i],
		      r.end[0]);
	}
	char names[8][300], exe[1200];
	int others, n = list_dir(names, 8, &others);
	CHECK(n == 1 && others == 0, "after 20 writers: %d profiles and %d other files (temporary files left?)",
	      n, others);
	check_locks(names, n, "after 20 writers");
	exe_file(exe, sizeof exe);
	struct tpf f;
	read_valid(exe, &f, "after 20 concurrent writers");
	int stray;
	unsigned got = sites_in(&f, &stray);
	CHECK(want == 0xff && got == want && stray == 0 && f.nsites == 8,
	      "the file holds sites %#x of the writers' %#x (%u records, %d of them none of the 8): "
	      "a writer's contribution was lost", got, want, f.nsites, stray);
	printf("writers: one valid file, %u sites (%#x)\n", f.nsites, got);
	free(f.b);
	return t_finish("t_profile writers");
}

/*
 * The profile's lock is held by another process beyond the bound (here the
 * parent, as a writer stopped with the lock would).  A save at exit waits
 * about 200 ms (LOCK_WAIT_NS in profile.c), then writes without the lock:
 * the child (with DL: two modules, so several saves at exit) exits within
 * a second, having waited once, its file is valid and holds its 8 sites,
 * no warning (debug lines say it); the library's profile, whose lock is
 * free, is saved as usual.  A periodic save does not wait and does not
 * write without the lock: the file appears only once the lock is released.
 */
static int parent_held(const char *self)
{
	char hex[140], exe[1200], lock[1300];
	if (!tpf_build_id("", hex)[0])
		DIE("t_profile held needs a build with a build-id");
	for (int periodic = 0; periodic < 2; periodic++) {
		fresh_dir(periodic ? "held-periodic" : "held");
		snprintf(exe, sizeof exe, "%s/%s.rprof", pdir, hex);
		snprintf(lock, sizeof lock, "%s/.%s.rprof.lock", pdir, hex);
		int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0 || flock(fd, LOCK_EX))
			DIE("cannot lock %s", lock);
		const char *exit_env[] = { "RELPOLINE_VERBOSE=1", dl_env[0], NULL };
		const char *per_env[] = { "RELPOLINE_VERBOSE=1", "RELPOLINE_PROFILE_SAVE_S=1", NULL };
		struct result r;
		int id, want = 1;
		double t0 = now_s();
		pid_t pid = start(self, periodic ? "periodic" : "record", periodic ? per_env : exit_env, &id);
		char names[8][300];
		int others, n;
		if (!periodic) {
			double t = collect_within(pid, id, t0, 10, &r);
			CHECK(t >= 0, "a save with its lock held elsewhere hangs (killed after 10 s)");
			CHECK(t >= 0.2 && t < 1.0, "the child ran %.3f s with the lock held elsewhere: want 0.2 s "
			      "(the wait) to 1 s", t);
			CHECK_RUN(&r, "save with the lock held elsewhere");
			CHECK(r.warnings == 0, "lock held elsewhere: %d warnings:\n%s", r.warnings, r.err);
			long waited;
			int k = err_count(id, "its lock is still held by another process after ", &waited);
			CHECK(k >= 1 && waited >= 200 && waited < 300, "lock held elsewhere: %d debug lines of saves "
			      "without it, after %ld ms of waiting in all: want one or more, 200 to 300 ms", k, waited);
			want = dl_env[0] ? 2 : 1;
			printf("held: the child ran %.3f s, %d saves without the lock after %ld ms\n", t, k, waited);
		} else {
			/* Three periods with the lock held: nothing written, the child still waiting for its file. */
			usleep(3200000);
			n = list_dir(names, 8, &others);
			CHECK(n == 0 && waitpid(pid, &r.status, WNOHANG) == 0,
			      "a periodic save wrote %d profiles while the lock was held elsewhere", n);
			CHECK(err_has(id, "its lock is held by another process: saved later"),
			      "periodic save with the lock held elsewhere: no debug line that it was put off");
			close(fd);
			fd = -1;
			double t = collect_within(pid, id, now_s(), 10, &r);
			CHECK(t >= 0, "the periodic save never came after the lock was released (killed after 10 s)");
			CHECK_RUN(&r, "periodic save after the lock was released");
			CHECK(r.warnings == 0, "periodic: %d warnings:\n%s", r.warnings, r.err);
			printf("held: the periodic save came %.3f s after the lock was released\n", t);
		}
		if (fd >= 0)
			close(fd);
		n = list_dir(names, 8, &others);
		CHECK(n == want && others == 0, "%d profiles (want %d) and %d other files (temporary files left?)",
		      n, want, others);
		check_locks(names, n, "lock held elsewhere");
		for (int i = 0; i < n; i++) {
			char p[1200];
			struct tpf f;
			snprintf(p, sizeof p, "%s/%.299s", pdir, names[i]);
			read_valid(p, &f, periodic ? "a periodic save after the lock was released" :
						     "a save with the lock held elsewhere");
			int stray;
			unsigned got = sites_in(&f, &stray);
			/* The executable's 8 sites (with DL also its call into the library); the library's 3. */
			if (!strcmp(p, exe))
				CHECK(got == 0xff, "the file holds sites %#x, want 0xff", got);
			else
				CHECK(f.nsites >= 3, "the library's profile holds %u sites, want its 3", f.nsites);
			free(f.b);
		}
	}
	return t_finish("t_profile held");
}

static int parent_periodic(const char *self)
{
	struct result r;
	fresh_dir("periodic");
	const char *env[] = { "RELPOLINE_PROFILE_SAVE_S=1", NULL };
	run(self, "periodic", env, &r);
	CHECK_RUN(&r, "periodic");
	char exe[1200];
	exe_file(exe, sizeof exe);
	struct tpf f;
	read_valid(exe, &f, "saved from an epoch");
	CHECK(f.nsites >= 8, "%u sites", f.nsites);
	free(f.b);
	return t_finish("t_profile periodic");
}

/*
 * RELPOLINE_PROFILE=auto: $XDG_CACHE_HOME/relpoline, else $HOME/.cache/relpoline
 * (XDG_CACHE_HOME relative: ignored), made with mode 0700; the warm run
 * finds its profile there.
 */
static int parent_auto(const char *self)
{
	static char xdg[700], home[700], xdg_env[720], home_env[720];
	struct result r;
	snprintf(xdg, sizeof xdg, "%s/xdg", base);
	snprintf(home, sizeof home, "%s/home", base);
	if (mkdir(xdg, 0755) || mkdir(home, 0755))
		DIE("mkdir");
	snprintf(xdg_env, sizeof xdg_env, "XDG_CACHE_HOME=%s", xdg);
	snprintf(home_env, sizeof home_env, "HOME=%s", home);
	const char *with_xdg[] = { "RELPOLINE_PROFILE=auto", xdg_env, home_env, NULL };
	const char *relative_xdg[] = { "RELPOLINE_PROFILE=auto", "XDG_CACHE_HOME=relative/cache", home_env, NULL };
	for (int k = 0; k < 2; k++) {
		const char *const *env = k ? relative_xdg : with_xdg;
		snprintf(pdir, sizeof pdir, k ? "%s/.cache/relpoline" : "%s/relpoline", k ? home : xdg);
		run(self, "record", env, &r);
		CHECK_RUN(&r, k ? "record (HOME)" : "record (XDG_CACHE_HOME)");
		CHECK(r.warnings == 0, "%d warnings:\n%s", r.warnings, r.err);
		struct stat st;
		CHECK(stat(pdir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700,
		      "%s: missing or mode %o, want a directory of mode 700", pdir, (unsigned)(st.st_mode & 0777));
		char exe[1200];
		exe_file(exe, sizeof exe);
		struct tpf f;
		read_valid(exe, &f, "auto");
		free(f.b);
		run(self, "check", env, &r);
		CHECK_RUN(&r, "warm run (auto)");
		CHECK(r.has_start && r.start[1] >= 8, "auto: %ld sites from the profile at the start of main", r.start[1]);
	}
	/* A directory others may write into is not used for auto. */
	if (chmod(pdir, 0777))
		DIE("chmod");
	run(self, "check", relative_xdg, &r);
	CHECK_RUN(&r, "warm run (auto, world-writable directory)");
	CHECK(r.has_start && r.start[1] == 0 && r.warnings == 1, "auto with a world-writable %s: %ld sites "
	      "from it, %d warnings", pdir, r.start[1], r.warnings);
	return t_finish("t_profile auto");
}

static void cleanup(void)
{
	char cmd[700];
	if (t_fails)
		return;   /* left for a look */
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", base);
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "child"))
		return child(argv[2]);
	if (argc < 2)
		DIE("usage: t_profile warm|merge|corrupt|other|writers|held|periodic|auto|lazy|depart ...");
	/* The warm children check that they hold no descriptor beyond 0-2: pass them none. */
	if (syscall(SYS_close_range, 3u, ~0u, 0) < 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	char self[600];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		DIE("readlink /proc/self/exe");
	self[n] = 0;
	snprintf(base, sizeof base, "%s/prof-%s-XXXXXX", getcwd(NULL, 0), argv[1]);
	if (!mkdtemp(base))
		DIE("mkdtemp %s", base);
	static char dl[700];
	if (argc >= 3 && strcmp(argv[1], "other")) {
		char *p = realpath(argv[2], NULL);
		if (!p)
			DIE("%s not found", argv[2]);
		snprintf(dl, sizeof dl, "T_DL=%s", p);
		dl_env[0] = dl;
	}
	int rc;
	if (!strcmp(argv[1], "warm"))
		rc = parent_warm(self);
	else if (!strcmp(argv[1], "merge"))
		rc = parent_merge(self);
	else if (!strcmp(argv[1], "corrupt") && dl_env[0])
		rc = parent_corrupt(self);
	else if (!strcmp(argv[1], "other") && argc >= 4)
		rc = parent_other(self, argv[2], argv[3]);
	else if (!strcmp(argv[1], "writers"))
		rc = parent_writers(self);
	else if (!strcmp(argv[1], "periodic"))
		rc = parent_periodic(self);
	else if (!strcmp(argv[1], "held"))
		rc = parent_held(self);
	else if (!strcmp(argv[1], "auto"))
		rc = parent_auto(self);
	else if (!strcmp(argv[1], "lazy") && dl_env[0])
		rc = parent_lazy(self);
	else if (!strcmp(argv[1], "depart") && argc >= 4) {
		static char dl2[700];
		char *p = realpath(argv[3], NULL);
		if (!p)
			DIE("%s not found", argv[3]);
		snprintf(dl2, sizeof dl2, "T_DL2=%s", p);
		dl2_env = dl2;
		rc = parent_depart(self);
	}
	else
		DIE("bad arguments");
	cleanup();
	return rc;
}
