/*
 * Finding a test's own thunk sites and checking where they really go, for
 * the tests that check site bytes rather than the runtime's counters.
 * Usable from C and C++ (t_cxx.cc); include it after common.h in C.
 *
 *   ts_find_sites(fn, out, max)   the thunk sites (call/jmp/jcc rel32 to a
 *                                 __x86_indirect_thunk_<reg>) inside function
 *                                 FN, found in the executable FILE's bytes,
 *                                 so whatever the runtime did to the sites in
 *                                 memory (cells, stubs) does not matter.  The
 *                                 function's extent comes from .symtab.
 *   ts_dest(site, &cell)          like t_site_dest() (common.h): the site's
 *                                 branch, followed through its arena cell,
 *                                 but every read goes through
 *                                 process_vm_readv, so a torn or half-written
 *                                 branch never faults (NULL instead).
 *   ts_dest2(site, &cell, &armed) the same, and where the cell's own compare
 *                                 sends a matching register when it is armed.
 *   ts_is_stub_for(dest, site)    DEST is a stub of SITE: in a stub arena,
 *                                 16 bytes after an "RPLS" header naming SITE,
 *                                 starting with the compare chain (cmp r64, m64),
 *                                 or with its miss path when the cell's own
 *                                 compare holds the one hot target
 *                                 (docs/design.md, "Stubs and arenas").
 *   ts_stub_header_for(dest, site) the same without the arena check (which
 *                                 reads /proc/self/maps): for sampling loops.
 *   ts_stub_kind(dest, site, &code, &n)  'c' if DEST starts a chain stub of
 *                                 SITE, 't' a tree stub ("RPLT" header), else 0.
 *   ts_in_arena(addr)             ADDR lies in a stub arena mapping.
 *   ts_thunk_index(p)             0..14 if P is one of this module's thunks
 *                                 (__x86_indirect_thunk_<reg>, hidden symbols
 *                                 of the module object relpoline-cc links in).
 */
#ifndef RP_TEST_SITES_H
#define RP_TEST_SITES_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif
#define TS_REGS(X) X(rax) X(rcx) X(rdx) X(rbx) X(rbp) X(rsi) X(rdi) X(r8) X(r9) X(r10) \
	X(r11) X(r12) X(r13) X(r14) X(r15)
#define TS_DECL(r) extern char __x86_indirect_thunk_##r[] __attribute__((visibility("hidden")));
TS_REGS(TS_DECL)
#undef TS_DECL
#ifdef __cplusplus
}
#endif

#define TS_NREGS 15
#define TS_PTR(r) __x86_indirect_thunk_##r,
#define TS_NAME(r) #r,
static const char *const ts_thunks[TS_NREGS] = { TS_REGS(TS_PTR) };
static const char *const ts_regname[TS_NREGS] = { TS_REGS(TS_NAME) };
#undef TS_PTR
#undef TS_NAME

struct ts_site {
	const unsigned char *addr; /* the branch instruction, in memory */
	char kind;                 /* 'c' call, 'j' jmp, 'x' jcc */
	int reg;                   /* index into ts_thunks / ts_regname */
	unsigned char orig[6];     /* the bytes as linked (from the file) */
	int len;                   /* 5 or 6 */
};

static __attribute__((unused)) int ts_thunk_index(const void *p)
{
	for (int i = 0; i < TS_NREGS; i++)
		if ((const char *)p == ts_thunks[i])
			return i;
	return -1;
}

/* Read N bytes at ADDR of this process without ever faulting; 0 on success. */
static __attribute__((unused)) int ts_read(const void *addr, void *buf, size_t n)
{
	struct iovec l = { buf, n }, r = { (void *)(uintptr_t)addr, n };
	return process_vm_readv(getpid(), &l, 1, &r, 1, 0) == (ssize_t)n ? 0 : -1;
}

/* ---- the executable file: section bytes and .symtab ---- */
static struct {
	int loaded;
	unsigned char *img;
	size_t len;
	uintptr_t bias;
} ts_elf;

static int ts_phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	ts_elf.bias = (uintptr_t)info->dlpi_addr;
	return 1; /* the first object is the main program */
}

static __attribute__((unused)) int ts_elf_load(void)
{
	if (ts_elf.loaded)
		return ts_elf.img ? 0 : -1;
	ts_elf.loaded = 1;
	int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < (off_t)sizeof(Elf64_Ehdr)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	unsigned char *img = (unsigned char *)malloc((size_t)st.st_size);
	size_t got = 0;
	while (img && got < (size_t)st.st_size) {
		ssize_t r = pread(fd, img + got, (size_t)st.st_size - got, (off_t)got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!img || got != (size_t)st.st_size || memcmp(img, ELFMAG, SELFMAG)) {
		free(img);
		return -1;
	}
	ts_elf.img = img;
	ts_elf.len = got;
	dl_iterate_phdr(ts_phdr_cb, NULL);
	return 0;
}

static const Elf64_Shdr *ts_shdr(int i)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)ts_elf.img;
	return (const Elf64_Shdr *)(ts_elf.img + eh->e_shoff + (size_t)i * eh->e_shentsize);
}

/* The linked bytes at link-time address VADDR (N of them), or NULL. */
static const unsigned char *ts_file_at(uint64_t vaddr, size_t n)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)ts_elf.img;
	for (int i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *s = ts_shdr(i);
		if (s->sh_type == SHT_PROGBITS && (s->sh_flags & SHF_EXECINSTR) && vaddr >= s->sh_addr &&
		    vaddr + n <= s->sh_addr + s->sh_size && s->sh_offset + s->sh_size <= ts_elf.len)
			return ts_elf.img + s->sh_offset + (vaddr - s->sh_addr);
	}
	return NULL;
}

/* Size of the function symbol at link-time address VADDR, 0 if none. */
static uint64_t ts_sym_size(uint64_t vaddr)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)ts_elf.img;
	for (int i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *s = ts_shdr(i);
		if (s->sh_type != SHT_SYMTAB || s->sh_offset + s->sh_size > ts_elf.len)
			continue;
		const Elf64_Sym *sym = (const Elf64_Sym *)(ts_elf.img + s->sh_offset);
		size_t n = s->sh_size / sizeof(Elf64_Sym);
		for (size_t k = 0; k < n; k++)
			if (sym[k].st_value == vaddr && ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC &&
			    sym[k].st_size)
				return sym[k].st_size;
	}
	return 0;
}

/*
 * The thunk sites inside function FN (at most MAX, in address order).
 * Returns how many, or -1 if the executable or FN's symbol cannot be read.
 */
static __attribute__((unused)) int ts_find_sites(const void *fn, struct ts_site *out, int max)
{
	if (ts_elf_load() < 0)
		return -1;
	uint64_t va = (uint64_t)(uintptr_t)fn - ts_elf.bias;
	uint64_t size = ts_sym_size(va);
	const unsigned char *b = size ? ts_file_at(va, size) : NULL;
	if (!b)
		return -1;
	int n = 0;
	for (uint64_t i = 0; i < size && n < max;) {
		int len = 0;
		char kind = 0;
		if ((b[i] == 0xe8 || b[i] == 0xe9) && i + 5 <= size) {
			len = 5;
			kind = b[i] == 0xe8 ? 'c' : 'j';
		} else if (b[i] == 0x0f && i + 6 <= size && (b[i + 1] & 0xf0) == 0x80) {
			len = 6;
			kind = 'x';
		}
		if (len) {
			int32_t rel;
			memcpy(&rel, b + i + len - 4, 4);
			const char *at = (const char *)fn + i;
			int reg = ts_thunk_index(at + len + rel);
			if (reg >= 0) {
				out[n].addr = (const unsigned char *)at;
				out[n].kind = kind;
				out[n].reg = reg;
				out[n].len = len;
				memcpy(out[n].orig, b + i, (size_t)len);
				n++;
				i += (uint64_t)len;
				continue;
			}
		}
		i++;
	}
	return n;
}

/* Exactly one site in FN: it, or a zeroed site (addr NULL) after a message. */
static __attribute__((unused)) struct ts_site ts_one_site(const void *fn, const char *name)
{
	struct ts_site s[4];
	int n = ts_find_sites(fn, s, 4);
	if (n != 1) {
		fprintf(stderr, "sites.h: check failed: %s has %d thunk sites, want exactly 1\n", name, n);
		memset(&s[0], 0, sizeof s[0]);
	}
	return s[0];
}

/* C (24 bytes read) is a site's cell: cmp r64, slot(%rip); nop3; je rel32; nop3; jmp rel32 (src/stub.c). */
static __attribute__((unused)) int ts_is_cell(const unsigned char *c)
{
	return (c[0] == 0x48 || c[0] == 0x4c) && c[1] == 0x3b && c[10] == 0x0f && c[11] == 0x84 &&
	       c[19] == 0xe9;
}

/*
 * A cell (ABI 3, src/stub.c) at D, from its first bytes C (at least 32).
 * Two layouts are recognised, as t_site_dest (common.h) follows them:
 *   - "jmp cell": the site branches to an e9 whose rel32 is 4-byte aligned;
 *     the cell's jmp is the destination;
 *   - "compare cell": 8-aligned, cmp slot(%rip),%R; nop3; je rel32 (at +10);
 *     nop3; jmp rel32 (at +19).  The slot is wherever the cmp's displacement
 *     says (the runtime keeps slots apart from the code).  The jmp is the
 *     destination; the compare is armed when the slot holds anything but
 *     the cell's address + 24 (the disarmed value).
 * Returns the cell's jmp destination and sets *ARMED (if not NULL) to the
 * compare's je destination when armed (else NULL); NULL if D is no cell.
 */
static __attribute__((unused)) const unsigned char *ts_cell_follow(const unsigned char *d,
								    const unsigned char *c,
								    const unsigned char **armed)
{
	int32_t rel;
	if (armed)
		*armed = NULL;
	if (((uintptr_t)d & 7) == 0 && (c[0] == 0x48 || c[0] == 0x4c) && c[1] == 0x3b &&
	    c[10] == 0x0f && c[11] == 0x84 && c[19] == 0xe9) {
		uint64_t slot = (uint64_t)(uintptr_t)(d + 24);
		memcpy(&rel, c + 3, 4);
		if (armed && ts_read(d + 7 + rel, &slot, 8) == 0 && slot != (uint64_t)(uintptr_t)(d + 24)) {
			memcpy(&rel, c + 12, 4);
			*armed = d + 16 + rel;
		}
		memcpy(&rel, c + 20, 4);
		return d + 24 + rel;
	}
	if (c[0] == 0xe9 && ((uintptr_t)(d + 1) & 3) == 0) {
		memcpy(&rel, c + 1, 4);
		return d + 5 + rel;
	}
	return NULL;
}

/*
 * Where SITE goes: its branch, followed through its cell if any (as
 * t_site_dest), every read fault-safe.  *CELL gets the cell or NULL,
 * *ARMED the destination of the cell's armed compare or NULL.
 */
static __attribute__((unused)) const unsigned char *ts_dest2(const void *site,
							      const unsigned char **cell,
							      const unsigned char **armed)
{
	unsigned char b[6];
	const unsigned char *p = (const unsigned char *)site, *d = NULL;
	if (cell)
		*cell = NULL;
	if (armed)
		*armed = NULL;
	if (ts_read(p, b, 6) < 0)
		return NULL;
	int32_t rel;
	if (b[0] == 0xe8 || b[0] == 0xe9) {
		memcpy(&rel, b + 1, 4);
		d = p + 5 + rel;
	} else if (b[0] == 0x0f && (b[1] & 0xf0) == 0x80) {
		memcpy(&rel, b + 2, 4);
		d = p + 6 + rel;
	} else {
		return NULL;
	}
	unsigned char c[32];
	if (ts_read(d, c, sizeof c) < 0)
		return NULL;
	const unsigned char *j = ts_cell_follow(d, c, armed);
	if (j) {
		if (cell)
			*cell = d;
		return j;
	}
	return d;
}

static __attribute__((unused)) const unsigned char *ts_dest(const void *site, const unsigned char **cell)
{
	return ts_dest2(site, cell, NULL);
}

/*
 * ADDR lies in a stub arena: a mapping whose name is the runtime's memfd
 * ("relpoline-arena") or whose first bytes are the arena signature.
 */
static __attribute__((unused)) int ts_in_arena(const void *addr)
{
	uintptr_t a = (uintptr_t)addr;
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int yes = 0;
	while (f && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		char perms[8] = "";
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || a < lo || a >= hi)
			continue;
		char sig[16];
		yes = strstr(line, "relpoline-arena") != NULL ||
		      (ts_read((void *)lo, sig, 15) == 0 && memcmp(sig, "RELPOLINE ARENA", 15) == 0);
		break;
	}
	if (f)
		fclose(f);
	return yes;
}

/* DEST starts a stub of SITE: "RPLS" header naming SITE 16 bytes before, then cmp r64, m64. */
static __attribute__((unused)) int ts_stub_header_for(const void *dest, const void *site)
{
	unsigned char h[18];
	if (!dest || ts_read((const char *)dest - 16, h, 18) < 0)
		return 0;
	uint64_t named;
	memcpy(&named, h + 8, 8);
	/* A compare chain, or (when the cell's own compare holds the one hot target) the miss path alone. */
	return memcmp(h, "RPLS", 4) == 0 && named == (uint64_t)(uintptr_t)site &&
	       (((h[16] & 0xfb) == 0x48 && h[17] == 0x3b) || h[16] == 0x68);
}

static __attribute__((unused)) int ts_is_stub_for(const void *dest, const void *site)
{
	return ts_stub_header_for(dest, site) && ts_in_arena(dest);
}

/*
 * The kind of stub DEST starts for SITE, from the header 16 bytes before
 * it (src/stub.c): 'c' a compare chain ("RPLS", as ts_stub_header_for),
 * 't' a compare tree ("RPLT" naming SITE, starting with cmp r64, m64),
 * 0 neither.  *CODE and *TARGETS (if not NULL) get the header's code
 * bytes and target count.  Fault-safe, no arena check.
 */
static __attribute__((unused)) int ts_stub_kind(const void *dest, const void *site, unsigned *code,
						 unsigned *targets)
{
	unsigned char h[18];
	if (!dest || ts_read((const char *)dest - 16, h, 18) < 0)
		return 0;
	uint64_t named;
	uint16_t c, t;
	memcpy(&c, h + 4, 2);
	memcpy(&t, h + 6, 2);
	memcpy(&named, h + 8, 8);
	if (named != (uint64_t)(uintptr_t)site)
		return 0;
	if (code)
		*code = c;
	if (targets)
		*targets = t;
	if (ts_stub_header_for(dest, site))
		return 'c';
	if (memcmp(h, "RPLT", 4) == 0 && (h[16] & 0xfb) == 0x48 && h[17] == 0x3b)
		return 't';
	return 0;
}

#endif
