#include "rlimits.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WSH_LIMIT(NAME, name, def) { #NAME, RLIMIT_##NAME, def },
const struct wsh_limit wsh_limits[WSH_RLIMIT_COUNT] = { WARDEN_RLIMITS(WSH_LIMIT) };

/* Parse one number starting at *p; advance *p past it. */
static int parse_one(const char **p, uint64_t *out)
{
	const char *s = *p;
	unsigned long long v;
	char *end;

	if (strncmp(s, "unlimited", 9) == 0) {
		*out = WSH_RLIM_UNLIMITED;
		*p = s + 9;
		return 0;
	}
	if (strncmp(s, "infinity", 8) == 0) {
		*out = WSH_RLIM_UNLIMITED;
		*p = s + 8;
		return 0;
	}
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	*out = v;
	*p = end;
	return 0;
}

int wsh_rlimit_parse(const char *text, uint64_t *soft, uint64_t *hard)
{
	const char *p = text;
	uint64_t a, b;

	while (isspace((unsigned char)*p))
		p++;
	if (parse_one(&p, &a) < 0)
		goto invalid;
	if (*p != '\0' && !isspace((unsigned char)*p))
		goto invalid;
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0') {
		b = a;
	} else {
		if (parse_one(&p, &b) < 0)
			goto invalid;
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '\0')
			goto invalid;
	}
	if (a > b)
		goto invalid;
	*soft = a;
	*hard = b;
	return 0;
invalid:
	errno = EINVAL;
	return -1;
}

rlim_t wsh_rlimit_value(uint64_t v)
{
	if (v == WSH_RLIM_UNLIMITED || v >= (uint64_t)RLIM_INFINITY)
		return RLIM_INFINITY;
	return (rlim_t)v;
}
