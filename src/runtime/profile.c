/*
 * Saved profiles: warm start for short-lived processes (RELPOLINE_PROFILE).
 *
 * A process that lives a few milliseconds spends its whole life on the
 * learning path: its sites would be promoted one epoch after their first
 * call, and it has exited by then.  So the runtime writes what it learned -
 * per module, its promoted sites and their stubs' targets - and the next
 * process of the same build promotes those sites as its module arrives,
 * before the module's code runs, its cells set straight to their stubs.
 *
 * Trust: none is needed for correctness.  A stub compares the live
 * register with its targets and sends anything else to the fallback, so a
 * wrong, stale or hostile profile can only cost misses (which relearn the
 * site as usual).  Still, every byte of a file is validated before any of
 * it is used; a file that fails gets one warning per process and is
 * ignored.  What a valid file says is then checked against the process:
 * a site offset that is not one of the module's sites, of another kind or
 * register, or a target outside the executable segments of every loaded
 * object is skipped without a word.
 *
 * One file per module, named by its identity: its GNU build-id (from the
 * PT_NOTE segments in memory), or, for a module linked without one, a
 * hash of its executable segments as they are in its file (memory no
 * longer holds them: sites are rewritten to cells).  Targets are stored as
 * (object identity, offset from the object's load bias), so a target in a
 * library survives ASLR and a library another run loaded elsewhere.
 *
 * Writers never leave a torn file: the merged result goes to a temporary
 * file made with O_EXCL in the same directory, then rename(2) replaces
 * the old one.  Merging is a union per site; the newest run wins where both
 * name a site, and a site this run decided no stub pays for is dropped.
 * Writers of one file take turns: read, merge, write and rename happen
 * under flock(LOCK_EX) on DIR/.NAME.lock (lock_file), so each merges what
 * the one before it wrote and no process's sites are lost.  The lock is
 * polled, at most LOCK_WAIT_NS (200 ms) per save; a lock still held then
 * (its holder stopped) is done without at exit and dlclose (the file stays
 * whole; only that save and the holder's may then lose sites to each
 * other), and put off to a later period by the periodic save.  Readers
 * take no lock.  The format is at the end of docs/design.md ("Saved
 * profiles"), and in the comments of pf_* below.
 *
 * When: loading in rp_profile_arrive (lifecycle.c, the module's
 * constructor); saving when a module leaves (before the sites that jump
 * into it go back to learning), at exit (runtime.c), and every
 * PROFILE_SAVE_S from the epochs (runtime.c) for processes that never exit.
 * Everything runs under rp_lock, on whatever thread holds it (the worker,
 * an application thread's inline epoch on the private stack, a
 * constructor, exit): memory from alloc.c, no stdio, no descriptor kept.
 *
 * dl_iterate_phdr is called under rp_lock.  glibc takes its
 * dl_load_write_lock there, which the loader holds only while it edits its
 * list of objects, never while it runs constructors or destructors, and
 * the lock is recursive: an application thread inside a dl_iterate_phdr
 * callback that runs an inline epoch takes it again.  So rp_lock is never
 * awaited by a thread that holds it.
 */
#include <errno.h>
#include <fcntl.h>
#include <elf.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the profile format is little-endian");

/* ---- the file format (docs/design.md, "Saved profiles") ---- */

#define PF_MAGIC "RPLPROF\0"
#define PF_VERSION 1
#define PF_HDR 64          /* magic, version, header size, file size, counts, reserved */
#define PF_ID 72           /* u8 kind, u8 len, 6 zero bytes, 64 bytes of id (zero past len) */
#define PF_SITE 16
#define PF_TARGET 16
#define PF_SUM 8           /* trailer: checksum of everything before it */
#define PF_MAX_IDS 1024   /* the module and the objects its stubs jump into */
#define PF_MAX_BYTES (16u << 20)   /* about a million targets */
enum { PF_ID_BUILD = 1, PF_ID_TEXT = 2 };

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/*
 * Word hash: every 8-byte little-endian word W of N bytes (the last one
 * zero-padded) goes through h = (h ^ W) * K1; h ^= h >> 29, from a seed
 * mixed with N; then a final avalanche.  Each step is a bijection of h, so
 * any one changed word changes the result.  The checksum of a file is this
 * with seed PF_SEED over all but its last 8 bytes.  Not a defence against
 * a forger (nothing needs one: see the top), only against torn and
 * damaged files.
 */
#define PF_SEED 0x52504c50524f4631ull
static uint64_t whash(const uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t h = seed ^ (n * 0xc2b2ae3d27d4eb4full);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		h = (h ^ get64(p + i)) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	if (i < n) {
		uint64_t w = 0;
		memcpy(&w, p + i, n - i);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	h ^= h >> 32;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

/* ---- warnings: at most one per process ---- */

static bool warned;

__attribute__((format(printf, 1, 2))) static void warn_once(const char *fmt, ...)
{
	if (warned)
		return;
	warned = true;
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rp_warn("%s", buf);
}

/* ---- the loaded objects and their identities ---- */

#define OBJ_XSEG 8
struct obj {
	uint64_t bias;                 /* dlpi_addr: what target offsets are relative to */
	uint64_t xlo[OBJ_XSEG], xhi[OBJ_XSEG];   /* executable PT_LOAD segments */
	unsigned nx;
	uint8_t kind, len;             /* PF_ID_*; len 0: no identity, its targets are not saved */
	uint8_t id[RP_IDENT_MAX];
};

static struct obj *objs;
static unsigned nobjs, objcap;
static unsigned long long objs_adds, objs_subs;
static bool objs_known;

/*
 * The GNU build-id of the object INFO describes, from its PT_NOTE segments
 * in memory.  Note layout (ELF gABI, "Note Section"; elf(5)): u32 namesz,
 * u32 descsz, u32 type, the name and then the descriptor, each padded to
 * the segment's alignment (4, or 8 for segments aligned so).  Only notes
 * inside a readable PT_LOAD segment are read.
 */
static bool build_id(const struct dl_phdr_info *info, struct obj *o)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		uint64_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
		bool mapped = false;
		for (int k = 0; k < info->dlpi_phnum && !mapped; k++) {
			const ElfW(Phdr) *l = &info->dlpi_phdr[k];
			uint64_t llo = info->dlpi_addr + l->p_vaddr;
			mapped = l->p_type == PT_LOAD && (l->p_flags & PF_R) && lo >= llo &&
				 hi <= llo + l->p_filesz && hi >= lo;
		}
		if (!mapped)
			continue;
		uint64_t al = ph->p_align == 8 ? 8 : 4;
		const uint8_t *p = (const uint8_t *)(uintptr_t)lo, *end = (const uint8_t *)(uintptr_t)hi;
		while ((size_t)(end - p) >= 12) {
			uint32_t namesz = get32(p), descsz = get32(p + 4), type = get32(p + 8);
			uint64_t nsz = (namesz + al - 1) & ~(al - 1), dsz = (descsz + al - 1) & ~(al - 1);
			if (nsz > (uint64_t)(end - p) - 12 || dsz > (uint64_t)(end - p) - 12 - nsz)
				break;
			const uint8_t *name = p + 12, *desc = name + nsz;
			if (type == NT_GNU_BUILD_ID && namesz == 4 && !memcmp(name, "GNU", 4) && descsz &&
			    descsz <= RP_IDENT_MAX) {
				o->kind = PF_ID_BUILD;
				o->len = (uint8_t)descsz;
				memcpy(o->id, desc, descsz);
				return true;
			}
			p = desc + dsz;
		}
	}
	return false;
}

/*
 * For an object without a build-id: a 16-byte hash of its executable
 * segments as they are in its file.  Its code in memory may have been
 * rewritten already (its sites go to cells), its file has not.
 */
static bool text_hash(const struct dl_phdr_info *info, struct obj *o)
{
	const char *path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe";
	RP_STAT_ADD(syscalls, 4);
	int fd = rp_fd_park(open(path, O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return false;
	struct stat st;
	void *f = MAP_FAILED;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
		f = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (f == MAP_FAILED)
		return false;
	uint64_t h1 = 0x74657874ull, h2 = ~0x74657874ull, size = (uint64_t)st.st_size;
	bool any = false;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || ph->p_offset > size ||
		    ph->p_filesz > size - ph->p_offset)
			continue;
		h1 = whash((const uint8_t *)f + ph->p_offset, ph->p_filesz, h1);
		h2 = whash((const uint8_t *)f + ph->p_offset, ph->p_filesz, h2 ^ h1);
		any = true;
	}
	munmap(f, (size_t)st.st_size);
	if (!any)
		return false;
	o->kind = PF_ID_TEXT;
	o->len = 16;
	put64(o->id, h1);
	put64(o->id + 8, h2);
	return true;
}

static int objs_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	unsigned *k = arg;
	bool counted = size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs);
	if (*k == 0 && counted && objs_known && info->dlpi_adds == objs_adds && info->dlpi_subs == objs_subs)
		return 1;   /* nothing loaded or unloaded since the last walk */
	if (*k == 0) {
		nobjs = 0;
		objs_known = counted;
		if (counted) {
			objs_adds = info->dlpi_adds;
			objs_subs = info->dlpi_subs;
		}
	}
	(*k)++;
	if (nobjs == objcap) {
		unsigned nc = objcap ? objcap * 2 : 32;
		struct obj *n = rp_realloc(objs, nc * sizeof(*n));
		if (!n) {
			objs_known = false;   /* walk again next time */
			return 1;
		}
		objs = n;
		objcap = nc;
	}
	struct obj *o = &objs[nobjs];
	memset(o, 0, sizeof(*o));
	o->bias = info->dlpi_addr;
	for (int i = 0; i < info->dlpi_phnum && o->nx < OBJ_XSEG; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && ph->p_memsz) {
			o->xlo[o->nx] = info->dlpi_addr + ph->p_vaddr;
			o->xhi[o->nx++] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
		}
	}
	if (!o->nx)
		return 0;
	if (!build_id(info, o) && !text_hash(info, o))
		o->len = 0;
	nobjs++;
	return 0;
}

/* The loaded objects (cached while the loader's add and remove counts stay the same). */
static void objs_refresh(void)
{
	unsigned k = 0;
	dl_iterate_phdr(objs_cb, &k);
}

static bool obj_has(const struct obj *o, uint64_t a)
{
	for (unsigned i = 0; i < o->nx; i++)
		if (a >= o->xlo[i] && a < o->xhi[i])
			return true;
	return false;
}

/* The object whose executable segments hold A, or NULL. */
static const struct obj *obj_of(uint64_t a)
{
	static unsigned last;
	if (last < nobjs && obj_has(&objs[last], a))
		return &objs[last];
	for (unsigned i = 0; i < nobjs; i++)
		if (obj_has(&objs[i], a)) {
			last = i;
			return &objs[i];
		}
	return NULL;
}

/* The loaded object whose identity is the file's id entry E (PF_ID bytes), or NULL. */
static const struct obj *obj_by_entry(const uint8_t *e)
{
	for (unsigned i = 0; i < nobjs; i++)
		if (objs[i].len && objs[i].kind == e[0] && objs[i].len == e[1] &&
		    !memcmp(objs[i].id, e + 8, e[1]))
			return &objs[i];
	return NULL;
}

/* M's identity, from the object that holds its text; false if it has none. */
static bool module_ident(struct rp_module *m)
{
	if (m->ident_len)
		return true;
	const struct obj *o = obj_of(m->text_lo);
	if (!o || !o->len)
		return false;
	m->ident_kind = o->kind;
	m->ident_len = o->len;
	memcpy(m->ident, o->id, o->len);
	return true;
}

/* ---- where the files are ---- */

static long dir_for_mode = -1;
static char dir_for_path[sizeof(rp_cfg.profile_path)];
static char dir[600];
static bool dir_ok;

/*
 * The profile directory for the current setting, resolved once per setting
 * (a relative DIR against the working directory of that moment: the
 * program may chdir later).  auto: $XDG_CACHE_HOME/relpoline if that is
 * an absolute path (the XDG base directory spec ignores relative ones),
 * else $HOME/.cache/relpoline.  Off in a set-user-ID or set-group-ID
 * process: its environment is not its user's to steer file writes with.
 */
static bool profile_dir(void)
{
	if (rp_cfg.profile == RP_PROFILE_OFF)
		return false;
	if (dir_for_mode == rp_cfg.profile && !strcmp(dir_for_path, rp_cfg.profile_path))
		return dir_ok;
	dir_for_mode = rp_cfg.profile;
	memcpy(dir_for_path, rp_cfg.profile_path, sizeof(dir_for_path));
	dir_ok = false;
	if (getauxval(AT_SECURE))
		return false;
	int n;
	if (rp_cfg.profile == RP_PROFILE_AUTO) {
		const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
		if (x && x[0] == '/')
			n = snprintf(dir, sizeof(dir), "%s/relpoline", x);
		else if (h && h[0] == '/')
			n = snprintf(dir, sizeof(dir), "%s/.cache/relpoline", h);
		else {
			warn_once("RELPOLINE_PROFILE=auto: neither XDG_CACHE_HOME nor HOME is an absolute "
				  "path: no profiles");
			return false;
		}
	} else if (rp_cfg.profile_path[0] == '/') {
		n = snprintf(dir, sizeof(dir), "%s", rp_cfg.profile_path);
	} else {
		char cwd[512];
		if (!getcwd(cwd, sizeof(cwd)))
			return false;
		n = snprintf(dir, sizeof(dir), "%s/%s", cwd, rp_cfg.profile_path);
	}
	if (n <= 0 || (size_t)n >= sizeof(dir) - 100)
		return false;
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = 0;
	dir_ok = true;
	return true;
}

/*
 * Is the directory there and usable?  CREATE: make it if it is missing,
 * mode 0700 (for auto, its parent too: $HOME/.cache may not exist yet).
 * auto also insists on a directory of our own that nobody else may write
 * into, for reading as for writing.
 */
static bool dir_check(bool create)
{
	struct stat st;
	RP_STAT_ADD(syscalls, 1);
	if (stat(dir, &st) != 0) {
		if (!create)
			return false;
		if (rp_cfg.profile == RP_PROFILE_AUTO) {
			char parent[sizeof(dir)];
			memcpy(parent, dir, sizeof(dir));
			char *slash = strrchr(parent, '/');
			if (slash && slash != parent) {
				*slash = 0;
				RP_STAT_ADD(syscalls, 1);
				mkdir(parent, 0700);
			}
		}
		RP_STAT_ADD(syscalls, 2);
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			warn_once("cannot create the profile directory %s: %s", dir, rp_strerror(errno));
			return false;
		}
		if (stat(dir, &st) != 0)
			return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		warn_once("RELPOLINE_PROFILE: %s is not a directory: no profiles", dir);
		return false;
	}
	if (rp_cfg.profile == RP_PROFILE_AUTO && (st.st_uid != geteuid() || (st.st_mode & 022))) {
		warn_once("RELPOLINE_PROFILE=auto: %s is not a directory of this user's alone: no profiles",
			  dir);
		return false;
	}
	return true;
}

/* The file of M: DIR/<build-id in hex>.rprof, or DIR/text-<hash in hex>.rprof. */
static void file_name(const struct rp_module *m, char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char id[2 * RP_IDENT_MAX + 8];
	size_t n = 0;
	if (m->ident_kind == PF_ID_TEXT) {
		memcpy(id, "text-", 5);
		n = 5;
	}
	for (unsigned i = 0; i < m->ident_len; i++) {
		id[n++] = hex[m->ident[i] >> 4];
		id[n++] = hex[m->ident[i] & 15];
	}
	id[n] = 0;
	snprintf(out, len, "%s/%s.rprof", dir, id);
}

/* The whole file at PATH in memory from rp_alloc, or NULL (*ERR: errno, or EFBIG). */
static uint8_t *read_file(const char *path, size_t *size, int *err)
{
	RP_STAT_ADD(syscalls, 4);
	/* O_NONBLOCK: a FIFO put in the directory must not hang the program (it then fails S_ISREG). */
	int fd = rp_fd_park(open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
	*err = fd < 0 ? errno : 0;
	if (fd < 0)
		return NULL;
	struct stat st;
	uint8_t *b = NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		*err = EINVAL;
	} else if (st.st_size > PF_MAX_BYTES) {
		*err = EFBIG;
	} else if ((b = rp_alloc((size_t)st.st_size + 1))) {
		size_t got = 0;
		for (;;) {
			ssize_t r = read(fd, b + got, (size_t)st.st_size + 1 - got);
			RP_STAT_ADD(syscalls, 1);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
			if (got > (size_t)st.st_size)
				break;   /* grew meanwhile: read what is there, the checks decide */
		}
		*size = got;
	} else {
		*err = ENOMEM;
	}
	close(fd);
	return b;
}

/* ---- validation ---- */

struct view {
	const uint8_t *ids, *sites, *targets;
	uint32_t nids, nsites, ntargets;
};

static bool zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * Every byte of the file B (SIZE bytes) against the format, and its first
 * id against M's identity.  NULL if valid (*V then describes it), else
 * what is wrong.
 */
static const char *validate(const uint8_t *b, size_t size, const struct rp_module *m, struct view *v)
{
	if (size < PF_HDR + PF_ID + PF_SUM || size % 8)
		return "truncated";
	if (memcmp(b, PF_MAGIC, 8))
		return "not a relpoline profile";
	if (get32(b + 8) != PF_VERSION)
		return "another format version";
	if (get32(b + 12) != PF_HDR || get64(b + 16) != size)
		return "truncated or extended";
	v->nids = get32(b + 24);
	v->nsites = get32(b + 28);
	v->ntargets = get32(b + 32);
	if (!zero(b + 36, PF_HDR - 36))
		return "reserved header bytes set";
	if (!v->nids || v->nids > PF_MAX_IDS ||
	    (uint64_t)v->nids * PF_ID + (uint64_t)v->nsites * PF_SITE + (uint64_t)v->ntargets * PF_TARGET !=
		    size - PF_HDR - PF_SUM)
		return "counts do not match the size";
	if (whash(b, size - PF_SUM, PF_SEED) != get64(b + size - PF_SUM))
		return "bad checksum";
	v->ids = b + PF_HDR;
	v->sites = v->ids + (size_t)v->nids * PF_ID;
	v->targets = v->sites + (size_t)v->nsites * PF_SITE;
	for (uint32_t i = 0; i < v->nids; i++) {
		const uint8_t *e = v->ids + (size_t)i * PF_ID;
		if ((e[0] != PF_ID_BUILD && e[0] != PF_ID_TEXT) || !e[1] || e[1] > RP_IDENT_MAX ||
		    (e[0] == PF_ID_TEXT && e[1] != 16) || !zero(e + 2, 6) || !zero(e + 8 + e[1], RP_IDENT_MAX - e[1]))
			return "bad module id";
		for (uint32_t j = 0; j < i; j++)
			if (!memcmp(e, v->ids + (size_t)j * PF_ID, PF_ID))
				return "a module id twice";
	}
	const uint8_t *me = v->ids;
	if (me[0] != m->ident_kind || me[1] != m->ident_len || memcmp(me + 8, m->ident, m->ident_len))
		return "another module's profile (build-id)";
	uint64_t t = 0;
	for (uint32_t i = 0; i < v->nsites; i++) {
		const uint8_t *s = v->sites + (size_t)i * PF_SITE;
		if (i && get32(s) <= get32(s - PF_SITE))
			return "sites out of order";
		uint16_t n = get16(s + 8);
		if (s[4] > RP_SK_JCC || s[5] >= RP_NREGS || (s[6] != RP_STUB_CHAIN && s[6] != RP_STUB_TREE) ||
		    s[7] || get16(s + 14) || !n || n > RP_MAX_TARGETS_LIMIT)
			return "bad site record";
		for (uint32_t k = 0; k < n; k++) {
			if (t + k >= v->ntargets)
				return "more targets than the file holds";
			const uint8_t *x = v->targets + (t + k) * PF_TARGET;
			if (get32(x) >= v->nids || !get32(x + 4))
				return "bad target record";
		}
		t += n;
	}
	if (t != v->ntargets)
		return "targets left over";
	return NULL;
}

/* ---- loading ---- */

static uint8_t site_kind(uint64_t addr)
{
	uint8_t b = *(const uint8_t *)(uintptr_t)addr;
	return b == 0xe8 ? RP_SK_CALL : b == 0xe9 ? RP_SK_JMP : RP_SK_JCC;
}

/*
 * Promote M's sites from M's saved profile, if there is one: at M's
 * arrival (its constructor, under rp_lock), after its cells exist and
 * before any of its code runs.  No site record is made: each promoted
 * site gets its stub and a 32-byte warm entry (internal.h), and its cell
 * is set straight to the stub (patch.c, step A').  A 10,000-site profile
 * thus costs a read, a validation and 10,000 stubs, not 10,000 records
 * and a sync pass over them.
 */
void rp_profile_arrive(struct rp_module *m)
{
	if (!rp_enabled || !m->nsites || !m->cells || !profile_dir())
		return;
	if (rp_cfg.profile == RP_PROFILE_AUTO && !dir_check(false))
		return;
	objs_refresh();
	if (!module_ident(m))
		return;
	char path[sizeof(dir) + 2 * RP_IDENT_MAX + 16];
	file_name(m, path, sizeof(path));
	size_t size = 0;
	int err;
	uint8_t *b = read_file(path, &size, &err);
	if (!b) {
		if (err != ENOENT) {
			warn_once("cannot read the profile %s: %s", path, rp_strerror(err));
			rp_stats.profile_rejected++;
		}
		return;
	}
	struct view v;
	const char *why = validate(b, size, m, &v);
	if (why) {
		warn_once("profile %s ignored: %s", path, why);
		rp_stats.profile_rejected++;
		rp_free(b);
		return;
	}
	rp_stats.profile_read++;
	const struct obj **map = rp_alloc(v.nids * sizeof(*map));
	uint64_t *t = rp_alloc(RP_MAX_TARGETS_LIMIT * sizeof(*t));
	double *r = rp_alloc(RP_MAX_TARGETS_LIMIT * sizeof(*r));
	/* A stub compares at most the targets its site had in the file (the cell's je among them). */
	m->warm = rp_alloc((v.nsites + 1) * sizeof(*m->warm));
	m->warm_t = rp_alloc((v.ntargets + 1) * sizeof(*m->warm_t));
	m->warm_r = rp_alloc((v.ntargets + 1) * sizeof(*m->warm_r));
	if (!map || !t || !r || !m->warm || !m->warm_t || !m->warm_r)
		goto drop;
	for (uint32_t j = 0; j < v.nids; j++)
		map[j] = obj_by_entry(v.ids + (size_t)j * PF_ID);   /* NULL: not loaded (yet) */
	size_t ti = 0, k = 0, nt = 0;
	uint32_t done = 0;
	for (uint32_t i = 0; i < v.nsites; i++) {
		const uint8_t *s = v.sites + (size_t)i * PF_SITE;
		unsigned ns = get16(s + 8), n = 0;
		const uint8_t *x = v.targets + ti * PF_TARGET;
		ti += ns;
		/* Both lists are sorted: one walk, no search per site. */
		uint64_t addr = m->base + get32(s);
		while (k < m->nsites && m->site_addr[k] < addr)
			k++;
		if (k == m->nsites || m->site_addr[k] != addr || m->site_reg[k] != s[5] || site_kind(addr) != s[4])
			continue;   /* not one of this module's sites as they are */
		for (unsigned j = 0; j < ns; j++, x += PF_TARGET) {
			const struct obj *o = map[get32(x)];
			uint64_t a = o ? o->bias + get64(x + 8) : 0;
			if (!o || !obj_has(o, a))
				continue;   /* its module is not loaded, or no code there */
			t[n] = a;
			r[n++] = get32(x + 4) * 0.001;   /* per second in the file, per ms here */
		}
		struct rp_warm *w = &m->warm[done];
		if (n && rp_policy_warm(m, k, t, r, n, s[6], get16(s + 10) / 65535.0, get16(s + 12), w,
					m->warm_t + nt, m->warm_r + nt)) {
			w->t = (uint32_t)nt;
			nt += w->n;
			done++;
		}
	}
	m->nwarm = m->warm_live = done;
	done = done ? (uint32_t)rp_patch_cells_warm(m) : 0;
	if (!done)
		goto drop;
	/* What was loaded counts as saved: an unchanged run writes nothing. */
	uint64_t sig = 0;
	for (uint32_t j = 0; j < m->nwarm; j++) {
		const struct rp_warm *w = &m->warm[j];
		sig += rp_site_sig(m->site_addr[w->k], 1, RP_SS_PROMOTED);
		rp_stub_count(&m->warm_counts, w->n, w->skind == RP_STUB_TREE, 1);
	}
	m->warm_sig = sig;
	m->prof_hash = sig;
	rp_stats.profile_sites += done;
	rp_policy_count_warm(m);
	rp_debug("module %s: %u sites promoted from %s", m->path, done, path);
	goto out;
drop:
	rp_module_warm_free(m);
out:
	rp_free(map);
	rp_free(t);
	rp_free(r);
	rp_free(b);
}

/* ---- what this process knows: a module's snapshot ---- */

struct tgt { const struct obj *o; uint64_t off; uint32_t weight; };
struct rec {
	uint32_t off;
	uint8_t kind, reg, skind;
	bool drop;                 /* this run decided no stub pays: remove from the file */
	uint16_t n, unpred, learned;
	struct tgt *t;             /* into struct snap's targets */
};
struct snap { struct rec *r; size_t n, cap; struct tgt *t; size_t nt, tcap; };

/* Sites of each module (index: m->id), gathered in one walk of the site map. */
struct bymod {
	struct rp_site **v[256];
	size_t n[256], cap[256];
	uint64_t sig[256];
	struct rp_module *mod[256];
	bool want[256], collect;
};

/* A site the profile speaks of: promoted, or pinned because no stub pays (dropped from the file). */
static bool saved(const struct rp_site *s)
{
	return (s->state == RP_SS_PROMOTED && s->ntargets) ||
	       (s->state == RP_SS_PINNED && (s->why == RP_WHY_COST || s->why == RP_WHY_COVERAGE));
}

/*
 * A site's share of its module's signature: the signature is the sum over
 * its saved sites, in any order, and changes whenever one of them gets a
 * new stub (versions), or leaves or joins the saved ones.  Equal
 * signatures: nothing to save, no sort, no file read.
 */
static uint64_t sig_of(const struct rp_site *s)
{
	return rp_site_sig(s->addr, s->versions, s->state);
}

/* First walk: each module's signature; second (COLLECT): the saved sites of the modules wanted. */
static void gather(struct rp_site *s, void *arg)
{
	struct bymod *b = arg;
	unsigned id = s->mod->id;
	if (!saved(s) || id >= 256)
		return;
	if (!b->collect) {
		b->sig[id] += sig_of(s);
		b->mod[id] = s->mod;
		return;
	}
	if (!b->want[id])
		return;
	if (b->n[id] == b->cap[id]) {
		size_t nc = b->cap[id] ? b->cap[id] * 2 : 64;
		struct rp_site **n = rp_realloc(b->v[id], nc * sizeof(*n));
		if (!n)
			return;
		b->v[id] = n;
		b->cap[id] = nc;
	}
	b->v[id][b->n[id]++] = s;
}

/* The first walk's share of M's live warm entries: each a saved site (promoted, one stub). */
static void gather_warm(struct rp_module *m, void *arg)
{
	struct bymod *b = arg;
	if (!m->warm_live || m->id >= 256)
		return;
	b->sig[m->id] += m->warm_sig;
	b->mod[m->id] = m;
}

static int by_site(const void *a, const void *b)
{
	const struct rp_site *x = *(struct rp_site *const *)a, *y = *(struct rp_site *const *)b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void snap_free(struct snap *p)
{
	rp_free(p->r);
	rp_free(p->t);
	memset(p, 0, sizeof(*p));
}

/*
 * The snapshot of M from its sites SV (N of them, in any order): promoted
 * sites with the targets their stubs compare (those in an object with an
 * identity), and tombstones for sites pinned because no stub pays.
 */
static bool snapshot(const struct rp_module *m, struct rp_site **sv, size_t n, struct snap *p)
{
	memset(p, 0, sizeof(*p));
	size_t nt = 0;
	for (size_t i = 0; i < n; i++)
		nt += sv[i]->state == RP_SS_PROMOTED ? sv[i]->ntargets : 0;
	p->r = rp_alloc((n + 1) * sizeof(*p->r));
	p->t = rp_alloc((nt + 1) * sizeof(*p->t));
	if (!p->r || !p->t) {
		snap_free(p);
		return false;
	}
	rp_sort(sv, n, sizeof(*sv), by_site);
	for (size_t i = 0; i < n; i++) {
		const struct rp_site *s = sv[i];
		struct rec *r = &p->r[p->n];
		memset(r, 0, sizeof(*r));
		r->off = (uint32_t)(s->addr - m->base);
		r->kind = s->kind;
		r->reg = s->reg;
		r->t = p->t + p->nt;
		if (s->state != RP_SS_PROMOTED) {
			r->drop = true;
			p->n++;
			continue;
		}
		r->skind = s->skind == RP_STUB_TREE ? RP_STUB_TREE : RP_STUB_CHAIN;
		double u = s->unpred < 0 ? 0 : s->unpred > 1 ? 1 : s->unpred;
		r->unpred = (uint16_t)(u * 65535 + 0.5);
		r->learned = (uint16_t)(s->learned_n > 65535 ? 65535 : s->learned_n);
		for (uint32_t k = 0; k < s->ntargets && r->n < RP_MAX_TARGETS_LIMIT; k++) {
			const struct obj *o = obj_of(s->targets[k]);
			if (!o || !o->len)
				continue;   /* generated code, or an object with no identity */
			double w = s->rates[k] * 1000 + 0.5;
			struct tgt *x = &r->t[r->n++];
			x->o = o;
			x->off = s->targets[k] - o->bias;
			x->weight = w < 1 ? 1 : w > 4e9 ? 4000000000u : (uint32_t)w;
		}
		if (!r->n)
			continue;
		p->nt += r->n;
		p->n++;
	}
	return true;
}

/* ---- merging and writing ---- */

struct out {
	uint8_t *ids;              /* PF_ID bytes each */
	uint32_t nids, idcap;
	uint8_t *sites, *targets;
	uint32_t nsites, ntargets, scap, tcap;
	bool oom;
};

static bool grow(uint8_t **p, uint32_t *cap, uint32_t need, size_t unit)
{
	if (need <= *cap)
		return true;
	uint32_t nc = *cap ? *cap : 64;
	while (nc < need)
		nc *= 2;
	uint8_t *n = rp_realloc(*p, (size_t)nc * unit);
	if (!n)
		return false;
	*p = n;
	*cap = nc;
	return true;
}

/* The index of id entry E (PF_ID bytes) in O's table, added if new; -1 when full. */
static long id_index(struct out *o, const uint8_t *e)
{
	for (uint32_t i = 0; i < o->nids; i++)
		if (!memcmp(o->ids + (size_t)i * PF_ID, e, PF_ID))
			return i;
	if (o->nids >= PF_MAX_IDS || !grow(&o->ids, &o->idcap, o->nids + 1, PF_ID)) {
		o->oom = true;
		return -1;
	}
	memcpy(o->ids + (size_t)o->nids * PF_ID, e, PF_ID);
	return o->nids++;
}

static void entry_of(uint8_t *e, uint8_t kind, uint8_t len, const uint8_t *id)
{
	memset(e, 0, PF_ID);
	e[0] = kind;
	e[1] = len;
	memcpy(e + 8, id, len);
}

/* Append a site record (16 bytes) to O; its N targets follow with out_target. */
static bool out_site(struct out *o, uint32_t off, uint8_t kind, uint8_t reg, uint8_t skind, uint16_t n,
		     uint16_t unpred, uint16_t learned)
{
	if (!grow(&o->sites, &o->scap, o->nsites + 1, PF_SITE) ||
	    !grow(&o->targets, &o->tcap, o->ntargets + n, PF_TARGET)) {
		o->oom = true;
		return false;
	}
	uint8_t *s = o->sites + (size_t)o->nsites++ * PF_SITE;
	memset(s, 0, PF_SITE);
	put32(s, off);
	s[4] = kind;
	s[5] = reg;
	s[6] = skind;
	put16(s + 8, n);
	put16(s + 10, unpred);
	put16(s + 12, learned);
	return true;
}

static void out_target(struct out *o, uint32_t mod, uint32_t weight, uint64_t off)
{
	uint8_t *x = o->targets + (size_t)o->ntargets++ * PF_TARGET;
	put32(x, mod);
	put32(x + 4, weight);
	put64(x + 8, off);
}

/* A site from the old file (V, at S with its targets at X) into O, its ids remapped. */
static void merge_old(struct out *o, const struct view *v, const uint8_t *s, const uint8_t *x)
{
	uint16_t n = get16(s + 8);
	if (!out_site(o, get32(s), s[4], s[5], s[6], n, get16(s + 10), get16(s + 12)))
		return;
	uint32_t kept = 0;
	for (uint16_t k = 0; k < n; k++, x += PF_TARGET) {
		long j = id_index(o, v->ids + (size_t)get32(x) * PF_ID);
		if (j >= 0) {
			out_target(o, (uint32_t)j, get32(x + 4), get64(x + 8));
			kept++;
		}
	}
	if (kept)
		put16(o->sites + (size_t)(o->nsites - 1) * PF_SITE + 8, (uint16_t)kept);
	else
		o->nsites--;
}

static void merge_new(struct out *o, const struct rec *r)
{
	if (r->drop || !out_site(o, r->off, r->kind, r->reg, r->skind, r->n, r->unpred, r->learned))
		return;
	uint32_t kept = 0;
	for (unsigned k = 0; k < r->n; k++) {
		uint8_t e[PF_ID];
		entry_of(e, r->t[k].o->kind, r->t[k].o->len, r->t[k].o->id);
		long j = id_index(o, e);
		if (j >= 0) {
			out_target(o, (uint32_t)j, r->t[k].weight, r->t[k].off);
			kept++;
		}
	}
	if (kept)
		put16(o->sites + (size_t)(o->nsites - 1) * PF_SITE + 8, (uint16_t)kept);
	else
		o->nsites--;
}

/* The file's bytes for O, from rp_alloc; *SIZE its length. */
static uint8_t *serialize(const struct out *o, size_t *size)
{
	size_t n = PF_HDR + (size_t)o->nids * PF_ID + (size_t)o->nsites * PF_SITE +
		   (size_t)o->ntargets * PF_TARGET + PF_SUM;
	uint8_t *b = rp_zalloc(n);
	if (!b)
		return NULL;
	memcpy(b, PF_MAGIC, 8);
	put32(b + 8, PF_VERSION);
	put32(b + 12, PF_HDR);
	put64(b + 16, n);
	put32(b + 24, o->nids);
	put32(b + 28, o->nsites);
	put32(b + 32, o->ntargets);
	uint8_t *p = b + PF_HDR;
	memcpy(p, o->ids, (size_t)o->nids * PF_ID);
	p += (size_t)o->nids * PF_ID;
	if (o->nsites)
		memcpy(p, o->sites, (size_t)o->nsites * PF_SITE);
	p += (size_t)o->nsites * PF_SITE;
	if (o->ntargets)
		memcpy(p, o->targets, (size_t)o->ntargets * PF_TARGET);
	put64(b + n - PF_SUM, whash(b, n - PF_SUM, PF_SEED));
	*size = n;
	return b;
}

/*
 * Write B (SIZE bytes) as PATH: a new file of our own in the same
 * directory (O_EXCL: a name no other writer has), then rename over PATH.
 * A reader sees the old file or the new one, never a part of either.
 */
static bool write_file(const char *path, const uint8_t *b, size_t size)
{
	static unsigned seq;
	char tmp[sizeof(dir) + 2 * RP_IDENT_MAX + 64];
	const char *base = strrchr(path, '/');
	int fd = -1;
	for (int tries = 0; tries < 8 && fd < 0; tries++) {
		snprintf(tmp, sizeof(tmp), "%.*s/.%s.%d.%u.tmp", (int)(base - path), path, base + 1,
			 (int)getpid(), seq++);
		RP_STAT_ADD(syscalls, 1);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		warn_once("cannot write a profile in %s: %s", dir, rp_strerror(errno));
		return false;
	}
	fd = rp_fd_park(fd);
	size_t done = 0;
	int err = 0;
	while (done < size) {
		RP_STAT_ADD(syscalls, 1);
		ssize_t w = write(fd, b + done, size - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			err = w < 0 ? errno : ENOSPC;
			break;
		}
		done += (size_t)w;
	}
	RP_STAT_ADD(syscalls, 2);
	if (close(fd) != 0 && !err)
		err = errno;
	if (!err && rename(tmp, path) != 0)
		err = errno;
	if (err) {
		RP_STAT_ADD(syscalls, 1);
		unlink(tmp);
		warn_once("cannot write the profile %s: %s", path, rp_strerror(err));
		return false;
	}
	return true;
}

/* ---- one writer of a file at a time ---- */

/* The longest one save waits for other processes' locks, over all its modules. */
#define LOCK_WAIT_NS 200000000ull
/* After a wait ran out, how long later saves only try once (see save_all). */
#define LOCK_GAVE_UP_NS 1000000000ull

static uint64_t lock_gave_up_ns;   /* when a wait last ran out; 0: never */

enum lock_result { LOCK_HELD, LOCK_BUSY, LOCK_NONE };

/*
 * Lock PATH against the other writers: flock(LOCK_EX) on DIR/.NAME.lock,
 * NAME being PATH's base name.  The lock is a file of its own, not PATH,
 * because rename(2) replaces PATH's inode while a writer holds it; the
 * lock file is never deleted (a writer could lock an inode that another
 * then unlinks, and a third create a new one: two holders).
 *
 * It is polled with LOCK_NB and short sleeps until DEADLINE (CLOCK_MONOTONIC
 * ns), never waited for in the kernel: a blocking flock could only be
 * interrupted with a signal, and the signals are the host's.  The kernel
 * drops a lock when its holder dies, but not when it is stopped (SIGSTOP,
 * a debugger), so the wait has a bound and the caller decides what a busy
 * lock means.
 *
 * O_RDONLY: flock needs no access mode, so a lock file another user made
 * in a shared directory (mode 0644, as the profiles) serves every writer.
 * O_NONBLOCK and O_NOCTTY: a FIFO or a device put there under that name
 * must not hang the program or become its terminal; it fails S_ISREG.
 *
 * LOCK_HELD: *FD (moved high, as every transient descriptor here) holds
 * the lock until it is closed.  While it is open, a fork from another
 * thread would share the lock with the child until the child execs or
 * exits (the same holds for every descriptor the runtime opens
 * briefly); the bound covers that too.  LOCK_BUSY: another holder until
 * DEADLINE.  LOCK_NONE: no lock can be had here (*ERR says why).
 */
static enum lock_result lock_file(const char *path, uint64_t deadline, int *fd, int *err)
{
	char lk[sizeof(dir) + 2 * RP_IDENT_MAX + 32];
	const char *base = strrchr(path, '/');
	snprintf(lk, sizeof(lk), "%.*s/.%s.lock", (int)(base - path), path, base + 1);
	RP_STAT_ADD(syscalls, 2);
	*fd = rp_fd_park(open(lk, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK, 0644));
	struct stat st;
	if (*fd < 0 || fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		*err = *fd < 0 ? errno : EINVAL;
		goto none;
	}
	uint64_t nap = 250000;   /* ns, doubled up to 4 ms: a save holds the lock well under 1 ms */
	for (;;) {
		RP_STAT_ADD(syscalls, 1);
		if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
			return LOCK_HELD;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			*err = errno;   /* ENOLCK, or a file system without flock */
			goto none;
		}
		uint64_t now = rp_now_ns();
		if (now >= deadline)
			break;
		uint64_t d = deadline - now < nap ? deadline - now : nap;
		struct timespec ts = { (time_t)(d / 1000000000u), (long)(d % 1000000000u) };
		RP_STAT_ADD(syscalls, 1);
		nanosleep(&ts, NULL);   /* EINTR: the clock decides */
		nap = nap < 4000000 ? nap * 2 : nap;
	}
	close(*fd);
	*fd = -1;
	return LOCK_BUSY;
none:
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	return LOCK_NONE;
}

/*
 * Does the old file's site S (targets at X) name the same stub as this
 * run's record R: kind, register, stub kind and the same targets?  Their
 * weights may differ: every run measures its own rates, and rewriting the
 * file for those alone would make every process a writer.
 */
static bool same_site(const struct view *v, const uint8_t *s, const uint8_t *x, const struct rec *r)
{
	if (r->drop || s[4] != r->kind || s[5] != r->reg || s[6] != r->skind || get16(s + 8) != r->n)
		return false;
	for (unsigned k = 0; k < r->n; k++) {
		bool found = false;
		for (unsigned j = 0; j < r->n && !found; j++) {
			const uint8_t *t = x + (size_t)j * PF_TARGET, *e = v->ids + (size_t)get32(t) * PF_ID;
			found = get64(t + 8) == r->t[k].off && e[0] == r->t[k].o->kind && e[1] == r->t[k].o->len &&
				!memcmp(e + 8, r->t[k].o->id, e[1]);
		}
		if (!found)
			return false;
	}
	return true;
}

/*
 * Save M's snapshot P: merged with the file as it is now (a union per
 * site, P winning where both have one and they differ), written only if
 * that changes the file.  True if the file now holds P.
 *
 * The read, the merge and the rename happen under the file's lock
 * (lock_file), so the file another writer renamed into place is the one
 * read here: no writer's sites are lost.  A lock still busy at DEADLINE:
 * with DEFER, nothing is written (false: the caller tries again later);
 * otherwise the save goes ahead without it, as a save did before locks
 * existed - the file stays whole, and only a writer that holds the lock
 * for that long (stopped) can lose this one's sites or have its own lost.
 */
static bool save_module(struct rp_module *m, const struct snap *p, uint64_t deadline, bool defer)
{
	char path[sizeof(dir) + 2 * RP_IDENT_MAX + 16];
	file_name(m, path, sizeof(path));
	int lfd, lerr = 0;
	uint64_t t0 = rp_now_ns();
	enum lock_result lr = lock_file(path, deadline, &lfd, &lerr);
	if (lr == LOCK_BUSY && defer) {
		rp_debug("profile %s: its lock is held by another process: saved later", path);
		return false;
	}
	if (lr == LOCK_BUSY) {
		lock_gave_up_ns = rp_now_ns();
		rp_debug("profile %s: its lock is still held by another process after %llu ms: saved without it",
			 path, (unsigned long long)((lock_gave_up_ns - t0) / 1000000));
	} else if (lr == LOCK_NONE) {
		rp_debug("profile %s: no lock file (%s): saved without it", path, rp_strerror(lerr));
	}
	size_t oldsize = 0;
	int err;
	uint8_t *old = read_file(path, &oldsize, &err);
	struct view v = { 0 };
	if (old && validate(old, oldsize, m, &v)) {
		rp_free(old);   /* not valid: replaced by what this run knows */
		old = NULL;
	}
	struct out o = { 0 };
	uint8_t me[PF_ID];
	entry_of(me, m->ident_kind, m->ident_len, m->ident);
	id_index(&o, me);
	size_t i = 0, j = 0, ti = 0;
	uint32_t nold = old ? v.nsites : 0;
	while (!o.oom && (i < p->n || j < nold)) {
		const uint8_t *s = j < nold ? v.sites + j * PF_SITE : NULL;
		if (s && (i == p->n || get32(s) < p->r[i].off)) {
			merge_old(&o, &v, s, v.targets + ti * PF_TARGET);
			ti += get16(s + 8);
			j++;
			continue;
		}
		if (s && get32(s) == p->r[i].off) {
			/* Both: this run's is newer, unless it says the same (then the file stays as it is). */
			const uint8_t *x = v.targets + ti * PF_TARGET;
			ti += get16(s + 8);
			j++;
			if (same_site(&v, s, x, &p->r[i])) {
				merge_old(&o, &v, s, x);
				i++;
				continue;
			}
		}
		merge_new(&o, &p->r[i++]);
	}
	bool ok = false;
	size_t size;
	uint8_t *b = o.oom ? NULL : serialize(&o, &size);
	if (b && old && size == oldsize && !memcmp(b, old, size))
		ok = true;   /* nothing new for the file */
	else if (b && (ok = write_file(path, b, size)))
		rp_stats.profile_written++;
	rp_free(b);
	rp_free(old);
	rp_free(o.ids);
	rp_free(o.sites);
	rp_free(o.targets);
	if (lfd >= 0) {
		RP_STAT_ADD(syscalls, 1);
		close(lfd);   /* after the rename: the next writer reads this file */
	}
	return ok;
}

static uint64_t last_save_ns;

/*
 * Save the profile of every module whose snapshot changed since it was
 * loaded or last saved.  Under rp_lock: when a module leaves (before its
 * callers' sites go back to learning), at exit, and from the epochs.
 *
 * PERIODIC (from the epochs): a busy lock is tried once, not waited for -
 * that save may run on an application thread - and the module is saved
 * at a later period or at exit.  Otherwise there is no later, and the
 * waits of all modules together are bounded by LOCK_WAIT_NS, so a process
 * never lingers at exit or dlclose because another one is stopped with a
 * lock; after that, saves go ahead without the lock.  Exit runs several
 * saves in a row (one per departing module's destructor, then the at-exit
 * one), and a departure changes other modules' snapshots: so within
 * LOCK_GAVE_UP_NS of a wait that ran out, a save tries each lock once
 * instead of waiting again for what is most likely the same stopped
 * holder, and the whole exit waits about LOCK_WAIT_NS at most.
 */
static void save_all(bool periodic)
{
	last_save_ns = rp_now_ns();
	bool gave_up = lock_gave_up_ns && last_save_ns - lock_gave_up_ns < LOCK_GAVE_UP_NS;
	uint64_t deadline = periodic || gave_up ? last_save_ns : last_save_ns + LOCK_WAIT_NS;
	if (rp_cfg.mode != RP_MODE_ON || !profile_dir())
		return;
	struct bymod *b = rp_zalloc(sizeof(*b));
	if (!b)
		return;
	rp_sites_foreach(gather, b);
	rp_modules_foreach(gather_warm, b);
	bool any = false;
	for (unsigned i = 0; i < 256; i++)
		any |= b->want[i] = b->mod[i] && b->sig[i] != b->mod[i]->prof_hash;
	if (any) {
		objs_refresh();
		/*
		 * Only records are collected: a warm entry says what the file it
		 * came from says, and the merge keeps the file's sites.
		 */
		b->collect = true;
		rp_sites_foreach(gather, b);
	}
	int usable = 0;   /* the directory: 1 made or there, -1 not usable (asked once per save) */
	for (unsigned i = 0; i < 256 && usable >= 0; i++) {
		if (!b->want[i] || !b->n[i])
			continue;
		struct rp_module *m = b->mod[i];
		struct snap p;
		if (!module_ident(m))
			continue;
		if (!usable)
			usable = dir_check(true) ? 1 : -1;
		if (usable < 0 || !snapshot(m, b->v[i], b->n[i], &p))
			continue;
		if (save_module(m, &p, deadline, periodic))
			m->prof_hash = b->sig[i];
		snap_free(&p);
	}
	for (unsigned i = 0; i < 256; i++)
		rp_free(b->v[i]);
	rp_free(b);
}

void rp_profile_save(void)
{
	save_all(false);
}

/* From each epoch (under rp_lock): a periodic save for processes that never exit. */
void rp_profile_tick(void)
{
	if (rp_cfg.profile == RP_PROFILE_OFF || rp_cfg.profile_save_s <= 0)
		return;
	uint64_t now = rp_now_ns();
	if (!last_save_ns)
		last_save_ns = rp_start_ns;
	if (now - last_save_ns >= (uint64_t)rp_cfg.profile_save_s * 1000000000ull)
		save_all(true);
}
