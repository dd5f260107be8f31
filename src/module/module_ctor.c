/*
 * Per-module registration.  Runs in the module's constructor (before any
 * of its code can run an indirect call that matters) and destructor
 * (dlclose, exit).  Until registration the flag byte is 0 and every thunk
 * is a plain retpoline.
 */
#include "abi.h"

extern const char __ehdr_start[] __attribute__((visibility("hidden")));
extern volatile uint8_t __relpoline_mod_flags __attribute__((visibility("hidden")));

#define R(reg) extern const char __x86_indirect_thunk_##reg[], __relpoline_slow_##reg[], \
	__relpoline_plain_##reg[], __relpoline_indirect_##reg[];
R(rax) R(rbx) R(rcx) R(rdx) R(rsi) R(rdi) R(rbp) R(r8) R(r9) R(r10) R(r11) R(r12) R(r13) R(r14) R(r15)
#undef R

#define E(reg, IDX) [IDX] = __x86_indirect_thunk_##reg
#define S(reg, IDX) [IDX] = __relpoline_slow_##reg
#define P(reg, IDX) [IDX] = __relpoline_plain_##reg
#define I(reg, IDX) [IDX] = __relpoline_indirect_##reg
#define ALL(M) M(rax, RP_RAX), M(rbx, RP_RBX), M(rcx, RP_RCX), M(rdx, RP_RDX), M(rsi, RP_RSI), \
	M(rdi, RP_RDI), M(rbp, RP_RBP), M(r8, RP_R8), M(r9, RP_R9), M(r10, RP_R10), \
	M(r11, RP_R11), M(r12, RP_R12), M(r13, RP_R13), M(r14, RP_R14), M(r15, RP_R15)

static struct rp_module_desc desc = {
	.abi = RP_ABI,
	.nregs = RP_NREGS,
	.base = __ehdr_start,
	.flags = &__relpoline_mod_flags,
	.thunk = { ALL(E) },
	.slow = { ALL(S) },
	.plain = { ALL(P) },
	.indirect = { ALL(I) },
};

/* Early, so that other constructors of this module already benefit. */
__attribute__((constructor(101))) static void rp_module_init(void)
{
	relpoline__register_module(&desc);
}

__attribute__((destructor(101))) static void rp_module_fini(void)
{
	relpoline__unregister_module(&desc);
}
