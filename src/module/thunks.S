/*
 * Per-module thunks and slow-path entries.  Linked hidden into every module
 * built with relpoline-cc, so a call to a thunk is a direct call (no PLT)
 * and every module's sites, cells, stubs and slow entries are within rel32
 * reach.
 *
 * Which threads run this: any application thread, at any indirect call,
 * including from signal handlers.  Nothing here takes a lock.
 *
 * A registered module's sites no longer call the thunks: registration
 * rewrites each site once to its own cell in the arena (docs/design.md),
 * and the cell's jmp goes to
 *   learning                -> arena entry: push $off; jmp slow_<reg>
 *   promoted                -> arena stub: cmp/je chain, miss: push $off|MISS; jmp slow_<reg>
 *   pinned (no stub pays)   -> __relpoline_plain_<reg> or _indirect_<reg>
 *   disabled, mode off      -> __x86_indirect_thunk_<reg>
 * The thunks themselves only run the fallback (a retpoline, or jmp *reg
 * with RELPOLINE_FALLBACK=indirect): for sites of unregistered code, before
 * registration, and while relpoline is off.
 *
 * The frame (seed 002): every slow entry has exactly one word pushed above
 * the return address (the site word), then SAVE pushes the same 15
 * registers in the same order, the recorder gets a pointer to that frame,
 * and RESTORE pops them all back.  Argument registers, rax (al for
 * varargs), r10 and the callee-saved ones all come back from that frame.
 * Vector registers are never saved here: the recorder is compiled with
 * -mgeneral-regs-only and calls nothing, so it cannot touch them; the one
 * exception, an epoch run on this thread (RELPOLINE_THREAD=off), saves the
 * whole extended state itself (src/epoch_inline.S).
 * Flags are not preserved: no ABI carries them into a call, and a jcc
 * site has consumed them before it branches.
 */
#include "abi.h"

	.macro RETPOLINE reg
	call	8f
7:	pause
	lfence
	jmp	7b
8:	mov	%\reg, (%rsp)
	ret
	.endm

	.macro SAVE
	push	%rax
	push	%rcx
	push	%rdx
	push	%rbx
	push	%rbp
	push	%rsi
	push	%rdi
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	.endm

	.macro RESTORE
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rdi
	pop	%rsi
	pop	%rbp
	pop	%rbx
	pop	%rdx
	pop	%rcx
	pop	%rax
	.endm

	.macro THUNK reg, idx
	.globl	__x86_indirect_thunk_\reg
	.hidden	__x86_indirect_thunk_\reg
	.type	__x86_indirect_thunk_\reg, @function
	.p2align 5
__x86_indirect_thunk_\reg:
	testb	$RP_F_INDIRECT, __relpoline_mod_flags(%rip)
	jnz	1f
	RETPOLINE \reg
1:	jmp	*%\reg
	.size	__x86_indirect_thunk_\reg, .-__x86_indirect_thunk_\reg

	/* Entered with the site word on top of the stack. */
	.globl	__relpoline_slow_\reg
	.hidden	__relpoline_slow_\reg
	.type	__relpoline_slow_\reg, @function
	.p2align 4
__relpoline_slow_\reg:
	testb	$RP_F_LEARN, __relpoline_mod_flags(%rip)
	jz	2f
	SAVE
	movl	$\idx, %esi
	call	__relpoline_slow_common
	RESTORE
2:	lea	8(%rsp), %rsp
	testb	$RP_F_INDIRECT, __relpoline_mod_flags(%rip)
	jnz	3f
	RETPOLINE \reg
3:	jmp	*%\reg
	.size	__relpoline_slow_\reg, .-__relpoline_slow_\reg

	/*
	 * Fallbacks that never record, for pinned sites: exactly a retpoline,
	 * or exactly an indirect jump (RELPOLINE_FALLBACK=indirect).  The sync
	 * pass picks one, so no flag is tested on the way.
	 */
	.globl	__relpoline_plain_\reg
	.hidden	__relpoline_plain_\reg
	.type	__relpoline_plain_\reg, @function
	.p2align 4
__relpoline_plain_\reg:
	RETPOLINE \reg
	.size	__relpoline_plain_\reg, .-__relpoline_plain_\reg

	.globl	__relpoline_indirect_\reg
	.hidden	__relpoline_indirect_\reg
	.type	__relpoline_indirect_\reg, @function
__relpoline_indirect_\reg:
	jmp	*%\reg
	.size	__relpoline_indirect_\reg, .-__relpoline_indirect_\reg
	.endm

	.text
	THUNK rax, RP_RAX
	THUNK rbx, RP_RBX
	THUNK rcx, RP_RCX
	THUNK rdx, RP_RDX
	THUNK rsi, RP_RSI
	THUNK rdi, RP_RDI
	THUNK rbp, RP_RBP
	THUNK r8,  RP_R8
	THUNK r9,  RP_R9
	THUNK r10, RP_R10
	THUNK r11, RP_R11
	THUNK r12, RP_R12
	THUNK r13, RP_R13
	THUNK r14, RP_R14
	THUNK r15, RP_R15

	/*
	 * Called (not jumped to) from a slow entry after SAVE: the frame starts
	 * just above our return address.  rbx is part of the frame, so it is
	 * free here to hold the unaligned stack pointer.  The recorder returns
	 * nonzero when an epoch is due on this thread (RELPOLINE_THREAD=off);
	 * the runtime's entry for it preserves every register but the ones
	 * this frame restores anyway.
	 */
	.type	__relpoline_slow_common, @function
	.p2align 4
__relpoline_slow_common:
	lea	8(%rsp), %rdi
	mov	%rsp, %rbx
	and	$-16, %rsp
	call	__relpoline_record
	test	%eax, %eax
	jnz	1f
	mov	%rbx, %rsp
	ret
1:	call	relpoline__epoch_inline@PLT
	mov	%rbx, %rsp
	ret
	.size	__relpoline_slow_common, .-__relpoline_slow_common

	.data
	.globl	__relpoline_mod_flags
	.hidden	__relpoline_mod_flags
	.type	__relpoline_mod_flags, @object
__relpoline_mod_flags:
	.byte	0
	.size	__relpoline_mod_flags, 1

	.section .note.GNU-stack,"",@progbits
