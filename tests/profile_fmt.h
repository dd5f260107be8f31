/*
 * The saved-profile format as docs/design.md ("Saved profiles") states it,
 * read and written by the tests on their own (not src/runtime/profile.c's
 * code): a second reading of the spec, so that a runtime that drifts from
 * it fails here.  Little-endian, every length a multiple of 8:
 *
 *   header   64  "RPLPROF\0", u32 version 1, u32 header size 64, u64 file
 *                size, u32 ids, u32 sites, u32 targets, 28 zero bytes
 *   ids      72  each: u8 kind (1 build-id, 2 text hash), u8 length, 6 zero
 *                bytes, 64 bytes of id (zero past the length)
 *   sites    16  each, by increasing offset: u32 offset from the module
 *                base, u8 kind (0 call, 1 jmp, 2 jcc), u8 register (frame
 *                index), u8 stub (1 chain, 2 tree), u8 0, u16 targets
 *                (1..256), u16 unpredictability (x 65535), u16 targets it
 *                was learned with, u16 0
 *   targets  16  each, site after site: u32 id index, u32 weight (calls per
 *                second, >= 1), u64 offset from that object's load bias
 *   checksum  8  word hash of everything before it
 */
#ifndef RP_TEST_PROFILE_FMT_H
#define RP_TEST_PROFILE_FMT_H

#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TPF_HDR 64
#define TPF_ID 72
#define TPF_SITE 16
#define TPF_TARGET 16

struct tpf {
	uint8_t *b;
	size_t size;
	uint32_t nids, nsites, ntargets;
	uint8_t *ids, *sites, *targets;
};

static uint64_t tpf_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}
static uint32_t tpf_le32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t tpf_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void tpf_set32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i); }
static void tpf_set64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> 8 * i); }

/* The spec's word hash (seed mixed with the length; per word: xor, multiply, xorshift; avalanche). */
static uint64_t tpf_hash(const uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t h = seed ^ (n * 0xc2b2ae3d27d4eb4full);
	for (size_t i = 0; i < n; i += 8) {
		uint8_t w[8] = { 0 };
		memcpy(w, p + i, n - i < 8 ? n - i : 8);
		h = (h ^ tpf_le64(w)) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	h ^= h >> 32;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}
#define TPF_SEED 0x52504c50524f4631ull

static void tpf_reseal(struct tpf *f)
{
	tpf_set64(f->b + f->size - 8, tpf_hash(f->b, f->size - 8, TPF_SEED));
}

static int tpf_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Parse F->b (F->size bytes) by the spec; NULL if valid, else why not. */
static const char *tpf_parse(struct tpf *f)
{
	const uint8_t *b = f->b;
	if (f->size < TPF_HDR + TPF_ID + 8 || f->size % 8)
		return "size";
	if (memcmp(b, "RPLPROF\0", 8) || tpf_le32(b + 8) != 1 || tpf_le32(b + 12) != 64 ||
	    tpf_le64(b + 16) != f->size || !tpf_zero(b + 36, 28))
		return "header";
	f->nids = tpf_le32(b + 24);
	f->nsites = tpf_le32(b + 28);
	f->ntargets = tpf_le32(b + 32);
	if (!f->nids || (uint64_t)f->nids * TPF_ID + (uint64_t)f->nsites * TPF_SITE +
				(uint64_t)f->ntargets * TPF_TARGET + TPF_HDR + 8 != f->size)
		return "counts";
	if (tpf_hash(b, f->size - 8, TPF_SEED) != tpf_le64(b + f->size - 8))
		return "checksum";
	f->ids = f->b + TPF_HDR;
	f->sites = f->ids + (size_t)f->nids * TPF_ID;
	f->targets = f->sites + (size_t)f->nsites * TPF_SITE;
	for (uint32_t i = 0; i < f->nids; i++) {
		const uint8_t *e = f->ids + (size_t)i * TPF_ID;
		if ((e[0] != 1 && e[0] != 2) || !e[1] || e[1] > 64 || !tpf_zero(e + 2, 6) ||
		    !tpf_zero(e + 8 + e[1], 64 - e[1]))
			return "id entry";
	}
	uint64_t t = 0;
	for (uint32_t i = 0; i < f->nsites; i++) {
		const uint8_t *s = f->sites + (size_t)i * TPF_SITE;
		uint16_t n = tpf_le16(s + 8);
		if (i && tpf_le32(s) <= tpf_le32(s - TPF_SITE))
			return "site order";
		if (s[4] > 2 || s[5] > 14 || (s[6] != 1 && s[6] != 2) || s[7] || tpf_le16(s + 14) || !n || n > 256)
			return "site record";
		for (uint32_t k = 0; k < n; k++) {
			const uint8_t *x = f->targets + (t + k) * TPF_TARGET;
			if (t + k >= f->ntargets || tpf_le32(x) >= f->nids || !tpf_le32(x + 4))
				return "target record";
		}
		t += n;
	}
	return t == f->ntargets ? NULL : "targets left over";
}

/* Read and parse PATH; NULL if valid, else why not (the bytes stay in F when read). */
static const char *tpf_read(const char *path, struct tpf *f)
{
	memset(f, 0, sizeof(*f));
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return "cannot open";
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	f->b = malloc(n > 0 ? (size_t)n : 1);
	f->size = fread(f->b, 1, n > 0 ? (size_t)n : 0, fp);
	fclose(fp);
	return tpf_parse(f);
}

static int tpf_write(const char *path, const uint8_t *b, size_t n)
{
	FILE *fp = fopen(path, "wb");
	if (!fp)
		return -1;
	size_t w = fwrite(b, 1, n, fp);
	return fclose(fp) == 0 && w == n ? 0 : -1;
}

/* Hex of the GNU build-id of the loaded object whose name contains WHAT ("" = the executable). */
struct tpf_bid { const char *what; char hex[140]; };

static int tpf_bid_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct tpf_bid *a = arg;
	(void)size;
	const char *name = info->dlpi_name ? info->dlpi_name : "";
	if (a->what[0] ? !strstr(name, a->what) : name[0] != 0)
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
		size_t al = ph->p_align == 8 ? 8 : 4;
		while (p + 12 <= end) {
			uint32_t nsz = tpf_le32(p), dsz = tpf_le32(p + 4), type = tpf_le32(p + 8);
			const uint8_t *desc = p + 12 + ((nsz + al - 1) & ~(al - 1));
			if (type == NT_GNU_BUILD_ID && nsz == 4 && !memcmp(p + 12, "GNU", 4)) {
				for (uint32_t k = 0; k < dsz && k < 64; k++)
					sprintf(a->hex + 2 * k, "%02x", desc[k]);
				return 1;
			}
			p = desc + ((dsz + al - 1) & ~(al - 1));
		}
	}
	return 1;
}

/* "" if the object has no build-id (or is not loaded). */
static const char *tpf_build_id(const char *what, char *hex)
{
	struct tpf_bid a = { what, "" };
	dl_iterate_phdr(tpf_bid_cb, &a);
	strcpy(hex, a.hex);
	return hex;
}

#endif
