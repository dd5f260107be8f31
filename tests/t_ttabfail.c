/*
 * A thread whose sample table (src/module/record.c, mapped by the thread on
 * its first slow-path call) cannot be mapped must not try again on every
 * call: under memory pressure that is one failing mmap per indirect call.
 * The kernel makes that mmap fail here: a seccomp filter traps exactly an
 * mmap of the table's size, and the SIGSYS handler answers ENOMEM and
 * counts it (every attempt the thread really made, not the runtime's own
 * count).  A new thread makes 100,000 calls through one site: every
 * result must be right, the table must have been tried (the filter did
 * its work), and tried at most once per 4096 slow-path calls, plus one.
 */
#include "common.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <ucontext.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include "../src/module/abi.h"   /* sizeof(struct rp_ttab) */

typedef long (*fn_t)(long);
NOINLINE long fa(long x) { return x + 3; }
NOINLINE long fb(long x) { return x * 5; }
NOINLINE long site(fn_t f, long x) { return f(x) + 1; }

#define CALLS 100000L
static long traps, wrong;

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = ctx;
	uc->uc_mcontext.gregs[REG_RAX] = -ENOMEM;
	__atomic_add_fetch(&traps, 1, __ATOMIC_RELAXED);
}

static void *worker(void *arg)
{
	(void)arg;
	fn_t volatile fs[2] = { fa, fb };
	for (long i = 0; i < CALLS; i++) {
		long want = i % 2 ? i * 5 + 1 : i + 3 + 1;
		if (site(fs[i % 2], i) != want)
			wrong++;
	}
	return NULL;
}

int main(void)
{
	struct sigaction sa = { 0 };
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL))
		DIE("sigaction");
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 0, 5),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)sizeof(struct rp_ttab), 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1]) + 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		DIE("seccomp: %s", strerror(errno));
	pthread_t th;
	if (pthread_create(&th, NULL, worker, NULL) || pthread_join(th, NULL))
		DIE("pthread");
	long n = __atomic_load_n(&traps, __ATOMIC_RELAXED);
	printf("t_ttabfail: %ld calls, %ld attempts to map the sample table, %ld wrong\n", CALLS, n, wrong);
	CHECK(wrong == 0, "%ld wrong results", wrong);
	CHECK(n >= 1, "the sample table was never mapped: the filter did not see it (size %zu)",
	      sizeof(struct rp_ttab));
	CHECK(n <= CALLS / 4096 + 2, "%ld attempts to map the sample table in %ld calls: want at most %ld",
	      n, CALLS, CALLS / 4096 + 2);
	return t_finish("t_ttabfail");
}
