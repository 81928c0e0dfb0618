#ifndef IOMUX_CHILD_H
#define IOMUX_CHILD_H

#include <sys/types.h>

#include "options.h"

/* Where starting a job failed; travels over pipes from child to daemon to caller. */
enum setup_stage {
	STAGE_NONE = 0, /* success */
	STAGE_DAEMON_SESSION,
	STAGE_DAEMON_DEVNULL,
	STAGE_DAEMON_SIGNALS,
	STAGE_DAEMON_PIPES,
	STAGE_DAEMON_FORK,
	STAGE_DAEMON_PIDFILE,
	STAGE_DAEMON_MEMORY,
	STAGE_CHILD_SESSION,
	STAGE_CHILD_FDS,
	STAGE_CHILD_SIGNALS,
	STAGE_CHILD_RLIMIT,
	STAGE_CHILD_CHDIR,
	STAGE_CHILD_EXEC,
	STAGE_CHILD_UNKNOWN,
};

struct setup_report {
	int stage;     /* enum setup_stage */
	int detail;    /* STAGE_CHILD_RLIMIT: index into options->rlimits */
	int error;     /* errno */
	pid_t child_pid;
};

/*
 * Starts the job: a new session whose stdin is stdin_fd and whose stdout and
 * stderr are pipes. On success returns the pid and stores the (non-blocking)
 * read ends in output_fds[0] (stdout) and output_fds[1] (stderr). On failure
 * the child has been reaped, *report says why, and -1 is returned.
 */
pid_t child_start(const struct spawn_options *options, int stdin_fd, int output_fds[2],
		  struct setup_report *report);

#endif
