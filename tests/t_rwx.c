/*
 * No mapping is ever writable and executable at once, not even for a
 * moment during a patch pass.  The main thread forces patch passes in a
 * loop (relpoline_relearn(), calls, relpoline_epoch(): RELPOLINE_EPOCH_MS=0)
 * while a scanner thread reads /proc/self/maps over and over and counts
 * mappings whose permissions contain both w and x ("rwxp", "rwxs", "-wx.").
 *   t_rwx          the main thread drives the passes (deterministic)
 *   t_rwx worker   epochs drive them (RELPOLINE_EPOCH_MS=1: the worker, or with
 *                  RELPOLINE_THREAD=off the calling thread itself; targets
 *                  shifting every 2 ms); the main thread only calls
 * Asserts: 0 w+x mappings over all samples; at least 200 samples; at least
 * 100 patch passes (50 in worker mode) while the scanner ran; no wrong result.
 */
#include "common.h"
#include "workload.h"   /* its default sites: 8 targets, 4 call and 4 tail sites */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>

static atomic_int stop;
static long samples, wx_samples, wx_lines;
static char first_wx[256];
static char mapsbuf[1 << 20];

/* Count the w+x mappings in one read of /proc/self/maps. */
static int scan_once(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	ssize_t r;
	while (n < sizeof mapsbuf - 1 && (r = read(fd, mapsbuf + n, sizeof mapsbuf - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	mapsbuf[n] = 0;
	int wx = 0;
	for (char *line = mapsbuf; line && *line;) {
		char *nl = strchr(line, '\n');
		char *perm = strchr(line, ' ');
		if (perm && (!nl || perm < nl) && perm[2] == 'w' && perm[3] == 'x') {
			if (!wx_lines++) {
				size_t len = nl ? (size_t)(nl - line) : strlen(line);
				if (len >= sizeof first_wx)
					len = sizeof first_wx - 1;
				memcpy(first_wx, line, len);
			}
			wx++;
		}
		line = nl ? nl + 1 : NULL;
	}
	return wx;
}

static void *scanner(void *arg)
{
	while (!atomic_load(&stop)) {
		int wx = scan_once();
		if (wx < 0)
			continue;
		samples++;
		if (wx)
			wx_samples++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int worker = argc > 1 && strcmp(argv[1], "worker") == 0;
	if (!worker) {
		static const char *const kv[] = { "RELPOLINE_EPOCH_MS", "0", "RELPOLINE_PROMOTE_MIN", "8",
						  "RELPOLINE_MAX_VERSIONS", "1000", NULL, NULL };
		t_default_env(argv, kv);
		t_epoch();
	} else {
		t_default_env(argv, wl_busy_env);
	}
	/* Before anything is patched, and once more after the first promotion. */
	CHECK(scan_once() == 0, "a w+x mapping before the test started: %s", first_wx);
	long wrong = wl_calls(0, 64, 0);
	if (!worker)
		t_epoch();
	else
		usleep(20000);
	CHECK(scan_once() == 0, "a w+x mapping after the first promotion: %s", first_wx);

	struct relpoline_stats a = t_stats();
	pthread_t th;
	if (pthread_create(&th, NULL, scanner, NULL))
		DIE("pthread_create");
	uint64_t t0 = wl_now_us();
	long rounds = 0;
	/*
	 * Deterministic: 400 rounds (800 passes) and 400 samples, at most 3 s,
	 * and at most 900 rounds (each gives every site a new stub; MAX_VERSIONS
	 * is 1000).  Worker: 1.5 s.
	 */
	while (worker ? wl_now_us() - t0 < 1500000
		      : wl_now_us() - t0 < 3000000 && (rounds < 400 || samples < 400)) {
		if (!worker && rounds >= 900) {
			usleep(1000);
		} else if (!worker) {
			CHECK(relpoline_relearn() == 0, "relearn");
			wrong += wl_calls((int)rounds, 16, 0);
			t_epoch();
			wrong += wl_calls((int)rounds, 4, 0);
		} else {   /* targets shifting every 2 ms */
			wrong += wl_calls((int)((wl_now_us() - t0) / 2000), 64, 0);
		}
		rounds++;
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	struct relpoline_stats b = t_stats();
	t_print_stats("end", &b);
	uint64_t passes = b.patch_passes - a.patch_passes;
	printf("%s: %ld rounds, %" PRIu64 " patch passes, %ld maps samples, %ld with a w+x mapping\n",
	       worker ? "worker" : "deterministic", rounds, passes, samples, wx_samples);
	CHECK(wx_samples == 0, "%ld of %ld samples of /proc/self/maps had a writable+executable "
	      "mapping, first: %s", wx_samples, samples, first_wx);
	CHECK(samples >= 200, "only %ld samples of /proc/self/maps", samples);
	CHECK(passes >= (worker ? 50u : 100u), "only %" PRIu64 " patch passes while scanning", passes);
	if (worker)   /* the targets keep moving: count stubs, not what is promoted right now */
		CHECK(b.stubs_emitted > a.stubs_emitted, "no stub emitted while scanning");
	else
		CHECK(b.sites_promoted > 0, "nothing promoted");
	CHECK(wrong == 0, "%ld wrong results", wrong);
	wl_check_thread_setting();
	return t_finish(worker ? "t_rwx worker" : "t_rwx");
}
