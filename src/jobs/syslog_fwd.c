#include "syslog_fwd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "fdio.h"

static int line_init(struct syslog_line *line, int priority, const char *tag)
{
	int n = asprintf(&line->prefix, "<%d>%s: ", priority, tag);
	if (n < 0) {
		line->prefix = NULL;
		return -1;
	}
	line->prefix_len = (size_t)n;
	line->len = 0;
	return 0;
}

int syslog_fwd_open(struct syslog_fwd *fwd, const char *socket_path, const char *tag)
{
	memset(fwd, 0, sizeof(*fwd));
	fwd->fd = -1;

	size_t path_len = strlen(socket_path);
	if (path_len >= sizeof(fwd->addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fwd->addr.sun_family = AF_UNIX;
	memcpy(fwd->addr.sun_path, socket_path, path_len + 1);
	fwd->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len + 1);

	if (line_init(&fwd->lines[0], SYSLOG_PRI_STDOUT, tag) < 0 ||
	    line_init(&fwd->lines[1], SYSLOG_PRI_STDERR, tag) < 0) {
		syslog_fwd_close(fwd);
		return -1;
	}

	/* Non-blocking: a stalled syslog daemon costs log lines, never the job. */
	fwd->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fwd->fd < 0) {
		syslog_fwd_close(fwd);
		return -1;
	}
	return 0;
}

static void line_send(struct syslog_fwd *fwd, struct syslog_line *line)
{
	struct iovec parts[2] = {
		{ .iov_base = line->prefix, .iov_len = line->prefix_len },
		{ .iov_base = line->text, .iov_len = line->len },
	};
	struct msghdr msg = {
		.msg_name = &fwd->addr,
		.msg_namelen = fwd->addr_len,
		.msg_iov = parts,
		.msg_iovlen = 2,
	};
	/* Delivery is best effort: errors are deliberately ignored. */
	(void)sendmsg(fwd->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	line->len = 0;
}

void syslog_fwd_feed(struct syslog_fwd *fwd, enum stream_id stream, const char *data, size_t len)
{
	struct syslog_line *line = &fwd->lines[stream - 1];

	while (len > 0) {
		const char *newline = memchr(data, '\n', len);
		size_t take = newline != NULL ? (size_t)(newline - data) : len;
		size_t room = SYSLOG_LINE_MAX - line->len;
		if (take > room)
			take = room;

		memcpy(line->text + line->len, data, take);
		line->len += take;
		data += take;
		len -= take;

		if (data == newline) {
			line_send(fwd, line);
			data++;
			len--;
		} else if (line->len == SYSLOG_LINE_MAX) {
			line_send(fwd, line);
		}
	}
}

void syslog_fwd_flush(struct syslog_fwd *fwd, enum stream_id stream)
{
	struct syslog_line *line = &fwd->lines[stream - 1];
	if (line->len > 0)
		line_send(fwd, line);
}

void syslog_fwd_close(struct syslog_fwd *fwd)
{
	close_quietly(fwd->fd);
	fwd->fd = -1;
	for (int i = 0; i < 2; i++) {
		free(fwd->lines[i].prefix);
		fwd->lines[i].prefix = NULL;
	}
}
