/* Device rules in the cgroup v1 devices.allow syntax: "TYPE MAJOR:MINOR ACCESS". */
#ifndef DEVICES_RULES_H
#define DEVICES_RULES_H

#include <stddef.h>
#include <stdint.h>

#define RULE_ANY (-1)        /* a '*' major or minor, or type 'a' */
#define RULES_MAX 64

struct rule {
	int type;            /* BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK or RULE_ANY */
	int64_t major;       /* a number or RULE_ANY */
	int64_t minor;       /* a number or RULE_ANY */
	unsigned access;     /* BPF_DEVCG_ACC_* bits: m=MKNOD r=READ w=WRITE */
};

/* The built-in list: the v1 whitelist of hook-parent-after-clone.sh. */
extern const char *const default_rules[];
extern const size_t default_rules_count;

/*
 * Parses one rule: "c 1:3 rw", "b 8:* r", "c *:* m", or "a" (everything).
 * Returns 0, or -1 with a reason in *why.
 */
int rule_parse(const char *text, struct rule *out, const char **why);

#endif
