#include "jobmode.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "jobdir.h"
#include "jobfiles.h"
#include "job.h"
#include "util.h"

static int openat_retry(int dir_fd, const char *name, int flags)
{
	int fd;

	do {
		fd = openat(dir_fd, name, flags);
	} while (fd < 0 && errno == EINTR);
	return fd;
}

/* The script, opened here so that the job gets a descriptor and never a
 * path into the host. Only a regular file: a FIFO must not block wshd. */
static int open_script(int dir_fd)
{
	struct stat st;
	int fd = openat_retry(dir_fd, JOB_SCRIPT_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || set_nonblock(fd, 0) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	return fd;
fail:
	close_quietly(fd);
	return -1;
}

static void close_pair(int fds[2])
{
	close_quietly(fds[0]);
	close_quietly(fds[1]);
	fds[0] = fds[1] = -1;
}

/* The pipes for stdout and stderr; wshd's read ends are non-blocking. */
static int open_pipes(int out[2], int err[2])
{
	if (pipe2(out, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(err, O_CLOEXEC) < 0 || set_nonblock(out[0], 1) < 0 || set_nonblock(err[0], 1) < 0) {
		close_pair(out);
		close_pair(err);
		return -1;
	}
	widen_job_pipe(out[0]);
	widen_job_pipe(err[0]);
	return 0;
}

/* Before the job's setsid its group is not its own yet: signal both. */
static void kill_job(pid_t pid)
{
	(void)kill(-pid, SIGKILL);
	(void)kill(pid, SIGKILL);
}

pid_t jobmode_spawn(struct jobmode *jm, const struct wsh_request *req, int output_fd, char *err, size_t errlen)
{
	struct jobdir_files files = { -1, -1 };
	struct held_job_spec spec;
	const char *failed = "";
	int out[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int dir_fd, script_fd = -1;
	pid_t pid;

	if (jm->jobs_fd < 0 || jm->holder == NULL) {
		snprintf(err, errlen, "wshd: job %s: this wshd holds no jobs (no jobs directory)", req->job);
		close_quietly(output_fd);
		return -1;
	}
	dir_fd = openat_retry(jm->jobs_fd, req->job, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir_fd < 0) {
		snprintf(err, errlen, "wshd: job %s: open the job directory: %s", req->job, strerror(errno));
		close_quietly(output_fd);
		return -1;
	}
	script_fd = open_script(dir_fd);
	if (script_fd < 0) {
		snprintf(err, errlen, "wshd: job %s: open %s: %s", req->job, JOB_SCRIPT_FILE, strerror(errno));
		close_quietly(output_fd);
		goto fail;
	}
	if (jobdir_prepare(dir_fd, output_fd, &files, &failed) < 0) {
		snprintf(err, errlen, "wshd: job %s: %s: %s", req->job, failed, strerror(errno));
		goto fail;
	}
	if (open_pipes(out, errp) < 0) {
		snprintf(err, errlen, "wshd: job %s: pipes: %s", req->job, strerror(errno));
		goto fail;
	}

	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "wshd: job %s: fork: %s", req->job, strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		struct job_io io = {
			.nclient = 0,
			.child_in = script_fd,
			.child_out = out[1],
			.child_err = errp[1],
			.status_write = -1,
		};

		job_exec(req, &io);
	}
	close_quietly(script_fd);
	close_quietly(out[1]);
	close_quietly(errp[1]);
	script_fd = out[1] = errp[1] = -1;

	if (jobdir_write_pids(dir_fd, jm->holder_pid, pid) < 0) {
		snprintf(err, errlen, "wshd: job %s: write the pid files: %s", req->job, strerror(errno));
		kill_job(pid);  /* reaped by the loop like any other child */
		goto fail;
	}

	spec = (struct held_job_spec){
		.name = req->job,
		.dir_fd = dir_fd,
		.output_fd = files.output_fd,
		.listen_fd = files.listen_fd,
		.out_fd = out[0],
		.err_fd = errp[0],
		.pid = pid,
		.output_limit = req->output_limit,
		.discard_output = req->discard != 0,
	};
	/* From here the holder owns the descriptors, whatever happens. */
	if (job_holder_add(jm->holder, &spec) < 0) {
		snprintf(err, errlen, "wshd: job %s: %s", req->job, strerror(errno));
		kill_job(pid);
		return -1;
	}
	return pid;

fail:
	jobdir_abandon(dir_fd, &files);
	close_pair(out);
	close_pair(errp);
	close_quietly(script_fd);
	close_quietly(dir_fd);
	return -1;
}
