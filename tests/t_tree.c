/*
 * Tree stubs (src/stub.c, rp_tree_emit) and the policy that chooses them.
 *
 * t_tree [regs]   (run with RELPOLINE_STUB=tree, EPOCH_MS=0, a high
 *                 RELEARN_MISSES)  Every thunk register on call (e8), tail
 *                 jmp (e9) and jcc (0f 85) sites of the register fixture
 *                 (regs.S, as t_regs drives it), with many targets: the
 *                 trampolines of tree_targets.S, each of which records
 *                 which one ran and enters regs_target_a with every
 *                 register as it found it.  Per site, one epoch at a time:
 *                   - train N targets (40-100; a few sites 2, 3, 256 and
 *                     300), with uneven counts so the tree is uneven too,
 *                     then one epoch: the site must be on a tree stub of
 *                     its own ("RPLT" header naming it, in an arena), with
 *                     N-1 keys (the first hot target is the cell's own
 *                     compare; at most MAX_TARGETS in all);
 *                   - the structure of that tree, disassembled with
 *                     Capstone (tree_verify below), and the checker's own
 *                     ability to fail: copies of the tree with one defect
 *                     each (a jb made ja, a je off by 16, another register
 *                     compared, a leaf writing %eax, slots swapped, a slot
 *                     changed, a wrong miss word) must each be noticed;
 *                   - every key and the cell's target (a hit at every
 *                     depth) and every value between and around them (pool
 *                     targets not in the tree: misses) reach the right
 *                     trampoline with every general and vector register,
 *                     the return address, the stack arguments and the
 *                     callee-saved registers after the return intact;
 *                   - the hits never reach the slow path (records do not
 *                     grow), each miss is counted (misses grow by exactly
 *                     the miss calls), and the site keeps its tree.
 * t_tree policy   (RELPOLINE_STUB=auto, EPOCH_MS=0)  One site, 100 targets
 *                 in a fixed repeating order (strongly patterned), its
 *                 window narrowing to 20 targets and widening to 100 over
 *                 phases, some phases moving to targets it never had: after
 *                 every epoch the site must be on a tree, never pinned
 *                 (sites_tree 1, sites_pinned 0), and by the end of each
 *                 phase its tree must cover the window (under 5% misses).
 *                 Prints how many epochs the first promotion took.
 * t_tree latency  (RELPOLINE_STUB=auto, epochs on their own: EPOCH_MS > 0)
 *                 The same 100-target site from its first call until it is
 *                 on a tree: prints the ms and epochs it took; asserts at
 *                 most 5 epochs.
 */
#include "common.h"
#include "sites.h"
#include <capstone/capstone.h>
#include <time.h>

/* ---- the register fixture (regs.S): its data lives in the C file that drives it ---- */
struct snap {
	uint64_t g[16];
	uint64_t ret, stk0, stk1, id, cnt, pad[3];
	uint8_t v[8][64];
};
_Static_assert(offsetof(struct snap, ret) == 128, "layout");
_Static_assert(offsetof(struct snap, id) == 152, "layout");
_Static_assert(offsetof(struct snap, cnt) == 160, "layout");
_Static_assert(offsetof(struct snap, v) == 192, "layout");

#define HID __attribute__((visibility("hidden")))
HID struct snap regs_snap __attribute__((aligned(64)));
HID uint64_t regs_after[16];
HID uint64_t regs_tgt, regs_callrsp;
HID int regs_vlevel;
HID uint8_t regs_one = 1;
HID uint8_t regs_vpat[8][64] __attribute__((aligned(64)));
uint64_t regs_invoke(void *fn, void *target);

/* tree_targets.S */
#define TREE_POOL 640
extern char tree_pool[], tree_pool_end[];
extern uint64_t tree_which;
static void *tgt(int k) { return tree_pool + 16 * k; }
static int tgt_index(uint64_t a)
{
	uint64_t b = (uint64_t)(uintptr_t)tree_pool;
	return a >= b && a < b + 16 * TREE_POOL && (a - b) % 16 == 0 ? (int)((a - b) / 16) : -1;
}

extern const char __ehdr_start[] HID;

/* reg name, index in the fixture's register order (rax rbx rcx rdx rsi rdi rbp rsp r8..r15), capstone id */
#define ALLREGS(X) X(rax, 0, RAX) X(rbx, 1, RBX) X(rcx, 2, RCX) X(rdx, 3, RDX) X(rsi, 4, RSI) \
	X(rdi, 5, RDI) X(rbp, 6, RBP) X(r8, 8, R8) X(r9, 9, R9) X(r10, 10, R10) X(r11, 11, R11) \
	X(r12, 12, R12) X(r13, 13, R13) X(r14, 14, R14) X(r15, 15, R15)

#define DECL(reg, idx, CS)                                                         \
	extern char regs_call_##reg[], regs_tail_##reg[], regs_jcc_##reg[];            \
	extern char regs_ret_call_##reg[], regs_ret_tail_##reg[], regs_ret_jcc_##reg[];\
	extern char regs_site_tail_##reg[], regs_site_jcc_##reg[];                     \
	extern char __relpoline_slow_##reg[] HID;
ALLREGS(DECL)
#undef DECL

enum { K_CALL, K_TAIL, K_JCC, NKIND };
static const char *const kind_name[NKIND] = { "call", "tail", "jcc" };

struct rcase {
	const char *reg;
	int idx;        /* fixture register index */
	int csreg;      /* capstone register */
	int kind;
	void *fn;       /* regs_<kind>_<reg> */
	char *ret;      /* the return address the target must see */
	char *site;     /* the thunk branch */
	char *slow;     /* __relpoline_slow_<reg>: where the miss path must go */
};
static struct rcase cases[15 * NKIND];
static int ncases;

/* P - N, without a pointer subtraction the compiler would see leave its object */
static char *before(char *p, int n) { return (char *)((uintptr_t)p - (uintptr_t)n); }

static void add_cases(void)
{
#define ADD(reg, i, CS)                                                                   \
	cases[ncases++] = (struct rcase){ #reg, i, X86_REG_##CS, K_CALL, regs_call_##reg,     \
		regs_ret_call_##reg, before(regs_ret_call_##reg, 5), __relpoline_slow_##reg };   \
	cases[ncases++] = (struct rcase){ #reg, i, X86_REG_##CS, K_TAIL, regs_tail_##reg,     \
		regs_ret_tail_##reg, regs_site_tail_##reg, __relpoline_slow_##reg };             \
	cases[ncases++] = (struct rcase){ #reg, i, X86_REG_##CS, K_JCC, regs_jcc_##reg,       \
		regs_ret_jcc_##reg, regs_site_jcc_##reg, __relpoline_slow_##reg };
	ALLREGS(ADD)
#undef ADD
}

static const char *const gname[16] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15" };

static uint64_t pat(int i)
{
	return 0x5A5A000000000000ull + ((uint64_t)i << 32) + 0x01020304ull * (uint64_t)(i + 1);
}

static void init_vectors(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		regs_vlevel = 2;
	else if (__builtin_cpu_supports("avx"))
		regs_vlevel = 1;
	if (getenv("RP_TEST_VLEVEL"))
		regs_vlevel = atoi(getenv("RP_TEST_VLEVEL"));
	for (int k = 0; k < 8; k++)
		for (int b = 0; b < 64; b++)
			regs_vpat[k][b] = (uint8_t)(0x13 * (k + 1) + b * 5 + (b >> 3));
}

/* One call through C to pool target K, everything checked (as t_regs does).  0 if all is well. */
static int one_call(const struct rcase *c, int k, const char *phase)
{
	void *t = tgt(k);
	int bad = 0;
	memset(&regs_snap, 0xEE, sizeof regs_snap);
	regs_snap.cnt = 0;
	memset(regs_after, 0xEE, sizeof regs_after);
	tree_which = ~0ull;
	uint64_t r = regs_invoke(c->fn, t);
#define BAD(...)                                                                          \
	do {                                                                                  \
		char m_[256];                                                                     \
		snprintf(m_, sizeof m_, __VA_ARGS__);                                             \
		bad++;                                                                            \
		CHECK(0, "reg %s kind %s phase %s target %d: %s", c->reg, kind_name[c->kind],     \
		      phase, k, m_);                                                              \
	} while (0)
	if (tree_which != (uint64_t)k)
		BAD("reached trampoline %" PRId64 ", want %d", (int64_t)tree_which, k);
	if (regs_snap.cnt != 1 || regs_snap.id != 0xA1)
		BAD("regs_target_a reached %" PRIu64 " times (id %#" PRIx64 ")", regs_snap.cnt, regs_snap.id);
	for (int i = 0; i < 16; i++) {
		if (i == 7)
			continue;
		uint64_t want = i == c->idx ? (uint64_t)(uintptr_t)t : pat(i);
		if (regs_snap.g[i] != want)
			BAD("at target %s = %#" PRIx64 " want %#" PRIx64, gname[i], regs_snap.g[i], want);
	}
	if (regs_snap.g[7] != regs_callrsp - 8)
		BAD("at target rsp = %#" PRIx64 " want %#" PRIx64, regs_snap.g[7], regs_callrsp - 8);
	if (regs_snap.ret != (uint64_t)(uintptr_t)c->ret)
		BAD("return address %#" PRIx64 " want %p", regs_snap.ret, (void *)c->ret);
	if (regs_snap.stk0 != 0x57AC57AC00000001ull || regs_snap.stk1 != 0x57AC57AC00000002ull)
		BAD("stack args %#" PRIx64 " %#" PRIx64, regs_snap.stk0, regs_snap.stk1);
	int vw = regs_vlevel == 2 ? 64 : regs_vlevel == 1 ? 32 : 16;
	for (int v = 0; v < 8; v++)
		if (memcmp(regs_snap.v[v], regs_vpat[v], (size_t)vw)) {
			BAD("vector register %d changed (%s)", v, vw == 64 ? "zmm" : vw == 32 ? "ymm" : "xmm");
			break;
		}
	if (r != 0xA1 || regs_after[0] != 0xA1)
		BAD("return value %#" PRIx64, r);
	static const int callee_saved[] = { 1, 6, 12, 13, 14, 15 };
	for (unsigned j = 0; j < sizeof callee_saved / sizeof callee_saved[0]; j++) {
		int i = callee_saved[j];
		uint64_t want = i == c->idx ? (uint64_t)(uintptr_t)t : pat(i);
		if (regs_after[i] != want)
			BAD("after return %s = %#" PRIx64 " want %#" PRIx64, gname[i], regs_after[i], want);
	}
	if (regs_after[7] != regs_callrsp)
		BAD("after return rsp = %#" PRIx64 " want %#" PRIx64, regs_after[7], regs_callrsp);
#undef BAD
	return bad;
}

/* ---- the structure of a tree stub, with Capstone ---- */

struct tree {
	const unsigned char *entry, *miss, *slots;
	unsigned code, nkeys;
	uint64_t key[256];
	unsigned nodes, maxdepth, depth_sum;
};

static csh cs;

static int cs_reg_of_insn(const cs_insn *in, int *is_rip_mem, uint64_t *mem_addr)
{
	const cs_x86 *x = &in->detail->x86;
	int reg = -1;
	*is_rip_mem = 0;
	for (int i = 0; i < x->op_count; i++) {
		const cs_x86_op *op = &x->operands[i];
		if (op->type == X86_OP_REG)
			reg = op->reg;
		else if (op->type == X86_OP_MEM && op->mem.base == X86_REG_RIP &&
			 op->mem.index == X86_REG_INVALID && op->size == 8) {
			*is_rip_mem = 1;
			*mem_addr = in->address + in->size + (uint64_t)op->mem.disp;
		}
	}
	return reg;
}

static uint64_t branch_dest(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;
	return x->op_count == 1 && x->operands[0].type == X86_OP_IMM ? (uint64_t)x->operands[0].imm : 0;
}

/*
 * Everything about the tree stub at ENTRY of case C's site, from its live
 * bytes; T gets its keys (the slots, in address order) and depths.
 * Checked, for every instruction of the code (header's code bytes):
 *   - it decodes, and the code decodes to exactly that many bytes;
 *   - it is cmp %R, m64(%rip) with R the site's register and the m64 one
 *     of the stub's slots; je/jb/ja/jmp rel to an instruction of the stub
 *     or (je) anywhere; or the miss path at the end: push $word; jmp slow_R
 *     with word the site's offset from the module base with the miss bit,
 *     and slow_R the module's slow entry for R;
 *   - it writes no register but the flags (Capstone's regs_access; rip
 *     and, for the miss path's push, rsp aside);
 *   - every je follows a cmp and goes to the value of the slot that cmp
 *     reads (a node branches to its own key); every slot is read by
 *     exactly one node; the slots are strictly increasing.
 * Then the stub is run symbolically (flags from the last compare, unsigned)
 * for every key (it must end in the je to itself), and for the values
 * around every key, between every two keys, below the first, above the
 * last, 0, ~0 and EXTRA (none of them a key: each must end on the miss
 * path).  Returns the number of problems.
 */
static int tree_quiet, tree_probs;   /* tree_quiet: count problems, print nothing (self-test) */
#define TCHECK(cond, ...)                                                                     \
	do {                                                                                      \
		if (!(cond)) {                                                                        \
			tree_probs++;                                                                     \
			if (!tree_quiet)                                                                  \
				CHECK(0, __VA_ARGS__);                                                         \
		}                                                                                     \
	} while (0)

/* The checks and runs described above, on a copy: CODE bytes BUF of the stub at ENTRY, its N slots KEYS. */
static int tree_verify(const struct rcase *c, const unsigned char *entry, const unsigned char *buf,
		       unsigned code, const uint64_t *keys, unsigned n, struct tree *t,
		       const uint64_t *extra, int nextra)
{
	int bad0 = tree_probs;
	const char *R = c->reg;
	memset(t, 0, sizeof *t);
	t->entry = entry;
	t->code = code;
	t->nkeys = n;
	t->miss = entry + code - 10;
	t->slots = entry + ((code + 7) & ~7u);
	memcpy(t->key, keys, 8 * (size_t)n);
	for (unsigned i = 1; i < n; i++)
		TCHECK(t->key[i - 1] < t->key[i], "%s %s: slots not strictly increasing at %u", R,
		       kind_name[c->kind], i);

	cs_insn *in = NULL;
	size_t cnt = cs_disasm(cs, buf, code, (uint64_t)(uintptr_t)entry, 0, &in);
	size_t bytes = 0;
	for (size_t i = 0; i < cnt; i++)
		bytes += in[i].size;
	TCHECK(cnt >= 3 && bytes == code, "%s %s: %zu instructions decode %zu of %u code bytes", R,
	      kind_name[c->kind], cnt, bytes, code);
	if (cnt < 3 || bytes != code) {
		cs_free(in, cnt);
		return tree_probs - bad0;
	}
	/* Per instruction: its key (cmp), and checks. */
	uint64_t *ikey = calloc(cnt, sizeof *ikey);
	unsigned *slot_reads = calloc(n, sizeof *slot_reads);
	const uint64_t miss = (uint64_t)(uintptr_t)t->miss;
	for (size_t i = 0; i < cnt; i++) {
		const cs_insn *x = &in[i];
		cs_regs rr, rw;
		uint8_t nr = 0, nw = 0;
		int is_miss = x->address >= miss;
		if (cs_regs_access(cs, x, rr, &nr, rw, &nw) != CS_ERR_OK)
			TCHECK(0, "%s: no register access for %s %s", R, x->mnemonic, x->op_str);
		/* Capstone must see the compare's flags, or the check below would see nothing at all */
		int flags = 0;
		for (int w = 0; w < nw; w++)
			flags |= rw[w] == X86_REG_EFLAGS;
		TCHECK(x->id != X86_INS_CMP || flags, "%s: Capstone reports no flags written by %s %s", R,
		      x->mnemonic, x->op_str);
		for (int w = 0; w < nw; w++)
			if (rw[w] != X86_REG_EFLAGS && rw[w] != X86_REG_RIP &&
			    !(is_miss && x->id == X86_INS_PUSH && rw[w] == X86_REG_RSP))
				TCHECK(0, "%s %s: %s %s at +%#lx writes %s", R, kind_name[c->kind], x->mnemonic,
				      x->op_str, (unsigned long)(x->address - (uint64_t)(uintptr_t)entry),
				      cs_reg_name(cs, rw[w]));
		if (is_miss) {
			if (x->address == miss) {
				TCHECK(x->id == X86_INS_PUSH && x->size == 5, "%s: miss path starts with %s %s",
				      R, x->mnemonic, x->op_str);
				int32_t word;
				memcpy(&word, buf + (x->address - (uint64_t)(uintptr_t)entry) + 1, 4);
				uint32_t want = (uint32_t)((const char *)c->site - __ehdr_start) | 0x80000000u;
				TCHECK((uint32_t)word == want, "%s: miss path pushes %#x, want %#x", R,
				      (unsigned)word, want);
			} else {
				TCHECK(x->id == X86_INS_JMP && x->address == miss + 5 &&
				      branch_dest(x) == (uint64_t)(uintptr_t)c->slow,
				      "%s: miss path goes on with %s %s, want jmp %p (slow entry)", R,
				      x->mnemonic, x->op_str, (void *)c->slow);
			}
			continue;
		}
		switch (x->id) {
		case X86_INS_CMP: {
			int mem = 0;
			uint64_t a = 0;
			int reg = cs_reg_of_insn(x, &mem, &a);
			uint64_t s0 = (uint64_t)(uintptr_t)t->slots;
			TCHECK(reg == c->csreg && mem, "%s: node compares %s %s, not %%%s with a slot", R,
			      x->mnemonic, x->op_str, R);
			if (mem && a >= s0 && a < s0 + 8ull * n && (a - s0) % 8 == 0) {
				ikey[i] = t->key[(a - s0) / 8];
				slot_reads[(a - s0) / 8]++;
				t->nodes++;
			} else {
				TCHECK(0, "%s: %s %s reads %#lx, not one of the %u slots at %p", R, x->mnemonic,
				      x->op_str, (unsigned long)a, n, (void *)t->slots);
			}
			break;
		}
		case X86_INS_JE:
			TCHECK(i > 0 && in[i - 1].id == X86_INS_CMP && ikey[i - 1] &&
			      branch_dest(x) == ikey[i - 1],
			      "%s %s: je at +%#lx goes to %#lx, not to the key its node compared (%#lx)", R,
			      kind_name[c->kind], (unsigned long)(x->address - (uint64_t)(uintptr_t)entry),
			      (unsigned long)branch_dest(x), (unsigned long)(i ? ikey[i - 1] : 0));
			break;
		case X86_INS_JB:
		case X86_INS_JAE:
		case X86_INS_JA:
		case X86_INS_JBE:
		case X86_INS_JMP: {
			uint64_t d = branch_dest(x);
			int ok = d == miss;
			for (size_t j = 0; j < cnt && !ok; j++)
				ok = in[j].address == d;
			TCHECK(ok, "%s: %s %s leaves the stub or lands inside an instruction", R, x->mnemonic,
			      x->op_str);
			break;
		}
		default:
			TCHECK(0, "%s %s: unexpected instruction %s %s in a tree stub", R, kind_name[c->kind],
			      x->mnemonic, x->op_str);
		}
	}
	TCHECK(in[cnt - 2].address == miss && in[cnt - 1].address == miss + 5,
	      "%s: the code does not end with the 10-byte miss path", R);
	TCHECK(t->nodes == n, "%s: %u compare nodes for %u slots", R, t->nodes, n);
	for (unsigned k = 0; k < n; k++)
		TCHECK(slot_reads[k] == 1, "%s: slot %u (%#lx) read by %u nodes", R, k,
		      (unsigned long)t->key[k], slot_reads[k]);

	/* Run it: R = V. */
	int bad_runs = 0;
#define RUN(v, want_hit)                                                                    \
	do {                                                                                    \
		uint64_t v_ = (v), res_ = 0;                                                        \
		int hit_ = 0, ok_ = 0;                                                              \
		unsigned depth_ = 0;                                                                \
		size_t pc_ = 0;                                                                     \
		int lt_ = 0, eq_ = 0, fl_ = 0;                                                      \
		for (int steps_ = 0; steps_ < 4 * 256 + 8; steps_++) {                              \
			const cs_insn *x_ = &in[pc_];                                                   \
			uint64_t next_ = pc_ + 1 < cnt ? in[pc_ + 1].address : 0, to_ = 0;              \
			int jump_ = 0;                                                                  \
			if (x_->address == miss) { ok_ = 1; break; }                                    \
			switch (x_->id) {                                                               \
			case X86_INS_CMP: lt_ = v_ < ikey[pc_]; eq_ = v_ == ikey[pc_]; fl_ = 1;         \
				depth_++; break;                                                            \
			case X86_INS_JE: if (fl_ && eq_) { res_ = branch_dest(x_); hit_ = 1; } break;   \
			case X86_INS_JB: jump_ = fl_ && lt_; break;                                     \
			case X86_INS_JAE: jump_ = fl_ && !lt_; break;                                   \
			case X86_INS_JA: jump_ = fl_ && !lt_ && !eq_; break;                            \
			case X86_INS_JBE: jump_ = fl_ && (lt_ || eq_); break;                           \
			case X86_INS_JMP: jump_ = 1; break;                                             \
			}                                                                               \
			if (!fl_ && x_->id != X86_INS_CMP && x_->id != X86_INS_JMP) break;              \
			if (hit_) { ok_ = 1; break; }                                                   \
			to_ = jump_ ? branch_dest(x_) : next_;                                          \
			size_t j_ = 0;                                                                  \
			while (j_ < cnt && in[j_].address != to_) j_++;                                 \
			if (j_ == cnt) break;                                                           \
			pc_ = j_;                                                                       \
		}                                                                                   \
		if (!ok_ || hit_ != (want_hit) || (hit_ && res_ != v_)) {                           \
			if (bad_runs++ < 5)                                                             \
				TCHECK(0, "%s %s: R=%#lx ends %s%s%#lx, want %s", R, kind_name[c->kind],     \
				      (unsigned long)v_, !ok_ ? "nowhere (flags/branch broken) " : "",      \
				      hit_ ? "in a je to " : "on the miss path ", (unsigned long)res_,      \
				      (want_hit) ? "a je to itself" : "the miss path");                     \
		} else if (hit_) {                                                                  \
			if (depth_ > t->maxdepth) t->maxdepth = depth_;                                 \
			t->depth_sum += depth_;                                                         \
		}                                                                                   \
	} while (0)
	for (unsigned k = 0; k < n; k++) {
		uint64_t v = t->key[k];
		RUN(v, 1);
		if (k == 0 || t->key[k - 1] != v - 1)
			RUN(v - 1, 0);
		if (k + 1 == n || t->key[k + 1] != v + 1)
			RUN(v + 1, 0);
		if (k + 1 < n && t->key[k + 1] - v > 2)
			RUN(v + (t->key[k + 1] - v) / 2, 0);
	}
	RUN(0, 0);
	RUN(~0ull, 0);
	RUN(t->key[0] / 2, 0);
	RUN(t->key[n - 1] + 0x1000, 0);
	for (int e = 0; e < nextra; e++) {
		int is_key = 0;
		for (unsigned k = 0; k < n && !is_key; k++)
			is_key = t->key[k] == extra[e];
		if (!is_key)   /* the keys ran above */
			RUN(extra[e], 0);
	}
#undef RUN
	free(ikey);
	free(slot_reads);
	cs_free(in, cnt);
	return tree_probs - bad0;
}

/* Read the tree stub at ENTRY of C's site and verify it (tree_verify); the number of problems. */
static int check_tree(const struct rcase *c, const unsigned char *entry, struct tree *t,
		      const uint64_t *extra, int nextra, unsigned char **code_out)
{
	unsigned code = 0, n = 0;
	int kind = ts_stub_kind(entry, c->site, &code, &n);
	CHECK(kind == 't', "%s %s: not a tree stub (kind %d)", c->reg, kind_name[c->kind], kind);
	if (kind != 't' || code < 10 + 18 || n == 0 || n > 256)
		return 1;
	unsigned char *buf = malloc(code);
	uint64_t keys[256];
	if (!buf || ts_read(entry, buf, code) || ts_read(entry + ((code + 7) & ~7u), keys, 8 * (size_t)n)) {
		free(buf);
		CHECK(0, "%s: cannot read the stub", c->reg);
		return 1;
	}
	int p = tree_verify(c, entry, buf, code, keys, n, t, extra, nextra);
	if (code_out)
		*code_out = buf;
	else
		free(buf);
	return p;
}

/*
 * The checker must be able to fail: the verified tree T (code BUF), each
 * time with one defect a broken emitter could make, must give problems.
 */
static unsigned defects, defects_noticed;

static void selftest(const struct rcase *c, const struct tree *t, const unsigned char *buf)
{
	cs_insn *in = NULL;
	size_t cnt = cs_disasm(cs, buf, t->code, (uint64_t)(uintptr_t)t->entry, 0, &in);
	long first_jb = -1, first_je = -1, first_cmp = -1, leaf_jmp = -1;
	int jb_size = 0;
	for (size_t i = 0; i < cnt; i++) {
		long off = (long)(in[i].address - (uint64_t)(uintptr_t)t->entry);
		if (in[i].id == X86_INS_JB && first_jb < 0) {
			first_jb = off;
			jb_size = in[i].size;
		}
		if (in[i].id == X86_INS_JE && first_je < 0)
			first_je = off;
		if (in[i].id == X86_INS_CMP && first_cmp < 0)
			first_cmp = off;
		if (in[i].id == X86_INS_JMP && in[i].address < (uint64_t)(uintptr_t)t->miss && leaf_jmp < 0)
			leaf_jmp = off;
	}
	cs_free(in, cnt);
	static const char *const what[] = {
		"a jb made ja", "a je displacement off by 16", "a node comparing another register",
		"a leaf's jmp made mov $imm,%eax", "two slots swapped", "a slot not its je's key",
		"the miss path's site word changed",
	};
	for (int m = 0; m < 7; m++) {
		unsigned char *b = malloc(t->code);
		uint64_t keys[256];
		memcpy(b, buf, t->code);
		memcpy(keys, t->key, sizeof keys);
		int32_t d;
		switch (m) {
		case 0:   /* jb rel8 (72) or jb rel32 (0f 82) -> ja */
			if (first_jb < 0) { free(b); continue; }
			if (jb_size == 2) b[first_jb] = 0x77; else b[first_jb + 1] = 0x87;
			break;
		case 1:
			memcpy(&d, b + first_je + 2, 4);
			d += 16;
			memcpy(b + first_je + 2, &d, 4);
			break;
		case 2:   /* modrm reg field: another register */
			b[first_cmp + 2] ^= 0x08;
			break;
		case 3:
			if (leaf_jmp < 0) { free(b); continue; }
			b[leaf_jmp] = 0xb8;
			break;
		case 4:
			if (t->nkeys < 2) { free(b); continue; }
			keys[0] = t->key[1];
			keys[1] = t->key[0];
			break;
		case 5:
			keys[t->nkeys / 2] += 1;
			break;
		case 6:
			b[t->code - 10 + 1] ^= 0x40;
			break;
		}
		struct tree tt;
		tree_quiet = 1;
		int p = tree_verify(c, t->entry, b, t->code, keys, t->nkeys, &tt, NULL, 0);
		tree_quiet = 0;
		CHECK(p > 0, "%s %s: the tree checker did not notice %s", c->reg, kind_name[c->kind], what[m]);
		defects_noticed += p > 0;
		defects++;
		free(b);
	}
}

/* ---- t_tree regs ---- */

static int ntargets_of(int i)
{
	switch (i) {
	case 0: return 2;     /* a tree of one key (the other is the cell's) */
	case 1: return 3;
	case 4: return 256;   /* MAX_TARGETS: 255 keys and the cell */
	case 8: return 300;   /* more than fit: 44 of them stay misses */
	default: return 40 + (i * 37) % 61;
	}
}

/* Training count of the J-th target of a site: uneven, so the tree's shape is too. */
static int weight_of(int j) { return 3 + (j * 13) % 17 + (j % 9 == 4 ? 30 : 0); }

static int regs_mode(void)
{
	char buf[32] = "";
	CHECK(relpoline_config_get("stub", buf, sizeof buf) == 0 && !strcmp(buf, "tree"),
	      "t_tree needs RELPOLINE_STUB=tree (stub=%s)", buf);
	relpoline_config_get("max_targets", buf, sizeof buf);
	int max_targets = atoi(buf);
	CHECK(max_targets == 256, "t_tree expects MAX_TARGETS 256 (the default), got %s", buf);
	init_vectors();
	add_cases();
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		DIE("cs_open failed");
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	printf("vector level %d; %d sites; pool of %d targets at %p\n", regs_vlevel, ncases, TREE_POOL,
	       (void *)tree_pool);

	unsigned all_keys = 0, max_depth = 0;
	for (int ci = 0; ci < ncases && t_fails < 20; ci++) {
		const struct rcase *c = &cases[ci];
		int n = ntargets_of(ci);
		/* the site's targets: odd pool indices 1, 3, .., 2n-1; even ones lie between them */
		struct relpoline_stats s0 = t_stats();
		for (int j = 0; j < n; j++)
			for (int r = 0; r < weight_of(j); r++)
				if (one_call(c, 2 * j + 1, "train"))
					break;
		t_epoch();
		struct relpoline_stats s1 = t_stats();
		const unsigned char *cell = NULL, *armed = NULL;
		const unsigned char *d = ts_dest2(c->site, &cell, &armed);
		unsigned code = 0, nk = 0;
		int kind = ts_stub_kind(d, c->site, &code, &nk);
		CHECK(cell && kind == 't' && ts_in_arena(d), "%s %s with %d targets: not on a tree stub "
		      "after promotion (kind '%c', dest %p)", c->reg, kind_name[c->kind], n, kind ? kind : '-',
		      (const void *)d);
		CHECK(s1.sites_tree == s0.sites_tree + 1 && s1.sites_promoted == s0.sites_promoted + 1,
		      "%s %s: sites_tree %" PRIu64 " -> %" PRIu64 ", promoted %" PRIu64 " -> %" PRIu64
		      " (want +1 each)", c->reg, kind_name[c->kind], s0.sites_tree, s1.sites_tree,
		      s0.sites_promoted, s1.sites_promoted);
		CHECK(s1.sites_chain == 0, "sites_chain %" PRIu64 " under RELPOLINE_STUB=tree", s1.sites_chain);
		int want_keys = (n < max_targets ? n : max_targets) - 1;
		CHECK((int)nk == want_keys, "%s %s: tree of %u keys for %d targets, want %d (the first "
		      "hot one is the cell's)", c->reg, kind_name[c->kind], nk, n, want_keys);
		int cell_k = armed ? tgt_index((uint64_t)(uintptr_t)armed) : -1;
		CHECK(cell_k >= 1 && cell_k < 2 * n && cell_k % 2 == 1, "%s %s: the cell's compare holds "
		      "%p, not one of the site's targets", c->reg, kind_name[c->kind], (const void *)armed);
		if (kind != 't')
			continue;

		/* structure, every key and the values around them */
		uint64_t extra[TREE_POOL + 1];
		int ne = 0;
		for (int k = 0; k < TREE_POOL; k++)
			extra[ne++] = (uint64_t)(uintptr_t)tgt(k);
		static struct tree t;
		unsigned char *code_copy = NULL;
		if (check_tree(c, d, &t, extra, ne, &code_copy) == 0 && code_copy)
			selftest(c, &t, code_copy);
		free(code_copy);
		char in_tree[TREE_POOL] = { 0 };
		for (unsigned k = 0; k < t.nkeys; k++) {
			int ix = tgt_index(t.key[k]);
			CHECK(ix >= 0 && ix % 2 == 1 && ix < 2 * n, "%s: key %#lx is not a target of the site",
			      c->reg, (unsigned long)t.key[k]);
			if (ix >= 0)
				in_tree[ix] = 1;
		}
		CHECK(cell_k < 0 || !in_tree[cell_k], "%s: the cell's target is in the tree too", c->reg);
		all_keys += t.nkeys;
		if (t.maxdepth > max_depth)
			max_depth = t.maxdepth;

		/* hits: every key (every depth) and the cell's target; none may reach the slow path */
		for (int rep = 0; rep < 2; rep++) {
			for (int k = 0; k < TREE_POOL; k++)
				if (in_tree[k] && one_call(c, k, "hit"))
					break;
			if (cell_k >= 0)
				one_call(c, cell_k, "cell-hit");
		}
		t_epoch();
		struct relpoline_stats s2 = t_stats();
		CHECK(s2.records == s1.records && s2.misses == s1.misses, "%s %s: calls to the %u keys "
		      "reached the slow path (records +%" PRIu64 ", misses +%" PRIu64 ")", c->reg,
		      kind_name[c->kind], t.nkeys, s2.records - s1.records, s2.misses - s1.misses);

		/* misses: every pool target below 2n+16 not in the tree nor the cell */
		uint64_t nmiss = 0;
		for (int k = 0; k < 2 * n + 16 && k < TREE_POOL; k++)
			if (!in_tree[k] && k != cell_k) {
				nmiss++;
				if (one_call(c, k, "miss"))
					break;
			}
		t_epoch();
		struct relpoline_stats s3 = t_stats();
		CHECK(s3.misses - s2.misses == nmiss, "%s %s: %" PRIu64 " misses counted for %" PRIu64
		      " calls to targets not in the tree", c->reg, kind_name[c->kind], s3.misses - s2.misses,
		      nmiss);
		CHECK(ts_dest(c->site, NULL) == d && s3.stubs_emitted == s1.stubs_emitted,
		      "%s %s: the site left its tree after the misses (RELEARN_MISSES should prevent it)",
		      c->reg, kind_name[c->kind]);
		printf("%-3s %-4s %3d targets: tree of %3u keys, %5u code bytes, depth max %2u mean %.2f; "
		       "cell holds target %d; %" PRIu64 " misses checked\n", c->reg, kind_name[c->kind], n,
		       t.nkeys, t.code, t.maxdepth, t.nkeys ? (double)t.depth_sum / t.nkeys : 0.0, cell_k,
		       nmiss);
		fflush(stdout);
	}

	/* All sites at once, every target of each again, after all the trees were made. */
	for (int ci = 0; ci < ncases && t_fails < 20; ci++)
		for (int k = 0; k < 2 * ntargets_of(ci) + 1 && k < TREE_POOL; k++)
			if (one_call(&cases[ci], k, "final"))
				break;
	struct relpoline_stats s = t_stats();
	t_print_stats("end", &s);
	printf("sites_tree=%" PRIu64 " sites_chain=%" PRIu64 " hist_log2=", s.sites_tree, s.sites_chain);
	for (int i = 0; i < 9; i++)
		printf("%s%" PRIu64, i ? "," : "", s.stub_hist_log2[i]);
	printf("; %u keys checked, deepest %u; %u of %u defects injected into copies of the trees "
	       "noticed by the checker\n", all_keys, max_depth, defects_noticed, defects);
	CHECK(defects >= 5 * (unsigned)ncases, "only %u defects injected", defects);
	CHECK(s.sites_tree == (uint64_t)ncases, "sites_tree %" PRIu64 ", want %d", s.sites_tree, ncases);
	CHECK(s.sites_tail >= 30, "sites_tail %" PRIu64 " < 30 (15 jmp + 15 jcc sites)", s.sites_tail);
	/* stub_hist_log2 counts targets with the cell's: 2 -> [1], 3 -> [2], 256 -> [8] */
	CHECK(s.stub_hist_log2[1] == 1 && s.stub_hist_log2[2] == 1 && s.stub_hist_log2[8] == 2,
	      "stub_hist_log2[1,2,8] = %" PRIu64 ",%" PRIu64 ",%" PRIu64 ", want 1,1,2 (sites of 2, 3, "
	      "256 and 300 targets)", s.stub_hist_log2[1], s.stub_hist_log2[2], s.stub_hist_log2[8]);
	cs_close(&cs);
	return t_finish("t_tree");
}

/* ---- t_tree policy / latency: one site, 100 targets in a fixed order ---- */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const struct rcase *psite;

/* Call the I-th target of a window [START, START+WIDTH): a fixed repeating order, stride 7. */
static void window_call(int start, int width, uint64_t i)
{
	int k = start + (int)((i * 7) % (uint64_t)width);
	one_call(psite, k, "window");
}

static int site_kind_now(void)
{
	return ts_stub_kind(ts_dest(psite->site, NULL), psite->site, NULL, NULL);
}

static int policy_mode(void)
{
	char buf[32] = "";
	CHECK(relpoline_config_get("stub", buf, sizeof buf) == 0 && !strcmp(buf, "auto"),
	      "t_tree policy needs RELPOLINE_STUB=auto (stub=%s)", buf);
	init_vectors();
	add_cases();
	psite = &cases[3 * 10 + K_CALL];   /* r11 */
	struct { int start, width; const char *what; } ph[] = {
		{ 0, 100, "wide 0-99" },
		{ 40, 20, "narrow 40-59 (in the tree)" },
		{ 110, 20, "narrow 110-129 (new targets)" },
		{ 30, 100, "wide 30-129" },
		{ 100, 100, "wide 100-199 (70 new)" },
		{ 5, 20, "narrow 5-24" },
		{ 200, 20, "narrow 200-219 (new)" },
		{ 0, 100, "wide 0-99" },
	};
	const int steps = 8, per_step = 1000;
	uint64_t i = 0;
	int promoted_after = -1;
	for (unsigned p = 0; p < sizeof ph / sizeof ph[0] && t_fails < 10; p++) {
		uint64_t miss_last = 0;
		for (int st = 0; st < steps; st++) {
			struct relpoline_stats a = t_stats();
			for (int c = 0; c < per_step; c++)
				window_call(ph[p].start, ph[p].width, i++);
			t_epoch();
			struct relpoline_stats b = t_stats();
			int kind = site_kind_now();
			miss_last = b.misses - a.misses;
			if (p == 0 && promoted_after < 0) {
				if (kind == 't')
					promoted_after = st + 1;
				else
					continue;   /* still learning */
			}
			CHECK(kind == 't' && b.sites_tree == 1 && b.sites_pinned == 0 && b.sites_chain == 0,
			      "phase %u (%s) epoch %d: the site is %s (sites_tree %" PRIu64 ", pinned %" PRIu64
			      ", chain %" PRIu64 "), want a tree", p, ph[p].what, st,
			      kind == 't' ? "on a tree" : kind == 'c' ? "on a chain" : "not on a stub",
			      b.sites_tree, b.sites_pinned, b.sites_chain);
		}
		CHECK(miss_last * 20 < (uint64_t)per_step, "phase %u (%s): %" PRIu64 " misses in the last "
		      "%d calls: the tree does not follow the window", p, ph[p].what, miss_last, per_step);
		struct relpoline_stats s = t_stats();
		printf("phase %u %-30s tree=%" PRIu64 " pinned=%" PRIu64 " stubs=%" PRIu64 " relearns=%"
		       PRIu64 " misses in its last epoch %" PRIu64 "/%d\n", p, ph[p].what, s.sites_tree,
		       s.sites_pinned, s.stubs_emitted, s.relearns, miss_last, per_step);
	}
	printf("promotion of the 100-target site: %d epoch(s) of %d calls (manual epochs)\n",
	       promoted_after, per_step);
	CHECK(promoted_after >= 1 && promoted_after <= 5, "the 100-target site took %d epochs to be on "
	      "a tree (want 1-5)", promoted_after);
	struct relpoline_stats s = t_stats();
	t_print_stats("end", &s);
	return t_finish("t_tree(policy)");
}

static int latency_mode(void)
{
	char buf[32] = "";
	relpoline_config_get("epoch_ms", buf, sizeof buf);
	long ems = atol(buf);
	CHECK(ems > 0, "t_tree latency needs epochs on their own (epoch_ms=%s)", buf);
	init_vectors();
	add_cases();
	psite = &cases[3 * 4 + K_TAIL];   /* rsi, a tail site */
	struct relpoline_stats a = t_stats();
	double t0 = now_ms(), t1 = 0;
	uint64_t i = 0;
	int kind = 0;
	while (now_ms() - t0 < 2000 && t_fails == 0) {
		for (int c = 0; c < 100; c++)
			window_call(0, 100, i++);
		if ((kind = site_kind_now()) != 0) {
			t1 = now_ms();
			break;
		}
	}
	struct relpoline_stats b = t_stats();
	uint64_t ep = b.epochs - a.epochs;
	printf("promotion of the 100-target site from its first call: %.2f ms, %" PRIu64 " epochs "
	       "(EPOCH_MS=%ld), %" PRIu64 " calls, stub kind %c\n", t1 ? t1 - t0 : -1.0, ep, ems, i,
	       kind ? kind : '-');
	CHECK(kind == 't', "not on a tree after %.0f ms (kind %c)", now_ms() - t0, kind ? kind : '-');
	CHECK(ep <= 5, "promotion took %" PRIu64 " epochs, want at most 5", ep);
	t_print_stats("end", &b);
	return t_finish("t_tree(latency)");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "regs";
	if (!strcmp(mode, "latency"))
		return latency_mode();
	t_deterministic(argv);
	if (!strcmp(mode, "policy"))
		return policy_mode();
	return regs_mode();
}
