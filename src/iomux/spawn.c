/*
 * iomux-spawn [options] JOBDIR -- CMD [ARGS...]
 *
 * Starts CMD under a daemon that outlives the caller and keeps the job's
 * output and exit status in JOBDIR (see jobdir.h). Prints
 * "pid=<daemon pid> child_pid=<job pid>" once the job runs.
 *
 * Exit status: 0 job started, 1 the job could not be started (nothing is left
 * running), 2 invalid arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "holder.h"
#include "jobdir.h"
#include "jobfiles.h"
#include "options.h"
#include "syslog_fwd.h"
#include "util.h"

#define EXIT_STARTED 0
#define EXIT_SETUP_FAILED 1
#define EXIT_USAGE 2

/* Descriptors opened by the caller's process and handed to the daemon. */
struct job_files {
	int dir_fd;
	int stdin_fd;
	struct jobdir_files holder;
};

static int setup_daemon_signals(void)
{
	struct sigaction ignore = { .sa_handler = SIG_IGN };
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigemptyset(&ignore.sa_mask);
	sigemptyset(&dfl.sa_mask);
	/* SIGXFSZ: a file size limit inherited from the caller must give EFBIG, not death. */
	if (sigaction(SIGPIPE, &ignore, NULL) < 0 || sigaction(SIGHUP, &ignore, NULL) < 0 ||
	    sigaction(SIGXFSZ, &ignore, NULL) < 0 || sigaction(SIGCHLD, &dfl, NULL) < 0)
		return -1;

	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0)
		return -1;
	return signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void __attribute__((noreturn))
daemon_fail(const struct job_files *files, int ready_fd, enum setup_stage stage, int error)
{
	struct setup_report report = { .stage = stage, .error = error };
	(void)unlinkat(files->dir_fd, JOB_NOTIFY_SOCKET, 0);
	(void)write_all(ready_fd, &report, sizeof(report));
	_exit(EXIT_SETUP_FAILED);
}

static void kill_and_reap(pid_t child)
{
	int status;

	(void)kill(-child, SIGKILL);
	(void)waitpid_retry(child, &status, 0);
}

/*
 * The daemon's loop around the job holder. The child is reaped only once
 * its pipes are closed, so its process group stays its own until then.
 */
static void hold(struct job_holder *holder, int signal_fd, pid_t child)
{
	bool reaped = false;

	for (;;) {
		if (!reaped && !job_holder_output_open(holder, child)) {
			int status;
			pid_t r = waitpid_retry(child, &status, WNOHANG);
			/* r < 0 (ECHILD): somebody else reaped it; the status is unknown. */
			if (r == child || r < 0) {
				reaped = true;
				job_holder_child_exited(holder, child, r == child ? status : -1);
			}
		}
		if (job_holder_count(holder) == 0)
			return;

		size_t count;
		struct pollfd *fds = job_holder_poll_fds(holder, 1, &count);
		if (fds == NULL) {
			/* Out of memory: let the pipes fill up for a moment. */
			(void)poll(NULL, 0, 100);
			continue;
		}
		fds[0] = (struct pollfd){ .fd = signal_fd, .events = POLLIN };
		if (poll(fds, count, -1) < 0) {
			if (errno != EINTR)
				(void)poll(NULL, 0, 1000); /* cannot happen; do not spin if it does */
			continue;
		}
		if (fds[0].revents) {
			struct signalfd_siginfo info;
			while (read(signal_fd, &info, sizeof(info)) > 0)
				;
		}
		job_holder_dispatch(holder);
	}
}

static void __attribute__((noreturn))
run_daemon(const struct spawn_options *options, struct job_files *files, int ready_fd)
{
	if (setsid() < 0)
		daemon_fail(files, ready_fd, STAGE_DAEMON_SESSION, errno);
	if (redirect_std_fds_to_devnull() < 0)
		daemon_fail(files, ready_fd, STAGE_DAEMON_DEVNULL, errno);
	int signal_fd = setup_daemon_signals();
	if (signal_fd < 0)
		daemon_fail(files, ready_fd, STAGE_DAEMON_SIGNALS, errno);
	struct job_holder *holder = job_holder_new();
	if (holder == NULL)
		daemon_fail(files, ready_fd, STAGE_DAEMON_MEMORY, errno);

	struct setup_report report = { .stage = STAGE_NONE };
	int pipes[2];
	pid_t child = child_start(options, files->stdin_fd, pipes, &report);
	if (child < 0) {
		(void)unlinkat(files->dir_fd, JOB_NOTIFY_SOCKET, 0);
		(void)write_all(ready_fd, &report, sizeof(report));
		_exit(EXIT_SETUP_FAILED);
	}
	close_quietly(files->stdin_fd);

	if (jobdir_write_pids(files->dir_fd, getpid(), child) < 0) {
		int error = errno;
		kill_and_reap(child);
		daemon_fail(files, ready_fd, STAGE_DAEMON_PIDFILE, error);
	}

	struct held_job_spec spec = {
		.name = options->job_dir,
		.dir_fd = files->dir_fd,
		.output_fd = files->holder.output_fd,
		.listen_fd = files->holder.listen_fd,
		.out_fd = pipes[0],
		.err_fd = pipes[1],
		.pid = child,
		.output_limit = options->output_limit,
		.discard_output = options->discard_output,
	};
	if (options->syslog_tag != NULL) {
		spec.syslog = malloc(sizeof(*spec.syslog));
		if (spec.syslog != NULL && syslog_fwd_open(spec.syslog, options->syslog_path, options->syslog_tag) < 0) {
			free(spec.syslog);
			spec.syslog = NULL; /* best effort, as ever for syslog */
		}
	}
	/* The holder owns the descriptors from here; on failure it removed notify.sock. */
	if (job_holder_add(holder, &spec) < 0) {
		int error = errno;
		kill_and_reap(child);
		struct setup_report failed = { .stage = STAGE_DAEMON_MEMORY, .error = error };
		(void)write_all(ready_fd, &failed, sizeof(failed));
		_exit(EXIT_SETUP_FAILED);
	}

	report.child_pid = child;
	/* If the caller is gone, nobody needs the report; the job runs on regardless. */
	(void)write_all(ready_fd, &report, sizeof(report));
	close_quietly(ready_fd);

	/* Do not pin the caller's working directory (and its mount). */
	(void)chdir("/");

	hold(holder, signal_fd, child);
	job_holder_free(holder);
	_exit(0);
}

static void print_setup_failure(const struct spawn_options *options, const struct setup_report *report)
{
	const char *error = strerror(report->error);

	switch (report->stage) {
	case STAGE_CHILD_EXEC:
		fprintf(stderr, "iomux-spawn: exec %s: %s\n", options->command[0], error);
		break;
	case STAGE_CHILD_CHDIR:
		fprintf(stderr, "iomux-spawn: chdir %s: %s\n", options->work_dir, error);
		break;
	case STAGE_CHILD_RLIMIT: {
		const char *name = "?";
		if (report->detail >= 0 && (size_t)report->detail < options->rlimit_count)
			name = options->rlimits[report->detail].name;
		fprintf(stderr, "iomux-spawn: setrlimit %s: %s\n", name, error);
		break;
	}
	case STAGE_DAEMON_PIDFILE:
		fprintf(stderr, "iomux-spawn: write pid files in %s: %s\n", options->job_dir, error);
		break;
	default: {
		static const char *const stage_names[] = {
			[STAGE_DAEMON_SESSION] = "daemon setsid",
			[STAGE_DAEMON_DEVNULL] = "daemon open /dev/null",
			[STAGE_DAEMON_SIGNALS] = "daemon signal setup",
			[STAGE_DAEMON_PIPES] = "create pipes",
			[STAGE_DAEMON_FORK] = "fork",
			[STAGE_CHILD_SESSION] = "child setsid",
			[STAGE_CHILD_FDS] = "child dup2",
			[STAGE_CHILD_SIGNALS] = "child signal mask",
			[STAGE_CHILD_UNKNOWN] = "child setup",
			[STAGE_DAEMON_MEMORY] = "daemon memory",
		};
		const char *what = "setup";
		if (report->stage > 0 && (size_t)report->stage < sizeof(stage_names) / sizeof(stage_names[0]) &&
		    stage_names[report->stage] != NULL)
			what = stage_names[report->stage];
		fprintf(stderr, "iomux-spawn: %s: %s\n", what, error);
		break;
	}
	}
}

/* Opens everything that needs the caller's working directory; exits on failure. */
static void open_job_files(const struct spawn_options *options, struct job_files *files)
{
	files->dir_fd = open(options->job_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (files->dir_fd < 0) {
		fprintf(stderr, "iomux-spawn: JOBDIR %s: %s\n", options->job_dir, strerror(errno));
		exit(EXIT_USAGE);
	}

	/* Readers connect by path: it must fit in a socket address. */
	struct sockaddr_un addr;
	socklen_t addr_len;
	if (unix_address(&addr, &addr_len, options->job_dir, JOB_NOTIFY_SOCKET) < 0) {
		fprintf(stderr, "iomux-spawn: %s/%s: path longer than %zu bytes\n", options->job_dir,
			JOB_NOTIFY_SOCKET, sizeof(addr.sun_path) - 1);
		exit(EXIT_USAGE);
	}

	files->stdin_fd = open(options->stdin_path, O_RDONLY | O_CLOEXEC);
	if (files->stdin_fd < 0) {
		fprintf(stderr, "iomux-spawn: stdin %s: %s\n", options->stdin_path, strerror(errno));
		exit(EXIT_USAGE);
	}

	/* Leftovers of an earlier run in this directory would mislead readers. */
	const char *failed = "";
	if (jobdir_prepare(files->dir_fd, -1, &files->holder, &failed) < 0) {
		fprintf(stderr, "iomux-spawn: %s in %s: %s\n", failed, options->job_dir, strerror(errno));
		exit(EXIT_SETUP_FAILED);
	}
}

int main(int argc, char **argv)
{
	if (ensure_std_fds() < 0) {
		perror("iomux-spawn: /dev/null");
		return EXIT_SETUP_FAILED;
	}
	/* Nothing the caller leaks to us may reach the daemon or the job. */
	close_fds_from(3);

	struct spawn_options options;
	if (spawn_options_parse(argc, argv, &options) < 0)
		return EXIT_USAGE;

	struct job_files files;
	open_job_files(&options, &files);

	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0) {
		perror("iomux-spawn: pipe");
		(void)unlinkat(files.dir_fd, JOB_NOTIFY_SOCKET, 0);
		return EXIT_SETUP_FAILED;
	}

	/* Flush now so the daemon does not inherit buffered output. */
	fflush(NULL);
	pid_t daemon_pid = fork();
	if (daemon_pid < 0) {
		perror("iomux-spawn: fork");
		(void)unlinkat(files.dir_fd, JOB_NOTIFY_SOCKET, 0);
		return EXIT_SETUP_FAILED;
	}
	if (daemon_pid == 0) {
		close_quietly(ready[0]);
		run_daemon(&options, &files, ready[1]);
	}
	close_quietly(ready[1]);

	struct setup_report report;
	ssize_t n = read_full(ready[0], &report, sizeof(report));
	if (n == (ssize_t)sizeof(report) && report.stage == STAGE_NONE) {
		if (printf("pid=%d child_pid=%d\n", (int)daemon_pid, (int)report.child_pid) < 0 ||
		    fflush(stdout) == EOF)
			perror("iomux-spawn: stdout"); /* the job runs anyway */
		return EXIT_STARTED;
	}

	if (n == (ssize_t)sizeof(report)) {
		print_setup_failure(&options, &report);
	} else {
		fprintf(stderr, "iomux-spawn: daemon died during setup\n");
		(void)unlinkat(files.dir_fd, JOB_NOTIFY_SOCKET, 0);
	}
	int status;
	(void)waitpid_retry(daemon_pid, &status, 0);
	return EXIT_SETUP_FAILED;
}
