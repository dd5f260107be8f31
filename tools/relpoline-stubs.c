/*
 * relpoline-stubs PID [--check]: list the stubs of a running process.
 *
 * Finds the read+execute views of relpoline arenas in /proc/PID/maps
 * (memfd "relpoline-arena", or any executable mapping that starts with the
 * arena signature), skips the block of per-site cells ("RPLC" header, u32
 * sites, 48 bytes each, then their 8-byte slots), walks the stub headers
 * ("RPLS" for a chain, "RPLT" for a compare tree; u16 code bytes, u16
 * targets, u64 site) and disassembles each stub with Capstone.  A stub
 * with no target is the miss path alone: its site's cell compares the one
 * hot target itself.  --check exits 1 unless every stub decodes as the
 * expected shape: a chain is (cmp reg, [rip+d]; je rel32)* push imm32;
 * jmp rel32; a tree is nodes of cmp reg, [rip+d]; je rel32 followed by
 * jb/ja/jmp, one je per target, ending in the same push; jmp.
 */
#include <capstone/capstone.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARENA_MAGIC "RELPOLINE ARENA"

/* List the N decoded instructions if PRINT, then free them. */
static void print_free(cs_insn *insn, size_t n, int print)
{
	if (print)
		for (size_t j = 0; j < n; j++)
			printf("    %" PRIx64 ":  %-6s %s\n", insn[j].address, insn[j].mnemonic, insn[j].op_str);
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

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: relpoline-stubs PID [--check]\n");
		return 2;
	}
	int check = argc > 2 && !strcmp(argv[2], "--check");
	char path[64];
	snprintf(path, sizeof(path), "/proc/%s/maps", argv[1]);
	FILE *maps = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%s/mem", argv[1]);
	int mem = open(path, O_RDONLY);
	if (!maps || mem < 0) {
		perror(argv[1]);
		return 2;
	}
	csh cs;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return 2;
	char line[1024];
	int arenas = 0, stubs = 0, bad = 0;
	while (fgets(line, sizeof(line), maps)) {
		uint64_t lo, hi;
		char perms[8];
		if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &lo, &hi, perms) != 3 || perms[2] != 'x')
			continue;
		char magic[sizeof(ARENA_MAGIC)];
		if (pread(mem, magic, sizeof(magic), (off_t)lo) != (ssize_t)sizeof(magic) ||
		    memcmp(magic, ARENA_MAGIC, sizeof(magic)))
			continue;
		arenas++;
		size_t size = hi - lo;
		uint8_t *buf = malloc(size);
		if (!buf || pread(mem, buf, size, (off_t)lo) != (ssize_t)size) {
			free(buf);
			continue;
		}
		printf("arena %" PRIx64 "-%" PRIx64 "\n", lo, hi);
		for (size_t off = 64; off + 16 <= size; off += 16) {
			uint32_t m, sz;
			uint64_t site;
			memcpy(&m, buf + off, 4);
			if (m == 0x434c5052u) {   /* "RPLC": the cells of the module's sites */
				uint32_t ncells;
				memcpy(&ncells, buf + off + 4, 4);
				printf("  cells %" PRIx64 ": %u sites\n", lo + off + 16, ncells);
				off += (16 + 56 * (size_t)ncells + 15) / 16 * 16 - 16;
				continue;
			}
			bool tree = m == 0x544c5052u;   /* "RPLT" */
			if (m != 0x534c5052u && !tree)
				continue;
			uint16_t code, ntargets;
			memcpy(&code, buf + off + 4, 2);
			memcpy(&ntargets, buf + off + 6, 2);
			memcpy(&site, buf + off + 8, 8);
			sz = ((code + 7u) & ~7u) + 8u * ntargets;
			if (code == 0 || off + 16 + sz > size)
				continue;
			printf("  %s %" PRIx64 " for site %" PRIx64 " (%u targets%s)\n", tree ? "tree" : "stub",
			       lo + off + 16, site, ntargets, ntargets ? "" : ": the cell compares the hot one");
			int r = tree ? check_tree(cs, buf + off + 16, code, lo + off + 16, !check)
				     : check_stub(cs, buf + off + 16, code, lo + off + 16, !check);
			if (r != ntargets)
				bad++;
			stubs++;
			off += (16 + sz + 15) / 16 * 16 - 16;
		}
		free(buf);
	}
	printf("%d arenas, %d stubs, %d malformed\n", arenas, stubs, bad);
	cs_close(&cs);
	return bad ? 1 : 0;
}
