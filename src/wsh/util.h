/* Small fd helpers shared by wsh and wshd. Every function reports failure
 * with -1 and errno set; none of them prints anything. */
#ifndef WSH_UTIL_H
#define WSH_UTIL_H

#include <stddef.h>
#include <sys/types.h>

#include "fdio.h" /* write_all, close_quietly (from ../jobs) */

/* read(2) that retries on EINTR. */
ssize_t read_retry(int fd, void *buf, size_t len);

int set_nonblock(int fd, int on);
int set_cloexec(int fd, int on);

/* sendmsg(2) of buf with nfds descriptors attached as SCM_RIGHTS. */
int send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds);

/* One recvmsg(2). Received descriptors (close-on-exec) are stored in fds and
 * counted in *nfds. If more than maxfds arrive, or the control data is
 * truncated, every received descriptor is closed and -1/EPROTO returned. */
ssize_t recv_with_fds(int sock, void *buf, size_t len, int *fds, size_t maxfds, size_t *nfds);

/* Parse a non-negative decimal int that must fit in an int; -1 on error. */
int parse_fd_number(const char *s);

#endif
