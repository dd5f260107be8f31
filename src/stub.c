/*
 * Stub emission and the per-module arenas that hold stubs.
 *
 * An arena is one memfd mapped twice: read+execute near its module (every
 * site and every slow entry of the module within rel32 reach) and
 * read+write somewhere else.  Code is written only through the RW view,
 * so no page is ever writable and executable at once.  Where a memfd
 * cannot be mapped executable (vm.memfd_noexec=2, noexec policies), the
 * arena falls back to one anonymous RWX mapping, and if that is refused
 * too the module gets no stubs (its sites stay on the fallback).
 *
 * Stubs are never freed or reused while the module lives: a thread may be
 * preempted inside a retired stub, or a signal frame may hold a RIP in it.
 * The number of stubs per site is bounded by max_versions, so memory stays
 * bounded (docs/design.md).
 *
 * Layout of one stub, 16-byte aligned, for a site whose target is in %R:
 *     header   "RPLS", u16 code bytes, u16 targets, u64 site   (signature, not executed)
 *     entry:   cmp slot0(%rip),%R ; je t0      7 + 6 bytes per target
 *              cmp slot1(%rip),%R ; je t1
 *              ...
 *     miss:    push $site-base ; jmp slow_R    5 + 5 bytes
 *     slots:   t0, t1, ...                     8 bytes per target
 * The hit path is one compare and one direct branch per target tried.
 * A tail-site learning entry is the miss part alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "internal.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x10
#endif

#define STUB_MAGIC 0x534c5052u  /* "RPLS" little-endian */
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

/* A sized memfd for an arena, executable where the system allows it; -1 if none. */
static int arena_memfd(size_t size)
{
	int fd = (int)syscall(SYS_memfd_create, "relpoline-arena", MFD_CLOEXEC | MFD_EXEC);
	if (fd < 0)
		fd = (int)syscall(SYS_memfd_create, "relpoline-arena", MFD_CLOEXEC);
	RP_STAT_ADD(syscalls, 1);
	if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int arena_init(struct rp_module *m)
{
	struct rp_arena *a = &m->arena;
	size_t size = ((size_t)rp_cfg.arena_kb * 1024 + 0xfff) & ~(size_t)0xfff;
	const uint64_t step = 2u << 20;
	int fd = arena_memfd(size);
	bool memfd_ok = fd >= 0;
	/* Candidates: below the module first (above an executable lies its brk heap). */
	for (int pass = 0; pass < 2 && !a->rx; pass++) {
		for (unsigned k = 0; k < 256 && !a->rx; k++) {
			uint64_t at;
			if (pass == 0) {
				uint64_t lo = m->text_lo & ~(step - 1);
				if (lo < size + (uint64_t)(k + 1) * step + (1u << 20))
					break;
				at = lo - size - (uint64_t)k * step;
			} else {
				uint64_t hi = 0;
				for (int i = 0; i < m->nseg; i++)
					if (m->seg[i].hi > hi)
						hi = m->seg[i].hi;
				at = ((hi + step - 1) & ~(step - 1)) + (uint64_t)(k + 16) * step;
			}
			if (!reach(at, m->text_lo) || !reach(at + size, m->text_hi) ||
			    !reach(m->text_lo, at + size) || !reach(m->text_hi, at))
				break;
			if (memfd_ok) {
				uint8_t *rx = map_at(at, size, PROT_READ | PROT_EXEC, MAP_SHARED, fd);
				if (rx) {
					a->rx = rx;
					break;
				}
				if (errno == EPERM || errno == EACCES)
					memfd_ok = false;   /* memfd may not be executable here */
			}
			if (!memfd_ok) {
				uint8_t *p = map_at(at, size, PROT_READ | PROT_WRITE | PROT_EXEC,
						    MAP_PRIVATE | MAP_ANONYMOUS, -1);
				if (p) {
					a->rx = a->rw = p;
					rp_warn("memfd cannot be mapped executable: stubs of %s live in "
						"read-write-execute memory", m->path);
				} else if (errno == EPERM || errno == EACCES) {
					break;
				}
			}
		}
	}
	if (!a->rx) {
		if (fd >= 0)
			close(fd);
		a->failed = true;
		rp_warn("no stub memory within reach of %s: its sites stay on the fallback", m->path);
		return -1;
	}
	if (!a->rw) {
		RP_STAT_ADD(syscalls, 1);
		void *rw = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (rw == MAP_FAILED) {
			munmap(a->rx, size);
			close(fd);
			a->rx = NULL;
			a->failed = true;
			return -1;
		}
		a->rw = rw;
	}
	a->fd = fd;
	a->size = size;
	memcpy(a->rw, ARENA_MAGIC, sizeof(ARENA_MAGIC));
	a->used = 64;
	rp_stats.arena_bytes += a->used;
	return 0;
}

/*
 * fork(): the child inherits the arena as MAP_SHARED memory.  Parent and
 * child would then write their new stubs at the same offsets of the same
 * pages, each overwriting stubs the other is running.  So the child, while
 * its forking thread is its only thread (atfork handler, under rp_lock),
 * moves to a private copy: a new memfd with the same bytes, mapped over the
 * same executable address.
 */
void rp_arena_after_fork(struct rp_module *m)
{
	struct rp_arena *a = &m->arena;
	if (!a->rx || a->rw == a->rx)
		return;   /* none, or anonymous private memory: fork already copied it */
	int fd = arena_memfd(a->size);
	void *rw = MAP_FAILED;
	if (fd >= 0)
		rw = mmap(NULL, a->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (rw != MAP_FAILED) {
		memcpy(rw, a->rw, a->used);
		if (mmap(a->rx, a->size, PROT_READ | PROT_EXEC, MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED) {
			munmap(a->rw, a->size);
			close(a->fd);
			a->rw = rw;
			a->fd = fd;
			return;
		}
		munmap(rw, a->size);
	}
	if (fd >= 0)
		close(fd);
	/*
	 * No private copy: keep running the inherited stubs, but never write
	 * to this arena again (that would write into the parent's).
	 */
	a->used = a->size;
	rp_warn("fork: cannot copy the stub arena of %s; no new stubs there in this process", m->path);
}

void rp_arena_release(struct rp_module *m)
{
	struct rp_arena *a = &m->arena;
	if (a->rx) {
		rp_stats.arena_bytes -= a->used;
		if (a->rw != a->rx)
			munmap(a->rw, a->size);
		munmap(a->rx, a->size);
	}
	if (a->fd >= 0)
		close(a->fd);
	memset(a, 0, sizeof(*a));
	a->fd = -1;
}

static uint8_t *arena_alloc(struct rp_module *m, size_t n, uint64_t *rx)
{
	struct rp_arena *a = &m->arena;
	if (!a->rx && (a->failed || arena_init(m) < 0))
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

/* push $site-base ; jmp slow_R, at RX address X, written at W.  10 bytes. */
static void emit_miss(uint8_t *w, uint64_t x, const struct rp_module *m, const struct rp_site *s)
{
	w[0] = 0x68;
	put32(w + 1, (int64_t)(s->addr - m->base));
	w[5] = 0xe9;
	put32(w + 6, (int64_t)(m->slow[s->reg] - (x + 10)));
}

static void perf_map(uint64_t at, size_t len, const char *what, uint64_t site)
{
	if (!rp_cfg.perf_map)
		return;
	char path[64];
	snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)getpid());
	FILE *f = fopen(path, "a");
	if (f) {
		fprintf(f, "%lx %zx relpoline_%s_%lx\n", (unsigned long)at, len, what, (unsigned long)site);
		fclose(f);
	}
}

uint64_t rp_entry_emit(struct rp_module *m, struct rp_site *s)
{
	if (s->addr - m->base > 0x7fffffffu)
		return 0;
	uint64_t rx;
	uint8_t *w = arena_alloc(m, 16 + 10, &rx);
	if (!w)
		return 0;
	header(w, 10, 0, s->addr);
	emit_miss(w + 16, rx + 16, m, s);
	if (!reach(s->addr + s->len, rx + 16))
		return 0;
	perf_map(rx + 16, 10, "entry", s->addr);
	return rx + 16;
}

uint64_t rp_stub_emit(struct rp_module *m, struct rp_site *s, const uint64_t *targets,
		      unsigned n, unsigned *used)
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
	if (!reach(s->addr + s->len, entry) || !reach(entry, m->slow[s->reg]))
		return 0;
	uint64_t keep[RP_MAX_TARGETS_LIMIT];
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++) {
		if (reach(entry, targets[i]) && reach(entry + total, targets[i]))
			keep[k++] = targets[i];
		else
			rp_stats.far_targets++;
	}
	if (!k)
		return 0;   /* arena space stays used: stubs are never reused anyway */
	code = 13 * (size_t)k + 10;
	size_t slots_off = (code + 7) & ~(size_t)7;
	uint8_t *c = w + 16;
	uint64_t x = entry;
	uint8_t hr = hwreg[s->reg];
	for (unsigned i = 0; i < k; i++) {
		uint64_t slot = entry + slots_off + 8 * i;
		c[0] = 0x48 | (hr >= 8 ? 0x04 : 0);         /* REX.W (+R) */
		c[1] = 0x3b;                                 /* cmp r64, r/m64 */
		c[2] = (uint8_t)(0x05 | ((hr & 7) << 3));    /* modrm: reg, RIP+disp32 */
		put32(c + 3, (int64_t)(slot - (x + 7)));
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
	perf_map(entry, total - 16, "stub", s->addr);
	return entry;
}
