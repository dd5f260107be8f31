/*
 * In-process symbolizer: "function+0xOFF" for an address of the program,
 * for the per-site report (report.c) and anything else that names code.
 *
 * Who runs this: whoever holds rp_lock - the exiting thread printing the
 * report, or an epoch, which may run inline on an application thread on
 * the runtime's 256 KiB private stack with signals blocked.  So:
 *  - no libelf, no stdio streams, no malloc: the ELF file is read with
 *    pread into rp_alloc'd memory and parsed here;
 *  - no descriptor kept: open, read, close within one call;
 *  - nothing large on the stack;
 *  - no dl_iterate_phdr: it takes the loader's lock, which the interrupted
 *    thread (an inline epoch) or a thread waiting for rp_lock in a module
 *    constructor may hold.  Mappings of libraries without thunks (libc...)
 *    come from /proc/self/maps instead.
 *
 * Where the names come from, per address:
 *  1. a registered module (registry.c): its file at m->path, the address
 *     less m->bias is the ELF virtual address;
 *  2. else the executable file mapping that holds it in /proc/self/maps:
 *     the file offset (address - start + mapping offset) is turned into a
 *     virtual address through the file's PT_LOAD headers;
 *  3. the symbol covering that virtual address in .symtab, else .dynsym
 *     (stripped libraries keep only the latter).
 * Failing a symbol, "module-basename+0xVADDR"; failing a module, "0xADDR".
 *
 * Tables are loaded lazily, once: a module's hangs off its struct
 * rp_module and is freed with it (rp_symbols_forget, from lifecycle.c's
 * reaping of unloaded modules); other files' are kept in a small cache
 * keyed by device and inode, the oldest dropped first.  The maps snapshot
 * is read again when it is older than MAPS_TTL_NS: one report or one epoch
 * names many addresses within a few milliseconds.
 *
 * Formats: ELF-64 object file format (System V gABI, "Object Files":
 * ELF header, section header table, symbol table, program header) as
 * declared in <elf.h>; proc(5) for the /proc/self/maps line format.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

#define MAPS_TTL_NS 10000000ull     /* 10 ms */
#define FILE_CACHE 16               /* tables of files that are not modules */
#define MAX_LOADS 16                /* PT_LOAD headers kept per file */

struct sym {
	uint64_t lo;                /* ELF virtual address */
	uint32_t size;              /* bytes covered (a label without a size: up to the next symbol) */
	uint32_t name;              /* offset in names */
	uint8_t rank;               /* among symbols at one address, the lowest rank names it */
};

struct rp_syms {
	struct sym *v;
	size_t n;
	char *names;
	struct { uint64_t off, filesz, vaddr; } load[MAX_LOADS];
	unsigned nload;
	char base[128];             /* basename of the file, for "base+0xOFF" */
};

/* ---- loading one file's table ---- */

static bool pread_all(int fd, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;
	while (n) {
		RP_STAT_ADD(syscalls, 1);
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	return true;
}

/* N bytes at OFF of the file, in rp_alloc'd memory; NULL if they are not all in a file of SIZE bytes. */
static void *read_part(int fd, uint64_t off, uint64_t n, uint64_t size)
{
	if (!n || off > size || n > size - off)
		return NULL;
	void *p = rp_alloc(n);
	if (p && !pread_all(fd, p, n, off)) {
		rp_free(p);
		p = NULL;
	}
	return p;
}

/*
 * Lower ranks win at one address: a global name over a weak one over a
 * local one (libc's "malloc" rather than an internal alias), and a name
 * without leading underscores over one with.
 */
static uint8_t sym_rank(const Elf64_Sym *st, const char *name)
{
	unsigned b = ELF64_ST_BIND(st->st_info);
	uint8_t r = b == STB_GLOBAL ? 0 : b == STB_WEAK ? 4 : 8;
	if (ELF64_ST_TYPE(st->st_info) == STT_NOTYPE)
		r += 2;
	if (name[0] == '_')
		r += 1;
	return r;
}

static int by_addr(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return (int)x->rank - (int)y->rank;
}

/* The end of the executable section that holds VADDR, or VADDR if none. */
static uint64_t section_end(const Elf64_Shdr *sh, size_t shnum, uint64_t vaddr)
{
	for (size_t i = 0; i < shnum; i++)
		if ((sh[i].sh_flags & SHF_EXECINSTR) && vaddr >= sh[i].sh_addr &&
		    vaddr < sh[i].sh_addr + sh[i].sh_size)
			return sh[i].sh_addr + sh[i].sh_size;
	return vaddr;
}

/*
 * Fill Y with the code symbols of the open ELF file FD (SIZE bytes):
 * functions, ifuncs and untyped labels in executable sections, sorted by
 * address, one per address, names copied into one compact block.
 */
static void load_symbols(struct rp_syms *y, int fd, uint64_t size)
{
	Elf64_Ehdr eh;
	if (!pread_all(fd, &eh, sizeof(eh), 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64)
		return;
	if (eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum) {
		Elf64_Phdr *ph = read_part(fd, eh.e_phoff, (uint64_t)eh.e_phnum * sizeof(*ph), size);
		for (unsigned i = 0; ph && i < eh.e_phnum && y->nload < MAX_LOADS; i++)
			if (ph[i].p_type == PT_LOAD)
				y->load[y->nload++] = (typeof(y->load[0])){ ph[i].p_offset, ph[i].p_filesz,
									    ph[i].p_vaddr };
		rp_free(ph);
	}
	if (eh.e_shentsize != sizeof(Elf64_Shdr) || !eh.e_shoff)
		return;
	size_t shnum = eh.e_shnum;
	if (!shnum) {   /* extended numbering: the count is in section 0's sh_size */
		Elf64_Shdr s0;
		if (eh.e_shoff > size || !pread_all(fd, &s0, sizeof(s0), eh.e_shoff))
			return;
		shnum = s0.sh_size;
	}
	if (shnum > size / sizeof(Elf64_Shdr))
		return;
	Elf64_Shdr *sh = read_part(fd, eh.e_shoff, shnum * sizeof(*sh), size);
	if (!sh)
		return;
	size_t tab = shnum;
	for (size_t i = 0; i < shnum; i++)
		if (sh[i].sh_type == SHT_SYMTAB && sh[i].sh_size)
			tab = i;
	if (tab == shnum)
		for (size_t i = 0; i < shnum; i++)
			if (sh[i].sh_type == SHT_DYNSYM && sh[i].sh_size)
				tab = i;
	Elf64_Sym *st = NULL;
	char *str = NULL;
	size_t nst = 0, strsz = 0;
	if (tab < shnum && sh[tab].sh_entsize == sizeof(Elf64_Sym) && sh[tab].sh_link < shnum) {
		nst = sh[tab].sh_size / sizeof(Elf64_Sym);
		strsz = sh[sh[tab].sh_link].sh_size;
		st = read_part(fd, sh[tab].sh_offset, nst * sizeof(*st), size);
		str = read_part(fd, sh[sh[tab].sh_link].sh_offset, strsz, size);
	}
	if (!st || !str || !strsz)
		goto out;
	str[strsz - 1] = 0;
	/* Two passes: count and size the names, then fill. */
	size_t n = 0, namebytes = 0;
	for (int pass = 0; pass < 2; pass++) {
		size_t k = 0, nb = 0;
		for (size_t i = 1; i < nst; i++) {
			unsigned type = ELF64_ST_TYPE(st[i].st_info);
			if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE)
				continue;
			if (st[i].st_shndx == SHN_UNDEF || st[i].st_shndx >= shnum ||
			    !(sh[st[i].st_shndx].sh_flags & SHF_EXECINSTR) || st[i].st_name >= strsz)
				continue;
			const char *name = str + st[i].st_name;
			if (!name[0] || (name[0] == '.' && name[1] == 'L') || name[0] == '$')
				continue;
			size_t len = strlen(name) + 1;
			if (pass) {
				uint64_t sz = st[i].st_size > UINT32_MAX ? UINT32_MAX : st[i].st_size;
				y->v[k] = (struct sym){ st[i].st_value, (uint32_t)sz, (uint32_t)nb,
							sym_rank(&st[i], name) };
				memcpy(y->names + nb, name, len);
			}
			k++;
			nb += len;
		}
		if (!pass) {
			n = k;
			namebytes = nb;
			if (!n || namebytes > UINT32_MAX)
				goto out;
			y->v = rp_alloc(n * sizeof(*y->v));
			y->names = rp_alloc(namebytes);
			if (!y->v || !y->names) {
				rp_free(y->v);
				rp_free(y->names);
				y->v = NULL;
				y->names = NULL;
				goto out;
			}
		}
	}
	rp_sort(y->v, n, sizeof(*y->v), by_addr);
	/* One symbol per address (the best ranked, sorted first). */
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!m || y->v[m - 1].lo != y->v[i].lo)
			y->v[m++] = y->v[i];
	/* A label without a size covers up to the next symbol, within its section. */
	for (size_t i = 0; i < m; i++) {
		if (y->v[i].size)
			continue;
		uint64_t end = section_end(sh, shnum, y->v[i].lo);
		if (i + 1 < m && y->v[i + 1].lo < end)
			end = y->v[i + 1].lo;
		uint64_t sz = end - y->v[i].lo;
		y->v[i].size = sz > UINT32_MAX ? UINT32_MAX : (uint32_t)sz;
	}
	y->n = m;
out:
	rp_free(st);
	rp_free(str);
	rp_free(sh);
}

/* "/a/b/libc.so.6" -> "libc.so.6", into OUT. */
static void set_base(char *out, size_t len, const char *path)
{
	const char *b = strrchr(path, '/');
	b = b && b[1] ? b + 1 : path;
	size_t n = strnlen(b, len - 1);
	memcpy(out, b, n);
	out[n] = 0;
}

/*
 * The table of the file at PATH (NAME: what to call it when it has no
 * symbol for an address).  Never NULL unless out of memory: a file that
 * cannot be read gets an empty table, so it is not read again.
 */
static struct rp_syms *syms_load(const char *path, const char *name)
{
	struct rp_syms *y = rp_zalloc(sizeof(*y));
	if (!y)
		return NULL;
	set_base(y->base, sizeof(y->base), name);
	RP_STAT_ADD(syscalls, 1);
	int fd = rp_fd_park(open(path, O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return y;
	struct stat sb;
	RP_STAT_ADD(syscalls, 2);
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
		load_symbols(y, fd, (uint64_t)sb.st_size);
	close(fd);
	return y;
}

static void syms_free(struct rp_syms *y)
{
	if (!y)
		return;
	rp_free(y->v);
	rp_free(y->names);
	rp_free(y);
}

/* The symbol of Y covering VADDR, or NULL; *OFF gets VADDR's offset in it. */
static const char *sym_at(const struct rp_syms *y, uint64_t vaddr, uint64_t *off)
{
	size_t lo = 0, hi = y->n;
	while (lo < hi) {   /* the first symbol above VADDR */
		size_t mid = (lo + hi) / 2;
		if (y->v[mid].lo <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	const struct sym *s = &y->v[lo - 1];
	if (vaddr - s->lo >= s->size)
		return NULL;
	*off = vaddr - s->lo;
	return y->names + s->name;
}

/* The ELF virtual address of file offset OFF, through Y's PT_LOAD headers; false if none maps it. */
static bool off_to_vaddr(const struct rp_syms *y, uint64_t off, uint64_t *vaddr)
{
	for (unsigned i = 0; i < y->nload; i++)
		if (off >= y->load[i].off && off - y->load[i].off < y->load[i].filesz) {
			*vaddr = y->load[i].vaddr + (off - y->load[i].off);
			return true;
		}
	return false;
}

/* ---- registered modules ---- */

void rp_module_path(const struct rp_module *m, char *buf, size_t len)
{
	if (!len)
		return;
	if (m->main_program) {
		RP_STAT_ADD(syscalls, 1);
		ssize_t r = readlink("/proc/self/exe", buf, len - 1);
		if (r > 0) {
			buf[r] = 0;
			return;
		}
	}
	snprintf(buf, len, "%s", m->path);
}

static struct rp_syms *module_syms(struct rp_module *m)
{
	if (!m->syms) {
		char name[512];
		rp_module_path(m, name, sizeof(name));
		m->syms = syms_load(m->path, name);
	}
	return m->syms;
}

void rp_symbols_forget(struct rp_module *m)
{
	syms_free(m->syms);
	m->syms = NULL;
}

/* ---- other files, through /proc/self/maps ---- */

struct mapping {
	uint64_t lo, hi, off, dev, ino;
	uint32_t path;              /* offset in maps_paths */
};

static struct mapping *maps;
static size_t nmaps;
static char *maps_paths;
static uint64_t maps_ns;        /* when the snapshot was taken, 0: never */

static struct {
	uint64_t dev, ino, used;
	struct rp_syms *y;
} files[FILE_CACHE];
static uint64_t files_tick;

/* Keep the executable file mappings of a fresh /proc/self/maps. */
static void maps_refresh(void)
{
	size_t len;
	char *text = rp_read_maps(&len);
	if (!text)
		return;
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += text[i] == '\n';
	struct mapping *v = rp_alloc((lines + 1) * sizeof(*v));
	char *paths = rp_alloc(len + 1);
	if (!v || !paths) {
		rp_free(v);
		rp_free(paths);
		rp_free(text);
		return;
	}
	size_t n = 0, pn = 0;
	for (char *line = text; *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		unsigned long lo, hi, off, ino;
		unsigned maj, min;
		char perms[8];
		int at = 0;
		/* start-end perms offset major:minor inode [path] */
		if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu %n", &lo, &hi, perms, &off, &maj, &min, &ino,
			   &at) == 7 && perms[2] == 'x' && at > 0 && line[at]) {
			size_t plen = strlen(line + at) + 1;
			memcpy(paths + pn, line + at, plen);
			v[n++] = (struct mapping){ lo, hi, off, ((uint64_t)maj << 32) | min, ino, (uint32_t)pn };
			pn += plen;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	rp_free(text);
	rp_free(maps);
	rp_free(maps_paths);
	maps = v;
	nmaps = n;
	maps_paths = paths;
	maps_ns = rp_now_ns();
}

static const struct mapping *mapping_of(uint64_t addr)
{
	if (!maps_ns || rp_now_ns() - maps_ns > MAPS_TTL_NS)
		maps_refresh();
	for (size_t i = 0; i < nmaps; i++)
		if (addr >= maps[i].lo && addr < maps[i].hi)
			return &maps[i];
	return NULL;
}

/* The cached table of the file mapped at MP, loaded on first use. */
static struct rp_syms *file_syms(const struct mapping *mp)
{
	const char *path = maps_paths + mp->path;
	unsigned victim = 0;
	for (unsigned i = 0; i < FILE_CACHE; i++) {
		if (files[i].y && files[i].dev == mp->dev && files[i].ino == mp->ino) {
			files[i].used = ++files_tick;
			return files[i].y;
		}
		if (files[i].used < files[victim].used)
			victim = i;
	}
	/* "(deleted)", "[vdso]", a memfd: nothing to open by that name. */
	if (path[0] != '/' || strstr(path, " (deleted)"))
		return NULL;
	struct rp_syms *y = syms_load(path, path);
	if (!y)
		return NULL;
	syms_free(files[victim].y);
	files[victim].dev = mp->dev;
	files[victim].ino = mp->ino;
	files[victim].used = ++files_tick;
	files[victim].y = y;
	return y;
}

/* ---- the one entry point ---- */

void rp_symbolize(uint64_t addr, char *buf, size_t len)
{
	if (!buf || !len)
		return;
	const struct rp_syms *y = NULL;
	const char *base = NULL;        /* the file's name, when Y could not be made */
	uint64_t vaddr = 0, off = 0;
	bool in_file = false;           /* VADDR is ADDR's place in a known file */
	bool elf_vaddr = false;         /* ... and an ELF virtual address, not a file offset */
	char tmp[128];
	struct rp_module *m = rp_module_of(addr);
	if (m) {
		y = module_syms(m);
		vaddr = addr - m->bias;
		in_file = elf_vaddr = true;
		if (!y) {
			set_base(tmp, sizeof(tmp), m->path);
			base = tmp;
		}
	} else {
		const struct mapping *mp = mapping_of(addr);
		if (mp) {
			uint64_t foff = addr - mp->lo + mp->off;
			y = file_syms(mp);
			elf_vaddr = y && off_to_vaddr(y, foff, &vaddr);
			if (!elf_vaddr)
				vaddr = foff;   /* no program header maps it: say where it is in the file */
			in_file = true;
			if (!y) {
				set_base(tmp, sizeof(tmp), maps_paths + mp->path);
				base = tmp;
			}
		}
	}
	const char *name = y && elf_vaddr ? sym_at(y, vaddr, &off) : NULL;
	if (name && off)
		snprintf(buf, len, "%s+%#lx", name, (unsigned long)off);
	else if (name)
		snprintf(buf, len, "%s", name);
	else if (in_file)
		snprintf(buf, len, "%s+%#lx", y ? y->base : base, (unsigned long)vaddr);
	else
		snprintf(buf, len, "%#lx", (unsigned long)addr);
}
