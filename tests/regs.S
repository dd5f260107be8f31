/*
 * Register-preservation harness (driven by t_regs.c).
 *
 * For every thunk register R there are three real thunk sites, each with a
 * relocation against __x86_indirect_thunk_R, exactly like compiled code:
 *   regs_call_R : ... call __x86_indirect_thunk_R          (e8 rel32)
 *   regs_tail_R : ... call regs_tailin_R, which is
 *                     jmp __x86_indirect_thunk_R             (e9 rel32)
 *   regs_jcc_R  : ... call regs_jccin_R, which is
 *                     cmpb $0,regs_one(%rip); jne __x86_indirect_thunk_R  (0f 85 rel32)
 * Before the branch, every general register except rsp and R is loaded
 * with pattern(idx) (see t_regs.c), R with the target, zmm0-7 (or ymm/xmm
 * on smaller CPUs, regs_vlevel) with regs_vpat, and two stack words are
 * pushed (arguments seven and eight).  The targets store everything they
 * see on entry into regs_snap; after the return the caller stores every
 * general register into regs_after, so C can check the callee-saved ones.
 *
 * regs_X_R(target) takes the target in rdi (C ABI) and preserves the
 * callee-saved registers for its C caller.
 */

#define SNAP_GPR  0
#define SNAP_RET  128
#define SNAP_STK0 136
#define SNAP_STK1 144
#define SNAP_ID   152
#define SNAP_CNT  160
#define SNAP_V    192

#define STK0 0x57AC57AC00000001
#define STK1 0x57AC57AC00000002

	.macro PAT reg, skip, idx
	.ifnc \reg,\skip
	movabs	$(0x5A5A000000000000 + (\idx << 32) + 0x01020304 * (\idx + 1)), %\reg
	.endif
	.endm

	.macro LOADV
	cmpl	$2, regs_vlevel(%rip)
	jne	81f
	vmovdqu64 regs_vpat+0*64(%rip), %zmm0
	vmovdqu64 regs_vpat+1*64(%rip), %zmm1
	vmovdqu64 regs_vpat+2*64(%rip), %zmm2
	vmovdqu64 regs_vpat+3*64(%rip), %zmm3
	vmovdqu64 regs_vpat+4*64(%rip), %zmm4
	vmovdqu64 regs_vpat+5*64(%rip), %zmm5
	vmovdqu64 regs_vpat+6*64(%rip), %zmm6
	vmovdqu64 regs_vpat+7*64(%rip), %zmm7
	jmp	83f
81:	cmpl	$1, regs_vlevel(%rip)
	jne	82f
	vmovdqu	regs_vpat+0*64(%rip), %ymm0
	vmovdqu	regs_vpat+1*64(%rip), %ymm1
	vmovdqu	regs_vpat+2*64(%rip), %ymm2
	vmovdqu	regs_vpat+3*64(%rip), %ymm3
	vmovdqu	regs_vpat+4*64(%rip), %ymm4
	vmovdqu	regs_vpat+5*64(%rip), %ymm5
	vmovdqu	regs_vpat+6*64(%rip), %ymm6
	vmovdqu	regs_vpat+7*64(%rip), %ymm7
	jmp	83f
82:	movdqu	regs_vpat+0*64(%rip), %xmm0
	movdqu	regs_vpat+1*64(%rip), %xmm1
	movdqu	regs_vpat+2*64(%rip), %xmm2
	movdqu	regs_vpat+3*64(%rip), %xmm3
	movdqu	regs_vpat+4*64(%rip), %xmm4
	movdqu	regs_vpat+5*64(%rip), %xmm5
	movdqu	regs_vpat+6*64(%rip), %xmm6
	movdqu	regs_vpat+7*64(%rip), %xmm7
83:
	.endm

	.macro STOREV
	cmpl	$2, regs_vlevel(%rip)
	jne	84f
	vmovdqu64 %zmm0, regs_snap+SNAP_V+0*64(%rip)
	vmovdqu64 %zmm1, regs_snap+SNAP_V+1*64(%rip)
	vmovdqu64 %zmm2, regs_snap+SNAP_V+2*64(%rip)
	vmovdqu64 %zmm3, regs_snap+SNAP_V+3*64(%rip)
	vmovdqu64 %zmm4, regs_snap+SNAP_V+4*64(%rip)
	vmovdqu64 %zmm5, regs_snap+SNAP_V+5*64(%rip)
	vmovdqu64 %zmm6, regs_snap+SNAP_V+6*64(%rip)
	vmovdqu64 %zmm7, regs_snap+SNAP_V+7*64(%rip)
	jmp	86f
84:	cmpl	$1, regs_vlevel(%rip)
	jne	85f
	vmovdqu	%ymm0, regs_snap+SNAP_V+0*64(%rip)
	vmovdqu	%ymm1, regs_snap+SNAP_V+1*64(%rip)
	vmovdqu	%ymm2, regs_snap+SNAP_V+2*64(%rip)
	vmovdqu	%ymm3, regs_snap+SNAP_V+3*64(%rip)
	vmovdqu	%ymm4, regs_snap+SNAP_V+4*64(%rip)
	vmovdqu	%ymm5, regs_snap+SNAP_V+5*64(%rip)
	vmovdqu	%ymm6, regs_snap+SNAP_V+6*64(%rip)
	vmovdqu	%ymm7, regs_snap+SNAP_V+7*64(%rip)
	jmp	86f
85:	movdqu	%xmm0, regs_snap+SNAP_V+0*64(%rip)
	movdqu	%xmm1, regs_snap+SNAP_V+1*64(%rip)
	movdqu	%xmm2, regs_snap+SNAP_V+2*64(%rip)
	movdqu	%xmm3, regs_snap+SNAP_V+3*64(%rip)
	movdqu	%xmm4, regs_snap+SNAP_V+4*64(%rip)
	movdqu	%xmm5, regs_snap+SNAP_V+5*64(%rip)
	movdqu	%xmm6, regs_snap+SNAP_V+6*64(%rip)
	movdqu	%xmm7, regs_snap+SNAP_V+7*64(%rip)
86:
	.endm

	/* Store all 16 GPRs (index order rax rbx rcx rdx rsi rdi rbp rsp r8..r15). */
	.macro STOREG base
	mov	%rax, \base+0*8(%rip)
	mov	%rbx, \base+1*8(%rip)
	mov	%rcx, \base+2*8(%rip)
	mov	%rdx, \base+3*8(%rip)
	mov	%rsi, \base+4*8(%rip)
	mov	%rdi, \base+5*8(%rip)
	mov	%rbp, \base+6*8(%rip)
	mov	%rsp, \base+7*8(%rip)
	mov	%r8,  \base+8*8(%rip)
	mov	%r9,  \base+9*8(%rip)
	mov	%r10, \base+10*8(%rip)
	mov	%r11, \base+11*8(%rip)
	mov	%r12, \base+12*8(%rip)
	mov	%r13, \base+13*8(%rip)
	mov	%r14, \base+14*8(%rip)
	mov	%r15, \base+15*8(%rip)
	.endm

	.macro TARGET name, id
	.globl	\name
	.type	\name, @function
	.p2align 4
\name:
	STOREG	regs_snap+SNAP_GPR
	STOREV
	mov	(%rsp), %rax
	mov	%rax, regs_snap+SNAP_RET(%rip)
	mov	8(%rsp), %rax
	mov	%rax, regs_snap+SNAP_STK0(%rip)
	mov	16(%rsp), %rax
	mov	%rax, regs_snap+SNAP_STK1(%rip)
	movq	$\id, regs_snap+SNAP_ID(%rip)
	incq	regs_snap+SNAP_CNT(%rip)
	/* Clobber the other call-clobbered registers, as real code may. */
	xor	%ecx, %ecx
	xor	%edx, %edx
	xor	%esi, %esi
	xor	%edi, %edi
	xor	%r8d, %r8d
	xor	%r9d, %r9d
	xor	%r10d, %r10d
	xor	%r11d, %r11d
	mov	$\id, %eax
	ret
	.size	\name, .-\name
	.endm

	.macro CALLER kind, reg, idx
	.globl	regs_\kind\()_\reg
	.type	regs_\kind\()_\reg, @function
	.p2align 4
regs_\kind\()_\reg:
	push	%rbp
	push	%rbx
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	sub	$8, %rsp
	mov	%rdi, regs_tgt(%rip)
	movabs	$STK1, %rax
	push	%rax
	movabs	$STK0, %rax
	push	%rax
	mov	%rsp, regs_callrsp(%rip)
	LOADV
	PAT	rax, \reg, 0
	PAT	rbx, \reg, 1
	PAT	rcx, \reg, 2
	PAT	rdx, \reg, 3
	PAT	rsi, \reg, 4
	PAT	rdi, \reg, 5
	PAT	rbp, \reg, 6
	PAT	r8,  \reg, 8
	PAT	r9,  \reg, 9
	PAT	r10, \reg, 10
	PAT	r11, \reg, 11
	PAT	r12, \reg, 12
	PAT	r13, \reg, 13
	PAT	r14, \reg, 14
	PAT	r15, \reg, 15
	mov	regs_tgt(%rip), %\reg
	.ifc \kind,call
	call	__x86_indirect_thunk_\reg
	.endif
	.ifc \kind,tail
	call	regs_tailin_\reg
	.endif
	.ifc \kind,jcc
	call	regs_jccin_\reg
	.endif
	.globl	regs_ret_\kind\()_\reg
regs_ret_\kind\()_\reg:
	STOREG	regs_after
	cmpl	$0, regs_vlevel(%rip)
	je	87f
	vzeroupper
87:	add	$24, %rsp
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%rbx
	pop	%rbp
	ret
	.size	regs_\kind\()_\reg, .-regs_\kind\()_\reg
	.endm

	.macro INNER reg
	.p2align 4
	.globl	regs_tailin_\reg
	.type	regs_tailin_\reg, @function
regs_tailin_\reg:
	.globl	regs_site_tail_\reg
regs_site_tail_\reg:
	jmp	__x86_indirect_thunk_\reg
	.size	regs_tailin_\reg, .-regs_tailin_\reg

	.p2align 4
	.globl	regs_jccin_\reg
	.type	regs_jccin_\reg, @function
regs_jccin_\reg:
	cmpb	$0, regs_one(%rip)
	.globl	regs_site_jcc_\reg
regs_site_jcc_\reg:
	jne	__x86_indirect_thunk_\reg
	ud2
	.size	regs_jccin_\reg, .-regs_jccin_\reg
	.endm

	.macro ALLKINDS reg, idx
	CALLER	call, \reg, \idx
	CALLER	tail, \reg, \idx
	CALLER	jcc, \reg, \idx
	INNER	\reg
	.endm

	.text
	ALLKINDS rax, 0
	ALLKINDS rbx, 1
	ALLKINDS rcx, 2
	ALLKINDS rdx, 3
	ALLKINDS rsi, 4
	ALLKINDS rdi, 5
	ALLKINDS rbp, 6
	ALLKINDS r8, 8
	ALLKINDS r9, 9
	ALLKINDS r10, 10
	ALLKINDS r11, 11
	ALLKINDS r12, 12
	ALLKINDS r13, 13
	ALLKINDS r14, 14
	ALLKINDS r15, 15

	TARGET	regs_target_a, 0xA1
	TARGET	regs_target_b, 0xB2

	/* regs_invoke(fn, target): fn(target) without a thunk site. */
	.globl	regs_invoke
	.type	regs_invoke, @function
	.p2align 4
regs_invoke:
	mov	%rdi, %rax
	mov	%rsi, %rdi
	jmp	*%rax
	.size	regs_invoke, .-regs_invoke

	.section .note.GNU-stack,"",@progbits
