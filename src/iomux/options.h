#ifndef IOMUX_OPTIONS_H
#define IOMUX_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "rlimits.h"

#define MAX_RLIMIT_SETTINGS 32
#define DEFAULT_STDIN_PATH "/dev/null"
#define DEFAULT_SYSLOG_PATH "/dev/log"

struct spawn_options {
	const char *job_dir;
	char **command;
	const char *stdin_path;
	const char *work_dir;            /* NULL: keep the current directory */
	unsigned long long output_limit; /* 0: unlimited */
	bool discard_output;
	const char *syslog_tag;          /* NULL: no syslog copy */
	const char *syslog_path;
	struct rlimit_setting rlimits[MAX_RLIMIT_SETTINGS];
	size_t rlimit_count;
};

/* Returns 0, or -1 after printing the problem and the usage to stderr. */
int spawn_options_parse(int argc, char **argv, struct spawn_options *options);

#endif
