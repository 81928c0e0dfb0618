/* The wshd side of one job: allocate its stdio, fork it, and (in the
 * forked child) turn it into the requested user's process. */
#ifndef WSH_JOB_H
#define WSH_JOB_H

#include <stddef.h>
#include <sys/types.h>

#include "proto.h"

/* Descriptors wshd hands to the client, and the ones the job keeps. */
struct job_io {
	int client[WSH_FDS_NOTTY];      /* sent to wsh, in protocol order */
	size_t nclient;
	int child_in, child_out, child_err;
	int status_write;               /* kept by wshd until the job ends */
};

/* Create the pipes (or the pty) for a request. 0, or -1 with errno. */
int job_io_open(struct job_io *io, int tty);

/* Close everything still open in io (entries set to -1 are skipped). */
void job_io_close(struct job_io *io);

/* Close only the ends the job uses (in the parent, after fork). */
void job_io_close_child_ends(struct job_io *io);

/*
 * In the freshly forked child: start a new session, move the job's fds to
 * 0/1/2 (taking the pty as controlling terminal for a tty request), become
 * the requested user with the requested limits, environment and working
 * directory, and exec the command. Never returns: a setup failure prints
 * a message on the job's stderr and exits 255.
 */
_Noreturn void job_exec(const struct wsh_request *req, const struct job_io *io);

/* PATH given to jobs. */
#define JOB_PATH_ROOT "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define JOB_PATH_USER "/usr/local/bin:/usr/bin:/bin"

#endif
