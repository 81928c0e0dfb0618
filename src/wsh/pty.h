/* Allocate a pseudo-terminal without glibc's grantpt/openpty (wshd is static
 * and runs inside the container's own /dev/pts instance). */
#ifndef WSH_PTY_H
#define WSH_PTY_H

/* Open a new pty pair from /dev/ptmx. Both fds are close-on-exec and the
 * slave is not made the controlling terminal. 0, or -1 with errno. */
int pty_open(int *master, int *slave);

#endif
