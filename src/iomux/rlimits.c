#include "rlimits.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "rlimit_table.h"
#include "util.h"

struct rlimit_name {
	const char *name;
	int resource;
};

/* The names and resources of ../common/rlimit_table.h; iomux has no
 * defaults of its own. */
#define IOMUX_RLIMIT(NAME, name, def) { #name, RLIMIT_##NAME },
static const struct rlimit_name rlimit_names[] = { WARDEN_RLIMITS(IOMUX_RLIMIT) };

int rlimit_setting_parse(const char *spec, struct rlimit_setting *setting)
{
	const char *equals = strchr(spec, '=');
	if (equals == NULL) {
		errno = EINVAL;
		return -1;
	}
	size_t name_len = (size_t)(equals - spec);
	const char *value = equals + 1;

	const struct rlimit_name *found = NULL;
	for (size_t i = 0; i < sizeof(rlimit_names) / sizeof(rlimit_names[0]); i++) {
		if (strlen(rlimit_names[i].name) == name_len &&
		    strncasecmp(rlimit_names[i].name, spec, name_len) == 0) {
			found = &rlimit_names[i];
			break;
		}
	}
	if (found == NULL) {
		errno = EINVAL;
		return -1;
	}

	unsigned long long number;
	if (strcmp(value, "unlimited") == 0 || strcmp(value, "infinity") == 0) {
		number = RLIM_INFINITY;
	} else if (parse_u64(value, &number) < 0 || number > RLIM_INFINITY) {
		errno = EINVAL;
		return -1;
	}

	setting->resource = found->resource;
	setting->name = found->name;
	setting->value = (rlim_t)number;
	return 0;
}

int rlimit_settings_apply(const struct rlimit_setting *settings, size_t count, size_t *failed)
{
	for (size_t i = 0; i < count; i++) {
		struct rlimit lim = { .rlim_cur = settings[i].value, .rlim_max = settings[i].value };
		if (setrlimit(settings[i].resource, &lim) < 0) {
			*failed = i;
			return -1;
		}
	}
	return 0;
}
