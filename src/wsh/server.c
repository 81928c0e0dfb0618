/*
 * One thread, one poll loop: the listener, a signalfd for SIGCHLD, one
 * entry per connection that has not yet sent a whole request, and the
 * descriptors of the jobs wshd holds itself (job mode, ../jobs/holder.h).
 * Sockets are non-blocking and every connection has its own buffer, so a
 * silent or slow client never holds up anybody else.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "holder.h"
#include "job.h"
#include "jobmode.h"
#include "proto.h"
#include "util.h"

#define MAX_CONNS 64
#define CONN_TIMEOUT_SEC 30
#define READ_CHUNK 65536

struct conn {
	int fd;
	int passed_fd;  /* a descriptor that came with the request, or -1 */
	uint8_t *buf;
	size_t len;
	size_t cap;
	time_t since;
};

struct job {
	pid_t pid;
	int status_fd;
};

struct server {
	int listen_fd;
	int signal_fd;
	struct conn conns[MAX_CONNS];
	size_t nconns;
	struct job *jobs;       /* exec-mode jobs: their exit status pipes */
	size_t njobs;
	size_t jobs_cap;
	struct jobmode jm;      /* job-mode jobs */
};

static time_t now_sec(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return 0;
	return ts.tv_sec;
}

static void conn_drop(struct server *s, size_t i)
{
	close_quietly(s->conns[i].fd);
	close_quietly(s->conns[i].passed_fd);
	free(s->conns[i].buf);
	s->conns[i] = s->conns[--s->nconns];
}

/* Best effort: the client may already be gone. */
static void send_error(int fd, unsigned version, const char *msg)
{
	struct wsh_buf b;

	wsh_buf_init(&b);
	if (wsh_rsp_encode_error(&b, version, msg) == 0)
		(void)send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	wsh_buf_free(&b);
}

static int jobs_add(struct server *s, pid_t pid, int status_fd)
{
	if (s->njobs == s->jobs_cap) {
		size_t cap = s->jobs_cap ? s->jobs_cap * 2 : 16;
		struct job *j = realloc(s->jobs, cap * sizeof(*j));

		if (j == NULL)
			return -1;
		s->jobs = j;
		s->jobs_cap = cap;
	}
	s->jobs[s->njobs].pid = pid;
	s->jobs[s->njobs].status_fd = status_fd;
	s->njobs++;
	return 0;
}

static void job_finished(struct server *s, pid_t pid, int wstatus)
{
	size_t i;

	for (i = 0; i < s->njobs; i++) {
		if (s->jobs[i].pid != pid)
			continue;
		if (WIFEXITED(wstatus)) {
			uint32_t code = (uint32_t)WEXITSTATUS(wstatus);
			uint8_t le[4] = { (uint8_t)code, (uint8_t)(code >> 8), (uint8_t)(code >> 16),
					  (uint8_t)(code >> 24) };

			/* Fails with EPIPE if the client went away; that is fine. */
			(void)write_all(s->jobs[i].status_fd, le, sizeof(le));
		}
		close_quietly(s->jobs[i].status_fd);
		s->jobs[i] = s->jobs[--s->njobs];
		return;
	}
	/* A job held in job mode, or an orphan reparented to us as PID 1. */
	if (s->jm.holder != NULL)
		(void)job_holder_child_exited(s->jm.holder, pid, wstatus);
}

static void reap(struct server *s)
{
	for (;;) {
		int wstatus;
		pid_t pid = waitpid(-1, &wstatus, WNOHANG);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		job_finished(s, pid, wstatus);
	}
}

static void drain_signalfd(struct server *s)
{
	struct signalfd_siginfo si[16];

	for (;;) {
		ssize_t n = read(s->signal_fd, si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
	}
	reap(s);
}

static void start_job(struct server *s, int conn_fd, const struct wsh_request *req)
{
	char err[256];
	struct job_io io;
	struct wsh_buf rsp;
	pid_t pid;

	if (job_io_open(&io, (req->flags & WSH_FLAG_TTY) != 0) < 0) {
		snprintf(err, sizeof(err), "wshd: creating the job's %s: %s",
			 (req->flags & WSH_FLAG_TTY) ? "pty" : "pipes", strerror(errno));
		send_error(conn_fd, req->version, err);
		return;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, sizeof(err), "wshd: fork: %s", strerror(errno));
		send_error(conn_fd, req->version, err);
		job_io_close(&io);
		return;
	}
	if (pid == 0)
		job_exec(req, &io);

	job_io_close_child_ends(&io);
	wsh_buf_init(&rsp);
	if (wsh_rsp_encode_ok(&rsp, req->version, (uint32_t)pid, (uint32_t)io.nclient) < 0 ||
	    send_with_fds(conn_fd, rsp.data, rsp.len, io.client, io.nclient) < 0)
		fprintf(stderr, "wshd: sending the response for job %d: %s\n", (int)pid, strerror(errno));
	wsh_buf_free(&rsp);

	/* The client has its copies now (or is gone); keep only the status end. */
	{
		int status_fd = io.status_write;

		io.status_write = -1;
		job_io_close(&io);
		if (jobs_add(s, pid, status_fd) < 0) {
			fprintf(stderr, "wshd: out of memory tracking job %d\n", (int)pid);
			close_quietly(status_fd);
		}
	}
}

/* Job mode: start and hold the job, answer with its pid. The response is
 * small and the socket's buffer empty, so the send cannot block. */
/* output_fd (or -1) is taken over. */
static void spawn_job(struct server *s, int conn_fd, const struct wsh_request *req, int output_fd)
{
	char err[512];
	struct wsh_buf rsp;
	pid_t pid = jobmode_spawn(&s->jm, req, output_fd, err, sizeof(err));

	if (pid < 0) {
		send_error(conn_fd, req->version, err);
		return;
	}
	wsh_buf_init(&rsp);
	if (wsh_rsp_encode_ok(&rsp, req->version, (uint32_t)pid, 0) < 0 ||
	    send(conn_fd, rsp.data, rsp.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		fprintf(stderr, "wshd: answering for job %s (pid %d): %s\n", req->job, (int)pid, strerror(errno));
	wsh_buf_free(&rsp);
}

/* The version to answer a request in that could not be decoded. */
static unsigned answer_version(const struct conn *c)
{
	unsigned v;

	if (c->len < 6)
		return WSH_PROTO_VERSION;
	v = (unsigned)c->buf[4] | (unsigned)c->buf[5] << 8;
	return v >= WSH_PROTO_MIN_VERSION && v <= WSH_PROTO_VERSION ? v : WSH_PROTO_VERSION;
}

/* Reads request bytes into c->buf, keeping the descriptor that may come
 * with them (SCM_RIGHTS) in c->passed_fd. Returns what read(2) would; a
 * second descriptor, or a batch of several, leaves a message in err. */
static ssize_t read_request_bytes(struct conn *c, char *err, size_t errlen)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int) * 4)];
	} control;
	struct iovec iov = { .iov_base = c->buf + c->len, .iov_len = c->cap - c->len };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = control.space,
		.msg_controllen = sizeof(control.space),
	};
	struct cmsghdr *cmsg;
	ssize_t n;

	err[0] = '\0';
	n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return n;
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		size_t count, i;
		int fds[4];

		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (count > sizeof(fds) / sizeof(fds[0]))
			count = sizeof(fds) / sizeof(fds[0]);  /* cannot happen: the buffer holds 4 */
		memcpy(fds, CMSG_DATA(cmsg), count * sizeof(int));
		for (i = 0; i < count; i++) {
			if (c->passed_fd < 0 && count == 1) {
				c->passed_fd = fds[i];
			} else {
				close_quietly(fds[i]);
				snprintf(err, errlen, "wshd: bad request: more than one descriptor");
			}
		}
	}
	if (msg.msg_flags & MSG_CTRUNC)
		snprintf(err, errlen, "wshd: bad request: more than one descriptor");
	return n;
}

/* Read what is available; handle the request once it is complete.
 * Returns 1 when the connection is finished with and must be dropped. */
static int conn_readable(struct server *s, struct conn *c)
{
	char err[256];
	size_t frame_len = 0;
	ssize_t n;
	int r;

	if (c->cap - c->len < READ_CHUNK && c->cap < WSH_HEADER_SIZE + WSH_MAX_BODY) {
		size_t cap = c->cap + READ_CHUNK;
		uint8_t *p;

		if (cap > WSH_HEADER_SIZE + WSH_MAX_BODY)
			cap = WSH_HEADER_SIZE + WSH_MAX_BODY;
		p = realloc(c->buf, cap);
		if (p == NULL) {
			send_error(c->fd, answer_version(c), "wshd: out of memory");
			return 1;
		}
		c->buf = p;
		c->cap = cap;
	}
	if (c->len == c->cap) {
		send_error(c->fd, answer_version(c), "wshd: request too large");
		return 1;
	}
	n = read_request_bytes(c, err, sizeof(err));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : 1;
	if (n == 0)
		return 1;   /* gone before finishing its request */
	c->len += (size_t)n;
	if (err[0] != '\0') {
		send_error(c->fd, answer_version(c), err);
		return 1;
	}

	r = wsh_frame_check(c->buf, c->len, WSH_REQ_MAGIC, WSH_MAX_BODY, &frame_len, err, sizeof(err));
	if (r == 0)
		return 0;
	if (r > 0) {
		struct wsh_request req;

		if (frame_len != c->len) {
			snprintf(err, sizeof(err), "extra bytes after the request");
		} else if (wsh_req_decode(c->buf, c->len, &req, err, sizeof(err)) == 0) {
			if (req.output_fd_passed != (c->passed_fd >= 0)) {
				snprintf(err, sizeof(err), req.output_fd_passed ?
					 "output descriptor record without a descriptor" :
					 "a descriptor came with a request that takes none");
				wsh_req_free(&req);
			} else {
				if (req.flags & WSH_FLAG_JOB)
					spawn_job(s, c->fd, &req, c->passed_fd);
				else
					start_job(s, c->fd, &req);
				c->passed_fd = -1;
				wsh_req_free(&req);
				return 1;
			}
		}
	}
	{
		char msg[300];

		snprintf(msg, sizeof(msg), "wshd: bad request: %s", err);
		send_error(c->fd, answer_version(c), msg);
	}
	return 1;
}

static void accept_all(struct server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			fprintf(stderr, "wshd: accept: %s\n", strerror(errno));
			/* Out of descriptors: make room by dropping the oldest waiter. */
			if ((errno == EMFILE || errno == ENFILE) && s->nconns > 0)
				conn_drop(s, 0);
			return;
		}
		if (s->nconns == MAX_CONNS) {
			size_t oldest = 0, i;

			for (i = 1; i < s->nconns; i++)
				if (s->conns[i].since < s->conns[oldest].since)
					oldest = i;
			send_error(s->conns[oldest].fd, WSH_PROTO_VERSION, "wshd: too many pending connections");
			conn_drop(s, oldest);
		}
		s->conns[s->nconns].fd = fd;
		s->conns[s->nconns].passed_fd = -1;
		s->conns[s->nconns].buf = NULL;
		s->conns[s->nconns].len = 0;
		s->conns[s->nconns].cap = 0;
		s->conns[s->nconns].since = now_sec();
		s->nconns++;
	}
}

static void expire_conns(struct server *s)
{
	time_t now = now_sec();
	size_t i = s->nconns;

	while (i-- > 0) {
		if (now - s->conns[i].since >= CONN_TIMEOUT_SEC) {
			send_error(s->conns[i].fd, answer_version(&s->conns[i]),
				   "wshd: timed out waiting for the request");
			conn_drop(s, i);
		}
	}
}

/* Many held jobs need many descriptors; the jobs get their own limits. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			fprintf(stderr, "wshd: raising RLIMIT_NOFILE: %s\n", strerror(errno));
	}
}

/* The loop's pollfd array: the listener, the signalfd, the connections,
 * then the held jobs' descriptors (the job holder's array). */
static struct pollfd *poll_fds(struct server *s, struct pollfd *fallback, size_t *count, int *holder_polled)
{
	size_t reserved = 2 + s->nconns, i;
	struct pollfd *pfd = NULL;

	if (s->jm.holder != NULL)
		pfd = job_holder_poll_fds(s->jm.holder, reserved, count);
	*holder_polled = pfd != NULL;
	if (pfd == NULL) {
		pfd = fallback;
		*count = reserved;
	}
	pfd[0] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = s->signal_fd, .events = POLLIN };
	for (i = 0; i < s->nconns; i++)
		pfd[2 + i] = (struct pollfd){ .fd = s->conns[i].fd, .events = POLLIN };
	return pfd;
}

int serve(int listen_fd, int ready_fd, int jobs_fd, pid_t holder_pid)
{
	struct server s;
	sigset_t mask;

	memset(&s, 0, sizeof(s));
	s.listen_fd = listen_fd;
	s.jm.jobs_fd = jobs_fd;
	s.jm.holder_pid = holder_pid;
	if (jobs_fd >= 0) {
		s.jm.holder = job_holder_new();
		if (s.jm.holder == NULL) {
			fprintf(stderr, "wshd: job holder: %s\n", strerror(errno));
			return -1;
		}
	}
	raise_nofile();

	if (set_nonblock(listen_fd, 1) < 0) {
		fprintf(stderr, "wshd: listener: %s\n", strerror(errno));
		return -1;
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR || sigemptyset(&mask) < 0 ||
	    sigaddset(&mask, SIGCHLD) < 0 || sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
		fprintf(stderr, "wshd: signals: %s\n", strerror(errno));
		return -1;
	}
	s.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s.signal_fd < 0) {
		fprintf(stderr, "wshd: signalfd: %s\n", strerror(errno));
		return -1;
	}
	/* Children that ended before SIGCHLD was blocked left no signal. */
	reap(&s);

	if (ready_fd >= 0) {
		if (write_all(ready_fd, "R", 1) < 0) {
			fprintf(stderr, "wshd: signalling readiness: %s\n", strerror(errno));
			return -1;
		}
		close(ready_fd);
	}

	for (;;) {
		struct pollfd fallback[2 + MAX_CONNS], *pfd;
		size_t i, count, nconns = s.nconns;
		int n, holder_polled, timeout = nconns > 0 ? 1000 : -1;

		pfd = poll_fds(&s, fallback, &count, &holder_polled);
		if (s.jm.holder != NULL && !holder_polled)
			timeout = 100;  /* out of memory: the jobs wait a moment */
		n = poll(pfd, count, timeout);
		if (n < 0) {
			if (errno != EINTR) {
				fprintf(stderr, "wshd: poll: %s\n", strerror(errno));
				sleep(1);
			}
			continue;
		}
		if (pfd[1].revents)
			drain_signalfd(&s);
		/* Backwards, so dropping (swap with the last) keeps the mapping. */
		i = nconns;
		while (i-- > 0) {
			if (pfd[2 + i].revents && conn_readable(&s, &s.conns[i]))
				conn_drop(&s, i);
		}
		if (pfd[0].revents)
			accept_all(&s);
		if (s.nconns > 0)
			expire_conns(&s);
		if (holder_polled)
			job_holder_dispatch(s.jm.holder);
	}
}
