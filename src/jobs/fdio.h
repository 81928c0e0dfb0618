/* Descriptor helpers shared by the job holder, iomux, wsh and closefds.
 * Those that can fail return -1 with errno set; none prints anything. */
#ifndef JOBS_FDIO_H
#define JOBS_FDIO_H

#include <stddef.h>
#include <sys/types.h>

/* Writes the whole buffer, retrying on EINTR and short writes (blocking fds). */
int write_all(int fd, const void *buf, size_t len);

/* The same at an offset (pwrite(2)); the file position is not used. */
int pwrite_all(int fd, const void *buf, size_t len, off_t offset);

/* close(2) that ignores fd < 0 and keeps errno unchanged. */
void close_quietly(int fd);

/* Creates or truncates dir_fd/name (mode 0644) and writes text to it. */
int write_text_file_at(int dir_fd, const char *name, const char *text);

/* Grows a job's output pipe to JOB_PIPE_SIZE so that a fast writer fills it
 * in few writes and the holder drains it in few large records. Best effort:
 * the pipe works at its default size, and the kernel may refuse the growth
 * (pipe-user-pages-soft), so failure is not reported. */
#define JOB_PIPE_SIZE (1024 * 1024)
void widen_job_pipe(int fd);

/* Closes every descriptor >= first (shared by iomux-spawn and closefds, run
 * just before exec). Uses close_range(2) when the kernel has it, else closes
 * what /proc/self/fd lists, else every number below RLIMIT_NOFILE. Close
 * errors are ignored: a descriptor that fails to close is gone anyway. */
void close_fds_from(int first);

#endif
