/*
 * Private ABI between the per-module part (thunks.S, record.c,
 * module_ctor.c: linked hidden into every module built with relpoline-cc)
 * and the process-wide runtime (librelpoline).  Included from assembly too,
 * so only #defines outside the !__ASSEMBLER__ block.
 *
 * Bump RP_ABI when anything here changes: a module built against another
 * ABI is refused at registration (it keeps plain retpoline behaviour).
 */
#ifndef RELPOLINE_ABI_H
#define RELPOLINE_ABI_H

#define RP_ABI 4

/*
 * The slow-path frame.  Every entry into the slow path (a site's learning
 * entry, a stub's miss path) pushes one word (the site word) and then the
 * same 15 general registers in the same order, so every exit restores
 * from the same layout: the lesson of seed 002.  Indices are the word
 * offsets from the frame base (lowest address = last push).
 */
#define RP_R15 0
#define RP_R14 1
#define RP_R13 2
#define RP_R12 3
#define RP_R11 4
#define RP_R10 5
#define RP_R9  6
#define RP_R8  7
#define RP_RDI 8
#define RP_RSI 9
#define RP_RBP 10
#define RP_RBX 11
#define RP_RDX 12
#define RP_RCX 13
#define RP_RAX 14
#define RP_NREGS 15
#define RP_FRAME_SITE 15   /* site word: site - module base, RP_SITE_MISS set on a stub's miss path */
#define RP_FRAME_RET  16   /* the word above: return address of a call site */

/* Per-module flag byte, written by the runtime, read by the thunks. */
#define RP_F_LEARN    1    /* record samples on the slow path */
#define RP_F_INDIRECT 2    /* fallback is a plain jmp *reg, not a retpoline */

/*
 * The site word is pushed as a sign-extended imm32: bit 31 (so every bit
 * above it) marks a miss of a promoted site's stub, as opposed to a sample
 * taken by its learning entry.  Offsets stay below 2 GiB.
 */
#define RP_SITE_MISS 0x80000000

#define RP_TTAB_SIZE 2048  /* entries per thread table (power of two): a 256-target site fits */
#define RP_TTAB_PROBE 16

#ifndef __ASSEMBLER__
#include <stdint.h>

struct rp_frame {
	uint64_t gpr[RP_NREGS];
	int64_t site_word;         /* see RP_SITE_MISS */
	uint64_t ret;
};

/*
 * One sample bucket.  Only the owning thread writes; the worker reads.
 * NEXT, CONF and PRED measure how predictable the site's target sequence
 * is (learning samples only), with predictors like a branch predictor's:
 * NEXT is the successor this target predicts, CONF a 2-bit confidence
 * (NEXT is replaced only when it has dropped to 0); a second predictor,
 * indexed by the last two targets (rp_ttab.ctx), overrides NEXT when it is
 * confident, as a longer history does in a TAGE predictor.  PRED counts
 * the successors predicted right.  A site whose targets follow each other
 * in patterns has PRED close to COUNT; one whose targets come i.i.d. from
 * K has about COUNT/K.  The policy prices a compare tree's mispredictions
 * with it (policy.c).
 */
struct rp_sample {
	uint64_t site;     /* 0 = empty */
	uint64_t target;
	uint64_t next;
	uint32_t count;
	uint32_t meta;     /* RP_META_* in the low 9 bits, CONF in 2, PRED above (saturating) */
};
#define RP_META_REG(m)    ((m) & 0xff)
#define RP_META_MISS      0x100   /* taken on a stub's miss path */
#define RP_META_KEY       0x1ff   /* the part of meta that belongs to the bucket's key */
#define RP_META_CONF_SHIFT 9
#define RP_META_CONF(m)   (((m) >> RP_META_CONF_SHIFT) & 3)
#define RP_META_PRED_SHIFT 11
#define RP_META_PRED(m)   ((m) >> RP_META_PRED_SHIFT)
#define RP_META_PRED_MAX  (0xffffffffu >> RP_META_PRED_SHIFT)

/* The last two learning samples of a site on this thread (RP_LAST_SIZE slots by site hash). */
struct rp_last {
	uint64_t site, target, prev;
	uint32_t idx, pad;
};
#define RP_LAST_SIZE 64
/* Second-order predictor entries: a 30-bit hash of the predicted target << 2 | 2-bit confidence. */
#define RP_CTX_SIZE 2048

/*
 * Per-thread sample table.  Allocated by the thread itself on its first
 * slow-path call (raw mmap, no libc), pushed on a lock-free list; the
 * worker aggregates tables whose gen equals the current generation and
 * frees the tables of threads that no longer exist.
 */
struct rp_ttab {
	struct rp_ttab *next;      /* list link; written before publication, then by the worker only */
	uint64_t gen;              /* generation the samples belong to (owner writes) */
	uint32_t tid;
	uint32_t busy;             /* re-entrancy guard: a signal handler in the middle of a record */
	uint64_t dropped;          /* samples not stored */
	uint32_t tick;             /* slow-path calls, for the inline epoch check */
	uint32_t pad;
	struct rp_last last[RP_LAST_SIZE];   /* owner only: never read by the epoch */
	struct rp_sample e[RP_TTAB_SIZE];
	uint32_t ctx[RP_CTX_SIZE];           /* owner only, after e[]: the runtime never reads it */
};

/* Process-wide shared words, defined in the runtime. */
struct rp_shared {
	uint64_t gen;              /* current sampling generation */
	struct rp_ttab *head;      /* lock-free push of new thread tables */
	/*
	 * Once the TSC passes epoch_due (0: never), the slow path calls
	 * relpoline__epoch_inline: with RELPOLINE_THREAD=off it runs an epoch
	 * on the application's thread; with =on it wakes the worker from a
	 * backed-off wait (runtime.c).
	 */
	uint64_t epoch_due;
};
#define RP_INLINE_CHECK 16   /* a thread looks at the TSC every this many slow-path calls */

/* What a module tells the runtime about itself. */
struct rp_module_desc {
	uint32_t abi;
	uint32_t nregs;
	const void *base;                    /* __ehdr_start: the reference for site words */
	volatile uint8_t *flags;
	const void *thunk[RP_NREGS];         /* __x86_indirect_thunk_<reg>, by frame index */
	const void *slow[RP_NREGS];          /* slow-path entry: expects the site word pushed */
	const void *plain[RP_NREGS];         /* retpoline only, never records (pinned sites) */
	const void *indirect[RP_NREGS];      /* jmp *reg only (pinned sites, FALLBACK=indirect) */
	void *rt;                            /* the runtime's handle, NULL until registered */
};

extern struct rp_shared relpoline__shared;
extern __thread struct rp_ttab *relpoline__ttab __attribute__((tls_model("initial-exec")));
void relpoline__register_module(struct rp_module_desc *d);
void relpoline__unregister_module(struct rp_module_desc *d);
void relpoline__epoch_inline(void);
#endif
#endif
