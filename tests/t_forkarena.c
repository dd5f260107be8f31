/*
 * Parent and child both keep promoting after fork(), with stubs of
 * different sizes, and check every call.  Stub memory was once shared
 * between them (a MAP_SHARED memfd), so each overwrote stubs the other was
 * running: wrong targets or crashes.  The child must get a private arena.
 */
#include "common.h"
#include <sys/wait.h>
#include <unistd.h>

typedef long (*fn_t)(long);
#define T(n) NOINLINE long t##n(long x) { return x * 16 + n; }
T(0) T(1) T(2) T(3) T(4) T(5) T(6) T(7)
static fn_t const tg[8] = { t0, t1, t2, t3, t4, t5, t6, t7 };
#define S(n) NOINLINE long s##n(fn_t f, long x) { return f(x) + 1000 * n; }
S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11)
static long (*const sites[12])(fn_t, long) = { s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11 };

static long work(int salt, int iters)
{
	long wrong = 0;
	for (int it = 0; it < iters; it++) {
		int k = 1 + (it + salt) % 6;               /* targets per site: stub sizes vary */
		for (int s = 0; s < 12; s++)
			for (long i = 0; i < 40; i++) {
				int t = (int)((i + s + salt) % k);
				long got = sites[s](tg[t], i);
				if (got != i * 16 + t + 1000 * s)
					wrong++;
			}
		relpoline_epoch();
		if (it % 5 == 4)
			relpoline_relearn();
	}
	return wrong;
}

/* Inode of the memfd behind process PID's executable arena view, 0 if none. */
static unsigned long arena_inode(pid_t pid)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "r");
	unsigned long ino = 0;
	while (f && fgets(line, sizeof line, f)) {
		char perms[8];
		unsigned long i;
		if (strstr(line, "relpoline-arena") &&
		    sscanf(line, "%*s %7s %*s %*s %lu", perms, &i) == 2 && perms[2] == 'x')
			ino = i;
	}
	if (f)
		fclose(f);
	return ino;
}

int main(int argc, char **argv)
{
	t_deterministic(argv);
	CHECK(work(0, 5) == 0, "before fork");
	fflush(NULL);
	unsigned long mine = arena_inode(getpid());
	CHECK(mine != 0, "no relpoline-arena mapping in /proc/self/maps");
	pid_t pid = fork();
	if (pid == 0) {
		unsigned long child = arena_inode(getpid());
		if (child == 0 || child == mine) {
			fprintf(stderr, "child's arena is the parent's memfd (inode %lu)\n", mine);
			_exit(2);
		}
		_exit(work(3, 200) ? 1 : 0);
	}
	long wrong = work(0, 200);
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/waitpid");
	CHECK(wrong == 0, "parent: %ld wrong results", wrong);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %s %d",
	      WIFSIGNALED(st) ? "killed by signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	struct relpoline_stats s = t_stats();
	t_print_stats("parent", &s);
	CHECK(s.stubs_emitted > 100, "only %" PRIu64 " stubs emitted", s.stubs_emitted);
	return t_finish("t_forkarena");
}
