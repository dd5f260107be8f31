/*
 * The runtime must never call the application's allocator from its own
 * context.  This program brings its own malloc family: a simple size-class
 * free-list allocator over a static region, not thread-safe, that aborts
 * (message on fd 2, then abort()) when it is entered
 *   - by any thread other than the program's main thread (tid == pid), or
 *   - while it is already running (two threads at once, or re-entered), or
 *   - directly from librelpoline.so's code (after main started).
 * glibc and ld.so use it too (stdio buffers, the TLS of a new thread, ...):
 * that is allowed as long as it happens in the main thread.
 *
 * The allocator itself makes one indirect call (a statistics hook through a
 * function pointer, so a thunk site inside malloc): with RELPOLINE_THREAD=off
 * an epoch can run from that site's slow path while malloc is active, and
 * any allocation by the runtime there is caught as a re-entry.
 *
 * The main thread runs many indirect calls whose targets shift every few
 * milliseconds for ~1.5 s while allocating, reallocating and freeing.
 *   t_malloc           (run.sh: RELPOLINE_THREAD=on EPOCH_MS=1 PROMOTE_MIN=8 ...) worker thread
 *   t_malloc nothread  the same with RELPOLINE_THREAD=off: epochs run on the
 *                      main thread from the slow path; checks epochs ran
 * Asserts: every result right, sites promoted, repatching happened
 * (relearns > 0 or stubs_emitted > sites promoted), allocator intact.
 * Not built with the sanitizers (they bring their own malloc).
 */
#include "common.h"
#include <link.h>
#include <stdatomic.h>
#include <sys/syscall.h>

/* ---------------- the application's allocator ---------------- */

#define HEAP_SIZE (384u << 20)
#define NCLASS 30
#define HDR 16u
#define MAGIC 0x4d414c43u

struct hdr {
	uint32_t magic;
	uint32_t cls;      /* block size 1 << cls */
	char *base;        /* start of the block (the user pointer may be aligned up) */
};

static char heap[HEAP_SIZE] __attribute__((aligned(4096)));
static size_t heap_used;
static void *free_list[NCLASS];
static atomic_int busy;
static uint64_t n_alloc, n_free, bytes_hook;
static uintptr_t rt_lo, rt_hi;          /* librelpoline.so's text, once main runs */

static void note_size(size_t n) { bytes_hook += n; }
/* An indirect call inside malloc: a thunk site whose slow path may run an epoch. */
static void (*volatile size_hook)(size_t) = note_size;

static void die(const char *what, const char *fn)
{
	char buf[256];
	int n = snprintf(buf, sizeof buf,
			 "check failed: t_malloc allocator: %s() %s (tid %ld, pid %ld)\n", fn, what,
			 (long)syscall(SYS_gettid), (long)getpid());
	if (write(2, buf, (size_t)n) < 0) {
	}
	abort();
}

static void enter(const char *fn, void *ret)
{
	if (syscall(SYS_gettid) != getpid())
		die("entered by a thread that is not the main thread", fn);
	if (atomic_exchange(&busy, 1))
		die("entered while already running (two threads at once, or re-entered)", fn);
	uintptr_t r = (uintptr_t)ret;
	if (rt_hi && r >= rt_lo && r < rt_hi)
		die("called directly from librelpoline.so", fn);
}

static void leave(void) { atomic_store(&busy, 0); }

static unsigned cls_for(size_t n)
{
	unsigned c = 5;
	while (c < NCLASS && ((size_t)1 << c) < n)
		c++;
	return c;
}

/* A block of at least N bytes whose user pointer is ALIGN-aligned. */
static void *alloc_block(size_t n, size_t align, const char *fn)
{
	if (align < 16)
		align = 16;
	if (n > HEAP_SIZE / 4 || align > 4096)
		return NULL;
	size_t need = n + HDR + (align > 16 ? align : 0);
	unsigned c = cls_for(need);
	if (c >= NCLASS)
		return NULL;
	char *b = free_list[c];
	if (b) {
		free_list[c] = *(void **)b;
	} else {
		size_t sz = (size_t)1 << c;
		size_t at = (heap_used + 15) & ~(size_t)15;
		if (at + sz > HEAP_SIZE)
			die("out of memory", fn);
		b = heap + at;
		heap_used = at + sz;
	}
	uintptr_t u = ((uintptr_t)b + HDR + align - 1) & ~(uintptr_t)(align - 1);
	struct hdr *h = (struct hdr *)(u - HDR);
	h->magic = MAGIC;
	h->cls = c;
	h->base = b;
	n_alloc++;
	size_hook(n);
	return (void *)u;
}

static struct hdr *hdr_of(void *p, const char *fn)
{
	if ((char *)p < heap || (char *)p >= heap + HEAP_SIZE)
		die("got a pointer it never returned", fn);
	struct hdr *h = (struct hdr *)((char *)p - HDR);
	if (h->magic != MAGIC)
		die("got a pointer with a bad header (double free or corruption)", fn);
	return h;
}

static size_t usable(void *p, struct hdr *h)
{
	return ((size_t)1 << h->cls) - (size_t)((char *)p - h->base);
}

static void free_block(void *p, const char *fn)
{
	struct hdr *h = hdr_of(p, fn);
	h->magic = 0;
	*(void **)h->base = free_list[h->cls];
	free_list[h->cls] = h->base;
	n_free++;
}

#define RET __builtin_return_address(0)

void *malloc(size_t n)
{
	enter("malloc", RET);
	void *p = alloc_block(n, 16, "malloc");
	leave();
	return p;
}

void free(void *p)
{
	if (!p)
		return;
	enter("free", RET);
	free_block(p, "free");
	leave();
}

void *calloc(size_t a, size_t b)
{
	enter("calloc", RET);
	void *p = NULL;
	if (!b || a <= SIZE_MAX / b) {
		p = alloc_block(a * b, 16, "calloc");
		if (p)
			memset(p, 0, a * b);
	}
	leave();
	return p;
}

void *realloc(void *old, size_t n)
{
	enter("realloc", RET);
	void *p;
	if (!old) {
		p = alloc_block(n, 16, "realloc");
	} else if (!n) {
		free_block(old, "realloc");
		p = NULL;
	} else {
		struct hdr *h = hdr_of(old, "realloc");
		size_t have = usable(old, h);
		if (n <= have) {
			p = old;
		} else {
			p = alloc_block(n, 16, "realloc");
			if (p) {
				memcpy(p, old, have);
				free_block(old, "realloc");
			}
		}
	}
	leave();
	return p;
}

int posix_memalign(void **out, size_t align, size_t n)
{
	enter("posix_memalign", RET);
	int r = 0;
	if (align < sizeof(void *) || (align & (align - 1))) {
		r = EINVAL;
	} else {
		void *p = alloc_block(n, align, "posix_memalign");
		if (p)
			*out = p;
		else
			r = ENOMEM;
	}
	leave();
	return r;
}

void *aligned_alloc(size_t align, size_t n)
{
	enter("aligned_alloc", RET);
	void *p = (align & (align - 1)) ? NULL : alloc_block(n, align, "aligned_alloc");
	leave();
	return p;
}

void *memalign(size_t align, size_t n)
{
	enter("memalign", RET);
	void *p = (align & (align - 1)) ? NULL : alloc_block(n, align, "memalign");
	leave();
	return p;
}

void *valloc(size_t n)
{
	enter("valloc", RET);
	void *p = alloc_block(n, 4096, "valloc");
	leave();
	return p;
}

void *pvalloc(size_t n)
{
	enter("pvalloc", RET);
	void *p = alloc_block((n + 4095) & ~(size_t)4095, 4096, "pvalloc");
	leave();
	return p;
}

size_t malloc_usable_size(void *p)
{
	if (!p)
		return 0;
	enter("malloc_usable_size", RET);
	size_t n = usable(p, hdr_of(p, "malloc_usable_size"));
	leave();
	return n;
}

/* ---------------- the workload ---------------- */

/* Eight targets (x * 64 + n), six call sites and four tail sites. */
#define WL_MUL 64
#define WL_NCALL 6
#include "workload.h"

static int find_rt(struct dl_phdr_info *info, size_t size, void *arg)
{
	if (!info->dlpi_name || !strstr(info->dlpi_name, "librelpoline"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			rt_lo = info->dlpi_addr + ph->p_vaddr;
			rt_hi = rt_lo + ph->p_memsz;
		}
	}
	return 1;
}

#define NLIVE 512
static unsigned char *live[NLIVE];
static size_t live_n[NLIVE];

static uint32_t rnd(void)
{
	static uint32_t s = 12345;
	s ^= s << 13;
	s ^= s >> 17;
	s ^= s << 5;
	return s;
}

static void fill(unsigned char *p, size_t n, size_t k)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(k * 7 + i);
}

static int intact(const unsigned char *p, size_t n, size_t k)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(k * 7 + i))
			return 0;
	return 1;
}

/* A few allocator operations of every kind, checking old blocks are intact. */
static void churn(void)
{
	for (int j = 0; j < 8; j++) {
		size_t k = rnd() % NLIVE;
		if (live[k]) {
			CHECK(intact(live[k], live_n[k], k), "block %zu corrupted", k);
			if (rnd() & 1) {
				size_t n = 1 + rnd() % 3000;
				unsigned char *p = realloc(live[k], n);
				CHECK(p != NULL, "realloc");
				size_t keep = n < live_n[k] ? n : live_n[k];
				CHECK(intact(p, keep, k), "realloc lost the contents of block %zu", k);
				fill(p, n, k);
				live[k] = p;
				live_n[k] = n;
				continue;
			}
			free(live[k]);
			live[k] = NULL;
			continue;
		}
		size_t n = 1 + rnd() % 2000;
		void *p = NULL;
		switch (rnd() % 6) {
		case 0: p = malloc(n); break;
		case 1: p = calloc(1, n); if (p) CHECK(((unsigned char *)p)[n - 1] == 0, "calloc: not zeroed"); break;
		case 2: CHECK(posix_memalign(&p, 64, n) == 0, "posix_memalign");
			CHECK(((uintptr_t)p & 63) == 0, "posix_memalign: %p", p); break;
		case 3: p = aligned_alloc(256, n); CHECK(((uintptr_t)p & 255) == 0, "aligned_alloc: %p", p); break;
		case 4: p = memalign(32, n); CHECK(((uintptr_t)p & 31) == 0, "memalign: %p", p); break;
		default: p = realloc(NULL, n); break;
		}
		CHECK(p != NULL, "allocation of %zu bytes failed", n);
		if (!p)
			continue;
		CHECK(malloc_usable_size(p) >= n, "malloc_usable_size %zu < %zu",
		      malloc_usable_size(p), n);
		fill(p, n, k);
		live[k] = p;
		live_n[k] = n;
	}
}

int main(int argc, char **argv)
{
	int nothread = argc > 1 && strcmp(argv[1], "nothread") == 0;
	const char *const kv[] = { "RELPOLINE_EPOCH_MS", "1", "RELPOLINE_PROMOTE_MIN", "8",
				   "RELPOLINE_RELEARN_MISSES", "20", "RELPOLINE_MAX_VERSIONS", "1000",
				   "RELPOLINE_PIN_EPOCHS", "20", "RELPOLINE_MIN_COVERAGE", "1",
				   "RELPOLINE_THREAD", nothread ? "off" : "on",
				   NULL, NULL };
	t_default_env(argv, kv);
	dl_iterate_phdr(find_rt, NULL);
	if (!rt_hi)
		DIE("librelpoline.so not found among the loaded objects");
	if (nothread) {
		char buf[16] = "";
		int r = relpoline_config_get("thread", buf, sizeof buf);
		CHECK(r == 0 && strcmp(buf, "off") == 0,
		      "config_get(thread) = %d \"%s\": want \"off\" (RELPOLINE_THREAD=off)", r, buf);
	}
	struct relpoline_stats s0 = t_stats();
	uint64_t t0 = wl_now_ms(), max_promoted = 0;
	long wrong = 0, calls = 0;
	for (uint64_t ms = 0; ms < 1500; ms = wl_now_ms() - t0) {
		int phase = (int)(ms / 4);   /* targets shift every 4 ms */
		for (int rep = 0; rep < 64; rep++) {
			for (int s = 0; s < WL_NS; s++) {
				int t = wl_target(phase, rep, s);
				long x = rep * 3 + s;
				long r = wl_one(s, wl_tg[t], x);
				calls++;
				if (r != wl_want(s, t, x) && wrong++ < 10)
					fprintf(stderr, "check failed: site %d target %d: %ld want %ld\n", s, t,
						r, wl_want(s, t, x));
			}
		}
		churn();
		if ((phase & 15) == 0) {
			struct relpoline_stats s = t_stats();
			if (s.sites_promoted > max_promoted)
				max_promoted = s.sites_promoted;
		}
	}
	for (int k = 0; k < NLIVE; k++)
		if (live[k]) {
			CHECK(intact(live[k], live_n[k], (size_t)k), "block %d corrupted at the end", k);
			free(live[k]);
		}
	struct relpoline_stats s1 = t_stats();
	if (s1.sites_promoted > max_promoted)
		max_promoted = s1.sites_promoted;
	t_print_stats("end", &s1);
	printf("calls=%ld wrong=%ld allocs=%" PRIu64 " frees=%" PRIu64 " max_promoted=%" PRIu64 "\n",
	       calls, wrong, n_alloc, n_free, max_promoted);
	CHECK(wrong == 0, "%ld wrong results of %ld calls", wrong, calls);
	CHECK(n_alloc > 10000 && n_free > 5000, "allocator barely used: %" PRIu64 " allocs",
	      n_alloc);
	CHECK(max_promoted > 0, "no site was ever promoted");
	CHECK(s1.relearns > s0.relearns || s1.stubs_emitted > s1.sites_promoted,
	      "no repatching: relearns %" PRIu64 ", stubs_emitted %" PRIu64 ", sites_promoted %" PRIu64,
	      s1.relearns, s1.stubs_emitted, s1.sites_promoted);
	CHECK(s1.patch_passes >= s0.patch_passes + 3, "only %" PRIu64 " patch passes",
	      s1.patch_passes - s0.patch_passes);
	if (nothread)
		CHECK(s1.epochs >= s0.epochs + 3,
		      "RELPOLINE_THREAD=off: only %" PRIu64 " epochs ran from the slow path",
		      s1.epochs - s0.epochs);
	return t_finish(nothread ? "t_malloc nothread" : "t_malloc");
}
