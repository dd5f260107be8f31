/*
 * Module registry and call-site identification.
 *
 * A module (the executable or a shared object built with relpoline-cc)
 * registers from its constructor.  The worker later reads the module's
 * relocation list (kept by -Wl,--emit-relocs) with libelf: every PC32 or
 * PLT32 relocation in an executable section whose field is preceded by
 * e8 (call), e9 (jmp) or 0f 8x (jcc) and whose rel32, read from memory,
 * lands on one of this module's thunks is a thunk site.  A modrm byte in
 * front of a RIP-relative disp32 always has mod=00, so e8/e9/8x there can
 * only be an opcode.  Without a relocation list, call sites are still
 * found from return addresses and verified by their bytes; tail sites are
 * then not promotable (docs/design.md).
 *
 * Locking: everything here runs under rp_lock, except rp_addr_in_text(),
 * which the SIGTRAP handler calls.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "internal.h"

#define MAX_MODULES 256

static struct rp_module *modules[MAX_MODULES];
static unsigned nmodules;

/* Lock-free copy of the executable ranges, for the signal handler. */
static struct { uint64_t lo, hi; } ranges[MAX_MODULES];

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

static void map_put(struct rp_site *s)
{
	if ((map_used + 1) * 2 > map_cap) {
		size_t ncap = map_cap ? map_cap * 2 : 1024;
		struct rp_site **n = calloc(ncap, sizeof(*n));
		if (!n)
			return;
		for (size_t i = 0; i < map_cap; i++)
			if (map[i]) {
				size_t j = hash(map[i]->addr) & (ncap - 1);
				while (n[j])
					j = (j + 1) & (ncap - 1);
				n[j] = map[i];
			}
		free(map);
		map = n;
		map_cap = ncap;
	}
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
			free(old[i]->acc);
			free(old[i]);
		} else {
			map_put(old[i]);
		}
	}
	free(old);
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

bool rp_addr_in_text(uint64_t addr)
{
	for (unsigned i = 0; i < MAX_MODULES; i++) {
		uint64_t lo = __atomic_load_n(&ranges[i].lo, __ATOMIC_ACQUIRE);
		uint64_t hi = __atomic_load_n(&ranges[i].hi, __ATOMIC_ACQUIRE);
		if (addr >= lo && addr < hi)
			return true;
	}
	return false;
}

void rp_modules_after_fork(void)
{
	for (unsigned i = 0; i < nmodules; i++)
		if (modules[i])
			rp_arena_after_fork(modules[i]);
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

RP_API void relpoline__register_module(struct rp_module_desc *d)
{
	rp_init();
	if (d->abi != RP_ABI || d->nregs != RP_NREGS) {
		rp_warn("a module was built for another relpoline ABI (%u, runtime %u): "
			"it keeps plain retpolines", d->abi, RP_ABI);
		return;
	}
	struct rp_module *m = calloc(1, sizeof(*m));
	if (!m)
		return;
	m->desc = d;
	m->base = (uint64_t)(uintptr_t)d->base;
	for (int i = 0; i < RP_NREGS; i++) {
		m->thunk[i] = (uint64_t)(uintptr_t)d->thunk[i];
		m->slow[i] = (uint64_t)(uintptr_t)d->slow[i];
		m->plain[i] = (uint64_t)(uintptr_t)d->plain[i];
		m->indirect[i] = (uint64_t)(uintptr_t)d->indirect[i];
	}
	m->arena.fd = -1;
	/* Outside rp_lock: dl_iterate_phdr takes the loader's list lock. */
	struct find_arg a = { m, (uint64_t)(uintptr_t)d->thunk[0], false };
	dl_iterate_phdr(find_cb, &a);
	if (!a.found || m->text_lo >= m->text_hi) {
		rp_warn("cannot find the module of thunk %p: it keeps plain retpolines", d->thunk[0]);
		free(m);
		return;
	}
	if (m->main_program)
		rp_note_main_program();   /* outside rp_lock: atexit may take libc's lock */
	pthread_mutex_lock(&rp_lock);
	unsigned slot = MAX_MODULES;
	for (unsigned i = 0; i < MAX_MODULES; i++)
		if (!modules[i]) { slot = i; break; }
	if (slot == MAX_MODULES) {
		pthread_mutex_unlock(&rp_lock);
		rp_warn("more than %d modules: this one keeps plain retpolines", MAX_MODULES);
		free(m);
		return;
	}
	m->id = slot;
	m->alive = true;
	modules[slot] = m;
	if (slot >= nmodules)
		nmodules = slot + 1;
	__atomic_store_n(&ranges[slot].lo, m->text_lo, __ATOMIC_RELEASE);
	__atomic_store_n(&ranges[slot].hi, m->text_hi, __ATOMIC_RELEASE);
	d->rt = m;
	rp_stats.modules++;
	__atomic_store_n(d->flags, rp_flags_wanted(), __ATOMIC_RELEASE);
	pthread_mutex_unlock(&rp_lock);
	rp_debug("module %s registered: text %#lx-%#lx", m->path, (unsigned long)m->text_lo,
		 (unsigned long)m->text_hi);
}

RP_API void relpoline__unregister_module(struct rp_module_desc *d)
{
	struct rp_module *m = d->rt;
	if (!m)
		return;
	pthread_mutex_lock(&rp_lock);
	/*
	 * Its code is going away (dlclose) or the process is exiting.  Stop
	 * learning there; forget its sites; free its stubs only on dlclose:
	 * at exit other threads may still run them.  Stubs of other modules
	 * that jump into it stay correct (they compare the live register); they
	 * go back to learning.
	 */
	__atomic_store_n(d->flags, 0, __ATOMIC_RELEASE);
	m->alive = false;
	__atomic_store_n(&ranges[m->id].lo, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&ranges[m->id].hi, 0, __ATOMIC_RELEASE);
	if (!rp_exiting && !m->main_program) {
		map_drop_module(m);
		rp_policy_forget_range(m->text_lo, m->text_hi);
		rp_arena_release(m);
		modules[m->id] = NULL;
		free(m->table);
		free(m);
		rp_stats.modules--;
	}
	d->rt = NULL;
	pthread_mutex_unlock(&rp_lock);
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

static void parse_module(struct rp_module *m)
{
	m->parsed = true;
	if (elf_version(EV_CURRENT) == EV_NONE)
		return;
	int fd = open(m->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	size_t cap = 0, n = 0;
	uint64_t *sites = NULL;
	Elf_Scn *scn = NULL;
	while (e && (scn = elf_nextscn(e, scn))) {
		GElf_Shdr sh, tsh;
		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_RELA)
			continue;
		Elf_Scn *tscn = elf_getscn(e, sh.sh_info);
		if (!tscn || !gelf_getshdr(tscn, &tsh) || !(tsh.sh_flags & SHF_EXECINSTR))
			continue;
		m->has_table = true;
		Elf_Data *data = elf_getdata(scn, NULL);
		size_t cnt = sh.sh_entsize ? sh.sh_size / sh.sh_entsize : 0;
		for (size_t i = 0; data && i < cnt; i++) {
			GElf_Rela r;
			if (!gelf_getrela(data, (int)i, &r))
				break;
			unsigned t = GELF_R_TYPE(r.r_info);
			if (t != R_X86_64_PC32 && t != R_X86_64_PLT32)
				continue;
			uint64_t field = m->bias + r.r_offset;
			if (!in_text(m, field - 2, 6))
				continue;
			const uint8_t *f = (const uint8_t *)(uintptr_t)field;
			uint64_t site;
			if (f[-1] == 0xe8 || f[-1] == 0xe9)
				site = field - 1;
			else if (f[-2] == 0x0f && (f[-1] & 0xf0) == 0x80)
				site = field - 2;
			else
				continue;
			uint8_t kind, reg;
			if (!decode_site(m, site, &kind, &reg))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 256;
				uint64_t *ns = realloc(sites, cap * sizeof(*ns));
				if (!ns)
					break;
				sites = ns;
			}
			sites[n++] = site;
		}
	}
	if (e)
		elf_end(e);
	close(fd);
	if (!n) {
		free(sites);
		return;
	}
	qsort(sites, n, sizeof(*sites), cmp_u64);
	m->table = sites;
	m->ntable = n;
	/* Tail sites get their site record (and later a learning entry) now. */
	for (size_t i = 0; i < n; i++) {
		uint8_t kind, reg;
		unsigned len = decode_site(m, sites[i], &kind, &reg);
		if (len && kind != RP_SK_CALL && !rp_site_lookup(sites[i]))
			rp_site_validate(sites[i], reg);
	}
	rp_debug("module %s: %zu thunk sites in its relocation list", m->path, n);
}

void rp_modules_parse_new(void)
{
	for (unsigned i = 0; i < nmodules; i++)
		if (modules[i] && modules[i]->alive && !modules[i]->parsed)
			parse_module(modules[i]);
}

/*
 * Create the record of a site seen in a sample, if its bytes verify.
 * META carries the thunk register the sample came through.  Returns NULL
 * (and remembers a rejection) for anything that cannot be verified.
 */
struct rp_site *rp_site_validate(uint64_t addr, uint32_t meta)
{
	struct rp_module *m = rp_module_of(addr);
	uint8_t kind = 0, reg = 0;
	unsigned len = m ? decode_site(m, addr, &kind, &reg) : 0;
	bool ok = len && reg == RP_META_REG(meta);
	if (ok && m->has_table && !bsearch(&addr, m->table, m->ntable, sizeof(uint64_t), cmp_u64))
		ok = false;
	if (ok && (meta & RP_META_FROM_RET) && kind != RP_SK_CALL)
		ok = false;
	if (!m)
		return NULL;   /* not ours at all: do not even remember it */
	struct rp_site *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->addr = addr;
	s->mod = m;
	if (!ok) {
		s->state = RP_SS_REJECTED;
		rp_stats.sites_rejected++;
		map_put(s);
		return NULL;
	}
	s->kind = kind;
	s->reg = reg;
	s->len = (uint8_t)len;
	memcpy(s->opcode, (const void *)(uintptr_t)addr, len - 4);
	s->cur = m->thunk[reg];
	s->state = RP_SS_LEARNING;
	map_put(s);
	return s;
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

/* Where the site's rel32 should point, given its state and the global switches. */
uint64_t rp_site_desired(const struct rp_site *s)
{
	const struct rp_module *m = s->mod;
	if (!rp_enabled || !rp_can_patch)
		return m->thunk[s->reg];
	switch (s->state) {
	case RP_SS_PROMOTED:
		return s->stub;
	case RP_SS_PINNED:
		return rp_cfg.fallback == RP_FB_INDIRECT ? m->indirect[s->reg] : m->plain[s->reg];
	case RP_SS_LEARNING:
		return s->kind == RP_SK_CALL || !s->learn_entry ? m->thunk[s->reg] : s->learn_entry;
	default:
		return s->cur;
	}
}
