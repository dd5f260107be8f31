/* Internal interfaces of the runtime (librelpoline).  Not installed. */
#ifndef RELPOLINE_INTERNAL_H
#define RELPOLINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "module/abi.h"
#include "relpoline.h"

#define RP_API __attribute__((visibility("default")))
#define RP_MAX_TARGETS_LIMIT 256   /* targets in one stub (a tree) */
#define RP_CHAIN_MAX 32            /* targets in one chain: beyond, a tree is always cheaper */
#define RP_ACC_MAX 512             /* distinct targets tracked per site and window */
#define RP_SITE_TOP 4              /* targets per site in the per-site report */

/* ---- configuration (config.c) ---- */
enum { RP_MODE_OFF, RP_MODE_ON };
enum { RP_FB_RETPOLINE, RP_FB_INDIRECT };
enum { RP_STUB_AUTO, RP_STUB_CHAIN, RP_STUB_TREE };
enum { RP_LOG_STDERR, RP_LOG_FILE, RP_LOG_SYSLOG };
/* RELPOLINE_STATS: off, the table on stderr, JSON to a file, the table and the per-site table. */
enum { RP_STATS_OFF, RP_STATS_TABLE, RP_STATS_JSON, RP_STATS_SITES };

struct rp_config {
	long mode;
	long fallback;
	long stub;               /* RP_STUB_*: auto = the cost model chooses (policy.c) */
	long stats;              /* RP_STATS_* */
	char stats_path[512];
	long stats_top;          /* sites in the per-site list (report.c); 0: all */
	long epoch_ms;
	long promote_min;
	long max_targets;
	long min_coverage;       /* percent */
	long min_share;          /* per mille: a target below this share is not put in a stub */
	long relearn_misses;
	long max_versions;
	long pin_epochs;
	long arena_kb;
	long thread;             /* 1: a worker thread runs epochs; 0: the slow path does */
	long perf_map;
	long jitdump;            /* 1: jit-PID.dump for perf inject --jit (perf.c) */
	long log;                /* RP_LOG_*: RP_LOG_FILE writes to log_path */
	char log_path[512];
	long verbose;
	long profile;            /* RP_PROFILE_*: saved profiles (profile.c) */
	char profile_path[512];
	long profile_save_s;     /* seconds between saves from the epoch; 0: at exit only */
};
enum { RP_PROFILE_OFF, RP_PROFILE_AUTO, RP_PROFILE_DIR };
extern struct rp_config rp_cfg;
void rp_config_load_env(void);
int rp_config_set(const char *name, const char *value, bool from_env);
int rp_config_get(const char *name, char *buf, size_t len);

/* ---- the runtime's own memory (alloc.c): never the application's malloc ---- */
void *rp_alloc(size_t n);
void *rp_zalloc(size_t n);
void *rp_realloc(void *p, size_t n);
void rp_free(void *p);
void rp_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));

/* ---- logging (log.c): where RELPOLINE_LOG says; rp_debug only with verbose ---- */
void rp_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rp_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * A mapping of BYTES failed with ENOMEM; FMT says of what, and what stays
 * on the fallback without it.  The first call in a process is its one
 * warning, "out of memory (ENOMEM) mapping N KiB of <FMT>"; later calls go
 * to the verbose log only (log.c).  Under rp_lock.
 */
void rp_oom(size_t bytes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *rp_strerror(int e);   /* strerror without gettext (it may malloc) */

/* ---- process-wide state (core.c) ---- */
extern pthread_mutex_t rp_lock;
extern bool rp_enabled;         /* learning and promotion wanted (mode on, not disabled) */
extern bool rp_exiting;
extern uint64_t rp_start_ns;
extern struct relpoline_stats rp_stats;   /* updated under rp_lock, or atomically */
#define RP_STAT_ADD(f, n) __atomic_fetch_add(&rp_stats.f, (n), __ATOMIC_RELAXED)
uint64_t rp_now_ns(void);
void rp_stats_snapshot(struct relpoline_stats *out);
/*
 * (core.c) A descriptor the runtime needs for a moment (the arena memfd, the module
 * file, /proc/self/mem) is moved to a high number first: the program may
 * close or dup2 over low numbers it believes free at any time, and the
 * runtime then closes only a number no program picks by accident.
 */
int rp_fd_park(int fd);

/* ---- modules and sites (module.c) ---- */
enum rp_site_kind { RP_SK_CALL, RP_SK_JMP, RP_SK_JCC };
enum rp_site_state { RP_SS_LEARNING, RP_SS_PROMOTED, RP_SS_PINNED, RP_SS_REJECTED };
enum { RP_WHY_NONE, RP_WHY_COST, RP_WHY_COVERAGE, RP_WHY_VERSIONS, RP_WHY_NOSTUB };

struct rp_count { uint64_t target, count; };

struct rp_arena {
	uint8_t *rx, *rw;        /* two views of one memfd (closed once both are mapped) */
	size_t size, used;
	bool failed;
};

struct rp_seg { uint64_t lo, hi; int prot; };
#define RP_IDENT_MAX 64

/*
 * A site a warm start promoted (profile.c) that has no record yet: what
 * its record would say, in 32 bytes instead of 256.  A warm start makes
 * thousands of these at once and most never need more: a site whose stub
 * keeps hitting never reaches the runtime again.  The registry makes the
 * full record from it when one is needed (rp_site_make: a miss sample,
 * the per-site report, a departure of one of its targets' modules,
 * disable/enable/relearn), and the entry is then history (MADE).  A fork
 * child rewrites a live entry's cell from the entry (lifecycle.c).
 */
struct rp_warm {
	uint64_t stub;
	uint32_t k;                 /* index of the site in m->site_addr */
	uint32_t t;                 /* its first target in m->warm_t / m->warm_r */
	float unpred;
	uint16_t n;                 /* targets the stub compares, the cell's je target first if USE_JE */
	uint16_t learned_n;
	uint16_t mix_n;             /* targets the profile gave it */
	uint8_t skind;              /* RP_STUB_CHAIN or RP_STUB_TREE */
	uint8_t use_je : 1, made : 1;
};
_Static_assert(sizeof(struct rp_warm) == 32, "a warm entry is 32 bytes");

/* Promoted stubs by kind and size, as RELPOLINE_STATS counts them. */
struct rp_stub_counts {
	uint64_t promoted, targets, chain, tree;
	uint64_t hist[17], hist_log2[9];
};

static inline void rp_stub_count(struct rp_stub_counts *c, unsigned ntargets, bool tree, int64_t d)
{
	unsigned b = 0;   /* 1, 2, 3-4, 5-8, ..., 129-256 */
	while (b < 8 && ntargets > (1u << b))
		b++;
	c->promoted += (uint64_t)d;
	c->targets += (uint64_t)(d * (int64_t)ntargets);
	c->hist[ntargets > 16 ? 16 : ntargets] += (uint64_t)d;
	c->hist_log2[b] += (uint64_t)d;
	if (tree)
		c->tree += (uint64_t)d;
	else
		c->chain += (uint64_t)d;
}

/* A saved site's share of its module's profile signature (profile.c). */
static inline uint64_t rp_site_sig(uint64_t addr, uint32_t versions, uint8_t state)
{
	uint64_t h = (addr ^ (uint64_t)versions << 40 ^ (uint64_t)state << 58) * 0x9e3779b97f4a7c15ull;
	return h ^ h >> 31;
}

struct rp_module {
	struct rp_module_desc *desc;
	char path[512];
	uint64_t bias, base;
	uint64_t text_lo, text_hi;  /* union of executable segments */
	struct rp_seg seg[16];
	int nseg;
	bool alive, main_program;
	/* Its thunk sites, rewritten at registration to their cells (module.c). */
	uint64_t *site_addr;        /* sorted */
	uint8_t *site_reg;          /* thunk register (frame index) of each */
	size_t nsites;
	uint64_t cells;             /* RX address of the first site's cell; their slots follow the cells */
	uint64_t thunk[RP_NREGS], slow[RP_NREGS], plain[RP_NREGS], indirect[RP_NREGS];
	struct rp_arena arena;
	unsigned id;
	struct rp_syms *syms;       /* its symbol table, loaded on first use (symbols.c) */
	/* Its identity for saved profiles (profile.c): GNU build-id, or a hash of its text. */
	uint8_t ident[RP_IDENT_MAX];
	uint8_t ident_len, ident_kind;   /* ident_len 0: none (yet) */
	uint64_t prof_hash;              /* signature of its profile as last loaded or saved (profile.c) */
	/* Its sites a warm start promoted that have no record yet (see struct rp_warm). */
	struct rp_warm *warm;            /* by increasing k */
	uint64_t *warm_t;
	float *warm_r;                   /* calls per ms when the stub was made */
	uint32_t nwarm, warm_live;       /* entries; of which not made into records */
	uint64_t warm_sig;               /* rp_site_sig summed over the live ones */
	struct rp_stub_counts warm_counts;   /* the live ones, as recount() would count them */
};

/*
 * A site's record.  The small fields are packed together: the runtime's
 * allocator rounds a block up to a power of two, and a record over 256
 * bytes would take 512 (a 10,000-site profile makes 10,000 at start).
 */
struct rp_site {
	uint64_t addr;
	struct rp_module *mod;
	uint8_t kind, reg, len, state;
	uint8_t skind;              /* RP_STUB_CHAIN or RP_STUB_TREE: the current stub's kind */
	uint8_t why;                /* RP_WHY_*: why it is pinned or left where it is */
	bool je_written;
	bool use_je;                /* the current stub leaves je_target to the cell's compare */
	bool touched;
	bool seen;                  /* has had a sample (counted in sites_seen) */
	bool from_profile;          /* its stub came from a saved profile and has not been replaced */
	uint8_t ntop;               /* entries in top[] */
	uint32_t versions;          /* stubs emitted for this site */
	uint64_t cell;              /* RX address of its cell: what the site calls */
	uint64_t cur;               /* where the cell's jmp points now */
	uint64_t slot;              /* what the cell's compare slot holds now (rp_cell_never if disarmed) */
	uint64_t je_target;         /* where the cell's je goes: written once, 0 until then */
	uint64_t stub;              /* current stub when promoted */
	uint32_t ntargets, tcap;
	uint64_t *targets;          /* the targets the current stub compares (the cell's first) */
	double *rates;              /* their calls per ms when the stub was made */
	uint32_t learned_n;         /* targets in the mix its predictability was measured on */
	uint32_t mix_n;             /* targets in the last decided mix (report.c) */
	double unpred;              /* share of an i.i.d. stream's mispredictions its stream has (policy.c) */
	uint32_t epochs;            /* in the current state */
	uint32_t wepochs;           /* epochs in the current sample window */
	uint64_t since_ns;          /* start of the current sample window */
	uint32_t nacc, acap;
	uint64_t acc_total;
	uint64_t acc_pred;          /* learning samples whose target was foreseen (abi.h) */
	uint64_t acc_cold;          /* of which first successors of a bucket: never foreseeable */
	struct rp_count *acc;       /* learning samples or (promoted) misses, NULL when idle */
	/*
	 * For the per-site report (report.c), kept by the epoch (policy.c):
	 * what reached the slow path over the site's life, and the mix its
	 * last decision saw.  Stub hits are never counted.
	 */
	uint64_t samples;           /* learning samples and stub misses */
	uint64_t misses;            /* of which stub misses */
	uint64_t top_target[RP_SITE_TOP];   /* its hottest targets */
	uint32_t top_ppm[RP_SITE_TOP];      /* their shares, parts per million */
};
_Static_assert(sizeof(struct rp_site) + 16 <= 256, "a site record and its allocator header fit 256 bytes");

struct rp_module *rp_module_of(uint64_t addr);
struct rp_site *rp_site_lookup(uint64_t addr);
struct rp_site *rp_site_get(uint64_t addr);   /* its record, made on its first sample */
struct rp_site *rp_site_make(struct rp_module *m, size_t i);   /* the same for site I of M */
void rp_sites_reserve(size_t n);
void rp_module_materialize(struct rp_module *m);   /* records for all of M's warm entries */
void rp_module_warm_free(struct rp_module *m);
void rp_sites_materialize_all(void);
void rp_sites_materialize_range(uint64_t lo, uint64_t hi);   /* warm entries with a target there */
void rp_warm_counts(struct rp_stub_counts *c);   /* adds every module's live warm entries */
void rp_site_seen(struct rp_site *s);
void rp_sites_foreach(void (*fn)(struct rp_site *, void *), void *arg);
void rp_modules_foreach(void (*fn)(struct rp_module *, void *), void *arg);
void rp_module_set_flags(uint8_t flags);
bool rp_module_locate(struct rp_module_desc *d, struct rp_module *tmp);
struct rp_module *rp_module_add(const struct rp_module *tmp, int *err);
size_t rp_module_find_sites(struct rp_module *m);
void rp_module_drop_sites(struct rp_module *m);
void rp_module_retire(struct rp_module *m);
bool rp_module_mapped(const struct rp_module *m);
void rp_module_free(struct rp_module *m);
char *rp_read_maps(size_t *len);

/*
 * ---- symbols (symbols.c), under rp_lock ----
 * rp_symbolize writes "function+0xOFF" ("function" at offset 0) from the
 * symbol table of the file that holds ADDR, else "module-basename+0xOFF",
 * else "0xADDR".  rp_module_path: M's file name (the executable's real
 * path rather than /proc/self/exe).  rp_symbols_forget frees M's table.
 */
void rp_symbolize(uint64_t addr, char *buf, size_t len);
void rp_module_path(const struct rp_module *m, char *buf, size_t len);
void rp_symbols_forget(struct rp_module *m);

/* ---- learning (learn.c) ---- */
typedef void (*rp_sample_fn)(uint64_t site, uint64_t target, uint32_t meta, uint64_t count, void *arg);
void rp_learn_aggregate(rp_sample_fn fn, void *arg);
void rp_learn_reset_thread(void);

/* ---- policy (policy.c) ---- */
/* Periods of epoch_ms the next epoch stands for: more than 1 after an idle worker's long wait. */
extern uint32_t rp_epoch_periods;
void rp_policy_epoch(void);
void rp_policy_demote_all(void);
int rp_policy_sync(void);
void rp_policy_forget_range(uint64_t lo, uint64_t hi);
bool rp_policy_warm(struct rp_module *m, size_t k, const uint64_t *targets, const double *rates,
		    unsigned n, uint8_t kind, double unpred, unsigned learned_n, struct rp_warm *w,
		    uint64_t *wt, float *wr);
void rp_policy_count_warm(const struct rp_module *m);

/* ---- stubs (stub.c) ---- */
/* Emit a stub; KEEP gets the targets it compares (those within reach), *USED their number. */
uint64_t rp_stub_emit(struct rp_module *m, struct rp_site *s, const uint64_t *targets,
		      unsigned n, uint64_t *keep, unsigned *used);
/*
 * Emit a compare tree over TARGETS weighted by WEIGHTS (any order); KEEP
 * gets the targets it compares (those within reach) in address order,
 * *USED their number.
 */
uint64_t rp_tree_emit(struct rp_module *m, struct rp_site *s, const uint64_t *targets,
		      const uint64_t *weights, unsigned n, uint64_t *keep, unsigned *used);
int rp_cells_emit(struct rp_module *m);
void rp_cell_reinit(struct rp_module *m, size_t i);
/* A site's cell (stub.c): offsets in its RP_CELL_SIZE bytes. */
#define RP_CELL_SIZE 48
#define RP_CELL_JE 10               /* je rel32: displacement at 12, 4-byte aligned */
#define RP_CELL_JMP 19              /* jmp rel32: displacement at 20, 4-byte aligned */
#define RP_CELL_NEVER 24            /* padding: its address is the disarmed slot value */
#define RP_CELL_ENTRY 32            /* the learning entry */
/* The disarmed slot value: an address inside the cell that no program calls. */
static inline uint64_t rp_cell_never(uint64_t cell) { return cell + RP_CELL_NEVER; }
/* The compare slot of the cell at CELL: kept apart from the code, in an array after all cells. */
static inline uint64_t rp_cell_slot(const struct rp_module *m, uint64_t cell)
{
	return m->cells + RP_CELL_SIZE * m->nsites + 8 * ((cell - m->cells) / RP_CELL_SIZE);
}

void rp_arena_release(struct rp_module *m);
void rp_arena_after_fork(struct rp_module *m);
bool rp_arena_emitted(void);   /* new code since the last call */
bool rp_reach(uint64_t from, uint64_t to);   /* a rel32 branch at FROM can reach TO */

/* ---- naming generated code for profilers (perf.c) ---- */
enum rp_code_kind { RP_CODE_CELLS, RP_CODE_STUB, RP_CODE_TREE };
bool rp_perf_wanted(void);
/* LEN bytes of code of KIND at AT (RX) in M's arena; SITE: the stub's site (0 for cells). */
void rp_perf_code(const struct rp_module *m, enum rp_code_kind kind, uint64_t site, uint64_t at,
		  size_t len);

/* ---- symbols (symbols.c) ---- */
/* "function+0xOFF" (or "module+0xOFF") for ADDR, NUL-terminated in BUF. */
void rp_symbolize(uint64_t addr, char *buf, size_t len);

/* ---- patching (patch.c) ---- */
struct rp_patch {
	struct rp_site *site;
	uint64_t to;             /* where the cell's jmp should point */
	uint64_t slot;           /* what its compare slot should hold */
	uint8_t status;          /* RP_PATCH_*, set by rp_patch_apply */
};
enum { RP_PATCH_PENDING, RP_PATCH_DONE, RP_PATCH_ALREADY, RP_PATCH_REFUSED };
void rp_patch_init(void);
int rp_patch_apply(struct rp_patch *p, size_t n);
int rp_patch_sites(struct rp_module *m);
void rp_patch_cell_reset(struct rp_site *s);
size_t rp_patch_cells_warm(struct rp_module *m);
void rp_patch_cell_warm(struct rp_module *m, const struct rp_warm *w);

/* ---- saved profiles: warm start (profile.c) ---- */
void rp_profile_arrive(struct rp_module *m);
void rp_profile_save(void);
void rp_profile_tick(void);

/* ---- a module's arrival, departure, fork (lifecycle.c) ---- */
uint8_t rp_flags_wanted(void);
void rp_module_arrive(const struct rp_module *tmp);
void rp_module_depart(struct rp_module *m);
void rp_modules_reap(void);
void rp_modules_after_fork(void);

/* ---- the stats table and JSON (report.c) ---- */
void rp_report_at_exit(void);

/* ---- start-up, who runs epochs, fork, exit, public API (runtime.c) ---- */
void rp_init(void);
int rp_epoch_locked(void);

#endif
