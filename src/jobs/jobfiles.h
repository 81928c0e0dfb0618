/* Setting up and finishing the holder's files in a job directory (jobdir.h). */
#ifndef JOBS_JOBFILES_H
#define JOBS_JOBFILES_H

#include <stdbool.h>
#include <sys/types.h>

struct jobdir_files {
	int output_fd; /* output, write-only, O_APPEND */
	int listen_fd; /* notify.sock, listening, non-blocking */
};

/*
 * In the existing job directory dir_fd: removes what an earlier holder may
 * have left (notify.sock, status, status.tmp), creates output (0600) unless
 * output_fd >= 0 is the output file already (then owned by *files, closed on
 * failure too) and listens on notify.sock. The socket is bound relative to dir_fd (a brief
 * fchdir, restored before returning), so the directory's path is never used:
 * callers must be single-threaded. All descriptors are close-on-exec.
 * Returns 0, or -1 with errno and *failed naming the step for messages.
 */
int jobdir_prepare(int dir_fd, int output_fd, struct jobdir_files *files, const char **failed);

/* Undoes jobdir_prepare after a failed start: closes both and removes notify.sock. */
void jobdir_abandon(int dir_fd, struct jobdir_files *files);

/* Writes pid and child_pid. */
int jobdir_write_pids(int dir_fd, pid_t holder_pid, pid_t child_pid);

/* Writes status atomically (status.tmp, then rename). */
int jobdir_write_status(int dir_fd, int exit_status, bool limit_exceeded, bool write_failed);

#endif
