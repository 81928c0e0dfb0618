/* The resource limits a job can be given (the table is
 * ../common/rlimit_table.h): their wire indexes, names and the defaults
 * wshd applies to limits a request does not mention. */
#ifndef WSH_RLIMITS_H
#define WSH_RLIMITS_H

#include <stdint.h>
#include <sys/resource.h>

#include "rlimit_table.h"

#define WSH_RLIMIT_COUNT WARDEN_RLIMIT_COUNT
#define WSH_RLIM_UNLIMITED WARDEN_RLIM_UNLIMITED

struct wsh_limit {
	const char *name;       /* upper case, as in the RLIMIT_<NAME> env var */
	int resource;           /* RLIMIT_* for setrlimit */
	uint64_t def;           /* default, soft = hard */
};

/* Indexed by the wire index (0 = AS ... 14 = STACK). */
extern const struct wsh_limit wsh_limits[WSH_RLIMIT_COUNT];

/* Parse "N" (soft = hard = N) or "SOFT HARD"; each number is decimal or
 * "unlimited"/"infinity". Returns 0, or -1 (EINVAL) for anything else or
 * when soft > hard. */
int wsh_rlimit_parse(const char *text, uint64_t *soft, uint64_t *hard);

/* Convert a wire value to rlim_t (UINT64_MAX -> RLIM_INFINITY). */
rlim_t wsh_rlimit_value(uint64_t v);

#endif
