/*
 * Where the runtime's messages go (RELPOLINE_LOG): stderr, a file opened
 * and closed around each message, or the system log.  Runs on whatever
 * thread has something to say: an application thread at start-up (the
 * constructor) and at exit, the worker, or an epoch run inline on an
 * application thread with its signals blocked.
 *
 * No stdio (FILE streams allocate with the application's malloc) and no
 * openlog/syslog from libc: those keep a descriptor open between calls and
 * share their openlog state (ident, facility, the socket) with the program,
 * which may use them itself.  Instead every message gets its own datagram
 * socket, opened, sent on and closed here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "internal.h"

/*
 * The syslog priority is facility * 8 + severity; facility 1 is user-level
 * messages, severity 4 warning, 7 debug (RFC 3164, section 4.1.1).
 */
#define SYSLOG_USER (1 << 3)
#define SEV_WARNING 4
#define SEV_DEBUG 7

/*
 * One datagram "<PRI>relpoline[PID]: TEXT" to /dev/log.  It carries no
 * timestamp or host name: a receiver fills in those a message lacks (RFC
 * 3164, section 4.3.2), as journald and rsyslog do.  MSG_DONTWAIT: with the
 * daemon's queue full the message goes to stderr rather than block the
 * program, possibly under rp_lock.  Returns 0 once the datagram is sent.
 */
static int to_syslog(int sev, const char *text)
{
	char buf[640];
	int n = snprintf(buf, sizeof(buf), "<%d>relpoline[%d]: %s", SYSLOG_USER | sev, (int)getpid(), text);
	if (n < 0)
		return -1;
	if (n >= (int)sizeof(buf))
		n = (int)sizeof(buf) - 1;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	fd = rp_fd_park(fd);
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "/dev/log" };
	ssize_t w = sendto(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)&sa,
			   sizeof(sa));
	close(fd);
	return w == n ? 0 : -1;
}

static void vlog(int sev, const char *fmt, va_list ap)
{
	int saved = errno;   /* an epoch inline keeps the application thread's errno */
	char text[512];
	vsnprintf(text, sizeof(text), fmt, ap);
	if (rp_cfg.log == RP_LOG_SYSLOG && to_syslog(sev, text) == 0) {
		errno = saved;
		return;
	}
	char buf[600];
	int n = snprintf(buf, sizeof(buf), "relpoline: %s%s", sev == SEV_WARNING ? "warning: " : "", text);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	bool file = rp_cfg.log == RP_LOG_FILE;
	int fd = file ? rp_fd_park(open(rp_cfg.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) : 2;
	if (fd >= 0) {
		ssize_t w = write(fd, buf, (size_t)n);
		(void)w;
		if (file)
			close(fd);
	}
	errno = saved;
}

void rp_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(SEV_WARNING, fmt, ap);
	va_end(ap);
}

void rp_debug(const char *fmt, ...)
{
	if (!rp_cfg.verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(SEV_DEBUG, fmt, ap);
	va_end(ap);
}

static bool oom_warned;

/*
 * See internal.h.  Under rp_lock (as every caller of the allocator), so
 * the flag needs no atomics.  Only the first failure is a warning: once the
 * process is at its limit (RLIMIT_AS, ulimit -v, the map count, a refused
 * overcommit) the next mappings fail as well, and a line for each module,
 * site or epoch would bury the one that says what happened.  The rest go
 * to the verbose log.
 */
void rp_oom(size_t bytes, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	size_t kib = (bytes + 1023) / 1024;
	if (oom_warned) {
		rp_debug("out of memory (ENOMEM) mapping %zu KiB of %s", kib, what);
		return;
	}
	oom_warned = true;
	rp_warn("out of memory (ENOMEM) mapping %zu KiB of %s", kib, what);
}

/*
 * The text of errno E, untranslated.  strerror() goes through gettext,
 * which loads the program's message catalogue with its malloc once a
 * locale is set: the runtime never calls the host's malloc.
 */
const char *rp_strerror(int e)
{
	const char *d = strerrordesc_np(e);
	return d ? d : "unknown error";
}
