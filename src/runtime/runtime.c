/*
 * Process-wide runtime: start-up, what runs epochs, fork, and the public
 * control API.  One runtime per process, however many modules carry
 * thunks: modules link librelpoline.so, or a static executable links
 * librelpoline.a.
 *
 * Who runs epochs (always under rp_lock; API calls take the same lock):
 *  - RELPOLINE_THREAD=on: a worker thread wakes every epoch_ms while the
 *    program takes samples, and backs off (doubling its wait up to
 *    IDLE_MAX_MS) while it takes none; see worker_main.  It blocks every
 *    signal, so process-directed signals never land on it.
 *  - RELPOLINE_THREAD=off (default): no thread at all.  An application thread on the
 *    slow path runs the epoch itself once it is due (record.c checks the
 *    TSC every RP_INLINE_CHECK slow-path calls), through
 *    relpoline__epoch_inline (epoch_inline.S), which saves the extended
 *    state, blocks signals and switches to a private stack; it only
 *    try-locks rp_lock, so a thread that finds an epoch running goes on.
 *    When nothing reaches the slow path nothing runs: an idle or fully
 *    promoted program costs nothing.
 * Application threads never take rp_lock on their indirect calls
 * (record.c is lock-free); they take it in module constructors and
 * destructors, and try it for an inline epoch.
 */
#include <cpuid.h>
#include <errno.h>
#include <linux/futex.h>
#include <stddef.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif
#include "internal.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool worker_running;
static bool patch_ready;

/*
 * RELPOLINE_THREAD=on: the worker waits on this word (a futex), not on a
 * condition variable: glibc relocks the mutex after a timed wait as
 * contended, so every unlock that followed made a FUTEX_WAKE that woke
 * nobody, a second syscall per idle epoch.  Whoever wants an epoch now
 * (an API call, exit, a slow-path call after idleness: epoch_inline.S)
 * increments the word, then wakes the worker.  The worker reads it under
 * rp_lock and waits only while it still holds that value, so a wake
 * between its unlock and its wait is never lost.
 */
uint32_t rp_worker_seq;
/*
 * Read by epoch_inline.S: nonzero while epoch_due means "wake the worker"
 * (RELPOLINE_THREAD=on, the worker in a backed-off wait) rather than "run
 * an epoch on this thread".  Written under rp_lock, before epoch_due when
 * set and after it when cleared.
 */
int rp_inline_wake;
static bool worker_dozing;         /* the worker is in a wait longer than epoch_ms (under rp_lock) */
_Static_assert(offsetof(struct rp_shared, epoch_due) == 16, "epoch_inline.S reads epoch_due at +16");

/* The longest wait of an idle worker ("about 1 s"); never shorter than epoch_ms. */
#define IDLE_MAX_MS 1024

/* RELPOLINE_THREAD=off: read by epoch_inline.S. */
int rp_inline_busy;
uint64_t rp_inline_stack;          /* top of the private stack, 0 if none */
uint64_t rp_inline_xsave_size;
uint64_t rp_inline_allsigs = ~0ull;
uint64_t rp_inline_oldmask;
static uint64_t tsc0;              /* TSC at rp_start_ns, to turn epoch_ms into TSC ticks */

/* Under rp_lock.  The membarrier registration is slow: done once, off the start-up path. */
static void ensure_patch_ready(void)
{
	if (patch_ready || !rp_enabled)
		return;
	patch_ready = true;
	rp_patch_init();
}

/*
 * When the slow path should act next (under rp_lock), one epoch_ms from
 * now: with RELPOLINE_THREAD=off it runs the epoch itself; with =on, while
 * the worker dozes, it wakes the worker (epoch_inline.S), so a program that
 * starts calling again after idleness waits about epoch_ms for its epoch,
 * not the rest of a second.  The recorder looks at the TSC only every
 * RP_INLINE_CHECK slow-path calls, so this costs the hot path nothing.
 */
static void schedule_inline(void)
{
	uint64_t due = 0;
	bool wake = rp_cfg.thread && worker_dozing;
	if (rp_enabled && !rp_exiting && rp_cfg.epoch_ms > 0 && (wake || (!rp_cfg.thread && rp_inline_stack))) {
		uint64_t tsc = __builtin_ia32_rdtsc(), ns = rp_now_ns();
		/* Ticks per ns measured since start; until 1 ms has passed, assume 1 (earlier is harmless). */
		uint64_t dns = ns - rp_start_ns;
		double per_ns = dns > 1000000 && tsc > tsc0 ? (double)(tsc - tsc0) / (double)dns : 1.0;
		due = tsc + (uint64_t)(per_ns * (double)rp_cfg.epoch_ms * 1e6);
	}
	if (due && wake)
		__atomic_store_n(&rp_inline_wake, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&relpoline__shared.epoch_due, due, __ATOMIC_RELAXED);
	if (!(due && wake))
		__atomic_store_n(&rp_inline_wake, 0, __ATOMIC_RELAXED);
}

int rp_epoch_locked(void)
{
	ensure_patch_ready();
	uint64_t t0 = rp_now_ns();
	rp_modules_reap();
	rp_policy_epoch();
	rp_profile_tick();
	rp_stats.epochs++;
	rp_stats.worker_ns += rp_now_ns() - t0;
	schedule_inline();
	return 0;
}

/*
 * Called from relpoline__epoch_inline on an application thread, on the
 * private stack, with every signal blocked and the extended state saved.
 * The thread may be anywhere in the program (inside its malloc, holding
 * its locks): the epoch takes no lock but rp_lock, and only tries it.
 */
void rp_inline_epoch(void)
{
	int e = errno;   /* the program's errno, maybe not read yet */
	if (pthread_mutex_trylock(&rp_lock) == 0) {
		if (rp_enabled && !rp_exiting && __builtin_ia32_rdtsc() >= relpoline__shared.epoch_due &&
		    relpoline__shared.epoch_due)
			rp_epoch_locked();
		pthread_mutex_unlock(&rp_lock);
	}
	errno = e;
}

static bool inline_oom;   /* the last inline_setup failed for want of memory, and said so */

/* The private stack and XSAVE area size for inline epochs; false if this CPU cannot, or no memory. */
static bool inline_setup(void)
{
	unsigned a, b, c, d;
	if (rp_inline_stack)
		return true;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || __get_cpuid_max(0, NULL) < 0xd)
		return false;
	__cpuid_count(0xd, 0, a, b, c, d);
	if (b < 576 || b > (1u << 20))
		return false;
	size_t size = 256 * 1024 + ((b + 64 + 4095) & ~(size_t)4095);
	RP_STAT_ADD(syscalls, 1);
	uint8_t *p = mmap(NULL, size + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			  -1, 0);
	if (p == MAP_FAILED) {
		/* Not a CPU that cannot: say what it is, once (start_worker retries at every API call). */
		inline_oom = errno == ENOMEM;
		if (inline_oom)
			rp_oom(size + 4096, "the private stack for epochs on the program's threads: sites are "
			       "promoted only by relpoline_epoch()");
		return false;
	}
	inline_oom = false;
	RP_STAT_ADD(syscalls, 1);
	mprotect(p, 4096, PROT_NONE);   /* guard page: an overflow faults instead of corrupting */
	rp_inline_xsave_size = b + 64;
	rp_inline_stack = ((uint64_t)(uintptr_t)(p + 4096 + size)) & ~63ull;
	return true;
}

/* Under rp_lock: make the worker run an epoch now (it may be in a long wait). */
static void worker_kick(void)
{
	if (!__atomic_load_n(&worker_running, __ATOMIC_RELAXED))
		return;
	int e = errno;
	__atomic_fetch_add(&rp_worker_seq, 1, __ATOMIC_RELEASE);
	syscall(SYS_futex, &rp_worker_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	errno = e;
}

/* Under rp_lock: the worker should go on running epochs. */
static bool worker_wanted(void)
{
	return !rp_exiting && rp_enabled && rp_cfg.epoch_ms > 0 && rp_cfg.thread;
}

/* Under rp_lock: one epoch; true if no thread reached the slow path since the last one. */
static bool worker_epoch(void)
{
	uint64_t before = rp_stats.records + rp_stats.records_dropped;
	rp_epoch_locked();
	return rp_stats.records + rp_stats.records_dropped == before;
}

/*
 * The worker: one futex wait per epoch and nothing else (the epoch itself
 * makes no syscall when it has nothing to change; the table reaper's
 * tgkill runs every 64th epoch).  An epoch that aggregated no sample
 * doubles the next wait, up to IDLE_MAX_MS; one with samples brings it
 * back to epoch_ms.  While the wait is longer than epoch_ms the slow path
 * may wake it (schedule_inline), so the first epoch after idleness comes
 * about epoch_ms after the first slow-path calls, not up to a second later.
 * pin_epochs still counts periods of epoch_ms: the epoch after a doze ages
 * the sites by the periods it covered (rp_epoch_periods, policy.c), so a
 * pinned site is retried on the same clock in an idle program.
 */
static void *worker_main(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	prctl(PR_SET_NAME, "relpoline");   /* not pthread_setname_np: it opens a file for another thread */
	pthread_mutex_lock(&rp_lock);
	/* First epoch at once: samples taken since start are decided without waiting a period. */
	bool idle = false;
	long wait_ms = 0;
	if (!rp_exiting && rp_enabled)
		idle = worker_epoch();
	while (worker_wanted()) {
		long cap = rp_cfg.epoch_ms > IDLE_MAX_MS ? rp_cfg.epoch_ms : IDLE_MAX_MS;
		if (!idle || wait_ms < rp_cfg.epoch_ms)
			wait_ms = rp_cfg.epoch_ms;
		else
			wait_ms = wait_ms * 2 < cap ? wait_ms * 2 : cap;
		worker_dozing = wait_ms > rp_cfg.epoch_ms;
		schedule_inline();
		uint32_t seq = __atomic_load_n(&rp_worker_seq, __ATOMIC_ACQUIRE);
		pthread_mutex_unlock(&rp_lock);
		struct timespec ts = { (time_t)(wait_ms / 1000), (wait_ms % 1000) * 1000000L };
		uint64_t t0 = rp_now_ns();
		syscall(SYS_futex, &rp_worker_seq, FUTEX_WAIT_PRIVATE, seq, &ts, NULL, 0);
		uint64_t slept_ms = (rp_now_ns() - t0) / 1000000u;
		pthread_mutex_lock(&rp_lock);
		bool dozed = worker_dozing;
		worker_dozing = false;
		if (!worker_wanted())
			break;
		/* How many epoch_ms periods a doze stood for. */
		uint64_t periods = dozed ? slept_ms / (uint64_t)rp_cfg.epoch_ms : 1;
		rp_epoch_periods = periods < 1 ? 1 : periods > UINT32_MAX ? UINT32_MAX : (uint32_t)periods;
		idle = worker_epoch();
		rp_epoch_periods = 1;
	}
	worker_running = false;
	worker_dozing = false;
	schedule_inline();   /* RELPOLINE_THREAD=off again: the slow path runs epochs */
	pthread_mutex_unlock(&rp_lock);
	return NULL;
}

/* Under rp_lock: whatever runs epochs in this mode. */
static void start_worker(void)
{
	if (!rp_cfg.thread) {
		static bool warned;
		if (rp_enabled && !inline_setup() && !inline_oom && !warned) {
			warned = true;
			rp_warn("RELPOLINE_THREAD=off needs XSAVE and a private stack: sites are promoted "
				"only by relpoline_epoch()");
		}
		/* Every API call comes here (rp_init): it must not push a due epoch back. */
		if (!relpoline__shared.epoch_due || !rp_enabled)
			schedule_inline();
		return;
	}
	if (worker_running || !rp_enabled || rp_cfg.epoch_ms <= 0 || rp_exiting)
		return;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	pthread_t t;
	int e = pthread_create(&t, &at, worker_main, NULL);
	pthread_attr_destroy(&at);
	if (e == 0) {
		worker_running = true;
		return;
	}
	/*
	 * Every API call tries again; one warning.  glibc turns the ENOMEM of
	 * its stack mmap into EAGAIN, as it does a thread limit: a mapping
	 * twice the stack's size (the stack, its guard and TLS, with room to
	 * spare) tells the two apart.
	 */
	static bool warned;
	if (warned)
		return;
	warned = true;
	const size_t stack = 512 * 1024;
	void *p = e == EAGAIN ? mmap(NULL, stack, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
	if (p != MAP_FAILED)
		munmap(p, stack);
	if (e == EAGAIN && p == MAP_FAILED && errno == ENOMEM)
		rp_oom(256 * 1024, "the worker thread's stack: sites are promoted only by relpoline_epoch()");
	else
		rp_warn("cannot start the worker thread (%s): sites are promoted only by relpoline_epoch()",
			rp_strerror(e));
}

/* fork: never in the middle of a pass; the child gets a worker of its own. */
static void fork_prepare(void) { pthread_mutex_lock(&rp_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&rp_lock); }
static void fork_child(void)
{
	rp_learn_reset_thread();
	rp_modules_after_fork();   /* stub arenas are shared memory: take private copies */
	worker_running = false;
	worker_dozing = false;  /* the parent's worker, not ours */
	patch_ready = false;    /* membarrier registration belongs to the parent's mm */
	rp_inline_busy = 0;     /* only the forking thread exists; it was not in an epoch */
	schedule_inline();
	start_worker();         /* still holding rp_lock, taken by fork_prepare */
	pthread_mutex_unlock(&rp_lock);
}

/*
 * Exit: stop the worker and print the stats.  Module destructors may run
 * before this (the loader's _dl_fini) while other threads still run the
 * modules' cells and stubs; they do not unmap anything (module.c).
 */
static void mark_exiting(void)
{
	pthread_mutex_lock(&rp_lock);
	rp_exiting = true;
	schedule_inline();
	worker_kick();
	pthread_mutex_unlock(&rp_lock);
}

static void at_exit(void)
{
	mark_exiting();
	pthread_mutex_lock(&rp_lock);
	rp_profile_save();   /* what module departures have not saved already */
	pthread_mutex_unlock(&rp_lock);
	rp_report_at_exit();
}

static void init_once(void)
{
	rp_start_ns = rp_now_ns();
	tsc0 = __builtin_ia32_rdtsc();
	rp_config_load_env();
	rp_enabled = rp_cfg.mode == RP_MODE_ON;
	if (rp_enabled && RUNNING_ON_VALGRIND) {
		/* valgrind would keep running its translation of the old bytes. */
		rp_warn("running under valgrind: plain retpolines, no patching");
		rp_enabled = false;
	}
	atexit(at_exit);
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void rp_init(void)
{
	pthread_once(&once, init_once);
	if (rp_enabled) {
		pthread_mutex_lock(&rp_lock);
		start_worker();
		pthread_mutex_unlock(&rp_lock);
	}
}

__attribute__((constructor)) static void rp_ctor(void) { pthread_once(&once, init_once); }

/* ---- the module half's entry points (module_ctor.c) ---- */

RP_API void relpoline__register_module(struct rp_module_desc *d)
{
	rp_init();
	if (d->abi != RP_ABI || d->nregs != RP_NREGS) {
		rp_warn("a module was built for another relpoline ABI (%u, runtime %u): "
			"it keeps plain retpolines", d->abi, RP_ABI);
		return;
	}
	/*
	 * Located on the stack outside rp_lock (the loader's lock is taken
	 * there), entered under it: every allocation of the runtime happens
	 * under rp_lock, so an epoch that a signal handler's indirect call
	 * runs on this thread (RELPOLINE_THREAD=off) can never find the
	 * allocator's own lock taken by the code it interrupted.
	 */
	struct rp_module tmp;
	if (!rp_module_locate(d, &tmp)) {
		rp_warn("cannot find the module of thunk %p: it keeps plain retpolines", d->thunk[0]);
		return;
	}
	pthread_mutex_lock(&rp_lock);
	rp_module_arrive(&tmp);
	pthread_mutex_unlock(&rp_lock);
}

RP_API void relpoline__unregister_module(struct rp_module_desc *d)
{
	pthread_mutex_lock(&rp_lock);
	if (d->rt)
		rp_module_depart(d->rt);
	pthread_mutex_unlock(&rp_lock);
}

/* ---- public API ---- */

RP_API const char *relpoline_version(void)
{
	return RP_VERSION;
}

RP_API int relpoline_epoch(void)
{
	rp_init();
	pthread_mutex_lock(&rp_lock);
	int r = rp_epoch_locked();
	pthread_mutex_unlock(&rp_lock);
	return r;
}

static int set_enabled_locked(bool on)
{
	rp_enabled = on;
	rp_policy_demote_all();
	rp_module_set_flags(rp_flags_wanted());
	if (on) {
		ensure_patch_ready();
		start_worker();
	}
	int r = rp_policy_sync();
	if (!on) {
		schedule_inline();
		worker_kick();
	}
	return r < 0 ? r : 0;
}

RP_API int relpoline_disable(void)
{
	rp_init();
	pthread_mutex_lock(&rp_lock);
	int r = set_enabled_locked(false);
	pthread_mutex_unlock(&rp_lock);
	return r;
}

RP_API int relpoline_enable(void)
{
	rp_init();
	pthread_mutex_lock(&rp_lock);
	int r = set_enabled_locked(true);
	pthread_mutex_unlock(&rp_lock);
	return r;
}

RP_API int relpoline_relearn(void)
{
	rp_init();
	pthread_mutex_lock(&rp_lock);
	rp_policy_demote_all();
	int r = rp_policy_sync();
	pthread_mutex_unlock(&rp_lock);
	return r < 0 ? r : 0;
}

RP_API int relpoline_config_set(const char *name, const char *value)
{
	if (!name || !value)
		return -EINVAL;
	rp_init();
	pthread_mutex_lock(&rp_lock);
	long old_mode = rp_cfg.mode;
	int r = rp_config_set(name, value, false);
	if (r == 0) {
		if (rp_cfg.mode != old_mode)
			r = set_enabled_locked(rp_cfg.mode == RP_MODE_ON);
		else
			rp_module_set_flags(rp_flags_wanted());
		rp_policy_sync();   /* the fallback of pinned sites may have changed */
		start_worker();
		worker_kick();
	}
	pthread_mutex_unlock(&rp_lock);
	return r;
}

RP_API int relpoline_config_get(const char *name, char *buf, size_t len)
{
	if (!name || !buf || !len)
		return -EINVAL;
	rp_init();
	pthread_mutex_lock(&rp_lock);
	int r = rp_config_get(name, buf, len);
	pthread_mutex_unlock(&rp_lock);
	return r;
}

RP_API int relpoline_stats_get(struct relpoline_stats *st)
{
	if (!st || st->size < sizeof(uint64_t))
		return -EINVAL;
	rp_init();
	uint64_t size = st->size < sizeof(*st) ? st->size : sizeof(*st);
	pthread_mutex_lock(&rp_lock);
	struct relpoline_stats copy = rp_stats;
	pthread_mutex_unlock(&rp_lock);
	copy.size = size;
	memcpy(st, &copy, size);
	return 0;
}
