/*
 * The one configuration table.  Every setting is read from RELPOLINE_<NAME>
 * at start and can be changed through relpoline_config_set(NAME, VALUE)
 * with the same syntax.  A bad value, the empty one included, is refused:
 * from the environment with a warning that names the valid values, after
 * which the default stays; from the API with -EINVAL.  One syntax for every
 * row of a kind: a boolean takes 0|1|on|off|yes|no (any case) and reads
 * back on or off, whatever the row.  A RELPOLINE_* variable that names no
 * row gets one warning with the nearest name.  A new row needs nothing but
 * its line in opts[].
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "internal.h"

struct rp_config rp_cfg;

enum kind { K_BOOL, K_ENUM, K_LONG, K_STATS, K_LOG, K_PROFILE };

struct opt {
	const char *name;
	enum kind kind;
	size_t off;
	long def, min, max;
	const char *const *names;   /* K_ENUM: value i is names[i] */
	const char *help;
};

static const char *const fallback_names[] = { "retpoline", "indirect", NULL };
static const char *const stub_names[] = { "auto", "chain", "tree", NULL };
/* K_BOOL: the spellings of false and of true, in the order the warning lists them. */
static const char *const bool_false[] = { "0", "off", "no", NULL };
static const char *const bool_true[] = { "1", "on", "yes", NULL };

#define O(f) offsetof(struct rp_config, f)
static const struct opt opts[] = {
	{ "mode", K_BOOL, O(mode), RP_MODE_ON, 0, 1, NULL,
	  "off = plain retpolines, no learning, no patching" },
	{ "fallback", K_ENUM, O(fallback), RP_FB_RETPOLINE, 0, 1, fallback_names,
	  "what a miss or an unpromoted site runs" },
	{ "stub", K_ENUM, O(stub), RP_STUB_AUTO, 0, 2, stub_names,
	  "stub kind: auto = the cost model chooses chain, tree or fallback per site" },
	{ "stats", K_STATS, O(stats), RP_STATS_OFF, 0, 3, NULL,
	  "0, 1 (table on stderr at exit), sites (and a table per site) or json:PATH" },
	{ "stats_top", K_LONG, O(stats_top), 20, 0, 1000000, NULL,
	  "sites listed by STATS=sites and in the JSON, most samples first; 0 = all" },
	{ "epoch_ms", K_LONG, O(epoch_ms), 10, 0, 60000, NULL,
	  "worker period; 0 = no worker, only relpoline_epoch()" },
	{ "promote_min", K_LONG, O(promote_min), 256, 1, 4000000000L, NULL,
	  "samples a site needs before it is decided" },
	{ "max_targets", K_LONG, O(max_targets), RP_MAX_TARGETS_LIMIT, 1, RP_MAX_TARGETS_LIMIT, NULL,
	  "targets per stub (a chain holds at most 32)" },
	{ "min_coverage", K_LONG, O(min_coverage), 75, 1, 100, NULL,
	  "percent of a site's calls its stub must cover, else it stays on the fallback" },
	{ "min_share", K_LONG, O(min_share), 5, 0, 1000, NULL,
	  "per mille of a site's calls a target needs to get a compare" },
	{ "relearn_misses", K_LONG, O(relearn_misses), 1000, 1, 1L << 40, NULL,
	  "misses a promoted site's window needs before its miss rate is judged" },
	{ "max_versions", K_LONG, O(max_versions), 16, 1, 1000, NULL,
	  "stubs a site may get over its life (stubs are never reused)" },
	{ "pin_epochs", K_LONG, O(pin_epochs), 500, 1, 1L << 30, NULL,
	  "epochs a site stays on the fallback before it is learned again" },
	{ "arena_kb", K_LONG, O(arena_kb), 4096, 64, 1 << 20, NULL,
	  "stub memory per module, KiB" },
	{ "thread", K_BOOL, O(thread), 0, 0, 1, NULL,
	  "on = a worker thread runs epochs; off = no thread, the slow path runs them" },
	{ "perf_map", K_BOOL, O(perf_map), 0, 0, 1, NULL,
	  "on = describe stubs in /tmp/perf-PID.map" },
	{ "jitdump", K_BOOL, O(jitdump), 0, 0, 1, NULL,
	  "on = describe stubs in jit-PID.dump ($JITDUMPDIR, default /tmp) for perf inject --jit" },
	{ "log", K_LOG, O(log), RP_LOG_STDERR, 0, 2, NULL,
	  "where warnings go: stderr, a file PATH (appended to) or syslog (/dev/log)" },
	{ "verbose", K_BOOL, O(verbose), 0, 0, 1, NULL,
	  "on = log decisions (where RELPOLINE_LOG says)" },
	{ "profile", K_PROFILE, O(profile), RP_PROFILE_OFF, 0, 2, NULL,
	  "warm start: off, auto (the per-user cache) or a DIR for the saved profiles" },
	{ "profile_save_s", K_LONG, O(profile_save_s), 10, 0, 86400, NULL,
	  "seconds between profile saves from the epochs; 0 = only when a module leaves or at exit" },
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static long *slot(const struct opt *o) { return (long *)((char *)&rp_cfg + o->off); }

static const struct opt *find(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (!strcasecmp(opts[i].name, name))
			return &opts[i];
	return NULL;
}

static void valid_values(const struct opt *o, char *buf, size_t len)
{
	if (o->kind == K_BOOL) {
		snprintf(buf, len, "%s|%s|%s|%s|%s|%s", bool_false[0], bool_true[0], bool_true[1],
			 bool_false[1], bool_true[2], bool_false[2]);
	} else if (o->kind == K_ENUM) {
		size_t n = 0;
		buf[0] = 0;
		for (int i = 0; o->names[i]; i++)
			n += snprintf(buf + n, n < len ? len - n : 0, "%s%s", i ? "|" : "", o->names[i]);
	} else if (o->kind == K_STATS) {
		snprintf(buf, len, "0|1|sites|json:PATH (%%p: the pid)");
	} else if (o->kind == K_LOG) {
		snprintf(buf, len, "stderr|PATH|syslog");
	} else if (o->kind == K_PROFILE) {
		snprintf(buf, len, "off|auto|DIR");
	} else {
		snprintf(buf, len, "an integer from %ld to %ld", o->min, o->max);
	}
}

/* NAME in upper case into OUT (LEN bytes, NUL-terminated); returns its length. */
static size_t upper(char *out, size_t len, const char *name)
{
	size_t i;
	for (i = 0; name[i] && i < len - 1; i++)
		out[i] = (char)toupper((unsigned char)name[i]);
	out[i] = 0;
	return i;
}

static int parse(const struct opt *o, const char *v, long *out, char *path, size_t plen)
{
	if (!v[0])
		return -EINVAL;
	if (o->kind == K_BOOL) {
		for (int i = 0; bool_false[i]; i++) {
			if (!strcasecmp(v, bool_false[i])) {
				*out = 0;
				return 0;
			}
			if (!strcasecmp(v, bool_true[i])) {
				*out = 1;
				return 0;
			}
		}
		return -EINVAL;
	}
	if (o->kind == K_ENUM) {
		for (int i = 0; o->names[i]; i++)
			if (!strcasecmp(v, o->names[i])) {
				*out = i;
				return 0;
			}
		return -EINVAL;
	}
	if (o->kind == K_STATS) {
		if (!strcmp(v, "0")) { *out = 0; return 0; }
		if (!strcmp(v, "1")) { *out = RP_STATS_TABLE; return 0; }
		if (!strcasecmp(v, "sites")) { *out = RP_STATS_SITES; return 0; }
		if (!strncasecmp(v, "json:", 5) && v[5] && strlen(v + 5) < plen) {
			snprintf(path, plen, "%s", v + 5);
			*out = RP_STATS_JSON;
			return 0;
		}
		return -EINVAL;
	}
	if (o->kind == K_LOG) {
		/* A file named like a keyword is ./stderr or ./syslog. */
		if (!strcasecmp(v, "stderr")) { *out = RP_LOG_STDERR; return 0; }
		if (!strcasecmp(v, "syslog")) { *out = RP_LOG_SYSLOG; return 0; }
		if (strlen(v) < plen) {
			snprintf(path, plen, "%s", v);
			*out = RP_LOG_FILE;
			return 0;
		}
		return -EINVAL;
	}
	if (o->kind == K_PROFILE) {
		/* A directory named like a keyword is ./off or ./auto. */
		if (!strcasecmp(v, "off") || !strcmp(v, "0")) { *out = RP_PROFILE_OFF; return 0; }
		if (!strcasecmp(v, "auto")) { *out = RP_PROFILE_AUTO; return 0; }
		if (v[0] && strlen(v) < plen) {
			snprintf(path, plen, "%s", v);
			*out = RP_PROFILE_DIR;
			return 0;
		}
		return -EINVAL;
	}
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	while (*end && isspace((unsigned char)*end))
		end++;
	if (errno || end == v || *end || x < o->min || x > o->max)
		return -EINVAL;
	*out = x;
	return 0;
}

int rp_config_set(const char *name, const char *value, bool from_env)
{
	const struct opt *o = find(name);
	if (!o)
		return -ENOENT;
	long x;
	char path[sizeof(rp_cfg.stats_path)];
	path[0] = 0;
	int r = parse(o, value, &x, path, sizeof(path));
	if (r) {
		if (from_env) {
			char vv[128], up[64];
			valid_values(o, vv, sizeof(vv));
			upper(up, sizeof(up), o->name);
			if (value[0])
				rp_warn("RELPOLINE_%s=%s is not valid (valid: %s); using the default", up,
					value, vv);
			else
				rp_warn("RELPOLINE_%s= is empty (valid: %s); using the default", up, vv);
		}
		return r;
	}
	*slot(o) = x;
	if (o->kind == K_STATS && x == RP_STATS_JSON)
		memcpy(rp_cfg.stats_path, path, sizeof(path));
	if (o->kind == K_LOG && x == RP_LOG_FILE)
		memcpy(rp_cfg.log_path, path, sizeof(path));
	if (o->kind == K_PROFILE && x == RP_PROFILE_DIR)
		memcpy(rp_cfg.profile_path, path, sizeof(path));
	return 0;
}

/*
 * RELPOLINE_* variables that are no setting of ours but are read by the
 * compiler wrapper (tools/relpoline-cc) at build time.  Programs are often
 * run during a build with these exported: they are valid here too.
 */
static const char *const wrapper_vars[] = { "CC", "CXX", "INCDIR", "LIBDIR", "JUMP_TABLES", NULL };

#define PREFIX "RELPOLINE_"
#define PREFIX_LEN (sizeof(PREFIX) - 1)

/* NAME (LEN bytes, after the prefix) is exactly the upper-case spelling of ROW. */
static bool env_is(const char *row, const char *name, size_t len)
{
	size_t i;
	for (i = 0; i < len && row[i]; i++)
		if (toupper((unsigned char)row[i]) != name[i])
			return false;
	return i == len && !row[i];
}

/*
 * Edit distance (insertions, deletions, substitutions and transpositions of
 * two neighbours, each 1; case ignored) between A (ALEN bytes) and B; ~0u
 * for a name longer than any row would be.  The dynamic programme keeps
 * three rows: a transposition looks two back.
 */
#define NAME_MAX_LEN 48
static unsigned distance(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	if (alen > NAME_MAX_LEN || blen > NAME_MAX_LEN)
		return ~0u;
	unsigned rows[3][NAME_MAX_LEN + 1];
	unsigned *pp = rows[0], *p = rows[1], *c = rows[2];
	for (size_t j = 0; j <= blen; j++)
		p[j] = (unsigned)j;
	for (size_t i = 1; i <= alen; i++) {
		c[0] = (unsigned)i;
		int ca = toupper((unsigned char)a[i - 1]);
		for (size_t j = 1; j <= blen; j++) {
			int cb = toupper((unsigned char)b[j - 1]);
			unsigned d = p[j - 1] + (ca != cb);
			if (p[j] + 1 < d)
				d = p[j] + 1;
			if (c[j - 1] + 1 < d)
				d = c[j - 1] + 1;
			if (i > 1 && j > 1 && ca == toupper((unsigned char)b[j - 2]) &&
			    toupper((unsigned char)a[i - 2]) == cb && pp[j - 2] + 1 < d)
				d = pp[j - 2] + 1;
			c[j] = d;
		}
		unsigned *t = pp;
		pp = p;
		p = c;
		c = t;
	}
	return p[blen];
}

/*
 * One warning for RELPOLINE_<NAME> (LEN bytes), which is neither a row nor a
 * wrapper variable: it names the closest of those if that is within about
 * a third of its length, else lists the settings.
 */
static void warn_unknown(const char *name, size_t len)
{
	const char *best = NULL;
	unsigned bd = ~0u;
	bool wrapper = false;
	for (size_t i = 0; i < NOPTS; i++) {
		unsigned d = distance(name, len, opts[i].name);
		if (d < bd) {
			bd = d;
			best = opts[i].name;
		}
	}
	for (int i = 0; wrapper_vars[i]; i++) {
		unsigned d = distance(name, len, wrapper_vars[i]);
		if (d < bd) {
			bd = d;
			best = wrapper_vars[i];
			wrapper = true;
		}
	}
	int shown = len > 64 ? 64 : (int)len;
	if (best && bd <= (strlen(best) + 2) / 3) {
		char up[NAME_MAX_LEN + 1];
		upper(up, sizeof(up), best);
		rp_warn(PREFIX "%.*s is not a relpoline setting: ignored; did you mean " PREFIX "%s%s?",
			shown, name, up, wrapper ? " (read by relpoline-cc at build time)" : "");
		return;
	}
	char list[400];
	size_t n = 0;
	for (size_t i = 0; i < NOPTS && n + 2 + strlen(opts[i].name) < sizeof(list); i++) {
		if (i)
			list[n++] = ' ';
		n += upper(list + n, sizeof(list) - n, opts[i].name);
	}
	list[n] = 0;
	rp_warn(PREFIX "%.*s is not a relpoline setting: ignored (settings: %s)", shown, name, list);
}

/*
 * At start, from the constructor (before main, or in dlopen), on the
 * loading thread.  environ is read in place: getenv per row could not
 * find the names that match no row.
 */
void rp_config_load_env(void)
{
	for (size_t i = 0; i < NOPTS; i++)
		*slot(&opts[i]) = opts[i].def;
	if (!environ)
		return;
	/* LOG first: the warnings about the other variables go where it says. */
	for (int pass = 0; pass < 2; pass++) {
		for (char **e = environ; *e; e++) {
			if (strncmp(*e, PREFIX, PREFIX_LEN))
				continue;
			const char *name = *e + PREFIX_LEN, *eq = strchr(name, '=');
			if (!eq)
				continue;
			size_t len = (size_t)(eq - name);
			const struct opt *o = NULL;
			for (size_t i = 0; i < NOPTS && !o; i++)
				if (env_is(opts[i].name, name, len))
					o = &opts[i];
			if (o && (o->kind == K_LOG) == (pass == 0))
				rp_config_set(o->name, eq + 1, true);
			if (o || pass == 0)
				continue;
			bool wrapper = false;
			for (int i = 0; wrapper_vars[i] && !wrapper; i++)
				wrapper = env_is(wrapper_vars[i], name, len);
			if (!wrapper)
				warn_unknown(name, len);
		}
	}
}

int rp_config_get(const char *name, char *buf, size_t len)
{
	const struct opt *o = find(name);
	if (!o)
		return -ENOENT;
	long x = *slot(o);
	int n;
	if (o->kind == K_BOOL)
		n = snprintf(buf, len, "%s", x ? "on" : "off");
	else if (o->kind == K_ENUM)
		n = snprintf(buf, len, "%s", o->names[x]);
	else if (o->kind == K_STATS)
		n = x == RP_STATS_JSON ? snprintf(buf, len, "json:%s", rp_cfg.stats_path)
		  : x == RP_STATS_SITES ? snprintf(buf, len, "sites") : snprintf(buf, len, "%ld", x);
	else if (o->kind == K_LOG)
		n = snprintf(buf, len, "%s", x == RP_LOG_FILE ? rp_cfg.log_path :
					     x == RP_LOG_SYSLOG ? "syslog" : "stderr");
	else if (o->kind == K_PROFILE)
		n = snprintf(buf, len, "%s", x == RP_PROFILE_DIR ? rp_cfg.profile_path :
					     x == RP_PROFILE_AUTO ? "auto" : "off");
	else
		n = snprintf(buf, len, "%ld", x);
	return n < 0 || (size_t)n >= len ? -ERANGE : 0;
}
