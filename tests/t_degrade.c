/*
 * Degrading: when the process cannot patch, relpoline runs with plain
 * retpolines, says so in one warning line, and every call stays correct;
 * when only an optional helper is missing, it patches as usual, silently.
 *
 *   t_degrade membarrier   membarrier() fails with ENOSYS (seccomp): new
 *                          stubs are published without it; sites promote
 *   t_degrade procmem      pwrite() fails with EACCES (seccomp), so the
 *                          one-time rewrite of the sites through
 *                          /proc/self/mem is refused: one warning, nothing
 *                          promoted
 *   t_degrade memfd        memfd_create() fails with EPERM: no arena, one
 *                          warning, nothing promoted
 *
 * The parent installs the filter and re-executes itself, so the runtime
 * meets the refusal from its very first step.  run.sh checks stderr.
 */
#include "common.h"
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*fn_t)(long);
NOINLINE long fa(long x) { return x + 1; }
NOINLINE long fb(long x) { return x + 2; }
NOINLINE long site(fn_t f, long x) { return f(x) * 7; }
NOINLINE long tsite(fn_t f, long x) { return f(x); }

static void deny(long nr, int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		DIE("seccomp: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	if (argc < 2)
		DIE("usage: t_degrade membarrier|procmem|memfd");
	bool refused = strcmp(argv[1], "membarrier") != 0;
	if (!getenv("RP_TEST_FILTERED")) {
		if (!strcmp(argv[1], "membarrier"))
			deny(SYS_membarrier, ENOSYS);
		else if (!strcmp(argv[1], "procmem"))
			deny(SYS_pwrite64, EACCES);
		else if (!strcmp(argv[1], "memfd"))
			deny(SYS_memfd_create, EPERM);
		else
			DIE("unknown mode %s", argv[1]);
		setenv("RP_TEST_FILTERED", "1", 1);
		setenv("RELPOLINE_EPOCH_MS", "0", 0);
		setenv("RELPOLINE_PROMOTE_MIN", "16", 0);
		execv("/proc/self/exe", argv);
		DIE("execv: %s", strerror(errno));
	}
	long bad = 0;
	for (int round = 0; round < 4; round++) {
		for (long i = 0; i < 2000; i++) {
			fn_t f = (i % 3) ? fa : fb;
			long w = f == fa ? i + 1 : i + 2;
			if (site(f, i) != w * 7 || tsite(f, i) != w)
				bad++;
		}
		relpoline_epoch();
	}
	struct relpoline_stats s = t_stats();
	t_print_stats(argv[1], &s);
	CHECK(bad == 0, "%ld wrong results", bad);
	if (refused) {
		CHECK(s.sites_promoted == 0, "%" PRIu64 " sites promoted although patching is refused",
		      s.sites_promoted);
		CHECK(s.patch_passes == 0, "%" PRIu64 " patch passes completed", s.patch_passes);
	} else {
		CHECK(s.sites_promoted == 2, "%" PRIu64 " sites promoted without membarrier, want 2",
		      s.sites_promoted);
		CHECK(s.membarriers == 0, "%" PRIu64 " membarriers counted although refused", s.membarriers);
	}
	/* Disabling, enabling and relearning must not crash either. */
	relpoline_disable();
	relpoline_enable();
	relpoline_relearn();
	for (long i = 0; i < 1000; i++)
		if (site(fa, i) != (i + 1) * 7)
			bad++;
	CHECK(bad == 0, "%ld wrong results after disable/enable", bad);
	return t_finish("t_degrade");
}
