/*
 * relpoline: run-time promotion of retpolined indirect calls.
 *
 * A program built with relpoline-cc calls __x86_indirect_thunk_<reg> for
 * every indirect call; the runtime provides those thunks, learns which
 * targets each call site really uses, and patches hot sites to direct
 * compare-and-jump stubs while the program runs.  Nothing here needs to be
 * called for that to happen: this header is for control and inspection.
 *
 * Every function is thread-safe.  Functions returning int return 0 on
 * success and a negative errno value on failure.
 */
#ifndef RELPOLINE_H
#define RELPOLINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RELPOLINE_VERSION_MAJOR 0
#define RELPOLINE_VERSION_MINOR 1
#define RELPOLINE_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the runtime actually loaded. */
const char *relpoline_version(void);

/*
 * Disabling stops learning and sends every call site that has run back to
 * its original thunk (the retpoline fallback), by retargeting its cell;
 * a site that never ran stays on its learning entry, which runs the same
 * fallback while disabled.  Stubs already emitted are retired, never
 * reused.  Enabling restarts learning (each site keeps its count of
 * stubs: RELPOLINE_MAX_VERSIONS bounds stub memory over the life of the
 * process).  Both are idempotent.
 */
int relpoline_disable(void);
int relpoline_enable(void);

/* Demote every promoted site and start learning again. */
int relpoline_relearn(void);

/*
 * Run one learning/policy/patching epoch now, in the calling thread, and
 * wait for it to finish.  relpoline does this by itself every
 * RELPOLINE_EPOCH_MS (on the program's slow-path calls, or in a worker
 * thread with RELPOLINE_THREAD=on); tests and benchmarks use it to be
 * deterministic.
 */
int relpoline_epoch(void);

/*
 * Configuration.  NAME is a key of the configuration table without the
 * RELPOLINE_ prefix, case-insensitive ("mode", "fallback", "epoch_ms", ...);
 * VALUE uses the same syntax as the environment variable.  An unknown name
 * gives -ENOENT, a bad value -EINVAL (the setting keeps its old value).
 * relpoline_config_get writes at most LEN bytes, NUL-terminated.
 */
int relpoline_config_set(const char *name, const char *value);
int relpoline_config_get(const char *name, char *buf, size_t len);

struct relpoline_stats {
	uint64_t size;              /* sizeof(struct relpoline_stats) of the caller */
	uint64_t modules;           /* modules registered (with thunks) */
	uint64_t sites_seen;        /* distinct verified call sites that reached the runtime */
	uint64_t sites_call;        /* of which call rel32 */
	uint64_t sites_tail;        /* of which jmp/jcc rel32 (tail sites) */
	uint64_t sites_promoted;    /* currently on a stub */
	uint64_t sites_pinned;      /* decided: left on the fallback (stub would not pay) */
	uint64_t sites_rejected;    /* recorded but failed verification, never patched */
	uint64_t stubs_emitted;     /* all versions, including retired ones */
	uint64_t stub_targets;      /* targets in the stubs currently in use */
	uint64_t stub_hist[17];     /* promoted sites by number of targets (index 16: 16+) */
	uint64_t far_targets;       /* hot targets skipped: out of rel32 reach of the stub */
	uint64_t relearns;          /* promoted sites demoted because their misses grew */
	uint64_t records;           /* slow-path samples aggregated */
	uint64_t records_dropped;   /* samples lost (table full or re-entered) */
	uint64_t misses;            /* stub misses aggregated (promoted sites) */
	uint64_t epochs;            /* policy epochs run */
	uint64_t patch_passes;      /* passes that changed at least one byte */
	uint64_t patch_passes_empty;/* passes that found nothing to change */
	uint64_t sites_patched;     /* sites rewritten at load + cell retargets */
	uint64_t bytes_written;     /* code bytes written: sites at load, cells after */
	uint64_t protect_changes;   /* always 0: code protections are never changed */
	uint64_t membarriers;       /* membarrier(SYNC_CORE) calls */
	uint64_t syscalls;          /* every syscall the patcher and arenas made */
	uint64_t traps_emulated;    /* always 0: patching traps nothing (kept for the layout) */
	uint64_t arena_bytes;       /* stub memory in use (all modules) */
	uint64_t worker_ns;         /* time spent in epochs */
	uint64_t first_promotion_ns;/* from runtime start to the first promotion */
	uint64_t sites_chain;       /* promoted sites on a chain of compares */
	uint64_t sites_tree;        /* promoted sites on a compare tree */
	uint64_t stub_hist_log2[9]; /* promoted sites by targets: 1, 2, 3-4, 5-8, ..., 129-256 */
	/* Saved profiles (RELPOLINE_PROFILE): */
	uint64_t profile_sites;     /* sites promoted from a saved profile as their module arrived */
	uint64_t profile_relearned; /* of which later relearned (their stub's misses grew) */
	uint64_t profile_read;      /* profile files read and accepted */
	uint64_t profile_written;   /* profile files written (merged with what was there) */
	uint64_t profile_rejected;  /* profile files ignored: not valid, or another module's */
};

/* Fill ST (ST->size must be set by the caller; fields beyond it are not written). */
int relpoline_stats_get(struct relpoline_stats *st);

/* Print the human-readable stats table to file descriptor FD. */
int relpoline_stats_print(int fd);

#ifdef __cplusplus
}
#endif
#endif
