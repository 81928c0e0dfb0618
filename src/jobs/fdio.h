/* Descriptor helpers shared by the job holder, iomux and wsh. Each returns
 * -1 with errno set on failure and prints nothing. */
#ifndef JOBS_FDIO_H
#define JOBS_FDIO_H

#include <stddef.h>

/* Writes the whole buffer, retrying on EINTR and short writes (blocking fds). */
int write_all(int fd, const void *buf, size_t len);

/* close(2) that ignores fd < 0 and keeps errno unchanged. */
void close_quietly(int fd);

/* Creates or truncates dir_fd/name (mode 0644) and writes text to it. */
int write_text_file_at(int dir_fd, const char *name, const char *text);

#endif
