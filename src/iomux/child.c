#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "fdio.h"
#include "util.h"

static void reset_signals(void)
{
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	/* Fails (harmlessly) for SIGKILL, SIGSTOP and the C library's internal signals. */
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &dfl, NULL);
}

static void __attribute__((noreturn))
child_fail(int report_fd, enum setup_stage stage, int detail)
{
	struct setup_report report = { .stage = stage, .detail = detail, .error = errno };
	(void)write_all(report_fd, &report, sizeof(report));
	_exit(127);
}

static void __attribute__((noreturn))
child_run(const struct spawn_options *options, int stdin_fd, int stdout_fd, int stderr_fd,
	  int report_fd)
{
	if (setsid() < 0)
		child_fail(report_fd, STAGE_CHILD_SESSION, 0);

	/* All other descriptors are close-on-exec; dup2 clears that flag on 0-2. */
	if (dup2(stdin_fd, STDIN_FILENO) < 0 || dup2(stdout_fd, STDOUT_FILENO) < 0 ||
	    dup2(stderr_fd, STDERR_FILENO) < 0)
		child_fail(report_fd, STAGE_CHILD_FDS, 0);

	reset_signals();
	sigset_t none;
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		child_fail(report_fd, STAGE_CHILD_SIGNALS, 0);

	size_t failed = 0;
	if (rlimit_settings_apply(options->rlimits, options->rlimit_count, &failed) < 0)
		child_fail(report_fd, STAGE_CHILD_RLIMIT, (int)failed);

	if (options->work_dir != NULL && chdir(options->work_dir) < 0)
		child_fail(report_fd, STAGE_CHILD_CHDIR, 0);

	execvp(options->command[0], options->command);
	child_fail(report_fd, STAGE_CHILD_EXEC, 0);
}

static void close_pair(int fds[2])
{
	close_quietly(fds[0]);
	close_quietly(fds[1]);
	fds[0] = fds[1] = -1;
}

pid_t child_start(const struct spawn_options *options, int stdin_fd, int output_fds[2],
		  struct setup_report *report)
{
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, rep[2] = { -1, -1 };

	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0 ||
	    set_nonblocking(out[0]) < 0 || set_nonblocking(err[0]) < 0) {
		report->stage = STAGE_DAEMON_PIPES;
		report->error = errno;
		goto fail;
	}

	widen_job_pipe(out[0]);
	widen_job_pipe(err[0]);

	pid_t pid = fork();
	if (pid < 0) {
		report->stage = STAGE_DAEMON_FORK;
		report->error = errno;
		goto fail;
	}
	if (pid == 0)
		child_run(options, stdin_fd, out[1], err[1], rep[1]);

	close_quietly(out[1]);
	close_quietly(err[1]);
	close_quietly(rep[1]);
	out[1] = err[1] = rep[1] = -1;

	/* EOF means the exec succeeded and closed the close-on-exec write end. */
	struct setup_report child_report;
	ssize_t n = read_full(rep[0], &child_report, sizeof(child_report));
	if (n != 0) {
		if (n == (ssize_t)sizeof(child_report)) {
			*report = child_report;
		} else {
			report->stage = STAGE_CHILD_UNKNOWN;
			report->error = n < 0 ? errno : EPROTO;
			kill(pid, SIGKILL);
		}
		int status;
		(void)waitpid_retry(pid, &status, 0);
		goto fail;
	}
	close_quietly(rep[0]);

	output_fds[0] = out[0];
	output_fds[1] = err[0];
	return pid;

fail:
	close_pair(out);
	close_pair(err);
	close_pair(rep);
	return -1;
}
