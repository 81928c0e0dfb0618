#include "wsh_args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Match "--name VALUE" or "--name=VALUE" at argv[*i]; advance *i. */
static int take_value(int argc, char **argv, int *i, const char *name, const char **value,
		      int *missing)
{
	size_t len = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, len) != 0)
		return 0;
	if (a[len] == '=') {
		*value = a + len + 1;
		return 1;
	}
	if (a[len] != '\0')
		return 0;
	if (*i + 1 >= argc) {
		*missing = 1;
		return 1;
	}
	*value = argv[++*i];
	return 1;
}

static int parse_rsh(int argc, char **argv, int i, struct wsh_args *args, char *err, size_t errlen)
{
	int host_seen = 0;

	while (i < argc) {
		const char *a = argv[i];

		if (!host_seen && a[0] == '-' && a[1] != '\0') {
			if (strcmp(a, "-4") == 0 || strcmp(a, "-6") == 0 || strcmp(a, "-d") == 0 ||
			    strcmp(a, "-n") == 0) {
				i++;
			} else if (strcmp(a, "-l") == 0 || strcmp(a, "-t") == 0) {
				if (i + 1 >= argc) {
					snprintf(err, errlen, "--rsh: %s needs a value", a);
					return -1;
				}
				if (a[1] == 'l')
					args->user = argv[i + 1];
				i += 2;
			} else if (strncmp(a, "-l", 2) == 0) {
				args->user = a + 2;
				i++;
			} else if (strncmp(a, "-t", 2) == 0) {
				i++;
			} else {
				snprintf(err, errlen, "--rsh: unsupported option %s", a);
				return -1;
			}
			continue;
		}
		if (!host_seen) {
			host_seen = 1;   /* the "host": there is only one container */
			i++;
			continue;
		}
		break;
	}
	if (!host_seen) {
		snprintf(err, errlen, "--rsh: missing host argument");
		return -1;
	}
	args->argv = argv + i;
	args->argc = argc - i;
	return 0;
}

int wsh_args_parse(int argc, char **argv, struct wsh_args *args, char *err, size_t errlen)
{
	int i;

	memset(args, 0, sizeof(*args));
	args->socket = WSH_DEFAULT_SOCKET;
	args->env = calloc((size_t)argc + 1, sizeof(char *));
	if (args->env == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *value = NULL;
		int missing = 0;

		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			args->help = 1;
			return 0;
		}
		if (strcmp(a, "--rsh") == 0) {
			args->rsh = 1;
			return parse_rsh(argc, argv, i + 1, args, err, errlen);
		}
		if (take_value(argc, argv, &i, "--socket", &value, &missing)) {
			args->socket = value;
		} else if (take_value(argc, argv, &i, "--user", &value, &missing)) {
			args->user = value;
		} else if (take_value(argc, argv, &i, "--dir", &value, &missing)) {
			args->dir = value;
		} else if (take_value(argc, argv, &i, "--env", &value, &missing)) {
			if (!missing) {
				if (strchr(value, '=') == NULL || value[0] == '=') {
					snprintf(err, errlen, "--env %s: expected NAME=VALUE", value);
					return -1;
				}
				args->env[args->nenv++] = value;
			}
		} else {
			snprintf(err, errlen, "unknown option %s", a);
			return -1;
		}
		if (missing) {
			snprintf(err, errlen, "%s needs a value", a);
			return -1;
		}
		if (value[0] == '\0' && strncmp(a, "--socket", 8) == 0) {
			snprintf(err, errlen, "--socket must not be empty");
			return -1;
		}
	}
	args->argv = argv + i;
	args->argc = argc - i;
	return 0;
}

void wsh_args_free(struct wsh_args *args)
{
	free(args->env);
	args->env = NULL;
}
