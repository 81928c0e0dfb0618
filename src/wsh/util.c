#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t read_retry(int fd, void *buf, size_t len)
{
	ssize_t n;

	do {
		n = read(fd, buf, len);
	} while (n < 0 && errno == EINTR);
	return n;
}

static int update_flag(int fd, int get, int set, int flag, int on)
{
	int flags = fcntl(fd, get);

	if (flags < 0)
		return -1;
	if (on)
		flags |= flag;
	else
		flags &= ~flag;
	return fcntl(fd, set, flags) < 0 ? -1 : 0;
}

int set_nonblock(int fd, int on)
{
	return update_flag(fd, F_GETFL, F_SETFL, O_NONBLOCK, on);
}

int set_cloexec(int fd, int on)
{
	return update_flag(fd, F_GETFD, F_SETFD, FD_CLOEXEC, on);
}

int send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(sizeof(int) * 8)];
	} control;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds > 8 || len == 0) {
		errno = EINVAL;
		return -1;
	}
	if (nfds > 0) {
		struct cmsghdr *cmsg;

		memset(&control, 0, sizeof(control));
		msg.msg_control = control.data;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}
	do {
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	/* The descriptors went with the first byte; send whatever is left. */
	if ((size_t)n < len) {
		const char *rest = (const char *)buf + n;
		size_t left = len - (size_t)n;

		while (left > 0) {
			ssize_t m = send(sock, rest, left, MSG_NOSIGNAL);

			if (m < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			rest += m;
			left -= (size_t)m;
		}
	}
	return 0;
}

ssize_t recv_with_fds(int sock, void *buf, size_t len, int *fds, size_t maxfds, size_t *nfds)
{
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(sizeof(int) * 16)];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.data,
		.msg_controllen = sizeof(control.data),
	};
	struct cmsghdr *cmsg;
	size_t got = 0;
	int overflow = 0;
	ssize_t n;

	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;

	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		size_t count, i;
		int fd;

		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < count; i++) {
			memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
			if (*nfds + got < maxfds)
				fds[*nfds + got++] = fd;
			else {
				close(fd);
				overflow = 1;
			}
		}
	}
	*nfds += got;
	if (overflow || (msg.msg_flags & MSG_CTRUNC)) {
		size_t i;

		for (i = 0; i < *nfds; i++)
			close(fds[i]);
		*nfds = 0;
		errno = EPROTO;
		return -1;
	}
	return n;
}

int parse_fd_number(const char *s)
{
	char *end;
	long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > INT_MAX)
		return -1;
	return (int)v;
}
