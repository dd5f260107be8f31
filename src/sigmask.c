/*
 * Keeping SIGTRAP deliverable (shared runtime only).
 *
 * The patch protocol (patch.c) relies on a thread that runs into a site
 * mid-patch getting SIGTRAP.  A thread that blocks SIGTRAP there is killed
 * by the kernel instead - and "block every signal in helper threads" is a
 * common idiom.  So while relpoline can patch, SIGTRAP cannot be blocked:
 * these interpose the libc calls that set a thread's mask and take SIGTRAP
 * out of any set that would block it.  A program that really needs SIGTRAP
 * blocked runs with RELPOLINE_MODE=off.  The static archive does not
 * interpose (a static link cannot); docs/design.md says so.
 */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "internal.h"

typedef int (*mask_fn)(int, const sigset_t *, sigset_t *);

static const sigset_t *filter(int how, const sigset_t *set, sigset_t *copy)
{
	if (!set || how == SIG_UNBLOCK || rp_cfg.mode != RP_MODE_ON || !sigismember(set, SIGTRAP))
		return set;
	*copy = *set;
	sigdelset(copy, SIGTRAP);
	return copy;
}

/* Call libc's NAME (looked up once) with SIGTRAP taken out of SET. */
static int forward(mask_fn *real, const char *name, bool posix_style, int how,
		   const sigset_t *set, sigset_t *old)
{
	mask_fn f = __atomic_load_n(real, __ATOMIC_ACQUIRE);
	if (!f) {
		f = (mask_fn)dlsym(RTLD_NEXT, name);
		__atomic_store_n(real, f, __ATOMIC_RELEASE);
	}
	sigset_t copy;
	set = filter(how, set, &copy);
	if (f)
		return f(how, set, old);
	/* No libc below us (cannot happen in a dynamic link): the raw syscall. */
	if (syscall(SYS_rt_sigprocmask, how, set, old, 8) < 0)
		return posix_style ? errno : -1;
	return 0;
}

RP_API int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	static mask_fn real;
	return forward(&real, "pthread_sigmask", true, how, set, old);
}

RP_API int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	static mask_fn real;
	return forward(&real, "sigprocmask", false, how, set, old);
}
