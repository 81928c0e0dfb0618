#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "passwd.h"
#include "pty.h"
#include "rlimits.h"
#include "util.h"

#define PASSWD_FILE "/etc/passwd"

int job_io_open(struct job_io *io, int tty)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, st[2] = { -1, -1 };
	size_t i;

	io->nclient = 0;
	for (i = 0; i < WSH_FDS_NOTTY; i++)
		io->client[i] = -1;
	io->child_in = io->child_out = io->child_err = io->status_write = -1;

	if (pipe2(st, O_CLOEXEC) < 0)
		return -1;
	if (tty) {
		int master, slave;

		if (pty_open(&master, &slave) < 0)
			goto fail;
		io->client[0] = master;
		io->client[1] = st[0];
		io->nclient = WSH_FDS_TTY;
		io->child_in = slave;
		io->child_out = slave;
		io->child_err = slave;
	} else {
		if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
			goto fail;
		io->client[0] = in[1];
		io->client[1] = out[0];
		io->client[2] = err[0];
		io->client[3] = st[0];
		io->nclient = WSH_FDS_NOTTY;
		io->child_in = in[0];
		io->child_out = out[1];
		io->child_err = err[1];
	}
	io->status_write = st[1];
	return 0;
fail:
	close_quietly(st[0]);
	close_quietly(st[1]);
	for (i = 0; i < 2; i++) {
		close_quietly(in[i]);
		close_quietly(out[i]);
		close_quietly(err[i]);
	}
	return -1;
}

void job_io_close_child_ends(struct job_io *io)
{
	close_quietly(io->child_in);
	if (io->child_out != io->child_in)
		close_quietly(io->child_out);
	if (io->child_err != io->child_in && io->child_err != io->child_out)
		close_quietly(io->child_err);
	io->child_in = io->child_out = io->child_err = -1;
}

void job_io_close(struct job_io *io)
{
	size_t i;

	job_io_close_child_ends(io);
	for (i = 0; i < io->nclient; i++) {
		close_quietly(io->client[i]);
		io->client[i] = -1;
	}
	close_quietly(io->status_write);
	io->status_write = -1;
}

__attribute__((format(printf, 1, 2)))
static _Noreturn void job_fail(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(msg) - 2)
		n = (int)sizeof(msg) - 2;
	msg[n++] = '\n';
	/* Best effort: the job's stderr is all we have. */
	if (write_all(STDERR_FILENO, "wsh: ", 5) == 0)
		(void)write_all(STDERR_FILENO, msg, (size_t)n);
	_exit(255);
}

static void setup_stdio(const struct job_io *io, int tty)
{
	if (setsid() < 0)
		job_fail("setsid: %s", strerror(errno));
	if (io->child_in < 3 || io->child_out < 3 || io->child_err < 3)
		job_fail("internal error: job descriptors overlap stdio");
	if (dup2(io->child_in, STDIN_FILENO) < 0 || dup2(io->child_out, STDOUT_FILENO) < 0 ||
	    dup2(io->child_err, STDERR_FILENO) < 0)
		_exit(255);     /* nowhere to report it */
	/* The originals are close-on-exec; the copies on 0-2 are not. */
	if (tty && ioctl(STDIN_FILENO, TIOCSCTTY, 0) < 0)
		job_fail("TIOCSCTTY: %s", strerror(errno));
}

static void apply_rlimits(const struct wsh_request *req)
{
	size_t i, j;

	for (i = 0; i < WSH_RLIMIT_COUNT; i++) {
		uint64_t soft = wsh_limits[i].def, hard = wsh_limits[i].def;
		struct rlimit rl;

		for (j = 0; j < req->nrlimits; j++) {
			if (req->rlimits[j].index == i) {
				soft = req->rlimits[j].soft;
				hard = req->rlimits[j].hard;
			}
		}
		rl.rlim_cur = wsh_rlimit_value(soft);
		rl.rlim_max = wsh_rlimit_value(hard);
		if (setrlimit(wsh_limits[i].resource, &rl) < 0)
			job_fail("setrlimit RLIMIT_%s (%llu %llu): %s", wsh_limits[i].name,
				 (unsigned long long)soft, (unsigned long long)hard, strerror(errno));
	}
}

/* Set NAME=VALUE in env (an array with room for one more entry). */
static void env_put(char **env, size_t *n, char *entry)
{
	size_t namelen = (size_t)(strchr(entry, '=') - entry) + 1;
	size_t i;

	for (i = 0; i < *n; i++) {
		if (strncmp(env[i], entry, namelen) == 0) {
			env[i] = entry;
			return;
		}
	}
	env[(*n)++] = entry;
	env[*n] = NULL;
}

static char *env_format(const char *name, const char *value)
{
	size_t len = strlen(name) + strlen(value) + 2;
	char *s = malloc(len);

	if (s == NULL)
		job_fail("out of memory");
	snprintf(s, len, "%s=%s", name, value);
	return s;
}

static void reset_signals(void)
{
	sigset_t all;
	int sig;

	for (sig = 1; sig < NSIG; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		/* Fails harmlessly for the numbers glibc reserves. */
		(void)signal(sig, SIG_DFL);
	}
	if (sigemptyset(&all) < 0 || sigprocmask(SIG_SETMASK, &all, NULL) < 0)
		job_fail("sigprocmask: %s", strerror(errno));
}

_Noreturn void job_exec(const struct wsh_request *req, const struct job_io *io)
{
	extern char **environ;
	const char *name = req->user[0] != '\0' ? req->user : "root";
	struct passwd_entry pw;
	char **env, *shell_argv[2];
	char *const *argv;
	size_t n = 0, i;
	int tty = (req->flags & WSH_FLAG_TTY) != 0;
	int r;

	setup_stdio(io, tty);

	r = passwd_lookup(PASSWD_FILE, name, &pw);
	if (r < 0)
		job_fail("reading %s: %s", PASSWD_FILE, strerror(errno));
	if (r > 0)
		job_fail("unknown user: %s", name);

	if (tty && fchown(STDIN_FILENO, pw.uid, (gid_t)-1) < 0)
		job_fail("chown of the terminal: %s", strerror(errno));

	/* Limits first: as root the hard limits can still be raised. */
	apply_rlimits(req);

	if (setgroups(1, &pw.gid) < 0)
		job_fail("setgroups(%lu): %s", (unsigned long)pw.gid, strerror(errno));
	if (setgid(pw.gid) < 0)
		job_fail("setgid(%lu): %s", (unsigned long)pw.gid, strerror(errno));
	if (setuid(pw.uid) < 0)
		job_fail("setuid(%lu): %s", (unsigned long)pw.uid, strerror(errno));

	if (req->dir != NULL) {
		if (chdir(req->dir) < 0)
			job_fail("chdir %s: %s", req->dir, strerror(errno));
	} else if (pw.home[0] == '\0' || chdir(pw.home) < 0) {
		if (chdir("/") < 0)
			job_fail("chdir /: %s", strerror(errno));
	}

	env = calloc(req->envc + 5, sizeof(char *));
	if (env == NULL)
		job_fail("out of memory");
	env_put(env, &n, env_format("HOME", pw.home[0] != '\0' ? pw.home : "/"));
	env_put(env, &n, env_format("USER", pw.name));
	env_put(env, &n, env_format("PATH", pw.uid == 0 ? JOB_PATH_ROOT : JOB_PATH_USER));
	for (i = 0; i < req->envc; i++)
		env_put(env, &n, req->env[i]);

	if (req->argc > 0) {
		argv = req->argv;
	} else {
		shell_argv[0] = pw.shell[0] != '\0' ? pw.shell : "/bin/sh";
		shell_argv[1] = NULL;
		argv = shell_argv;
	}

	reset_signals();
	/* execvp searches the PATH of environ: make it the job's. */
	environ = env;
	execvp(argv[0], argv);
	job_fail("exec %s: %s", argv[0], strerror(errno));
}
