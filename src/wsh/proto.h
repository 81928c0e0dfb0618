/*
 * The wsh <-> wshd wire format, version 1.
 *
 * A connection to wshd.sock carries exactly one request (wsh -> wshd) and
 * one response (wshd -> wsh); then wshd closes it. After that all traffic
 * flows over the descriptors passed in the response.
 *
 * Integers are little-endian and unaligned. Both messages are a frame:
 *
 *   offset size  field
 *   0      4     magic    "WSHq" for a request, "WSHr" for a response
 *   4      2     version  WSH_PROTO_VERSION
 *   6      2     word     request: flags (bit 0 = WSH_FLAG_TTY)
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
 *
 * Unknown record types are rejected. The body is at most WSH_MAX_BODY bytes.
 *
 * Response body:
 *   ok:    u32 pid of the job (as seen in the container), u32 fd count.
 *          The descriptors are attached as SCM_RIGHTS to the frame:
 *            no tty: job stdin (write end), stdout (read end),
 *                    stderr (read end), exit status (read end)
 *            tty:    pty master, exit status (read end)
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

#define WSH_PROTO_VERSION 1
#define WSH_REQ_MAGIC "WSHq"
#define WSH_RSP_MAGIC "WSHr"
#define WSH_HEADER_SIZE 12
#define WSH_MAX_BODY (1024u * 1024u)
#define WSH_MAX_RSP_BODY 4096u

#define WSH_FLAG_TTY 0x1u

#define WSH_STATUS_OK 0
#define WSH_STATUS_ERROR 1

enum wsh_record_type {
	WSH_REC_ARG = 1,
	WSH_REC_USER = 2,
	WSH_REC_ENV = 3,
	WSH_REC_RLIMIT = 4,
	WSH_REC_DIR = 5,
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
int wsh_req_finish(struct wsh_buf *b);

struct wsh_req_rlimit {
	unsigned index;
	uint64_t soft;
	uint64_t hard;
};

/* A decoded request. All strings are NUL-terminated copies owned by it. */
struct wsh_request {
	unsigned flags;
	char **argv;            /* argc entries + NULL */
	size_t argc;
	char **env;             /* envc entries + NULL */
	size_t envc;
	const char *user;       /* never NULL; "" = root */
	const char *dir;        /* NULL = home */
	struct wsh_req_rlimit rlimits[WSH_RLIMIT_COUNT];
	size_t nrlimits;
	char *storage;
};

/*
 * Look at the first len bytes received so far.
 * Returns 1 when a whole frame is there (*frame_len = its size),
 * 0 when more bytes are needed, -1 when the data cannot be a valid frame
 * (message in err). magic is WSH_REQ_MAGIC or WSH_RSP_MAGIC.
 */
int wsh_frame_check(const uint8_t *buf, size_t len, const char *magic, size_t max_body,
		    size_t *frame_len, char *err, size_t errlen);

/* Decode a complete request frame. 0, or -1 with a message in err. */
int wsh_req_decode(const uint8_t *frame, size_t len, struct wsh_request *req, char *err, size_t errlen);
void wsh_req_free(struct wsh_request *req);

/* Responses. */
int wsh_rsp_encode_ok(struct wsh_buf *b, uint32_t pid, uint32_t nfds);
int wsh_rsp_encode_error(struct wsh_buf *b, const char *msg);

struct wsh_response {
	int status;             /* WSH_STATUS_* */
	uint32_t pid;           /* ok only */
	uint32_t nfds;          /* ok only */
	char *message;          /* error only, NUL-terminated, owned */
};

int wsh_rsp_decode(const uint8_t *frame, size_t len, struct wsh_response *rsp, char *err, size_t errlen);
void wsh_rsp_free(struct wsh_response *rsp);

#endif
