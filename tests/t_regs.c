/*
 * Register preservation through every thunk register, on every path:
 *   learn   : before promotion (thunk -> slow path -> fallback)
 *   hit     : promoted stub, target A
 *   miss    : promoted stub, target B (stub miss -> slow path -> fallback)
 *   fallback: after relpoline_disable() (plain thunk)
 *   relearn : after relpoline_enable() again
 * for call (e8), tail jmp (e9) and jcc (0f 85) sites.  See regs.S.
 *
 * Checked at the target: all 15 general registers (the target register
 * holds the target, the others their pattern), rsp, the return address,
 * the two stack arguments, zmm0-7 entirely (ymm/xmm on smaller CPUs).
 * Checked after the return: rax (return value), rbx rbp r12-r15, rsp.
 *
 * Usage: t_regs [nopromote]   (nopromote: RELPOLINE_MODE=off runs)
 */
#include "common.h"

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

extern char regs_target_a[], regs_target_b[];
uint64_t regs_invoke(void *fn, void *target);

#define ALLREGS(X) X(rax, 0) X(rbx, 1) X(rcx, 2) X(rdx, 3) X(rsi, 4) X(rdi, 5) X(rbp, 6) \
	X(r8, 8) X(r9, 9) X(r10, 10) X(r11, 11) X(r12, 12) X(r13, 13) X(r14, 14) X(r15, 15)

#define DECL(reg, idx)                                                             \
	extern char regs_call_##reg[], regs_tail_##reg[], regs_jcc_##reg[];            \
	extern char regs_ret_call_##reg[], regs_ret_tail_##reg[], regs_ret_jcc_##reg[];\
	extern char regs_site_tail_##reg[], regs_site_jcc_##reg[];                     \
	extern char __x86_indirect_thunk_##reg[];
ALLREGS(DECL)

enum { K_CALL, K_TAIL, K_JCC, NKIND };
static const char *const kind_name[NKIND] = { "call", "tail", "jcc" };

struct rcase {
	const char *reg;
	int idx;
	int kind;
	void *fn;      /* regs_<kind>_<reg> */
	char *ret;     /* return address the target must see */
	char *site;    /* the thunk branch instruction */
	char *thunk;   /* __x86_indirect_thunk_<reg> */
};

static struct rcase cases[15 * NKIND];
static int ncases;

static void add_cases(void)
{
#define ADD(reg, i)                                                                      \
	cases[ncases++] = (struct rcase){ #reg, i, K_CALL, regs_call_##reg,                  \
		regs_ret_call_##reg, regs_ret_call_##reg - 5, __x86_indirect_thunk_##reg };    \
	cases[ncases++] = (struct rcase){ #reg, i, K_TAIL, regs_tail_##reg,                  \
		regs_ret_tail_##reg, regs_site_tail_##reg, __x86_indirect_thunk_##reg };       \
	cases[ncases++] = (struct rcase){ #reg, i, K_JCC, regs_jcc_##reg,                    \
		regs_ret_jcc_##reg, regs_site_jcc_##reg, __x86_indirect_thunk_##reg };
	ALLREGS(ADD)
#undef ADD
}

static const char *const gname[16] = { "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15" };

static uint64_t pat(int i)
{
	return 0x5A5A000000000000ull + ((uint64_t)i << 32) + 0x01020304ull * (uint64_t)(i + 1);
}

static int is_callee_saved(int i)
{
	return i == 1 || i == 6 || (i >= 12 && i <= 15);
}

/* One call through case C to target T; check everything.  Returns 0 if ok. */
static int one_call(const struct rcase *c, void *t, const char *phase)
{
	uint64_t want_id = t == regs_target_a ? 0xA1 : 0xB2;
	int bad = 0;
	memset(&regs_snap, 0xEE, sizeof regs_snap);
	regs_snap.cnt = 0;
	memset(regs_after, 0xEE, sizeof regs_after);
	uint64_t r = regs_invoke(c->fn, t);

#define BAD(...)                                                                     \
	do {                                                                             \
		char m_[256];                                                                \
		snprintf(m_, sizeof m_, __VA_ARGS__);                                        \
		bad++;                                                                       \
		CHECK(0, "reg %s kind %s phase %s: %s", c->reg, kind_name[c->kind], phase, m_); \
	} while (0)

	if (regs_snap.cnt != 1)
		BAD("target reached %" PRIu64 " times", regs_snap.cnt);
	if (regs_snap.id != want_id)
		BAD("wrong target: id %#" PRIx64 " want %#" PRIx64, regs_snap.id, want_id);
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
	for (int k = 0; k < 8; k++)
		for (int b = 0; b < vw; b++)
			if (regs_snap.v[k][b] != regs_vpat[k][b]) {
				BAD("vector reg %d byte %d = %#x want %#x (%s)", k, b, regs_snap.v[k][b],
				    regs_vpat[k][b], vw == 64 ? "zmm" : vw == 32 ? "ymm" : "xmm");
				break;
			}
	if (r != want_id || regs_after[0] != want_id)
		BAD("return value %#" PRIx64 " want %#" PRIx64, r, want_id);
	for (int i = 0; i < 16; i++) {
		if (!is_callee_saved(i))
			continue;
		uint64_t want = i == c->idx ? (uint64_t)(uintptr_t)t : pat(i);
		if (regs_after[i] != want)
			BAD("after return %s = %#" PRIx64 " want %#" PRIx64, gname[i], regs_after[i], want);
	}
	if (regs_after[7] != regs_callrsp)
		BAD("after return rsp = %#" PRIx64 " want %#" PRIx64, regs_after[7], regs_callrsp);
#undef BAD
	return bad;
}

static void calls(const struct rcase *c, void *t, int n, const char *phase)
{
	for (int i = 0; i < n; i++)
		if (one_call(c, t, phase))
			return; /* one report per batch is enough */
}

/* The site's opcode must keep its kind; returns where it really goes now (through its cell). */
static const void *site_dest(const struct rcase *c)
{
	char k;
	t_branch_dest(c->site, &k);
	const void *cell, *d = t_site_dest(c->site, &cell);
	CHECK(cell != NULL, "reg %s kind %s: site does not go through a cell", c->reg, kind_name[c->kind]);
	char want = c->kind == K_CALL ? 'c' : c->kind == K_TAIL ? 'j' : 'x';
	CHECK(k == want, "reg %s kind %s: site opcode kind '%c' want '%c' (bytes %02x %02x)",
	      c->reg, kind_name[c->kind], k, want, ((unsigned char *)c->site)[0],
	      ((unsigned char *)c->site)[1]);
	return d;
}

/*
 * t_regs inline: RELPOLINE_THREAD=off, RELPOLINE_EPOCH_MS=1.  Epochs run on
 * this thread from the middle of the very calls whose general and vector
 * registers every call checks (relpoline__epoch_inline must save all of
 * them).  Calls alternate targets so that sites promote, miss and get new
 * stubs; the run asserts that inline epochs and promotions happened.
 */
static int inline_mode(void);

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "inline") == 0)
		return inline_mode();
	t_deterministic(argv);
	int promote = !(argc > 1 && strcmp(argv[1], "nopromote") == 0);

	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		regs_vlevel = 2;
	else if (__builtin_cpu_supports("avx"))
		regs_vlevel = 1;
	if (getenv("RP_TEST_VLEVEL"))
		regs_vlevel = atoi(getenv("RP_TEST_VLEVEL"));
	for (int k = 0; k < 8; k++)
		for (int b = 0; b < 64; b++)
			regs_vpat[k][b] = (uint8_t)(0x11 * (k + 1) + b * 3 + (b >> 4));
	printf("vector level %d (%s)\n", regs_vlevel,
	       regs_vlevel == 2 ? "zmm" : regs_vlevel == 1 ? "ymm" : "xmm");

	add_cases();
	void *A = regs_target_a, *B = regs_target_b;

	/* Learning path (and, with nopromote, the only path). */
	/* 5 calls each: below promote_min (16), so nothing is decided yet. */
	for (int i = 0; i < ncases; i++)
		calls(&cases[i], A, promote ? 5 : 20, "learn");

	if (!promote) {
		t_epoch();
		for (int i = 0; i < ncases; i++) {
			calls(&cases[i], A, 5, "after-epoch");
			calls(&cases[i], B, 5, "after-epoch");
		}
		struct relpoline_stats s = t_stats();
		CHECK(s.sites_promoted == 0, "sites_promoted %" PRIu64 " with promotion off",
		      s.sites_promoted);
		t_print_stats("end", &s);
		return t_finish("t_regs(nopromote)");
	}

	/* Promote the sites one epoch at a time, one case per epoch. */
	for (int i = 0; i < ncases; i++) {
		const struct rcase *c = &cases[i];
		calls(c, A, 20, "learn");
		struct relpoline_stats s0 = t_stats();
		t_epoch();
		struct relpoline_stats s1 = t_stats();
		CHECK(s1.sites_promoted == s0.sites_promoted + 1,
		      "reg %s kind %s: sites_promoted %" PRIu64 " -> %" PRIu64 " (want +1)", c->reg,
		      kind_name[c->kind], s0.sites_promoted, s1.sites_promoted);
		const void *d = site_dest(c);
		CHECK(d != c->thunk, "reg %s kind %s: site still points at the thunk after promotion",
		      c->reg, kind_name[c->kind]);

		calls(c, A, 30, "hit");
		t_epoch();
		struct relpoline_stats s2 = t_stats();
		CHECK(s2.misses == s1.misses && s2.records == s1.records,
		      "reg %s kind %s: hits went to the slow path (misses %" PRIu64 "->%" PRIu64
		      ", records %" PRIu64 "->%" PRIu64 ")", c->reg, kind_name[c->kind], s1.misses,
		      s2.misses, s1.records, s2.records);

		calls(c, B, 30, "miss");
		t_epoch();
		struct relpoline_stats s3 = t_stats();
		CHECK(s3.misses > s2.misses, "reg %s kind %s: 30 calls to B counted no miss (%" PRIu64
		      ")", c->reg, kind_name[c->kind], s3.misses);
		for (int k = 0; k < 10; k++) {
			calls(c, A, 1, "hit/miss");
			calls(c, B, 1, "miss/hit");
		}
	}
	struct relpoline_stats s = t_stats();
	t_print_stats("promoted", &s);
	CHECK(s.sites_promoted >= (uint64_t)ncases, "sites_promoted %" PRIu64 " < %d",
	      s.sites_promoted, ncases);
	CHECK(s.sites_tail >= 30, "sites_tail %" PRIu64 " < 30 (15 jmp + 15 jcc sites)",
	      s.sites_tail);
	CHECK(s.stub_hist[1] + s.stub_hist[2] >= 1, "stub_hist has no 1- or 2-target stubs");

	/* Both targets hot at every site: re-promotion may give two-target stubs. */
	for (int i = 0; i < ncases; i++)
		for (int k = 0; k < 20; k++) {
			calls(&cases[i], A, 1, "mixed");
			calls(&cases[i], B, 1, "mixed");
		}
	t_epoch();
	for (int i = 0; i < ncases; i++) {
		calls(&cases[i], A, 3, "mixed2");
		calls(&cases[i], B, 3, "mixed2");
	}

	/* Fallback after disable, then learning again after enable. */
	CHECK(relpoline_disable() == 0);
	s = t_stats();
	CHECK(s.sites_promoted == 0, "sites_promoted %" PRIu64 " after disable", s.sites_promoted);
	for (int i = 0; i < ncases; i++) {
		CHECK(site_dest(&cases[i]) == cases[i].thunk,
		      "reg %s kind %s: site not back on its thunk after disable", cases[i].reg,
		      kind_name[cases[i].kind]);
		calls(&cases[i], A, 5, "disabled");
		calls(&cases[i], B, 5, "disabled");
	}
	CHECK(relpoline_enable() == 0);
	for (int i = 0; i < ncases; i++)
		calls(&cases[i], B, 20, "relearn");
	t_epoch();
	for (int i = 0; i < ncases; i++) {
		calls(&cases[i], B, 5, "re-hit");
		calls(&cases[i], A, 5, "re-miss");
	}
	s = t_stats();
	t_print_stats("end", &s);
	CHECK(s.sites_promoted >= (uint64_t)ncases, "after enable: sites_promoted %" PRIu64
	      " < %d", s.sites_promoted, ncases);
	return t_finish("t_regs");
}

static int inline_mode(void)
{
	char buf[16] = "";
	CHECK(relpoline_config_get("thread", buf, sizeof buf) == 0 && !strcmp(buf, "off"),
	      "t_regs inline needs RELPOLINE_THREAD=off (thread=%s)", buf);
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		regs_vlevel = 2;
	else if (__builtin_cpu_supports("avx"))
		regs_vlevel = 1;
	for (int k = 0; k < 8; k++)
		for (int b = 0; b < 64; b++)
			regs_vpat[k][b] = (uint8_t)(0x11 * (k + 1) + b * 3 + (b >> 4));
	add_cases();
	void *A = regs_target_a, *B = regs_target_b;
	struct relpoline_stats s0 = t_stats();
	uint64_t promoted_seen = 0;
	for (int round = 0; round < 400 && t_fails == 0; round++) {
		if (round % 100 == 99)
			CHECK(relpoline_relearn() == 0);
		for (int i = 0; i < ncases; i++)
			calls(&cases[i], (round / 25) & 1 ? B : A, 40, "inline");
		struct relpoline_stats s = t_stats();
		if (s.sites_promoted > promoted_seen)
			promoted_seen = s.sites_promoted;
	}
	struct relpoline_stats s1 = t_stats();
	t_print_stats("inline", &s1);
	CHECK(s1.epochs >= s0.epochs + 3, "only %" PRIu64 " inline epochs ran", s1.epochs - s0.epochs);
	CHECK(promoted_seen >= (uint64_t)ncases / 2, "at most %" PRIu64 " sites were promoted at once",
	      promoted_seen);
	CHECK(s1.stubs_emitted > promoted_seen, "no site got a second stub (%" PRIu64 " stubs)",
	      s1.stubs_emitted);
	return t_finish("t_regs(inline)");
}
