/*
 * Seed-001 claim, counted in real syscalls: once the sites are promoted,
 * an epoch with nothing to change makes no syscall at all, and the idle
 * background worker makes no more than its wait.
 *
 * The syscalls are counted by the kernel's word, not by the runtime's own
 * counter: t_idle forks, and the child runs the workload under ptrace
 * (PTRACE_TRACEME, then PTRACE_SYSCALL with PTRACE_O_TRACESYSGOOD and
 * PTRACE_O_TRACECLONE, so every thread of it is traced from its first
 * instruction).  The workload marks the windows to count with a syscall
 * that cannot mean anything else, getpriority(MARK, ...) (EINVAL); the
 * tracer counts every syscall entry of every thread between two marks, by
 * number, and judges each window:
 *
 *   det     (RELPOLINE_EPOCH_MS=0, no worker thread)
 *     promo   the epoch that promotes 8 sites: no mprotect (ABI 3: code is
 *             never made writable), membarrier(SYNC_CORE) at most once per
 *             patch pass;
 *     idle    epochs with nothing to change - right after promotion, with
 *             hits on the stubs in between, after 3-target stubs, with no
 *             calls at all: exactly 0 syscalls from any thread between the
 *             marks (clock_gettime excepted only where the vDSO cannot
 *             serve it: a calibration window finds out).  The stats agree:
 *             patch_passes_empty grows, nothing else moves.
 *   worker  (RELPOLINE_EPOCH_MS=10 RELPOLINE_THREAD=on, set by the tracer)
 *             the background worker of a program that has promoted its
 *             sites and then sleeps for IDLE_MS (2.5 s; a live second
 *             thread keeps a sample table, an exited one's table is reaped
 *             before the window).  The main thread's own syscalls are not
 *             counted.  Allowed: the wait (futex, clock_nanosleep,
 *             nanosleep, sched_yield, restart_syscall, clock_gettime,
 *             gettimeofday) and the reaper's getpid/tgkill, at most one
 *             each per table per 64 epochs.  Anything else fails -
 *             mprotect, membarrier, mmap, munmap, write, ... - and so does
 *             more than one futex call per epoch (+1 for the wait under
 *             way at each end of the window), or more than
 *             MAX_IDLE_EPOCHS epochs: an idle worker doubles its wait
 *             after every epoch without samples, up to about 1 s
 *             (10+20+...+640 ms, then 1024 ms: about 9 epochs in 2.5 s).
 *             The worker before the backoff ran 250 epochs here with 2
 *             syscalls each (a timed wait, then a FUTEX_WAKE of rp_lock
 *             that woke nobody) and fails both bounds.
 *             After the window, with the worker in a fresh 1 s wait:
 *             relpoline_config_set must wake it (an epoch within
 *             WAKE_MS), and calls at a new site must get it promoted
 *             within WAKE_MS of the first call: the slow path wakes the
 *             dozing worker about epoch_ms after its wait began (measured
 *             here: a few ms; without that wake it is the rest of the
 *             1 s wait).  WAKE_MS is 500 ms, half the longest wait, so
 *             that scheduling noise on a loaded machine does not fail it.
 *
 *   t_idle            both (run.sh: idle-epoch)
 *   t_idle det|worker one of them
 */
#include "common.h"
#include <linux/membarrier.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

/* ---------------- the workload (the traced child) ---------------- */

enum { MK_BEGIN = 0x7e570001, MK_END, MK_INFO, MK_DONE };
enum { W_CAL, W_PROMO, W_IDLE, W_WORKER };

static void mark(long what, long id, long a, long b)
{
	syscall(SYS_getpriority, what, id, a, b);
}

typedef int (*fn_t)(int);
NOINLINE int fa(int x) { return x + 1; }
NOINLINE int fb(int x) { return x + 2; }
NOINLINE int fc(int x) { return x + 3; }
#define SITE(n) NOINLINE int site_##n(fn_t f, int x) { return f(x) * 2 + n; }
SITE(0) SITE(1) SITE(2) SITE(3) SITE(4) SITE(5) SITE(6) SITE(7)
#define NS 8

static void calls(int n, int mix)
{
	fn_t fs[3] = { fa, fb, fc };
	for (int i = 0; i < n; i++) {
		fn_t f = fs[mix ? i % 3 : 0];
		int want = ((mix ? i % 3 : 0) + 1 + i) * 2;
		int r[NS] = { site_0(f, i), site_1(f, i), site_2(f, i), site_3(f, i),
			      site_4(f, i), site_5(f, i), site_6(f, i), site_7(f, i) };
		for (int k = 0; k < NS; k++)
			CHECK(r[k] == want + k, "site %d: %d want %d", k, r[k], want + k);
	}
}

static int nwindows;

/* A window of NEPOCHS idle epochs, after NCALLS rounds of calls that all hit. */
static void idle_window(const char *what, int ncalls, int mix, int nepochs)
{
	int id = nwindows++;
	struct relpoline_stats a = t_stats();
	int bad = 0;
	mark(MK_BEGIN, id, W_IDLE, 0);
	calls(ncalls, mix);
	for (int k = 0; k < nepochs; k++)
		bad += relpoline_epoch() != 0;
	mark(MK_END, id, 0, 0);
	struct relpoline_stats b = t_stats();
	mark(MK_INFO, id, (long)(b.epochs - a.epochs), (long)(b.patch_passes - a.patch_passes));
	printf("window %d: %s (%d x 8 calls, %d epochs)\n", id, what, ncalls, nepochs);
	CHECK(bad == 0, "%s: relpoline_epoch() failed", what);
#define SAME(f) CHECK(b.f == a.f, "%s: idle epochs changed " #f ": %" PRIu64 " -> %" PRIu64, \
		      what, a.f, b.f)
	SAME(membarriers);
	SAME(protect_changes);
	SAME(syscalls);
	SAME(patch_passes);
	SAME(sites_patched);
	SAME(bytes_written);
	SAME(sites_promoted);
	SAME(stubs_emitted);
	SAME(misses);
#undef SAME
	CHECK(b.patch_passes_empty >= a.patch_passes_empty + (uint64_t)nepochs,
	      "%s: patch_passes_empty %" PRIu64 " -> %" PRIu64 " over %d epochs", what,
	      a.patch_passes_empty, b.patch_passes_empty, nepochs);
	CHECK(b.epochs == a.epochs + (uint64_t)nepochs, "%s: epochs %" PRIu64 " -> %" PRIu64, what,
	      a.epochs, b.epochs);
}

static int traced_det(char **argv)
{
	t_deterministic(argv);

	/* Calibration: does clock_gettime enter the kernel on this machine? */
	struct timespec ts;
	int id = nwindows++;
	mark(MK_BEGIN, id, W_CAL, 0);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	mark(MK_END, id, 0, 0);
	mark(MK_INFO, id, 0, 0);

	calls(40, 0);
	struct relpoline_stats s0 = t_stats();
	id = nwindows++;
	mark(MK_BEGIN, id, W_PROMO, 0);
	t_epoch();
	mark(MK_END, id, 0, 0);
	struct relpoline_stats s1 = t_stats();
	mark(MK_INFO, id, (long)(s1.patch_passes - s0.patch_passes),
	     (long)(s1.stubs_emitted - s0.stubs_emitted));
	t_print_stats("promoted", &s1);
	CHECK(s1.sites_promoted >= s0.sites_promoted + NS, "sites_promoted %" PRIu64 " -> %" PRIu64,
	      s0.sites_promoted, s1.sites_promoted);
	CHECK(s1.patch_passes > s0.patch_passes, "promotion made no patch pass");

	idle_window("right after promotion", 0, 0, 1);
	idle_window("second idle", 0, 0, 3);
	idle_window("hits between the epochs", 100, 0, 2);

	/* Relearn, promote three-target stubs, hit them, then idle again. */
	CHECK(relpoline_relearn() == 0);
	t_epoch();
	calls(60, 1);
	t_epoch();
	calls(60, 1);
	struct relpoline_stats e = t_stats();
	CHECK(e.stub_hist[3] >= NS, "stub_hist[3] = %" PRIu64 " want >= %d", e.stub_hist[3], NS);
	idle_window("hits on 3-target stubs between the epochs", 60, 1, 2);
	idle_window("no calls at all", 0, 0, 5);
	e = t_stats();
	t_print_stats("end", &e);
	fflush(stdout);
	mark(MK_DONE, nwindows, 0, 0);
	return t_finish("t_idle det (traced)");
}

static int hold_pipe[2];

static void *thread_calls(void *arg)
{
	calls(50, 1);
	if (arg) {   /* stay alive, blocked, with a sample table */
		char c;
		while (read(hold_pipe[0], &c, 1) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

static void msleep(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

#define IDLE_MS 2500
#define MAX_IDLE_EPOCHS 16
#define WAKE_MS 500

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Returns once the worker has just run an epoch, so its next wait starts now; false after LIMIT ms. */
static int next_epoch(int limit_ms)
{
	uint64_t e = t_stats().epochs;
	double t0 = now_ms();
	while (now_ms() - t0 < limit_ms) {
		if (t_stats().epochs != e)
			return 1;
		msleep(1);
	}
	return 0;
}

/* A site no other window calls: its promotion is the one counted after idleness. */
SITE(8)

static int traced_worker(void)
{
	char buf[32] = "";
	relpoline_config_get("epoch_ms", buf, sizeof buf);
	CHECK(strcmp(buf, "10") == 0, "epoch_ms = \"%s\", want 10 for the worker mode", buf);
	buf[0] = 0;
	relpoline_config_get("thread", buf, sizeof buf);
	CHECK(strcmp(buf, "on") == 0, "thread = \"%s\", want on for the worker mode", buf);
	if (pipe(hold_pipe) < 0)
		DIE("pipe");
	/* Three threads with sample tables: this one, one that exits, one that stays. */
	calls(50, 1);
	pthread_t ta, tb;
	pthread_create(&ta, NULL, thread_calls, NULL);
	pthread_join(ta, NULL);
	pthread_create(&tb, NULL, thread_calls, (void *)1);
	for (int i = 0; i < 500 && t_stats().sites_promoted < NS; i++) {
		calls(50, 1);
		msleep(5);
	}
	struct relpoline_stats p = t_stats();
	CHECK(p.sites_promoted >= NS, "worker: sites_promoted %" PRIu64 " want %d", p.sites_promoted,
	      NS);
	calls(50, 1); /* hits */
	/* Two reaping rounds (64 epochs each) before the window: the exited thread's table is gone. */
	for (int i = 0; i < 130; i++)
		t_epoch();

	struct relpoline_stats a = t_stats();
	int id = nwindows++;
	mark(MK_BEGIN, id, W_WORKER, 0);
	msleep(IDLE_MS);
	mark(MK_END, id, 0, 0);
	struct relpoline_stats b = t_stats();
	mark(MK_INFO, id, (long)(b.epochs - a.epochs), 3);
	printf("worker window: %d ms idle, %" PRIu64 " epochs, %" PRIu64 " passes, %" PRIu64
	       " empty passes\n", IDLE_MS, b.epochs - a.epochs, b.patch_passes - a.patch_passes,
	       b.patch_passes_empty - a.patch_passes_empty);
	CHECK(b.epochs > a.epochs, "the worker ran no epoch in %d ms", IDLE_MS);
	CHECK(b.sites_promoted == a.sites_promoted && b.stubs_emitted == a.stubs_emitted &&
	      b.patch_passes == a.patch_passes, "the idle worker changed something");

	/* The worker now waits about 1 s at a time.  An API call wakes it at once. */
	CHECK(next_epoch(3000), "no epoch within 3 s after the window");
	uint64_t e0 = t_stats().epochs;
	double t0 = now_ms();
	CHECK(relpoline_config_set("pin_epochs", "500") == 0, "config_set");
	while (t_stats().epochs == e0 && now_ms() - t0 < 3000)
		msleep(1);
	double dt = now_ms() - t0;
	printf("worker: relpoline_config_set -> next epoch in %.1f ms\n", dt);
	CHECK(dt < WAKE_MS, "relpoline_config_set woke the dozing worker only after %.0f ms, want < %d",
	      dt, WAKE_MS);

	/* That epoch had no samples: the next wait is the longest again.  New hot calls end it. */
	uint64_t p0 = t_stats().sites_promoted;
	long ncalls = 0;
	int bad = 0;
	t0 = now_ms();
	while (t_stats().sites_promoted == p0 && now_ms() - t0 < 5000) {
		for (int i = 0; i < 100; i++)
			bad += site_8(fb, i) != (i + 2) * 2 + 8;
		ncalls += 100;
	}
	dt = now_ms() - t0;
	printf("worker: a new site promoted %.1f ms after its first call, %ld calls, after idleness\n",
	       dt, ncalls);
	CHECK(bad == 0, "%d wrong results at the new site", bad);
	CHECK(t_stats().sites_promoted > p0, "the new site was not promoted within 5 s");
	CHECK(dt < WAKE_MS, "the new site was promoted %.0f ms after its first call, want < %d: the "
	      "slow path did not wake the dozing worker", dt, WAKE_MS);

	CHECK(write(hold_pipe[1], "x", 1) == 1, "release");
	pthread_join(tb, NULL);
	t_print_stats("worker end", &b);
	fflush(stdout);
	mark(MK_DONE, nwindows, 0, 0);
	return t_finish("t_idle worker (traced)");
}

/* ---------------- the tracer ---------------- */

/* struct ptrace_syscall_info (linux/ptrace.h), which glibc's header does not give. */
struct sc_info {
	uint8_t op;
	uint8_t pad[3];
	uint32_t arch;
	uint64_t ip, sp;
	union {
		struct { uint64_t nr, args[6]; } entry;
		struct { int64_t rval; uint8_t is_error; } exit;
		struct { uint64_t nr, args[6]; uint32_t ret_data; } seccomp;
	};
};
#ifndef PTRACE_SYSCALL_INFO_ENTRY
#define PTRACE_SYSCALL_INFO_ENTRY 1
#endif

#define NR_MAX 512

static const char *sc_name(unsigned nr)
{
	switch (nr) {
#define N(x) case SYS_##x: return #x;
	N(read) N(write) N(open) N(close) N(mmap) N(mprotect) N(munmap) N(brk) N(rt_sigaction)
	N(rt_sigprocmask) N(ioctl) N(pread64) N(pwrite64) N(readv) N(writev) N(sched_yield)
	N(mremap) N(msync) N(madvise) N(nanosleep) N(getpid) N(clone) N(exit) N(kill)
	N(fcntl) N(ftruncate) N(gettimeofday) N(getpriority) N(prctl) N(gettid) N(tkill)
	N(futex) N(restart_syscall) N(clock_gettime) N(clock_nanosleep) N(exit_group) N(tgkill)
	N(openat) N(set_robust_list) N(memfd_create) N(membarrier) N(rseq) N(clone3)
	N(process_vm_readv) N(process_vm_writev) N(pkey_mprotect) N(getrandom) N(newfstatat)
	N(lseek) N(mincore) N(sigaltstack) N(pidfd_open) N(pidfd_send_signal)
#undef N
	default: return "?";
	}
}

struct window {
	int open, id, kind;
	pid_t tid;                 /* the thread that marked it */
	unsigned long n[NR_MAX], other, total, membarrier_sync;
	unsigned long futex_op[16];   /* futex calls by FUTEX_CMD_MASK op */
};

static struct {
	int fails, judged, done_windows, vdso_missing;
	struct window w;
	const char *mode;
} tr;

#define TFAIL(...)                                                                         \
	do {                                                                                   \
		tr.fails++;                                                                        \
		fprintf(stderr, "t_idle tracer (%s): check failed: ", tr.mode);                    \
		fprintf(stderr, __VA_ARGS__);                                                      \
		fputc('\n', stderr);                                                               \
	} while (0)

static void print_counts(const char *tag, const struct window *w)
{
	printf("  %s window %d: %lu syscalls%s", tr.mode, w->id, w->total, w->total ? ":" : "");
	for (unsigned nr = 0; nr < NR_MAX; nr++)
		if (w->n[nr])
			printf(" %u/%s x%lu", nr, sc_name(nr), w->n[nr]);
	if (w->other)
		printf(" (numbers >= %d) x%lu", NR_MAX, w->other);
	printf("%s%s\n", tag[0] ? "  - " : "", tag);
}

static void judge(const struct window *w, long a, long b)
{
	static const char *const kind_name[] = { "calibration", "promotion epoch", "idle epochs",
						 "idle worker" };
	tr.judged++;
	switch (w->kind) {
	case W_CAL:
		tr.vdso_missing = w->n[SYS_clock_gettime] > 0;
		print_counts(tr.vdso_missing ? "clock_gettime enters the kernel here (no vDSO "
			     "clock): not counted in idle windows" : "calibration: clock_gettime "
			     "is served by the vDSO", w);
		break;
	case W_PROMO:
		print_counts(kind_name[w->kind], w);
		printf("  promotion: %ld patch pass(es), %ld stubs, %lu membarrier(SYNC_CORE)\n", a, b,
		       w->membarrier_sync);
		if (w->n[SYS_mprotect] || w->n[SYS_pkey_mprotect])
			TFAIL("the promotion epoch made %lu mprotect calls: since ABI 3 code is never "
			      "made writable", w->n[SYS_mprotect] + w->n[SYS_pkey_mprotect]);
		if ((long)w->membarrier_sync > a)
			TFAIL("the promotion epoch made %lu membarrier(SYNC_CORE) for %ld patch pass(es): "
			      "at most one per pass", w->membarrier_sync, a);
		break;
	case W_IDLE: {
		unsigned long n = w->total;
		if (tr.vdso_missing)
			n -= w->n[SYS_clock_gettime] + w->n[SYS_gettimeofday];
		print_counts(n ? "WRONG: idle epochs must make no syscall" : "", w);
		if (n)
			TFAIL("window %d (%ld idle epochs): %lu syscalls, want 0 (seed 001)", w->id, a, n);
		break;
	}
	case W_WORKER: {
		long epochs = a, tables = b;
		long rounds = epochs / 64 + 1;
		print_counts(kind_name[w->kind], w);
		printf("  worker: %lu syscalls over %ld epochs = %.2f per epoch (reaping rounds <= %ld, "
		       "tables %ld)\n", w->total, epochs, epochs ? (double)w->total / epochs : 0.0,
		       rounds, tables);
		static const char *const fop[16] = { "wait", "wake", [9] = "wait_bitset",
						     [10] = "wake_bitset" };
		printf("  worker: futex ops:");
		for (int i = 0; i < 16; i++)
			if (w->futex_op[i])
				printf(" %d/%s x%lu", i, fop[i] ? fop[i] : "?", w->futex_op[i]);
		printf("\n");
		if (epochs < 1)
			TFAIL("the window covered no epoch: is the worker alive?");
		if (epochs > MAX_IDLE_EPOCHS)
			TFAIL("the idle worker ran %ld epochs in %d ms, want <= %d: it does not back off",
			      epochs, IDLE_MS, MAX_IDLE_EPOCHS);
		if ((long)(w->n[SYS_futex] + w->n[SYS_clock_nanosleep] + w->n[SYS_nanosleep]) > epochs + 1)
			TFAIL("the idle worker made %lu futex and sleep calls for %ld epochs: more than one "
			      "wait per epoch", w->n[SYS_futex] + w->n[SYS_clock_nanosleep] + w->n[SYS_nanosleep],
			      epochs);
		static const int wait_ok[] = { SYS_futex, SYS_clock_nanosleep, SYS_nanosleep,
					       SYS_sched_yield, SYS_restart_syscall, SYS_clock_gettime,
					       SYS_gettimeofday };
		static const int reap[] = { SYS_getpid, SYS_tgkill, SYS_tkill, SYS_gettid };
		for (unsigned nr = 0; nr < NR_MAX; nr++) {
			if (!w->n[nr])
				continue;
			int ok = 0;
			for (size_t i = 0; i < sizeof wait_ok / sizeof wait_ok[0]; i++)
				ok |= (int)nr == wait_ok[i];
			for (size_t i = 0; i < sizeof reap / sizeof reap[0]; i++)
				if ((int)nr == reap[i]) {
					ok = 1;
					if ((long)w->n[nr] > rounds * tables)
						TFAIL("the idle worker made %lu %s calls in %ld epochs: more than "
						      "one per thread table (%ld) per 64 epochs", w->n[nr],
						      sc_name(nr), epochs, tables);
				}
			if (!ok)
				TFAIL("the idle worker made %lu syscall(s) %u (%s): an idle worker only waits "
				      "(and reaps every 64 epochs)", w->n[nr], nr, sc_name(nr));
		}
		if (w->other)
			TFAIL("the idle worker made %lu syscalls numbered >= %d", w->other, NR_MAX);
		if (epochs && w->total > (unsigned long)epochs + 1 + 2 * (unsigned long)(rounds * tables))
			TFAIL("the idle worker made %lu syscalls in %ld epochs, want <= one per epoch "
			      "(+1, + the reaper's)", w->total, epochs);
		break;
	}
	}
	fflush(stdout);
}

static void on_entry(pid_t tid, const struct sc_info *si)
{
	uint64_t nr = si->entry.nr;
	const uint64_t *g = si->entry.args;
	if (nr == SYS_getpriority && g[0] >= MK_BEGIN && g[0] <= MK_DONE) {
		switch (g[0]) {
		case MK_BEGIN:
			if (tr.w.open)
				TFAIL("window %d opened inside window %d", (int)g[1], tr.w.id);
			memset(&tr.w, 0, sizeof tr.w);
			tr.w.open = 1;
			tr.w.id = (int)g[1];
			tr.w.kind = (int)g[2];
			tr.w.tid = tid;
			break;
		case MK_END:
			if (!tr.w.open || tr.w.id != (int)g[1])
				TFAIL("window %d closed but not open", (int)g[1]);
			tr.w.open = 0;
			break;
		case MK_INFO:
			if (tr.w.id == (int)g[1])
				judge(&tr.w, (long)g[2], (long)g[3]);
			break;
		case MK_DONE:
			tr.done_windows = (int)g[1];
			break;
		}
		return;
	}
	if (!tr.w.open)
		return;
	if (tr.w.kind == W_WORKER && tid == tr.w.tid)
		return;   /* the main thread sleeping: not the runtime's */
	tr.w.total++;
	if (nr < NR_MAX)
		tr.w.n[nr]++;
	else
		tr.w.other++;
	if (nr == SYS_membarrier && g[0] == MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE)
		tr.w.membarrier_sync++;
	if (nr == SYS_futex)
		tr.w.futex_op[g[1] & 15]++;
}

static int trace(char **argv, const char *mode)
{
	memset(&tr, 0, sizeof tr);
	tr.mode = mode;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		DIE("fork: %s", strerror(errno));
	if (pid == 0) {
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0) {
			perror("PTRACE_TRACEME");
			_exit(126);
		}
		raise(SIGSTOP);
		setenv("RELPOLINE_EPOCH_MS", strcmp(mode, "worker") ? "0" : "10", 1);
		setenv("RELPOLINE_PROMOTE_MIN", "16", 1);
		if (!strcmp(mode, "worker"))   /* the background worker, not epochs on the slow path */
			setenv("RELPOLINE_THREAD", "on", 1);
		char *args[] = { argv[0], (char *)"traced", (char *)mode, NULL };
		execv("/proc/self/exe", args);
		_exit(127);
	}
	int st, status = -1;
	if (waitpid(pid, &st, __WALL) != pid || !WIFSTOPPED(st))
		DIE("the traced child did not stop (status %#x)", st);
	if (ptrace(PTRACE_SETOPTIONS, pid, NULL,
		   (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC |
				  PTRACE_O_EXITKILL)) < 0)
		DIE("PTRACE_SETOPTIONS: %s", strerror(errno));
	ptrace(PTRACE_SYSCALL, pid, NULL, NULL);
	unsigned long stops = 0;
	for (;;) {
		pid_t tid = waitpid(-1, &st, __WALL);
		if (tid < 0) {
			if (errno == EINTR)
				continue;
			break;   /* ECHILD: every thread is gone */
		}
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			if (tid == pid)
				status = st;
			continue;
		}
		if (!WIFSTOPPED(st))
			continue;
		int sig = WSTOPSIG(st), inject = 0;
		stops++;
		if (sig == (SIGTRAP | 0x80)) {
			struct sc_info si;
			memset(&si, 0, sizeof si);
			if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof si, &si) > 0 &&
			    si.op == PTRACE_SYSCALL_INFO_ENTRY)
				on_entry(tid, &si);
		} else if (st >> 16) {
			/* clone/exec event stop: nothing to deliver */
		} else if (sig == SIGSTOP) {
			/* a new thread's first stop (or ours at start): swallow it */
		} else {
			inject = sig;
		}
		ptrace(PTRACE_SYSCALL, tid, NULL, (void *)(long)inject);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		TFAIL("the traced workload ended with status %#x", status);
	if (tr.done_windows == 0 || tr.judged != tr.done_windows)
		TFAIL("%d of %d windows seen by the tracer (%lu stops): the marks did not arrive",
		      tr.judged, tr.done_windows, stops);
	printf("t_idle %s: %d windows judged, %lu ptrace stops, %s\n", mode, tr.judged, stops,
	       tr.fails ? "FAILED" : "ok");
	fflush(stdout);
	return tr.fails;
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "traced") == 0)
		return strcmp(argv[2], "worker") == 0 ? traced_worker() : traced_det(argv);
	const char *which = argc > 1 ? argv[1] : "all";
	int bad = 0;
	if (strcmp(which, "worker") != 0)
		bad += trace(argv, "det") != 0;
	if (strcmp(which, "det") != 0)
		bad += trace(argv, "worker") != 0;
	if (bad)
		fprintf(stderr, "t_idle: %d mode(s) failed\n", bad);
	else
		printf("t_idle: ok\n");
	return bad != 0;
}
