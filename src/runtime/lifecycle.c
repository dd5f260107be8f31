/*
 * A module's life, orchestrated from above the mechanisms: its arrival
 * (registry, then cells, then the one-time rewrite of its sites), its
 * departure (saved profiles, registry, then policy), the release of what it left once its
 * text is unmapped, and the fork child's private copies.  The mechanisms
 * below never call each other upward for these: each does its part when
 * called from here.
 *
 * Everything here runs under rp_lock: module constructors and destructors
 * (any thread), epochs, and the fork child (single-threaded).
 */
#include <errno.h>
#include <string.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif
#include "internal.h"

/* The thunks' flag byte every module should have now (under rp_lock). */
uint8_t rp_flags_wanted(void)
{
	uint8_t f = 0;
	if (rp_cfg.mode == RP_MODE_ON && rp_cfg.fallback == RP_FB_INDIRECT)
		f |= RP_F_INDIRECT;
	if (rp_enabled)
		f |= RP_F_LEARN;
	return f;
}

/*
 * Give every thunk site of M a cell and rewrite the sites to go through
 * them (patch.c, step A).  Runs in M's constructor, before any other
 * thread can run M's code.
 */
static void arrive_sites(struct rp_module *m)
{
	size_t k = rp_module_find_sites(m);
	if (!k)
		return;
	int r = -1;
	if (rp_cells_emit(m) == 0)
		r = rp_patch_sites(m);
	if (r < 0) {
		if (m->arena.rx && m->cells)
			rp_warn("cannot rewrite the call sites of %s (%s): its indirect calls keep "
				"plain retpolines", m->path, rp_strerror(-r));
		else if (!m->arena.failed)
			rp_warn("the stub arena of %s cannot hold its %zu call sites (RELPOLINE_ARENA_KB): "
				"its indirect calls keep plain retpolines", m->path, k);
		rp_module_drop_sites(m);
		return;
	}
	rp_debug("module %s: %zu thunk sites rewritten to their cells", m->path, k);
}

/* A module located in TMP arrives (its constructor).  Under rp_lock. */
void rp_module_arrive(const struct rp_module *tmp)
{
	rp_modules_reap();   /* a dlclosed module's slot may be needed */
	int err;
	struct rp_module *m = rp_module_add(tmp, &err);
	if (!m) {
		if (err == -ENOMEM)   /* rp_alloc gave the process's one out-of-memory warning */
			rp_debug("out of memory: %s keeps plain retpolines", tmp->path);
		else
			rp_warn("too many modules: %s keeps plain retpolines", tmp->path);
		return;
	}
	if (rp_cfg.mode == RP_MODE_ON && !RUNNING_ON_VALGRIND) {
		arrive_sites(m);
		rp_profile_arrive(m);   /* warm start: before any of its code runs */
	}
	__atomic_store_n(m->desc->flags, rp_flags_wanted(), __ATOMIC_RELEASE);
	rp_debug("module %s registered: text %#lx-%#lx", m->path, (unsigned long)m->text_lo,
		 (unsigned long)m->text_hi);
}

/*
 * M's destructor ran: its code is going away (dlclose) or the process is
 * exiting, and a destructor cannot tell which.  Other threads may still be
 * running M's cells and stubs (exit), so its arena and site records stay
 * until its text is gone (rp_modules_reap).  Learning stops there; its
 * sites keep their cells' targets.  Stubs of other modules that jump into
 * it stay correct (they compare the live register); they go back to
 * learning.  Under rp_lock.
 */
void rp_module_depart(struct rp_module *m)
{
	/* First: what the sites that jump into M learned is lost below. */
	rp_profile_save();
	rp_module_retire(m);
	rp_policy_forget_range(m->text_lo, m->text_hi);
	rp_policy_sync();
}

static void reap_one(struct rp_module *m, void *arg)
{
	(void)arg;
	if (m->alive || rp_exiting || rp_module_mapped(m))
		return;
	rp_arena_release(m);
	rp_symbols_forget(m);
	rp_module_free(m);
}

/*
 * Release what departed modules left: once their text is no longer
 * mapped (dlclose), nothing can reach their cells or stubs.  At exit the
 * text stays mapped, so arenas are never unmapped under running threads.
 */
void rp_modules_reap(void)
{
	rp_modules_foreach(reap_one, NULL);
}

static void fork_one(struct rp_module *m, void *arg)
{
	(void)arg;
	rp_arena_after_fork(m);
	uint32_t j = 0;   /* m->warm is sorted by site index: one walk beside the sites' */
	for (size_t k = 0; k < m->nsites; k++) {
		struct rp_site *s = rp_site_lookup(m->site_addr[k]);
		if (s) {
			rp_patch_cell_reset(s);
			continue;
		}
		rp_cell_reinit(m, k);
		while (m->warm && j < m->nwarm && m->warm[j].k < k)
			j++;
		/* A warm entry without a record: its cell as the warm start set it (no record made per child). */
		if (m->warm && j < m->nwarm && m->warm[j].k == k && !m->warm[j].made && m->arena.rw)
			rp_patch_cell_warm(m, &m->warm[j]);
	}
}

/*
 * fork child, single-threaded: private arenas, and every cell written again
 * from this process's own records (the parent may have changed the shared
 * copy after the fork).
 */
void rp_modules_after_fork(void)
{
	rp_modules_foreach(fork_one, NULL);
}
