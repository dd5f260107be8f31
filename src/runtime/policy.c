/*
 * Policy: once per epoch, under rp_lock.
 *
 *   learning --(>= promote_min samples; the cost model prefers a stub and
 *               its targets cover >= min_coverage)--> promoted (chain or tree)
 *   learning --(>= promote_min samples, no stub pays)--> pinned
 *   promoted --(a window of >= relearn_misses misses whose rate is over
 *               MISS_FRAC of the site's calls)--> promoted with a new stub
 *               built for the window's mix, or pinned if none pays now
 *   pinned   --(pin_epochs later)--> learning
 *   a site that has had max_versions stubs is decided for good the next
 *   time its mix asks for a change: it keeps its last stub while that
 *   covers min_coverage, else it is pinned, and it is never relearned
 *   (decide_capped)
 *
 * The cost model (docs/design.md, "Choosing a stub") prices a call through
 * the fallback, through the best chain and through a tree, from the
 * window's target shares and from how predictable the target sequence is
 * (the recorder's first-order predictor: abi.h).  Its constants come from
 * `make bench-micro`.  A site stays promoted while its misses are a small
 * share of its calls, however many targets they are spread over: a wide
 * mix gets a tree, not the fallback.  Every site's state maps to one place
 * its cell's jmp should point to (rp_site_desired); sync() retargets the
 * cells where that differs from where they point now, in one batch.  A
 * pass with nothing to change makes no syscall (patch.c).
 */
#include <stdio.h>
#include <string.h>
#include "internal.h"

/*
 * Cost model constants, ns per call beyond a direct call, fitted by
 * `make bench-micro` (its cost_model section; docs/design.md):
 *   C_RET    a call through the retpoline (the fallback)
 *   C_MISS   a stub miss: the recorder, then the retpoline (the learning
 *            path costs 1.7 times the retpoline)
 *   C_CMP    one more compare in a chain, on a predictable stream
 *   C_LEVEL  one more level of a tree, on a predictable stream
 *   C_TREE   entering a tree (the jump from the cell)
 *   C_MP     one mispredicted branch: twice the extra cost per tree level
 *            on an i.i.d. stream, where half the levels mispredict
 */
#define C_RET   9.5
#define C_MISS  16.0
#define C_CMP   0.16
#define C_LEVEL 0.34
#define C_TREE  0.2
#define C_MP    11.0
/* A stub must beat the fallback by this factor: the model is rough, and a loss is a loss. */
#define MARGIN  0.9
/* A promoted site's window is judged once its misses exceed this share of its calls. */
#define MISS_FRAC 0.05
/* A promoted site's window ends after this many epochs without enough misses. */
#define WINDOW_EPOCHS 64

static uint64_t epoch_now_ns, epoch_prev_ns;

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
	struct rp_count *c = s->acc ? acc_find(s, target) : NULL;
	if (c) {
		c->count += count;
		return;
	}
	if (s->nacc == s->acap) {
		if (s->acap >= RP_ACC_MAX)
			return;   /* counted in the total: coverage shows what is left out */
		uint32_t nc = s->acap ? s->acap * 2 : 16;
		struct rp_count *n = rp_realloc(s->acc, nc * sizeof(*n));
		if (!n)
			return;
		s->acc = n;
		s->acap = nc;
	}
	s->acc[s->nacc++] = (struct rp_count){ target, count };
}

static void acc_reset(struct rp_site *s)
{
	rp_free(s->acc);
	s->acc = NULL;
	s->nacc = s->acap = 0;
	s->acc_total = s->acc_pred = s->acc_cold = 0;
	s->wepochs = 0;
	s->since_ns = epoch_now_ns;
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
	s->samples += count;
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
		s->misses += count;
		break;
	default:
		if (meta & RP_META_MISS)
			return;   /* a miss of a stub the site has left: not a learning sample */
		s->acc_pred += RP_META_PRED(meta);
		s->acc_cold++;   /* this bucket's first successor had no prediction to meet */
		break;
	}
	if (!s->since_ns)
		s->since_ns = epoch_prev_ns ? epoch_prev_ns : rp_start_ns;
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

/*
 * A promoted site's misses grew (or its targets went away): it gets a new
 * stub, or learns again.  Counted once more if its stub came from a saved
 * profile (profile.c): how often a profile was wrong for this run.
 */
static void count_relearn(struct rp_site *s)
{
	rp_stats.relearns++;
	if (s->from_profile)
		rp_stats.profile_relearned++;
	s->from_profile = false;
}

static void to_learning(struct rp_site *s)
{
	s->from_profile = false;
	acc_reset(s);
	s->state = RP_SS_LEARNING;
	s->why = RP_WHY_NONE;
	s->epochs = 0;
}

static void to_pinned(struct rp_site *s, uint8_t why)
{
	s->from_profile = false;
	acc_reset(s);
	s->state = RP_SS_PINNED;
	s->why = why;
	s->epochs = 0;
}

/* ---- the cost model ---- */

/* log2 for 0 < X, to about 1e-3: the runtime links no libm, and the model is rougher than that. */
static double lg2(double x)
{
	uint64_t b;
	memcpy(&b, &x, 8);
	int e = (int)((b >> 52) & 0x7ff) - 1023;
	b = (b & ~(0x7ffull << 52)) | (1023ull << 52);
	double m;
	memcpy(&m, &b, 8);   /* 1 <= m < 2 */
	double t = (m - 1) / (m + 1), t2 = t * t;   /* ln m = 2 atanh t */
	double ln = 2 * t * (1 + t2 / 3 + t2 * t2 / 5 + t2 * t2 * t2 / 7);
	return e + ln * 1.4426950408889634;
}

/* Up to this many targets, a stub's or a profile's mix lives on the stack. */
#define SMALL_MIX 16

/* A window's mix: targets by decreasing share P (their rates in calls per ms). */
struct mix {
	uint64_t *t;
	double *rate;    /* calls per ms */
	double *p;
	unsigned n;
	double unpred;   /* share of an i.i.d. stream's mispredicted calls this one has (predictability()) */
};

/*
 * The recorder runs a first-order predictor over each site's targets
 * (abi.h): ACC is the share of calls whose target it predicted from the
 * previous one; a branch predictor with global history does at least as
 * well.  On an i.i.d. stream the best any predictor does is the most
 * frequent target, P[0].  UNPRED is the share of an i.i.d. stream's
 * mispredicted calls this stream has (0..1): (1 - ACC) / (1 - P[0]).
 */
static void predictability(const struct rp_site *s, struct mix *x)
{
	/*
	 * Each bucket (one thread's samples of one target in one generation)
	 * starts with no prediction: its first successor cannot be foreseen,
	 * whatever the stream.  Those cold samples are left out.
	 */
	uint64_t warm = s->acc_total > s->acc_cold ? s->acc_total - s->acc_cold : 0;
	double acc = warm ? (double)s->acc_pred / (double)warm : 0;
	if (acc > 1)
		acc = 1;
	double u = x->p[0] > 0.999 ? 0 : (1 - acc) / (1 - x->p[0]);
	u = u < 0 ? 0 : u > 1 ? 1 : u;
	/*
	 * The hardware's predictor, with its long global history, foresees
	 * more than these two short ones: scaled by U, the model left CPython's
	 * sites with 8-70 targets on the retpoline where chains and trees pay
	 * (80% of the retpoline cost recovered instead of 90%).  U^2 keeps
	 * i.i.d. streams (U near 1) where they were.
	 */
	x->unpred = u * u;
}

/*
 * A chain of the first K targets: target i costs i+1 compares; a miss
 * costs them all and the miss path.  On an i.i.d. stream each je is
 * predicted in its likelier direction: reached with the remaining share
 * R, taken with p/R.
 */
static double cost_chain(const struct mix *x, unsigned k)
{
	double c = 0, rem = 1, mp = 0, hit = 0;
	for (unsigned i = 0; i < k; i++) {
		double a = rem > 0 ? x->p[i] / rem : 0;
		mp += rem * (a < 1 - a ? a : 1 - a);
		c += x->p[i] * C_CMP * (i + 1);
		rem -= x->p[i];
		hit += x->p[i];
	}
	double miss = 1 - hit;
	c += miss * (C_CMP * k + C_MISS);
	return c + x->unpred * mp * C_MP;
}

/*
 * The cell's compare (first target), then a tree over the others: an
 * optimal search tree's depth is about the entropy H of its mix plus one.
 * A call the predictor could not foresee (a share UNPRED of an i.i.d.
 * stream's) costs
 * about H/2 mispredictions on an i.i.d. stream, where every level is a
 * coin toss, but about one on a patterned stream, where the path leaves
 * the predicted one once and the history then knows the rest of it.  In
 * between, u^2 weights the i.i.d. end: the unforeseen calls of a
 * patterned stream mostly go to a second likely successor.
 */
static double cost_tree(const struct mix *x, unsigned k)
{
	double p0 = x->p[0], rest = 0, h = 0;
	for (unsigned i = 1; i < k; i++)
		rest += x->p[i];
	for (unsigned i = 1; i < k && rest > 0; i++)
		if (x->p[i] > 0)
			h -= x->p[i] / rest * lg2(x->p[i] / rest);
	double miss = 1 - p0 - rest;
	double depth = h + 1;
	double c = p0 * C_CMP + (1 - p0) * (C_CMP + C_TREE + C_LEVEL * depth) + miss * C_MISS;
	double per = h / 2 > 1 ? 1 + (h / 2 - 1) * x->unpred * x->unpred : h / 2;
	double mp = x->unpred * ((p0 < 1 - p0 ? p0 : 1 - p0) + (1 - p0) * per);
	return c + mp * C_MP;
}

/* What to make for mix X: *KIND (chain or tree) over the first *K targets; false: the fallback. */
static bool choose(const struct mix *x, uint8_t *kind, unsigned *k, double *cost_out)
{
	unsigned max = x->n < (unsigned)rp_cfg.max_targets ? x->n : (unsigned)rp_cfg.max_targets;
	double best = 1e30;
	unsigned bk = 0;
	uint8_t bkind = RP_STUB_CHAIN;
	if (rp_cfg.stub != RP_STUB_TREE) {
		unsigned cmax = max < RP_CHAIN_MAX ? max : RP_CHAIN_MAX;
		for (unsigned i = 1; i <= cmax; i++) {
			/* min_share: a target too rare for its own compare (it would only lengthen the chain) */
			if (i > 1 && x->p[i - 1] * 1000 < (double)rp_cfg.min_share)
				break;
			double c = cost_chain(x, i);
			if (c < best) {
				best = c;
				bk = i;
			}
		}
	}
	if (rp_cfg.stub != RP_STUB_CHAIN && max >= 1) {
		double c = cost_tree(x, max);
		if (rp_cfg.stub == RP_STUB_TREE || c < best) {
			best = c;
			bk = max;
			bkind = RP_STUB_TREE;
		}
	}
	*kind = bkind;
	*k = bk;
	*cost_out = best;
	if (!bk)
		return false;
	if (rp_cfg.stub != RP_STUB_AUTO)
		return true;   /* forced: only coverage decides */
	return best < C_RET * MARGIN;
}

/*
 * Put S on a new stub of KIND for the first K targets of X (most frequent
 * first).  The stub keeps only the targets a direct branch can reach from
 * the arena, and s->targets/s->rates say which.  False if no stub could
 * be made (arena full, all targets out of reach).
 */
static bool install_stub(struct rp_site *s, const struct mix *x, unsigned k, uint8_t kind)
{
	if (s->tcap < k + 1) {
		uint64_t *t = rp_realloc(s->targets, (k + 1) * sizeof(*t));
		if (t)
			s->targets = t;
		double *r = rp_realloc(s->rates, (k + 1) * sizeof(*r));
		if (r)
			s->rates = r;
		if (!t || !r)
			return false;
		s->tcap = k + 1;
	}
	/*
	 * The cell's own compare keeps one target for good: the first hot
	 * target the site is ever promoted with (stub.c).  While that target
	 * is among the hot ones it costs one compare, as a direct call would
	 * cost a call; the stub compares the others.
	 */
	uint64_t first = s->je_target ? s->je_target : x->t[0];
	/* A few targets (nearly every site): no allocation; a warm start makes 10,000 stubs at once. */
	uint64_t small[3][SMALL_MIX];
	bool big = k > SMALL_MIX;
	uint64_t *rest = big ? rp_alloc(k * sizeof(*rest)) : small[0];
	uint64_t *keep = big ? rp_alloc(k * sizeof(*keep)) : small[1];
	uint64_t *w = big ? rp_alloc(k * sizeof(*w)) : small[2];
	bool ok = false;
	if (!rest || !keep || !w)
		goto out;
	unsigned nrest = 0, used = 0;
	bool use_je = false;
	double first_rate = 0;
	for (unsigned i = 0; i < k; i++) {
		if (x->t[i] == first && rp_reach(s->cell + RP_CELL_JE + 6, first)) {
			use_je = true;
			first_rate = x->rate[i];
		} else {
			w[nrest] = (uint64_t)(x->p[i] * 1e6);
			rest[nrest++] = x->t[i];
		}
	}
	uint64_t stub;
	if (kind == RP_STUB_TREE && nrest)
		stub = rp_tree_emit(s->mod, s, rest, w, nrest, keep, &used);
	else
		stub = rp_stub_emit(s->mod, s, rest, nrest, keep, &used);
	if (!stub || (!use_je && !used))
		goto out;   /* nothing within reach to compare (its arena space is not reused) */
	s->versions++;
	s->stub = stub;
	s->from_profile = false;   /* a record made from a warm entry sets it again (registry.c) */
	s->skind = kind == RP_STUB_TREE && nrest ? RP_STUB_TREE : RP_STUB_CHAIN;
	s->ntargets = 0;
	if (use_je) {
		s->je_target = first;
		s->rates[s->ntargets] = first_rate;
		s->targets[s->ntargets++] = first;
	}
	for (unsigned i = 0; i < used; i++) {
		double r = 0;
		for (unsigned j = 0; j < k; j++)
			if (x->t[j] == keep[i])
				r = x->rate[j];
		s->rates[s->ntargets] = r;
		s->targets[s->ntargets++] = keep[i];
	}
	s->use_je = use_je;
	s->state = RP_SS_PROMOTED;
	s->why = RP_WHY_NONE;
	ok = true;
out:
	if (big) {
		rp_free(rest);
		rp_free(keep);
		rp_free(w);
	}
	return ok;
}

static double window_ms(const struct rp_site *s)
{
	uint64_t t0 = s->since_ns ? s->since_ns : rp_start_ns;
	double ms = (double)(epoch_now_ns - t0) / 1e6;
	return ms > 0.01 ? ms : 0.01;
}

static void mix_free(struct mix *x)
{
	rp_free(x->t);
	rp_free(x->rate);
	rp_free(x->p);
}

static bool mix_alloc(struct mix *x, unsigned n)
{
	memset(x, 0, sizeof(*x));
	x->t = rp_alloc((n + 1) * sizeof(*x->t));
	x->rate = rp_alloc((n + 1) * sizeof(*x->rate));
	x->p = rp_alloc((n + 1) * sizeof(*x->p));
	if (x->t && x->rate && x->p)
		return true;
	mix_free(x);
	return false;
}

/* Share of X's calls its first K targets cover. */
static double covered(const struct mix *x, unsigned k)
{
	double c = 0;
	for (unsigned i = 0; i < k && i < x->n; i++)
		c += x->p[i];
	return c;
}

/*
 * "0xADDR (function+0xOFF)" for the verbose log, in a buffer of this file's
 * (under rp_lock, one per log line).  Names are read only when verbose is
 * on: rp_symbolize may read a module's symbol table.
 */
static const char *site_name(const struct rp_site *s)
{
	static char buf[224];
	if (!rp_cfg.verbose)
		return "";
	char sym[192];
	rp_symbolize(s->addr, sym, sizeof(sym));
	snprintf(buf, sizeof(buf), "%#lx (%s)", (unsigned long)s->addr, sym);
	return buf;
}

/* The report's view of S's mix X (targets by decreasing share): its size and hottest targets. */
static void snapshot(struct rp_site *s, const struct mix *x)
{
	s->mix_n = x->n;
	s->ntop = 0;
	for (unsigned i = 0; i < x->n && i < RP_SITE_TOP; i++, s->ntop++) {
		s->top_target[i] = x->t[i];
		s->top_ppm[i] = (uint32_t)(x->p[i] * 1e6 + 0.5);
	}
}

static bool capped(const struct rp_site *s)
{
	return s->versions >= (uint32_t)rp_cfg.max_versions;
}

/*
 * S has had all its stub versions and its mix X asks for a decision.  No
 * new stub can be made, and learning again could not change that, so the
 * site is decided for good: a promoted site keeps its last stub while that
 * still covers min_coverage of the mix (a stub that mostly misses costs
 * more than the fallback: stub, slow path, retpoline), anything else is
 * pinned to the fallback, where age() never relearns it.
 */
static void decide_capped(struct rp_site *s, const struct mix *x, const char *what)
{
	double cov = 0;
	if (s->state == RP_SS_PROMOTED) {
		for (unsigned i = 0; i < s->ntargets; i++)
			for (unsigned j = 0; j < x->n; j++)
				if (x->t[j] == s->targets[i])
					cov += x->p[j];
		if (cov * 100 >= (double)rp_cfg.min_coverage) {
			rp_debug("site %s: %s: versions exhausted (max_versions=%ld): keeps its last stub "
				 "(%.0f%% of the window) for good", site_name(s), what,
				 rp_cfg.max_versions, cov * 100);
			s->why = RP_WHY_VERSIONS;
			acc_reset(s);
			return;
		}
		rp_debug("site %s: %s: versions exhausted (max_versions=%ld): its last stub covers %.0f%% "
			 "of the window: left on the fallback for good", site_name(s), what,
			 rp_cfg.max_versions, cov * 100);
	} else {
		rp_debug("site %s: %s: versions exhausted (max_versions=%ld): left on the fallback for good",
			 site_name(s), what, rp_cfg.max_versions);
	}
	to_pinned(s, RP_WHY_VERSIONS);
}

/*
 * Promote S for mix X if a stub pays; otherwise pin it.  WHAT names the
 * occasion in the log.
 */
static void decide(struct rp_site *s, struct mix *x, const char *what)
{
	uint8_t kind;
	unsigned k;
	double cost;
	snapshot(s, x);
	/* First: a capped site pinned for cost or coverage would otherwise be relearned every pin_epochs. */
	if (capped(s)) {
		decide_capped(s, x, what);
		return;
	}
	if (!x->n) {
		to_pinned(s, RP_WHY_COST);
		return;
	}
	if (!choose(x, &kind, &k, &cost)) {
		rp_debug("site %s: %s: %u targets, a stub would cost %.1f ns, the fallback %.1f "
			 "(unpredicted %.2f): left on the fallback", site_name(s), what, x->n, cost,
			 C_RET, x->unpred);
		to_pinned(s, RP_WHY_COST);
		return;
	}
	if (covered(x, k) * 100 < (double)rp_cfg.min_coverage) {
		rp_debug("site %s: %s: %u targets cover %.0f%%: left on the fallback",
			 site_name(s), what, k, covered(x, k) * 100);
		to_pinned(s, RP_WHY_COVERAGE);
		return;
	}
	if (!install_stub(s, x, k, kind)) {
		to_pinned(s, RP_WHY_NOSTUB);
		return;
	}
	/* Coverage of what the stub really compares: far targets were left out. */
	double cov = 0;
	for (unsigned i = 0; i < s->ntargets; i++)
		for (unsigned j = 0; j < x->n; j++)
			if (x->t[j] == s->targets[i])
				cov += x->p[j];
	if (cov * 100 < (double)rp_cfg.min_coverage) {
		rp_debug("site %s: a stub within reach covers only %.0f%%: left on the fallback",
			 site_name(s), cov * 100);
		to_pinned(s, RP_WHY_COVERAGE);
		return;
	}
	char last[64] = "";
	if (capped(s))
		snprintf(last, sizeof(last), ": its last stub version (max_versions=%ld)", rp_cfg.max_versions);
	rp_debug("site %s: %s: %s with %u targets (%.0f%% of the window, unpredicted %.2f, %.1f ns "
		 "modelled)%s", site_name(s), what, s->skind == RP_STUB_TREE ? "tree" : "chain",
		 s->ntargets, cov * 100, x->unpred, cost, last);
	acc_reset(s);
	s->epochs = 0;
}

static void decide_learning(struct rp_site *s)
{
	s->wepochs++;
	if (s->acc_total < (uint64_t)rp_cfg.promote_min || !s->acc)
		return;
	/* Mostly cold samples say little about predictability: wait for more (a few epochs at most). */
	if (s->acc_total < 4 * s->acc_cold && s->wepochs < 8)
		return;
	rp_sort(s->acc, s->nacc, sizeof(*s->acc), by_count);
	struct mix x;
	if (!mix_alloc(&x, s->nacc)) {
		to_pinned(s, RP_WHY_NOSTUB);
		return;
	}
	double ms = window_ms(s), total = (double)s->acc_total;
	for (uint32_t i = 0; i < s->nacc; i++) {
		x.t[i] = s->acc[i].target;
		x.p[i] = (double)s->acc[i].count / total;
		x.rate[i] = (double)s->acc[i].count / ms;
	}
	x.n = s->nacc;
	predictability(s, &x);
	s->unpred = x.unpred;
	s->learned_n = x.n;
	decide(s, &x, "learned");
	mix_free(&x);
}

/*
 * A promoted site's window: its misses since the window began.  The stub's
 * own targets are not counted (their hits cost nothing to record), so the
 * site's call rate is what its stub's targets had when it was made plus
 * the misses' rate now.  Once the misses are a real share of the calls,
 * the site gets a stub for the window's mix: the missed targets at their
 * rates and the stub's targets at theirs (stale, but all we know), the
 * cost model choosing its kind.  A drifting mix over many targets thus
 * gets a new tree, not the fallback.
 */
static void decide_promoted(struct rp_site *s)
{
	s->wepochs++;
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
	if (!s->acc || misses < (uint64_t)rp_cfg.relearn_misses || s->why == RP_WHY_VERSIONS) {
		if (s->wepochs >= WINDOW_EPOCHS || s->why == RP_WHY_VERSIONS)
			acc_reset(s);
		return;
	}
	double ms = window_ms(s), hits = 0;
	for (uint32_t i = 0; i < s->ntargets; i++)
		hits += s->rates[i];
	double mrate = (double)misses / ms;
	if (mrate < MISS_FRAC * (hits + mrate)) {
		acc_reset(s);   /* a cheap share of misses: the window starts again */
		return;
	}
	if (s->learned_n < 4 && s->nacc + s->ntargets >= 8 && !capped(s)) {
		/*
		 * Learned with one or a few targets, now missing on many: its
		 * predictability was measured on a mix that says nothing about
		 * this one, and a stub for a wide mix costs what its
		 * mispredictions cost.  One epoch of learning measures it.
		 */
		rp_debug("site %s: %lu misses over %u targets: learning again", site_name(s),
			 (unsigned long)misses, s->nacc);
		count_relearn(s);
		to_learning(s);
		return;
	}
	rp_sort(s->acc, s->nacc, sizeof(*s->acc), by_count);
	struct mix x;
	if (!mix_alloc(&x, s->nacc + s->ntargets)) {
		acc_reset(s);
		return;
	}
	double total = 0;
	for (uint32_t i = 0; i < s->nacc; i++) {
		if (!s->acc[i].count)
			continue;
		x.t[x.n] = s->acc[i].target;
		x.rate[x.n++] = (double)s->acc[i].count / ms;
	}
	for (uint32_t i = 0; i < s->ntargets; i++) {
		bool dup = false;
		for (unsigned j = 0; j < x.n && !dup; j++)
			dup = x.t[j] == s->targets[i];
		if (!dup) {
			x.t[x.n] = s->targets[i];
			x.rate[x.n++] = s->rates[i];
		}
	}
	/* Decreasing rate (insertion sort: at most RP_ACC_MAX + 256, once per window). */
	for (unsigned i = 1; i < x.n; i++) {
		uint64_t t = x.t[i];
		double r = x.rate[i];
		unsigned j = i;
		for (; j > 0 && x.rate[j - 1] < r; j--) {
			x.t[j] = x.t[j - 1];
			x.rate[j] = x.rate[j - 1];
		}
		x.t[j] = t;
		x.rate[j] = r;
	}
	for (unsigned i = 0; i < x.n; i++)
		total += x.rate[i];
	for (unsigned i = 0; i < x.n; i++)
		x.p[i] = total > 0 ? x.rate[i] / total : 0;
	x.unpred = s->unpred;
	if (s->versions < (uint32_t)rp_cfg.max_versions)
		count_relearn(s);
	decide(s, &x, "misses");
	mix_free(&x);
}

uint32_t rp_epoch_periods = 1;

static void age(struct rp_site *s, void *arg)
{
	(void)arg;
	/* pin_epochs counts periods of epoch_ms, also across an idle worker's longer waits. */
	s->epochs = s->epochs + rp_epoch_periods < s->epochs ? UINT32_MAX : s->epochs + rp_epoch_periods;
	/* A site that has used all its stub versions stays where it is: relearning could not help it. */
	if (s->state == RP_SS_PINNED && s->epochs >= (uint32_t)rp_cfg.pin_epochs &&
	    s->why != RP_WHY_VERSIONS)
		to_learning(s);
}

/* ---- the sync pass ---- */

/* What the cell's compare slot should hold: its je target while a stub relies on it. */
static uint64_t desired_slot(const struct rp_site *s)
{
	if (rp_enabled && s->state == RP_SS_PROMOTED && s->use_je)
		return s->je_target;
	return rp_cell_never(s->cell);
}

/* Where the site's cell jump should point, given its state and the global switches. */
static uint64_t desired(const struct rp_site *s)
{
	const struct rp_module *m = s->mod;
	if (!rp_enabled)
		return m->thunk[s->reg];
	switch (s->state) {
	case RP_SS_PROMOTED:
		return s->stub;
	case RP_SS_PINNED:
		return rp_cfg.fallback == RP_FB_INDIRECT ? m->indirect[s->reg] : m->plain[s->reg];
	case RP_SS_LEARNING:
		return s->cell + RP_CELL_ENTRY;
	default:
		return s->cur;
	}
}


struct plan { struct rp_patch *p; size_t n, cap; };

static void plan_site(struct rp_site *s, void *arg)
{
	struct plan *pl = arg;
	if (s->state == RP_SS_REJECTED || !s->mod->alive)
		return;
	uint64_t want = desired(s), slot = desired_slot(s);
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
	struct rp_stub_counts *c = arg;
	if (s->state == RP_SS_PROMOTED && s->cur == s->stub)
		rp_stub_count(c, s->ntargets, s->skind == RP_STUB_TREE, 1);
	else if (s->state == RP_SS_PINNED)
		rp_stats.sites_pinned++;
}

/* The stub counters from every record and every live warm entry (registry.c). */
static void recount(void)
{
	struct rp_stub_counts c = { 0 };
	rp_stats.sites_pinned = 0;
	rp_sites_foreach(count_site, &c);
	rp_warm_counts(&c);
	rp_stats.sites_promoted = c.promoted;
	rp_stats.stub_targets = c.targets;
	rp_stats.sites_chain = c.chain;
	rp_stats.sites_tree = c.tree;
	memcpy(rp_stats.stub_hist, c.hist, sizeof(rp_stats.stub_hist));
	memcpy(rp_stats.stub_hist_log2, c.hist_log2, sizeof(rp_stats.stub_hist_log2));
}

/* One patch pass for the plan PL (freed here). */
static int apply_plan(struct plan *pl)
{
	int r = rp_patch_apply(pl->p, pl->n);   /* counts an empty pass itself */
	for (size_t i = 0; i < pl->n; i++) {
		struct rp_patch *p = &pl->p[i];
		struct rp_site *s = p->site;
		if (p->status == RP_PATCH_DONE || p->status == RP_PATCH_ALREADY) {
			if (s->state == RP_SS_PROMOTED && !rp_stats.first_promotion_ns)
				rp_stats.first_promotion_ns = rp_now_ns() - rp_start_ns;
		} else if (p->status == RP_PATCH_REFUSED) {
			s->state = RP_SS_REJECTED;
			rp_stats.sites_rejected++;
		}
	}
	rp_free(pl->p);
	return r;
}

int rp_policy_sync(void)
{
	struct plan pl = { 0 };
	rp_sites_foreach(plan_site, &pl);
	int r = apply_plan(&pl);
	recount();
	return r;
}

void rp_policy_epoch(void)
{
	struct touched t = { 0 };
	epoch_prev_ns = epoch_now_ns;
	epoch_now_ns = rp_now_ns();
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
	rp_sites_materialize_all();   /* warm entries too: their cells must move with the records' */
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
			if (capped(s)) {
				/* No stub could replace this one: the fallback, for good. */
				rp_debug("site %s: its targets are unloaded, versions exhausted "
					 "(max_versions=%ld): left on the fallback for good",
					 site_name(s), rp_cfg.max_versions);
				to_pinned(s, RP_WHY_VERSIONS);
				return;
			}
			count_relearn(s);
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
	rp_sites_materialize_range(lo, hi);
	rp_sites_foreach(forget, &r);
}

/* ---- warm start from a saved profile (profile.c) ---- */

/*
 * The stub for site K of M, promoted at once as the run that saved the
 * profile had it: a stub of KIND (RP_STUB_CHAIN or RP_STUB_TREE;
 * RELPOLINE_STUB still forces one) over TARGETS, with their calls per ms
 * RATES (any order), UNPRED and LEARNED_N as the learning measured them
 * then.  The policy's own stub installation runs on a record on the stack:
 * what it decides goes into the warm entry W and its targets into WT/WR
 * (at most N), and no record is made (registry.c makes one when needed).
 * Nothing here trusts the profile for correctness: a stub compares the
 * live register, so a wrong target costs misses, and misses relearn the
 * site as usual.  Runs as M arrives, under rp_lock; the caller points the
 * cells at the stubs (rp_patch_cells_warm).  False if no stub could be
 * made (no target within reach, arena full): the site learns as usual.
 */
bool rp_policy_warm(struct rp_module *m, size_t k, const uint64_t *targets, const double *rates,
		    unsigned n, uint8_t kind, double unpred, unsigned learned_n, struct rp_warm *w,
		    uint64_t *wt, float *wr)
{
	if (!rp_enabled || !n || rp_cfg.max_versions < 1 || n > RP_MAX_TARGETS_LIMIT)
		return false;
	uint64_t tb[RP_MAX_TARGETS_LIMIT + 1];
	double rb[RP_MAX_TARGETS_LIMIT + 1];
	/*
	 * A record on the stack, with only what install_stub and the emitters
	 * read: zeroing all 232 bytes (rep stos) was a third of this function's
	 * time at a warm start.
	 */
	struct rp_site s;
	s.addr = m->site_addr[k];
	s.mod = m;
	s.reg = m->site_reg[k];
	s.cell = m->cells + RP_CELL_SIZE * k;
	s.targets = tb;
	s.rates = rb;
	s.tcap = RP_MAX_TARGETS_LIMIT + 1;
	s.je_target = 0;
	s.versions = 0;
	if (n == 1 && rp_reach(s.cell + RP_CELL_JE + 6, targets[0])) {
		/*
		 * Most sites: one target, which the cell's own compare takes
		 * (install_stub's choice for a one-target mix); the stub is the
		 * miss path alone.  No mix to build.
		 */
		unsigned used;
		s.stub = rp_stub_emit(m, &s, targets, 0, NULL, &used);
		if (!s.stub)
			return false;
		s.skind = RP_STUB_CHAIN;
		s.use_je = true;
		s.ntargets = 1;
		tb[0] = targets[0];
		rb[0] = rates[0];
	} else {
		struct mix x;
		uint64_t st[SMALL_MIX];
		double sr[SMALL_MIX], sp[SMALL_MIX];
		bool big = n > SMALL_MIX;
		if (!big)
			x = (struct mix){ .t = st, .rate = sr, .p = sp };
		else if (!mix_alloc(&x, n))
			return false;
		double total = 0;
		for (unsigned i = 0; i < n; i++) {   /* decreasing rate: insertion sort, n <= 256 */
			unsigned j = i;
			for (; j > 0 && x.rate[j - 1] < rates[i]; j--) {
				x.t[j] = x.t[j - 1];
				x.rate[j] = x.rate[j - 1];
			}
			x.t[j] = targets[i];
			x.rate[j] = rates[i];
			total += rates[i];
		}
		x.n = n;
		double inv = total > 0 ? 1.0 / total : 0;   /* one division: 10,000 sites at a warm start */
		for (unsigned i = 0; i < n; i++)
			x.p[i] = total > 0 ? x.rate[i] * inv : 1.0 / n;
		x.unpred = unpred;
		if (rp_cfg.stub != RP_STUB_AUTO)
			kind = (uint8_t)rp_cfg.stub;
		unsigned kk = n < (unsigned)rp_cfg.max_targets ? n : (unsigned)rp_cfg.max_targets;
		if (kind != RP_STUB_TREE && kk > RP_CHAIN_MAX)
			kk = RP_CHAIN_MAX;
		bool ok = install_stub(&s, &x, kk, kind == RP_STUB_TREE ? RP_STUB_TREE : RP_STUB_CHAIN);
		if (big)
			mix_free(&x);
		if (!ok)
			return false;
	}
	*w = (struct rp_warm){
		.stub = s.stub, .k = (uint32_t)k, .unpred = (float)unpred, .n = (uint16_t)s.ntargets,
		.learned_n = (uint16_t)(learned_n > 65535 ? 65535 : learned_n), .mix_n = (uint16_t)n,
		.skind = s.skind, .use_je = s.use_je,
	};
	for (unsigned i = 0; i < s.ntargets; i++) {
		wt[i] = tb[i];
		wr[i] = (float)rb[i];
	}
	return true;
}

/* M's warm entries just arrived: the counters, and the first promotion's time. */
void rp_policy_count_warm(const struct rp_module *m)
{
	recount();
	if (m->warm_live && !rp_stats.first_promotion_ns)
		rp_stats.first_promotion_ns = rp_now_ns() - rp_start_ns;
}
