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

RP_API int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	static mask_fn real;
	if (!real)
		real = (mask_fn)dlsym(RTLD_NEXT, "pthread_sigmask");
	sigset_t copy;
	if (!real)
		return (int)syscall(SYS_rt_sigprocmask, how, filter(how, set, &copy), old, 8) ? errno : 0;
	return real(how, filter(how, set, &copy), old);
}

RP_API int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	static mask_fn real;
	if (!real)
		real = (mask_fn)dlsym(RTLD_NEXT, "sigprocmask");
	sigset_t copy;
	if (!real)
		return (int)syscall(SYS_rt_sigprocmask, how, filter(how, set, &copy), old, 8);
	return real(how, filter(how, set, &copy), old);
}
