/*
 * The one configuration table.  Every setting is read from RELPOLINE_<NAME>
 * at start and can be changed through relpoline_config_set(NAME, VALUE)
 * with the same syntax.  A bad value is refused: from the environment with
 * a warning that names the valid values, after which the default stays;
 * from the API with -EINVAL.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "internal.h"

struct rp_config rp_cfg;

enum kind { K_ENUM, K_LONG, K_STATS, K_LOG };

struct opt {
	const char *name;
	enum kind kind;
	size_t off;
	long def, min, max;
	const char *const *names;   /* K_ENUM: value i is names[i] */
	const char *help;
};

static const char *const mode_names[] = { "off", "on", NULL };
static const char *const fallback_names[] = { "retpoline", "indirect", NULL };
static const char *const stub_names[] = { "auto", "chain", "tree", NULL };
static const char *const bool_names[] = { "0", "1", NULL };
static const char *const onoff_names[] = { "off", "on", NULL };

#define O(f) offsetof(struct rp_config, f)
static const struct opt opts[] = {
	{ "mode", K_ENUM, O(mode), RP_MODE_ON, 0, 1, mode_names,
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
	{ "thread", K_ENUM, O(thread), 0, 0, 1, onoff_names,
	  "on = a worker thread runs epochs; off = no thread, the slow path runs them" },
	{ "perf_map", K_ENUM, O(perf_map), 0, 0, 1, bool_names,
	  "1 = describe stubs in /tmp/perf-PID.map" },
	{ "log", K_LOG, O(log), 0, 0, 1, NULL,
	  "where warnings go: stderr, or a file PATH (appended to)" },
	{ "verbose", K_ENUM, O(verbose), 0, 0, 1, bool_names,
	  "1 = log decisions on stderr" },
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
	if (o->kind == K_ENUM) {
		size_t n = 0;
		buf[0] = 0;
		for (int i = 0; o->names[i]; i++)
			n += snprintf(buf + n, n < len ? len - n : 0, "%s%s", i ? "|" : "", o->names[i]);
	} else if (o->kind == K_STATS) {
		snprintf(buf, len, "0|1|sites|json:PATH (%%p: the pid)");
	} else if (o->kind == K_LOG) {
		snprintf(buf, len, "stderr|PATH");
	} else {
		snprintf(buf, len, "an integer from %ld to %ld", o->min, o->max);
	}
}

static int parse(const struct opt *o, const char *v, long *out, char *path, size_t plen)
{
	if (o->kind == K_ENUM) {
		for (int i = 0; o->names[i]; i++)
			if (!strcasecmp(v, o->names[i])) {
				*out = i;
				return 0;
			}
		return -EINVAL;
	}
	if (o->kind == K_STATS) {
		if (!strcmp(v, "0") || !strcmp(v, "")) { *out = 0; return 0; }
		if (!strcmp(v, "1")) { *out = RP_STATS_TABLE; return 0; }
		if (!strcmp(v, "sites")) { *out = RP_STATS_SITES; return 0; }
		if (!strncmp(v, "json:", 5) && v[5] && strlen(v + 5) < plen) {
			snprintf(path, plen, "%s", v + 5);
			*out = RP_STATS_JSON;
			return 0;
		}
		return -EINVAL;
	}
	if (o->kind == K_LOG) {
		if (!strcmp(v, "stderr")) { *out = 0; return 0; }
		if (v[0] && strlen(v) < plen) {
			snprintf(path, plen, "%s", v);
			*out = 1;
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
			size_t i;
			for (i = 0; o->name[i] && i < sizeof(up) - 1; i++)
				up[i] = (char)toupper((unsigned char)o->name[i]);
			up[i] = 0;
			rp_warn("RELPOLINE_%s=%s is not valid (valid: %s); using the default", up, value, vv);
		}
		return r;
	}
	*slot(o) = x;
	if (o->kind == K_STATS && x == RP_STATS_JSON)
		memcpy(rp_cfg.stats_path, path, sizeof(path));
	if (o->kind == K_LOG && x == 1)
		memcpy(rp_cfg.log_path, path, sizeof(path));
	return 0;
}

void rp_config_load_env(void)
{
	for (size_t i = 0; i < NOPTS; i++)
		*slot(&opts[i]) = opts[i].def;
	/* LOG first: the warnings about the other variables go where it says. */
	for (size_t k = 0; k < 2 * NOPTS; k++) {
		size_t i = k % NOPTS;
		if ((k < NOPTS) != (opts[i].kind == K_LOG))
			continue;
		char env[64] = "RELPOLINE_";
		size_t n = strlen(env);
		for (const char *p = opts[i].name; *p && n < sizeof(env) - 1; p++)
			env[n++] = (char)toupper((unsigned char)*p);
		env[n] = 0;
		const char *v = getenv(env);
		if (v)
			rp_config_set(opts[i].name, v, true);
	}
}

int rp_config_get(const char *name, char *buf, size_t len)
{
	const struct opt *o = find(name);
	if (!o)
		return -ENOENT;
	long x = *slot(o);
	int n;
	if (o->kind == K_ENUM)
		n = snprintf(buf, len, "%s", o->names[x]);
	else if (o->kind == K_STATS)
		n = x == RP_STATS_JSON ? snprintf(buf, len, "json:%s", rp_cfg.stats_path)
		  : x == RP_STATS_SITES ? snprintf(buf, len, "sites") : snprintf(buf, len, "%ld", x);
	else if (o->kind == K_LOG)
		n = snprintf(buf, len, "%s", x ? rp_cfg.log_path : "stderr");
	else
		n = snprintf(buf, len, "%ld", x);
	return n < 0 || (size_t)n >= len ? -ERANGE : 0;
}
