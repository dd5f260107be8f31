/*
 * A crowded address space: a library dlopened where everything for 1.5
 * GiB on either side is taken, while 64 threads (each with its stack and
 * its own malloc arena) are alive.  That is what CPython's test_threading
 * met: 40 threads created while a module loads fill the space around it
 * with stacks and 64 MiB malloc arenas.  The library must still get its
 * stub arena within rel32 reach (its sites promoted), and relpoline must
 * not write to the program's stderr (that test expects it empty).
 *
 * How the library is made to land there: a 3 GiB PROT_NONE reservation
 * with a 1 MiB hole in its middle, then one-page fillers until the gaps
 * above it are full (the kernel hands out the highest free gap that
 * fits) and a filler lands in the hole; that one is unmapped, and the
 * library's mapping goes into the hole.  The test checks it did.
 */
#include "common.h"
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>

#define NT 64

static pthread_barrier_t ready;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done;

static void *idle(void *arg)
{
	/* Touch malloc from this thread: glibc gives it an arena of its own. */
	void *volatile p = malloc(1000 + (size_t)(uintptr_t)arg);
	pthread_barrier_wait(&ready);
	pthread_mutex_lock(&mu);
	while (!done)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	free(p);
	return NULL;
}

typedef long (*run_fn)(int, long);

int main(int argc, char **argv)
{
	t_deterministic(argv);
	const char *dlpath = argc > 1 ? argv[1] : "./tdl.so";
	char errpath[64];
	snprintf(errpath, sizeof errpath, "/tmp/rp-t_crowd-%d.err", (int)getpid());
	int efd = open(errpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	int saved = dup(2);
	if (efd < 0 || saved < 0 || dup2(efd, 2) < 0)
		DIE("redirecting stderr: %s", strerror(errno));

	pthread_barrier_init(&ready, NULL, NT + 1);
	pthread_t th[NT];
	for (long i = 0; i < NT; i++)
		if (pthread_create(&th[i], NULL, idle, (void *)i))
			DIE("pthread_create %ld", i);
	pthread_barrier_wait(&ready);

	const size_t big = 3ul << 30, hole = 1 << 20;
	uint8_t *r = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r == MAP_FAILED)
		DIE("mmap 3 GiB: %s", strerror(errno));
	uint8_t *h0 = r + big / 2, *h1 = h0 + hole;
	munmap(h0, hole);
	long fillers = 0;
	for (;; fillers++) {
		uint8_t *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED || fillers > 500000)
			DIE("fillers: %s after %ld", strerror(errno), fillers);
		if (p >= h0 && p < h1) {
			munmap(p, 4096);
			break;
		}
	}
	struct relpoline_stats s0 = t_stats();
	void *h = dlopen(dlpath, RTLD_NOW);
	if (!h)
		DIE("dlopen %s: %s", dlpath, dlerror());
	run_fn run = (run_fn)dlsym(h, "dl_run");
	if (!run)
		DIE("dlsym dl_run");
	const uint8_t *at = (const uint8_t *)(uintptr_t)run;
	CHECK(at >= h0 && at < h1, "the library did not land in the hole (%p, hole %p-%p, %ld fillers): "
	      "the test cannot make its point", (const void *)at, (void *)h0, (void *)h1, fillers);
	long wrong = run(1, 2000);
	t_epoch();
	wrong += run(1, 2000);
	t_epoch();
	wrong += run(1, 2000);
	struct relpoline_stats s1 = t_stats();

	pthread_mutex_lock(&mu);
	done = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < NT; i++)
		pthread_join(th[i], NULL);

	fflush(stderr);
	char buf[4096] = "";
	ssize_t n = pread(efd, buf, sizeof buf - 1, 0);
	dup2(saved, 2);
	close(efd);
	unlink(errpath);
	buf[n > 0 ? n : 0] = 0;
	t_print_stats("after", &s1);
	CHECK(wrong == 0, "%ld wrong results", wrong);
	CHECK(s1.modules == s0.modules + 1, "modules %" PRIu64 " -> %" PRIu64, s0.modules, s1.modules);
	CHECK(s1.sites_promoted >= s0.sites_promoted + 3, "the library's 3 sites not promoted: %" PRIu64
	      " -> %" PRIu64 " (no stub arena?)", s0.sites_promoted, s1.sites_promoted);
	CHECK(!strstr(buf, "relpoline"), "relpoline wrote to the program's stderr: %.300s", buf);
	return t_finish("t_crowd");
}
