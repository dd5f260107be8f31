/*
 * The runtime keeps no file descriptor open: the program owns every fd.
 * The program first closes every fd >= 3 it inherited and re-executes
 * itself, so it starts with 0, 1, 2 and whatever the runtime opens.
 *
 *   t_fds promote    calls, promotion (relpoline_epoch() with EPOCH_MS=0, the
 *                    epochs of the worker or of the calling thread otherwise,
 *                    RELPOLINE_THREAD=on/off); /proc/self/fd must list only 0, 1, 2
 *                    (and the directory fd used to list it).  Then fork: the
 *                    child runs calls through sites the parent never
 *                    promoted, promotes them itself (its own epochs), and
 *                    must list only 0, 1, 2 too.
 *   t_fds closeall   the program closes every fd >= 3, keeps calling and
 *                    promoting (stubs_emitted and relearns must still grow),
 *                    makes a pipe and dup2()s its ends over fds up to 20, and
 *                    forks; the child promotes sites of its own and checks
 *                    that every one of its fds is still the pipe, that data
 *                    goes through it, and that dup2/close work; the parent
 *                    checks the same and reads what the child wrote.
 * A runtime that keeps an fd (an arena memfd, /proc/self/mem) fails the
 * first; one that later closes "its" fd number (for example when it copies
 * an arena after fork) closes the program's pipe and fails the second.
 */
#include "common.h"
#define WL_NO_SITES   /* the helpers only: this test's sites are laid out below */
#include "workload.h"
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

typedef long (*fn_t)(long);
#define T(n) NOINLINE long tg##n(long x) { return x * 8 + n; }
T(0) T(1) T(2) T(3)
static fn_t const tg[4] = { tg0, tg1, tg2, tg3 };
#define CS(n) NOINLINE long cs##n(fn_t f, long x) { return f(x) - 100 * n; }
#define TS(n) NOINLINE long ts##n(fn_t f, long x) { return f(x + n); }
/* 0-3: the parent's sites; 4-7: only the child calls them. */
CS(0) CS(1) TS(2) TS(3) CS(4) CS(5) TS(6) TS(7)

static long one(int s, fn_t f, long x)
{
	switch (s) {
	case 0: return cs0(f, x);
	case 1: return cs1(f, x);
	case 2: return ts2(f, x);
	case 3: return ts3(f, x);
	case 4: return cs4(f, x);
	case 5: return cs5(f, x);
	case 6: return ts6(f, x);
	default: return ts7(f, x);
	}
}
static long want(int s, int t, long x)
{
	return (s & 2) ? (x + s) * 8 + t : x * 8 + t - 100 * s;
}

/* N calls at sites FIRST..LAST with target T; returns the wrong count. */
static long calls(int first, int last, int t, int n)
{
	long wrong = 0;
	for (long i = 0; i < n; i++)
		for (int s = first; s <= last; s++)
			if (one(s, tg[t], i) != want(s, t, i))
				wrong++;
	return wrong;
}

static int worker_mode;

/* An epoch of our own, or in worker mode (the epochs come by themselves) US microseconds for one. */
static void epoch_or_wait(useconds_t us)
{
	if (!worker_mode)
		t_epoch();
	else
		usleep(us);
}

/* Promote sites FIRST..LAST on target T: our own epochs, or wait for the worker. */
static void promote(int first, int last, int t, const char *who)
{
	struct relpoline_stats a = t_stats();
	uint64_t want_n = a.sites_promoted + (uint64_t)(last - first + 1);
	long wrong = 0;
	for (int round = 0; round < (worker_mode ? 5000 : 3); round++) {
		wrong += calls(first, last, t, 64);
		epoch_or_wait(1000);
		if (t_stats().sites_promoted >= want_n)
			break;
	}
	struct relpoline_stats b = t_stats();
	CHECK(wrong == 0, "%s: %ld wrong results", who, wrong);
	CHECK(b.sites_promoted >= want_n, "%s: sites_promoted %" PRIu64 " -> %" PRIu64 " want +%d", who,
	      a.sites_promoted, b.sites_promoted, last - first + 1);
	CHECK(b.patch_passes > a.patch_passes, "%s: no patch pass", who);
}

/*
 * /proc/self/fd must hold only fds in ALLOWED (bitmask of fds 0-63) and the
 * directory's own fd.  An fd the runtime has open for a moment (a file it
 * reads while a worker epoch runs) may show in one listing: an extra fd
 * fails only if it is still there in five listings 20 ms apart.  Reports
 * every other fd with its link target.
 */
static int list_fds(uint64_t allowed, const char *who, int report)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		CHECK(0, "%s: opendir /proc/self/fd: %s", who, strerror(errno));
		return -1;
	}
	int self = dirfd(d), bad = 0, n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		n++;
		if (fd == self || (fd < 64 && (allowed >> fd & 1)))
			continue;
		bad++;
		if (!report)
			continue;
		char path[64], target[256] = "?";
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		ssize_t k = readlink(path, target, sizeof target - 1);
		target[k > 0 ? k : 1] = 0;
		CHECK(0, "%s: fd %d is open and is not the program's: %s", who, fd, target);
	}
	closedir(d);
	if (report) {
		printf("%s: %d fds listed, %d not the program's\n", who, n, bad);
		fflush(stdout);
	}
	return bad;
}

static int check_fds(uint64_t allowed, const char *who)
{
	for (int i = 0; i < 4 && list_fds(allowed, who, 0) != 0; i++)
		usleep(20000);
	return list_fds(allowed, who, 1);
}

static int wait_child(pid_t pid, const char *what)
{
	int st;
	if (pid <= 0 || waitpid(pid, &st, 0) != pid) {
		CHECK(0, "%s: fork/waitpid failed", what);
		return 1;
	}
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s child: %s %d", what,
	      WIFSIGNALED(st) ? "killed by signal" : "exit status",
	      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void close_from(int lo)
{
	if (syscall(SYS_close_range, (unsigned)lo, ~0u, 0) < 0)
		for (int fd = lo; fd < 4096; fd++)
			close(fd);
}

static const uint64_t STD = 7;   /* 0, 1, 2 */

/* Six phase changes at the parent's sites (targets 1, 2, 3, 1, 2, 3), an epoch after each. */
static void phase_changes(void)
{
	for (int k = 0; k < 6; k++) {
		calls(0, 3, 1 + k % 3, 300);
		epoch_or_wait(3000);
	}
}

static int promote_mode(void)
{
	promote(0, 3, 0, "parent");
	check_fds(STD, "parent after promotion");
	/* A phase change: new stubs (or relearning) in the parent. */
	struct relpoline_stats a = t_stats();
	phase_changes();
	struct relpoline_stats b = t_stats();
	CHECK(b.stubs_emitted > a.stubs_emitted || b.relearns > a.relearns,
	      "parent: the phase change made no new stub");
	check_fds(STD, "parent after repatching");
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(30);
		promote(4, 7, 2, "child");
		CHECK(calls(0, 7, 3, 50) == 0, "child: wrong results after promotion");
		check_fds(STD, "child after its own promotion");
		_exit(t_fails ? 1 : 0);
	}
	wait_child(pid, "promote");
	check_fds(STD, "parent at the end");
	struct relpoline_stats e = t_stats();
	t_print_stats("parent end", &e);
	wl_check_thread_setting();
	return t_finish("t_fds promote");
}

/* fds 3..20: the pipe's read end at 3, its write end at 4, dups of them above. */
#define LOW 3
#define HIGH 20
static struct stat pipe_st;

static void check_pipe_fds(const char *who)
{
	for (int fd = LOW; fd <= HIGH; fd++) {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			CHECK(0, "%s: fd %d: %s (the program's pipe was closed behind its back)", who,
			      fd, strerror(errno));
			continue;
		}
		CHECK(st.st_ino == pipe_st.st_ino && st.st_dev == pipe_st.st_dev && S_ISFIFO(st.st_mode),
		      "%s: fd %d is no longer the program's pipe (inode %lu, want %lu)", who, fd,
		      (unsigned long)st.st_ino, (unsigned long)pipe_st.st_ino);
		int want_mode = (fd - LOW) % 2 ? O_WRONLY : O_RDONLY;
		int fl = fcntl(fd, F_GETFL);
		CHECK(fl >= 0 && (fl & O_ACCMODE) == want_mode, "%s: fd %d has mode %#x", who, fd, fl);
	}
}

/* Write through fd WFD, read back through fd RFD (same pipe). */
static void roundtrip(int wfd, int rfd, const char *msg, const char *who)
{
	size_t n = strlen(msg);
	CHECK(write(wfd, msg, n) == (ssize_t)n, "%s: write to fd %d: %s", who, wfd, strerror(errno));
	char buf[64] = "";
	struct pollfd pf = { .fd = rfd, .events = POLLIN };
	ssize_t r = poll(&pf, 1, 2000) == 1 ? read(rfd, buf, n) : -1;
	CHECK(r == (ssize_t)n && memcmp(buf, msg, n) == 0, "%s: read from fd %d: %zd \"%.*s\" (%s)",
	      who, rfd, r, r > 0 ? (int)r : 0, buf, r < 0 ? strerror(errno) : "");
}

static int closeall_mode(void)
{
	promote(0, 3, 0, "before closing");
	close_from(3);
	/* Keep calling and promoting with the fds gone. */
	struct relpoline_stats a = t_stats();
	phase_changes();
	CHECK(calls(0, 3, 0, 100) == 0, "wrong results after closing every fd >= 3");
	struct relpoline_stats b = t_stats();
	CHECK(b.stubs_emitted > a.stubs_emitted || b.relearns > a.relearns,
	      "no new stub after closing the fds");

	int p[2];
	if (pipe(p) < 0)
		DIE("pipe: %s", strerror(errno));
	if (p[0] != LOW) {
		if (dup2(p[0], LOW) < 0)
			DIE("dup2");
		close(p[0]);
	}
	if (p[1] != LOW + 1) {
		if (dup2(p[1], LOW + 1) < 0)
			DIE("dup2");
		if (p[1] != LOW)
			close(p[1]);
	}
	for (int fd = LOW + 2; fd <= HIGH; fd++)
		CHECK(dup2(LOW + (fd - LOW) % 2, fd) == fd, "dup2 %d: %s", fd, strerror(errno));
	if (fstat(LOW, &pipe_st) < 0)
		DIE("fstat");
	check_pipe_fds("parent before fork");
	/* More promotion with every low fd in use by the program. */
	struct relpoline_stats c = t_stats();
	CHECK(relpoline_relearn() == 0, "relearn");
	promote(0, 3, 2, "after dup2");
	struct relpoline_stats d = t_stats();
	CHECK(d.patch_passes > c.patch_passes, "no patch pass while the low fds were the pipe's");
	check_pipe_fds("parent after promotion");
	roundtrip(HIGH, HIGH - 1, "parent", "parent");
	check_fds((1ull << (HIGH + 1)) - 1, "parent after dup2");

	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		alarm(30);
		check_pipe_fds("child right after fork");
		roundtrip(LOW + 1, LOW, "child-1", "child");
		promote(4, 7, 1, "child");
		calls(0, 7, 2, 200);
		epoch_or_wait(5000);
		CHECK(calls(0, 7, 3, 50) == 0, "child: wrong results");
		check_pipe_fds("child after its own promotion");
		roundtrip(HIGH, LOW, "child-2", "child");
		CHECK(dup2(LOW, HIGH + 1) == HIGH + 1, "child: dup2: %s", strerror(errno));
		roundtrip(LOW + 1, HIGH + 1, "child-3", "child");
		CHECK(close(HIGH + 1) == 0, "child: close: %s", strerror(errno));
		check_fds((1ull << (HIGH + 1)) - 1, "child at the end");
		/* For the parent to read. */
		CHECK(write(HIGH, "from-child", 10) == 10, "child: write: %s", strerror(errno));
		_exit(t_fails ? 1 : 0);
	}
	wait_child(pid, "closeall");
	char buf[16] = "";
	struct pollfd pf = { .fd = LOW, .events = POLLIN };
	ssize_t r = poll(&pf, 1, 2000) == 1 ? read(LOW, buf, 10) : -1;
	CHECK(r == 10 && memcmp(buf, "from-child", 10) == 0, "parent: read the child's message: %zd",
	      r);
	calls(0, 3, 1, 100);
	if (!worker_mode)
		t_epoch();
	check_pipe_fds("parent at the end");
	roundtrip(LOW + 1, LOW, "parent-end", "parent");
	struct relpoline_stats e = t_stats();
	t_print_stats("parent end", &e);
	wl_check_thread_setting();
	return t_finish("t_fds closeall");
}

int main(int argc, char **argv)
{
	if (argc < 2)
		DIE("usage: t_fds promote|closeall");
	static const char *const kv[] = { "RELPOLINE_EPOCH_MS", "0", "RELPOLINE_PROMOTE_MIN", "16",
					  "RELPOLINE_RELEARN_MISSES", "50", NULL, NULL };
	t_default_env(argv, kv);
	if (argc < 3 || strcmp(argv[2], "clean") != 0) {
		/* Start again with no inherited fd above 2. */
		close_from(3);
		char *args[] = { argv[0], argv[1], "clean", NULL };
		execv("/proc/self/exe", args);
		DIE("execv /proc/self/exe: %s", strerror(errno));
	}
	char buf[32] = "";
	CHECK(relpoline_config_get("epoch_ms", buf, sizeof buf) == 0, "config_get(epoch_ms)");
	worker_mode = strcmp(buf, "0") != 0;
	if (!worker_mode)
		t_epoch();   /* the first epoch (see t_deterministic) */
	if (strcmp(argv[1], "promote") == 0)
		return promote_mode();
	if (strcmp(argv[1], "closeall") == 0)
		return closeall_mode();
	DIE("unknown mode %s", argv[1]);
}
