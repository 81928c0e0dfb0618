/*
 * oom CGROUP_DIR
 *
 * Blocks until the cgroup v1 memory group CGROUP_DIR runs out of memory.
 *
 *   exit 0  an OOM happened (or the group was already under OOM when we
 *           started); nothing is printed
 *   exit 1  the group was removed, or something failed (message on stderr)
 *   exit 2  usage error
 *
 * The notification is an eventfd registered for memory.oom_control through
 * cgroup.event_control. The kernel also signals that eventfd when the group
 * is removed, so after a wake-up we check that the group still exists.
 * The process dies with its parent (PR_SET_PDEATHSIG), so a notifier never
 * outlives the server; a restarted server starts a new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#define EXIT_OOM 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

static const char *group;

static void fail(const char *what)
{
	fprintf(stderr, "oom: %s: %s: %s\n", group, what, strerror(errno));
	exit(EXIT_FAIL);
}

/* Returns 1 if memory.oom_control (open as fd) has the line "under_oom 1". */
static int under_oom(int fd)
{
	char buf[512];
	ssize_t n;

	do {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		fail("reading memory.oom_control");
	buf[n] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strcmp(line, "under_oom 1") == 0)
			return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '\0') {
		fprintf(stderr, "usage: %s MEMORY_CGROUP_DIR\n", argv[0]);
		return EXIT_USAGE;
	}
	group = argv[1];

	/* Die with the parent; if it is gone already, do not wait for anything. */
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		fail("prctl(PR_SET_PDEATHSIG)");
	if (getppid() != parent) {
		fprintf(stderr, "oom: %s: parent exited before we started\n", group);
		return EXIT_FAIL;
	}

	int dir = open(group, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		fail("open");
	int control = openat(dir, "memory.oom_control", O_RDONLY | O_CLOEXEC);
	if (control < 0)
		fail("open memory.oom_control");
	int events = openat(dir, "cgroup.event_control", O_WRONLY | O_CLOEXEC);
	if (events < 0)
		fail("open cgroup.event_control");
	int efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		fail("eventfd");

	char line[64];
	int len = snprintf(line, sizeof(line), "%d %d\n", efd, control);
	if (len < 0 || (size_t)len >= sizeof(line)) {
		fprintf(stderr, "oom: %s: cannot format the registration\n", group);
		return EXIT_FAIL;
	}
	ssize_t written;
	do {
		written = write(events, line, (size_t)len);
	} while (written < 0 && errno == EINTR);
	if (written < 0)
		fail("registering with cgroup.event_control");
	if (written != len) {
		fprintf(stderr, "oom: %s: short write to cgroup.event_control\n", group);
		return EXIT_FAIL;
	}
	if (close(events) != 0)
		fail("close cgroup.event_control");

	/* Registered first, checked second: an OOM in between is not lost. */
	if (under_oom(control))
		return EXIT_OOM;

	uint64_t count;
	ssize_t got;
	do {
		got = read(efd, &count, sizeof(count));
	} while (got < 0 && errno == EINTR);
	if (got < 0)
		fail("reading the eventfd");
	if (got != (ssize_t)sizeof(count)) {
		fprintf(stderr, "oom: %s: short read from the eventfd\n", group);
		return EXIT_FAIL;
	}

	if (faccessat(dir, "cgroup.event_control", F_OK, 0) != 0) {
		if (errno == ENOENT || errno == ENODEV) {
			fprintf(stderr, "oom: %s: the cgroup was removed\n", group);
			return EXIT_FAIL;
		}
		fail("checking that the cgroup still exists");
	}
	return EXIT_OOM;
}
