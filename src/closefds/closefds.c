/*
 * closefds CMD [ARGS...]
 *
 * Closes every file descriptor above 2, then executes CMD, so that commands
 * started by the server inherit nothing but stdin, stdout and stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FIRST_FD 3
#define EXIT_FAILURE_CODE 255

static void close_by_proc_walk(void)
{
	DIR *dir = opendir("/proc/self/fd");
	if (dir == NULL) {
		struct rlimit lim;
		long max = 65536;
		if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY)
			max = (long)lim.rlim_cur;
		for (long fd = FIRST_FD; fd < max; fd++)
			close((int)fd);
		return;
	}

	int walker = dirfd(dir);
	struct dirent *entry;
	/* procfs orders fd entries by number, so closing while iterating is safe. */
	while ((entry = readdir(dir)) != NULL) {
		char *end;
		long fd = strtol(entry->d_name, &end, 10);
		if (end == entry->d_name || *end != '\0')
			continue;
		if (fd >= FIRST_FD && fd != walker)
			close((int)fd);
	}
	closedir(dir);
}

static void close_inherited_fds(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, FIRST_FD, ~0U, 0) == 0)
		return;
#endif
	close_by_proc_walk();
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: closefds CMD [ARGS...]\n");
		return EXIT_FAILURE_CODE;
	}

	close_inherited_fds();
	execvp(argv[1], argv + 1);
	perror(argv[1]);
	return EXIT_FAILURE_CODE;
}
