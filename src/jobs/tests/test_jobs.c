/* Unit tests for the job holder library: jobdir files, output records,
 * the output limit, discard, readers, status, many jobs at once. Jobs are
 * forked test functions (no exec). Prints one line per failure; exits 1 if
 * any. Everything is created under a fresh /tmp directory, removed at the end. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fdio.h"
#include "holder.h"
#include "jobdir.h"
#include "jobfiles.h"
#include "syslog_fwd.h"

static int failures;
static int checks;
static char tmp[64];
static int signal_fd = -1;

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		checks++;                                                                    \
		if (!(cond)) {                                                               \
			failures++;                                                          \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                            \
	} while (0)

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- jobs -------------------------------------------------------------------- */

typedef void (*job_fn)(int arg);

struct test_job {
	char path[80];
	int dir_fd;
	pid_t pid;
};

static int new_jobdir(const char *name, struct test_job *t)
{
	if ((size_t)snprintf(t->path, sizeof(t->path), "%s/%s", tmp, name) >= sizeof(t->path))
		return -1;
	if (mkdir(t->path, 0700) < 0)
		return -1;
	t->dir_fd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return t->dir_fd;
}

/* Starts fn(arg) as a job of h in directory name; 0 or -1. */
static int start_job(struct job_holder *h, const char *name, job_fn fn, int arg,
		     unsigned long long limit, bool discard, struct syslog_fwd *syslog, struct test_job *t)
{
	struct jobdir_files files;
	const char *failed;
	int out[2], err[2];

	if (new_jobdir(name, t) < 0 || jobdir_prepare(t->dir_fd, -1, &files, &failed) < 0)
		return -1;
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		return -1;
	if (fcntl(out[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(err[0], F_SETFL, O_NONBLOCK) < 0)
		return -1;
	t->pid = fork();
	if (t->pid < 0)
		return -1;
	if (t->pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		dup2(out[1], STDOUT_FILENO);
		dup2(err[1], STDERR_FILENO);
		fn(arg);
		_exit(0);
	}
	close(out[1]);
	close(err[1]);
	struct held_job_spec spec = {
		.name = name,
		.dir_fd = dup(t->dir_fd),
		.output_fd = files.output_fd,
		.listen_fd = files.listen_fd,
		.out_fd = out[0],
		.err_fd = err[0],
		.pid = t->pid,
		.output_limit = limit,
		.discard_output = discard,
		.syslog = syslog,
	};
	return job_holder_add(h, &spec);
}

static void reap_all(struct job_holder *h)
{
	struct signalfd_siginfo info;
	int status;
	pid_t pid;

	while (read(signal_fd, &info, sizeof(info)) > 0)
		;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		job_holder_child_exited(h, pid, status);
}

static void loop_once(struct job_holder *h, int timeout_ms)
{
	size_t count;
	struct pollfd *fds = job_holder_poll_fds(h, 1, &count);

	if (fds == NULL) {
		failures++;
		fprintf(stderr, "job_holder_poll_fds: %s\n", strerror(errno));
		return;
	}
	fds[0] = (struct pollfd){ .fd = signal_fd, .events = POLLIN };
	if (poll(fds, count, timeout_ms) < 0 && errno != EINTR) {
		failures++;
		fprintf(stderr, "poll: %s\n", strerror(errno));
		return;
	}
	if (fds[0].revents)
		reap_all(h);
	job_holder_dispatch(h);
}

/* Runs the loop until no job is held; false on timeout. */
static bool run_until_done(struct job_holder *h, double seconds)
{
	double deadline = now() + seconds;

	while (job_holder_count(h) > 0) {
		if (now() > deadline)
			return false;
		loop_once(h, 100);
	}
	return true;
}

/* ---- reading a job directory ------------------------------------------------------ */

struct records {
	unsigned char stream[4096];
	size_t len[4096];
	size_t count;
	char data[1 << 20];
	size_t total;
};

static int read_file(int dir_fd, const char *name, char *buf, size_t cap, size_t *len)
{
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	*len = 0;
	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + *len, cap - *len)) > 0)
		*len += (size_t)n;
	close(fd);
	return n < 0 ? -1 : 0;
}

/* Parses output; appends data of all records to r->data. -1 if malformed. */
static int read_records(int dir_fd, struct records *r)
{
	static char raw[2 << 20];
	size_t len, off = 0;

	memset(r, 0, sizeof(*r));
	if (read_file(dir_fd, JOB_OUTPUT_FILE, raw, sizeof(raw), &len) < 0)
		return -1;
	while (off + RECORD_HEADER_SIZE <= len) {
		uint32_t n = record_header_length((unsigned char *)raw + off);

		if (off + RECORD_HEADER_SIZE + n > len || r->count == 4096 || r->total + n > sizeof(r->data))
			return -1;
		r->stream[r->count] = (unsigned char)raw[off];
		r->len[r->count++] = n;
		memcpy(r->data + r->total, raw + off + RECORD_HEADER_SIZE, n);
		r->total += n;
		off += RECORD_HEADER_SIZE + n;
	}
	return off == len ? 0 : -1;
}

static bool status_is(int dir_fd, const char *want)
{
	char buf[256];
	size_t len;

	if (read_file(dir_fd, JOB_STATUS_FILE, buf, sizeof(buf) - 1, &len) < 0)
		return false;
	buf[len] = '\0';
	if (strcmp(buf, want) != 0) {
		fprintf(stderr, "status is \"%s\", want \"%s\"\n", buf, want);
		return false;
	}
	return true;
}

static bool exists(int dir_fd, const char *name)
{
	struct stat st;

	return fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int connect_reader(const struct test_job *t)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", t->path, JOB_NOTIFY_SOCKET);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close_quietly(fd);
		return -1;
	}
	return fd;
}

/* Bytes waiting on a reader socket: >0 count, 0 EOF, -1 nothing yet. */
static ssize_t reader_poll(int fd)
{
	char buf[4096];
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -1;
	return n < 0 ? 0 : n;
}

/* ---- the jobs' bodies ---------------------------------------------------------- */

static void put(int fd, const char *s)
{
	(void)write_all(fd, s, strlen(s));
}

static void job_interleaved(int code)
{
	put(1, "out1");
	sleep_ms(30);
	put(2, "err1");
	sleep_ms(30);
	put(1, "out2");
	_exit(code);
}

static void job_kill_self(int unused)
{
	(void)unused;
	put(1, "before");
	raise(SIGKILL);
}

static void job_flood_then_sleep(int bytes)
{
	static char buf[1 << 16];

	memset(buf, 'x', sizeof(buf));
	while (bytes > 0) {
		int n = bytes < (int)sizeof(buf) ? bytes : (int)sizeof(buf);

		if (write_all(1, buf, (size_t)n) < 0)
			break;
		bytes -= n;
	}
	sleep(30);
	_exit(0);
}

static unsigned char pattern_byte(size_t i)
{
	return (unsigned char)(i % 251);
}

/* 600000 bytes of a pattern, in writes of 60000, then 3 bytes to stderr. */
static void job_pattern(int unused)
{
	static unsigned char buf[600000];
	size_t i;

	(void)unused;
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = pattern_byte(i);
	for (i = 0; i < sizeof(buf); i += 60000)
		(void)write_all(1, buf + i, 60000);
	put(2, "end");
	_exit(0);
}

static void job_grandchild_writes_late(int unused)
{
	(void)unused;
	if (fork() == 0) {
		sleep_ms(300);
		put(1, "late");
		_exit(0);
	}
	put(1, "early");
	_exit(7);
}

static void job_tiny_writes(int count)
{
	for (int i = 0; i < count; i++)
		put(1, "y");
	_exit(0);
}

static void job_print_index(int index)
{
	char text[32];

	snprintf(text, sizeof(text), "job %d\n", index);
	put(index % 2 ? 2 : 1, text);
	_exit(index % 256);
}

static void job_slow_records(int n)
{
	for (int i = 0; i < n; i++) {
		put(1, "r");
		sleep_ms(50);
	}
	_exit(0);
}

static void job_lines(int unused)
{
	(void)unused;
	put(1, "line a\nline b");
	put(2, "oops\n");
	_exit(0);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_prepare(void)
{
	struct test_job t;
	struct jobdir_files files;
	const char *failed = NULL;
	struct stat before, after, st;

	CHECK(new_jobdir("prepare", &t) >= 0);
	CHECK(write_text_file_at(t.dir_fd, JOB_STATUS_FILE, "3\n") == 0);
	CHECK(write_text_file_at(t.dir_fd, JOB_STATUS_TMP_FILE, "3\n") == 0);
	CHECK(write_text_file_at(t.dir_fd, JOB_OUTPUT_FILE, "stale") == 0);
	CHECK(write_text_file_at(t.dir_fd, JOB_NOTIFY_SOCKET, "") == 0);
	CHECK(stat(".", &before) == 0);
	CHECK(jobdir_prepare(t.dir_fd, -1, &files, &failed) == 0);
	CHECK(stat(".", &after) == 0 && before.st_ino == after.st_ino && before.st_dev == after.st_dev);
	CHECK(!exists(t.dir_fd, JOB_STATUS_FILE) && !exists(t.dir_fd, JOB_STATUS_TMP_FILE));
	CHECK(fstatat(t.dir_fd, JOB_OUTPUT_FILE, &st, 0) == 0 && st.st_size == 0);
	CHECK(fstatat(t.dir_fd, JOB_NOTIFY_SOCKET, &st, 0) == 0 && S_ISSOCK(st.st_mode));
	CHECK((fcntl(files.listen_fd, F_GETFD) & FD_CLOEXEC) && (fcntl(files.output_fd, F_GETFD) & FD_CLOEXEC));
	int reader = connect_reader(&t);
	CHECK(reader >= 0);
	close_quietly(reader);

	CHECK(jobdir_write_pids(t.dir_fd, 11, 22) == 0);
	CHECK(jobdir_write_status(t.dir_fd, 255, true, false) == 0);
	CHECK(status_is(t.dir_fd, "255\n" STATUS_LIMIT_EXCEEDED_LINE "\n"));
	jobdir_abandon(t.dir_fd, &files);
	CHECK(!exists(t.dir_fd, JOB_NOTIFY_SOCKET) && files.listen_fd == -1 && files.output_fd == -1);

	/* Not a directory: the step is named. */
	CHECK(jobdir_prepare(-1, -1, &files, &failed) < 0 && failed != NULL && errno == EBADF);
	close(t.dir_fd);
}

static void test_interleaved(struct job_holder *h)
{
	struct test_job t;
	static struct records r;

	CHECK(start_job(h, "interleaved", job_interleaved, 3, 0, false, NULL, &t) == 0);
	CHECK(job_holder_count(h) == 1 && job_holder_output_open(h, t.pid));
	CHECK(run_until_done(h, 10));
	CHECK(status_is(t.dir_fd, "3\n"));
	CHECK(read_records(t.dir_fd, &r) == 0);
	CHECK(r.count == 3 && r.stream[0] == 1 && r.stream[1] == 2 && r.stream[2] == 1);
	CHECK(r.total == 12 && memcmp(r.data, "out1err1out2", 12) == 0);
	CHECK(!exists(t.dir_fd, JOB_NOTIFY_SOCKET));
	CHECK(!job_holder_output_open(h, t.pid));
	struct stat st;
	CHECK(fstatat(t.dir_fd, JOB_OUTPUT_FILE, &st, 0) == 0 && (st.st_mode & 0777) == 0600);
	close(t.dir_fd);
}

static void test_killed(struct job_holder *h)
{
	struct test_job t;
	static struct records r;

	CHECK(start_job(h, "killed", job_kill_self, 0, 0, false, NULL, &t) == 0);
	CHECK(run_until_done(h, 10));
	CHECK(status_is(t.dir_fd, "255\n"));
	CHECK(read_records(t.dir_fd, &r) == 0 && r.total == 6);
	close(t.dir_fd);
}

static void test_limit(struct job_holder *h)
{
	struct test_job t;
	static struct records r;
	double start = now();

	CHECK(start_job(h, "limit", job_flood_then_sleep, 200000, 1000, false, NULL, &t) == 0);
	CHECK(run_until_done(h, 10));
	CHECK(now() - start < 5);
	CHECK(status_is(t.dir_fd, "255\n" STATUS_LIMIT_EXCEEDED_LINE "\n"));
	CHECK(read_records(t.dir_fd, &r) == 0 && r.total == 1000);
	close(t.dir_fd);

	/* Exactly at the limit is fine. */
	CHECK(start_job(h, "limit-exact", job_tiny_writes, 10, 10, false, NULL, &t) == 0);
	CHECK(run_until_done(h, 10));
	CHECK(status_is(t.dir_fd, "0\n"));
	CHECK(read_records(t.dir_fd, &r) == 0 && r.total == 10);
	close(t.dir_fd);
}

/* Big writes: records are spliced from the pipe (the holder has data waiting
 * when it looks); the bytes, their order and the streams must be intact. */
static void test_large_records(struct job_holder *h)
{
	struct test_job t;
	static struct records r;
	size_t i, largest = 0;
	bool intact = true;

	CHECK(start_job(h, "large", job_pattern, 0, 0, false, NULL, &t) == 0);
	CHECK(run_until_done(h, 10));
	CHECK(status_is(t.dir_fd, "0\n"));
	CHECK(read_records(t.dir_fd, &r) == 0 && r.total == 600003);
	for (i = 0; i < 600000 && intact; i++)
		intact = (unsigned char)r.data[i] == pattern_byte(i);
	CHECK(intact);
	CHECK(memcmp(r.data + 600000, "end", 3) == 0 && r.stream[r.count - 1] == STREAM_STDERR);
	for (i = 0; i < r.count; i++)
		largest = r.len[i] > largest ? r.len[i] : largest;
	CHECK(largest >= 16 * 1024);
	close(t.dir_fd);

	/* A limit that falls inside a spliced record cuts it exactly there. */
	CHECK(start_job(h, "large-limit", job_pattern, 0, 100000, false, NULL, &t) == 0);
	CHECK(run_until_done(h, 10));
	CHECK(status_is(t.dir_fd, "255\n" STATUS_LIMIT_EXCEEDED_LINE "\n"));
	CHECK(read_records(t.dir_fd, &r) == 0 && r.total == 100000);
	for (i = 0, intact = true; i < 100000 && intact; i++)
		intact = (unsigned char)r.data[i] == pattern_byte(i);
	CHECK(intact);
	close(t.dir_fd);
}

static void test_discard(struct job_holder *h)
{
	struct test_job t;
	struct stat st;

	/* The limit does not apply to discarded output. */
	CHECK(start_job(h, "discard", job_tiny_writes, 100, 5, true, NULL, &t) == 0);
	CHECK(run_until_done(h, 10));
	CHECK(status_is(t.dir_fd, "0\n"));
	CHECK(fstatat(t.dir_fd, JOB_OUTPUT_FILE, &st, 0) == 0 && st.st_size == 0);
	close(t.dir_fd);
}

static void test_grandchild(struct job_holder *h)
{
	struct test_job t;
	static struct records r;

	CHECK(start_job(h, "grandchild", job_grandchild_writes_late, 0, 0, false, NULL, &t) == 0);
	CHECK(run_until_done(h, 10));
	CHECK(status_is(t.dir_fd, "7\n"));
	CHECK(read_records(t.dir_fd, &r) == 0 && r.total == 9 && memcmp(r.data, "earlylate", 9) == 0);
	close(t.dir_fd);
}

static void test_readers(struct job_holder *h)
{
	struct test_job t;
	int early, late = -1, gone;
	ssize_t got = 0, n;
	bool late_woken = false;
	double deadline = now() + 10;

	CHECK(start_job(h, "readers", job_slow_records, 6, 0, false, NULL, &t) == 0);
	early = connect_reader(&t);
	CHECK(early >= 0);
	while (job_holder_count(h) > 0 && now() < deadline) {
		loop_once(h, 20);
		if (late < 0 && got > 0)
			late = connect_reader(&t);
		while ((n = reader_poll(early)) > 0)
			got += n;
		if (late >= 0 && !late_woken && reader_poll(late) > 0)
			late_woken = true; /* at once on accept, and after each record */
	}
	CHECK(job_holder_count(h) == 0);
	CHECK(got >= 1);
	CHECK(late >= 0 && late_woken);
	/* EOF once status exists. */
	while ((n = reader_poll(early)) > 0)
		;
	CHECK(n == 0 && exists(t.dir_fd, JOB_STATUS_FILE));
	gone = connect_reader(&t);
	CHECK(gone < 0);
	close_quietly(early);
	close_quietly(late);
	close(t.dir_fd);
}

static void test_slow_reader(struct job_holder *h)
{
	struct test_job t;
	static struct records r;
	int reader, small = 1024;

	CHECK(start_job(h, "slow-reader", job_tiny_writes, 20000, 0, false, NULL, &t) == 0);
	reader = connect_reader(&t);
	CHECK(reader >= 0);
	CHECK(setsockopt(reader, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) == 0);
	/* The reader never reads: the job must finish regardless. */
	CHECK(run_until_done(h, 20));
	CHECK(status_is(t.dir_fd, "0\n"));
	CHECK(read_records(t.dir_fd, &r) == 0 && r.total == 20000);
	close(reader);
	close(t.dir_fd);
}

static void test_many(struct job_holder *h)
{
	enum { N = 50 };
	static struct test_job t[N];
	static struct records r;
	char name[32], want[32], status[32];

	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "many-%d", i);
		CHECK(start_job(h, name, job_print_index, i, 0, false, NULL, &t[i]) == 0);
	}
	CHECK(job_holder_count(h) == N);
	CHECK(run_until_done(h, 20));
	for (int i = 0; i < N; i++) {
		snprintf(want, sizeof(want), "job %d\n", i);
		snprintf(status, sizeof(status), "%d\n", i % 256);
		CHECK(read_records(t[i].dir_fd, &r) == 0 && r.count == 1 && r.stream[0] == (i % 2 ? 2 : 1));
		CHECK(r.total == strlen(want) && memcmp(r.data, want, r.total) == 0);
		CHECK(status_is(t[i].dir_fd, status));
		close(t[i].dir_fd);
	}
}

static void test_syslog(struct job_holder *h)
{
	struct test_job t;
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct syslog_fwd *fwd = malloc(sizeof(*fwd));
	char msgs[3][128];
	int log_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/log.sock", tmp);
	CHECK(log_fd >= 0 && bind(log_fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	CHECK(fwd != NULL && syslog_fwd_open(fwd, addr.sun_path, "warden.t") == 0);
	CHECK(start_job(h, "syslog", job_lines, 0, 0, true, fwd, &t) == 0);
	CHECK(run_until_done(h, 10));
	for (int i = 0; i < 3; i++) {
		ssize_t n = recv(log_fd, msgs[i], sizeof(msgs[i]) - 1, MSG_DONTWAIT);

		msgs[i][n > 0 ? n : 0] = '\0';
	}
	/* Lines in order per stream; the unterminated last line is sent at EOF. */
	CHECK(strcmp(msgs[0], "<14>warden.t: line a") == 0);
	CHECK((strcmp(msgs[1], "<11>warden.t: oops") == 0 && strcmp(msgs[2], "<14>warden.t: line b") == 0) ||
	      (strcmp(msgs[1], "<14>warden.t: line b") == 0 && strcmp(msgs[2], "<11>warden.t: oops") == 0));
	close(log_fd);
	close(t.dir_fd);
}

static void test_free_running(void)
{
	struct job_holder *h = job_holder_new();
	struct test_job t;
	int status;

	CHECK(h != NULL);
	CHECK(start_job(h, "abandoned", job_flood_then_sleep, 10, 0, false, NULL, &t) == 0);
	job_holder_free(h);
	CHECK(!exists(t.dir_fd, JOB_STATUS_FILE));
	kill(-t.pid, SIGKILL);
	CHECK(waitpid(t.pid, &status, 0) == t.pid);
	close(t.dir_fd);
}

static void cleanup(void)
{
	char cmd[128];

	if (tmp[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmp);
	}
}

int main(void)
{
	sigset_t chld;
	struct job_holder *h;

	snprintf(tmp, sizeof(tmp), "/tmp/jobs-test.XXXXXX");
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	atexit(cleanup);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0 ||
	    (signal_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		perror("signalfd");
		return 1;
	}
	h = job_holder_new();
	if (h == NULL) {
		perror("job_holder_new");
		return 1;
	}

	test_prepare();
	test_interleaved(h);
	test_killed(h);
	test_limit(h);
	test_large_records(h);
	test_discard(h);
	test_grandchild(h);
	test_readers(h);
	test_slow_reader(h);
	test_many(h);
	test_syslog(h);
	CHECK(job_holder_count(h) == 0);
	job_holder_free(h);
	test_free_running();

	printf("test_jobs: %d checks, %d failures\n", checks, failures);
	return failures ? 1 : 0;
}
