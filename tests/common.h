/*
 * Shared helpers for the relpoline tests.  Every test is its own program,
 * built with relpoline-cc (so its indirect calls go through the thunks),
 * run by tests/run.sh under timeout.  Exit 0 = pass; anything else = fail,
 * with the first "check failed" line on stderr as the reason.
 */
#ifndef RP_TEST_COMMON_H
#define RP_TEST_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <relpoline.h>

#define NOINLINE __attribute__((noinline, noclone))
#if defined(__clang__)
#undef NOINLINE
#define NOINLINE __attribute__((noinline))
#endif
#define UNUSED __attribute__((unused))

static int t_fails;

#define CHECK(cond, ...)                                                          \
	do {                                                                          \
		if (!(cond)) {                                                            \
			if (t_fails++ < 40) {                                                 \
				fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__,  \
					#cond);                                                       \
				fprintf(stderr, "" __VA_ARGS__);                                  \
				fputc('\n', stderr);                                              \
			}                                                                     \
		}                                                                         \
	} while (0)

#define DIE(...)                                                                  \
	do {                                                                          \
		fprintf(stderr, "%s:%d: check failed: ", __FILE__, __LINE__);             \
		fprintf(stderr, __VA_ARGS__);                                             \
		fputc('\n', stderr);                                                      \
		exit(1);                                                                  \
	} while (0)

static UNUSED int t_finish(const char *name)
{
	if (t_fails) {
		fprintf(stderr, "%s: %d check(s) failed\n", name, t_fails);
		return 1;
	}
	printf("%s: ok\n", name);
	return 0;
}

static UNUSED struct relpoline_stats t_stats(void)
{
	struct relpoline_stats s;
	memset(&s, 0, sizeof s);
	s.size = sizeof s;
	int r = relpoline_stats_get(&s);
	if (r != 0)
		DIE("relpoline_stats_get returned %d", r);
	return s;
}

static UNUSED void t_epoch(void)
{
	int r = relpoline_epoch();
	CHECK(r == 0, "relpoline_epoch() = %d", r);
}

static UNUSED void t_print_stats(const char *tag, const struct relpoline_stats *s)
{
	printf("[%s] modules=%" PRIu64 " seen=%" PRIu64 " call=%" PRIu64 " tail=%" PRIu64
	       " promoted=%" PRIu64 " pinned=%" PRIu64 " rejected=%" PRIu64 " stubs=%" PRIu64
	       " far=%" PRIu64 " relearns=%" PRIu64 " records=%" PRIu64 " dropped=%" PRIu64
	       " misses=%" PRIu64 " epochs=%" PRIu64 " passes=%" PRIu64 " empty=%" PRIu64
	       " patched=%" PRIu64 " membarriers=%" PRIu64 " mprotect=%" PRIu64 " syscalls=%" PRIu64
	       " traps=%" PRIu64 " arena=%" PRIu64 "\n",
	       tag, s->modules, s->sites_seen, s->sites_call, s->sites_tail, s->sites_promoted,
	       s->sites_pinned, s->sites_rejected, s->stubs_emitted, s->far_targets, s->relearns,
	       s->records, s->records_dropped, s->misses, s->epochs, s->patch_passes,
	       s->patch_passes_empty, s->sites_patched, s->membarriers, s->protect_changes,
	       s->syscalls, s->traps_emulated, s->arena_bytes);
	fflush(stdout);
}

/*
 * Make the test deterministic when run by hand: any of NAME=VALUE pairs
 * (NULL-terminated list) missing from the environment is set, and the
 * program re-executes itself so that the runtime (which reads the
 * environment at start) sees them.  run.sh sets them explicitly anyway.
 */
static UNUSED void t_default_env(char **argv, const char *const *kv)
{
	int changed = 0;
	for (; kv[0]; kv += 2) {
		if (!getenv(kv[0])) {
			setenv(kv[0], kv[1], 1);
			changed = 1;
		}
	}
	if (changed && !getenv("RP_TEST_REEXEC")) {
		setenv("RP_TEST_REEXEC", "1", 1);
		execv("/proc/self/exe", argv);
		perror("execv /proc/self/exe");
	}
}

/* The usual deterministic setting: no background worker, quick promotion. */
static UNUSED void t_deterministic(char **argv)
{
	static const char *const kv[] = {
		"RELPOLINE_EPOCH_MS", "0",
		"RELPOLINE_PROMOTE_MIN", "16",
		NULL, NULL,
	};
	t_default_env(argv, kv);
	char buf[64] = "";
	int r = relpoline_config_get("epoch_ms", buf, sizeof buf);
	CHECK(r == 0 && strcmp(buf, "0") == 0,
	      "config_get(epoch_ms) = %d \"%s\": tests need RELPOLINE_EPOCH_MS=0", r, buf);
	/*
	 * The background worker runs a first epoch at once (it reads the
	 * relocation lists and gives tail sites their learning entries).  With
	 * RELPOLINE_EPOCH_MS=0 there is no worker, so do that first epoch here:
	 * until it has run, tail (jmp/jcc) sites do not learn.
	 */
	r = relpoline_epoch();
	CHECK(r == 0, "first relpoline_epoch() = %d", r);
}

/*
 * Decode the rel32 branch at SITE (e8/e9 rel32 or 0f 8x rel32) and return
 * its destination, or NULL if the bytes are not such a branch.  *KIND gets
 * 'c' (call), 'j' (jmp) or 'x' (jcc).
 */
static UNUSED const void *t_branch_dest(const void *site, char *kind)
{
	const unsigned char *p = site;
	int32_t rel;
	if (p[0] == 0xe8 || p[0] == 0xe9) {
		memcpy(&rel, p + 1, 4);
		if (kind)
			*kind = p[0] == 0xe8 ? 'c' : 'j';
		return p + 5 + rel;
	}
	if (p[0] == 0x0f && (p[1] & 0xf0) == 0x80) {
		memcpy(&rel, p + 2, 4);
		if (kind)
			*kind = 'x';
		return p + 6 + rel;
	}
	if (kind)
		*kind = '?';
	return NULL;
}

/*
 * Where a thunk site really goes.  Since ABI 3 every site of a registered
 * module is rewritten once, at registration, to call its own cell in the
 * module's stub arena (src/stub.c):
 *     C+0 cmp slot(%rip),%R; C+7 nop3; C+10 je rel32; C+16 nop3;
 *     C+19 jmp rel32 (displacement 4-byte aligned); the slot lies where the
 *     cmp's displacement says, apart from the code; disarmed, it holds C+24
 * Every later state change (learning, promoted, pinned, disabled) retargets
 * the jmp; a promoted site may also arm the compare with its first hot
 * target.  This follows the site's branch and, if it lands on a cell, the
 * cell's jmp; *CELL (if not NULL) gets the cell or NULL.  t_cell_armed()
 * tells where the cell's compare sends a matching register (NULL when its
 * slot is disarmed).
 */
static UNUSED int t_is_cell(const unsigned char *c)
{
	return c && ((uintptr_t)c & 7) == 0 && (c[0] == 0x48 || c[0] == 0x4c) && c[1] == 0x3b &&
	       c[10] == 0x0f && c[11] == 0x84 && c[19] == 0xe9;
}

static UNUSED const void *t_site_dest(const void *site, const void **cell)
{
	const unsigned char *d = t_branch_dest(site, NULL);
	if (cell)
		*cell = NULL;
	if (t_is_cell(d)) {
		int32_t rel;
		memcpy(&rel, d + 20, 4);
		if (cell)
			*cell = d;
		return d + 24 + rel;
	}
	return d;
}

static UNUSED const void *t_cell_armed(const void *cellp)
{
	const unsigned char *c = cellp;
	uint64_t slot;
	int32_t rel;
	memcpy(&rel, c + 3, 4);
	memcpy(&slot, c + 7 + rel, 8);
	if (slot == (uint64_t)(uintptr_t)(c + 24))
		return NULL;
	memcpy(&rel, c + 12, 4);
	return c + 16 + rel;
}

static UNUSED uint64_t t_env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return dflt;
	return strtoull(v, NULL, 0);
}

/*
 * Only fds 0-2 may be open (a test's child whose parent passed no other):
 * relpoline keeps no descriptor (its log, profiles, module files).
 */
static UNUSED void t_only_std_fds(const char *when)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		CHECK(0, "opendir /proc/self/fd: %s", strerror(errno));
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
			continue;
		char path[64], target[256] = "?";
		snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
		ssize_t k = readlink(path, target, sizeof target - 1);
		target[k > 0 ? k : 1] = 0;
		CHECK(0, "%s: fd %d is open: %s (relpoline kept a descriptor)", when, fd, target);
	}
	closedir(d);
}

#endif
