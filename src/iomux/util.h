#ifndef IOMUX_UTIL_H
#define IOMUX_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "fdio.h" /* write_all, close_quietly, write_text_file_at, close_fds_from */

/* All functions return -1 and leave errno set on failure. */

/* Reads until len bytes or EOF; returns the byte count. */
ssize_t read_full(int fd, void *buf, size_t len);
ssize_t pread_full(int fd, void *buf, size_t len, off_t offset);

/* Makes sure descriptors 0, 1 and 2 are open, so that no file we open later lands on them. */
int ensure_std_fds(void);
int set_nonblocking(int fd);
/* Points fds 0, 1 and 2 at /dev/null. */
int redirect_std_fds_to_devnull(void);

/* Parses a plain decimal number (no sign, no spaces). */
int parse_u64(const char *text, unsigned long long *value);

/* Fills addr with "dir/name"; ENAMETOOLONG if it does not fit in sun_path. */
int unix_address(struct sockaddr_un *addr, socklen_t *addr_len, const char *dir, const char *name);

pid_t waitpid_retry(pid_t pid, int *status, int flags);

#endif
