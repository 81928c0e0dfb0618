/*
 * cgroup v2: memory.events watched with inotify.
 *
 * kernfs raises IN_MODIFY on memory.events whenever one of its counters
 * changes, and on cgroup.events when "populated" does. We take oom_kill
 * once the watches are in place, then wake on every change and read it
 * again; it only grows. An rmdir of a cgroup raises nothing, neither on
 * inotify nor on poll (measured on 6.18), but a cgroup with processes in it
 * cannot be removed, and emptying it changes cgroup.events. So while the
 * group has processes we block with no timeout; only while it is empty
 * (when no OOM can happen either) do we look every POLL_EMPTY_MS whether
 * it is still there. A regular file (a test's fake group) does raise
 * IN_DELETE_SELF / IN_IGNORED when it goes, and we look then as well.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "oom.h"

#define POLL_EMPTY_MS 1000
#define WATCH_MASK (IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF)

struct group {
	const char *name;     /* CGROUP_DIR as given, for messages and watches */
	int dir;
	int inotify;
};

static _Noreturn void removed(const struct group *g)
{
	fprintf(stderr, "oom: %s: the cgroup was removed\n", g->name);
	exit(EXIT_FAIL);
}

static _Noreturn void fail_on(const struct group *g, const char *what, const char *file)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "%s %s", what, file);
	oom_fail(g->name, buf);
}

/*
 * The value of the line "KEY N" of the group's FILE into *value: 0, or 1 if
 * the file is not there (ENOENT; ENODEV: a file of a removed cgroup). The
 * file is opened for each read and not held, so that a regular file that is
 * unlinked is freed and its watch raises IN_IGNORED.
 */
static int read_key(const struct group *g, const char *file, const char *key, uint64_t *value)
{
	char buf[1024];
	ssize_t n;

	int fd = openat(g->dir, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && (errno == ENOENT || errno == ENODEV))
		return 1;
	if (fd < 0)
		fail_on(g, "open", file);
	do {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
	} while (n < 0 && errno == EINTR);
	int saved = errno;
	if (close(fd) != 0)
		fail_on(g, "close", file);
	errno = saved;
	if (n < 0 && errno == ENODEV)
		return 1;
	if (n < 0)
		fail_on(g, "reading", file);
	buf[n] = '\0';
	size_t keylen = strlen(key);
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, key, keylen) != 0 || line[keylen] != ' ')
			continue;
		char *end;
		errno = 0;
		*value = strtoull(line + keylen + 1, &end, 10);
		if (errno == 0 && end != line + keylen + 1 && *end == '\0')
			return 0;
		break;
	}
	fprintf(stderr, "oom: %s: no line '%s N' in %s\n", g->name, key, file);
	exit(EXIT_FAIL);
}

/* oom_kill now; exits if the group is gone. */
static uint64_t oom_kills(const struct group *g)
{
	uint64_t kills;
	if (read_key(g, "memory.events", "oom_kill", &kills) != 0)
		removed(g);
	return kills;
}

/* Does the group have processes? (Yes if we cannot tell.) */
static int populated(const struct group *g)
{
	uint64_t value;
	if (read_key(g, "cgroup.events", "populated", &value) != 0)
		return 1;
	return value != 0;
}

/* Watches the group's FILE (again: a file that replaced it gets a watch);
 * returns -1 if it is not there. */
static int watch(const struct group *g, const char *file)
{
	char path[PATH_MAX];
	int len = snprintf(path, sizeof(path), "%s/%s", g->name, file);
	if (len < 0 || (size_t)len >= sizeof(path)) {
		fprintf(stderr, "oom: %s: path too long\n", g->name);
		exit(EXIT_FAIL);
	}
	if (inotify_add_watch(g->inotify, path, WATCH_MASK) >= 0)
		return 0;
	if (errno == ENOENT || errno == ENODEV)
		return -1;
	fail_on(g, "inotify_add_watch", file);
}

/* Watches both files; memory.events must be there. */
static void watch_files(const struct group *g)
{
	if (watch(g, "memory.events") != 0)
		removed(g);
	watch(g, "cgroup.events");
}

/*
 * Reads the pending events; returns 1 if a watched file went away or was
 * replaced (its watch is gone), so the files must be watched again.
 */
static int drain(const struct group *g)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	int lost = 0;
	ssize_t n;

	do {
		n = read(g->inotify, buf, sizeof(buf));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		oom_fail(g->name, "reading inotify events");
	for (char *p = buf; p < buf + n;) {
		const struct inotify_event *ev = (const struct inotify_event *)p;
		if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW))
			lost = 1;
		p += sizeof(*ev) + ev->len;
	}
	return lost;
}

int wait_v2(const char *name, int dir)
{
	struct group g = {.name = name, .dir = dir};

	g.inotify = inotify_init1(IN_CLOEXEC);
	if (g.inotify < 0)
		oom_fail(name, "inotify_init1");
	/* Watch first, read second: a kill in between is not lost. */
	watch_files(&g);
	uint64_t start = oom_kills(&g);

	for (;;) {
		struct pollfd pfd = {.fd = g.inotify, .events = POLLIN};
		int ready = poll(&pfd, 1, populated(&g) ? -1 : POLL_EMPTY_MS);
		if (ready < 0 && errno != EINTR)
			oom_fail(name, "poll");
		if (ready > 0 && drain(&g))
			watch_files(&g);
		if (oom_kills(&g) > start)
			return EXIT_OOM;
	}
}
