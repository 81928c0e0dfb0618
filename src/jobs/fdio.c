#include "fdio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The loop of both: at offset, or at the file position when offset < 0. */
static int write_loop(int fd, const char *p, size_t len, off_t offset)
{
	while (len > 0) {
		ssize_t n = offset < 0 ? write(fd, p, len) : pwrite(fd, p, len, offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		if (offset >= 0)
			offset += n;
	}
	return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, -1);
}

int pwrite_all(int fd, const void *buf, size_t len, off_t offset)
{
	return offset < 0 ? (errno = EINVAL, -1) : write_loop(fd, buf, len, offset);
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

/* Without /proc the open descriptors cannot be listed, so every number below
 * the soft RLIMIT_NOFILE (or 65536 if unlimited or unknown) is closed. */
static void close_fds_by_proc_walk(int first)
{
	DIR *dir = opendir("/proc/self/fd");
	if (dir == NULL) {
		struct rlimit lim;
		long max = 65536;
		if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
			max = (long)lim.rlim_cur;
		for (long fd = first; fd < max; fd++)
			close((int)fd);
		return;
	}

	int walker = dirfd(dir);
	struct dirent *entry;
	/* procfs orders fd entries by number, so closing while iterating is safe. */
	while ((entry = readdir(dir)) != NULL) {
		char *end;
		long fd = strtol(entry->d_name, &end, 10);
		if (end == entry->d_name || *end != '\0')
			continue;
		if (fd >= first && fd != walker)
			close((int)fd);
	}
	closedir(dir);
}

void close_fds_from(int first)
{
	/* close_range(2) needs Linux 5.9; older kernels (or seccomp) refuse it. */
#ifdef SYS_close_range
	if (syscall(SYS_close_range, (unsigned int)first, ~0U, 0) == 0)
		return;
#endif
	close_fds_by_proc_walk(first);
}
