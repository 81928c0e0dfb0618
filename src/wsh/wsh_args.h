/* Command line of the wsh client. */
#ifndef WSH_ARGS_H
#define WSH_ARGS_H

#include <stddef.h>

#define WSH_DEFAULT_SOCKET "run/wshd.sock"

struct wsh_args {
	const char *socket;
	const char *user;       /* NULL: root */
	const char *dir;        /* NULL: the user's home */
	const char **env;       /* --env entries, NULL-terminated */
	size_t nenv;
	char **argv;            /* the command; argc == 0: login shell */
	int argc;
	int rsh;
	int help;
};

/*
 * wsh [--socket PATH] [--user NAME] [--dir DIR] [--env K=V]... [--rsh] [CMD ARGS...]
 *
 * Options also accept the --opt=value form; "--" ends them. After --rsh the
 * rest is read the way rsh/ssh is called by rsync -e: -4 -6 -d -n are
 * ignored, -l USER sets the user, -t X is skipped, the first non-option
 * word (the host) is skipped and the remaining words are the command.
 * Returns 0, or -1 with a message in err. args->env must be freed.
 */
int wsh_args_parse(int argc, char **argv, struct wsh_args *args, char *err, size_t errlen);
void wsh_args_free(struct wsh_args *args);

#endif
