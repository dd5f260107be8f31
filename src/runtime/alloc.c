/*
 * The runtime's own memory.  relpoline is a guest in the process: the
 * application may bring an allocator that is not thread-safe (bash does),
 * or be inside malloc when an indirect call reaches the slow path that
 * runs an epoch.  So nothing in the runtime calls malloc, free, qsort or
 * anything else that might: every allocation comes from here, straight
 * from mmap.
 *
 * Size classes are powers of two from 16 bytes to 64 KiB, carved from
 * 256 KiB chunks and kept on free lists; anything larger is its own
 * mapping.  Each block has a 16-byte header with its class.  Every
 * caller holds rp_lock (epochs on any thread, module constructors and
 * destructors, the API): that is what lets an epoch started by a signal
 * handler's indirect call allocate without meeting a lock held by the
 * code it interrupted.  The spin lock is a second line of defence only.
 * Memory of freed large blocks goes back to the kernel; small classes
 * keep theirs (bounded by the peak).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include "internal.h"

#define MIN_SHIFT 4
#define MAX_SHIFT 16
#define NCLASS (MAX_SHIFT - MIN_SHIFT + 1)
#define CHUNK (256u << 10)
#define HDR 16

struct hdr { uint64_t size; uint64_t cls; };   /* size: usable bytes; cls: class or NCLASS (own mapping) */

static void *free_list[NCLASS];
static uint8_t *chunk_cur, *chunk_end;
static int alloc_lock;

static void lock(void)
{
	while (__atomic_exchange_n(&alloc_lock, 1, __ATOMIC_ACQUIRE))
		__builtin_ia32_pause();
}

static void unlock(void) { __atomic_store_n(&alloc_lock, 0, __ATOMIC_RELEASE); }

/*
 * FLAGS: MAP_POPULATE for a large block, which its caller fills at once (a
 * file read, a table, an array): one call faults in all its pages instead
 * of one fault per page.  Chunks are not: most of a chunk waits for later
 * allocations, and may never be used.
 */
static void *map(size_t n, int flags)
{
	RP_STAT_ADD(syscalls, 1);
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* A failed mapping of N bytes for the runtime's own use: what callers do without it. */
static void own_oom(size_t n)
{
	if (errno == ENOMEM)
		rp_oom(n, "the runtime's own memory: sites it cannot track stay on the fallback");
}

void *rp_alloc(size_t n)
{
	if (n > ((size_t)1 << MAX_SHIFT) - HDR) {
		size_t total = (n + HDR + 4095) & ~(size_t)4095;
		struct hdr *h = map(total, MAP_POPULATE);
		if (!h) {
			own_oom(total);
			return NULL;
		}
		h->size = total - HDR;
		h->cls = NCLASS;
		return (uint8_t *)h + HDR;
	}
	unsigned c = 0;
	while (((size_t)1 << (c + MIN_SHIFT)) < n + HDR)
		c++;
	size_t bs = (size_t)1 << (c + MIN_SHIFT);
	lock();
	struct hdr *h = free_list[c];
	if (h) {
		free_list[c] = *(void **)((uint8_t *)h + HDR);
	} else {
		if (!chunk_cur || (size_t)(chunk_end - chunk_cur) < bs) {
			uint8_t *p = map(CHUNK, 0);
			if (!p) {
				unlock();
				own_oom(CHUNK);
				return NULL;
			}
			chunk_cur = p;
			chunk_end = p + CHUNK;
		}
		h = (struct hdr *)chunk_cur;
		chunk_cur += bs;
	}
	unlock();
	h->size = bs - HDR;
	h->cls = c;
	return (uint8_t *)h + HDR;
}

void *rp_zalloc(size_t n)
{
	void *p = rp_alloc(n);
	if (p)
		memset(p, 0, n);
	return p;
}

void rp_free(void *p)
{
	if (!p)
		return;
	struct hdr *h = (struct hdr *)((uint8_t *)p - HDR);
	if (h->cls == NCLASS) {
		RP_STAT_ADD(syscalls, 1);
		munmap(h, h->size + HDR);
		return;
	}
	lock();
	*(void **)p = free_list[h->cls];
	free_list[h->cls] = h;
	unlock();
}

void *rp_realloc(void *p, size_t n)
{
	if (!p)
		return rp_alloc(n);
	struct hdr *h = (struct hdr *)((uint8_t *)p - HDR);
	if (n <= h->size)
		return p;
	void *q = rp_alloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, h->size);
	rp_free(p);
	return q;
}

/*
 * Heap sort: glibc's qsort may call malloc for large arrays.  In place,
 * O(n log n), no recursion; an array already in order (relocation lists
 * mostly are) costs one pass.
 */
static void swap(uint8_t *a, uint8_t *b, size_t size)
{
	if (size % 8 == 0) {
		for (size_t i = 0; i < size; i += 8) {
			uint64_t t;
			memcpy(&t, a + i, 8);
			memcpy(a + i, b + i, 8);
			memcpy(b + i, &t, 8);
		}
		return;
	}
	while (size--) {
		uint8_t t = *a;
		*a++ = *b;
		*b++ = t;
	}
}

static void sift(uint8_t *base, size_t root, size_t n, size_t size,
		 int (*cmp)(const void *, const void *))
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && cmp(base + child * size, base + (child + 1) * size) < 0)
			child++;
		if (cmp(base + root * size, base + child * size) >= 0)
			return;
		swap(base + root * size, base + child * size, size);
		root = child;
	}
}

void rp_sort(void *v, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	uint8_t *base = v;
	size_t k = 1;
	while (k < n && cmp(base + (k - 1) * size, base + k * size) <= 0)
		k++;
	if (k >= n)
		return;
	for (size_t i = n / 2; i-- > 0;)
		sift(base, i, n, size, cmp);
	for (size_t end = n - 1; end > 0; end--) {
		swap(base, base + end * size, size);
		sift(base, 0, end, size, cmp);
	}
}

