/* Job mode: wshd holds jobs itself (WSH_FLAG_JOB requests), writing their
 * output and status into job directories under the host's jobs directory
 * with the contract of ../jobs/jobdir.h. */
#ifndef WSH_JOBMODE_H
#define WSH_JOBMODE_H

#include <stddef.h>
#include <sys/types.h>

#include "holder.h"
#include "proto.h"

struct jobmode {
	int jobs_fd;                /* <container>/jobs, opened before pivot_root; -1: none */
	pid_t holder_pid;           /* written to each job's pid file (wshd, host view) */
	struct job_holder *holder;  /* the jobs held; polled by the serving loop */
};

/*
 * Starts the job of a job request: the directory req->job under jobs_fd
 * must exist and hold `script`, the job's stdin. output_fd >= 0 is the
 * output file the client passed (WSH_REC_OUTPUT_FD), taken over in every
 * case; -1: create output in the job directory. Returns the job's pid once
 * it is held, or -1 with a message for the client in err (then nothing is
 * left running and notify.sock is removed). Never blocks on the job.
 */
pid_t jobmode_spawn(struct jobmode *jm, const struct wsh_request *req, int output_fd, char *err, size_t errlen);

#endif
