/*
 * Reporting: the stats table (RELPOLINE_STATS=1, or
 * relpoline_stats_print), the per-site table (RELPOLINE_STATS=sites) and
 * the JSON file (RELPOLINE_STATS=json:PATH, with a "sites" array).  Sites
 * are listed by samples (slow-path calls: learning samples and stub
 * misses), most first, at most RELPOLINE_STATS_TOP of them, each with its
 * state, why, and its hottest targets named by symbols.c.  Warnings are
 * log.c's.
 * Hits on a stub are not counted: counting them would put a memory
 * increment on the path whose whole point is to cost a compare.
 *
 * No stdio: FILE streams allocate with the application's malloc.  Text is
 * formatted into buffers on the stack and written with write(2); files are
 * opened, written and closed at once (no descriptor is kept).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

#define FIELDS(X) \
	X(modules, "modules with thunks") \
	X(sites_seen, "sites seen (verified)") \
	X(sites_call, "  call sites") \
	X(sites_tail, "  tail sites (jmp/jcc)") \
	X(sites_promoted, "sites promoted (on a stub)") \
	X(sites_chain, "  on a chain") \
	X(sites_tree, "  on a tree") \
	X(sites_pinned, "sites left on the fallback") \
	X(sites_rejected, "sites rejected (not verifiable)") \
	X(stubs_emitted, "stubs emitted (all versions)") \
	X(stub_targets, "targets in stubs in use") \
	X(far_targets, "hot targets out of reach") \
	X(relearns, "relearns (misses grew)") \
	X(records, "slow-path samples") \
	X(records_dropped, "samples dropped") \
	X(misses, "stub misses") \
	X(epochs, "epochs") \
	X(patch_passes, "patch passes (bytes changed)") \
	X(patch_passes_empty, "passes with nothing to change") \
	X(sites_patched, "site rewrites and cell retargets") \
	X(bytes_written, "code bytes written") \
	X(membarriers, "membarriers") \
	X(syscalls, "syscalls (patcher, arenas, memory)") \
	X(arena_bytes, "stub memory, bytes") \
	X(profile_sites, "sites promoted from a profile") \
	X(profile_relearned, "  of which relearned since") \
	X(profile_read, "profile files read") \
	X(profile_written, "profile files written") \
	X(profile_rejected, "profile files rejected")

static int format_table(const struct relpoline_stats *s, char *buf, size_t len)
{
	size_t n = 0;
#define P(...) n += (size_t)snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__)
	P("relpoline %s stats (pid %d)\n", RP_VERSION, (int)getpid());
#define ROW(f, label) P("  %-34s %14llu\n", label, (unsigned long long)s->f);
	FIELDS(ROW)
	P("  %-34s %14s\n", "stub hits", "not counted");
	P("  %-34s %14.3f\n", "time in epochs, ms", (double)s->worker_ns / 1e6);
	if (s->first_promotion_ns)
		P("  %-34s %14.3f\n", "first promotion after start, ms", (double)s->first_promotion_ns / 1e6);
	P("  %-34s", "promoted sites by targets");
	for (int i = 1; i <= 16; i++)
		if (s->stub_hist[i])
			P(" %d%s:%llu", i, i == 16 ? "+" : "", (unsigned long long)s->stub_hist[i]);
	P("\n");
	if (s->stub_hist[16]) {
		static const char *const lab[9] = { "1", "2", "3-4", "5-8", "9-16", "17-32", "33-64",
						    "65-128", "129-256" };
		P("  %-34s", "  of which by targets, up to 256");
		for (int i = 5; i < 9; i++)
			if (s->stub_hist_log2[i])
				P(" %s:%llu", lab[i], (unsigned long long)s->stub_hist_log2[i]);
		P("\n");
	}
	if (s->stub_targets)
		P("  %-34s %14.1f\n", "stub bytes per promoted target",
		  (double)s->arena_bytes / (double)s->stub_targets);
	return (int)n;
#undef ROW
#undef P
}

static int print_table(int fd, const struct relpoline_stats *s0)
{
	struct relpoline_stats s = *s0;
	char buf[4096];
	int n = format_table(&s, buf, sizeof(buf));
	if (n > (int)sizeof(buf))
		n = (int)sizeof(buf);
	return write(fd, buf, (size_t)n) == n ? 0 : -errno;
}

RP_API int relpoline_stats_print(int fd)
{
	struct relpoline_stats s;
	rp_stats_snapshot(&s);
	return print_table(fd, &s);
}

static void count_module(struct rp_module *m, void *arg)
{
	(void)m;
	++*(uint64_t *)arg;
}

/* PATH with %p replaced by the pid (%% by %), into OUT. */
static void expand_path(const char *path, char *out, size_t len)
{
	size_t n = 0;
	for (const char *p = path; *p && n + 1 < len; p++) {
		if (p[0] == '%' && p[1] == 'p') {
			n += (size_t)snprintf(out + n, len - n, "%d", (int)getpid());
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			out[n++] = '%';
			p++;
		} else {
			out[n++] = *p;
		}
	}
	out[n < len ? n : len - 1] = 0;
}

/* ---- the per-site report (RELPOLINE_STATS=sites, and the JSON's "sites") ---- */

/* Text built in rp_alloc'd memory: a report of many sites outgrows any stack buffer. */
struct out {
	char *p;
	size_t n, cap;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
	for (;;) {
		size_t room = o->cap - o->n;
		va_list ap;
		va_start(ap, fmt);
		int k = vsnprintf(o->p ? o->p + o->n : NULL, room, fmt, ap);
		va_end(ap);
		if (k < 0)
			return;
		if ((size_t)k < room) {
			o->n += (size_t)k;
			return;
		}
		size_t nc = o->cap ? o->cap * 2 : 16384;
		while (nc <= o->n + (size_t)k)
			nc *= 2;
		char *np = rp_realloc(o->p, nc);
		if (!np)
			return;   /* the text ends here: better a short report than none */
		o->p = np;
		o->cap = nc;
	}
}

/* S as a JSON string. */
static void out_json_str(struct out *o, const char *s)
{
	outf(o, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			outf(o, "\\%c", c);
		else if (c < 0x20)
			outf(o, "\\u%04x", c);
		else
			outf(o, "%c", c);
	}
	outf(o, "\"");
}

static int by_samples(const void *a, const void *b)
{
	const struct rp_site *x = *(struct rp_site *const *)a, *y = *(struct rp_site *const *)b;
	if (x->samples != y->samples)
		return x->samples > y->samples ? -1 : 1;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

struct site_list { struct rp_site **v; size_t n, cap; };

static void collect(struct rp_site *s, void *arg)
{
	struct site_list *l = arg;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 256;
		struct rp_site **nv = rp_realloc(l->v, nc * sizeof(*nv));
		if (!nv)
			return;
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n++] = s;
}

/*
 * What the report says of S's targets: the current window while it learns,
 * else the mix of its last decision (policy.c keeps it).  TOP gets up to
 * RP_SITE_TOP targets, count = share in parts per million; *SEEN how many
 * distinct targets the mix had.
 */
/* The RP_SITE_TOP most frequent targets of S's current window (samples or misses) into TOP. */
static unsigned window_top(const struct rp_site *s, struct rp_count *top)
{
	unsigned n = 0;
	for (uint32_t i = 0; s->acc && i < s->nacc; i++) {
		struct rp_count c = s->acc[i];
		if (!c.count)
			continue;
		unsigned j = n < RP_SITE_TOP ? n++ : RP_SITE_TOP;
		if (j == RP_SITE_TOP) {
			if (c.count <= top[RP_SITE_TOP - 1].count)
				continue;
			j--;
		}
		for (; j > 0 && top[j - 1].count < c.count; j--)
			top[j] = top[j - 1];
		top[j] = c;
	}
	return n;
}

static unsigned site_targets(const struct rp_site *s, struct rp_count *top, uint32_t *seen)
{
	if (s->state == RP_SS_LEARNING && s->acc && s->acc_total) {
		unsigned n = window_top(s, top);
		for (unsigned i = 0; i < n; i++)
			top[i].count = top[i].count * 1000000 / s->acc_total;
		*seen = s->nacc;
		return n;
	}
	for (unsigned i = 0; i < s->ntop; i++)
		top[i] = (struct rp_count){ s->top_target[i], s->top_ppm[i] };
	*seen = s->mix_n;
	return s->ntop;
}

static bool in_stub(const struct rp_site *s, uint64_t t)
{
	if (s->state != RP_SS_PROMOTED)
		return false;
	for (uint32_t i = 0; i < s->ntargets; i++)
		if (s->targets[i] == t)
			return true;
	return false;
}

static const char *const kind_names[] = { "call", "jmp", "jcc" };

/* STATE gets the site's state ("learning", "chain", "tree", "pinned", "rejected"), REASON why (or ""). */
static void site_state(const struct rp_site *s, const char **state, char *reason, size_t len)
{
	static const char *const why[] = {
		[RP_WHY_NONE] = "",
		[RP_WHY_COST] = "cost",
		[RP_WHY_COVERAGE] = "coverage",
		[RP_WHY_NOSTUB] = "no stub could be made",
	};
	reason[0] = 0;
	switch (s->state) {
	case RP_SS_LEARNING:
		*state = "learning";
		break;
	case RP_SS_PROMOTED:
		*state = s->skind == RP_STUB_TREE ? "tree" : "chain";
		break;
	case RP_SS_PINNED:
		*state = "pinned";
		break;
	default:
		*state = "rejected";
		snprintf(reason, len, "its cell could not be written");
		return;
	}
	if (s->why == RP_WHY_VERSIONS)
		snprintf(reason, len, "versions exhausted (max_versions=%ld)", rp_cfg.max_versions);
	else if (s->why < sizeof(why) / sizeof(why[0]) && why[s->why])
		snprintf(reason, len, "%s", why[s->why]);
	else
		snprintf(reason, len, "reason %u", s->why);
}

/* The sites, most samples first, at most stats_top of them; *TOTAL: all the sites with a record. */
static struct rp_site **sorted_sites(size_t *n, size_t *total)
{
	struct site_list l = { 0 };
	rp_sites_materialize_all();   /* a warm start's sites are sites too */
	rp_sites_foreach(collect, &l);
	rp_sort(l.v, l.n, sizeof(*l.v), by_samples);
	*total = l.n;
	*n = rp_cfg.stats_top > 0 && (size_t)rp_cfg.stats_top < l.n ? (size_t)rp_cfg.stats_top : l.n;
	return l.v;
}

static const char *basename_of(const char *path)
{
	const char *b = strrchr(path, '/');
	return b && b[1] ? b + 1 : path;
}

/* The per-site table, under rp_lock. */
static void sites_table(struct out *o)
{
	size_t n, total;
	struct rp_site **v = sorted_sites(&n, &total);
	char sym[256], mod[512], reason[96];
	outf(o, "relpoline sites (pid %d), most samples first: %zu of %zu (RELPOLINE_STATS_TOP=%ld)\n",
	     (int)getpid(), n, total, rp_cfg.stats_top);
	outf(o, "  %9s %9s %-4s %5s  %-44s %s\n", "samples", "misses", "kind", "stubs", "site", "module");
	for (size_t i = 0; i < n; i++) {
		const struct rp_site *s = v[i];
		const char *state;
		rp_symbolize(s->addr, sym, sizeof(sym));
		rp_module_path(s->mod, mod, sizeof(mod));
		site_state(s, &state, reason, sizeof(reason));
		outf(o, "  %9llu %9llu %-4s %5u  %-44s %s\n", (unsigned long long)s->samples,
		     (unsigned long long)s->misses, kind_names[s->kind % 3], s->versions, sym,
		     basename_of(mod));
		outf(o, "  %21s %s%s%s", "", state, reason[0] ? ": " : "", reason);
		struct rp_count top[RP_SITE_TOP];
		uint32_t seen;
		unsigned nt = site_targets(s, top, &seen);
		for (unsigned k = 0; k < nt; k++) {
			rp_symbolize(top[k].target, sym, sizeof(sym));
			outf(o, "%s %s %.1f%%", k ? "," : ", targets:", sym, (double)top[k].count / 1e4);
		}
		if (seen > nt)
			outf(o, " (%u in all)", seen);
		/* A promoted site's window holds its stub's misses: what they hit says why it misses. */
		nt = s->state == RP_SS_PROMOTED ? window_top(s, top) : 0;
		for (unsigned k = 0; k < nt; k++) {
			rp_symbolize(top[k].target, sym, sizeof(sym));
			outf(o, "%s %s %llu", k ? "," : "; missing now:", sym, (unsigned long long)top[k].count);
		}
		outf(o, "\n");
	}
	rp_free(v);
}

/* The JSON "sites" array (and its counts), under rp_lock. */
static void sites_json(struct out *o)
{
	size_t n, total;
	struct rp_site **v = sorted_sites(&n, &total);
	char sym[256], mod[512], reason[96];
	outf(o, ", \"stats_top\": %ld, \"sites_total\": %zu, \"sites\": [", rp_cfg.stats_top, total);
	for (size_t i = 0; i < n; i++) {
		const struct rp_site *s = v[i];
		const char *state;
		rp_symbolize(s->addr, sym, sizeof(sym));
		rp_module_path(s->mod, mod, sizeof(mod));
		site_state(s, &state, reason, sizeof(reason));
		outf(o, "%s\n  {\"module\": ", i ? "," : "");
		out_json_str(o, mod);
		outf(o, ", \"address\": \"%#lx\", \"offset\": \"%#lx\", \"symbol\": ", (unsigned long)s->addr,
		     (unsigned long)(s->addr - s->mod->bias));
		out_json_str(o, sym);
		outf(o, ", \"kind\": \"%s\", \"state\": \"%s\", \"reason\": ", kind_names[s->kind % 3], state);
		out_json_str(o, reason);
		struct rp_count top[RP_SITE_TOP];
		uint32_t seen;
		unsigned nt = site_targets(s, top, &seen);
		outf(o, ", \"samples\": %llu, \"misses\": %llu, \"stubs\": %u, \"stub_targets\": %u, "
		     "\"targets_seen\": %u, \"targets\": [", (unsigned long long)s->samples,
		     (unsigned long long)s->misses, s->versions,
		     s->state == RP_SS_PROMOTED ? s->ntargets : 0, seen);
		for (unsigned k = 0; k < nt; k++) {
			rp_symbolize(top[k].target, sym, sizeof(sym));
			outf(o, "%s{\"address\": \"%#lx\", \"symbol\": ", k ? ", " : "",
			     (unsigned long)top[k].target);
			out_json_str(o, sym);
			outf(o, ", \"share\": %.4f, \"in_stub\": %s}", (double)top[k].count / 1e6,
			     in_stub(s, top[k].target) ? "true" : "false");
		}
		outf(o, "], \"missing_now\": [");
		nt = s->state == RP_SS_PROMOTED ? window_top(s, top) : 0;
		for (unsigned k = 0; k < nt; k++) {
			rp_symbolize(top[k].target, sym, sizeof(sym));
			outf(o, "%s{\"address\": \"%#lx\", \"symbol\": ", k ? ", " : "",
			     (unsigned long)top[k].target);
			out_json_str(o, sym);
			outf(o, ", \"misses\": %llu}", (unsigned long long)top[k].count);
		}
		outf(o, "]}");
	}
	outf(o, "%s]", n ? "\n" : "");
	rp_free(v);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void write_json(const struct relpoline_stats *s, const char *pattern)
{
	char path[600], buf[4096];
	size_t n = 0;
	expand_path(pattern, path, sizeof(path));
#define P(...) n += (size_t)snprintf(buf + n, n < sizeof(buf) ? sizeof(buf) - n : 0, __VA_ARGS__)
	P("{\"version\": \"%s\", \"pid\": %d", RP_VERSION, (int)getpid());
#define J(fld, label) P(", \"%s\": %llu", #fld, (unsigned long long)s->fld);
	FIELDS(J)
#undef J
	P(", \"worker_ns\": %llu, \"first_promotion_ns\": %llu, \"stub_hist\": [",
	  (unsigned long long)s->worker_ns, (unsigned long long)s->first_promotion_ns);
	for (int i = 0; i <= 16; i++)
		P("%s%llu", i ? ", " : "", (unsigned long long)s->stub_hist[i]);
	P("], \"stub_hist_log2\": [");
	for (int i = 0; i < 9; i++)
		P("%s%llu", i ? ", " : "", (unsigned long long)s->stub_hist_log2[i]);
	P("]");
#undef P
	struct out o = { 0 };
	pthread_mutex_lock(&rp_lock);
	sites_json(&o);
	pthread_mutex_unlock(&rp_lock);
	outf(&o, "}\n");
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = fd < 0 ? errno : 0;
	if (fd >= 0) {
		ssize_t w = write(fd, buf, n);
		if (w != (ssize_t)n)
			err = w < 0 ? errno : ENOSPC;
		if (!err && o.n) {
			w = write(fd, o.p, o.n);
			if (w != (ssize_t)o.n)
				err = w < 0 ? errno : ENOSPC;
		}
		if (close(fd) < 0 && !err)
			err = errno;
	}
	if (!o.n && !err)
		err = ENOMEM;   /* the closing brace is missing: say so rather than leave it unsaid */
	pthread_mutex_lock(&rp_lock);
	rp_free(o.p);
	pthread_mutex_unlock(&rp_lock);
	if (err)
		rp_warn("cannot write stats to %s: %s", path, rp_strerror(err));
}

void rp_report_at_exit(void)
{
	if (rp_cfg.stats == RP_STATS_OFF)
		return;
	struct relpoline_stats s;
	rp_stats_snapshot(&s);
	/*
	 * The main program's destructor (and those of libraries not yet
	 * closed) ran before this handler and retired their modules: they
	 * cannot tell exit from dlclose.  At exit "modules" counts the
	 * modules whose code is still mapped, as it did while they ran.
	 */
	uint64_t registered = 0;
	pthread_mutex_lock(&rp_lock);
	rp_modules_foreach(count_module, &registered);
	pthread_mutex_unlock(&rp_lock);
	s.modules = registered;
	if (rp_cfg.stats == RP_STATS_JSON) {
		write_json(&s, rp_cfg.stats_path);
		return;
	}
	print_table(2, &s);
	if (rp_cfg.stats != RP_STATS_SITES)
		return;
	struct out o = { 0 };
	pthread_mutex_lock(&rp_lock);
	sites_table(&o);
	pthread_mutex_unlock(&rp_lock);
	write_all(2, o.p, o.n);
	pthread_mutex_lock(&rp_lock);
	rp_free(o.p);
	pthread_mutex_unlock(&rp_lock);
}
