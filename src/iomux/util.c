#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The loop of both: at offset, or at the file position when offset < 0. */
static ssize_t read_loop(int fd, char *p, size_t len, off_t offset)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = offset < 0 ? read(fd, p + done, len - done)
				       : pread(fd, p + done, len - done, offset + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	return read_loop(fd, buf, len, -1);
}

ssize_t pread_full(int fd, void *buf, size_t len, off_t offset)
{
	if (offset < 0) {
		errno = EINVAL;
		return -1;
	}
	return read_loop(fd, buf, len, offset);
}

int ensure_std_fds(void)
{
	for (;;) {
		int fd = open("/dev/null", O_RDWR);
		if (fd < 0)
			return -1;
		if (fd > 2) {
			close(fd);
			return 0;
		}
	}
}

int set_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0)
		return -1;
	return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int redirect_std_fds_to_devnull(void)
{
	int null_fd = open("/dev/null", O_RDWR);
	if (null_fd < 0)
		return -1;
	for (int fd = 0; fd <= 2; fd++) {
		if (dup2(null_fd, fd) < 0) {
			close_quietly(null_fd);
			return -1;
		}
	}
	if (null_fd > 2)
		close(null_fd);
	return 0;
}

int parse_u64(const char *text, unsigned long long *value)
{
	if (text[0] < '0' || text[0] > '9') {
		errno = EINVAL;
		return -1;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno != 0)
		return -1;
	if (*end != '\0') {
		errno = EINVAL;
		return -1;
	}
	*value = v;
	return 0;
}

int unix_address(struct sockaddr_un *addr, socklen_t *addr_len, const char *dir, const char *name)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	int n = snprintf(addr->sun_path, sizeof(addr->sun_path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(addr->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	*addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}

pid_t waitpid_retry(pid_t pid, int *status, int flags)
{
	for (;;) {
		pid_t r = waitpid(pid, status, flags);
		if (r >= 0 || errno != EINTR)
			return r;
	}
}
