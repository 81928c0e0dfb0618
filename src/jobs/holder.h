/*
 * The job holder: from the stdout/stderr pipes of any number of jobs to
 * their job directories (jobdir.h), in the caller's single poll loop.
 *
 * Per job it appends output records (cut at the output limit, when the job's
 * process group is killed with SIGKILL), copies lines to syslog if asked,
 * wakes notify.sock readers without ever blocking on them, and once both
 * pipes are at EOF and the job has been reaped writes status and closes the
 * readers. The caller owns the loop and the reaping:
 *
 *   for (;;) {
 *       struct pollfd *fds = job_holder_poll_fds(h, MINE, &n);
 *       ...fill fds[0 .. MINE-1]...
 *       poll(fds, n, timeout);
 *       ...handle mine; for each reaped child:
 *           job_holder_child_exited(h, pid, wait_status);
 *       job_holder_dispatch(h);
 *   }
 */
#ifndef JOBS_HOLDER_H
#define JOBS_HOLDER_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "syslog_fwd.h"

struct job_holder;

struct held_job_spec {
	const char *name;      /* for messages, e.g. the directory name; copied */
	int dir_fd;            /* the job directory */
	int output_fd;         /* its output file, O_APPEND */
	int listen_fd;         /* notify.sock, listening, non-blocking */
	int out_fd, err_fd;    /* read ends of the job's stdout and stderr, non-blocking */
	pid_t pid;             /* the job: also its process group */
	unsigned long long output_limit; /* bytes kept before the job is killed; 0: none */
	bool discard_output;   /* keep no records (syslog still gets the lines) */
	struct syslog_fwd *syslog; /* malloc'ed and opened, or NULL; the holder frees it */
};

/* NULL with errno on failure. */
struct job_holder *job_holder_new(void);

/* Closes every descriptor of the jobs still held, without writing status
 * (the caller is going away; readers will find no status). */
void job_holder_free(struct job_holder *h);

/*
 * Holds a job. The holder owns every descriptor in spec (and spec->syslog)
 * from now on, also when this fails (ENOMEM): then they are closed, the
 * notify socket is removed, and the caller still has to deal with the job.
 */
int job_holder_add(struct job_holder *h, const struct held_job_spec *spec);

/* Jobs held and not yet finished. */
size_t job_holder_count(const struct job_holder *h);

/* Whether the held job pid still has an open stdout or stderr pipe. Callers
 * that can reap selectively reap a job only once this is false: until then
 * its process group is certainly its own for the limit's kill. */
bool job_holder_output_open(const struct job_holder *h, pid_t pid);

/*
 * Tells the holder that pid was reaped with wait_status (-1: unknown, for
 * example ECHILD). Returns true when pid was a held job's. A job whose pipes
 * are closed already is finished (status written) here.
 */
bool job_holder_child_exited(struct job_holder *h, pid_t pid, int wait_status);

/*
 * The pollfd array for the next poll: the first `reserved` entries are the
 * caller's to fill, the holder's follow; *count is the total. Valid until the
 * next call. NULL with errno (ENOMEM) if it cannot be allocated.
 */
struct pollfd *job_holder_poll_fds(struct job_holder *h, size_t reserved, size_t *count);

/* Handles the holder's entries of the array after poll. */
void job_holder_dispatch(struct job_holder *h);

#endif
