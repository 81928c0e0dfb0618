/*
 * closefds CMD [ARGS...]
 *
 * Closes every file descriptor above 2, then executes CMD, so that commands
 * started by the server inherit nothing but stdin, stdout and stderr.
 */
#include <stdio.h>
#include <unistd.h>

#include "fdio.h" /* close_fds_from */

#define FIRST_FD 3
#define EXIT_FAILURE_CODE 255

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: closefds CMD [ARGS...]\n");
		return EXIT_FAILURE_CODE;
	}

	close_fds_from(FIRST_FD);
	execvp(argv[1], argv + 1);
	perror(argv[1]);
	return EXIT_FAILURE_CODE;
}
