/*
 * Names for code addresses.  This is the minimal version: "<module
 * basename>+0xOFF", OFF being the link-time address (what objdump and
 * addr2line take: the address minus the module's load bias).  It is
 * meant to be replaced by one that reads the module's symbol table; the
 * interface (internal.h) stays.
 *
 * Runs under rp_lock (stub emission, fork child): no allocation, no
 * descriptor (readlink needs none).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

static const char *base_name(const struct rp_module *m, char *buf, size_t len)
{
	const char *path = m->path;
	if (m->main_program) {
		/* m->path is /proc/self/exe: its target names the program. */
		ssize_t n = readlink("/proc/self/exe", buf, len - 1);
		if (n > 0) {
			buf[n] = 0;
			path = buf;
		}
	}
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

void rp_symbolize(uint64_t addr, char *buf, size_t len)
{
	if (!len)
		return;
	const struct rp_module *m = rp_module_of(addr);
	if (!m) {
		snprintf(buf, len, "%#lx", (unsigned long)addr);
		return;
	}
	char path[512];
	snprintf(buf, len, "%s+%#lx", base_name(m, path, sizeof(path)), (unsigned long)(addr - m->bias));
}
