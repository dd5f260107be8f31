/*
 * Changing where call sites go, while other threads run them.
 *
 * The protocol, and the only two kinds of code writes relpoline makes:
 *
 *  A. Once per site, at module registration: the site's rel32 (the site is
 *     "call/jmp/jcc __x86_indirect_thunk_<reg>") is rewritten to point at
 *     the site's own cell in the module's arena (stub.c).  Registration runs
 *     in the module's constructor, before the loader publishes the module:
 *     no other thread can have a pointer into its code yet (dlopen makes a
 *     module visible to other threads only after its constructors; the
 *     executable and its DT_NEEDED libraries register before main).  The
 *     registering thread blocks its signals for the duration, so no handler
 *     of its own runs the module's code half-written.  So nothing executes
 *     these bytes while they change, and no cross-modifying-code rule
 *     applies.  The bytes go through /proc/self/mem, which writes the
 *     private copy of the page without changing its protection: the
 *     program's code is never made writable, let alone writable and
 *     executable.  Every site's bytes are checked before (it must be
 *     exactly the thunk call the relocation list says) and read back after.
 *     If the write is refused, the module's sites keep calling the thunks.
 *
 *  A'. A warm start (profile.c), in the same constructor right after A:
 *     the cells of the sites a saved profile promotes are set straight to
 *     their stubs (jmp, and the je and its slot where the first target
 *     has the cell's compare), with plain stores through the read-write
 *     view.  The argument of A holds: no thread can run the module's code
 *     yet, so none can be inside these cells.  Each cell is checked first
 *     to be exactly as rp_cells_emit left it, and the stubs are written
 *     before any cell leads to them.  A module that arrives before the
 *     first epoch (the membarrier registration is slow and waits for it)
 *     publishes them by the stores alone, as B does without membarrier:
 *     no thread has executed those addresses; a later dlopen gets one
 *     membarrier between the stubs and the cells.
 *
 *  B. Every later change (learning -> promoted -> a new stub -> pinned ->
 *     disabled) retargets a cell: "jmp rel32" whose rel32 is 4-byte
 *     aligned, written with one aligned 4-byte store through the arena's
 *     read-write view.  Other threads may be executing that jmp; they see
 *     the old or the new displacement, never a mix, and both destinations
 *     are valid forever (stubs are never reused, learning entries and
 *     fallbacks never change).  This is the rule HotSpot relies on for
 *     patching live call displacements (../shared/REFERENCES.md).  Code
 *     the new displacement leads to is always written before it, and when
 *     a pass wrote new code, membarrier(PRIVATE_EXPEDITED_SYNC_CORE) runs
 *     between writing it and publishing it, so every thread has executed a
 *     serializing instruction after the new bytes were stored (the Intel
 *     SDM's cross-modifying-code rule for new code).  Where membarrier is
 *     missing the store alone publishes it: new code lives at addresses no
 *     thread has executed before.
 *
 * Nothing traps: no INT3, no SIGTRAP handler, no signal the program must
 * let through, and a debugger sees no breakpoint it did not set.  A pass
 * that changes no byte makes no syscall at all (seed 001).
 *
 * Who runs this: (A) the thread running a module's constructor; (B) one
 * thread at a time under rp_lock (the worker, an epoch on an application
 * thread, or an API caller).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "internal.h"

static bool sync_core_ok;

static long sys_membarrier(int cmd)
{
	RP_STAT_ADD(syscalls, 1);
	return syscall(__NR_membarrier, cmd, 0, 0);
}

/* Under rp_lock, once per process (and again in a fork child: the registration is per mm). */
void rp_patch_init(void)
{
	long q = sys_membarrier(MEMBARRIER_CMD_QUERY);
	sync_core_ok = q >= 0 && (q & MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) &&
		       sys_membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) == 0;
	if (!sync_core_ok)
		rp_debug("membarrier(SYNC_CORE) unavailable: new stubs are published by the store alone");
}

/* ---- A: the one-time rewrite of a module's sites ---- */

/* Length of the rel32 branch at ADDR (e8/e9: 5, 0f 8x: 6). */
static unsigned site_len(uint64_t addr)
{
	return *(const uint8_t *)(uintptr_t)addr == 0x0f ? 6 : 5;
}

static uint64_t cell_of(const struct rp_module *m, size_t i)
{
	return m->cells + RP_CELL_SIZE * i;
}

static void put_rel(uint8_t *at, uint64_t site, uint64_t to)
{
	unsigned len = site_len(site);
	int32_t rel = (int32_t)(int64_t)(to - (site + len));
	memcpy(at + len - 4, &rel, 4);
}

static bool holds_rel(uint64_t site, uint64_t to)
{
	uint8_t want[8];
	unsigned len = site_len(site);
	memcpy(want, (const void *)(uintptr_t)site, len);
	put_rel(want, site, to);
	return !memcmp(want, (const void *)(uintptr_t)site, len);
}

/*
 * Point every site of module M (m->site_addr, sorted, verified by the
 * caller) at its cell.  Sites are grouped into runs of nearby bytes, each
 * run read, changed in a buffer and written back with one pwrite.
 * Returns the number of sites rewritten, or a negative errno (then none
 * is: a site already rewritten is put back on its thunk).
 */
int rp_patch_sites(struct rp_module *m)
{
	const uint64_t *a = m->site_addr;
	size_t n = m->nsites;
	if (!n)
		return 0;
	sigset_t all, old;
	sigfillset(&all);
	RP_STAT_ADD(syscalls, 3);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
	int fd = rp_fd_park(open("/proc/self/mem", O_RDWR | O_CLOEXEC));
	int err = fd < 0 ? errno : 0;
	uint8_t buf[4096 + 16];
	size_t done = 0;
	for (size_t i = 0; !err && i < n;) {
		/* One run: nearby sites whose bytes fit in one buffer. */
		uint64_t lo = a[i];
		size_t j = i + 1;
		while (j < n && a[j] + 6 - lo <= sizeof(buf) && a[j] - a[j - 1] < 256)
			j++;
		size_t len = a[j - 1] + site_len(a[j - 1]) - lo;
		memcpy(buf, (const void *)(uintptr_t)lo, len);
		for (size_t k = i; k < j; k++)
			put_rel(buf + (a[k] - lo), a[k], cell_of(m, k));
		RP_STAT_ADD(syscalls, 1);
		errno = 0;
		if (pwrite(fd, buf, len, (off_t)lo) != (ssize_t)len) {
			err = errno ? errno : EIO;
			break;
		}
		rp_stats.bytes_written += len;
		done = j;
		for (size_t k = i; k < j; k++)
			if (!holds_rel(a[k], cell_of(m, k)))
				err = EIO;
		i = j;
	}
	if (err && fd >= 0) {
		/* Fail safe: every site back on its thunk, as the compiler left it. */
		for (size_t k = 0; k < done; k++) {
			uint8_t b[8];
			unsigned len = site_len(a[k]);
			memcpy(b, (const void *)(uintptr_t)a[k], len);
			put_rel(b, a[k], m->thunk[m->site_reg[k]]);
			RP_STAT_ADD(syscalls, 1);
			if (pwrite(fd, b, len, (off_t)a[k]) != (ssize_t)len)
				rp_warn("cannot restore site %#lx after a failed rewrite", (unsigned long)a[k]);
		}
	}
	if (fd >= 0)
		close(fd);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	if (err)
		return -err;
	rp_stats.sites_patched += n;
	return (int)n;
}

/* ---- A': a warm start's cells ---- */

/*
 * Point the cell of M's warm entry W at its stub, its je and slot at its
 * first target if W has the cell's compare.  Only where no thread can run
 * the cell: step A' below, and a fork child (single-threaded) rewriting
 * its private copy of a cell as rp_cells_emit made it.
 */
void rp_patch_cell_warm(struct rp_module *m, const struct rp_warm *w)
{
	const struct rp_arena *a = &m->arena;
	uint64_t c = m->cells + RP_CELL_SIZE * (uint64_t)w->k;
	uint8_t *cw = a->rw + (c - (uint64_t)(uintptr_t)a->rx);
	uint64_t *slot = (uint64_t *)(void *)(a->rw + (rp_cell_slot(m, c) - (uint64_t)(uintptr_t)a->rx));
	if (w->use_je) {
		uint64_t je = m->warm_t[w->t];
		__atomic_store_n((uint32_t *)(void *)(cw + RP_CELL_JE + 2),
				 (uint32_t)(int32_t)(int64_t)(je - (c + RP_CELL_JE + 6)), __ATOMIC_RELAXED);
		__atomic_store_n(slot, je, __ATOMIC_RELAXED);
	}
	__atomic_store_n((uint32_t *)(void *)(cw + RP_CELL_JMP + 1),
			 (uint32_t)(int32_t)(int64_t)(w->stub - (c + RP_CELL_JMP + 5)), __ATOMIC_RELEASE);
}

/*
 * Point the cell of each of M's live warm entries at its stub (step A'):
 * in M's constructor, after the stubs are written.  An entry whose cell
 * does not hold what rp_cells_emit wrote is dropped (its stub is never
 * used; the site learns).  Returns the number of cells set.
 */
size_t rp_patch_cells_warm(struct rp_module *m)
{
	const struct rp_arena *a = &m->arena;
	if (!a->rw) {
		m->nwarm = m->warm_live = 0;
		return 0;
	}
	if (rp_arena_emitted() && sync_core_ok) {
		RP_STAT_ADD(membarriers, 1);
		if (sys_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) < 0) {
			rp_debug("membarrier(SYNC_CORE) failed (%s): no longer used", rp_strerror(errno));
			sync_core_ok = false;
		}
	}
	size_t n = 0;
	for (uint32_t j = 0; j < m->nwarm; j++) {
		struct rp_warm *w = &m->warm[j];
		uint64_t c = m->cells + RP_CELL_SIZE * (uint64_t)w->k;
		uint8_t *cw = a->rw + (c - (uint64_t)(uintptr_t)a->rx);
		uint64_t *slot = (uint64_t *)(void *)(a->rw + (rp_cell_slot(m, c) - (uint64_t)(uintptr_t)a->rx));
		uint32_t entry = (uint32_t)(int32_t)(int64_t)(c + RP_CELL_ENTRY - (c + RP_CELL_JMP + 5));
		/*
		 * Read through the read-write view too: the executable view of
		 * cells no thread has run yet is not mapped in, and reading it
		 * would fault in every page of cells (140 for 10,000 sites).
		 */
		uint32_t jmp;
		memcpy(&jmp, cw + RP_CELL_JMP + 1, 4);
		if (jmp != entry || *slot != rp_cell_never(c)) {
			rp_debug("cell of site %#lx does not hold what was written: not warm-started",
				 (unsigned long)m->site_addr[w->k]);
			continue;
		}
		rp_patch_cell_warm(m, w);
		rp_stats.bytes_written += w->use_je ? 16 : 4;
		m->warm[n++] = *w;
	}
	m->nwarm = m->warm_live = (uint32_t)n;
	if (n) {
		rp_stats.patch_passes++;
		rp_stats.sites_patched += n;
	}
	return n;
}

/* ---- B: retargeting cells ---- */

/* The cell in the arena's read-write view (which a fork child remaps), or NULL if none. */
static uint8_t *cell_rw(const struct rp_site *s)
{
	const struct rp_arena *a = &s->mod->arena;
	return a->rw ? a->rw + (s->cell - (uint64_t)(uintptr_t)a->rx) : NULL;
}

/* The displacement of the rel32 branch ending at cell offset END, to TO. */
static uint32_t rel_to(const struct rp_site *s, unsigned end, uint64_t to)
{
	return (uint32_t)(int32_t)(int64_t)(to - (s->cell + end));
}

static uint32_t load32(uint64_t at)
{
	return __atomic_load_n((const uint32_t *)(uintptr_t)at, __ATOMIC_RELAXED);
}

/*
 * Apply N cell changes: each cell's jmp to p[i].to and its compare slot to
 * p[i].slot.  Sets p[i].status: DONE, ALREADY (nothing to change), REFUSED
 * (the cell does not hold what the runtime wrote: never touched again).
 * Returns the number of cells changed.
 *
 * Order within the pass: a je that is armed for the first time gets its
 * displacement while its slot still holds rp_cell_never; then, if any code
 * was written (new stubs, new je displacements), one membarrier; then the
 * jmps and slots.  Each of those stores alone leaves the cell correct.
 */
int rp_patch_apply(struct rp_patch *p, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct rp_site *s = p[i].site;
		uint64_t c = s->cell;
		bool jmp_ok = load32(c + RP_CELL_JMP + 1) == rel_to(s, RP_CELL_JMP + 5, s->cur);
		bool slot_ok = __atomic_load_n((const uint64_t *)(uintptr_t)rp_cell_slot(s->mod, c),
					       __ATOMIC_RELAXED) == s->slot;
		if (!cell_rw(s) || !jmp_ok || !slot_ok) {
			rp_debug("cell of site %#lx does not hold what was written: not patched",
				 (unsigned long)s->addr);
			p[i].status = RP_PATCH_REFUSED;
		} else if (p[i].to == s->cur && p[i].slot == s->slot) {
			p[i].status = RP_PATCH_ALREADY;
		} else {
			p[i].status = RP_PATCH_PENDING;
			k++;
		}
	}
	if (!k) {
		rp_stats.patch_passes_empty++;
		return 0;
	}
	bool code = rp_arena_emitted();
	for (size_t i = 0; i < n; i++) {
		struct rp_site *s = p[i].site;
		if (p[i].status != RP_PATCH_PENDING || p[i].slot == rp_cell_never(s->cell) || s->je_written)
			continue;
		/* First arming: the slot is still disarmed, so no thread takes this je yet. */
		__atomic_store_n((uint32_t *)(void *)(cell_rw(s) + RP_CELL_JE + 2),
				 rel_to(s, RP_CELL_JE + 6, s->je_target), __ATOMIC_RELEASE);
		s->je_written = true;
		rp_stats.bytes_written += 4;
		code = true;
	}
	if (code && sync_core_ok) {
		RP_STAT_ADD(membarriers, 1);
		if (sys_membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE) < 0) {
			/* Refused since (a seccomp filter installed later): publish by the store alone. */
			rp_debug("membarrier(SYNC_CORE) failed (%s): no longer used", rp_strerror(errno));
			sync_core_ok = false;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i].status != RP_PATCH_PENDING)
			continue;
		struct rp_site *s = p[i].site;
		uint8_t *w = cell_rw(s);
		if (p[i].to != s->cur) {
			__atomic_store_n((uint32_t *)(void *)(w + RP_CELL_JMP + 1),
					 rel_to(s, RP_CELL_JMP + 5, p[i].to), __ATOMIC_RELEASE);
			rp_stats.bytes_written += 4;
		}
		if (p[i].slot != s->slot)
			__atomic_store_n((uint64_t *)(void *)(w + (rp_cell_slot(s->mod, s->cell) - s->cell)),
					 p[i].slot, __ATOMIC_RELEASE);
		s->cur = p[i].to;
		s->slot = p[i].slot;
		p[i].status = RP_PATCH_DONE;
	}
	rp_stats.patch_passes++;
	rp_stats.sites_patched += k;
	return (int)k;
}

/*
 * A fork child's copy of an arena: the parent's epochs may have changed
 * cells of the shared memfd after the fork, pointing at stubs written past
 * what the child copied.  The child, still single-threaded (atfork),
 * writes every cell of a known site again from its own records.
 */
void rp_patch_cell_reset(struct rp_site *s)
{
	uint8_t *w = cell_rw(s);
	if (!w)
		return;
	uint64_t je = s->je_written ? s->je_target : s->cell + RP_CELL_JMP;
	__atomic_store_n((uint32_t *)(void *)(w + RP_CELL_JE + 2), rel_to(s, RP_CELL_JE + 6, je),
			 __ATOMIC_RELEASE);
	__atomic_store_n((uint32_t *)(void *)(w + RP_CELL_JMP + 1), rel_to(s, RP_CELL_JMP + 5, s->cur),
			 __ATOMIC_RELEASE);
	__atomic_store_n((uint64_t *)(void *)(w + (rp_cell_slot(s->mod, s->cell) - s->cell)), s->slot,
			 __ATOMIC_RELEASE);
}
