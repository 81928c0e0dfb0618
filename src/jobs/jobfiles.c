#include "jobfiles.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fdio.h"
#include "jobdir.h"

#define LISTEN_BACKLOG 128

static int fchdir_retry(int fd)
{
	int r;

	do {
		r = fchdir(fd);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* Binds name in dir_fd without its path: sun_path stays short however deep
 * the directory is, and a directory reached only by descriptor works too. */
static int listen_at(int dir_fd, const char *name)
{
	struct sockaddr_un addr;
	int fd, here, r, saved, back;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", name);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	here = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (here < 0 || fchdir_retry(dir_fd) < 0) {
		saved = errno;
		close_quietly(here);
		close_quietly(fd);
		errno = saved;
		return -1;
	}
	r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	saved = errno;
	/* Back where we were; "/" if that is impossible, never the job dir. */
	back = fchdir_retry(here) == 0 || chdir("/") == 0;
	close_quietly(here);
	if (r < 0) {
		close_quietly(fd);
		errno = saved;
		return -1;
	}
	if (!back || listen(fd, LISTEN_BACKLOG) < 0) {
		saved = errno;
		(void)unlinkat(dir_fd, name, 0);
		close_quietly(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int jobdir_prepare(int dir_fd, int output_fd, struct jobdir_files *files, const char **failed)
{
	static const char *const stale[] = { JOB_NOTIFY_SOCKET, JOB_STATUS_FILE, JOB_STATUS_TMP_FILE };
	size_t i;

	files->output_fd = output_fd;
	files->listen_fd = -1;
	for (i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
		if (unlinkat(dir_fd, stale[i], 0) < 0 && errno != ENOENT) {
			*failed = "remove an earlier run's files";
			goto fail;
		}
	}
	while (files->output_fd < 0) {
		files->output_fd = openat(dir_fd, JOB_OUTPUT_FILE,
					  O_CREAT | O_TRUNC | O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (files->output_fd < 0 && errno != EINTR) {
			*failed = "create " JOB_OUTPUT_FILE;
			return -1;
		}
	}
	files->listen_fd = listen_at(dir_fd, JOB_NOTIFY_SOCKET);
	if (files->listen_fd < 0) {
		*failed = "listen on " JOB_NOTIFY_SOCKET;
		goto fail;
	}
	return 0;

fail:
	close_quietly(files->output_fd);
	files->output_fd = -1;
	return -1;
}

void jobdir_abandon(int dir_fd, struct jobdir_files *files)
{
	int saved = errno;

	if (files->listen_fd >= 0)
		(void)unlinkat(dir_fd, JOB_NOTIFY_SOCKET, 0);
	close_quietly(files->listen_fd);
	close_quietly(files->output_fd);
	files->listen_fd = files->output_fd = -1;
	errno = saved;
}

int jobdir_write_pids(int dir_fd, pid_t holder_pid, pid_t child_pid)
{
	char text[32];

	snprintf(text, sizeof(text), "%d\n", (int)holder_pid);
	if (write_text_file_at(dir_fd, JOB_PID_FILE, text) < 0)
		return -1;
	snprintf(text, sizeof(text), "%d\n", (int)child_pid);
	return write_text_file_at(dir_fd, JOB_CHILD_PID_FILE, text);
}

int jobdir_write_status(int dir_fd, int exit_status, bool limit_exceeded, bool write_failed)
{
	char text[128];

	snprintf(text, sizeof(text), "%d\n%s%s", exit_status,
		 limit_exceeded ? STATUS_LIMIT_EXCEEDED_LINE "\n" : "",
		 write_failed ? STATUS_WRITE_FAILED_LINE "\n" : "");
	if (write_text_file_at(dir_fd, JOB_STATUS_TMP_FILE, text) < 0)
		return -1;
	return renameat(dir_fd, JOB_STATUS_TMP_FILE, dir_fd, JOB_STATUS_FILE);
}
