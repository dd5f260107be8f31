/*
 * Naming generated code for profilers.
 *
 * Cells, chain stubs and trees live in the arenas, memfd mappings that
 * perf reports as "memfd:relpoline-arena (deleted)" with a bare offset.
 * stub.c calls rp_perf_code() for every block of code it emits; this file
 * names the block and describes it in up to two places:
 *
 *  - RELPOLINE_PERF_MAP=1: /tmp/perf-PID.map, one "START SIZE NAME" line
 *    per block.  perf itself reads a map file only for anonymous mappings,
 *    so it ignores this one for our memfd arenas; profilers that read perf
 *    maps for any address use it.
 *  - RELPOLINE_JITDUMP=1: perf's jitdump file, jit-PID.dump in $JITDUMPDIR
 *    (default /tmp), which `perf inject --jit` turns into one small ELF
 *    object per block, so that `perf report` names time spent there.
 *
 * Names: relpoline_cells:<module> for a module's block of cells,
 * relpoline_stub:<site> for a chain, relpoline_tree:<site> for a tree,
 * <site> as rp_symbolize() writes it (e.g. main+0x2a).  A block covers
 * code only, not the slots (data) after it.
 *
 * jitdump format: tools/perf/Documentation/jitdump-specification.txt in
 * the Linux tree: a 40-byte file header (magic "JiTD", version 1, ELF
 * machine, pid, timestamp, flags), then records, each a 16-byte header
 * (id, total size, timestamp) and its payload; we write JIT_CODE_LOAD
 * records only (pid, tid, vma, code address, code size, a unique index,
 * the NUL-terminated name, the code bytes).  Timestamps are
 * CLOCK_MONOTONIC (rp_now_ns), the clock `perf record -k mono` stamps its
 * samples with; flags stay 0 (no TSC timestamps).  perf finds the file
 * through a marker: while it injects, it looks at every mmap event of a
 * process for a file named jit-<pid>.dump with that process's pid
 * (tools/perf/util/jitdump.c, jit_detect), and perf record sees a file
 * mapping without --data only if it is executable.  So the file is mapped
 * once, one page PROT_READ|PROT_EXEC, and the mapping stays for the life
 * of the process; the descriptor it was mapped from is closed at once.
 *
 * A guest keeps no descriptor: the file (and the map file) is opened,
 * appended to with one writev and closed for every record.  Everything
 * here runs under rp_lock (registration, epochs, the fork child), so
 * records never interleave and their timestamps never go backwards.  A
 * record that cannot be written whole is cut off again (a torn record
 * would make every later one unreadable) and the process stops writing
 * its jitdump, with one warning.
 *
 * fork: the child writes its own jit-CHILDPID.dump.  It inherits the
 * parent's arenas but replaces each with a private copy at the same
 * address (rp_arena_after_fork), and to perf that new mapping hides the
 * parent's names there; so stub.c describes every block of the copy
 * again, which starts the child's file (header, marker), and the child's
 * new code goes there too.  The child unmaps the parent's marker and
 * never opens the parent's file: every record first checks that the file
 * belongs to getpid().  An exec'd relpoline program keeps the pid and
 * starts the file again.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "internal.h"

#define JD_MAGIC 0x4A695444u    /* "JiTD" */
#define JD_VERSION 1
#define JD_CODE_LOAD 0

struct jd_header {
	uint32_t magic, version, total_size, elf_mach, pad1, pid;
	uint64_t timestamp, flags;
};

struct jd_code_load {
	uint32_t id, total_size;     /* the record header */
	uint64_t timestamp;
	uint32_t pid, tid;
	uint64_t vma, code_addr, code_size, code_index;
	/* then the name with its NUL, then the code bytes */
};

_Static_assert(sizeof(struct jd_header) == 40, "jitdump file header is 40 bytes");
_Static_assert(sizeof(struct jd_code_load) == 56, "JIT_CODE_LOAD fixed part is 56 bytes");

static struct {
	int pid;                 /* the process jd.path belongs to; 0 before the first record */
	bool dead;               /* its file could not be written: no more records */
	void *marker;            /* the PROT_EXEC page perf finds the file by */
	size_t marker_len;
	uint64_t index;          /* code_index of the next record */
	char dir[400];           /* $JITDUMPDIR as first seen, or /tmp */
	char path[448];
} jd;

bool rp_perf_wanted(void)
{
	return rp_cfg.perf_map || rp_cfg.jitdump;
}

static int open_parked(const char *path, int flags)
{
	RP_STAT_ADD(syscalls, 1);
	return rp_fd_park(open(path, flags | O_CLOEXEC, 0644));
}

/* Write all of IOV; false on an error (the caller cuts a partial write off). */
static bool write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		RP_STAT_ADD(syscalls, 1);
		ssize_t w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return true;
}

/* The file name of M (the program's own through /proc/self/exe), without its directory. */
static const char *module_name(const struct rp_module *m, char *buf, size_t len)
{
	const char *path = m->path;
	if (m->main_program) {
		ssize_t n = readlink("/proc/self/exe", buf, len - 1);
		if (n > 0) {
			buf[n] = 0;
			path = buf;
		}
	}
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static void code_name(const struct rp_module *m, enum rp_code_kind kind, uint64_t site, char *buf,
		      size_t len)
{
	char sym[256];
	if (kind == RP_CODE_CELLS) {
		char path[512];
		snprintf(buf, len, "relpoline_cells:%.255s", module_name(m, path, sizeof(path)));
		return;
	}
	rp_symbolize(site, sym, sizeof(sym));
	snprintf(buf, len, "relpoline_%s:%s", kind == RP_CODE_TREE ? "tree" : "stub", sym);
}

static void map_line(const char *name, uint64_t at, size_t len)
{
	char path[64], line[400];
	snprintf(path, sizeof(path), "/tmp/perf-%d.map", (int)getpid());
	int n = snprintf(line, sizeof(line), "%lx %zx %s\n", (unsigned long)at, len, name);
	if (n >= (int)sizeof(line)) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	int fd = open_parked(path, O_WRONLY | O_CREAT | O_APPEND);
	if (fd < 0)
		return;
	RP_STAT_ADD(syscalls, 2);
	ssize_t w = write(fd, line, (size_t)n);
	(void)w;
	close(fd);
}

/*
 * This process's jitdump file exists, with its header and its marker:
 * made on the first record of the process (the first after a fork in a
 * child).  False if it cannot be written.
 */
static bool jd_ready(void)
{
	int pid = (int)getpid();
	if (jd.pid == pid)
		return !jd.dead;
	if (jd.marker) {
		/* A fork child: the parent's marker names the parent's file. */
		RP_STAT_ADD(syscalls, 1);
		munmap(jd.marker, jd.marker_len);
		jd.marker = NULL;
	}
	jd.pid = pid;
	jd.dead = true;
	jd.index = 0;
	if (!jd.dir[0]) {
		const char *d = getenv("JITDUMPDIR");
		if (!d || !*d)
			d = "/tmp";
		if (strlen(d) >= sizeof(jd.dir)) {
			rp_warn("RELPOLINE_JITDUMP: JITDUMPDIR is longer than %zu bytes: no jitdump",
				sizeof(jd.dir) - 1);
			return false;
		}
		memcpy(jd.dir, d, strlen(d) + 1);
	}
	snprintf(jd.path, sizeof(jd.path), "%.400s/jit-%d.dump", jd.dir, pid);
	/* Read-write: the marker is a mapping of this descriptor.  O_TRUNC: a stale file of an old pid. */
	int fd = open_parked(jd.path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW);
	if (fd < 0) {
		rp_warn("RELPOLINE_JITDUMP: cannot create %s: %s", jd.path, rp_strerror(errno));
		return false;
	}
	struct jd_header h = {
		.magic = JD_MAGIC, .version = JD_VERSION, .total_size = sizeof(h),
		.elf_mach = EM_X86_64, .pid = (uint32_t)pid, .timestamp = rp_now_ns(),
	};
	struct iovec iov = { &h, sizeof(h) };
	if (!write_all(fd, &iov, 1)) {
		rp_warn("RELPOLINE_JITDUMP: cannot write %s: %s", jd.path, rp_strerror(errno));
		RP_STAT_ADD(syscalls, 2);
		int r = ftruncate(fd, 0);
		(void)r;
		close(fd);
		return false;
	}
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	RP_STAT_ADD(syscalls, 2);
	void *p = mmap(NULL, page, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		/* A noexec mount: the file is still written, perf only cannot find it by itself. */
		rp_warn("RELPOLINE_JITDUMP: cannot map %s executable (%s): perf inject --jit will "
			"not find it", jd.path, rp_strerror(errno));
	} else {
		jd.marker = p;
		jd.marker_len = page;
	}
	close(fd);
	jd.dead = false;
	return true;
}

static void jd_record(const char *name, uint64_t at, size_t len)
{
	if (!jd_ready())
		return;
	int fd = open_parked(jd.path, O_WRONLY | O_APPEND | O_NOFOLLOW);
	if (fd < 0) {
		jd.dead = true;
		rp_warn("RELPOLINE_JITDUMP: cannot open %s: %s; no more records", jd.path, rp_strerror(errno));
		return;
	}
	size_t nlen = strlen(name) + 1;
	struct jd_code_load r = {
		.id = JD_CODE_LOAD,
		.total_size = (uint32_t)(sizeof(r) + nlen + len),
		.timestamp = rp_now_ns(),
		.pid = (uint32_t)jd.pid,
		.tid = (uint32_t)syscall(SYS_gettid),
		.vma = at,
		.code_addr = at,
		.code_size = len,
		.code_index = jd.index,
	};
	struct iovec iov[3] = {
		{ &r, sizeof(r) },
		{ (void *)name, nlen },
		{ (void *)(uintptr_t)at, len },   /* the live code, read through the RX view */
	};
	RP_STAT_ADD(syscalls, 3);
	off_t end = lseek(fd, 0, SEEK_END);
	if (write_all(fd, iov, 3)) {
		jd.index++;
	} else {
		int e = errno;
		if (end >= 0) {
			int t = ftruncate(fd, end);
			(void)t;
		}
		jd.dead = true;
		rp_warn("RELPOLINE_JITDUMP: cannot write %s: %s; no more records", jd.path, rp_strerror(e));
	}
	close(fd);
}

void rp_perf_code(const struct rp_module *m, enum rp_code_kind kind, uint64_t site, uint64_t at,
		  size_t len)
{
	if (!rp_perf_wanted() || !len)
		return;
	char name[320];
	code_name(m, kind, site, name, sizeof(name));
	if (rp_cfg.perf_map)
		map_line(name, at, len);
	if (rp_cfg.jitdump)
		jd_record(name, at, len);
}
