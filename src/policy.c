/*
 * Policy: once per epoch, under rp_lock.
 *
 *   learning --(>= promote_min samples, top targets cover >= min_coverage)--> promoted
 *   learning --(>= promote_min samples, coverage too low: a stub would not pay)--> pinned
 *   promoted --(misses >= relearn_misses in an epoch, concentrated on a
 *               target: it has a quarter of the misses, or twice the rate
 *               of the stub's weakest target)--> promoted with a new stub
 *               (learning, if no stub can be made)
 *   promoted --(misses >= relearn_misses in an epoch, spread thin)--> pinned
 *   pinned   --(pin_epochs later)--> learning
 *
 * A stub holds up to max_targets targets in decreasing order of samples,
 * each with at least min_share per mille of the site's samples.  Every
 * site's state maps to one place its rel32 should point to
 * (rp_site_desired); sync() patches the sites where that differs from
 * where it points now, in one batch.  A pass with nothing to change makes
 * no syscall (patch.c).
 */
#include <string.h>
#include "internal.h"

struct touched { struct rp_site **v; size_t n, cap; };

/* TARGET's entry in S's accumulator, or NULL. */
static struct rp_count *acc_find(const struct rp_site *s, uint64_t target)
{
	for (uint32_t i = 0; i < s->nacc; i++)
		if (s->acc[i].target == target)
			return &s->acc[i];
	return NULL;
}

static void acc_add(struct rp_site *s, uint64_t target, uint64_t count)
{
	s->acc_total += count;
	if (!s->acc && !(s->acc = rp_zalloc(RP_ACC_MAX * sizeof(*s->acc))))
		return;
	struct rp_count *c = acc_find(s, target);
	if (c)
		c->count += count;
	else if (s->nacc < RP_ACC_MAX)
		s->acc[s->nacc++] = (struct rp_count){ target, count };
}

static void acc_reset(struct rp_site *s)
{
	rp_free(s->acc);
	s->acc = NULL;
	s->nacc = 0;
	s->acc_total = 0;
}

static void on_sample(uint64_t addr, uint64_t target, uint32_t meta, uint64_t count, void *arg)
{
	struct touched *t = arg;
	rp_stats.records += count;
	struct rp_site *s = rp_site_get(addr);
	if (!s || RP_META_REG(meta) != s->reg || !s->mod->alive)
		return;   /* a module unloaded since: entries and stubs exist only for known sites */
	if (s->state != RP_SS_REJECTED)
		rp_site_seen(s);
	switch (s->state) {
	case RP_SS_REJECTED:
	case RP_SS_PINNED:
		return;
	case RP_SS_PROMOTED:
		/*
		 * Only its stubs' misses count.  Samples its learning entry took
		 * before the cell moved arrive in the epoch after promotion: they
		 * are not misses, and counting them would give the site a second
		 * stub for nothing.
		 */
		if (!(meta & RP_META_MISS))
			return;
		rp_stats.misses += count;
		break;
	default:
		break;
	}
	acc_add(s, target, count);
	if (!s->touched) {
		if (t->n == t->cap) {
			size_t nc = t->cap ? t->cap * 2 : 256;
			struct rp_site **nv = rp_realloc(t->v, nc * sizeof(*nv));
			if (!nv)
				return;
			t->v = nv;
			t->cap = nc;
		}
		s->touched = true;
		t->v[t->n++] = s;
	}
}

static int by_count(const void *a, const void *b)
{
	const struct rp_count *x = a, *y = b;
	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

static void to_learning(struct rp_site *s)
{
	acc_reset(s);
	s->state = RP_SS_LEARNING;
	s->epochs = 0;
}

/*
 * Put S on a new stub with TARGETS (most frequent first); the stub keeps
 * only the ones a direct branch can reach from the arena, in the same
 * order, and s->targets/s->ntargets say which.  False if no stub could be
 * made (arena full, all targets out of reach).  The caller sets
 * s->weakest.
 */
static bool install_stub(struct rp_site *s, const uint64_t *targets, unsigned k)
{
	if (!s->targets && !(s->targets = rp_alloc(RP_MAX_TARGETS_LIMIT * sizeof(*s->targets))))
		return false;
	/*
	 * The cell's own compare keeps one target for good: the first hot
	 * target the site is ever promoted with (stub.c).  While that target
	 * is among the hot ones it costs one compare, as a direct call would
	 * cost a call; the stub compares the others.
	 */
	uint64_t first = s->je_target ? s->je_target : targets[0];
	uint64_t rest[RP_MAX_TARGETS_LIMIT], keep[RP_MAX_TARGETS_LIMIT];
	unsigned nrest = 0, used = 0;
	bool use_je = false;
	for (unsigned i = 0; i < k; i++) {
		if (targets[i] == first && rp_reach(s->cell + RP_CELL_JE + 6, first))
			use_je = true;
		else
			rest[nrest++] = targets[i];
	}
	uint64_t stub = rp_stub_emit(s->mod, s, rest, nrest, keep, &used);
	if (!stub || (!use_je && !used))
		return false;   /* nothing within reach to compare (its arena space is not reused) */
	s->versions++;
	s->stub = stub;
	s->ntargets = 0;
	if (use_je) {
		s->je_target = first;
		s->targets[s->ntargets++] = first;
	}
	memcpy(s->targets + s->ntargets, keep, used * sizeof(keep[0]));
	s->ntargets += used;
	s->use_je = use_je;
	s->state = RP_SS_PROMOTED;
	return true;
}

/* Samples of TARGET in S's accumulator. */
static uint64_t acc_count(const struct rp_site *s, uint64_t target)
{
	const struct rp_count *c = acc_find(s, target);
	return c ? c->count : 0;
}

static void decide_learning(struct rp_site *s)
{
	if (s->acc_total < (uint64_t)rp_cfg.promote_min || !s->acc)
		return;
	rp_sort(s->acc, s->nacc, sizeof(*s->acc), by_count);
	uint64_t total = s->acc_total, cum = 0;
	uint64_t targets[RP_MAX_TARGETS_LIMIT];
	unsigned k = 0;
	for (uint32_t i = 0; i < s->nacc && k < (unsigned)rp_cfg.max_targets; i++) {
		if (s->acc[i].count * 1000 < total * (uint64_t)rp_cfg.min_share)
			break;
		targets[k++] = s->acc[i].target;
		cum += s->acc[i].count;
	}
	bool pays = k && cum * 100 >= total * (uint64_t)rp_cfg.min_coverage;
	if (pays && s->versions < (uint32_t)rp_cfg.max_versions && install_stub(s, targets, k)) {
		/* Coverage of what the stub really compares: far targets were left out. */
		cum = 0;
		for (unsigned i = 0; i < s->ntargets; i++)
			cum += acc_count(s, s->targets[i]);
		if (cum * 100 < total * (uint64_t)rp_cfg.min_coverage) {
			rp_debug("site %#lx: a stub within reach covers only %lu%%: left on the fallback",
				 (unsigned long)s->addr, (unsigned long)(cum * 100 / total));
			s->state = RP_SS_PINNED;
		} else {
			s->weakest = acc_count(s, s->targets[s->ntargets - 1]) / (s->epochs + 1);
			rp_debug("site %#lx: promoted with %u targets (%lu%% of %lu samples)",
				 (unsigned long)s->addr, s->ntargets, (unsigned long)(cum * 100 / total),
				 (unsigned long)total);
		}
	} else {
		s->state = RP_SS_PINNED;
		rp_debug("site %#lx: left on the fallback (%u targets cover %lu%%)",
			 (unsigned long)s->addr, k, (unsigned long)(total ? cum * 100 / total : 0));
	}
	acc_reset(s);
	s->epochs = 0;
}

/*
 * A promoted site whose misses grew gets a new stub at once, built from
 * what its misses show: the missed targets that are hot now first, then
 * the targets of the old stub (their hits are not counted, so they keep
 * their order behind).  Going back to learning would cost a whole epoch
 * on the slow path, on every phase change of the program.
 */
static void decide_promoted(struct rp_site *s)
{
	/*
	 * Misses on targets no direct branch from this module's arena can
	 * reach are not a change of workload: no new stub would hold them.
	 * They do not count, or every epoch would make the same stub again.
	 */
	for (uint32_t i = 0; s->acc && i < s->nacc; i++)
		if (!rp_reach(s->cell, s->acc[i].target)) {
			s->acc_total -= s->acc[i].count;
			s->acc[i].count = 0;
		}
	uint64_t misses = s->acc_total;
	if (!s->acc || misses < (uint64_t)rp_cfg.relearn_misses ||
	    s->versions >= (uint32_t)rp_cfg.max_versions) {
		acc_reset(s);   /* misses are judged per epoch */
		return;
	}
	rp_sort(s->acc, s->nacc, sizeof(*s->acc), by_count);
	uint64_t top = s->acc[0].count;
	if (top < 2 * s->weakest && top * 4 < misses) {
		/*
		 * Heavy misses spread over many targets: no stub will cover them,
		 * and each miss records a (site, target) sample, so such a site
		 * would crowd every other site out of its threads' sample tables.
		 * It goes to the fallback, which records nothing, and is learned
		 * again after pin_epochs.
		 */
		rp_debug("site %#lx: %lu misses over %u+ targets: left on the fallback",
			 (unsigned long)s->addr, (unsigned long)misses, s->nacc);
		s->state = RP_SS_PINNED;
		acc_reset(s);
		s->epochs = 0;
		return;
	}
	uint64_t targets[RP_MAX_TARGETS_LIMIT];
	unsigned k = 0, max = (unsigned)rp_cfg.max_targets;
	for (uint32_t i = 0; i < s->nacc && k < max; i++) {
		if (s->acc[i].count * 1000 < misses * (uint64_t)rp_cfg.min_share || s->acc[i].count * 8 < top)
			break;
		targets[k++] = s->acc[i].target;
	}
	unsigned hot = k;
	for (uint32_t i = 0; i < s->ntargets && k < max; i++) {
		bool dup = false;
		for (unsigned j = 0; j < k; j++)
			dup |= targets[j] == s->targets[i];
		if (!dup)
			targets[k++] = s->targets[i];
	}
	rp_stats.relearns++;
	if (!install_stub(s, targets, k)) {
		to_learning(s);
		return;
	}
	/* The weakest hot missed target the new stub really compares (far ones are left out). */
	uint64_t weakest = 0;
	for (unsigned i = 0; i < s->ntargets; i++) {
		uint64_t c = acc_count(s, s->targets[i]);
		bool was_hot = false;
		for (unsigned j = 0; j < hot; j++)
			was_hot |= targets[j] == s->targets[i];
		if (was_hot && (!weakest || c < weakest))
			weakest = c;
	}
	s->weakest = weakest ? weakest : top;
	rp_debug("site %#lx: %lu misses, new stub with %u targets", (unsigned long)s->addr,
		 (unsigned long)misses, s->ntargets);
	acc_reset(s);
	s->epochs = 0;
}

static void age(struct rp_site *s, void *arg)
{
	(void)arg;
	s->epochs++;
	if (s->state == RP_SS_PINNED && s->epochs >= (uint32_t)rp_cfg.pin_epochs)
		to_learning(s);
}

/* ---- the sync pass ---- */

struct plan { struct rp_patch *p; size_t n, cap; };

static void plan_site(struct rp_site *s, void *arg)
{
	struct plan *pl = arg;
	if (s->state == RP_SS_REJECTED || !s->mod->alive)
		return;
	uint64_t want = rp_site_desired(s), slot = rp_site_desired_slot(s);
	if (want == s->cur && slot == s->slot)
		return;
	if (pl->n == pl->cap) {
		size_t nc = pl->cap ? pl->cap * 2 : 64;
		struct rp_patch *np = rp_realloc(pl->p, nc * sizeof(*np));
		if (!np)
			return;
		pl->p = np;
		pl->cap = nc;
	}
	pl->p[pl->n++] = (struct rp_patch){ .site = s, .to = want, .slot = slot };
}

static void count_site(struct rp_site *s, void *arg)
{
	(void)arg;
	if (s->state == RP_SS_PROMOTED && s->cur == s->stub) {
		rp_stats.sites_promoted++;
		rp_stats.stub_targets += s->ntargets;
		rp_stats.stub_hist[s->ntargets > 16 ? 16 : s->ntargets]++;
	} else if (s->state == RP_SS_PINNED) {
		rp_stats.sites_pinned++;
	}
}

static void recount(void)
{
	rp_stats.sites_promoted = rp_stats.sites_pinned = rp_stats.stub_targets = 0;
	memset(rp_stats.stub_hist, 0, sizeof(rp_stats.stub_hist));
	rp_sites_foreach(count_site, NULL);
}

int rp_policy_sync(void)
{
	struct plan pl = { 0 };
	rp_sites_foreach(plan_site, &pl);
	int r = rp_patch_apply(pl.p, pl.n);   /* counts an empty pass itself */
	for (size_t i = 0; i < pl.n; i++) {
		struct rp_patch *p = &pl.p[i];
		struct rp_site *s = p->site;
		if (p->status == RP_PATCH_DONE || p->status == RP_PATCH_ALREADY) {
			if (s->state == RP_SS_PROMOTED && !rp_stats.first_promotion_ns)
				rp_stats.first_promotion_ns = rp_now_ns() - rp_start_ns;
		} else if (p->status == RP_PATCH_REFUSED) {
			s->state = RP_SS_REJECTED;
			rp_stats.sites_rejected++;
		}
	}
	rp_free(pl.p);
	recount();
	return r;
}

void rp_policy_epoch(void)
{
	struct touched t = { 0 };
	rp_learn_aggregate(on_sample, &t);
	rp_sites_foreach(age, NULL);
	for (size_t i = 0; i < t.n; i++) {
		struct rp_site *s = t.v[i];
		s->touched = false;
		if (!rp_enabled) {
			acc_reset(s);
			continue;
		}
		if (s->state == RP_SS_LEARNING)
			decide_learning(s);
		else if (s->state == RP_SS_PROMOTED)
			decide_promoted(s);
	}
	rp_free(t.v);
	rp_policy_sync();
}

static void demote(struct rp_site *s, void *arg)
{
	(void)arg;
	if (s->state == RP_SS_PROMOTED || s->state == RP_SS_PINNED || s->state == RP_SS_LEARNING)
		to_learning(s);
}

void rp_policy_demote_all(void)
{
	rp_sites_foreach(demote, NULL);
}

struct range_arg { uint64_t lo, hi; };

static void forget(struct rp_site *s, void *arg)
{
	const struct range_arg *r = arg;
	if (s->state != RP_SS_PROMOTED || !s->mod->alive)
		return;
	for (uint32_t i = 0; i < s->ntargets; i++)
		if (s->targets[i] >= r->lo && s->targets[i] < r->hi) {
			rp_stats.relearns++;
			to_learning(s);
			return;
		}
}

/*
 * A module's code is going away: sites whose stubs jump into it relearn.
 * Their stubs stay correct (they compare the live register), but their
 * hot targets no longer exist.  The next sync pass moves them.
 */
void rp_policy_forget_range(uint64_t lo, uint64_t hi)
{
	struct range_arg r = { lo, hi };
	rp_sites_foreach(forget, &r);
}
