#include "rules.h"

#include <errno.h>
#include <linux/bpf.h>
#include <stdlib.h>
#include <string.h>

/*
 * The same list, in the same order, as the devices.allow writes in
 * root/linux/skeleton/lib/hook-parent-after-clone.sh (null, zero, random,
 * urandom, tty, ptmx, pts/N, fuse; read and write, no mknod). Keep the two in
 * step: tests/c/test_devices.py checks that they agree.
 */
const char *const default_rules[] = {
	"c 1:3 rw",   /* /dev/null */
	"c 1:5 rw",   /* /dev/zero */
	"c 1:8 rw",   /* /dev/random */
	"c 1:9 rw",   /* /dev/urandom */
	"c 5:0 rw",   /* /dev/tty */
	"c 5:2 rw",   /* /dev/ptmx */
	"c 136:* rw", /* /dev/pts/N */
	"c 10:229 rw" /* /dev/fuse */
};
const size_t default_rules_count = sizeof(default_rules) / sizeof(default_rules[0]);

/* Parses a major or minor: digits (at most 2^31 - 1, the BPF immediate's
 * range) or '*'. Advances *p. */
static int parse_number(const char **p, int64_t *out)
{
	if (**p == '*') {
		(*p)++;
		*out = RULE_ANY;
		return 0;
	}
	if (**p < '0' || **p > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(*p, &end, 10);
	if (errno != 0 || v > 0x7fffffffULL)
		return -1;
	*p = end;
	*out = (int64_t)v;
	return 0;
}

int rule_parse(const char *text, struct rule *out, const char **why)
{
	const char *p = text;

	if (strcmp(text, "a") == 0) {
		*out = (struct rule){RULE_ANY, RULE_ANY, RULE_ANY,
		                     BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE};
		return 0;
	}
	switch (*p++) {
	case 'c': out->type = BPF_DEVCG_DEV_CHAR; break;
	case 'b': out->type = BPF_DEVCG_DEV_BLOCK; break;
	case 'a': out->type = RULE_ANY; break;
	default: *why = "the type must be c, b or a"; return -1;
	}
	if (*p++ != ' ') {
		*why = "expected a space after the type";
		return -1;
	}
	if (parse_number(&p, &out->major) != 0 || *p++ != ':' ||
	    parse_number(&p, &out->minor) != 0) {
		*why = "expected MAJOR:MINOR (numbers below 2^31, or *)";
		return -1;
	}
	if (*p++ != ' ') {
		*why = "expected a space before the access";
		return -1;
	}
	out->access = 0;
	for (; *p != '\0'; p++) {
		unsigned bit;
		switch (*p) {
		case 'r': bit = BPF_DEVCG_ACC_READ; break;
		case 'w': bit = BPF_DEVCG_ACC_WRITE; break;
		case 'm': bit = BPF_DEVCG_ACC_MKNOD; break;
		default: *why = "the access must be letters from rwm"; return -1;
		}
		out->access |= bit;
	}
	if (out->access == 0) {
		*why = "the access must not be empty";
		return -1;
	}
	return 0;
}
