/*
 * relpoline__epoch_inline: run an epoch on the application's own thread,
 * from the middle of one of its indirect calls (RELPOLINE_THREAD=off).
 *
 * The caller is a module's slow path (thunks.S) after SAVE: the general
 * registers of the call in flight are in its frame, except the callee-
 * saved ones, which we keep.  Everything else that could carry the call's
 * arguments or the program's state is saved here before any C runs:
 *   - the whole extended state (x87, MXCSR, xmm/ymm/zmm, mask registers)
 *     with XSAVE, into a buffer sized by CPUID leaf 0xD;
 *   - the signal mask: all signals are blocked for the few tens of
 *     microseconds of the epoch, so no handler of the program runs on our
 *     private stack or longjmps out of the middle of an epoch, and the
 *     previous mask comes back exactly;
 *   - the stack: the epoch runs on a private stack (the thread's own may be
 *     small, or a signal stack), so the program's stack sees no more than
 *     this function's three pushes;
 *   - errno is restored by the C side (rp_inline_epoch).
 * Only one thread at a time may be here (rp_inline_busy); another thread
 * that finds it taken, or a thread whose mask cannot be changed (seccomp),
 * just goes on with its call.
 *
 * RELPOLINE_THREAD=on, while the worker waits longer than epoch_ms
 * because the program was idle (rp_inline_wake, runtime.c): no epoch
 * here, only a wake of the worker, with no C, no stack switch and no
 * signal-mask change (a futex wake is async-signal-safe and touches no
 * vector register).  The first thread to take epoch_due to 0 wakes it;
 * any other finds 0 and goes on.
 */
	.text
	.globl	relpoline__epoch_inline
	.type	relpoline__epoch_inline, @function
	.p2align 4
relpoline__epoch_inline:
	push	%rbp
	mov	%rsp, %rbp
	push	%rbx
	push	%r12
	mov	$1, %eax
	xchg	%eax, rp_inline_busy(%rip)
	test	%eax, %eax
	jnz	9f
	cmpl	$0, rp_inline_wake(%rip)
	jne	7f
	mov	rp_inline_stack(%rip), %r12
	test	%r12, %r12
	jz	8f
	mov	$14, %eax                       /* rt_sigprocmask(SIG_SETMASK, &all, &old, 8) */
	mov	$2, %edi
	lea	rp_inline_allsigs(%rip), %rsi
	lea	rp_inline_oldmask(%rip), %rdx
	mov	$8, %r10d
	syscall
	test	%rax, %rax
	jnz	8f
	mov	%rsp, %rbx
	mov	%r12, %rsp
	sub	rp_inline_xsave_size(%rip), %rsp
	and	$-64, %rsp
	xor	%eax, %eax                      /* XRSTOR wants a clean header */
	mov	%rax, 512(%rsp)
	mov	%rax, 520(%rsp)
	mov	%rax, 528(%rsp)
	mov	%rax, 536(%rsp)
	mov	%rax, 544(%rsp)
	mov	%rax, 552(%rsp)
	mov	%rax, 560(%rsp)
	mov	%rax, 568(%rsp)
	mov	$-1, %eax
	mov	$-1, %edx
	xsave64	(%rsp)
	mov	%rsp, %r12
	call	rp_inline_epoch
	mov	$-1, %eax
	mov	$-1, %edx
	xrstor64 (%r12)
	mov	%rbx, %rsp
	mov	$14, %eax
	mov	$2, %edi
	lea	rp_inline_oldmask(%rip), %rsi
	xor	%edx, %edx
	mov	$8, %r10d
	syscall
	jmp	8f
7:	xor	%eax, %eax
	mov	relpoline__shared@GOTPCREL(%rip), %rcx   /* exported: reached through the GOT */
	xchg	%rax, 16(%rcx)                  /* epoch_due (runtime.c asserts the offset) */
	test	%rax, %rax
	jz	8f
	lock incl rp_worker_seq(%rip)
	mov	$202, %eax                      /* futex(&rp_worker_seq, FUTEX_WAKE_PRIVATE, 1) */
	lea	rp_worker_seq(%rip), %rdi
	mov	$129, %esi
	mov	$1, %edx
	syscall
8:	movl	$0, rp_inline_busy(%rip)
9:	pop	%r12
	pop	%rbx
	pop	%rbp
	ret
	.size	relpoline__epoch_inline, .-relpoline__epoch_inline

	.section .note.GNU-stack,"",@progbits
