/*
 * Patching live code.
 *
 * What changes: only the rel32 of a thunk site (e8/e9/0f 8x rel32) ever
 * changes; its opcode stays.  Another thread may execute the site at any
 * moment, and the 4 bytes are not one aligned store, so they are changed
 * with the batched INT3 protocol of Linux's text_poke_bp, with
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) as the
 * cross-core serialization the Intel SDM requires of cross-modifying code
 * (on return every thread of the process has executed a core-serializing
 * instruction, or will before it returns to user space):
 *
 *   0. Filter: drop every site whose bytes already are the new bytes
 *      (idempotent); check that the others hold exactly the old bytes, and
 *      refuse the ones that do not.  Nothing left: return, no syscall,
 *      no protection change, no membarrier (the lesson of seed 001).
 *   1. Publish the batch for the SIGTRAP handler; make the pages writable
 *      (mprotect to RWX so other threads can still execute them, or write
 *      through /proc/self/mem).
 *   2. Write INT3 (cc) over the first byte of every site.     membarrier
 *      From now on no thread can start executing a site's old bytes.
 *   3. Write the bytes of the rel32 that differ.               membarrier
 *   4. Write the first byte back (the opcode never changes).  membarrier
 *   5. Restore page protections; retire the batch.
 *
 * A thread that hits an INT3 during 2-4 gets SIGTRAP; the handler
 * emulates the OLD instruction (a call pushes its return address, a jcc
 * evaluates its condition from the saved flags).  The old target - the
 * thunk, a learning entry or an earlier stub - is valid forever (stubs are
 * never reused).  If the trap is delivered late, after step 4, the byte is
 * no longer cc and the handler simply restarts the instruction.  Traps
 * that are not ours go to the application's handler.
 *
 * Who runs this: one thread at a time, under rp_lock (the worker or an API
 * caller).  fork() waits for a pass to finish (pthread_atfork in runtime.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include "internal.h"

struct rp_batch {
	size_t n;
	struct rp_patch *p;   /* sorted by address */
	struct rp_batch *next_retired;
};

static struct rp_batch *cur_batch;
static struct rp_batch *retired;
static unsigned handlers_active;
static struct sigaction app_trap;   /* the application's SIGTRAP disposition, chained to */
static bool trap_installed;
static int memfd_self = -1;
static long write_method = RP_WRITE_MPROTECT;

static long sys_membarrier(int cmd)
{
	RP_STAT_ADD(syscalls, 1);
	return syscall(__NR_membarrier, cmd, 0, 0);
}

static void sync_cores(void)
{
	RP_STAT_ADD(membarriers, 1);
	sys_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE);
}

static bool cond_true(unsigned cc, uint64_t fl)
{
	bool cf = fl & 1, pf = fl & 4, zf = fl & 0x40, sf = fl & 0x80, of = fl & 0x800;
	bool r;
	switch (cc >> 1) {
	case 0: r = of; break;
	case 1: r = cf; break;
	case 2: r = zf; break;
	case 3: r = cf || zf; break;
	case 4: r = sf; break;
	case 5: r = pf; break;
	case 6: r = sf != of; break;
	default: r = zf || sf != of; break;
	}
	return (cc & 1) ? !r : r;
}

static struct rp_patch *batch_find(struct rp_batch *b, uint64_t addr)
{
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (b->p[mid].addr == addr)
			return &b->p[mid];
		if (b->p[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void chain(int sig, siginfo_t *si, void *uc)
{
	if (app_trap.sa_flags & SA_SIGINFO) {
		if (app_trap.sa_sigaction)
			app_trap.sa_sigaction(sig, si, uc);
		return;
	}
	if (app_trap.sa_handler == SIG_IGN)
		return;
	if (app_trap.sa_handler == SIG_DFL) {
		/* The default action for a trap that is not ours: die of SIGTRAP. */
		signal(SIGTRAP, SIG_DFL);
		raise(SIGTRAP);
		return;
	}
	app_trap.sa_handler(sig);
}

/* Async-signal-safe: no locks, no allocation. */
static void on_sigtrap(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	greg_t *g = uc->uc_mcontext.gregs;
	uint64_t at = (uint64_t)g[REG_RIP] - 1;
	__atomic_fetch_add(&handlers_active, 1, __ATOMIC_ACQUIRE);
	if (si->si_code == SI_KERNEL) {
		struct rp_batch *b = __atomic_load_n(&cur_batch, __ATOMIC_ACQUIRE);
		struct rp_patch *p = b ? batch_find(b, at) : NULL;
		if (p) {
			int32_t rel;
			memcpy(&rel, p->old + p->len - 4, 4);
			uint64_t target = at + p->len + (int64_t)rel;
			if (p->kind == RP_SK_CALL) {
				g[REG_RSP] -= 8;
				*(uint64_t *)(uintptr_t)g[REG_RSP] = at + p->len;
				g[REG_RIP] = (greg_t)target;
			} else if (p->kind == RP_SK_JMP) {
				g[REG_RIP] = (greg_t)target;
			} else {
				bool taken = cond_true(p->old[1] & 0xf, (uint64_t)g[REG_EFL]);
				g[REG_RIP] = (greg_t)(taken ? target : at + p->len);
			}
			RP_STAT_ADD(traps_emulated, 1);
			goto out;
		}
		if (rp_addr_in_text(at) && *(volatile uint8_t *)(uintptr_t)at != 0xcc) {
			/* A pass finished between the trap and its delivery: run the new bytes. */
			g[REG_RIP] = (greg_t)at;
			RP_STAT_ADD(traps_emulated, 1);
			goto out;
		}
	}
	__atomic_fetch_sub(&handlers_active, 1, __ATOMIC_RELEASE);
	chain(sig, si, ucv);
	return;
out:
	__atomic_fetch_sub(&handlers_active, 1, __ATOMIC_RELEASE);
}

/* Install our handler, or re-install it if the application replaced it. */
static int ensure_trap_handler(void)
{
	struct sigaction cur;
	RP_STAT_ADD(syscalls, 1);
	if (sigaction(SIGTRAP, NULL, &cur) < 0)
		return -errno;
	if (trap_installed && (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigtrap)
		return 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigtrap;
	sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	RP_STAT_ADD(syscalls, 1);
	if (sigaction(SIGTRAP, &sa, NULL) < 0)
		return -errno;
	app_trap = cur;   /* chain to whatever was there before us */
	trap_installed = true;
	return 0;
}

int rp_patch_init(void)
{
	long q = sys_membarrier(MEMBARRIER_CMD_QUERY);
	if (q < 0 || !(q & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)) {
		rp_warn("membarrier(PRIVATE_EXPEDITED_SYNC_CORE) is not available: "
			"running with plain retpolines");
		return -ENOSYS;
	}
	if (sys_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) < 0) {
		rp_warn("membarrier registration failed (%s): running with plain retpolines",
			strerror(errno));
		return -errno;
	}
	write_method = rp_cfg.write_method == RP_WRITE_PROCMEM ? RP_WRITE_PROCMEM : RP_WRITE_MPROTECT;
	int r = ensure_trap_handler();
	if (r < 0) {
		rp_warn("cannot install the SIGTRAP handler: running with plain retpolines");
		return r;
	}
	return 0;
}

/* ---- writing code bytes ---- */

struct range { uint64_t lo, hi; int prot; };

static int seg_prot(uint64_t page, const struct rp_module *m)
{
	for (int i = 0; i < m->nseg; i++)
		if (page + 4096 > m->seg[i].lo && page < m->seg[i].hi)
			return m->seg[i].prot;
	return PROT_READ | PROT_EXEC;
}

static int text_write(uint64_t addr, const uint8_t *src, size_t n)
{
	RP_STAT_ADD(bytes_written, n);
	if (write_method == RP_WRITE_PROCMEM) {
		RP_STAT_ADD(syscalls, 1);
		return pwrite(memfd_self, src, n, (off_t)addr) == (ssize_t)n ? 0 : -errno;
	}
	volatile uint8_t *d = (volatile uint8_t *)(uintptr_t)addr;
	for (size_t i = 0; i < n; i++)
		d[i] = src[i];
	return 0;
}

static int open_procmem(void)
{
	if (memfd_self >= 0)
		return 0;
	RP_STAT_ADD(syscalls, 1);
	memfd_self = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
	return memfd_self >= 0 ? 0 : -errno;
}

/* Make RANGES writable (or check /proc/self/mem); returns how many were changed. */
static int unprotect(struct range *r, size_t nr, size_t *done)
{
	*done = 0;
	if (write_method == RP_WRITE_PROCMEM)
		return open_procmem();
	for (size_t i = 0; i < nr; i++) {
		RP_STAT_ADD(protect_changes, 1);
		RP_STAT_ADD(syscalls, 1);
		if (mprotect((void *)(uintptr_t)r[i].lo, r[i].hi - r[i].lo,
			     PROT_READ | PROT_WRITE | PROT_EXEC) < 0) {
			int e = errno;
			if (i == 0 && (e == EACCES || e == EPERM) && rp_cfg.write_method == RP_WRITE_AUTO &&
			    open_procmem() == 0) {
				/* Policy forbids writable code pages: write through /proc/self/mem. */
				write_method = RP_WRITE_PROCMEM;
				return 0;
			}
			return -e;
		}
		*done = i + 1;
	}
	return 0;
}

static void reprotect(struct range *r, size_t nr)
{
	if (write_method == RP_WRITE_PROCMEM)
		return;
	for (size_t i = 0; i < nr; i++) {
		RP_STAT_ADD(protect_changes, 1);
		RP_STAT_ADD(syscalls, 1);
		mprotect((void *)(uintptr_t)r[i].lo, r[i].hi - r[i].lo, r[i].prot);
	}
}

static int cmp_patch(const void *a, const void *b)
{
	const struct rp_patch *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void free_retired(void)
{
	if (__atomic_load_n(&handlers_active, __ATOMIC_ACQUIRE))
		return;
	while (retired) {
		struct rp_batch *b = retired;
		retired = b->next_retired;
		free(b->p);
		free(b);
	}
}

/*
 * Apply N patches (see the protocol above).  Sets p[i].status: DONE,
 * ALREADY (the new bytes were in place), REFUSED (unexpected bytes).
 * Returns the number of sites changed, or a negative errno if the pass
 * could not run (then nothing was changed).
 */
int rp_patch_apply(struct rp_patch *p, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *at = (uint8_t *)(uintptr_t)p[i].addr;
		if (!memcmp(at, p[i].new, p[i].len)) {
			p[i].status = RP_PATCH_ALREADY;
		} else if (memcmp(at, p[i].old, p[i].len)) {
			rp_debug("site %#lx does not hold the expected bytes: not patched",
				 (unsigned long)p[i].addr);
			p[i].status = RP_PATCH_REFUSED;
		} else {
			p[i].status = RP_PATCH_PENDING;
			k++;
		}
	}
	if (!k) {
		rp_stats.patch_passes_empty++;
		return 0;
	}
	free_retired();
	int r = ensure_trap_handler();
	if (r < 0)
		return r;

	struct rp_batch *b = calloc(1, sizeof(*b));
	struct rp_patch *copy = malloc(k * sizeof(*copy));
	struct range *rg = malloc(k * 2 * sizeof(*rg));
	if (!b || !copy || !rg) {
		free(b); free(copy); free(rg);
		return -ENOMEM;
	}
	for (size_t i = 0, j = 0; i < n; i++)
		if (p[i].status == RP_PATCH_PENDING)
			copy[j++] = p[i];
	qsort(copy, k, sizeof(*copy), cmp_patch);
	b->n = k;
	b->p = copy;

	/* Page ranges to open, coalesced; a site may straddle two pages. */
	size_t nr = 0;
	for (size_t i = 0; i < k; i++) {
		uint64_t lo = copy[i].addr & ~4095ull, hi = (copy[i].addr + copy[i].len + 4095) & ~4095ull;
		int prot = seg_prot(lo, copy[i].site->mod);
		if (nr && rg[nr - 1].hi >= lo && rg[nr - 1].prot == prot) {
			if (hi > rg[nr - 1].hi)
				rg[nr - 1].hi = hi;
		} else {
			rg[nr++] = (struct range){ lo, hi, prot };
		}
	}
	size_t opened;
	r = unprotect(rg, nr, &opened);
	if (r < 0) {
		reprotect(rg, opened);
		free(rg); free(copy); free(b);
		return r;
	}
	__atomic_store_n(&cur_batch, b, __ATOMIC_RELEASE);

	static const uint8_t int3 = 0xcc;
	for (size_t i = 0; i < k; i++)
		if ((r = text_write(copy[i].addr, &int3, 1)) < 0)
			goto fail_step2;
	sync_cores();
	for (size_t i = 0; i < k; i++) {
		/* Only the bytes that differ. */
		for (unsigned j = 1; j < copy[i].len; j++) {
			unsigned e = j;
			while (e < copy[i].len && copy[i].new[e] != copy[i].old[e])
				e++;
			if (e > j)
				text_write(copy[i].addr + j, copy[i].new + j, e - j);
			j = e;
		}
	}
	sync_cores();
	for (size_t i = 0; i < k; i++)
		text_write(copy[i].addr, copy[i].new, 1);
	sync_cores();
	goto done;

fail_step2:
	/* Could not even write the INT3s (procmem refused): put back what was written. */
	for (size_t i = 0; i < k; i++)
		text_write(copy[i].addr, copy[i].old, 1);
	sync_cores();
	k = 0;
done:
	reprotect(rg, nr);
	free(rg);
	__atomic_store_n(&cur_batch, NULL, __ATOMIC_RELEASE);
	b->next_retired = retired;
	retired = b;
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (p[i].status == RP_PATCH_PENDING)
			p[i].status = RP_PATCH_DONE;
	rp_stats.patch_passes++;
	rp_stats.sites_patched += k;
	return (int)k;
}
