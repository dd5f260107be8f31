/*
 * exit() from a main program built with the PLAIN compiler (not
 * relpoline-cc: no relpoline module in the executable) linked against a
 * library built with relpoline-cc (t_exitplain_lib.c -> libtexitplain.so).
 * Two threads are hot in the library's indirect calls (promoted sites,
 * stubs being replaced: run.sh sets RELPOLINE_EPOCH_MS=1, RELPOLINE_THREAD=on
 * or off (epochs by the worker or by the hot threads), and a small
 * RELEARN_MISSES) when main calls exit().  The loader runs the library's
 * destructors during exit while those threads still run through its stubs:
 * the runtime must not unmap (or otherwise pull) a stub arena then.
 *   t_exitplain            spawns 10 children; each must exit 0
 *   t_exitplain child MS   waits until the library's sites are promoted and
 *                          have new stubs, then exit(0) after MS more ms
 * A child that is not promoted within 5 s exits 2; a wrong result exits 3.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

void xp_hammer(long salt);
long xp_promoted(long *stubs);

extern char **environ;

static void *hammer(void *arg)
{
	xp_hammer((long)(intptr_t)arg);
	return NULL;
}

/* Say where a crash happened (the parent prints the child's stderr). */
static void on_fault(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	void *rip = (void *)uc->uc_mcontext.gregs[REG_RIP];
	Dl_info di;
	int have = dladdr(rip, &di);
	char buf[512];
	int n = snprintf(buf, sizeof buf,
			 "check failed: signal %d during exit: rip %p (%s in %s), fault address %p\n",
			 sig, rip, have && di.dli_sname ? di.dli_sname : "?",
			 have && di.dli_fname ? di.dli_fname : "no module: a stub arena?", si->si_addr);
	if (write(2, buf, (size_t)n) < 0) {
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int child(int ms)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	pthread_t th;
	for (long i = 0; i < 2; i++)
		if (pthread_create(&th, NULL, hammer, (void *)(intptr_t)0))
			return 4;
	/* Promoted, and repatched at least once (stubs emitted beyond the first ones). */
	uint64_t t0 = now_ms();
	long promoted = 0, stubs = 0;
	while (now_ms() - t0 < 5000) {
		promoted = xp_promoted(&stubs);
		if (promoted >= 2 && stubs > promoted)
			break;
		usleep(1000);
	}
	if (promoted < 2 || stubs <= promoted) {
		fprintf(stderr, "check failed: library sites not promoted and repatched after 5 s: "
			"promoted %ld, stubs_emitted %ld\n", promoted, stubs);
		return 2;
	}
	struct timespec ts = { 0, ms * 1000000L };
	nanosleep(&ts, NULL);
	exit(0);
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "child") == 0)
		return child(atoi(argv[2]));
	int fails = 0;
	for (int i = 0; i < 10; i++) {
		char ms[16];
		snprintf(ms, sizeof ms, "%d", 2 + (i * 7) % 25);
		char *args[] = { "/proc/self/exe", "child", ms, NULL };
		/*
		 * The child's stderr comes through a pipe: a thread that crashes
		 * while exit() is already under way may not change the exit
		 * status, but its handler's message shows.
		 */
		int p[2];
		if (pipe(p) < 0) {
			fprintf(stderr, "check failed: pipe\n");
			return 1;
		}
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, p[1], 2);
		posix_spawn_file_actions_addclose(&fa, p[0]);
		posix_spawn_file_actions_addclose(&fa, p[1]);
		pid_t pid;
		int r = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, args, environ);
		posix_spawn_file_actions_destroy(&fa);
		close(p[1]);
		if (r) {
			fprintf(stderr, "check failed: posix_spawn: %s\n", strerror(r));
			return 1;
		}
		alarm(30);
		static char err[8192];
		size_t n = 0;
		ssize_t k;
		while (n < sizeof err - 1 && (k = read(p[0], err + n, sizeof err - 1 - n)) > 0)
			n += (size_t)k;
		err[n] = 0;
		close(p[0]);
		int st;
		if (waitpid(pid, &st, 0) != pid) {
			fprintf(stderr, "check failed: waitpid\n");
			return 1;
		}
		alarm(0);
		if (n)
			fprintf(stderr, "%s", err);
		if (strstr(err, "check failed") && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			fprintf(stderr, "check failed: child %d (exit after %s ms) exited 0 but a thread "
				"crashed during exit (above)\n", i, ms);
			fails++;
			continue;
		}
		if (WIFSIGNALED(st)) {
			fprintf(stderr, "check failed: child %d (exit after %s ms) killed by signal %d (%s)\n",
				i, ms, WTERMSIG(st), strsignal(WTERMSIG(st)));
			fails++;
		} else if (WEXITSTATUS(st) != 0) {
			fprintf(stderr, "check failed: child %d (exit after %s ms) exit status %d\n", i, ms,
				WEXITSTATUS(st));
			fails++;
		}
	}
	if (fails) {
		fprintf(stderr, "t_exitplain: %d of 10 children failed\n", fails);
		return 1;
	}
	printf("t_exitplain: ok\n");
	return 0;
}
