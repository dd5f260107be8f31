/*
 * Aggregation of the per-thread sample tables (written by record.c).
 *
 * Protocol between an application thread (owner of a table) and the
 * epoch (the only reader, under rp_lock), without locks:
 *  - the owner stores a bucket's target, meta and count, then publishes
 *    its site with a release store; the epoch reads the site with
 *    acquire, then the rest;
 *  - samples belong to a generation.  The epoch sums the tables whose
 *    gen equals the current generation, then increments the generation;
 *    an owner that sees a new generation clears its own table first.  A
 *    table whose owner made no slow-path call since is skipped, so no
 *    sample is counted twice; samples stored between the epoch's read and
 *    the owner's clear are lost, which learning tolerates.
 *  - tables of threads that have exited are unlinked (never the list head,
 *    which owners push onto with CAS) and unmapped.
 */
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "internal.h"

RP_API struct rp_shared relpoline__shared;
RP_API __thread struct rp_ttab *relpoline__ttab __attribute__((tls_model("initial-exec")));

static unsigned reap_tick;

static bool thread_gone(uint32_t tid)
{
	return syscall(SYS_tgkill, getpid(), (pid_t)tid, 0) < 0 && errno == ESRCH;
}

void rp_learn_aggregate(rp_sample_fn fn, void *arg)
{
	uint64_t g = __atomic_load_n(&relpoline__shared.gen, __ATOMIC_RELAXED);
	struct rp_ttab *head = __atomic_load_n(&relpoline__shared.head, __ATOMIC_ACQUIRE);
	bool reap = (++reap_tick & 63) == 0;
	struct rp_ttab *prev = NULL;
	for (struct rp_ttab *t = head; t;) {
		struct rp_ttab *next = t->next;
		if (__atomic_load_n(&t->gen, __ATOMIC_ACQUIRE) == g) {
			for (unsigned i = 0; i < RP_TTAB_SIZE; i++) {
				struct rp_sample *e = &t->e[i];
				uint64_t site = __atomic_load_n(&e->site, __ATOMIC_ACQUIRE);
				if (!site)
					continue;
				uint64_t target = e->target;
				uint32_t meta = e->meta;
				uint32_t count = __atomic_load_n(&e->count, __ATOMIC_RELAXED);
				if (count)
					fn(site, target, meta, count, arg);
			}
		}
		rp_stats.records_dropped += __atomic_exchange_n(&t->dropped, 0, __ATOMIC_RELAXED);
		if (reap && prev && thread_gone(t->tid)) {
			prev->next = next;
			munmap(t, sizeof(*t));
		} else {
			prev = t;
		}
		t = next;
	}
	__atomic_store_n(&relpoline__shared.gen, g + 1, __ATOMIC_RELEASE);
}

/* After fork: the child's thread must not keep a table tagged with the parent's tid. */
void rp_learn_reset_thread(void)
{
	relpoline__ttab = NULL;
}
