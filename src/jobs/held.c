#include "held.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdio.h"
#include "jobdir.h"
#include "jobfiles.h"

/* From this many bytes waiting in a pipe, a record is spliced rather than
 * read and written: below, the extra ioctl costs more than the copy saved. */
#define SPLICE_MIN (16 * 1024)

/* Records are written at explicit offsets (the holder is the file's only
 * writer and knows its size), which splice(2) needs: it refuses a file open
 * for appending. True when O_APPEND is off. */
static bool positional_writes(int output_fd)
{
	int flags;

	if (output_fd < 0 || (flags = fcntl(output_fd, F_GETFL)) < 0)
		return false;
	return !(flags & O_APPEND) || fcntl(output_fd, F_SETFL, flags & ~O_APPEND) == 0;
}

struct held_job *held_job_new(const struct held_job_spec *spec)
{
	struct held_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	j->name = strdup(spec->name != NULL ? spec->name : "?");
	if (j->name == NULL) {
		free(j);
		return NULL;
	}
	j->dir_fd = spec->dir_fd;
	j->output_fd = spec->output_fd;
	j->listen_fd = spec->listen_fd;
	j->pipe_fds[0] = spec->out_fd;
	j->pipe_fds[1] = spec->err_fd;
	j->pid = spec->pid;
	j->output_limit = spec->output_limit;
	j->discard_output = spec->discard_output;
	j->syslog = spec->syslog;
	j->can_splice = positional_writes(j->output_fd);
	j->accepting = true;
	j->wait_status = -1;
	client_set_init(&j->clients);
	return j;
}

static void free_syslog(struct syslog_fwd *syslog)
{
	if (syslog != NULL) {
		syslog_fwd_close(syslog);
		free(syslog);
	}
}

void held_spec_discard(const struct held_job_spec *spec)
{
	struct jobdir_files files = { .output_fd = spec->output_fd, .listen_fd = spec->listen_fd };
	int saved = errno;

	jobdir_abandon(spec->dir_fd, &files);
	close_quietly(spec->dir_fd);
	close_quietly(spec->out_fd);
	close_quietly(spec->err_fd);
	free_syslog(spec->syslog);
	errno = saved;
}

static void close_all(struct held_job *j)
{
	close_quietly(j->pipe_fds[0]);
	close_quietly(j->pipe_fds[1]);
	close_quietly(j->listen_fd);
	client_set_close_all(&j->clients);
	close_quietly(j->output_fd);
	close_quietly(j->dir_fd);
	j->pipe_fds[0] = j->pipe_fds[1] = j->listen_fd = j->output_fd = j->dir_fd = -1;
	free_syslog(j->syslog);
	j->syslog = NULL;
}

void held_job_free(struct held_job *j)
{
	close_all(j);
	free(j->name);
	free(j);
}

bool held_job_pipes_open(const struct held_job *j)
{
	return j->pipe_fds[0] >= 0 || j->pipe_fds[1] >= 0;
}

static int exit_status(const struct held_job *j)
{
	if (j->limit_exceeded)
		return 255;
	if (j->wait_status >= 0 && WIFEXITED(j->wait_status))
		return WEXITSTATUS(j->wait_status);
	return 255;
}

bool held_job_finish_if_done(struct held_job *j)
{
	if (j->finished || held_job_pipes_open(j) || !j->reaped)
		return false;
	if (jobdir_write_status(j->dir_fd, exit_status(j), j->limit_exceeded, j->write_failed) < 0)
		fprintf(stderr, "job holder: writing the status of job %s: %s\n", j->name, strerror(errno));
	/* Readers see EOF only now, when the status they will read exists. */
	(void)unlinkat(j->dir_fd, JOB_NOTIFY_SOCKET, 0);
	close_all(j);
	j->finished = true;
	return true;
}

/* Cut off any partial record so that readers never stall on it. */
static void record_failed(struct held_job *j)
{
	(void)ftruncate(j->output_fd, j->output_size);
	j->write_failed = true;
}

static void record_done(struct held_job *j, size_t len)
{
	j->output_size += (off_t)(RECORD_HEADER_SIZE + len);
	client_set_notify(&j->clients);
}

static void append_record(struct held_job *j, unsigned char *buffer, enum stream_id stream, size_t len)
{
	record_header_encode(buffer, stream, (uint32_t)len);
	if (pwrite_all(j->output_fd, buffer, RECORD_HEADER_SIZE + len, j->output_size) < 0)
		record_failed(j);
	else
		record_done(j, len);
}

/* A record whose payload goes from the pipe to the file by splice(2): one
 * copy, in the kernel, where read + write make two through our buffer. The
 * pipe holds at least len bytes and only we read it. */
static void splice_record(struct held_job *j, int pipe_fd, enum stream_id stream, size_t len)
{
	unsigned char header[RECORD_HEADER_SIZE];
	loff_t at = j->output_size + RECORD_HEADER_SIZE;
	size_t left = len;

	record_header_encode(header, stream, (uint32_t)len);
	if (pwrite_all(j->output_fd, header, sizeof(header), j->output_size) < 0) {
		record_failed(j);
		return;
	}
	while (left > 0) {
		ssize_t n = splice(pipe_fd, NULL, j->output_fd, &at, left, SPLICE_F_MOVE);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			record_failed(j);  /* what is left of it in the pipe is read and dropped */
			return;
		}
		left -= (size_t)n;
	}
	record_done(j, len);
}

/* How much the pipe holds now; 0 at EOF or when it cannot tell. */
static size_t pipe_pending(int fd)
{
	int n;

	return ioctl(fd, FIONREAD, &n) == 0 && n > 0 ? (size_t)n : 0;
}

/* The room left under the output limit for len more bytes (all of it when
 * there is no limit); *over is set when len does not fit. */
static size_t within_limit(const struct held_job *j, size_t len, bool *over)
{
	*over = false;
	if (!j->discard_output && j->output_limit > 0 && len > j->output_limit - j->kept_bytes) {
		*over = true;
		return (size_t)(j->output_limit - j->kept_bytes);
	}
	return len;
}

static void limit_reached(struct held_job *j)
{
	j->limit_exceeded = true;
	/* The job and everything it started in its session. */
	(void)kill(-j->pid, SIGKILL);
}

static void handle_chunk(struct held_job *j, unsigned char *buffer, enum stream_id stream, size_t len)
{
	bool over_limit;

	if (j->limit_exceeded)
		return;
	len = within_limit(j, len, &over_limit);
	if (len > 0) {
		j->kept_bytes += len;
		if (j->syslog != NULL)
			syslog_fwd_feed(j->syslog, stream, (const char *)buffer + RECORD_HEADER_SIZE, len);
		if (!j->discard_output && !j->write_failed)
			append_record(j, buffer, stream, len);
	}
	if (over_limit)
		limit_reached(j);
}

/* Splices what the pipe holds into one record when that is worth it: output
 * kept whole (no syslog copy, which needs the bytes) and at least SPLICE_MIN
 * bytes waiting. Returns false to leave the pipe to a plain read. */
static bool splice_pending(struct held_job *j, int pipe_fd, enum stream_id stream)
{
	size_t pending, len;
	bool over_limit;

	if (!j->can_splice || j->syslog != NULL || j->discard_output || j->write_failed || j->limit_exceeded)
		return false;
	pending = pipe_pending(pipe_fd);
	if (pending < SPLICE_MIN)
		return false;
	len = within_limit(j, pending < RECORD_MAX_PAYLOAD ? pending : RECORD_MAX_PAYLOAD, &over_limit);
	if (len > 0) {
		j->kept_bytes += len;
		splice_record(j, pipe_fd, stream, len);
	}
	if (over_limit)
		limit_reached(j);
	return true;
}

bool held_job_read_pipe(struct held_job *j, int index, unsigned char *buffer)
{
	enum stream_id stream = index == 0 ? STREAM_STDOUT : STREAM_STDERR;
	ssize_t n;

	if (j->pipe_fds[index] < 0)
		return false;
	if (splice_pending(j, j->pipe_fds[index], stream))
		return false;
	n = read(j->pipe_fds[index], buffer + RECORD_HEADER_SIZE, RECORD_MAX_PAYLOAD);
	if (n > 0) {
		handle_chunk(j, buffer, stream, (size_t)n);
		return false;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return false;
	close_quietly(j->pipe_fds[index]);
	j->pipe_fds[index] = -1;
	if (j->syslog != NULL)
		syslog_fwd_flush(j->syslog, stream);
	return true;
}

void held_job_accept(struct held_job *j)
{
	while (j->accepting) {
		int fd = accept4(j->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				j->accepting = false;
				j->out_of_fds = true;
			}
			return;
		}
		if (client_set_add(&j->clients, fd) < 0) {
			close_quietly(fd);
			j->accepting = false;
			j->out_of_fds = true;
			return;
		}
		/* The reader may have read the file after connecting but before
		 * this accept, missing the wake-up for records written in between. */
		client_set_notify_one(&j->clients, j->clients.count - 1);
		if (j->clients.count >= CLIENTS_PER_JOB_MAX)
			j->accepting = false;
	}
}

bool held_job_serve_client(struct held_job *j, size_t index, short revents)
{
	char discard[64];

	if (revents & (POLLHUP | POLLERR | POLLNVAL)) {
		client_set_drop(&j->clients, index);
		return true;
	}
	if (revents & POLLIN) {
		ssize_t n = recv(j->clients.fds[index], discard, sizeof(discard), MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
			client_set_drop(&j->clients, index);
			return true;
		}
	}
	return false;
}
