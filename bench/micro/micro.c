/*
 * relpoline micro-benchmarks.  One source, built several ways by
 * bench/micro/micro.mk:
 *   plain      gcc -O2                                   (direct / plain indirect)
 *   retpoline  gcc -O2 -mindirect-branch=thunk ...       (the compiler's own thunks)
 *   relpoline  relpoline-cc -O2 -DMICRO_RELPOLINE        (the runtime under test)
 * and run by bench/micro/run.py, which interleaves the processes and takes
 * medians.  This program runs ONE case per process and prints lines
 *   ROW  <name> <median> [<min>]       a measurement: median and minimum of the
 *                                      in-process batches (ns per call)
 *   PAIR <name> <ref> <ratio>          median over batches of name/ref, where each
 *                                      batch of name ran right after one of ref
 *   INFO <key>=<value> ...             what the runtime did (promoted, targets, ...)
 *
 * Usage: micro CASE [K DIST]
 *   mono     direct call and a monomorphic indirect site            (cases 1, 6)
 *   two      a site with two targets: second target only, alternating (case 2)
 *   zipf16   16 targets, Zipf(1) skew, precomputed random sequence    (case 3)
 *   uni64    64 targets, uniform random                              (case 4)
 *   vm       bytecode VM with a single `goto *` dispatch jump         (case 5)
 *   promote  time from first call to promotion, default settings     (case 7)
 *   memory   promote 512 sites, report arena bytes per stub target   (case 9)
 *   sweep K uniform|zipf|cyclic   one site with K targets            (case 10)
 *
 * Environment: MICRO_BATCH (calls per timed batch, default 1000000),
 * MICRO_BATCHES (default 9).
 *
 * Nothing here may be devirtualised: targets are noipa, function pointers
 * come from volatile globals, loops are noipa.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef MICRO_RELPOLINE
#include <relpoline.h>
#define HAVE_RT 1
#else
#define HAVE_RT 0
static int relpoline_epoch(void) { return 0; }
#endif

#ifndef MICRO_CONFIG
#define MICRO_CONFIG "unknown"
#endif

#define NOI __attribute__((noinline, noipa))

typedef long (*fn_t)(long);

static long batch_calls = 1000000;
static int nbatches = 9;
static int verbose;
static volatile long sink;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- 64 targets t00..t77 (octal-style names), each a tiny bit of work ---- */
#define D8A(M, p) M(p##0) M(p##1) M(p##2) M(p##3) M(p##4) M(p##5) M(p##6) M(p##7)
#define D8B(M, p) M(p##0) M(p##1) M(p##2) M(p##3) M(p##4) M(p##5) M(p##6) M(p##7)
#define D8C(M, p) M(p##0) M(p##1) M(p##2) M(p##3) M(p##4) M(p##5) M(p##6) M(p##7)

#define DEF_T(n) NOI long t##n(long x) { return (x ^ 0##n) + 1; }
#define DEF_T8(p) D8B(DEF_T, p)
D8A(DEF_T8, )

#define REF_T(n) t##n,
#define REF_T8(p) D8B(REF_T, p)
static fn_t const all_targets[64] = { D8A(REF_T8, ) };

/* Loaded through volatile so no build can see which target a site gets. */
static fn_t volatile vtargets[64];
static fn_t tgt(int i) { return vtargets[i]; }

/* ---- loops: each function below is its own call site ---- */
NOI long loop_direct(long n)
{
	long acc = 0;
	for (long i = 0; i < n; i++)
		acc = t00(acc);
	return acc;
}

#define DEF_LOOP_IND(name)                                      \
	NOI long name(fn_t f, long n)                           \
	{                                                       \
		long acc = 0;                                   \
		for (long i = 0; i < n; i++)                    \
			acc = f(acc);                           \
		return acc;                                     \
	}
DEF_LOOP_IND(loop_mono)
DEF_LOOP_IND(loop_second)
DEF_LOOP_IND(loop_promo)

/* f and g swap every call: one site, two targets, strictly alternating. */
NOI long loop_alt(fn_t f, fn_t g, long n)
{
	long acc = 0;
	for (long i = 0; i < n; i++) {
		acc = f(acc);
		fn_t t = f;
		f = g;
		g = t;
	}
	return acc;
}

#define SEQ_LEN (1 << 16)
#define SEQ_MASK (SEQ_LEN - 1)
#define DEF_LOOP_SEQ(name)                                            \
	NOI long name(fn_t const *tab, const uint8_t *seq, long n)     \
	{                                                             \
		long acc = 0;                                         \
		for (long i = 0; i < n; i++)                          \
			acc = tab[seq[i & SEQ_MASK]](acc);            \
		return acc;                                           \
	}
DEF_LOOP_SEQ(loop_zipf16)
DEF_LOOP_SEQ(loop_uni64)
DEF_LOOP_SEQ(loop_sweep)
/* Same shape, but the call is a direct one: the reference for seq loops. */
NOI long loop_seq_direct(fn_t const *tab, const uint8_t *seq, long n)
{
	long acc = 0;
	for (long i = 0; i < n; i++) {
		fn_t f = tab[seq[i & SEQ_MASK]];
		__asm__ volatile("" ::"r"(f));
		acc = t00(acc);
	}
	return acc;
}

/* ---- pseudo-random sequences ---- */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t xrand(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ull;
}

/*
 * Fill seq with indices 0..k-1: i.i.d. uniform (zipf 0), i.i.d. Zipf with
 * exponent 1 (zipf 1), or cyclic 0 1 .. k-1 0 1 .. (zipf 2: every target
 * equally often, but predictable from history, like an interpreter's loop).
 */
static void make_seq(uint8_t *seq, int k, int zipf)
{
	if (zipf == 2) {
		for (int j = 0; j < SEQ_LEN; j++)
			seq[j] = (uint8_t)(j % k);
		return;
	}
	double w[64], cum[64], tot = 0;
	for (int i = 0; i < k; i++) {
		w[i] = zipf ? 1.0 / (i + 1) : 1.0;
		tot += w[i];
	}
	double c = 0;
	for (int i = 0; i < k; i++) {
		c += w[i] / tot;
		cum[i] = c;
	}
	for (int j = 0; j < SEQ_LEN; j++) {
		double u = (double)(xrand() >> 11) / (double)(1ull << 53);
		int i = 0;
		while (i < k - 1 && u >= cum[i])
			i++;
		seq[j] = (uint8_t)i;
	}
}

/* ---- measurement helpers ---- */
static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}
static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/*
 * Up to 4 measured loops, timed in interleaved batches (A B C A B C ...) so
 * a noisy moment hits all of them; each gets the median of its batches.
 */
struct meas {
	const char *name;
	long (*run)(void *ctx, long n);
	void *ctx;
	double v[64];
};

static void measure(struct meas *m, int nm, long per_batch)
{
	for (int i = 0; i < nm; i++)   /* warm caches and predictors */
		sink = m[i].run(m[i].ctx, per_batch / 10 + 1);
	for (int b = 0; b < nbatches; b++)
		for (int i = 0; i < nm; i++) {
			uint64_t t0 = now_ns();
			sink = m[i].run(m[i].ctx, per_batch);
			uint64_t t1 = now_ns();
			m[i].v[b] = (double)(t1 - t0) / (double)per_batch;
		}
	/*
	 * Batch b of loop i ran right after batch b of loop 0 (the in-process
	 * reference): their ratio is immune to the slow/fast phases of this VM
	 * that last longer than a batch.  PAIR = median of those ratios.
	 */
	for (int i = 1; i < nm; i++) {
		double r[64];
		for (int b = 0; b < nbatches; b++)
			r[b] = m[i].v[b] / m[0].v[b];
		printf("PAIR %s %s %.4f\n", m[i].name, m[0].name, median(r, nbatches));
	}
	for (int i = 0; i < nm; i++) {
		if (verbose) {
			printf("BATCHES %s", m[i].name);
			for (int b = 0; b < nbatches; b++)
				printf(" %.3f", m[i].v[b]);
			printf("\n");
		}
		double med = median(m[i].v, nbatches);   /* sorts v */
		printf("ROW %s %.4f %.4f\n", m[i].name, med, m[i].v[0]);
	}
}

static void info(const char *what)
{
	if (getenv("MICRO_PAUSE")) {   /* time to run relpoline-stubs PID */
		fprintf(stderr, "pid %d: pausing %s s\n", (int)getpid(), getenv("MICRO_PAUSE"));
		sleep((unsigned)atoi(getenv("MICRO_PAUSE")));
	}
#if HAVE_RT
	struct relpoline_stats st;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	relpoline_stats_get(&st);
	printf("INFO %s sites_seen=%llu sites_promoted=%llu sites_pinned=%llu stub_targets=%llu "
	       "stubs_emitted=%llu misses=%llu relearns=%llu arena_bytes=%llu epochs=%llu "
	       "records_dropped=%llu\n",
	       what, (unsigned long long)st.sites_seen, (unsigned long long)st.sites_promoted,
	       (unsigned long long)st.sites_pinned, (unsigned long long)st.stub_targets,
	       (unsigned long long)st.stubs_emitted, (unsigned long long)st.misses,
	       (unsigned long long)st.relearns, (unsigned long long)st.arena_bytes,
	       (unsigned long long)st.epochs, (unsigned long long)st.records_dropped);
#else
	printf("INFO %s runtime=none\n", what);
#endif
}

/* Warm a site, then run epochs so the runtime decides it (no-op elsewhere). */
#define SETTLE(warm_stmt)                       \
	do {                                    \
		for (int _e = 0; _e < 3; _e++) {\
			warm_stmt;              \
			relpoline_epoch();      \
		}                               \
		warm_stmt;                      \
	} while (0)

/* ---- case: mono / two ---- */
struct ind_ctx { long (*loop)(fn_t, long); fn_t f; };
static long run_direct(void *c, long n) { (void)c; return loop_direct(n); }
static long run_ind(void *c, long n)
{
	struct ind_ctx *x = c;
	return x->loop(x->f, n);
}
struct alt_ctx { fn_t f, g; };
static long run_alt(void *c, long n)
{
	struct alt_ctx *x = c;
	return loop_alt(x->f, x->g, n);
}
struct seq_ctx {
	long (*loop)(fn_t const *, const uint8_t *, long);
	fn_t tab[64];
	uint8_t *seq;
};
static long run_seq(void *c, long n)
{
	struct seq_ctx *x = c;
	return x->loop(x->tab, x->seq, n);
}

static int case_mono(void)
{
	fn_t a = tgt(1);
	SETTLE(sink = loop_mono(a, 100000));
	info("mono");
	struct ind_ctx ic = { loop_mono, a };
	struct meas m[2] = { { "direct", run_direct, NULL, {0} }, { "mono", run_ind, &ic, {0} } };
	measure(m, 2, batch_calls);
	return 0;
}

static int case_two(void)
{
	fn_t a = tgt(2), b = tgt(1);   /* A (more frequent) at the higher address */
	/*
	 * loop_second is learned with A twice as frequent as B, so A gets the
	 * first compare and B the second; then only B is timed.
	 */
	SETTLE(for (int j = 0; j < 20000; j++) { sink = loop_second(a, 2); sink = loop_second(b, 1); });
	SETTLE(sink = loop_alt(a, b, 100000));
	info("two");
	struct ind_ctx ic = { loop_second, b };
	struct alt_ctx ac = { a, b };
	struct meas m[3] = { { "direct", run_direct, NULL, {0} },
			     { "two.second", run_ind, &ic, {0} },
			     { "two.alternate", run_alt, &ac, {0} } };
	measure(m, 3, batch_calls);
	return 0;
}

static int case_seq(const char *name, long (*loop)(fn_t const *, const uint8_t *, long), int k, int zipf)
{
	static uint8_t seq[SEQ_LEN];
	static struct seq_ctx sc;
	make_seq(seq, k, zipf);
	sc.loop = loop;
	sc.seq = seq;
	/* most frequent = highest address: a stub sorted by address would show */
	for (int i = 0; i < k; i++)
		sc.tab[i] = tgt(63 - i);
	SETTLE(sink = loop(sc.tab, seq, 200000));
	info(name);
	static struct seq_ctx dc;
	dc = sc;
	dc.loop = loop_seq_direct;
	struct meas m[2] = { { "seqdirect", run_seq, &dc, {0} }, { name, run_seq, &sc, {0} } };
	measure(m, 2, batch_calls);
	return 0;
}

/* ---- case: vm ---- */
enum { OP_PUSH, OP_LOAD, OP_STORE, OP_ADD, OP_SUB, OP_MUL, OP_XOR, OP_AND, OP_SHR,
       OP_DUP, OP_JMP, OP_JZ, OP_JNZ, OP_HALT, OP_NUM };

/*
 * The interpreter.  Every handler jumps back to the one `dispatch` block, and
 * micro.mk compiles with --param=max-goto-duplication-insns=0 so gcc keeps a
 * single `jmp *%reg` (thunk-extern: one `jmp __x86_indirect_thunk_<reg>`
 * tail site) instead of copying it into every handler.  micro.mk checks the
 * count with objdump.
 */
NOI long vm_run(const long *code, long *locals, long *nops)
{
	static const void *const labels[OP_NUM] = {
		&&op_push, &&op_load, &&op_store, &&op_add, &&op_sub, &&op_mul, &&op_xor,
		&&op_and, &&op_shr, &&op_dup, &&op_jmp, &&op_jz, &&op_jnz, &&op_halt };
	long stack[64];
	long *sp = stack;
	const long *pc = code;
	long ops = 0;
	long a;
dispatch:
	ops++;
	goto *labels[*pc++];
op_push:  *sp++ = *pc++; goto dispatch;
op_load:  *sp++ = locals[*pc++]; goto dispatch;
op_store: locals[*pc++] = *--sp; goto dispatch;
op_add:   a = *--sp; sp[-1] += a; goto dispatch;
op_sub:   a = *--sp; sp[-1] -= a; goto dispatch;
op_mul:   a = *--sp; sp[-1] *= a; goto dispatch;
op_xor:   a = *--sp; sp[-1] ^= a; goto dispatch;
op_and:   a = *--sp; sp[-1] &= a; goto dispatch;
op_shr:   a = *--sp; sp[-1] = (long)((unsigned long)sp[-1] >> a); goto dispatch;
op_dup:   sp[0] = sp[-1]; sp++; goto dispatch;
op_jmp:   pc = code + *pc; goto dispatch;
op_jz:    a = *--sp; pc = a ? pc + 1 : code + *pc; goto dispatch;
op_jnz:   a = *--sp; pc = a ? code + *pc : pc + 1; goto dispatch;
op_halt:
	*nops = ops;
	return locals[1];
}

/*
 *   i = N; s = 0; x = 1
 *   do { x = x * 1103515245 + 12345
 *        if ((x >> 16) & 1) s += i; else s ^= i
 *   } while (--i)
 * 13 opcodes, a data-dependent branch, 21 or 22 dispatches per iteration.
 */
static long vm_code[64];
static void vm_assemble(long iters)
{
	long *c = vm_code;
	enum { I = 0, S = 1, X = 2 };
#define E(...) do { long _v[] = { __VA_ARGS__ }; memcpy(c, _v, sizeof(_v)); c += sizeof(_v) / sizeof(long); } while (0)
	E(OP_PUSH, iters, OP_STORE, I, OP_PUSH, 0, OP_STORE, S, OP_PUSH, 1, OP_STORE, X);
	long loop = c - vm_code;
	E(OP_LOAD, X, OP_PUSH, 1103515245, OP_MUL, OP_PUSH, 12345, OP_ADD, OP_STORE, X);
	E(OP_LOAD, X, OP_PUSH, 16, OP_SHR, OP_PUSH, 1, OP_AND, OP_JZ);
	long *jz_arg = c++;
	E(OP_LOAD, S, OP_LOAD, I, OP_ADD, OP_STORE, S, OP_JMP);
	long *jmp_arg = c++;
	*jz_arg = c - vm_code;
	E(OP_LOAD, S, OP_LOAD, I, OP_XOR, OP_STORE, S);
	*jmp_arg = c - vm_code;
	E(OP_LOAD, I, OP_PUSH, 1, OP_SUB, OP_DUP, OP_STORE, I, OP_JNZ, loop, OP_HALT);
#undef E
}

static int case_vm(void)
{
	long ops = 0, locals[4] = { 0 };
	double v[64];
	vm_assemble(2000);
	SETTLE({ sink = vm_run(vm_code, locals, &ops); });
	info("vm");
	/* about batch_calls dispatches per timed run */
	vm_assemble(batch_calls / 21);
	sink = vm_run(vm_code, locals, &ops);
	for (int b = 0; b < nbatches; b++) {
		uint64_t t0 = now_ns();
		sink = vm_run(vm_code, locals, &ops);
		uint64_t t1 = now_ns();
		v[b] = (double)(t1 - t0) / (double)ops;
	}
	double med = median(v, nbatches);
	printf("ROW vm %.4f %.4f\n", med, v[0]);
	printf("INFO vm dispatches_per_run=%ld result=%ld\n", ops, (long)sink);
	return 0;
}

/* ---- case: promote (defaults, background worker) ---- */
static int case_promote(void)
{
#if HAVE_RT
	struct relpoline_stats st;
	fn_t a = tgt(1);
	uint64_t t0 = now_ns(), t;
	long calls = 0;
	for (;;) {
		sink = loop_promo(a, 1000);
		calls += 1000;
		memset(&st, 0, sizeof(st));
		st.size = sizeof(st);
		relpoline_stats_get(&st);
		t = now_ns();
		if (st.sites_promoted > 0 || t - t0 > 2000000000ull)
			break;
	}
	printf("ROW promote_ms %.4f\n", st.sites_promoted ? (t - t0) / 1e6 : 2000.0);
	printf("INFO promote promoted=%llu calls=%ld first_promotion_ms=%.3f epochs=%llu\n",
	       (unsigned long long)st.sites_promoted, calls, st.first_promotion_ns / 1e6,
	       (unsigned long long)st.epochs);
	return st.sites_promoted ? 0 : 1;
#else
	fprintf(stderr, "promote: needs the relpoline build\n");
	return 2;
#endif
}

/* ---- case: memory: 512 sites with 1..4 targets each ---- */
#define DEF_S(n) NOI long s##n(fn_t f, long x) { return f(x) * 3 + 1; }
#define DEF_S8(p) D8C(DEF_S, p)
#define DEF_S64(p) D8B(DEF_S8, p)
D8A(DEF_S64, )

#define CALL_S(n) acc = s##n(tgt((int)(rep % (1 + (0##n % 4)))), acc);
#define CALL_S8(p) D8C(CALL_S, p)
/* 8 groups of 64 sites: call_group_0 .. call_group_7 */
#define DEF_GROUP(p)                                            \
	NOI long call_group_##p(long rep, long acc)             \
	{                                                       \
		D8B(CALL_S8, p)                                 \
		return acc;                                     \
	}
D8A(DEF_GROUP, )
/* Direct calls only: an indirect call here would be one more site. */
#define CALL_GROUP(p) if (g == 0##p) return call_group_##p(rep, acc);
__attribute__((unused)) NOI static long call_group(int g, long rep, long acc)
{
	D8A(CALL_GROUP, )
	return acc;
}

static int case_memory(void)
{
#if HAVE_RT
	/*
	 * One group (64 sites, 160 site/target pairs) per epoch: a thread's
	 * sample table has RP_TTAB_SIZE (1024) entries, and all 512 sites at
	 * once (1280 pairs) would overflow it between two manual epochs.
	 */
	for (int round = 0; round < 3; round++)
		for (int g = 0; g < 8; g++) {
			for (long rep = 0; rep < 1200; rep++)
				sink = call_group(g, rep, rep);
			relpoline_epoch();
		}
	struct relpoline_stats st;
	memset(&st, 0, sizeof(st));
	st.size = sizeof(st);
	relpoline_stats_get(&st);
	info("memory");
	double per = st.stub_targets ? (double)st.arena_bytes / st.stub_targets : 0;
	printf("ROW bytes_per_target %.2f\n", per);
	printf("ROW bytes_per_site %.2f\n", st.sites_promoted ? (double)st.arena_bytes / st.sites_promoted : 0);
	printf("INFO memory_expected sites=512 targets=%d\n", 512 / 4 * (1 + 2 + 3 + 4));
	return 0;
#else
	fprintf(stderr, "memory: needs the relpoline build\n");
	return 2;
#endif
}

int main(int argc, char **argv)
{
	const char *e;
	if ((e = getenv("MICRO_BATCH")) && atol(e) > 0)
		batch_calls = atol(e);
	if ((e = getenv("MICRO_BATCHES")) && atoi(e) > 0 && atoi(e) <= 64)
		nbatches = atoi(e);
	verbose = getenv("MICRO_VERBOSE") != NULL;
	for (int i = 0; i < 64; i++)
		vtargets[i] = all_targets[i];
	if (argc < 2) {
		fprintf(stderr, "usage: %s mono|two|zipf16|uni64|vm|promote|memory|sweep K uniform|zipf|cyclic\n", argv[0]);
		return 2;
	}
	printf("INFO config=%s case=%s\n", MICRO_CONFIG, argv[1]);
	const char *c = argv[1];
	int r;
	if (!strcmp(c, "mono"))
		r = case_mono();
	else if (!strcmp(c, "two"))
		r = case_two();
	else if (!strcmp(c, "zipf16"))
		r = case_seq("zipf16", loop_zipf16, 16, 1);
	else if (!strcmp(c, "uni64"))
		r = case_seq("uni64", loop_uni64, 64, 0);
	else if (!strcmp(c, "vm"))
		r = case_vm();
	else if (!strcmp(c, "promote"))
		r = case_promote();
	else if (!strcmp(c, "memory"))
		r = case_memory();
	else if (!strcmp(c, "sweep") && argc >= 4) {
		int k = atoi(argv[2]);
		if (k < 1 || k > 64)
			return 2;
		char name[32];
		snprintf(name, sizeof(name), "sweep.%s.%d", argv[3], k);
		int dist = !strcmp(argv[3], "zipf") ? 1 : !strcmp(argv[3], "cyclic") ? 2 : 0;
		r = case_seq(name, loop_sweep, k, dist);
	} else {
		fprintf(stderr, "unknown case %s\n", c);
		return 2;
	}
	fflush(stdout);
	return r;
}
