/*
 * Configuration.
 *   t_config api        relpoline_config_set/get on EVERY key of the
 *                       configuration table (src/runtime/config.c, the 17
 *                       keys of ABI 3: "thread" and "log" are new, "write"
 *                       is gone; "jitdump" came later): the default
 *                       reads back, valid values (the bounds of each range)
 *                       round-trip, bad values give -EINVAL and keep the
 *                       value, unknown names -ENOENT; case-insensitive
 *                       names, truncation, version.  Every boolean key takes
 *                       each of 0|1|on|off|yes|no in any case and reads back
 *                       on or off.  Then the same keys from the environment,
 *                       in child processes that inherit no other
 *                       RELPOLINE_* variable: every RELPOLINE_<KEY> set to a
 *                       valid non-default value reads back with no warning;
 *                       every one set to a bad value, or to the empty
 *                       string, gives a warning naming it (a boolean's names
 *                       0|1|on|off|yes|no) and the default; each boolean
 *                       spelling from the environment; unknown RELPOLINE_*
 *                       names get one warning each with the nearest name,
 *                       the compiler wrapper's variables none.
 *   t_config work MODE  a small workload; MODE "promoted": sites must get
 *                       promoted, "none": sites_promoted must stay 0.
 *                       run.sh runs it with bad environment values (and
 *                       checks the warning on stderr) and with MODE=off.
 *   t_config syslog     RELPOLINE_LOG: as root, in a private mount namespace
 *                       with a tmpfs on /dev, binds a datagram socket at
 *                       /dev/log and runs children with RELPOLINE_LOG=syslog:
 *                       their warnings (priority user.warning, 12) and
 *                       verbose lines (user.debug, 15) must arrive there as
 *                       "<PRI>relpoline[PID]: text" and not on stderr.  With
 *                       the socket closed (refused) and then gone, the same
 *                       warnings must come on stderr; with a file PATH, in
 *                       the file.  Each child checks that it holds no
 *                       descriptor beyond 0-2 after logging.
 */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

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
#define NGOOD 4
#define NBAD 8
struct key {
	const char *name, *def;
	const char *good[NGOOD], *bad[NBAD];
	const char *env;
	int is_bool;   /* good values: every one of spellings[], read back on/off */
};
/* Every spelling a boolean takes, in some cases. */
static const char *const spellings[] = { "0", "1", "on", "off", "yes", "no", "ON", "Off", "YES", "nO",
					 "oN", "No" };
#define NSPELL (sizeof spellings / sizeof spellings[0])
static const char *bool_canon(const char *v)
{
	return !strcasecmp(v, "1") || !strcasecmp(v, "on") || !strcasecmp(v, "yes") ? "on" : "off";
}
#define BOOL_VALID "(valid: 0|1|on|off|yes|no)"
static struct key keys[] = {
	{ "mode", "on", { 0 }, { "bogus", "", "onn", "2", "true", "y", " on", "-1" }, "No", 1 },
	{ "fallback", "retpoline", { "indirect", "retpoline" }, { "sideways", "" }, "indirect", 0 },
	{ "stub", "auto", { "chain", "tree", "auto" }, { "bush", "2", "" }, "tree", 0 },
	{ "stats", "0", { "1", "json:/tmp/rp-t_config-%p.json", "sites", "0" }, { "2", "json:", "yes", "site", "" },
	  "json:/dev/null", 0 },
	{ "stats_top", "20", { "0", "1000000", "5" }, { "-1", "1000001", "x", "" }, "7", 0 },
	{ "epoch_ms", "10", { "60000", "0" }, { "-1", "60001", "abc", "", "12x" }, "7", 0 },
	{ "promote_min", "256", { "1", "4000000000", "16" },
	  { "0", "-5", "abc", "", "12x", "4000000001", "99999999999999999999999" }, "17", 0 },
	{ "max_targets", "256", { "1", "32", "256" }, { "0", "257", "x" }, "3", 0 },
	{ "min_coverage", "75", { "1", "100" }, { "0", "101", "x" }, "50", 0 },
	{ "min_share", "5", { "0", "1000" }, { "-1", "1001", "x" }, "9", 0 },
	{ "relearn_misses", "1000", { "1", "1099511627776" }, { "0", "1099511627777", "x" }, "123", 0 },
	{ "max_versions", "16", { "1", "1000" }, { "0", "1001", "x" }, "5", 0 },
	{ "pin_epochs", "500", { "1", "1073741824" }, { "0", "1073741825", "x" }, "77", 0 },
	{ "arena_kb", "4096", { "64", "1048576" }, { "63", "1048577", "x" }, "128", 0 },
	{ "thread", "off", { 0 }, { "maybe", "2", "", "false", "o", "offf" }, "yes", 1 },
	{ "perf_map", "off", { 0 }, { "2", "", "enable", "-0" }, "1", 1 },
	{ "jitdump", "off", { 0 }, { "2", "", "maybe" }, "1", 1 },
	{ "log", "stderr", { log_good, "syslog", "stderr" }, { "", LONG_PATH }, env_log, 0 },
	{ "verbose", "off", { 0 }, { "2", "", "On1", "nope" }, "ON", 1 },
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
		size_t ngood = k->is_bool ? NSPELL : NGOOD;
		for (size_t j = 0; j < ngood; j++) {
			const char *v = k->is_bool ? spellings[j] : k->good[j];
			if (!v)
				break;
			const char *want = k->is_bool ? bool_canon(v) : v;
			r = relpoline_config_set(k->name, v);
			CHECK(r == 0, "set(%s, \"%s\") = %d", k->name, v, r);
			r = relpoline_config_get(k->name, buf, sizeof buf);
			CHECK(r == 0 && strcmp(buf, want) == 0, "set(%s, \"%s\") reads back \"%s\" (%d), want \"%s\"",
			      k->name, v, buf, r, want);
		}
		char before[128];
		get(k->name, before, sizeof before);
		for (int j = 0; j < NBAD && k->bad[j]; j++) {
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
		CHECK(relpoline_config_set(near, "1") == -ENOENT, "set(%s) is not -ENOENT", near);
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
 * From the environment, in a child whose only RELPOLINE_* variables are
 * those of HOW:
 *   good      every key set to its ENV value: reads back, no warning
 *   bad       every key set to its first bad value: the default, and a
 *             warning naming RELPOLINE_<KEY>=
 *   empty     every key set to "": the same, the warning says "empty"
 *   boolN     every boolean key set to spellings[N]: reads back on/off,
 *             no warning
 *   unknown   names that are no key (unknown[] below) and the compiler
 *             wrapper's variables: one warning each for the first, with
 *             the nearest name, none for the second; no key changes
 * The child checks what reads back, the parent the child's stderr.
 */
static void env_name(const char *key, char *out, size_t len)
{
	size_t n = (size_t)snprintf(out, len, "RELPOLINE_");
	for (const char *p = key; *p && n < len - 1; p++)
		out[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
	out[n] = 0;
}

static const struct {
	const char *var, *warning;   /* WARNING: the whole line after "relpoline: warning: " */
	int prefix;                  /* WARNING is the start of the line only */
} unknown[] = {
	{ "RELPOLINE_STAT=1",
	  "RELPOLINE_STAT is not a relpoline setting: ignored; did you mean RELPOLINE_STATS?" },
	{ "RELPOLINE_EPOCHMS=5",
	  "RELPOLINE_EPOCHMS is not a relpoline setting: ignored; did you mean RELPOLINE_EPOCH_MS?" },
	{ "RELPOLINE_stats=1",
	  "RELPOLINE_stats is not a relpoline setting: ignored; did you mean RELPOLINE_STATS?" },
	{ "RELPOLINE_MAX_TARGET=3",
	  "RELPOLINE_MAX_TARGET is not a relpoline setting: ignored; did you mean RELPOLINE_MAX_TARGETS?" },
	{ "RELPOLINE_VERBOSITY=1",
	  "RELPOLINE_VERBOSITY is not a relpoline setting: ignored; did you mean RELPOLINE_VERBOSE?" },
	{ "RELPOLINE_JUMP_TABLE=1",
	  "RELPOLINE_JUMP_TABLE is not a relpoline setting: ignored; did you mean "
	  "RELPOLINE_JUMP_TABLES (read by relpoline-cc at build time)?" },
	{ "RELPOLINE_XYZZY=1",
	  "RELPOLINE_XYZZY is not a relpoline setting: ignored (settings: MODE FALLBACK ", 1 },
	{ "RELPOLINE_=1", "RELPOLINE_ is not a relpoline setting: ignored (settings: MODE ", 1 },
};
#define NUNKNOWN (sizeof unknown / sizeof unknown[0])
/* Read by tools/relpoline-cc at build time: no warning at run time. */
static const char *const wrapper_env[] = { "RELPOLINE_CC=gcc", "RELPOLINE_CXX=g++",
					   "RELPOLINE_INCDIR=/nonexistent/include",
					   "RELPOLINE_LIBDIR=/nonexistent/lib", "RELPOLINE_JUMP_TABLES=1" };

static int bool_index(const char *how)
{
	return !strncmp(how, "bool", 4) ? atoi(how + 4) : -1;
}

static int envcheck(const char *how)
{
	char buf[128];
	snprintf(env_log, sizeof env_log, "/tmp/rp-t_config-%d-env.log", (int)getppid());
	int good = !strcmp(how, "good"), b = bool_index(how);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		int r = relpoline_config_get(k->name, buf, sizeof buf);
		CHECK(r == 0, "env %s: get(%s) = %d", how, k->name, r);
		if (r)
			continue;
		const char *want = k->def;
		if (good)
			want = k->is_bool ? bool_canon(k->env) : k->env;
		else if (b >= 0 && k->is_bool)
			want = bool_canon(spellings[b]);
		if (want)
			CHECK(strcmp(buf, want) == 0, "env %s: RELPOLINE_%s reads back \"%s\", want \"%s\"",
			      how, k->name, buf, want);
	}
	return t_fails ? 1 : 0;
}

/* Unset every RELPOLINE_* variable (the api case's own ones included). */
static void clear_relpoline_env(void)
{
	for (int again = 1; again;) {
		again = 0;
		for (char **e = environ; *e; e++) {
			if (strncmp(*e, "RELPOLINE_", 10))
				continue;
			char name[256];
			const char *eq = strchr(*e, '=');
			size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
			snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), *e);
			unsetenv(name);
			again = 1;
			break;
		}
	}
}

static void set_envcheck_env(const char *how)
{
	clear_relpoline_env();
	if (!strcmp(how, "unknown")) {
		for (size_t i = 0; i < NUNKNOWN; i++)
			putenv((char *)unknown[i].var);
		for (size_t i = 0; i < sizeof wrapper_env / sizeof wrapper_env[0]; i++)
			putenv((char *)wrapper_env[i]);
		return;
	}
	int b = bool_index(how);
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		char name[64];
		env_name(k->name, name, sizeof name);
		if (b >= 0) {
			if (k->is_bool)
				setenv(name, spellings[b], 1);
		} else {
			setenv(name, !strcmp(how, "good") ? k->env : !strcmp(how, "bad") ? k->bad[0] : "", 1);
		}
	}
}

/* Lines of TEXT that begin with PREFIX and (EXACT) end there. */
static int count_lines(const char *text, const char *prefix, int exact)
{
	int n = 0;
	size_t plen = strlen(prefix);
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		if (len >= plen && !memcmp(line, prefix, plen) && (!exact || len == plen))
			n++;
		line = nl ? nl + 1 : NULL;
	}
	return n;
}

/* Read all of FD (from its start) into BUF, NUL-terminated. */
static size_t slurp_fd(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;
	lseek(fd, 0, SEEK_SET);
	while (n < len - 1 && (r = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
	return n;
}

static void run_envcheck(char **argv, const char *how)
{
	FILE *err = tmpfile();
	unlink(ENV_LOG);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		set_envcheck_env(how);
		if (err)
			dup2(fileno(err), 2);
		char *args[] = { argv[0], (char *)"envcheck", (char *)how, NULL };
		execv("/proc/self/exe", args);
		_exit(127);
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/waitpid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "env %s child: status %#x", how, st);
	/* The good child ran with RELPOLINE_JITDUMP=1 and RELPOLINE_PERF_MAP=1. */
	char dump[600];
	snprintf(dump, sizeof dump, "%s/jit-%d.dump", getenv("JITDUMPDIR") ? getenv("JITDUMPDIR") : "/tmp",
		 (int)pid);
	unlink(dump);
	snprintf(dump, sizeof dump, "/tmp/perf-%d.map", (int)pid);
	unlink(dump);
	if (!err)
		return;
	static char text[65536];
	size_t n = slurp_fd(fileno(err), text, sizeof text);
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
	if (!strcmp(how, "good") || bool_index(how) >= 0) {
		CHECK(!strstr(text, "warning"), "env %s: unexpected warning on stderr", how);
		return;
	}
	if (!strcmp(how, "unknown")) {
		for (size_t i = 0; i < NUNKNOWN; i++) {
			char line[512];
			snprintf(line, sizeof line, "relpoline: warning: %s", unknown[i].warning);
			int c = count_lines(text, line, !unknown[i].prefix);
			CHECK(c == 1, "env unknown: %d lines \"%s\", want 1", c, line);
		}
		int w = count_lines(text, "relpoline: warning: ", 0);
		CHECK(w == (int)NUNKNOWN, "env unknown: %d warnings, want %zu (one per unknown name, none "
		      "for the wrapper's variables)", w, NUNKNOWN);
		return;
	}
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		char name[64], *line = text;
		env_name(k->name, name, sizeof name);
		int warned = 0;
		for (char *nl; line && *line; line = nl ? nl + 1 : NULL) {
			nl = strchr(line, '\n');
			size_t len = nl ? (size_t)(nl - line) : strlen(line);
			char l[512];
			snprintf(l, sizeof l, "%.*s", (int)(len < sizeof l ? len : sizeof l - 1), line);
			char eq[80];
			snprintf(eq, sizeof eq, "relpoline: warning: %s=", name);
			if (strncmp(l, eq, strlen(eq)))
				continue;
			warned++;
			if (!strcmp(how, "empty"))
				CHECK(strstr(l, "is empty"), "env empty: the warning does not say empty: %s", l);
			if (k->is_bool)
				CHECK(strstr(l, BOOL_VALID), "env %s: the warning does not say %s: %s", how,
				      BOOL_VALID, l);
		}
		CHECK(warned == 1, "env %s: %d warnings name %s=\"%s\", want 1", how, warned, name,
		      !strcmp(how, "bad") ? k->bad[0] : "");
	}
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
	run_envcheck(argv, "empty");
	for (size_t i = 0; i < NSPELL; i++) {
		char how[16];
		snprintf(how, sizeof how, "bool%zu", i);
		run_envcheck(argv, how);
	}
	run_envcheck(argv, "unknown");
	return t_finish("t_config api");
}

/* ---- RELPOLINE_LOG: syslog, its fallback, a file ---- */

/* t_config logchild WANT: RELPOLINE_LOG reads back WANT; the start-up warnings are out already. */
static int logchild(const char *want)
{
	t_only_std_fds("after start-up");
	char buf[600];
	get("log", buf, sizeof buf);
	CHECK(strcmp(buf, want) == 0, "log = \"%s\", want \"%s\"", buf, want);
	t_epoch();
	for (int round = 0; round < 3; round++) {   /* decisions, for verbose lines */
		work(100, round & 1);
		t_epoch();
	}
	t_only_std_fds("after verbose epochs");
	return t_finish("t_config logchild");
}

#define START_WARNINGS 2
static const char *const log_env[] = { "RELPOLINE_STAT=1", "RELPOLINE_MIN_SHARE=lots",
				       "RELPOLINE_VERBOSE=yes", "RELPOLINE_EPOCH_MS=0",
				       "RELPOLINE_PROMOTE_MIN=16" };
/* The start-up warnings LOG_ENV gives, without the "relpoline: warning: " of stderr. */
static const char *const log_warnings[START_WARNINGS] = {
	"RELPOLINE_STAT is not a relpoline setting: ignored; did you mean RELPOLINE_STATS?",
	"RELPOLINE_MIN_SHARE=lots is not valid (valid: an integer from 0 to 1000); using the default",
};

#define MAXDG 256
static char dgram[MAXDG][700];
static int ndgram;

static void receive(int sock)
{
	if (sock < 0)
		return;
	for (;;) {
		char b[700];
		ssize_t r = recv(sock, b, sizeof b - 1, MSG_DONTWAIT);
		if (r < 0)
			return;
		b[r] = 0;
		if (ndgram < MAXDG)
			memcpy(dgram[ndgram++], b, (size_t)r + 1);
	}
}

/*
 * Run "t_config logchild WANT" with LOG_ENV and RELPOLINE_LOG=LOG, no fd
 * but 0-2 (stderr into ERR), receiving datagrams on SOCK meanwhile.
 * Returns the child's pid.
 */
static pid_t run_logchild(char **argv, const char *log, const char *want, int sock, char *err, size_t len)
{
	char tmpl[] = "/tmp/rp-t_config-err-XXXXXX";
	int efd = mkstemp(tmpl);
	if (efd < 0)
		DIE("mkstemp: %s", strerror(errno));
	unlink(tmpl);
	ndgram = 0;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		clear_relpoline_env();
		for (size_t i = 0; i < sizeof log_env / sizeof log_env[0]; i++)
			putenv((char *)log_env[i]);
		setenv("RELPOLINE_LOG", log, 1);
		dup2(efd, 2);
		if (syscall(SYS_close_range, 3u, ~0u, 0) < 0)
			for (int fd = 3; fd < 1024; fd++)
				close(fd);
		char *args[] = { argv[0], (char *)"logchild", (char *)want, NULL };
		execv("/proc/self/exe", args);
		_exit(127);
	}
	int st = 0;
	for (;;) {
		struct pollfd pf = { .fd = sock, .events = POLLIN };
		if (sock >= 0)
			poll(&pf, 1, 20);
		else
			usleep(20000);
		receive(sock);
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (w < 0) {
			CHECK(0, "waitpid: %s", strerror(errno));
			break;
		}
	}
	receive(sock);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "logchild RELPOLINE_LOG=%s: status %#x", log, st);
	slurp_fd(efd, err, len);
	close(efd);
	if (*err)
		fprintf(stderr, "--- logchild RELPOLINE_LOG=%s: stderr:\n%s---\n", log, err);
	return pid;
}

/* Each start-up warning once on stderr (or in a file's TEXT), as "relpoline: warning: ...". */
static void warnings_in(const char *text, const char *where)
{
	for (int i = 0; i < START_WARNINGS; i++) {
		char line[300];
		snprintf(line, sizeof line, "relpoline: warning: %s", log_warnings[i]);
		int c = count_lines(text, line, 1);
		CHECK(c == 1, "%s: %d lines \"%s\", want 1", where, c, line);
	}
}

static int syslog_mode(char **argv)
{
	if (geteuid() != 0) {
		printf("not root: no private /dev/log can be mounted; RELPOLINE_LOG=syslog not tested\n");
		return t_finish("t_config syslog");
	}
	/* A /dev of our own: nothing of the machine's logging is touched. */
	if (unshare(CLONE_NEWNS) < 0)
		DIE("unshare(CLONE_NEWNS): %s", strerror(errno));
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		DIE("mount --make-rprivate /: %s", strerror(errno));
	if (mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755") < 0)
		DIE("mount tmpfs /dev: %s", strerror(errno));
	int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	if (sock < 0 || bind(sock, (struct sockaddr *)&sa, sizeof sa) < 0)
		DIE("bind /dev/log: %s", strerror(errno));

	static char err[65536];
	pid_t pid = run_logchild(argv, "syslog", "syslog", sock, err, sizeof err);
	char warn[32], debug[32];
	snprintf(warn, sizeof warn, "<12>relpoline[%d]: ", (int)pid);
	snprintf(debug, sizeof debug, "<15>relpoline[%d]: ", (int)pid);
	int nwarn = 0, ndebug = 0;
	int seen[START_WARNINGS] = { 0 };
	for (int i = 0; i < ndgram; i++) {
		const char *d = dgram[i];
		printf("datagram: %s\n", d);
		CHECK(!strchr(d, '\n'), "datagram %d has a newline: \"%s\"", i, d);
		if (!strncmp(d, warn, strlen(warn))) {
			nwarn++;
			for (int j = 0; j < START_WARNINGS; j++)
				seen[j] += !strcmp(d + strlen(warn), log_warnings[j]);
		} else if (!strncmp(d, debug, strlen(debug))) {
			ndebug++;
		} else {
			CHECK(0, "datagram %d is neither \"%s...\" nor \"%s...\": \"%s\"", i, warn, debug, d);
		}
	}
	for (int j = 0; j < START_WARNINGS; j++)
		CHECK(seen[j] == 1, "%d datagrams \"%s%s\", want 1", seen[j], warn, log_warnings[j]);
	CHECK(nwarn == START_WARNINGS, "%d warning datagrams, want %d", nwarn, START_WARNINGS);
	/* The module's registration lines come right after the warnings: the queue (10) has room. */
	CHECK(ndebug >= 1, "no verbose (user.debug) datagram");
	/* Verbose lines beyond the socket's queue may fall back to stderr; warnings never did. */
	CHECK(!strstr(err, "warning"), "a warning on stderr with RELPOLINE_LOG=syslog");

	/* The socket file stays, nobody reads it: refused, so stderr. */
	close(sock);
	run_logchild(argv, "syslog", "syslog", -1, err, sizeof err);
	warnings_in(err, "/dev/log refuses");
	CHECK(ndgram == 0, "datagrams with the socket closed");
	/* No /dev/log at all. */
	unlink("/dev/log");
	run_logchild(argv, "SysLog", "syslog", -1, err, sizeof err);
	warnings_in(err, "no /dev/log");

	/* A file: appended to, nothing on stderr. */
	char path[64];
	snprintf(path, sizeof path, "/tmp/rp-t_config-%d-file.log", (int)getpid());
	unlink(path);
	run_logchild(argv, path, path, -1, err, sizeof err);
	CHECK(!strstr(err, "relpoline"), "relpoline wrote to stderr with RELPOLINE_LOG=%s", path);
	static char text[65536];
	int fd = open(path, O_RDONLY);
	CHECK(fd >= 0, "RELPOLINE_LOG=%s: no file: %s", path, strerror(errno));
	if (fd >= 0) {
		slurp_fd(fd, text, sizeof text);
		close(fd);
		warnings_in(text, path);
		CHECK(count_lines(text, "relpoline: site ", 0) + count_lines(text, "relpoline: module ", 0) > 0,
		      "%s: no verbose line", path);
	}
	unlink(path);
	return t_finish("t_config syslog");
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "envcheck") == 0)
		return envcheck(argv[2]);
	if (argc > 2 && strcmp(argv[1], "logchild") == 0)
		return logchild(argv[2]);
	if (argc > 1 && strcmp(argv[1], "syslog") == 0)
		return syslog_mode(argv);
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
