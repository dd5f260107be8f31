/*
 * The learning recorder: runs on the application thread inside an indirect
 * call, between SAVE and RESTORE of the slow-path frame (thunks.S).
 *
 * Constraints (why this file is special):
 *  - compiled with -mgeneral-regs-only: the call in flight may carry
 *    arguments in xmm/ymm/zmm0-7, and nothing here can touch them;
 *  - calls no libc function (libc's memset & co use vector registers and
 *    may not be async-signal-safe): the one allocation is a raw mmap;
 *  - takes no lock: a thread writes only its own table;
 *  - re-entrant: a signal handler may make an indirect call while this
 *    thread is in the middle of a record; the busy flag drops that sample.
 * The site comes from the site word its learning entry or stub pushed
 * (docs/design.md): never from a return address, which a tail call
 * would make wrong.
 * Learning is statistical: a lost or misattributed sample never affects
 * correctness, because a stub compares the live target register.
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include "abi.h"

extern const char __ehdr_start[] __attribute__((visibility("hidden")));

static long raw_syscall6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall" : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

static struct rp_ttab *ttab_new(void)
{
	long p = raw_syscall6(SYS_mmap, 0, sizeof(struct rp_ttab), PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p < 0 && p > -4096)
		return NULL;
	struct rp_ttab *t = (struct rp_ttab *)p;
	t->tid = (uint32_t)raw_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	t->gen = __atomic_load_n(&relpoline__shared.gen, __ATOMIC_RELAXED);
	struct rp_ttab *old = __atomic_load_n(&relpoline__shared.head, __ATOMIC_RELAXED);
	do {
		t->next = old;
	} while (!__atomic_compare_exchange_n(&relpoline__shared.head, &old, t, 1,
					      __ATOMIC_RELEASE, __ATOMIC_RELAXED));
	relpoline__ttab = t;
	return t;
}

/*
 * Returns nonzero when the caller should run an epoch on this thread
 * (RELPOLINE_THREAD=off): every RP_INLINE_CHECK calls a thread reads the
 * TSC and compares it with the due time the runtime set.
 */
static int epoch_due(struct rp_ttab *t)
{
	if (__builtin_expect(++t->tick % RP_INLINE_CHECK, 1))
		return 0;
	uint64_t due = __atomic_load_n(&relpoline__shared.epoch_due, __ATOMIC_RELAXED);
	return due && __builtin_ia32_rdtsc() >= due;
}

/* One more foreseen sample in bucket E (META is its meta word); saturates. */
static inline void pred_inc(struct rp_sample *e, uint32_t meta)
{
	if (RP_META_PRED(meta) < RP_META_PRED_MAX)
		__atomic_store_n(&e->meta, meta + (1u << RP_META_PRED_SHIFT), __ATOMIC_RELAXED);
}

static struct rp_last *last_of(struct rp_ttab *t, uint64_t site)
{
	return &t->last[(unsigned)(site ^ (site >> 6)) & (RP_LAST_SIZE - 1)];
}

static uint32_t h30(uint64_t x) { return (uint32_t)((x * 0x9e3779b97f4a7c15ull) >> 34); }

/*
 * Predictability (abi.h): did the site's previous targets predict this
 * one?  The first-order prediction lives in the previous target's bucket,
 * the second-order one in ctx[], indexed by the last two targets; the
 * second wins when it is confident.  The previous bucket may have been
 * cleared or reused since (a new generation): its key is checked first.
 * E is the bucket of TARGET, at index I.
 */
static void predict(struct rp_ttab *t, struct rp_sample *e, unsigned i, uint64_t site, uint64_t target)
{
	struct rp_last *l = last_of(t, site);
	if (l->site == site && l->target == target) {
		/* A repeat whose bucket moved (a new generation): any predictor with history foresees it. */
		pred_inc(e, e->meta);
		l->prev = target;
		l->idx = i;
		return;
	}
	if (l->site == site) {
		struct rp_sample *p = &t->e[l->idx];
		if (__atomic_load_n(&p->site, __ATOMIC_RELAXED) == site && p->target == l->target) {
			uint32_t m = p->meta, conf = RP_META_CONF(m);
			bool hit = p->next == target;
			if (l->prev) {
				uint32_t *c = &t->ctx[h30(site ^ l->prev * 31 ^ l->target * 0x100000001b3ull) &
						      (RP_CTX_SIZE - 1)];
				uint32_t want = h30(target), got = *c >> 2, cc = *c & 3;
				if (cc >= 2)
					hit = got == want;
				if (got == want)
					*c = want << 2 | (cc < 3 ? cc + 1 : 3);
				else
					*c = cc ? (got << 2 | (cc - 1)) : want << 2;
			}
			if (hit && RP_META_PRED(m) < RP_META_PRED_MAX)
				m += 1u << RP_META_PRED_SHIFT;
			if (p->next == target) {
				if (conf < 3)
					m += 1u << RP_META_CONF_SHIFT;
			} else if (conf) {
				m -= 1u << RP_META_CONF_SHIFT;
			} else {
				p->next = target;
			}
			__atomic_store_n(&p->meta, m, __ATOMIC_RELAXED);
		}
		l->prev = l->target;
	} else {
		l->prev = 0;
	}
	l->site = site;
	l->target = target;
	l->idx = i;
}

/*
 * A thread whose table could not be mapped (out of memory) tries again
 * only every TTAB_RETRY slow-path calls, not on each: relpoline__ttab then
 * holds a countdown, a value below any mapping's address.  Until then the
 * thread's calls are not sampled.
 */
#define TTAB_RETRY 4096u

__attribute__((visibility("hidden"), used))
int __relpoline_record(struct rp_frame *f, unsigned idx)
{
	struct rp_ttab *t = relpoline__ttab;
	if (__builtin_expect((uintptr_t)t < TTAB_RETRY, 0)) {
		if (t) {
			relpoline__ttab = t = (struct rp_ttab *)((uintptr_t)t - 1);
			if (t)
				return 0;
		}
		t = ttab_new();
		if (!t) {
			relpoline__ttab = (struct rp_ttab *)(uintptr_t)(TTAB_RETRY - 1);
			return 0;
		}
	}
	if (t->busy) {
		t->dropped++;
		return 0;
	}
	t->busy = 1;
	__asm__ volatile("" ::: "memory");

	uint64_t g = __atomic_load_n(&relpoline__shared.gen, __ATOMIC_RELAXED);
	if (t->gen != g) {
		/* The worker has aggregated the old generation: start afresh. */
		for (unsigned i = 0; i < RP_TTAB_SIZE; i++)
			__atomic_store_n(&t->e[i].site, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&t->gen, g, __ATOMIC_RELEASE);
	}

	uint64_t target = f->gpr[idx];
	uint64_t site = (uint64_t)(uintptr_t)__ehdr_start + ((uint64_t)f->site_word & ~(uint64_t)RP_SITE_MISS & 0xffffffffu);
	uint32_t meta = idx | (f->site_word < 0 ? RP_META_MISS : 0);

	/*
	 * A repeat of the site's last target, the common case of a site with
	 * one hot target: its bucket is known, no hashing or probing.  The
	 * bucket may have been cleared or reused since (a new generation), so
	 * its key is checked; a miss sample is never predicted.
	 */
	struct rp_last *l = last_of(t, site);
	if (l->site == site && l->target == target && !(meta & RP_META_MISS)) {
		struct rp_sample *b = &t->e[l->idx];
		uint32_t m = b->meta;
		if (__atomic_load_n(&b->site, __ATOMIC_RELAXED) == site && b->target == target &&
		    (m & RP_META_KEY) == meta) {
			__atomic_store_n(&b->count, b->count + 1, __ATOMIC_RELAXED);
			pred_inc(b, m);
			l->prev = target;
			goto out;
		}
	}

	uint64_t h = (site ^ (target * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull;
	unsigned i = (unsigned)(h >> 53) & (RP_TTAB_SIZE - 1);
	struct rp_sample *e = NULL;
	for (unsigned n = 0; n < RP_TTAB_PROBE; n++, i = (i + 1) & (RP_TTAB_SIZE - 1)) {
		struct rp_sample *b = &t->e[i];
		uint64_t s = __atomic_load_n(&b->site, __ATOMIC_RELAXED);
		if (s == site && b->target == target && (b->meta & RP_META_KEY) == meta) {
			__atomic_store_n(&b->count, b->count + 1, __ATOMIC_RELAXED);
			e = b;
			break;
		}
		if (s == 0) {
			/* Fill the bucket, then publish its key: the worker reads site first. */
			b->target = target;
			b->next = 0;
			b->meta = meta;
			__atomic_store_n(&b->count, 1, __ATOMIC_RELAXED);
			__atomic_store_n(&b->site, site, __ATOMIC_RELEASE);
			e = b;
			break;
		}
	}
	if (!e) {
		t->dropped++;
		goto out;
	}
	if (!(meta & RP_META_MISS))
		predict(t, e, i, site, target);
out:
	__asm__ volatile("" ::: "memory");
	t->busy = 0;
	return epoch_due(t);
}
