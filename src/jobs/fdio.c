#include "fdio.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void close_quietly(int fd)
{
	int saved = errno;

	if (fd >= 0)
		close(fd);
	errno = saved;
}

int write_text_file_at(int dir_fd, const char *name, const char *text)
{
	int fd;

	do {
		fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	if (write_all(fd, text, strlen(text)) < 0) {
		close_quietly(fd);
		return -1;
	}
	return close(fd);
}

void widen_job_pipe(int fd)
{
	int saved = errno;

	(void)fcntl(fd, F_SETPIPE_SZ, JOB_PIPE_SIZE);
	errno = saved;
}
