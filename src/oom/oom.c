/*
 * oom CGROUP_DIR
 *
 * Blocks until the memory cgroup CGROUP_DIR has an OOM, on cgroup v1 or v2
 * (v2 if CGROUP_DIR has a memory.events file, else v1).
 *
 *   exit 0  an OOM happened (v1: or the group was already under OOM when we
 *           started); nothing is printed
 *   exit 1  the group was removed, or something failed (message on stderr)
 *   exit 2  usage error
 *
 * v1 (oom_v1.c): an eventfd registered for memory.oom_control through
 * cgroup.event_control. The kernel also signals that eventfd when the group
 * is removed, so after a wake-up we check that the group still exists.
 *
 * v2 (oom_v2.c): memory.events watched with inotify; an OOM is the
 * "oom_kill" counter rising above what it was when we started. That is the
 * count of processes the OOM killer killed in the group (or below it), which
 * is what v1 tells us: the group hit its limit and the kernel killed. The
 * "oom" counter is not used: it also counts charges that failed without a
 * kill (an allocation in a system call answered ENOMEM, or the killer found
 * nothing it could kill), after which every job may still be running, and
 * warden stops the container on an OOM. A kill before we started is not
 * reported (v2 has no "under_oom" state to look at). Removal: see oom_v2.c.
 * This host has no v2 memory controller, so src/oom/test.sh tries v2 on
 * fake directories; the real proof is the VM suite (Debian 12, cgroup v2).
 *
 * The process dies with its parent (PR_SET_PDEATHSIG), so a notifier never
 * outlives the server; a restarted server starts a new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "oom.h"

void oom_fail(const char *group, const char *what)
{
	fprintf(stderr, "oom: %s: %s: %s\n", group, what, strerror(errno));
	exit(EXIT_FAIL);
}

int main(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '\0') {
		fprintf(stderr, "usage: %s MEMORY_CGROUP_DIR\n", argv[0]);
		return EXIT_USAGE;
	}
	const char *group = argv[1];

	/* Die with the parent; if it is gone already, do not wait for anything. */
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
		oom_fail(group, "prctl(PR_SET_PDEATHSIG)");
	if (getppid() != parent) {
		fprintf(stderr, "oom: %s: parent exited before we started\n", group);
		return EXIT_FAIL;
	}

	int dir = open(group, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		oom_fail(group, "open");
	if (faccessat(dir, "memory.events", F_OK, 0) == 0)
		return wait_v2(group, dir);
	return wait_v1(group, dir);
}
