/*
 * The on-disk contract of a job directory. Writers: the job holder library
 * in this directory (used by iomux-spawn for one job and by wshd for many).
 * Readers: iomux-link and the Python server (warden/container/jobs.py).
 *
 *   script       the job's stdin (written by the server; read by the holder)
 *   output       records: 1 byte stream id, 4 bytes big-endian length, bytes
 *   notify.sock  listening socket; one byte is sent to every client after
 *                each record and once at once to each newly accepted client;
 *                the connections close (and the socket goes) once status exists
 *   status       "<exit status>\n", then "output limit exceeded\n" if so;
 *                written atomically (status.tmp, then rename)
 *   pid          the holder's pid: the iomux-spawn daemon, or wshd (host view)
 *   child_pid    the job's pid, also its process group and session id; for a
 *                job held by wshd, the pid inside the container
 */
#ifndef JOBS_JOBDIR_H
#define JOBS_JOBDIR_H

#include <stdint.h>

#define JOB_SCRIPT_FILE "script"
#define JOB_OUTPUT_FILE "output"
#define JOB_NOTIFY_SOCKET "notify.sock"
#define JOB_STATUS_FILE "status"
#define JOB_STATUS_TMP_FILE "status.tmp"
#define JOB_PID_FILE "pid"
#define JOB_CHILD_PID_FILE "child_pid"

#define STATUS_LIMIT_EXCEEDED_LINE "output limit exceeded"
#define STATUS_WRITE_FAILED_LINE "output write failed"

enum stream_id { STREAM_STDOUT = 1, STREAM_STDERR = 2 };

#define RECORD_HEADER_SIZE 5
/* A record holds what one read of a job's pipe returned: at most the pipe's
 * size (JOB_PIPE_SIZE in fdio.h). Readers must accept records this large. */
#define RECORD_MAX_PAYLOAD (1024 * 1024)

static inline void record_header_encode(unsigned char *header, enum stream_id stream, uint32_t length)
{
	header[0] = (unsigned char)stream;
	header[1] = (unsigned char)(length >> 24);
	header[2] = (unsigned char)(length >> 16);
	header[3] = (unsigned char)(length >> 8);
	header[4] = (unsigned char)length;
}

static inline uint32_t record_header_length(const unsigned char *header)
{
	return (uint32_t)header[1] << 24 | (uint32_t)header[2] << 16 |
	       (uint32_t)header[3] << 8 | (uint32_t)header[4];
}

#endif
