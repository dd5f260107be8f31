/*
 * Process-wide runtime: start-up, the background worker, fork, and the
 * public control API.  One runtime per process, however many modules
 * carry thunks: modules link librelpoline.so, or a static executable
 * links librelpoline.a.
 *
 * Threads: the worker wakes every epoch_ms and runs an epoch under
 * rp_lock; API calls take the same lock.  Application threads never take
 * it on their indirect calls (record.c is lock-free); they take it only in
 * module constructors and destructors.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif
#include "internal.h"

pthread_mutex_t rp_lock = PTHREAD_MUTEX_INITIALIZER;
bool rp_enabled;
bool rp_can_patch = true;
bool rp_exiting;
uint64_t rp_start_ns;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_cond_t wake;
static bool worker_running;
static bool patch_ready;

uint64_t rp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The thunks' flag byte every module should have now (under rp_lock). */
uint8_t rp_flags_wanted(void)
{
	uint8_t f = 0;
	if (rp_cfg.mode == RP_MODE_ON && rp_cfg.fallback == RP_FB_INDIRECT)
		f |= RP_F_INDIRECT;
	if (rp_enabled && rp_can_patch)
		f |= RP_F_LEARN;
	return f;
}

/* Under rp_lock.  The membarrier registration is slow: done once, off the start-up path. */
static void ensure_patch_ready(void)
{
	if (patch_ready || !rp_enabled)
		return;
	patch_ready = true;
	if (rp_patch_init() < 0) {
		rp_can_patch = false;
		rp_module_set_flags(rp_flags_wanted());
	}
}

int rp_epoch_locked(void)
{
	ensure_patch_ready();
	uint64_t t0 = rp_now_ns();
	rp_modules_parse_new();
	rp_policy_epoch();
	rp_stats.epochs++;
	rp_stats.worker_ns += rp_now_ns() - t0;
	return rp_can_patch || !rp_enabled ? 0 : -ENOTSUP;
}

static void *worker_main(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&rp_lock);
	/* First epoch at once: reads the relocation lists, so tail sites learn early. */
	if (!rp_exiting && rp_enabled)
		rp_epoch_locked();
	while (!rp_exiting && rp_enabled && rp_cfg.epoch_ms > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)rp_cfg.epoch_ms * 1000000ull;
		ts.tv_sec += (time_t)(ns / 1000000000ull);
		ts.tv_nsec = (long)(ns % 1000000000ull);
		pthread_cond_timedwait(&wake, &rp_lock, &ts);
		if (rp_exiting || !rp_enabled || rp_cfg.epoch_ms <= 0)
			break;
		rp_epoch_locked();
	}
	worker_running = false;
	pthread_mutex_unlock(&rp_lock);
	return NULL;
}

/* Under rp_lock. */
static void start_worker(void)
{
	if (worker_running || !rp_enabled || rp_cfg.epoch_ms <= 0 || rp_exiting)
		return;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	pthread_t t;
	if (pthread_create(&t, &at, worker_main, NULL) == 0) {
		worker_running = true;
		pthread_setname_np(t, "relpoline");
	} else {
		rp_warn("cannot start the worker thread: sites are promoted only by relpoline_epoch()");
	}
	pthread_attr_destroy(&at);
}

/* fork: never in the middle of a pass; the child gets a worker of its own. */
static void fork_prepare(void) { pthread_mutex_lock(&rp_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&rp_lock); }
static void fork_child(void)
{
	rp_learn_reset_thread();
	rp_modules_after_fork();   /* stub arenas are shared memory: take private copies */
	worker_running = false;
	patch_ready = false;    /* membarrier registration belongs to the parent's mm */
	start_worker();         /* still holding rp_lock, taken by fork_prepare */
	pthread_mutex_unlock(&rp_lock);
}

/*
 * Exit.  Handlers run in reverse order of registration, and the one
 * registered in our constructor runs after the loader's _dl_fini, which
 * runs module destructors: too late to tell them that the process is
 * exiting (they would free stubs other threads still run).  So
 * rp_note_exit() is also registered when the main program registers, which
 * happens after _dl_fini was registered, and so runs before it.
 */
static void mark_exiting(void)
{
	pthread_mutex_lock(&rp_lock);
	rp_exiting = true;
	pthread_cond_broadcast(&wake);
	pthread_mutex_unlock(&rp_lock);
}

static void at_exit(void)
{
	mark_exiting();
	rp_report_at_exit();
}

void rp_note_main_program(void)
{
	static bool done;
	if (!done) {
		done = true;
		atexit(mark_exiting);
	}
}

static void init_once(void)
{
	rp_start_ns = rp_now_ns();
	rp_config_load_env();
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wake, &ca);
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

/* ---- public API ---- */

RP_API const char *relpoline_version(void)
{
	return "0.1.0";
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
	if (on && !rp_can_patch)
		return -ENOTSUP;
	rp_enabled = on;
	rp_policy_demote_all();
	rp_module_set_flags(rp_flags_wanted());
	if (on) {
		ensure_patch_ready();
		start_worker();
	}
	int r = rp_policy_sync();
	if (!on)
		pthread_cond_broadcast(&wake);
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
		if (r == 0 && rp_policy_sync() < 0)   /* the fallback of pinned sites may have changed */
			r = -ENOTSUP;
		start_worker();
		pthread_cond_broadcast(&wake);
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
