/*
 * iomux-link JOBDIR
 *
 * Replays a job's output from the start (stdout records to fd 1, stderr
 * records to fd 2), follows it until the job finishes, and exits with the
 * job's exit status. Exits 255 on errors.
 *
 * Reader contract: connect to notify.sock first, then alternate between
 * reading complete records from the output file and waiting for a wake-up
 * byte. EOF (or any failure) on the socket means the status file is written;
 * one last pass over the file then sees all output.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "jobdir.h"
#include "util.h"

#define EXIT_LINK_ERROR 255

struct reader {
	const char *job_dir;
	int dir_fd;
	int output_fd;
	int notify_fd; /* -1 once the job has finished */
	off_t offset;  /* start of the next record */
	unsigned char buffer[64 * 1024]; /* payloads are copied in pieces */
};

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *format, ...);

static void die(const char *format, ...)
{
	va_list args;
	va_start(args, format);
	fputs("iomux-link: ", stderr);
	vfprintf(stderr, format, args);
	fputc('\n', stderr);
	va_end(args);
	exit(EXIT_LINK_ERROR);
}

static int connect_notify(const char *job_dir)
{
	struct sockaddr_un addr;
	socklen_t addr_len;
	if (unix_address(&addr, &addr_len, job_dir, JOB_NOTIFY_SOCKET) < 0)
		die("%s/%s: path too long", job_dir, JOB_NOTIFY_SOCKET);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	while (connect(fd, (struct sockaddr *)&addr, addr_len) < 0) {
		if (errno == EINTR)
			continue;
		/* No listener: the job has finished or its spawner is gone. */
		close_quietly(fd);
		return -1;
	}
	return fd;
}

static void copy_payload(struct reader *r, off_t offset, uint32_t length, int out_fd)
{
	while (length > 0) {
		size_t chunk = length < sizeof(r->buffer) ? length : sizeof(r->buffer);
		ssize_t n = pread_full(r->output_fd, r->buffer, chunk, offset);
		if (n < 0)
			die("read %s/%s: %s", r->job_dir, JOB_OUTPUT_FILE, strerror(errno));
		if ((size_t)n != chunk)
			die("%s/%s shrank while reading", r->job_dir, JOB_OUTPUT_FILE);
		if (write_all(out_fd, r->buffer, chunk) < 0)
			die("write to fd %d: %s", out_fd, strerror(errno));
		offset += (off_t)chunk;
		length -= (uint32_t)chunk;
	}
}

/* Copies every complete record past r->offset. */
static void replay_new_records(struct reader *r)
{
	for (;;) {
		struct stat st;
		if (fstat(r->output_fd, &st) < 0)
			die("stat %s/%s: %s", r->job_dir, JOB_OUTPUT_FILE, strerror(errno));
		if (st.st_size - r->offset < RECORD_HEADER_SIZE)
			return;

		unsigned char header[RECORD_HEADER_SIZE];
		ssize_t n = pread_full(r->output_fd, header, sizeof(header), r->offset);
		if (n < 0)
			die("read %s/%s: %s", r->job_dir, JOB_OUTPUT_FILE, strerror(errno));
		if (n < RECORD_HEADER_SIZE)
			return;

		uint32_t length = record_header_length(header);
		if ((header[0] != STREAM_STDOUT && header[0] != STREAM_STDERR) || length > RECORD_MAX_PAYLOAD)
			die("%s/%s: corrupt record at offset %lld", r->job_dir, JOB_OUTPUT_FILE,
			    (long long)r->offset);
		if (st.st_size - r->offset < (off_t)(RECORD_HEADER_SIZE + length))
			return; /* still being written */

		copy_payload(r, r->offset + RECORD_HEADER_SIZE, length,
			     header[0] == STREAM_STDOUT ? STDOUT_FILENO : STDERR_FILENO);
		r->offset += RECORD_HEADER_SIZE + (off_t)length;
	}
}

/* Blocks until the spawner sends a wake-up or closes the connection. */
static void wait_for_news(struct reader *r)
{
	struct pollfd pfd = { .fd = r->notify_fd, .events = POLLIN };
	for (;;) {
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		char wakeups[256];
		ssize_t n = recv(r->notify_fd, wakeups, sizeof(wakeups), MSG_DONTWAIT);
		if (n > 0)
			return;
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		close_quietly(r->notify_fd);
		r->notify_fd = -1;
		return;
	}
}

static int read_exit_status(const struct reader *r)
{
	int fd = openat(r->dir_fd, JOB_STATUS_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			die("job has no status (spawner died)");
		die("open %s/%s: %s", r->job_dir, JOB_STATUS_FILE, strerror(errno));
	}
	char text[64];
	ssize_t n = read_full(fd, text, sizeof(text) - 1);
	if (n < 0)
		die("read %s/%s: %s", r->job_dir, JOB_STATUS_FILE, strerror(errno));
	close_quietly(fd);
	text[n] = '\0';

	char *end;
	long status = strtol(text, &end, 10);
	if (end == text || (*end != '\n' && *end != '\0') || status < 0 || status > 255)
		die("%s/%s: malformed status", r->job_dir, JOB_STATUS_FILE);
	return (int)status;
}

int main(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '\0' || argv[1][0] == '-') {
		fprintf(stderr, "usage: iomux-link JOBDIR\n");
		return EXIT_LINK_ERROR;
	}

	struct reader *r = calloc(1, sizeof(*r));
	if (r == NULL)
		die("out of memory");
	r->job_dir = argv[1];
	r->dir_fd = open(r->job_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dir_fd < 0)
		die("%s: %s", r->job_dir, strerror(errno));

	/* Connect before reading, so no wake-up can be missed. */
	r->notify_fd = connect_notify(r->job_dir);
	r->output_fd = openat(r->dir_fd, JOB_OUTPUT_FILE, O_RDONLY | O_CLOEXEC);
	if (r->output_fd < 0)
		die("%s/%s: %s", r->job_dir, JOB_OUTPUT_FILE, strerror(errno));

	for (;;) {
		replay_new_records(r);
		if (r->notify_fd < 0)
			break;
		wait_for_news(r);
	}
	int status = read_exit_status(r);
	close_quietly(r->output_fd);
	close_quietly(r->dir_fd);
	free(r);
	return status;
}
