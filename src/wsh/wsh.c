/*
 * wsh: run a command inside a warden container through its wshd.
 *
 *   wsh [--socket PATH] [--user NAME] [--dir DIR] [--env K=V]... [--rsh] [CMD ARGS...]
 *
 * Limits come from the environment variables RLIMIT_AS ... RLIMIT_STACK
 * ("N" or "SOFT HARD"); LANG is passed on. With stdin on a terminal the job
 * gets a pty; otherwise stdin, stdout and stderr are pumped through pipes.
 * wsh exits with the job's exit status, or 255 when the job was killed by a
 * signal or wsh itself failed.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "proto.h"
#include "rlimits.h"
#include "util.h"
#include "wsh_args.h"

#define EXIT_WSH_FAILURE 255
#define PUMP_BUF 65536

struct pump {
	int src;
	int dst;
	int dst_nonblocking;    /* dst is ours: buffer and wait for POLLOUT */
	int close_dst_at_eof;   /* propagate EOF (closes dst) */
	int required;           /* wsh waits for this pump's EOF */
	int eio_is_eof;         /* src is a pty master */
	int done;
	size_t off, len;
	char buf[PUMP_BUF];
};

struct session {
	struct pump pumps[3];
	size_t npumps;
	int status_fd;
	unsigned char status[4];
	size_t status_len;
	int status_done;
	int signal_fd;
	int tty_fd;             /* local terminal in raw mode, or -1 */
	int master_fd;
	struct termios saved;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: wsh [--socket PATH] [--user NAME] [--dir DIR] [--env NAME=VALUE]...\n"
		"           [--rsh] [CMD [ARGS...]]\n"
		"  --socket PATH  wshd socket (default " WSH_DEFAULT_SOCKET ")\n"
		"  --user NAME    run as NAME (default root)\n"
		"  --dir DIR      working directory (default the user's home)\n"
		"  --env K=V      set K in the command's environment (repeatable)\n"
		"  --rsh          rsh-compatible arguments for rsync -e: [-l USER] HOST CMD...\n"
		"environment: RLIMIT_AS ... RLIMIT_STACK (\"N\" or \"SOFT HARD\"), LANG\n");
}

__attribute__((format(printf, 1, 2)))
static _Noreturn void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "wsh: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_WSH_FAILURE);
}

static void build_request(const struct wsh_args *args, int tty, struct wsh_buf *b)
{
	const char *lang = getenv("LANG");
	size_t i;
	int ok = wsh_req_begin(b, tty ? WSH_FLAG_TTY : 0) == 0;

	for (i = 0; ok && i < (size_t)args->argc; i++)
		ok = wsh_req_add_string(b, WSH_REC_ARG, args->argv[i]) == 0;
	if (ok && args->user != NULL && args->user[0] != '\0')
		ok = wsh_req_add_string(b, WSH_REC_USER, args->user) == 0;
	if (ok && args->dir != NULL)
		ok = wsh_req_add_string(b, WSH_REC_DIR, args->dir) == 0;
	if (ok && lang != NULL) {
		size_t len = strlen(lang) + 6;
		char *entry = malloc(len);

		if (entry == NULL)
			fail("out of memory");
		snprintf(entry, len, "LANG=%s", lang);
		ok = wsh_req_add_string(b, WSH_REC_ENV, entry) == 0;
		free(entry);
	}
	for (i = 0; ok && i < args->nenv; i++)
		ok = wsh_req_add_string(b, WSH_REC_ENV, args->env[i]) == 0;
	for (i = 0; ok && i < WSH_RLIMIT_COUNT; i++) {
		char var[32];
		const char *value;
		uint64_t soft, hard;

		snprintf(var, sizeof(var), "RLIMIT_%s", wsh_limits[i].name);
		value = getenv(var);
		if (value == NULL || value[0] == '\0')
			continue;
		if (wsh_rlimit_parse(value, &soft, &hard) < 0)
			fail("%s: invalid value \"%s\" (expected \"N\" or \"SOFT HARD\")", var, value);
		ok = wsh_req_add_rlimit(b, (unsigned)i, soft, hard) == 0;
	}
	if (ok)
		ok = wsh_req_finish(b) == 0;
	if (!ok)
		fail("building the request: %s", errno == E2BIG ? "command line too long" : strerror(errno));
}

static int connect_to(const char *path)
{
	struct sockaddr_un addr;
	int fd;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr.sun_path))
		fail("connect %s: socket path too long", path);
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fail("socket: %s", strerror(errno));
	while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		if (errno != EINTR)
			fail("connect %s: %s", path, strerror(errno));
	}
	return fd;
}

/* Send the request, read the response; returns the number of fds. */
static size_t exchange(int sock, const struct wsh_buf *req, int *fds, size_t maxfds)
{
	uint8_t buf[WSH_HEADER_SIZE + WSH_MAX_RSP_BODY];
	struct wsh_response rsp;
	size_t len = 0, nfds = 0, frame_len = 0;
	char err[256];
	int r = 0;

	if (write_all(sock, req->data, req->len) < 0)
		fail("sending the request: %s", strerror(errno));
	while (r == 0) {
		ssize_t n = recv_with_fds(sock, buf + len, sizeof(buf) - len, fds, maxfds, &nfds);

		if (n < 0)
			fail("reading the response: %s", errno == EPROTO ? "unexpected descriptors" : strerror(errno));
		if (n == 0)
			fail("wshd closed the connection without answering");
		len += (size_t)n;
		r = wsh_frame_check(buf, len, WSH_RSP_MAGIC, WSH_MAX_RSP_BODY, &frame_len, err, sizeof(err));
		if (r < 0)
			fail("bad response from wshd: %s", err);
	}
	if (frame_len != len || wsh_rsp_decode(buf, len, &rsp, err, sizeof(err)) < 0)
		fail("bad response from wshd: %s", frame_len != len ? "trailing bytes" : err);
	if (rsp.status != WSH_STATUS_OK)
		fail("%s", rsp.message);
	if (rsp.nfds != nfds)
		fail("wshd announced %u descriptors but sent %zu", rsp.nfds, nfds);
	wsh_rsp_free(&rsp);
	return nfds;
}

static void pump_init(struct pump *p, int src, int dst)
{
	memset(p, 0, offsetof(struct pump, buf));
	p->src = src;
	p->dst = dst;
}

static void pump_finish(struct pump *p)
{
	if (p->close_dst_at_eof && p->dst >= 0) {
		close(p->dst);
		p->dst = -1;
	}
	p->done = 1;
}

/* Pull once from src. */
static void pump_read(struct pump *p)
{
	ssize_t n = read(p->src, p->buf, sizeof(p->buf));

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		/* EIO from a pty master: the terminal's slave side is gone. */
		if (!(p->eio_is_eof && errno == EIO))
			fprintf(stderr, "wsh: read: %s\n", strerror(errno));
		pump_finish(p);
		return;
	}
	if (n == 0) {
		pump_finish(p);
		return;
	}
	if (p->dst_nonblocking) {
		p->off = 0;
		p->len = (size_t)n;
		return;
	}
	if (write_all(p->dst, p->buf, (size_t)n) < 0) {
		/* Our reader is gone: stop reading, so the job sees EPIPE too. */
		close(p->src);
		p->src = -1;
		p->done = 1;
	}
}

/* Push buffered data into a non-blocking dst. */
static void pump_write(struct pump *p)
{
	ssize_t n = write(p->dst, p->buf + p->off, p->len);

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		/* The job stopped reading (EPIPE): drop the rest of our input. */
		p->len = 0;
		pump_finish(p);
		return;
	}
	p->off += (size_t)n;
	p->len -= (size_t)n;
}

static void restore_tty(struct session *s)
{
	if (s->tty_fd >= 0) {
		(void)tcsetattr(s->tty_fd, TCSADRAIN, &s->saved);
		s->tty_fd = -1;
	}
}

static void copy_winsize(struct session *s)
{
	struct winsize ws;

	if (s->tty_fd >= 0 && ioctl(s->tty_fd, TIOCGWINSZ, &ws) == 0)
		(void)ioctl(s->master_fd, TIOCSWINSZ, &ws);
}

static void read_status(struct session *s)
{
	ssize_t n = read(s->status_fd, s->status + s->status_len, sizeof(s->status) - s->status_len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		s->status_len += (size_t)n;
		if (s->status_len < sizeof(s->status))
			return;
	}
	s->status_done = 1;
}

static int finished(const struct session *s)
{
	size_t i;

	if (!s->status_done)
		return 0;
	for (i = 0; i < s->npumps; i++)
		if (s->pumps[i].required && !s->pumps[i].done)
			return 0;
	return 1;
}

static int run_session(struct session *s)
{
	while (!finished(s)) {
		struct pollfd pfd[8];
		int who[8];
		size_t n = 0, i;

		for (i = 0; i < s->npumps; i++) {
			struct pump *p = &s->pumps[i];

			if (p->done)
				continue;
			if (p->len > 0) {
				pfd[n].fd = p->dst;
				pfd[n].events = POLLOUT;
			} else {
				pfd[n].fd = p->src;
				pfd[n].events = POLLIN;
			}
			who[n++] = (int)i;
		}
		if (!s->status_done) {
			pfd[n].fd = s->status_fd;
			pfd[n].events = POLLIN;
			who[n++] = -1;
		}
		if (s->signal_fd >= 0) {
			pfd[n].fd = s->signal_fd;
			pfd[n].events = POLLIN;
			who[n++] = -2;
		}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			restore_tty(s);
			fail("poll: %s", strerror(errno));
		}
		for (i = 0; i < n; i++) {
			short ev = pfd[i].revents;

			if (ev == 0)
				continue;
			if (who[i] == -1) {
				read_status(s);
			} else if (who[i] == -2) {
				struct signalfd_siginfo si;

				while (read(s->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
					if (si.ssi_signo == SIGWINCH) {
						copy_winsize(s);
					} else {
						restore_tty(s);
						exit(EXIT_WSH_FAILURE);
					}
				}
			} else {
				struct pump *p = &s->pumps[who[i]];

				if (ev & POLLNVAL)
					pump_finish(p);
				else if (p->len > 0)
					pump_write(p);
				else
					pump_read(p);
			}
		}
	}
	restore_tty(s);
	if (s->status_len != sizeof(s->status))
		return EXIT_WSH_FAILURE;   /* killed by a signal */
	return (int)((uint32_t)s->status[0] | ((uint32_t)s->status[1] << 8) |
		     ((uint32_t)s->status[2] << 16) | ((uint32_t)s->status[3] << 24)) & 0xff;
}

static void setup_tty(struct session *s)
{
	struct termios raw;
	sigset_t mask;

	if (tcgetattr(STDIN_FILENO, &s->saved) == 0) {
		raw = s->saved;
		cfmakeraw(&raw);
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
			fail("tcsetattr: %s", strerror(errno));
		s->tty_fd = STDIN_FILENO;
	}
	copy_winsize(s);
	if (sigemptyset(&mask) < 0 || sigaddset(&mask, SIGWINCH) < 0 || sigaddset(&mask, SIGTERM) < 0 ||
	    sigaddset(&mask, SIGHUP) < 0 || sigaddset(&mask, SIGINT) < 0 || sigaddset(&mask, SIGQUIT) < 0 ||
	    sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		fail("sigprocmask: %s", strerror(errno));
	s->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->signal_fd < 0) {
		restore_tty(s);
		fail("signalfd: %s", strerror(errno));
	}
}

int main(int argc, char **argv)
{
	static struct session s;
	struct wsh_args args;
	struct wsh_buf req;
	int fds[WSH_FDS_NOTTY];
	char err[256];
	size_t i, nfds;
	int sock, tty;

	if (wsh_args_parse(argc, argv, &args, err, sizeof(err)) < 0) {
		fprintf(stderr, "wsh: %s\n", err);
		usage(stderr);
		return EXIT_WSH_FAILURE;
	}
	if (args.help) {
		usage(stdout);
		return 0;
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fail("signal: %s", strerror(errno));

	tty = isatty(STDIN_FILENO);
	wsh_buf_init(&req);
	build_request(&args, tty, &req);
	sock = connect_to(args.socket);
	nfds = exchange(sock, &req, fds, tty ? WSH_FDS_TTY : WSH_FDS_NOTTY);
	close(sock);
	wsh_buf_free(&req);
	wsh_args_free(&args);
	if (nfds != (size_t)(tty ? WSH_FDS_TTY : WSH_FDS_NOTTY))
		fail("wshd sent %zu descriptors", nfds);

	s.tty_fd = -1;
	s.signal_fd = -1;
	s.master_fd = -1;
	if (tty) {
		s.master_fd = fds[0];
		s.status_fd = fds[1];
		pump_init(&s.pumps[0], STDIN_FILENO, s.master_fd);
		s.pumps[0].dst_nonblocking = 1;
		pump_init(&s.pumps[1], s.master_fd, STDOUT_FILENO);
		s.pumps[1].required = 1;
		s.pumps[1].eio_is_eof = 1;
		s.npumps = 2;
		if (set_nonblock(s.master_fd, 1) < 0)
			fail("fcntl: %s", strerror(errno));
		setup_tty(&s);
	} else {
		s.status_fd = fds[3];
		pump_init(&s.pumps[0], STDIN_FILENO, fds[0]);
		s.pumps[0].dst_nonblocking = 1;
		s.pumps[0].close_dst_at_eof = 1;
		pump_init(&s.pumps[1], fds[1], STDOUT_FILENO);
		s.pumps[1].required = 1;
		pump_init(&s.pumps[2], fds[2], STDERR_FILENO);
		s.pumps[2].required = 1;
		s.npumps = 3;
		for (i = 0; i < 3; i++)
			if (set_nonblock(fds[i], 1) < 0)
				fail("fcntl: %s", strerror(errno));
	}
	if (set_nonblock(s.status_fd, 1) < 0)
		fail("fcntl: %s", strerror(errno));
	return run_session(&s);
}
