/* Running the container's hook scripts. */
#ifndef WSH_HOOKS_H
#define WSH_HOOKS_H

#include <stddef.h>

/*
 * Run "<dir>/<name>" with no arguments and the current environment, and
 * wait for it. Its stdout and stderr are ours. Success means exit status 0,
 * or no such file (a hook that does not exist is skipped); any other exit
 * status, death by a signal, or a failure to start it (e.g. not executable)
 * is a failure, described in err. Returns 0 or -1.
 */
int run_hook(const char *dir, const char *name, char *err, size_t errlen);

#endif
