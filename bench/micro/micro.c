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
 *   vmbig    bytecode VM, 113 opcodes, one `goto *` dispatch jump    (case 11)
 *   vmcall   the same VM and program, `call *handler[op]` run loop   (case 11)
 *   many K uniform|zipf|pattern|markov  one site, K <= 256 targets  (cases 12, 13)
 *   probe    what the runtime accepts (max_targets 256, stub kinds)
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

/* ---- cases: vmbig / vmcall: an interpreter with 113 opcodes (case 11) ---- */
/*
 * A stack machine with 16 locals, a 64-word memory and a return stack, in the
 * style of real bytecode: specialised loads/stores/constants, arithmetic with
 * and without an immediate, compare-and-branch, a few heavier ops.  Each
 * entry is X(name, operand words, body); a body sees sp, pc (past the opcode),
 * loc, mem, rsp (return stack), code and two temporaries a, b.  The same
 * bodies are compiled twice: as labels of vb_run (`goto *labels[op]`, one
 * dispatch jump) and as handler functions called by vbc_run (`call *`).
 */
#define VB_U(x) ((unsigned long)(x))
#define VB_JUMP(cond) do { if (cond) pc = code + pc[0]; else pc++; } while (0)
#define VB_CMP2(cond) do { b = *--sp; a = *--sp; VB_JUMP(cond); } while (0)
#define VB_REL(cond) do { b = *--sp; a = sp[-1]; sp[-1] = (cond); } while (0)
#define VB_BIN(expr) do { b = *--sp; a = sp[-1]; sp[-1] = (long)(expr); } while (0)
#define VB_IMM(expr) do { b = *pc++; a = sp[-1]; sp[-1] = (long)(expr); } while (0)
#define VB_OPS(X)                                                              \
	X(NOP, 0, )                                                            \
	X(HALT, 0, VB_HALT)                                                    \
	X(PUSH0, 0, *sp++ = 0;) X(PUSH1, 0, *sp++ = 1;)                        \
	X(PUSH2, 0, *sp++ = 2;) X(PUSH3, 0, *sp++ = 3;)                        \
	X(PUSH4, 0, *sp++ = 4;) X(PUSH5, 0, *sp++ = 5;)                        \
	X(PUSH6, 0, *sp++ = 6;) X(PUSH7, 0, *sp++ = 7;)                        \
	X(PUSHM1, 0, *sp++ = -1;) X(PUSHI, 1, *sp++ = *pc++;)                  \
	X(DUP, 0, sp[0] = sp[-1]; sp++;) X(DROP, 0, sp--;)                     \
	X(SWAP, 0, a = sp[-1]; sp[-1] = sp[-2]; sp[-2] = a;)                   \
	X(OVER, 0, sp[0] = sp[-2]; sp++;)                                      \
	X(ROT, 0, a = sp[-3]; sp[-3] = sp[-2]; sp[-2] = sp[-1]; sp[-1] = a;)   \
	VB_LS(X, 0) VB_LS(X, 1) VB_LS(X, 2) VB_LS(X, 3) VB_LS(X, 4)            \
	VB_LS(X, 5) VB_LS(X, 6) VB_LS(X, 7) VB_LS(X, 8) VB_LS(X, 9)            \
	VB_LS(X, 10) VB_LS(X, 11) VB_LS(X, 12) VB_LS(X, 13) VB_LS(X, 14)       \
	VB_LS(X, 15)                                                           \
	X(LOAD, 1, *sp++ = loc[*pc++ & 15];)                                   \
	X(STORE, 1, loc[*pc++ & 15] = *--sp;)                                  \
	X(INC0, 0, loc[0]++;) X(INC1, 0, loc[1]++;)                            \
	X(INC2, 0, loc[2]++;) X(INC3, 0, loc[3]++;)                            \
	X(IINC, 2, loc[pc[0] & 15] += pc[1]; pc += 2;)                         \
	X(LOAD2L, 2, sp[0] = loc[pc[0] & 15]; sp[1] = loc[pc[1] & 15]; sp += 2; pc += 2;) \
	X(ADDL, 1, sp[-1] = (long)(VB_U(sp[-1]) + VB_U(loc[*pc++ & 15]));)    \
	X(STOREK, 1, loc[*pc++ & 15] = sp[-1];)                                \
	X(ADD, 0, VB_BIN(VB_U(a) + VB_U(b));) X(SUB, 0, VB_BIN(VB_U(a) - VB_U(b));) \
	X(MUL, 0, VB_BIN(VB_U(a) * VB_U(b));) X(AND, 0, VB_BIN(a & b);)        \
	X(OR, 0, VB_BIN(a | b);) X(XOR, 0, VB_BIN(a ^ b);)                     \
	X(SHL, 0, VB_BIN(VB_U(a) << (b & 63));) X(SHR, 0, VB_BIN(VB_U(a) >> (b & 63));) \
	X(SAR, 0, VB_BIN(a >> (b & 63));)                                      \
	X(NEG, 0, sp[-1] = (long)(0 - VB_U(sp[-1]));) X(NOT, 0, sp[-1] = ~sp[-1];) \
	X(ADDI, 1, VB_IMM(VB_U(a) + VB_U(b));) X(SUBI, 1, VB_IMM(VB_U(a) - VB_U(b));) \
	X(MULI, 1, VB_IMM(VB_U(a) * VB_U(b));) X(ANDI, 1, VB_IMM(a & b);)      \
	X(ORI, 1, VB_IMM(a | b);) X(XORI, 1, VB_IMM(a ^ b);)                   \
	X(SHLI, 1, VB_IMM(VB_U(a) << (b & 63));) X(SHRI, 1, VB_IMM(VB_U(a) >> (b & 63));) \
	X(DIV, 0, VB_BIN(b ? VB_U(a) / VB_U(b) : 0);)                          \
	X(MOD, 0, VB_BIN(b ? VB_U(a) % VB_U(b) : 0);)                          \
	X(MIN, 0, VB_BIN(a < b ? a : b);) X(MAX, 0, VB_BIN(a > b ? a : b);)    \
	X(ABS, 0, a = sp[-1]; sp[-1] = a < 0 ? (long)(0 - VB_U(a)) : a;)       \
	X(POPCNT, 0, sp[-1] = __builtin_popcountl(VB_U(sp[-1]));)              \
	X(HASH, 0, a = sp[-1]; a ^= (long)(VB_U(a) >> 33); a = (long)(VB_U(a) * 0xff51afd7ed558ccdul); \
		   a ^= (long)(VB_U(a) >> 29); sp[-1] = a;)                    \
	X(CRC8, 0, a = sp[-1]; for (int i_ = 0; i_ < 8; i_++) a = (long)((VB_U(a) >> 1) ^ (0xedb88320ul & (0 - (VB_U(a) & 1)))); \
		   sp[-1] = a;)                                                \
	X(MIX, 0, VB_BIN(((VB_U(a) << 13) | (VB_U(a) >> 51)) ^ (VB_U(b) * 0x9e3779b97f4a7c15ul));) \
	X(EQ, 0, VB_REL(a == b);) X(NE, 0, VB_REL(a != b);)                    \
	X(LT, 0, VB_REL(a < b);) X(LE, 0, VB_REL(a <= b);)                     \
	X(GT, 0, VB_REL(a > b);) X(GE, 0, VB_REL(a >= b);)                     \
	X(EQZ, 0, sp[-1] = !sp[-1];)                                           \
	X(SELECT, 0, a = *--sp; b = *--sp; if (!a) sp[-1] = b;)                \
	X(INCTOS, 0, sp[-1]++;) X(DECTOS, 0, sp[-1]--;)                        \
	X(JMP, 1, pc = code + pc[0];)                                          \
	X(JZ, 1, a = *--sp; VB_JUMP(!a);) X(JNZ, 1, a = *--sp; VB_JUMP(a);)    \
	X(JEQ, 1, VB_CMP2(a == b);) X(JNE, 1, VB_CMP2(a != b);)                \
	X(JLT, 1, VB_CMP2(a < b);) X(JLE, 1, VB_CMP2(a <= b);)                 \
	X(JGT, 1, VB_CMP2(a > b);) X(JGE, 1, VB_CMP2(a >= b);)                 \
	X(LOOP, 2, if (--loc[pc[0] & 15]) pc = code + pc[1]; else pc += 2;)    \
	X(ALOAD, 0, sp[-1] = mem[sp[-1] & 63];)                                \
	X(ASTORE, 0, a = *--sp; b = *--sp; mem[a & 63] = b;)                   \
	X(ALOADL, 1, *sp++ = mem[loc[*pc++ & 15] & 63];)                       \
	X(ASTOREL, 1, mem[loc[*pc++ & 15] & 63] = *--sp;)                      \
	X(CALL, 1, *rsp++ = pc + 1; pc = code + pc[0];)                        \
	X(RET, 0, pc = *--rsp;)
/* LOADn / STOREn for local n */
#define VB_LS(X, n) X(LOAD##n, 0, *sp++ = loc[n];) X(STORE##n, 0, loc[n] = *--sp;)

#define VB_ENUM(name, nargs, ...) VB_##name,
enum { VB_OPS(VB_ENUM) VB_NUM };
#define VB_NAME(name, nargs, ...) #name,
static const char *const vb_names[VB_NUM] = { VB_OPS(VB_NAME) };
#define VB_NARGS(name, nargs, ...) nargs,
static const int vb_nargs[VB_NUM] = { VB_OPS(VB_NARGS) };

#define VB_TMP __attribute__((unused)) long a, b;

/*
 * The goto interpreter: every handler jumps back to the one `vb_dispatch`
 * block (one dispatch jump, checked by micro.mk with objdump, like vm_run).
 * Called with code == NULL it copies its label addresses to LABELS instead,
 * so the case can check that the 113 handlers are 113 distinct addresses.
 */
NOI long vb_run(const int32_t *code, long *loc, long *mem, long *nops, const void **labels_out)
{
#define VB_LABEL(name, nargs, ...) &&vb_##name,
	static const void *const labels[VB_NUM] = { VB_OPS(VB_LABEL) };
	if (!code) {
		memcpy(labels_out, labels, sizeof(labels));
		return 0;
	}
	long stack[64];
	const int32_t *rstack[32];
	long *sp = stack;
	const int32_t **rsp = rstack;
	const int32_t *pc = code;
	long ops = 0;
vb_dispatch:
	ops++;
	goto *labels[*pc++];
#define VB_HALT goto vb_done;
#define VB_CASE(name, nargs, ...) vb_##name: { VB_TMP __VA_ARGS__ } goto vb_dispatch;
	VB_OPS(VB_CASE)
#undef VB_HALT
vb_done:
	*nops = ops;
	return sp == stack && rsp == rstack ? loc[9] : -1;
}

/* The call-threaded interpreter: one handler function per opcode. */
struct vbst { long *sp, *loc, *mem; const int32_t **rsp; const int32_t *code; };
typedef const int32_t *(*vbh_t)(struct vbst *, const int32_t *);
#define VB_HALT { st->sp = sp; return NULL; }
#define VB_FN(name, nargs, ...)                                                        \
	NOI static const int32_t *vbh_##name(struct vbst *st, const int32_t *pc)       \
	{                                                                              \
		long *sp = st->sp;                                                     \
		__attribute__((unused)) long *loc = st->loc, *mem = st->mem;            \
		__attribute__((unused)) const int32_t **rsp = st->rsp;                  \
		__attribute__((unused)) const int32_t *code = st->code;                 \
		VB_TMP __VA_ARGS__                                                     \
		st->sp = sp;                                                           \
		st->rsp = rsp;                                                         \
		return pc;                                                             \
	}
VB_OPS(VB_FN)
#undef VB_HALT
#define VB_FNREF(name, nargs, ...) vbh_##name,
static vbh_t const vbh_tab[VB_NUM] = { VB_OPS(VB_FNREF) };

NOI long vbc_run(const int32_t *code, long *loc, long *mem, long *nops)
{
	long stack[64];
	const int32_t *rstack[32];
	struct vbst st = { stack, loc, mem, rstack, code };
	const int32_t *pc = code;
	long ops = 0;
	do {
		ops++;
		pc = vbh_tab[*pc](&st, pc + 1);   /* the one call site */
	} while (pc);
	*nops = ops;
	return st.sp == stack && st.rsp == rstack ? loc[9] : -1;
}

/*
 * The program: a main loop calling seven small functions (sum of squares,
 * Fibonacci, Euclid's gcd, a bubble sort of 8 hashed values, an FNV-style
 * hash over memory, Collatz steps, an expression kernel).  Each uses its own
 * locals; the data-dependent branches (sort, gcd, Collatz) make the opcode
 * stream vary from one outer iteration to the next the way real code does.
 * The caller puts the number of outer iterations in local 14; the result
 * (local 9) is a checksum.  Every opcode appears (checked at assembly).
 */
static const char vb_source[] =
	"main:   LOAD14 STORE15\n"
	"outer:  CALL sum CALL fib CALL gcd CALL sort CALL hash\n"
	"        LOAD15 ANDI 1 JNZ m_s CALL coll\n"
	"m_s:    CALL expr LOOP 15 outer HALT\n"
	/* s = sum over i of i*i, with an xor every 4th i */
	"sum:    PUSHI 24 STORE0 PUSH0 STORE1\n"
	"sum_l:  LOAD0 DUP MUL LOAD1 ADD ANDI 65535 STORE1\n"
	"        LOAD0 ANDI 3 JNZ sum_s\n"
	"        LOAD1 LOAD0 SHLI 3 XOR STORE1\n"
	"sum_s:  LOOP 0 sum_l LOAD1 ADDL 9 STORE9 RET\n"
	"fib:    PUSH0 STORE3 PUSH1 STORE4 PUSHI 20 STORE5\n"
	"fib_l:  LOAD3 LOAD4 ADD LOAD4 STORE3 ANDI 1048575 STORE4 LOOP 5 fib_l\n"
	"        LOAD4 LOAD9 XOR STORE9 RET\n"
	"gcd:    PUSHI 6 STORE8\n"
	"gcd_o:  LOAD8 LOAD11 ADD MULI 37 ADDI 11 ANDI 1023 STORE6\n"
	"        LOAD8 MULI 23 ADDI 7 STORE7\n"
	"gcd_l:  LOAD7 JZ gcd_d LOAD6 LOAD7 MOD LOAD7 STORE6 STORE7 JMP gcd_l\n"
	"gcd_d:  LOAD6 LOAD9 ADD STORE9 LOOP 8 gcd_o RET\n"
	"sort:   PUSHI 8 STORE10\n"
	"fill:   LOAD10 LOAD11 ADD HASH ANDI 255 LOAD10 DECTOS ASTORE LOOP 10 fill\n"
	"        PUSHI 7 STORE12\n"
	"so:     PUSH0 STORE13\n"
	"si:     ALOADL 13 LOAD13 INCTOS ALOAD JLE sn\n"
	"        ALOADL 13 LOAD13 INCTOS ALOAD LOAD13 ASTORE LOAD13 INCTOS ASTORE\n"
	"sn:     IINC 13 1 LOAD13 LOAD12 JLT si LOOP 12 so\n"
	"        PUSH0 ALOAD PUSHI 7 ALOAD XOR ADDL 9 STORE9\n"
	"        LOAD11 ADDI 7 STORE11 RET\n"
	"hash:   PUSHI 16 STORE14 PUSHI 216613626 STORE2\n"
	"hash_l: LOAD2 LOAD14 ADDI 15 ALOAD XOR MULI 16777619 ANDI 2147483647 STORE2\n"
	"        LOOP 14 hash_l\n"
	"        LOAD2 POPCNT LOAD2 CRC8 ADD ADDL 9 STORE9 RET\n"
	"coll:   LOAD9 ANDI 127 ADDI 27 STORE0 PUSH0 STORE1\n"
	"col_l:  LOAD0 PUSH1 JEQ col_d\n"
	"        LOAD0 PUSH1 AND JZ col_e\n"
	"        LOAD0 PUSH3 MUL INCTOS STORE0 JMP col_n\n"
	"col_e:  LOAD0 PUSH1 SHR STORE0\n"
	"col_n:  INC1 LOAD1 PUSHI 40 JLT col_l\n"
	"col_d:  LOAD1 LOAD9 ADD STORE9 RET\n"
	"expr:   PUSHI 12 STORE5\n"
	"ex_l:   LOAD5 PUSH7 MUL PUSH2 SUB LOAD5 PUSH4 ADD DIV STORE12\n"
	"        LOAD12 DUP PUSH5 MIN SWAP PUSH6 MAX ADD STORE13\n"
	"        LOAD2L 12 5 SUBI 3 MIX ABS ANDI 4095 STORE0\n"
	"        LOAD13 LOAD0 OVER OVER LT ROT ROT GE ADD STORE10\n"
	"        LOAD0 NEG NOT ORI 16 SHRI 1 XORI 85 LOAD12 PUSH2 SHL OR STOREK 6 DROP\n"
	"        LOAD6 LOAD13 EQ LOAD6 LOAD0 NE ADD LOAD13 LOAD0 LE ADD\n"
	"        LOAD0 LOAD12 GT ADD LOAD0 EQZ ADD STORE7\n"
	"        LOAD0 LOAD13 LOAD7 PUSH1 AND SELECT LOAD5 ADDI 16 STORE 14 ASTOREL 14\n"
	"        LOAD13 PUSHM1 XOR PUSH2 SAR STORE 8\n"
	"        LOAD 7 LOAD 13 JGT ex_a INC2 JMP ex_b\n"
	"ex_a:   INC3\n"
	"ex_b:   LOAD0 LOAD7 JNE ex_c NOP\n"
	"ex_c:   LOAD5 PUSHI 9 JGE ex_d INC0\n"
	"ex_d:   LOAD0 LOAD12 ADD LOAD8 ADD LOAD9 XOR STORE9 LOOP 5 ex_l RET\n";

static int32_t vb_code[2048];

static int vb_is_num(const char *t)
{
	if (*t == '-')
		t++;
	if (!*t)
		return 0;
	for (; *t; t++)
		if (*t < '0' || *t > '9')
			return 0;
	return 1;
}

/*
 * Assemble vb_source into vb_code: "name:" defines a label, an opcode name
 * emits its opcode, a number or a label name emits an operand word.  Checks
 * operand counts, labels and that every opcode is used.  Returns the length.
 */
static int vb_assemble(void)
{
	enum { MAXL = 64 };
	char lname[MAXL][32];
	int lpos[MAXL], nl = 0;
	struct { int at; char name[32]; } fix[256];
	int nfix = 0, n = 0, need = 0, last = -1;
	unsigned char used[VB_NUM] = { 0 };
	char tok[32];
	const char *s = vb_source;
	for (;;) {
		while (*s == ' ' || *s == '\n')
			s++;
		if (!*s)
			break;
		int len = 0;
		while (*s && *s != ' ' && *s != '\n' && len < 31)
			tok[len++] = *s++;
		tok[len] = 0;
		if (tok[len - 1] == ':') {
			tok[len - 1] = 0;
			snprintf(lname[nl], sizeof(lname[nl]), "%s", tok);
			lpos[nl++] = n;
			continue;
		}
		int op = -1;
		for (int i = 0; i < VB_NUM; i++)
			if (!strcmp(tok, vb_names[i]))
				op = i;
		if (op >= 0) {
			if (need) {
				fprintf(stderr, "vb: %s lacks an operand\n", vb_names[last]);
				exit(3);
			}
			vb_code[n++] = op;
			used[op] = 1;
			need = vb_nargs[op];
			last = op;
			continue;
		}
		if (!need) {
			fprintf(stderr, "vb: stray operand %s\n", tok);
			exit(3);
		}
		need--;
		if (vb_is_num(tok)) {
			vb_code[n++] = (int32_t)atol(tok);
		} else {
			fix[nfix].at = n;
			snprintf(fix[nfix++].name, sizeof(fix[0].name), "%s", tok);
			vb_code[n++] = 0;
		}
	}
	for (int f = 0; f < nfix; f++) {
		int i = 0;
		while (i < nl && strcmp(lname[i], fix[f].name))
			i++;
		if (i == nl) {
			fprintf(stderr, "vb: no label %s\n", fix[f].name);
			exit(3);
		}
		vb_code[fix[f].at] = lpos[i];
	}
	for (int i = 0; i < VB_NUM; i++)
		if (!used[i]) {
			fprintf(stderr, "vb: opcode %s unused\n", vb_names[i]);
			exit(3);
		}
	return n;
}

static int case_vmbig(int call_threaded)
{
	const char *name = call_threaded ? "vmcall" : "vmbig";
	long loc[16], mem[64], ops = 0, res = 0;
	double v[64];
	int len = vb_assemble();
	const void *labels[VB_NUM];
	vb_run(NULL, NULL, NULL, NULL, labels);
	int distinct = 0;
	for (int i = 0; i < VB_NUM; i++) {
		int seen = 0;
		for (int j = 0; j < i; j++)
			seen |= labels[j] == labels[i];
		distinct += !seen;
	}
#define VB_GO(iters)                                                            \
	do {                                                                    \
		memset(loc, 0, sizeof(loc));                                    \
		memset(mem, 0, sizeof(mem));                                    \
		loc[14] = (iters);                                              \
		res = call_threaded ? vbc_run(vb_code, loc, mem, &ops)          \
				    : vb_run(vb_code, loc, mem, &ops, NULL);    \
	} while (0)
	VB_GO(1);
	long per_iter = ops;
	SETTLE(VB_GO(20000 / per_iter + 1));
	info(name);
	long iters = batch_calls / per_iter + 1;
	VB_GO(iters);
	for (int b = 0; b < nbatches; b++) {
		uint64_t t0 = now_ns();
		VB_GO(iters);
		uint64_t t1 = now_ns();
		v[b] = (double)(t1 - t0) / (double)ops;
	}
	if (verbose) {
		printf("BATCHES %s", name);
		for (int b = 0; b < nbatches; b++)
			printf(" %.3f", v[b]);
		printf("\n");
	}
	double med = median(v, nbatches);   /* sorts v */
	printf("ROW %s %.4f %.4f\n", name, med, v[0]);
	printf("INFO %s opcodes=%d distinct_handlers=%d code_words=%d dispatches_per_run=%ld "
	       "dispatches_per_outer_iteration=%ld result=%ld\n",
	       name, VB_NUM, call_threaded ? VB_NUM : distinct, len, ops, per_iter, res);
	return res == -1 ? 1 : 0;
}
#undef VB_GO

/* ---- case: many K DIST: one site with up to 256 targets (cases 12, 13) ---- */
/* 256 more targets w000..w377 (octal-style names), a pool of their own */
#define D4(M, p) M(p##0) M(p##1) M(p##2) M(p##3)
#define DEF_W(n) NOI long w##n(long x) { return (x ^ 0##n) + 3; }
#define DEF_W8(p) D8B(DEF_W, p)
#define DEF_W64(p) D8A(DEF_W8, p)
D4(DEF_W64, )
#define REF_W(n) w##n,
#define REF_W8(p) D8B(REF_W, p)
#define REF_W64(p) D8A(REF_W8, p)
static fn_t const all_w[256] = { D4(REF_W64, ) };
static fn_t volatile vw[256];

DEF_LOOP_SEQ(loop_many)

struct many_ctx {
	long (*loop)(fn_t const *, const uint8_t *, long);
	fn_t tab[256];
	uint8_t *seq;
};
static long run_many(void *c, long n)
{
	struct many_ctx *x = c;
	return x->loop(x->tab, x->seq, n);
}

/*
 * Fill seq (SEQ_LEN entries) with indices 0..k-1:
 *   uniform  i.i.d. uniform
 *   zipf     i.i.d. Zipf(1) (index 0 the most frequent)
 *   pattern  one fixed sequence of at least 4k entries (at least 16), made of
 *            random permutations of 0..k-1, repeated: every target equally
 *            often, in an order that a long history predicts (an
 *            interpreter's loop, a phase of a program), though a target's
 *            successor differs from one permutation to the next
 *   markov   a first-order Markov chain with skewed successors: each target
 *            is followed by the next of a fixed cycle through all k with
 *            probability 0.7, else by one of two fixed random targets (0.2,
 *            0.1), so the previous target predicts the next one
 * The generator restarts from a fixed seed, so every configuration gets the
 * same sequence.
 */
static int make_seq_many(uint8_t *seq, int k, const char *dist)
{
	rng = 0x2545f4914f6cdd1dull ^ (uint64_t)k;
	if (!strcmp(dist, "pattern")) {
		int nperm = k >= 4 ? 4 : (16 + k - 1) / k;
		int len = nperm * k;
		uint8_t tmp[256 * 8];
		for (int p = 0; p < nperm; p++) {
			for (int i = 0; i < k; i++)
				tmp[p * k + i] = (uint8_t)i;
			for (int i = k - 1; i > 0; i--) {
				int j = (int)(xrand() % (uint64_t)(i + 1));
				uint8_t t = tmp[p * k + i];
				tmp[p * k + i] = tmp[p * k + j];
				tmp[p * k + j] = t;
			}
		}
		for (int j = 0; j < SEQ_LEN; j++)
			seq[j] = tmp[j % len];
		return len;
	}
	if (!strcmp(dist, "markov")) {
		int cyc[256], succ[256][3];
		for (int i = 0; i < k; i++)
			cyc[i] = i;
		for (int i = k - 1; i > 0; i--) {
			int j = (int)(xrand() % (uint64_t)(i + 1));
			int t = cyc[i];
			cyc[i] = cyc[j];
			cyc[j] = t;
		}
		for (int i = 0; i < k; i++) {
			succ[cyc[i]][0] = cyc[(i + 1) % k];
			succ[cyc[i]][1] = (int)(xrand() % (uint64_t)k);
			succ[cyc[i]][2] = (int)(xrand() % (uint64_t)k);
		}
		int cur = 0;
		for (int j = 0; j < SEQ_LEN; j++) {
			seq[j] = (uint8_t)cur;
			uint64_t u = xrand() % 10;
			cur = succ[cur][u < 7 ? 0 : u < 9 ? 1 : 2];
		}
		return 0;
	}
	int zipf = !strcmp(dist, "zipf");
	if (!zipf && strcmp(dist, "uniform"))
		return -1;
	double cum[256], tot = 0, c = 0;
	for (int i = 0; i < k; i++)
		tot += zipf ? 1.0 / (i + 1) : 1.0;
	for (int i = 0; i < k; i++) {
		c += (zipf ? 1.0 / (i + 1) : 1.0) / tot;
		cum[i] = c;
	}
	for (int j = 0; j < SEQ_LEN; j++) {
		double u = (double)(xrand() >> 11) / (double)(1ull << 53);
		int lo = 0, hi = k - 1;   /* first i with u < cum[i] */
		while (lo < hi) {
			int mid = (lo + hi) / 2;
			if (u < cum[mid])
				hi = mid;
			else
				lo = mid + 1;
		}
		seq[j] = (uint8_t)lo;
	}
	return 0;
}

/* Expected depth (levels visited, 1-based) in a balanced tree over [lo, hi). */
static double tree_depth(const double *f, int lo, int hi, int level)
{
	if (lo >= hi)
		return 0;
	int mid = lo + (hi - lo) / 2;
	return f[mid] * level + tree_depth(f, lo, mid, level + 1) + tree_depth(f, mid + 1, hi, level + 1);
}

/*
 * Expected depth of a hit in an optimal binary search tree over N keys in
 * address order with hit frequencies F (the shape the runtime's tree stubs
 * have): Knuth's O(N^2) dynamic programme.
 */
static double opt_tree_depth(const double *f, int n)
{
	static double cost[257][257];
	static int root[257][257];
	double pre[257] = { 0 };
	for (int i = 0; i < n; i++)
		pre[i + 1] = pre[i] + f[i];
	for (int i = 0; i < n; i++) {
		cost[i][i] = 0;
		cost[i][i + 1] = f[i];
		root[i][i + 1] = i;
	}
	cost[n][n] = 0;
	for (int len = 2; len <= n; len++)
		for (int i = 0; i + len <= n; i++) {
			int j = i + len, br = root[i][j - 1];
			double best = 1e300;
			for (int r = root[i][j - 1]; r <= root[i + 1][j]; r++) {
				double c = cost[i][r] + cost[r + 1][j];
				if (c < best) {
					best = c;
					br = r;
				}
			}
			cost[i][j] = best + pre[j] - pre[i];
			root[i][j] = br;
		}
	return pre[n] > 0 ? cost[0][n] / pre[n] : 0;
}

static int cmp_desc_d(const void *a, const void *b) { return cmp_d(b, a); }
static const fn_t *addr_sort_tab;
static int cmp_addr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)addr_sort_tab[*(const int *)a], y = (uintptr_t)addr_sort_tab[*(const int *)b];
	return (x > y) - (x < y);
}

/* What the runtime is configured with (the relpoline build only). */
static void info_cfg(const char *what)
{
#if HAVE_RT
	static const char *const keys[] = { "stub", "max_targets", "min_share", "min_coverage" };
	printf("INFO %s cfg", what);
	for (unsigned i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char buf[64];
		if (relpoline_config_get(keys[i], buf, sizeof(buf)) == 0)
			printf(" %s=%s", keys[i], buf);
		else
			printf(" %s=unsupported", keys[i]);
	}
	printf("\n");
#else
	(void)what;
#endif
}

static int case_many(int k, const char *dist)
{
	static uint8_t seq[SEQ_LEN];
	static struct many_ctx sc, dc;
	char name[48];
	snprintf(name, sizeof(name), "many.%s.%d", dist, k);
	int plen = make_seq_many(seq, k, dist);
	if (plen < 0)
		return 2;
	/* index i -> a fixed random choice among the 256 functions (same for every K) */
	int perm[256];
	rng = 0x853c49e6748fea9bull;
	for (int i = 0; i < 256; i++)
		perm[i] = i;
	for (int i = 255; i > 0; i--) {
		int j = (int)(xrand() % (uint64_t)(i + 1));
		int t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	sc.loop = loop_many;
	sc.seq = seq;
	for (int i = 0; i < k; i++)
		sc.tab[i] = vw[perm[i]];

	/*
	 * The model the driver fits costs against: expected position in a chain
	 * ordered by frequency (the cell's compare is position 1) and expected
	 * levels in a tree over the targets sorted by address, an optimal search
	 * tree for their frequencies (tree_depth) or a balanced one.
	 */
	double f[256] = { 0 }, fs[256], fa[256];
	for (int j = 0; j < SEQ_LEN; j++)
		f[seq[j]] += 1.0 / SEQ_LEN;
	memcpy(fs, f, sizeof(fs));
	qsort(fs, (size_t)k, sizeof(double), cmp_desc_d);
	double chain_pos = 0;
	for (int i = 0; i < k; i++)
		chain_pos += fs[i] * (i + 1);
	int order[256];
	for (int i = 0; i < k; i++)
		order[i] = i;
	addr_sort_tab = sc.tab;
	qsort(order, (size_t)k, sizeof(int), cmp_addr);
	for (int i = 0; i < k; i++)
		fa[i] = f[order[i]] + 1e-9;
	printf("INFO %s model chain_pos=%.4f tree_depth=%.4f tree_depth_balanced=%.4f top_share=%.4f pattern_len=%d\n",
	       name, chain_pos, opt_tree_depth(fa, k), tree_depth(fa, 0, k, 1), fs[0], plen);

	SETTLE(sink = loop_many(sc.tab, seq, 200000));
	info(name);
	info_cfg(name);
	dc = sc;
	dc.loop = loop_seq_direct;
	struct meas m[2] = { { "seqdirect", run_many, &dc, {0} }, { name, run_many, &sc, {0} } };
	measure(m, 2, batch_calls);
	return 0;
}

/* ---- case: probe: what the runtime accepts (run once by the driver) ---- */
static int case_probe(void)
{
#if HAVE_RT
	char buf[64];
	int mt = relpoline_config_set("max_targets", "256");
	int st = relpoline_config_get("stub", buf, sizeof(buf));
	printf("PROBE max_targets_256=%d stub=%s version=%s\n", mt == 0, st == 0 ? buf : "unsupported",
	       relpoline_version());
#else
	printf("PROBE runtime=none\n");
#endif
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
	for (int i = 0; i < 256; i++)
		vw[i] = all_w[i];
	if (argc < 2) {
		fprintf(stderr, "usage: %s mono|two|zipf16|uni64|vm|vmbig|vmcall|promote|memory|probe|"
			"sweep K uniform|zipf|cyclic|many K uniform|zipf|pattern|markov\n", argv[0]);
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
	else if (!strcmp(c, "vmbig"))
		r = case_vmbig(0);
	else if (!strcmp(c, "vmcall"))
		r = case_vmbig(1);
	else if (!strcmp(c, "many") && argc >= 4) {
		int k = atoi(argv[2]);
		if (k < 1 || k > 256)
			return 2;
		r = case_many(k, argv[3]);
	} else if (!strcmp(c, "probe"))
		r = case_probe();
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
