#include "hooks.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int run_hook(const char *dir, const char *name, char *err, size_t errlen)
{
	char path[4096];
	char *argv[2];
	pid_t pid, r;
	int status;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		snprintf(err, errlen, "hook path too long: %s/%s", dir, name);
		return -1;
	}
	if (access(path, X_OK) < 0) {
		/* No such file: nothing to do at this step (saves a process). */
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "hook %s: %s", path, strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork for hook %s: %s", path, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		extern char **environ;

		argv[0] = path;
		argv[1] = NULL;
		execve(path, argv, environ);
		fprintf(stderr, "wshd: exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	do {
		r = waitpid(pid, &status, 0);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		snprintf(err, errlen, "waitpid for hook %s: %s", path, strerror(errno));
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		snprintf(err, errlen, "hook %s failed with exit status %d", path, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(err, errlen, "hook %s was killed by signal %d (%s)", path, WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(err, errlen, "hook %s ended with wait status 0x%x", path, status);
	return -1;
}
