/*
 * Reporting: the stats table (RELPOLINE_STATS=1, or relpoline_stats_print)
 * and the JSON file (RELPOLINE_STATS=json:PATH).  Warnings are log.c's.
 * Hits on a stub are not counted: counting them would put a memory
 * increment on the path whose whole point is to cost a compare.
 *
 * No stdio: FILE streams allocate with the application's malloc.  Text is
 * formatted into buffers on the stack and written with write(2); files are
 * opened, written and closed at once (no descriptor is kept).
 */
#include <errno.h>
#include <fcntl.h>
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
	X(arena_bytes, "stub memory, bytes")

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

RP_API int relpoline_stats_print(int fd)
{
	struct relpoline_stats s;
	rp_stats_snapshot(&s);
	char buf[4096];
	int n = format_table(&s, buf, sizeof(buf));
	if (n > (int)sizeof(buf))
		n = (int)sizeof(buf);
	return write(fd, buf, (size_t)n) == n ? 0 : -errno;
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
	P("]}\n");
#undef P
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int err = fd < 0 ? errno : 0;
	if (fd >= 0) {
		ssize_t w = write(fd, buf, n);
		if (w != (ssize_t)n)
			err = w < 0 ? errno : ENOSPC;
		if (close(fd) < 0 && !err)
			err = errno;
	}
	if (err)
		rp_warn("cannot write stats to %s: %s", path, strerror(err));
}

void rp_report_at_exit(void)
{
	if (!rp_cfg.stats)
		return;
	struct relpoline_stats s;
	rp_stats_snapshot(&s);
	if (rp_cfg.stats == 2)
		write_json(&s, rp_cfg.stats_path);
	else
		relpoline_stats_print(2);
}
