/* Shared by the oom helper's main and its two ways of waiting. */
#ifndef OOM_H
#define OOM_H

#define EXIT_OOM 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* Prints "oom: GROUP: WHAT: strerror(errno)" and exits EXIT_FAIL. */
_Noreturn void oom_fail(const char *group, const char *what);

/* Wait for an OOM in the group open as dir; return the exit status. */
int wait_v1(const char *group, int dir); /* memory.oom_control + eventfd */
int wait_v2(const char *group, int dir); /* memory.events + inotify */

#endif
