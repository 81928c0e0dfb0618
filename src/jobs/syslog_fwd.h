/* Copies a job's output to syslog, one datagram "<PRI>TAG: line" per line. */
#ifndef JOBS_SYSLOG_FWD_H
#define JOBS_SYSLOG_FWD_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "jobdir.h"

#define SYSLOG_LINE_MAX 1024
#define SYSLOG_PRI_STDOUT 14 /* user.info */
#define SYSLOG_PRI_STDERR 11 /* user.err */

struct syslog_line {
	char *prefix; /* "<PRI>TAG: " */
	size_t prefix_len;
	char text[SYSLOG_LINE_MAX];
	size_t len;
};

struct syslog_fwd {
	int fd;
	struct sockaddr_un addr;
	socklen_t addr_len;
	struct syslog_line lines[2]; /* indexed by stream id - 1 */
};

int syslog_fwd_open(struct syslog_fwd *fwd, const char *socket_path, const char *tag);
void syslog_fwd_feed(struct syslog_fwd *fwd, enum stream_id stream, const char *data, size_t len);
/* Sends a pending partial line, if any. */
void syslog_fwd_flush(struct syslog_fwd *fwd, enum stream_id stream);
void syslog_fwd_close(struct syslog_fwd *fwd);

#endif
