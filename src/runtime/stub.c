/*
 * Stub emission and the per-module arenas that hold stubs.
 *
 * An arena is one memfd mapped twice: read+execute near its module (every
 * site and every slow entry of the module within rel32 reach) and
 * read+write somewhere else; the memfd itself is closed at once.  Code is
 * written only through the RW view, so no page is ever writable and
 * executable at once.  Where a memfd cannot be mapped executable
 * (vm.memfd_noexec=2, noexec policies), the module gets no arena and its
 * sites stay on the fallback.
 *
 * An arena holds the module's cells (one per site, see rp_cells_emit) and
 * its stubs.  Stubs are never freed or reused while the module lives: a
 * thread may be preempted inside a retired stub, or a signal frame may
 * hold a RIP in it.  The number of stubs per site is bounded by
 * max_versions, so memory stays bounded (docs/design.md).
 *
 * Layout of one stub, 16-byte aligned, for a site whose target is in %R:
 *     header   "RPLS", u16 code bytes, u16 targets, u64 site   (signature, not executed)
 *     entry:   cmp slot0(%rip),%R ; je t0      7 + 6 bytes per target
 *              cmp slot1(%rip),%R ; je t1
 *              ...
 *     miss:    push $site-base|MISS ; jmp slow_R    5 + 5 bytes
 *     slots:   t0, t1, ...                     8 bytes per target
 * The hit path is one compare and one direct branch per target tried.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdbool.h>
#include "internal.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x10
#endif

#define STUB_MAGIC 0x534c5052u  /* "RPLS" little-endian */
#define CELLS_MAGIC 0x434c5052u /* "RPLC" */
#define TREE_MAGIC 0x544c5052u  /* "RPLT" */
#define ARENA_MAGIC "RELPOLINE ARENA"
#define REACH ((int64_t)0x7fffffff - (1 << 20))

/* Hardware register numbers by frame index (abi.h). */
static const uint8_t hwreg[RP_NREGS] = {
	[RP_RAX] = 0, [RP_RCX] = 1, [RP_RDX] = 2, [RP_RBX] = 3, [RP_RBP] = 5,
	[RP_RSI] = 6, [RP_RDI] = 7, [RP_R8] = 8, [RP_R9] = 9, [RP_R10] = 10,
	[RP_R11] = 11, [RP_R12] = 12, [RP_R13] = 13, [RP_R14] = 14, [RP_R15] = 15,
};

static bool reach(uint64_t from, uint64_t to)
{
	int64_t d = (int64_t)(to - from);
	return d > -REACH && d < REACH;
}

bool rp_reach(uint64_t from, uint64_t to) { return reach(from, to); }

static void *map_at(uint64_t at, size_t size, int prot, int flags, int fd)
{
	RP_STAT_ADD(syscalls, 1);
	void *p = mmap((void *)(uintptr_t)at, size, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	if ((uint64_t)(uintptr_t)p != at) {   /* a kernel that ignores NOREPLACE */
		munmap(p, size);
		return NULL;
	}
	return p;
}

/*
 * A sized memfd for an arena, executable where the system allows it; -1 if
 * none.  The caller maps it and closes it at once: the runtime keeps no
 * descriptor (the program may close or dup2 over any number it did not
 * open itself).  MFD_CLOEXEC covers an exec by another thread meanwhile.
 */
static int arena_memfd(size_t size)
{
	RP_STAT_ADD(syscalls, 2);
	int fd = (int)syscall(SYS_memfd_create, "relpoline-arena", MFD_CLOEXEC | MFD_EXEC);
	if (fd < 0)
		fd = (int)syscall(SYS_memfd_create, "relpoline-arena", MFD_CLOEXEC);
	fd = rp_fd_park(fd);
	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static bool emitted;   /* new code written since rp_arena_emitted() was last asked */

bool rp_arena_emitted(void)
{
	bool e = emitted;
	emitted = false;
	return e;
}

/* An arena at AT of SIZE bytes: every site and slow entry of M reaches it, and it them. */
static bool arena_reaches(const struct rp_module *m, uint64_t at, size_t size)
{
	return reach(at, m->text_lo) && reach(at + size, m->text_hi) &&
	       reach(m->text_lo, at + size) && reach(m->text_hi, at);
}

/* The end of M's highest segment. */
static uint64_t module_top(const struct rp_module *m)
{
	uint64_t hi = 0;
	for (int i = 0; i < m->nseg; i++)
		if (m->seg[i].hi > hi)
			hi = m->seg[i].hi;
	return hi;
}

/*
 * The free gaps of the address space, from /proc/self/maps: where an
 * arena of SIZE within rel32 reach of M could go, closest to M's text
 * first (below it where possible: above an executable lies its brk heap,
 * so above it a candidate keeps 32 MiB clear of the module).  Up to MAX
 * candidates in OUT; their number.  Probing fixed steps instead (as the
 * fallback below does) fails where other threads fill the space around a
 * module while it loads: 40 new thread stacks and their malloc arenas
 * cover far more than a few hundred MiB (CPython's test_threading).
 */
static unsigned arena_candidates(const struct rp_module *m, size_t size, uint64_t *out, unsigned max)
{
	size_t len;
	char *buf = rp_read_maps(&len);
	if (!buf)
		return 0;
	uint64_t seg_hi = module_top(m);
	const uint64_t align = 64 << 10, clear = 32 << 20, top = 0x7ffffffff000ull;
	struct cand { uint64_t at, cost; } c[64];
	unsigned n = 0;
	uint64_t prev_hi = 1 << 20;   /* nothing below the first MiB */
	for (char *line = buf; line && prev_hi < top;) {
		char *nl = strchr(line, '\n');
		unsigned long lo = 0, hi = 0;
		bool last = !nl || !nl[1];
		if (nl)
			*nl = 0;
		if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			lo = hi = top;
		/* The gap [prev_hi, lo). */
		uint64_t g0 = prev_hi, g1 = lo < top ? lo : top;
		if (g1 > g0 && g1 - g0 >= size) {
			uint64_t cand[2] = { 0, 0 };
			uint64_t below = (g1 < m->text_lo ? g1 : m->text_lo);
			if (below >= g0 + size) {
				uint64_t at = (below - size) & ~(align - 1);
				if (at >= g0)
					cand[0] = at;
			}
			uint64_t above = g0 > seg_hi + clear ? g0 : seg_hi + clear;
			above = (above + align - 1) & ~(align - 1);
			if (above + size <= g1 && above >= g0)
				cand[1] = above;
			for (int k = 0; k < 2; k++) {
				uint64_t at = cand[k];
				if (!at || !arena_reaches(m, at, size))
					continue;
				uint64_t d = at < m->text_lo ? m->text_lo - at : at - m->text_lo;
				uint64_t cost = d + (k ? (1ull << 40) : 0);   /* below first */
				if (n < 64) {
					c[n++] = (struct cand){ at, cost };
				} else {
					unsigned w = 0;
					for (unsigned j = 1; j < n; j++)
						if (c[j].cost > c[w].cost)
							w = j;
					if (cost < c[w].cost)
						c[w] = (struct cand){ at, cost };
				}
			}
		}
		if (hi > prev_hi)
			prev_hi = hi;
		if (last)
			break;
		line = nl + 1;
	}
	rp_free(buf);
	/* Cheapest first (a handful: selection sort). */
	for (unsigned i = 0; i < n && i < max; i++) {
		unsigned b = i;
		for (unsigned j = i + 1; j < n; j++)
			if (c[j].cost < c[b].cost)
				b = j;
		struct cand t = c[i];
		c[i] = c[b];
		c[b] = t;
		out[i] = c[i].at;
	}
	return n < max ? n : max;
}

/*
 * The arena's size when ARENA_KB finds no room: M's cells and stubs in
 * proportion to its sites.  A small library needs far less than the 4 MiB
 * a program whose sites keep changing may fill, and a small arena still
 * finds a place in a crowded address space.
 */
static size_t arena_small(const struct rp_module *m)
{
	size_t want = (256u << 10) + m->nsites * (size_t)(RP_CELL_SIZE + 8 + 512);
	size_t max = (size_t)rp_cfg.arena_kb * 1024;
	if (want > max)
		want = max;
	return (want + 0xfff) & ~(size_t)0xfff;
}

/*
 * Place the read+execute view of FD (*SIZE bytes) within rel32 reach of
 * M's text; its address, or NULL with *ERR set when the kernel refused
 * rather than the place being taken.  The place comes from the address
 * space's gaps (arena_candidates); another thread may take a gap between
 * the read and the mmap (MAP_FIXED_NOREPLACE then fails and the next
 * candidate is tried, then a fresh read), and fixed 2 MiB steps on either
 * side of the module are the last resort.  Without a gap for *SIZE,
 * *SIZE becomes arena_small(M).
 */
static uint8_t *arena_place(const struct rp_module *m, int fd, size_t *size, int *err)
{
	const uint64_t step = 2u << 20;
	uint8_t *rx = NULL;
	for (int round = 0; round < 4 && !rx && !*err; round++) {
		uint64_t cand[8];
		unsigned nc = arena_candidates(m, *size, cand, 8);
		if (!nc && *size > arena_small(m)) {
			/* No gap for ARENA_KB within reach: a smaller arena (the memfd keeps its size). */
			*size = arena_small(m);
			nc = arena_candidates(m, *size, cand, 8);
		}
		for (unsigned i = 0; i < nc && !rx; i++) {
			rx = map_at(cand[i], *size, PROT_READ | PROT_EXEC, MAP_SHARED, fd);
			if (!rx && (errno == EPERM || errno == EACCES || errno == ENOMEM))
				*err = errno;   /* refused, not merely taken */
			if (*err)
				break;
		}
		if (!nc)
			break;
	}
	for (int pass = 0; pass < 2 && !rx && !*err; pass++) {
		for (unsigned k = 0; k < 256 && !rx; k++) {
			uint64_t at;
			if (pass == 0) {
				uint64_t lo = m->text_lo & ~(step - 1);
				if (lo < *size + (uint64_t)(k + 1) * step + (1u << 20))
					break;
				at = lo - *size - (uint64_t)k * step;
			} else {
				at = ((module_top(m) + step - 1) & ~(step - 1)) + (uint64_t)(k + 16) * step;
			}
			if (!arena_reaches(m, at, *size))
				break;
			rx = map_at(at, *size, PROT_READ | PROT_EXEC, MAP_SHARED, fd);
			if (!rx && (errno == EPERM || errno == EACCES || errno == ENOMEM)) {
				*err = errno;   /* refused, not merely taken: no point trying elsewhere */
				break;
			}
		}
	}
	return rx;
}

/*
 * Map M's arena: read+execute within rel32 reach of its text, read+write
 * anywhere.  Never writable and executable at once: if the memfd cannot be
 * mapped executable (vm.memfd_noexec=2, a noexec policy), the module gets
 * no arena and its sites stay on the fallback.  Out of memory (ENOMEM:
 * RLIMIT_AS, ulimit -v, the map count) for ARENA_KB, the arena shrinks to
 * what M's sites need (arena_small) before the module gives up: it is
 * the size of the mapping that counts against the limit, not the pages
 * used.  Each failure says which of the three it was: refused, out of
 * memory (rp_oom: one warning per process), or no room within reach.
 */
static int arena_init(struct rp_module *m)
{
	struct rp_arena *a = &m->arena;
	if (a->rx)
		return 0;
	if (a->failed)
		return -1;
	size_t size = ((size_t)rp_cfg.arena_kb * 1024 + 0xfff) & ~(size_t)0xfff;
	int fd = arena_memfd(size);
	int err = fd < 0 ? errno : 0;
	for (int tries = 0; fd >= 0 && tries < 2; tries++) {
		err = 0;
		a->rx = arena_place(m, fd, &size, &err);
		if (a->rx) {
			RP_STAT_ADD(syscalls, 1);
			void *rw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			if (rw != MAP_FAILED) {
				a->rw = rw;
				break;
			}
			err = errno;
			munmap(a->rx, size);
			a->rx = NULL;
		}
		if (err != ENOMEM || size <= arena_small(m))
			break;
		rp_debug("out of memory (ENOMEM) for a %zu KiB stub arena for %s: trying %zu KiB",
			 size / 1024, m->path, arena_small(m) / 1024);
		size = arena_small(m);
	}
	if (fd >= 0) {
		RP_STAT_ADD(syscalls, 1);
		close(fd);
	}
	if (!a->rx) {
		a->failed = true;
		if (err == ENOMEM)
			rp_oom(2 * size, "stub memory for %s: its sites stay on the fallback", m->path);
		else if (err)
			rp_warn("cannot map an executable stub arena for %s (%s): its indirect calls "
				"keep plain retpolines", m->path, rp_strerror(err));
		else
			rp_warn("no free address within rel32 reach of %s for its stub arena: its "
				"indirect calls keep plain retpolines", m->path);
		return -1;
	}
	a->size = size;
	memcpy(a->rw, ARENA_MAGIC, sizeof(ARENA_MAGIC));
	a->used = 64;
	rp_stats.arena_bytes += a->used;
	return 0;
}

/*
 * A fork child's private copy is a new mapping at the old address, and to
 * a profiler it hides what the parent's code there was called: describe
 * every block of the copy again (perf.c writes to the child's own files).
 * Every block starts 16 bytes after its header (16-aligned); space that a
 * refused emission left unused is zero and skipped.
 */
static void arena_describe(const struct rp_module *m)
{
	const uint8_t *p = m->arena.rx;
	size_t used = m->arena.used;
	for (size_t off = 64; off + 16 <= used;) {
		uint32_t magic, n;
		uint16_t code, k;
		uint64_t site, at = (uint64_t)(uintptr_t)(p + off + 16);
		size_t block = 16;
		memcpy(&magic, p + off, 4);
		if (magic == CELLS_MAGIC) {
			memcpy(&n, p + off + 4, 4);
			block += (RP_CELL_SIZE + 8) * (size_t)n;
			if (off + block <= used)
				rp_perf_code(m, RP_CODE_CELLS, 0, at, RP_CELL_SIZE * (size_t)n);
		} else if (magic == STUB_MAGIC || magic == TREE_MAGIC) {
			memcpy(&code, p + off + 4, 2);
			memcpy(&k, p + off + 6, 2);
			memcpy(&site, p + off + 8, 8);
			block += ((code + 7u) & ~7u) + 8 * (size_t)k;
			if (off + block <= used)
				rp_perf_code(m, magic == TREE_MAGIC ? RP_CODE_TREE : RP_CODE_STUB, site, at, code);
		}
		off = (off + block + 15) & ~(size_t)15;
	}
}

/*
 * fork(): the child inherits the arena as MAP_SHARED memory.  Parent and
 * child would then write their new stubs at the same offsets of the same
 * pages, each overwriting stubs and cells the other is running.  So the
 * child, while its forking thread is its only thread (atfork handler,
 * under rp_lock), moves to a private copy: a new memfd with the same
 * bytes, mapped over the same executable address, then closed.
 */
void rp_arena_after_fork(struct rp_module *m)
{
	struct rp_arena *a = &m->arena;
	if (!a->rx)
		return;
	int fd = arena_memfd(a->size);
	void *rw = MAP_FAILED;
	if (fd >= 0)
		rw = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (rw != MAP_FAILED) {
		memcpy(rw, a->rw, a->used);
		if (mmap(a->rx, a->size, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED) {
			munmap(a->rw, a->size);
			close(fd);
			a->rw = rw;
			if (rp_perf_wanted())
				arena_describe(m);
			return;
		}
		munmap(rw, a->size);
	}
	if (fd >= 0)
		close(fd);
	/*
	 * No private copy: keep running the inherited stubs, but never write
	 * to this arena again (that would write into the parent's): its sites
	 * stay where they are.
	 */
	munmap(a->rw, a->size);
	a->rw = NULL;
	a->used = a->size;
	rp_warn("fork: cannot copy the stub arena of %s; its sites keep their state in this process",
		m->path);
}

/* Only after dlclose, when the module's text is gone: nothing can run its cells or stubs. */
void rp_arena_release(struct rp_module *m)
{
	struct rp_arena *a = &m->arena;
	if (a->rx) {
		rp_stats.arena_bytes -= a->used;
		if (a->rw)
			munmap(a->rw, a->size);
		munmap(a->rx, a->size);
	}
	memset(a, 0, sizeof(*a));
}

static uint8_t *arena_alloc(struct rp_module *m, size_t n, uint64_t *rx)
{
	struct rp_arena *a = &m->arena;
	if (arena_init(m) < 0 || !a->rw)
		return NULL;
	n = (n + 15) & ~(size_t)15;
	if (a->used + n > a->size)
		return NULL;
	uint8_t *w = a->rw + a->used;
	*rx = (uint64_t)(uintptr_t)(a->rx + a->used);
	a->used += n;
	rp_stats.arena_bytes += n;
	return w;
}

static void put32(uint8_t *p, int64_t v) { int32_t x = (int32_t)v; memcpy(p, &x, 4); }

static void header(uint8_t *w, uint16_t code, uint16_t targets, uint64_t site)
{
	uint32_t magic = STUB_MAGIC;
	memcpy(w, &magic, 4);
	memcpy(w + 4, &code, 2);
	memcpy(w + 6, &targets, 2);
	memcpy(w + 8, &site, 8);
}

/* push $site-base|MISS ; jmp slow_R, at RX address X, written at W.  10 bytes. */
static void emit_miss(uint8_t *w, uint64_t x, const struct rp_module *m, const struct rp_site *s)
{
	w[0] = 0x68;
	put32(w + 1, (int64_t)(int32_t)((uint32_t)(s->addr - m->base) | RP_SITE_MISS));
	w[5] = 0xe9;
	put32(w + 6, (int64_t)(m->slow[s->reg] - (x + 10)));
}

/* cmp slot(%rip),%R at X (written at C), slot at absolute address SLOT.  7 bytes. */
static void emit_cmp(uint8_t *c, uint64_t x, uint8_t reg, uint64_t slot)
{
	uint8_t hr = hwreg[reg];
	c[0] = 0x48 | (hr >= 8 ? 0x04 : 0);         /* REX.W (+R) */
	c[1] = 0x3b;                                 /* cmp r64, r/m64 */
	c[2] = (uint8_t)(0x05 | ((hr & 7) << 3));    /* modrm: reg, RIP+disp32 */
	put32(c + 3, (int64_t)(slot - (x + 7)));
}

/*
 * Cells: one block per module, made at registration, before any site is
 * rewritten to use them.  Per site, RP_CELL_SIZE (48) bytes at a 16-aligned
 * address C; the site calls or jumps to C:
 *     C+0   cmp slot(%rip),%R        the cell's own compare
 *     C+7   nop3
 *     C+10  je rel32                 displacement at C+12, 4-byte aligned
 *     C+16  nop3
 *     C+19  jmp rel32                displacement at C+20, 4-byte aligned
 *     C+24  cc x 8                   never executed; its address is the
 *                                    disarmed slot value (rp_cell_never)
 *     C+32  push $site-base          the site's learning entry
 *     C+37  jmp slow_R
 *     C+42  cc x 6
 * The slots (8 bytes each, 8-byte aligned) follow all the cells, apart from
 * the code: a compare that reads data from the cache line it executes
 * from cost a promoted call 1.47x a direct call instead of 1.09x
 * (`make bench-micro`, mono).  The jmp is what every state change
 * retargets (patch.c).  The compare lets a promoted site's hottest target
 * cost what it cost before cells existed (one compare and one taken
 * branch): its slot is armed with that target, and the je goes there.
 * The je's displacement is written once, while the slot still holds a value
 * no register does, and never changed again; disarming only stores that
 * value back.  A thread that read either slot value and takes the je
 * therefore always lands where its register points (patch.c).  A new cell
 * has its slot disarmed, its je at C+19 and its jmp at the learning entry.
 * The block starts with a 16-byte header "RPLC", u32 sites, u64 0.
 */
static void cell_init(const struct rp_module *m, size_t i, uint8_t *c)
{
	static const uint8_t nop3[3] = { 0x0f, 0x1f, 0x00 };
	uint64_t x = m->cells + RP_CELL_SIZE * i;
	uint32_t word = (uint32_t)(m->site_addr[i] - m->base);
	uint64_t never = rp_cell_never(x), slot = rp_cell_slot(m, x);
	memset(c, 0xcc, RP_CELL_SIZE);
	emit_cmp(c, x, m->site_reg[i], slot);
	memcpy(c + 7, nop3, 3);
	c[RP_CELL_JE] = 0x0f;
	c[RP_CELL_JE + 1] = 0x84;
	put32(c + RP_CELL_JE + 2, RP_CELL_JMP - (RP_CELL_JE + 6));
	memcpy(c + 16, nop3, 3);
	c[RP_CELL_JMP] = 0xe9;
	put32(c + RP_CELL_JMP + 1, RP_CELL_ENTRY - (RP_CELL_JMP + 5));
	memcpy(c + (slot - x), &never, 8);
	c[RP_CELL_ENTRY] = 0x68;
	put32(c + RP_CELL_ENTRY + 1, (int64_t)(int32_t)word);
	c[RP_CELL_ENTRY + 5] = 0xe9;
	put32(c + RP_CELL_ENTRY + 6, (int64_t)(m->slow[m->site_reg[i]] - (x + RP_CELL_ENTRY + 10)));
}

/* A fork child, single-threaded: cell I of M back to its initial state (its site has no record). */
void rp_cell_reinit(struct rp_module *m, size_t i)
{
	if (m->arena.rw)
		cell_init(m, i, m->arena.rw + (m->cells + RP_CELL_SIZE * i - (uint64_t)(uintptr_t)m->arena.rx));
}

int rp_cells_emit(struct rp_module *m)
{
	uint64_t rx;
	size_t n = m->nsites;
	uint8_t *w = arena_alloc(m, 16 + (RP_CELL_SIZE + 8) * n, &rx);
	if (!w)
		return -1;
	uint32_t magic = CELLS_MAGIC, cnt = (uint32_t)n;
	memcpy(w, &magic, 4);
	memcpy(w + 4, &cnt, 4);
	memset(w + 8, 0, 8);
	m->cells = rx + 16;
	for (size_t i = 0; i < n; i++)
		cell_init(m, i, w + 16 + RP_CELL_SIZE * i);
	emitted = true;
	rp_perf_code(m, RP_CODE_CELLS, 0, m->cells, RP_CELL_SIZE * n);
	return 0;
}

uint64_t rp_stub_emit(struct rp_module *m, struct rp_site *s, const uint64_t *targets,
		      unsigned n, uint64_t *keep, unsigned *used)
{
	*used = 0;
	if (s->addr - m->base > 0x7fffffffu)
		return 0;
	/* Size for all, then keep only targets a je can reach from the arena. */
	size_t code = 13 * (size_t)n + 10;
	size_t total = 16 + ((code + 7) & ~(size_t)7) + 8 * (size_t)n;
	uint64_t rx;
	uint8_t *w = arena_alloc(m, total, &rx);
	if (!w)
		return 0;
	uint64_t entry = rx + 16;
	if (!reach(s->cell + RP_CELL_JMP + 5, entry) || !reach(entry, m->slow[s->reg]))
		return 0;
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		if (reach(entry, targets[i]) && reach(entry + total, targets[i]))
			keep[k++] = targets[i];
		else
			rp_stats.far_targets++;
	}
	/* k may be 0: the miss path alone, behind a cell that compares the hot target itself. */
	code = 13 * (size_t)k + 10;
	size_t slots_off = (code + 7) & ~(size_t)7;
	uint8_t *c = w + 16;
	uint64_t x = entry;
	for (unsigned i = 0; i < k; i++) {
		emit_cmp(c, x, s->reg, entry + slots_off + 8 * i);
		c[7] = 0x0f;
		c[8] = 0x84;                                 /* je rel32 */
		put32(c + 9, (int64_t)(keep[i] - (x + 13)));
		memcpy(w + 16 + slots_off + 8 * i, &keep[i], 8);
		c += 13;
		x += 13;
	}
	emit_miss(c, x, m, s);
	header(w, (uint16_t)code, (uint16_t)k, s->addr);
	*used = k;
	rp_stats.stubs_emitted++;
	emitted = true;
	rp_perf_code(m, RP_CODE_STUB, s->addr, entry, code);
	return entry;
}

/*
 * Tree stubs, for sites with many targets (interpreter dispatch, big
 * switches, virtual calls over many classes).  A chain tries targets one
 * by one; a tree compares the register with the targets sorted by address
 * and halves the range at each node, so a hit costs O(log n) compares.
 * Every node is a direct conditional branch, which the direction predictor
 * learns with global history: the opcode streams of interpreters are full
 * of history, so a patterned stream runs through a tree with few
 * mispredictions.  Layout, 16-byte aligned:
 *     header   "RPLT", u16 code bytes, u16 targets, u64 site   (not executed)
 *     entry:   node(root)
 *     node:    cmp slot_r(%rip),%R ; je t_r       7 + 6 bytes
 *              jb <left subtree>                  2 or 6 (both subtrees)
 *              <right subtree>                    falls through
 *              <left subtree>
 *         with one subtree only: ja/jb miss and fall into it; a leaf: jmp miss
 *     miss:    push $site-base|MISS ; jmp slow_R
 *     slots:   the targets in address order       8 bytes each
 * The shape is an optimal binary search tree for the targets' weights
 * (expected compares per hit; Knuth's O(n^2) dynamic programme), so hot
 * targets sit near the root.  Only flags are clobbered, as in a chain.
 */
struct tree {
	const uint64_t *key;   /* sorted targets */
	uint16_t *root;        /* root[i * (n + 1) + j]: root of keys [i, j) */
	unsigned n;
};

static unsigned troot(const struct tree *t, unsigned i, unsigned j) { return t->root[i * (t->n + 1) + j]; }

/* Bytes of the code for keys [i, j) (j > i), with a short jb where it reaches. */
static size_t tree_size(const struct tree *t, unsigned i, unsigned j)
{
	unsigned r = troot(t, i, j);
	bool l = r > i, rt = r + 1 < j;
	if (l && rt) {
		size_t right = tree_size(t, r + 1, j);
		return 13 + (right < 128 ? 2 : 6) + right + tree_size(t, i, r);
	}
	if (l)
		return 13 + 6 + tree_size(t, i, r);
	if (rt)
		return 13 + 6 + tree_size(t, r + 1, j);
	return 13 + 5;
}

struct tree_out { uint8_t *w; uint64_t x; uint64_t miss; uint64_t slots; uint8_t reg; };

static void jcc32(struct tree_out *o, uint8_t cc, uint64_t to)
{
	o->w[0] = 0x0f;
	o->w[1] = cc;
	put32(o->w + 2, (int64_t)(to - (o->x + 6)));
	o->w += 6;
	o->x += 6;
}

static void tree_emit_node(const struct tree *t, struct tree_out *o, unsigned i, unsigned j)
{
	unsigned r = troot(t, i, j);
	bool l = r > i, rt = r + 1 < j;
	emit_cmp(o->w, o->x, o->reg, o->slots + 8 * r);
	o->w += 7;
	o->x += 7;
	jcc32(o, 0x84, t->key[r]);                         /* je target */
	if (l && rt) {
		size_t right = tree_size(t, r + 1, j);
		if (right < 128) {
			o->w[0] = 0x72;                            /* jb rel8 */
			o->w[1] = (uint8_t)right;
			o->w += 2;
			o->x += 2;
		} else {
			jcc32(o, 0x82, o->x + 6 + right);          /* jb rel32 */
		}
		tree_emit_node(t, o, r + 1, j);
		tree_emit_node(t, o, i, r);
	} else if (l) {
		jcc32(o, 0x87, o->miss);                       /* ja miss */
		tree_emit_node(t, o, i, r);
	} else if (rt) {
		jcc32(o, 0x82, o->miss);                       /* jb miss */
		tree_emit_node(t, o, r + 1, j);
	} else {
		o->w[0] = 0xe9;                                /* jmp miss */
		put32(o->w + 1, (int64_t)(o->miss - (o->x + 5)));
		o->w += 5;
		o->x += 5;
	}
}

/*
 * Optimal search tree over N sorted keys with hit weights W (misses fall
 * between keys and weigh nothing): cost[i][j] = W(i..j) + min over roots
 * r of cost[i][r] + cost[r+1][j], with the root between the roots of the
 * two neighbouring ranges (Knuth), so O(N^2) steps.  ROOT gets the roots.
 */
static bool tree_shape(const uint64_t *w, unsigned n, uint16_t *root)
{
	size_t dim = (size_t)n + 1;
	uint64_t *cost = rp_alloc(dim * dim * sizeof(*cost));
	uint64_t *pre = rp_alloc(dim * sizeof(*pre));
	if (!cost || !pre) {
		rp_free(cost);
		rp_free(pre);
		return false;
	}
	pre[0] = 0;
	for (unsigned i = 0; i < n; i++)
		pre[i + 1] = pre[i] + w[i];
	for (unsigned i = 0; i <= n; i++)
		cost[i * dim + i] = 0;
	for (unsigned i = 0; i < n; i++) {
		cost[i * dim + i + 1] = w[i];
		root[i * dim + i + 1] = (uint16_t)i;
	}
	for (unsigned len = 2; len <= n; len++) {
		for (unsigned i = 0; i + len <= n; i++) {
			unsigned j = i + len;
			unsigned lo = root[i * dim + j - 1], hi = root[(i + 1) * dim + j];
			uint64_t best = UINT64_MAX;
			unsigned br = lo;
			for (unsigned r = lo; r <= hi; r++) {
				uint64_t c = cost[i * dim + r] + cost[(r + 1) * dim + j];
				if (c < best) {
					best = c;
					br = r;
				}
			}
			cost[i * dim + j] = best + pre[j] - pre[i];
			root[i * dim + j] = (uint16_t)br;
		}
	}
	rp_free(cost);
	rp_free(pre);
	return true;
}

struct wt { uint64_t target, weight; };

static int by_addr(const void *a, const void *b)
{
	const struct wt *x = a, *y = b;
	return x->target < y->target ? -1 : x->target > y->target;
}

uint64_t rp_tree_emit(struct rp_module *m, struct rp_site *s, const uint64_t *targets,
		      const uint64_t *weights, unsigned n, uint64_t *keep, unsigned *used)
{
	*used = 0;
	if (s->addr - m->base > 0x7fffffffu || n == 0 || n > RP_MAX_TARGETS_LIMIT)
		return 0;
	struct wt *v = rp_alloc(n * sizeof(*v));
	uint16_t *root = rp_alloc(((size_t)n + 1) * (n + 1) * sizeof(*root));
	uint64_t *key = rp_alloc(n * sizeof(*key)), *w = rp_alloc(n * sizeof(*w));
	uint64_t entry = 0;
	if (!v || !root || !key || !w)
		goto out;
	for (unsigned i = 0; i < n; i++)
		v[i] = (struct wt){ targets[i], weights[i] + 1 };
	rp_sort(v, n, sizeof(*v), by_addr);
	/* The upper bound of the size, to check reach before choosing targets. */
	size_t bound = 16 + 19 * (size_t)n + 10 + 8 + 8 * (size_t)n;
	uint64_t rx;
	uint8_t *wr = arena_alloc(m, bound, &rx);
	if (!wr)
		goto out;
	entry = rx + 16;
	if (!reach(s->cell + RP_CELL_JMP + 5, entry) || !reach(entry, m->slow[s->reg])) {
		entry = 0;
		goto out;
	}
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		if (k && key[k - 1] == v[i].target)
			continue;
		if (reach(entry, v[i].target) && reach(entry + bound, v[i].target)) {
			key[k] = v[i].target;
			w[k++] = v[i].weight;
		} else {
			rp_stats.far_targets++;
		}
	}
	if (!k) {
		entry = 0;
		goto out;
	}
	struct tree t = { key, root, k };
	if (!tree_shape(w, k, root)) {
		entry = 0;
		goto out;
	}
	size_t code = tree_size(&t, 0, k) + 10;
	size_t slots_off = (code + 7) & ~(size_t)7;
	struct tree_out o = { wr + 16, entry, entry + code - 10, entry + slots_off, s->reg };
	tree_emit_node(&t, &o, 0, k);
	emit_miss(o.w, o.x, m, s);
	memcpy(wr + 16 + slots_off, key, 8 * (size_t)k);
	uint32_t magic = TREE_MAGIC;
	header(wr, (uint16_t)code, (uint16_t)k, s->addr);
	memcpy(wr, &magic, 4);
	memcpy(keep, key, 8 * (size_t)k);
	*used = k;
	rp_stats.stubs_emitted++;
	emitted = true;
	rp_perf_code(m, RP_CODE_TREE, s->addr, entry, code);
out:
	rp_free(v);
	rp_free(root);
	rp_free(key);
	rp_free(w);
	return entry;
}
