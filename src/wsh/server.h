/* wshd's serving loop: the container's PID 1 after start-up. */
#ifndef WSH_SERVER_H
#define WSH_SERVER_H

/*
 * Serve requests on the listening socket listen_fd forever.
 * ready_fd (or -1) gets one byte once the loop is set up and is closed;
 * that is the signal that the container is up. Returns only on a fatal
 * set-up error, with a message printed.
 */
int serve(int listen_fd, int ready_fd);

#endif
