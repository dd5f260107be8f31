/*
 * Configuration.
 *   t_config api        relpoline_config_set/get on EVERY key of the
 *                       configuration table (src/config.c, the 17 keys of
 *                       ABI 3: "thread" and "log" are new, "write" is
 *                       gone): the default
 *                       reads back, valid values (the bounds of each range)
 *                       round-trip, bad values give -EINVAL and keep the
 *                       value, unknown names -ENOENT; case-insensitive
 *                       names, truncation, version.  Then the same keys from
 *                       the environment, in two child processes: every
 *                       RELPOLINE_<KEY> set to a valid non-default value
 *                       reads back with no warning; every one set to a bad
 *                       value gives a warning naming it and the default.
 *   t_config work MODE  a small workload; MODE "promoted": sites must get
 *                       promoted, "none": sites_promoted must stay 0.
 *                       run.sh runs it with bad environment values (and
 *                       checks the warning on stderr) and with MODE=off.
 */
#include "common.h"
#include <sys/wait.h>
#include <unistd.h>

typedef int (*fn_t)(int);
NOINLINE int fa(int x) { return x ^ 0x100; }
NOINLINE int fb(int x) { return x ^ 0x200; }
#define SITE(n) NOINLINE int site_##n(fn_t f, int x) { return f(x) + n; }
SITE(0) SITE(1) SITE(2) SITE(3)

static void work(int n, int which)
{
	fn_t f = which ? fb : fa;
	for (int i = 0; i < n; i++) {
		int want = i ^ (which ? 0x200 : 0x100);
		CHECK(site_0(f, i) == want && site_1(f, i) == want + 1 && site_2(f, i) == want + 2 &&
			      site_3(f, i) == want + 3,
		      "wrong result i=%d which=%d", i, which);
	}
}

static void get(const char *name, char *buf, size_t len)
{
	int r = relpoline_config_get(name, buf, len);
	CHECK(r == 0, "config_get(%s) = %d", name, r);
}


/*
 * Every key of src/config.c's table.  DEF: the documented default (NULL:
 * not checked); GOOD: valid values, each set and read back (for numbers the
 * two ends of the valid range); BAD: values that must give -EINVAL; ENV: a
 * valid non-default value for the environment check.
 */
#define LONG_PATH "/tmp/" X64 X64 X64 X64 X64 X64 X64 X64 X64   /* 580 bytes: too long */
#define X64 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
/* Log files, named after the pid at start (api()): the env "good" child's one is read back. */
static char log_good[64] = "/tmp/rp-t_config.log", env_log[64] = "/tmp/rp-t_config-env.log";
#define ENV_LOG env_log
struct key {
	const char *name, *def;
	const char *good[4], *bad[8];
	const char *env;
};
static struct key keys[] = {
	{ "mode", "on", { "off", "on" }, { "bogus", "", "1", "onn" }, "off" },
	{ "fallback", "retpoline", { "indirect", "retpoline" }, { "sideways", "" }, "indirect" },
	{ "stub", "auto", { "chain", "tree", "auto" }, { "bush", "2", "" }, "tree" },
	{ "stats", "0", { "1", "json:/tmp/rp-t_config-%p.json", "sites", "0" }, { "2", "json:", "yes", "site" },
	  "json:/dev/null" },
	{ "stats_top", "20", { "0", "1000000", "5" }, { "-1", "1000001", "x", "" }, "7" },
	{ "epoch_ms", "10", { "60000", "0" }, { "-1", "60001", "abc", "", "12x" }, "7" },
	{ "promote_min", "256", { "1", "4000000000", "16" },
	  { "0", "-5", "abc", "", "12x", "4000000001", "99999999999999999999999" }, "17" },
	{ "max_targets", "256", { "1", "32", "256" }, { "0", "257", "x" }, "3" },
	{ "min_coverage", "75", { "1", "100" }, { "0", "101", "x" }, "50" },
	{ "min_share", "5", { "0", "1000" }, { "-1", "1001", "x" }, "9" },
	{ "relearn_misses", "1000", { "1", "1099511627776" }, { "0", "1099511627777", "x" }, "123" },
	{ "max_versions", "16", { "1", "1000" }, { "0", "1001", "x" }, "5" },
	{ "pin_epochs", "500", { "1", "1073741824" }, { "0", "1073741825", "x" }, "77" },
	{ "arena_kb", "4096", { "64", "1048576" }, { "63", "1048577", "x" }, "128" },
	{ "thread", "off", { "on", "off" }, { "maybe", "2", "", "1" }, "on" },
	{ "perf_map", "0", { "1", "0" }, { "2", "yes" }, "1" },
	{ "log", "stderr", { log_good, "stderr" }, { "", LONG_PATH }, env_log },
	{ "verbose", "0", { "1", "0" }, { "2", "on" }, "1" },
};
#define NKEYS (sizeof keys / sizeof keys[0])

static void all_keys(void)
{
	char buf[128], orig[128];
	int r;
	snprintf(log_good, sizeof log_good, "/tmp/rp-t_config-%d.log", (int)getpid());
	snprintf(env_log, sizeof env_log, "/tmp/rp-t_config-%d-env.log", (int)getpid());
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		r = relpoline_config_get(k->name, orig, sizeof orig);
		CHECK(r == 0, "get(%s) = %d: a key of the table is missing", k->name, r);
		if (r)
			continue;
		/* The api case runs with RELPOLINE_EPOCH_MS=0 and PROMOTE_MIN=16. */
		const char *def = !strcmp(k->name, "epoch_ms") ? "0" :
				  !strcmp(k->name, "promote_min") ? "16" : k->def;
		if (def)
			CHECK(strcmp(orig, def) == 0, "%s = \"%s\" at start, want \"%s\"", k->name, orig, def);
		for (int j = 0; j < 4 && k->good[j]; j++) {
			r = relpoline_config_set(k->name, k->good[j]);
			CHECK(r == 0, "set(%s, \"%s\") = %d", k->name, k->good[j], r);
			r = relpoline_config_get(k->name, buf, sizeof buf);
			CHECK(r == 0 && strcmp(buf, k->good[j]) == 0, "set(%s, \"%s\") reads back \"%s\" (%d)",
			      k->name, k->good[j], buf, r);
		}
		char before[128];
		get(k->name, before, sizeof before);
		for (int j = 0; j < 8 && k->bad[j]; j++) {
			r = relpoline_config_set(k->name, k->bad[j]);
			CHECK(r == -EINVAL, "set(%s, \"%s\") = %d want -EINVAL", k->name, k->bad[j], r);
			get(k->name, buf, sizeof buf);
			CHECK(strcmp(buf, before) == 0, "%s = \"%s\" after the bad set(\"%s\"), was \"%s\"",
			      k->name, buf, k->bad[j], before);
		}
		r = relpoline_config_set(k->name, orig);
		CHECK(r == 0, "set(%s, \"%s\") (restore) = %d", k->name, orig, r);
		/* The upper-case name is the same key. */
		char up[64];
		size_t n;
		for (n = 0; k->name[n] && n < sizeof up - 1; n++)
			up[n] = (char)(k->name[n] >= 'a' && k->name[n] <= 'z' ? k->name[n] - 32 : k->name[n]);
		up[n] = 0;
		r = relpoline_config_get(up, buf, sizeof buf);
		CHECK(r == 0 && strcmp(buf, orig) == 0, "get(%s) = %d \"%s\" want \"%s\"", up, r, buf, orig);
		/* A near miss of the name is unknown. */
		char near[80];
		snprintf(near, sizeof near, "%s_", k->name);
		CHECK(relpoline_config_set(near, k->good[0]) == -ENOENT, "set(%s) is not -ENOENT", near);
		CHECK(relpoline_config_get(near, buf, sizeof buf) == -ENOENT, "get(%s) is not -ENOENT", near);
	}
	unlink(log_good);
	r = relpoline_config_set("no_such_key", "1");
	CHECK(r == -ENOENT, "set(no_such_key) = %d want -ENOENT", r);
	r = relpoline_config_get("no_such_key", buf, sizeof buf);
	CHECK(r == -ENOENT, "get(no_such_key) = %d want -ENOENT", r);
	r = relpoline_config_set("", "1");
	CHECK(r == -ENOENT, "set(\"\") = %d want -ENOENT", r);
	r = relpoline_config_set("RELPOLINE_MODE", "on");
	CHECK(r == -ENOENT, "set(RELPOLINE_MODE) = %d: the name has no prefix, want -ENOENT", r);
}

/*
 * From the environment, in a child: "good" = every key set to its ENV
 * value must read back, with no warning; "bad" = every key set to its
 * first bad value must read back as the default, with a warning naming
 * RELPOLINE_<KEY> (checked by the parent on the child's stderr).
 */
static void env_name(const struct key *k, char *out, size_t len)
{
	size_t n = (size_t)snprintf(out, len, "RELPOLINE_");
	for (const char *p = k->name; *p && n < len - 1; p++)
		out[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
	out[n] = 0;
}

static int envcheck(const char *how)
{
	char buf[128];
	snprintf(env_log, sizeof env_log, "/tmp/rp-t_config-%d-env.log", (int)getppid());
	int good = strcmp(how, "good") == 0;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		int r = relpoline_config_get(k->name, buf, sizeof buf);
		CHECK(r == 0, "env %s: get(%s) = %d", how, k->name, r);
		if (r)
			continue;
		if (good)
			CHECK(strcmp(buf, k->env) == 0, "env: RELPOLINE_%s=%s reads back \"%s\"", k->name,
			      k->env, buf);
		else if (k->def)
			CHECK(strcmp(buf, k->def) == 0, "env: bad RELPOLINE_%s=\"%s\": \"%s\", want the "
			      "default \"%s\"", k->name, k->bad[0], buf, k->def);
	}
	return t_fails ? 1 : 0;
}

static void run_envcheck(char **argv, const char *how)
{
	FILE *err = tmpfile();
	unlink(ENV_LOG);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		for (size_t i = 0; i < NKEYS; i++) {
			char name[64];
			env_name(&keys[i], name, sizeof name);
			setenv(name, strcmp(how, "good") ? keys[i].bad[0] : keys[i].env, 1);
		}
		if (err)
			dup2(fileno(err), 2);
		char *args[] = { argv[0], (char *)"envcheck", (char *)how, NULL };
		execv("/proc/self/exe", args);
		_exit(127);
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "env %s child: status %#x", how, st);
	if (!err)
		return;
	static char text[65536];
	size_t n = 0;
	rewind(err);
	n = fread(text, 1, sizeof text - 1, err);
	fclose(err);
	FILE *lf = fopen(ENV_LOG, "r");   /* where RELPOLINE_LOG sent the good child's messages */
	if (lf) {
		n += fread(text + n, 1, sizeof text - 1 - n, lf);
		fclose(lf);
		unlink(ENV_LOG);
	}
	text[n] = 0;
	if (n)
		fprintf(stderr, "--- env %s child's stderr:\n%s---\n", how, text);
	for (size_t i = 0; i < NKEYS; i++) {
		char name[64], *line = text;
		env_name(&keys[i], name, sizeof name);
		int warned = 0;
		for (char *nl; line && *line; line = nl ? nl + 1 : NULL) {
			nl = strchr(line, '\n');
			size_t len = nl ? (size_t)(nl - line) : strlen(line);
			char l[512];
			snprintf(l, sizeof l, "%.*s", (int)(len < sizeof l ? len : sizeof l - 1), line);
			if (strstr(l, "warning") && strstr(l, name)) {
				char eq[80];
				snprintf(eq, sizeof eq, "%s=", name);
				warned |= strstr(l, eq) != NULL;
			}
		}
		if (strcmp(how, "good") == 0)
			CHECK(!warned, "env good: a warning names %s=%s", name, keys[i].env);
		else
			CHECK(warned, "env bad: no warning names %s=\"%s\"", name, keys[i].bad[0]);
	}
	if (strcmp(how, "good") == 0)
		CHECK(!strstr(text, "warning"), "env good: unexpected warning on stderr");
}

static int api(char **argv)
{
	char buf[128], old[128];
	int r;

	CHECK(strcmp(relpoline_version(), "0.1.0") == 0, "version \"%s\"", relpoline_version());

	all_keys();

	get("mode", buf, sizeof buf);
	CHECK(strcmp(buf, "on") == 0, "mode = \"%s\" want \"on\"", buf);
	r = relpoline_config_set("mode", "bogus");
	CHECK(r == -EINVAL, "set(mode, bogus) = %d want -EINVAL", r);
	get("mode", buf, sizeof buf);
	CHECK(strcmp(buf, "on") == 0, "mode = \"%s\" after a bad set", buf);

	r = relpoline_config_set("fallback", "sideways");
	CHECK(r == -EINVAL, "set(fallback, sideways) = %d want -EINVAL", r);

	get("promote_min", old, sizeof old);
	static const char *const bad_num[] = { "abc", "", "-5", "12x", "99999999999999999999999" };
	for (size_t i = 0; i < sizeof bad_num / sizeof bad_num[0]; i++) {
		r = relpoline_config_set("promote_min", bad_num[i]);
		CHECK(r == -EINVAL, "set(promote_min, \"%s\") = %d want -EINVAL", bad_num[i], r);
		get("promote_min", buf, sizeof buf);
		CHECK(strcmp(buf, old) == 0, "promote_min changed to \"%s\" by a bad set", buf);
	}
	r = relpoline_config_set("min_coverage", "101");
	CHECK(r == -EINVAL, "set(min_coverage, 101) = %d want -EINVAL (percent)", r);

	r = relpoline_config_set("PROMOTE_MIN", "32");
	CHECK(r == 0, "set(PROMOTE_MIN, 32) = %d (names are case-insensitive)", r);
	get("promote_min", buf, sizeof buf);
	CHECK(strcmp(buf, "32") == 0, "promote_min = \"%s\" want 32", buf);
	r = relpoline_config_set("Promote_Min", "16");
	CHECK(r == 0, "set(Promote_Min, 16) = %d", r);

	/* Truncation: at most LEN bytes, NUL-terminated, nothing beyond. */
	memset(buf, 'X', sizeof buf);
	r = relpoline_config_get("fallback", buf, 4);
	CHECK(r == 0 || r == -ERANGE || r == -ENOSPC, "get(fallback, len 4) = %d", r);
	CHECK(memchr(buf, 0, 4) != NULL, "get(fallback, len 4) did not NUL-terminate within 4");
	CHECK(buf[4] == 'X' && buf[5] == 'X', "get(fallback, len 4) wrote beyond 4 bytes");

	r = relpoline_config_set("fallback", "indirect");
	CHECK(r == 0, "set(fallback, indirect) = %d", r);
	get("fallback", buf, sizeof buf);
	CHECK(strcmp(buf, "indirect") == 0, "fallback = \"%s\"", buf);
	work(50, 0);
	t_epoch();
	work(50, 1);
	r = relpoline_config_set("fallback", "retpoline");
	CHECK(r == 0, "set(fallback, retpoline) = %d", r);
	work(50, 0);

	struct relpoline_stats s = t_stats();
	CHECK(s.sites_promoted >= 4, "sites_promoted %" PRIu64, s.sites_promoted);

	/* Stats: fields beyond the caller's size are not written. */
	struct {
		struct relpoline_stats st;
		uint64_t canary;
	} big;
	memset(&big, 0xAB, sizeof big);
	big.st.size = offsetof(struct relpoline_stats, sites_seen) + sizeof(uint64_t);
	r = relpoline_stats_get(&big.st);
	CHECK(r == 0, "stats_get(small size) = %d", r);
	CHECK(big.st.modules >= 1 && big.st.modules != 0xABABABABABABABABull, "modules not filled");
	CHECK(big.st.sites_call == 0xABABABABABABABABull, "stats_get wrote beyond size");
	CHECK(big.canary == 0xABABABABABABABABull, "stats_get wrote beyond the struct");
	run_envcheck(argv, "good");
	run_envcheck(argv, "bad");
	return t_finish("t_config api");
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "envcheck") == 0)
		return envcheck(argv[2]);
	if (argc > 1 && strcmp(argv[1], "api") == 0) {
		t_deterministic(argv);
		return api(argv);
	}
	const char *expect = argc > 2 ? argv[2] : "promoted";
	t_epoch(); /* as the worker's first epoch: tail sites learn from here on */
	/*
	 * A background worker may be running (these runs use the default
	 * RELPOLINE_EPOCH_MS), and samples stored while it aggregates can be
	 * lost (src/learn.c), so repeat until promoted, a bounded number of times.
	 */
	for (int round = 0; round < 20; round++) {
		work(300, 0);
		t_epoch();
		struct relpoline_stats s = t_stats();
		if (s.sites_promoted >= 4)
			break;
	}
	work(100, 0);
	work(100, 1);
	t_epoch();
	work(100, 0);
	struct relpoline_stats s = t_stats();
	t_print_stats("work", &s);
	if (strcmp(expect, "none") == 0)
		CHECK(s.sites_promoted == 0 && s.stubs_emitted == 0,
		      "promoted %" PRIu64 " stubs %" PRIu64 " want 0", s.sites_promoted,
		      s.stubs_emitted);
	else
		CHECK(s.sites_promoted >= 4, "sites_promoted %" PRIu64 " want >= 4",
		      s.sites_promoted);
	return t_finish("t_config work");
}
