/* Unit tests for the wire format, rlimit parsing, the passwd reader and
 * wsh's argument parsing. Prints one line per failure; exits 1 if any. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "passwd.h"
#include "proto.h"
#include "rlimits.h"
#include "wsh_args.h"

static int failures;
static int checks;

#define CHECK(cond)                                                                 \
	do {                                                                        \
		checks++;                                                           \
		if (!(cond)) {                                                      \
			failures++;                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                   \
	} while (0)

static void test_request_roundtrip(void)
{
	struct wsh_buf b;
	struct wsh_request req;
	char err[256];
	size_t frame_len = 0;

	wsh_buf_init(&b);
	CHECK(wsh_req_begin(&b, WSH_FLAG_TTY) == 0);
	CHECK(wsh_req_add_string(&b, WSH_REC_ARG, "/bin/echo") == 0);
	CHECK(wsh_req_add_string(&b, WSH_REC_ARG, "") == 0);
	CHECK(wsh_req_add_string(&b, WSH_REC_ARG, "two words") == 0);
	CHECK(wsh_req_add_string(&b, WSH_REC_USER, "vcap") == 0);
	CHECK(wsh_req_add_string(&b, WSH_REC_ENV, "LANG=en_US.UTF-8") == 0);
	CHECK(wsh_req_add_string(&b, WSH_REC_DIR, "/tmp") == 0);
	CHECK(wsh_req_add_rlimit(&b, 9, 77, 88) == 0);
	CHECK(wsh_req_add_rlimit(&b, 0, WSH_RLIM_UNLIMITED, WSH_RLIM_UNLIMITED) == 0);
	CHECK(wsh_req_add_rlimit(&b, WSH_RLIMIT_COUNT, 1, 1) < 0);
	CHECK(wsh_req_finish(&b) == 0);

	/* Byte by byte: incomplete until the very end. */
	for (size_t i = 0; i < b.len; i++)
		CHECK(wsh_frame_check(b.data, i, WSH_REQ_MAGIC, WSH_MAX_BODY, &frame_len, err, sizeof(err)) == 0);
	CHECK(wsh_frame_check(b.data, b.len, WSH_REQ_MAGIC, WSH_MAX_BODY, &frame_len, err, sizeof(err)) == 1);
	CHECK(frame_len == b.len);
	CHECK(memcmp(b.data, "WSHq\x02\x00\x01\x00", 8) == 0);

	CHECK(wsh_req_decode(b.data, b.len, &req, err, sizeof(err)) == 0);
	CHECK(req.flags == WSH_FLAG_TTY && req.version == WSH_PROTO_VERSION);
	CHECK(req.job == NULL && req.output_limit == 0 && !req.discard);
	CHECK(req.argc == 3);
	CHECK(strcmp(req.argv[0], "/bin/echo") == 0);
	CHECK(strcmp(req.argv[1], "") == 0);
	CHECK(strcmp(req.argv[2], "two words") == 0);
	CHECK(req.argv[3] == NULL);
	CHECK(strcmp(req.user, "vcap") == 0);
	CHECK(req.dir != NULL && strcmp(req.dir, "/tmp") == 0);
	CHECK(req.envc == 1 && strcmp(req.env[0], "LANG=en_US.UTF-8") == 0 && req.env[1] == NULL);
	CHECK(req.nrlimits == 2);
	CHECK(req.rlimits[0].index == 9 && req.rlimits[0].soft == 77 && req.rlimits[0].hard == 88);
	CHECK(req.rlimits[1].index == 0 && req.rlimits[1].hard == WSH_RLIM_UNLIMITED);
	wsh_req_free(&req);

	/* Truncated frames and trailing bytes are refused. */
	CHECK(wsh_req_decode(b.data, b.len - 1, &req, err, sizeof(err)) < 0);
	wsh_buf_free(&b);
}

static void test_request_job(void)
{
	struct wsh_buf b;
	struct wsh_request req;
	char err[256];

	wsh_buf_init(&b);
	CHECK(wsh_req_begin(&b, WSH_FLAG_JOB) == 0);
	CHECK(wsh_req_add_string(&b, WSH_REC_ARG, "/bin/bash") == 0);
	CHECK(wsh_req_add_string(&b, WSH_REC_USER, "vcap") == 0);
	CHECK(wsh_req_add_string(&b, WSH_REC_JOB, "42") == 0);
	CHECK(wsh_req_add_u64(&b, WSH_REC_OUTPUT_LIMIT, 10485760) == 0);
	CHECK(wsh_req_add_empty(&b, WSH_REC_DISCARD) == 0);
	CHECK(wsh_req_finish(&b) == 0);
	CHECK(wsh_req_decode(b.data, b.len, &req, err, sizeof(err)) == 0);
	CHECK(req.flags == WSH_FLAG_JOB && req.job != NULL && strcmp(req.job, "42") == 0);
	CHECK(req.output_limit == 10485760 && req.discard == 1 && req.output_fd_passed == 0);
	CHECK(req.argc == 1 && strcmp(req.argv[0], "/bin/bash") == 0 && strcmp(req.user, "vcap") == 0);
	wsh_req_free(&req);

	/* The output file may come with the request. */
	CHECK(wsh_req_begin(&b, WSH_FLAG_JOB) == 0);
	CHECK(wsh_req_add_string(&b, WSH_REC_JOB, "43") == 0);
	CHECK(wsh_req_add_empty(&b, WSH_REC_OUTPUT_FD) == 0);
	CHECK(wsh_req_finish(&b) == 0);
	CHECK(wsh_req_decode(b.data, b.len, &req, err, sizeof(err)) == 0);
	CHECK(req.output_fd_passed == 1 && req.discard == 0);
	wsh_req_free(&req);

	/* A version 1 request (an older wsh) still decodes, and is answered in version 1. */
	CHECK(wsh_req_begin(&b, 0) == 0);
	CHECK(wsh_req_finish(&b) == 0);
	b.data[4] = 1;
	CHECK(wsh_req_decode(b.data, b.len, &req, err, sizeof(err)) == 0 && req.version == 1);
	wsh_req_free(&req);
	CHECK(wsh_rsp_encode_error(&b, 1, "x") == 0 && b.data[4] == 1 && b.data[5] == 0);
	wsh_buf_free(&b);
}

static void test_request_minimal(void)
{
	struct wsh_buf b;
	struct wsh_request req;
	char err[256];

	wsh_buf_init(&b);
	CHECK(wsh_req_begin(&b, 0) == 0);
	CHECK(wsh_req_finish(&b) == 0);
	CHECK(b.len == WSH_HEADER_SIZE);
	CHECK(wsh_req_decode(b.data, b.len, &req, err, sizeof(err)) == 0);
	CHECK(req.argc == 0 && req.argv != NULL && req.argv[0] == NULL);
	CHECK(req.envc == 0 && req.env != NULL && req.env[0] == NULL);
	CHECK(strcmp(req.user, "") == 0 && req.dir == NULL && req.nrlimits == 0);
	wsh_req_free(&req);
	wsh_buf_free(&b);
}

static void expect_bad(const uint8_t *data, size_t len, const char *what)
{
	struct wsh_request req;
	char err[256] = "";

	checks++;
	if (wsh_req_decode(data, len, &req, err, sizeof(err)) == 0) {
		failures++;
		fprintf(stderr, "accepted a bad request: %s\n", what);
		wsh_req_free(&req);
	} else if (err[0] == '\0') {
		failures++;
		fprintf(stderr, "no error message for: %s\n", what);
	}
}

static void test_request_bad(void)
{
	uint8_t f[64];
	char err[256];
	size_t fl;

	/* Wrong magic is rejected from the first byte on. */
	CHECK(wsh_frame_check((const uint8_t *)"X", 1, WSH_REQ_MAGIC, WSH_MAX_BODY, &fl, err, sizeof(err)) < 0);
	CHECK(wsh_frame_check((const uint8_t *)"WSHr", 4, WSH_REQ_MAGIC, WSH_MAX_BODY, &fl, err, sizeof(err)) < 0);

	/* Versions 0 and 3. */
	memcpy(f, "WSHq\x00\x00\x00\x00\x00\x00\x00\x00", 12);
	expect_bad(f, 12, "version 0");
	memcpy(f, "WSHq\x03\x00\x00\x00\x00\x00\x00\x00", 12);
	expect_bad(f, 12, "version 3");
	/* Oversized body announced. */
	memcpy(f, "WSHq\x01\x00\x00\x00\xff\xff\xff\x7f", 12);
	CHECK(wsh_frame_check(f, 12, WSH_REQ_MAGIC, WSH_MAX_BODY, &fl, err, sizeof(err)) < 0);
	/* Unknown flag; the job flag in version 1. */
	memcpy(f, "WSHq\x02\x00\x04\x00\x00\x00\x00\x00", 12);
	expect_bad(f, 12, "unknown flag");
	memcpy(f, "WSHq\x01\x00\x02\x00\x07\x00\x00\x00\x06\x02\x00\x00\x00" "42", 19);
	expect_bad(f, 19, "job flag in version 1");
	/* Job requests: no job record, tty, bad names, job records without the flag. */
	memcpy(f, "WSHq\x02\x00\x02\x00\x00\x00\x00\x00", 12);
	expect_bad(f, 12, "job request without job record");
	memcpy(f, "WSHq\x02\x00\x03\x00\x07\x00\x00\x00\x06\x02\x00\x00\x00" "42", 19);
	expect_bad(f, 19, "job request with a tty");
	memcpy(f, "WSHq\x02\x00\x02\x00\x07\x00\x00\x00\x06\x02\x00\x00\x00..", 19);
	expect_bad(f, 19, "job named ..");
	memcpy(f, "WSHq\x02\x00\x02\x00\x08\x00\x00\x00\x06\x03\x00\x00\x00" "a/b", 20);
	expect_bad(f, 20, "job name with a slash");
	memcpy(f, "WSHq\x02\x00\x00\x00\x07\x00\x00\x00\x06\x02\x00\x00\x00" "42", 19);
	expect_bad(f, 19, "job record without the job flag");
	memcpy(f, "WSHq\x02\x00\x00\x00\x05\x00\x00\x00\x08\x00\x00\x00\x00", 17);
	expect_bad(f, 17, "discard without the job flag");
	memcpy(f, "WSHq\x02\x00\x02\x00\x0b\x00\x00\x00\x06\x01\x00\x00\x00" "1\x07\x00\x00\x00\x00", 23);
	expect_bad(f, 23, "empty output limit");
	memcpy(f, "WSHq\x02\x00\x00\x00\x05\x00\x00\x00\x09\x00\x00\x00\x00", 17);
	expect_bad(f, 17, "output descriptor without the job flag");
	memcpy(f, "WSHq\x02\x00\x02\x00\x0c\x00\x00\x00\x06\x01\x00\x00\x00" "1\x09\x01\x00\x00\x00x", 24);
	expect_bad(f, 24, "output descriptor record with a value");
	/* Unknown record type 10. */
	memcpy(f, "WSHq\x02\x00\x00\x00\x06\x00\x00\x00\x0a\x01\x00\x00\x00x", 18);
	expect_bad(f, 18, "unknown record type");
	/* Record length overruns the body. */
	memcpy(f, "WSHq\x01\x00\x00\x00\x06\x00\x00\x00\x01\x05\x00\x00\x00x", 18);
	expect_bad(f, 18, "overrun");
	/* NUL inside a string. */
	memcpy(f, "WSHq\x01\x00\x00\x00\x07\x00\x00\x00\x01\x02\x00\x00\x00x\x00", 19);
	expect_bad(f, 19, "NUL in arg");
	/* Env entry without '='. */
	memcpy(f, "WSHq\x01\x00\x00\x00\x06\x00\x00\x00\x03\x01\x00\x00\x00x", 18);
	expect_bad(f, 18, "env without =");
	/* rlimit record of the wrong size. */
	memcpy(f, "WSHq\x01\x00\x00\x00\x06\x00\x00\x00\x04\x01\x00\x00\x00x", 18);
	expect_bad(f, 18, "short rlimit");
	/* Truncated record header. */
	memcpy(f, "WSHq\x01\x00\x00\x00\x02\x00\x00\x00\x01\x00", 14);
	expect_bad(f, 14, "truncated record header");
}

static void test_response(void)
{
	struct wsh_buf b;
	struct wsh_response rsp;
	char err[256];

	wsh_buf_init(&b);
	CHECK(wsh_rsp_encode_ok(&b, WSH_PROTO_VERSION, 1234, 4) == 0);
	CHECK(wsh_rsp_decode(b.data, b.len, &rsp, err, sizeof(err)) == 0);
	CHECK(rsp.status == WSH_STATUS_OK && rsp.pid == 1234 && rsp.nfds == 4 && rsp.message == NULL);
	wsh_rsp_free(&rsp);
	CHECK(wsh_rsp_encode_error(&b, WSH_PROTO_VERSION, "no such user") == 0);
	CHECK(wsh_rsp_decode(b.data, b.len, &rsp, err, sizeof(err)) == 0);
	CHECK(rsp.status == WSH_STATUS_ERROR && strcmp(rsp.message, "no such user") == 0);
	wsh_rsp_free(&rsp);
	CHECK(wsh_rsp_decode(b.data, b.len - 1, &rsp, err, sizeof(err)) < 0);
	wsh_buf_free(&b);
}

static void test_rlimits(void)
{
	uint64_t s, h;

	CHECK(wsh_rlimit_parse("77", &s, &h) == 0 && s == 77 && h == 77);
	CHECK(wsh_rlimit_parse("77 88", &s, &h) == 0 && s == 77 && h == 88);
	CHECK(wsh_rlimit_parse("  5   6  ", &s, &h) == 0 && s == 5 && h == 6);
	CHECK(wsh_rlimit_parse("unlimited", &s, &h) == 0 && s == WSH_RLIM_UNLIMITED);
	CHECK(wsh_rlimit_parse("10 infinity", &s, &h) == 0 && s == 10 && h == WSH_RLIM_UNLIMITED);
	CHECK(wsh_rlimit_parse("", &s, &h) < 0);
	CHECK(wsh_rlimit_parse("abc", &s, &h) < 0);
	CHECK(wsh_rlimit_parse("-1", &s, &h) < 0);
	CHECK(wsh_rlimit_parse("12x", &s, &h) < 0);
	CHECK(wsh_rlimit_parse("1 2 3", &s, &h) < 0);
	CHECK(wsh_rlimit_parse("9 8", &s, &h) < 0);
	CHECK(wsh_rlimit_parse("99999999999999999999999", &s, &h) < 0);
	CHECK(strcmp(wsh_limits[9].name, "NOFILE") == 0 && wsh_limits[9].def == 1024);
	CHECK(strcmp(wsh_limits[14].name, "STACK") == 0 && wsh_limits[14].def == 8u << 20);
	CHECK(wsh_rlimit_value(WSH_RLIM_UNLIMITED) == RLIM_INFINITY);
}

static void test_passwd(void)
{
	char path[] = "/tmp/wsh-passwd-XXXXXX";
	const char *text =
		"root:x:0:0:root:/root:/bin/bash\n"
		"broken:x:notanumber:0::/:/bin/sh\n"
		"broken:x:5:5::/home/b:/bin/sh\n"
		"vcapper:x:1:1::/x:/bin/sh\n"
		"vcap:x:4000000000:4000000001:,,,:/home/vcap:\n"
		"short:x:1:1\n"
		"nohome:x:12:13:::/bin/sh";
	struct passwd_entry e;
	int fd = mkstemp(path);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);

	CHECK(passwd_lookup(path, "root", &e) == 0);
	CHECK(e.uid == 0 && e.gid == 0 && strcmp(e.home, "/root") == 0 && strcmp(e.shell, "/bin/bash") == 0);
	passwd_entry_free(&e);
	CHECK(passwd_lookup(path, "vcap", &e) == 0);
	CHECK(e.uid == 4000000000u && e.gid == 4000000001u && strcmp(e.home, "/home/vcap") == 0);
	CHECK(strcmp(e.shell, "") == 0 && strcmp(e.name, "vcap") == 0);
	passwd_entry_free(&e);
	CHECK(passwd_lookup(path, "broken", &e) == 0 && e.uid == 5);
	passwd_entry_free(&e);
	CHECK(passwd_lookup(path, "nohome", &e) == 0 && e.uid == 12 && e.gid == 13 && e.home[0] == '\0');
	passwd_entry_free(&e);
	CHECK(passwd_lookup(path, "short", &e) == 1);
	CHECK(passwd_lookup(path, "vca", &e) == 1);
	CHECK(passwd_lookup(path, "", &e) == 1);
	CHECK(passwd_lookup(path, "a:b", &e) == 1);
	CHECK(passwd_lookup("/nonexistent/passwd", "root", &e) < 0 && errno == ENOENT);
	unlink(path);
}

static int parse(struct wsh_args *a, const char **words)
{
	static char *argv[32];
	char err[256];
	int argc = 0;

	while (words[argc] != NULL) {
		argv[argc] = (char *)words[argc];
		argc++;
	}
	argv[argc] = NULL;
	return wsh_args_parse(argc, argv, a, err, sizeof(err));
}

static void test_args(void)
{
	struct wsh_args a;

	{
		const char *w[] = { "wsh", NULL };
		CHECK(parse(&a, w) == 0 && strcmp(a.socket, "run/wshd.sock") == 0 && a.argc == 0 && a.user == NULL);
		wsh_args_free(&a);
	}
	{
		const char *w[] = { "wsh", "--socket", "/s", "--user=vcap", "--dir", "/tmp", "--env", "A=1",
				    "--env=B=2", "ls", "-l", "--user", NULL };
		CHECK(parse(&a, w) == 0);
		CHECK(strcmp(a.socket, "/s") == 0 && strcmp(a.user, "vcap") == 0 && strcmp(a.dir, "/tmp") == 0);
		CHECK(a.nenv == 2 && strcmp(a.env[0], "A=1") == 0 && strcmp(a.env[1], "B=2") == 0);
		CHECK(a.argc == 3 && strcmp(a.argv[0], "ls") == 0 && strcmp(a.argv[2], "--user") == 0);
		wsh_args_free(&a);
	}
	{
		const char *w[] = { "wsh", "--", "--socket", NULL };
		CHECK(parse(&a, w) == 0 && a.argc == 1 && strcmp(a.argv[0], "--socket") == 0);
		wsh_args_free(&a);
	}
	{
		const char *w[] = { "wsh", "--socket", "/s", "--rsh", "-l", "vcap", "container", "rsync",
				    "--server", "-r", ".", "/tmp", NULL };
		CHECK(parse(&a, w) == 0 && a.rsh && strcmp(a.user, "vcap") == 0);
		CHECK(a.argc == 5 && strcmp(a.argv[0], "rsync") == 0 && strcmp(a.argv[1], "--server") == 0);
		wsh_args_free(&a);
	}
	{
		const char *w[] = { "wsh", "--rsh", "-4", "-6", "-d", "-n", "-t", "30", "-lroot", "host", "echo",
				    "-l", NULL };
		CHECK(parse(&a, w) == 0 && strcmp(a.user, "root") == 0);
		CHECK(a.argc == 2 && strcmp(a.argv[0], "echo") == 0 && strcmp(a.argv[1], "-l") == 0);
		wsh_args_free(&a);
	}
	{
		const char *w[] = { "wsh", "--rsh", "-x", "host", NULL };
		CHECK(parse(&a, w) < 0);
		wsh_args_free(&a);
	}
	{
		const char *w[] = { "wsh", "--rsh", "-l", NULL };
		CHECK(parse(&a, w) < 0);
		wsh_args_free(&a);
	}
	{
		const char *w[] = { "wsh", "--bogus", NULL };
		CHECK(parse(&a, w) < 0);
		wsh_args_free(&a);
	}
	{
		const char *w[] = { "wsh", "--env", "NOEQUALS", NULL };
		CHECK(parse(&a, w) < 0);
		wsh_args_free(&a);
	}
	{
		const char *w[] = { "wsh", "--socket", NULL };
		CHECK(parse(&a, w) < 0);
		wsh_args_free(&a);
	}
	{
		const char *w[] = { "wsh", "-h", NULL };
		CHECK(parse(&a, w) == 0 && a.help);
		wsh_args_free(&a);
	}
}

int main(void)
{
	test_request_roundtrip();
	test_request_minimal();
	test_request_job();
	test_request_bad();
	test_response();
	test_rlimits();
	test_passwd();
	test_args();
	printf("test_units: %d checks, %d failures\n", checks, failures);
	return failures ? 1 : 0;
}
