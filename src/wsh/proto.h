/*
 * The wsh <-> wshd wire format, version 2.
 *
 * A connection to wshd.sock carries exactly one request (client -> wshd) and
 * one response (wshd -> client); then wshd closes it. For an exec request
 * all later traffic flows over the descriptors passed in the response; a
 * job request (WSH_FLAG_JOB) needs none: its output goes to a job directory.
 *
 * Integers are little-endian and unaligned. Both messages are a frame:
 *
 *   offset size  field
 *   0      4     magic    "WSHq" for a request, "WSHr" for a response
 *   4      2     version  1 or 2 (WSH_PROTO_MIN_VERSION..WSH_PROTO_VERSION);
 *                         a response carries its request's version
 *   6      2     word     request: flags (bit 0 = WSH_FLAG_TTY,
 *                                        bit 1 = WSH_FLAG_JOB, version 2 only)
 *                         response: status (0 = ok, 1 = error)
 *   8      4     length   number of body bytes that follow
 *   12     ...   body
 *
 * Request body: a sequence of records, each
 *   u8 type, u32 length, <length> bytes of value.
 * Strings carry no terminator and must not contain NUL bytes.
 *
 *   type               value
 *   1  WSH_REC_ARG     one argv element; records keep their order. No ARG
 *                      record: run the user's login shell.
 *   2  WSH_REC_USER    user name, looked up in the container's /etc/passwd.
 *                      Absent or empty: root. At most once.
 *   3  WSH_REC_ENV     "NAME=VALUE", added to the job's fresh environment
 *                      after HOME, USER and PATH (and overriding them).
 *   4  WSH_REC_RLIMIT  20 bytes: u32 index (WSH_RLIMIT_* from rlimits.h:
 *                      0 as, 1 core, 2 cpu, 3 data, 4 fsize, 5 locks,
 *                      6 memlock, 7 msgqueue, 8 nice, 9 nofile, 10 nproc,
 *                      11 rss, 12 rtprio, 13 sigpending, 14 stack),
 *                      u64 soft, u64 hard; UINT64_MAX = unlimited.
 *                      Limits not sent get wshd's defaults.
 *   5  WSH_REC_DIR     working directory. Absent: the user's home (or /).
 *   Version 2, job requests only:
 *   6  WSH_REC_JOB     the job directory's name in wshd's jobs directory
 *                      (1..255 bytes, no '/', not "." or ".."). Required.
 *   7  WSH_REC_OUTPUT_LIMIT
 *                      u64: output bytes kept before the job's process group
 *                      is killed (status 255 + "output limit exceeded").
 *                      Absent or 0: no limit.
 *   8  WSH_REC_DISCARD empty: keep no output records.
 *   9  WSH_REC_OUTPUT_FD
 *                      empty: the job's output file is the one descriptor
 *                      attached (SCM_RIGHTS) to the request, opened by the
 *                      caller for appending; wshd then creates no output file
 *                      in the job directory. A descriptor comes with exactly
 *                      the requests that carry this record.
 *
 * Unknown record types are rejected. The body is at most WSH_MAX_BODY bytes.
 *
 * A job request (WSH_FLAG_JOB, not with WSH_FLAG_TTY) asks wshd to hold the
 * job itself, with the job directory contract of ../jobs/jobdir.h: wshd opens
 * <jobs>/<job>/script as the job's stdin, creates output (unless one was
 * passed) and notify.sock,
 * starts the job exactly as for an exec request, writes pid and child_pid,
 * and answers. It then appends the job's stdout/stderr to output and writes
 * status when the job has exited and both pipes are closed.
 *
 * Response body:
 *   ok:    u32 pid of the job (as seen in the container), u32 fd count.
 *          The descriptors are attached as SCM_RIGHTS to the frame:
 *            no tty: job stdin (write end), stdout (read end),
 *                    stderr (read end), exit status (read end)
 *            tty:    pty master, exit status (read end)
 *            job:    none (count 0)
 *   error: a message for humans (no NUL).
 *
 * Exit status pipe: when the job exits, wshd writes its exit code as a u32
 * and closes the pipe. When the job is killed by a signal, wshd closes the
 * pipe without writing anything.
 */
#ifndef WSH_PROTO_H
#define WSH_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "rlimits.h"

#define WSH_PROTO_VERSION 2
#define WSH_PROTO_MIN_VERSION 1
#define WSH_REQ_MAGIC "WSHq"
#define WSH_RSP_MAGIC "WSHr"
#define WSH_HEADER_SIZE 12
#define WSH_MAX_BODY (1024u * 1024u)
#define WSH_MAX_RSP_BODY 4096u

#define WSH_FLAG_TTY 0x1u
#define WSH_FLAG_JOB 0x2u
#define WSH_JOB_NAME_MAX 255

#define WSH_STATUS_OK 0
#define WSH_STATUS_ERROR 1

enum wsh_record_type {
	WSH_REC_ARG = 1,
	WSH_REC_USER = 2,
	WSH_REC_ENV = 3,
	WSH_REC_RLIMIT = 4,
	WSH_REC_DIR = 5,
	WSH_REC_JOB = 6,
	WSH_REC_OUTPUT_LIMIT = 7,
	WSH_REC_DISCARD = 8,
	WSH_REC_OUTPUT_FD = 9,
};

#define WSH_RLIMIT_RECORD_SIZE 20
#define WSH_FDS_NOTTY 4
#define WSH_FDS_TTY 2

/* A growable byte buffer for building frames. */
struct wsh_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

void wsh_buf_init(struct wsh_buf *b);
void wsh_buf_free(struct wsh_buf *b);

/* Request building: begin, add records, finish (patches the length).
 * Each returns 0, or -1 with errno (ENOMEM, E2BIG when the body would
 * exceed WSH_MAX_BODY, EINVAL for a string containing NUL). */
int wsh_req_begin(struct wsh_buf *b, unsigned flags);
int wsh_req_add_string(struct wsh_buf *b, enum wsh_record_type type, const char *s);
int wsh_req_add_rlimit(struct wsh_buf *b, unsigned index, uint64_t soft, uint64_t hard);
int wsh_req_add_u64(struct wsh_buf *b, enum wsh_record_type type, uint64_t v);
int wsh_req_add_empty(struct wsh_buf *b, enum wsh_record_type type);
int wsh_req_finish(struct wsh_buf *b);

struct wsh_req_rlimit {
	unsigned index;
	uint64_t soft;
	uint64_t hard;
};

/* A decoded request. All strings are NUL-terminated copies owned by it. */
struct wsh_request {
	unsigned version;
	unsigned flags;
	char **argv;            /* argc entries + NULL */
	size_t argc;
	char **env;             /* envc entries + NULL */
	size_t envc;
	const char *user;       /* never NULL; "" = root */
	const char *dir;        /* NULL = home */
	struct wsh_req_rlimit rlimits[WSH_RLIMIT_COUNT];
	size_t nrlimits;
	const char *job;        /* WSH_FLAG_JOB: the job directory name, else NULL */
	uint64_t output_limit;  /* 0 = none */
	int discard;
	int output_fd_passed;   /* WSH_REC_OUTPUT_FD seen */
	char *storage;
};

/*
 * Look at the first len bytes received so far.
 * Returns 1 when a whole frame is there (*frame_len = its size),
 * 0 when more bytes are needed, -1 when the data cannot be a valid frame
 * (message in err). magic is WSH_REQ_MAGIC or WSH_RSP_MAGIC. Versions
 * WSH_PROTO_MIN_VERSION..WSH_PROTO_VERSION are accepted.
 */
int wsh_frame_check(const uint8_t *buf, size_t len, const char *magic, size_t max_body,
		    size_t *frame_len, char *err, size_t errlen);

/* Decode a complete request frame. 0, or -1 with a message in err. */
int wsh_req_decode(const uint8_t *frame, size_t len, struct wsh_request *req, char *err, size_t errlen);
void wsh_req_free(struct wsh_request *req);

/* Responses, in the request's protocol version (or WSH_PROTO_VERSION). */
int wsh_rsp_encode_ok(struct wsh_buf *b, unsigned version, uint32_t pid, uint32_t nfds);
int wsh_rsp_encode_error(struct wsh_buf *b, unsigned version, const char *msg);

struct wsh_response {
	int status;             /* WSH_STATUS_* */
	uint32_t pid;           /* ok only */
	uint32_t nfds;          /* ok only */
	char *message;          /* error only, NUL-terminated, owned */
};

int wsh_rsp_decode(const uint8_t *frame, size_t len, struct wsh_response *rsp, char *err, size_t errlen);
void wsh_rsp_free(struct wsh_response *rsp);

#endif
