#include "held.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdio.h"
#include "jobdir.h"
#include "jobfiles.h"

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

static void append_record(struct held_job *j, unsigned char *buffer, enum stream_id stream, size_t len)
{
	size_t record_len = RECORD_HEADER_SIZE + len;

	record_header_encode(buffer, stream, (uint32_t)len);
	if (write_all(j->output_fd, buffer, record_len) < 0) {
		/* Cut off any partial record so that readers never stall on it. */
		(void)ftruncate(j->output_fd, j->output_size);
		j->write_failed = true;
		return;
	}
	j->output_size += (off_t)record_len;
	client_set_notify(&j->clients);
}

static void handle_chunk(struct held_job *j, unsigned char *buffer, enum stream_id stream, size_t len)
{
	bool over_limit = false;

	if (j->limit_exceeded)
		return;
	if (!j->discard_output && j->output_limit > 0 && len > j->output_limit - j->kept_bytes) {
		len = (size_t)(j->output_limit - j->kept_bytes);
		over_limit = true;
	}
	if (len > 0) {
		j->kept_bytes += len;
		if (j->syslog != NULL)
			syslog_fwd_feed(j->syslog, stream, (const char *)buffer + RECORD_HEADER_SIZE, len);
		if (!j->discard_output && !j->write_failed)
			append_record(j, buffer, stream, len);
	}
	if (over_limit) {
		j->limit_exceeded = true;
		/* The job and everything it started in its session. */
		(void)kill(-j->pid, SIGKILL);
	}
}

bool held_job_read_pipe(struct held_job *j, int index, unsigned char *buffer)
{
	enum stream_id stream = index == 0 ? STREAM_STDOUT : STREAM_STDERR;
	ssize_t n;

	if (j->pipe_fds[index] < 0)
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
