/*
 * Module registry and call-site identification: which modules carry
 * thunks, where their sites are, and the site records.  A mechanism: it
 * calls nothing above it (runtime.c orchestrates a module's arrival,
 * departure and fork from the top: cells, the one-time rewrite, policy).
 *
 * A module (the executable or a shared object built with relpoline-cc)
 * registers from its constructor.  Registration reads the module's
 * relocation list (kept by -Wl,--emit-relocs) straight from its file:
 * every PC32 or PLT32 relocation in an executable section whose field is
 * preceded by e8 (call), e9 (jmp) or 0f 8x (jcc) and whose rel32, read
 * from memory, lands on one of this module's thunks is a thunk site.  A
 * modrm byte in front of a RIP-relative disp32 always has mod=00, so
 * e8/e9/8x there can only be an opcode.  Each site gets a record, a cell
 * in the module's arena, and is rewritten once to go through its cell
 * (patch.c, step A).  A module without a relocation list has no known
 * sites: its calls keep the thunks' plain retpolines.
 *
 * The file is read with mmap and a few lines of ELF walking rather than
 * libelf: libelf allocates with the application's malloc, and relpoline
 * never calls it (alloc.c).
 *
 * Locking: everything here runs under rp_lock, except the lookup of the
 * module's segments (dl_iterate_phdr takes the loader's lock).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <elf.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

#define MAX_MODULES 256

static struct rp_module *modules[MAX_MODULES];
static unsigned nmodules;

/* Site map: open addressing on the site address, grown under rp_lock. */
static struct rp_site **map;
static size_t map_cap, map_used;

static size_t hash(uint64_t a) { return (size_t)((a * 0x9e3779b97f4a7c15ull) >> 20); }

struct rp_site *rp_site_lookup(uint64_t addr)
{
	if (!map_cap)
		return NULL;
	for (size_t i = hash(addr) & (map_cap - 1);; i = (i + 1) & (map_cap - 1)) {
		if (!map[i])
			return NULL;
		if (map[i]->addr == addr)
			return map[i];
	}
}

/* Room for NEED records at most half full: grown by doubling, rehashed once. */
static bool map_room(size_t need)
{
	if (need * 2 <= map_cap)
		return true;
	size_t ncap = map_cap ? map_cap : 1024;
	while (need * 2 > ncap)
		ncap *= 2;
	struct rp_site **n = rp_zalloc(ncap * sizeof(*n));
	if (!n)
		return false;
	for (size_t i = 0; i < map_cap; i++)
		if (map[i]) {
			size_t j = hash(map[i]->addr) & (ncap - 1);
			while (n[j])
				j = (j + 1) & (ncap - 1);
			n[j] = map[i];
		}
	rp_free(map);
	map = n;
	map_cap = ncap;
	return true;
}

/* N more records are coming (a warm start makes them all at once: profile.c). */
void rp_sites_reserve(size_t n)
{
	map_room(map_used + n);
}

static void map_put(struct rp_site *s)
{
	if (!map_room(map_used + 1))
		return;
	size_t j = hash(s->addr) & (map_cap - 1);
	while (map[j])
		j = (j + 1) & (map_cap - 1);
	map[j] = s;
	map_used++;
}

/* Drop every site of M (the module is going away).  Rebuilds the map. */
static void map_drop_module(struct rp_module *m)
{
	struct rp_site **old = map;
	size_t cap = map_cap;
	map = NULL;
	map_cap = map_used = 0;
	for (size_t i = 0; i < cap; i++) {
		if (!old[i])
			continue;
		if (old[i]->mod == m) {
			rp_free(old[i]->acc);
			rp_free(old[i]->targets);
			rp_free(old[i]->rates);
			rp_free(old[i]);
		} else {
			map_put(old[i]);
		}
	}
	rp_free(old);
}

void rp_sites_foreach(void (*fn)(struct rp_site *, void *), void *arg)
{
	for (size_t i = 0; i < map_cap; i++)
		if (map[i])
			fn(map[i], arg);
}

struct rp_module *rp_module_of(uint64_t addr)
{
	for (unsigned i = 0; i < nmodules; i++) {
		struct rp_module *m = modules[i];
		if (m && m->alive && addr >= m->text_lo && addr < m->text_hi)
			return m;
	}
	return NULL;
}

/* Every registered module, alive or unloaded but not yet reaped; FN may free the one it gets. */
void rp_modules_foreach(void (*fn)(struct rp_module *, void *), void *arg)
{
	for (unsigned i = 0; i < nmodules; i++)
		if (modules[i])
			fn(modules[i], arg);
}

void rp_module_set_flags(uint8_t flags)
{
	for (unsigned i = 0; i < nmodules; i++)
		if (modules[i] && modules[i]->alive)
			__atomic_store_n(modules[i]->desc->flags, flags, __ATOMIC_RELEASE);
}

/* ---- registration (module constructors, any thread) ---- */

struct find_arg { struct rp_module *m; uint64_t probe; bool found; };

static int find_cb(struct dl_phdr_info *info, size_t size, void *p)
{
	struct find_arg *a = p;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uint64_t lo = info->dlpi_addr + ph->p_vaddr;
		if (a->probe >= lo && a->probe < lo + ph->p_memsz)
			goto mine;
	}
	return 0;
mine:
	a->found = true;
	a->m->bias = info->dlpi_addr;
	a->m->text_lo = UINT64_MAX;
	for (int i = 0; i < info->dlpi_phnum && a->m->nseg < 16; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uint64_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
		int prot = (ph->p_flags & PF_R ? PROT_READ : 0) | (ph->p_flags & PF_W ? PROT_WRITE : 0) |
			   (ph->p_flags & PF_X ? PROT_EXEC : 0);
		a->m->seg[a->m->nseg++] = (struct rp_seg){ lo, hi, prot };
		if (ph->p_flags & PF_X) {
			if (lo < a->m->text_lo) a->m->text_lo = lo;
			if (hi > a->m->text_hi) a->m->text_hi = hi;
		}
	}
	const char *name = info->dlpi_name;
	a->m->main_program = !name || !*name;
	if (a->m->main_program)
		snprintf(a->m->path, sizeof(a->m->path), "/proc/self/exe");
	else
		snprintf(a->m->path, sizeof(a->m->path), "%s", name);
	return 1;
}

/*
 * Where the module of DESC lies (outside rp_lock: dl_iterate_phdr takes the
 * loader's list lock), into *TMP.  False if its thunks are in no loaded
 * object.
 */
bool rp_module_locate(struct rp_module_desc *d, struct rp_module *tmp)
{
	memset(tmp, 0, sizeof(*tmp));
	tmp->desc = d;
	tmp->base = (uint64_t)(uintptr_t)d->base;
	for (int i = 0; i < RP_NREGS; i++) {
		tmp->thunk[i] = (uint64_t)(uintptr_t)d->thunk[i];
		tmp->slow[i] = (uint64_t)(uintptr_t)d->slow[i];
		tmp->plain[i] = (uint64_t)(uintptr_t)d->plain[i];
		tmp->indirect[i] = (uint64_t)(uintptr_t)d->indirect[i];
	}
	struct find_arg a = { tmp, (uint64_t)(uintptr_t)d->thunk[0], false };
	dl_iterate_phdr(find_cb, &a);
	return a.found && tmp->text_lo < tmp->text_hi;
}

/*
 * Enter the module located in TMP (under rp_lock; every allocation of the
 * runtime happens under it).  NULL with -ENOMEM or -ENOSPC (all slots
 * taken) in *ERR.
 */
struct rp_module *rp_module_add(const struct rp_module *tmp, int *err)
{
	unsigned slot = MAX_MODULES;
	for (unsigned i = 0; i < MAX_MODULES; i++)
		if (!modules[i]) { slot = i; break; }
	if (slot == MAX_MODULES) {
		*err = -ENOSPC;
		return NULL;
	}
	struct rp_module *m = rp_alloc(sizeof(*m));
	if (!m) {
		*err = -ENOMEM;
		return NULL;
	}
	*m = *tmp;
	m->id = slot;
	m->alive = true;
	modules[slot] = m;
	if (slot >= nmodules)
		nmodules = slot + 1;
	m->desc->rt = m;
	rp_stats.modules++;
	return m;
}

/*
 * The module's code is going away (dlclose) or the process is exiting;
 * its destructor cannot tell which.  Under rp_lock.  Its records stay
 * until its text is gone (rp_module_free).
 */
void rp_module_retire(struct rp_module *m)
{
	__atomic_store_n(m->desc->flags, 0, __ATOMIC_RELEASE);
	m->alive = false;
	rp_stats.modules--;
	m->desc->rt = NULL;
}

/*
 * The whole of /proc/self/maps, NUL-terminated, in rp_alloc'd memory (the
 * caller frees it); *LEN its length.  NULL if it cannot be read.  For the
 * arena gap search (stub.c) and naming code outside modules (symbols.c).
 */
char *rp_read_maps(size_t *len)
{
	RP_STAT_ADD(syscalls, 1);
	int fd = rp_fd_park(open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return NULL;
	size_t cap = 32 << 10, n = 0;
	char *buf = rp_alloc(cap);
	while (buf) {
		if (n + 4096 > cap) {
			char *nb = rp_realloc(buf, cap * 2);
			if (!nb) {
				rp_free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		RP_STAT_ADD(syscalls, 1);
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	RP_STAT_ADD(syscalls, 1);
	close(fd);
	if (buf)
		buf[n] = 0;
	*len = n;
	return buf;
}

/* Is any byte of [lo, hi) still mapped?  mincore fails with ENOMEM on a hole. */
static bool mapped(uint64_t lo, uint64_t hi)
{
	unsigned char v;
	for (uint64_t p = lo & ~4095ull; p < hi; p += 4096) {
		RP_STAT_ADD(syscalls, 1);
		if (mincore((void *)(uintptr_t)p, 4096, &v) == 0 || errno != ENOMEM)
			return true;
		if (p - (lo & ~4095ull) >= 16 * 4096)
			break;   /* a few pages tell: dlclose unmaps the whole segment */
	}
	return false;
}

/* Is the retired module M's text still mapped (not yet dlclosed)? */
bool rp_module_mapped(const struct rp_module *m)
{
	return mapped(m->text_lo, m->text_hi);
}

/* Drop M's warm entries (all made into records, a warm start that failed, or M going away). */
void rp_module_warm_free(struct rp_module *m)
{
	rp_free(m->warm);
	rp_free(m->warm_t);
	rp_free(m->warm_r);
	m->warm = NULL;
	m->warm_t = NULL;
	m->warm_r = NULL;
	m->nwarm = m->warm_live = 0;
	m->warm_sig = 0;
	memset(&m->warm_counts, 0, sizeof(m->warm_counts));
}

/* Forget a retired module and its site records (under rp_lock; its arena is released already). */
void rp_module_free(struct rp_module *m)
{
	map_drop_module(m);
	modules[m->id] = NULL;
	rp_module_warm_free(m);
	rp_free(m->site_addr);
	rp_free(m->site_reg);
	rp_free(m);
}

/* ---- the relocation list ---- */

static int thunk_index(const struct rp_module *m, uint64_t target)
{
	for (int i = 0; i < RP_NREGS; i++)
		if (m->thunk[i] == target)
			return i;
	return -1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool in_text(const struct rp_module *m, uint64_t a, unsigned len)
{
	return a >= m->text_lo && a + len <= m->text_hi;
}

/*
 * Decode the thunk site at ADDR: returns its length (5 or 6) and fills
 * kind and register, or 0 if the bytes are not a rel32 call/jmp/jcc to
 * one of M's thunks.
 */
static unsigned decode_site(const struct rp_module *m, uint64_t addr, uint8_t *kind, uint8_t *reg)
{
	if (!in_text(m, addr, 6))
		return 0;
	const uint8_t *p = (const uint8_t *)(uintptr_t)addr;
	unsigned len;
	if (p[0] == 0xe8 || p[0] == 0xe9) {
		len = 5;
		*kind = p[0] == 0xe8 ? RP_SK_CALL : RP_SK_JMP;
	} else if (p[0] == 0x0f && (p[1] & 0xf0) == 0x80) {
		len = 6;
		*kind = RP_SK_JCC;
	} else {
		return 0;
	}
	int32_t rel;
	memcpy(&rel, p + len - 4, 4);
	int idx = thunk_index(m, addr + len + (int64_t)rel);
	if (idx < 0)
		return 0;
	*reg = (uint8_t)idx;
	return len;
}

/*
 * Walk the section headers of the ELF image at F (SIZE bytes) and add to
 * *V every thunk site named by a relocation of an executable section.
 * Every offset read from the file is checked against SIZE first: the file
 * is only trusted as far as each site's bytes in memory then verify.
 */
struct vec { uint64_t *v; size_t n, cap; };

static void push(struct vec *v, uint64_t x)
{
	if (v->n == v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 256;
		uint64_t *nv = rp_realloc(v->v, nc * sizeof(*nv));
		if (!nv)
			return;
		v->v = nv;
		v->cap = nc;
	}
	v->v[v->n++] = x;
}

static void scan_relocs(const struct rp_module *m, const uint8_t *f, size_t size, struct vec *out)
{
	const Elf64_Ehdr *eh = (const void *)f;
	if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    eh->e_shoff >= size)
		return;
	const Elf64_Shdr *sh = (const void *)(f + eh->e_shoff);
	size_t shnum = eh->e_shnum;
	if (!shnum && size - eh->e_shoff >= sizeof(*sh))
		shnum = sh[0].sh_size;   /* extended numbering */
	if (shnum > (size - eh->e_shoff) / sizeof(*sh))
		return;
	for (size_t i = 0; i < shnum; i++) {
		if (sh[i].sh_type != SHT_RELA || sh[i].sh_info >= shnum ||
		    !(sh[sh[i].sh_info].sh_flags & SHF_EXECINSTR) ||
		    sh[i].sh_entsize != sizeof(Elf64_Rela) || sh[i].sh_offset > size ||
		    sh[i].sh_size > size - sh[i].sh_offset)
			continue;
		const Elf64_Rela *r = (const void *)(f + sh[i].sh_offset);
		for (size_t k = 0; k < sh[i].sh_size / sizeof(*r); k++) {
			unsigned t = ELF64_R_TYPE(r[k].r_info);
			if (t != R_X86_64_PC32 && t != R_X86_64_PLT32)
				continue;
			uint64_t field = m->bias + r[k].r_offset;
			if (!in_text(m, field - 2, 6))
				continue;
			const uint8_t *p = (const uint8_t *)(uintptr_t)field;
			uint64_t site;
			uint8_t kind, reg;
			if (p[-1] == 0xe8 || p[-1] == 0xe9)
				site = field - 1;
			else if (p[-2] == 0x0f && (p[-1] & 0xf0) == 0x80)
				site = field - 2;
			else
				continue;
			if (decode_site(m, site, &kind, &reg))
				push(out, site);
		}
	}
}

/* The thunk sites of M from its file's relocation list, sorted and unique. */
static size_t list_sites(const struct rp_module *m, uint64_t **sites)
{
	struct vec v = { 0 };
	*sites = NULL;
	RP_STAT_ADD(syscalls, 3);
	int fd = rp_fd_park(open(m->path, O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return 0;
	struct stat st;
	void *f = MAP_FAILED;
	if (fstat(fd, &st) == 0 && st.st_size > 0) {
		f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (f == MAP_FAILED && errno == ENOMEM)
			rp_oom((size_t)st.st_size, "the relocation list of %s: its sites stay on the fallback",
			       m->path);
	}
	close(fd);
	if (f == MAP_FAILED)
		return 0;
	scan_relocs(m, f, (size_t)st.st_size, &v);
	RP_STAT_ADD(syscalls, 1);
	munmap(f, (size_t)st.st_size);
	rp_sort(v.v, v.n, sizeof(*v.v), cmp_u64);
	size_t n = 0;
	for (size_t i = 0; i < v.n; i++)
		if (!n || v.v[n - 1] != v.v[i])
			v.v[n++] = v.v[i];
	*sites = v.v;
	return n;
}

/*
 * Find M's thunk sites (its relocation list, each site decoded) and keep
 * them in M; returns how many.  Runs in M's constructor, under rp_lock.
 * Site records are made later, on a site's first sample (rp_site_get):
 * most sites of a program never run.
 */
size_t rp_module_find_sites(struct rp_module *m)
{
	uint64_t *addr;
	size_t n = list_sites(m, &addr), k = 0;
	uint8_t *reg = n ? rp_alloc(n) : NULL;
	for (size_t i = 0; reg && i < n; i++) {
		uint8_t kind;
		if (addr[i] - m->base <= 0x7fffffffu && decode_site(m, addr[i], &kind, &reg[k]))
			addr[k++] = addr[i];
	}
	if (!k) {
		rp_debug("module %s: no thunk sites in a relocation list: plain retpolines", m->path);
		rp_free(addr);
		rp_free(reg);
		return 0;
	}
	m->site_addr = addr;
	m->site_reg = reg;
	m->nsites = k;
	return k;
}

/* M's sites could not be given cells or rewritten: it keeps plain retpolines. */
void rp_module_drop_sites(struct rp_module *m)
{
	rp_free(m->site_addr);
	rp_free(m->site_reg);
	m->site_addr = NULL;
	m->site_reg = NULL;
	m->nsites = 0;
}

/*
 * The record of the site at ADDR, made on its first sample: ADDR must be
 * one of a live module's rewritten sites.  The cell's current target is
 * read from the cell itself.
 */
struct rp_site *rp_site_get(uint64_t addr)
{
	struct rp_site *s = rp_site_lookup(addr);
	if (s)
		return s;
	struct rp_module *m = rp_module_of(addr);
	size_t lo = 0, hi = m ? m->nsites : 0;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->site_addr[mid] < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!m || lo == m->nsites || m->site_addr[lo] != addr)
		return NULL;
	return rp_site_make(m, lo);
}

/* M's live warm entry for its site number I, or NULL. */
static struct rp_warm *warm_find(const struct rp_module *m, size_t i)
{
	if (!m->warm_live)
		return NULL;
	size_t lo = 0, hi = m->nwarm;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->warm[mid].k < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	struct rp_warm *w = lo < m->nwarm && m->warm[lo].k == i ? &m->warm[lo] : NULL;
	return w && !w->made ? w : NULL;
}

/*
 * S is the fresh record of a site whose warm entry W describes its cell:
 * on W's stub, the je armed with the first target if W says so (profile.c
 * and patch.c wrote the cell so).  From here on the record is the truth
 * and W is history: the module's live counts and signature lose W.
 */
static void warm_make(struct rp_module *m, struct rp_warm *w, struct rp_site *s)
{
	w->made = 1;
	m->warm_live--;
	m->warm_sig -= rp_site_sig(s->addr, 1, RP_SS_PROMOTED);
	rp_stub_count(&m->warm_counts, w->n, w->skind == RP_STUB_TREE, -1);
	s->state = RP_SS_PROMOTED;
	s->stub = s->cur = w->stub;
	s->skind = w->skind;
	s->versions = 1;
	s->from_profile = true;
	s->unpred = w->unpred;
	s->learned_n = w->learned_n;
	s->mix_n = w->mix_n;
	if (w->use_je) {
		s->use_je = s->je_written = true;
		s->je_target = s->slot = m->warm_t[w->t];
	}
	s->targets = rp_alloc((w->n + 1u) * sizeof(*s->targets));
	s->rates = rp_alloc((w->n + 1u) * sizeof(*s->rates));
	if (!s->targets || !s->rates) {
		/* Still on its stub (the cell says so); it only forgets which targets: never saved. */
		rp_free(s->targets);
		rp_free(s->rates);
		s->targets = NULL;
		s->rates = NULL;
		return;
	}
	s->tcap = w->n + 1u;
	s->ntargets = w->n;
	double total = 0;
	for (unsigned j = 0; j < w->n; j++) {
		s->targets[j] = m->warm_t[w->t + j];
		s->rates[j] = m->warm_r[w->t + j];
		total += s->rates[j];
	}
	/* The per-site report's top targets: the stub's, by rate (at most RP_SITE_TOP passes over n). */
	bool taken[RP_MAX_TARGETS_LIMIT + 1] = { false };
	for (s->ntop = 0; s->ntop < RP_SITE_TOP && s->ntop < w->n; s->ntop++) {
		unsigned best = 0;
		double r = -1;
		for (unsigned j = 0; j < w->n; j++)
			if (!taken[j] && s->rates[j] > r) {
				r = s->rates[j];
				best = j;
			}
		taken[best] = true;
		s->top_target[s->ntop] = s->targets[best];
		s->top_ppm[s->ntop] = total > 0 ? (uint32_t)(r / total * 1e6 + 0.5) : 0;
	}
}

/*
 * The record of M's site number I (in m->site_addr), made if it has none:
 * for callers that know the index already.  A site with a live warm entry
 * gets the record the entry stands for.
 */
struct rp_site *rp_site_make(struct rp_module *m, size_t i)
{
	uint64_t addr = m->site_addr[i];
	struct rp_site *s = rp_site_lookup(addr);
	if (s || !(s = rp_zalloc(sizeof(*s))))
		return s;
	const uint8_t *b = (const uint8_t *)(uintptr_t)addr;
	s->addr = addr;
	s->mod = m;
	s->kind = b[0] == 0xe8 ? RP_SK_CALL : b[0] == 0xe9 ? RP_SK_JMP : RP_SK_JCC;
	s->len = b[0] == 0x0f ? 6 : 5;
	s->reg = m->site_reg[i];
	s->cell = m->cells + RP_CELL_SIZE * i;
	/* A cell without a record or a warm entry was never changed: as rp_cells_emit left it. */
	s->cur = s->cell + RP_CELL_ENTRY;
	s->slot = rp_cell_never(s->cell);
	s->state = RP_SS_LEARNING;
	struct rp_warm *w = warm_find(m, i);
	if (w)
		warm_make(m, w, s);
	map_put(s);
	if (w && !m->warm_live)
		rp_module_warm_free(m);
	return s;
}

/*
 * Records for M's live warm entries.  Never from inside rp_sites_foreach:
 * a new record may grow the map.
 */
void rp_module_materialize(struct rp_module *m)
{
	for (uint32_t j = 0; m->warm && j < m->nwarm; j++)
		if (!m->warm[j].made && !rp_site_make(m, m->warm[j].k))
			return;   /* out of memory: the rest stay entries, still right where they are */
}

void rp_sites_materialize_all(void)
{
	for (unsigned i = 0; i < nmodules; i++)
		if (modules[i])
			rp_module_materialize(modules[i]);
}

/* Records for the live warm entries of live modules with a target in [LO, HI). */
void rp_sites_materialize_range(uint64_t lo, uint64_t hi)
{
	for (unsigned i = 0; i < nmodules; i++) {
		struct rp_module *m = modules[i];
		if (!m || !m->alive)
			continue;
		for (uint32_t j = 0; m->warm && j < m->nwarm; j++) {
			const struct rp_warm *w = &m->warm[j];
			bool in = false;
			for (unsigned x = 0; !w->made && x < w->n && !in; x++)
				in = m->warm_t[w->t + x] >= lo && m->warm_t[w->t + x] < hi;
			if (in && !rp_site_make(m, w->k))
				break;
		}
	}
}

void rp_warm_counts(struct rp_stub_counts *c)
{
	for (unsigned i = 0; i < nmodules; i++) {
		const struct rp_module *m = modules[i];
		if (!m || !m->warm_live)
			continue;
		const struct rp_stub_counts *w = &m->warm_counts;
		c->promoted += w->promoted;
		c->targets += w->targets;
		c->chain += w->chain;
		c->tree += w->tree;
		for (unsigned j = 0; j < 17; j++)
			c->hist[j] += w->hist[j];
		for (unsigned j = 0; j < 9; j++)
			c->hist_log2[j] += w->hist_log2[j];
	}
}

/* A verified site got its first sample. */
void rp_site_seen(struct rp_site *s)
{
	if (s->seen)
		return;
	s->seen = true;
	rp_stats.sites_seen++;
	if (s->kind == RP_SK_CALL)
		rp_stats.sites_call++;
	else
		rp_stats.sites_tail++;
}
