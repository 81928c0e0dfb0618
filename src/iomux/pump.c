#include "pump.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clients.h"
#include "jobdir.h"
#include "util.h"

enum { POLL_SIGNAL, POLL_STDOUT, POLL_STDERR, POLL_LISTENER, POLL_FIRST_CLIENT };

struct pump {
	struct pump_setup *setup;
	struct client_set clients;
	bool accepting;
	struct pollfd *pollfds;
	size_t pollfd_capacity;

	unsigned long long kept_bytes;
	off_t output_size;
	bool limit_exceeded;
	bool write_failed;

	bool reaped;
	int wait_status;

	unsigned char buffer[RECORD_HEADER_SIZE + RECORD_MAX_PAYLOAD];
};

static bool pipes_open(const struct pump *p)
{
	return p->setup->pipe_fds[0] >= 0 || p->setup->pipe_fds[1] >= 0;
}

static void kill_job(struct pump *p)
{
	/* The group is still ours: the child is not reaped before the pipes close. */
	(void)kill(-p->setup->child_pid, SIGKILL);
}

static void append_record(struct pump *p, enum stream_id stream, size_t len)
{
	size_t record_len = RECORD_HEADER_SIZE + len;

	record_header_encode(p->buffer, stream, (uint32_t)len);
	if (write_all(p->setup->output_fd, p->buffer, record_len) < 0) {
		/* Cut off any partial record so that readers never stall on it. */
		(void)ftruncate(p->setup->output_fd, p->output_size);
		p->write_failed = true;
		return;
	}
	p->output_size += (off_t)record_len;
	client_set_notify(&p->clients);
}

static void handle_chunk(struct pump *p, enum stream_id stream, size_t len)
{
	const struct pump_setup *s = p->setup;
	bool over_limit = false;

	if (p->limit_exceeded)
		return;
	if (!s->discard_output && s->output_limit > 0 && len > s->output_limit - p->kept_bytes) {
		len = (size_t)(s->output_limit - p->kept_bytes);
		over_limit = true;
	}

	if (len > 0) {
		p->kept_bytes += len;
		if (s->syslog != NULL)
			syslog_fwd_feed(s->syslog, stream, (const char *)p->buffer + RECORD_HEADER_SIZE, len);
		if (!s->discard_output && !p->write_failed)
			append_record(p, stream, len);
	}

	if (over_limit) {
		p->limit_exceeded = true;
		kill_job(p);
	}
}

static void close_pipe(struct pump *p, int index)
{
	enum stream_id stream = index == 0 ? STREAM_STDOUT : STREAM_STDERR;

	close_quietly(p->setup->pipe_fds[index]);
	p->setup->pipe_fds[index] = -1;
	if (p->setup->syslog != NULL)
		syslog_fwd_flush(p->setup->syslog, stream);
}

static void read_pipe(struct pump *p, int index)
{
	ssize_t n = read(p->setup->pipe_fds[index], p->buffer + RECORD_HEADER_SIZE, RECORD_MAX_PAYLOAD);
	if (n > 0)
		handle_chunk(p, index == 0 ? STREAM_STDOUT : STREAM_STDERR, (size_t)n);
	else if (n == 0 || (errno != EINTR && errno != EAGAIN))
		close_pipe(p, index);
}

static void accept_clients(struct pump *p)
{
	for (;;) {
		int fd = accept4(p->setup->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				p->accepting = false; /* resumed when a client leaves */
			return;
		}
		if (client_set_add(&p->clients, fd) < 0) {
			close_quietly(fd);
			p->accepting = false;
			return;
		}
		/*
		 * A reader may have read the file after connecting but before this
		 * accept, missing the wake-up for records written in between.
		 */
		client_set_notify_one(&p->clients, p->clients.count - 1);
	}
}

static void serve_client(struct pump *p, size_t index, short revents)
{
	char discard[64];

	if (revents & (POLLHUP | POLLERR | POLLNVAL)) {
		client_set_drop(&p->clients, index);
		return;
	}
	if (revents & POLLIN) {
		ssize_t n = recv(p->clients.fds[index], discard, sizeof(discard), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			client_set_drop(&p->clients, index);
	}
}

static void drain_signals(struct pump *p)
{
	struct signalfd_siginfo info;
	while (read(p->setup->signal_fd, &info, sizeof(info)) > 0)
		;
}

static void try_reap(struct pump *p)
{
	pid_t r = waitpid_retry(p->setup->child_pid, &p->wait_status, WNOHANG);
	if (r == p->setup->child_pid) {
		p->reaped = true;
	} else if (r < 0) {
		/* ECHILD: somebody else reaped it; the status is unknown. */
		p->reaped = true;
		p->wait_status = -1;
	}
}

static int prepare_poll(struct pump *p, size_t *count)
{
	size_t needed = POLL_FIRST_CLIENT + p->clients.count;
	if (needed > p->pollfd_capacity) {
		struct pollfd *fds = reallocarray(p->pollfds, needed * 2, sizeof(*fds));
		if (fds == NULL)
			return -1;
		p->pollfds = fds;
		p->pollfd_capacity = needed * 2;
	}

	const struct pump_setup *s = p->setup;
	struct pollfd *fds = p->pollfds;
	fds[POLL_SIGNAL] = (struct pollfd){ .fd = s->signal_fd, .events = POLLIN };
	fds[POLL_STDOUT] = (struct pollfd){ .fd = s->pipe_fds[0], .events = POLLIN };
	fds[POLL_STDERR] = (struct pollfd){ .fd = s->pipe_fds[1], .events = POLLIN };
	fds[POLL_LISTENER] = (struct pollfd){ .fd = p->accepting ? s->listen_fd : -1, .events = POLLIN };
	for (size_t i = 0; i < p->clients.count; i++)
		fds[POLL_FIRST_CLIENT + i] = (struct pollfd){ .fd = p->clients.fds[i], .events = POLLIN };
	*count = needed;
	return 0;
}

static void pump_loop(struct pump *p)
{
	for (;;) {
		/* Reap only after the pipes close, so the process group stays ours until then. */
		if (!pipes_open(p) && !p->reaped)
			try_reap(p);
		if (!pipes_open(p) && p->reaped)
			return;

		size_t count;
		if (prepare_poll(p, &count) < 0) {
			/* Out of memory: shed the readers rather than the job. */
			for (size_t i = 0; i < p->clients.count; i++)
				client_set_drop(&p->clients, i);
			client_set_compact(&p->clients);
			continue;
		}
		if (poll(p->pollfds, count, -1) < 0) {
			if (errno == EINTR)
				continue;
			/* Cannot happen with valid arguments; avoid spinning if it does. */
			sleep(1);
			continue;
		}

		struct pollfd *fds = p->pollfds;
		for (size_t i = 0; i + POLL_FIRST_CLIENT < count; i++) {
			if (fds[POLL_FIRST_CLIENT + i].revents)
				serve_client(p, i, fds[POLL_FIRST_CLIENT + i].revents);
		}
		if (fds[POLL_SIGNAL].revents)
			drain_signals(p);
		if (fds[POLL_STDOUT].revents)
			read_pipe(p, 0);
		if (fds[POLL_STDERR].revents)
			read_pipe(p, 1);
		if (fds[POLL_LISTENER].revents)
			accept_clients(p);

		if (client_set_compact(&p->clients) > 0)
			p->accepting = true;
	}
}

static int exit_status(const struct pump *p)
{
	if (p->limit_exceeded)
		return 255;
	if (p->wait_status >= 0 && WIFEXITED(p->wait_status))
		return WEXITSTATUS(p->wait_status);
	return 255;
}

static int write_status(const struct pump *p)
{
	char text[128];
	snprintf(text, sizeof(text), "%d\n%s%s", exit_status(p),
		 p->limit_exceeded ? STATUS_LIMIT_EXCEEDED_LINE "\n" : "",
		 p->write_failed ? STATUS_WRITE_FAILED_LINE "\n" : "");

	int dir_fd = p->setup->dir_fd;
	if (write_text_file_at(dir_fd, JOB_STATUS_TMP_FILE, text) < 0)
		return -1;
	return renameat(dir_fd, JOB_STATUS_TMP_FILE, dir_fd, JOB_STATUS_FILE);
}

int pump_run(struct pump_setup *setup)
{
	struct pump *p = calloc(1, sizeof(*p));
	if (p != NULL) {
		p->pollfd_capacity = 16;
		p->pollfds = calloc(p->pollfd_capacity, sizeof(*p->pollfds));
	}
	if (p == NULL || p->pollfds == NULL) {
		free(p);
		return -1;
	}
	p->setup = setup;
	p->accepting = true;
	client_set_init(&p->clients);

	pump_loop(p);
	int result = write_status(p);

	/* Readers see EOF only now, when the status they will read exists. */
	(void)unlinkat(setup->dir_fd, JOB_NOTIFY_SOCKET, 0);
	close_quietly(setup->listen_fd);
	client_set_close_all(&p->clients);
	close_quietly(setup->signal_fd);
	close_quietly(setup->output_fd);
	close_quietly(setup->dir_fd);
	if (setup->syslog != NULL)
		syslog_fwd_close(setup->syslog);

	free(p->pollfds);
	free(p);
	return result;
}
