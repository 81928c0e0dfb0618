#ifndef IOMUX_RLIMITS_H
#define IOMUX_RLIMITS_H

#include <stddef.h>
#include <sys/resource.h>

struct rlimit_setting {
	int resource;
	const char *name;
	rlim_t value;
};

/* Parses "NAME=VALUE" (e.g. "nofile=1024", VALUE may be "unlimited"). */
int rlimit_setting_parse(const char *spec, struct rlimit_setting *setting);

/* Sets soft and hard limit to each value; on failure *failed is the index. */
int rlimit_settings_apply(const struct rlimit_setting *settings, size_t count, size_t *failed);

#endif
