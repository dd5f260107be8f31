/*
 * relpoline-stubs PID [--check]: list the stubs of a running process.
 *
 * Finds the read+execute views of relpoline arenas in /proc/PID/maps
 * (memfd "relpoline-arena", or any executable mapping that starts with the
 * arena signature) and reads them all through /proc/PID/mem.  The block of
 * per-site cells ("RPLC" header, u32 sites, 48 bytes each, then their
 * 8-byte slots; src/runtime/stub.c) says where every site goes now: a
 * cell's jmp rel32 at C+19, its compare slot armed (not C+24) with the
 * target its je at C+10 goes to.  Then it walks the stub headers ("RPLS"
 * for a chain, "RPLT" for a compare tree; u16 code bytes, u16 targets, u64
 * site), disassembles each stub with Capstone and marks it live (some
 * cell's jmp goes to it) or retired (stubs are never reused: a replaced
 * one stays, unreached).  Sites and targets are named with libdwfl from
 * the process's own modules (symbol tables, or debug info where
 * installed).  A stub with no target is the miss path alone: its site's
 * cell compares the one hot target itself.  --check exits 1 unless every
 * stub decodes as the expected shape: a chain is (cmp reg, [rip+d]; je
 * rel32)* push imm32; jmp rel32; a tree is nodes of cmp reg, [rip+d]; je
 * rel32 followed by jb/ja/jmp, one je per target, ending in the same
 * push; jmp.  This is a separate process, so it may use malloc, stdio and
 * elfutils freely, unlike the runtime.
 */
#include <capstone/capstone.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define ARENA_MAGIC "RELPOLINE ARENA"
#define CELLS_MAGIC 0x434c5052u   /* "RPLC" */
#define CHAIN_MAGIC 0x534c5052u   /* "RPLS" */
#define TREE_MAGIC 0x544c5052u    /* "RPLT" */
#define CELL_SIZE 48
#define CELL_JE 10
#define CELL_JMP 19
#define CELL_NEVER 24

struct arena {
	uint64_t lo, hi;
	uint8_t *buf;
};

struct cell {
	uint64_t dest;    /* where its jmp goes now */
	uint64_t armed;   /* where its je sends the slot's target, 0 if the slot is disarmed */
	uint64_t slot;    /* the target its compare holds (when armed) */
};

static int mem = -1;
static Dwfl *dwfl;

/* ---- symbols ---- */

static Dwfl *dwfl_for(pid_t pid)
{
	static char *debuginfo_path;
	static const Dwfl_Callbacks cb = {
		.find_elf = dwfl_linux_proc_find_elf,
		.find_debuginfo = dwfl_standard_find_debuginfo,
		.debuginfo_path = &debuginfo_path,
	};
	Dwfl *d = dwfl_begin(&cb);
	if (!d)
		return NULL;
	if (dwfl_linux_proc_report(d, pid) != 0 || dwfl_report_end(d, NULL, NULL) != 0) {
		dwfl_end(d);
		return NULL;
	}
	return d;
}

static const char *base_of(const char *path)
{
	const char *b = strrchr(path, '/');
	return b && b[1] ? b + 1 : path;
}

/* ADDR as "function+0xOFF (module)", "module+0xOFF" or "0xADDR". */
static const char *sym(uint64_t addr, char *buf, size_t len)
{
	Dwfl_Module *m = dwfl ? dwfl_addrmodule(dwfl, addr) : NULL;
	if (!m) {
		snprintf(buf, len, "%#" PRIx64, addr);
		return buf;
	}
	Dwarf_Addr start = 0;
	const char *mname = dwfl_module_info(m, NULL, &start, NULL, NULL, NULL, NULL, NULL);
	mname = mname ? base_of(mname) : "?";
	GElf_Off off = 0;
	GElf_Sym s;
	const char *name = dwfl_module_addrinfo(m, addr, &off, &s, NULL, NULL, NULL);
	if (name && off)
		snprintf(buf, len, "%s+%#" PRIx64 " (%s)", name, (uint64_t)off, mname);
	else if (name)
		snprintf(buf, len, "%s (%s)", name, mname);
	else
		snprintf(buf, len, "%s+%#" PRIx64, mname, addr - start);
	return buf;
}

/* ---- decoding ---- */

static const char *sym(uint64_t addr, char *buf, size_t len);

/* List the N decoded instructions if PRINT (direct branches with their destination's name), then free them. */
static void print_free(cs_insn *insn, size_t n, int print)
{
	char name[512];
	for (size_t j = 0; print && j < n; j++) {
		printf("    %" PRIx64 ":  %-6s %s", insn[j].address, insn[j].mnemonic, insn[j].op_str);
		if (insn[j].mnemonic[0] == 'j' && !strncmp(insn[j].op_str, "0x", 2))
			printf("  <%s>", sym(strtoull(insn[j].op_str, NULL, 16), name, sizeof(name)));
		printf("\n");
	}
	if (n)
		cs_free(insn, n);
}

static int check_stub(csh cs, const uint8_t *code, size_t len, uint64_t at, int print)
{
	cs_insn *insn;
	size_t n = cs_disasm(cs, code, len, at, 0, &insn);
	int ok = n >= 2, pairs = 0;	/* (cmp; je)* then push; jmp */
	size_t i = 0;
	for (; i + 1 < n && !strcmp(insn[i].mnemonic, "cmp"); i += 2) {
		if (strcmp(insn[i + 1].mnemonic, "je") || !strstr(insn[i].op_str, "[rip"))
			ok = 0;
		pairs++;
	}
	if (i + 2 != n || strcmp(insn[i].mnemonic, "push") || strcmp(insn[i + 1].mnemonic, "jmp"))
		ok = 0;
	print_free(insn, n, print);
	return ok ? pairs : -1;
}

/* A tree: every cmp reads a RIP slot and is followed by its je; only tree branches otherwise. */
static int check_tree(csh cs, const uint8_t *code, size_t len, uint64_t at, int print)
{
	cs_insn *insn;
	size_t n = cs_disasm(cs, code, len, at, 0, &insn);
	int ok = n >= 3, nodes = 0;
	size_t i = 0;
	for (; i + 2 < n; i++) {
		const char *m = insn[i].mnemonic;
		if (!strcmp(m, "cmp")) {
			if (strcmp(insn[i + 1].mnemonic, "je") || !strstr(insn[i].op_str, "[rip"))
				ok = 0;
			nodes++;
			i++;
		} else if (strcmp(m, "jb") && strcmp(m, "ja") && strcmp(m, "jmp")) {
			ok = 0;
		}
	}
	if (i + 2 != n || strcmp(insn[i].mnemonic, "push") || strcmp(insn[i + 1].mnemonic, "jmp"))
		ok = 0;
	print_free(insn, n, print);
	return ok ? nodes : -1;
}

static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static int32_t get32(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

/* ---- the arenas and their cells ---- */

static struct arena *arenas;
static size_t narenas;
static struct cell *cells;
static size_t ncells;

static int read_arenas(const char *pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/maps", pid);
	FILE *maps = fopen(path, "r");
	if (!maps)
		return -1;
	char line[1024];
	while (fgets(line, sizeof(line), maps)) {
		uint64_t lo, hi;
		char perms[8];
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &lo, &hi, perms) != 3 || perms[2] != 'x')
			continue;
		char magic[sizeof(ARENA_MAGIC)];
		if (pread(mem, magic, sizeof(magic), (off_t)lo) != (ssize_t)sizeof(magic) ||
		    memcmp(magic, ARENA_MAGIC, sizeof(magic)))
			continue;
		size_t size = hi - lo;
		uint8_t *buf = malloc(size);
		if (!buf || pread(mem, buf, size, (off_t)lo) != (ssize_t)size) {
			free(buf);
			continue;
		}
		struct arena *na = realloc(arenas, (narenas + 1) * sizeof(*na));
		if (!na) {
			free(buf);
			break;
		}
		arenas = na;
		arenas[narenas++] = (struct arena){ lo, hi, buf };
	}
	fclose(maps);
	return 0;
}

/* The cells of the block whose header is at offset OFF of A; the block's size. */
static size_t read_cells(const struct arena *a, size_t off)
{
	uint32_t n;
	memcpy(&n, a->buf + off + 4, 4);
	size_t size = a->hi - a->lo, first = off + 16;
	size_t bytes = (16 + (CELL_SIZE + 8) * (size_t)n + 15) / 16 * 16;
	if (first + (CELL_SIZE + 8) * (size_t)n > size)
		return 16;
	struct cell *nc = realloc(cells, (ncells + n) * sizeof(*nc));
	if (!nc)
		return bytes;
	cells = nc;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *c = a->buf + first + CELL_SIZE * (size_t)i;
		uint64_t at = a->lo + first + CELL_SIZE * (uint64_t)i;
		uint64_t slot = get64(a->buf + first + CELL_SIZE * (size_t)n + 8 * (size_t)i);
		struct cell *k = &cells[ncells++];
		k->dest = at + CELL_JMP + 5 + (int64_t)get32(c + CELL_JMP + 1);
		k->slot = slot;
		k->armed = slot == at + CELL_NEVER ? 0 : at + CELL_JE + 6 + (int64_t)get32(c + CELL_JE + 2);
	}
	return bytes;
}

static int by_dest(const void *a, const void *b)
{
	const struct cell *x = a, *y = b;
	return x->dest < y->dest ? -1 : x->dest > y->dest;
}

/* The cell whose jmp goes to ENTRY, or NULL: the stub there is retired. */
static const struct cell *cell_to(uint64_t entry)
{
	struct cell key = { .dest = entry };
	return bsearch(&key, cells, ncells, sizeof(*cells), by_dest);
}

static const char *site_kind(uint64_t site)
{
	uint8_t b[2];
	if (pread(mem, b, 2, (off_t)site) != 2)
		return "?";
	return b[0] == 0xe8 ? "call" : b[0] == 0xe9 ? "jmp" : b[0] == 0x0f ? "jcc" : "?";
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: relpoline-stubs PID [--check]\n");
		return 2;
	}
	int check = argc > 2 && !strcmp(argv[2], "--check");
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/mem", argv[1]);
	mem = open(path, O_RDONLY);
	if (mem < 0 || read_arenas(argv[1]) < 0) {
		perror(argv[1]);
		return 2;
	}
	csh cs;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return 2;
	dwfl = dwfl_for((pid_t)atoi(argv[1]));
	if (!dwfl)
		fprintf(stderr, "relpoline-stubs: no symbols: %s\n", dwfl_errmsg(-1));

	/* Every cell first: a stub of one arena is live if its site's cell jumps to it. */
	for (size_t a = 0; a < narenas; a++) {
		size_t size = arenas[a].hi - arenas[a].lo;
		for (size_t off = 64; off + 16 <= size; off += 16) {
			uint32_t m;
			memcpy(&m, arenas[a].buf + off, 4);
			if (m == CELLS_MAGIC)
				off += read_cells(&arenas[a], off) - 16;
		}
	}
	qsort(cells, ncells, sizeof(*cells), by_dest);

	int stubs = 0, live = 0, bad = 0;
	char s1[512], s2[512];
	for (size_t a = 0; a < narenas; a++) {
		const struct arena *ar = &arenas[a];
		const uint8_t *buf = ar->buf;
		size_t size = ar->hi - ar->lo;
		printf("arena %" PRIx64 "-%" PRIx64 "\n", ar->lo, ar->hi);
		for (size_t off = 64; off + 16 <= size; off += 16) {
			uint32_t m;
			memcpy(&m, buf + off, 4);
			if (m == CELLS_MAGIC) {
				uint32_t n;
				memcpy(&n, buf + off + 4, 4);
				printf("  cells %" PRIx64 ": %u sites\n", ar->lo + off + 16, n);
				off += (16 + (CELL_SIZE + 8) * (size_t)n + 15) / 16 * 16 - 16;
				continue;
			}
			bool tree = m == TREE_MAGIC;
			if (m != CHAIN_MAGIC && !tree)
				continue;
			uint16_t code, ntargets;
			memcpy(&code, buf + off + 4, 2);
			memcpy(&ntargets, buf + off + 6, 2);
			uint64_t site = get64(buf + off + 8), entry = ar->lo + off + 16;
			size_t slots = (code + 7u) & ~7u, sz = slots + 8u * ntargets;
			if (code == 0 || off + 16 + sz > size)
				continue;
			const struct cell *c = cell_to(entry);
			printf("  %s %" PRIx64 " %s: site %" PRIx64 " %s, %s\n", tree ? "tree" : "chain", entry,
			       c ? "live" : "retired", site, sym(site, s1, sizeof(s1)), site_kind(site));
			if (c && c->armed)
				printf("    the cell compares %s\n", sym(c->armed, s1, sizeof(s1)));
			printf("    %u target%s%s", ntargets, ntargets == 1 ? "" : "s",
			       ntargets ? ":" : " (the cell compares the hot one)");
			for (unsigned k = 0; k < ntargets; k++)
				printf("%s %s", k ? "," : "", sym(get64(buf + off + 16 + slots + 8 * k), s2, sizeof(s2)));
			printf("\n");
			int r = tree ? check_tree(cs, buf + off + 16, code, entry, !check)
				     : check_stub(cs, buf + off + 16, code, entry, !check);
			if (r != ntargets)
				bad++;
			stubs++;
			live += c != NULL;
			off += (16 + sz + 15) / 16 * 16 - 16;
		}
	}
	printf("%zu arenas, %d stubs (%d live, %d retired), %d malformed\n", narenas, stubs, live,
	       stubs - live, bad);
	cs_close(&cs);
	if (dwfl)
		dwfl_end(dwfl);
	return bad ? 1 : 0;
}
