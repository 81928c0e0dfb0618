#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
	put_u16(p, (uint16_t)v);
	put_u16(p + 2, (uint16_t)(v >> 16));
}

static void put_u64(uint8_t *p, uint64_t v)
{
	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)get_u16(p) | ((uint32_t)get_u16(p + 2) << 16);
}

static uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

void wsh_buf_init(struct wsh_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void wsh_buf_free(struct wsh_buf *b)
{
	free(b->data);
	wsh_buf_init(b);
}

/* Make room for extra more bytes and return a pointer to them. */
static uint8_t *buf_grow(struct wsh_buf *b, size_t extra)
{
	uint8_t *p;

	if (b->len > WSH_HEADER_SIZE + WSH_MAX_BODY || extra > WSH_HEADER_SIZE + WSH_MAX_BODY - b->len) {
		errno = E2BIG;
		return NULL;
	}
	if (b->len + extra > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + extra)
			cap *= 2;
		p = realloc(b->data, cap);
		if (p == NULL)
			return NULL;
		b->data = p;
		b->cap = cap;
	}
	p = b->data + b->len;
	b->len += extra;
	return p;
}

static int frame_begin(struct wsh_buf *b, const char *magic, unsigned version, uint16_t word)
{
	uint8_t *p;

	b->len = 0;
	p = buf_grow(b, WSH_HEADER_SIZE);
	if (p == NULL)
		return -1;
	memcpy(p, magic, 4);
	put_u16(p + 4, (uint16_t)version);
	put_u16(p + 6, word);
	put_u32(p + 8, 0);
	return 0;
}

static int frame_finish(struct wsh_buf *b, size_t max_body)
{
	size_t body = b->len - WSH_HEADER_SIZE;

	if (body > max_body) {
		errno = E2BIG;
		return -1;
	}
	put_u32(b->data + 8, (uint32_t)body);
	return 0;
}

int wsh_req_begin(struct wsh_buf *b, unsigned flags)
{
	return frame_begin(b, WSH_REQ_MAGIC, WSH_PROTO_VERSION, (uint16_t)flags);
}

static int add_record(struct wsh_buf *b, uint8_t type, const void *value, size_t len)
{
	uint8_t *p;

	if (len > WSH_MAX_BODY) {
		errno = E2BIG;
		return -1;
	}
	p = buf_grow(b, 5 + len);
	if (p == NULL)
		return -1;
	p[0] = type;
	put_u32(p + 1, (uint32_t)len);
	if (len > 0)
		memcpy(p + 5, value, len);
	return 0;
}

int wsh_req_add_string(struct wsh_buf *b, enum wsh_record_type type, const char *s)
{
	return add_record(b, (uint8_t)type, s, strlen(s));
}

int wsh_req_add_rlimit(struct wsh_buf *b, unsigned index, uint64_t soft, uint64_t hard)
{
	uint8_t v[WSH_RLIMIT_RECORD_SIZE];

	if (index >= WSH_RLIMIT_COUNT) {
		errno = EINVAL;
		return -1;
	}
	put_u32(v, index);
	put_u64(v + 4, soft);
	put_u64(v + 12, hard);
	return add_record(b, WSH_REC_RLIMIT, v, sizeof(v));
}

int wsh_req_add_u64(struct wsh_buf *b, enum wsh_record_type type, uint64_t v)
{
	uint8_t le[8];

	put_u64(le, v);
	return add_record(b, (uint8_t)type, le, sizeof(le));
}

int wsh_req_add_empty(struct wsh_buf *b, enum wsh_record_type type)
{
	return add_record(b, (uint8_t)type, NULL, 0);
}

int wsh_req_finish(struct wsh_buf *b)
{
	return frame_finish(b, WSH_MAX_BODY);
}

int wsh_frame_check(const uint8_t *buf, size_t len, const char *magic, size_t max_body,
		    size_t *frame_len, char *err, size_t errlen)
{
	uint32_t body;

	/* Reject a wrong magic as early as possible. */
	if (memcmp(buf, magic, len < 4 ? len : 4) != 0) {
		snprintf(err, errlen, "bad magic (not a wsh %s)",
			 magic[3] == 'q' ? "request" : "response");
		return -1;
	}
	if (len < WSH_HEADER_SIZE)
		return 0;
	if (get_u16(buf + 4) < WSH_PROTO_MIN_VERSION || get_u16(buf + 4) > WSH_PROTO_VERSION) {
		snprintf(err, errlen, "unsupported protocol version %u (this side speaks %u to %u)",
			 get_u16(buf + 4), WSH_PROTO_MIN_VERSION, WSH_PROTO_VERSION);
		return -1;
	}
	body = get_u32(buf + 8);
	if (body > max_body) {
		snprintf(err, errlen, "message body too large (%u bytes, limit %zu)", body, max_body);
		return -1;
	}
	if (len < WSH_HEADER_SIZE + (size_t)body)
		return 0;
	*frame_len = WSH_HEADER_SIZE + (size_t)body;
	return 1;
}

/* Append a pointer to a NULL-terminated growing array. */
static int push_ptr(char ***arr, size_t *count, char *s)
{
	char **p = realloc(*arr, (*count + 2) * sizeof(char *));

	if (p == NULL)
		return -1;
	p[(*count)++] = s;
	p[*count] = NULL;
	*arr = p;
	return 0;
}

int wsh_req_decode(const uint8_t *frame, size_t len, struct wsh_request *req, char *err, size_t errlen)
{
	static const char empty[] = "";
	const uint8_t *p, *end;
	char *store;
	size_t frame_len = 0, i;
	int seen_user = 0, rc;

	memset(req, 0, sizeof(*req));
	req->user = empty;
	rc = wsh_frame_check(frame, len, WSH_REQ_MAGIC, WSH_MAX_BODY, &frame_len, err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 0 || frame_len != len) {
		snprintf(err, errlen, rc == 0 ? "truncated request" : "trailing bytes after the request");
		return -1;
	}
	req->version = get_u16(frame + 4);
	req->flags = get_u16(frame + 6);
	if (req->flags & ~(WSH_FLAG_TTY | WSH_FLAG_JOB) || (req->version < 2 && (req->flags & WSH_FLAG_JOB))) {
		snprintf(err, errlen, "unknown request flags 0x%x", req->flags);
		return -1;
	}
	if ((req->flags & WSH_FLAG_TTY) && (req->flags & WSH_FLAG_JOB)) {
		snprintf(err, errlen, "a job request cannot have a tty");
		return -1;
	}

	/* Every string value needs at most its record size in the copy. */
	req->storage = malloc(len - WSH_HEADER_SIZE + 1);
	if (req->storage == NULL)
		goto nomem;
	store = req->storage;

	p = frame + WSH_HEADER_SIZE;
	end = frame + len;
	while (p < end) {
		uint8_t type;
		uint32_t vlen;
		const uint8_t *v;

		if ((size_t)(end - p) < 5) {
			snprintf(err, errlen, "truncated record header");
			goto fail;
		}
		type = p[0];
		vlen = get_u32(p + 1);
		v = p + 5;
		if ((size_t)(end - v) < vlen) {
			snprintf(err, errlen, "record of type %u overruns the message", type);
			goto fail;
		}
		p = v + vlen;

		if (type == WSH_REC_RLIMIT) {
			struct wsh_req_rlimit *rl;

			if (vlen != WSH_RLIMIT_RECORD_SIZE) {
				snprintf(err, errlen, "rlimit record has %u bytes, expected %d", vlen,
					 WSH_RLIMIT_RECORD_SIZE);
				goto fail;
			}
			if (req->nrlimits >= WSH_RLIMIT_COUNT) {
				snprintf(err, errlen, "too many rlimit records");
				goto fail;
			}
			rl = &req->rlimits[req->nrlimits];
			rl->index = get_u32(v);
			rl->soft = get_u64(v + 4);
			rl->hard = get_u64(v + 12);
			if (rl->index >= WSH_RLIMIT_COUNT) {
				snprintf(err, errlen, "unknown rlimit index %u", rl->index);
				goto fail;
			}
			for (i = 0; i < req->nrlimits; i++) {
				if (req->rlimits[i].index == rl->index) {
					snprintf(err, errlen, "rlimit %s given twice",
						 wsh_limits[rl->index].name);
					goto fail;
				}
			}
			req->nrlimits++;
			continue;
		}
		if (type >= WSH_REC_JOB && type <= WSH_REC_OUTPUT_FD && !(req->flags & WSH_FLAG_JOB)) {
			snprintf(err, errlen, "record of type %u needs a job request", type);
			goto fail;
		}
		if (type == WSH_REC_OUTPUT_LIMIT || type == WSH_REC_DISCARD || type == WSH_REC_OUTPUT_FD) {
			size_t want = type == WSH_REC_OUTPUT_LIMIT ? 8 : 0;

			if (vlen != want) {
				snprintf(err, errlen, "record of type %u has %u bytes, expected %zu", type, vlen, want);
				goto fail;
			}
			if (type == WSH_REC_OUTPUT_LIMIT)
				req->output_limit = get_u64(v);
			else if (type == WSH_REC_DISCARD)
				req->discard = 1;
			else
				req->output_fd_passed = 1;
			continue;
		}

		if (type < WSH_REC_ARG || type > WSH_REC_JOB) {
			snprintf(err, errlen, "unknown record type %u", type);
			goto fail;
		}
		if (memchr(v, '\0', vlen) != NULL) {
			snprintf(err, errlen, "record of type %u contains a NUL byte", type);
			goto fail;
		}
		memcpy(store, v, vlen);
		store[vlen] = '\0';

		switch (type) {
		case WSH_REC_ARG:
			if (push_ptr(&req->argv, &req->argc, store) < 0)
				goto nomem;
			break;
		case WSH_REC_ENV:
			if (strchr(store, '=') == NULL || store[0] == '=') {
				snprintf(err, errlen, "environment entry \"%s\" is not NAME=VALUE", store);
				goto fail;
			}
			if (push_ptr(&req->env, &req->envc, store) < 0)
				goto nomem;
			break;
		case WSH_REC_USER:
			if (seen_user++) {
				snprintf(err, errlen, "user given twice");
				goto fail;
			}
			req->user = store;
			break;
		case WSH_REC_DIR:
			if (req->dir != NULL) {
				snprintf(err, errlen, "working directory given twice");
				goto fail;
			}
			if (vlen == 0) {
				snprintf(err, errlen, "empty working directory");
				goto fail;
			}
			req->dir = store;
			break;
		case WSH_REC_JOB:
			if (req->job != NULL) {
				snprintf(err, errlen, "job given twice");
				goto fail;
			}
			if (vlen == 0 || vlen > WSH_JOB_NAME_MAX || memchr(v, '/', vlen) != NULL ||
			    strcmp(store, ".") == 0 || strcmp(store, "..") == 0) {
				snprintf(err, errlen, "invalid job directory name");
				goto fail;
			}
			req->job = store;
			break;
		}
		store += vlen + 1;
	}
	if ((req->flags & WSH_FLAG_JOB) && req->job == NULL) {
		snprintf(err, errlen, "job request without a job record");
		goto fail;
	}
	/* Callers may rely on argv and env always being arrays. */
	if (req->argv == NULL && (req->argv = calloc(1, sizeof(char *))) == NULL)
		goto nomem;
	if (req->env == NULL && (req->env = calloc(1, sizeof(char *))) == NULL)
		goto nomem;
	return 0;

nomem:
	snprintf(err, errlen, "out of memory");
fail:
	wsh_req_free(req);
	return -1;
}

void wsh_req_free(struct wsh_request *req)
{
	free(req->argv);
	free(req->env);
	free(req->storage);
	memset(req, 0, sizeof(*req));
	req->user = "";
}

int wsh_rsp_encode_ok(struct wsh_buf *b, unsigned version, uint32_t pid, uint32_t nfds)
{
	uint8_t *p;

	if (frame_begin(b, WSH_RSP_MAGIC, version, WSH_STATUS_OK) < 0)
		return -1;
	p = buf_grow(b, 8);
	if (p == NULL)
		return -1;
	put_u32(p, pid);
	put_u32(p + 4, nfds);
	return frame_finish(b, WSH_MAX_RSP_BODY);
}

int wsh_rsp_encode_error(struct wsh_buf *b, unsigned version, const char *msg)
{
	size_t len = strlen(msg);
	uint8_t *p;

	if (len > WSH_MAX_RSP_BODY)
		len = WSH_MAX_RSP_BODY;
	if (frame_begin(b, WSH_RSP_MAGIC, version, WSH_STATUS_ERROR) < 0)
		return -1;
	p = buf_grow(b, len);
	if (p == NULL)
		return -1;
	memcpy(p, msg, len);
	return frame_finish(b, WSH_MAX_RSP_BODY);
}

int wsh_rsp_decode(const uint8_t *frame, size_t len, struct wsh_response *rsp, char *err, size_t errlen)
{
	size_t frame_len = 0, body;
	int rc;

	memset(rsp, 0, sizeof(*rsp));
	rc = wsh_frame_check(frame, len, WSH_RSP_MAGIC, WSH_MAX_RSP_BODY, &frame_len, err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 0 || frame_len != len) {
		snprintf(err, errlen, rc == 0 ? "truncated response" : "trailing bytes after the response");
		return -1;
	}
	body = len - WSH_HEADER_SIZE;
	rsp->status = get_u16(frame + 6);
	if (rsp->status == WSH_STATUS_OK) {
		if (body != 8) {
			snprintf(err, errlen, "ok response has a %zu-byte body, expected 8", body);
			return -1;
		}
		rsp->pid = get_u32(frame + WSH_HEADER_SIZE);
		rsp->nfds = get_u32(frame + WSH_HEADER_SIZE + 4);
		return 0;
	}
	if (rsp->status != WSH_STATUS_ERROR) {
		snprintf(err, errlen, "unknown response status %d", rsp->status);
		return -1;
	}
	rsp->message = malloc(body + 1);
	if (rsp->message == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(rsp->message, frame + WSH_HEADER_SIZE, body);
	rsp->message[body] = '\0';
	return 0;
}

void wsh_rsp_free(struct wsh_response *rsp)
{
	free(rsp->message);
	memset(rsp, 0, sizeof(*rsp));
}
