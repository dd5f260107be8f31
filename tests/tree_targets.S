/*
 * Many targets for the register fixture (regs.S), for tree stubs (t_tree.c).
 *
 * TREE_POOL trampolines, 16 bytes apart from tree_pool: trampoline K
 * stores K in tree_which, then jumps (directly) to regs_target_a, which
 * snapshots every register as regs.S describes.  Neither instruction
 * writes a general or vector register, so what regs_target_a sees is what
 * the trampoline was entered with: the thunk register holds the
 * trampoline's address, every other register its pattern.  Target K is
 * tree_pool + 16 * K; t_tree.c checks tree_which to know which one ran.
 */
#define TREE_POOL 640

	.text
	.p2align 4
	.globl	tree_pool
	.type	tree_pool, @function
tree_pool:
	.set	tree_k, 0
	.rept	TREE_POOL
	.p2align 4
	movq	$tree_k, tree_which(%rip)
	jmp	regs_target_a
	.set	tree_k, tree_k + 1
	.endr
	.size	tree_pool, .-tree_pool
	.globl	tree_pool_end
tree_pool_end:

	.bss
	.p2align 3
	.globl	tree_which
	.type	tree_which, @object
tree_which:
	.zero	8
	.size	tree_which, 8

	.section .note.GNU-stack,"",@progbits
