/* wshd's serving loop: the container's PID 1 after start-up. */
#ifndef WSH_SERVER_H
#define WSH_SERVER_H

#include <sys/types.h>

/*
 * Serve requests on the listening socket listen_fd forever.
 * ready_fd (or -1) gets one byte once the loop is set up and is closed;
 * that is the signal that the container is up. jobs_fd (or -1: job requests
 * are refused) is the directory job-mode jobs live in; holder_pid goes into
 * their pid files. Returns only on a fatal set-up error, with a message
 * printed.
 */
int serve(int listen_fd, int ready_fd, int jobs_fd, pid_t holder_pid);

#endif
