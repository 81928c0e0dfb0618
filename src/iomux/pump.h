/* The daemon's event loop: from the job's pipes to the output file and the readers. */
#ifndef IOMUX_PUMP_H
#define IOMUX_PUMP_H

#include <stdbool.h>
#include <sys/types.h>

#include "syslog_fwd.h"

struct pump_setup {
	int dir_fd;
	int output_fd;
	int listen_fd;
	int signal_fd;       /* signalfd for SIGCHLD */
	int pipe_fds[2];     /* read ends of the job's stdout and stderr */
	pid_t child_pid;
	unsigned long long output_limit;
	bool discard_output;
	struct syslog_fwd *syslog; /* NULL: no syslog copy */
};

/*
 * Runs until both pipes are at EOF and the child is reaped, writes the status
 * file, then closes the readers and removes notify.sock. Closes every fd in
 * setup. Returns 0, or -1 if the status could not be written.
 */
int pump_run(struct pump_setup *setup);

#endif
