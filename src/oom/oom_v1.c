/* cgroup v1: an eventfd registered for memory.oom_control. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "oom.h"

/* Returns 1 if memory.oom_control (open as fd) has the line "under_oom 1". */
static int under_oom(const char *group, int fd)
{
	char buf[512];
	ssize_t n;

	do {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		oom_fail(group, "reading memory.oom_control");
	buf[n] = '\0';
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strcmp(line, "under_oom 1") == 0)
			return 1;
	}
	return 0;
}

int wait_v1(const char *group, int dir)
{
	int control = openat(dir, "memory.oom_control", O_RDONLY | O_CLOEXEC);
	if (control < 0)
		oom_fail(group, "open memory.oom_control");
	int events = openat(dir, "cgroup.event_control", O_WRONLY | O_CLOEXEC);
	if (events < 0)
		oom_fail(group, "open cgroup.event_control");
	int efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0)
		oom_fail(group, "eventfd");

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
		oom_fail(group, "registering with cgroup.event_control");
	if (written != len) {
		fprintf(stderr, "oom: %s: short write to cgroup.event_control\n", group);
		return EXIT_FAIL;
	}
	if (close(events) != 0)
		oom_fail(group, "close cgroup.event_control");

	/* Registered first, checked second: an OOM in between is not lost. */
	if (under_oom(group, control))
		return EXIT_OOM;

	uint64_t count;
	ssize_t got;
	do {
		got = read(efd, &count, sizeof(count));
	} while (got < 0 && errno == EINTR);
	if (got < 0)
		oom_fail(group, "reading the eventfd");
	if (got != (ssize_t)sizeof(count)) {
		fprintf(stderr, "oom: %s: short read from the eventfd\n", group);
		return EXIT_FAIL;
	}

	if (faccessat(dir, "cgroup.event_control", F_OK, 0) != 0) {
		if (errno == ENOENT || errno == ENODEV) {
			fprintf(stderr, "oom: %s: the cgroup was removed\n", group);
			return EXIT_FAIL;
		}
		oom_fail(group, "checking that the cgroup still exists");
	}
	return EXIT_OOM;
}
